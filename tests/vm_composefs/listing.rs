//! What a mounted composefs shows, compared with what its source holds.
//!
//! Two views of a mount come back from the VM:
//! - the image `sealroot mkcomposefs MOUNTPOINT` builds inside the VM: it
//!   records every entry's type, mode, owner, rdev, size, mtime with
//!   nanoseconds, xattrs, symlink target, inline content and the fs-verity
//!   digest of every larger file's content (read through overlayfs, so the
//!   kernel checked it against the image);
//! - `find -print0` + busybox `stat -c` lines: inode numbers and link
//!   counts (hardlinks), the same metadata through another program.
//!
//! Both are compared per path with the source [`Tree`], transformed the
//! way composefs presents it ([`presented`]).

use std::collections::{BTreeMap, HashMap};

use sealroot::dumpfile::escape::{Style, escape_into};
use sealroot::dumpfile::print::walk;
use sealroot::tree::{Content, InodeId, Tree, mode};

/// One path's observable state. Directory sizes and link counts are left
/// out (the writer computes them; link counts are checked on the stat
/// lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: Option<u64>,
    pub mtime: (i64, u32),
    pub body: Body,
    /// Sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    None,
    Dir,
    Symlink(Vec<u8>),
    Inline(Vec<u8>),
    /// The fs-verity digest of the content (the backing path is not part
    /// of what a mount shows).
    External(Option<String>),
}

/// Every path of a tree ("/" for the root) with its entry; hardlinks
/// appear once per path. Plus the groups of paths naming one inode.
pub struct Listing {
    pub entries: BTreeMap<Vec<u8>, Entry>,
    pub nlink: BTreeMap<Vec<u8>, u32>,
    pub hardlinks: Vec<Vec<Vec<u8>>>,
}

pub fn listing(tree: &Tree) -> Listing {
    let mut entries = BTreeMap::new();
    let mut nlink = BTreeMap::new();
    let mut by_inode: HashMap<InodeId, Vec<Vec<u8>>> = HashMap::new();
    let _ = walk(tree, |path, id, _| {
        let st = tree.stat(id);
        let body = match tree.content(id) {
            Content::None => Body::None,
            Content::Directory => Body::Dir,
            Content::Symlink(t) => Body::Symlink(t.to_vec()),
            Content::Inline(c) => Body::Inline(c.to_vec()),
            Content::External { digest, .. } => Body::External(digest.map(|d| d.to_hex())),
        };
        let mut xattrs: Vec<_> = tree
            .xattrs(id)
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        xattrs.sort();
        let is_dir = st.mode & mode::S_IFMT == mode::S_IFDIR;
        entries.insert(
            path.to_vec(),
            Entry {
                mode: st.mode,
                uid: st.uid,
                gid: st.gid,
                rdev: st.rdev,
                size: (!is_dir).then_some(st.size),
                mtime: (st.mtime.sec, st.mtime.nsec),
                body,
                xattrs,
            },
        );
        nlink.insert(path.to_vec(), st.nlink);
        if !is_dir {
            by_inode.entry(id).or_default().push(path.to_vec());
        }
        Ok(())
    });
    let mut hardlinks: Vec<_> = by_inode.into_values().filter(|v| v.len() > 1).collect();
    for group in &mut hardlinks {
        group.sort();
    }
    hardlinks.sort();
    Listing {
        entries,
        nlink,
        hardlinks,
    }
}

