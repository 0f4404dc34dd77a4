//! Getting the uncompressed kernel (vmlinux) out of an x86 bzImage, so QEMU
//! can boot it through the PVH entry point and the guest does not spend
//! seconds of emulated CPU decompressing itself.
//!
//! Layout (Documentation/arch/x86/boot.rst, boot protocol >= 2.08): the
//! setup code takes `setup_sects` (offset 0x1f1, 0 meaning 4) + 1 sectors of
//! 512 bytes; the protected-mode part follows, and the compressed kernel
//! sits at `payload_offset` (0x248, le32) from its start, `payload_length`
//! (0x24c, le32) bytes long. The kernel's build appends the uncompressed
//! size as le32 to the compressed data (scripts/Makefile.lib `size_append`).

use std::path::Path;

use crate::error::{Error, Result};

const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Returns the ELF kernel inside a zstd-compressed bzImage.
pub fn extract_vmlinux(bzimage: &[u8], name: &Path) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::Invalid(format!("{}: {why}", name.display()));
    let u32_at = |off: usize| {
        bzimage
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if bzimage.get(0x202..0x206) != Some(b"HdrS") {
        return Err(bad("not a bzImage (no HdrS boot header)"));
    }
    let setup_sects = match bzimage.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err(bad("truncated boot header")),
    };
    let (Some(offset), Some(length)) = (u32_at(0x248), u32_at(0x24c)) else {
        return Err(bad("truncated boot header"));
    };
    let start = (setup_sects + 1) * 512 + offset;
    let payload = bzimage
        .get(start..start + length)
        .ok_or_else(|| bad("payload outside the file"))?;
    if !payload.starts_with(ZSTD_MAGIC) || payload.len() < 8 {
        return Err(bad(
            "the payload is not zstd-compressed (CONFIG_KERNEL_ZSTD); boot the bzImage instead",
        ));
    }
    let (compressed, size) = payload.split_at(payload.len() - 4);
    let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
    let vmlinux = zstd::stream::decode_all(compressed)
        .map_err(|e| bad(&format!("zstd decompression of the payload failed: {e}")))?;
    if vmlinux.len() != size || !vmlinux.starts_with(b"\x7fELF") {
        return Err(bad(&format!(
            "decompressed payload is {} bytes, expected an ELF of {size} bytes",
            vmlinux.len()
        )));
    }
    Ok(vmlinux)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_bzimage() {
        let err = extract_vmlinux(b"not a kernel", Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("not a bzImage"), "{err}");
    }
}
