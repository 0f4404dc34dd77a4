//! Private key loading: PEM or DER, PKCS#8, PKCS#1, SEC1, and the key
//! policy applied to whatever parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::crypto::{DigestAlgorithm, PrivateKey};

fuzz_target!(|data: &[u8]| {
    match PrivateKey::from_bytes(data, "fuzz") {
        Ok(key) => {
            // A key that loads must sign, and its signature must verify.
            let sig = key.sign(DigestAlgorithm::Sha256, b"fuzz").expect("sign");
            key.public_key()
                .verify(
                    key.signature_algorithm(DigestAlgorithm::Sha256),
                    b"fuzz",
                    &sig,
                )
                .expect("own signature verifies");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
