//! The composefs-dump(5) parser on arbitrary bytes: it must never panic;
//! whatever it accepts must print and re-parse to the same dump, and any
//! image written from it must read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::dumpfile::{self, ParseOptions};
use sealroot::erofs::{self, WriteOptions, reader};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else { return };
    let strict = flags & 1 == 1;
    let Ok(tree) = dumpfile::parse_bytes(input, ParseOptions { strict }) else { return };
    let dump = dumpfile::to_bytes(&tree);
    let again = dumpfile::parse_bytes(&dump, ParseOptions { strict: true }).expect("printed dump must parse");
    assert_eq!(dumpfile::to_bytes(&again), dump, "dump must be stable");
    let opts = WriteOptions { min_version: (flags >> 1 & 1) as u32, max_version: 1 };
    if let Ok(image) = erofs::image_bytes(&tree, &opts) {
        reader::read_tree(&image).expect("written image must read back");
    }
});
