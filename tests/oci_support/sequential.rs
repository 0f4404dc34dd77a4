//! The plain sequential importer, as a reference: one tar member after the
//! other on one thread per layer, each file hashed and stored as it
//! streams. The library's pipelined `oci::import::import_layers` must give
//! exactly its changes (`tests/repo_import.rs`); `benches/import.rs`
//! measures the pipelined importer against it.

use std::io::Read;

use sealroot::oci::Descriptor;
use sealroot::oci::import::{ImportError, ImportedLayer, for_each_layer, store_change};
use sealroot::oci::layer::{LayerError, LayerReader};
use sealroot::oci::layout::{ImageLayout, ResolvedImage};
use sealroot::oci::sink::{FileContent, ObjectSink};

/// Every layer of `image`, one rayon task per layer, sequential within.
pub fn import_layers(
    layout: &ImageLayout,
    image: &ResolvedImage,
    sink: &dyn ObjectSink,
) -> Result<Vec<ImportedLayer>, ImportError> {
    for_each_layer(layout, image, |reader, desc| {
        import_layer(reader, desc, sink)
    })
}

fn import_layer<R: Read>(
    mut reader: LayerReader<R>,
    descriptor: &Descriptor,
    sink: &dyn ObjectSink,
) -> Result<ImportedLayer, LayerError> {
    let changes = match read_changes(&mut reader, sink) {
        Ok(c) => c,
        Err(e) => return Err(reader.explain(e)),
    };
    let (diff_id, tar_size) = reader.finish()?;
    Ok(ImportedLayer {
        descriptor: descriptor.clone(),
        diff_id,
        tar_size,
        changes,
    })
}

fn read_changes<R: Read>(
    reader: &mut LayerReader<R>,
    sink: &dyn ObjectSink,
) -> Result<Vec<sealroot::oci::layer::Change<FileContent>>, LayerError> {
    let mut changes = Vec::new();
    while let Some(change) = reader.next_change()? {
        changes.push(store_change(reader, sink, change)?);
    }
    Ok(changes)
}