/// The tree as a composefs mount presents it (libcomposefs'
/// `rewrite_tree_for_erofs` plus overlayfs' unescaping, Linux >= 6.7): a
/// whiteout (char 0:0) becomes an empty regular file with the xattrs
/// `trusted.overlay.whiteout` and `user.overlay.whiteout`, its directory
/// gets `trusted.overlay.whiteouts` and `user.overlay.whiteouts`, and from
/// format version 1 also `trusted.overlay.opaque=x` and
/// `user.overlay.opaque=x` — the "xwhiteout" form another overlayfs
/// stacked on the mount honours as whiteouts.
pub fn presented(tree: &Tree, version: u32) -> Tree {
    let mut t = tree.clone();
    let mut whiteouts = Vec::new();
    let _ = walk(tree, |path, id, is_link| {
        let st = tree.stat(id);
        if !is_link && st.mode & mode::S_IFMT == mode::S_IFCHR && st.rdev == 0 {
            let parent = &path[..path.iter().rposition(|&b| b == b'/').unwrap_or(0)];
            whiteouts.push((
                id,
                if parent.is_empty() {
                    b"/".to_vec()
                } else {
                    parent.to_vec()
                },
            ));
        }
        Ok(())
    });
    for (id, parent) in whiteouts {
        let st = t.stat_mut(id);
        st.mode = mode::S_IFREG | (st.mode & !mode::S_IFMT);
        st.size = 0;
        t.set_xattr(id, b"trusted.overlay.whiteout", b"").unwrap();
        t.set_xattr(id, b"user.overlay.whiteout", b"").unwrap();
        let dir = t.lookup_path(&parent).expect("parent of a whiteout");
        t.set_xattr(dir, b"trusted.overlay.whiteouts", b"").unwrap();
        t.set_xattr(dir, b"user.overlay.whiteouts", b"").unwrap();
        if version >= 1 {
            t.set_xattr(dir, b"trusted.overlay.opaque", b"x").unwrap();
            t.set_xattr(dir, b"user.overlay.opaque", b"x").unwrap();
        }
    }
    t
}

/// A path, escaped as composefs-dump(5) escapes it, for messages.
pub fn show(path: &[u8]) -> String {
    let mut out = Vec::new();
    escape_into(&mut out, path, Style::Standard);
    String::from_utf8_lossy(&out).into_owned()
}

/// Panics with every difference (up to 40) between two listings.
pub fn assert_same_entries(what: &str, expected: &Listing, actual: &Listing) {
    if let Err(e) = entry_differences(what, expected, actual) {
        panic!("{e}");
    }
}

/// Every difference (up to 40) between two listings, as one message.
pub fn entry_differences(what: &str, expected: &Listing, actual: &Listing) -> Result<(), String> {
    let mut diffs = Vec::new();
    for (path, e) in &expected.entries {
        match actual.entries.get(path) {
            None => diffs.push(format!("missing {}: expected {e:?}", show(path))),
            Some(a) if a != e => diffs.push(format!(
                "{}:\n  expected {e:?}\n  actual   {a:?}",
                show(path)
            )),
            Some(_) => {}
        }
    }
    for (path, a) in &actual.entries {
        if !expected.entries.contains_key(path) {
            diffs.push(format!("unexpected {}: {a:?}", show(path)));
        }
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let n = diffs.len();
    diffs.truncate(40);
    Err(format!(
        "{what}: {n} paths differ from the source ({} expected, {} seen):\n{}",
        expected.entries.len(),
        actual.entries.len(),
        diffs.join("\n")
    ))
}

/// One `stat -c '%i %h %f %u %g %t %T %s %Y %y'` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatLine {
    pub ino: u64,
    pub nlink: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub major: u64,
    pub minor: u64,
    pub size: u64,
    pub mtime: (i64, u32),
}

/// The stat format the scenario uses; [`parse_stats`] reads it.
pub const STAT_FORMAT: &str = "%i %h %f %u %g %t %T %s %Y %y";

/// Pairs `find . -print0` names (as "/path", the root as "/") with their
/// stat lines (one per name, in order).
pub fn parse_stats(names: &[u8], stats: &str) -> Vec<(Vec<u8>, StatLine)> {
    let names: Vec<Vec<u8>> = names
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| match n {
            b"." => b"/".to_vec(),
            _ => n.strip_prefix(b".").unwrap_or(n).to_vec(),
        })
        .collect();
    let lines: Vec<&str> = stats.lines().collect();
    assert_eq!(
        names.len(),
        lines.len(),
        "find listed {} names but stat printed {} lines",
        names.len(),
        lines.len()
    );
    names
        .into_iter()
        .zip(lines)
        .map(|(name, line)| {
            let f: Vec<&str> = line.splitn(10, ' ').collect();
            assert_eq!(f.len(), 10, "bad stat line {line:?}");
            let dec = |s: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("{line:?}"));
            let hex = |s: &str| u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("{line:?}"));
            // %y: "2023-11-14 22:13:20.123456789 +0000"
            let nsec = f[9]
                .split_once('.')
                .map(|(_, r)| dec(&r[..9]) as u32)
                .unwrap_or(0);
            let stat = StatLine {
                ino: dec(f[0]),
                nlink: dec(f[1]),
                mode: hex(f[2]) as u32,
                uid: dec(f[3]) as u32,
                gid: dec(f[4]) as u32,
                major: hex(f[5]),
                minor: hex(f[6]),
                size: dec(f[7]),
                mtime: (f[8].parse().unwrap_or_else(|_| panic!("{line:?}")), nsec),
            };
            (name, stat)
        })
        .collect()
}

