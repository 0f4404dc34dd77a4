//! `sealroot deploy` and `sealroot repo fsck|gc|list` on the host: the
//! on-disk contract of docs/repository.md, state handling, atomicity and
//! garbage collection. (The host kernel has no fs-verity: these deploys
//! record `"verity": false`; tests/vm_deploy.rs deploys where it exists.)

mod oci_support;
mod repo_support;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_support::{flip_byte, run, tool};
use repo_support::{
    Keys, bytes, image_ref, sample_image, sample_image_variant, seal, sr_fails, sr_ok,
};
use serde_json::Value;

struct Setup {
    _tmp: tempfile::TempDir,
    layout: PathBuf,
    sysroot: PathBuf,
    keys: Keys,
    sealed: Value,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        sample_image(&layout);
        let keys = Keys::new(&tmp.path().join("k"), "rsa2048", "CN=deploy test");
        let sealed = seal(&layout, &keys, &[]);
        // The target's root filesystem: deploy creates only sealroot/ in it.
        std::fs::create_dir(tmp.path().join("sysroot")).unwrap();
        Setup {
            layout,
            sysroot: tmp.path().join("sysroot"),
            keys,
            sealed,
            _tmp: tmp,
        }
    }

    fn repo(&self) -> PathBuf {
        self.sysroot.join("sealroot")
    }

    fn deploy(&self, extra: &[&str]) -> Value {
        let r = image_ref(&self.layout);
        let cert = self.keys.cert();
        let s = self.sysroot.to_str().unwrap();
        let mut args = vec!["deploy", &r, "--sysroot", s, "--cert", &cert, "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&sr_ok(&args)).unwrap()
    }

    fn fsck(&self) -> String {
        let cert = self.keys.cert();
        sr_ok(&[
            "repo",
            "fsck",
            "--sysroot",
            self.sysroot.to_str().unwrap(),
            "--cert",
            &cert,
        ])
    }

    fn manifest_hex(&self) -> String {
        self.sealed["manifest"].as_str().unwrap()[7..].to_owned()
    }
}

fn fsverity_digest(path: &Path) -> String {
    let out =
        run(tool("fsverity", "fsverity").args(["digest", "--compact", path.to_str().unwrap()]));
    String::from_utf8(out).unwrap().trim().to_owned()
}

