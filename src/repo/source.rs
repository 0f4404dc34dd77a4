//! Where a sealed image's signatures come from, on the host: one of its
//! sealing artifacts, or its own manifest (inline mode); and what binds its
//! config to its merged EROFS (docs/sealing.md, "Binding").
//!
//! `deploy` picks a source with [`choose`]; `oci verify` reports binding
//! with [`label_binding`] and [`record_binding`]; `fsck` and
//! `enable-verity` read a deployed image's signatures with [`deployed`].

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::crypto::{Cert, CertInfo};
use crate::oci::artifact::{Role, SealArtifact, VerityAlgorithm};
use crate::oci::binding::{BindingError, BindingRecord, LabelBinding, SignedBinding, config_label};
use crate::oci::inline::InlineSeal;
use crate::oci::layout::{ImageLayout, ResolvedImage};
use crate::oci::manifest::ImageManifest;
use crate::oci::referrers::seal_artifacts;
use crate::oci::stored::Stored;
use crate::oci::{Descriptor, ImageConfig, Sha256Digest};
use crate::pkcs7::verify_fsverity;
use crate::verity::FsVerityDigest;

use super::Error;
use super::check::read_signature;
use super::dir::PathError;
use super::json::Deployment;
use super::seal::SealDigests;
use super::store::{MAX_BLOB_SIZE, Repository};

/// What ties an image's config to its merged EROFS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum BoundBy {
    /// The signed config's `containers.composefs.fsverity` label names the
    /// EROFS.
    ConfigLabel,
    /// A sealing artifact's binding record names manifest, config and
    /// EROFS (`signer`: who signed it, when certificates were given).
    BindingRecord {
        /// The artifact manifest's digest.
        artifact: Sha256Digest,
        /// The certificate that signed the record.
        signer: Option<CertInfo>,
    },
}

impl std::fmt::Display for BoundBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundBy::ConfigLabel => f.write_str("the config's containers.composefs.fsverity label"),
            BoundBy::BindingRecord { artifact, signer } => {
                write!(f, "the binding record of artifact {artifact}")?;
                match signer {
                    Some(s) => write!(f, ", signed by {s}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The config label's verdict: `Ok(true)` binds, `Ok(false)` says nothing,
/// `Err` names another EROFS (the config belongs to another image).
pub fn label_binding(config: &ImageConfig, merged: &FsVerityDigest) -> Result<bool, String> {
    match config_label(config, merged) {
        LabelBinding::Binds => Ok(true),
        LabelBinding::Absent | LabelBinding::OtherAlgorithm(_) => Ok(false),
        LabelBinding::Mismatch(label) => Err(format!(
            "the config's label containers.composefs.fsverity={label} names another EROFS than \
             {}: config and EROFS belong to different images",
            merged.to_hex()
        )),
    }
}

/// What the binding record of an artifact of `image` must say.
pub fn expected_record(
    image: &ResolvedImage,
    algorithm: VerityAlgorithm,
    merged: FsVerityDigest,
    bootable: Option<FsVerityDigest>,
) -> BindingRecord {
    BindingRecord {
        manifest: image.manifest_digest(),
        config: image.manifest.config_digest(),
        algorithm,
        merged,
        bootable,
    }
}

/// Checks a binding record against what the image is, and its signature
/// against `trusted` (when given). `Ok(signer)` binds.
pub fn record_binding(
    binding: &SignedBinding,
    expected: &BindingRecord,
    trusted: &[Cert],
) -> Result<Option<CertInfo>, BindingError> {
    if trusted.is_empty() {
        binding.record.check(expected)?;
        return Ok(None);
    }
    binding.verify(expected, trusted).map(|v| Some(v.trusted))
}

/// Where the chosen signatures are.
// A handful of values per deploy: boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SealSource {
    /// A signature artifact referring to the image.
    Artifact {
        /// Its descriptor in the layout.
        descriptor: Descriptor,
        /// Its manifest, as stored.
        manifest: Stored<ImageManifest>,
        /// Its manifest, parsed as an artifact.
        artifact: SealArtifact,
    },
    /// The image manifest's own annotations (inline sealing).
    Inline(InlineSeal),
}

/// A signature source that matches the image, with its PKCS#7s loaded.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Where the signatures are.
    pub source: SealSource,
    /// (role, signed digest, DER): manifest (artifact mode only), config,
    /// merged EROFS.
    pub signatures: Vec<(Role, FsVerityDigest, Vec<u8>)>,
    /// Trusted certificates the signatures verified against.
    pub verified_by: Vec<CertInfo>,
    /// `None` when the merged digest was not known yet, or nothing binds.
    pub bound_by: Option<BoundBy>,
}

impl Chosen {
    /// The artifact's digest (`None` inline).
    pub fn artifact(&self) -> Option<Sha256Digest> {
        match &self.source {
            SealSource::Artifact { descriptor, .. } => Some(descriptor.digest),
            SealSource::Inline(_) => None,
        }
    }

    /// The PKCS#7 of one role, if the source has it.
    pub fn signature(&self, role: Role) -> Option<&[u8]> {
        self.signatures
            .iter()
            .find(|(r, _, _)| *r == role)
            .map(|(_, _, d)| d.as_slice())
    }
}

/// What [`choose`] needs besides the image.
#[derive(Debug, Clone, Copy)]
pub struct Choice<'a> {
    /// The repository's fs-verity algorithm (sources of another are
    /// skipped).
    pub algorithm: VerityAlgorithm,
    /// The signatures must verify against these (none: not checked).
    pub trusted: &'a [Cert],
    /// Only this artifact.
    pub artifact: Option<Sha256Digest>,
    /// Accept an image nothing binds (`deploy --allow-unbound`).
    pub allow_unbound: bool,
}

