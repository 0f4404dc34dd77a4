//! A directory on disk to a [`Tree`], like `mkcomposefs SOURCE IMAGE`
//! (`lcfs_build` and `compute_digest` in libcomposefs/mkcomposefs.c):
//!
//! - every entry becomes an inode with the file's mode, owner, rdev, size
//!   and mtime (`--use-epoch`: all mtimes 0), link count 1 (mkcomposefs
//!   does not detect hardlinks in directories, and the image must match);
//! - regular files of at most 64 bytes are stored inline; larger ones get
//!   their fs-verity digest computed and are referenced as `XX/rest-of-hex`
//!   (optionally copied into an [`ObjectStore`]); hashing and copying run
//!   on all cores;
//! - xattrs are read from the files (`--skip-xattrs`: none,
//!   `--user-xattrs`: only `user.*`); `--skip-devices` leaves out block and
//!   character devices.

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::store::{ObjectStore, StoreError, Stored, object_path};
use super::{InodeId, NewContent, Stat, Timestamp, Tree};
use crate::verity::digest;

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

fn io_err<'p>(path: &'p Path, what: &'static str) -> impl FnOnce(io::Error) -> ImportError + 'p {
    move |source| ImportError::Io {
        path: path.to_owned(),
        what,
        error: source,
    }
}

fn stat_of(md: &fs::Metadata, opts: &DirOptions) -> Stat {
    Stat {
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        nlink: 1,
        rdev: md.rdev(),
        size: md.size(),
        mtime: if opts.use_epoch {
            Timestamp::default()
        } else {
            Timestamp {
                sec: md.mtime(),
                nsec: md.mtime_nsec() as u32,
            }
        },
    }
}

fn read_xattrs(
    tree: &mut Tree,
    id: InodeId,
    path: &Path,
    opts: &DirOptions,
) -> Result<(), ImportError> {
    if opts.skip_xattrs {
        return Ok(());
    }
    let xattrs = list_xattrs(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        what: "reading xattrs",
        error: source.into(),
    })?;
    for (name, value) in xattrs {
        if opts.user_xattrs && !name.starts_with(b"user.") {
            continue;
        }
        tree.set_xattr(id, &name, &value)
            .map_err(|source| ImportError::Tree {
                path: path.to_owned(),
                error: source,
            })?;
    }
    Ok(())
}

/// (name, value) pairs of extended attributes.
pub(crate) type XattrList = Vec<(Vec<u8>, Vec<u8>)>;

/// Every xattr of the entry at `path` (a symlink's own, never its
/// target's), in `llistxattr` order; none where the filesystem has no
/// xattr support.
pub(crate) fn list_xattrs(path: &Path) -> Result<XattrList, rustix::io::Errno> {
    let mut names = Vec::new();
    loop {
        match rustix::fs::llistxattr(path, spare(&mut names)) {
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
        if let Some(value) = get_xattr(path, name)? {
            out.push((name.to_vec(), value));
        }
    }
    Ok(out)
}

/// One xattr of the entry at `path` (not followed); `None` if it has none
/// of that name.
pub(crate) fn get_xattr(path: &Path, name: &[u8]) -> Result<Option<Vec<u8>>, rustix::io::Errno> {
    let cname = std::ffi::CString::new(name).map_err(|_| rustix::io::Errno::INVAL)?;
    let mut value = Vec::new();
    loop {
        match rustix::fs::lgetxattr(path, cname.as_c_str(), spare(&mut value)) {
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

/// Imports `src` (see the module documentation).
pub fn import_dir(src: &Path, opts: &DirOptions) -> Result<(Tree, ImportStats), ImportError> {
    let md = fs::symlink_metadata(src).map_err(io_err(src, "stat"))?;
    if !md.is_dir() {
        return Err(ImportError::NotADirectory(src.to_owned()));
    }
    let tree_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ImportError::Tree {
            path,
            error: source,
        }
    };
    let mut tree = Tree::new(stat_of(&md, opts)).map_err(tree_err(src))?;
    let root = tree.root();
    read_xattrs(&mut tree, root, src, opts)?;
    let mut stats = ImportStats::default();
    let mut big_files: Vec<(InodeId, PathBuf)> = Vec::new();
    let mut stack = vec![(src.to_owned(), root)];
    let mut content = Vec::new();
    while let Some((dir, dir_id)) = stack.pop() {
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(&dir)
            .map_err(io_err(&dir, "reading directory"))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err(&dir, "reading directory"))?;
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let md = fs::symlink_metadata(&path).map_err(io_err(&path, "stat"))?;
            let ft = md.file_type();
            if opts.skip_devices && (ft.is_block_device() || ft.is_char_device()) {
                continue;
            }
            let stat = stat_of(&md, opts);
            let id = if ft.is_dir() {
                tree.add_inode(stat, NewContent::Directory)
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(io_err(&path, "reading symlink"))?;
                tree.add_inode(stat, NewContent::Symlink(target.as_os_str().as_bytes()))
            } else if ft.is_file() && stat.size > 0 && stat.size <= INLINE_MAX {
                content.clear();
                fs::File::open(&path)
                    .and_then(|f| f.take(INLINE_MAX + 1).read_to_end(&mut content))
                    .map_err(io_err(&path, "reading"))?;
                if content.len() as u64 != stat.size {
                    return Err(ImportError::Io {
                        path,
                        what: "reading",
                        error: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "file changed size while read",
                        ),
                    });
                }
                tree.add_inode(stat, NewContent::Inline(&content))
            } else {
                tree.add_inode(stat, NewContent::None)
            }
            .map_err(tree_err(&path))?;
            read_xattrs(&mut tree, id, &path, opts)?;
            tree.link(dir_id, name.as_bytes(), id)
                .map_err(tree_err(&path))?;
            stats.entries += 1;
            if ft.is_dir() {
                stack.push((path, id));
            } else if ft.is_file() && stat.size > INLINE_MAX {
                stats.hashed_bytes += stat.size;
                big_files.push((id, path));
            }
        }
    }

    let results = hash_and_store(&big_files, opts)?;
    for ((id, path), (digest, stored)) in big_files.iter().zip(results) {
        let payload = object_path(&digest);
        tree.set_content(
            *id,
            NewContent::External {
                payload: Some(payload.as_bytes()),
                digest: Some(digest),
            },
        )
        .map_err(tree_err(path))?;
        stats.hashed_files += 1;
        if let Some(Stored::Added { reflinked, verity }) = stored {
            stats.stored_new += 1;
            stats.reflinked += reflinked as u64;
            stats.verity_enabled += verity as u64;
        }
    }
    Ok((tree, stats))
}

type Hashed = (crate::verity::FsVerityDigest, Option<Stored>);

/// fs-verity digests of the files (and their copies in the store), on
/// `opts.threads` threads.
fn hash_and_store(
    files: &[(InodeId, PathBuf)],
    opts: &DirOptions,
) -> Result<Vec<Hashed>, ImportError> {
    let params = crate::tree::mkcomposefs_object_params();
    let work = || {
        files
            .par_iter()
            .map(|(_, path)| {
                let d = digest::digest_file(&params, path).map_err(io_err(path, "hashing"))?;
                let stored = match &opts.store {
                    Some(store) => Some(store.insert_file(path, &d)?),
                    None => None,
                };
                Ok((d, stored))
            })
            .collect::<Result<Vec<_>, ImportError>>()
    };
    match opts.threads {
        None => work(),
        Some(threads) => rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| ImportError::Threads {
                threads,
                reason: e.to_string(),
            })?
            .install(work),
    }
}
