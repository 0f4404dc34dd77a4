//! Where a deployment's signatures come from (docs/sealing.md, "Two
//! modes"), as one type the verification flow asks for each role:
//!
//! - [`Source::Artifact`]: the sealing artifact `deployment.json` names,
//!   unsigned itself, bound to the image by its `subject`; manifest,
//!   config and EROFS signatures as blobs, and possibly a signed binding
//!   record;
//! - [`Source::Inline`]: `deployment.json` names no artifact; the image's
//!   own manifest carries config and EROFS signatures in its annotations.
//!   There is no manifest signature: the manifest is trusted as far as its
//!   sha256 is (the selector, or the hint that led to it), and the EROFS is
//!   bound to the signed config by the config's label.
//!
//! [`load`] reads the manifest the way its mode requires (signed file, or
//! digest only) and returns it with its source; from there on the flow is
//! the same for both.

use super::files::{Expected, open_present, open_signed, read_document};
use super::repo::{Repo, blob_path};
use super::verify::{FileProof, Policy, VerifyError, refused};
use crate::oci::artifact::{Role, SealArtifact, VerityAlgorithm};
use crate::oci::binding::SignedBinding;
use crate::oci::inline::InlineSeal;
use crate::oci::stored::{MAX_JSON_SIZE, Stored};
use crate::oci::{Descriptor, ImageManifest, ManifestDigest, Sha256Digest};
use crate::repo::json::Deployment;
use crate::verity::FsVerityDigest;

/// Largest artifact manifest read (a few signature descriptors and the
/// binding record: a few KiB in practice).
const MAX_ARTIFACT_SIZE: u64 = 1 << 20;

/// The signatures of one deployment.
// One value per boot: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Source {
    /// A signature artifact referring to the manifest (the composefs OCI
    /// sealing spec's artifact mode).
    Artifact {
        /// The artifact manifest's digest.
        digest: Sha256Digest,
        /// The artifact, parsed.
        artifact: SealArtifact,
    },
    /// Digests and signatures in the image manifest's annotations (inline
    /// mode).
    Inline(InlineSeal),
}

/// Where a role's PKCS#7 is.
#[derive(Debug)]
pub enum Pkcs7<'a> {
    /// A blob of the artifact (`blobs/sha256/<hex>` in the repository).
    Blob(&'a Descriptor),
    /// Decoded from the manifest's `.sig` annotation.
    Inline(&'a [u8]),
}

/// One role's signed digest and its signature.
#[derive(Debug)]
pub struct Signed<'a> {
    /// Which file it signs (manifest, config, merged EROFS).
    pub role: Role,
    /// The fs-verity digest it signs.
    pub digest: FsVerityDigest,
    /// Where the PKCS#7 is.
    pub pkcs7: Pkcs7<'a>,
    /// "the artifact" / "the manifest's inline annotations", for messages.
    pub source: &'static str,
}

impl Source {
    /// The fs-verity algorithm of the signed digests.
    pub fn algorithm(&self) -> VerityAlgorithm {
        match self {
            Source::Artifact { artifact, .. } => artifact.algorithm,
            Source::Inline(s) => s.algorithm,
        }
    }

    /// The artifact's digest (`None` inline).
    pub fn artifact(&self) -> Option<Sha256Digest> {
        match self {
            Source::Artifact { digest, .. } => Some(*digest),
            Source::Inline(_) => None,
        }
    }

