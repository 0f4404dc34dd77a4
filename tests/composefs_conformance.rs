//! Byte-identity with mkcomposefs 1.0.8 on the upstream conformance assets
//! (composefs source package, tests/assets), at the versions upstream's
//! tests/test-checksums.sh uses, plus versions 0 and 1 forced; the
//! should-fail assets must fail; `composefs-info dump` of each image must
//! equal our reader's dump; fsck.erofs (erofs-utils 1.8.6) must accept each
//! image. Expected checksums: the assets' *.sha256 files and the output of
//! `mkcomposefs [--min-version=N --max-version=N] --from-file ASSET IMAGE`.

mod common;

use common::*;
use sealroot::dumpfile::{self, ParseOptions};
use sealroot::erofs::{self, WriteOptions, reader};
use sha2::Digest;

/// Upstream's non-strict assets (tests/test-checksums.sh).
const NONSTRICT: [&str; 3] = [
    "no-newline.dump",
    "longlink.dump",
    "honggfuzz-longlink-unterminated.dump",
];

fn assets_with_checksums() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&reference().assets)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".sha256").map(str::to_owned))
        .filter(|n| reference().assets.join(n).exists())
        .collect();
    v.sort();
    assert!(
        v.len() >= 15,
        "expected the 15 upstream assets with checksums, found {v:?}"
    );
    v
}

fn version_of(asset: &str) -> Option<u32> {
    std::fs::read_to_string(reference().assets.join(format!("{asset}.version")))
        .ok()
        .map(|s| s.trim().parse().unwrap())
}

fn mkcomposefs(input: &[u8], version: Option<u32>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("in.dump"), dir.path().join("out.cfs"));
    std::fs::write(&src, input).unwrap();
    let mut cmd = tool("mkcomposefs");
    if let Some(v) = version {
        cmd.arg(format!("--min-version={v}"))
            .arg(format!("--max-version={v}"));
    }
    run(cmd.arg("--from-file").arg(&src).arg(&out));
    std::fs::read(&out).unwrap()
}

fn composefs_info(cmd: &str, image: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.cfs");
    std::fs::write(&img, image).unwrap();
    run(tool("composefs-info").arg(cmd).arg(&img)).stdout
}

fn ours(input: &[u8], strict: bool, version: Option<u32>) -> Vec<u8> {
    let tree = dumpfile::parse_bytes(input, ParseOptions { strict }).unwrap();
    let opts = match version {
        Some(v) => WriteOptions {
            min_version: v,
            max_version: v,
        },
        None => WriteOptions::default(),
    };
    erofs::image_bytes(&tree, &opts).unwrap()
}

#[test]
fn assets_are_byte_identical_to_mkcomposefs() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for asset in assets_with_checksums() {
        let input = read_asset(&asset);
        let strict = !NONSTRICT.contains(&asset.as_str());
        let expected_sha =
            std::fs::read_to_string(reference().assets.join(format!("{asset}.sha256"))).unwrap();
        for version in [version_of(&asset), Some(0), Some(1)] {
            let image = ours(&input, strict, version);
            let reference_image = mkcomposefs(&input, version);
            if version == version_of(&asset) {
                assert_eq!(
                    hex::encode(sha2::Sha256::digest(&reference_image)),
                    expected_sha.trim(),
                    "{asset}: the reference itself disagrees with the asset checksum"
                );
            }
            match first_difference(&image, &reference_image) {
                None => report.push(format!("{asset} version {version:?}: identical")),
                Some(d) => failures.push(format!("{asset} version {version:?}: {d}")),
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn should_fail_assets_fail() {
    let mut n = 0;
    for e in std::fs::read_dir(&reference().assets).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if !name.starts_with("should-fail-") {
            continue;
        }
        n += 1;
        let input = read_asset(&name);
        let result = dumpfile::parse_bytes(&input, ParseOptions::default())
            .map_err(|e| e.to_string())
            .and_then(|t| {
                erofs::image_bytes(&t, &WriteOptions::default()).map_err(|e| e.to_string())
            });
        match result {
            Ok(_) => panic!("{name} should have failed"),
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
    assert_eq!(n, 14, "expected the 14 upstream should-fail assets");
}

#[test]
fn reader_dump_matches_composefs_info_and_round_trips() {
    for asset in assets_with_checksums() {
        let input = read_asset(&asset);
        let strict = !NONSTRICT.contains(&asset.as_str());
        let version = version_of(&asset);
        let image = ours(&input, strict, version);
        let tree = reader::read_tree(&image).unwrap_or_else(|e| panic!("{asset}: {e}"));
        let dump = dumpfile::to_bytes(&tree);
        let expected = composefs_info("dump", &image);
        if dump != expected {
            let (a, b) = (
                String::from_utf8_lossy(&dump),
                String::from_utf8_lossy(&expected),
            );
            let line = a.lines().zip(b.lines()).position(|(x, y)| x != y);
            panic!(
                "{asset}: dump differs from composefs-info dump at line {line:?}:\nours:   {:.300}\ntheirs: {:.300}",
                line.and_then(|l| a.lines().nth(l)).unwrap_or(""),
                line.and_then(|l| b.lines().nth(l)).unwrap_or("")
            );
        }
        // image -> dump -> image is the identity (upstream's reproducibility check).
        let again = ours(&dump, true, version);
        assert!(
            first_difference(&again, &image).is_none(),
            "{asset}: dump of the image does not reproduce it"
        );
    }
}

#[test]
fn fsck_erofs_accepts_every_image() {
    let dir = tempfile::tempdir().unwrap();
    for asset in assets_with_checksums() {
        let input = read_asset(&asset);
        let strict = !NONSTRICT.contains(&asset.as_str());
        for version in [Some(0), Some(1)] {
            let path = dir.path().join("img.cfs");
            std::fs::write(&path, ours(&input, strict, version)).unwrap();
            run(tool("fsck.erofs").arg(&path));
        }
    }
}
