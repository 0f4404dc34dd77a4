//! IPE policies (`sealroot::ipe`) on arbitrary bytes: the policy text
//! parser (the kernel's grammar) and the signed-policy parser (attached
//! PKCS#7 + text) never panic; a policy that parses prints to text that
//! parses back to it. Seeds (fuzz/seeds/ipe_policy): the generated policy,
//! as text and signed (RSA, as `sealroot ipe sign` writes it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::ipe::{Op, Policy, SignedPolicy};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Policy::parse(data) {
        let back = Policy::parse(p.to_text().as_bytes()).expect("printed policy parses");
        assert_eq!(back.name, p.name);
        assert_eq!(back.version, p.version);
        assert_eq!(back.global_default, p.global_default);
        assert_eq!(back.op_defaults, p.op_defaults);
        for op in Op::ALL {
            assert!(back.rules_for(op).eq(p.rules_for(op)));
        }
    }
    match SignedPolicy::parse(data) {
        Ok(s) => {
            let _ = s.signer_description();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
