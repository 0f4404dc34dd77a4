//! `sealroot ostree` against the real ostree (no VM; the kernel side is
//! `tests/vm_ostree.rs`):
//!
//! - the composefs EROFS of a commit is byte for byte what ostree 2026.4
//!   (Debian sid, with composefs; `scripts/reference-tools`) writes for
//!   it: `ostree checkout --composefs`, `ostree admin deploy`'s
//!   `.ostree.cfs` (composefs with verity), and its digest is ostree's
//!   `ostree.composefs.digest.v0` (`ostree commit
//!   --generate-composefs-metadata`), for bare-user and bare
//!   repositories made by bookworm's ostree 2022.7;
//! - `fsck.erofs` and `composefs-info` read it; every content object is
//!   checked against its name while hashing (so sealroot's serialisation
//!   of ostree's file header is ostree's, for regular files with and
//!   without xattrs, in bare-user and bare repositories);
//! - `seal` writes detached metadata that ostree itself reads (GLib's
//!   GVariant parser), keeps other keys, and survives `ostree pull-local`;
//! - `deploy` writes the three files of the on-disk contract; `openssl
//!   cms -verify` accepts the signature over the record's fs-verity
//!   digest (computed by fsverity-utils);
//! - refusals: no trust choice, no signature, an untrusted signer, an
//!   altered object, symlinks planted in the sysroot and in the
//!   repository (`objects`, a fan-out directory, a content object).
//!
//! Run as root (bare repositories keep ownership). Fails, never skips,
//! without the reference tools.

mod common;
#[path = "ostree_support/mod.rs"]
mod support;
#[path = "common/tools.rs"]
mod tools;

use std::fs;
use std::path::Path;

use support::*;

/// Hex of a byte string as `ostree show` prints it: "[byte 0x43, 0xcc, ...]".
fn printed_bytes(text: &str) -> String {
    text.trim()
        .trim_start_matches("[byte ")
        .trim_end_matches(']')
        .split(", ")
        .map(|b| b.trim_start_matches("0x"))
        .collect()
}

fn composefs_digest_v0(repo: &Path, rev: &str) -> String {
    printed_bytes(&run(ostree_ref()
        .arg(format!("--repo={}", repo.display()))
        .args([
            "show",
            "--print-metadata-key=ostree.composefs.digest.v0",
            rev,
        ])))
}

fn assert_same_image(ours: &[u8], theirs: &[u8]) {
    if let Some(diff) = common::first_difference(ours, theirs) {
        panic!("sealroot's EROFS differs from ostree's: {diff}");
    }
}

