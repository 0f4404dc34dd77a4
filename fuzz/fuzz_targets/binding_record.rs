//! sealroot's binding record (`sealroot::oci::binding`) on arbitrary bytes:
//! never panics; what parses is canonical (re-serialises to the same bytes)
//! and checks equal against itself. The record's annotations inside an
//! artifact are reached through `oci_json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::oci::binding::BindingRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = BindingRecord::parse(data) {
        assert_eq!(r.to_bytes(), data);
        assert!(r.check(&r).is_ok());
    }
});
