//! sealroot's merged EROFS against composefs-rs' (cfsctl 0.9.4, the
//! reference bootc's sealed UKIs pin): for images of several shapes, with
//! sha256 and sha512 repositories, `sealroot`'s composefs digest must equal
//! `cfsctl oci compute-id` and its EROFS must equal, byte for byte, the one
//! `cfsctl oci pull` stores in the repository.
//!
//! cfsctl comes from `scripts/reference-tools --cfsctl` (cargo install from
//! crates.io, cached) or SEALROOT_CFSCTL; the test fails, never skips,
//! without it. The commands, per image and algorithm:
//!
//! ```sh
//! cfsctl --repo R init --insecure --algorithm fsverity-sha512-12   # or -sha256-12
//! cfsctl --repo R oci pull oci:LAYOUT:TAG TAG
//! cfsctl --repo R oci compute-id TAG         # hex digest
//! cfsctl --repo R oci dump TAG               # composefs-dump(5), for diagnostics
//! # the EROFS: R/images/<digest>
//! ```
//!
//! `--insecure`: the test's temporary directory need not support fs-verity;
//! it changes nothing in the images.

mod oci_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use oci_support::images::{self, SHA512_12, sealroot_merged};
use oci_support::{cfsctl, run};
use sealroot::oci::artifact::VerityAlgorithm;

/// A composefs-rs repository driven through cfsctl.
struct CfsRepo {
    dir: PathBuf,
}

impl CfsRepo {
    fn cmd(&self) -> Command {
        let mut c = Command::new(cfsctl());
        c.arg("--repo").arg(&self.dir);
        c
    }

    fn init(dir: PathBuf, algorithm: VerityAlgorithm) -> CfsRepo {
        let repo = CfsRepo { dir };
        run(repo
            .cmd()
            .args(["init", "--insecure", "--algorithm"])
            .arg(algorithm.to_string()));
        repo
    }

    fn pull(&self, layout: &Path, tag: &str) {
        run(self
            .cmd()
            .args(["oci", "pull"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(tag));
    }

    fn compute_id(&self, tag: &str) -> String {
        let out = run(self.cmd().args(["oci", "compute-id", tag]));
        String::from_utf8(out).unwrap().trim().to_string()
    }

    fn dump(&self, tag: &str) -> String {
        String::from_utf8(run(self.cmd().args(["oci", "dump", tag]))).unwrap()
    }

    /// The EROFS `oci pull` stored, by its digest.
    fn image(&self, id: &str) -> Vec<u8> {
        let path = self.dir.join("images").join(id);
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cfsctl stored no image {} ({e}); images/: {:?}",
                path.display(),
                std::fs::read_dir(self.dir.join("images"))
                    .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            )
        })
    }
}

/// A dump line to compare: hardlink lines reduced to `PATH @ TARGET`
/// (composefs-rs prints them with placeholder fields, composefs-info and
/// sealroot with the inode's).
fn comparable(line: &str) -> String {
    let f: Vec<&str> = line.split(' ').collect();
    match (f.get(2), f.get(8)) {
        (Some(mode), Some(target)) if mode.starts_with('@') => format!("{} @ {target}", f[0]),
        _ => line.to_string(),
    }
}

/// The lines of two dumps that differ, for a readable failure.
fn dump_diff(ours: &str, theirs: &str) -> String {
    let ours: Vec<String> = ours.lines().map(comparable).collect();
    let theirs: Vec<String> = theirs.lines().map(comparable).collect();
    let mut out = String::new();
    for l in ours.iter().filter(|l| !theirs.contains(l)) {
        out += &format!("  sealroot only: {l}\n");
    }
    for l in theirs.iter().filter(|l| !ours.contains(l)) {
        out += &format!("  cfsctl only:   {l}\n");
    }
    out
}

/// Pulls `oci:LAYOUT:TAG` into a fresh repository of `algorithm` and
/// compares digest and bytes with sealroot's; returns the digest.
fn compare(work: &Path, layout: &Path, tag: &str, algorithm: VerityAlgorithm) -> String {
    let repo = CfsRepo::init(
        work.join(format!("repo-{tag}-{}", algorithm.hash)),
        algorithm,
    );
    repo.pull(layout, tag);
    let theirs = repo.compute_id(tag);
    let merged = sealroot_merged(layout, tag, algorithm);
    let ours = merged.digest(algorithm).to_hex();
    if ours != theirs {
        let our_dump = String::from_utf8(sealroot::dumpfile::to_bytes(&merged.tree)).unwrap();
        panic!(
            "{tag} ({algorithm}): sealroot {ours}, cfsctl oci compute-id {theirs}; dumps differ:\n{}",
            dump_diff(&our_dump, &repo.dump(tag))
        );
    }
    let bytes = repo.image(&theirs);
    assert!(
        merged.erofs == bytes,
        "{tag} ({algorithm}): same digest but different bytes?"
    );
    ours
}

#[test]
fn every_shape_has_cfsctls_digest_and_bytes_with_sha256_and_sha512() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let shapes = images::shapes();
    assert!(shapes.len() >= 5);
    for shape in &shapes {
        images::write_image(&layout, shape.name, &shape.layers);
    }
    for shape in &shapes {
        let d256 = compare(work.path(), &layout, shape.name, VerityAlgorithm::SHA256_12);
        let d512 = compare(work.path(), &layout, shape.name, SHA512_12);
        assert_eq!((d256.len(), d512.len()), (64, 128), "{}", shape.name);
    }
}

