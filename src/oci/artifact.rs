//! The composefs sealing artifact: an OCI artifact manifest carrying PKCS#7
//! fs-verity signatures of an image's manifest, config and merged EROFS,
//! attached to the image as a referrer (`subject`).
//!
//! Two spellings exist and both are read into one model, [`SealArtifact`]:
//!
//! - **current** (composefs-rs `crates/composefs-oci/src/sealing_spec.rs`):
//!   `artifactType: application/vnd.composefs.metadata.v1`; each layer has
//!   exactly one role annotation whose key names role and algorithm and
//!   whose value is the hex fs-verity digest:
//!   `composefs.manifest.fsverity-sha256-12`, `composefs.config.…`,
//!   `composefs.merged.erofs.v1.…`, optionally `composefs.merged.bootable.erofs.v1.…`,
//!   in that order;
//! - **draft** (composefs-rs commit b470f73, `doc/plans/oci-sealing-spec.md`):
//!   `artifactType: application/vnd.composefs.signature.v1`, the algorithm in
//!   the manifest annotation `composefs.algorithm`, and per layer
//!   `composefs.signature.type` (`manifest`, `config`, `layer` — one per image
//!   layer, a per-layer EROFS — `merged`) plus `composefs.digest`.
//!
//! Both: empty config (`application/vnd.oci.empty.v1+json`, the 2-byte `{}`),
//! `subject` = the signed image manifest's descriptor built from its stored
//! bytes, layers of type `application/vnd.composefs.signature.v1+pkcs7`, each
//! a DER PKCS#7 over the kernel's `fsverity_formatted_digest`, all entries
//! of one algorithm. sealroot writes only the current form.
//!
//! Validation is strict: wrong order, duplicate roles, mixed algorithms,
//! mixed spellings, unknown roles and missing required roles are errors.
//!
//! The spec makes manifest and config signatures optional only when there
//! are no signatures at all; since every layer of this artifact *is* a
//! signature, manifest, config and merged are all required.
//!
//! sealroot's extensions, which readers that do not know them ignore:
//! - a signed binding record in the artifact's top-level annotations
//!   (`sealroot.binding.v1*`, [`super::binding`]); any other `sealroot.*`
//!   key there is an error;
//! - extension layers after all signature layers, of a media type below
//!   [`EXTENSION_PREFIX`] (`application/vnd.sealroot.`) that this module
//!   knows ([`EXTENSION_LAYERS`]: today the per-object signature bundle,
//!   `objsig`, docs/sealing.md), each at most once; they carry no role and
//!   are kept in [`SealArtifact::extensions`]. An unknown sealroot media
//!   type, a signature layer after an extension, or an extension in a
//!   draft artifact is an error.
//!
//! Layers are told apart by media type in [`layer_kind`], the one place
//! that knows them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::binding::SignedBinding;
use super::descriptor::Descriptor;
use super::digest::{ManifestDigest, Sha256Digest};
use super::keys::{self, KeyRole};
use super::manifest::ImageManifest;
use super::media_type::MediaType;
use super::stored::Stored;
use crate::verity::{BlockSize, FsVerityDigest, HashAlgorithm, Salt, VerityParams};

/// The kernel's limit on a builtin signature (`FS_VERITY_MAX_SIGNATURE_SIZE`
/// in `fs/verity/fsverity_private.h`: a page minus the descriptor); a
/// larger blob could never be passed to `FS_IOC_ENABLE_VERITY`.
pub const MAX_SIGNATURE_SIZE: u64 = 16128;

/// The empty JSON blob `{}` and its digest (image-spec manifest.md,
/// "Guidance for an Empty Descriptor").
pub const EMPTY_JSON: &[u8] = b"{}";

/// Media type prefix of sealroot's extension layers.
pub const EXTENSION_PREFIX: &str = "application/vnd.sealroot.";

/// The extension layers this sealroot knows: media type, and the
/// `sealroot.*` annotation keys such a layer may carry.
pub const EXTENSION_LAYERS: &[(&str, &[&str])] = &[(
    MediaType::SEALROOT_OBJECT_SIGNATURES,
    &[keys::OBJECT_SIGNATURES_COUNT],
)];

