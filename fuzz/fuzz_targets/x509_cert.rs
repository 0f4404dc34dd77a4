//! Certificate loading (PEM with any number of blocks, or concatenated DER)
//! and everything computed from a certificate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::crypto::Cert;

fuzz_target!(|data: &[u8]| {
    match Cert::from_bytes(data, "fuzz") {
        Ok(certs) => {
            for c in &certs {
                let _ = c.info().to_string();
                let _ = c.kernel_key_id_hex();
                let _ = c.is_self_signed();
                let _ = c.can_sign_data();
                for issuer in &certs {
                    let _ = c.verify_issued_by(issuer).map_err(|e| e.to_string());
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
