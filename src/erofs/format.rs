//! On-disk constants and structures of EROFS (`fs/erofs/erofs_fs.h` in the
//! kernel) and of the composefs header (`libcomposefs/lcfs-erofs.h`), as
//! far as composefs images use them. Everything is little-endian.

/// The 32-byte composefs header at offset 0.
pub const COMPOSEFS_MAGIC: u32 = 0xd078_629a;
/// `LCFS_EROFS_VERSION`: version of the header itself.
pub const COMPOSEFS_HEADER_VERSION: u32 = 1;
/// `LCFS_EROFS_FLAGS_HAS_ACL`: some inode has a POSIX ACL xattr.
pub const COMPOSEFS_FLAG_HAS_ACL: u32 = 1;
/// Bytes of the composefs header.
pub const COMPOSEFS_HEADER_SIZE: usize = 32;
/// The highest composefs format version we (and mkcomposefs 1.0.x) write.
pub const COMPOSEFS_VERSION_MAX: u32 = 1;

/// Where the EROFS superblock starts (`EROFS_SUPER_OFFSET`).
pub const EROFS_SUPER_OFFSET: u64 = 1024;
/// `EROFS_SUPER_MAGIC_V1`.
pub const EROFS_SUPER_MAGIC_V1: u32 = 0xe0f5_e1e2;
/// Bytes of the superblock.
pub const EROFS_SUPER_SIZE: u64 = 128;
/// log2 of the block size composefs images use (4 KiB).
pub const BLOCK_BITS: u32 = 12;
/// The block size, 4096.
pub const BLOCK_SIZE: u64 = 1 << BLOCK_BITS;
/// Inodes are addressed in 32-byte slots (`EROFS_ISLOTBITS`).
pub const SLOT_SIZE: u64 = 32;

/// `EROFS_FEATURE_COMPAT_MTIME` (`fs/erofs/erofs_fs.h`).
pub const FEATURE_COMPAT_MTIME: u32 = 0x2;
/// `EROFS_FEATURE_COMPAT_XATTR_FILTER`: inodes carry an xattr name bloom filter.
pub const FEATURE_COMPAT_XATTR_FILTER: u32 = 0x4;

/// Bytes of `struct erofs_inode_compact`.
pub const INODE_COMPACT_SIZE: usize = 32;
/// Bytes of `struct erofs_inode_extended`.
pub const INODE_EXTENDED_SIZE: usize = 64;

/// `i_format` data layouts.
pub const LAYOUT_FLAT_PLAIN: u16 = 0;
/// `EROFS_INODE_FLAT_INLINE`: data in blocks, its tail after the inode.
pub const LAYOUT_FLAT_INLINE: u16 = 2;
/// `EROFS_INODE_CHUNK_BASED`: a chunk index (external files).
pub const LAYOUT_CHUNK_BASED: u16 = 4;

/// `EROFS_CHUNK_FORMAT_BLKBITS_MASK`.
pub const CHUNK_BLKBITS_MASK: u32 = 0x1f;
/// `EROFS_NULL_ADDR`: a chunk with no data (a hole).
pub const NULL_ADDR: u32 = 0xffff_ffff;
/// `LCFS_MAX_NONINLINE_CHUNKS`: the chunk index of an external file fits
/// one block, so files are at most 1024 chunks of 2^43 bytes.
pub const MAX_CHUNKS: u64 = 1024;

/// Bytes of `struct erofs_xattr_ibody_header`.
pub const XATTR_IBODY_HEADER_SIZE: usize = 12;
/// Bytes of `struct erofs_xattr_entry` before the name.
pub const XATTR_ENTRY_SIZE: usize = 4;
/// Name indexes (`EROFS_XATTR_INDEX_*`).
pub const XATTR_INDEX_USER: u8 = 1;
/// `system.posix_acl_access`.
pub const XATTR_INDEX_POSIX_ACL_ACCESS: u8 = 2;
/// `system.posix_acl_default`.
pub const XATTR_INDEX_POSIX_ACL_DEFAULT: u8 = 3;
/// `trusted.`
pub const XATTR_INDEX_TRUSTED: u8 = 4;
/// `security.`
pub const XATTR_INDEX_SECURITY: u8 = 6;
/// `EROFS_XATTR_FILTER_SEED` and `_BITS`: the per-inode bloom filter of
/// xattr names, `xxh32(name suffix, seed + index) % 32`.
pub const XATTR_FILTER_SEED: u32 = 0x25bb_e08f;
/// Bits in the filter.
pub const XATTR_FILTER_BITS: u32 = 32;
/// `EROFS_XATTR_LONG_PREFIX`: mkcomposefs shares at most this many xattrs
/// per inode.
pub const MAX_SHARED_PER_INODE: usize = 0x80;

/// Bytes of `struct erofs_dirent`.
pub const DIRENT_SIZE: usize = 12;

