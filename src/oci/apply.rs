//! Applying layers to a filesystem tree with OCI semantics (image-spec
//! `layer.md`, "Applying Changesets"), as containerd and umoci do it:
//!
//! - a member replaces whatever its path names in lower layers; a directory
//!   member over an existing directory only updates its metadata (mode,
//!   owner, mtime, xattrs — replaced by the member's, as overlayfs shows the
//!   upper directory's) and keeps its children;
//! - `.wh.<name>` removes `<name>` (and everything under it) from lower
//!   layers; `.wh..wh..opq` hides everything lower layers put in its
//!   directory. Neither affects what the *same* layer adds, in whatever order
//!   the tar lists them (layer.md: "Files that are present in the same layer
//!   as a whiteout file can only be hidden by whiteout files in subsequent
//!   layers");
//! - a hardlink names its target's inode, whether the target came from this
//!   layer or an earlier one; a missing target or a directory target is an
//!   error;
//! - missing parent directories are created with mode 0755, owner 0:0,
//!   mtime 0 and no xattrs (deterministic, unlike the extraction time
//!   containerd uses);
//! - **symlinks in parent components are followed, confined to the image
//!   root**, like containerd's `fs.RootPath` and umoci's `securejoin`:
//!   `..` stops at the root and absolute targets start from it, at most 40
//!   links are followed (Linux's `MAXSYMLINKS`). So a layer built on a
//!   merged-/usr base that writes `bin/foo` puts it in `usr/bin/foo`, as the
//!   container runtime would; and nothing can land outside the tree, which
//!   in any case is in memory — no host path is ever touched. The final
//!   component is never followed: a member replaces a symlink, it does not
//!   write through it.
//!
//! The tree is reached through the [`LayerTarget`] trait so the logic is
//! independent of the tree's representation.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

use super::layer::{Change, EntryKind, EntryPath, Metadata, Timestamp};
use super::sink::FileContent;

/// Linux's limit on symlinks followed in one lookup (`MAXSYMLINKS`).
pub const MAX_SYMLINKS: usize = 40;

/// What apply needs to know about an inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeType {
    /// A directory.
    Directory,
    /// A symlink and its target.
    Symlink(Vec<u8>),
    /// Anything else.
    Other,
}

/// The operations layer application performs on a tree.
pub trait LayerTarget {
    /// A handle on an inode.
    type Inode: Copy + Eq + Hash;
    /// Why the tree refuses an operation.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The root directory.
    fn root(&self) -> Self::Inode;
    /// The inode `name` names in `dir`, if any (no symlink followed).
    fn lookup(&self, dir: Self::Inode, name: &[u8]) -> Option<Self::Inode>;
    /// What an inode is.
    fn node_type(&self, inode: Self::Inode) -> NodeType;
    /// Names of a directory's entries.
    fn entry_names(&self, dir: Self::Inode) -> Vec<Vec<u8>>;
    /// Creates an inode not yet named by any entry. `kind` is never
    /// `Hardlink`.
    fn create(
        &mut self,
        kind: &EntryKind<FileContent>,
        meta: &Metadata,
    ) -> Result<Self::Inode, Self::Error>;
    /// Names `inode` as `name` in `dir` (`name` is free).
    fn link(
        &mut self,
        dir: Self::Inode,
        name: &[u8],
        inode: Self::Inode,
    ) -> Result<(), Self::Error>;
    /// Removes the entry `name` from `dir`, with its subtree.
    fn unlink(&mut self, dir: Self::Inode, name: &[u8]) -> Result<(), Self::Error>;
    /// Replaces an inode's permissions, owner, mtime and xattrs.
    fn set_metadata(&mut self, inode: Self::Inode, meta: &Metadata) -> Result<(), Self::Error>;
}

