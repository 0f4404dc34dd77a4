//! sealroot's binding record: a signed statement that one image manifest,
//! one config and one merged EROFS belong together (docs/sealing.md,
//! "Binding").
//!
//! Why: every PKCS#7 of a sealing artifact signs one fs-verity digest, and
//! the artifact that groups them is unsigned. Someone who can write the
//! disk can therefore pair image NEW's signed manifest and config with
//! image OLD's (equally signed) EROFS in an artifact of their own making.
//! The record closes that: it names all three, and it is signed like the
//! other roles (a PKCS#7 over the fs-verity digest of its bytes), so a
//! forged pairing needs a signature nobody gave.
//!
//! How it travels: in the sealing artifact's top-level `annotations`, in
//! the spec's key shape within sealroot's namespace:
//!
//! | key | value |
//! | --- | --- |
//! | `sealroot.binding.v1` | the record (canonical JSON, below) |
//! | `sealroot.binding.v1.fsverity-<alg>-<bits>` | fs-verity digest of the record's bytes (hex) |
//! | `sealroot.binding.v1.fsverity-<alg>-<bits>.sig` | base64 DER PKCS#7 over that digest |
//!
//! Annotations, not a layer: image-spec `annotations.md` lets consumers
//! ignore keys they do not know, so composefs readers that know only the
//! spec's roles (and sealroot releases before this one, whose artifact
//! parser refuses unknown layers) read such an artifact unchanged.
//!
//! The record is canonical JSON: the fields in this order, no whitespace,
//! `bootable` only when the artifact signs a boot variant. A parser that
//! re-serialises and compares bytes accepts exactly one spelling:
//!
//! ```json
//! {"mediaType":"application/vnd.sealroot.binding.v1+json","manifest":"sha256:<hex>","config":"sha256:<hex>","algorithm":"fsverity-sha256-12","merged":"<hex>"}
//! ```

use std::collections::BTreeMap;

use super::artifact::VerityAlgorithm;
use super::config::ImageConfig;
use super::digest::{ConfigDigest, ManifestDigest, Sha256Digest};
use super::keys::{self, KeyRole};
use crate::crypto::Cert;
use crate::pkcs7::{Verified, VerifyError, verify_fsverity};
use crate::verity::FsVerityDigest;
use crate::verity::digest::digest_small;

/// The record's `mediaType`.
pub const MEDIA_TYPE: &str = "application/vnd.sealroot.binding.v1+json";
/// The annotation holding the record itself.
pub const RECORD_KEY: &str = "sealroot.binding.v1";
/// A record is a few hundred bytes (at most about 600); anything larger
/// than the smallest fs-verity block is not one.
pub const MAX_RECORD_SIZE: usize = 1024;

/// What a record binds together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord {
    /// The image manifest's digest.
    pub manifest: ManifestDigest,
    /// The config's digest.
    pub config: ConfigDigest,
    /// Algorithm of `merged`, `bootable` and of the record's own signature.
    pub algorithm: VerityAlgorithm,
    /// fs-verity digest of the merged EROFS.
    pub merged: FsVerityDigest,
    /// fs-verity digest of the boot variant, when the artifact signs one.
    pub bootable: Option<FsVerityDigest>,
}

/// A record that is malformed, names something else, or is not signed by
/// a trusted key.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// Not a record sealroot writes (size, fields, canonical form).
    #[error("binding record: {0}")]
    Malformed(String),
    /// A record of another image.
    #[error(
        "binding record names {field} {record}, but this image's {field} is {actual}: the \
         record belongs to another image, so the artifact pairs files that were not signed \
         together"
    )]
    Mismatch {
        /// Which field (`manifest`, `config`, `merged EROFS`, ...).
        field: &'static str,
        /// What the record says.
        record: String,
        /// What this image has.
        actual: String,
    },
    /// The record's signature does not verify against a trusted key.
    #[error("binding record signature: {0}")]
    Signature(VerifyError),
}

