//! Unit tests of the bootable transformation. The byte-for-byte check
//! against cfsctl is `tests/cfsctl_interop.rs`; the expected labels here
//! are those of composefs-boot 0.9.4's own tests (`src/selabel.rs`:
//! `hybrid_lookaround_priority`, `selabel_replaces_stale_labels`).

use std::collections::HashMap;
use std::io;

use super::selinux::{Policy, PolicyError, PolicyFiles, Rule, parse_rules, policy_type};
use super::*;
use crate::tree::{NewContent, Stat, mode};

struct NoObjects;

impl ObjectReader for NoObjects {
    fn read_object(&self, _: &FsVerityDigest, _: u64) -> io::Result<Vec<u8>> {
        Err(io::Error::other("no objects in this test"))
    }
}

fn stat(fmt: u32, sec: i64) -> Stat {
    Stat {
        mode: fmt | 0o755,
        nlink: 1,
        mtime: crate::tree::Timestamp { sec, nsec: 0 },
        ..Stat::default()
    }
}

/// A tree from `(path, type, inline content)`; parents come first.
fn tree(entries: &[(&str, u32, &[u8])]) -> Tree {
    let mut t = Tree::new(stat(mode::S_IFDIR, 1)).unwrap();
    for &(path, fmt, content) in entries {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = t.lookup_path(parent.as_bytes()).unwrap();
        let c = match fmt {
            mode::S_IFDIR => NewContent::Directory,
            mode::S_IFLNK => NewContent::Symlink(b"target"),
            mode::S_IFREG => NewContent::Inline(content),
            _ => NewContent::None,
        };
        let id = t.add_inode(stat(fmt, 5), c).unwrap();
        t.set_xattr(id, XATTR_SELINUX, b"stale_t").unwrap();
        t.link(parent, name.as_bytes(), id).unwrap();
    }
    t
}

fn label(t: &Tree, path: &str) -> Option<String> {
    let id = t.lookup_path(path.as_bytes()).unwrap();
    t.xattr(id, XATTR_SELINUX)
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

const D: u32 = mode::S_IFDIR;
const F: u32 = mode::S_IFREG;

fn bootable_with(file_contexts: &'static [u8], extra: &[(&str, u32, &'static [u8])]) -> Tree {
    let mut entries: Vec<(&str, u32, &[u8])> = vec![
        ("usr", D, b""),
        ("boot", D, b""),
        ("boot/vmlinuz", F, b"kernel"),
        ("sysroot", D, b""),
        ("etc", D, b""),
        ("etc/selinux", D, b""),
        (
            "etc/selinux/config",
            F,
            b"SELINUX=enforcing\nSELINUXTYPE=targeted\n",
        ),
        ("etc/selinux/targeted", D, b""),
        ("etc/selinux/targeted/contexts", D, b""),
        ("etc/selinux/targeted/contexts/files", D, b""),
        (
            "etc/selinux/targeted/contexts/files/file_contexts",
            F,
            file_contexts,
        ),
    ];
    entries.extend_from_slice(extra);
    tree(&entries)
}

#[test]
fn boot_and_sysroot_are_emptied_with_usrs_mtime() {
    let mut t = bootable_with(b"/.* u:object_r:default_t:s0\n", &[]);
    let usr = t.lookup_path(b"usr").unwrap();
    t.stat_mut(usr).mtime.sec = 77;
    transform(&mut t, &NoObjects).unwrap();
    for d in ["boot", "sysroot"] {
        let id = t.lookup_path(d.as_bytes()).unwrap();
        assert_eq!(t.entries(id).len(), 0, "{d}");
        assert_eq!(t.stat(id).mtime.sec, 77, "{d}");
    }
}

#[test]
fn missing_toplevel_directories_are_refused() {
    for missing in ["usr", "boot", "sysroot"] {
        let all = [("usr", D, &b""[..]), ("boot", D, b""), ("sysroot", D, b"")];
        let entries: Vec<_> = all.iter().copied().filter(|e| e.0 != missing).collect();
        let mut t = tree(&entries);
        let e = transform(&mut t, &NoObjects).unwrap_err();
        assert!(
            matches!(&e, BootError::NotBootable { dir, .. } if *dir == missing),
            "{missing}: {e}"
        );
    }
}

#[test]
fn without_a_policy_labels_are_removed() {
    let mut t = tree(&[("usr", D, b""), ("boot", D, b""), ("sysroot", D, b"")]);
    let r = transform(&mut t, &NoObjects).unwrap();
    assert_eq!(r.selinux_policy, None);
    assert_eq!(label(&t, "usr"), None);
}

