//! Annotation keys of the composefs sealing scheme, shared by the artifact
//! ([`super::artifact`]), inline mode ([`super::inline`]) and sealroot's
//! binding record ([`super::binding`]).
//!
//! composefs-rs `crates/composefs-oci/src/sealing_spec.rs`, "Annotation key
//! scheme": `composefs.<role>.fsverity-<alg>-<bits>` names the fs-verity
//! digest of the object the role describes (lower-case hex), and the same
//! key with `.sig` appended its signature (inline mode: base64 DER PKCS#7).
//! EROFS roles carry a format segment (`merged.erofs.v1`), JSON ones do not
//! (`config`). sealroot's own role, the binding record, uses the same shape
//! in its own namespace: `sealroot.binding.v1.fsverity-<alg>-<bits>[.sig]`.

use base64::Engine as _;

use super::artifact::{MAX_SIGNATURE_SIZE, Role, VerityAlgorithm};
use crate::verity::FsVerityDigest;

/// Prefix of the spec's keys.
pub const COMPOSEFS: &str = "composefs.";
/// Prefix of sealroot's extension keys.
pub const SEALROOT: &str = "sealroot.";
/// On the object signature bundle's layer: its number of entries
/// (informational).
pub const OBJECT_SIGNATURES_COUNT: &str = "sealroot.object-signatures.count";

/// The object a key describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyRole {
    /// The image manifest.
    Manifest,
    /// The image config.
    Config,
    /// A per-layer EROFS (inline mode, on a layer descriptor).
    Layer,
    /// The merged EROFS of all layers.
    Merged,
    /// The merged EROFS's boot variant (`composefs-boot`).
    MergedBootable,
    /// sealroot's binding record ([`super::binding`]).
    Binding,
}

impl KeyRole {
    /// `<namespace>.<role>` as it appears in keys.
    pub fn prefix(self) -> &'static str {
        match self {
            KeyRole::Manifest => "composefs.manifest",
            KeyRole::Config => "composefs.config",
            KeyRole::Layer => "composefs.layer.erofs.v1",
            KeyRole::Merged => "composefs.merged.erofs.v1",
            KeyRole::MergedBootable => "composefs.merged.bootable.erofs.v1",
            KeyRole::Binding => "sealroot.binding.v1",
        }
    }

    const ALL: [KeyRole; 6] = [
        KeyRole::Manifest,
        KeyRole::Config,
        KeyRole::Layer,
        KeyRole::Merged,
        KeyRole::MergedBootable,
        KeyRole::Binding,
    ];

    /// The digest key of this role for `alg`.
    pub fn digest_key(self, alg: VerityAlgorithm) -> String {
        format!("{}.{alg}", self.prefix())
    }

    /// The signature key (digest key + `.sig`).
    pub fn signature_key(self, alg: VerityAlgorithm) -> String {
        format!("{}.{alg}.sig", self.prefix())
    }
}

impl From<Role> for KeyRole {
    fn from(role: Role) -> KeyRole {
        match role {
            Role::Manifest => KeyRole::Manifest,
            Role::Config => KeyRole::Config,
            Role::Layer(_) => KeyRole::Layer,
            Role::Merged => KeyRole::Merged,
            Role::MergedBootable => KeyRole::MergedBootable,
        }
    }
}

/// A parsed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleKey {
    /// What the key describes.
    pub role: KeyRole,
    /// The fs-verity algorithm it names.
    pub algorithm: VerityAlgorithm,
    /// The `.sig` key (else the digest key).
    pub signature: bool,
}

/// Parses `key` if it lies in the composefs or sealroot namespace
/// (`Ok(None)` otherwise: other annotations are none of our business).
/// A key in those namespaces that is not a known role with a valid
/// algorithm is an error: a misspelt key must not silently drop a
/// signature.
pub fn parse(key: &str) -> Result<Option<RoleKey>, String> {
    if !key.starts_with(COMPOSEFS) && !key.starts_with(SEALROOT) {
        return Ok(None);
    }
    let (rest, signature) = match key.strip_suffix(".sig") {
        Some(r) => (r, true),
        None => (key, false),
    };
    let Some(at) = rest.find(".fsverity-") else {
        return Err(format!(
            "annotation {key:?} names no fsverity-<alg>-<bits> algorithm"
        ));
    };
    let (prefix, alg) = (&rest[..at], &rest[at + 1..]);
    let role = KeyRole::ALL
        .into_iter()
        .find(|r| r.prefix() == prefix)
        .ok_or_else(|| {
            format!(
                "annotation {key:?}: unknown role {prefix:?} (known: {})",
                KeyRole::ALL.map(KeyRole::prefix).join(", ")
            )
        })?;
    let algorithm: VerityAlgorithm = alg
        .parse()
        .map_err(|e| format!("annotation {key:?}: {e}"))?;
    Ok(Some(RoleKey {
        role,
        algorithm,
        signature,
    }))
}