/// Whether a sealing artifact of `image` signs a bootable variant (then
/// deploy and verify regenerate it, to compare and to store it).
pub fn signs_bootable(layout: &ImageLayout, image: &ResolvedImage) -> Result<bool, Error> {
    Ok(seal_artifacts(layout, &image.manifest)?
        .into_iter()
        .any(|(_, a)| a.is_ok_and(|a| a.entry(Role::MergedBootable).is_some())))
}

/// Picks the signature source for `image`: its sealing artifacts in
/// index.json order, a bound one first, then its inline metadata. With
/// `digests.merged` unknown (before the layers were read), only what is
/// known is checked and binding is not decided.
pub fn choose(
    layout: &ImageLayout,
    image: &ResolvedImage,
    digests: &SealDigests,
    choice: &Choice<'_>,
) -> Result<Chosen, Error> {
    let alg = choice.algorithm;
    let mut reasons = Vec::new();
    let mut unbound: Option<Chosen> = None;
    let label = match digests.merged {
        Some(m) => label_binding(&image.config, &m).map_err(|e| {
            Error::Refused(format!(
                "image {} cannot be deployed: {e}",
                image.manifest_digest()
            ))
        })?,
        None => false,
    };
    let mut candidates: Vec<Result<Chosen, String>> = Vec::new();
    for (desc, parsed) in seal_artifacts(layout, &image.manifest)? {
        if let Some(want) = choice.artifact
            && desc.digest != want
        {
            continue;
        }
        candidates.push(match parsed {
            Err(e) => Err(e.to_string()),
            Ok(a) if a.algorithm != alg => Err(format!(
                "artifact {} uses {}, the repository {alg}",
                desc.digest, a.algorithm
            )),
            Ok(a) => from_artifact(layout, image, &desc, a, digests, choice)
                .map_err(|e| format!("artifact {}: {e}", desc.digest)),
        });
    }
    if choice.artifact.is_none() {
        match InlineSeal::parse(&image.manifest) {
            Ok(None) => {}
            Err(e) => candidates.push(Err(e.to_string())),
            Ok(Some(s)) => candidates.push(from_inline(s, digests, choice)),
        }
    }
    for c in candidates {
        match c {
            Err(e) => reasons.push(e),
            Ok(mut c) => {
                if label && c.bound_by.is_none() {
                    c.bound_by = Some(BoundBy::ConfigLabel);
                }
                if c.bound_by.is_some() || digests.merged.is_none() {
                    return Ok(c);
                }
                unbound.get_or_insert(c);
            }
        }
    }
    if let Some(c) = unbound {
        if choice.allow_unbound {
            return Ok(c);
        }
        return Err(Error::Refused(format!(
            "image {} is not bound: no signed binding record and no config label ties its \
             config to its merged EROFS, so sealroot-prepare refuses it with `[verify] \
             require-binding = yes` (the default). Reseal it with this sealroot (`sealroot oci \
             seal` writes a binding record, `--inline` a labelled config), or deploy with \
             --allow-unbound for an initramfs that sets require-binding = no",
            image.manifest_digest()
        )));
    }
    let why = if reasons.is_empty() {
        match choice.artifact {
            Some(d) => format!("no sealing artifact {d} refers to it"),
            None => "no sealing artifact refers to it and its manifest has no inline signatures; \
                     seal it with `sealroot oci seal`"
                .into(),
        }
    } else {
        reasons.join("; ")
    };
    Err(Error::Refused(format!(
        "image {} cannot be deployed: {why}",
        image.manifest_digest()
    )))
}

