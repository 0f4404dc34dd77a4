//! From a [`Tree`] to the list of image inodes, with the rewrites composefs
//! applies (`rewrite_tree_for_erofs` and `lcfs_compute_tree` in libcomposefs):
//!
//! - user `trusted.overlay.*` xattrs are escaped to `trusted.overlay.overlay.*`
//!   so overlayfs shows them to users instead of interpreting them;
//! - a regular file with content outside the image gets
//!   `trusted.overlay.metacopy` (its fs-verity digest, if known) and
//!   `trusted.overlay.redirect` (`/` + its backing path);
//! - a whiteout (char device 0:0) becomes an empty regular file with
//!   escaped whiteout xattrs, and its directory is marked as holding
//!   whiteouts (and, from format version 1, as an escaped opaque dir);
//! - the root gets `trusted.overlay.opaque=y` and 256 real whiteouts
//!   `00`..`ff` (where no such name exists) so that the object store
//!   (`XX/...`) underneath never shows through;
//! - every directory gets `.` and `..`; directory link counts become 2 +
//!   subdirectories;
//! - inodes are numbered breadth-first, children in name order, each
//!   hardlinked inode at the place of its primary entry (`Tree::primaries`:
//!   the first in depth-first name order unless a dumpfile pinned another).

use std::collections::HashMap;

use super::format::{MAX_CHUNKS, chunking};
use super::writer::WriteError;
use crate::tree::{Content, FileType, InodeId, Timestamp, Tree, mode};

const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";
const ESCAPED_PREFIX: &[u8] = b"trusted.overlay.overlay.";
const METACOPY: &[u8] = b"trusted.overlay.metacopy";
const REDIRECT: &[u8] = b"trusted.overlay.redirect";
const OPAQUE: &[u8] = b"trusted.overlay.opaque";
const ESCAPED_WHITEOUT: &[u8] = b"trusted.overlay.overlay.whiteout";
const ESCAPED_WHITEOUTS: &[u8] = b"trusted.overlay.overlay.whiteouts";
const ESCAPED_OPAQUE: &[u8] = b"trusted.overlay.overlay.opaque";
const USER_WHITEOUT: &[u8] = b"user.overlay.whiteout";
const USER_WHITEOUTS: &[u8] = b"user.overlay.whiteouts";
const USER_OPAQUE: &[u8] = b"user.overlay.opaque";
const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// Size of `struct ovl_metacopy`'s header (`OVL_METACOPY_MIN_SIZE`):
/// version, len, flags, digest_algo.
const METACOPY_HEADER: usize = 4;

/// Byte strings stored once each, in one arena: an image has a few
/// distinct xattr names but up to two distinct values (digest, backing
/// path) per external file, so each string costs its bytes plus ~40.
#[derive(Default)]
pub(super) struct Interner {
    arena: Vec<u8>,
    spans: Vec<(usize, u32)>,
    /// Hash -> most recent string with that hash; `next` chains collisions.
    heads: HashMap<u64, u32>,
    next: Vec<u32>,
}

impl Interner {
    fn hash(s: &[u8]) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(s)
    }

    pub fn intern(&mut self, s: &[u8]) -> u32 {
        let h = Self::hash(s);
        let head = self.heads.get(&h).copied().unwrap_or(u32::MAX);
        let mut cur = head;
        while cur != u32::MAX {
            if self.get(cur) == s {
                return cur;
            }
            cur = self.next[cur as usize];
        }
        let id = self.spans.len() as u32;
        self.spans.push((self.arena.len(), s.len() as u32));
        self.arena.extend_from_slice(s);
        self.next.push(head);
        self.heads.insert(h, id);
        id
    }

    pub fn get(&self, id: u32) -> &[u8] {
        let (off, len) = self.spans[id as usize];
        &self.arena[off..off + len as usize]
    }
}

/// What an image inode holds.
pub(super) enum Data<'t> {
    None,
    /// Children (including `.` and `..`) in `Image::children[range]`.
    Dir {
        start: u32,
        end: u32,
    },
    Symlink(&'t [u8]),
    Inline(&'t [u8]),
    /// Content outside the image: a chunk index of holes.
    External {
        chunk_bits: u32,
        chunks: u32,
    },
}

pub(super) struct Node<'t> {
    pub parent: u32,
    pub name: &'t [u8],
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev: u64,
    pub size: u64,
    pub mtime: Timestamp,
    pub data: Data<'t>,
    /// Xattrs in `Image::xattrs[range]`, sorted by name.
    pub xattr_start: u32,
    pub xattr_end: u32,
}