const DRAFT_ALGORITHM: &str = "composefs.algorithm";
const DRAFT_TYPE: &str = "composefs.signature.type";
const DRAFT_DIGEST: &str = "composefs.digest";

/// `fsverity-<hash>-<log2 block size>`, e.g. `fsverity-sha256-12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerityAlgorithm {
    /// The hash (sha256 or sha512).
    pub hash: HashAlgorithm,
    /// The Merkle tree block size.
    pub block_size: BlockSize,
}

impl VerityAlgorithm {
    /// sha256 with 4 KiB blocks: what composefs objects use.
    pub const SHA256_12: VerityAlgorithm = VerityAlgorithm {
        hash: HashAlgorithm::Sha256,
        block_size: BlockSize::DEFAULT,
    };

    /// fs-verity parameters (the spec fixes "no salt").
    pub fn params(&self) -> VerityParams {
        VerityParams {
            algorithm: self.hash,
            block_size: self.block_size,
            salt: Salt::default(),
        }
    }
}

impl fmt::Display for VerityAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fsverity-{}-{}", self.hash, self.block_size.log2())
    }
}

/// An algorithm identifier that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid fs-verity algorithm {0:?}: expected fsverity-<sha256|sha512>-<10..16>, \
     e.g. fsverity-sha256-12"
)]
pub struct AlgorithmError(pub String);

impl FromStr for VerityAlgorithm {
    type Err = AlgorithmError;
    fn from_str(s: &str) -> Result<Self, AlgorithmError> {
        let err = || AlgorithmError(s.to_owned());
        let rest = s.strip_prefix("fsverity-").ok_or_else(err)?;
        let (hash, bits) = rest.split_once('-').ok_or_else(err)?;
        let hash: HashAlgorithm = hash.parse().map_err(|_| err())?;
        // Only canonical decimal: "12", not "012" or "+12".
        if bits.is_empty()
            || bits.len() > 2
            || bits.starts_with('0')
            || !bits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let log: u8 = bits.parse().map_err(|_| err())?;
        let block_size = BlockSize::from_log2(log).map_err(|_| err())?;
        Ok(VerityAlgorithm { hash, block_size })
    }
}

/// Which file a signature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The image manifest, as stored.
    Manifest,
    /// The image config, as stored.
    Config,
    /// Draft format only: the EROFS of image layer N (0-based).
    Layer(usize),
    /// The merged EROFS of the whole image.
    Merged,
    /// The boot variant of the merged EROFS.
    MergedBootable,
}

impl Role {
    /// Position in the required order.
    fn rank(self) -> u8 {
        match self {
            Role::Manifest => 0,
            Role::Config => 1,
            Role::Layer(_) => 2,
            Role::Merged => 3,
            Role::MergedBootable => 4,
        }
    }

    /// The annotation key of this role in the current format.
    pub fn annotation_key(self, alg: VerityAlgorithm) -> Option<String> {
        let role = match self {
            Role::Manifest => "manifest",
            Role::Config => "config",
            Role::Merged => "merged.erofs.v1",
            Role::MergedBootable => "merged.bootable.erofs.v1",
            Role::Layer(_) => return None,
        };
        Some(format!("composefs.{role}.{alg}"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Manifest => f.write_str("manifest"),
            Role::Config => f.write_str("config"),
            Role::Layer(i) => write!(f, "layer {}", i + 1),
            Role::Merged => f.write_str("merged EROFS"),
            Role::MergedBootable => f.write_str("bootable merged EROFS"),
        }
    }
}

/// Which spelling an artifact uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactFormat {
    /// `application/vnd.composefs.metadata.v1`.
    MetadataV1,
    /// `application/vnd.composefs.signature.v1` (earlier draft).
    SignatureDraft,
}

/// One signature of an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureEntry {
    /// Which file it signs (the layer's annotation).
    pub role: Role,
    /// The fs-verity digest the signature covers.
    pub digest: FsVerityDigest,
    /// The PKCS#7 blob.
    pub blob: Descriptor,
}

