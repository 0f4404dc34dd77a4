//! `struct fsverity_descriptor`: the 256-byte record whose hash is a file's
//! fs-verity digest (`fs/verity/fsverity_private.h`; described in
//! `Documentation/filesystems/fsverity.rst`, "fs-verity descriptor"):
//!
//! ```text
//! 0    __u8   version;          1
//! 1    __u8   hash_algorithm;   FS_VERITY_HASH_ALG_*
//! 2    __u8   log_blocksize;    log2 of the Merkle tree block size
//! 3    __u8   salt_size;        bytes used in salt[]
//! 4    __le32 sig_size;         builtin signature size; 0 when hashed
//! 8    __le64 data_size;        file size in bytes
//! 16   __u8   root_hash[64];    zero-padded
//! 80   __u8   salt[32];         zero-padded
//! 112  __u8   __reserved[144];  zero
//! 256  __u8   signature[];      (on disk only, not hashed)
//! ```
//!
//! The same layout is produced by `fsverity digest --out-descriptor` and
//! returned by `FS_IOC_READ_VERITY_METADATA` with
//! `FS_VERITY_METADATA_TYPE_DESCRIPTOR` (which reports `sig_size` as 0 and
//! omits the signature, `fs/verity/read_metadata.c`).

use sha2::{Digest, Sha256, Sha512};

use super::{BlockSize, FsVerityDigest, HashAlgorithm, ParamError, RootHash, Salt, VerityParams};

/// Size of `struct fsverity_descriptor` without the signature.
pub const DESCRIPTOR_SIZE: usize = 256;

const ROOT_HASH: std::ops::Range<usize> = 16..80;
const SALT: std::ops::Range<usize> = 80..112;

/// A parsed fs-verity descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Algorithm, block size and salt.
    pub params: VerityParams,
    /// Size of the file's data in bytes.
    pub data_size: u64,
    /// Root hash of the Merkle tree (all zero for an empty file).
    pub root_hash: RootHash,
    /// Size of the builtin signature stored after the descriptor. It is not
    /// part of what is hashed: [`Descriptor::to_bytes`] always writes 0.
    pub sig_size: u32,
}

/// Why 256 bytes are not a valid fs-verity descriptor.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DescriptorError {
    /// Fewer than 256 bytes.
    #[error("fs-verity descriptor is {0} bytes; it must be at least {DESCRIPTOR_SIZE}")]
    Truncated(usize),
    /// A version other than 1.
    #[error("fs-verity descriptor has version {0}; only version 1 exists")]
    Version(u8),
    /// A salt size over 32.
    #[error("fs-verity descriptor declares a {0}-byte salt; at most 32 fit")]
    SaltSize(u8),
    /// Reserved bytes that are not zero (the field).
    #[error("fs-verity descriptor has non-zero bytes in its {0} field, which must be zero")]
    NonZero(&'static str),
    /// An invalid algorithm or block size.
    #[error("fs-verity descriptor: {0}")]
    Param(ParamError),
}

// Not `#[from]`: that would make the cause a `source` as well, and the
// message already names it (printed once, see `verity::ioctl::Error`).
impl From<ParamError> for DescriptorError {
    fn from(error: ParamError) -> Self {
        DescriptorError::Param(error)
    }
}

impl Descriptor {
    /// A descriptor with `sig_size` 0.
    pub fn new(params: VerityParams, data_size: u64, root_hash: RootHash) -> Self {
        Descriptor {
            params,
            data_size,
            root_hash,
            sig_size: 0,
        }
    }

    /// The 256 bytes that are hashed: `sig_size` is written as 0.
    pub fn to_bytes(&self) -> [u8; DESCRIPTOR_SIZE] {
        encode(&self.params, self.data_size, self.root_hash.as_bytes())
    }

    /// The file's fs-verity digest: the descriptor's hash.
    pub fn digest(&self) -> FsVerityDigest {
        hash_descriptor(self.params.algorithm, &self.to_bytes())
    }

    /// Parses a descriptor as the kernel returns it or as
    /// `fsverity digest --out-descriptor` writes it. Trailing bytes (an
    /// on-disk signature) are ignored; `sig_size` is kept as found.
    pub fn parse(bytes: &[u8]) -> Result<Self, DescriptorError> {
        let Some(d) = bytes.first_chunk::<DESCRIPTOR_SIZE>() else {
            return Err(DescriptorError::Truncated(bytes.len()));
        };
        if d[0] != 1 {
            return Err(DescriptorError::Version(d[0]));
        }
        let algorithm = HashAlgorithm::from_kernel_id(d[1])?;
        let block_size = BlockSize::from_log2(d[2])?;
        let salt_size = usize::from(d[3]);
        if salt_size > Salt::MAX_LEN {
            return Err(DescriptorError::SaltSize(d[3]));
        }
        let sig_size = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
        let data_size = u64::from_le_bytes(d[8..16].try_into().expect("8 bytes"));
        let root = &d[ROOT_HASH];
        let digest_size = algorithm.digest_size();
        if root[digest_size..].iter().any(|&b| b != 0) {
            return Err(DescriptorError::NonZero("root_hash padding"));
        }
        let salt = &d[SALT];
        if salt[salt_size..].iter().any(|&b| b != 0) {
            return Err(DescriptorError::NonZero("salt padding"));
        }
        if d[112..].iter().any(|&b| b != 0) {
            return Err(DescriptorError::NonZero("__reserved"));
        }
        Ok(Descriptor {
            params: VerityParams {
                algorithm,
                block_size,
                salt: Salt::new(salt[..salt_size].to_vec())?,
            },
            data_size,
            root_hash: RootHash::new(algorithm, &root[..digest_size])?,
            sig_size,
        })
    }
}

