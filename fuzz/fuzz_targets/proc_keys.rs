//! Finding the .fs-verity keyring in /proc/keys text, and parsing
//! KEYCTL_DESCRIBE answers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = sealroot::keyring::find_in_proc_keys(&text);
    let _ = sealroot::keyring::KeyEntry::from_description(1, &text, &[]);
});
