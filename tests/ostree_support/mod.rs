//! Shared by the ostree tests: a source tree with every shape an ostree
//! commit can hold, repositories made by the real `ostree` (Debian
//! bookworm's 2022.7, `/usr/bin/ostree`) and the reference `ostree`
//! 2026.4 with composefs (Debian sid, `scripts/reference-tools`).

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// bookworm's ostree (no composefs): makes repositories and commits.
pub fn ostree() -> Command {
    Command::new("/usr/bin/ostree")
}

/// sid's ostree 2026.4 with composefs: the reference.
pub fn ostree_ref() -> Command {
    super::common::tool("ostree")
}

pub fn sealroot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealroot"))
}

pub fn run(cmd: &mut Command) -> String {
    String::from_utf8(super::common::run(cmd).stdout).unwrap()
}

/// Runs a command that must fail with `code`; its stderr.
pub fn fails(cmd: &mut Command, code: i32) -> String {
    let out: Output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}: expected exit {code}\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn setxattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

/// Deterministic bytes.
pub fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// The source tree: small (inline-sized) and large files, exactly 64 and
/// 65 bytes, empty files, a multi-chunk file, hard links (which ostree
/// stores as two entries of one object), identical content under two
/// names, relative and absolute symlinks, setuid and private modes,
/// other owners, xattrs of the user, trusted (including
/// `trusted.overlay.*`, which the EROFS escapes) and security namespaces
/// on files and directories, a kernel and os-release for `ostree admin
/// deploy`, and `prepare-root.conf` asking for composefs with verity (so
/// ostree's deploy records every object's digest).
pub fn source_tree(root: &Path) {
    let w = |rel: &str, content: &[u8]| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        p
    };
    w("usr/bin/small", b"hi\n");
    w("usr/bin/exactly64", &bytes(1, 64));
    w("usr/bin/just65", &bytes(2, 65));
    let large = w("usr/bin/large", &bytes(3, 3 * 1024 * 1024 + 17));
    fs::hard_link(&large, root.join("usr/bin/large-hardlink")).unwrap();
    let empty = w("usr/bin/empty", b"");
    fs::hard_link(&empty, root.join("usr/bin/empty-hardlink")).unwrap();
    w("usr/share/doc/a.txt", b"same content\n");
    w("usr/share/doc/b.txt", b"same content\n");
    symlink("small", root.join("usr/bin/rel-link")).unwrap();
    symlink("/usr/bin/large", root.join("usr/bin/abs-link")).unwrap();
    symlink("../share/doc", root.join("usr/bin/dir-link")).unwrap();
    let suid = w("usr/sbin/suid", &bytes(4, 200));
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    let private = w("usr/lib/private/key", &bytes(5, 100));
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(
        root.join("usr/lib/private"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let owned = w("usr/share/owned", &bytes(6, 80));
    rustix::fs::chown(
        &owned,
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(100)),
    )
    .unwrap();
    setxattr(&root.join("usr/bin/small"), "user.note", b"small file");
    setxattr(&large, "trusted.overlay.custom", b"escaped");
    // VFS_CAP_REVISION_2 | effective, CAP_NET_BIND_SERVICE permitted.
    let cap = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    setxattr(&suid, "security.capability", &cap);
    setxattr(
        &root.join("usr/share/doc"),
        "user.dir",
        b"a directory xattr",
    );
    w("usr/lib/modules/6.12.0/vmlinuz", b"not really a kernel\n");
    w(
        "usr/lib/os-release",
        b"ID=testos\nNAME=\"sealroot ostree test\"\n",
    );
    w(
        "usr/etc/os-release",
        b"ID=testos\nNAME=\"sealroot ostree test\"\n",
    );
    w(
        "usr/lib/ostree/prepare-root.conf",
        b"[composefs]\nenabled = verity\n",
    );
    fs::create_dir_all(root.join("usr/empty-dir")).unwrap();
}

/// `ostree init --mode=MODE` at `repo`, then a commit of `tree` on
/// branch `branch`; its checksum.
pub fn commit(repo: &Path, mode: &str, tree: &Path, branch: &str, extra: &[&str]) -> String {
    if !repo.join("config").exists() {
        run(ostree()
            .arg("init")
            .arg(format!("--repo={}", repo.display()))
            .arg(format!("--mode={mode}")));
    }
    run(ostree()
        .arg("commit")
        .arg(format!("--repo={}", repo.display()))
        .arg(format!("--branch={branch}"))
        .arg(format!("--tree=dir={}", tree.display()))
        .args(extra))
    .trim()
    .to_owned()
}

