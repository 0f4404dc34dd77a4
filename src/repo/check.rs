//! Offline verification of a sealed image: for every sealing artifact
//! attached to it (current and draft format) and for its inline metadata,
//! check the subject, compare each signed digest with the one recomputed
//! here (manifest and config from their stored bytes, the merged EROFS
//! regenerated from the layers), and verify every PKCS#7 against the
//! trusted certificates the way the kernel would; then say whether config
//! and EROFS are bound ([`Binding`], docs/sealing.md "Binding").

use std::io::Read;

use serde::Serialize;

use crate::crypto::{Cert, CertInfo};
use crate::oci::artifact::{ArtifactFormat, Role, SealArtifact, SignatureEntry, VerityAlgorithm};
use crate::oci::binding::BindingError;
use crate::oci::inline::InlineSeal;
use crate::oci::layout::{ImageLayout, ResolvedImage};
use crate::oci::referrers::seal_artifacts;
use crate::oci::{Descriptor, Sha256Digest};
use crate::pkcs7::{VerifyError, verify_fsverity};
use crate::verity::{FsVerityDigest, HashAlgorithm};

use super::Error;
use super::image::{MergedImage, MergedImages};
use super::seal::SealDigests;
use super::source::{BoundBy, expected_record, label_binding, record_binding};

/// The verdict on one signature of an artifact.
#[derive(Debug, Clone, Serialize)]
pub struct RoleCheck {
    /// The role's annotation (`composefs.config.fsverity-sha256-12`, ...).
    pub role: String,
    /// The digest the artifact says is signed.
    pub signed_digest: String,
    /// The digest recomputed here (none for draft per-layer EROFS).
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
    /// The artifact manifest's digest.
    pub artifact: Sha256Digest,
    /// Its artifact type (`application/vnd.composefs.metadata.v1`, or the
    /// earlier draft's); `unknown` when it does not parse.
    pub format: &'static str,
    /// The fs-verity algorithm it names, if it parses.
    pub algorithm: Option<String>,
    /// Why the artifact as a whole is invalid (structure, subject).
    pub problem: Option<String>,
    /// One verdict per signature layer.
    pub roles: Vec<RoleCheck>,
    /// The binding record, if the artifact carries one.
    pub binding: Option<RecordCheck>,
    /// The per-object signatures (sealroot extension layer, `objsig`), if
    /// the artifact carries them.
    pub object_signatures: Option<crate::objsig::check::BundleCheck>,
    /// Every signature checked out (digests and trust), the binding record
    /// and the object signatures included.
    pub verified: bool,
}

/// The verdict on an artifact's binding record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordCheck {
    /// The trusted certificate its signature verifies against.
    pub verified_by: Option<CertInfo>,
    /// What is wrong, if anything.
    pub problem: Option<String>,
    /// The problem is only an untrusted signer.
    pub untrusted_only: bool,
}

/// The verdict on the image's inline metadata (`oci seal --inline`).
#[derive(Debug, Clone, Serialize)]
pub struct InlineCheck {
    /// The fs-verity algorithm of the annotations, if they parse.
    pub algorithm: Option<String>,
    /// Why the metadata as a whole is invalid.
    pub problem: Option<String>,
    /// Config and merged EROFS (and the boot variant).
    pub roles: Vec<RoleCheck>,
    /// Every signature checked out (digests and trust).
    pub verified: bool,
}

/// Whether the image's config and merged EROFS are tied together by a
/// trusted signature, and by what.
#[derive(Debug, Clone, Serialize)]
pub struct Binding {
    /// Some trusted signature ties them together.
    pub bound: bool,
    /// Everything that does (binding record, config label, inline
    /// metadata).
    pub by: Vec<BoundBy>,
    /// Evidence against the pairing (a label naming another EROFS).
    pub problem: Option<String>,
}

fn is_broken(problem: &Option<String>, roles: &[RoleCheck]) -> bool {
    problem.is_some()
        || roles
            .iter()
            .any(|r| r.problem.is_some() && !r.untrusted_only)
}

