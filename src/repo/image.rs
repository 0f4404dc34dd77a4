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

use crate::erofs::{self, WriteOptions};
use crate::oci::artifact::VerityAlgorithm;
use crate::oci::import::ImportedLayer;
use crate::oci::layout::{ImageLayout, ResolvedImage};
use crate::oci::sink::ObjectSink;
use crate::oci::tree_target::merged_tree;
use crate::tree::Tree;
use crate::verity::FsVerityDigest;
use crate::verity::digest::digest_bytes;

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
    /// fs-verity sha256/4096 digest: what composefs calls the image digest
    /// (`composefs=<hex>`).
    pub composefs_digest: FsVerityDigest,
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
        if alg == VerityAlgorithm::SHA256_12 {
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

/// The merged EROFS of already imported layers.
pub fn merged_from_layers(layers: &[ImportedLayer]) -> Result<MergedImage, Error> {
    let tree = merged_tree(layers)?;
    let erofs = erofs::image_bytes(&tree, &write_options())?;
    Ok(MergedImage {
        composefs_digest: digest_bytes(&VerityAlgorithm::SHA256_12.params(), &erofs),
        erofs,
        tar_bytes: layers.iter().map(|l| l.tar_size).sum(),
        inodes: tree.inode_count(),
        tree,
    })
}
