//! Shared helpers for the composefs integration tests: where the reference
//! tools and conformance assets are (`scripts/reference-tools`), and how to
//! run them. Tests FAIL when the tools cannot be set up: no silent skip.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod reference_tools;

pub struct Reference {
    pub bin: PathBuf,
    pub assets: PathBuf,
}

/// The reference tools, from SEALROOT_REF_BIN / SEALROOT_REF_ASSETS or by
/// running `scripts/reference-tools` (once per test binary).
pub fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        if let (Ok(bin), Ok(assets)) = (
            std::env::var("SEALROOT_REF_BIN"),
            std::env::var("SEALROOT_REF_ASSETS"),
        ) {
            return Reference {
                bin: bin.into(),
                assets: assets.into(),
            };
        }
        let text = reference_tools::run(
            &[],
            "the composefs tests need mkcomposefs, composefs-info and fsck.erofs from Debian \
             (network access to the Debian mirror apt uses, see scripts/debian-mirror, or set \
             SEALROOT_REF_BIN and SEALROOT_REF_ASSETS)",
        );
        let get = |k: &str| reference_tools::value(&text, k);
        Reference {
            bin: get("SEALROOT_REF_BIN"),
            assets: get("SEALROOT_REF_ASSETS"),
        }
    })
}

pub fn tool(name: &str) -> Command {
    Command::new(reference().bin.join(name))
}

/// Runs a command, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Reads an asset, gunzipping `.gz` ones.
pub fn read_asset(name: &str) -> Vec<u8> {
    let path = reference().assets.join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if name.ends_with(".gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out).unwrap();
        out
    } else {
        raw
    }
}

/// The first differing byte of two images, with the EROFS structure it
/// falls in, for readable failures.
pub fn first_difference(ours: &[u8], theirs: &[u8]) -> Option<String> {
    if ours == theirs {
        return None;
    }
    let off = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()));
    let what = sealroot::erofs::reader::describe_offset(theirs, off as u64);
    Some(format!(
        "images differ (ours {} bytes, reference {} bytes) first at offset {off:#x}: ours {:02x?} reference {:02x?}; {what}",
        ours.len(),
        theirs.len(),
        &ours[off..(off + 16).min(ours.len())],
        &theirs[off..(off + 16).min(theirs.len())],
    ))
}
pub mod trees;
