//! [`Tree`] to composefs-dump(5), exactly as `composefs-info dump` prints
//! (`dump_node` in `tools/composefs-info.c`): depth-first in name order, the
//! root as `/`; a hardlinked inode's full line at its primary entry
//! ([`Tree::primaries`]: the first in this order unless pinned), the other
//! entries as lines with `@` before the mode and the primary's path as
//! PAYLOAD; xattrs in the order the tree holds them.

use std::collections::HashMap;
use std::io::{self, Write};

use super::escape::{Style, escape_into};
use crate::tree::{Content, InodeId, Primaries, Tree};

/// Visits every entry depth-first in name order, calling `f(path, entry
/// inode, is_link)`, where `is_link` says the entry is not its inode's
/// primary one ([`Tree::primaries`]); the root comes first with path `/`.
/// Iterative, so deep trees cannot overflow the stack.
pub fn walk(tree: &Tree, f: impl FnMut(&[u8], InodeId, bool) -> io::Result<()>) -> io::Result<()> {
    walk_with(tree, &tree.primaries(), f)
}

/// [`walk`] with the tree's primaries already computed.
fn walk_with(
    tree: &Tree,
    primaries: &Primaries,
    mut f: impl FnMut(&[u8], InodeId, bool) -> io::Result<()>,
) -> io::Result<()> {
    f(b"/", tree.root(), false)?;
    let mut path: Vec<u8> = Vec::new();
    // (directory, next child index, path length before this dir's name)
    let mut stack: Vec<(InodeId, usize, usize)> = vec![(tree.root(), 0, 0)];
    while let Some(top) = stack.last_mut() {
        let (dir, idx, base) = *top;
        let Some(e) = tree.entry(dir, idx) else {
            path.truncate(base);
            stack.pop();
            continue;
        };
        top.1 += 1;
        let len = path.len();
        path.push(b'/');
        path.extend_from_slice(e.name);
        let is_link = !primaries.is_primary(dir, idx, e.inode);
        f(&path, e.inode, is_link)?;
        if !is_link && tree.is_dir(e.inode) {
            stack.push((e.inode, 0, len));
        } else {
            path.truncate(len);
        }
    }
    Ok(())
}

/// Paths of the primary entries of inodes that have hardlinks.
fn primary_paths(tree: &Tree, primaries: &Primaries) -> HashMap<InodeId, Vec<u8>> {
    let mut linked = HashMap::new();
    if primaries.is_empty() {
        return linked;
    }
    let _ = walk_with(tree, primaries, |_, id, is_link| {
        if is_link {
            linked.insert(id, Vec::new());
        }
        Ok(())
    });
    let _ = walk_with(tree, primaries, |path, id, is_link| {
        if !is_link {
            if let Some(p) = linked.get_mut(&id) {
                *p = path.to_vec();
            }
        }
        Ok(())
    });
    linked
}

/// Appends one dump line for `inode` at `path` (without the newline).
pub fn format_line(
    tree: &Tree,
    out: &mut Vec<u8>,
    path: &[u8],
    inode: InodeId,
    link_target: Option<&[u8]>,
) {
    let st = tree.stat(inode);
    escape_into(out, path, Style::Standard);
    let at = if link_target.is_some() { "@" } else { "" };
    // `{:o}` of the full st_mode, as C's "%o".
    let _ = write!(
        out,
        " {} {}{:o} {} {} {} {} {}.{} ",
        st.size, at, st.mode, st.nlink, st.uid, st.gid, st.rdev, st.mtime.sec, st.mtime.nsec
    );
    let (payload, content, digest) = match tree.content(inode) {
        Content::Symlink(t) => (Some(t), None, None),
        Content::Inline(c) => (None, Some(c), None),
        Content::External { payload, digest } => (payload, None, digest),
        _ => (None, None, None),
    };
    match link_target.or(payload) {
        Some(p) => escape_into(out, p, Style::LoneDash),
        None => out.push(b'-'),
    }
    out.push(b' ');
    match content {
        Some(c) => escape_into(out, c, Style::LoneDash),
        None => out.push(b'-'),
    }
    match digest {
        Some(d) => {
            out.push(b' ');
            out.extend_from_slice(d.to_hex().as_bytes());
        }
        None => out.extend_from_slice(b" -"),
    }
    for (name, value) in tree.xattrs(inode) {
        out.push(b' ');
        escape_into(out, name, Style::Equal);
        out.push(b'=');
        escape_into(out, value, Style::Equal);
    }
}

/// Writes the whole tree as a dumpfile.
pub fn write_dump(tree: &Tree, w: &mut impl Write) -> io::Result<()> {
    let primaries = tree.primaries();
    let paths = primary_paths(tree, &primaries);
    let mut line = Vec::with_capacity(256);
    walk_with(tree, &primaries, |path, id, is_link| {
        line.clear();
        let target = if is_link {
            paths.get(&id).map(|p| p.as_slice())
        } else {
            None
        };
        format_line(tree, &mut line, path, id, target);
        line.push(b'\n');
        w.write_all(&line)
    })
}

/// The dump as a byte vector.
pub fn to_bytes(tree: &Tree) -> Vec<u8> {
    let mut out = Vec::new();
    write_dump(tree, &mut out).expect("writing to a Vec cannot fail");
    out
}