fn image_matches_ostree(mode: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, repo) = (tmp.path().join("tree"), tmp.path().join("repo"));
    source_tree(&tree);
    let commit = commit(&repo, mode, &tree, "main", &[]);
    let theirs = reference_image(&repo, "main", &tmp.path().join("theirs.cfs"));
    let (ours, digest) = sealroot_image(&repo, "main", &tmp.path().join("ours.cfs"));
    assert_same_image(&ours, &theirs);
    // By checksum too, and the digest ostree records in commit metadata.
    let (by_csum, _) = sealroot_image(&repo, &commit, &tmp.path().join("ours2.cfs"));
    assert_eq!(by_csum, ours);
    run(ostree_ref()
        .arg(format!("--repo={}", repo.display()))
        .args([
            "commit",
            "--branch=with-digest",
            "--generate-composefs-metadata",
        ])
        .arg(format!("--tree=ref={commit}")));
    assert_eq!(composefs_digest_v0(&repo, "with-digest"), digest);
    let fsverity = run(tools::fsverity()
        .command()
        .args(["digest", "--compact"])
        .arg(tmp.path().join("ours.cfs")));
    assert_eq!(fsverity.trim(), digest);

    run(common::tool("fsck.erofs").arg(tmp.path().join("ours.cfs")));
    let dump = run(common::tool("composefs-info")
        .arg("dump")
        .arg(tmp.path().join("ours.cfs")));
    let line = |path: &str| {
        dump.lines()
            .find(|l| l.split(' ').next() == Some(path))
            .unwrap_or_else(|| panic!("{path} not in the dump:\n{dump}"))
            .to_owned()
    };
    // A 3-byte file is external (ostree never inlines), mtime 0.
    let small = line("/usr/bin/small");
    let f: Vec<&str> = small.split(' ').collect();
    assert_eq!(
        &f[1..8],
        ["3", "100644", "1", "0", "0", "0", "0.0"],
        "{small}"
    );
    assert!(
        f[8].ends_with(".file") && f[8].len() == 2 + 1 + 62 + 5,
        "{small}"
    );
    assert!(small.ends_with("user.note=small\\x20file"), "{small}");
    // Hard links are separate inodes (nlink 1) with one object.
    let (a, b) = (line("/usr/bin/large"), line("/usr/bin/large-hardlink"));
    assert_eq!(a.split(' ').nth(3), Some("1"));
    assert_eq!(a.split(' ').nth(8), b.split(' ').nth(8));
    assert!(a.contains("trusted.overlay.custom=escaped"), "{a}");
    // Other owners, setuid, the directories ostree adds.
    assert!(line("/usr/share/owned").contains(" 100644 1 1000 100 "));
    assert!(line("/usr/sbin/suid").contains(" 104755 "));
    for d in ["/boot", "/var", "/sysroot"] {
        assert!(line(d).starts_with(&format!("{d} ")), "{d}");
    }
}

#[test]
fn bare_user_commit_image_is_ostrees_byte_for_byte() {
    image_matches_ostree("bare-user");
}

#[test]
fn bare_commit_image_is_ostrees_byte_for_byte() {
    image_matches_ostree("bare");
}

#[test]
fn hostile_repository_paths_are_refused_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, repo) = (tmp.path().join("tree"), tmp.path().join("repo"));
    source_tree(&tree);
    let commit = commit(&repo, "bare-user", &tree, "main", &[]);
    let compute_id = || {
        let mut c = sealroot();
        c.args(["ostree", "compute-id", "--repo"])
            .arg(&repo)
            .arg(&commit);
        c
    };
    let digest = run(&mut compute_id());
    // The object of /usr/bin/small, from the dump's redirect column.
    let dump = tmp.path().join("commit.dump");
    run(compute_id().arg("--dump").arg(&dump));
    let object = object_of(&dump, "/usr/bin/small");
    let path = repo.join("objects").join(&object);
    let fanout = path.parent().unwrap().to_owned();
    // objects/XX replaced by a symlink to an identical copy: still refused
    // (a root tool never follows a link it did not expect).
    let moved = tmp.path().join("fanout-copy");
    fs::rename(&fanout, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &fanout).unwrap();
    let err = fails(&mut compute_id(), 3);
    assert!(err.contains("symlink"), "{err}");
    fs::remove_file(&fanout).unwrap();
    fs::rename(&moved, &fanout).unwrap();
    assert_eq!(run(&mut compute_id()), digest);
    // A content object that is a symlink to a file outside (a bare-user
    // repository stores symlinks as regular files).
    let saved = tmp.path().join("object-copy");
    fs::rename(&path, &saved).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
    let err = fails(&mut compute_id(), 3);
    assert!(err.contains(&object), "{err}");
    fs::remove_file(&path).unwrap();
    fs::rename(&saved, &path).unwrap();
    // The repository's objects directory itself a symlink.
    let objects = repo.join("objects");
    let elsewhere = tmp.path().join("objects-elsewhere");
    fs::rename(&objects, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &objects).unwrap();
    let err = fails(&mut compute_id(), 3);
    assert!(err.contains("symlink"), "{err}");
    fs::remove_file(&objects).unwrap();
    fs::rename(&elsewhere, &objects).unwrap();
    assert_eq!(run(&mut compute_id()), digest);
}