#[test]
fn last_rule_wins_types_and_none() {
    let mut t = bootable_with(
        b"# comment\n\n/.*\t\tsystem_u:object_r:default_t:s0\n\
          /usr(/.*)?  system_u:object_r:usr_t:s0\n\
          /usr/bin(/.*)? -d system_u:object_r:bin_dir_t:s0\n\
          /usr/bin/.* -- system_u:object_r:bin_t:s0\n\
          /usr/bin/nolabel <<none>>\n",
        &[
            ("usr/bin", D, b""),
            ("usr/bin/ls", F, b"ls"),
            ("usr/bin/nolabel", F, b"x"),
            ("usr/bin/sub", D, b""),
        ],
    );
    let r = transform(&mut t, &NoObjects).unwrap();
    assert_eq!(r.selinux_policy.as_deref(), Some("targeted"));
    assert_eq!(
        label(&t, "").as_deref(),
        Some("system_u:object_r:default_t:s0")
    );
    assert_eq!(
        label(&t, "usr").as_deref(),
        Some("system_u:object_r:usr_t:s0")
    );
    assert_eq!(
        label(&t, "usr/bin").as_deref(),
        Some("system_u:object_r:bin_dir_t:s0")
    );
    assert_eq!(
        label(&t, "usr/bin/sub").as_deref(),
        Some("system_u:object_r:bin_dir_t:s0")
    );
    assert_eq!(
        label(&t, "usr/bin/ls").as_deref(),
        Some("system_u:object_r:bin_t:s0")
    );
    assert_eq!(label(&t, "usr/bin/nolabel"), None);
}

#[test]
fn hardlinks_with_different_labels_are_split() {
    let mut t = bootable_with(
        b"/.* u:object_r:default_t:s0\n/usr/bin/.* u:object_r:bin_t:s0\n",
        &[
            ("usr/bin", D, b""),
            ("usr/lib", D, b""),
            ("usr/lib/tool", F, b"tool"),
        ],
    );
    let tool = t.lookup_path(b"usr/lib/tool").unwrap();
    let bin = t.lookup_path(b"usr/bin").unwrap();
    let lib = t.lookup_path(b"usr/lib").unwrap();
    t.link(bin, b"tool", tool).unwrap();
    t.link(lib, b"tool2", tool).unwrap();
    let r = transform(&mut t, &NoObjects).unwrap();
    // usr/bin/tool comes first in depth-first name order: it keeps the
    // inode. Every later name whose label differs from *its* label gets an
    // inode of its own, even when two such names agree (composefs-boot
    // compares with the first name's label only).
    assert_eq!(r.split_links, 2);
    assert_eq!(t.lookup_path(b"usr/bin/tool"), Some(tool));
    let (a, b) = (
        t.lookup_path(b"usr/lib/tool").unwrap(),
        t.lookup_path(b"usr/lib/tool2").unwrap(),
    );
    assert!(a != b && a != tool && b != tool);
    assert_eq!(
        label(&t, "usr/bin/tool").as_deref(),
        Some("u:object_r:bin_t:s0")
    );
    assert_eq!(
        label(&t, "usr/lib/tool2").as_deref(),
        Some("u:object_r:default_t:s0")
    );
    for id in [a, b, tool] {
        assert_eq!(t.stat(id).nlink, 1);
    }
}

#[test]
fn aliases_rename_paths_and_descendants() {
    let mut t = bootable_with(
        b"/.* u:object_r:default_t:s0\n/home(/.*)? u:object_r:home_t:s0\n",
        &[
            (
                "etc/selinux/targeted/contexts/files/file_contexts.subs",
                F,
                b"/var/home /home\n",
            ),
            ("var", D, b""),
            ("var/home", D, b""),
            ("var/home/user", F, b"u"),
        ],
    );
    transform(&mut t, &NoObjects).unwrap();
    assert_eq!(label(&t, "var").as_deref(), Some("u:object_r:default_t:s0"));
    assert_eq!(
        label(&t, "var/home").as_deref(),
        Some("u:object_r:home_t:s0")
    );
    assert_eq!(
        label(&t, "var/home/user").as_deref(),
        Some("u:object_r:home_t:s0")
    );
}

