//! A directory on disk to a [`Tree`], like `mkcomposefs SOURCE IMAGE`
//! (`lcfs_build` and `compute_digest` in libcomposefs/mkcomposefs.c):
//!
//! - every entry becomes an inode with the file's mode, owner, rdev, size
//!   and mtime (`--use-epoch`: all mtimes 0), link count 1 (mkcomposefs
//!   does not detect hardlinks in directories, and the image must match);
//! - regular files of at most 64 bytes are stored inline; larger ones get
//!   their fs-verity digest computed and are referenced as `XX/rest-of-hex`
//!   (optionally copied into an [`ObjectStore`]); a file with several hard
//!   links is hashed once;
//! - the walk, the reads and the hashing run on all cores ([`scan`]); the
//!   tree is then built in one thread in sorted order, so the image does
//!   not depend on scheduling;
//! - xattrs are read from the files (`--skip-xattrs`: none,
//!   `--user-xattrs`: only `user.*`); `--skip-devices` leaves out block and
//!   character devices.

mod scan;

use std::collections::HashSet;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Statx};

use super::store::{ObjectStore, StoreError, Stored, object_path};
use super::{InodeId, NewContent, Stat, Timestamp, Tree};
use scan::{Kind, Walk};

/// Regular files up to this size are stored in the image
/// (`LCFS_RECOMMENDED_INLINE_CONTENT_MAX`).
pub const INLINE_MAX: u64 = 64;

/// Options of a directory import (mkcomposefs' flags of the same names).
#[derive(Debug, Clone, Default)]
pub struct DirOptions {
    /// Set every mtime to 0 (`--use-epoch`).
    pub use_epoch: bool,
    /// Import no xattrs (`--skip-xattrs`).
    pub skip_xattrs: bool,
    /// Import only `user.` xattrs (`--user-xattrs`).
    pub user_xattrs: bool,
    /// Leave out block and character devices (`--skip-devices`).
    pub skip_devices: bool,
    /// Threads for hashing and copying; `None`: all cores.
    pub threads: Option<usize>,
    /// Copy external files here.
    pub store: Option<ObjectStore>,
}

/// Counts from an import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Entries imported.
    pub entries: u64,
    /// External files hashed.
    pub hashed_files: u64,
    /// Bytes hashed.
    pub hashed_bytes: u64,
    /// Objects copied into the store (not already there).
    pub stored_new: u64,
    /// Of those, reflinked instead of copied.
    pub reflinked: u64,
    /// Of those, with fs-verity enabled.
    pub verity_enabled: u64,
}

/// Why a directory could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the directory failed.
    #[error("{path}: {what}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The step (e.g. "stat").
        what: &'static str,
        /// What the system said.
        error: io::Error,
    },
    /// The tree refused an entry.
    #[error("{path}: {error}")]
    Tree {
        /// The entry.
        path: PathBuf,
        /// Why.
        error: super::Error,
    },
    /// Copying into the object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The thread pool could not start.
    #[error("cannot start {threads} hashing threads: {reason}")]
    Threads {
        /// How many were asked for.
        threads: usize,
        /// Why they could not start.
        reason: String,
    },
}

fn stat_of(st: &Statx, opts: &DirOptions) -> Stat {
    Stat {
        mode: st.stx_mode.into(),
        uid: st.stx_uid,
        gid: st.stx_gid,
        nlink: 1,
        rdev: rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor),
        size: st.stx_size,
        mtime: if opts.use_epoch {
            Timestamp::default()
        } else {
            Timestamp {
                sec: st.stx_mtime.tv_sec,
                nsec: st.stx_mtime.tv_nsec,
            }
        },
    }
}

/// (name, value) pairs of extended attributes.
pub(crate) type XattrList = Vec<(Vec<u8>, Vec<u8>)>;

