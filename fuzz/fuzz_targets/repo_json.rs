//! `deployment.json` and `repo.json` parsers (read by the initramfs from an
//! untrusted root filesystem) on arbitrary bytes: never panic; whatever is
//! accepted serialises and re-parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::repo::{Deployment, RepoConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Deployment::parse(data) {
        let again = Deployment::parse(&d.to_json()).expect("written deployment.json must parse");
        assert_eq!(again, d);
    }
    if let Ok(r) = RepoConfig::parse(data) {
        assert_eq!(RepoConfig::parse(&r.to_json()).expect("written repo.json must parse"), r);
    }
});
