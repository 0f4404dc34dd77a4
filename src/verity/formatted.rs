//! `struct fsverity_formatted_digest`: the exact bytes a builtin fs-verity
//! signature signs (`fs/verity/signature.c`, `fsverity_verify_signature()`;
//! `include/uapi/linux/fsverity.h` documents the layout):
//!
//! ```text
//! char   magic[8];          "FSVerity"
//! __le16 digest_algorithm;  FS_VERITY_HASH_ALG_*
//! __le16 digest_size;       bytes in digest[]
//! __u8   digest[];          the file's fs-verity digest
//! ```

use super::{FsVerityDigest, HashAlgorithm, ParamError};

/// The signed form of an fs-verity digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FormattedDigest(FsVerityDigest);

/// Why bytes are not a formatted digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormattedDigestError {
    /// Shorter than the header.
    #[error("formatted fs-verity digest is {0} bytes, shorter than its 12-byte header")]
    Truncated(usize),
    /// Not starting with `FSVerity`.
    #[error("formatted fs-verity digest does not start with \"FSVerity\"")]
    BadMagic,
    /// The declared digest size differs from the bytes present.
    #[error("formatted fs-verity digest declares {declared} digest bytes but carries {actual}")]
    SizeMismatch {
        /// The size field.
        declared: usize,
        /// Bytes after the header.
        actual: usize,
    },
    /// An unknown algorithm or a wrong digest length.
    #[error(transparent)]
    Param(#[from] ParamError),
}

impl FormattedDigest {
    /// `struct fsverity_formatted_digest`'s magic.
    pub const MAGIC: &'static [u8; 8] = b"FSVerity";
    /// Magic, algorithm and size fields: 12 bytes.
    pub const HEADER_LEN: usize = 12;

    /// Wraps a file digest.
    pub fn new(digest: FsVerityDigest) -> Self {
        FormattedDigest(digest)
    }

    /// The file digest.
    pub fn digest(&self) -> FsVerityDigest {
        self.0
    }

    /// Serialises to the bytes that are signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let d = self.0.as_bytes();
        let mut out = Vec::with_capacity(Self::HEADER_LEN + d.len());
        out.extend_from_slice(Self::MAGIC);
        out.extend_from_slice(&u16::from(self.0.algorithm().kernel_id()).to_le_bytes());
        out.extend_from_slice(&(d.len() as u16).to_le_bytes());
        out.extend_from_slice(d);
        out
    }

    /// Parses signed content back (e.g. from an attached PKCS#7 for display).
    pub fn parse(bytes: &[u8]) -> Result<Self, FormattedDigestError> {
        if bytes.len() < Self::HEADER_LEN {
            return Err(FormattedDigestError::Truncated(bytes.len()));
        }
        if &bytes[..8] != Self::MAGIC {
            return Err(FormattedDigestError::BadMagic);
        }
        let alg = u16::from_le_bytes([bytes[8], bytes[9]]);
        let size = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
        let digest = &bytes[Self::HEADER_LEN..];
        if digest.len() != size {
            return Err(FormattedDigestError::SizeMismatch {
                declared: size,
                actual: digest.len(),
            });
        }
        let alg = u8::try_from(alg).map_err(|_| ParamError::UnknownAlgorithmId(u8::MAX))?;
        Ok(FormattedDigest(FsVerityDigest::new(
            HashAlgorithm::from_kernel_id(alg)?,
            digest,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_round_trip() {
        let d = FsVerityDigest::new(HashAlgorithm::Sha512, &[7; 64]).unwrap();
        let bytes = FormattedDigest::new(d).to_bytes();
        assert_eq!(&bytes[..12], b"FSVerity\x02\x00\x40\x00");
        assert_eq!(bytes.len(), 76);
        assert_eq!(FormattedDigest::parse(&bytes).unwrap().digest(), d);
        assert_eq!(
            FormattedDigest::parse(&bytes[..75]),
            Err(FormattedDigestError::SizeMismatch {
                declared: 64,
                actual: 63
            })
        );
        assert_eq!(
            FormattedDigest::parse(b"FSVerit"),
            Err(FormattedDigestError::Truncated(7))
        );
    }
}
