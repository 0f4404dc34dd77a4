//! Importing an image: every layer streamed once, its files stored through
//! an [`ObjectSink`], then the layers applied in order to a tree.
//!
//! Layers are independent until they are applied, so they are read in
//! parallel (one rayon task per layer: decompression, sha256 of blob and tar
//! stream, fs-verity hashing of the files it contains); what each produces is
//! a list of changes holding only metadata and digests. Applying those to the
//! tree is cheap and sequential, lowest layer first. No layer's content is
//! ever held in memory.

use std::io::Read;

use rayon::prelude::*;

use super::apply::{ApplyError, LayerTarget, apply_layer};
use super::descriptor::Descriptor;
use super::digest::{DiffId, LayerDigest};
use super::layer::{Change, EntryKind, LayerError, LayerReader};
use super::layout::{ImageLayout, LayoutError, ResolvedImage};
use super::sink::{FileContent, ObjectSink, store_content};

/// One layer, read and verified.
#[derive(Debug, Clone)]
pub struct ImportedLayer {
    pub descriptor: Descriptor,
    pub diff_id: DiffId,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    pub changes: Vec<Change<FileContent>>,
}

/// Why an image could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("applying layer {index} ({layer}): {source}")]
    Apply {
        index: usize,
        layer: LayerDigest,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Reads all changes of a layer, storing file content through `sink`.
/// Returns only after diff_id and blob digest were verified.
pub fn import_layer<R: Read>(
    mut reader: LayerReader<R>,
    descriptor: &Descriptor,
    sink: &dyn ObjectSink,
) -> Result<ImportedLayer, LayerError> {
    match read_changes(&mut reader, sink) {
        Ok(changes) => {
            let (diff_id, tar_size) = reader.finish()?;
            Ok(ImportedLayer {
                descriptor: descriptor.clone(),
                diff_id,
                tar_size,
                changes,
            })
        }
        Err(e) => Err(reader.explain(e)),
    }
}

fn read_changes<R: Read>(
    reader: &mut LayerReader<R>,
    sink: &dyn ObjectSink,
) -> Result<Vec<Change<FileContent>>, LayerError> {
    let mut changes = Vec::new();
    while let Some(change) = reader.next_change()? {
        changes.push(store_change(reader, sink, change)?);
    }
    Ok(changes)
}

/// One change as read from `reader` (a regular file's size), with its
/// content stored through `sink` (inline or as an object), right away.
pub fn store_change<R: Read>(
    reader: &mut LayerReader<R>,
    sink: &dyn ObjectSink,
    change: Change<u64>,
) -> Result<Change<FileContent>, LayerError> {
    Ok(match change {
        Change::Add {
            path,
            kind: EntryKind::File(size),
            meta,
        } => {
            let content = store_content(sink, &mut reader.content(), size)
                .map_err(|e| reader.entry_error(format!("storing content: {e}")))?;
            Change::Add {
                path,
                kind: EntryKind::File(content),
                meta,
            }
        }
        Change::Add { path, kind, meta } => Change::Add {
            path,
            // Not a regular file: there is no content to carry.
            kind: kind.map_file(|_| FileContent::Inline(Vec::new())),
            meta,
        },
        Change::Whiteout(p) => Change::Whiteout(p),
        Change::Opaque(p) => Change::Opaque(p),
    })
}

/// Reads every layer of `image` (in parallel), verifying each.
pub fn import_layers(
    layout: &ImageLayout,
    image: &ResolvedImage,
    sink: &dyn ObjectSink,
) -> Result<Vec<ImportedLayer>, ImportError> {
    for_each_layer(layout, image, |reader, desc| {
        import_layer(reader, desc, sink)
    })
}

/// A layer's blob as [`ImageLayout::open_blob`] hands it out.
pub type LayerBlob = Box<dyn Read + Send>;

/// Opens every layer of `image` as a verifying [`LayerReader`] and runs
/// `import` on each, one task per layer on the rayon pool; the importers
/// (this module's sequential one, `repo::pipeline`'s pipelined one) differ
/// only in `import`.
pub fn for_each_layer<F>(
    layout: &ImageLayout,
    image: &ResolvedImage,
    import: F,
) -> Result<Vec<ImportedLayer>, ImportError>
where
    F: Fn(LayerReader<LayerBlob>, &Descriptor) -> Result<ImportedLayer, LayerError> + Sync,
{
    let layers: Vec<(usize, &Descriptor, DiffId)> = image
        .layers()
        .enumerate()
        .map(|(i, (d, id))| (i, d, id))
        .collect();
    layers
        .par_iter()
        .map(|&(i, desc, diff_id)| {
            let what = format!(
                "layer {} of {} of image {}",
                i + 1,
                layers.len(),
                image.manifest_digest()
            );
            let blob = layout.open_blob(desc, &what)?;
            let reader = LayerReader::new(blob, desc, diff_id)?;
            Ok(import(reader, desc)?)
        })
        // Collect every outcome, then report the lowest failing layer, so the
        // error does not depend on which worker finished first.
        .collect::<Vec<Result<ImportedLayer, ImportError>>>()
        .into_iter()
        .collect()
}

/// Applies imported layers, lowest first, to `target`.
pub fn apply_layers<T: LayerTarget>(
    target: &mut T,
    layers: &[ImportedLayer],
) -> Result<(), ImportError> {
    for (index, layer) in layers.iter().enumerate() {
        apply_layer(target, &layer.changes).map_err(|e: ApplyError<T::Error>| {
            ImportError::Apply {
                index: index + 1,
                layer: LayerDigest(layer.descriptor.digest),
                source: Box::new(e),
            }
        })?;
    }
    Ok(())
}