/// A change that cannot be applied. Names the layer (by its position and
/// digest, filled in by the caller's context) and the path.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError<E: std::error::Error + 'static> {
    /// A parent component that is neither a directory nor a symlink to one.
    #[error("{path}: a parent component ({component}) is not a directory")]
    NotADirectory {
        /// The entry's path.
        path: EntryPath,
        /// The component.
        component: String,
    },
    /// Too many symlinks followed ([`MAX_SYMLINKS`]).
    #[error("{path}: more than {MAX_SYMLINKS} symlinks followed resolving the parent (loop?)")]
    SymlinkLoop {
        /// The entry's path.
        path: EntryPath,
    },
    /// A hardlink to nothing.
    #[error("{path}: hardlink target {target} does not exist in this or an earlier layer")]
    MissingLinkTarget {
        /// The link.
        path: EntryPath,
        /// Its target.
        target: EntryPath,
    },
    /// A hardlink to a directory.
    #[error("{path}: hardlink target {target} is a directory")]
    DirectoryLinkTarget {
        /// The link.
        path: EntryPath,
        /// Its target.
        target: EntryPath,
    },
    /// A hardlink to its own path.
    #[error("{path}: hardlink to itself")]
    SelfLink {
        /// The link.
        path: EntryPath,
    },
    /// The tree refused the operation.
    #[error("{path}: {error}")]
    Tree {
        /// The entry's path.
        path: EntryPath,
        /// The tree's reason.
        error: E,
    },
}

/// Metadata of directories created implicitly.
pub fn implicit_dir_metadata() -> Metadata {
    Metadata {
        permissions: 0o755,
        uid: 0,
        gid: 0,
        mtime: Timestamp::default(),
        xattrs: Default::default(),
    }
}

/// Applies one layer's changes, in order, to `target`.
pub fn apply_layer<T: LayerTarget>(
    target: &mut T,
    changes: &[Change<FileContent>],
) -> Result<(), ApplyError<T::Error>> {
    let mut state = Applier {
        target,
        touched: HashSet::new(),
    };
    for change in changes {
        state.apply(change)?;
    }
    Ok(())
}

struct Applier<'a, T: LayerTarget> {
    target: &'a mut T,
    /// Entries (directory inode, name) this layer created or passed
    /// through: whiteouts and opaque markers of this layer spare them.
    touched: HashSet<(T::Inode, Vec<u8>)>,
}

/// How to treat missing directories while resolving a parent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    Create,
    Stop,
}

