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

use crate::sys::sha256x2;

#[cfg(feature = "host")]
pub mod parallel;

use super::descriptor::{self, Descriptor};
use super::{FsVerityDigest, HashAlgorithm, RootHash, VerityParams};

/// Size of `struct fsverity_descriptor`.
pub const DESCRIPTOR_SIZE: usize = descriptor::DESCRIPTOR_SIZE;

/// Builds the 256-byte `struct fsverity_descriptor` (`include/uapi/linux/fsverity.h`
/// and `fs/verity/fsverity_private.h`) with `sig_size` 0, as it is hashed.
/// See [`Descriptor`] for the parsed form.
pub fn descriptor_bytes(
    params: &VerityParams,
    data_size: u64,
    root_hash: &[u8],
) -> [u8; DESCRIPTOR_SIZE] {
    descriptor::encode(params, data_size, root_hash)
}

/// Everything a digest computation can produce besides the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleOutput {
    /// The file's fs-verity digest (hash of [`MerkleOutput::descriptor`]).
    pub digest: FsVerityDigest,
    /// The descriptor that was hashed.
    pub descriptor: Descriptor,
    /// The Merkle tree in the kernel's layout (root level first, each level
    /// in order, every block full size), as `FS_IOC_READ_VERITY_METADATA`
    /// returns it and `fsverity digest --out-merkle-tree` writes it. Empty
    /// for files of at most one block. `None` unless asked for with
    /// [`MerkleHasher::with_tree`].
    pub tree: Option<Vec<u8>>,
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

impl std::fmt::Debug for MerkleHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hash = match self.inner {
            Inner::Sha256Ni(_) => "sha256 (SHA-NI)",
            Inner::Sha256(_) => "sha256",
            Inner::Sha512(_) => "sha512",
        };
        f.debug_struct("MerkleHasher")
            .field("hash", &hash)
            .finish_non_exhaustive()
    }
}

enum Inner {
    Sha256Ni(Tree<Sha256Ni>),
    Sha256(Tree<Salted<Sha256>>),
    Sha512(Tree<Salted<Sha512>>),
}

impl MerkleHasher {
    /// A hasher for `params` that keeps only what the digest needs.
    pub fn new(params: &VerityParams) -> Self {
        Self::build(params, false)
    }

    /// Like [`MerkleHasher::new`], but also keeps the Merkle tree (about
    /// 0.8% of the data size for sha256 and 4 KiB blocks) for
    /// [`MerkleHasher::finish_full`].
    pub fn with_tree(params: &VerityParams) -> Self {
        Self::build(params, true)
    }

    fn build(params: &VerityParams, keep_tree: bool) -> Self {
        let p = params.clone();
        let inner = match params.algorithm {
            // Unoptimised, the intrinsics are ~40x slower than `sha2` (whose
            // dependency is built with opt-level 3 even in dev): debug
            // builds take the portable path; unit tests check both agree.
            HashAlgorithm::Sha256 if sha256x2::available() && !cfg!(debug_assertions) => {
                Inner::Sha256Ni(Tree::new(p, keep_tree))
            }
            HashAlgorithm::Sha256 => Inner::Sha256(Tree::new(p, keep_tree)),
            HashAlgorithm::Sha512 => Inner::Sha512(Tree::new(p, keep_tree)),
        };
        MerkleHasher { inner }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.inner {
            Inner::Sha256Ni(t) => t.update(data),
            Inner::Sha256(t) => t.update(data),
            Inner::Sha512(t) => t.update(data),
        }
    }

    /// Total bytes fed so far.
    pub fn data_size(&self) -> u64 {
        match &self.inner {
            Inner::Sha256Ni(t) => t.data_size,
            Inner::Sha256(t) => t.data_size,
            Inner::Sha512(t) => t.data_size,
        }
    }

    /// The file's fs-verity digest.
    pub fn finish(self) -> FsVerityDigest {
        self.finish_full().digest
    }

