//! One large file's digest on all cores.
//!
//! Almost all the work of an fs-verity digest is level 0 of the Merkle tree:
//! one hash per data block, each independent of the others
//! (`Documentation/filesystems/fsverity.rst`, "Merkle tree"). The file is
//! cut into [`SEGMENT`]-byte segments (a multiple of every block size, so no
//! data block straddles two); rayon tasks read their segment with `pread`
//! and hash its blocks, and the level-0 digests are then appended to the
//! tree in file order, which builds the (128 times smaller, for sha256 and
//! 4 KiB blocks) upper levels exactly as the streaming path does. The
//! result is therefore the streaming digest, bit for bit (unit tests below
//! compare both).
//!
//! Segments are handed out in waves of a few per thread, so at most one
//! wave's level-0 digests (8 KiB per MiB of data) are held at a time.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rayon::prelude::*;

use super::{BlockHash, Inner, MerkleHasher, Tree};

/// Bytes of file hashed by one task: a multiple of every fs-verity block
/// size (at most 64 KiB), large enough that scheduling vanishes.
pub const SEGMENT: u64 = 4 << 20;

/// Bytes read at once within a segment: small enough to stay in L2 between
/// the read and the hash.
const PIECE: usize = 256 << 10;

/// Segments per thread in one wave.
const WAVE_PER_THREAD: u64 = 4;

/// Whether [`feed_file`] is worth it: at least two segments and more than
/// one thread in the current pool (`sealroot digest -j1` stays serial).
pub fn worth_it(size: u64) -> bool {
    size >= 2 * SEGMENT && rayon::current_num_threads() > 1
}

/// Feeds the first `size` bytes of `file` (read at absolute offsets, not
/// from the file position) to `h`, hashing segments on the rayon pool.
pub fn feed_file(h: &mut MerkleHasher, file: &File, size: u64) -> io::Result<()> {
    match &mut h.inner {
        Inner::Sha256Ni(t) => feed_tree(t, file, size),
        Inner::Sha256(t) => feed_tree(t, file, size),
        Inner::Sha512(t) => feed_tree(t, file, size),
    }
}

fn feed_tree<H: BlockHash>(tree: &mut Tree<H>, file: &File, size: u64) -> io::Result<()> {
    debug_assert!(tree.pending.is_empty() && tree.data_size == 0);
    let segments = size.div_ceil(SEGMENT);
    let wave = (rayon::current_num_threads() as u64 * WAVE_PER_THREAD).max(1);
    let block_size = tree.block_size;
    let params = tree.params.clone();
    let mut first = 0;
    while first < segments {
        let last = (first + wave).min(segments);
        let digests: Vec<Vec<u8>> = (first..last)
            .into_par_iter()
            .map_init(
                || (H::new(&params), vec![0u8; PIECE]),
                |(hasher, buf), i| {
                    let start = i * SEGMENT;
                    let end = (start + SEGMENT).min(size);
                    segment_digests(hasher, block_size, file, start, end, buf)
                },
            )
            .collect::<io::Result<_>>()?;
        for (i, d) in (first..last).zip(&digests) {
            let bytes = ((i + 1) * SEGMENT).min(size) - i * SEGMENT;
            tree.push_leaf_digests(d, bytes);
        }
        first = last;
    }
    Ok(())
}

/// Level-0 digests of the data blocks in `start..end` of `file`; the last
/// block is zero-padded (only the file's final segment has a short one).
fn segment_digests<H: BlockHash>(
    hasher: &H,
    block_size: usize,
    file: &File,
    start: u64,
    end: u64,
    buf: &mut [u8],
) -> io::Result<Vec<u8>> {
    let blocks = (end - start).div_ceil(block_size as u64) as usize;
    let mut out = Vec::with_capacity(blocks * 64);
    let mut pos = start;
    while pos < end {
        let n = (end - pos).min(buf.len() as u64) as usize;
        let piece = &mut buf[..n];
        file.read_exact_at(piece, pos).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(e.kind(), "the file shrank while it was hashed")
            } else {
                e
            }
        })?;
        let mut pairs = piece.chunks_exact(2 * block_size);
        for pair in &mut pairs {
            let (a, b) = pair.split_at(block_size);
            hasher.hash2(a, b, &mut out);
        }
        for block in pairs.remainder().chunks(block_size) {
            if block.len() == block_size {
                hasher.hash(block, &mut out);
            } else {
                let mut padded = block.to_vec();
                padded.resize(block_size, 0);
                hasher.hash(&padded, &mut out);
            }
        }
        pos += n as u64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::verity::digest::{MerkleHasher, digest_bytes};
    use crate::verity::{BlockSize, Salt, VerityParams};

    fn parallel(params: &VerityParams, data: &[u8], keep_tree: bool) -> super::super::MerkleOutput {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        let mut h = MerkleHasher::build(params, keep_tree);
        rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| feed_file(&mut h, &f, data.len() as u64))
            .unwrap();
        h.finish_full()
    }

    /// The segment-parallel digest (and tree) equals the streaming one, for
    /// sizes around segment and block boundaries and every algorithm.
    #[test]
    fn parallel_equals_streaming() {
        let seg = SEGMENT as usize;
        let data: Vec<u8> = (0..3 * seg + 5000)
            .map(|i| (i * 31 + i / 4093) as u8)
            .collect();
        let salted = VerityParams {
            salt: Salt::from_hex("00112233").unwrap(),
            block_size: BlockSize::new(1024).unwrap(),
            ..VerityParams::sha512()
        };
        for params in [VerityParams::sha256(), VerityParams::sha512(), salted] {
            for len in [
                2 * seg,
                2 * seg + 1,
                2 * seg + 4096,
                3 * seg - 1,
                data.len(),
            ] {
                let d = &data[..len];
                let mut h = MerkleHasher::with_tree(&params);
                h.update(d);
                let streamed = h.finish_full();
                assert_eq!(
                    parallel(&params, d, true),
                    streamed,
                    "{len} bytes, {params:?}"
                );
                assert_eq!(parallel(&params, d, false).digest, digest_bytes(&params, d));
            }
        }
    }

    #[test]
    fn a_file_shorter_than_announced_is_an_error() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(SEGMENT).unwrap();
        let mut h = MerkleHasher::new(&VerityParams::sha256());
        let e = feed_file(&mut h, &f, 3 * SEGMENT).unwrap_err();
        assert!(e.to_string().contains("shrank"), "{e}");
    }
}
