//! Importing an image: every layer streamed once, its files stored through
//! an [`ObjectSink`], then the layers applied in order to a tree.
//!
//! Layers are independent until they are applied, so they are read in
//! parallel, one rayon task per layer. Each task only *reads*: blob sha256,
//! decompression, diff_id sha256, tar framing. Every regular file of more
//! than [`INLINE_MAX`] and at most [`BUFFERED_MAX`] bytes is read into
//! memory and handed to the pool, where the sink computes its fs-verity
//! digest and writes the object while the layer task goes on to the next
//! member; so even a single-layer image (common for bootc) keeps every core
//! busy. Larger files are stored on the layer task as they stream (no
//! buffer). What each layer produces is a list of changes holding only
//! metadata and digests, in member order; applying those to the tree is
//! cheap and sequential, lowest layer first.
//!
//! Memory is bounded: at most [`READ_AHEAD_MAX`] bytes of file content wait
//! for the pool, for all layers of one import together. A file that does
//! not fit in what is left is stored on the layer task itself, streaming,
//! as the sequential reader would: a full budget means every thread is
//! busy already, so the layer task does useful work instead of waiting
//! (waiting cost wall time when several layers shared two cores), and no
//! task ever blocks on another.
//!
//! `tests/repo_import.rs` checks that the result equals, change for change,
//! that of a plain sequential reader (one member after the other through
//! [`store_change`]).

use std::io::{self, Read};
use std::sync::Mutex;

use rayon::prelude::*;

use super::apply::{ApplyError, LayerTarget, apply_layer};
use super::descriptor::Descriptor;
use super::digest::{DiffId, LayerDigest};
use super::layer::{Change, EntryKind, LayerError, LayerReader};
use super::layout::{ImageLayout, LayoutError, ResolvedImage};
use super::sink::{FileContent, INLINE_MAX, ObjectSink, store_content};
use crate::verity::FsVerityDigest;

/// Files up to this size are read ahead and stored on the pool.
pub const BUFFERED_MAX: u64 = 8 << 20;
/// Bytes of file content read ahead of the hashing, per import.
pub const READ_AHEAD_MAX: u64 = 16 << 20;

/// One layer, read and verified.
#[derive(Debug, Clone)]
pub struct ImportedLayer {
    /// The layer's descriptor in the manifest.
    pub descriptor: Descriptor,
    /// The sha256 of its uncompressed tar, as the config's `diff_ids`
    /// must list it.
    pub diff_id: DiffId,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    /// What it adds, replaces and removes, in tar order.
    pub changes: Vec<Change<FileContent>>,
}

/// Why an image could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the layout (a blob, the manifest) failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A layer does not read (compression, tar, digest).
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A layer's changes cannot be applied to the tree below it.
    #[error("applying layer {index} ({layer}): {error}")]
    Apply {
        /// The layer's position, from 0.
        index: usize,
        /// Its digest.
        layer: LayerDigest,
        /// Why.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Reads every layer of `image` (in parallel, and pipelined within each
/// layer), verifying each; file contents go to `sink`.
pub fn import_layers(
    layout: &ImageLayout,
    image: &ResolvedImage,
    sink: &dyn ObjectSink,
) -> Result<Vec<ImportedLayer>, ImportError> {
    let read_ahead = ReadAhead::new(READ_AHEAD_MAX);
    for_each_layer(layout, image, |reader, desc| {
        import_with(reader, desc, sink, &read_ahead)
    })
}

/// Reads all changes of one layer, storing file content through `sink`
/// (pipelined as [`import_layers`] does). Returns only after diff_id and
/// blob digest were verified.
pub fn import_layer<R: Read>(
    reader: LayerReader<R>,
    descriptor: &Descriptor,
    sink: &dyn ObjectSink,
) -> Result<ImportedLayer, LayerError> {
    import_with(reader, descriptor, sink, &ReadAhead::new(READ_AHEAD_MAX))
}

/// One change as read from `reader` (a regular file's size), with its
/// content stored through `sink` (inline or as an object), right away, on
/// this thread.
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

/// A layer's blob as [`ImageLayout::open_blob`] hands it out.
pub type LayerBlob = Box<dyn Read + Send>;

/// Opens every layer of `image` as a verifying [`LayerReader`] and runs
/// `import` on each, one task per layer on the rayon pool.
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
                error: Box::new(e),
            }
        })?;
    }
    Ok(())
}