fn from_artifact(
    layout: &ImageLayout,
    image: &ResolvedImage,
    desc: &Descriptor,
    a: SealArtifact,
    digests: &SealDigests,
    choice: &Choice<'_>,
) -> Result<Chosen, String> {
    let mut signatures = Vec::new();
    let mut verified_by = Vec::new();
    // The bootable variant: optional in an artifact, checked like the
    // others when it is there.
    let bootable = a
        .entry(Role::MergedBootable)
        .map(|_| (Role::MergedBootable, digests.bootable));
    for (role, actual) in digests.roles().into_iter().chain(bootable) {
        let e = a
            .entry(role)
            .ok_or_else(|| format!("no {role} signature"))?;
        let Some(actual) = actual else {
            // Known whenever the merged EROFS is: deploy regenerates it
            // when an artifact signs one (signs_bootable).
            if role == Role::MergedBootable && digests.merged.is_some() {
                return Err("it signs a bootable variant, which was not regenerated".into());
            }
            // Unknown yet (checked again once the layers are imported).
            continue;
        };
        let der = read_signature(layout, desc.digest, e)?;
        check_signature(
            role,
            &e.digest,
            actual,
            &der,
            choice.trusted,
            &mut verified_by,
        )?;
        signatures.push((role, actual, der));
    }
    let bound_by = match (&a.binding, digests.merged) {
        (Some(b), Some(merged)) => {
            let bootable = a.entry(Role::MergedBootable).map(|e| e.digest);
            let expected = expected_record(image, choice.algorithm, merged, bootable);
            let signer = record_binding(b, &expected, choice.trusted).map_err(|e| e.to_string())?;
            Some(BoundBy::BindingRecord {
                artifact: desc.digest,
                signer,
            })
        }
        _ => None,
    };
    let manifest: Stored<ImageManifest> = layout
        .read_json(desc, "sealing artifact")
        .map_err(|e| e.to_string())?;
    Ok(Chosen {
        source: SealSource::Artifact {
            descriptor: desc.clone(),
            manifest,
            artifact: a,
        },
        signatures,
        verified_by,
        bound_by,
    })
}

fn from_inline(
    seal: InlineSeal,
    digests: &SealDigests,
    choice: &Choice<'_>,
) -> Result<Chosen, String> {
    let what = "inline metadata of the manifest";
    if seal.algorithm != choice.algorithm {
        return Err(format!(
            "{what} uses {}, the repository {}",
            seal.algorithm, choice.algorithm
        ));
    }
    let mut signatures = Vec::new();
    let mut verified_by = Vec::new();
    for (role, actual) in digests.roles() {
        if role == Role::Manifest {
            continue;
        }
        let e = seal
            .entry(role)
            .ok_or_else(|| format!("{what}: no {role} entry"))?;
        let der = e.signature.clone().ok_or_else(|| {
            format!(
                "{what}: the {role} digest is not signed (digest-only inline metadata); seal it \
                 with `sealroot oci seal --inline`"
            )
        })?;
        let Some(actual) = actual else { continue };
        check_signature(
            role,
            &e.digest,
            actual,
            &der,
            choice.trusted,
            &mut verified_by,
        )
        .map_err(|e| format!("{what}: {e}"))?;
        signatures.push((role, actual, der));
    }
    Ok(Chosen {
        source: SealSource::Inline(seal),
        signatures,
        verified_by,
        bound_by: None,
    })
}

