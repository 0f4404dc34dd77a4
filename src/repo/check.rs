//! Offline verification of a sealed image: for every sealing artifact
//! attached to it (current and draft format), check the subject, compare
//! each signed digest with the one recomputed here (manifest and config from
//! their stored bytes, the merged EROFS regenerated from the layers), and
//! verify every PKCS#7 against the trusted certificates the way the kernel
//! would.

use std::io::Read;

use serde::Serialize;

use crate::crypto::{Cert, CertInfo};
use crate::oci::artifact::{ArtifactFormat, Role, SealArtifact, SignatureEntry};
use crate::oci::layout::{ImageLayout, ResolvedImage};
use crate::oci::referrers::seal_artifacts;
use crate::oci::{Descriptor, Sha256Digest};
use crate::pkcs7::{VerifyError, verify_fsverity};
use crate::verity::FsVerityDigest;

use super::Error;
use super::image::MergedImage;
use super::seal::SealDigests;

/// The verdict on one signature of an artifact.
#[derive(Debug, Clone, Serialize)]
pub struct RoleCheck {
    pub role: String,
    /// The digest the artifact says is signed.
    pub signed_digest: String,
    /// The digest recomputed here (none for draft per-layer EROFS and the
    /// bootable variant, which sealroot does not generate).
    pub actual_digest: Option<String>,
    /// Trusted certificate the signature verifies against.
    pub verified_by: Option<CertInfo>,
    /// The certificate whose key signed (the trusted one or an embedded
    /// one below it).
    pub signer: Option<CertInfo>,
    /// What is wrong, if anything.
    pub problem: Option<String>,
    /// The problem is only that no trusted certificate matches the signer
    /// (not tampering).
    pub untrusted_only: bool,
}

/// The verdict on one artifact.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactCheck {
    pub artifact: Sha256Digest,
    pub format: &'static str,
    pub algorithm: Option<String>,
    /// Why the artifact as a whole is invalid (structure, subject).
    pub problem: Option<String>,
    pub roles: Vec<RoleCheck>,
    /// The per-object signatures (sealroot extension, `objsig`), if the
    /// artifact carries them.
    pub object_signatures: Option<crate::objsig::check::BundleCheck>,
    /// Every signature checked out (digests and trust), object signatures
    /// included.
    pub verified: bool,
}

impl ArtifactCheck {
    /// Whether a problem is evidence of tampering or breakage, as opposed
    /// to an artifact signed by a key that is simply not trusted here.
    pub fn is_broken(&self) -> bool {
        self.problem.is_some()
            || self
                .roles
                .iter()
                .any(|r| r.problem.is_some() && !r.untrusted_only)
            || self.object_signatures.as_ref().is_some_and(|o| {
                o.missing > 0 || o.bad > 0 || (o.problem.is_some() && !o.untrusted_only)
            })
    }
}

/// Checks every sealing artifact of `image`. With no `trusted`
/// certificates, digests are compared but signatures are not verified
/// (`verified` stays false). `merged` is the EROFS regenerated from the
/// image's layers.
pub fn check_artifacts(
    layout: &ImageLayout,
    image: &ResolvedImage,
    merged: &MergedImage,
    trusted: &[Cert],
) -> Result<Vec<ArtifactCheck>, Error> {
    let mut out = Vec::new();
    for (desc, parsed) in seal_artifacts(layout, &image.manifest)? {
        out.push(match parsed {
            Err(e) => ArtifactCheck {
                artifact: desc.digest,
                format: "unknown",
                algorithm: None,
                problem: Some(e.to_string()),
                roles: Vec::new(),
                object_signatures: None,
                verified: false,
            },
            Ok(a) => check_one(layout, image, merged, &desc, &a, trusted),
        });
    }
    Ok(out)
}

fn check_one(
    layout: &ImageLayout,
    image: &ResolvedImage,
    merged: &MergedImage,
    desc: &Descriptor,
    a: &SealArtifact,
    trusted: &[Cert],
) -> ArtifactCheck {
    let digests = SealDigests::of(image, a.algorithm, Some(merged.digest(a.algorithm)));
    let roles: Vec<RoleCheck> = a
        .entries
        .iter()
        .map(|e| check_role(layout, desc.digest, e, digests.get(e.role), trusted))
        .collect();
    let object_signatures = crate::objsig::check::read_bundle(layout, a).map(|bundle| {
        let objects = crate::objsig::build::tree_objects(&merged.tree);
        match bundle {
            Ok(b) => crate::objsig::check::check_bundle(&b, &objects, trusted),
            Err(e) => crate::objsig::check::BundleCheck {
                objects: objects.len(),
                problem: Some(e),
                ..Default::default()
            },
        }
    });
    let verified = !trusted.is_empty()
        && roles.iter().all(|r| r.problem.is_none())
        && object_signatures.as_ref().is_none_or(|o| o.complete());
    ArtifactCheck {
        artifact: desc.digest,
        format: match a.format {
            ArtifactFormat::MetadataV1 => "application/vnd.composefs.metadata.v1",
            ArtifactFormat::SignatureDraft => "application/vnd.composefs.signature.v1 (draft)",
        },
        algorithm: Some(a.algorithm.to_string()),
        problem: None,
        roles,
        object_signatures,
        verified,
    }
}

/// Reads a signature blob from the layout, verifying its sha256 and size.
pub fn read_signature(
    layout: &ImageLayout,
    artifact: Sha256Digest,
    entry: &SignatureEntry,
) -> Result<Vec<u8>, String> {
    let what = format!("{} signature of artifact {artifact}", entry.role);
    let mut r = layout
        .open_blob(&entry.blob, &what)
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

fn check_role(
    layout: &ImageLayout,
    artifact: Sha256Digest,
    e: &SignatureEntry,
    actual: Option<FsVerityDigest>,
    trusted: &[Cert],
) -> RoleCheck {
    let mut check = RoleCheck {
        role: e.role.to_string(),
        signed_digest: e.digest.to_hex(),
        actual_digest: actual.map(|d| d.to_hex()),
        verified_by: None,
        signer: None,
        problem: None,
        untrusted_only: false,
    };
    let what = match e.role {
        Role::Manifest => "the stored image manifest",
        Role::Config => "the stored image config",
        Role::Merged => "the merged EROFS regenerated from the layers",
        _ => "",
    };
    if let Some(actual) = actual
        && actual != e.digest
    {
        check.problem = Some(format!(
            "{} signature covers fs-verity digest {}, but {what} has {}: the artifact \
             does not belong to this image content (or sealroot generated a different EROFS)",
            e.role,
            e.digest.to_hex(),
            actual.to_hex()
        ));
        return check;
    }
    let sig = match read_signature(layout, artifact, e) {
        Ok(s) => s,
        Err(err) => {
            check.problem = Some(err);
            return check;
        }
    };
    if trusted.is_empty() {
        check.problem = None;
        return check;
    }
    // The signature must be over the digest of the content we have, not
    // merely the one the annotation claims.
    let digest = actual.unwrap_or(e.digest);
    match verify_fsverity(&sig, &digest, trusted) {
        Ok(v) => {
            check.verified_by = Some(v.trusted);
            check.signer = Some(v.signer);
        }
        Err(err) => {
            check.untrusted_only = matches!(
                err,
                VerifyError::UnknownSigner { .. } | VerifyError::UntrustedRoot { .. }
            );
            check.problem = Some(format!("{} signature: {err}", e.role));
        }
    }
    check
}
