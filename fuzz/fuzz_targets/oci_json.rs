//! OCI JSON documents (index, manifest, config) and the sealing artifact
//! model: arbitrary bytes never panic; what parses keeps its exact bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::oci::artifact::SealArtifact;
use sealroot::oci::{ImageConfig, ImageIndex, ImageManifest, Stored};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            if let Ok(i) = Stored::<ImageIndex>::parse(json.to_vec()) {
                assert_eq!(i.bytes(), json);
            }
        }
        1 => {
            if let Ok(m) = Stored::<ImageManifest>::parse(json.to_vec()) {
                assert_eq!(m.bytes(), json);
                // Any manifest may be offered as a sealing artifact.
                if let Ok(a) = SealArtifact::parse(&m) {
                    assert!(!a.entries.is_empty());
                    let _ = a.check_subject(m.digest(), &m);
                }
            }
        }
        _ => {
            let _ = Stored::<ImageConfig>::parse(json.to_vec());
        }
    }
});
