//! The new mount API (`fsopen`, `fsconfig`, `fsmount`, `move_mount`,
//! `open_tree`; `Documentation/filesystems/mount_api.rst`), typed, with
//! errors that say which step failed, the errno by name, and what the
//! kernel wrote into the filesystem context's log (`read(2)` on the
//! context fd returns lines such as `e overlay: failed to resolve ...`).
//!
//! Linux 6.12 facts this module is built around (verified in the VM test
//! bed, `tests/vm_prepare*.rs`):
//! - overlayfs takes layers only as path strings (`lowerdir+`, `datadir+`,
//!   `upperdir`, `workdir`), and resolves them to mounts of the caller's
//!   mount namespace (`clone_private_mount()` refuses detached mounts with
//!   EINVAL before 6.15); so a lower layer must be *attached* somewhere
//!   first;
//! - `move_mount()` onto a path inside a detached tree is refused before
//!   6.15, so submounts are added after the tree is attached;
//! - `MS_MOVE` of a mount whose parent is shared is refused (EINVAL), so
//!   staging happens below a private mount.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};

use crate::errno::errno_name;

pub mod composefs;

/// A failed mount step.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    /// What was being done, e.g. `fsconfig(overlay, lowerdir+=/run/x)`.
    pub op: String,
    pub errno: Errno,
    /// Lines the kernel logged in the filesystem context, if any.
    pub kernel_log: Vec<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {}: {}",
            self.op,
            errno_name(self.errno),
            explain(&self.op, self.errno)
        )?;
        if !self.kernel_log.is_empty() {
            write!(f, " (kernel: {})", self.kernel_log.join("; "))?;
        }
        Ok(())
    }
}

impl Error {
    fn new(op: impl Into<String>, errno: Errno) -> Self {
        Error {
            op: op.into(),
            errno,
            kernel_log: Vec::new(),
        }
    }
}

