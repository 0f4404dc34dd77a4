//! Helpers shared by the fuzz targets.
//!
//! Tar headers carry a checksum (POSIX ustar: the sum of the header's 512
//! bytes with the checksum field taken as spaces). A random mutation of a
//! header almost always breaks it, and the layer reader stops at the first
//! bad checksum, so a plain byte-level fuzzer spends nearly all its time on
//! that one check. [`fix_tar_checksums`] rewrites every header's checksum
//! after libFuzzer's mutation (the targets' custom mutators), so mutations
//! of type flags, sizes, names, PAX and GNU records reach the code behind.

/// Offset and length of the ustar `chksum` field.
const CHKSUM: std::ops::Range<usize> = 148..156;
/// Offset of `size` and `typeflag`.
const SIZE: std::ops::Range<usize> = 124..136;
const TYPEFLAG: usize = 156;

/// Walks `tar` header by header (each member's data is skipped by its
/// `size` field) and writes a correct checksum into each header, as GNU tar
/// does: six octal digits, NUL, space. All-zero blocks (the end marker) are
/// skipped; the walk stops where a size cannot be parsed or runs past the
/// end.
pub fn fix_tar_checksums(tar: &mut [u8]) {
    let mut at = 0usize;
    while let Some(block) = tar.get_mut(at..at + 512) {
        at += 512;
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        let sum: u32 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if CHKSUM.contains(&i) {
                    u32::from(b' ')
                } else {
                    u32::from(b)
                }
            })
            .sum();
        let field = format!("{sum:06o}\0 ");
        block[CHKSUM].copy_from_slice(&field.as_bytes()[..8]);
        // Link, symlink, character/block device, directory and fifo members
        // carry no data whatever their size says (Go's archive/tar, and the
        // layer reader, do the same).
        if matches!(block[TYPEFLAG], b'1'..=b'6') {
            continue;
        }
        let Some(size) = parse_size(&block[SIZE]) else {
            return;
        };
        let Some(next) = size
            .checked_add(511)
            .map(|s| s / 512 * 512)
            .and_then(|s| at.checked_add(s))
        else {
            return;
        };
        at = next;
    }
}

/// A tar numeric field: octal digits (leading spaces, trailing NUL or
/// space), or base-256 when the first byte's high bit is set.
fn parse_size(field: &[u8]) -> Option<usize> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return usize::try_from(n).ok();
    }
    let digits = field.iter().skip_while(|&&b| b == b' ');
    let mut n: usize = 0;
    for &b in digits {
        match b {
            b'0'..=b'7' => n = n.checked_mul(8)?.checked_add(usize::from(b - b'0'))?,
            0 | b' ' => break,
            _ => return None,
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_checksum_gnu_tar_wrote() {
        // An archive as GNU tar 1.34 wrote it (fuzz/seeds/make-tar-seeds).
        let seed = include_bytes!("../seeds/tar_entries/whiteouts.tar");
        let mut copy = seed.to_vec();
        // Break every header's checksum (headers: "ustar" magic at 257),
        // then repair.
        let mut broken = 0;
        for block in copy.chunks_exact_mut(512) {
            if &block[257..262] == b"ustar" {
                block[148] = b'7';
                broken += 1;
            }
        }
        assert!(broken > 5);
        assert_ne!(&copy[..], &seed[..]);
        fix_tar_checksums(&mut copy);
        assert_eq!(&copy[..], &seed[..]);
    }
}
