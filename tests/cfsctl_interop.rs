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
//! The bootable variant (composefs-boot's `transform_for_boot`: /boot and
//! /sysroot emptied, SELinux labels from the image's policy):
//!
//! ```sh
//! cfsctl --repo R oci pull --bootable oci:LAYOUT:TAG TAG   # prints "Boot image: <digest>"
//! cfsctl --repo R oci compute-id --bootable TAG
//! cfsctl --repo R oci dump --bootable TAG
//! # the bootable EROFS: R/images/<boot digest>
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

    /// `oci pull --bootable`: the boot image's digest it prints.
    fn pull_bootable(&self, layout: &Path, tag: &str) -> String {
        let out = run(self
            .cmd()
            .args(["oci", "pull", "--bootable"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(tag));
        let out = String::from_utf8(out).unwrap();
        out.lines()
            .find_map(|l| l.strip_prefix("Boot image: "))
            .unwrap_or_else(|| panic!("cfsctl oci pull --bootable printed no boot image:\n{out}"))
            .trim()
            .to_string()
    }

    fn compute_id_bootable(&self, tag: &str) -> String {
        let out = run(self.cmd().args(["oci", "compute-id", "--bootable", tag]));
        String::from_utf8(out).unwrap().trim().to_string()
    }

    fn dump_bootable(&self, tag: &str) -> String {
        String::from_utf8(run(self.cmd().args(["oci", "dump", "--bootable", tag]))).unwrap()
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

/// `sealroot oci compute-id [--bootable]` of `shape` (sha512) prints
/// `theirs` and writes the EROFS cfsctl stored under that digest.
fn cli_matches(
    work: &Path,
    layout: &Path,
    repo: &CfsRepo,
    shape: &str,
    bootable: bool,
    theirs: &str,
) {
    let erofs = work.join("out.erofs");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealroot"));
    cmd.args(["oci", "compute-id", "--algorithm", "fsverity-sha512-12"]);
    if bootable {
        cmd.arg("--bootable");
    }
    let out = run(cmd
        .arg("--erofs")
        .arg(&erofs)
        .arg(format!("oci:{}:{shape}", layout.display())));
    assert_eq!(String::from_utf8(out).unwrap().trim(), theirs);
    assert!(std::fs::read(&erofs).unwrap() == repo.image(theirs));
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
    cli_matches(work.path(), &layout, &repo, shape.name, false, &theirs);
}

/// The bootable variant of `oci:LAYOUT:TAG` in a fresh repository of
/// `algorithm`: cfsctl's digest (compute-id and the pulled boot image
/// agree) against sealroot's, and the bytes; returns the digest.
fn compare_bootable(work: &Path, layout: &Path, tag: &str, algorithm: VerityAlgorithm) -> String {
    let repo = CfsRepo::init(
        work.join(format!("boot-{tag}-{}", algorithm.hash)),
        algorithm,
    );
    let pulled = repo.pull_bootable(layout, tag);
    let theirs = repo.compute_id_bootable(tag);
    assert_eq!(
        pulled, theirs,
        "{tag}: cfsctl pull --bootable vs compute-id --bootable"
    );
    let ours = images::sealroot_bootable(layout, tag, algorithm)
        .unwrap_or_else(|e| panic!("{tag}: sealroot refused the bootable variant: {e}"));
    let digest = ours.digest(algorithm).to_hex();
    if digest != theirs {
        let our_dump = String::from_utf8(sealroot::dumpfile::to_bytes(&ours.tree)).unwrap();
        panic!(
            "{tag} ({algorithm}): sealroot bootable {digest}, cfsctl oci compute-id --bootable \
             {theirs}; dumps differ:\n{}",
            dump_diff(&our_dump, &repo.dump_bootable(tag))
        );
    }
    assert!(
        ours.erofs == repo.image(&theirs),
        "{tag} ({algorithm}): same bootable digest but different bytes?"
    );
    assert_ne!(
        digest,
        repo.compute_id(tag),
        "{tag}: the bootable variant must differ from the plain merged EROFS"
    );
    digest
}

/// Images with their own SELinux policy (regexes, file types, `<<none>>`,
/// a lookahead, .local, .subs and .subs_dist, hardlinks whose names get
/// different labels) and without one: sealroot's bootable EROFS is
/// cfsctl's, byte for byte, with sha256 and sha512.
#[test]
fn bootable_variant_has_cfsctls_digest_and_bytes() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let shapes = images::bootable_shapes();
    for shape in &shapes {
        images::write_image(&layout, shape.name, &shape.layers);
    }
    for shape in &shapes {
        for algorithm in [VerityAlgorithm::SHA256_12, SHA512_12] {
            compare_bootable(work.path(), &layout, shape.name, algorithm);
        }
    }
}

/// The labels are the policy's (not just equal to cfsctl's by accident of
/// both dropping them): spot checks on sealroot's tree, the values being
/// what cfsctl's dump of the same image shows.
#[test]
fn bootable_variant_labels_come_from_the_images_policy() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let shape = images::selinux_policy();
    images::write_image(&layout, shape.name, &shape.layers);
    let repo = CfsRepo::init(work.path().join("repo"), VerityAlgorithm::SHA256_12);
    repo.pull(&layout, shape.name);
    let theirs = repo.dump_bootable(shape.name);
    let ours = images::sealroot_bootable(&layout, shape.name, VerityAlgorithm::SHA256_12).unwrap();
    let label = |path: &str| {
        let id = ours.tree.lookup_path(path.as_bytes()).unwrap();
        ours.tree
            .xattr(id, b"security.selinux")
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    for (path, want) in [
        ("usr/bin/tool", Some("system_u:object_r:bin_t:s0")),
        ("usr/bin", Some("system_u:object_r:bin_dir_t:s0")),
        ("usr/libexec/tool", Some("system_u:object_r:libexec_t:s0")),
        ("usr/lib/tool-a", Some("system_u:object_r:usr_t:s0")),
        ("etc/api-secret", Some("system_u:object_r:secret_t:s0")),
        ("etc/shadow-secret", Some("system_u:object_r:etc_t:s0")),
        ("dev/null", Some("system_u:object_r:null_device_t:s0")),
        ("dev/initctl", Some("system_u:object_r:initctl_t:s0")),
        ("bin", Some("system_u:object_r:bin_t:s0")),
        ("tmp/scratch", None),
        ("var/home/alice", Some("system_u:object_r:home_root_t:s0")),
        // .subs_dist (later) wins over .subs: /opt/app is named /usr.
        ("opt/app/run", Some("system_u:object_r:usr_t:s0")),
        ("usr/bin/labelled", Some("system_u:object_r:bin_t:s0")),
    ] {
        assert_eq!(label(path).as_deref(), want, "/{path}");
        let line = theirs
            .lines()
            .find(|l| l.split(' ').next() == Some(&format!("/{path}")))
            .unwrap_or_else(|| panic!("cfsctl's dump has no /{path}"));
        match want {
            Some(w) => assert!(line.contains(&format!("security.selinux={w}")), "{line}"),
            None => assert!(!line.contains("security.selinux"), "{line}"),
        }
    }
}

/// An image without /sysroot has no bootable variant: both refuse.
#[test]
fn bootable_variant_needs_boot_and_sysroot_like_cfsctl() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let shape = images::files_and_metadata();
    images::write_image(&layout, shape.name, &shape.layers);
    let repo = CfsRepo::init(work.path().join("repo"), VerityAlgorithm::SHA256_12);
    repo.pull(&layout, shape.name);
    let out = repo
        .cmd()
        .args(["oci", "compute-id", "--bootable", shape.name])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "cfsctl accepted an image without /boot"
    );
    let e = images::sealroot_bootable(&layout, shape.name, VerityAlgorithm::SHA256_12).unwrap_err();
    assert!(e.to_string().contains("/boot is missing"), "{e}");
}

/// `sealroot oci compute-id --bootable` prints cfsctl's boot digest and
/// writes its bytes.
#[test]
fn compute_id_bootable_cli_matches_cfsctl() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let shape = images::selinux_policy();
    images::write_image(&layout, shape.name, &shape.layers);
    let repo = CfsRepo::init(work.path().join("repo"), SHA512_12);
    let theirs = repo.pull_bootable(&layout, shape.name);
    cli_matches(work.path(), &layout, &repo, shape.name, true, &theirs);
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