/// What an errno means for a mount step.
fn explain(op: &str, errno: Errno) -> String {
    let text = match errno {
        Errno::NODEV => "the kernel does not know this filesystem type (module not loaded?)",
        Errno::NOSYS => "the kernel lacks the new mount API (Linux 5.2 or later is needed)",
        Errno::NOTBLK => {
            "the source is not a block device (file-backed EROFS needs \
                          CONFIG_EROFS_FS_BACKED_BY_FILE; use the loop fallback)"
        }
        Errno::NOENT => "a path does not exist",
        Errno::NOTDIR => "a path is not a directory",
        Errno::PERM | Errno::ACCESS => "permission denied (sealroot-prepare must run as root)",
        Errno::ROFS => "the filesystem is read-only",
        Errno::BUSY => "the target is busy",
        Errno::INVAL if op.starts_with("fsconfig") => {
            "the filesystem rejected this option or value (see the kernel's message)"
        }
        Errno::INVAL => {
            "invalid argument (e.g. moving a mount below a shared mount, or a \
                         layer that is not an attached mount)"
        }
        Errno::IO if op.contains("erofs") => {
            "I/O error reading the image (a file with fs-verity enabled fails \
             verification when its data was altered on disk; the kernel log \
             names it)"
        }
        Errno::IO => {
            "I/O error (for verity=require: a data file's fs-verity digest does \
                      not match, or it has none)"
        }
        _ => return std::io::Error::from(errno).to_string(),
    };
    text.to_owned()
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `/proc/self/fd/N`: a path that names exactly the open file, for kernel
/// interfaces that take paths (overlayfs layers, EROFS source) when the
/// caller has already opened and checked the file.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A filesystem context (`fsopen`).
pub struct FsContext {
    fd: OwnedFd,
    fstype: String,
}

impl FsContext {
    /// Opens a context for `fstype` ("erofs", "overlay", "tmpfs").
    pub fn new(fstype: &str) -> Result<Self> {
        let fd = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| Error::new(format!("fsopen({fstype})"), e))?;
        Ok(FsContext {
            fd,
            fstype: fstype.to_owned(),
        })
    }

    /// Reads the messages the kernel queued in the context (`e ...`,
    /// `w ...`, `i ...` lines), without blocking.
    fn drain_log(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        // Each read returns one message; ENODATA when the queue is empty.
        for _ in 0..16 {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(n) if n > 0 => out.push(String::from_utf8_lossy(&buf[..n]).trim().to_owned()),
                _ => break,
            }
        }
        out
    }

    fn fail(&self, op: String, errno: Errno) -> Error {
        Error {
            op,
            errno,
            kernel_log: self.drain_log(),
        }
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        rustix::mount::fsconfig_set_string(&self.fd, key, value)
            .map_err(|e| self.fail(format!("fsconfig({}, {key}={value})", self.fstype), e))
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, path)`.
    pub fn set_path(&self, key: &str, value: &Path) -> Result<()> {
        rustix::mount::fsconfig_set_string(&self.fd, key, value).map_err(|e| {
            self.fail(
                format!("fsconfig({}, {key}={})", self.fstype, value.display()),
                e,
            )
        })
    }

    /// `fsconfig(FSCONFIG_SET_FLAG, key)`.
    pub fn set_flag(&self, key: &str) -> Result<()> {
        rustix::mount::fsconfig_set_flag(&self.fd, key)
            .map_err(|e| self.fail(format!("fsconfig({}, {key})", self.fstype), e))
    }

    /// Creates the superblock and a detached mount of it with `attrs`.
    pub fn mount(self, attrs: MountAttrFlags) -> Result<DetachedMount> {
        rustix::mount::fsconfig_create(&self.fd)
            .map_err(|e| self.fail(format!("fsconfig({}, FSCONFIG_CMD_CREATE)", self.fstype), e))?;
        let fd = rustix::mount::fsmount(&self.fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
            .map_err(|e| self.fail(format!("fsmount({})", self.fstype), e))?;
        Ok(DetachedMount {
            fd,
            what: self.fstype,
        })
    }
}

/// A mount not attached anywhere yet (from `fsmount` or `open_tree`).
/// Dropping it without attaching unmounts it.
pub struct DetachedMount {
    fd: OwnedFd,
    what: String,
}

impl DetachedMount {
    /// A detached copy of the mount at `path` (relative to `dirfd`; an empty
    /// path means `dirfd` itself): `open_tree(OPEN_TREE_CLONE)`, with its
    /// submounts when `recursive`.
    pub fn clone_of(dirfd: BorrowedFd<'_>, path: &Path, recursive: bool) -> Result<Self> {
        let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if recursive {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        if path.as_os_str().is_empty() {
            flags |= OpenTreeFlags::AT_EMPTY_PATH;
        }
        let fd = rustix::mount::open_tree(dirfd, path, flags).map_err(|e| {
            Error::new(format!("open_tree({}, OPEN_TREE_CLONE)", path.display()), e)
        })?;
        Ok(DetachedMount {
            fd,
            what: format!("bind of {}", path.display()),
        })
    }

    /// Sets mount attributes (`MOUNT_ATTR_NOSUID`, `MOUNT_ATTR_NODEV`, ...)
    /// on this detached mount, and on every mount below it when
    /// `recursive` (`mount_setattr(2)`, `AT_RECURSIVE`): a clone keeps the
    /// flags of its original, so a bind of untrusted storage gets its
    /// `nosuid,nodev` here, before it is attached anywhere.
    pub fn set_attrs(&self, attrs: MountAttrFlags, recursive: bool) -> Result<()> {
        crate::sys::mount::set_attrs(&self.fd, attrs, recursive).map_err(|e| {
            Error::new(
                format!(
                    "mount_setattr({}, {attrs:?}{})",
                    self.what,
                    if recursive { ", AT_RECURSIVE" } else { "" }
                ),
                e,
            )
        })
    }

    /// Attaches the mount at `target` (`move_mount`).
    pub fn attach(self, target: &Path) -> Result<()> {
        rustix::mount::move_mount(
            &self.fd,
            c"",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| {
            Error::new(
                format!("move_mount({} -> {})", self.what, target.display()),
                e,
            )
        })
    }
}

impl AsFd for DetachedMount {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Moves the mount at `from` (with its submounts) to `to`.
pub fn move_mount(from: &Path, to: &Path) -> Result<()> {
    rustix::mount::move_mount(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        MoveMountFlags::empty(),
    )
    .map_err(|e| {
        Error::new(
            format!("move_mount({} -> {})", from.display(), to.display()),
            e,
        )
    })
}

/// Makes the mount at `path` private (no propagation in or out).
pub fn make_private(path: &Path) -> Result<()> {
    rustix::mount::mount_change(path, MountPropagationFlags::PRIVATE)
        .map_err(|e| Error::new(format!("mount(MS_PRIVATE, {})", path.display()), e))
}

/// Makes the mount at `path` and every mount below it private.
/// `open_tree(OPEN_TREE_CLONE)` copies join the peer group of a shared
/// original (6.12 `open_detached_copy()` clones without `CL_PRIVATE`), so
/// anything later mounted on the original would be replicated onto them.
pub fn make_private_recursive(path: &Path) -> Result<()> {
    rustix::mount::mount_change(
        path,
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| Error::new(format!("mount(MS_REC|MS_PRIVATE, {})", path.display()), e))
}

/// Lazily unmounts `path` and everything below it (`MNT_DETACH`).
pub fn detach(path: &Path) -> Result<()> {
    rustix::mount::unmount(path, UnmountFlags::DETACH)
        .map_err(|e| Error::new(format!("umount2({}, MNT_DETACH)", path.display()), e))
}

/// The id of the mount `path` is on (`statx(STATX_MNT_ID)`; the same ids
/// as the first field of `/proc/self/mountinfo`). The last component is
/// not followed if it is a symlink.
pub fn mount_id(path: &Path) -> std::io::Result<u64> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::MNT_ID,
    )
    .map(|s| s.stx_mnt_id)
    .map_err(std::io::Error::from)
}

/// Whether `path` is a mount point: its mount id differs from its parent's
/// (`statx(STATX_MNT_ID)`).
pub fn is_mount_point(path: &Path) -> std::io::Result<bool> {
    Ok(mount_id(path)? != mount_id(&path.join(".."))?)
}

/// A NUL-free C string of a path (for messages from callers that build
/// option strings by hand).
pub fn c_path(p: &Path) -> Option<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_step_and_errno() {
        let e = Error {
            op: "fsconfig(overlay, lowerdir+=/run/x)".into(),
            errno: Errno::INVAL,
            kernel_log: vec!["e overlay: failed to clone lowerpath".into()],
        };
        assert_eq!(
            e.to_string(),
            "fsconfig(overlay, lowerdir+=/run/x) failed: EINVAL: the filesystem rejected this \
             option or value (see the kernel's message) (kernel: e overlay: failed to clone \
             lowerpath)"
        );
        let e = Error::new("fsopen(erofs)", Errno::NODEV);
        assert!(e.to_string().contains("ENODEV: the kernel does not know"));
    }

    #[test]
    fn fd_paths() {
        let f = std::fs::File::open("/").unwrap();
        let p = fd_path(f.as_fd());
        assert!(p.starts_with("/proc/self/fd/"));
        assert_eq!(std::fs::read_link(&p).unwrap(), PathBuf::from("/"));
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        assert!(!is_mount_point(Path::new("/proc/self")).unwrap_or(false));
    }
}
