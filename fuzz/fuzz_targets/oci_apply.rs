//! Layer application on arbitrary change lists: two fuzzed tar layers are
//! read and applied to a tiny in-memory tree. Never panics; errors are
//! fine.
//!
//! Input: a 2-byte little-endian count of 512-byte blocks in the first
//! layer, then the first layer, then the second. Seeds: real layer pairs
//! (fuzz/seeds/oci_apply, from GNU tar and umoci: whiteouts, opaque
//! directories, hardlinks, symlinks). The custom mutator repairs the tar
//! header checksums of both layers after most mutations.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use sealroot::oci::apply::{LayerTarget, NodeType, apply_layer};
use sealroot::oci::import::import_layer;
use sealroot::oci::layer::{EntryKind, LayerReader, Metadata};
use sealroot::oci::sink::{DigestOnlySink, FileContent};
use sealroot::oci::verify::VerifyingReader;
use sealroot::oci::{Descriptor, DiffId, MediaType, Sha256Digest};

#[derive(Default)]
struct Tree {
    nodes: Vec<(bool, Option<Vec<u8>>, BTreeMap<Vec<u8>, usize>)>,
}

#[derive(Debug, thiserror::Error)]
#[error("tree error")]
struct E;

impl LayerTarget for Tree {
    type Inode = usize;
    type Error = E;
    fn root(&self) -> usize {
        0
    }
    fn lookup(&self, dir: usize, name: &[u8]) -> Option<usize> {
        self.nodes[dir].2.get(name).copied()
    }
    fn node_type(&self, i: usize) -> NodeType {
        match &self.nodes[i] {
            (true, _, _) => NodeType::Directory,
            (_, Some(t), _) => NodeType::Symlink(t.clone()),
            _ => NodeType::Other,
        }
    }
    fn entry_names(&self, dir: usize) -> Vec<Vec<u8>> {
        self.nodes[dir].2.keys().cloned().collect()
    }
    fn create(&mut self, kind: &EntryKind<FileContent>, _: &Metadata) -> Result<usize, E> {
        let (dir, link) = match kind {
            EntryKind::Directory => (true, None),
            EntryKind::Symlink(t) => (false, Some(t.clone())),
            EntryKind::Hardlink(_) => return Err(E),
            _ => (false, None),
        };
        self.nodes.push((dir, link, BTreeMap::new()));
        Ok(self.nodes.len() - 1)
    }
    fn link(&mut self, dir: usize, name: &[u8], inode: usize) -> Result<(), E> {
        if !self.nodes[dir].0 || self.nodes[dir].2.insert(name.to_vec(), inode).is_some() {
            return Err(E);
        }
        Ok(())
    }
    fn unlink(&mut self, dir: usize, name: &[u8]) -> Result<(), E> {
        self.nodes[dir].2.remove(name).map(|_| ()).ok_or(E)
    }
    fn set_metadata(&mut self, _: usize, _: &Metadata) -> Result<(), E> {
        Ok(())
    }
}

/// The two layers of an input: the 2-byte block count, clamped.
fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (head, rest) = data.split_first_chunk::<2>()?;
    let cut = (usize::from(u16::from_le_bytes(*head)) * 512).min(rest.len());
    Some(rest.split_at(cut))
}

fuzz_target!(|data: &[u8]| {
    let mut tree = Tree {
        nodes: vec![(true, None, BTreeMap::new())],
    };
    let sink = DigestOnlySink::default();
    let Some((first, second)) = split(data) else {
        return;
    };
    for tar in [first, second] {
        let desc = Descriptor::for_bytes(MediaType::OCI_LAYER_TAR, tar);
        let blob = VerifyingReader::new(tar, "fuzz", desc.digest, desc.size);
        let Ok(reader) = LayerReader::new(blob, &desc, DiffId(Sha256Digest::of(tar))) else {
            return;
        };
        let Ok(layer) = import_layer(reader, &desc, &sink) else {
            return;
        };
        if apply_layer(&mut tree, &layer.changes).is_err() {
            return;
        }
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let size = libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    // One mutation in eight keeps its broken checksums.
    if seed % 8 != 0 && size >= 2 {
        let cut = (usize::from(u16::from_le_bytes([data[0], data[1]])) * 512).min(size - 2);
        let (first, second) = data[2..size].split_at_mut(cut);
        sealroot_fuzz::fix_tar_checksums(first);
        sealroot_fuzz::fix_tar_checksums(second);
    }
    size
});
