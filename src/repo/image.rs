//! From an OCI image to its merged composefs EROFS.
//!
//! Reproducible by construction: the tree is built from the layers' tar
//! metadata only (mode, owner, mtime, xattrs, content digests) — nothing
//! from the machine, the clock or the layout's files — and the EROFS writer
//! is deterministic (breadth-first, sorted names, a fixed format version).
//! The same image therefore gives the same EROFS bytes, hence the same
//! fs-verity digest, on any machine.
//!
//! Format version 1 (`mkcomposefs --min-version=1 --max-version=1`), which
//! is what composefs-rs generates by default for OCI images (its "V1",
//! `cfsctl oci compute-id`): a verifier following the composefs-rs sealing
//! spec regenerates the same merged EROFS, so artifacts interoperate.
//! Checked by hand against cfsctl 0.9.0 built from composefs-rs f22ecda: the
//! same image gives the same digest.

use crate::erofs::objects::ImageObjects;
use crate::erofs::{self, WriteOptions};
use crate::oci::artifact::VerityAlgorithm;
use crate::oci::boot::ObjectReader;
use crate::oci::import::ImportedLayer;
use crate::oci::layout::{ImageLayout, ResolvedImage};
use crate::oci::sink::ObjectSink;
use crate::oci::tree_target::merged_tree;
use crate::tree::Tree;
use crate::verity::digest::digest_bytes;
use crate::verity::{FsVerityDigest, HashAlgorithm, VerityParams};

use super::Error;

/// The EROFS options every sealed image is written with. Changing them
/// changes every image digest: they are part of the format.
pub fn write_options() -> WriteOptions {
    WriteOptions {
        min_version: 1,
        max_version: 1,
    }
}

/// An image's merged EROFS, in memory (metadata only: a few hundred bytes
/// per file).
#[derive(Debug)]
pub struct MergedImage {
    /// The EROFS image's bytes.
    pub erofs: Vec<u8>,
    /// fs-verity digest of the EROFS with its objects' algorithm (4096-byte
    /// blocks): what composefs calls the image digest (`composefs=<hex>`,
    /// `cfsctl oci compute-id` in a repository of that algorithm).
    pub composefs_digest: FsVerityDigest,
    /// The algorithm of the object digests the EROFS records (that of the
    /// sink the layers were imported through); sha256 for an image
    /// without external files.
    pub objects: HashAlgorithm,
    /// Uncompressed tar bytes read.
    pub tar_bytes: u64,
    /// Inodes in the merged tree.
    pub inodes: usize,
    /// The merged tree it was written from.
    pub tree: Tree,
}

impl MergedImage {
    /// fs-verity digest of the EROFS with `alg` (what a sealing artifact
    /// signs and `images/<hex>` is named by).
    pub fn digest(&self, alg: VerityAlgorithm) -> FsVerityDigest {
        if alg.params() == VerityParams::with_algorithm(self.objects) {
            return self.composefs_digest;
        }
        digest_bytes(&alg.params(), &self.erofs)
    }
}

/// Reads every layer (verifying blob digests and diff_ids), storing file
/// contents through `sink`, and writes the merged EROFS.
pub fn build_merged(
    layout: &ImageLayout,
    image: &ResolvedImage,
    sink: &dyn ObjectSink,
) -> Result<MergedImage, Error> {
    let layers = crate::oci::import::import_layers(layout, image, sink)?;
    merged_from_layers(&layers)
}

/// The bootable variant of `merged` (`oci::boot`: what `cfsctl oci
/// compute-id --bootable` computes and the `merged.bootable` role signs),
/// reading the SELinux policy files through `objects`.
pub fn bootable_of(merged: &MergedImage, objects: &dyn ObjectReader) -> Result<MergedImage, Error> {
    let mut tree = merged.tree.clone();
    crate::oci::boot::transform(&mut tree, objects)?;
    let erofs = erofs::image_bytes(&tree, &write_options())?;
    // The transform only empties directories, relabels and splits links:
    // the objects, and so their algorithm, are the merged image's.
    Ok(MergedImage {
        composefs_digest: digest_bytes(&VerityParams::with_algorithm(merged.objects), &erofs),
        objects: merged.objects,
        erofs,
        tar_bytes: merged.tar_bytes,
        inodes: tree.inode_count(),
        tree,
    })
}

/// The merged EROFS of already imported layers.
pub fn merged_from_layers(layers: &[ImportedLayer]) -> Result<MergedImage, Error> {
    let tree = merged_tree(layers)?;
    let erofs = erofs::image_bytes(&tree, &write_options())?;
    // The sink hashes every object with one algorithm, so the tree cannot
    // mix them; an image of inline files only has none and counts as sha256.
    let objects = ImageObjects::of_tree(&tree)
        .map_err(|e| Error::Refused(format!("the merged image: {e}")))?
        .algorithm()
        .unwrap_or(HashAlgorithm::Sha256);
    Ok(MergedImage {
        composefs_digest: digest_bytes(&VerityParams::with_algorithm(objects), &erofs),
        objects,
        erofs,
        tar_bytes: layers.iter().map(|l| l.tar_size).sum(),
        inodes: tree.inode_count(),
        tree,
    })
}

/// An image's merged EROFS for each object algorithm its seals use: a
/// seal of `fsverity-sha512-12` signs the EROFS whose objects are sha512
/// (composefs-rs: one algorithm per repository, `cfsctl init --algorithm`),
/// so checking an image sealed with both algorithms needs both.
#[derive(Debug)]
pub struct MergedImages(Vec<MergedImage>);

impl MergedImages {
    /// The set, with the EROFS of the first object algorithm.
    pub fn new(first: MergedImage) -> Self {
        MergedImages(vec![first])
    }

    /// Adds the EROFS of another object algorithm.
    pub fn push(&mut self, merged: MergedImage) {
        self.0.push(merged);
    }

    /// The first one added.
    pub fn first(&self) -> &MergedImage {
        &self.0[0]
    }

    /// The EROFS a seal of `alg` signs: the one whose objects use `alg`'s
    /// hash; the first when none does (its digests then simply differ
    /// from the signed ones, and the check says so).
    pub fn for_algorithm(&self, alg: VerityAlgorithm) -> &MergedImage {
        self.0
            .iter()
            .find(|m| m.objects == alg.hash)
            .unwrap_or(&self.0[0])
    }
}