/// Where to read xattrs from: an open file (regular files and directories)
/// or a path (symlinks and the rest, which cannot be opened for that before
/// Linux 6.13's `listxattrat`). A path is never followed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum XattrSource<'a> {
    /// An open file.
    Fd(BorrowedFd<'a>),
    /// The entry at this path itself (`llistxattr`, `lgetxattr`).
    Path(&'a Path),
}

/// Every xattr of the entry at `path` (a symlink's own, never its
/// target's), in `llistxattr` order; none where the filesystem has no
/// xattr support.
pub(crate) fn list_xattrs(path: &Path) -> Result<XattrList, rustix::io::Errno> {
    read_xattr_list(XattrSource::Path(path))
}

/// Every xattr of `from`, in listing order; none where the filesystem has
/// no xattr support.
pub(crate) fn read_xattr_list(from: XattrSource<'_>) -> Result<XattrList, rustix::io::Errno> {
    let mut names = Vec::new();
    loop {
        let listed = match from {
            XattrSource::Fd(fd) => rustix::fs::flistxattr(fd, spare(&mut names)),
            XattrSource::Path(path) => rustix::fs::llistxattr(path, spare(&mut names)),
        };
        match listed {
            Ok(n) => {
                names.truncate(n);
                break;
            }
            Err(rustix::io::Errno::RANGE) if names.len() <= 1 << 20 => continue,
            // No xattr support on this filesystem: nothing to copy.
            Err(rustix::io::Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        // Removed between the two calls: not there any more.
        if let Some(value) = read_xattr(from, name)? {
            out.push((name.to_vec(), value));
        }
    }
    Ok(out)
}

/// One xattr of the entry at `path` (not followed); `None` if it has none
/// of that name.
pub(crate) fn get_xattr(path: &Path, name: &[u8]) -> Result<Option<Vec<u8>>, rustix::io::Errno> {
    read_xattr(XattrSource::Path(path), name)
}

fn read_xattr(from: XattrSource<'_>, name: &[u8]) -> Result<Option<Vec<u8>>, rustix::io::Errno> {
    let cname = std::ffi::CString::new(name).map_err(|_| rustix::io::Errno::INVAL)?;
    let mut value = Vec::new();
    loop {
        let got = match from {
            XattrSource::Fd(fd) => rustix::fs::fgetxattr(fd, cname.as_c_str(), spare(&mut value)),
            XattrSource::Path(path) => {
                rustix::fs::lgetxattr(path, cname.as_c_str(), spare(&mut value))
            }
        };
        match got {
            Ok(n) => {
                value.truncate(n);
                return Ok(Some(value));
            }
            // Values are at most 64 KiB (XATTR_SIZE_MAX).
            Err(rustix::io::Errno::RANGE) if value.len() <= 1 << 17 => continue,
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Grows `buf` (doubling) and hands it out whole for a syscall to fill.
fn spare(buf: &mut Vec<u8>) -> &mut Vec<u8> {
    let want = (buf.capacity() * 2).max(256);
    buf.clear();
    buf.resize(want, 0);
    buf
}

/// Imports `src` (see the module documentation), on `opts.threads` threads.
pub fn import_dir(src: &Path, opts: &DirOptions) -> Result<(Tree, ImportStats), ImportError> {
    let root = rustix::fs::statx(
        rustix::fs::CWD,
        src,
        AtFlags::SYMLINK_NOFOLLOW,
        rustix::fs::StatxFlags::BASIC_STATS,
    )
    .map_err(|e| ImportError::Io {
        path: src.to_owned(),
        what: "stat",
        error: e.into(),
    })?;
    if rustix::fs::FileType::from_raw_mode(root.stx_mode.into()) != rustix::fs::FileType::Directory
    {
        return Err(ImportError::NotADirectory(src.to_owned()));
    }
    let pool = match opts.threads {
        None => None,
        Some(threads) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| ImportError::Threads {
                    threads,
                    reason: e.to_string(),
                })?,
        ),
    };
    let walk = Walk::new(opts);
    // The walk runs on the pool; this thread builds the tree from what it
    // has found so far, so building overlaps reading and hashing and each
    // directory's records are freed once in the tree.
    let built = std::thread::scope(|s| {
        let walker = s.spawn(|| match &pool {
            Some(pool) => pool.install(|| walk.run(src, &root)),
            None => walk.run(src, &root),
        });
        let built = build(stat_of(&root, opts), &walk, opts);
        if !matches!(built, Ok(Some(_))) {
            walk.stop();
        }
        if let Err(panic) = walker.join() {
            std::panic::resume_unwind(panic);
        }
        built
    });
    let totals = walk.finish()?;
    let (tree, mut stats) = built?.expect("the build stops only when the walk failed");
    stats.hashed_files = totals.hashed_files;
    stats.hashed_bytes = totals.hashed_bytes;
    Ok((tree, stats))
}

/// The tree of what the walk finds, built as it finds it: depth-first,
/// each directory's entries in name order (the order of the serial walk
/// this replaced, so inode numbering and xattr interning are unchanged).
/// `Ok(None)`: the walk stopped on an error, which [`Walk::finish`] gives.
fn build(
    root_stat: Stat,
    walk: &Walk<'_>,
    opts: &DirOptions,
) -> Result<Option<(Tree, ImportStats)>, ImportError> {
    let mut stats = ImportStats::default();
    let mut count_stored = |h: &scan::Hashed| {
        if let Some(Stored::Added { reflinked, verity }) = h.stored {
            stats.stored_new += 1;
            stats.reflinked += reflinked as u64;
            stats.verity_enabled += verity as u64;
        }
    };
    let mut linked_seen = HashSet::new();
    let Some(top) = walk.take_dir(0) else {
        return Ok(None);
    };
    let tree_err = |path: PathBuf| move |error| ImportError::Tree { path, error };
    let mut tree = Tree::new(root_stat).map_err(tree_err(top.path.clone()))?;
    let root = tree.root();
    set_xattrs(&mut tree, root, &top.xattrs, &top.path, opts)?;
    let mut stack = vec![(top, root)];
    while let Some((dir, dir_id)) = stack.pop() {
        let mut subdirs = Vec::new();
        for e in &dir.entries {
            let path = || dir.path.join(std::ffi::OsStr::from_bytes(&e.name));
            let mut payload = String::new();
            let hashed_link;
            let (content, xattrs) = match &e.kind {
                Kind::Directory(_) => (NewContent::Directory, &e.xattrs),
                Kind::Symlink(target) => (NewContent::Symlink(target), &e.xattrs),
                Kind::Inline(data) => (NewContent::Inline(data), &e.xattrs),
                Kind::External(h) => {
                    count_stored(h);
                    external(h, &mut payload)
                }
                Kind::Linked(key) => {
                    let Some(h) = walk.linked(*key) else {
                        return Ok(None);
                    };
                    if linked_seen.insert(*key) {
                        count_stored(&h);
                    }
                    hashed_link = h;
                    external(&hashed_link, &mut payload)
                }
                Kind::Other => (NewContent::None, &e.xattrs),
            };
            let id = tree.add_inode(e.stat, content).map_err(tree_err(path()))?;
            if let Kind::Directory(key) = e.kind {
                let Some(sub) = walk.take_dir(key) else {
                    return Ok(None);
                };
                set_xattrs(&mut tree, id, &sub.xattrs, &sub.path, opts)?;
                subdirs.push((sub, id));
            } else {
                set_xattrs(&mut tree, id, xattrs, &path(), opts)?;
            }
            tree.link(dir_id, &e.name, id).map_err(tree_err(path()))?;
            stats.entries += 1;
        }
        stack.extend(subdirs);
    }
    Ok(Some((tree, stats)))
}

/// The content of an external file, its object path kept in `payload`.
fn external<'a>(h: &'a scan::Hashed, payload: &'a mut String) -> (NewContent<'a>, &'a XattrList) {
    *payload = object_path(&h.digest);
    let content = NewContent::External {
        payload: Some(payload.as_bytes()),
        digest: Some(h.digest),
    };
    (content, &h.xattrs)
}

fn set_xattrs(
    tree: &mut Tree,
    id: InodeId,
    xattrs: &XattrList,
    path: &Path,
    opts: &DirOptions,
) -> Result<(), ImportError> {
    for (name, value) in xattrs {
        if opts.user_xattrs && !name.starts_with(b"user.") {
            continue;
        }
        tree.set_xattr(id, name, value)
            .map_err(|error| ImportError::Tree {
                path: path.to_owned(),
                error,
            })?;
    }
    Ok(())
}
