//! A composefs mount, the way `mount.composefs` builds it
//! (libcomposefs/lcfs-mount.c): the image as a read-only EROFS, and over
//! it an overlayfs with the EROFS as its one layer and the object stores
//! as data-only layers, `metacopy=on,redirect_dir=on,verity=require`, so
//! every object's fs-verity digest is checked against the one the image
//! records when it is opened. Used by `sealroot mount` and by
//! `sealroot-prepare` (`prepare::mountroot`), so both mount alike.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::mount::MountAttrFlags;

use super::{DetachedMount, FsContext, Result, fd_path};
use crate::erofs::format::{COMPOSEFS_FLAG_HAS_ACL, COMPOSEFS_HEADER_SIZE};

/// Where the EROFS is read from.
#[derive(Debug, Clone, Copy)]
pub enum ErofsSource<'a> {
    /// The open image file itself (`source=/proc/self/fd/N`): Linux >= 6.12
    /// with `CONFIG_EROFS_FS_BACKED_BY_FILE`, else ENOTBLK. The file that
    /// was opened (and checked) is the file that is mounted.
    File(&'a File),
    /// A block device (e.g. a loop device over the image).
    Device(&'a Path),
}

/// Mount attributes of the helper mounts: nothing on them is a device
/// node or set-id program to honour, and nothing writes.
fn attrs() -> MountAttrFlags {
    MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOSUID
}

/// Whether the composefs header of `image` says some inode carries a POSIX
/// ACL (`LCFS_EROFS_FLAGS_HAS_ACL`); a header too short to read counts as
/// "yes" (the safe default: ACLs are honoured), and the mount itself then
/// rejects a broken image.
pub fn has_acl(image: &File) -> bool {
    let mut header = [0u8; COMPOSEFS_HEADER_SIZE];
    if image.read_exact_at(&mut header, 0).is_err() {
        return true;
    }
    let flags = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    flags & COMPOSEFS_FLAG_HAS_ACL != 0
}

/// A detached read-only EROFS mount. Without ACLs in the image, `noacl`
/// spares the kernel the ACL lookups (mount.composefs does the same).
/// `ro` sets SB_RDONLY: the mount attribute alone leaves the superblock
/// writable, and a read-only loop device then refuses (EACCES).
pub fn erofs(source: ErofsSource<'_>, acl: bool) -> Result<DetachedMount> {
    let ctx = FsContext::new("erofs")?;
    ctx.set_flag("ro")?;
    if !acl {
        ctx.set_flag("noacl")?;
    }
    match source {
        ErofsSource::File(f) => ctx.set_path("source", &fd_path(f.as_fd()))?,
        ErofsSource::Device(d) => ctx.set_path("source", d)?,
    }
    ctx.mount(attrs())
}

/// The composefs overlay, detached and read-only: the EROFS attached at
/// `erofs_dir` as its one lower layer, `data_dirs` as data-only layers
/// (`datadir+`, Linux >= 6.8: reachable only through the EROFS' redirects).
/// Linux 6.12 resolves layers as paths in the caller's mount namespace and
/// refuses detached mounts there ("failed to clone lowerpath"), so the
/// EROFS must be attached while this runs; the overlay keeps its own clone,
/// and the caller may detach `erofs_dir` afterwards.
pub fn overlay<P: AsRef<Path>>(erofs_dir: &Path, data_dirs: &[P]) -> Result<DetachedMount> {
    let ctx = FsContext::new("overlay")?;
    ctx.set("source", "composefs")?;
    ctx.set_flag("ro")?;
    ctx.set_path("lowerdir+", erofs_dir)?;
    for dir in data_dirs {
        ctx.set_path("datadir+", dir.as_ref())?;
    }
    ctx.set("metacopy", "on")?;
    ctx.set("redirect_dir", "on")?;
    ctx.set("verity", "require")?;
    ctx.mount(MountAttrFlags::MOUNT_ATTR_RDONLY)
}

/// The whole composefs mount of an open image: EROFS attached at
/// `staging` (an empty directory, ideally on a private mount) while the
/// overlay is set up, then detached again; returns the overlay, detached,
/// for the caller to attach.
pub fn mount<P: AsRef<Path>>(
    source: ErofsSource<'_>,
    acl: bool,
    staging: &Path,
    data_dirs: &[P],
) -> Result<DetachedMount> {
    erofs(source, acl)?.attach(staging)?;
    let overlay = overlay(staging, data_dirs);
    let detached = super::detach(staging);
    let overlay = overlay?;
    detached?;
    Ok(overlay)
}
