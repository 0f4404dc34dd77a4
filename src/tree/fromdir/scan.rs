//! The parallel part of a directory import: every directory is read, and
//! every entry stat'ed, read (symlinks, inline files) or hashed (larger
//! files), on the rayon pool, into plain records. [`super::import_dir`]
//! then builds the [`Tree`](super::Tree) from them serially, in sorted
//! order, so the result does not depend on scheduling.
//!
//! The source may be hostile (the threat model: everything on the disk is
//! the attacker's). Every lookup is relative to the directory's open file
//! descriptor and never follows a symlink (`AT_SYMLINK_NOFOLLOW`,
//! `O_NOFOLLOW`); a file that is opened is checked to be the inode the
//! walk stat'ed (device and inode number, type), so content is never taken
//! from something swapped in between; opens use `O_NONBLOCK` so a fifo
//! swapped in cannot hang the import; a file whose size changes while read
//! is an error. Paths are only rebuilt for error messages and for the
//! calls that have no fd-relative form before Linux 6.13 (`llistxattr`,
//! `lgetxattr` on symlinks, devices, fifos, sockets and empty files).
//!
//! Hard links are one inode: its content is hashed (and its xattrs read)
//! once, by whichever link the walk meets first.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, Statx, StatxFlags};

use super::{
    DirOptions, INLINE_MAX, ImportError, XattrList, XattrSource, read_xattr_list, stat_of,
};
use crate::tree::Stat;
use crate::tree::store::Stored;
use crate::verity::FsVerityDigest;
use crate::verity::VerityParams;
use crate::verity::digest;

/// A file's identity: device and inode number.
pub(super) type InodeKey = (u64, u64);

/// Index of a directory in the walk's list, in the order found.
pub(super) type DirKey = usize;

/// One directory: where it is (for messages), its own xattrs, and its
/// entries sorted by name.
#[derive(Debug)]
pub(super) struct ScannedDir {
    pub path: PathBuf,
    pub xattrs: XattrList,
    pub entries: Vec<Entry>,
}

/// One directory entry as the walk found it (kept small: a root
/// filesystem has a million).
#[derive(Debug)]
pub(super) struct Entry {
    pub name: Box<[u8]>,
    pub stat: Stat,
    pub kind: Kind,
    /// Empty for directories and external files, whose xattrs are in
    /// [`ScannedDir::xattrs`] and [`Hashed::xattrs`].
    pub xattrs: XattrList,
}

/// What the tree stores for an entry.
#[derive(Debug)]
pub(super) enum Kind {
    Directory(DirKey),
    Symlink(Vec<u8>),
    Inline(Vec<u8>),
    /// A file over [`INLINE_MAX`] bytes with one link, hashed.
    External(Box<Hashed>),
    /// A file over [`INLINE_MAX`] bytes with several links: hashed once,
    /// by [`Walk::linked`].
    Linked(InodeKey),

    /// Devices, fifos, sockets, empty regular files.
    Other,
}

/// The digest of one inode's content, its xattrs, and what the object
/// store did with it.
#[derive(Debug, Clone)]
pub(super) struct Hashed {
    pub digest: FsVerityDigest,
    pub xattrs: XattrList,
    pub stored: Option<Stored>,
}

/// The walk, shared by its tasks and by the thread that builds the tree
/// while it runs ([`Walk::take_dir`], [`Walk::linked`]).
#[derive(Debug)]
pub(super) struct Walk<'a> {
    opts: &'a DirOptions,
    params: VerityParams,
    found: Mutex<Found>,
    /// Signalled when a directory or a linked inode is added to `found`,
    /// and when the walk ends.
    ready: Condvar,
    /// Inodes with several links that some task took on.
    claimed: Mutex<HashSet<InodeKey>>,
    hashed_files: AtomicU64,
    hashed_bytes: AtomicU64,
    error: Mutex<Option<ImportError>>,
    /// A task failed or the builder gave up: remaining tasks do nothing.
    stopped: AtomicBool,
}

