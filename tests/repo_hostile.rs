//! Host tools never leave the repository (docs/repository.md, "Path
//! resolution, hard links and locking"): a symlink, a hard link to a file
//! elsewhere, a FIFO or a device node planted at every level of a deployed
//! repository, against `repo gc|fsck|enable-verity|init|list` and `deploy`.
//!
//! For every (plant, command) pair the repository is a fresh copy of one
//! deployment; symlinks point to a copy of what was there, placed outside
//! the repository with an extra garbage file (so a tool that followed would
//! happily read, write or collect there). Each command must finish (no
//! hang on a FIFO), the directory outside must be exactly as before
//! (entries, types, modes, sizes, contents, mtimes, link counts), and
//! where the command touches the planted path it must fail (exit 1) with a
//! message naming it (fsck: a problem naming it). (The host kernel has no
//! fs-verity: `enable-verity` ends in "no fs-verity" where it does not
//! touch the plant; tests/vm_deploy.rs covers the kernel side.)
//!
//! Two deployments are attacked: one sealed with an artifact, and one
//! sealed inline (`oci seal --inline`: `deployment.json` format 2 with
//! `"artifact": null`, the signatures in the manifest's annotations). Both
//! are deployed with builtin signatures, so `enable-verity` reads every
//! file that carries a signature (the artifact and its signature blobs, or
//! the inline manifest).

mod oci_support;
mod repo_support;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_support::{run, tool};
use repo_support::{Keys, bytes, image_ref, sample_image, seal, sealroot, sr_fails, sr_ok};
use serde_json::Value;

/// How the deployed image was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sealing {
    /// `oci seal`: a sealing artifact.
    Artifact,
    /// `oci seal --inline --tag sealed`: no artifact.
    Inline,
}

/// A deployed repository to copy for each case.
struct Bed {
    tmp: tempfile::TempDir,
    sealing: Sealing,
    layout: PathBuf,
    /// The deployed image (`oci:DIR:TAG`).
    image_ref: String,
    cert: String,
    /// The sysroot holding the deployed `sealroot/`.
    template: PathBuf,
    manifest: String,
    config: String,
    /// Empty for an inline seal.
    artifact: String,
    /// The artifact's blob holding the config's PKCS#7 (empty inline).
    signature: String,
    image: String,
    /// `objects/XX/rest` of usr/lib/libbig.so (fsverity-utils' digest).
    object: String,
}

impl Bed {
    fn new(sealing: Sealing) -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        sample_image(&layout);
        let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=hostile repo test");
        let (sealed, image_ref) = match sealing {
            Sealing::Artifact => (seal(&layout, &keys, &[]), image_ref(&layout)),
            Sealing::Inline => (
                seal(&layout, &keys, &["--inline", "--tag", "sealed"]),
                format!("oci:{}:sealed", layout.display()),
            ),
        };
        let template = tmp.path().join("template");
        std::fs::create_dir(&template).unwrap();
        let cert = keys.cert();
        // Builtin (kept as "verity": false on this host, which has no
        // fs-verity): enable-verity then reads the signatures.
        sr_ok(&[
            "deploy",
            &image_ref,
            "--sysroot",
            template.to_str().unwrap(),
            "--cert",
            &cert,
            "--signatures",
            "builtin",
        ]);
        let probe = tmp.path().join("probe");
        std::fs::write(&probe, bytes(2, 300_000)).unwrap();
        let d = run(tool("fsverity", "fsverity").args([
            "digest",
            "--compact",
            probe.to_str().unwrap(),
        ]));
        let d = String::from_utf8(d).unwrap().trim().to_owned();
        let hex = |k: &str| {
            sealed[k]
                .as_str()
                .map_or(String::new(), |s| s[7..].to_owned())
        };
        let artifact = hex("artifact");
        let signature = match sealing {
            Sealing::Artifact => config_signature_blob(&layout, &artifact),
            Sealing::Inline => String::new(),
        };
        Bed {
            sealing,
            layout,
            image_ref,
            cert,
            template,
            manifest: hex("manifest"),
            config: hex("config"),
            artifact,
            signature,
            image: sealed["digests"]["merged"].as_str().unwrap().to_owned(),
            object: format!("objects/{}/{}", &d[..2], &d[2..]),
            tmp,
        }
    }

    /// `{m}`, `{c}`, `{a}`, `{s}`, `{i}`, `{o}` in a case's path.
    fn expand(&self, rel: &str) -> String {
        let fanout = &self.object[..10];
        rel.replace("{m}", &self.manifest)
            .replace("{c}", &self.config)
            .replace("{a}", &self.artifact)
            .replace("{s}", &self.signature)
            .replace("{i}", &self.image)
            .replace("{o}", &self.object)
            .replace("{x}", fanout)
    }
}