/// A parsed, validated sealing artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealArtifact {
    /// Current spec or earlier draft.
    pub format: ArtifactFormat,
    /// The fs-verity algorithm of every signed digest.
    pub algorithm: VerityAlgorithm,
    /// The signed image manifest.
    pub subject: Descriptor,
    /// The signature layers, in the spec's role order.
    pub entries: Vec<SignatureEntry>,
    /// sealroot's signed binding record, when the artifact carries one.
    pub binding: Option<SignedBinding>,
    /// sealroot's extension layers after the signatures, in order (each
    /// media type at most once).
    pub extensions: Vec<Descriptor>,
}

/// Why a manifest is not a valid sealing artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// Another `artifactType` (or none).
    #[error("artifact {artifact}: artifactType is {found:?}, not a composefs sealing artifact")]
    NotSealArtifact {
        /// The artifact manifest's digest.
        artifact: Sha256Digest,
        /// The `artifactType` found.
        found: Option<String>,
    },
    /// The manifest's shape breaks the spec (config, layer order, subject).
    #[error("artifact {artifact}: {reason}")]
    Structure {
        /// The artifact manifest's digest.
        artifact: Sha256Digest,
        /// Why.
        reason: String,
    },
    /// One signature layer is malformed.
    #[error("artifact {artifact}, signature layer {index}: {reason}")]
    Entry {
        /// The artifact manifest's digest.
        artifact: Sha256Digest,
        /// The layer's position, from 1.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A required role has no signature.
    #[error(
        "artifact {artifact} has no {role} signature; a sealed image needs manifest, config and merged EROFS signatures"
    )]
    Missing {
        /// The artifact manifest's digest.
        artifact: Sha256Digest,
        /// The role without a signature.
        role: Role,
    },
    /// The artifact refers to another image manifest.
    #[error("artifact {artifact} signs image {subject}, not {image}; it belongs to another image")]
    WrongSubject {
        /// The artifact manifest's digest.
        artifact: Sha256Digest,
        /// The manifest it refers to.
        subject: Sha256Digest,
        /// The image being checked.
        image: Sha256Digest,
    },
    /// Building an artifact failed (the inputs are inconsistent).
    #[error("cannot build artifact: {0}")]
    Build(String),
}