impl ArtifactCheck {
    /// Whether a problem is evidence of tampering or breakage, as opposed
    /// to an artifact signed by a key that is simply not trusted here.
    pub fn is_broken(&self) -> bool {
        is_broken(&self.problem, &self.roles)
            || self
                .binding
                .as_ref()
                .is_some_and(|b| b.problem.is_some() && !b.untrusted_only)
            || self.object_signatures.as_ref().is_some_and(|o| {
                o.missing > 0 || o.bad > 0 || (o.problem.is_some() && !o.untrusted_only)
            })
    }
}

impl InlineCheck {
    /// Whether a problem is evidence of tampering or breakage (see
    /// [`ArtifactCheck::is_broken`]).
    pub fn is_broken(&self) -> bool {
        is_broken(&self.problem, &self.roles)
    }
}

/// Checks every sealing artifact of `image`. With no `trusted`
/// certificates, digests are compared but signatures are not verified
/// (`verified` stays false). `merged` is the EROFS regenerated from the
/// image's layers, `bootable` its bootable variant (regenerated when an
/// artifact signs one: [`super::source::signs_bootable`]).
pub fn check_artifacts(
    layout: &ImageLayout,
    image: &ResolvedImage,
    merged: &MergedImages,
    bootable: Option<&MergedImages>,
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
                binding: None,
                object_signatures: None,
                verified: false,
            },
            Ok(a) => check_one(
                layout,
                image,
                (
                    merged.for_algorithm(a.algorithm),
                    bootable.map(|b| b.for_algorithm(a.algorithm)),
                ),
                &desc,
                &a,
                trusted,
            ),
        });
    }
    Ok(out)
}

fn check_one(
    layout: &ImageLayout,
    image: &ResolvedImage,
    (merged, bootable): (&MergedImage, Option<&MergedImage>),
    desc: &Descriptor,
    a: &SealArtifact,
    trusted: &[Cert],
) -> ArtifactCheck {
    let digests = SealDigests::of(image, a.algorithm, Some(merged.digest(a.algorithm)))
        .with_bootable(bootable.map(|b| b.digest(a.algorithm)));
    let roles: Vec<RoleCheck> = a
        .entries
        .iter()
        .map(|e| {
            let sig = read_signature(layout, desc.digest, e);
            check_role(e.role, &e.digest, sig, digests.get(e.role), trusted)
        })
        .collect();
    let binding = a.binding.as_ref().map(|b| {
        let merged = merged.digest(a.algorithm);
        let bootable = a.entry(Role::MergedBootable).map(|e| e.digest);
        let expected = expected_record(image, a.algorithm, merged, bootable);
        match record_binding(b, &expected, trusted) {
            Ok(verified_by) => RecordCheck {
                verified_by,
                problem: None,
                untrusted_only: false,
            },
            Err(e) => RecordCheck {
                verified_by: None,
                untrusted_only: matches!(
                    e,
                    BindingError::Signature(
                        VerifyError::UnknownSigner { .. } | VerifyError::UntrustedRoot { .. }
                    )
                ),
                problem: Some(e.to_string()),
            },
        }
    });
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
        && binding.as_ref().is_none_or(|b| b.problem.is_none())
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
        binding,
        object_signatures,
        verified,
    }
}

/// Checks the image's inline metadata, if it has any.
pub fn check_inline(
    image: &ResolvedImage,
    merged: &MergedImages,
    trusted: &[Cert],
) -> Option<InlineCheck> {
    let seal = match InlineSeal::parse(&image.manifest) {
        Ok(None) => return None,
        Ok(Some(s)) => s,
        Err(e) => {
            return Some(InlineCheck {
                algorithm: None,
                problem: Some(e.to_string()),
                roles: Vec::new(),
                verified: false,
            });
        }
    };
    let merged = merged.for_algorithm(seal.algorithm);
    let digests = SealDigests::of(image, seal.algorithm, Some(merged.digest(seal.algorithm)));
    let roles: Vec<RoleCheck> = seal
        .entries()
        .map(|e| {
            let sig = e.signature.clone().ok_or_else(|| {
                format!(
                    "the inline {} digest has no .sig: digest-only metadata is not a seal",
                    e.role
                )
            });
            check_role(e.role, &e.digest, sig, digests.get(e.role), trusted)
        })
        .collect();
    let verified = !trusted.is_empty() && roles.iter().all(|r| r.problem.is_none());
    Some(InlineCheck {
        algorithm: Some(seal.algorithm.to_string()),
        problem: None,
        roles,
        verified,
    })
}

