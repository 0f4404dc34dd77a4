//! What sealroot signs for an ostree commit, and where the signatures
//! travel.
//!
//! **The binding record** names one commit and the fs-verity digest of
//! its composefs EROFS (docs/ostree.md, "What is signed"):
//!
//! ```json
//! {"mediaType":"application/vnd.sealroot.ostree.binding.v1+json","commit":"<64 hex>","algorithm":"fsverity-sha256-12","erofs":"<hex>"}
//! ```
//!
//! canonical JSON (fields in this order, no whitespace; every value is hex
//! or an algorithm name, so nothing ever needs escaping). A signature is a
//! kernel fs-verity builtin signature (DER PKCS#7, the profile of
//! [`crate::pkcs7`]) over the fs-verity digest, with `algorithm`, of the
//! record's bytes. `erofs` is the EROFS's fs-verity digest with the same
//! algorithm.
//!
//! Why a record rather than a signature over the EROFS digest alone: an
//! EROFS signature says "this metadata is trusted", not "this is commit
//! C". On the disk, another commit's signed image (an older one, with a
//! known hole) could be copied into C's deployment directory, and the
//! machine would boot old content while `ostree admin status` reports C.
//! The record makes the deployment's name part of what is checked: the
//! initramfs builds the record it expects from the deployment directory's
//! name (`<commit>.<serial>`) and the EROFS it measured, and only a
//! signature over *that* record is accepted.
//!
//! **Detached metadata** (`objects/XX/<commit>.commitmeta`, which `ostree
//! pull` fetches with the commit) carries, per algorithm:
//!
//! | key | type | value |
//! | --- | --- | --- |
//! | `sealroot.binding.v1.fsverity-<alg>-<bits>.sig` | `aay` | DER PKCS#7 signatures of the record, one per sealing |
//! | `sealroot.erofs.v1.fsverity-<alg>-<bits>` | `ay` | the EROFS digest the signatures were made for (a hint for messages) |
//!
//! in the style of ostree's own `ostree.sign.ed25519` (`aay`) and
//! `ostree.composefs.digest.v0` (`ay`). Other keys are kept as they are.

use super::gvariant::{self, DictEntry};
use super::objects::Checksum;
use crate::oci::artifact::VerityAlgorithm;
use crate::verity::FsVerityDigest;
use crate::verity::digest::digest_bytes;

/// The record's `mediaType`.
pub const MEDIA_TYPE: &str = "application/vnd.sealroot.ostree.binding.v1+json";

/// ostree's own key for the composefs digest in *commit* metadata
/// (`OSTREE_COMPOSEFS_DIGEST_KEY_V0`, written by `ostree commit
/// --generate-composefs-metadata`): the sha256 fs-verity digest of the
/// same EROFS.
pub const OSTREE_COMPOSEFS_DIGEST_V0: &str = "ostree.composefs.digest.v0";

/// The detached-metadata key of the signatures for `alg`.
pub fn signatures_key(alg: VerityAlgorithm) -> String {
    format!("sealroot.binding.v1.{alg}.sig")
}

/// The detached-metadata key of the signed EROFS digest for `alg`.
pub fn erofs_key(alg: VerityAlgorithm) -> String {
    format!("sealroot.erofs.v1.{alg}")
}

/// One commit bound to one EROFS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The ostree commit.
    pub commit: Checksum,
    /// The fs-verity algorithm of `erofs` and of the record's own digest.
    pub algorithm: VerityAlgorithm,
    /// The fs-verity digest of the commit's composefs EROFS (`.ostree.cfs`).
    pub erofs: FsVerityDigest,
}

impl Binding {
    /// The canonical record bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{{\"mediaType\":\"{MEDIA_TYPE}\",\"commit\":\"{}\",\"algorithm\":\"{}\",\"erofs\":\"{}\"}}",
            self.commit.to_hex(),
            self.algorithm,
            self.erofs.to_hex()
        )
        .into_bytes()
    }

    /// The fs-verity digest of the record (what a signature signs).
    pub fn digest(&self) -> FsVerityDigest {
        digest_bytes(&self.algorithm.params(), &self.to_bytes())
    }
}

/// A detached-metadata value of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("detached metadata {key}: {reason}")]
pub struct MetadataError {
    /// The metadata key.
    pub key: String,
    /// What is wrong with its value.
    pub reason: String,
}