impl SealArtifact {
    /// Parses and validates an artifact manifest.
    pub fn parse(manifest: &Stored<ImageManifest>) -> Result<Self, ArtifactError> {
        let artifact = manifest.digest();
        let structure = |reason: String| ArtifactError::Structure { artifact, reason };
        let format = match manifest.artifact_type.as_ref().map(MediaType::as_str) {
            Some(MediaType::COMPOSEFS_METADATA_V1) => ArtifactFormat::MetadataV1,
            Some(MediaType::COMPOSEFS_SIGNATURE_V1) => ArtifactFormat::SignatureDraft,
            other => {
                return Err(ArtifactError::NotSealArtifact {
                    artifact,
                    found: other.map(str::to_owned),
                });
            }
        };
        if let Some(mt) = &manifest.media_type {
            if mt != MediaType::OCI_MANIFEST {
                return Err(structure(format!(
                    "mediaType is {mt}, expected {}",
                    MediaType::OCI_MANIFEST
                )));
            }
        }
        let c = &manifest.config;
        if c.media_type != MediaType::OCI_EMPTY
            || c.digest != Sha256Digest::of(EMPTY_JSON)
            || c.size != 2
        {
            return Err(structure(format!(
                "config must be the empty descriptor ({}, {}, size 2), found {} {} size {}",
                MediaType::OCI_EMPTY,
                Sha256Digest::of(EMPTY_JSON),
                c.media_type,
                c.digest,
                c.size
            )));
        }
        let subject = manifest
            .subject
            .clone()
            .ok_or_else(|| structure("no subject: it does not say which image it signs".into()))?;
        if !subject.media_type.is_manifest() {
            return Err(structure(format!(
                "subject is a {}, expected an image manifest",
                subject.media_type
            )));
        }
        let split = manifest
            .layers
            .iter()
            .position(|d| layer_kind(d) == LayerKind::Extension)
            .unwrap_or(manifest.layers.len());
        let (layers, extensions) = manifest.layers.split_at(split);
        for (i, d) in extensions.iter().enumerate() {
            check_extension(artifact, split + i, d, &extensions[..i])?;
        }
        if !extensions.is_empty() && format == ArtifactFormat::SignatureDraft {
            return Err(structure(format!(
                "a {} layer: sealroot's extension layers belong only in a metadata.v1 artifact",
                extensions[0].media_type
            )));
        }
        if layers.is_empty() {
            return Err(structure("no signature layers".into()));
        }

        let (algorithm, entries) = match format {
            ArtifactFormat::MetadataV1 => parse_current(manifest, layers)?,
            ArtifactFormat::SignatureDraft => parse_draft(manifest, layers)?,
        };

        // Order and uniqueness (Layer(i) entries are numbered in order).
        for (i, pair) in entries.windows(2).enumerate() {
            let (a, b) = (pair[0].role, pair[1].role);
            if a.rank() == b.rank() && !matches!(a, Role::Layer(_)) {
                return Err(ArtifactError::Entry {
                    artifact,
                    index: i + 1,
                    reason: format!("a second {b} signature"),
                });
            }
            if a.rank() > b.rank() {
                return Err(ArtifactError::Entry {
                    artifact,
                    index: i + 1,
                    reason: format!(
                        "{b} signature after {a}; the order is manifest, config, merged, bootable"
                    ),
                });
            }
        }
        let has = |want: Role| {
            entries.iter().any(|e| match want {
                Role::Layer(_) => matches!(e.role, Role::Layer(_)),
                r => e.role == r,
            })
        };
        let required: &[Role] = match format {
            ArtifactFormat::MetadataV1 => &[Role::Manifest, Role::Config, Role::Merged],
            // The draft requires the layer group; the others may be absent.
            ArtifactFormat::SignatureDraft => &[Role::Layer(0)],
        };
        if let Some(&role) = required.iter().find(|&&r| !has(r)) {
            return Err(ArtifactError::Missing { artifact, role });
        }
        let binding = match format {
            ArtifactFormat::MetadataV1 => {
                SignedBinding::from_annotations(&manifest.annotations, algorithm)
                    .map_err(structure)?
            }
            ArtifactFormat::SignatureDraft => {
                if let Some(k) = manifest
                    .annotations
                    .keys()
                    .find(|k| k.starts_with(keys::SEALROOT))
                {
                    return Err(structure(format!(
                        "{k}: a binding record belongs only in a metadata.v1 artifact"
                    )));
                }
                None
            }
        };
        Ok(SealArtifact {
            format,
            algorithm,
            subject,
            entries,
            binding,
            extensions: extensions.to_vec(),
        })
    }

    /// The first extension layer of `media_type`, if any.
    pub fn extension(&self, media_type: &str) -> Option<&Descriptor> {
        self.extensions.iter().find(|d| d.media_type == media_type)
    }

    /// The signature for `role`, if present.
    pub fn entry(&self, role: Role) -> Option<&SignatureEntry> {
        self.entries.iter().find(|e| e.role == role)
    }

    /// The signed image manifest's digest, with its role.
    pub fn subject_digest(&self) -> ManifestDigest {
        ManifestDigest(self.subject.digest)
    }

