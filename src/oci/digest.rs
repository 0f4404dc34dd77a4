//! Content digests as OCI writes them: `sha256:<64 lower-case hex>`.
//!
//! The grammar is the one in the image-spec's `descriptor.md` ("Digests"):
//! `algorithm ":" encoded`, and for the registered `sha256` algorithm the
//! encoded part MUST match `[a-f0-9]{64}`. We accept exactly that and nothing
//! looser (no upper-case hex, no whitespace), because a digest that is
//! spelled two ways names one blob under two file names in a layout.
//!
//! `sha512` is registered too, but no tool in the bootc/podman/skopeo chain
//! produces it; a descriptor that uses it is refused with a message saying so
//! rather than half-supported.
//!
//! [`ManifestDigest`], [`ConfigDigest`], [`LayerDigest`] and [`DiffId`] are
//! the same bytes with a role attached, so a config digest cannot be passed
//! where a manifest digest is expected (the kernel command line selects an
//! image by either, and mixing them up would select the wrong thing).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A malformed or unsupported digest string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `<algorithm>:` prefix.
    #[error("digest {0:?} has no algorithm prefix: expected \"sha256:<64 hex digits>\"")]
    MissingAlgorithm(String),
    /// Another algorithm than sha256 (the digest, the algorithm).
    #[error(
        "digest {0:?} uses algorithm {1:?}; sealroot only reads sha256 digests \
         (re-push the image with sha256, e.g. `skopeo copy --digestfile`, or report this)"
    )]
    UnsupportedAlgorithm(String, String),
    /// Not 64 lower-case hex digits.
    #[error("digest {0:?} is not 64 lower-case hex digits after \"sha256:\" (OCI descriptor.md)")]
    BadEncoding(String),
}

/// A sha256 digest (32 bytes). Displays and parses as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// The algorithm prefix it is written with.
    pub const ALGORITHM: &'static str = "sha256";

    /// The digest with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }

    /// sha256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(data).into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The bare 64-digit hex (the file name under `blobs/sha256/`).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the bare 64-digit lower-case hex form.
    pub fn from_hex(s: &str) -> Result<Self, DigestError> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::BadEncoding(format!("sha256:{s}")));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| DigestError::BadEncoding(format!("sha256:{s}")))?;
        Ok(Sha256Digest(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        let (alg, encoded) = s
            .split_once(':')
            .ok_or_else(|| DigestError::MissingAlgorithm(s.to_owned()))?;
        if alg != Self::ALGORITHM {
            return Err(DigestError::UnsupportedAlgorithm(
                s.to_owned(),
                alg.to_owned(),
            ));
        }
        Self::from_hex(encoded).map_err(|_| DigestError::BadEncoding(s.to_owned()))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256, producing a [`Sha256Digest`].
#[derive(Debug, Clone, Default)]
pub struct Sha256Hasher(Sha256);

impl Sha256Hasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }
    /// Hashes more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The digest of everything hashed.
    pub fn finish(self) -> Sha256Digest {
        Sha256Digest(self.0.finalize().into())
    }
}

/// Declares a role-tagged wrapper around [`Sha256Digest`].
macro_rules! role_digest {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Sha256Digest);

        impl $name {
            /// The digest, without its role.
            pub fn digest(&self) -> Sha256Digest {
                self.0
            }
        }

        impl From<Sha256Digest> for $name {
            fn from(d: Sha256Digest) -> Self {
                $name(d)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = DigestError;
            fn from_str(s: &str) -> Result<Self, DigestError> {
                s.parse().map($name)
            }
        }
    };
}

role_digest!(
    /// The sha256 of an image manifest's stored bytes: what
    /// `sealroot=sha256:...` on the kernel command line selects.
    ManifestDigest
);
role_digest!(
    /// The sha256 of an image config's stored bytes (the "image ID").
    ConfigDigest
);
role_digest!(
    /// The sha256 of a layer blob as stored (compressed, if it is).
    LayerDigest
);
role_digest!(
    /// The sha256 of a layer's *uncompressed* tar stream (`rootfs.diff_ids`).
    DiffId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_blob_digest() {
        // The OCI "empty descriptor" (image-spec manifest.md, "Guidance for an
        // Empty Descriptor"): the two bytes `{}`.
        assert_eq!(
            Sha256Digest::of(b"{}").to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn parse_is_strict() {
        let good = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(good.parse::<Sha256Digest>().unwrap().to_string(), good);
        assert!(matches!(
            good.to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<Sha256Digest>(),
            Err(DigestError::BadEncoding(_))
        ));
        assert!(matches!(
            "sha512:00".parse::<Sha256Digest>(),
            Err(DigestError::UnsupportedAlgorithm(..))
        ));
        assert!(matches!(
            "44136fa3".parse::<Sha256Digest>(),
            Err(DigestError::MissingAlgorithm(_))
        ));
        assert!(format!("{good}0").parse::<Sha256Digest>().is_err());
        assert!(good[..70].parse::<Sha256Digest>().is_err());
    }

    #[test]
    fn json_round_trip() {
        let d = ManifestDigest(Sha256Digest::of(b"x"));
        let s = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<ManifestDigest>(&s).unwrap(), d);
        assert!(serde_json::from_str::<Sha256Digest>("\"sha256:zz\"").is_err());
    }
}
