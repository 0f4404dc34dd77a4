//! Sealing: sign the fs-verity digests of an image's stored manifest, its
//! config and its merged EROFS (and of its bootable variant, when it has
//! one: `oci::boot`), and attach the signatures to the image as a
//! composefs sealing artifact (a referrer in the same layout), with a
//! signed binding record that ties the three together
//! (`oci::binding`). Inline sealing (a new, annotated manifest) is in
//! `seal_inline`.
//!
//! Nothing of the image changes: the artifact is new blobs plus one new,
//! untagged index.json entry (`oci::write`). Sealing again with another key
//! adds a second artifact; sealing again with the same RSA key rewrites the
//! same bytes (PKCS#1 v1.5 and RFC 6979 ECDSA are deterministic).

use std::path::Path;

use crate::crypto::{Cert, Signer};
use crate::oci::artifact::{self, Role, VerityAlgorithm};
use crate::oci::binding::{BindingRecord, SignedBinding};
use crate::oci::layout::ResolvedImage;
use crate::oci::write::LayoutWriter;
use crate::oci::{Descriptor, Sha256Digest};
use crate::pkcs7::{SignOptions, sign_fsverity};
use crate::verity::FsVerityDigest;
use crate::verity::digest::digest_bytes;

use super::Error;

/// The digests an artifact signs, in the spec's order: the three every
/// artifact has, and the bootable variant's when the image has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealDigests {
    /// The fs-verity digest of the stored manifest bytes.
    pub manifest: FsVerityDigest,
    /// The fs-verity digest of the stored config bytes.
    pub config: FsVerityDigest,
    /// Unknown until the layers were read.
    pub merged: Option<FsVerityDigest>,
    /// The bootable variant's (`oci::boot`): `None` when it is not
    /// signed (sealing) or was not computed (deploy, verify).
    pub bootable: Option<FsVerityDigest>,
}

impl SealDigests {
    /// The digests of `image`'s stored manifest and config bytes and of its
    /// merged EROFS (`merged`, computed with `alg` by the caller).
    pub fn of(image: &ResolvedImage, alg: VerityAlgorithm, merged: Option<FsVerityDigest>) -> Self {
        let params = alg.params();
        SealDigests {
            manifest: digest_bytes(&params, image.manifest.bytes()),
            config: digest_bytes(&params, image.config.bytes()),
            merged,
            bootable: None,
        }
    }

    /// With the bootable variant's digest.
    pub fn with_bootable(mut self, bootable: Option<FsVerityDigest>) -> Self {
        self.bootable = bootable;
        self
    }

    /// The three roles every artifact signs (the bootable one is optional:
    /// [`SealDigests::bootable`]).
    pub fn roles(&self) -> [(Role, Option<FsVerityDigest>); 3] {
        [
            (Role::Manifest, Some(self.manifest)),
            (Role::Config, Some(self.config)),
            (Role::Merged, self.merged),
        ]
    }

    /// The digest of one role, if known.
    pub fn get(&self, role: Role) -> Option<FsVerityDigest> {
        if role == Role::MergedBootable {
            return self.bootable;
        }
        self.roles()
            .into_iter()
            .find(|(r, _)| *r == role)
            .and_then(|(_, d)| d)
    }
}

/// What sealing wrote.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The artifact manifest's descriptor (as listed in index.json).
    pub artifact: Descriptor,
    /// The fs-verity algorithm of the signed digests.
    pub algorithm: VerityAlgorithm,
    /// The digests signed.
    pub digests: SealDigests,
    /// sha256 of each signature blob, in role order.
    pub signature_blobs: Vec<(Role, Sha256Digest)>,
    /// The signed binding record (in the artifact's annotations).
    pub binding: SignedBinding,
}

/// Signs `digests` with `signer` (certificate `cert`) and writes the
/// artifact into the layout directory `layout_dir` as a referrer of
/// `image`, with sealroot `extensions` (e.g. the per-object signature
/// bundle, `objsig`) after the signature layers.
#[allow(clippy::too_many_arguments)]
pub fn seal(
    layout_dir: &Path,
    image: &ResolvedImage,
    algorithm: VerityAlgorithm,
    digests: &SealDigests,
    signer: &dyn Signer,
    cert: &Cert,
    options: &SignOptions,
    extensions: &[(Descriptor, Vec<u8>)],
) -> Result<Sealed, Error> {
    let mut signatures = Vec::new();
    for (role, digest) in digests.roles() {
        let digest = digest.ok_or_else(|| {
            Error::Refused(format!("cannot seal: the {role} digest is not known"))
        })?;
        let der = sign_fsverity(&digest, signer, cert, options)?;
        signatures.push((role, digest, der));
    }
    if let Some(digest) = digests.bootable {
        let der = sign_fsverity(&digest, signer, cert, options)?;
        signatures.push((Role::MergedBootable, digest, der));
    }
    // The binding record names all three (and the bootable variant), signed like them
    // (docs/sealing.md, "Binding").
    let merged = digests.merged.ok_or_else(|| {
        Error::Refused("cannot seal: the merged EROFS digest is not known".into())
    })?;
    let record = BindingRecord {
        manifest: image.manifest_digest(),
        config: image.manifest.config_digest(),
        algorithm,
        merged,
        bootable: digests.bootable,
    };
    let digest = SignedBinding::digest_of(&record)
        .ok_or_else(|| Error::Refused("the binding record exceeds one fs-verity block".into()))?;
    let der = sign_fsverity(&digest, signer, cert, options)?;
    let binding = SignedBinding::new(record, digest, der);
    let subject = image
        .manifest
        .descriptor(image.descriptor.media_type.clone());
    let built = artifact::build_with_extensions(
        &subject,
        algorithm,
        &signatures,
        Some(&binding),
        extensions,
    )?;
    let writer = LayoutWriter::open(layout_dir)?;
    let descriptor = writer.write_artifact(&built)?;
    Ok(Sealed {
        artifact: descriptor,
        algorithm,
        digests: digests.clone(),
        signature_blobs: signatures
            .iter()
            .map(|(r, _, der)| (*r, Sha256Digest::of(der)))
            .collect(),
        binding,
    })
}
