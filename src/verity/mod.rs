//! fs-verity: parameters, userspace digests, the signed-digest format, and
//! the kernel interface.
//!
//! Mirrors the kernel's `fs/verity/` split, one file per concern:
//! - [`digest`]: the Merkle tree and descriptor digest computed in userspace
//!   (`Documentation/filesystems/fsverity.rst`, "File digest computation").
//! - [`formatted`]: `struct fsverity_formatted_digest`, the bytes a builtin
//!   signature covers (`fs/verity/signature.c`).
//! - [`ioctl`]: enable, measure and read-metadata on an open file.
//!
//! The types here are the vocabulary the rest of sealroot speaks:
//! [`HashAlgorithm`], [`BlockSize`], [`Salt`], [`VerityParams`] and
//! [`FsVerityDigest`]. Nothing passes digests around as bare byte slices or
//! hex strings.

pub mod descriptor;
pub mod digest;
pub mod formatted;
pub mod ioctl;

pub use descriptor::Descriptor;
pub use formatted::FormattedDigest;

use std::fmt;
use std::str::FromStr;

/// Errors in fs-verity parameters or digest strings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    /// An algorithm name other than sha256 or sha512.
    #[error("unknown fs-verity hash algorithm {0:?} (expected sha256 or sha512)")]
    UnknownAlgorithm(String),
    /// A kernel algorithm number other than 1 or 2.
    #[error("unknown fs-verity hash algorithm number {0} (kernel knows 1 = sha256, 2 = sha512)")]
    UnknownAlgorithmId(u8),
    /// A block size that is not a power of two in 1024..=65536.
    #[error("invalid fs-verity block size {0}: must be a power of two from 1024 to 65536")]
    InvalidBlockSize(u64),
    /// A block size that is not a number.
    #[error("invalid fs-verity block size {0:?}: expected a number of bytes such as 4096")]
    BlockSizeNotANumber(String),
    /// A salt longer than 32 bytes.
    #[error("fs-verity salt is {0} bytes long; the kernel allows at most 32")]
    SaltTooLong(usize),
    /// Text that is not hex.
    #[error("invalid hex in salt or digest {0:?}")]
    InvalidHex(String),
    /// A digest of the wrong length for its algorithm.
    #[error("{algorithm} digest must be {expected} bytes, got {actual}")]
    DigestLength {
        /// The algorithm.
        algorithm: HashAlgorithm,
        /// Its digest length in bytes.
        expected: usize,
        /// The length given.
        actual: usize,
    },
}

/// A hash algorithm fs-verity knows, with the kernel's numbering
/// (`FS_VERITY_HASH_ALG_SHA256 = 1`, `FS_VERITY_HASH_ALG_SHA512 = 2` in
/// `include/uapi/linux/fsverity.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum HashAlgorithm {
    #[default]
    /// SHA-256 (kernel number 1).
    Sha256,
    /// SHA-512 (kernel number 2).
    Sha512,
}

impl HashAlgorithm {
    /// Every algorithm, in kernel order.
    pub const ALL: [HashAlgorithm; 2] = [HashAlgorithm::Sha256, HashAlgorithm::Sha512];

    /// The kernel's algorithm number.
    pub const fn kernel_id(self) -> u8 {
        match self {
            HashAlgorithm::Sha256 => 1,
            HashAlgorithm::Sha512 => 2,
        }
    }

    /// From the kernel's algorithm number.
    pub fn from_kernel_id(id: u8) -> Result<Self, ParamError> {
        match id {
            1 => Ok(HashAlgorithm::Sha256),
            2 => Ok(HashAlgorithm::Sha512),
            other => Err(ParamError::UnknownAlgorithmId(other)),
        }
    }

    /// Digest length in bytes.
    pub const fn digest_size(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The hash function's internal block size; salts are zero-padded to it.
    pub const fn hash_block_size(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 64,
            HashAlgorithm::Sha512 => 128,
        }
    }

    /// The name fsverity-utils uses (`--hash-alg=sha256`).
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(HashAlgorithm::Sha256),
            "sha512" => Ok(HashAlgorithm::Sha512),
            other => Err(ParamError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// Merkle tree block size: a power of two in 1024..=65536.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockSize(u32);

impl BlockSize {
    /// Smallest block size the kernel accepts.
    pub const MIN: u32 = 1024;
    /// Largest block size the kernel accepts.
    pub const MAX: u32 = 65536;
    /// 4096, what every tool defaults to and what composefs uses.
    pub const DEFAULT: BlockSize = BlockSize(4096);

    /// Checks `size`.
    pub fn new(size: u64) -> Result<Self, ParamError> {
        if size.is_power_of_two() && (Self::MIN as u64..=Self::MAX as u64).contains(&size) {
            Ok(BlockSize(size as u32))
        } else {
            Err(ParamError::InvalidBlockSize(size))
        }
    }

    /// From the descriptor's `log_blocksize`.
    pub fn from_log2(log: u8) -> Result<Self, ParamError> {
        if (10..=16).contains(&log) {
            Ok(BlockSize(1 << log))
        } else {
            Err(ParamError::InvalidBlockSize(
                1u64.checked_shl(log as u32).unwrap_or(0),
            ))
        }
    }

    /// The size in bytes.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// log2 of the size (the descriptor's `log_blocksize`).
    pub const fn log2(self) -> u8 {
        self.0.trailing_zeros() as u8
    }
}

impl Default for BlockSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for BlockSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for BlockSize {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: u64 = s
            .parse()
            .map_err(|_| ParamError::BlockSizeNotANumber(s.to_owned()))?;
        BlockSize::new(n)
    }
}

/// An fs-verity salt: at most 32 bytes (`FS_VERITY_MAX_SALT_SIZE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Salt(Vec<u8>);

impl Salt {
    /// `FS_VERITY_MAX_SALT_SIZE`.
    pub const MAX_LEN: usize = 32;