/// The read-ahead budget shared by the layers of one import: bytes read
/// but not yet stored.
struct ReadAhead {
    budget: u64,
    used: Mutex<u64>,
}

impl ReadAhead {
    fn new(budget: u64) -> Self {
        ReadAhead {
            budget,
            used: Mutex::new(0),
        }
    }

    /// Reserves `size` bytes if they fit.
    fn try_acquire(&self, size: u64) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let fits = *used + size <= self.budget;
        if fits {
            *used += size;
        }
        fits
    }

    fn release(&self, size: u64) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= size;
    }
}

/// Digests of the files handed to the pool, by slot.
type Slots = Mutex<Vec<Option<io::Result<FsVerityDigest>>>>;

/// A file handed to the pool: its change's index, its result slot, and
/// the error context captured while it was the current tar entry.
struct Pending {
    change: usize,
    slot: usize,
    context: LayerError,
}

fn import_with<R: Read>(
    mut reader: LayerReader<R>,
    descriptor: &Descriptor,
    sink: &dyn ObjectSink,
    read_ahead: &ReadAhead,
) -> Result<ImportedLayer, LayerError> {
    let slots: Slots = Mutex::new(Vec::new());
    let mut pending: Vec<Pending> = Vec::new();
    let read = rayon::in_place_scope(|scope| {
        read_changes(&mut reader, sink, scope, &slots, read_ahead, &mut pending)
    });
    let mut changes = match read {
        Ok(c) => c,
        Err(e) => return Err(reader.explain(e)),
    };
    let mut slots = slots.into_inner().unwrap_or_else(|p| p.into_inner());
    for p in pending {
        let digest = match slots.get_mut(p.slot).and_then(Option::take) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                return Err(with_reason(p.context, format!("storing content: {e}")));
            }
            None => return Err(with_reason(p.context, "content was not stored".into())),
        };
        if let Some(Change::Add {
            kind: EntryKind::File(FileContent::External { digest: d, .. }),
            ..
        }) = changes.get_mut(p.change)
        {
            *d = digest;
        }
    }
    let (diff_id, tar_size) = reader.finish()?;
    Ok(ImportedLayer {
        descriptor: descriptor.clone(),
        diff_id,
        tar_size,
        changes,
    })
}

fn with_reason(err: LayerError, reason: String) -> LayerError {
    match err {
        LayerError::Entry {
            layer,
            entry,
            offset,
            ..
        } => LayerError::Entry {
            layer,
            entry,
            offset,
            reason,
        },
        other => other,
    }
}

fn read_changes<'s, R: Read>(
    reader: &mut LayerReader<R>,
    sink: &'s dyn ObjectSink,
    scope: &rayon::Scope<'s>,
    slots: &'s Slots,
    read_ahead: &'s ReadAhead,
    pending: &mut Vec<Pending>,
) -> Result<Vec<Change<FileContent>>, LayerError> {
    // Replaced by the real digest once the pool has stored the file.
    let placeholder = FsVerityDigest::new(
        sink.params().algorithm,
        &[0; 64][..sink.params().algorithm.digest_size()],
    )
    .map_err(|e| reader.entry_error(e.to_string()))?;
    let mut changes = Vec::new();
    while let Some(change) = reader.next_change()? {
        let change = match change {
            Change::Add {
                path,
                kind: EntryKind::File(size),
                meta,
            } if size > INLINE_MAX && size <= BUFFERED_MAX && read_ahead.try_acquire(size) => {
                // Decompressed straight into the buffer: no other copy.
                let mut buf = vec![0u8; size as usize];
                if let Err(e) = reader.content().read_exact(&mut buf) {
                    read_ahead.release(size);
                    return Err(reader.entry_error(format!("reading content: {e}")));
                }
                let slot = {
                    let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
                    s.push(None);
                    s.len() - 1
                };
                pending.push(Pending {
                    change: changes.len(),
                    slot,
                    context: reader.entry_error(String::new()),
                });
                scope.spawn(move |_| {
                    let r = sink.store_bytes(&buf);
                    drop(buf);
                    read_ahead.release(size);
                    if let Some(s) = slots
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(slot)
                    {
                        *s = Some(r);
                    }
                });
                Change::Add {
                    path,
                    kind: EntryKind::File(FileContent::External {
                        digest: placeholder,
                        size,
                    }),
                    meta,
                }
            }
            // Small and large files, files the budget has no room for,
            // and everything else: on this thread.
            other => store_change(reader, sink, other)?,
        };
        changes.push(change);
    }
    Ok(changes)
}
