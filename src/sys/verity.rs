//! Raw fs-verity ioctls.
//!
//! Constants and struct layouts are those of `include/uapi/linux/fsverity.h`;
//! the semantics (who fills what, which errno means what) are documented in
//! `Documentation/filesystems/fsverity.rst` ("User API") and implemented in
//! `fs/verity/enable.c`, `fs/verity/measure.c` and
//! `fs/verity/read_metadata.c`. These wrappers only move bytes across the
//! boundary; validation and error messages live in `crate::verity::ioctl`.

use std::marker::PhantomData;
use std::os::fd::AsFd;

use rustix::io;
use rustix::ioctl::{self, Ioctl, IoctlOutput, Opcode, opcode};

/// `struct fsverity_enable_arg` (128 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct FsverityEnableArg {
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

/// `struct fsverity_digest` without its flexible `digest[]` array: the
/// ioctl number encodes only this 4-byte header.
#[repr(C)]
struct FsverityDigestHeader {
    digest_algorithm: u16,
    digest_size: u16,
}

/// Largest digest any algorithm produces (`FS_VERITY_MAX_DIGEST_SIZE`,
/// SHA-512), the capacity of our measure buffer.
pub const MAX_DIGEST_SIZE: usize = 64;

/// `struct fsverity_digest` followed by room for the largest digest.
#[repr(C)]
struct FsverityDigestBuf {
    header: FsverityDigestHeader,
    digest: [u8; MAX_DIGEST_SIZE],
}

/// `struct fsverity_read_metadata_arg` (40 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct FsverityReadMetadataArg {
    metadata_type: u64,
    offset: u64,
    length: u64,
    buf_ptr: u64,
    reserved: u64,
}

const _: () = assert!(std::mem::size_of::<FsverityEnableArg>() == 128);
const _: () = assert!(std::mem::size_of::<FsverityDigestHeader>() == 4);
const _: () = assert!(std::mem::size_of::<FsverityReadMetadataArg>() == 40);

/// `FS_IOC_ENABLE_VERITY = _IOW('f', 133, struct fsverity_enable_arg)`.
pub const FS_IOC_ENABLE_VERITY: Opcode = opcode::write::<FsverityEnableArg>(b'f', 133);
/// `FS_IOC_MEASURE_VERITY = _IOWR('f', 134, struct fsverity_digest)`.
pub const FS_IOC_MEASURE_VERITY: Opcode = opcode::read_write::<FsverityDigestHeader>(b'f', 134);
/// `FS_IOC_READ_VERITY_METADATA = _IOWR('f', 135, struct fsverity_read_metadata_arg)`.
pub const FS_IOC_READ_VERITY_METADATA: Opcode =
    opcode::read_write::<FsverityReadMetadataArg>(b'f', 135);

// The numbers every C program compiles in (x86_64, aarch64, ...: the generic
// _IOC encoding); a typo in a struct above would change them.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const _: () = {
    assert!(FS_IOC_ENABLE_VERITY == 0x4080_6685);
    assert!(FS_IOC_MEASURE_VERITY == 0xc004_6686);
    assert!(FS_IOC_READ_VERITY_METADATA == 0xc028_6687);
};

/// `FS_VERITY_METADATA_TYPE_MERKLE_TREE`.
pub const METADATA_TYPE_MERKLE_TREE: u64 = 1;
/// `FS_VERITY_METADATA_TYPE_DESCRIPTOR`.
pub const METADATA_TYPE_DESCRIPTOR: u64 = 2;
/// `FS_VERITY_METADATA_TYPE_SIGNATURE`.
pub const METADATA_TYPE_SIGNATURE: u64 = 3;

/// `FS_VERITY_FL` from `include/uapi/linux/fs.h`, reported by
/// `FS_IOC_GETFLAGS` on verity files.
pub const FS_VERITY_FL: u32 = 0x0010_0000;

