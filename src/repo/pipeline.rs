//! Importing an image with hashing spread over all cores even inside one
//! layer.
//!
//! `oci::import::import_layers` runs one task per layer; within a layer the
//! tar thread also hashes and writes every file, so a single-layer image
//! (common for bootc) keeps one core busy. Here the tar thread only reads
//! (decompression, blob sha256, diff_id, tar framing): each regular file of
//! up to [`BUFFERED_MAX`] bytes is read into memory and handed to the rayon
//! pool, where the sink computes its fs-verity digest and writes the
//! object, while the tar thread goes on to the next member. Larger files are
//! stored on the tar thread as before (streaming, no buffer). Memory is
//! bounded: at most [`IN_FLIGHT_MAX`] bytes per layer wait for the pool; the
//! tar thread helps with pending work (`rayon::yield_now`) instead of
//! blocking, so nested layers and files never deadlock the pool.
//!
//! The result is the same list of changes, in the same order, as the
//! sequential importer (`tests/repo_import.rs` compares them).

use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::oci::descriptor::Descriptor;
use crate::oci::import::{ImportError, ImportedLayer, for_each_layer, store_change};
use crate::oci::layer::{Change, EntryKind, LayerError, LayerReader};
use crate::oci::layout::{ImageLayout, ResolvedImage};
use crate::oci::sink::{FileContent, INLINE_MAX, ObjectSink, copy_exact};
use crate::verity::FsVerityDigest;

/// Files up to this size are hashed on the pool.
pub const BUFFERED_MAX: u64 = 8 << 20;
/// Bytes per layer read ahead of the hashing.
pub const IN_FLIGHT_MAX: u64 = 64 << 20;

/// Reads every layer of `image` (in parallel, and pipelined within each
/// layer), verifying each; file contents go to `sink`.
pub fn import_layers(
    layout: &ImageLayout,
    image: &ResolvedImage,
    sink: &dyn ObjectSink,
) -> Result<Vec<ImportedLayer>, ImportError> {
    for_each_layer(layout, image, |reader, desc| {
        import_layer(reader, desc, sink)
    })
}

/// A file handed to the pool: where its change is, and the error context
/// captured while it was the current tar entry.
struct Pending {
    change: usize,
    context: LayerError,
}

/// One layer, pipelined.
pub fn import_layer<R: Read>(
    mut reader: LayerReader<R>,
    descriptor: &Descriptor,
    sink: &dyn ObjectSink,
) -> Result<ImportedLayer, LayerError> {
    let results: Mutex<Vec<Option<io::Result<FsVerityDigest>>>> = Mutex::new(Vec::new());
    let in_flight = AtomicU64::new(0);
    let mut pending: Vec<Pending> = Vec::new();
    let read = rayon::in_place_scope(|scope| {
        read_changes(&mut reader, sink, scope, &results, &in_flight, &mut pending)
    });
    let mut changes = match read {
        Ok(c) => c,
        Err(e) => return Err(reader.explain(e)),
    };
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    for (slot, p) in pending.into_iter().enumerate() {
        let digest = match results.get(slot) {
            Some(Some(Ok(d))) => *d,
            Some(Some(Err(e))) => {
                return Err(with_reason(p.context, format!("storing content: {e}")));
            }
            _ => return Err(with_reason(p.context, "content was not stored".into())),
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
    results: &'s Mutex<Vec<Option<io::Result<FsVerityDigest>>>>,
    in_flight: &'s AtomicU64,
    pending: &mut Vec<Pending>,
) -> Result<Vec<Change<FileContent>>, LayerError> {
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
            } if size > INLINE_MAX && size <= BUFFERED_MAX => {
                let mut buf = Vec::with_capacity(size as usize);
                copy_exact(&mut reader.content(), size, |chunk| {
                    buf.extend_from_slice(chunk);
                    Ok(())
                })
                .map_err(|e| reader.entry_error(format!("reading content: {e}")))?;
                // Bounded read-ahead: help the pool until there is room.
                while in_flight.load(Ordering::Acquire) + size > IN_FLIGHT_MAX
                    && in_flight.load(Ordering::Acquire) > 0
                {
                    match rayon::yield_now() {
                        Some(rayon::Yield::Executed) => {}
                        _ => std::thread::yield_now(),
                    }
                }
                in_flight.fetch_add(size, Ordering::AcqRel);
                let slot = {
                    let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                    r.push(None);
                    r.len() - 1
                };
                pending.push(Pending {
                    change: changes.len(),
                    context: reader.entry_error(String::new()),
                });
                scope.spawn(move |_| {
                    let r = sink.store(&mut &buf[..], size);
                    drop(buf);
                    if let Some(s) = results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(slot)
                    {
                        *s = Some(r);
                    }
                    in_flight.fetch_sub(size, Ordering::AcqRel);
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
            // Small and large files, and everything else: on this thread.
            other => store_change(reader, sink, other)?,
        };
        changes.push(change);
    }
    Ok(changes)
}
