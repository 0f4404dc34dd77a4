//! The RFC 3339 parser (`sealroot::timestamp`, `[verify] min-created` and
//! the image config's `created`) on arbitrary text: never panics, parsing
//! is deterministic, and the order of instants is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::timestamp::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Two timestamps separated by a newline, to compare.
    let (a, b) = text.split_once('\n').unwrap_or((text, "1970-01-01T00:00:00Z"));
    let (Ok(x), Ok(y)) = (Timestamp::parse(a), Timestamp::parse(b)) else {
        return;
    };
    assert_eq!(Timestamp::parse(a).unwrap(), x);
    assert!(x.nanos() < 1_000_000_000);
    assert_eq!(x.cmp(&y), y.cmp(&x).reverse());
    assert_eq!(x == y, (x.unix_seconds(), x.nanos()) == (y.unix_seconds(), y.nanos()));
});
