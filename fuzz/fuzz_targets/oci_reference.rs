//! The skopeo-style image reference parser: never panics, and whatever it
//! accepts prints back to a string that parses to the same reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::oci::ImageReference;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = s.parse::<ImageReference>() {
        let again: ImageReference = r.to_string().parse().expect("display must re-parse");
        assert_eq!(again, r);
    }
});
