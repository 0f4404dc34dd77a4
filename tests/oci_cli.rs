//! `sealroot oci inspect|verify` end to end.

mod oci_support;

use std::process::Command;

use oci_support::fixture::{ImageBuilder, LayerBuilder};
use oci_support::flip_byte;
use sealroot::oci::Compression;

fn sealroot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealroot"))
}

fn fixture(dir: &std::path::Path) -> oci_support::fixture::Fixture {
    let l1 = LayerBuilder::new()
        .file("usr/lib/os-release", b"ID=test\n", 0o644)
        .file("usr/bin/tool", &[0xab; 9000], 0o755)
        .finish();
    let l2 = LayerBuilder::new().whiteout("usr/lib/os-release").finish();
    ImageBuilder::new()
        .layer(l1, Compression::Zstd)
        .layer(l2, Compression::Gzip)
        .write(dir, "v1")
}

#[test]
fn inspect_json() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path());
    let out = sealroot()
        .args(["oci", "inspect", "--json"])
        .arg(format!("oci:{}:v1", tmp.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["digest"], f.manifest.to_string());
    assert_eq!(v["config"]["digest"], f.config.to_string());
    assert_eq!(v["layers"][1]["diffId"], f.diff_ids[1].to_string());
    assert_eq!(v["sealingArtifacts"], serde_json::json!([]));
}

#[test]
fn verify_reports_intact_and_tampered_images() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path());
    let image = format!("oci:{}:v1", tmp.path().display());
    let out = sealroot()
        .args(["oci", "verify", "--changes", &image])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("intact: 2 layers, 3 entries"), "{stdout}");
    assert!(
        stdout.contains("layer 2 whiteout /usr/lib/os-release"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/usr/bin/tool 0755 0:0 file 9000 bytes fs-verity sha256:"),
        "{stdout}"
    );

    flip_byte(&f.blob(&f.layers[1]), 30);
    let out = sealroot().args(["oci", "verify", &image]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("sealroot: error:"), "{stderr}");
    assert!(stderr.contains(&f.layers[1].to_string()), "{stderr}");
}

#[test]
fn bad_reference_is_explained() {
    let out = sealroot()
        .args(["oci", "inspect", "docker://quay.io/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("skopeo copy"));
}