/// What the walk has found so far.
#[derive(Debug, Default)]
struct Found {
    /// By [`DirKey`]; `None` until read (and again once taken). `dirs[0]`
    /// is the source directory.
    dirs: Vec<Option<ScannedDir>>,
    /// Digests of inodes with several links.
    linked: HashMap<InodeKey, Hashed>,
    /// The walk has returned.
    done: bool,
    /// The builder is waiting: only then is a wake-up (a syscall) needed.
    waiting: bool,
}

/// Files and bytes hashed (each inode once).
#[derive(Debug, Clone, Copy)]
pub(super) struct Totals {
    pub hashed_files: u64,
    pub hashed_bytes: u64,
}

/// A directory still to read: its parent's open fd and its name there
/// (none for the source itself), its path, and what the parent's stat saw.
struct Pending {
    parent: Option<Arc<OwnedFd>>,
    name: CString,
    path: PathBuf,
    key: DirKey,
    expect: InodeKey,
}

const STATX_WANTED: StatxFlags = StatxFlags::BASIC_STATS;

/// The flags every open of a source entry uses.
fn open_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY
}

pub(super) fn key_of(st: &Statx) -> InodeKey {
    (
        rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
        st.stx_ino,
    )
}

fn file_type(st: &Statx) -> FileType {
    FileType::from_raw_mode(st.stx_mode.into())
}

fn errno<'p>(
    path: &'p Path,
    what: &'static str,
) -> impl FnOnce(rustix::io::Errno) -> ImportError + 'p {
    move |e| ImportError::Io {
        path: path.to_owned(),
        what,
        error: e.into(),
    }
}

fn changed(path: PathBuf, what: &'static str, how: &str) -> ImportError {
    ImportError::Io {
        path,
        what,
        error: io::Error::other(format!(
            "{how} while the directory was read; import it again once nothing changes it"
        )),
    }
}

/// `statx` of the entry itself (never a symlink's target).
fn statx_at(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<Statx> {
    rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, STATX_WANTED)
}

/// Opens `name` in `dir` without following a symlink and checks that it
/// is still the inode `expect` of type `ty` the walk stat'ed.
fn open_checked(
    dir: Option<BorrowedFd<'_>>,
    name: &CStr,
    path: &Path,
    extra: OFlags,
    expect: InodeKey,
    ty: FileType,
) -> Result<OwnedFd, ImportError> {
    let dir = dir.unwrap_or(rustix::fs::CWD);
    let fd = rustix::fs::openat(dir, name, open_flags() | extra, Mode::empty())
        .map_err(errno(path, "opening"))?;
    let st = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, STATX_WANTED)
        .map_err(errno(path, "stat"))?;
    if key_of(&st) != expect || file_type(&st) != ty {
        return Err(changed(path.to_owned(), "opening", "replaced"));
    }
    Ok(fd)
}

impl<'a> Walk<'a> {
    pub(super) fn new(opts: &'a DirOptions) -> Self {
        Walk {
            opts,
            params: crate::tree::mkcomposefs_object_params(),
            found: Mutex::new(Found {
                dirs: vec![None],
                ..Found::default()
            }),
            ready: Condvar::new(),
            claimed: Mutex::new(HashSet::new()),
            hashed_files: AtomicU64::new(0),
            hashed_bytes: AtomicU64::new(0),
            error: Mutex::new(None),
            stopped: AtomicBool::new(false),
        }
    }

    fn found(&self) -> MutexGuard<'_, Found> {
        self.found.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads `src` (whose `statx` is `root`) on the current rayon pool.
    pub(super) fn run(&self, src: &Path, root: &Statx) {
        match CString::new(src.as_os_str().as_bytes()) {
            Ok(name) => {
                let first = Pending {
                    parent: None,
                    name,
                    path: src.to_owned(),
                    key: 0,
                    expect: key_of(root),
                };
                rayon::scope(|s| self.directory(s, first));
            }
            Err(_) => self.fail(ImportError::Io {
                path: src.to_owned(),
                what: "opening",
                error: io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"),
            }),
        }
        self.found().done = true;
        self.ready.notify_all();
    }

