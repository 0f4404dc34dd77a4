//! The composefs-dump(5) parser on arbitrary bytes: it must never panic;
//! whatever it accepts must print and re-parse to the same dump (unless
//! escaping makes a line's xattrs too long), and any
//! image written from it must read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::dumpfile::{self, LineError, ParseOptions};
use sealroot::erofs::{self, WriteOptions, reader};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else { return };
    let strict = flags & 1 == 1;
    let Ok(tree) = dumpfile::parse_bytes(input, ParseOptions { strict }) else { return };
    let dump = dumpfile::to_bytes(&tree);
    match dumpfile::parse_bytes(&dump, ParseOptions { strict: true }) {
        Ok(again) => assert_eq!(dumpfile::to_bytes(&again), dump, "dump must be stable"),
        // Escaping (\xNN) can push a line's xattrs past the format's
        // 65535-byte limit; mkcomposefs and composefs-info do the same
        // (see escaping_can_push_xattrs_past_the_line_limit).
        Err(dumpfile::Error::Line { error: LineError::XattrsTooLong(n), .. }) if n > 65535 => {}
        Err(e) => panic!("printed dump must parse: {e}"),
    }
    let opts = WriteOptions { min_version: (flags >> 1 & 1) as u32, max_version: 1 };
    if let Ok(image) = erofs::image_bytes(&tree, &opts) {
        reader::read_tree(&image).expect("written image must read back");
    }
});
