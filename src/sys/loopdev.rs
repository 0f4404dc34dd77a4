//! Loop devices (`include/uapi/linux/loop.h`, `drivers/block/loop.c`): the
//! fallback for kernels whose EROFS cannot mount a regular file directly.
//! rustix has no loop wrappers, so the two ioctls are made here.

use std::os::fd::{AsFd, AsRawFd};

use rustix::io::Errno;

/// `LOOP_CTL_GET_FREE` on `/dev/loop-control`: the number of a free device.
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// `LOOP_CONFIGURE` (Linux 5.8): attach a file and set flags in one call.
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;

/// `LO_FLAGS_READ_ONLY`.
pub const LO_FLAGS_READ_ONLY: u32 = 1;
/// `LO_FLAGS_AUTOCLEAR`: detach when the last user (the mount) goes away.
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Asks `/dev/loop-control` for a free loop device number.
pub fn get_free(control: impl AsFd) -> Result<u32, Errno> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns the device
    // number or -1; the fd is valid for the call.
    let ret = unsafe { libc::ioctl(control.as_fd().as_raw_fd(), LOOP_CTL_GET_FREE as _) };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(ret as u32)
}

/// Attaches `backing` to the loop device `device` with `flags`
/// (`LO_FLAGS_*`), 4096-byte logical blocks.
pub fn configure(device: impl AsFd, backing: impl AsFd, flags: u32) -> Result<(), Errno> {
    let mut config = LoopConfig {
        fd: backing.as_fd().as_raw_fd() as u32,
        block_size: 0,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name: [0; 64],
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config` whose layout is
    // reproduced above (repr(C), 304 bytes, checked by a test); the pointer
    // is valid for the duration of the call and the kernel does not keep it.
    let ret = unsafe {
        libc::ioctl(
            device.as_fd().as_raw_fd(),
            LOOP_CONFIGURE as _,
            &mut config as *mut LoopConfig,
        )
    };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(())
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_uapi() {
        // sizeof(struct loop_info64) == 232, sizeof(struct loop_config) ==
        // 304 on every architecture (include/uapi/linux/loop.h).
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