/// Binding of the image (after [`check_artifacts`] and [`check_inline`]):
/// the config label, or a verified (or, without certificates, matching)
/// binding record of an artifact that is not broken.
pub fn binding(
    image: &ResolvedImage,
    merged: &MergedImages,
    artifacts: &[ArtifactCheck],
) -> Binding {
    let mut by = Vec::new();
    let mut problem = None;
    if let Some(alg) = label_algorithm(image) {
        match label_binding(&image.config, &merged.for_algorithm(alg).digest(alg)) {
            Ok(true) => by.push(BoundBy::ConfigLabel),
            Ok(false) => {}
            Err(e) => problem = Some(e),
        }
    }
    for a in artifacts.iter().filter(|a| !a.is_broken()) {
        if let Some(RecordCheck {
            problem: None,
            verified_by,
            ..
        }) = &a.binding
        {
            by.push(BoundBy::BindingRecord {
                artifact: a.artifact,
                signer: verified_by.clone(),
            });
        }
    }
    Binding {
        bound: problem.is_none() && !by.is_empty(),
        by,
        problem,
    }
}

/// The algorithm of the config label `containers.composefs.fsverity`
/// (its length says it).
fn label_algorithm(image: &ResolvedImage) -> Option<VerityAlgorithm> {
    image.config.seal_label().and_then(|l| match l.len() {
        64 => Some(VerityAlgorithm::SHA256_12),
        128 => "fsverity-sha512-12".parse().ok(),
        _ => None,
    })
}

/// The fs-verity hash algorithms of the image's seals (its sealing
/// artifacts, its inline metadata, its config label), each once: the
/// object algorithms [`check_artifacts`], [`check_inline`] and [`binding`]
/// need a merged EROFS of ([`MergedImages`]). sha256 when it has none.
pub fn seal_algorithms(
    layout: &ImageLayout,
    image: &ResolvedImage,
) -> Result<Vec<HashAlgorithm>, Error> {
    let mut out: Vec<HashAlgorithm> = seal_artifacts(layout, &image.manifest)?
        .into_iter()
        .filter_map(|(_, a)| a.ok().map(|a| a.algorithm.hash))
        .collect();
    if let Ok(Some(s)) = InlineSeal::parse(&image.manifest) {
        out.push(s.algorithm.hash);
    }
    out.extend(label_algorithm(image).map(|a| a.hash));
    if out.is_empty() {
        out.push(HashAlgorithm::Sha256);
    }
    let first = out[0];
    out.sort();
    out.dedup();
    // The first seal's algorithm first: its EROFS is the one reported.
    out.retain(|&a| a != first);
    out.insert(0, first);
    Ok(out)
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
    role: Role,
    signed: &FsVerityDigest,
    sig: Result<Vec<u8>, String>,
    actual: Option<FsVerityDigest>,
    trusted: &[Cert],
) -> RoleCheck {
    let mut check = RoleCheck {
        role: role.to_string(),
        signed_digest: signed.to_hex(),
        actual_digest: actual.map(|d| d.to_hex()),
        verified_by: None,
        signer: None,
        problem: None,
        untrusted_only: false,
    };
    let what = match role {
        Role::Manifest => "the stored image manifest",
        Role::Config => "the stored image config",
        Role::Merged => "the merged EROFS regenerated from the layers",
        Role::MergedBootable => "the bootable variant regenerated from the layers",
        _ => "",
    };
    if let Some(actual) = actual
        && actual != *signed
    {
        check.problem = Some(format!(
            "{role} signature covers fs-verity digest {}, but {what} has {}: the signature \
             does not belong to this image content (or sealroot generated a different EROFS)",
            signed.to_hex(),
            actual.to_hex()
        ));
        return check;
    }
    let sig = match sig {
        Ok(s) => s,
        Err(err) => {
            check.problem = Some(err);
            return check;
        }
    };
    if trusted.is_empty() {
        return check;
    }
    // The signature must be over the digest of the content we have, not
    // merely the one the annotation claims.
    let digest = actual.unwrap_or(*signed);
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
            check.problem = Some(format!("{role} signature: {err}"));
        }
    }
    check
}
