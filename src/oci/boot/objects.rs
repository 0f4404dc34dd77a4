//! File contents for the bootable transformation, read again from the
//! image's layers: `oci seal`, `oci compute-id` and `deploy` keep no object
//! contents in memory, and the few policy files the transformation reads
//! are found by their digest in the layer that carried them. Content
//! addressing makes this exact: what is returned hashes to the digest the
//! merged tree records, whatever the layout holds now.

use std::io::{self, Read};

use super::ObjectReader;
use crate::oci::import::ImportedLayer;
use crate::oci::layer::{Change, EntryKind, LayerReader};
use crate::oci::layout::{ImageLayout, ResolvedImage};
use crate::oci::sink::FileContent;
use crate::verity::digest::digest_bytes;
use crate::verity::{FsVerityDigest, VerityParams};

/// Objects of an imported image, read from its layout.
#[derive(Debug)]
pub struct LayerObjects<'a> {
    layout: &'a ImageLayout,
    image: &'a ResolvedImage,
    layers: &'a [ImportedLayer],
}

impl<'a> LayerObjects<'a> {
    /// The objects of `layers`, imported from `image` in `layout`.
    pub fn new(
        layout: &'a ImageLayout,
        image: &'a ResolvedImage,
        layers: &'a [ImportedLayer],
    ) -> Self {
        LayerObjects {
            layout,
            image,
            layers,
        }
    }
}

fn holds(layer: &ImportedLayer, digest: &FsVerityDigest) -> bool {
    layer.changes.iter().any(|c| {
        matches!(c, Change::Add { kind: EntryKind::File(FileContent::External { digest: d, .. }), .. } if d == digest)
    })
}

impl ObjectReader for LayerObjects<'_> {
    fn read_object(&self, digest: &FsVerityDigest, size: u64) -> io::Result<Vec<u8>> {
        let not_found = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no layer of image {} holds it",
                    self.image.manifest_digest()
                ),
            )
        };
        let index = self
            .layers
            .iter()
            .rposition(|l| holds(l, digest))
            .ok_or_else(not_found)?;
        let (descriptor, diff_id) = self.image.layers().nth(index).ok_or_else(not_found)?;
        let what = format!(
            "layer {} of image {}",
            index + 1,
            self.image.manifest_digest()
        );
        let blob = self
            .layout
            .open_blob(descriptor, &what)
            .map_err(io::Error::other)?;
        let mut reader = LayerReader::new(blob, descriptor, diff_id).map_err(io::Error::other)?;
        let params = VerityParams::with_algorithm(digest.algorithm());
        let size_usize = usize::try_from(size).map_err(io::Error::other)?;
        while let Some(change) = reader.next_change().map_err(io::Error::other)? {
            if !matches!(change, Change::Add { kind: EntryKind::File(s), .. } if s == size) {
                continue;
            }
            let mut data = Vec::with_capacity(size_usize);
            reader.content().read_to_end(&mut data)?;
            if digest_bytes(&params, &data) == *digest {
                return Ok(data);
            }
        }
        Err(not_found())
    }
}
