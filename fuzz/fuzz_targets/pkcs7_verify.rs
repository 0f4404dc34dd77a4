//! PKCS#7 parsing (profile checks) and verification against fixed trusted
//! certificates. Seeds (fuzz/seeds/pkcs7_verify) are valid signatures over
//! CONTENT, so mutations reach signature, chain and attribute checks.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealroot::crypto::Cert;
use sealroot::verity::{FormattedDigest, FsVerityDigest};

/// fs-verity digest of the fixture file the seeds sign.
const DIGEST: &str = "sha256:a8ae1b1a26492dfd094eee44292444cde98b2d49a4b29747d60eb0c7e133a219";

fn fixtures() -> &'static (Vec<Cert>, Vec<u8>) {
    static F: OnceLock<(Vec<Cert>, Vec<u8>)> = OnceLock::new();
    F.get_or_init(|| {
        let trusted = vec![
            Cert::from_der(include_bytes!("../fixtures/ca.der"), "ca").unwrap(),
            Cert::from_der(include_bytes!("../fixtures/rsa.der"), "rsa").unwrap(),
        ];
        let digest: FsVerityDigest = DIGEST.parse().unwrap();
        (trusted, FormattedDigest::new(digest).to_bytes())
    })
}

fuzz_target!(|data: &[u8]| {
    let (trusted, content) = fixtures();
    let result = sealroot::pkcs7::verify(data, content, trusted);
    // Exercise every error's Display (messages format untrusted fields).
    match result {
        Ok(v) => {
            let _ = format!("{} {} {:?}", v.signer, v.trusted, v.chain);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(msg) = sealroot::pkcs7::profile::parse(data) {
        let _ = msg.signer.to_string();
    }
});