#[test]
fn deploy_writes_the_repository_contract() {
    let s = Setup::new();
    let report = s.deploy(&[]);
    let repo = s.repo();
    let m = s.manifest_hex();
    assert_eq!(report["kernel_cmdline"], format!("sealroot=sha256:{m}"));

    let repo_json: Value =
        serde_json::from_slice(&std::fs::read(repo.join("repo.json")).unwrap()).unwrap();
    assert_eq!(
        repo_json,
        serde_json::json!({"format": 1, "algorithm": "fsverity-sha256-12"})
    );

    // The exact OCI bytes.
    for d in ["manifest", "config", "artifact"] {
        let digest = s.sealed[d].as_str().unwrap();
        let hex = &digest[7..];
        assert_eq!(
            std::fs::read(repo.join("blobs/sha256").join(hex)).unwrap(),
            std::fs::read(s.layout.join("blobs/sha256").join(hex)).unwrap(),
            "{d}"
        );
    }
    // The merged EROFS, named by its digest; fsverity-utils agrees, and
    // erofs-utils reads it.
    let merged = s.sealed["digests"]["merged"].as_str().unwrap();
    let image = repo.join("images").join(merged);
    assert_eq!(fsverity_digest(&image), merged);
    run(tool("fsck.erofs", "erofs-utils").arg(&image));
    // Objects: named by fs-verity digest (fsverity-utils), content intact.
    let big = bytes(2, 300_000);
    let probe = repo.join("probe");
    std::fs::write(&probe, &big).unwrap();
    let d = fsverity_digest(&probe);
    std::fs::remove_file(&probe).unwrap();
    assert_eq!(
        std::fs::read(repo.join("objects").join(&d[..2]).join(&d[2..])).unwrap(),
        big
    );

    // deployment.json and the names.
    let dep = repo.join("deployments").join(&m);
    let dj: Value =
        serde_json::from_slice(&std::fs::read(dep.join("deployment.json")).unwrap()).unwrap();
    assert_eq!(dj["manifest"], s.sealed["manifest"]);
    assert_eq!(dj["config"], s.sealed["config"]);
    assert_eq!(dj["artifact"], s.sealed["artifact"]);
    assert_eq!(dj["image"], merged);
    assert_eq!(dj["signatures"], "detached");
    assert_eq!(dj["verity"], false, "the host kernel has no fs-verity");
    let config_hex = &s.sealed["config"].as_str().unwrap()[7..];
    for link in [
        repo.join("by-config").join(config_hex),
        repo.join("by-image").join(merged),
    ] {
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../deployments").join(&m)
        );
        assert_eq!(
            std::fs::canonicalize(&link).unwrap(),
            std::fs::canonicalize(&dep).unwrap()
        );
    }
    // /etc: nothing seeded; /var: the image's /var, with metadata.
    assert_eq!(std::fs::read_dir(dep.join("etc/upper")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(dep.join("etc/work")).unwrap().count(), 0);
    let state = dep.join("var/lib/app/state.db");
    assert_eq!(std::fs::read(&state).unwrap(), bytes(5, 4096));
    let meta = std::fs::metadata(&state).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (42, 42, 0o640)
    );
    assert_eq!(meta.mtime(), oci_support::fixture::MTIME as i64);
    assert_eq!(
        std::fs::metadata(dep.join("var/lib/app")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        std::fs::read(dep.join("var/lib/app/small")).unwrap(),
        b"tiny\n"
    );
    assert_eq!(
        std::fs::read_link(dep.join("var/run")).unwrap(),
        Path::new("../run")
    );
    assert!(
        std::fs::symlink_metadata(dep.join("var/lib/app/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(report["var_entries"], 6);

    // Everything checks out, signatures included.
    let out = s.fsck();
    assert!(
        out.contains("3 signatures verified") && out.contains("0 problems"),
        "{out}"
    );
    let list = sr_ok(&["repo", "list", "--sysroot", s.sysroot.to_str().unwrap()]);
    assert!(list.contains(&format!("sealroot=sha256:{m}")), "{list}");
}

#[test]
fn redeploy_keeps_state_and_failures_leave_the_previous_state() {
    let s = Setup::new();
    s.deploy(&[]);
    let dep = s.repo().join("deployments").join(s.manifest_hex());
    std::fs::write(dep.join("etc/upper/hostname"), "changed\n").unwrap();
    std::fs::write(dep.join("var/lib/app/state.db"), "local data").unwrap();
    let again = s.deploy(&["--signatures", "attach-at-boot"]);
    assert_eq!(again["created"], false);
    assert_eq!(again["objects"]["added"], 0, "everything deduplicated");
    assert_eq!(
        std::fs::read(dep.join("etc/upper/hostname")).unwrap(),
        b"changed\n"
    );
    assert_eq!(
        std::fs::read(dep.join("var/lib/app/state.db")).unwrap(),
        b"local data"
    );
    let dj: Value =
        serde_json::from_slice(&std::fs::read(dep.join("deployment.json")).unwrap()).unwrap();
    assert_eq!(dj["signatures"], "attach-at-boot");
    // Builtin on a host without fs-verity: recorded as builtin with
    // "verity": false (`sealroot repo enable-verity` on the target attaches
    // the signatures), not refused; auto falls back to detached.
    let builtin = s.deploy(&["--signatures", "builtin"]);
    assert_eq!(builtin["deployment"]["signatures"], "builtin", "{builtin}");
    assert_eq!(builtin["deployment"]["verity"], false, "{builtin}");
    let auto = s.deploy(&[]);
    assert_eq!(auto["deployment"]["signatures"], "detached", "{auto}");

    // A failing deploy (a damaged layer of another image) leaves the
    // repository's deployments exactly as they were.
    let snapshot = |p: &Path| {
        run(std::process::Command::new("sh").args(["-c", "cd \"$1\" && find deployments by-config by-image -printf '%p %s %l\\n' | sort && cat deployments/*/deployment.json", "-", p.to_str().unwrap()]))
    };
    let before = snapshot(&s.repo());
    let other = s._tmp.path().join("other");
    let f = sample_image_variant(&other, 7);
    seal(&other, &s.keys, &[]);
    flip_byte(&f.blob(&f.layers[0]), 200);
    let cert = s.keys.cert();
    let t = sr_fails(
        &[
            "deploy",
            &image_ref(&other),
            "--sysroot",
            s.sysroot.to_str().unwrap(),
            "--cert",
            &cert,
        ],
        1,
    );
    assert!(t.contains(&f.layers[0].to_string()), "{t}");
    assert_eq!(snapshot(&s.repo()), before);

    // An interrupted deploy's leftovers are invisible and collected.
    std::fs::create_dir_all(s.repo().join("deployments/.tmp-abc/var")).unwrap();
    std::fs::write(s.repo().join("tmp/wXYZ"), "partial").unwrap();
    let list = sr_ok(&[
        "repo",
        "list",
        "--sysroot",
        s.sysroot.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&list)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let gc = sr_ok(&["repo", "gc", "--sysroot", s.sysroot.to_str().unwrap()]);
    assert!(gc.contains(".tmp-abc") && gc.contains("wXYZ"), "{gc}");
    assert!(s.fsck().contains("0 problems"));
    assert_eq!(
        std::fs::read(dep.join("var/lib/app/state.db")).unwrap(),
        b"local data"
    );
}

/// Without a certificate nothing would check the signatures before the
/// deployment is written: deploy refuses to guess (exit 2, naming both
/// fixes), and `--no-verify` deploys but says, in the human and the JSON
/// run, that nothing was verified.
#[test]
fn deploy_requires_a_certificate_or_an_explicit_no_verify() {
    let s = Setup::new();
    let r = image_ref(&s.layout);
    let sys = s.sysroot.to_str().unwrap();
    let t = sr_fails(&["deploy", &r, "--sysroot", sys], 2);
    assert!(
        t.contains("pass --cert FILE or --certs-dir DIR")
            && t.contains("or --no-verify to deploy without checking them"),
        "{t}"
    );
    assert!(
        !s.repo().exists(),
        "nothing may be written without a decision"
    );
    let cert = s.keys.cert();
    let t = sr_fails(
        &[
            "deploy",
            &r,
            "--sysroot",
            sys,
            "--cert",
            &cert,
            "--no-verify",
        ],
        2,
    );
    assert!(t.contains("contradict each other"), "{t}");

    let out = repo_support::sr(&["deploy", &r, "--sysroot", sys, "--no-verify"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("NOT verified (--no-verify)") && !stdout.contains("verified   by"),
        "{stdout}"
    );
    assert!(stderr.contains("warning: --no-verify"), "{stderr}");
    let out = repo_support::sr(&["deploy", &r, "--sysroot", sys, "--no-verify", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified_by"], serde_json::json!([]), "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: --no-verify"));
    // With the certificate, the report names it.
    let report = s.deploy(&[]);
    assert_eq!(
        report["verified_by"].as_array().unwrap().len(),
        1,
        "{report}"
    );
}

#[test]
fn deploy_refuses_unsealed_untrusted_and_mismatched_images() {
    let s = Setup::new();
    let sys = s.sysroot.to_str().unwrap();
    // Unsealed.
    let bare = s._tmp.path().join("bare");
    sample_image_variant(&bare, 3);
    let t = sr_fails(
        &["deploy", &image_ref(&bare), "--sysroot", sys, "--no-verify"],
        1,
    );
    assert!(
        t.contains("no sealing artifact refers to it") && t.contains("sealroot oci seal"),
        "{t}"
    );
    // Signed by someone else.
    let stranger = Keys::new(&s._tmp.path().join("stranger"), "p256", "CN=stranger");
    let sc = stranger.cert();
    let t = sr_fails(
        &[
            "deploy",
            &image_ref(&s.layout),
            "--sysroot",
            sys,
            "--cert",
            &sc,
        ],
        1,
    );
    assert!(t.contains("unknown signer"), "{t}");
    assert_eq!(
        std::fs::read_dir(s.repo().join("deployments"))
            .unwrap()
            .count(),
        0
    );
    // A sha512 repository needs a sha512 seal.
    let sys512 = s._tmp.path().join("sys512");
    std::fs::create_dir(&sys512).unwrap();
    let t = sr_fails(
        &[
            "deploy",
            &image_ref(&s.layout),
            "--sysroot",
            sys512.to_str().unwrap(),
            "--algorithm",
            "fsverity-sha512-12",
            "--no-verify",
        ],
        1,
    );
    assert!(
        t.contains("uses fsverity-sha256-12, the repository fsverity-sha512-12"),
        "{t}"
    );
    seal(&s.layout, &s.keys, &["--algorithm", "fsverity-sha512-12"]);
    let cert = s.keys.cert();
    let out: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &image_ref(&s.layout),
        "--sysroot",
        sys512.to_str().unwrap(),
        "--cert",
        &cert,
        "--json",
    ]))
    .unwrap();
    assert_eq!(out["deployment"]["algorithm"], "fsverity-sha512-12");
    assert_eq!(out["deployment"]["image"].as_str().unwrap().len(), 128);
    let image = sys512
        .join("sealroot/images")
        .join(out["deployment"]["image"].as_str().unwrap());
    let fsv = run(tool("fsverity", "fsverity").args([
        "digest",
        "--compact",
        "--hash-alg=sha512",
        image.to_str().unwrap(),
    ]));
    assert_eq!(
        String::from_utf8(fsv).unwrap().trim(),
        out["deployment"]["image"]
    );
    // An existing repository keeps its algorithm.
    let t = sr_fails(
        &[
            "deploy",
            &image_ref(&s.layout),
            "--sysroot",
            sys512.to_str().unwrap(),
            "--algorithm",
            "fsverity-sha256-12",
            "--no-verify",
        ],
        1,
    );
    assert!(
        t.contains("the algorithm is fixed when a repository is created"),
        "{t}"
    );
}

#[test]
fn gc_removes_only_what_no_deployment_references() {
    let s = Setup::new();
    let a = s.deploy(&[]);
    let other = s._tmp.path().join("other");
    sample_image_variant(&other, 1);
    let sb = seal(&other, &s.keys, &[]);
    let cert = s.keys.cert();
    let sys = s.sysroot.to_str().unwrap();
    let b: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &image_ref(&other),
        "--sysroot",
        sys,
        "--cert",
        &cert,
        "--json",
    ]))
    .unwrap();
    assert!(
        b["objects"]["existing"].as_u64().unwrap() > 0,
        "shared content is deduplicated: {b}"
    );
    // Files deleted by a later layer (opt/remove-me, opt/old/gone) were
    // stored while streaming but no image references them.
    let first = sr_ok(&["repo", "gc", "--sysroot", sys]);
    assert!(first.contains("removed 2 entries (200 bytes)"), "{first}");
    let dry = sr_ok(&["repo", "gc", "--sysroot", sys, "--dry-run"]);
    assert!(dry.contains("would remove 0 entries"), "{dry}");

    // Undeploy B by removing its deployment directory.
    let bhex = &sb["manifest"].as_str().unwrap()[7..];
    std::fs::remove_dir_all(s.repo().join("deployments").join(bhex)).unwrap();
    let dry: Value = serde_json::from_str(&sr_ok(&[
        "repo",
        "gc",
        "--sysroot",
        sys,
        "--dry-run",
        "--json",
    ]))
    .unwrap();
    let removed: Vec<String> = dry["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let bimage = sb["digests"]["merged"].as_str().unwrap();
    let b_only_object = {
        let p = s.repo().join("probe");
        std::fs::write(&p, bytes(3, 300_000)).unwrap(); // variant 1's libbig.so
        let d = fsverity_digest(&p);
        std::fs::remove_file(&p).unwrap();
        d
    };
    for want in [
        format!("images/{bimage}"),
        format!("blobs/sha256/{bhex}"),
        format!("by-image/{bimage}"),
        format!("objects/{}/{}", &b_only_object[..2], &b_only_object[2..]),
    ] {
        assert!(
            removed.iter().any(|r| r.ends_with(&want)),
            "{want} not in {removed:?}"
        );
    }
    // Nothing of A is listed, and the dry run removed nothing.
    let ahex = &a["deployment"]["manifest"].as_str().unwrap()[7..];
    assert!(!removed.iter().any(|r| r.contains(ahex)), "{removed:?}");
    assert!(s.repo().join("images").join(bimage).exists());
    sr_ok(&["repo", "gc", "--sysroot", sys]);
    assert!(!s.repo().join("images").join(bimage).exists());
    let out = s.fsck();
    assert!(
        out.contains("1 deployments") && out.contains("0 problems"),
        "{out}"
    );
    assert!(
        s.repo()
            .join("deployments")
            .join(ahex)
            .join("var/lib/app/state.db")
            .exists()
    );
}

#[test]
fn fsck_names_damaged_files() {
    let s = Setup::new();
    s.deploy(&[]);
    let repo = s.repo();
    let sys = s.sysroot.to_str().unwrap();
    let merged = s.sealed["digests"]["merged"].as_str().unwrap();
    let mut objects: Vec<PathBuf> = walk(&repo.join("objects"));
    objects.sort();
    flip_byte(&objects[0], 0);
    // usr/lib/libbig.so's object, referenced by the image.
    let probe = repo.join("probe");
    std::fs::write(&probe, bytes(2, 300_000)).unwrap();
    let big = fsverity_digest(&probe);
    std::fs::remove_file(&probe).unwrap();
    let big = repo.join("objects").join(&big[..2]).join(&big[2..]);
    assert_ne!(big, objects[0]);
    std::fs::remove_file(&big).unwrap();
    let config = &s.sealed["config"].as_str().unwrap()[7..];
    flip_byte(&repo.join("blobs/sha256").join(config), 10);
    flip_byte(&repo.join("images").join(merged), 2000);
    let t = sr_fails(&["repo", "fsck", "--sysroot", sys], 1);
    let name = |p: &Path| p.strip_prefix(&repo).unwrap().display().to_string();
    assert!(
        t.contains(&format!(
            "{}: content has fs-verity digest",
            name(&objects[0])
        )),
        "{t}"
    );
    assert!(
        t.contains("referenced objects are missing from objects/"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "blobs/sha256/{config}: sha256 of the content differs"
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!("images/{merged}: fs-verity digest")),
        "{t}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
