//! OCI JSON documents (index, manifest, config), the sealing artifact model
//! (with sealroot's binding record in its annotations) and inline sealing
//! metadata: arbitrary bytes never panic; what parses keeps its exact bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::oci::artifact::SealArtifact;
use sealroot::oci::inline::InlineSeal;
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
                    if let Some(b) = &a.binding {
                        assert_eq!(b.record.algorithm, a.algorithm);
                        assert_eq!(b.record.to_bytes(), b.bytes);
                    }
                }
                // ... and as an inline-sealed image.
                if let Ok(Some(s)) = InlineSeal::parse(&m) {
                    assert_eq!(s.config.digest.algorithm(), s.algorithm.hash);
                    assert_eq!(s.merged.digest.algorithm(), s.algorithm.hash);
                }
            }
        }
        _ => {
            let _ = Stored::<ImageConfig>::parse(json.to_vec());
        }
    }
});