    /// Checks the length.
    pub fn new(bytes: Vec<u8>) -> Result<Self, ParamError> {
        if bytes.len() > Self::MAX_LEN {
            return Err(ParamError::SaltTooLong(bytes.len()));
        }
        Ok(Salt(bytes))
    }

    /// Parses a hex string, as `fsverity digest --salt=` does.
    pub fn from_hex(s: &str) -> Result<Self, ParamError> {
        let bytes = hex::decode(s).map_err(|_| ParamError::InvalidHex(s.to_owned()))?;
        Salt::new(bytes)
    }

    /// The salt bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// No salt.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Everything that determines a file's fs-verity digest besides its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct VerityParams {
    /// Hash algorithm.
    pub algorithm: HashAlgorithm,
    /// Merkle tree block size.
    pub block_size: BlockSize,
    /// Salt prepended to every hashed block.
    pub salt: Salt,
}

impl VerityParams {
    /// sha256, 4096-byte blocks, no salt: the composefs default.
    pub fn sha256() -> Self {
        Self::default()
    }

    /// sha512, 4096-byte blocks, no salt.
    pub fn sha512() -> Self {
        VerityParams {
            algorithm: HashAlgorithm::Sha512,
            ..Self::default()
        }
    }

    /// `algorithm` with 4096-byte blocks and no salt.
    pub fn with_algorithm(algorithm: HashAlgorithm) -> Self {
        VerityParams {
            algorithm,
            ..Self::default()
        }
    }
}

/// A file's fs-verity digest, tagged with the algorithm that made it.
///
/// Displays as `sha256:<hex>`, the form `fsverity digest` and
/// `fsverity measure` print.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FsVerityDigest {
    algorithm: HashAlgorithm,
    bytes: [u8; 64],
}

impl FsVerityDigest {
    /// Checks the length against the algorithm.
    pub fn new(algorithm: HashAlgorithm, digest: &[u8]) -> Result<Self, ParamError> {
        let expected = algorithm.digest_size();
        if digest.len() != expected {
            return Err(ParamError::DigestLength {
                algorithm,
                expected,
                actual: digest.len(),
            });
        }
        let mut bytes = [0u8; 64];
        bytes[..expected].copy_from_slice(digest);
        Ok(FsVerityDigest { algorithm, bytes })
    }

    /// Parses bare hex of the given algorithm's length.
    pub fn from_hex(algorithm: HashAlgorithm, s: &str) -> Result<Self, ParamError> {
        let raw = hex::decode(s).map_err(|_| ParamError::InvalidHex(s.to_owned()))?;
        Self::new(algorithm, &raw)
    }

    /// The algorithm that made it.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algorithm.digest_size()]
    }

    /// Lower-case hex without the algorithm prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl fmt::Display for FsVerityDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.to_hex())
    }
}

impl fmt::Debug for FsVerityDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FsVerityDigest({self})")
    }
}

impl FromStr for FsVerityDigest {
    type Err = ParamError;
    /// Accepts `sha256:<hex>` / `sha512:<hex>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| ParamError::InvalidHex(s.to_owned()))?;
        FsVerityDigest::from_hex(alg.parse()?, hex)
    }
}

/// The root hash of a Merkle tree, as stored in the descriptor.
///
/// Not a file digest: the file digest is the hash of the descriptor that
/// holds this root hash. A distinct type keeps the two from being confused.
/// Displays as bare hex, like `fsverity`'s "Root hash" debug output.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RootHash(FsVerityDigest);

impl RootHash {
    /// Checks the length against the algorithm.
    pub fn new(algorithm: HashAlgorithm, hash: &[u8]) -> Result<Self, ParamError> {
        FsVerityDigest::new(algorithm, hash).map(RootHash)
    }

    /// The tree's hash algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.0.algorithm()
    }

    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }
}

impl fmt::Display for RootHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for RootHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootHash({}:{})", self.algorithm(), self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_size_bounds() {
        assert!(BlockSize::new(512).is_err());
        assert!(BlockSize::new(3000).is_err());
        assert!(BlockSize::new(131072).is_err());
        for log in 10..=16u8 {
            let bs = BlockSize::from_log2(log).unwrap();
            assert_eq!(bs.log2(), log);
            assert_eq!(BlockSize::new(bs.get() as u64).unwrap(), bs);
        }
    }

    #[test]
    fn salt_limit() {
        assert!(Salt::new(vec![0; 32]).is_ok());
        assert_eq!(Salt::new(vec![0; 33]), Err(ParamError::SaltTooLong(33)));
    }

    #[test]
    fn digest_round_trips_through_display() {
        let d = FsVerityDigest::new(HashAlgorithm::Sha512, &[0xab; 64]).unwrap();
        assert_eq!(d.to_string().parse::<FsVerityDigest>().unwrap(), d);
        assert!(FsVerityDigest::new(HashAlgorithm::Sha256, &[0; 64]).is_err());
    }
}
