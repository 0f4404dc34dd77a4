//! `FS_IOC_ENABLE_VERITY` for the composefs object store.
//!
//! A deliberately small, private copy: the `verity::ioctl` module (another
//! engineer's) will own the fs-verity ioctls; once it lands the object
//! store should call it and this file goes away.

use std::os::fd::AsFd;

use rustix::ioctl::{Setter, ioctl, opcode};

/// `struct fsverity_enable_arg` (`include/uapi/linux/fsverity.h`).
#[repr(C)]
pub struct FsverityEnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}

/// `FS_IOC_ENABLE_VERITY = _IOW('f', 133, struct fsverity_enable_arg)`.
const FS_IOC_ENABLE_VERITY: rustix::ioctl::Opcode = opcode::write::<FsverityEnableArg>(b'f', 133);

/// Enables fs-verity (sha256, 4096-byte blocks, no salt or signature) on
/// a file opened read-only with no writable descriptor left open.
pub fn enable_verity_sha256(fd: impl AsFd) -> rustix::io::Result<()> {
    let arg = FsverityEnableArg {
        version: 1,
        hash_algorithm: 1,
        block_size: 4096,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: FS_IOC_ENABLE_VERITY takes a pointer to a fully initialised
    // `struct fsverity_enable_arg` whose layout `FsverityEnableArg` mirrors
    // (repr(C), 128 bytes); salt_ptr and sig_ptr are 0 with sizes 0, so the
    // kernel reads no other memory. Setter passes a pointer to `arg`, which
    // outlives the call.
    unsafe {
        ioctl(
            fd,
            Setter::<FS_IOC_ENABLE_VERITY, FsverityEnableArg>::new(arg),
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn arg_layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<super::FsverityEnableArg>(), 128);
    }
}