/// The signatures for `alg` in detached metadata `entries`.
pub fn signatures(
    entries: &[DictEntry],
    alg: VerityAlgorithm,
) -> Result<Vec<Vec<u8>>, MetadataError> {
    let key = signatures_key(alg);
    let Some(e) = entries.iter().find(|e| e.key == key) else {
        return Ok(Vec::new());
    };
    let bad = |reason: String| MetadataError {
        key: key.clone(),
        reason,
    };
    if e.ty != "aay" {
        return Err(bad(format!("type {}, expected aay", e.ty)));
    }
    gvariant::read_bytestring_array(&e.value)
        .map(|v| v.into_iter().map(<[u8]>::to_vec).collect())
        .map_err(|err| bad(err.to_string()))
}

/// The EROFS digest recorded for `alg`, if any.
pub fn signed_erofs(
    entries: &[DictEntry],
    alg: VerityAlgorithm,
) -> Result<Option<FsVerityDigest>, MetadataError> {
    let key = erofs_key(alg);
    let Some(e) = entries.iter().find(|e| e.key == key) else {
        return Ok(None);
    };
    let digest = (e.ty == "ay")
        .then(|| FsVerityDigest::new(alg.hash, &e.value).ok())
        .flatten()
        .ok_or_else(|| MetadataError {
            key: key.clone(),
            reason: format!(
                "expected a {}-byte byte string (ay)",
                alg.hash.digest_size()
            ),
        })?;
    Ok(Some(digest))
}

/// `entries` with `signature` added for `binding` (after the signatures
/// already there, unless the same bytes are there already). Signatures of
/// another EROFS digest for the same algorithm are dropped: they no
/// longer describe this commit's image.
pub fn add_signature(
    entries: &[DictEntry],
    binding: &Binding,
    signature: Vec<u8>,
) -> Result<Vec<DictEntry>, MetadataError> {
    let alg = binding.algorithm;
    let mut sigs = match signed_erofs(entries, alg) {
        Ok(Some(d)) if d == binding.erofs => signatures(entries, alg)?,
        _ => Vec::new(),
    };
    if !sigs.contains(&signature) {
        sigs.push(signature);
    }
    let (sig_key, erofs_key) = (signatures_key(alg), erofs_key(alg));
    let mut out: Vec<DictEntry> = entries
        .iter()
        .filter(|e| e.key != sig_key && e.key != erofs_key)
        .cloned()
        .collect();
    out.push(DictEntry {
        key: erofs_key,
        ty: "ay".into(),
        value: binding.erofs.as_bytes().to_vec(),
    });
    out.push(DictEntry {
        key: sig_key,
        ty: "aay".into(),
        value: gvariant::write_bytestring_array(&sigs),
    });
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verity::HashAlgorithm;

    fn binding() -> Binding {
        Binding {
            commit: Checksum([0xab; 32]),
            algorithm: VerityAlgorithm::SHA256_12,
            erofs: FsVerityDigest::new(HashAlgorithm::Sha256, &[0x01; 32]).unwrap(),
        }
    }

    #[test]
    fn record_is_canonical() {
        let text = String::from_utf8(binding().to_bytes()).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"mediaType\":\"{MEDIA_TYPE}\",\"commit\":\"{}\",\"algorithm\":\"fsverity-sha256-12\",\"erofs\":\"{}\"}}",
                "ab".repeat(32),
                "01".repeat(32)
            )
        );
        // It is JSON, and says what it binds.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["commit"], "ab".repeat(32));
    }

    #[test]
    fn signatures_accumulate_and_survive_other_keys() {
        let other = DictEntry {
            key: "ostree.sign.ed25519".into(),
            ty: "aay".into(),
            value: gvariant::write_bytestring_array(&[vec![5; 64]]),
        };
        let b = binding();
        let one = add_signature(std::slice::from_ref(&other), &b, vec![1, 2, 3]).unwrap();
        let two = add_signature(&one, &b, vec![4, 5]).unwrap();
        let again = add_signature(&two, &b, vec![4, 5]).unwrap();
        assert_eq!(two, again);
        assert_eq!(
            signatures(&two, b.algorithm).unwrap(),
            vec![vec![1, 2, 3], vec![4, 5]]
        );
        assert!(two.contains(&other));
        assert_eq!(signed_erofs(&two, b.algorithm).unwrap(), Some(b.erofs));
        // A new EROFS digest replaces the old signatures.
        let mut changed = b;
        changed.erofs = FsVerityDigest::new(HashAlgorithm::Sha256, &[2; 32]).unwrap();
        let three = add_signature(&two, &changed, vec![9]).unwrap();
        assert_eq!(signatures(&three, b.algorithm).unwrap(), vec![vec![9]]);
        // Round trip through the serialised form.
        let bytes = gvariant::write_vardict(&three);
        assert_eq!(gvariant::read_vardict(&bytes).unwrap(), three);
    }
}