impl BindingRecord {
    /// The canonical bytes. Every value is a digest or an algorithm name
    /// (`[a-z0-9:-]`), so no JSON escaping is ever needed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = format!(
            "{{\"mediaType\":\"{MEDIA_TYPE}\",\"manifest\":\"{}\",\"config\":\"{}\",\
             \"algorithm\":\"{}\",\"merged\":\"{}\"",
            self.manifest.0,
            self.config.0,
            self.algorithm,
            self.merged.to_hex()
        );
        if let Some(b) = &self.bootable {
            text.push_str(&format!(",\"bootable\":\"{}\"", b.to_hex()));
        }
        text.push('}');
        text.into_bytes()
    }

    /// Parses a record, accepting only its canonical spelling: the fields
    /// in order, no whitespace, no escapes (a fixed shape, so it is read as
    /// one rather than through a JSON deserializer: the initramfs reads it,
    /// and every byte of that binary counts).
    pub fn parse(bytes: &[u8]) -> Result<Self, BindingError> {
        let bad = |s: String| BindingError::Malformed(s);
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(bad(format!(
                "{} bytes; a record is at most {MAX_RECORD_SIZE}",
                bytes.len()
            )));
        }
        let shape = || {
            bad(format!(
                "not in canonical form: expected {{\"mediaType\":\"{MEDIA_TYPE}\",\
                 \"manifest\":…,\"config\":…,\"algorithm\":…,\"merged\":…[,\"bootable\":…]}} \
                 without whitespace, as sealroot writes it"
            ))
        };
        let text = std::str::from_utf8(bytes).map_err(|_| shape())?;
        let mut f = Fields(text);
        let media_type = f.take("{", "mediaType").ok_or_else(shape)?;
        if media_type != MEDIA_TYPE {
            return Err(bad(format!(
                "mediaType is {media_type:?}, expected {MEDIA_TYPE}"
            )));
        }
        let manifest = f.take(",", "manifest").ok_or_else(shape)?;
        let config = f.take(",", "config").ok_or_else(shape)?;
        let algorithm = f.take(",", "algorithm").ok_or_else(shape)?;
        let merged = f.take(",", "merged").ok_or_else(shape)?;
        let bootable = match f.0 {
            "}" => None,
            _ => Some(f.take(",", "bootable").ok_or_else(shape)?),
        };
        if f.0 != "}" {
            return Err(shape());
        }
        let sha = |field: &str, s: &str| {
            s.parse::<Sha256Digest>()
                .map_err(|e| bad(format!("{field}: {e}")))
        };
        let algorithm: VerityAlgorithm = algorithm.parse().map_err(|e| bad(format!("{e}")))?;
        let verity = |field: &str, s: &str| {
            keys::parse_digest(algorithm, s).map_err(|e| bad(format!("{field}: {e}")))
        };
        let record = BindingRecord {
            manifest: ManifestDigest(sha("manifest", manifest)?),
            config: ConfigDigest(sha("config", config)?),
            algorithm,
            merged: verity("merged", merged)?,
            bootable: bootable.map(|b| verity("bootable", b)).transpose()?,
        };
        // The shape left no room for another spelling; say so for certain.
        if record.to_bytes() != bytes {
            return Err(shape());
        }
        Ok(record)
    }

    /// Compares with what the image actually is, naming the first field
    /// that differs.
    pub fn check(&self, actual: &BindingRecord) -> Result<(), BindingError> {
        let fields: [(&'static str, String, String); 5] = [
            (
                "manifest",
                self.manifest.0.to_string(),
                actual.manifest.0.to_string(),
            ),
            (
                "config",
                self.config.0.to_string(),
                actual.config.0.to_string(),
            ),
            (
                "algorithm",
                self.algorithm.to_string(),
                actual.algorithm.to_string(),
            ),
            (
                "merged EROFS",
                self.merged.to_string(),
                actual.merged.to_string(),
            ),
            (
                "bootable EROFS",
                self.bootable.map_or("none".into(), |d| d.to_string()),
                actual.bootable.map_or("none".into(), |d| d.to_string()),
            ),
        ];
        match fields.into_iter().find(|(_, r, a)| r != a) {
            None => Ok(()),
            Some((field, record, actual)) => Err(BindingError::Mismatch {
                field,
                record,
                actual,
            }),
        }
    }
}

/// The canonical record read field by field.
struct Fields<'a>(&'a str);

