//! [`LayerTarget`] for the composefs tree, [`crate::tree::Tree`].
//!
//! MERGE NOTE: `src/tree/` lives on the `erofs` branch. Once both branches
//! are merged, declare this module in `src/oci/mod.rs`:
//! `#[cfg(feature = "host")] pub mod tree_target;`. It was compiled and
//! tested against the erofs branch's tree (commit ce9ef85) in a scratch
//! copy: `tests/oci_apply.rs`'s umoci comparison passes with it too.

use crate::tree::store::object_path;
use crate::tree::{self, Content, InodeId, NewContent, Stat, Timestamp, Tree, mode};

use super::apply::{LayerTarget, NodeType, apply_layer};
use super::import::{ImportError, ImportedLayer};
use super::layer::{EntryKind, Metadata};
use super::sink::FileContent;
use crate::oci::digest::LayerDigest;

fn stat_for(kind: &EntryKind<FileContent>, meta: &Metadata) -> Stat {
    let (fmt, rdev, size) = match kind {
        EntryKind::File(c) => (mode::S_IFREG, 0, c.size()),
        EntryKind::Directory => (mode::S_IFDIR, 0, 0),
        EntryKind::Symlink(t) => (mode::S_IFLNK, 0, t.len() as u64),
        EntryKind::CharDevice { major, minor } => {
            (mode::S_IFCHR, rustix::fs::makedev(*major, *minor), 0)
        }
        EntryKind::BlockDevice { major, minor } => {
            (mode::S_IFBLK, rustix::fs::makedev(*major, *minor), 0)
        }
        EntryKind::Fifo => (mode::S_IFIFO, 0, 0),
        // apply() resolves hardlinks itself and never creates one.
        EntryKind::Hardlink(_) => (0, 0, 0),
    };
    Stat {
        mode: fmt | meta.permissions,
        uid: meta.uid,
        gid: meta.gid,
        nlink: 1,
        rdev,
        size,
        mtime: Timestamp {
            sec: meta.mtime.sec,
            nsec: meta.mtime.nsec,
        },
    }
}

fn set_xattrs(tree: &mut Tree, id: InodeId, meta: &Metadata) -> Result<(), tree::Error> {
    tree.clear_xattrs(id);
    for (name, value) in &meta.xattrs {
        tree.set_xattr(id, name, value)?;
    }
    Ok(())
}

impl LayerTarget for Tree {
    type Inode = InodeId;
    type Error = tree::Error;

    fn root(&self) -> InodeId {
        Tree::root(self)
    }

    fn lookup(&self, dir: InodeId, name: &[u8]) -> Option<InodeId> {
        Tree::lookup(self, dir, name)
    }

    fn node_type(&self, inode: InodeId) -> NodeType {
        match self.content(inode) {
            Content::Directory => NodeType::Directory,
            Content::Symlink(t) => NodeType::Symlink(t.to_vec()),
            _ => NodeType::Other,
        }
    }

    fn entry_names(&self, dir: InodeId) -> Vec<Vec<u8>> {
        self.entries(dir).map(|e| e.name.to_vec()).collect()
    }

    fn create(
        &mut self,
        kind: &EntryKind<FileContent>,
        meta: &Metadata,
    ) -> Result<InodeId, tree::Error> {
        let stat = stat_for(kind, meta);
        let payload;
        let content = match kind {
            EntryKind::File(FileContent::Inline(v)) if v.is_empty() => NewContent::None,
            EntryKind::File(FileContent::Inline(v)) => NewContent::Inline(v),
            EntryKind::File(FileContent::External { digest, .. }) => {
                payload = object_path(digest);
                NewContent::External {
                    payload: Some(payload.as_bytes()),
                    digest: Some(*digest),
                }
            }
            EntryKind::Directory => NewContent::Directory,
            EntryKind::Symlink(t) => NewContent::Symlink(t),
            _ => NewContent::None,
        };
        let id = self.add_inode(stat, content)?;
        set_xattrs(self, id, meta)?;
        Ok(id)
    }

    fn link(&mut self, dir: InodeId, name: &[u8], inode: InodeId) -> Result<(), tree::Error> {
        Tree::link(self, dir, name, inode)
    }

    fn unlink(&mut self, dir: InodeId, name: &[u8]) -> Result<(), tree::Error> {
        Tree::unlink(self, dir, name).map(|_| ())
    }

    fn set_metadata(&mut self, inode: InodeId, meta: &Metadata) -> Result<(), tree::Error> {
        let st = self.stat_mut(inode);
        st.mode = (st.mode & mode::S_IFMT) | meta.permissions;
        st.uid = meta.uid;
        st.gid = meta.gid;
        st.mtime = Timestamp {
            sec: meta.mtime.sec,
            nsec: meta.mtime.nsec,
        };
        set_xattrs(self, inode, meta)
    }
}

/// A tree holding the merged filesystem of `layers` (lowest first) in its
/// canonical form ([`super::canonical`]), with link counts settled for the
/// writers.
pub fn merged_tree(layers: &[ImportedLayer]) -> Result<Tree, ImportError> {
    let meta = super::apply::implicit_dir_metadata();
    let root = stat_for(&EntryKind::Directory, &meta);
    let mut tree = Tree::new(root).map_err(|e| ImportError::Apply {
        index: 0,
        layer: LayerDigest(crate::oci::Sha256Digest::of(b"")),
        error: Box::new(e),
    })?;
    for (index, layer) in layers.iter().enumerate() {
        apply_layer(&mut tree, &layer.changes).map_err(|e| ImportError::Apply {
            index: index + 1,
            layer: LayerDigest(layer.descriptor.digest),
            error: Box::new(e),
        })?;
    }
    super::canonical::canonicalize(&mut tree);
    tree.recount_nlinks();
    Ok(tree)
}
