//! [`Tree`] to composefs-dump(5), exactly as `composefs-info dump` prints
//! (`dump_node` in `tools/composefs-info.c`): depth-first in name order, the
//! root as `/`; a hardlink line carries its inode's fields with `@` before
//! the mode and the path of the inode's primary entry as PAYLOAD; xattrs in
//! the order the tree holds them.

use std::collections::HashMap;
use std::io::{self, Write};

use super::escape::{Style, escape_into};
use crate::tree::{Content, InodeId, Tree};

/// Visits every entry depth-first in name order, calling `f(path, entry
/// inode, is_link)`; the root comes first with path `/`. Iterative, so
/// deep trees cannot overflow the stack.
pub fn walk(
    tree: &Tree,
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
        f(&path, e.inode, e.is_link)?;
        if !e.is_link && tree.is_dir(e.inode) {
            stack.push((e.inode, 0, len));
        } else {
            path.truncate(len);
        }
    }
    Ok(())
}

/// Paths of the primary entries of inodes that have hardlinks.
pub fn primary_paths(tree: &Tree) -> HashMap<InodeId, Vec<u8>> {
    let mut linked = HashMap::new();
    let _ = walk(tree, |_, id, is_link| {
        if is_link {
            linked.insert(id, Vec::new());
        }
        Ok(())
    });
    if linked.is_empty() {
        return linked;
    }
    let _ = walk(tree, |path, id, is_link| {
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
    let primaries = primary_paths(tree);
    let mut line = Vec::with_capacity(256);
    walk(tree, |path, id, is_link| {
        line.clear();
        let target = if is_link {
            primaries.get(&id).map(|p| p.as_slice())
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