#[test]
fn ostree_refuses_devices_and_fifos() {
    // Why no device, fifo or socket ever reaches an ostree image: ostree
    // does not commit them.
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        tree.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    run(ostree()
        .arg("init")
        .arg(format!("--repo={}", tmp.path().join("repo").display())));
    let err = fails(
        ostree()
            .arg("commit")
            .arg(format!("--repo={}", tmp.path().join("repo").display()))
            .args(["--branch=x"])
            .arg(format!("--tree=dir={}", tree.display())),
        1,
    );
    assert!(err.contains("fifo") || err.contains("Unsupported"), "{err}");
}

#[test]
fn seal_and_deploy_write_the_contract_and_openssl_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, src) = (tmp.path().join("tree"), tmp.path().join("src"));
    source_tree(&tree);
    let commit = commit(
        &src,
        "bare-user",
        &tree,
        "testos/stable",
        &["--add-detached-metadata-string=keep.me=still here"],
    );
    let (key, cert, ca) = keys(&tmp.path().join("keys"));
    let sealed = run(sealroot()
        .args(["ostree", "seal", "--json", "--repo"])
        .arg(&src)
        .arg("testos/stable")
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert));
    let sealed: serde_json::Value = serde_json::from_str(&sealed).unwrap();
    let erofs = sealed["erofs"].as_str().unwrap().to_owned();
    assert_eq!(sealed["commit"], commit.as_str());
    assert_eq!(sealed["binding"], record(&commit, &erofs).as_str());
    // ostree reads what sealroot wrote (GLib's parser), and the key that
    // was there before is still there.
    let show = |key: &str| {
        run(ostree().arg(format!("--repo={}", src.display())).args([
            "show",
            &format!("--print-detached-metadata-key={key}"),
            &commit,
        ]))
    };
    assert_eq!(show("keep.me").trim(), "'still here'");
    assert_eq!(
        printed_bytes(&show("sealroot.erofs.v1.fsverity-sha256-12")),
        erofs
    );
    assert!(show("sealroot.binding.v1.fsverity-sha256-12.sig").starts_with("[[byte 0x30, "));
    // Sealing twice with the same RSA key adds nothing (same bytes).
    seal(&src, &commit, &key, &cert);
    let verify = run(sealroot()
        .args(["ostree", "verify", "--json", "--repo"])
        .arg(&src)
        .arg(&commit)
        .arg("--cert")
        .arg(&cert));
    let verify: serde_json::Value = serde_json::from_str(&verify).unwrap();
    assert_eq!(verify["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(verify["verified"], true);

    // The machine: ostree deploys (its own .ostree.cfs), then sealroot.
    let (sysroot, deployment, _guard) =
        deployed_sysroot(tmp.path(), &src, "testos/stable", &commit);
    assert!(
        is_immutable(&deployment),
        "ostree leaves deployments immutable"
    );
    let ostrees = fs::read(deployment.join(".ostree.cfs")).unwrap();
    let (ours, digest) = sealroot_image(
        &sysroot.join("ostree/repo"),
        &commit,
        &tmp.path().join("ours.cfs"),
    );
    assert_same_image(&ours, &ostrees);
    assert_eq!(
        digest, erofs,
        "the bare sysroot repo gives the bare-user repo's image"
    );
    let out = run(sealroot()
        .args(["ostree", "deploy", "--json", "--sysroot"])
        .arg(&sysroot)
        .arg("--cert")
        .arg(&cert));
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = &out["deployments"][0];
    assert_eq!(d["commit"], commit.as_str());
    assert_eq!(d["erofs"], erofs.as_str());
    assert_eq!(fs::read(deployment.join(".ostree.cfs")).unwrap(), ostrees);
    assert!(
        is_immutable(&deployment),
        "sealroot puts the immutable flag back"
    );
    let record_path = deployment.join(".sealroot.binding");
    assert_eq!(
        fs::read_to_string(&record_path).unwrap(),
        record(&commit, &erofs)
    );
    // The signature: PKCS#7 over "FSVerity" | le16 1 | le16 32 | the
    // record's fs-verity digest (fsverity-utils computes it).
    let record_digest = run(tools::fsverity()
        .command()
        .args(["digest", "--compact"])
        .arg(&record_path));
    assert_eq!(d["bindingDigest"], record_digest.trim());
    let mut content = b"FSVerity\x01\x00\x20\x00".to_vec();
    content.extend(hex::decode(record_digest.trim()).unwrap());
    fs::write(tmp.path().join("signed-content"), &content).unwrap();
    run(tools::openssl()
        .command()
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(deployment.join(".sealroot.binding.sig"))
        .args(["-purpose", "any", "-out", "/dev/null", "-content"])
        .arg(tmp.path().join("signed-content"))
        .arg("-certfile")
        .arg(&cert)
        .arg("-CAfile")
        .arg(&ca));
    // Again: nothing to change, same answer.
    run(sealroot()
        .args(["ostree", "deploy", "--sysroot"])
        .arg(&sysroot)
        .arg("--cert")
        .arg(&cert));
    assert_eq!(
        fs::read_to_string(&record_path).unwrap(),
        record(&commit, &erofs)
    );
}

#[test]
fn deploy_refuses_what_was_not_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, src) = (tmp.path().join("tree"), tmp.path().join("src"));
    source_tree(&tree);
    let commit = commit(&src, "bare-user", &tree, "testos/stable", &[]);
    let (sysroot, deployment, _guard) =
        deployed_sysroot(tmp.path(), &src, "testos/stable", &commit);
    let (key, cert, _) = keys(&tmp.path().join("keys"));
    let (_, other_cert, _) = keys(&tmp.path().join("other"));
    let deploy = |extra: &[&Path]| {
        let mut c = sealroot();
        c.args(["ostree", "deploy", "--sysroot"])
            .arg(&sysroot)
            .args(extra);
        c
    };
    // Neither certificates nor --no-verify, or both: a usage error (as
    // `sealroot deploy`), before anything is read or written.
    let err = fails(&mut deploy(&[]), 2);
    assert!(err.contains("--no-verify"), "{err}");
    fails(
        &mut deploy(&[Path::new("--no-verify"), Path::new("--cert"), &cert]),
        2,
    );
    // Not sealed (even unverified, a signature is required).
    let err = fails(&mut deploy(&[Path::new("--no-verify")]), 1);
    assert!(
        err.contains("has no sealroot.binding.v1.fsverity-sha256-12.sig"),
        "{err}"
    );
    assert!(!deployment.join(".sealroot.binding").exists());
    // Sealed (in the sysroot's repository), but by a key not trusted.
    let repo = sysroot.join("ostree/repo");
    seal(&repo, &commit, &key, &cert);
    let err = fails(&mut deploy(&[Path::new("--cert"), &other_cert]), 1);
    assert!(
        err.contains("no signature of its binding record verifies"),
        "{err}"
    );
    let err = fails(
        sealroot()
            .args(["ostree", "verify", "--repo"])
            .arg(&repo)
            .arg(&commit)
            .arg("--cert")
            .arg(&other_cert),
        1,
    );
    let _ = err;
    // An altered object: its content is no longer what was signed.
    let dump = tmp.path().join("commit.dump");
    run(sealroot()
        .args(["ostree", "compute-id", "--dump"])
        .arg(&dump)
        .arg("--repo")
        .arg(&repo)
        .arg(&commit));
    let object = object_of(&dump, "/usr/bin/small");
    let path = repo.join("objects").join(&object);
    fs::write(&path, b"HI\n").unwrap();
    let err = fails(&mut deploy(&[Path::new("--cert"), &cert]), 1);
    assert!(err.contains("not to its name"), "{err}");
    assert!(err.contains(&object), "{err}");
    fails(
        sealroot()
            .args(["ostree", "compute-id", "--repo"])
            .arg(&repo)
            .arg(&commit),
        3,
    );
    fs::write(&path, b"hi\n").unwrap();
    run(&mut deploy(&[Path::new("--cert"), &cert]));
    // A symlink planted where the sysroot has a directory: never followed.
    let deploy_dir = sysroot.join("ostree/deploy/testos/deploy");
    fs::rename(&deploy_dir, tmp.path().join("elsewhere")).unwrap();
    let _moved = Immutable(tmp.path().join(format!("elsewhere/{commit}.0")));
    std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &deploy_dir).unwrap();
    let err = fails(&mut deploy(&[Path::new("--cert"), &cert]), 3);
    assert!(err.contains("is a symlink"), "{err}");
    // Usage errors are unusable input.
    fails(
        &mut deploy(&[Path::new("--signatures"), Path::new("sometimes")]),
        3,
    );
}

