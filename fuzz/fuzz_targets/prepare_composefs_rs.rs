//! The composefs-rs layout's parsers of `sealroot-prepare` on arbitrary
//! bytes: the command line (`composefs.digest=` / `composefs=`) and
//! composefs-setup-root's `setup-root-conf.toml`. Never panics; a
//! selection prints as arguments that select the same digests again and
//! never carries the insecure marker; a `setup-root-conf.toml` error names
//! a line inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::prepare::composefs_rs::{conf, select};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(selection) = select::parse(&text) {
        assert!(!selection.candidates.is_empty());
        let printed = selection.to_string();
        assert!(!printed.contains("=?"));
        let again = select::parse(&printed).expect("a printed selection parses");
        let digests = |s: &select::Selection| s.candidates.iter().map(|c| c.digest).collect::<Vec<_>>();
        assert_eq!(digests(&selection), digests(&again));
    }
    match conf::parse(&text, "setup-root-conf.toml") {
        Ok(c) => assert_eq!(conf::parse(&text, "setup-root-conf.toml").unwrap(), c),
        Err(e) => assert!(e.line >= 1 && e.line <= text.split('\n').count()),
    }
});