/// The hex name of the blob holding the config's PKCS#7 in artifact `hex`
/// of the layout.
fn config_signature_blob(layout: &Path, hex: &str) -> String {
    use sealroot::oci::artifact::{Role, SealArtifact};
    use sealroot::oci::{ImageManifest, Stored};
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    let artifact = SealArtifact::parse(&Stored::<ImageManifest>::parse(bytes).unwrap()).unwrap();
    artifact.entry(Role::Config).unwrap().blob.digest.to_hex()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Gc,
    Fsck,
    EnableVerity,
    Deploy,
    Init,
    List,
}

impl Cmd {
    const ALL: [Cmd; 6] = [
        Cmd::Gc,
        Cmd::Fsck,
        Cmd::EnableVerity,
        Cmd::Deploy,
        Cmd::Init,
        Cmd::List,
    ];

    fn args(self, bed: &Bed, sysroot: &Path) -> Vec<String> {
        let s = sysroot.to_str().unwrap().to_owned();
        let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        match self {
            Cmd::Gc => v(&["repo", "gc", "--sysroot", &s]),
            Cmd::Fsck => v(&["repo", "fsck", "--sysroot", &s, "--cert", &bed.cert]),
            Cmd::EnableVerity => v(&["repo", "enable-verity", "--sysroot", &s]),
            Cmd::Deploy => v(&[
                "deploy",
                &bed.image_ref,
                "--sysroot",
                &s,
                "--cert",
                &bed.cert,
            ]),
            Cmd::Init => v(&["repo", "init", "--sysroot", &s]),
            Cmd::List => v(&["repo", "list", "--sysroot", &s]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plant {
    /// Replaced by a symlink to a copy outside the repository.
    Symlink,
    /// Replaced by a hard link to a file outside with the same content.
    HardLink,
    Fifo,
    /// A character device (1:3, like /dev/null).
    Device,
}

/// What a command must do with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exit 1, the output names the planted path.
    Names,
    /// Exit 0, the output names the planted path (`list` shows an
    /// unreadable deployment as such).
    Shows,
    /// Exit 0 or 1 (it does not touch the plant).
    Any,
}

use Expect::{Any as A, Names as N, Shows as S};

/// (path in the repository, what is planted there, expectation per
/// command in the order of [`Cmd::ALL`]: gc, fsck, enable-verity, deploy,
/// init, list).
const CASES: &[(&str, Plant, [Expect; 6])] = &[
    ("", Plant::Symlink, [N, N, N, N, N, N]),
    ("repo.json", Plant::Symlink, [N, N, N, N, N, N]),
    ("tmp", Plant::Symlink, [N, N, N, N, N, A]),
    ("objects", Plant::Symlink, [N, N, N, N, N, A]),
    ("{x}", Plant::Symlink, [N, N, N, N, A, A]),
    ("{o}", Plant::Symlink, [N, N, N, N, A, A]),
    ("images", Plant::Symlink, [N, N, N, N, N, A]),
    ("images/{i}", Plant::Symlink, [N, N, N, N, A, A]),
    ("blobs", Plant::Symlink, [N, N, N, N, N, A]),
    ("blobs/sha256", Plant::Symlink, [N, N, N, N, N, A]),
    ("blobs/sha256/{m}", Plant::Symlink, [N, N, N, N, A, A]),
    ("blobs/sha256/{a}", Plant::Symlink, [N, N, N, N, A, A]),
    ("blobs/sha256/{s}", Plant::Symlink, [N, N, N, N, A, A]),
    ("deployments", Plant::Symlink, [N, N, N, N, N, N]),
    ("deployments/{m}", Plant::Symlink, [N, N, N, N, A, S]),
    ("deployments/{m}/etc", Plant::Symlink, [A, N, A, N, A, A]),
    ("deployments/{m}/var", Plant::Symlink, [A, N, A, N, A, A]),
    (
        "deployments/{m}/deployment.json",
        Plant::Symlink,
        [N, N, N, N, A, S],
    ),
    ("by-config", Plant::Symlink, [N, N, A, N, N, A]),
    ("by-image", Plant::Symlink, [N, N, A, N, N, A]),
    // The layout's own symlinks, pointing out: never followed; fsck says
    // so, deploy puts the right one back (deploy_repairs_by_names).
    ("by-config/{c}", Plant::Symlink, [A, N, A, A, A, A]),
    ("by-image/{i}", Plant::Symlink, [A, N, A, A, A, A]),
    // Hard links to a file elsewhere on the same filesystem.
    ("repo.json", Plant::HardLink, [N, N, N, N, N, N]),
    ("{o}", Plant::HardLink, [A, N, N, N, A, A]),
    ("images/{i}", Plant::HardLink, [N, N, N, N, A, A]),
    ("blobs/sha256/{m}", Plant::HardLink, [A, N, N, N, A, A]),
    ("blobs/sha256/{a}", Plant::HardLink, [N, N, N, N, A, A]),
    ("blobs/sha256/{s}", Plant::HardLink, [A, N, N, N, A, A]),
    (
        "deployments/{m}/deployment.json",
        Plant::HardLink,
        [N, N, N, N, A, S],
    ),
    // Special files where a file belongs: never opened, never a hang.
    ("repo.json", Plant::Fifo, [N, N, N, N, N, N]),
    ("{o}", Plant::Fifo, [N, N, N, N, A, A]),
    ("images/{i}", Plant::Fifo, [N, N, N, N, A, A]),
    ("blobs/sha256/{a}", Plant::Fifo, [N, N, N, N, A, A]),
    ("blobs/sha256/{s}", Plant::Fifo, [N, N, N, N, A, A]),
    (
        "deployments/{m}/deployment.json",
        Plant::Fifo,
        [N, N, N, N, A, S],
    ),
    ("tmp/wfifo", Plant::Fifo, [N, N, A, A, A, A]),
    ("images/{i}", Plant::Device, [N, N, N, N, A, A]),
    ("{o}", Plant::Device, [N, N, N, N, A, A]),
];

/// The cases that differ for an inline-sealed deployment: its
/// `deployment.json` is format 2 (`"artifact": null`), and its manifest
/// carries the signatures (enable-verity and fsck read them there).
const INLINE_CASES: &[(&str, Plant, [Expect; 6])] = &[
    (
        "deployments/{m}/deployment.json",
        Plant::Symlink,
        [N, N, N, N, A, S],
    ),
    (
        "deployments/{m}/deployment.json",
        Plant::HardLink,
        [N, N, N, N, A, S],
    ),
    (
        "deployments/{m}/deployment.json",
        Plant::Fifo,
        [N, N, N, N, A, S],
    ),
    ("blobs/sha256/{m}", Plant::Symlink, [N, N, N, N, A, A]),
    ("blobs/sha256/{m}", Plant::HardLink, [A, N, N, N, A, A]),
    ("blobs/sha256/{m}", Plant::Fifo, [N, N, N, N, A, A]),
];

/// Everything about a tree that a tool acting on it would change.
type Snapshot = BTreeMap<PathBuf, String>;

fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_owned();
        let what = if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            "dir".to_owned()
        } else if m.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(&p).unwrap().display())
        } else if m.is_file() {
            format!(
                "{:?}",
                sealroot::oci::Sha256Digest::of(&std::fs::read(&p).unwrap())
            )
        } else {
            format!("{:?}", m.file_type())
        };
        out.insert(
            rel,
            format!(
                "{what} mode {:o} size {} mtime {}.{} nlink {}",
                m.mode(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.nlink()
            ),
        );
    }
    out
}

