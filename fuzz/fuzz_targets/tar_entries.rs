//! The layer reader on arbitrary (uncompressed) tar streams: framing,
//! PAX/GNU extensions, path normalisation and whiteouts never panic, and
//! a stream that reads to its end passes the digest checks it was built
//! with.
//!
//! Seeds: real layers (fuzz/seeds/tar_entries, written by GNU tar and
//! umoci). The custom mutator repairs header checksums after most
//! mutations, so mutated headers reach the code behind the checksum check
//! (sealroot_fuzz::fix_tar_checksums).
#![no_main]

use std::io::Read;

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use sealroot::oci::layer::LayerReader;
use sealroot::oci::verify::VerifyingReader;
use sealroot::oci::{Descriptor, DiffId, MediaType, Sha256Digest};

fuzz_target!(|data: &[u8]| {
    let desc = Descriptor::for_bytes(MediaType::OCI_LAYER_TAR, data);
    let blob = VerifyingReader::new(data, "fuzz", desc.digest, desc.size);
    let Ok(mut reader) = LayerReader::new(blob, &desc, DiffId(Sha256Digest::of(data))) else {
        return;
    };
    let mut buf = [0u8; 4096];
    loop {
        match reader.next_change() {
            Ok(Some(_)) => {
                let mut content = reader.content();
                while matches!(content.read(&mut buf), Ok(n) if n > 0) {}
            }
            Ok(None) => {
                reader.finish().expect("a fully read stream verifies");
                return;
            }
            Err(_) => return,
        }
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let size = libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    // One mutation in eight keeps its broken checksums: the check itself
    // stays fuzzed.
    if seed % 8 != 0 {
        sealroot_fuzz::fix_tar_checksums(&mut data[..size]);
    }
    size
});