/// Writes the descriptor layout. Shared by [`Descriptor::to_bytes`] and the
/// streaming digest, which has the root hash as a slice.
pub(crate) fn encode(
    params: &VerityParams,
    data_size: u64,
    root_hash: &[u8],
) -> [u8; DESCRIPTOR_SIZE] {
    let salt = params.salt.as_bytes();
    let mut d = [0u8; DESCRIPTOR_SIZE];
    d[0] = 1;
    d[1] = params.algorithm.kernel_id();
    d[2] = params.block_size.log2();
    // Salt's constructor caps it at 32 bytes, so this cannot truncate.
    d[3] = salt.len() as u8;
    // d[4..8]: __le32 sig_size, 0 in the hashed form.
    d[8..16].copy_from_slice(&data_size.to_le_bytes());
    d[ROOT_HASH][..root_hash.len()].copy_from_slice(root_hash);
    d[SALT][..salt.len()].copy_from_slice(salt);
    d
}

/// The unsalted hash of descriptor bytes: the fs-verity file digest.
pub(crate) fn hash_descriptor(
    algorithm: HashAlgorithm,
    bytes: &[u8; DESCRIPTOR_SIZE],
) -> FsVerityDigest {
    let result = match algorithm {
        HashAlgorithm::Sha256 => FsVerityDigest::new(algorithm, &Sha256::digest(bytes)),
        HashAlgorithm::Sha512 => FsVerityDigest::new(algorithm, &Sha512::digest(bytes)),
    };
    result.expect("hash output length matches the algorithm")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf hello > h.txt; fsverity digest --out-descriptor=d h.txt`
    /// (fsverity-utils 1.5): the first 48 bytes of `d`; the rest is zero.
    #[test]
    fn parses_fsverity_utils_descriptor() {
        let mut bytes = [0u8; DESCRIPTOR_SIZE];
        bytes[..16].copy_from_slice(&hex::decode("01010c00000000000500000000000000").unwrap());
        bytes[16..48].copy_from_slice(
            &hex::decode("b15056c9a8db77ab5708d19b7f330fe13d88eeae3d0ab271081d3438c0f46264")
                .unwrap(),
        );
        let d = Descriptor::parse(&bytes).unwrap();
        assert_eq!(d.params, VerityParams::sha256());
        assert_eq!(d.data_size, 5);
        assert_eq!(d.sig_size, 0);
        assert_eq!(d.to_bytes(), bytes);
        // `fsverity digest h.txt`
        assert_eq!(
            d.digest().to_hex(),
            "555b589c26ee43b7a2510e6c67ced9fb3190b6da6e9e683984551f5d77a763de"
        );
    }

    #[test]
    fn round_trip_and_rejects() {
        let params = VerityParams {
            algorithm: HashAlgorithm::Sha512,
            block_size: BlockSize::new(65536).unwrap(),
            salt: Salt::new(vec![0xaa; 32]).unwrap(),
        };
        let root = RootHash::new(HashAlgorithm::Sha512, &[0x5a; 64]).unwrap();
        let d = Descriptor::new(params, u64::MAX, root);
        let mut bytes = d.to_bytes().to_vec();
        assert_eq!(Descriptor::parse(&bytes).unwrap(), d);

        // sig_size is parsed but never hashed.
        bytes[4] = 0x10;
        let with_sig = Descriptor::parse(&bytes).unwrap();
        assert_eq!(with_sig.sig_size, 16);
        assert_eq!(with_sig.digest(), d.digest());
        bytes[4] = 0;

        assert_eq!(
            Descriptor::parse(&bytes[..255]),
            Err(DescriptorError::Truncated(255))
        );
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert_eq!(Descriptor::parse(&bad), Err(DescriptorError::Version(2)));
        let mut bad = bytes.clone();
        bad[1] = 3;
        assert!(matches!(
            Descriptor::parse(&bad),
            Err(DescriptorError::Param(ParamError::UnknownAlgorithmId(3)))
        ));
        let mut bad = bytes.clone();
        bad[2] = 9;
        assert!(Descriptor::parse(&bad).is_err());
        let mut bad = bytes.clone();
        bad[3] = 33;
        assert_eq!(Descriptor::parse(&bad), Err(DescriptorError::SaltSize(33)));
        let mut bad = bytes.clone();
        bad[200] = 1;
        assert_eq!(
            Descriptor::parse(&bad),
            Err(DescriptorError::NonZero("__reserved"))
        );
    }
}