#[test]
fn lookaround_rules_keep_their_priority() {
    // composefs-boot's hybrid_lookaround_priority, same rules and answers.
    let rules: Vec<Rule> = [
        (r"/(.*)?", "default_t"),
        (r"/usr(.*)?", "usr_t"),
        (r"/usr/bin/(?!bad).*", "bin_ok_t"),
        (r"/usr/bin/good", "bin_good_t"),
        (r"/etc/(?!shadow).*", "etc_public_t"),
        (r"/etc/hostname", "hostname_t"),
    ]
    .iter()
    .map(|(re, c)| Rule {
        regex: format!("^({re}).$"),
        context: c.to_string(),
    })
    .collect();
    let mut p = Policy::from_rules(rules, HashMap::new()).unwrap();
    for (path, want) in [
        ("/etc/hostname", "hostname_t"),
        ("/etc/passwd", "etc_public_t"),
        ("/etc/shadow", "default_t"),
        ("/usr/bin/good", "bin_good_t"),
        ("/usr/bin/hello", "bin_ok_t"),
        ("/usr/bin/bad", "usr_t"),
    ] {
        assert_eq!(
            p.label(path.as_bytes(), b'-').unwrap(),
            Some(want),
            "{path}"
        );
    }
}

#[test]
fn grammar_errors_name_file_and_line() {
    let mut rules = Vec::new();
    for (text, line, what) in [
        (&b"/a ctx\n/b\n"[..], 2, "no context"),
        (b"/a -x ctx\n", 1, "unknown file type"),
        (b"/a -d\n", 1, "no context"),
        (b"\n/a ctx extra\n", 2, "unexpected field"),
    ] {
        match parse_rules("file_contexts", text, &mut rules) {
            Err(PolicyError::Syntax {
                line: l, reason, ..
            }) => {
                assert_eq!(l, line, "{reason}");
                assert!(reason.contains(what), "{reason}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert!(matches!(
        parse_rules("file_contexts", b"/a \xff\n", &mut rules),
        Err(PolicyError::NotUtf8 { line: 1, .. })
    ));
    assert!(Policy::build(&PolicyFiles::default()).is_err());
}

#[test]
fn config_names_the_first_selinuxtype() {
    assert_eq!(
        policy_type(b"#SELINUXTYPE=no\n selinuxtype = mls \nSELINUXTYPE=targeted\n\xff").unwrap(),
        Some("mls".into())
    );
    assert_eq!(policy_type(b"SELINUX=disabled\n").unwrap(), None);
    assert!(policy_type(b"\xff\nSELINUXTYPE=x").is_err());
}

#[test]
fn looks_bootable_needs_the_directories_and_a_kernel() {
    let base = [("usr", D, &b""[..]), ("boot", D, b""), ("sysroot", D, b"")];
    assert!(!looks_bootable(&tree(&base)));
    let mut with_kernel = base.to_vec();
    with_kernel.extend([
        ("usr/lib", D, &b""[..]),
        ("usr/lib/modules", D, b""),
        ("usr/lib/modules/6.12", D, b""),
        ("usr/lib/modules/6.12/vmlinuz", F, b"k"),
    ]);
    assert!(looks_bootable(&tree(&with_kernel)));
    let mut with_boot = base.to_vec();
    with_boot.push(("boot/uki.efi", F, b"k"));
    assert!(looks_bootable(&tree(&with_boot)));
    with_boot.retain(|e| e.0 != "sysroot");
    assert!(!looks_bootable(&tree(&with_boot)));
}

#[test]
fn policy_paths_are_resolved_as_composefs_rs_resolves_them() {
    let with_config = |config: &'static [u8]| {
        let mut t = bootable_with(b"/.* u:object_r:default_t:s0\n", &[]);
        let dir = t.lookup_path(b"etc/selinux").unwrap();
        t.unlink(dir, b"config").unwrap();
        let c = t.add_inode(stat(F, 1), NewContent::Inline(config)).unwrap();
        t.link(dir, b"config", c).unwrap();
        transform(&mut t, &NoObjects)
    };
    // `..` and a leading `.` are invalid; a missing policy directory is
    // an error; other `.` and empty components are skipped.
    for (config, want) in [
        (&b"SELINUXTYPE=../x\n"[..], "`..`"),
        (b"SELINUXTYPE=./targeted\n", "starts with `.`"),
        (b"SELINUXTYPE=mls\n", "no such directory"),
    ] {
        let e = with_config(config).unwrap_err().to_string();
        assert!(e.contains(want), "{config:?}: {e}");
    }
    let r = with_config(b"SELINUXTYPE=targeted/./\n").unwrap();
    assert_eq!(r.selinux_policy.as_deref(), Some("targeted/./"));
    // A symlink where a directory must be.
    let mut t = bootable_with(b"/.* u:object_r:default_t:s0\n", &[]);
    let root = t.root();
    t.unlink(root, b"sysroot").unwrap();
    let l = t
        .add_inode(stat(mode::S_IFLNK, 1), NewContent::Symlink(b"/"))
        .unwrap();
    t.link(root, b"sysroot", l).unwrap();
    let e = transform(&mut t, &NoObjects).unwrap_err().to_string();
    assert!(e.contains("/sysroot is a symlink"), "{e}");
}