/// Plants `plant` at `rel` in `repo` (the repository itself when `rel` is
/// empty); returns the planted path.
fn plant(repo: &Path, rel: &str, plant: Plant, outside: &Path) -> PathBuf {
    let at = if rel.is_empty() {
        repo.to_owned()
    } else {
        repo.join(rel)
    };
    let remove = |p: &Path| match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).unwrap(),
        Ok(_) => std::fs::remove_file(p).unwrap(),
        Err(_) => {}
    };
    match plant {
        Plant::Symlink => {
            // A copy of what was there (what a by-* name points to, for
            // those), plus garbage gc would collect if it looked there.
            let source = std::fs::canonicalize(&at).unwrap();
            let target = outside.join("copy");
            run(Command::new("cp").arg("-a").arg(&source).arg(&target));
            if target.is_dir() {
                std::fs::write(target.join("wgarbage"), "gc would remove me").unwrap();
            }
            remove(&at);
            std::os::unix::fs::symlink(&target, &at).unwrap();
        }
        Plant::HardLink => {
            let victim = outside.join("victim");
            std::fs::copy(&at, &victim).unwrap();
            remove(&at);
            std::fs::hard_link(&victim, &at).unwrap();
        }
        Plant::Fifo => {
            remove(&at);
            run(Command::new("mkfifo").arg(&at));
        }
        Plant::Device => {
            remove(&at);
            run(Command::new("mknod").arg(&at).args(["c", "1", "3"]));
        }
    }
    at
}

