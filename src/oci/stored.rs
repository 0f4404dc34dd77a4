//! JSON documents kept as the exact bytes they were stored as.
//!
//! A manifest's identity is the sha256 of its bytes, and a signature covers
//! the fs-verity digest of those same bytes. Re-serialising parsed JSON may
//! reorder keys, change whitespace or escapes, and so produce a different
//! digest; so every manifest, index and config is carried as
//! [`Stored<T>`]: the bytes, their digest, and the parsed view, and only the
//! bytes are ever written or hashed.

use std::ops::Deref;

use serde::de::DeserializeOwned;

use super::descriptor::Descriptor;
use super::digest::Sha256Digest;
use super::media_type::MediaType;

/// The largest JSON document read into memory (manifests, indexes, configs,
/// `index.json`). containerd caps manifests at 4 MiB; configs with long
/// histories are larger, so we allow 16 MiB and refuse beyond that instead of
/// letting a hostile size allocate without bound.
pub const MAX_JSON_SIZE: u64 = 16 << 20;

/// A JSON document that is not what it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, or not the document's schema.
    #[error("{kind} {digest} is not valid JSON for its schema: {error}")]
    Parse {
        /// The kind of document (`image manifest`, ...).
        kind: &'static str,
        /// The blob's digest.
        digest: Sha256Digest,
        /// What serde_json said.
        error: serde_json::Error,
    },
    /// Parses, but breaks a rule of the spec (schema version, media type).
    #[error("{kind} {digest} is invalid: {reason}")]
    Invalid {
        /// The kind of document.
        kind: &'static str,
        /// The blob's digest.
        digest: Sha256Digest,
        /// Why.
        reason: String,
    },
}

/// An OCI JSON document type: how it is named in errors and what it must
/// satisfy beyond parsing.
pub trait Document: DeserializeOwned {
    /// "image manifest", "image index", ...
    const KIND: &'static str;
    /// Schema rules serde cannot express (schemaVersion, mediaType, ...).
    fn validate(&self) -> Result<(), String>;
}

/// Parsed JSON plus the bytes it came from.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    bytes: Vec<u8>,
    digest: Sha256Digest,
    value: T,
}

impl<T: Document> Stored<T> {
    /// Parses and validates `bytes`; the digest is computed from them.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, JsonError> {
        let digest = Sha256Digest::of(&bytes);
        let value: T = serde_json::from_slice(&bytes).map_err(|source| JsonError::Parse {
            kind: T::KIND,
            digest,
            error: source,
        })?;
        value.validate().map_err(|reason| JsonError::Invalid {
            kind: T::KIND,
            digest,
            reason,
        })?;
        Ok(Stored {
            bytes,
            digest,
            value,
        })
    }
}

impl<T> Stored<T> {
    /// The bytes as stored (what digests and signatures cover).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, taken.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// sha256 of [`Self::bytes`].
    pub fn digest(&self) -> Sha256Digest {
        self.digest
    }

    /// The parsed document.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// A descriptor for these bytes: digest and size from the bytes, never
    /// from re-serialised JSON.
    pub fn descriptor(&self, media_type: impl Into<MediaType>) -> Descriptor {
        let mut d = Descriptor::for_bytes(media_type, &[]);
        d.digest = self.digest;
        d.size = self.bytes.len() as u64;
        d
    }
}

impl<T> Deref for Stored<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Checks the `schemaVersion` every OCI/Docker v2 document carries.
pub(crate) fn check_schema_version(v: u32) -> Result<(), String> {
    if v == 2 {
        Ok(())
    } else {
        Err(format!("schemaVersion is {v}, expected 2"))
    }
}
