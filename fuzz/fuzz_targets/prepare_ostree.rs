//! The ostree layout's parsers of `sealroot-prepare` on arbitrary bytes:
//! the `ostree=` argument and ostree's `prepare-root.conf`. Never panics;
//! a parsed `ostree=` prints as an argument that parses to the same
//! deployment path and never contains `..` or an empty component; a
//! `prepare-root.conf` error names a line inside the input (or the file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::prepare::ostree::{conf, select};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(arg) = select::parse(&text) {
        let rel = arg.relative_path();
        assert!(rel.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
        assert_eq!(select::parse(&arg.to_string()).unwrap(), arg);
    }
    if let Some((commit, serial)) = select::parse_deployment_name(&text) {
        assert_eq!(format!("{}.{serial}", commit.to_hex()), text);
    }
    match conf::parse(&text, "prepare-root.conf") {
        Ok(c) => assert_eq!(conf::parse(&text, "prepare-root.conf").unwrap(), c),
        Err(e) => assert!(e.line >= 1 && e.line <= text.split('\n').count()),
    }
});
