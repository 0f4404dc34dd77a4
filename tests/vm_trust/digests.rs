//! The digest the kernel measures, and the descriptor and Merkle tree it
//! returns (FS_IOC_READ_VERITY_METADATA), equal what `sealroot digest` and
//! fsverity-utils compute on the host for the same content and parameters:
//! sha256 and sha512, block sizes 1024/2048/4096, salts, the empty file,
//! single-block files and multi-level trees.

use std::path::Path;

use sealroot_testbed::Result;

use super::fixtures::{data, fsverity, our_digest, reference_digest, run};
use super::scenario::{DISK, Script, boot, disk_from};

const SALT32: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// (name, size, parameters). Tree depths: 1 KiB sha256 blocks hold 32
/// hashes, so 1,050,000 bytes = 1026 blocks -> 33 -> 2 -> 1 (3 levels);
/// 1 KiB sha512 blocks hold 16: 500,000 bytes -> 489 -> 31 -> 2 -> 1.
const CASES: &[(&str, usize, &[&str])] = &[
    ("empty-sha256", 0, &[]),
    (
        "empty-sha512-salt",
        0,
        &["--hash-alg", "sha512", "--salt", "00112233"],
    ),
    ("one-byte", 1, &[]),
    ("one-block", 4096, &[]),
    ("block-plus-one-sha512", 4097, &["--hash-alg", "sha512"]),
    (
        "sha256-1k-salt32",
        1_050_000,
        &["--block-size", "1024", "--salt", SALT32],
    ),
    ("sha256-2k", 200_001, &["--block-size", "2048"]),
    (
        "sha512-1k",
        500_000,
        &["--hash-alg", "sha512", "--block-size", "1024"],
    ),
    (
        "sha512-4k-salt",
        3_000_000,
        &["--hash-alg", "sha512", "--salt", "deadbeef"],
    ),
];

/// `fsverity digest --out-merkle-tree --out-descriptor` (the reference).
fn reference_metadata(file: &Path, params: &[&str], dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>) {
    let tree = dir.join(format!("{name}.tree"));
    let desc = dir.join(format!("{name}.desc"));
    run(fsverity()
        .arg("digest")
        .arg(file)
        .args(params)
        .arg(format!("--out-merkle-tree={}", tree.display()))
        .arg(format!("--out-descriptor={}", desc.display())));
    (std::fs::read(tree).unwrap(), std::fs::read(desc).unwrap())
}

#[test]
fn kernel_measures_the_digests_we_compute() -> Result<()> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("disk");
    let reference = tmp.path().join("reference");
    for d in [src.join("files"), src.join("out"), reference.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut s = Script::new();
    for (i, (name, size, params)) in CASES.iter().enumerate() {
        std::fs::write(src.join("files").join(name), data(*size, 1000 + i as u64)).unwrap();
        let file = format!("{DISK}/files/{name}");
        s.sealroot(
            &format!("enable/{name}"),
            format!("enable {} {file}", params.join(" ")),
        );
        s.sealroot(&format!("measure/{name}"), format!("measure {file}"));
        for kind in ["descriptor", "merkle_tree"] {
            s.run(
                &format!("{kind}/{name}"),
                format!(
                    "sh -c '/bin/sealroot dump-metadata {kind} {file} > {DISK}/out/{name}.{kind}'"
                ),
            );
        }
    }
    // A slice of a multi-level tree through --offset/--length.
    s.run(
        "merkle_tree-slice",
        format!(
            "sh -c '/bin/sealroot dump-metadata merkle_tree --offset=1000 --length=3000 \
             {DISK}/files/sha256-1k-salt32 > {DISK}/out/slice'"
        ),
    );
    s.sealroot(
        "measure-json",
        format!("measure --json {DISK}/files/one-byte {DISK}/files/empty-sha256"),
    );

    let disk = disk_from(&src)?;
    let log = boot("vm-trust-digests", &s, &[&disk])?;

    for (name, _, params) in CASES {
        let file = src.join("files").join(name);
        let theirs = reference_digest(&file, params);
        let ours = our_digest(&file, params);
        assert_eq!(ours, theirs, "{name}: sealroot digest vs fsverity digest");
        log.result(&format!("enable/{name}"))?.assert_ok()?;
        log.result(&format!("measure/{name}"))?
            .assert_ok()?
            .assert_stdout_eq(&format!("{ours} {DISK}/files/{name}\n"))?;
        let (tree, desc) = reference_metadata(&file, params, &reference, name);
        for (kind, expected) in [("descriptor", &desc), ("merkle_tree", &tree)] {
            log.result(&format!("{kind}/{name}"))?.assert_ok()?;
            let got = disk.read_file(&format!("/out/{name}.{kind}"))?;
            if &got != expected {
                return Err(log.failure(&format!(
                    "{name}: the kernel's {kind} ({} bytes) differs from fsverity-utils' ({} bytes)",
                    got.len(),
                    expected.len()
                )));
            }
        }
    }
    let (tree, _) = reference_metadata(
        &src.join("files/sha256-1k-salt32"),
        CASES[5].2,
        &reference,
        "slice-ref",
    );
    log.result("merkle_tree-slice")?.assert_ok()?;
    assert_eq!(disk.read_file("/out/slice")?, tree[1000..4000]);

    let json: serde_json::Value = serde_json::from_str(&log.result("measure-json")?.stdout)
        .map_err(|e| log.failure(&format!("measure --json: {e}")))?;
    let expected = serde_json::json!([
        {"file": format!("{DISK}/files/one-byte"),
         "digest": our_digest(&src.join("files/one-byte"), &[])},
        {"file": format!("{DISK}/files/empty-sha256"),
         "digest": our_digest(&src.join("files/empty-sha256"), &[])},
    ]);
    if json != expected {
        return Err(log.failure(&format!("measure --json: {json} != {expected}")));
    }
    disk.fsck()?;
    Ok(())
}
