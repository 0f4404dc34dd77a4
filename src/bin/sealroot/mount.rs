//! `sealroot mount`: mounts a composefs image read-only, the way
//! `mount.composefs` does (libcomposefs/lcfs-mount.c): the image file as a
//! file-backed EROFS (Linux >= 6.12, `CONFIG_EROFS_FS_BACKED_BY_FILE`, no
//! loop device), and on top an overlayfs with the EROFS as its only layer
//! and the object stores as data-only layers, `metacopy=on,redirect_dir=on,
//! verity=require`: every object's fs-verity digest is checked against the
//! one recorded in the image when it is opened.
//!
//! The mount itself is `sealroot::mount::composefs`, the one the initramfs
//! (`sealroot-prepare`) uses too. The new mount API passes each directory
//! as its own string, so paths may hold commas and colons; the EROFS is
//! attached only while the overlay is set up, so only the overlay stays in
//! the mount table. The EROFS source is `/proc/self/fd/N` of the image as
//! opened (and measured, with --digest), so the file that is checked is
//! the file that is mounted.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use sealroot::erofs::format::COMPOSEFS_FLAG_HAS_ACL;
use sealroot::erofs::reader;
use sealroot::mount::composefs::{self, ErofsSource};
use sealroot::verity::{FsVerityDigest, HashAlgorithm, ioctl};

pub const LONG_HELP: &str = "\
Mounts a composefs image read-only at MOUNTPOINT, like mount.composefs: the \
image (an EROFS file) is mounted directly, without a loop device (Linux 6.12 \
or later with CONFIG_EROFS_FS_BACKED_BY_FILE), under an overlayfs whose \
data-only layers are the object stores given with --basedir. overlayfs runs \
with verity=require: opening a file whose object lacks fs-verity, or whose \
fs-verity digest differs from the one in the image, fails with EIO (the \
kernel log says which). Needs CAP_SYS_ADMIN. Unmount with umount(8).

With --digest, the image itself must have fs-verity enabled with exactly \
that digest (what `sealroot mkcomposefs --print-digest` printed), else \
nothing is mounted.

Examples:
  sealroot mount --basedir /srv/objects image.cfs /mnt
  sealroot mount --basedir /srv/objects --digest 4cd4...4065 image.cfs /mnt";

/// Options of `sealroot mount`.
#[derive(Args, Debug)]
pub struct MountArgs {
    /// The composefs image (EROFS)
    image: PathBuf,
    /// Directory to mount it on
    mountpoint: PathBuf,
    /// Object store the image's files refer to (repeatable; searched in order)
    #[arg(long, value_name = "DIR", required = true)]
    basedir: Vec<PathBuf>,
    /// Refuse unless the image's fs-verity digest is this (hex, or sha256:hex)
    #[arg(long, value_name = "DIGEST", value_parser = parse_digest)]
    digest: Option<FsVerityDigest>,
}

fn parse_digest(s: &str) -> Result<FsVerityDigest, String> {
    let parsed = if s.contains(':') {
        s.parse()
    } else {
        FsVerityDigest::from_hex(HashAlgorithm::Sha256, s)
    };
    parsed.map_err(|e| e.to_string())
}

pub fn run(args: MountArgs) -> anyhow::Result<ExitCode> {
    let image = File::open(&args.image)
        .with_context(|| format!("cannot open image {}", args.image.display()))?;
    if let Some(expected) = &args.digest {
        let actual = ioctl::measure(&image).map_err(|e| e.at(&args.image))?;
        if actual != *expected {
            bail!(
                "image {} has fs-verity digest {actual}, not the expected {expected}: refusing to mount it",
                args.image.display()
            );
        }
    }
    // Only metadata: composefs images are small next to their objects.
    let mut data = Vec::new();
    (&image)
        .read_to_end(&mut data)
        .with_context(|| format!("cannot read image {}", args.image.display()))?;
    let sb =
        reader::superblock(&data).with_context(|| format!("image {}", args.image.display()))?;
    for dir in &args.basedir {
        if !dir.is_dir() {
            bail!("--basedir {}: not a directory", dir.display());
        }
    }
    // The EROFS is attached to a private temporary directory only while
    // the overlay is set up (sealroot::mount::composefs::overlay says why).
    let staging = tempfile::Builder::new()
        .prefix(".sealroot-erofs.")
        .tempdir()
        .context("cannot create a temporary directory for the EROFS mount")?;
    let overlay = composefs::mount(
        ErofsSource::File(&image),
        sb.flags & COMPOSEFS_FLAG_HAS_ACL != 0,
        staging.path(),
        &args.basedir,
    )
    .with_context(|| format!("cannot mount image {}", args.image.display()))?;
    overlay
        .attach(&args.mountpoint)
        .with_context(|| format!("cannot mount on {}", args.mountpoint.display()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_digest;

    #[test]
    fn digests_parse_bare_or_with_algorithm() {
        let hex = "4cd49116cb3cfdec092dad3eec282768787294ad4bfa86a17d3e951b661d4065";
        let bare = parse_digest(hex).unwrap();
        assert_eq!(bare.to_string(), format!("sha256:{hex}"));
        assert_eq!(parse_digest(&format!("sha256:{hex}")).unwrap(), bare);
        assert!(parse_digest(&hex[2..]).unwrap_err().contains("32 bytes"));
        assert!(parse_digest("sha256:xyz").is_err());
        assert!(parse_digest(&format!("md5:{hex}")).is_err());
    }
}