fn check_signature(
    role: Role,
    signed: &FsVerityDigest,
    actual: FsVerityDigest,
    der: &[u8],
    trusted: &[Cert],
    verified_by: &mut Vec<CertInfo>,
) -> Result<(), String> {
    if *signed != actual {
        return Err(format!(
            "its {role} signature covers {}, but this image's {role} has fs-verity digest {}",
            signed.to_hex(),
            actual.to_hex()
        ));
    }
    if !trusted.is_empty() {
        let v = verify_fsverity(der, &actual, trusted)
            .map_err(|err| format!("{role} signature: {err}"))?;
        if !verified_by.contains(&v.trusted) {
            verified_by.push(v.trusted);
        }
    }
    Ok(())
}

/// Why a deployed image's signatures, or one of them, cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeployedError {
    /// A file could not be read through the repository's safe paths
    /// (missing, a symlink, a FIFO, hard-linked, ...).
    #[error(transparent)]
    Path(#[from] PathError),
    /// A file was read but is not what the deployment needs.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl DeployedError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DeployedError::Path(e) => e.path(),
            DeployedError::Invalid { path, .. } => path,
        }
    }

    /// The message without the leading path.
    pub fn reason(&self) -> String {
        match self {
            DeployedError::Path(e) => e.reason(),
            DeployedError::Invalid { reason, .. } => reason.clone(),
        }
    }
}

impl From<DeployedError> for Error {
    fn from(e: DeployedError) -> Error {
        match e {
            DeployedError::Path(e) => Error::Path(e),
            e @ DeployedError::Invalid { .. } => Error::Refused(e.to_string()),
        }
    }
}

/// One role's signed digest and its PKCS#7 (or why it cannot be read).
#[derive(Debug)]
pub struct DeployedSignature {
    /// The role (manifest, config, merged EROFS).
    pub role: Role,
    /// The digest the source says is signed.
    pub signed: FsVerityDigest,
    /// The file that holds the PKCS#7 (a signature blob, or the inline
    /// manifest), for messages.
    pub at: PathBuf,
    /// The DER PKCS#7, or why it could not be read.
    pub der: Result<Vec<u8>, DeployedError>,
}

/// The signatures of a deployed image, from its artifact in the
/// repository or from its (inline-sealed) manifest: for every role that
/// has one (inline mode has no manifest signature), the signed digest and
/// the PKCS#7, read only now (a missing blob is that role's error, so
/// callers that need no PKCS#7 are not stopped by it). Every file is read
/// through the repository's safe paths (`repo::dir`).
pub fn deployed(
    repo: &Repository,
    d: &Deployment,
    manifest: &Stored<ImageManifest>,
) -> Result<Vec<DeployedSignature>, DeployedError> {
    let read = |digest: &Sha256Digest| repo.dir().read_file(repo.blob_rel(digest), MAX_BLOB_SIZE);
    let Some(artifact) = d.artifact else {
        let mpath = repo.display(repo.blob_rel(&d.manifest.0));
        let invalid = |reason: String| DeployedError::Invalid {
            path: mpath.clone(),
            reason,
        };
        let seal = InlineSeal::parse(manifest)
            .map_err(|e| invalid(e.to_string()))?
            .ok_or_else(|| {
                invalid(
                    "deployment.json names no artifact, and this manifest has no inline \
                     signatures"
                        .into(),
                )
            })?;
        return Ok(seal
            .entries()
            .map(|e| DeployedSignature {
                role: e.role,
                signed: e.digest,
                at: mpath.clone(),
                der: e
                    .signature
                    .clone()
                    .ok_or_else(|| invalid(format!("the inline {} digest is not signed", e.role))),
            })
            .collect());
    };
    let invalid = |reason: String| DeployedError::Invalid {
        path: repo.display(repo.blob_rel(&artifact)),
        reason,
    };
    let stored = Stored::<ImageManifest>::parse(read(&artifact)?)
        .map_err(|e| invalid(format!("not a sealing artifact: {e}")))?;
    let a = SealArtifact::parse(&stored).map_err(|e| invalid(e.to_string()))?;
    a.check_subject(artifact, manifest)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(a.entries
        .iter()
        .filter(|e| {
            matches!(
                e.role,
                Role::Manifest | Role::Config | Role::Merged | Role::MergedBootable
            )
        })
        .map(|e| DeployedSignature {
            role: e.role,
            signed: e.digest,
            at: repo.display(repo.blob_rel(&e.blob.digest)),
            der: read(&e.blob.digest).map_err(DeployedError::from),
        })
        .collect())
}