/// The same hardlinked programs written in orders a GNU tar produces
/// (data on a later alias, links spanning directories and layers): one
/// digest, cfsctl's.
#[test]
fn hardlink_member_order_gives_cfsctls_digest() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let tree = images::programs();
    let n = tree.names().len();
    let orders = [
        tree.plain_order(),
        images::Order {
            carriers: vec![2, 1, 1, 1, 0],
            names: (0..n).rev().collect(),
            split: usize::MAX,
        },
        images::Order {
            carriers: vec![1, 2, 2, 0, 0],
            names: (0..n).map(|k| (k * 5) % n).collect(),
            split: 4,
        },
    ];
    let mut digests = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let tag = format!("order{i}");
        images::write_image(&layout, &tag, &tree.layers(order));
        digests.push(compare(
            work.path(),
            &layout,
            &tag,
            VerityAlgorithm::SHA256_12,
        ));
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

/// `sealroot oci compute-id` prints what `cfsctl oci compute-id` prints
/// and writes the EROFS cfsctl stores.
#[test]
fn compute_id_cli_matches_cfsctl() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let shape = images::hardlinks_across_layers();
    images::write_image(&layout, shape.name, &shape.layers);
    let repo = CfsRepo::init(work.path().join("repo"), SHA512_12);
    repo.pull(&layout, shape.name);
    let theirs = repo.compute_id(shape.name);
    let erofs = work.path().join("out.erofs");
    let out = run(Command::new(env!("CARGO_BIN_EXE_sealroot"))
        .args([
            "oci",
            "compute-id",
            "--algorithm",
            "fsverity-sha512-12",
            "--erofs",
        ])
        .arg(&erofs)
        .arg(format!("oci:{}:{}", layout.display(), shape.name)));
    assert_eq!(String::from_utf8(out).unwrap().trim(), theirs);
    assert!(std::fs::read(&erofs).unwrap() == repo.image(&theirs));
}

/// A sha512 seal and deploy (`oci seal --algorithm fsverity-sha512-12`
/// into a `repo init --algorithm fsverity-sha512-12` repository) sign and
/// store exactly what cfsctl computes for a sha512 repository: the signed
/// merged digest is `cfsctl oci compute-id`, `images/<hex>` has cfsctl's
/// bytes, and every object the EROFS records sits at the path cfsctl's
/// repository has it (`objects/XX/<126 hex>`, the same layout).
#[test]
fn sha512_seal_and_deploy_match_cfsctl() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let shape = images::hardlinks_across_layers();
    images::write_image(&layout, shape.name, &shape.layers);
    let repo = CfsRepo::init(work.path().join("cfs"), SHA512_12);
    repo.pull(&layout, shape.name);
    let theirs = repo.compute_id(shape.name);

    let sr = |args: &[&str]| -> String {
        let out = run(Command::new(env!("CARGO_BIN_EXE_sealroot")).args(args));
        String::from_utf8(out).unwrap()
    };
    let keys = work.path().join("keys");
    sr(&[
        "keygen",
        "--out-dir",
        keys.to_str().unwrap(),
        "--type",
        "p256",
        "--self-signed",
        "--subject",
        "CN=cfsctl interop",
    ]);
    let find = |ext: &str| -> String {
        std::fs::read_dir(&keys)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("signer") && n.contains(ext)
            })
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let (key, cert) = (find(".key"), find(".crt"));
    let image = format!("oci:{}:{}", layout.display(), shape.name);
    let sealed: serde_json::Value = serde_json::from_str(&sr(&[
        "oci",
        "seal",
        &image,
        "--key",
        &key,
        "--cert",
        &cert,
        "--algorithm",
        "fsverity-sha512-12",
        "--json",
    ]))
    .unwrap();
    assert_eq!(sealed["digests"]["merged"], theirs.as_str());
    assert_eq!(sealed["composefsDigest"], theirs.as_str());

    let ours = work.path().join("sealroot-repo");
    sr(&[
        "repo",
        "init",
        "--repo",
        ours.to_str().unwrap(),
        "--algorithm",
        "fsverity-sha512-12",
    ]);
    let deployed: serde_json::Value = serde_json::from_str(&sr(&[
        "deploy",
        &image,
        "--repo",
        ours.to_str().unwrap(),
        "--cert",
        &cert,
        "--json",
    ]))
    .unwrap();
    assert_eq!(deployed["deployment"]["image"], theirs.as_str());
    let erofs = std::fs::read(ours.join("images").join(&theirs)).unwrap();
    assert!(
        erofs == repo.image(&theirs),
        "images/{theirs} differs from cfsctl's"
    );
    let objects = sealroot::erofs::objects::ImageObjects::read(&erofs).unwrap();
    assert!(!objects.digests().is_empty());
    for d in objects.digests() {
        let hex = d.to_hex();
        let rel = format!("objects/{}/{}", &hex[..2], &hex[2..]);
        assert_eq!(hex.len(), 128);
        assert!(ours.join(&rel).is_file(), "sealroot has no {rel}");
        assert!(repo.dir.join(&rel).is_file(), "cfsctl has no {rel}");
        assert!(
            std::fs::read(ours.join(&rel)).unwrap() == std::fs::read(repo.dir.join(&rel)).unwrap(),
            "{rel} differs"
        );
    }
}