#[test]
fn seal_takes_a_sign_command_embedded_certs_and_sha512() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, repo) = (tmp.path().join("tree"), tmp.path().join("repo"));
    source_tree(&tree);
    let commit = commit(&repo, "bare-user", &tree, "main", &[]);
    let (key, cert, ca) = keys(&tmp.path().join("keys"));
    let (_, _, other_ca) = keys(&tmp.path().join("other"));
    let command = format!(
        "openssl dgst -\"$SEALROOT_SIGN_DIGEST_ALGORITHM\" -sign {}",
        key.display()
    );
    for alg in ["fsverity-sha256-12", "fsverity-sha512-12"] {
        run(sealroot()
            .args([
                "ostree",
                "seal",
                "--embed-cert",
                "--algorithm",
                alg,
                "--repo",
            ])
            .arg(&repo)
            .arg("main")
            .arg("--cert")
            .arg(&cert)
            .arg("--sign-command")
            .arg(&command));
        // The CA alone verifies: the signer's certificate is embedded.
        let out = run(sealroot()
            .args(["ostree", "verify", "--json", "--algorithm", alg, "--repo"])
            .arg(&repo)
            .arg(&commit)
            .arg("--cert")
            .arg(&ca));
        let out: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out["verified"], true, "{out}");
        assert_eq!(out["algorithm"], alg);
        fails(
            sealroot()
                .args(["ostree", "verify", "--algorithm", alg, "--repo"])
                .arg(&repo)
                .arg(&commit)
                .arg("--cert")
                .arg(&other_ca),
            1,
        );
    }
    // The sha512 EROFS digest is the image's sha512 fs-verity digest.
    let (_, _) = sealroot_image(&repo, "main", &tmp.path().join("img.cfs"));
    let sha512 = run(tools::fsverity()
        .command()
        .args(["digest", "--compact", "--hash-alg=sha512"])
        .arg(tmp.path().join("img.cfs")));
    let shown = run(ostree().arg(format!("--repo={}", repo.display())).args([
        "show",
        "--print-detached-metadata-key=sealroot.erofs.v1.fsverity-sha512-12",
        &commit,
    ]));
    assert_eq!(printed_bytes(&shown), sha512.trim());
    // A broken signing command is unusable input, and nothing is written.
    let before = fs::read(
        repo.join("objects")
            .join(&commit[..2])
            .join(format!("{}.commitmeta", &commit[2..])),
    )
    .unwrap();
    fails(
        sealroot()
            .args(["ostree", "seal", "--repo"])
            .arg(&repo)
            .arg("main")
            .arg("--cert")
            .arg(&cert)
            .args(["--sign-command", "exit 7"]),
        3,
    );
    let after = fs::read(
        repo.join("objects")
            .join(&commit[..2])
            .join(format!("{}.commitmeta", &commit[2..])),
    )
    .unwrap();
    assert_eq!(before, after);
}
