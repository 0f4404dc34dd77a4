//! Userspace fs-verity digests.
//!
//! The algorithm is the one in `Documentation/filesystems/fsverity.rst`
//! ("File digest computation") and `fs/verity/merkle_tree.c`:
//!
//! 1. Split the data into `block_size` blocks, zero-padding the last one, and
//!    hash each as `H(salt' || block)`, where `salt'` is the salt zero-padded
//!    to the hash function's block size (so it can be pre-absorbed once).
//! 2. Concatenate those digests into blocks of the next level, zero-padding
//!    the last, and hash them the same way; repeat until one block remains.
//!    Its hash is the root hash. A file of at most one block has the hash of
//!    that block as its root hash; an empty file has an all-zero root hash.
//! 3. The file digest is the unsalted hash of the 256-byte
//!    `struct fsverity_descriptor` holding the root hash.
//!
//! [`MerkleHasher`] computes this in one streaming pass with memory
//! proportional to the tree height, never the file size.

use std::io::{self, Read};

use sha2::Digest;
use sha2::{Sha256, Sha512};

use super::{FsVerityDigest, HashAlgorithm, VerityParams};

/// Size of `struct fsverity_descriptor`.
pub const DESCRIPTOR_SIZE: usize = 256;

/// Builds the 256-byte `struct fsverity_descriptor` (`include/uapi/linux/fsverity.h`
/// and `fs/verity/fsverity_private.h`) with `sig_size` 0, as it is hashed.
pub fn descriptor_bytes(
    params: &VerityParams,
    data_size: u64,
    root_hash: &[u8],
) -> [u8; DESCRIPTOR_SIZE] {
    let mut d = [0u8; DESCRIPTOR_SIZE];
    d[0] = 1; // version
    d[1] = params.algorithm.kernel_id();
    d[2] = params.block_size.log2();
    d[3] = params.salt.as_bytes().len() as u8;
    // d[4..8]: __le32 sig_size, always 0 in the hashed form.
    d[8..16].copy_from_slice(&data_size.to_le_bytes());
    d[16..16 + root_hash.len()].copy_from_slice(root_hash);
    d[80..80 + params.salt.as_bytes().len()].copy_from_slice(params.salt.as_bytes());
    // d[112..256]: reserved, zero.
    d
}

/// Streaming fs-verity digest of a byte stream.
///
/// ```
/// use sealroot::verity::{VerityParams, digest::MerkleHasher};
/// let mut h = MerkleHasher::new(&VerityParams::sha256());
/// h.update(b"hello");
/// assert_eq!(
///     h.finish().to_string(),
///     "sha256:555b589c26ee43b7a2510e6c67ced9fb3190b6da6e9e683984551f5d77a763de"
/// );
/// ```
pub struct MerkleHasher {
    inner: Inner,
}

enum Inner {
    Sha256(Tree<Sha256>),
    Sha512(Tree<Sha512>),
}

impl MerkleHasher {
    pub fn new(params: &VerityParams) -> Self {
        let inner = match params.algorithm {
            HashAlgorithm::Sha256 => Inner::Sha256(Tree::new(params.clone())),
            HashAlgorithm::Sha512 => Inner::Sha512(Tree::new(params.clone())),
        };
        MerkleHasher { inner }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.inner {
            Inner::Sha256(t) => t.update(data),
            Inner::Sha512(t) => t.update(data),
        }
    }

    /// Total bytes fed so far.
    pub fn data_size(&self) -> u64 {
        match &self.inner {
            Inner::Sha256(t) => t.data_size,
            Inner::Sha512(t) => t.data_size,
        }
    }

    pub fn finish(self) -> FsVerityDigest {
        match self.inner {
            Inner::Sha256(t) => t.finish(),
            Inner::Sha512(t) => t.finish(),
        }
    }
}

impl io::Write for MerkleHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Digest of an in-memory buffer.
pub fn digest_bytes(params: &VerityParams, data: &[u8]) -> FsVerityDigest {
    let mut h = MerkleHasher::new(params);
    h.update(data);
    h.finish()
}

/// Read size for streaming digests: large enough that syscalls vanish in
/// the profile, small enough to stay in L2.
const READ_CHUNK: usize = 256 * 1024;