/// How long one command may take on this small repository (a debug build
/// on a loaded 2-core machine takes a few seconds at most).
const TIME_LIMIT: Duration = Duration::from_secs(120);

/// Runs `sealroot ARGS` with a time limit (a tool that opens a FIFO
/// blocks forever); returns the exit code and stdout+stderr, or `None`
/// when it had to be killed.
fn run_limited(args: &[String], dir: &Path) -> Option<(Option<i32>, String)> {
    let out = dir.join("out.txt");
    let f = std::fs::File::create(&out).unwrap();
    let mut child = sealroot()
        .args(args)
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Some((status.code(), std::fs::read_to_string(&out).unwrap()))
}

/// Every case against one command, on an artifact-sealed and on an
/// inline-sealed deployment.
fn matrix(cmd: Cmd) {
    let mut failures = Vec::new();
    let mut total = 0;
    for (sealing, cases) in [(Sealing::Artifact, CASES), (Sealing::Inline, INLINE_CASES)] {
        let bed = Bed::new(sealing);
        total += cases.len();
        run_cases(&bed, cmd, cases, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn run_cases(
    bed: &Bed,
    cmd: Cmd,
    cases: &[(&str, Plant, [Expect; 6])],
    failures: &mut Vec<String>,
) {
    let index = Cmd::ALL.iter().position(|c| *c == cmd).unwrap();
    let sealing = bed.sealing;
    for (n, (rel, kind, expect)) in cases.iter().enumerate() {
        let rel = bed.expand(rel);
        let expect = expect[index];
        let case = bed.tmp.path().join(format!("{cmd:?}-{n}"));
        std::fs::create_dir(&case).unwrap();
        let sysroot = case.join("sysroot");
        run(Command::new("cp")
            .arg("-a")
            .arg(&bed.template)
            .arg(&sysroot));
        let outside = case.join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "a file outside the repository").unwrap();
        let planted = plant(&sysroot.join("sealroot"), &rel, *kind, &outside);
        let before = snapshot(&outside);
        let Some((code, text)) = run_limited(&cmd.args(bed, &sysroot), &case) else {
            failures.push(format!(
                "HUNG: {cmd:?} with a {kind:?} at {rel:?} ({sealing:?}) did not finish in \
                 {TIME_LIMIT:?}"
            ));
            continue;
        };
        let what =
            format!("{cmd:?} with a {kind:?} at {rel:?} ({sealing:?}, exit {code:?}):\n{text}");
        if snapshot(&outside) != before {
            failures.push(format!("CHANGED OUTSIDE: {what}"));
            continue;
        }
        let names = text.contains(planted.to_str().unwrap());
        let ok = match expect {
            Expect::Names => code == Some(1) && names,
            Expect::Shows => code == Some(0) && names,
            Expect::Any => matches!(code, Some(0 | 1)),
        };
        if !ok {
            failures.push(format!("expected {expect:?}: {what}"));
        }
    }
}

#[test]
fn gc_never_leaves_the_repository() {
    matrix(Cmd::Gc);
}

#[test]
fn fsck_reports_every_plant_without_following_it() {
    matrix(Cmd::Fsck);
}

#[test]
fn enable_verity_never_leaves_the_repository() {
    matrix(Cmd::EnableVerity);
}

#[test]
fn deploy_never_leaves_the_repository() {
    matrix(Cmd::Deploy);
}

#[test]
fn init_never_leaves_the_repository() {
    matrix(Cmd::Init);
}

#[test]
fn list_never_leaves_the_repository() {
    matrix(Cmd::List);
}

/// The layout's own symlinks pointing out are replaced by deploy (renamed
/// over, never followed), and gc collects a dangling one the same way.
#[test]
fn deploy_repairs_by_names_without_following_them() {
    let bed = Bed::new(Sealing::Artifact);
    let sys = bed.tmp.path().join("sys");
    run(Command::new("cp").arg("-a").arg(&bed.template).arg(&sys));
    let repo = sys.join("sealroot");
    let outside = bed.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("deployment.json"), "{}").unwrap();
    let link = repo.join("by-config").join(&bed.config);
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    // A stale name pointing out: garbage, unlinked (not its target).
    let stale = repo.join("by-image").join("0".repeat(64));
    std::os::unix::fs::symlink(&outside, &stale).unwrap();
    let before = snapshot(&outside);
    let s = sys.to_str().unwrap();
    let t = sr_fails(&["repo", "fsck", "--sysroot", s], 1);
    assert!(
        t.contains(&format!(
            "{}: symlink to {}",
            link.display(),
            outside.display()
        )),
        "{t}"
    );
    sr_ok(&[
        "deploy",
        &image_ref(&bed.layout),
        "--sysroot",
        s,
        "--cert",
        &bed.cert,
    ]);
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../deployments").join(&bed.manifest)
    );
    let gc = sr_ok(&["repo", "gc", "--sysroot", s]);
    assert!(gc.contains(&format!("removed {}", stale.display())), "{gc}");
    assert!(std::fs::symlink_metadata(&stale).is_err());
    assert_eq!(snapshot(&outside), before);
    sr_ok(&["repo", "fsck", "--sysroot", s, "--cert", &bed.cert]);
}

