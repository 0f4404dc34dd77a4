//! `sealroot-prepare`: the initramfs binary (see `src/prepare`). Built static,
//! without the `host` feature.

fn main() {}
