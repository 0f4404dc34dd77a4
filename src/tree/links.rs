//! Where each hardlinked inode is placed: its *primary* entry.
//!
//! An image holds a hardlinked inode once, at one of its names; the other
//! names are directory entries pointing at it. Which name matters for the
//! bytes (the EROFS inode order, the dumpfile's full line), so it must
//! follow from the filesystem alone, never from the order an importer met
//! the names in: a GNU tar layer lists a program's data under whichever
//! alias the archiver reached first, which is often not the first name in
//! sorted order.
//!
//! The rule is composefs': the first entry in depth-first, name-sorted
//! order (a directory's subtree before its next sibling) —
//! - `composefs-info dump` (`tools/composefs-info.c`) prints that entry as
//!   the full line and the later ones as `@` links, and `mkcomposefs`
//!   places the inode at the full line (`lcfs_compute_tree` skips
//!   `link_to` nodes), so dump -> mkcomposefs keeps it;
//! - composefs-rs places the inode at that entry in its breadth-first pass
//!   (`find_canonical_dirs` / `collect_tree` in
//!   `crates/composefs/src/erofs/writer.rs`), which is what `cfsctl oci
//!   compute-id` digests.
//!
//! The one exception is an importer pinning another entry
//! ([`Tree::pin_primary`](super::Tree::pin_primary)): a dumpfile's non-`@`
//! line, which mkcomposefs honours wherever it sits.

use std::collections::HashMap;

use super::{InodeId, Tree};

/// Where an entry is: its directory and its index in name order.
type EntryPos = (InodeId, u32);

/// The primary entry of every reachable inode that has more than one
/// entry, for one state of a [`Tree`] (computed by [`Tree::primaries`]; it
/// goes stale when the tree changes).
#[derive(Debug, Clone, Default)]
pub struct Primaries {
    map: HashMap<InodeId, EntryPos>,
}

impl Primaries {
    /// Whether the `idx`-th entry of `dir`, which names `inode`, is the
    /// inode's primary entry (always, for an inode with one entry).
    pub fn is_primary(&self, dir: InodeId, idx: usize, inode: InodeId) -> bool {
        match self.map.get(&inode) {
            None => true,
            Some(&pos) => pos == (dir, idx as u32),
        }
    }

    /// Number of hardlinked inodes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Tree {
    /// Whether any inode has (or had) more than one entry.
    pub fn has_hardlinks(&self) -> bool {
        self.hardlinks
    }

    /// The primary entry of every hardlinked inode: its pinned entry where
    /// that is reachable, else its first in depth-first name order. One
    /// walk over the tree; free when the tree has no hardlinks.
    pub fn primaries(&self) -> Primaries {
        let mut out = Primaries::default();
        if !self.hardlinks {
            return out;
        }
        // (first entry, reachable pinned entry) of each hardlinked inode.
        let mut found: HashMap<InodeId, (EntryPos, Option<EntryPos>)> = HashMap::new();
        let mut stack: Vec<(InodeId, usize)> = vec![(self.root(), 0)];
        while let Some(top) = stack.last_mut() {
            let (dir, idx) = *top;
            let Some(d) = self.dir_index(dir) else {
                stack.pop();
                continue;
            };
            let Some(e) = self.dirs[d].get(idx) else {
                stack.pop();
                continue;
            };
            top.1 += 1;
            let rec = &self.inodes[e.inode.index()];
            if rec.refs > 1 {
                let pos = (dir, idx as u32);
                let slot = found.entry(e.inode).or_insert((pos, None));
                if e.pinned && rec.pinned {
                    slot.1 = Some(pos);
                }
            } else if self.is_dir(e.inode) {
                stack.push((e.inode, 0));
            }
        }
        out.map = found
            .into_iter()
            .map(|(inode, (first, pinned))| (inode, pinned.unwrap_or(first)))
            .collect();
        out
    }
}
