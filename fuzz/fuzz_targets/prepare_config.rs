//! `/etc/sealroot/prepare.conf` parser on arbitrary bytes: never panics,
//! errors name a line inside the input, and parsing is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::prepare::config::{self, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match config::parse(text, "prepare.conf") {
        Ok(c) => assert_eq!(config::parse(text, "prepare.conf").unwrap(), c),
        Err(ConfigError::Line { line, .. }) => {
            assert!(line >= 1 && line <= text.split('\n').count());
        }
        Err(ConfigError::File { .. }) => {}
    }
});