impl<'a> Fields<'a> {
    /// `<sep>"<name>":"<value>"`: the value (up to the next quote).
    fn take(&mut self, sep: &str, name: &str) -> Option<&'a str> {
        let rest = self
            .0
            .strip_prefix(sep)?
            .strip_prefix('"')?
            .strip_prefix(name)?
            .strip_prefix("\":\"")?;
        let end = rest.find('"')?;
        self.0 = &rest[end + 1..];
        Some(&rest[..end])
    }
}

/// A record with its signature, as an artifact carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBinding {
    /// The record, parsed.
    pub record: BindingRecord,
    /// The record's bytes (the `sealroot.binding.v1` value).
    pub bytes: Vec<u8>,
    /// fs-verity digest of `bytes`, in the record's algorithm.
    pub digest: FsVerityDigest,
    /// DER PKCS#7 over `digest`.
    pub signature: Vec<u8>,
}

impl SignedBinding {
    /// Wraps a freshly signed record: `signature` over `digest`, which is
    /// [`Self::digest_of`] the record.
    pub fn new(record: BindingRecord, digest: FsVerityDigest, signature: Vec<u8>) -> Self {
        SignedBinding {
            bytes: record.to_bytes(),
            record,
            digest,
            signature,
        }
    }

    /// The digest a record's signature covers: the fs-verity digest of its
    /// bytes. A record (at most [`MAX_RECORD_SIZE`] bytes, the smallest
    /// fs-verity block) fits in one block, so it is computed without a tree
    /// (and the initramfs does not link the tree hasher for it); `None`
    /// cannot happen for a record this module built or parsed.
    pub fn digest_of(record: &BindingRecord) -> Option<FsVerityDigest> {
        digest_small(&record.algorithm.params(), &record.to_bytes())
    }

    /// The three annotations that carry it.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let alg = self.record.algorithm;
        BTreeMap::from([
            (
                RECORD_KEY.to_owned(),
                String::from_utf8_lossy(&self.bytes).into_owned(),
            ),
            (KeyRole::Binding.digest_key(alg), self.digest.to_hex()),
            (
                KeyRole::Binding.signature_key(alg),
                keys::encode_signature(&self.signature),
            ),
        ])
    }

    /// Reads the record from an artifact's top-level `annotations`
    /// (`Ok(None)`: the artifact has none). `algorithm` is the artifact's:
    /// one artifact, one algorithm. Every `sealroot.*` key must be one of
    /// the three; all three or none.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        algorithm: VerityAlgorithm,
    ) -> Result<Option<Self>, String> {
        let mut record = None;
        let mut digest = None;
        let mut signature = None;
        for (key, value) in annotations {
            if key == RECORD_KEY {
                record = Some(value);
                continue;
            }
            // Only sealroot's namespace: the spec defines no composefs.*
            // keys on the artifact itself, and other keys are not ours.
            if !key.starts_with(keys::SEALROOT) {
                continue;
            }
            let Some(k) = keys::parse(key)? else { continue };
            if k.role != KeyRole::Binding {
                return Err(format!(
                    "annotation {key:?}: the artifact itself carries only the binding record"
                ));
            }
            if k.algorithm != algorithm {
                return Err(format!(
                    "{key} uses {}, the artifact's signatures {algorithm}; one artifact, one \
                     algorithm",
                    k.algorithm
                ));
            }
            if k.signature {
                signature = Some(value);
            } else {
                digest = Some(value);
            }
        }
        let (record, digest, signature) = match (record, digest, signature) {
            (None, None, None) => return Ok(None),
            (Some(r), Some(d), Some(s)) => (r, d, s),
            _ => {
                return Err(format!(
                    "incomplete binding record: {RECORD_KEY}, {} and {} come together",
                    KeyRole::Binding.digest_key(algorithm),
                    KeyRole::Binding.signature_key(algorithm)
                ));
            }
        };
        let bytes = record.as_bytes().to_vec();
        let parsed = BindingRecord::parse(&bytes).map_err(|e| e.to_string())?;
        if parsed.algorithm != algorithm {
            return Err(format!(
                "binding record is for {}, the artifact's signatures {algorithm}",
                parsed.algorithm
            ));
        }
        let digest = keys::parse_digest(algorithm, digest)
            .map_err(|e| format!("{}: {e}", KeyRole::Binding.digest_key(algorithm)))?;
        let actual = Self::digest_of(&parsed)
            .ok_or_else(|| "binding record does not fit in one fs-verity block".to_string())?;
        if digest != actual {
            return Err(format!(
                "{} is {digest}, but the record's fs-verity digest is {actual}",
                KeyRole::Binding.digest_key(algorithm),
            ));
        }
        let signature = keys::decode_signature(signature)
            .map_err(|e| format!("{}: {e}", KeyRole::Binding.signature_key(algorithm)))?;
        Ok(Some(SignedBinding {
            record: parsed,
            bytes,
            digest,
            signature,
        }))
    }

    /// Checks that the record names `actual` and that its signature is by
    /// one of `trusted`.
    pub fn verify(
        &self,
        actual: &BindingRecord,
        trusted: &[Cert],
    ) -> Result<Verified, BindingError> {
        self.record.check(actual)?;
        verify_fsverity(&self.signature, &self.digest, trusted).map_err(BindingError::Signature)
    }
}

