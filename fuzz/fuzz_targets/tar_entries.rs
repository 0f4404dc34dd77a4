//! The layer reader on arbitrary (uncompressed) tar streams: framing,
//! PAX/GNU extensions, path normalisation and whiteouts never panic, and
//! a stream that reads to its end passes the digest checks it was built
//! with.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
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