    /// Adds to what the walk found, waking the builder if it waits.
    fn publish(&self, add: impl FnOnce(&mut Found)) {
        let mut found = self.found();
        add(&mut found);
        if found.waiting {
            self.ready.notify_all();
        }
    }

    /// Records the first error and stops the walk.
    fn fail(&self, e: ImportError) {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
        self.stop();
    }

    /// Stops the walk (tasks not started yet do nothing) and wakes the
    /// builder.
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        let _found = self.found();
        self.ready.notify_all();
    }

    /// Waits until `pick` finds something in what the walk found, or the
    /// walk stopped or ended without it (`None`).
    fn wait_for<T>(&self, mut pick: impl FnMut(&mut Found) -> Option<T>) -> Option<T> {
        let mut found = self.found();
        loop {
            if let Some(t) = pick(&mut found) {
                return Some(t);
            }
            if found.done || self.stopped.load(Ordering::Relaxed) {
                return None;
            }
            found.waiting = true;
            found = self
                .ready
                .wait(found)
                .unwrap_or_else(PoisonError::into_inner);
            found.waiting = false;
        }
    }

    /// Directory `key`, once read; `None` if the walk stopped.
    pub(super) fn take_dir(&self, key: DirKey) -> Option<ScannedDir> {
        self.wait_for(|f| f.dirs.get_mut(key).and_then(Option::take))
    }

    /// The digest and xattrs of the inode `key`, which has several links,
    /// once hashed; `None` if the walk stopped.
    pub(super) fn linked(&self, key: InodeKey) -> Option<Hashed> {
        self.wait_for(|f| f.linked.get(&key).cloned())
    }

    /// The walk's outcome, once [`Walk::run`] has returned.
    pub(super) fn finish(self) -> Result<Totals, ImportError> {
        if let Some(e) = self
            .error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(e);
        }
        Ok(Totals {
            hashed_files: self.hashed_files.into_inner(),
            hashed_bytes: self.hashed_bytes.into_inner(),
        })
    }

    /// Reads one directory, then queues its subdirectories as tasks of
    /// their own (a queue, not recursion: a hostile depth cannot exhaust
    /// the stack).
    fn directory<'s>(&'s self, s: &rayon::Scope<'s>, d: Pending) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        match self.read_directory(d) {
            Ok((fd, subdirs)) => {
                let fd = Arc::new(fd);
                for sub in subdirs {
                    let sub = Pending {
                        parent: Some(Arc::clone(&fd)),
                        ..sub
                    };
                    s.spawn(move |s| self.directory(s, sub));
                }
            }
            Err(e) => self.fail(e),
        }
    }

    /// The directory's entries, stat'ed and read in parallel; returns its
    /// fd and its subdirectories (without their parent fd, which the caller
    /// shares among them).
    fn read_directory(&self, d: Pending) -> Result<(OwnedFd, Vec<Pending>), ImportError> {
        let fd = open_checked(
            d.parent.as_deref().map(|p| p.as_fd()),
            &d.name,
            &d.path,
            OFlags::DIRECTORY,
            d.expect,
            FileType::Directory,
        )?;
        drop(d.parent);
        let xattrs = self.xattrs(XattrSource::Fd(fd.as_fd()), &d.path)?;
        let mut names = read_names(&fd).map_err(errno(&d.path, "reading directory"))?;
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let entries: Vec<Option<(Entry, Option<InodeKey>)>> = names
            .par_iter()
            .map(|name| self.entry(fd.as_fd(), &d.path, name))
            .collect::<Result<_, ImportError>>()?;
        let mut subdirs = Vec::new();
        let mut kept = Vec::with_capacity(entries.len());
        for (name, found) in names.into_iter().zip(entries) {
            let Some((entry, subdir)) = found else {
                continue;
            };
            if let (Kind::Directory(key), Some(expect)) = (&entry.kind, subdir) {
                subdirs.push(Pending {
                    parent: None,
                    path: d.path.join(OsStr::from_bytes(&entry.name)),
                    name,
                    key: *key,
                    expect,
                });
            }
            kept.push(entry);
        }
        let dir = ScannedDir {
            path: d.path,
            xattrs,
            entries: kept,
        };
        self.publish(|found| found.dirs[d.key] = Some(dir));
        Ok((fd, subdirs))
    }

    /// One entry of the directory `dir` (at `dir_path`), and for a
    /// subdirectory the inode the walk must find when it opens it; `None`
    /// for a device left out by `--skip-devices`.
    fn entry(
        &self,
        dir: BorrowedFd<'_>,
        dir_path: &Path,
        name: &CStr,
    ) -> Result<Option<(Entry, Option<InodeKey>)>, ImportError> {
        let path = || dir_path.join(OsStr::from_bytes(name.to_bytes()));
        let st = statx_at(dir, name).map_err(|e| errno(&path(), "stat")(e))?;
        let ty = file_type(&st);
        let size = st.stx_size;
        let mut xattrs = XattrList::new();
        let kind = match ty {
            FileType::Directory => {
                let mut found = self.found();
                found.dirs.push(None);
                Kind::Directory(found.dirs.len() - 1)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new())
                    .map_err(|e| errno(&path(), "reading symlink")(e))?;
                xattrs = self.xattrs(XattrSource::Path(&path()), &path())?;
                Kind::Symlink(target.into_bytes())
            }
            FileType::RegularFile if size > INLINE_MAX && st.stx_nlink <= 1 => Kind::External(
                Box::new(self.hash(dir, name, &path(), key_of(&st), size)?),
            ),
            FileType::RegularFile if size > INLINE_MAX => {
                let key = key_of(&st);
                let first = {
                    let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
                    claimed.insert(key)
                };
                if first {
                    let hashed = self.hash(dir, name, &path(), key, size)?;
                    self.publish(|found| {
                        found.linked.insert(key, hashed);
                    });
                }
                Kind::Linked(key)
            }
            FileType::RegularFile if size > 0 => {
                let path = path();
                let fd = open_checked(Some(dir), name, &path, OFlags::empty(), key_of(&st), ty)?;
                let mut content = Vec::with_capacity(INLINE_MAX as usize + 1);
                File::from(fd.try_clone().map_err(|e| ImportError::Io {
                    path: path.clone(),
                    what: "reading",
                    error: e,
                })?)
                .take(INLINE_MAX + 1)
                .read_to_end(&mut content)
                .map_err(|e| ImportError::Io {
                    path: path.clone(),
                    what: "reading",
                    error: e,
                })?;
                if content.len() as u64 != size {
                    return Err(changed(path, "reading", "the file changed size"));
                }
                xattrs = self.xattrs(XattrSource::Fd(fd.as_fd()), &path)?;
                Kind::Inline(content)
            }
            FileType::BlockDevice | FileType::CharacterDevice if self.opts.skip_devices => {
                return Ok(None);
            }
            _ => {
                xattrs = self.xattrs(XattrSource::Path(&path()), &path())?;
                Kind::Other
            }
        };
        let subdir = matches!(kind, Kind::Directory(_)).then(|| key_of(&st));
        let entry = Entry {
            name: name.to_bytes().into(),
            stat: stat_of(&st, self.opts),
            kind,
            xattrs,
        };
        Ok(Some((entry, subdir)))
    }

    /// Digest (and xattrs, and the object store copy) of the regular file
    /// `name` in `dir`, which the walk saw as inode `key` of `size` bytes.
    fn hash(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        key: InodeKey,
        size: u64,
    ) -> Result<Hashed, ImportError> {
        let fd = open_checked(
            Some(dir),
            name,
            path,
            OFlags::empty(),
            key,
            FileType::RegularFile,
        )?;
        let xattrs = self.xattrs(XattrSource::Fd(fd.as_fd()), path)?;
        let file = File::from(fd);
        let out = digest::digest_open_file_sized(&self.params, &file, size).map_err(|e| {
            ImportError::Io {
                path: path.to_owned(),
                what: "hashing",
                error: e,
            }
        })?;
        if out.descriptor.data_size != size {
            return Err(changed(path.to_owned(), "hashing", "the file changed size"));
        }
        let stored = match &self.opts.store {
            Some(store) => Some(store.insert_file(path, &out.digest)?),
            None => None,
        };
        self.hashed_files.fetch_add(1, Ordering::Relaxed);
        self.hashed_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(Hashed {
            digest: out.digest,
            xattrs,
            stored,
        })
    }

    fn xattrs(&self, from: XattrSource<'_>, path: &Path) -> Result<XattrList, ImportError> {
        if self.opts.skip_xattrs {
            return Ok(XattrList::new());
        }
        read_xattr_list(from).map_err(errno(path, "reading xattrs"))
    }
}