    /// Checks that this artifact signs `image` (digest and size of its
    /// stored bytes; for the draft format, one layer signature per layer).
    pub fn check_subject(
        &self,
        artifact: Sha256Digest,
        image: &Stored<ImageManifest>,
    ) -> Result<(), ArtifactError> {
        if self.subject.digest != image.digest() || self.subject.size != image.bytes().len() as u64
        {
            return Err(ArtifactError::WrongSubject {
                artifact,
                subject: self.subject.digest,
                image: image.digest(),
            });
        }
        if self.format == ArtifactFormat::SignatureDraft {
            let n = self
                .entries
                .iter()
                .filter(|e| matches!(e.role, Role::Layer(_)))
                .count();
            if n != image.layers.len() {
                return Err(ArtifactError::Structure {
                    artifact,
                    reason: format!(
                        "{n} layer signatures for an image of {} layers",
                        image.layers.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// What a layer of a sealing artifact is, by its media type: the one place
/// layer kinds are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerKind {
    /// The spec's signature layer (one DER PKCS#7).
    Signature,
    /// A sealroot extension layer (known or not: [`check_extension`]
    /// decides).
    Extension,
    Unknown,
}

fn layer_kind(d: &Descriptor) -> LayerKind {
    let t = d.media_type.as_str();
    if t == MediaType::COMPOSEFS_SIGNATURE_PKCS7 {
        LayerKind::Signature
    } else if t.starts_with(EXTENSION_PREFIX) {
        LayerKind::Extension
    } else {
        LayerKind::Unknown
    }
}

/// Checks extension layer `index` (after all signature layers; `before`
/// are the extensions ahead of it): a media type this sealroot knows, once,
/// not empty, and only its own annotations.
fn check_extension(
    artifact: Sha256Digest,
    index: usize,
    d: &Descriptor,
    before: &[Descriptor],
) -> Result<(), ArtifactError> {
    let entry = |reason: String| ArtifactError::Entry {
        artifact,
        index,
        reason,
    };
    match layer_kind(d) {
        LayerKind::Extension => {}
        LayerKind::Signature => {
            return Err(entry(
                "a signature layer after sealroot's extension layers; extensions come last".into(),
            ));
        }
        LayerKind::Unknown => {
            return Err(entry(format!(
                "media type is {}, after sealroot's extension layers (which come last)",
                d.media_type
            )));
        }
    }
    let Some((_, allowed)) = EXTENSION_LAYERS
        .iter()
        .find(|(t, _)| *t == d.media_type.as_str())
    else {
        return Err(entry(format!(
            "unknown sealroot extension layer {} (this sealroot knows {}); written by a newer \
             sealroot?",
            d.media_type,
            EXTENSION_LAYERS
                .iter()
                .map(|(t, _)| *t)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    if before.iter().any(|b| b.media_type == d.media_type) {
        return Err(entry(format!("a second {} layer", d.media_type)));
    }
    if d.size == 0 {
        return Err(entry(format!("an empty {} layer", d.media_type)));
    }
    for key in d.annotations.keys() {
        if key.starts_with(keys::COMPOSEFS)
            || (key.starts_with(keys::SEALROOT) && !allowed.contains(&key.as_str()))
        {
            return Err(entry(format!(
                "annotation {key} does not belong on a {} layer",
                d.media_type
            )));
        }
    }
    Ok(())
}

/// Checks a signature layer.
fn check_layer(
    artifact: Sha256Digest,
    index: usize,
    blob: &Descriptor,
) -> Result<(), ArtifactError> {
    let entry = |reason: String| ArtifactError::Entry {
        artifact,
        index,
        reason,
    };
    if layer_kind(blob) != LayerKind::Signature {
        return Err(entry(format!(
            "media type is {}, expected {}: a sealing artifact carries signature layers (and \
             sealroot's extension layers after them) only",
            blob.media_type,
            MediaType::COMPOSEFS_SIGNATURE_PKCS7
        )));
    }
    if blob.size == 0 || blob.size > MAX_SIGNATURE_SIZE {
        return Err(entry(format!(
            "signature is {} bytes; the kernel accepts 1 to {MAX_SIGNATURE_SIZE}",
            blob.size
        )));
    }
    Ok(())
}

fn parse_digest(
    artifact: Sha256Digest,
    index: usize,
    alg: VerityAlgorithm,
    hex: &str,
) -> Result<FsVerityDigest, ArtifactError> {
    keys::parse_digest(alg, hex).map_err(|reason| ArtifactError::Entry {
        artifact,
        index,
        reason,
    })
}

/// The role of a signature layer's `composefs.<role>.<alg>` key.
fn parse_role_key(key: &str) -> Result<(Role, VerityAlgorithm), String> {
    let k = keys::parse(key)?.ok_or("not a composefs key")?;
    if k.signature {
        return Err(format!(
            "{key}: a signature layer's annotation names the digest it signs, without .sig"
        ));
    }
    let role = match k.role {
        KeyRole::Manifest => Role::Manifest,
        KeyRole::Config => Role::Config,
        KeyRole::Merged => Role::Merged,
        KeyRole::MergedBootable => Role::MergedBootable,
        KeyRole::Layer => {
            return Err("per-layer EROFS entries belong in image manifests (inline mode), not in a sealing artifact".into());
        }
        KeyRole::Binding => {
            return Err(format!(
                "{key}: the binding record travels in the artifact's annotations, not as a \
                 signature layer"
            ));
        }
    };
    Ok((role, k.algorithm))
}

fn parse_current(
    manifest: &Stored<ImageManifest>,
    layers: &[Descriptor],
) -> Result<(VerityAlgorithm, Vec<SignatureEntry>), ArtifactError> {
    let artifact = manifest.digest();
    if manifest.annotations.contains_key(DRAFT_ALGORITHM) {
        return Err(ArtifactError::Structure {
            artifact,
            reason: format!("mixes formats: {DRAFT_ALGORITHM} belongs to the draft artifact type"),
        });
    }
    let mut algorithm: Option<VerityAlgorithm> = None;
    let mut entries = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let entry = |reason: String| ArtifactError::Entry {
            artifact,
            index,
            reason,
        };
        check_layer(artifact, index, layer)?;
        if layer.annotations.contains_key(DRAFT_TYPE)
            || layer.annotations.contains_key(DRAFT_DIGEST)
        {
            return Err(entry(
                "mixes formats: draft annotations in a metadata.v1 artifact".into(),
            ));
        }
        let keys: Vec<(&String, &String)> = layer
            .annotations
            .iter()
            .filter(|(k, _)| k.starts_with(keys::COMPOSEFS) || k.starts_with(keys::SEALROOT))
            .collect();
        let (key, value) = match keys.as_slice() {
            [one] => *one,
            [] => {
                return Err(entry(
                    "no composefs.<role>.fsverity-<alg>-<bits> annotation".into(),
                ));
            }
            more => {
                return Err(entry(format!(
                    "{} role annotations; each signature has exactly one",
                    more.len()
                )));
            }
        };
        let (role, alg) = parse_role_key(key).map_err(entry)?;
        match algorithm {
            None => algorithm = Some(alg),
            Some(first) if first != alg => {
                return Err(entry(format!(
                    "uses {alg} but earlier entries use {first}; all entries must use one algorithm"
                )));
            }
            Some(_) => {}
        }
        entries.push(SignatureEntry {
            role,
            digest: parse_digest(artifact, index, alg, value)?,
            blob: layer.bare(),
        });
    }
    // Non-empty layers were checked by the caller, so an algorithm was set.
    let algorithm = algorithm.ok_or_else(|| ArtifactError::Structure {
        artifact,
        reason: "no signature layers".into(),
    })?;
    Ok((algorithm, entries))
}

fn parse_draft(
    manifest: &Stored<ImageManifest>,
    layers: &[Descriptor],
) -> Result<(VerityAlgorithm, Vec<SignatureEntry>), ArtifactError> {
    let artifact = manifest.digest();
    let structure = |reason: String| ArtifactError::Structure { artifact, reason };
    let alg = manifest.annotations.get(DRAFT_ALGORITHM).ok_or_else(|| {
        structure(format!(
            "the draft format needs the {DRAFT_ALGORITHM} annotation"
        ))
    })?;
    let algorithm: VerityAlgorithm = alg
        .parse()
        .map_err(|e: AlgorithmError| structure(e.to_string()))?;
    let mut entries = Vec::new();
    let mut layer_no = 0;
    for (index, layer) in layers.iter().enumerate() {
        let entry = |reason: String| ArtifactError::Entry {
            artifact,
            index,
            reason,
        };
        check_layer(artifact, index, layer)?;
        if let Some(k) = layer
            .annotations
            .keys()
            .find(|k| k.starts_with("composefs.") && k.contains(".fsverity-"))
        {
            return Err(entry(format!(
                "mixes formats: {k} belongs to the metadata.v1 artifact type"
            )));
        }
        let kind = layer
            .annotations
            .get(DRAFT_TYPE)
            .ok_or_else(|| entry(format!("no {DRAFT_TYPE} annotation")))?;
        let role = match kind.as_str() {
            "manifest" => Role::Manifest,
            "config" => Role::Config,
            "layer" => {
                layer_no += 1;
                Role::Layer(layer_no - 1)
            }
            "merged" => Role::Merged,
            other => return Err(entry(format!("unknown {DRAFT_TYPE} {other:?}"))),
        };
        let hex = layer
            .annotations
            .get(DRAFT_DIGEST)
            .ok_or_else(|| entry(format!("no {DRAFT_DIGEST} annotation")))?;
        entries.push(SignatureEntry {
            role,
            digest: parse_digest(artifact, index, algorithm, hex)?,
            blob: layer.bare(),
        });
    }
    Ok((algorithm, entries))
}

/// An artifact ready to be written: the manifest bytes and every blob.
#[derive(Debug, Clone)]
pub struct BuiltArtifact {
    /// The artifact manifest, exactly as it is to be stored.
    pub manifest: Vec<u8>,
    /// Its descriptor, with `artifactType` (as index.json lists it).
    pub descriptor: Descriptor,
    /// The empty config and the signature blobs.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    artifact_type: &'a str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
    subject: &'a Descriptor,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// Builds a current-format artifact signing `subject` (the descriptor of
/// the image manifest's stored bytes). `signatures` are (role, signed
/// fs-verity digest, DER PKCS#7) in the required order; `binding`, when
/// given, goes into the artifact's annotations.
pub fn build(
    subject: &Descriptor,
    algorithm: VerityAlgorithm,
    signatures: &[(Role, FsVerityDigest, Vec<u8>)],
    binding: Option<&SignedBinding>,
) -> Result<BuiltArtifact, ArtifactError> {
    build_with_extensions(subject, algorithm, signatures, binding, &[])
}

/// [`build`] plus sealroot extension layers (descriptor with its media type
/// and annotations, blob), appended after the signatures; only the kinds
/// [`EXTENSION_LAYERS`] lists (the built artifact is parsed back).
pub fn build_with_extensions(
    subject: &Descriptor,
    algorithm: VerityAlgorithm,
    signatures: &[(Role, FsVerityDigest, Vec<u8>)],
    binding: Option<&SignedBinding>,
    extensions: &[(Descriptor, Vec<u8>)],
) -> Result<BuiltArtifact, ArtifactError> {
    let err = |s: String| ArtifactError::Build(s);
    if !subject.media_type.is_manifest() {
        return Err(err(format!(
            "the subject is a {}, not an image manifest",
            subject.media_type
        )));
    }
    let config = Descriptor::for_bytes(MediaType::OCI_EMPTY, EMPTY_JSON);
    let mut blobs = vec![(config.clone(), EMPTY_JSON.to_vec())];
    let mut layers = Vec::new();
    for (role, digest, der) in signatures {
        if digest.algorithm() != algorithm.hash {
            return Err(err(format!("{role} digest {digest} is not {algorithm}")));
        }
        let key = role
            .annotation_key(algorithm)
            .ok_or_else(|| err(format!("{role} signatures exist only in the draft format")))?;
        let mut d = Descriptor::for_bytes(MediaType::COMPOSEFS_SIGNATURE_PKCS7, der);
        d.annotations = BTreeMap::from([(key, digest.to_hex())]);
        layers.push(d.clone());
        blobs.push((d, der.clone()));
    }
    for (d, blob) in extensions {
        if layer_kind(d) != LayerKind::Extension {
            return Err(err(format!(
                "extension layer of type {} does not start with {EXTENSION_PREFIX}",
                d.media_type
            )));
        }
        let mut layer = Descriptor::for_bytes(d.media_type.as_str(), blob);
        layer.annotations = d.annotations.clone();
        layers.push(layer.clone());
        blobs.push((layer, blob.clone()));
    }
    let bare_subject = subject.bare();
    let out = ManifestOut {
        schema_version: 2,
        media_type: MediaType::OCI_MANIFEST,
        artifact_type: MediaType::COMPOSEFS_METADATA_V1,
        config: &config,
        layers: &layers,
        subject: &bare_subject,
        annotations: binding.map(SignedBinding::annotations).unwrap_or_default(),
    };
    let manifest = serde_json::to_vec(&out).map_err(|e| err(e.to_string()))?;
    // Validate what we built with the same rules a reader applies.
    let stored =
        Stored::<ImageManifest>::parse(manifest.clone()).map_err(|e| err(e.to_string()))?;
    SealArtifact::parse(&stored).map_err(|e| err(e.to_string()))?;
    let mut descriptor = Descriptor::for_bytes(MediaType::OCI_MANIFEST, &manifest);
    descriptor.artifact_type = Some(MediaType::new(MediaType::COMPOSEFS_METADATA_V1));
    Ok(BuiltArtifact {
        manifest,
        descriptor,
        blobs,
    })
}

#[cfg(test)]
mod tests;