    /// The digest together with the descriptor and, if kept, the tree.
    pub fn finish_full(self) -> MerkleOutput {
        match self.inner {
            Inner::Sha256Ni(t) => t.finish(),
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

/// Digest of data of at most one block, or `None` for more: such a file's
/// root hash is the hash of its one zero-padded block (all zeros when
/// empty), so no tree is built, and only the portable `sha2` hashes are
/// used. For the initramfs, which digests a few hundred bytes (sealroot's
/// binding record, `oci::binding`) and should not link [`MerkleHasher`]'s
/// tree and SIMD code for that (about 60 KB of `sealroot-prepare`).
pub fn digest_small(params: &VerityParams, data: &[u8]) -> Option<FsVerityDigest> {
    fn root<D: Digest + Clone>(params: &VerityParams, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if data.is_empty() {
            out.resize(<D as Digest>::output_size(), 0);
        } else {
            let mut block = data.to_vec();
            block.resize(params.block_size.get() as usize, 0);
            Salted::<D>::new(params).hash(&block, &mut out);
        }
        out
    }
    if data.len() as u64 > u64::from(params.block_size.get()) {
        return None;
    }
    let root = match params.algorithm {
        HashAlgorithm::Sha256 => root::<Sha256>(params, data),
        HashAlgorithm::Sha512 => root::<Sha512>(params, data),
    };
    let root = RootHash::new(params.algorithm, &root).ok()?;
    Some(Descriptor::new(params.clone(), data.len() as u64, root).digest())
}

/// Read size for streaming digests: large enough that syscalls vanish in
/// the profile, small enough to stay in L2 between the copy and the hash.
const READ_CHUNK: usize = 256 * 1024;

/// Digest of everything `reader` yields until EOF.
pub fn digest_reader(params: &VerityParams, reader: impl Read) -> io::Result<FsVerityDigest> {
    let mut h = MerkleHasher::new(params);
    feed(&mut h, reader, READ_CHUNK)?;
    Ok(h.finish())
}

/// Feeds `reader` to `h` until EOF through a buffer of `chunk` bytes.
fn feed(h: &mut MerkleHasher, mut reader: impl Read, chunk: usize) -> io::Result<()> {
    let mut buf = vec![0u8; chunk.max(1)];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
}

/// Digest of a file's content.
pub fn digest_file(params: &VerityParams, path: &std::path::Path) -> io::Result<FsVerityDigest> {
    Ok(digest_file_full(params, path, false)?.digest)
}

/// Digest, descriptor and (if `keep_tree`) Merkle tree of a file's content.
/// With the `host` feature, a file of 8 MiB or more (two segments) is
/// hashed on all threads of the current rayon pool.
pub fn digest_file_full(
    params: &VerityParams,
    path: &std::path::Path,
    keep_tree: bool,
) -> io::Result<MerkleOutput> {
    #[cfg(feature = "host")]
    return digest_path_full(params, path, keep_tree);
    #[cfg(not(feature = "host"))]
    digest_open_file_full(params, &std::fs::File::open(path)?, keep_tree)
}

/// Digest of an open file's content (read from its current position).
pub fn digest_open_file(params: &VerityParams, file: &std::fs::File) -> io::Result<FsVerityDigest> {
    Ok(digest_open_file_full(params, file, false)?.digest)
}

fn digest_open_file_full(
    params: &VerityParams,
    file: &std::fs::File,
    keep_tree: bool,
) -> io::Result<MerkleOutput> {
    stream_file(params, file, file.metadata()?.len(), keep_tree)
}

/// Streams `file` to EOF; `size` (what the caller's stat said) only sizes
/// the buffer and decides on readahead advice.
fn stream_file(
    params: &VerityParams,
    file: &std::fs::File,
    size: u64,
    keep_tree: bool,
) -> io::Result<MerkleOutput> {
    // Small files get a buffer their size (plus one byte to see EOF in one
    // read), so hashing many small files does not allocate 256 KiB each.
    let chunk = usize::try_from(size.saturating_add(1)).map_or(READ_CHUNK, |s| s.min(READ_CHUNK));
    if size > READ_CHUNK as u64 {
        // Tell readahead the whole file is wanted, in order. Advisory only:
        // a failure changes nothing but speed.
        let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Sequential);
    }
    let mut h = MerkleHasher::build(params, keep_tree);
    feed(&mut h, file, chunk)?;
    Ok(h.finish_full())
}

/// Digest and descriptor of an open file (from its start) that the
/// caller's `fstat` found to hold `size` bytes, without another `stat`: a
/// large file is hashed on all threads of the current rayon pool (exactly
/// `size` bytes; a shorter file is an error), others are streamed to EOF.
/// The descriptor's `data_size` is what was hashed: a caller that must
/// notice a file changing while read compares it with `size`.
#[cfg(feature = "host")]
pub fn digest_open_file_sized(
    params: &VerityParams,
    file: &std::fs::File,
    size: u64,
) -> io::Result<MerkleOutput> {
    sized_full(params, file, size, false)
}

/// Digest, descriptor and (if `keep_tree`) Merkle tree of the file at
/// `path`.
#[cfg(feature = "host")]
fn digest_path_full(
    params: &VerityParams,
    path: &std::path::Path,
    keep_tree: bool,
) -> io::Result<MerkleOutput> {
    let file = std::fs::File::open(path)?;
    sized_full(params, &file, file.metadata()?.len(), keep_tree)
}

/// A file of `size` bytes on all threads of the current rayon pool
/// ([`parallel`]) when that pays, else streamed.
#[cfg(feature = "host")]
fn sized_full(
    params: &VerityParams,
    file: &std::fs::File,
    size: u64,
    keep_tree: bool,
) -> io::Result<MerkleOutput> {
    if !parallel::worth_it(size) {
        return stream_file(params, file, size, keep_tree);
    }
    let mut h = MerkleHasher::build(params, keep_tree);
    parallel::feed_file(&mut h, file, size)?;
    Ok(h.finish_full())
}

/// Hashes Merkle tree blocks: `H(salt' || block)` for blocks of one size.
trait BlockHash {
    fn new(params: &VerityParams) -> Self;
    /// Appends the hash of `block` to `out`.
    fn hash(&self, block: &[u8], out: &mut Vec<u8>);
    /// Appends the hashes of `a` and then `b`; implementations that can
    /// hash two blocks at once do so.
    fn hash2(&self, a: &[u8], b: &[u8], out: &mut Vec<u8>) {
        self.hash(a, out);
        self.hash(b, out);
    }
}

/// Any `sha2` hash, with the zero-padded salt absorbed once and the state
/// cloned per block.
struct Salted<D>(D);

impl<D: Digest + Clone> BlockHash for Salted<D> {
    fn new(params: &VerityParams) -> Self {
        let mut salted = D::new();
        if !params.salt.is_empty() {
            let mut padded = params.salt.as_bytes().to_vec();
            padded.resize(
                padded
                    .len()
                    .next_multiple_of(params.algorithm.hash_block_size()),
                0,
            );
            salted.update(&padded);
        }
        Salted(salted)
    }

    fn hash(&self, block: &[u8], out: &mut Vec<u8>) {
        let mut h = self.0.clone();
        Digest::update(&mut h, block);
        out.extend_from_slice(&h.finalize());
    }
}

/// SHA-256 on the SHA extensions, two blocks at a time
/// ([`sha256x2`]). Because the padded salt and every block are whole
/// 64-byte SHA-256 blocks, each hash is: the salted state, the block's
/// compression, and one constant padding block.
struct Sha256Ni {
    /// State after the zero-padded salt (the initial state if none).
    salted: [u32; 8],
    /// `0x80`, zeros, and the big-endian bit length of salt' || block.
    padding: [u8; 64],
}

impl Sha256Ni {
    /// SHA-256 initial hash value, FIPS 180-4 section 5.3.3.
    const H0: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    fn output(state: &[u32; 8], out: &mut Vec<u8>) {
        for w in state {
            out.extend_from_slice(&w.to_be_bytes());
        }
    }
}

impl BlockHash for Sha256Ni {
    fn new(params: &VerityParams) -> Self {
        let salt = params.salt.as_bytes();
        let mut padded = salt.to_vec();
        padded.resize(salt.len().next_multiple_of(64), 0);
        let mut salted = Self::H0;
        if !padded.is_empty() {
            sha256x2::compress_x1(&mut salted, &padded);
        }
        let bits = (padded.len() as u64 + u64::from(params.block_size.get())) * 8;
        let mut padding = [0u8; 64];
        padding[0] = 0x80;
        padding[56..].copy_from_slice(&bits.to_be_bytes());
        Sha256Ni { salted, padding }
    }

    fn hash(&self, block: &[u8], out: &mut Vec<u8>) {
        let mut state = self.salted;
        sha256x2::compress_x1(&mut state, block);
        sha256x2::compress_x1(&mut state, &self.padding);
        Self::output(&state, out);
    }

    fn hash2(&self, a: &[u8], b: &[u8], out: &mut Vec<u8>) {
        let mut states = [self.salted; 2];
        sha256x2::compress_x2(&mut states, a, b);
        sha256x2::compress_x2(&mut states, &self.padding, &self.padding);
        Self::output(&states[0], out);
        Self::output(&states[1], out);
    }
}

/// One Merkle tree under construction.
struct Tree<H> {
    params: VerityParams,
    block_size: usize,
    /// Hashes blocks, salt included.
    hasher: H,
    /// Partial data block not yet hashed.
    pending: Vec<u8>,
    /// `levels[i]`: digests of level `i` (level 0 = data block digests)
    /// not yet packed into a full block, and how many were produced in all.
    levels: Vec<Level>,
    data_size: u64,
    /// When the tree is kept: `kept[i]` holds every full block of level-`i`
    /// digests, in order (the kernel's tree stores the top level first).
    kept: Option<Vec<Vec<u8>>>,
}

#[derive(Default)]
struct Level {
    buf: Vec<u8>,
    count: u64,
}

impl<H: BlockHash> Tree<H> {
    fn new(params: VerityParams, keep_tree: bool) -> Self {
        Tree {
            block_size: params.block_size.get() as usize,
            hasher: H::new(&params),
            params,
            pending: Vec::new(),
            levels: vec![Level::default()],
            data_size: 0,
            kept: keep_tree.then(Vec::new),
        }
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
        let mut pairs = data.chunks_exact(2 * self.block_size);
        for pair in &mut pairs {
            let (a, b) = pair.split_at(self.block_size);
            self.push_data_blocks(a, b);
        }
        let mut blocks = pairs.remainder().chunks_exact(self.block_size);
        for block in &mut blocks {
            self.push_data_block(block);
        }
        self.pending.extend_from_slice(blocks.remainder());
    }

    fn push_data_block(&mut self, block: &[u8]) {
        self.hasher.hash(block, &mut self.levels[0].buf);
        self.levels[0].count += 1;
        if self.levels[0].buf.len() == self.block_size {
            self.carry(0);
        }
    }

    /// Appends level-0 digests computed elsewhere ([`parallel`]) for
    /// `data_bytes` bytes of data. Only on a tree fed nothing else, or
    /// whose data so far ended on a block boundary.
    #[cfg(feature = "host")]
    fn push_leaf_digests(&mut self, mut digests: &[u8], data_bytes: u64) {
        debug_assert!(self.pending.is_empty());
        self.data_size += data_bytes;
        self.levels[0].count += (digests.len() / self.params.algorithm.digest_size()) as u64;
        while !digests.is_empty() {
            let take = (self.block_size - self.levels[0].buf.len()).min(digests.len());
            self.levels[0].buf.extend_from_slice(&digests[..take]);
            digests = &digests[take..];
            if self.levels[0].buf.len() == self.block_size {
                self.carry(0);
            }
        }
    }

    /// Two consecutive data blocks, hashed together when both digests fit
    /// in the current level-0 block (always, unless an odd number of blocks
    /// came before).
    fn push_data_blocks(&mut self, a: &[u8], b: &[u8]) {
        let digest_size = self.params.algorithm.digest_size();
        if self.block_size - self.levels[0].buf.len() < 2 * digest_size {
            self.push_data_block(a);
            self.push_data_block(b);
            return;
        }
        self.hasher.hash2(a, b, &mut self.levels[0].buf);
        self.levels[0].count += 2;
        if self.levels[0].buf.len() == self.block_size {
            self.carry(0);
        }
    }

    /// Hashes the (full, possibly zero-padded) block of level-`i` digests
    /// into level `i + 1`, keeping it for the tree output if asked to.
    fn pack(&mut self, i: usize) {
        if self.levels.len() == i + 1 {
            self.levels.push(Level::default());
        }
        let mut full = std::mem::take(&mut self.levels[i].buf);
        full.resize(self.block_size, 0);
        self.hasher.hash(&full, &mut self.levels[i + 1].buf);
        self.levels[i + 1].count += 1;
        if let Some(kept) = &mut self.kept {
            if kept.len() == i {
                kept.push(Vec::new());
            }
            kept[i].extend_from_slice(&full);
        }
        full.clear();
        self.levels[i].buf = full;
    }

    /// Packs level `i` upwards while its buffer holds a full block.
    fn carry(&mut self, mut i: usize) {
        while self.levels[i].buf.len() == self.block_size {
            self.pack(i);
            i += 1;
        }
    }

    fn finish(mut self) -> MerkleOutput {
        if !self.pending.is_empty() {
            let mut block = std::mem::take(&mut self.pending);
            block.resize(self.block_size, 0);
            self.push_data_block(&block);
        }
        let digest_size = self.params.algorithm.digest_size();
        let mut root = vec![0u8; digest_size];
        if self.data_size > 0 {
            // Walk up: the first level that received exactly one digest holds
            // the root hash (the hash of the single block below it). A level
            // with one digest never packed it (a block holds >= 2 digests),
            // so its buffer still has it.
            let mut i = 0;
            loop {
                if self.levels[i].count == 1 {
                    root.copy_from_slice(&self.levels[i].buf);
                    break;
                }
                if !self.levels[i].buf.is_empty() {
                    self.pack(i);
                }
                i += 1;
            }
        }
        let tree = self.kept.map(|levels| {
            let mut tree = Vec::with_capacity(levels.iter().map(Vec::len).sum());
            for level in levels.iter().rev() {
                tree.extend_from_slice(level);
            }
            tree
        });
        let root = RootHash::new(self.params.algorithm, &root).expect("root hash has digest size");
        let descriptor = Descriptor::new(self.params, self.data_size, root);
        MerkleOutput {
            digest: descriptor.digest(),
            descriptor,
            tree,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verity::{BlockSize, Salt};

    fn hex_digest(params: &VerityParams, data: &[u8]) -> String {
        digest_bytes(params, data).to_hex()
    }

    #[test]
    fn small_digest_equals_the_tree_digest() {
        let salted = VerityParams {
            salt: Salt::from_hex("0011223344").unwrap(),
            ..VerityParams::sha256()
        };
        for params in [VerityParams::sha256(), VerityParams::sha512(), salted] {
            for len in [0, 1, 100, 2048, 4095, 4096] {
                let data = vec![0x5a; len];
                assert_eq!(
                    digest_small(&params, &data),
                    Some(digest_bytes(&params, &data)),
                    "{len} bytes, {params:?}"
                );
            }
            assert_eq!(digest_small(&params, &[0; 4097]), None);
        }
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

    /// The kept tree equals `fsverity digest --out-merkle-tree` (fsverity-utils
    /// 1.5) for 1,000,000 bytes of `(i * 7 + i / 13) as u8`:
    /// `fsverity digest pat.bin --out-merkle-tree=t1` (2 levels, 3 blocks) and
    /// `fsverity digest pat.bin --hash-alg=sha512 --block-size=1024
    /// --salt=0102030405 --out-merkle-tree=t2` (3 levels, 67 blocks); the
    /// expected values are `sha256sum t1 t2` and their sizes.
    #[test]
    fn kept_tree_matches_fsverity_utils() {
        use sha2::{Digest, Sha256};
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let cases = [
            (
                VerityParams::sha256(),
                "71e8bcc493d546fbf3ec74c825929a0911052f7771b71fdfddec7dda861e0b1b",
                "20bb28df83cb39f06b88ca92ff6e25a5eb9cfcf59d93663826f620aa470d1c20",
                12288,
            ),
            (
                VerityParams {
                    block_size: BlockSize::new(1024).unwrap(),
                    salt: Salt::from_hex("0102030405").unwrap(),
                    ..VerityParams::sha512()
                },
                "299408b8088967e499b1c3e9c84abad21668e3475fdfa013f17a567b1fff8d3192f490342e5687e09e9db23537407783b7dd4ff483e051f2695821912ceb123f",
                "a531de75e7995e3be61fb3ece8ccc0ed14b4469d9d9dfcd615b13a5fe45c36a7",
                68608,
            ),
        ];
        for (params, digest, tree_sha256, tree_len) in cases {
            let mut h = MerkleHasher::with_tree(&params);
            for c in data.chunks(3001) {
                h.update(c);
            }
            let out = h.finish_full();
            assert_eq!(out.digest.to_hex(), digest);
            assert_eq!(out.descriptor.digest(), out.digest);
            assert_eq!(out.descriptor.data_size, data.len() as u64);
            let tree = out.tree.unwrap();
            assert_eq!(tree.len(), tree_len);
            assert_eq!(hex::encode(Sha256::digest(&tree)), tree_sha256);
        }
        // One block or less: no tree at all.
        let mut h = MerkleHasher::with_tree(&VerityParams::sha256());
        h.update(&data[..4096]);
        assert_eq!(h.finish_full().tree, Some(Vec::new()));
    }

    /// The SHA-NI path (paired blocks) and the portable `sha2` path agree,
    /// whichever of them `MerkleHasher` picks on this CPU.
    #[test]
    fn sha256_paths_agree() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
        for salt in [
            "",
            "ab",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ] {
            for bs in [1024u64, 4096, 65536] {
                let params = VerityParams {
                    block_size: BlockSize::new(bs).unwrap(),
                    salt: Salt::from_hex(salt).unwrap(),
                    ..VerityParams::sha256()
                };
                let mut portable = Tree::<Salted<Sha256>>::new(params.clone(), true);
                portable.update(&data);
                let portable = portable.finish();
                // Odd chunking: pairs start at odd positions in level 0.
                let mut h = MerkleHasher::with_tree(&params);
                for c in data.chunks(bs as usize * 3 + 1) {
                    h.update(c);
                }
                assert_eq!(h.finish_full(), portable, "block {bs} salt {salt:?}");
                if sha256x2::available() {
                    let mut ni = Tree::<Sha256Ni>::new(params.clone(), true);
                    ni.update(&data);
                    assert_eq!(ni.finish(), portable);
                }
            }
        }
    }
}
