//! The fuzz crate's helpers (`fuzz/src/lib.rs`: the tar checksum repair the
//! `tar_entries` and `oci_apply` mutators use), tested in the main suite:
//! the fuzz crate is its own workspace, built only by cargo-fuzz.

#[path = "../fuzz/src/lib.rs"]
mod fuzz_helpers;
