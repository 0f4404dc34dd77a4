//! The per-object signature bundle (`sealroot::objsig`) on arbitrary bytes:
//! never panics; what parses has strictly sorted entries, every lookup
//! finds its own entry, and every rebuilt message still parses as a
//! builtin signature carrying that entry's signature. Seeds
//! (fuzz/seeds/object_signatures) are real bundles (ECDSA P-256, RSA-2048).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::objsig::Bundle;

fuzz_target!(|data: &[u8]| {
    let Ok(b) = Bundle::parse(data.to_vec()) else {
        return;
    };
    let entries: Vec<_> = b.iter().map(|(d, s)| (d, s.to_vec())).collect();
    assert_eq!(entries.len(), b.len());
    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
    for (d, sig) in entries.iter().take(64) {
        assert_eq!(b.signature(d), Some(sig.as_slice()));
        let der = b.pkcs7(d).expect("an entry rebuilds");
        let msg = sealroot::pkcs7::profile::parse(&der).expect("rebuilt message parses");
        assert_eq!(&msg.signature, sig);
    }
});