    /// Names the source in messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Artifact { digest, .. } => format!("signature artifact {digest}"),
            Source::Inline(_) => "the manifest's inline sealing metadata".into(),
        }
    }

    /// The signed binding record (artifact mode, when sealed with one).
    pub fn binding(&self) -> Option<&SignedBinding> {
        match self {
            Source::Artifact { artifact, .. } => artifact.binding.as_ref(),
            Source::Inline(_) => None,
        }
    }

    /// The signed digest of `role`, if the source has one (no error: the
    /// boot variant is optional).
    pub fn digest(&self, role: Role) -> Option<FsVerityDigest> {
        match self {
            Source::Artifact { artifact, .. } => artifact.entry(role).map(|e| e.digest),
            Source::Inline(s) => s.entry(role).map(|e| e.digest),
        }
    }

    /// The signature of `role`; a refusal if the source has none.
    pub fn signed(&self, role: Role) -> Result<Signed<'_>, VerifyError> {
        let missing = || {
            refused(
                self.describe(),
                format!("signature missing: it has no {role} signature"),
            )
        };
        match self {
            Source::Artifact { artifact, .. } => {
                let e = artifact.entry(role).ok_or_else(missing)?;
                Ok(Signed {
                    role,
                    digest: e.digest,
                    pkcs7: Pkcs7::Blob(&e.blob),
                    source: "the artifact",
                })
            }
            Source::Inline(s) => {
                let e = s.entry(role).ok_or_else(missing)?;
                let der = e.signature.as_deref().ok_or_else(missing)?;
                Ok(Signed {
                    role,
                    digest: e.digest,
                    pkcs7: Pkcs7::Inline(der),
                    source: "the manifest's inline annotations",
                })
            }
        }
    }
}

/// Reads the manifest `manifest_digest` and finds its signatures: with an
/// artifact (`hint.artifact`), the artifact first (its sha256, its
/// structure, its subject), then the manifest as a signed file; inline,
/// the manifest by its sha256, then its annotations. The manifest's proof
/// is `None` inline (nothing signs it).
pub fn load(
    repo: &Repo,
    hint: &Deployment,
    manifest_digest: ManifestDigest,
    policy: &Policy<'_>,
) -> Result<(Source, Stored<ImageManifest>, Option<FileProof>), VerifyError> {
    let m_path = blob_path(&manifest_digest.0);
    let m_what = format!("manifest {manifest_digest}");
    let m_expected = Expected {
        digest: manifest_digest.0,
        size: None,
        limit: MAX_JSON_SIZE,
    };
    let Some(artifact_digest) = hint.artifact else {
        let mut file = open_present(repo, &m_path, &m_what)?;
        let manifest =
            read_document::<ImageManifest>(repo, &mut file, &m_path, &m_what, &m_expected)?;
        let seal = InlineSeal::parse(&manifest)
            .map_err(|e| refused(&m_what, e.to_string()))?
            .ok_or_else(|| {
                refused(
                    &m_what,
                    "deployment.json names no sealing artifact, and the manifest carries no \
                     inline sealing metadata (composefs.* annotations): nothing signs this image",
                )
            })?;
        return Ok((Source::Inline(seal), manifest, None));
    };

    let a_path = blob_path(&artifact_digest);
    let a_what = format!("signature artifact {artifact_digest}");
    let mut file = open_present(repo, &a_path, &a_what)?;
    let stored = read_document::<ImageManifest>(
        repo,
        &mut file,
        &a_path,
        &a_what,
        &Expected {
            digest: artifact_digest,
            size: None,
            limit: MAX_ARTIFACT_SIZE,
        },
    )?;
    let artifact = SealArtifact::parse(&stored).map_err(|e| refused(&a_what, e.to_string()))?;
    if artifact.subject.digest != manifest_digest.0 {
        return Err(refused(
            &a_what,
            format!(
                "artifact subject mismatch: it signs image {}, not {manifest_digest}",
                artifact.subject.digest
            ),
        ));
    }
    let source = Source::Artifact {
        digest: artifact_digest,
        artifact,
    };
    let signed = source.signed(Role::Manifest)?;
    // Attaching uses the artifact's parameters (the spec fixes "no salt").
    let params = source.algorithm().params();
    let (mut m_file, m_proof) =
        open_signed(repo, &m_path, &m_what, &signed, &params, hint, policy)?;
    let manifest =
        read_document::<ImageManifest>(repo, &mut m_file, &m_path, &m_what, &m_expected)?;
    if let Source::Artifact { artifact, .. } = &source {
        artifact
            .check_subject(artifact_digest, &manifest)
            .map_err(|e| refused(&a_what, format!("artifact subject mismatch: {e}")))?;
    }
    Ok((source, manifest, Some(m_proof)))
}
