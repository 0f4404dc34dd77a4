//! Inline sealing (`sealroot oci seal --inline`, docs/sealing.md): a new
//! image manifest beside the original, carrying the signatures as the
//! sealing spec's inline annotations, and a new config carrying the
//! composefs-rs label `containers.composefs.fsverity` = the merged EROFS
//! digest, so the signed config binds the EROFS.
//!
//! The layers are untouched (same blobs, same diff_ids, so the same merged
//! EROFS: it is built from the layers only). The new manifest and config are
//! new blobs, listed in index.json under the tag the user chose; the
//! original manifest, its config and its tag stay as they were.

use std::path::Path;

use crate::crypto::{Cert, Signer};
use crate::oci::artifact::{Role, VerityAlgorithm};
use crate::oci::inline::{self, InlineEntry, InlineSeal};
use crate::oci::layout::ResolvedImage;
use crate::oci::media_type::MediaType;
use crate::oci::reference::valid_ref_name;
use crate::oci::write::LayoutWriter;
use crate::oci::{Descriptor, ImageConfig, ImageManifest, Sha256Digest, Stored};
use crate::pkcs7::{SignOptions, sign_fsverity};
use crate::verity::FsVerityDigest;
use crate::verity::digest::digest_bytes;

use super::Error;

/// What inline sealing wrote.
#[derive(Debug, Clone)]
pub struct InlineSealed {
    /// The new manifest's index.json entry (tagged).
    pub manifest: Descriptor,
    /// The new (labelled) config.
    pub config: Descriptor,
    /// The tag (`org.opencontainers.image.ref.name`) it was written under.
    pub tag: String,
    /// The manifest the tag named before, when `replace_tag` replaced it.
    pub replaced: Option<Sha256Digest>,
    /// The fs-verity algorithm of the signed digests.
    pub algorithm: VerityAlgorithm,
    /// fs-verity digest of the new config (signed).
    pub config_fsverity: FsVerityDigest,
    /// fs-verity digest of the merged EROFS (signed, and the label).
    pub merged: FsVerityDigest,
}

/// What to write.
#[derive(Debug, Clone)]
pub struct InlineOptions<'a> {
    /// The tag to write the sealed manifest under.
    pub tag: &'a str,
    /// Move `tag` if it names another manifest.
    pub replace_tag: bool,
    /// How to sign (certificates to embed).
    pub sign: &'a SignOptions,
}

/// Signs `image` inline: labelled config, annotated manifest, tagged
/// `opts.tag` in the layout directory `layout_dir`. `merged` is the
/// merged EROFS digest (algorithm `algorithm`) built from its layers.
pub fn seal_inline(
    layout_dir: &Path,
    image: &ResolvedImage,
    algorithm: VerityAlgorithm,
    merged: FsVerityDigest,
    signer: &dyn Signer,
    cert: &Cert,
    opts: &InlineOptions<'_>,
) -> Result<InlineSealed, Error> {
    let refuse = |why: String| Error::Refused(format!("cannot seal inline: {why}"));
    if !valid_ref_name(opts.tag) {
        return Err(refuse(format!(
            "{:?} is not a valid tag (org.opencontainers.image.ref.name grammar, e.g. 41-sealed)",
            opts.tag
        )));
    }
    // Annotations are an OCI manifest field; a Docker schema 2 manifest
    // has none.
    let oci_manifest = match &image.manifest.media_type {
        None => image.descriptor.media_type.as_str() == MediaType::OCI_MANIFEST,
        Some(mt) => mt.as_str() == MediaType::OCI_MANIFEST,
    };
    if !oci_manifest || image.manifest.config.media_type.as_str() != MediaType::OCI_CONFIG {
        return Err(refuse(format!(
            "image {} is not an OCI image (manifest {}, config {}); inline metadata needs OCI \
             annotations: convert it first (skopeo copy --format oci)",
            image.manifest_digest(),
            image.descriptor.media_type,
            image.manifest.config.media_type
        )));
    }
    let params = algorithm.params();
    let config_bytes = inline::label_config(image.config.bytes(), &merged).map_err(refuse)?;
    let config_fsverity = digest_bytes(&params, &config_bytes);
    let entry = |role, digest| -> Result<InlineEntry, Error> {
        Ok(InlineEntry {
            role,
            digest,
            signature: Some(sign_fsverity(&digest, signer, cert, opts.sign)?),
        })
    };
    let seal = InlineSeal {
        algorithm,
        config: entry(Role::Config, config_fsverity)?,
        merged: entry(Role::Merged, merged)?,
        bootable: None,
        layer_digests: 0,
    };
    let config_desc =
        Descriptor::for_bytes(image.manifest.config.media_type.clone(), &config_bytes);
    let manifest_bytes =
        inline::annotate_manifest(image.manifest.bytes(), &config_desc, &seal).map_err(refuse)?;

    // Check what was built with the readers' rules before writing it.
    let manifest = Stored::<ImageManifest>::parse(manifest_bytes.clone())
        .map_err(|e| refuse(e.to_string()))?;
    let config =
        Stored::<ImageConfig>::parse(config_bytes.clone()).map_err(|e| refuse(e.to_string()))?;
    let reread = InlineSeal::parse(&manifest).map_err(|e| refuse(e.to_string()))?;
    let same_layers = manifest.layers.len() == image.manifest.layers.len()
        && manifest
            .layers
            .iter()
            .zip(&image.manifest.layers)
            .all(|(a, b)| a.bare() == b.bare());
    if reread.as_ref().map(|r| (&r.config, &r.merged, &r.bootable))
        != Some((&seal.config, &seal.merged, &seal.bootable))
        || config.seal_label() != Some(merged.to_hex().as_str())
        || !same_layers
        || manifest.config.digest != config.digest()
    {
        return Err(refuse(
            "the rewritten manifest or config does not read back as written (a bug)".into(),
        ));
    }

    let mut desc = Descriptor::for_bytes(MediaType::OCI_MANIFEST, &manifest_bytes);
    desc.platform = image
        .descriptor
        .platform
        .clone()
        .or_else(|| Some(image.config.platform()));
    let writer = LayoutWriter::open(layout_dir)?;
    writer.write_blob(&config_bytes)?;
    writer.write_blob(&manifest_bytes)?;
    let replaced = writer.tag(&desc, opts.tag, opts.replace_tag)?;
    Ok(InlineSealed {
        manifest: desc,
        config: config_desc,
        tag: opts.tag.to_owned(),
        replaced,
        algorithm,
        config_fsverity,
        merged,
    })
}