/// Digest of everything `reader` yields until EOF.
pub fn digest_reader(params: &VerityParams, mut reader: impl Read) -> io::Result<FsVerityDigest> {
    let mut h = MerkleHasher::new(params);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// Digest of a file's content.
pub fn digest_file(params: &VerityParams, path: &std::path::Path) -> io::Result<FsVerityDigest> {
    digest_reader(params, std::fs::File::open(path)?)
}

/// One Merkle tree under construction.
struct Tree<D: Digest + Clone> {
    params: VerityParams,
    block_size: usize,
    /// Hash state with the padded salt already absorbed.
    salted: D,
    /// Partial data block not yet hashed.
    pending: Vec<u8>,
    /// `levels[i]`: digests of level `i` (level 0 = data block digests)
    /// not yet packed into a full block, and how many were produced in all.
    levels: Vec<Level>,
    data_size: u64,
}

#[derive(Default)]
struct Level {
    buf: Vec<u8>,
    count: u64,
}

impl<D: Digest + Clone> Tree<D> {
    fn new(params: VerityParams) -> Self {
        let block_size = params.block_size.get() as usize;
        let mut salted = D::new();
        if !params.salt.is_empty() {
            let mut padded = params.salt.as_bytes().to_vec();
            padded.resize(
                params
                    .salt
                    .as_bytes()
                    .len()
                    .next_multiple_of(params.algorithm.hash_block_size()),
                0,
            );
            salted.update(&padded);
        }
        Tree {
            params,
            block_size,
            salted,
            pending: Vec::with_capacity(block_size),
            levels: vec![Level::default()],
            data_size: 0,
        }
    }

    fn hash_block(&self, block: &[u8], out: &mut Vec<u8>) {
        debug_assert_eq!(block.len(), self.block_size);
        let mut h = self.salted.clone();
        Digest::update(&mut h, block);
        out.extend_from_slice(&h.finalize());
    }

    fn update(&mut self, mut data: &[u8]) {
        self.data_size += data.len() as u64;
        if !self.pending.is_empty() {
            let take = (self.block_size - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < self.block_size {
                return;
            }
            let block = std::mem::take(&mut self.pending);
            self.push_data_block(&block);
            self.pending = block;
            self.pending.clear();
        }
        let mut blocks = data.chunks_exact(self.block_size);
        for block in &mut blocks {
            self.push_data_block(block);
        }
        self.pending.extend_from_slice(blocks.remainder());
    }

    fn push_data_block(&mut self, block: &[u8]) {
        let mut buf = std::mem::take(&mut self.levels[0].buf);
        self.hash_block(block, &mut buf);
        self.levels[0].buf = buf;
        self.levels[0].count += 1;
        self.carry(0);
    }

    /// Packs level `i` into the next level if its buffer holds a full block.
    fn carry(&mut self, mut i: usize) {
        while self.levels[i].buf.len() == self.block_size {
            if self.levels.len() == i + 1 {
                self.levels.push(Level::default());
            }
            let full = std::mem::take(&mut self.levels[i].buf);
            let mut next = std::mem::take(&mut self.levels[i + 1].buf);
            self.hash_block(&full, &mut next);
            self.levels[i + 1].buf = next;
            self.levels[i + 1].count += 1;
            self.levels[i].buf = full;
            self.levels[i].buf.clear();
            i += 1;
        }
    }

    fn finish(mut self) -> FsVerityDigest {
        if !self.pending.is_empty() {
            let mut block = std::mem::take(&mut self.pending);
            block.resize(self.block_size, 0);
            self.push_data_block(&block);
        }
        let digest_size = self.params.algorithm.digest_size();
        let mut root = vec![0u8; digest_size];
        if self.data_size > 0 {
            // Walk up: the first level that received exactly one digest holds
            // the root hash (the hash of the single block below it).
            let mut i = 0;
            loop {
                if self.levels[i].count == 1 && self.levels[i].buf.len() <= digest_size {
                    if self.levels[i].buf.len() == digest_size {
                        root.copy_from_slice(&self.levels[i].buf);
                    } else {
                        // Already carried up as a full block: cannot happen
                        // for a single digest (blocks hold >= 2 digests).
                        unreachable!("single digest carried as a full block");
                    }
                    break;
                }
                if !self.levels[i].buf.is_empty() {
                    let mut block = std::mem::take(&mut self.levels[i].buf);
                    block.resize(self.block_size, 0);
                    if self.levels.len() == i + 1 {
                        self.levels.push(Level::default());
                    }
                    let mut next = std::mem::take(&mut self.levels[i + 1].buf);
                    self.hash_block(&block, &mut next);
                    self.levels[i + 1].buf = next;
                    self.levels[i + 1].count += 1;
                }
                i += 1;
            }
        }
        let descriptor = descriptor_bytes(&self.params, self.data_size, &root);
        let out = D::digest(descriptor);
        FsVerityDigest::new(self.params.algorithm, &out).expect("digest size matches algorithm")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verity::{BlockSize, Salt};

    fn hex_digest(params: &VerityParams, data: &[u8]) -> String {
        digest_bytes(params, data).to_hex()
    }

    /// Vectors printed by `fsverity digest` (fsverity-utils 1.5, Debian
    /// bookworm) for an empty file and for "hello" without a newline.
    #[test]
    fn known_vectors() {
        let p = VerityParams::sha256();
        assert_eq!(
            hex_digest(&p, b""),
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
        );
        assert_eq!(
            hex_digest(&p, b"hello"),
            "555b589c26ee43b7a2510e6c67ced9fb3190b6da6e9e683984551f5d77a763de"
        );
        // fsverity digest --hash-alg=sha512 --block-size=1024 --salt=010203
        let p = VerityParams {
            block_size: BlockSize::new(1024).unwrap(),
            salt: Salt::from_hex("010203").unwrap(),
            ..VerityParams::sha512()
        };
        assert_eq!(
            hex_digest(&p, b""),
            "e51183abbac28a7163dad0574c7aad1c8099ceece3c4f7d4352b442e1575b5bafce64e2129503d78ab1d3c79abf927d652ce59df3d106c745857b26c4f9b2f5b"
        );
        assert_eq!(
            hex_digest(&p, b"hello"),
            "80ad6f1c903de72a867c88f07805cee73654329790a433773a70b44389417cc5a77546b1d1f8e861fada246048b274b6c5cde77311cbbf9a6a0c27015eea2e9f"
        );
    }

    /// Splitting the input arbitrarily must not change the digest.
    #[test]
    fn streaming_is_split_invariant() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for params in [
            VerityParams::sha256(),
            VerityParams {
                block_size: BlockSize::new(1024).unwrap(),
                ..VerityParams::sha512()
            },
            VerityParams {
                salt: Salt::new(vec![1, 2, 3]).unwrap(),
                ..VerityParams::sha256()
            },
        ] {
            let whole = digest_bytes(&params, &data);
            for step in [1usize, 7, 1000, 4096, 4097, 65536] {
                let mut h = MerkleHasher::new(&params);
                for c in data.chunks(step) {
                    h.update(c);
                }
                assert_eq!(h.finish(), whole, "step {step}");
            }
        }
    }
}
