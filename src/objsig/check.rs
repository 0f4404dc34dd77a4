//! Checking a bundle against an image and trusted certificates
//! (`sealroot oci verify`, `sealroot deploy`): every object of the image
//! must have a signature over its fs-verity digest by a trusted signer.
//!
//! The template is verified completely (profile, chain, trust: `pkcs7`);
//! every other entry shares its signer and certificate chain by
//! construction (only the signature value differs), so each is checked as
//! a raw signature with the key that verified the template, over its own
//! formatted digest. That is the decision the kernel makes for the rebuilt
//! message, without re-walking the same chain 60,000 times.

use std::collections::BTreeSet;

use rayon::prelude::*;
use serde::Serialize;

use crate::crypto::{Cert, CertInfo, SignatureAlgorithm};
use crate::pkcs7::{VerifyError, profile, verify_fsverity};
use crate::verity::{FormattedDigest, FsVerityDigest};

use super::Bundle;

/// How many digests a report lists by name.
const LISTED: usize = 5;

/// The verdict on a bundle.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BundleCheck {
    /// Entries in the bundle.
    pub entries: usize,
    /// Objects of the image.
    pub objects: usize,
    /// Objects of the image without an entry (count, and the first few).
    pub missing: usize,
    /// The first few of those objects' digests.
    pub missing_examples: Vec<String>,
    /// Entries for digests that are not objects of this image (ignored).
    pub extra: usize,
    /// Entries whose signature does not verify (count, first few with the
    /// reason).
    pub bad: usize,
    /// The first few of those entries, each with the reason.
    pub bad_examples: Vec<String>,
    /// The trusted certificate the signatures verify against.
    pub verified_by: Option<CertInfo>,
    /// The certificate that signed the template (the trusted one, or a
    /// certificate embedded in the template that it issued).
    pub signer: Option<CertInfo>,
    /// Why nothing could be verified (an untrusted or broken template).
    pub problem: Option<String>,
    /// The problem is only that no trusted certificate matches the signer.
    pub untrusted_only: bool,
}

impl BundleCheck {
    /// Every object has a verified signature.
    pub fn complete(&self) -> bool {
        self.problem.is_none() && self.missing == 0 && self.bad == 0
    }

    /// One line for reports.
    pub fn summary(&self) -> String {
        if let Some(p) = &self.problem {
            return format!("object signatures: {p}");
        }
        let mut s = format!(
            "object signatures: {} of {} objects signed",
            self.objects - self.missing,
            self.objects
        );
        if let Some(v) = &self.verified_by {
            s.push_str(&format!(", verified by {v}"));
        }
        if self.missing > 0 {
            s.push_str(&format!(
                "; {} objects have no signature, e.g. {}",
                self.missing,
                self.missing_examples.join(", ")
            ));
        }
        if self.bad > 0 {
            s.push_str(&format!(
                "; {} signatures do not verify, e.g. {}",
                self.bad,
                self.bad_examples.join("; ")
            ));
        }
        if self.extra > 0 {
            s.push_str(&format!(
                "; {} entries for other objects (ignored)",
                self.extra
            ));
        }
        s
    }
}

/// Checks `bundle` against the image's `objects`. With no `trusted`
/// certificates only coverage is checked.
pub fn check_bundle(
    bundle: &Bundle,
    objects: &BTreeSet<FsVerityDigest>,
    trusted: &[Cert],
) -> BundleCheck {
    let mut check = BundleCheck {
        entries: bundle.len(),
        objects: objects.len(),
        ..Default::default()
    };
    let mut covered = 0;
    for (digest, _) in bundle.iter() {
        if objects.contains(&digest) {
            covered += 1;
        } else {
            check.extra += 1;
        }
    }
    check.missing = objects.len() - covered;
    check.missing_examples = objects
        .iter()
        .filter(|d| bundle.signature(d).is_none())
        .take(LISTED)
        .map(|d| d.to_string())
        .collect();
    if trusted.is_empty() {
        return check;
    }
    let Some((first, _)) = bundle.entry(0) else {
        check.problem = Some("empty bundle".into());
        return check;
    };
    let verified = match verify_fsverity(bundle.template(), &first, trusted) {
        Ok(v) => v,
        Err(e) => {
            check.untrusted_only = matches!(
                e,
                VerifyError::UnknownSigner { .. } | VerifyError::UntrustedRoot { .. }
            );
            check.problem = Some(format!("the template signature (object {first}): {e}"));
            return check;
        }
    };
    let algorithm: SignatureAlgorithm = match profile::parse(bundle.template()) {
        Ok(m) => m.signature_algorithm,
        Err(e) => {
            check.problem = Some(e.to_string());
            return check;
        }
    };
    let key = verified.signer_key.clone();
    let digest_alg = verified.digest_algorithm;
    let bad: Vec<String> = (1..bundle.len())
        .into_par_iter()
        .filter_map(|i| {
            let (digest, sig) = bundle.entry(i)?;
            if !objects.contains(&digest) {
                return None;
            }
            let hash = digest_alg.digest(&FormattedDigest::new(digest).to_bytes());
            key.verify_prehash(algorithm, &hash, sig)
                .err()
                .map(|e| format!("{digest}: {e}"))
        })
        .collect();
    check.bad = bad.len();
    check.bad_examples = bad.into_iter().take(LISTED).collect();
    check.verified_by = Some(verified.trusted);
    check.signer = Some(verified.signer);
    check
}

/// Reads the bundle layer of a sealing artifact from an image layout
/// (blob sha256 and size verified) and parses it; `None` when the artifact
/// has none.
pub fn read_bundle(
    layout: &crate::oci::layout::ImageLayout,
    artifact: &crate::oci::artifact::SealArtifact,
) -> Option<Result<Bundle, String>> {
    use std::io::Read;
    let d = artifact.extension(super::MEDIA_TYPE)?;
    Some((|| {
        if d.size > super::MAX_BUNDLE as u64 {
            return Err(format!(
                "object signature bundle of {} bytes: too large",
                d.size
            ));
        }
        let mut r = layout
            .open_blob(d, "object signature bundle")
            .map_err(|e| e.to_string())?;
        let mut bytes = Vec::with_capacity(d.size as usize);
        r.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Bundle::parse(bytes).map_err(|e| e.to_string())
    })())
}
