//! The repository lock (docs/repository.md, "Locking"): writers (`deploy`,
//! `gc`, `enable-verity`, `init`) hold it exclusively, `fsck` shared,
//! `list` not at all; a command that has to wait says who holds the lock.
//! A gc looping while a large deploy runs never removes what the deploy
//! writes.

mod oci_support;
mod repo_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use oci_support::fixture::{ImageBuilder, LayerBuilder};
use repo_support::{Keys, TAG, bytes, image_ref, sample_image, seal, sealroot, sr_ok};
use sealroot::repo::dir::{Dir, LockMode};
use serde_json::Value;

const WAITING: &str = "waiting for the repository lock, held by pid";

/// A command running in the background, its stdout and stderr in files.
struct Running {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Running {
    fn start(args: &[&str], out: PathBuf) -> Running {
        let err = out.with_extension("err");
        let child = sealroot()
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Running { child, out, err }
    }

    /// stdout, then stderr.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap() + &std::fs::read_to_string(&self.err).unwrap()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits (at most 10 minutes: no VM, but the machine is shared);
    /// returns the exit code and stdout+stderr.
    fn finish(self) -> (i32, String) {
        let (code, _, all) = self.finish_split();
        (code, all)
    }

    /// Waits; returns the exit code, stdout, and stdout+stderr.
    fn finish_split(mut self) -> (i32, String, String) {
        let start = Instant::now();
        while self.running() {
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "did not finish: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, self.stdout(), self.output())
    }

    /// Polls until the output contains `what` (or the command ended).
    fn wait_for_output(&mut self, what: &str) -> String {
        let start = Instant::now();
        loop {
            let out = self.output();
            if out.contains(what) || !self.running() {
                return out;
            }
            assert!(start.elapsed() < Duration::from_secs(600), "{out}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An image with many files (a deploy that takes a while).
fn big_image(dir: &Path) {
    let mut l = LayerBuilder::new();
    l.dir("usr", 0o755).dir("usr/share", 0o755);
    for d in 0..40 {
        l.dir(&format!("usr/share/d{d}"), 0o755);
        for f in 0..100 {
            let n = d * 100 + f;
            l.file(
                &format!("usr/share/d{d}/f{f}"),
                &bytes(1000 + n, 4096 + (n as usize % 7) * 1000),
                0o644,
            );
        }
    }
    l.dir("etc", 0o755).dir("var", 0o755);
    ImageBuilder::new()
        .layer(l.finish(), sealroot::oci::Compression::Gzip)
        .write(dir, TAG);
}

#[test]
fn gc_during_a_deploy_never_removes_what_it_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    let big = tmp.path().join("big");
    sample_image(&small);
    big_image(&big);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=lock test");
    seal(&small, &keys, &[]);
    let sealed = seal(&big, &keys, &[]);
    let cert = keys.cert();
    let sys = tmp.path().join("sys");
    std::fs::create_dir(&sys).unwrap();
    let s = sys.to_str().unwrap();
    sr_ok(&[
        "deploy",
        &image_ref(&small),
        "--sysroot",
        s,
        "--cert",
        &cert,
    ]);

    let big_ref = image_ref(&big);
    let mut deploy = Running::start(
        &[
            "deploy",
            &big_ref,
            "--sysroot",
            s,
            "--cert",
            &cert,
            "--json",
        ],
        tmp.path().join("deploy.out"),
    );
    let pid = deploy.child.id();
    let mut gcs = Vec::new();
    while deploy.running() {
        let gc = Running::start(
            &["repo", "gc", "--sysroot", s],
            tmp.path().join(format!("gc{}.out", gcs.len())),
        );
        gcs.push(gc.finish());
    }
    let (code, stdout, out) = deploy.finish_split();
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["deployment"]["manifest"], sealed["manifest"]);
    assert!(
        report["objects"]["added"].as_u64().unwrap() >= 3000,
        "{report}"
    );
    for (code, out) in &gcs {
        assert_eq!(*code, 0, "{out}");
    }
    // At least one gc ran into the deploy's lock, and said whose.
    let waited = gcs
        .iter()
        .filter(|(_, out)| out.contains(&format!("{WAITING} {pid} (")) && out.contains("deploy"))
        .count();
    assert!(
        waited >= 1,
        "{} gc runs, none waited for pid {pid}: {gcs:?}",
        gcs.len()
    );

    // Both deployments are complete and every signature verifies.
    let fsck = sr_ok(&["repo", "fsck", "--sysroot", s, "--cert", &cert]);
    assert!(
        fsck.contains("2 deployments checked; 6 signatures verified")
            && fsck.contains("0 problems"),
        "{fsck}"
    );
    let list: Value =
        serde_json::from_str(&sr_ok(&["repo", "list", "--sysroot", s, "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn fsck_waits_for_a_writer_and_says_who_list_does_not_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    sample_image(&layout);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=lock test");
    seal(&layout, &keys, &[]);
    let sys = tmp.path().join("sys");
    std::fs::create_dir(&sys).unwrap();
    let s = sys.to_str().unwrap();
    sr_ok(&[
        "deploy",
        &image_ref(&layout),
        "--sysroot",
        s,
        "--cert",
        &keys.cert(),
    ]);

    // This test process holds the lock as a writer would.
    let repo = Dir::open_path(&sys.join("sealroot")).unwrap();
    repo.lock(LockMode::Exclusive, &mut |_| panic!("nobody else holds it"))
        .unwrap();
    let me = std::process::id();

    // list takes no lock: it finishes while the writer holds it.
    let (code, out) = Running::start(
        &["repo", "list", "--sysroot", s],
        tmp.path().join("list.out"),
    )
    .finish();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("sealroot=sha256:") && !out.contains(WAITING),
        "{out}"
    );

    // fsck (shared) waits, naming this process, until the lock is gone.
    let mut fsck = Running::start(
        &["repo", "fsck", "--sysroot", s],
        tmp.path().join("fsck.out"),
    );
    let out = fsck.wait_for_output(WAITING);
    assert!(out.contains(&format!("{WAITING} {me} (")), "{out}");
    assert!(fsck.running(), "fsck must wait for the lock: {out}");
    // gc (exclusive) waits too.
    let mut gc = Running::start(&["repo", "gc", "--sysroot", s], tmp.path().join("gc.out"));
    let out = gc.wait_for_output(WAITING);
    assert!(out.contains(&format!("{WAITING} {me}")), "{out}");
    assert!(gc.running(), "gc must wait for the lock: {out}");
    drop(repo);
    let (code, out) = fsck.finish();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 problems"), "{out}");
    let (code, out) = gc.finish();
    assert_eq!(code, 0, "{out}");

    // Readers share: fsck does not wait for another reader.
    let reader = Dir::open_path(&sys.join("sealroot")).unwrap();
    reader
        .lock(LockMode::Shared, &mut |_| panic!("nobody else holds it"))
        .unwrap();
    let (code, out) = Running::start(
        &["repo", "fsck", "--sysroot", s],
        tmp.path().join("fsck2.out"),
    )
    .finish();
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(WAITING), "{out}");
}