/// A directory entry of the image: name and target node (during the
/// breadth-first pass, hardlinks hold the tree inode until resolved).
pub(super) struct Child<'t> {
    pub name: &'t [u8],
    pub target: u32,
    pub unresolved_inode: Option<InodeId>,
}

/// The image inodes in breadth-first order (node 0 is the root).
pub(super) struct Image<'t> {
    pub nodes: Vec<Node<'t>>,
    pub children: Vec<Child<'t>>,
    /// (name id, value id) pairs.
    pub xattrs: Vec<(u32, u32)>,
    pub names: Interner,
    pub values: Interner,
    pub min_mtime: Timestamp,
    pub has_acl: bool,
}

fn is_whiteout(tree: &Tree, id: InodeId) -> bool {
    let st = tree.stat(id);
    st.mode & mode::S_IFMT == mode::S_IFCHR && st.rdev == 0
}

/// The composefs format version to write: `min`, raised to 1 (if `max`
/// allows) when the tree holds a whiteout (`lcfs_write_update_version`).
pub fn choose_version(tree: &Tree, min: u32, max: u32) -> u32 {
    if min >= 1 || max < 1 {
        return min;
    }
    let mut stack = vec![tree.root()];
    while let Some(dir) = stack.pop() {
        for e in tree.entries(dir) {
            if is_whiteout(tree, e.inode) {
                return 1;
            }
            if tree.is_dir(e.inode) {
                stack.push(e.inode);
            }
        }
    }
    min
}

/// A node's xattrs while they are being rewritten; small, so a Vec with
/// replace-by-name semantics (`lcfs_node_set_xattr`).
type Bytes<'a> = std::borrow::Cow<'a, [u8]>;
struct XattrList<'a>(Vec<(Bytes<'a>, Bytes<'a>)>);

impl<'a> XattrList<'a> {
    fn set(&mut self, name: &'a [u8], value: impl Into<std::borrow::Cow<'a, [u8]>>) {
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| n.as_ref() == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.into(), value)),
        }
    }
}

impl<'t> Image<'t> {
    fn path_of(&self, mut node: u32) -> String {
        let mut parts = Vec::new();
        while node != 0 {
            parts.push(String::from_utf8_lossy(self.nodes[node as usize].name).into_owned());
            node = self.nodes[node as usize].parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn push_xattrs(&mut self, list: XattrList<'_>) -> (u32, u32) {
        let start = self.xattrs.len() as u32;
        let mut pairs: Vec<(u32, u32)> = list
            .0
            .iter()
            .map(|(n, v)| (self.names.intern(n), self.values.intern(v)))
            .collect();
        pairs.sort_unstable_by(|a, b| self.names.get(a.0).cmp(self.names.get(b.0)));
        for &(n, _) in &pairs {
            let name = self.names.get(n);
            if name == ACL_ACCESS || name == ACL_DEFAULT {
                self.has_acl = true;
            }
        }
        self.xattrs.extend(pairs);
        (start, self.xattrs.len() as u32)
    }

    /// Final xattrs of a tree inode (see the module documentation).
    fn rewritten_xattrs<'a>(
        tree: &'a Tree,
        id: InodeId,
        holds_whiteouts: bool,
        version: u32,
        is_root: bool,
        redirect: &'a mut Vec<u8>,
        metacopy: &'a mut Vec<u8>,
    ) -> XattrList<'a> {
        let mut list = XattrList(Vec::with_capacity(tree.xattrs(id).len() + 2));
        for (name, value) in tree.xattrs(id) {
            match name.strip_prefix(OVERLAY_PREFIX) {
                Some(rest) => {
                    let mut escaped = ESCAPED_PREFIX.to_vec();
                    escaped.extend_from_slice(rest);
                    list.0.push((escaped.into(), value.into()));
                }
                None => list.0.push((name.into(), value.into())),
            }
        }
        let st = tree.stat(id);
        if st.mode & mode::S_IFMT == mode::S_IFREG && st.size > 0 {
            let (payload, digest) = match tree.content(id) {
                Content::Inline(_) => (None, None),
                Content::External { payload, digest } => (payload, digest),
                _ => (None, None),
            };
            if !matches!(tree.content(id), Content::Inline(_)) {
                if let Some(d) = digest {
                    // `struct ovl_metacopy` (fs/overlayfs/overlayfs.h):
                    // version 0, len = header + digest bytes, flags 0,
                    // digest_algo = FS_VERITY_HASH_ALG_* of the digest;
                    // `ovl_validate_verity` requires algorithm, length and
                    // bytes to equal the data file's fs-verity digest.
                    let len = (METACOPY_HEADER + d.as_bytes().len()) as u8;
                    metacopy.extend_from_slice(&[0, len, 0, d.algorithm().kernel_id()]);
                    metacopy.extend_from_slice(d.as_bytes());
                }
                list.set(METACOPY, metacopy.as_slice());
                if let Some(p) = payload.filter(|p| !p.is_empty()) {
                    redirect.push(b'/');
                    redirect.extend_from_slice(p);
                    list.set(REDIRECT, redirect.as_slice());
                }
            }
        }
        if is_whiteout(tree, id) {
            list.set(ESCAPED_WHITEOUT, &b""[..]);
            list.set(USER_WHITEOUT, &b""[..]);
        }
        if holds_whiteouts {
            list.set(ESCAPED_WHITEOUTS, &b""[..]);
            list.set(USER_WHITEOUTS, &b""[..]);
            if version >= 1 {
                list.set(ESCAPED_OPAQUE, &b"x"[..]);
                list.set(USER_OPAQUE, &b"x"[..]);
            }
        }
        if is_root {
            list.set(OPAQUE, &b"y"[..]);
        }
        list
    }

