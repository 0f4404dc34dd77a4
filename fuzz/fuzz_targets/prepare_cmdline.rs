//! The kernel command line parser of `sealroot-prepare` on arbitrary
//! bytes: never panics; what it selects prints as arguments that select
//! the same thing again; a sealroot selection is seen by `names_sealroot`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::prepare::cmdline::{self, Selector};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs = cmdline::split(&text);
    // Splitting never invents text: every key is a substring of the input.
    for (key, _) in &pairs {
        assert!(text.contains(key.as_str()));
    }
    // A sealroot= or sealroot.config= selection always counts as naming
    // sealroot ([boot] required = no must never stand down for it).
    if let Ok(Selector::Manifest(_) | Selector::Config(_)) = cmdline::parse(&text) {
        assert!(cmdline::names_sealroot(&text));
    }
    if let Ok(selector) = cmdline::parse(&text) {
        let again = cmdline::parse(&selector.to_string()).expect("a printed selector parses");
        match (&selector, &again) {
            (Selector::Image(a), Selector::Image(b)) => {
                let da: Vec<_> = a.iter().map(|c| c.digest).collect();
                let db: Vec<_> = b.iter().map(|c| c.digest).collect();
                assert_eq!(da, db);
            }
            _ => assert_eq!(selector, again),
        }
    }
});