/// A digest value: exactly the algorithm's size in lower-case hex.
pub fn parse_digest(alg: VerityAlgorithm, hex: &str) -> Result<FsVerityDigest, String> {
    let ok = hex.len() == 2 * alg.hash.digest_size()
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| FsVerityDigest::from_hex(alg.hash, hex).ok())
        .flatten()
        .ok_or_else(|| {
            format!(
                "digest {:?} is not {} lower-case hex digits ({} fs-verity digest)",
                hex.chars().take(160).collect::<String>(),
                2 * alg.hash.digest_size(),
                alg.hash
            )
        })
}

/// Longest base64 text of a signature the kernel could accept.
const MAX_SIGNATURE_BASE64: usize = (MAX_SIGNATURE_SIZE as usize).div_ceil(3) * 4;

/// A `.sig` value: standard base64 (RFC 4648 section 4, padded) of a DER
/// PKCS#7 of 1 to [`MAX_SIGNATURE_SIZE`] bytes.
pub fn decode_signature(value: &str) -> Result<Vec<u8>, String> {
    if value.len() > MAX_SIGNATURE_BASE64 {
        return Err(format!(
            "signature is {} base64 characters; the kernel accepts at most \
             {MAX_SIGNATURE_SIZE} bytes ({MAX_SIGNATURE_BASE64} characters)",
            value.len()
        ));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|e| format!("signature is not standard padded base64: {e}"))?;
    if der.is_empty() || der.len() as u64 > MAX_SIGNATURE_SIZE {
        return Err(format!(
            "signature is {} bytes; the kernel accepts 1 to {MAX_SIGNATURE_SIZE}",
            der.len()
        ));
    }
    Ok(der)
}

/// The `.sig` value of a DER PKCS#7.
pub fn encode_signature(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_of_both_namespaces() {
        let k = parse("composefs.merged.erofs.v1.fsverity-sha512-12.sig")
            .unwrap()
            .unwrap();
        assert_eq!(k.role, KeyRole::Merged);
        assert!(k.signature);
        assert_eq!(k.algorithm.to_string(), "fsverity-sha512-12");
        let k = parse("sealroot.binding.v1.fsverity-sha256-12")
            .unwrap()
            .unwrap();
        assert_eq!((k.role, k.signature), (KeyRole::Binding, false));
        assert_eq!(
            KeyRole::Config.signature_key(VerityAlgorithm::SHA256_12),
            "composefs.config.fsverity-sha256-12.sig"
        );
        assert_eq!(parse("org.opencontainers.image.created").unwrap(), None);
        assert!(
            parse("composefs.merged.erofs.v2.fsverity-sha256-12")
                .unwrap_err()
                .contains("unknown role")
        );
        assert!(
            parse("composefs.config.fsverity-md5-12")
                .unwrap_err()
                .contains("invalid fs-verity algorithm")
        );
        assert!(
            parse("composefs.config")
                .unwrap_err()
                .contains("no fsverity")
        );
        assert!(
            parse("sealroot.binding.v1")
                .unwrap_err()
                .contains("no fsverity")
        );
    }

    #[test]
    fn signature_values() {
        assert_eq!(decode_signature("AAEC").unwrap(), [0, 1, 2]);
        assert_eq!(encode_signature(&[0, 1, 2]), "AAEC");
        assert!(decode_signature("AAE").unwrap_err().contains("base64"));
        assert!(decode_signature("AA-C").unwrap_err().contains("base64"));
        assert!(decode_signature("").unwrap_err().contains("1 to"));
        let big = encode_signature(&vec![0; MAX_SIGNATURE_SIZE as usize + 1]);
        assert!(decode_signature(&big).unwrap_err().contains("at most"));
        let max = encode_signature(&vec![7; MAX_SIGNATURE_SIZE as usize]);
        assert_eq!(decode_signature(&max).unwrap().len(), 16128);
    }
}
