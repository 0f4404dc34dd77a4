//! SELinux policy files of an image (`sealroot::oci::boot::selinux`, read
//! by the bootable transformation from attacker-supplied images): the
//! config, file_contexts and substitution parsers, the regex compilation
//! (lazy DFA and PCRE2) and label lookups never panic. The input is split
//! at NUL bytes into `/etc/selinux/config`, `file_contexts`,
//! `file_contexts.local`, `file_contexts.subs`, and paths to label (one a
//! line). Seeds (fuzz/seeds/selinux_policy): the test policy of
//! `tests/oci_support/images.rs` in this shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::oci::boot::selinux::{Policy, PolicyFiles, policy_type};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |&b| b == 0);
    let mut next = || parts.next().unwrap_or_default();
    let (config, rules, local, subs, paths) = (next(), next(), next(), next(), next());
    if let Err(e) = policy_type(config) {
        let _ = e.to_string();
    }
    let mut files = PolicyFiles::default();
    files.files.push(("file_contexts", rules.to_vec()));
    if !local.is_empty() {
        files.files.push(("file_contexts.local", local.to_vec()));
    }
    if !subs.is_empty() {
        files.files.push(("file_contexts.subs", subs.to_vec()));
    }
    match Policy::build(&files) {
        Ok(mut policy) => {
            for path in paths.split(|&b| b == b'\n').take(32) {
                let path = policy.alias(path).map(<[u8]>::to_vec).unwrap_or(path.to_vec());
                for kind in *b"-dlcbps" {
                    if let Err(e) = policy.label(&path, kind) {
                        let _ = e.to_string();
                    }
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