/// An interrupted deploy's directory is removed without following the
/// symlinks in it (its var/ copy has legitimate ones); one that is itself a
/// symlink makes gc refuse before removing anything.
#[test]
fn gc_removes_interrupted_deploys_without_following_their_symlinks() {
    let bed = Bed::new(Sealing::Artifact);
    let sys = bed.tmp.path().join("sys");
    run(Command::new("cp").arg("-a").arg(&bed.template).arg(&sys));
    let repo = sys.join("sealroot");
    let outside = bed.tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("sub/file"), "keep me").unwrap();
    let stale = repo.join("deployments/.tmp-stale");
    std::fs::create_dir_all(stale.join("var/lib")).unwrap();
    std::os::unix::fs::symlink(&outside, stale.join("var/lib/out")).unwrap();
    std::os::unix::fs::symlink(outside.join("sub/file"), stale.join("var/f")).unwrap();
    std::fs::create_dir_all(stale.join("var/deep/a/b/c")).unwrap();
    std::os::unix::fs::symlink("../../../..", stale.join("var/deep/a/b/c/up")).unwrap();
    let before = snapshot(&outside);
    let s = sys.to_str().unwrap();

    let linked = repo.join("deployments/.tmp-linked");
    std::os::unix::fs::symlink(&outside, &linked).unwrap();
    let t = sr_fails(&["repo", "gc", "--sysroot", s], 1);
    assert!(
        t.contains("garbage collection refused, nothing was changed")
            && t.contains(&format!("{} is a symlink", linked.display())),
        "{t}"
    );
    assert!(stale.exists(), "nothing removed while refusing");
    std::fs::remove_file(&linked).unwrap();

    let gc = sr_ok(&["repo", "gc", "--sysroot", s]);
    assert!(gc.contains(".tmp-stale"), "{gc}");
    assert!(!stale.exists());
    assert_eq!(snapshot(&outside), before);
}