/// The names in the open directory `fd`, without `.` and `..`.
fn read_names(fd: &OwnedFd) -> rustix::io::Result<Vec<CString>> {
    let mut buf: Vec<MaybeUninit<u8>> = Vec::with_capacity(32 << 10);
    buf.resize(32 << 10, MaybeUninit::uninit());
    let mut dir = RawDir::new(fd, &mut buf);
    let mut names = Vec::new();
    while let Some(entry) = dir.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::super::{DirOptions, import_dir};
    use super::*;
    use crate::tree::Content;

    fn stat_of(dir: &Path, name: &str) -> (OwnedFd, CString, Statx) {
        let fd = rustix::fs::open(dir, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
        let name = CString::new(name).unwrap();
        let st = statx_at(fd.as_fd(), &name).unwrap();
        (fd, name, st)
    }

    fn refused(r: Result<OwnedFd, ImportError>) -> String {
        match r {
            Ok(_) => panic!("opened what the walk did not stat"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_file_replaced_after_the_stat_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a"), b"first").unwrap();
        std::fs::write(tmp.path().join("b"), b"second").unwrap();
        let (fd, name, st) = stat_of(tmp.path(), "a");
        std::fs::rename(tmp.path().join("b"), tmp.path().join("a")).unwrap();
        let path = tmp.path().join("a");
        let msg = refused(open_checked(
            Some(fd.as_fd()),
            &name,
            &path,
            OFlags::empty(),
            key_of(&st),
            FileType::RegularFile,
        ));
        assert!(
            msg.contains("replaced while the directory was read"),
            "{msg}"
        );
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn a_fifo_in_place_of_a_file_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("f"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let (fd, name, st) = stat_of(tmp.path(), "f");
        // The inode is the one stat'ed, but not the regular file expected.
        let msg = refused(open_checked(
            Some(fd.as_fd()),
            &name,
            &tmp.path().join("f"),
            OFlags::empty(),
            key_of(&st),
            FileType::RegularFile,
        ));
        assert!(msg.contains("replaced"), "{msg}");
    }

    #[test]
    fn a_symlink_in_place_of_a_directory_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        let (fd, name, st) = stat_of(tmp.path(), "d");
        std::fs::rename(tmp.path().join("d"), tmp.path().join("elsewhere")).unwrap();
        symlink("elsewhere", tmp.path().join("d")).unwrap();
        let msg = refused(open_checked(
            Some(fd.as_fd()),
            &name,
            &tmp.path().join("d"),
            OFlags::DIRECTORY,
            key_of(&st),
            FileType::Directory,
        ));
        // O_NOFOLLOW on a symlink: ELOOP (or ENOTDIR with O_DIRECTORY).
        assert!(msg.contains("opening"), "{msg}");
    }

    #[test]
    fn symlinks_are_entries_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(tmp.path().join("outside/sub")).unwrap();
        std::fs::write(tmp.path().join("outside/sub/secret"), [7u8; 100]).unwrap();
        std::fs::create_dir(&src).unwrap();
        symlink("../outside", src.join("out")).unwrap();
        let (tree, stats) = import_dir(&src, &DirOptions::default()).unwrap();
        let out = tree.lookup_path(b"out").unwrap();
        assert!(matches!(tree.content(out), Content::Symlink(b"../outside")));
        assert_eq!(stats.entries, 1);
        assert_eq!(stats.hashed_files, 0);
        // The source itself given as a symlink is not a directory to import.
        symlink("src", tmp.path().join("link")).unwrap();
        assert!(matches!(
            import_dir(&tmp.path().join("link"), &DirOptions::default()),
            Err(ImportError::NotADirectory(_))
        ));
    }

    #[test]
    fn hard_links_are_hashed_once_and_stay_separate_inodes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(tmp.path().join("a"), &data).unwrap();
        std::fs::hard_link(tmp.path().join("a"), tmp.path().join("d/b")).unwrap();
        std::fs::write(tmp.path().join("c"), &data).unwrap();
        let (tree, stats) = import_dir(tmp.path(), &DirOptions::default()).unwrap();
        // a and d/b share an inode: hashed once; c is another inode.
        assert_eq!(stats.hashed_files, 2);
        assert_eq!(stats.hashed_bytes, 2 * data.len() as u64);
        let want =
            crate::verity::digest::digest_bytes(&crate::tree::mkcomposefs_object_params(), &data);
        for p in [&b"a"[..], b"d/b", b"c"] {
            let id = tree.lookup_path(p).unwrap();
            assert!(
                matches!(tree.content(id), Content::External { digest: Some(d), .. } if d == want)
            );
            // mkcomposefs gives every link an inode of its own.
            assert_eq!(tree.stat(id).nlink, 1);
        }
        assert_ne!(tree.lookup_path(b"a"), tree.lookup_path(b"d/b"));
    }

    #[test]
    fn a_deep_tree_does_not_exhaust_the_stack() {
        // Far deeper than PATH_MAX allows as one path: only fd-relative
        // calls reach the bottom, and the walk is a queue, not recursion.
        const DEPTH: u64 = 3000;
        let tmp = tempfile::tempdir().unwrap();
        let mut fd = rustix::fs::open(tmp.path(), OFlags::DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..DEPTH {
            rustix::fs::mkdirat(&fd, c"dd", Mode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(&fd, c"dd", OFlags::DIRECTORY, Mode::empty()).unwrap();
        }
        rustix::fs::mkdirat(&fd, c"leaf", Mode::from_raw_mode(0o755)).unwrap();
        let opts = DirOptions {
            threads: Some(2),
            ..DirOptions::default()
        };
        let (tree, stats) = import_dir(tmp.path(), &opts).unwrap();
        assert_eq!(stats.entries, DEPTH + 1);
        assert_eq!(tree.inode_count() as u64, DEPTH + 2);
    }

    #[test]
    fn a_file_shorter_than_its_stat_stops_the_import_with_its_path() {
        // sysfs attributes stat as 4096 bytes and read as a few: a file
        // that "changed size while read", without a race to arrange. The
        // error has to reach the caller while the tree is being built.
        let src = Path::new("/sys/kernel/mm/transparent_hugepage");
        let err = import_dir(src, &DirOptions::default())
            .map(|_| ())
            .expect_err("sysfs files are not what their stat says");
        let msg = err.to_string();
        assert!(
            msg.starts_with("/sys/kernel/mm/transparent_hugepage/"),
            "{msg}"
        );
        assert!(
            msg.contains("the file changed size while the directory was read"),
            "{msg}"
        );
    }
}