    fn node_for(tree: &'t Tree, id: InodeId, parent: u32, name: &'t [u8]) -> Result<Node<'t>, u64> {
        let st = tree.stat(id);
        let mut node = Node {
            parent,
            name,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
            nlink: st.nlink,
            rdev: st.rdev,
            size: st.size,
            mtime: st.mtime,
            data: Data::None,
            xattr_start: 0,
            xattr_end: 0,
        };
        if is_whiteout(tree, id) {
            node.mode = mode::S_IFREG | (st.mode & !mode::S_IFMT);
            node.size = 0;
            return Ok(node);
        }
        node.data = match (tree.file_type(id), tree.content(id)) {
            (FileType::Directory, _) => Data::Dir { start: 0, end: 0 },
            (FileType::Symlink, Content::Symlink(t)) => Data::Symlink(t),
            (FileType::Regular, Content::Inline(c)) => Data::Inline(c),
            (FileType::Regular, _) if st.size > 0 => {
                let (chunk_bits, chunks) = chunking(st.size);
                if chunks > MAX_CHUNKS {
                    return Err(st.size);
                }
                Data::External {
                    chunk_bits,
                    chunks: chunks as u32,
                }
            }
            _ => Data::None,
        };
        match tree.file_type(id) {
            FileType::Symlink | FileType::Regular | FileType::Directory => {}
            // Devices, fifos and sockets have no content: mkcomposefs
            // writes i_size 0 whatever the dump's SIZE says
            // (`write_erofs_inode`, lcfs-writer-erofs.c).
            _ => node.size = 0,
        }
        if let Data::Symlink(t) = node.data {
            node.size = t.len() as u64;
        }
        Ok(node)
    }

    /// A real whiteout under the root, with the root's owner, mtime and
    /// SELinux label (`add_overlay_whiteouts`).
    fn root_whiteout(&mut self, name: &'t [u8]) -> Node<'t> {
        let r = &self.nodes[0];
        let selinux = (r.xattr_start..r.xattr_end)
            .map(|k| self.xattrs[k as usize])
            .find(|&(n, _)| self.names.get(n) == b"security.selinux");
        let mut wh = Node {
            parent: 0,
            name,
            mode: mode::S_IFCHR | 0o644,
            uid: r.uid,
            gid: r.gid,
            nlink: 1,
            rdev: 0,
            size: 0,
            mtime: r.mtime,
            data: Data::None,
            xattr_start: 0,
            xattr_end: 0,
        };
        wh.xattr_start = self.xattrs.len() as u32;
        if let Some(pair) = selinux {
            self.xattrs.push(pair);
        }
        wh.xattr_end = self.xattrs.len() as u32;
        wh
    }

    /// Builds the image inode list. See the module documentation.
    pub fn build(tree: &'t Tree, version: u32) -> Result<Image<'t>, WriteError> {
        let root = tree.root();
        let mut img = Image {
            nodes: Vec::with_capacity(tree.inode_count() + 256),
            children: Vec::with_capacity(tree.entry_count() + 2 * tree.dir_count() + 256),
            xattrs: Vec::new(),
            names: Interner::default(),
            values: Interner::default(),
            min_mtime: tree.stat(root).mtime,
            has_acl: false,
        };
        img.nodes
            .push(Self::node_for(tree, root, 0, b"").map_err(|_| WriteError::Internal("root"))?);
        let primaries = tree.primaries();
        // Tree inode -> node, for resolving hardlinks.
        let mut node_of: Vec<u32> = vec![u32::MAX; tree.inode_count()];
        let mut tree_inode: Vec<Option<InodeId>> = vec![Some(root)];
        let mut scratch: Vec<(&'t [u8], Kind)> = Vec::new();
        let mut i = 0usize;
        while i < img.nodes.len() {
            let me = i as u32;
            let id = tree_inode[i];
            let mtime = img.nodes[i].mtime;
            if mtime < img.min_mtime {
                img.min_mtime = mtime;
            }
            let Some(id) = id else {
                // Synthetic root whiteout: xattrs were set at creation.
                i += 1;
                continue;
            };
            let is_dir = matches!(img.nodes[i].data, Data::Dir { .. });
            let holds_whiteouts = is_dir
                && tree.entries(id).enumerate().any(|(k, e)| {
                    is_whiteout(tree, e.inode) && primaries.is_primary(id, k, e.inode)
                });
            let (mut redirect, mut metacopy) = (Vec::new(), Vec::new());
            let list = Self::rewritten_xattrs(
                tree,
                id,
                holds_whiteouts,
                version,
                i == 0,
                &mut redirect,
                &mut metacopy,
            );
            let (xs, xe) = img.push_xattrs(list);
            img.nodes[i].xattr_start = xs;
            img.nodes[i].xattr_end = xe;
            if !is_dir {
                i += 1;
                continue;
            }

            scratch.clear();
            scratch.push((b".", Kind::Dot));
            scratch.push((b"..", Kind::DotDot));
            for (k, e) in tree.entries(id).enumerate() {
                let is_link = !primaries.is_primary(id, k, e.inode);
                scratch.push((e.name, Kind::Entry(e.inode, is_link)));
            }
            if i == 0 {
                for name in WHITEOUT_NAMES.iter() {
                    if tree.lookup(root, name).is_none() {
                        scratch.push((&name[..], Kind::Whiteout));
                    }
                }
            }
            scratch.sort_by(|a, b| a.0.cmp(b.0));
            let mut subdirs = 0u32;
            let start = img.children.len() as u32;
            let parent = img.nodes[i].parent;
            for &(name, kind) in scratch.iter() {
                let (target, unresolved_inode) = match kind {
                    Kind::Dot => (me, None),
                    Kind::DotDot => (parent, None),
                    Kind::Entry(inode, true) => (u32::MAX, Some(inode)),
                    Kind::Entry(inode, false) => {
                        let n = img.nodes.len() as u32;
                        let node = Self::node_for(tree, inode, me, name).map_err(|size| {
                            WriteError::FileTooLarge {
                                path: format!(
                                    "{}/{}",
                                    img.path_of(me).trim_end_matches('/'),
                                    String::from_utf8_lossy(name)
                                ),
                                size,
                            }
                        })?;
                        if matches!(node.data, Data::Dir { .. }) {
                            subdirs += 1;
                        }
                        img.nodes.push(node);
                        tree_inode.push(Some(inode));
                        if std::mem::replace(&mut node_of[inode.index()], n) != u32::MAX {
                            return Err(WriteError::Internal("inode with two primary entries"));
                        }
                        (n, None)
                    }
                    Kind::Whiteout => {
                        let n = img.nodes.len() as u32;
                        let wh = img.root_whiteout(name);
                        img.nodes.push(wh);
                        tree_inode.push(None);
                        (n, None)
                    }
                };
                img.children.push(Child {
                    name,
                    target,
                    unresolved_inode,
                });
            }
            let end = img.children.len() as u32;
            img.nodes[i].data = Data::Dir { start, end };
            img.nodes[i].nlink = 2 + subdirs;
            i += 1;
        }
        // Resolve hardlinks now that every primary has its node.
        for c in &mut img.children {
            if let Some(inode) = c.unresolved_inode.take() {
                c.target = node_of[inode.index()];
                if c.target == u32::MAX {
                    return Err(WriteError::OrphanLink);
                }
                if matches!(img.nodes[c.target as usize].data, Data::Dir { .. }) {
                    return Err(WriteError::DirectoryHardlink {
                        name: String::from_utf8_lossy(c.name).into_owned(),
                    });
                }
            }
        }
        Ok(img)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Dot,
    DotDot,
    Entry(InodeId, bool),
    Whiteout,
}

/// `00` .. `ff`, the names of the root whiteouts.
static WHITEOUT_NAMES: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};