/// Issue 14: a mistyped --sysroot is never created; only the repository
/// inside an existing one is. --repo DIR creates DIR only, in an existing
/// parent; DIR itself must not be a symlink, the path leading to it may.
#[test]
fn only_the_repository_is_ever_created() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    sample_image(&layout);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=sysroot test");
    seal(&layout, &keys, &[]);
    let cert = keys.cert();
    let missing = tmp.path().join("mnt/typo/root");
    for args in [
        vec!["repo", "init", "--sysroot", missing.to_str().unwrap()],
        vec![
            "deploy",
            &image_ref(&layout),
            "--sysroot",
            missing.to_str().unwrap(),
            "--cert",
            &cert,
        ],
    ] {
        let t = sr_fails(&args, 1);
        assert!(
            t.contains(&format!("{} does not exist", missing.display()))
                && t.contains("never its parents"),
            "{t}"
        );
        assert!(
            !tmp.path().join("mnt").exists(),
            "{args:?} created a parent"
        );
    }
    let t = sr_fails(
        &[
            "repo",
            "init",
            "--repo",
            missing.join("repo").to_str().unwrap(),
        ],
        1,
    );
    assert!(
        t.contains(&format!("{} does not exist", missing.display())),
        "{t}"
    );
    assert!(!tmp.path().join("mnt").exists());

    // An existing sysroot gets sealroot/ and nothing else.
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    sr_ok(&["repo", "init", "--sysroot", root.to_str().unwrap()]);
    let names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["sealroot"]);
    // --repo: DIR is created in an existing parent.
    let repo = tmp.path().join("repo");
    sr_ok(&["repo", "init", "--repo", repo.to_str().unwrap()]);
    assert!(repo.join("repo.json").is_file());
    // A symlink as the last component is refused; one on the way is the
    // user's path and followed.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&repo, &link).unwrap();
    let t = sr_fails(&["repo", "list", "--repo", link.to_str().unwrap()], 1);
    assert!(
        t.contains(&format!(
            "{} is a symlink (to {})",
            link.display(),
            repo.display()
        )),
        "{t}"
    );
    let via = tmp.path().join("via");
    std::os::unix::fs::symlink(tmp.path(), &via).unwrap();
    sr_ok(&["repo", "list", "--repo", via.join("repo").to_str().unwrap()]);
    let link_sys = tmp.path().join("linksys");
    std::fs::create_dir(&link_sys).unwrap();
    std::os::unix::fs::symlink(&repo, link_sys.join("sealroot")).unwrap();
    let t = sr_fails(&["repo", "gc", "--sysroot", link_sys.to_str().unwrap()], 1);
    assert!(
        t.contains(&format!("{}/sealroot is a symlink", link_sys.display())),
        "{t}"
    );
}