impl<T: LayerTarget> Applier<'_, T> {
    fn tree_err(path: &EntryPath) -> impl FnOnce(T::Error) -> ApplyError<T::Error> + '_ {
        move |source| ApplyError::Tree {
            path: path.clone(),
            error: source,
        }
    }

    /// Resolves `dir` (a path of directories) from the root, following
    /// symlinks confined to the root. Returns `None` when a component is
    /// missing and `missing` is `Stop`. With `mark`, every entry walked
    /// through is recorded as touched by this layer.
    fn resolve_dir(
        &mut self,
        whole: &EntryPath,
        dir: &EntryPath,
        missing: Missing,
        mark: bool,
    ) -> Result<Option<T::Inode>, ApplyError<T::Error>> {
        let root = self.target.root();
        let mut stack = vec![root];
        let mut queue: VecDeque<Vec<u8>> = dir.components().map(<[u8]>::to_vec).collect();
        let mut followed = 0;
        while let Some(comp) = queue.pop_front() {
            let cur = *stack.last().unwrap_or(&root);
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let child = match self.target.lookup(cur, &comp) {
                Some(c) => c,
                None if missing == Missing::Stop => return Ok(None),
                None => {
                    let kind = EntryKind::Directory;
                    let inode = self
                        .target
                        .create(&kind, &implicit_dir_metadata())
                        .map_err(Self::tree_err(whole))?;
                    self.target
                        .link(cur, &comp, inode)
                        .map_err(Self::tree_err(whole))?;
                    inode
                }
            };
            match self.target.node_type(child) {
                NodeType::Directory => {
                    if mark {
                        self.touched.insert((cur, comp));
                    }
                    stack.push(child);
                }
                NodeType::Symlink(target) => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(ApplyError::SymlinkLoop {
                            path: whole.clone(),
                        });
                    }
                    if target.starts_with(b"/") {
                        stack.truncate(1);
                    }
                    for c in target.split(|&b| b == b'/').rev() {
                        queue.push_front(c.to_vec());
                    }
                }
                NodeType::Other => {
                    return Err(ApplyError::NotADirectory {
                        path: whole.clone(),
                        component: String::from_utf8_lossy(&comp).into_owned(),
                    });
                }
            }
        }
        Ok(Some(*stack.last().unwrap_or(&root)))
    }

    fn apply(&mut self, change: &Change<FileContent>) -> Result<(), ApplyError<T::Error>> {
        match change {
            Change::Whiteout(path) => self.whiteout(path),
            Change::Opaque(dir) => self.opaque(dir),
            Change::Add { path, kind, meta } => self.add(path, kind, meta),
        }
    }

    fn whiteout(&mut self, path: &EntryPath) -> Result<(), ApplyError<T::Error>> {
        let Some((parent, name)) = path.split_last() else {
            return Ok(());
        };
        let Some(dir) = self.resolve_dir(path, &parent, Missing::Stop, false)? else {
            return Ok(()); // nothing below to hide
        };
        if self.touched.contains(&(dir, name.to_vec())) {
            return Ok(()); // added by this same layer: not hidden
        }
        if self.target.lookup(dir, name).is_some() {
            self.target
                .unlink(dir, name)
                .map_err(Self::tree_err(path))?;
        }
        Ok(())
    }

    fn opaque(&mut self, path: &EntryPath) -> Result<(), ApplyError<T::Error>> {
        let Some(dir) = self.resolve_dir(path, path, Missing::Create, true)? else {
            return Ok(());
        };
        self.clear_lower(path, dir)
    }

    /// Removes from `dir` everything this layer did not add, at any depth.
    /// Iterative: symlinked parents let a hostile image build trees far
    /// deeper than PATH_MAX, and recursion would overflow the stack.
    fn clear_lower(&mut self, path: &EntryPath, dir: T::Inode) -> Result<(), ApplyError<T::Error>> {
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            for name in self.target.entry_names(dir) {
                if self.touched.contains(&(dir, name.clone())) {
                    if let Some(child) = self.target.lookup(dir, &name) {
                        if self.target.node_type(child) == NodeType::Directory {
                            pending.push(child);
                        }
                    }
                } else {
                    self.target
                        .unlink(dir, &name)
                        .map_err(Self::tree_err(path))?;
                }
            }
        }
        Ok(())
    }

    fn add(
        &mut self,
        path: &EntryPath,
        kind: &EntryKind<FileContent>,
        meta: &Metadata,
    ) -> Result<(), ApplyError<T::Error>> {
        let Some((parent, name)) = path.split_last() else {
            // The root itself ("./"): only directories get here.
            let root = self.target.root();
            return self
                .target
                .set_metadata(root, meta)
                .map_err(Self::tree_err(path));
        };
        let Some(dir) = self.resolve_dir(path, &parent, Missing::Create, true)? else {
            return Ok(());
        };
        let existing = self.target.lookup(dir, name);

        let inode = match kind {
            EntryKind::Hardlink(target_path) => {
                let target = self.find(path, target_path)?;
                if existing == Some(target) {
                    // Already the same inode (e.g. a repeated member).
                    if target_path == path {
                        return Err(ApplyError::SelfLink { path: path.clone() });
                    }
                    self.touched.insert((dir, name.to_vec()));
                    return Ok(());
                }
                target
            }
            EntryKind::Directory => {
                if let Some(e) = existing {
                    if self.target.node_type(e) == NodeType::Directory {
                        self.touched.insert((dir, name.to_vec()));
                        return self
                            .target
                            .set_metadata(e, meta)
                            .map_err(Self::tree_err(path));
                    }
                }
                self.target
                    .create(kind, meta)
                    .map_err(Self::tree_err(path))?
            }
            _ => self
                .target
                .create(kind, meta)
                .map_err(Self::tree_err(path))?,
        };
        if existing.is_some() {
            self.target
                .unlink(dir, name)
                .map_err(Self::tree_err(path))?;
        }
        self.target
            .link(dir, name, inode)
            .map_err(Self::tree_err(path))?;
        self.touched.insert((dir, name.to_vec()));
        Ok(())
    }

    /// The inode a hardlink member points to.
    fn find(
        &mut self,
        path: &EntryPath,
        target: &EntryPath,
    ) -> Result<T::Inode, ApplyError<T::Error>> {
        let missing = || ApplyError::MissingLinkTarget {
            path: path.clone(),
            target: target.clone(),
        };
        let (parent, name) = target.split_last().ok_or_else(missing)?;
        let dir = self
            .resolve_dir(path, &parent, Missing::Stop, false)?
            .ok_or_else(missing)?;
        let inode = self.target.lookup(dir, name).ok_or_else(missing)?;
        if self.target.node_type(inode) == NodeType::Directory {
            return Err(ApplyError::DirectoryLinkTarget {
                path: path.clone(),
                target: target.clone(),
            });
        }
        Ok(inode)
    }
}
