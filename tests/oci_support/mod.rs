//! Shared by the `oci_*` integration tests: an OCI image fixture builder, an
//! in-memory [`LayerTarget`] and an in-memory object sink.
#![allow(dead_code)]

pub mod fixture;
pub mod images;
pub mod memtree;
pub mod sequential;

#[path = "../common/reference_tools.rs"]
mod reference_tools;

use std::path::Path;
use std::process::Command;

/// Runs a reference tool, failing the test with an install hint when it is
/// missing (never skipping).
pub fn tool(name: &str, package: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} is required for this test: install it with `apt-get install {package}` \
         (CI needs the Debian packages skopeo and umoci)"
    );
    Command::new(name)
}

/// Runs a command and returns stdout, failing with its stderr.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Flips one byte of a file in place.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[offset] ^= 0x20;
    std::fs::write(path, data).unwrap();
}

/// composefs-rs' `cfsctl`, from SEALROOT_CFSCTL or `scripts/reference-tools
/// --cfsctl` (which builds it from crates.io once). Fails, never skips,
/// when it cannot be had.
pub fn cfsctl() -> &'static Path {
    static CFSCTL: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    CFSCTL.get_or_init(|| {
        if let Some(p) = std::env::var_os("SEALROOT_CFSCTL") {
            return p.into();
        }
        let out = reference_tools::run(
            &["--cfsctl"],
            "this test compares with composefs-rs' cfsctl 0.9.4, built with cargo from \
             crates.io; set SEALROOT_CFSCTL to a built cfsctl or give the machine cargo and \
             crates.io",
        );
        reference_tools::value(&out, "SEALROOT_CFSCTL")
    })
}
