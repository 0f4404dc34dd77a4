//! `sealroot mount`: mounts a composefs image read-only, the way
//! `mount.composefs` does (libcomposefs/lcfs-mount.c): the image file as a
//! file-backed EROFS (Linux >= 6.12, `CONFIG_EROFS_FS_BACKED_BY_FILE`, no
//! loop device), and on top an overlayfs with the EROFS as its only layer
//! and the object stores as data-only layers, `metacopy=on,redirect_dir=on,
//! verity=require`: every object's fs-verity digest is checked against the
//! one recorded in the image when it is opened.
//!
//! The new mount API (fsopen/fsconfig/fsmount/move_mount) passes each
//! directory as its own string, so paths may hold commas and colons; the
//! EROFS is attached only while the overlay is set up, so only the overlay
//! stays in the mount table. The EROFS source is `/proc/self/fd/N` of the
//! image as opened (and measured, with --digest), so the file that is
//! checked is the file that is mounted.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, unmount,
};
use sealroot::erofs::format::COMPOSEFS_FLAG_HAS_ACL;
use sealroot::erofs::reader;
use sealroot::errno::errno_name;
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
#[command(long_about = LONG_HELP)]
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

    let erofs = mount_erofs(&image, sb.flags & COMPOSEFS_FLAG_HAS_ACL != 0)
        .with_context(|| format!("cannot mount image {} (EROFS)", args.image.display()))?;
    // Linux 6.12 cannot stack overlayfs on a detached mount
    // (clone_private_mount() wants it in our namespace: "failed to clone
    // lowerpath"), so the EROFS is attached to a private temporary
    // directory while the overlay is set up, then detached again; the
    // overlay keeps its own reference.
    let staging = tempfile::Builder::new()
        .prefix(".sealroot-erofs.")
        .tempdir()
        .context("cannot create a temporary directory for the EROFS mount")?;
    move_mount(
        erofs.as_fd(),
        "",
        rustix::fs::CWD,
        staging.path(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| kernel_error(e, None, "move_mount(erofs)"))
    .with_context(|| format!("cannot attach the EROFS at {}", staging.path().display()))?;
    let overlay = mount_overlay(staging.path(), &args.basedir);
    let detached = unmount(staging.path(), UnmountFlags::DETACH);
    let overlay = overlay.context("cannot set up the overlayfs")?;
    detached
        .map_err(|e| kernel_error(e, None, "umount(erofs)"))
        .with_context(|| format!("cannot detach the EROFS from {}", staging.path().display()))?;
    move_mount(
        overlay.as_fd(),
        "",
        rustix::fs::CWD,
        &args.mountpoint,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| kernel_error(e, None, "move_mount"))
    .with_context(|| format!("cannot mount on {}", args.mountpoint.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// A detached read-only EROFS mount of `image`. composefs images carry no
/// ACLs unless their header says so; mount.composefs then passes `noacl`.
fn mount_erofs(image: &File, has_acl: bool) -> anyhow::Result<OwnedFd> {
    let fs = FsContext::new("erofs")?;
    let source = format!("/proc/self/fd/{}", image.as_raw_fd());
    fs.set("source", &source)?;
    fs.flag("ro")?;
    if !has_acl {
        fs.flag("noacl")?;
    }
    fs.create()?;
    fs.mount()
}

/// A detached read-only overlayfs: the EROFS (mounted at `erofs`) as its one layer, the object
/// stores as data-only layers (`lowerdir+`/`datadir+`, Linux >= 6.8).
fn mount_overlay(erofs: &Path, basedirs: &[PathBuf]) -> anyhow::Result<OwnedFd> {
    let fs = FsContext::new("overlay")?;
    fs.set("source", "composefs")?;
    fs.set("metacopy", "on")?;
    fs.set("redirect_dir", "on")?;
    fs.set("verity", "require")?;
    fs.set("lowerdir+", erofs)?;
    for dir in basedirs {
        fs.set("datadir+", dir)?;
    }
    fs.create()?;
    fs.mount()
}

/// An fsopen() filesystem context; failures carry the kernel's own
/// messages from the context's log.
struct FsContext {
    fd: OwnedFd,
    fstype: &'static str,
}

impl FsContext {
    fn new(fstype: &'static str) -> anyhow::Result<FsContext> {
        let fd = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| {
            let hint = match e {
                Errno::NODEV => format!(
                    "the kernel has no {fstype} filesystem (modprobe {fstype}, or build it in)"
                ),
                Errno::NOSYS => "the kernel lacks the new mount API (Linux >= 5.2)".into(),
                Errno::PERM => "mounting needs CAP_SYS_ADMIN".into(),
                _ => String::new(),
            };
            anyhow::anyhow!("fsopen({fstype}) failed: {}: {hint}", errno_name(e))
        })?;
        Ok(FsContext { fd, fstype })
    }

    fn set(&self, key: &str, value: impl AsRef<Path>) -> anyhow::Result<()> {
        let value = value.as_ref();
        fsconfig_set_string(self.fd.as_fd(), key, value).map_err(|e| {
            let what = format!("{} option {key}={}", self.fstype, value.display());
            kernel_error(e, Some(&self.fd), &what)
        })
    }

    fn flag(&self, key: &str) -> anyhow::Result<()> {
        fsconfig_set_flag(self.fd.as_fd(), key)
            .map_err(|e| kernel_error(e, Some(&self.fd), &format!("{} option {key}", self.fstype)))
    }

    fn create(&self) -> anyhow::Result<()> {
        fsconfig_create(self.fd.as_fd())
            .map_err(|e| kernel_error(e, Some(&self.fd), &format!("creating the {}", self.fstype)))
    }

    fn mount(&self) -> anyhow::Result<OwnedFd> {
        fsmount(
            self.fd.as_fd(),
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_RDONLY,
        )
        .map_err(|e| kernel_error(e, Some(&self.fd), &format!("fsmount({})", self.fstype)))
    }
}

/// "what: EINVAL: kernel: <the context's log>", the log being the lines
/// the filesystem wrote for this mount attempt (`e overlayfs: ...`).
fn kernel_error(errno: Errno, fs: Option<&OwnedFd>, what: &str) -> anyhow::Error {
    let log = fs.map(read_log).unwrap_or_default();
    let explain = match errno {
        Errno::NOTBLK | Errno::INVAL if what.starts_with("creating the erofs") => {
            " (is the kernel older than 6.12 or built without CONFIG_EROFS_FS_BACKED_BY_FILE?)"
        }
        Errno::NOENT => " (a path does not exist)",
        Errno::PERM | Errno::ACCESS => " (mounting needs CAP_SYS_ADMIN)",
        _ => "",
    };
    if log.is_empty() {
        anyhow::anyhow!("{what} failed: {}{explain}", errno_name(errno))
    } else {
        anyhow::anyhow!(
            "{what} failed: {}{explain}; kernel: {}",
            errno_name(errno),
            log.join("; ")
        )
    }
}

/// Drains the filesystem context's message log: each read() returns one
/// message ("e ...", "w ...", "i ...") until ENODATA
/// (Documentation/filesystems/mount_api.rst).
fn read_log(fd: &OwnedFd) -> Vec<String> {
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    while lines.len() < 32 {
        match rustix::io::read(fd, &mut buf) {
            Ok(n) if n > 0 => lines.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()),
            _ => break,
        }
    }
    lines
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