/// `ioctl(fd, FS_IOC_ENABLE_VERITY, &arg)` with `version = 1`.
///
/// `hash_algorithm` is an `FS_VERITY_HASH_ALG_*` number, `block_size` the
/// Merkle tree block size in bytes; `salt` and `signature` may be empty.
pub fn enable_verity(
    fd: impl AsFd,
    hash_algorithm: u32,
    block_size: u32,
    salt: &[u8],
    signature: &[u8],
) -> io::Result<()> {
    let (Ok(salt_size), Ok(sig_size)) = (u32::try_from(salt.len()), u32::try_from(signature.len()))
    else {
        return Err(io::Errno::MSGSIZE);
    };
    let arg = FsverityEnableArg {
        version: 1,
        hash_algorithm,
        block_size,
        salt_size,
        salt_ptr: salt.as_ptr() as u64,
        sig_size,
        sig_ptr: signature.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: FS_IOC_ENABLE_VERITY takes a pointer to a `struct
    // fsverity_enable_arg`, which `FsverityEnableArg` mirrors (size checked
    // above). The kernel only reads `salt_size` bytes at `salt_ptr` and
    // `sig_size` bytes at `sig_ptr`; both point into slices that outlive the
    // call, and it copies them before returning.
    unsafe {
        let ctl = ioctl::Setter::<FS_IOC_ENABLE_VERITY, FsverityEnableArg>::new(arg);
        ioctl::ioctl(fd, ctl)
    }
}

/// `ioctl(fd, FS_IOC_MEASURE_VERITY, ...)`: returns the kernel's algorithm
/// number and the digest bytes it wrote into `out`.
pub fn measure_verity(fd: impl AsFd, out: &mut [u8; MAX_DIGEST_SIZE]) -> io::Result<(u16, usize)> {
    let mut buf = FsverityDigestBuf {
        header: FsverityDigestHeader {
            digest_algorithm: 0,
            digest_size: MAX_DIGEST_SIZE as u16,
        },
        digest: [0; MAX_DIGEST_SIZE],
    };
    // SAFETY: FS_IOC_MEASURE_VERITY reads `digest_size` (our capacity, 64)
    // from the header and writes the header plus at most that many digest
    // bytes (else it fails with EOVERFLOW); `buf` holds exactly that.
    unsafe {
        let ctl = ioctl::Updater::<FS_IOC_MEASURE_VERITY, FsverityDigestBuf>::new(&mut buf);
        ioctl::ioctl(fd, ctl)?;
    }
    let size = usize::from(buf.header.digest_size).min(MAX_DIGEST_SIZE);
    out.copy_from_slice(&buf.digest);
    Ok((buf.header.digest_algorithm, size))
}

/// One `FS_IOC_READ_VERITY_METADATA` call: like `pread`, returns the number
/// of bytes of item `metadata_type` at `offset` copied into `buf` (0 at the
/// end of the item; possibly fewer than asked for).
pub fn read_verity_metadata(
    fd: impl AsFd,
    metadata_type: u64,
    offset: u64,
    buf: &mut [u8],
) -> io::Result<usize> {
    let ctl = ReadMetadata {
        arg: FsverityReadMetadataArg {
            metadata_type,
            offset,
            length: buf.len() as u64,
            buf_ptr: buf.as_mut_ptr() as u64,
            reserved: 0,
        },
        _buf: PhantomData,
    };
    // SAFETY: the kernel writes at most `length` bytes to `buf_ptr`, which is
    // `buf`, exclusively borrowed for the duration of the call.
    unsafe { ioctl::ioctl(fd, ctl) }
}

/// The read-metadata ioctl returns a byte count, which none of rustix's
/// ready-made patterns passes through.
struct ReadMetadata<'a> {
    arg: FsverityReadMetadataArg,
    _buf: PhantomData<&'a mut [u8]>,
}

// SAFETY: the opcode matches the argument type (`struct
// fsverity_read_metadata_arg`, size checked above); the ioctl writes to the
// buffer the argument points at, hence IS_MUTATING.
unsafe impl Ioctl for ReadMetadata<'_> {
    type Output = usize;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        FS_IOC_READ_VERITY_METADATA
    }

    fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        (&mut self.arg as *mut FsverityReadMetadataArg).cast()
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut std::ffi::c_void,
    ) -> io::Result<Self::Output> {
        // Errors were already turned into Err by rustix; a negative count
        // would be a kernel bug.
        usize::try_from(out).map_err(|_| io::Errno::INVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a file without fs-verity (or a filesystem or kernel without it),
    /// the ioctls fail cleanly instead of touching our buffers wrongly.
    #[test]
    fn ioctls_fail_cleanly_on_ordinary_file() {
        let f = tempfile::tempfile().unwrap();
        let mut out = [0u8; MAX_DIGEST_SIZE];
        assert!(measure_verity(&f, &mut out).is_err());
        let mut buf = [0u8; 16];
        assert!(read_verity_metadata(&f, METADATA_TYPE_DESCRIPTOR, 0, &mut buf).is_err());
    }
}
