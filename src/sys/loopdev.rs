//! Loop devices (`include/uapi/linux/loop.h`, `drivers/block/loop.c`): the
//! fallback for kernels whose EROFS cannot mount a regular file directly.
//! rustix has no loop wrappers; the two ioctls go through `rustix::ioctl`.

use std::os::fd::{AsFd, AsRawFd};

use rustix::io::Errno;
use rustix::ioctl::{self, Ioctl, IoctlOutput, Opcode, opcode};

/// `LOOP_CTL_GET_FREE` on `/dev/loop-control`: the number of a free device.
/// loop.h defines the loop ioctls as plain numbers (`0x4C82`), which is
/// `_IO('L', 0x82)`.
const LOOP_CTL_GET_FREE: Opcode = opcode::none(b'L', 0x82);
/// `LOOP_CONFIGURE` (Linux 5.8, `0x4C0A`): attach a file and set flags in
/// one call.
const LOOP_CONFIGURE: Opcode = opcode::none(b'L', 0x0A);

const _: () = {
    assert!(LOOP_CTL_GET_FREE == 0x4C82);
    assert!(LOOP_CONFIGURE == 0x4C0A);
};

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
    // SAFETY: LOOP_CTL_GET_FREE takes no argument (`GetFree` passes a null
    // pointer, which loop_control_ioctl ignores) and returns the device
    // number or fails with an errno; the fd is borrowed for the call.
    unsafe { ioctl::ioctl(control, GetFree) }
}

/// `LOOP_CTL_GET_FREE`: no argument, the result is the ioctl's return value,
/// which none of rustix's ready-made patterns passes through.
struct GetFree;

// SAFETY: the opcode takes no argument and the kernel writes no memory; the
// output is the non-negative return value.
unsafe impl Ioctl for GetFree {
    type Output = u32;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        LOOP_CTL_GET_FREE
    }

    fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        std::ptr::null_mut()
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut std::ffi::c_void,
    ) -> rustix::io::Result<u32> {
        // rustix turns a negative return into an Err before this is called.
        u32::try_from(out).map_err(|_| Errno::RANGE)
    }
}

/// Attaches `backing` to the loop device `device` with `flags`
/// (`LO_FLAGS_*`), 4096-byte logical blocks.
pub fn configure(device: impl AsFd, backing: impl AsFd, flags: u32) -> Result<(), Errno> {
    let config = LoopConfig {
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
    // reproduced above (repr(C), 304 bytes, checked below); `Setter` passes
    // a pointer to its own copy, valid for the duration of the call, and the
    // kernel copies it (copy_from_user in lo_ioctl) without keeping it.
    // `backing` stays open for the call; the kernel takes its own reference.
    unsafe {
        let ctl = ioctl::Setter::<LOOP_CONFIGURE, LoopConfig>::new(config);
        ioctl::ioctl(device, ctl)
    }
}

// sizeof(struct loop_info64) == 232, sizeof(struct loop_config) == 304 on
// every architecture (include/uapi/linux/loop.h).
const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);