/// The reference image: `ostree checkout --composefs` (sid's ostree).
pub fn reference_image(repo: &Path, rev: &str, out: &Path) -> Vec<u8> {
    run(ostree_ref()
        .arg("checkout")
        .arg(format!("--repo={}", repo.display()))
        .arg("--composefs")
        .arg(rev)
        .arg(out));
    fs::read(out).unwrap()
}

/// sealroot's image and digest for the same commit.
pub fn sealroot_image(repo: &Path, rev: &str, out: &Path) -> (Vec<u8>, String) {
    let digest = run(sealroot()
        .args(["ostree", "compute-id", "--repo"])
        .arg(repo)
        .arg(rev)
        .arg("--erofs")
        .arg(out));
    (fs::read(out).unwrap(), digest.trim().to_owned())
}

/// ostree makes a deployment directory immutable (`chattr +i`); this
/// lifts the flag when dropped so the temporary directory can go.
pub struct Immutable(pub PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// Whether `dir` has the immutable attribute (`lsattr -d`).
pub fn is_immutable(dir: &Path) -> bool {
    let out = run(Command::new("lsattr").arg("-d").arg(dir));
    out.split_whitespace()
        .next()
        .is_some_and(|attrs| attrs.contains('i'))
}

/// A sysroot made by the reference ostree: `admin init-fs`, `os-init
/// testos`, `pull-local` of `branch` from `src`, `admin deploy`. Returns
/// the sysroot and the deployment directory (and the guard that makes it
/// removable again).
pub fn deployed_sysroot(
    dir: &Path,
    src: &Path,
    branch: &str,
    commit: &str,
) -> (PathBuf, PathBuf, Immutable) {
    let sysroot = dir.join("sysroot");
    fs::create_dir_all(&sysroot).unwrap();
    let sr = format!("--sysroot={}", sysroot.display());
    run(ostree_ref()
        .args(["admin", "init-fs", "--modern"])
        .arg(&sysroot));
    run(ostree_ref().args(["admin", &sr, "os-init", "testos"]));
    run(ostree_ref()
        .arg(format!("--repo={}", sysroot.join("ostree/repo").display()))
        .arg("pull-local")
        .arg(src)
        .arg(branch));
    run(ostree_ref().args(["admin", &sr, "deploy", "--os=testos", branch]));
    let deployment = sysroot.join(format!("ostree/deploy/testos/deploy/{commit}.0"));
    let guard = Immutable(deployment.clone());
    assert!(
        deployment.join(".ostree.cfs").is_file(),
        "ostree admin deploy wrote no .ostree.cfs"
    );
    (sysroot, deployment, guard)
}

/// `sealroot keygen` into `dir`: (signer key, signer cert, CA cert).
pub fn keys(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    run(sealroot().arg("keygen").arg("--out-dir").arg(dir));
    (
        dir.join("signer.key.pem"),
        dir.join("signer.crt.pem"),
        dir.join("ca.crt.pem"),
    )
}

/// The binding record sealroot signs for `commit` and `erofs` (sha256),
/// as docs/ostree.md spells it.
pub fn record(commit: &str, erofs: &str) -> String {
    format!(
        "{{\"mediaType\":\"application/vnd.sealroot.ostree.binding.v1+json\",\"commit\":\"{commit}\",\"algorithm\":\"fsverity-sha256-12\",\"erofs\":\"{erofs}\"}}"
    )
}

/// `sealroot ostree seal --repo REPO REV --key KEY --cert CERT`.
pub fn seal(repo: &Path, rev: &str, key: &Path, cert: &Path) -> String {
    run(sealroot()
        .args(["ostree", "seal", "--repo"])
        .arg(repo)
        .arg(rev)
        .arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(cert))
}

/// The object path below `objects/` (`XX/<62 hex>.file`) that the
/// composefs-dump(5) file `dump` redirects `path` to.
pub fn object_of(dump: &Path, path: &str) -> String {
    let text = fs::read_to_string(dump).unwrap();
    text.lines()
        .find(|l| l.split(' ').next() == Some(path))
        .and_then(|l| l.split(' ').nth(8))
        .unwrap_or_else(|| panic!("{path} is not an external file in {}", dump.display()))
        .to_owned()
}