/// What the config's [`super::config::COMPOSEFS_SEAL_LABEL`] says about the merged EROFS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelBinding {
    /// No label.
    Absent,
    /// The label names this EROFS: the (signed) config binds it.
    Binds,
    /// A digest of another length (another fs-verity algorithm, e.g. a
    /// composefs-rs sha512 repository's): it can neither bind nor refute
    /// an EROFS of this algorithm.
    OtherAlgorithm(String),
    /// The label names another EROFS of this algorithm: the config belongs
    /// to another image (or the EROFS does).
    Mismatch(String),
}

/// Compares the config's seal label with the merged EROFS digest.
pub fn config_label(config: &ImageConfig, merged: &FsVerityDigest) -> LabelBinding {
    match config.seal_label() {
        None => LabelBinding::Absent,
        Some(l) if l == merged.to_hex() => LabelBinding::Binds,
        Some(l) if l.len() == merged.to_hex().len() => LabelBinding::Mismatch(l.to_owned()),
        Some(l) => LabelBinding::OtherAlgorithm(l.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verity::HashAlgorithm;

    pub(crate) fn sample() -> BindingRecord {
        BindingRecord {
            manifest: ManifestDigest(Sha256Digest::of(b"m")),
            config: ConfigDigest(Sha256Digest::of(b"c")),
            algorithm: VerityAlgorithm::SHA256_12,
            merged: FsVerityDigest::new(HashAlgorithm::Sha256, &[0xab; 32]).unwrap(),
            bootable: None,
        }
    }

    #[test]
    fn canonical_round_trip_and_nothing_else() {
        let r = sample();
        let bytes = r.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(
                "{\"mediaType\":\"application/vnd.sealroot.binding.v1+json\",\"manifest\":\"sha256:"
            ),
            "{text}"
        );
        assert!(!text.contains("bootable") && !text.contains(' '), "{text}");
        assert_eq!(BindingRecord::parse(&bytes).unwrap(), r);
        let mut with_boot = r.clone();
        with_boot.bootable = Some(FsVerityDigest::new(HashAlgorithm::Sha256, &[1; 32]).unwrap());
        assert_eq!(
            BindingRecord::parse(&with_boot.to_bytes()).unwrap(),
            with_boot
        );
        // Same content, other spelling: refused.
        let spaced = text.replacen(",", ", ", 1);
        let e = BindingRecord::parse(spaced.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("canonical"), "{e}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let reordered = serde_json::to_vec(&v).unwrap(); // keys sorted
        assert!(BindingRecord::parse(&reordered).is_err());
        let extra = text.replacen('{', "{\"x\":1,", 1);
        assert!(BindingRecord::parse(extra.as_bytes()).is_err());
        let other_type = text.replace("binding.v1", "binding.v2");
        assert!(
            BindingRecord::parse(other_type.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("mediaType")
        );
        let upper = text.replace(&"ab".repeat(32), &"AB".repeat(32));
        assert!(BindingRecord::parse(upper.as_bytes()).is_err());
        assert!(BindingRecord::parse(&[b' '; MAX_RECORD_SIZE + 1]).is_err());
    }

    #[test]
    fn check_names_the_first_difference() {
        let r = sample();
        assert!(r.check(&r).is_ok());
        let mut other = r.clone();
        other.merged = FsVerityDigest::new(HashAlgorithm::Sha256, &[0xcd; 32]).unwrap();
        let e = r.check(&other).unwrap_err().to_string();
        assert!(
            e.contains("names merged EROFS sha256:abab") && e.contains("is sha256:cdcd"),
            "{e}"
        );
        other.manifest = ManifestDigest(Sha256Digest::of(b"x"));
        assert!(
            r.check(&other)
                .unwrap_err()
                .to_string()
                .contains("names manifest")
        );
    }

    #[test]
    fn config_label_binds_refutes_or_says_nothing() {
        use crate::oci::Stored;
        let merged = sample().merged;
        let config = |label: Option<String>| {
            let mut v = serde_json::json!({"architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []}});
            if let Some(l) = label {
                v["config"] = serde_json::json!({"Labels": {"containers.composefs.fsverity": l}});
            }
            Stored::<ImageConfig>::parse(serde_json::to_vec(&v).unwrap()).unwrap()
        };
        assert_eq!(config_label(&config(None), &merged), LabelBinding::Absent);
        assert_eq!(
            config_label(&config(Some(merged.to_hex())), &merged),
            LabelBinding::Binds
        );
        let other = "cd".repeat(32);
        assert_eq!(
            config_label(&config(Some(other.clone())), &merged),
            LabelBinding::Mismatch(other)
        );
        // A sha512 digest against a sha256 EROFS: neither binds nor refutes.
        let sha512 = "ab".repeat(64);
        assert_eq!(
            config_label(&config(Some(sha512.clone())), &merged),
            LabelBinding::OtherAlgorithm(sha512)
        );
    }

    #[test]
    fn annotations_round_trip_and_strictness() {
        let digest = SignedBinding::digest_of(&sample()).unwrap();
        let signed = SignedBinding::new(sample(), digest, vec![0x30, 0x03, 1, 2, 3]);
        let ann = signed.annotations();
        assert_eq!(ann.len(), 3);
        let alg = VerityAlgorithm::SHA256_12;
        assert_eq!(
            SignedBinding::from_annotations(&ann, alg).unwrap(),
            Some(signed.clone())
        );
        assert_eq!(
            SignedBinding::from_annotations(&BTreeMap::new(), alg).unwrap(),
            None
        );
        let sha512: VerityAlgorithm = "fsverity-sha512-12".parse().unwrap();
        assert!(
            SignedBinding::from_annotations(&ann, sha512)
                .unwrap_err()
                .contains("one algorithm")
        );
        for key in ann.keys() {
            let mut missing = ann.clone();
            missing.remove(key);
            let e = SignedBinding::from_annotations(&missing, alg).unwrap_err();
            assert!(e.contains("incomplete"), "{key}: {e}");
        }
        let mut unknown = ann.clone();
        unknown.insert("sealroot.other.v1.fsverity-sha256-12".into(), "x".into());
        assert!(
            SignedBinding::from_annotations(&unknown, alg)
                .unwrap_err()
                .contains("unknown role")
        );
        let mut wrong_digest = ann.clone();
        wrong_digest.insert(KeyRole::Binding.digest_key(alg), "00".repeat(32));
        assert!(
            SignedBinding::from_annotations(&wrong_digest, alg)
                .unwrap_err()
                .contains("the record's fs-verity digest is")
        );
        let mut bad_sig = ann.clone();
        bad_sig.insert(KeyRole::Binding.signature_key(alg), "not base64!".into());
        assert!(
            SignedBinding::from_annotations(&bad_sig, alg)
                .unwrap_err()
                .contains("base64")
        );
        // Unrelated annotations are left alone.
        let mut other = ann.clone();
        other.insert("org.opencontainers.image.created".into(), "x".into());
        assert!(SignedBinding::from_annotations(&other, alg).is_ok());
    }
}