/// Directory entry file types (`EROFS_FT_*`).
pub mod ft {
    /// Regular file.
    pub const REG_FILE: u8 = 1;
    /// Directory.
    pub const DIR: u8 = 2;
    /// Character device.
    pub const CHRDEV: u8 = 3;
    /// Block device.
    pub const BLKDEV: u8 = 4;
    /// FIFO.
    pub const FIFO: u8 = 5;
    /// Socket.
    pub const SOCK: u8 = 6;
    /// Symbolic link.
    pub const SYMLINK: u8 = 7;
}

/// The xattr name prefixes by index, as readers expand them
/// (`erofs_xattr_prefixes` in `lcfs-erofs-internal.h`; index 5 is lustre).
pub const XATTR_PREFIXES: [&[u8]; 7] = [
    b"",
    b"user.",
    b"system.posix_acl_access",
    b"system.posix_acl_default",
    b"trusted.",
    b"lustre.",
    b"security.",
];

/// The prefixes writers compress names with, in the order mkcomposefs
/// tries them (`xattr_erofs_entry_index`): the first that prefixes the name.
const WRITE_PREFIXES: [(&[u8], u8); 5] = [
    (b"user.", XATTR_INDEX_USER),
    (b"system.posix_acl_access", XATTR_INDEX_POSIX_ACL_ACCESS),
    (b"system.posix_acl_default", XATTR_INDEX_POSIX_ACL_DEFAULT),
    (b"trusted.", XATTR_INDEX_TRUSTED),
    (b"security.", XATTR_INDEX_SECURITY),
];

/// The name index and the stored suffix of an xattr name.
pub fn xattr_split(name: &[u8]) -> (u8, &[u8]) {
    for (prefix, index) in WRITE_PREFIXES {
        if let Some(rest) = name.strip_prefix(prefix) {
            return (index, rest);
        }
    }
    (0, name)
}

/// `x` rounded up to a multiple of `to` (non-zero).
pub fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

/// Size of one xattr entry (header, suffix, value) padded to 4 bytes.
pub fn xattr_entry_size(name: &[u8], value_len: usize) -> u64 {
    let (_, suffix) = xattr_split(name);
    round_up((XATTR_ENTRY_SIZE + suffix.len() + value_len) as u64, 4)
}

/// `i_xattr_icount` for an xattr area of `size` bytes.
pub fn xattr_icount(size: u64) -> u64 {
    if size == 0 {
        0
    } else {
        (size - XATTR_IBODY_HEADER_SIZE as u64) / 4 + 1
    }
}

/// Size of the xattr area for an `i_xattr_icount`.
pub fn xattr_area_size(icount: u16) -> usize {
    if icount == 0 {
        0
    } else {
        XATTR_IBODY_HEADER_SIZE + (icount as usize - 1) * 4
    }
}

/// Chunk size bits and chunk count of an external file of `size` bytes
/// (`erofs_compute_chunking`): one chunk covering the whole file when
/// possible, at least one block, at most 2^(12+31).
pub fn chunking(size: u64) -> (u32, u64) {
    let mut bits = if size <= 1 {
        0
    } else {
        64 - (size - 1).leading_zeros()
    };
    bits = bits.max(BLOCK_BITS);
    if bits - BLOCK_BITS > CHUNK_BLKBITS_MASK {
        bits = CHUNK_BLKBITS_MASK + BLOCK_BITS;
    }
    (bits, size.div_ceil(1u64 << bits))
}

/// Little-endian writes at `off` (the buffer is sized by the writer).
pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
/// See [`put_u16`].
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
/// See [`put_u16`].
pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Little-endian reads that never panic: out-of-range reads are `None`.
pub fn get_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}
/// See [`get_u16`].
pub fn get_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}
/// See [`get_u16`].
pub fn get_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_matches_mkcomposefs() {
        // erofs_compute_chunk_bitsize: ilog2(size - 1) + 1, clamped to 12..=43.
        assert_eq!(chunking(1), (12, 1));
        assert_eq!(chunking(4096), (12, 1));
        assert_eq!(chunking(4097), (13, 1));
        assert_eq!(chunking(1 << 20), (20, 1));
        assert_eq!(chunking((1 << 20) + 1), (21, 1));
        assert_eq!(chunking(1 << 43), (43, 1));
        assert_eq!(chunking((1 << 43) + 1), (43, 2));
        assert_eq!(chunking(1 << 53), (43, 1024));
        assert_eq!(chunking((1 << 53) + 1), (43, 1025));
    }

    #[test]
    fn prefixes() {
        assert_eq!(xattr_split(b"user.foo"), (1, &b"foo"[..]));
        assert_eq!(xattr_split(b"system.posix_acl_access"), (2, &b""[..]));
        assert_eq!(xattr_split(b"trusted.overlay.x"), (4, &b"overlay.x"[..]));
        assert_eq!(xattr_split(b"security.selinux"), (6, &b"selinux"[..]));
        assert_eq!(xattr_split(b"system.foo"), (0, &b"system.foo"[..]));
        assert_eq!(xattr_entry_size(b"user.a", 1), 8);
        assert_eq!(xattr_icount(0), 0);
        assert_eq!(xattr_icount(12), 1);
        assert_eq!(xattr_area_size(xattr_icount(20) as u16), 20);
    }
}