/// glibc's `gnu_dev_major`/`gnu_dev_minor` of a dev_t.
pub fn major_minor(rdev: u64) -> (u64, u64) {
    (
        ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff),
        (rdev & 0xff) | ((rdev >> 12) & !0xff),
    )
}

/// Checks stat lines against the expected listing: the same paths; each
/// path's mode, owner, device numbers, size (non-directories), mtime;
/// non-directories' link counts as the image records them, directories'
/// 2 + subdirectories; and paths share an inode number exactly when they
/// are hardlinks of each other.
pub fn assert_stats(what: &str, expected: &Listing, stats: &[(Vec<u8>, StatLine)]) {
    if let Err(e) = stat_differences(what, expected, stats) {
        panic!("{e}");
    }
}

/// The differences [`assert_stats`] panics with, as one message.
pub fn stat_differences(
    what: &str,
    expected: &Listing,
    stats: &[(Vec<u8>, StatLine)],
) -> Result<(), String> {
    let mut diffs = Vec::new();
    let seen: BTreeMap<&[u8], &StatLine> = stats.iter().map(|(p, s)| (p.as_slice(), s)).collect();
    for path in expected.entries.keys() {
        if !seen.contains_key(path.as_slice()) {
            diffs.push(format!("find did not list {}", show(path)));
        }
    }
    let mut subdirs: HashMap<&[u8], u64> = HashMap::new();
    for (path, e) in &expected.entries {
        if e.mode & mode::S_IFMT == mode::S_IFDIR && path != b"/" {
            let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
            let parent = if cut == 0 { &b"/"[..] } else { &path[..cut] };
            *subdirs.entry(parent).or_default() += 1;
        }
    }
    for (path, st) in stats {
        let Some(e) = expected.entries.get(path) else {
            diffs.push(format!("find listed unexpected {}", show(path)));
            continue;
        };
        let is_dev = matches!(e.mode & mode::S_IFMT, mode::S_IFCHR | mode::S_IFBLK);
        let (major, minor) = if is_dev { major_minor(e.rdev) } else { (0, 0) };
        let is_dir = e.mode & mode::S_IFMT == mode::S_IFDIR;
        let nlink = if is_dir {
            2 + subdirs.get(path.as_slice()).copied().unwrap_or(0)
        } else {
            expected.nlink[path] as u64
        };
        let want = StatLine {
            ino: st.ino,
            nlink,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            major,
            minor,
            size: e.size.unwrap_or(st.size),
            mtime: e.mtime,
        };
        if *st != want {
            diffs.push(format!(
                "{}:\n  expected {want:?}\n  stat     {st:?}",
                show(path)
            ));
        }
    }
    let mut by_ino: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for (path, st) in stats {
        by_ino.entry(st.ino).or_default().push(path.clone());
    }
    let mut groups: Vec<Vec<Vec<u8>>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    for g in &mut groups {
        g.sort();
    }
    groups.sort();
    if groups != expected.hardlinks {
        let fmt = |gs: &[Vec<Vec<u8>>]| {
            gs.iter()
                .map(|g| g.iter().map(|p| show(p)).collect::<Vec<_>>().join(" = "))
                .collect::<Vec<_>>()
                .join("; ")
        };
        diffs.push(format!(
            "paths sharing an inode: expected [{}], stat shows [{}]",
            fmt(&expected.hardlinks),
            fmt(&groups)
        ));
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let n = diffs.len();
    diffs.truncate(40);
    Err(format!(
        "{what}: {n} stat differences:\n{}",
        diffs.join("\n")
    ))
}
