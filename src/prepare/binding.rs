//! Is the EROFS this image's, and is the image recent enough?
//! (docs/sealing.md "Binding", docs/prepare.md `[verify]`)
//!
//! Each signature of an image covers one file, so signatures alone do not
//! say that the signed config and the signed EROFS were signed *together*:
//! a forged (unsigned) artifact could pair this image's manifest and config
//! with another image's EROFS. An image is **bound** when a trusted
//! signature covers the pairing:
//!
//! - the signed config's label `containers.composefs.fsverity` names the
//!   EROFS (composefs-rs; `sealroot oci seal --inline` writes it), or
//! - the artifact's binding record, signed by a trusted certificate, names
//!   this manifest, this config and this EROFS (`sealroot oci seal`).
//!
//! Evidence *against* the pairing always refuses: a label naming another
//! EROFS of this algorithm, a binding record that names something else or
//! whose signature does not verify. Missing evidence refuses under
//! `require-binding = yes` (the default).
//!
//! The rollback floor, `min-created`, compares the config's `created`: a
//! signed value, but one that speaks for the EROFS only if the image is
//! bound, so a floor refuses unbound images whatever `require-binding` says.

use crate::crypto::CertInfo;
use crate::oci::artifact::Role;
use crate::oci::binding::{BindingRecord, LabelBinding, config_label};
use crate::oci::config::COMPOSEFS_SEAL_LABEL;
use crate::oci::{ConfigDigest, ImageConfig, ManifestDigest, Stored};
use crate::timestamp::Timestamp;
use crate::verity::FsVerityDigest;

use super::signatures::Source;
use super::verify::{Policy, VerifyError, refused};

/// What was established about binding and age (status.json `binding`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BindingProof {
    /// What binds config and EROFS: `config-label`, `binding-record`
    /// (both, if both do); empty when nothing does (allowed only with
    /// `require-binding = no`).
    pub bound_by: Vec<&'static str>,
    /// The trusted certificate the binding record's signature rests on.
    pub record_trusted_by: Option<CertInfo>,
    /// The config's `created`, when `min-created` was checked.
    pub created: Option<String>,
    /// The floor it was compared with.
    pub min_created: Option<String>,
}

/// The image being verified, as far as binding needs it.
#[derive(Debug)]
pub struct Image<'a> {
    /// The image manifest's digest.
    pub manifest: ManifestDigest,
    /// The config's digest, as the manifest names it.
    pub config_digest: ConfigDigest,
    /// The config, read and checked against that digest.
    pub config: &'a Stored<ImageConfig>,
    /// The merged EROFS digest the source signs.
    pub merged: FsVerityDigest,
}

/// Decides binding and the floor for `image`; refuses on evidence against
/// the pairing, on missing evidence under `require-binding`, and on an
/// image older than the floor.
pub fn check(
    source: &Source,
    image: &Image<'_>,
    policy: &Policy<'_>,
) -> Result<BindingProof, VerifyError> {
    let m_what = format!("image {}", image.manifest);
    let mut proof = BindingProof::default();
    match config_label(image.config, &image.merged) {
        LabelBinding::Binds => proof.bound_by.push("config-label"),
        LabelBinding::Mismatch(label) => {
            return Err(refused(
                format!("config {}", image.config_digest),
                format!(
                    "its label {COMPOSEFS_SEAL_LABEL}={label} names another EROFS than the \
                     signed {}: config and EROFS belong to different images",
                    image.merged
                ),
            ));
        }
        LabelBinding::Absent | LabelBinding::OtherAlgorithm(_) => {}
    }
    if let Some(binding) = source.binding() {
        let expected = BindingRecord {
            manifest: image.manifest,
            config: image.config_digest,
            algorithm: source.algorithm(),
            merged: image.merged,
            bootable: source.digest(Role::MergedBootable),
        };
        let verified = binding
            .verify(&expected, policy.certs)
            .map_err(|e| refused(source.describe(), e.to_string()))?;
        proof.bound_by.push("binding-record");
        proof.record_trusted_by = Some(verified.trusted);
    }
    let bound = !proof.bound_by.is_empty();
    if !bound && policy.require_binding {
        return Err(refused(
            &m_what,
            format!(
                "not bound: neither a signed binding record nor the config's \
                 {COMPOSEFS_SEAL_LABEL} label ties config {} to merged EROFS {}, so the EROFS \
                 could be another image's. Reseal the image with this sealroot (`sealroot oci \
                 seal` writes a binding record, `--inline` a labelled config), or accept unbound \
                 images with `require-binding = no` in [verify] of the initramfs's \
                 /etc/sealroot/prepare.conf",
                image.config_digest, image.merged
            ),
        ));
    }
    if let Some(floor) = policy.min_created {
        proof.min_created = Some(floor.to_string());
        if !bound {
            return Err(refused(
                &m_what,
                format!(
                    "[verify] min-created = {floor} is set, but the image is not bound: its \
                     config's created time says nothing about its EROFS; reseal it with this \
                     sealroot"
                ),
            ));
        }
        let text = image.config.created.as_deref().ok_or_else(|| {
            refused(
                &m_what,
                format!(
                    "[verify] min-created = {floor} is set, but config {} has no created time",
                    image.config_digest
                ),
            )
        })?;
        proof.created = Some(text.to_owned());
        let created = Timestamp::parse(text).map_err(|e| {
            refused(
                &m_what,
                format!("config {}: created: {e}", image.config_digest),
            )
        })?;
        if created < *floor {
            return Err(refused(
                &m_what,
                format!(
                    "created {created}, older than [verify] min-created = {floor}: refusing to \
                     boot an image older than the rollback floor (select a newer image)"
                ),
            ));
        }
    }
    Ok(proof)
}