/// Issue 14: `repo list` on a missing repository suggests an init command
/// that works, for --sysroot and --repo alike (the suggestion is run).
#[test]
fn a_missing_repository_suggests_an_init_that_works() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    for location in [
        vec!["--sysroot".to_owned(), root.to_str().unwrap().to_owned()],
        vec![
            "--repo".to_owned(),
            tmp.path().join("some repo").to_str().unwrap().to_owned(),
        ],
    ] {
        let mut args = vec!["repo".to_owned(), "list".to_owned()];
        args.extend(location.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = sr_fails(&args, 1);
        let hint = t
            .split('`')
            .find(|s| s.starts_with("sealroot repo init"))
            .unwrap_or_else(|| panic!("no init hint in: {t}"));
        // The hint as a shell would run it.
        let out = Command::new("sh")
            .arg("-c")
            .arg(hint.replacen("sealroot", "\"$0\"", 1))
            .arg(env!("CARGO_BIN_EXE_sealroot"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{hint}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Value = serde_json::from_str(&sr_ok(&[&args[..], &["--json"]].concat())).unwrap();
        assert_eq!(list, serde_json::json!([]));
    }
}

/// The image's /var is copied fd-relative with the xattrs of the booted
/// root: the merged tree's canonical form (docs/sealing.md, "The merged
/// EROFS") keeps only `security.capability`, so the copy carries that one
/// and drops the others, exactly as the sealed root shows them. Checked by
/// reading the copy back with sealroot's directory importer.
/// `struct vfs_cap_data` revision 2 (linux/capability.h): effective,
/// permitted = CAP_NET_BIND_SERVICE (bit 10); the kernel checks the shape.
const FILE_CAPS: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn var_is_seeded_with_xattrs() {
    use oci_support::fixture::{ImageBuilder, LayerBuilder};
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let mut l = LayerBuilder::new();
    l.dir("var", 0o755)
        .dir("var/lib", 0o755)
        .pax(&[("SCHILY.xattr.user.dir", b"d")])
        .dir("var/lib/x", 0o700)
        .pax(&[
            ("SCHILY.xattr.user.file", b"f"),
            ("SCHILY.xattr.security.capability", &FILE_CAPS),
        ])
        .file("var/lib/x/data", &bytes(20, 5000), 0o600)
        .pax(&[("SCHILY.xattr.trusted.link", b"l")])
        .symlink("var/lib/x/link", "data");
    let layer = l.finish();
    ImageBuilder::new()
        .layer(layer, sealroot::oci::Compression::Gzip)
        .write(&layout, repo_support::TAG);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=var test");
    seal(&layout, &keys, &[]);
    let sys = tmp.path().join("sys");
    std::fs::create_dir(&sys).unwrap();
    let out: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &image_ref(&layout),
        "--sysroot",
        sys.to_str().unwrap(),
        "--cert",
        &keys.cert(),
        "--json",
    ]))
    .unwrap();
    let m = &out["deployment"]["manifest"].as_str().unwrap()[7..];
    let var = sys.join("sealroot/deployments").join(m).join("var");
    let (tree, _) = sealroot::tree::fromdir::import_dir(
        &var,
        // All xattrs (not only user.*).
        &sealroot::tree::fromdir::DirOptions::default(),
    )
    .unwrap();
    let find = |path: &[&[u8]]| {
        let mut id = tree.root();
        for p in path {
            id = tree.lookup(id, p).unwrap();
        }
        id
    };
    let xattr = |path: &[&[u8]], name: &[u8]| tree.xattr(find(path), name).map(<[u8]>::to_vec);
    assert_eq!(
        xattr(&[b"lib", b"x", b"data"], b"security.capability"),
        Some(FILE_CAPS.to_vec())
    );
    assert_eq!(xattr(&[b"lib", b"x"], b"user.dir"), None);
    assert_eq!(xattr(&[b"lib", b"x", b"data"], b"user.file"), None);
    assert_eq!(xattr(&[b"lib", b"x", b"link"], b"trusted.link"), None);
    let meta = std::fs::symlink_metadata(var.join("lib/x")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o700);
    assert!(meta.is_dir());
    assert!(
        std::fs::symlink_metadata(var.join("lib/x/link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        !std::fs::symlink_metadata(var.join("lib/x/data"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}
