//! The EROFS reader on hostile images: it must never panic, loop or blow
//! up memory; whatever tree it returns must dump and re-parse, and list its
//! objects (`erofs::objects`) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot::dumpfile::{self, ParseOptions};
use sealroot::erofs::reader;

fuzz_target!(|data: &[u8]| {
    let _ = reader::describe_offset(data, data.len() as u64 / 2);
    let Ok(tree) = reader::read_tree(data) else { return };
    // What the initramfs' first-boot walk reads from a verified image.
    let _ = sealroot::erofs::objects::ImageObjects::of_tree(&tree);
    let dump = dumpfile::to_bytes(&tree);
    dumpfile::parse_bytes(&dump, ParseOptions { strict: true }).expect("dump of a read image must parse");
});
