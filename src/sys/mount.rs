//! `mount_setattr(2)` (Linux 5.12, `fs/namespace.c`): change the per-mount
//! attributes (`MOUNT_ATTR_NOSUID`, `MOUNT_ATTR_NODEV`, ...) of a mount, or
//! of a whole tree of mounts with `AT_RECURSIVE`, in one atomic step.
//! rustix 1.1 has no wrapper (`not_implemented!(mount_setattr)`).
//!
//! `open_tree(OPEN_TREE_CLONE)` copies keep the flags of the originals;
//! this is how a clone (e.g. of the physical root, with its submounts) is
//! made `nosuid,nodev` before it is attached anywhere.

use std::os::fd::{AsFd, AsRawFd};

use rustix::io::Errno;
use rustix::mount::MountAttrFlags;

/// Sets `set` on the mount `fd` refers to (an `open_tree`/`fsmount` fd, or
/// any fd on the mount with `AT_EMPTY_PATH`), and on every mount below it
/// when `recursive`.
pub fn set_attrs(fd: impl AsFd, set: MountAttrFlags, recursive: bool) -> Result<(), Errno> {
    let attr = libc::mount_attr {
        attr_set: u64::from(set.bits()),
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: mount_setattr(dirfd, path, flags, attr, size) reads `size`
    // bytes of `struct mount_attr` (include/uapi/linux/mount.h; libc's
    // definition is the MOUNT_ATTR_SIZE_VER0 layout, 32 bytes, checked by a
    // test) and a NUL-terminated path; both pointers are valid for the
    // call and the kernel keeps neither. The fd is borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn struct_size_matches_the_uapi() {
        // MOUNT_ATTR_SIZE_VER0 (include/uapi/linux/mount.h).
        assert_eq!(std::mem::size_of::<libc::mount_attr>(), 32);
    }
}
