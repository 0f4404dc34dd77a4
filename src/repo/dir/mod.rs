//! Paths inside the repository, resolved so that nothing on the disk can
//! lead a host tool out of it.
//!
//! Everything in the repository is the attacker's (docs/repository.md,
//! "Path resolution, hard links and locking"): a symlink planted at `tmp/`
//! or `objects/ab/` would steer a tool running as root (`sealroot repo gc`
//! from a systemd timer) into removing, writing or reading files elsewhere.
//! So every access goes through a [`Dir`], a directory handle opened with
//! `O_NOFOLLOW`:
//!
//! - paths below it are resolved with `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` (fs/namei.c: any symlink
//!   on the way is `ELOOP`, any way out is `EXDEV`), the last component
//!   with `O_NOFOLLOW`;
//! - changes (create, rename, unlink, symlink, link) are `*at` calls by a
//!   single name relative to a verified directory handle;
//! - a file is opened only when it is a regular file with one link, and
//!   non-blocking, so a FIFO or device where a file belongs can neither
//!   hang a tool nor be opened at all (its type is checked on an `O_PATH`
//!   handle first);
//! - a symlink, a special file, or a regular file with more than one hard
//!   link is a [`PathError`] naming the path: never followed, never
//!   skipped.
//!
//! The layout's own symlinks (`by-config/`, `by-image/`) are read with
//! [`Dir::read_link`] and compared, never followed.
//!
//! No host dependencies: rustix only, so the initramfs can use it too.

use std::ffi::{OsStr, OsString};

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags, Stat};
use rustix::io::Errno;

mod error;
mod lock;
mod temp;

pub use error::{FileKind, MAX_TREE_DEPTH, PathError, optional};
pub use lock::{LockHolder, LockMode};
pub use temp::TempFile;

/// `openat2` resolution for every path below a [`Dir`].
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// What `lstat` says about an entry (never about a symlink's target).
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// The file type.
    pub kind: FileKind,
    /// The link count.
    pub nlink: u64,
    /// The size in bytes.
    pub size: u64,
    /// The device it is on.
    pub dev: u64,
    /// Its inode number.
    pub ino: u64,
}

impl Meta {
    // The stat field types differ between architectures (u32 on some).
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &Stat) -> Meta {
        Meta {
            kind: FileKind::of_stat(st),
            nlink: st.st_nlink as u64,
            size: st.st_size as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's name.
    pub name: OsString,
    /// Its type, as the directory reports it.
    pub kind: FileKind,
}

impl Entry {
    /// The name as UTF-8 (lossy: repository names are ASCII).
    pub fn name_lossy(&self) -> String {
        self.name.to_string_lossy().into_owned()
    }
}

/// A directory of the repository (or the repository itself), opened
/// without following a symlink. Cheap to clone (the descriptor is shared).
#[derive(Debug, Clone)]
pub struct Dir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

/// Checks that `rel` only goes down: no root, `.`, `..` or empty path.
fn check_rel(base: &Path, rel: &Path) -> Result<(), PathError> {
    let bad = |reason| PathError::BadName {
        path: base.join(rel),
        reason,
    };
    if rel.as_os_str().is_empty() {
        return Err(bad("empty path"));
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return Err(bad("`..`")),
            Component::CurDir => return Err(bad("`.`")),
            Component::RootDir | Component::Prefix(_) => return Err(bad("absolute path")),
        }
    }
    Ok(())
}

/// Checks that `name` is one path component.
fn check_name(base: &Path, name: &OsStr) -> Result<(), PathError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(PathError::BadName {
            path: base.join(name),
            reason: "not a single file name",
        });
    }
    Ok(())
}

/// A name no other writer in this process or another one picks.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{:x}-{n:x}-{nanos:x}", std::process::id())
}

impl Dir {
    /// Opens the directory `path` as the caller names it: the components
    /// leading to it are resolved normally (the caller chose them), the
    /// last one must be a directory, not a symlink.
    pub fn open_path(path: &Path) -> Result<Dir, PathError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => Ok(Dir {
                fd: Arc::new(fd),
                path: path.to_owned(),
            }),
            Err(errno @ (Errno::LOOP | Errno::NOTDIR)) => Err(Self::explain_leaf(
                rustix::fs::CWD,
                path,
                path,
                errno,
                "cannot open",
            )),
            Err(errno) => Err(PathError::Io {
                path: path.to_owned(),
                action: "cannot open",
                errno,
            }),
        }
    }

    /// Opens a directory the caller named, following symlinks all the way
    /// (for a sysroot or a repository's parent, which are the caller's).
    pub fn open_followed(path: &Path) -> Result<Dir, PathError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::open(path, flags, Mode::empty())
            .map(|fd| Dir {
                fd: Arc::new(fd),
                path: path.to_owned(),
            })
            .map_err(|errno| PathError::Io {
                path: path.to_owned(),
                action: "cannot open",
                errno,
            })
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` below this directory, for messages.
    pub fn display(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// The descriptor, for `*at` calls the module does not wrap.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn io(&self, rel: impl AsRef<Path>, action: &'static str) -> impl Fn(Errno) -> PathError {
        let path = self.display(rel);
        move |errno| PathError::Io {
            path: path.clone(),
            action,
            errno,
        }
    }

    /// `openat2` below this directory, retried on `EAGAIN` (a concurrent
    /// rename made the kernel unsure the path stayed beneath).
    fn resolve(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &*self.fd,
                rel,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                Err(Errno::AGAIN) if tries < 8 => tries += 1,
                other => return other,
            }
        }
    }

    /// Turns a failed resolution of `rel` into the precise error: which
    /// component is a symlink, or not a directory.
    fn explain(&self, rel: &Path, errno: Errno, action: &'static str) -> PathError {
        if matches!(errno, Errno::LOOP | Errno::NOTDIR | Errno::XDEV) {
            let mut prefix = PathBuf::new();
            let count = rel.components().count();
            for (i, c) in rel.components().enumerate() {
                prefix.push(c);
                let Ok(st) = rustix::fs::statat(&*self.fd, &prefix, AtFlags::SYMLINK_NOFOLLOW)
                else {
                    break;
                };
                match FileKind::of_stat(&st) {
                    FileKind::Symlink => {
                        return PathError::Symlink {
                            path: self.display(&prefix),
                            target: self.link_target(&prefix),
                        };
                    }
                    FileKind::Directory => {}
                    found if i + 1 < count => {
                        return PathError::WrongType {
                            path: self.display(&prefix),
                            found,
                            expected: FileKind::Directory,
                        };
                    }
                    _ => {}
                }
            }
        }
        PathError::Io {
            path: self.display(rel),
            action,
            errno,
        }
    }

    /// `explain` for a path opened without `openat2` (the caller's own).
    fn explain_leaf(
        at: impl AsFd,
        path: &Path,
        display: &Path,
        errno: Errno,
        action: &'static str,
    ) -> PathError {
        match rustix::fs::statat(&at, path, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileKind::of_stat(&st) == FileKind::Symlink => PathError::Symlink {
                path: display.to_owned(),
                target: rustix::fs::readlinkat(&at, path, Vec::new())
                    .ok()
                    .map(|t| PathBuf::from(OsStr::from_bytes(t.as_bytes()))),
            },
            Ok(st) => PathError::WrongType {
                path: display.to_owned(),
                found: FileKind::of_stat(&st),
                expected: FileKind::Directory,
            },
            Err(_) => PathError::Io {
                path: display.to_owned(),
                action,
                errno,
            },
        }
    }

    /// The target of the symlink `rel` (whose parents are known to be
    /// directories), for messages.
    fn link_target(&self, rel: &Path) -> Option<PathBuf> {
        rustix::fs::readlinkat(&*self.fd, rel, Vec::new())
            .ok()
            .map(|t| PathBuf::from(OsStr::from_bytes(t.as_bytes())))
    }

    /// Opens the directory `rel` below this one.
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<Dir, PathError> {
        let rel = rel.as_ref();
        check_rel(&self.path, rel)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
        match self.resolve(rel, flags) {
            Ok(fd) => Ok(Dir {
                fd: Arc::new(fd),
                path: self.display(rel),
            }),
            Err(errno) => Err(self.explain_dir(rel, errno)),
        }
    }

    fn explain_dir(&self, rel: &Path, errno: Errno) -> PathError {
        match self.explain(rel, errno, "cannot open directory") {
            // The last component exists but is no directory.
            PathError::Io {
                errno: Errno::NOTDIR,
                ..
            } => match self.stat(rel) {
                Ok(Some(m)) => PathError::WrongType {
                    path: self.display(rel),
                    found: m.kind,
                    expected: FileKind::Directory,
                },
                _ => self.io(rel, "cannot open directory")(errno),
            },
            e => e,
        }
    }

    /// `lstat` of `rel` (`None` if it does not exist): the entry itself,
    /// never a symlink's target. The directories on the way must be real
    /// directories.
    pub fn stat(&self, rel: impl AsRef<Path>) -> Result<Option<Meta>, PathError> {
        let rel = rel.as_ref();
        check_rel(&self.path, rel)?;
        // O_PATH | O_NOFOLLOW gives a handle on a trailing symlink itself
        // (openat2(2), RESOLVE_NO_SYMLINKS), and opens nothing: a FIFO or
        // device is not opened by an O_PATH handle.
        match self.resolve(rel, OFlags::PATH | OFlags::NOFOLLOW) {
            Ok(fd) => rustix::fs::fstat(&fd)
                .map(|st| Some(Meta::of(&st)))
                .map_err(self.io(rel, "cannot inspect")),
            Err(Errno::NOENT) => Ok(None),
            Err(errno) => Err(self.explain(rel, errno, "cannot inspect")),
        }
    }

    /// Opens the regular file `rel` read-only. Refused: a symlink, any
    /// other type of file (never opened: its type is checked first), and a
    /// file with more than one hard link (the repository creates none).
    pub fn open_file(&self, rel: impl AsRef<Path>) -> Result<File, PathError> {
        self.open_regular(rel.as_ref(), false)
    }

    /// [`Dir::open_file`], but a regular file with several hard links is
    /// accepted: for stores whose objects are hard-linked by design (an
    /// ostree repository and its deployments' checkouts), read-only.
    pub fn open_file_linked(&self, rel: impl AsRef<Path>) -> Result<File, PathError> {
        self.open_regular(rel.as_ref(), true)
    }

    fn open_regular(&self, rel: &Path, linked: bool) -> Result<File, PathError> {
        let require = |meta: &Meta| match meta.kind {
            FileKind::Regular if linked => Ok(()),
            _ => self.require_file(rel, meta),
        };
        let meta = self
            .stat(rel)?
            .ok_or_else(|| self.io(rel, "cannot open")(Errno::NOENT))?;
        require(&meta)?;
        let fd = self
            .resolve(
                rel,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY,
            )
            .map_err(|errno| self.explain(rel, errno, "cannot open"))?;
        let st = rustix::fs::fstat(&fd).map_err(self.io(rel, "cannot inspect"))?;
        let now = Meta::of(&st);
        if (now.dev, now.ino) != (meta.dev, meta.ino) {
            // Replaced between the two looks: check what is open now.
            require(&now)?;
        }
        // O_NONBLOCK was only for the open; regular-file reads ignore it,
        // but leave the descriptor as a plain one.
        rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(self.io(rel, "cannot open"))?;
        Ok(File::from(fd))
    }

    /// A regular file with one link, or the error that says what it is.
    pub fn require_file(&self, rel: impl AsRef<Path>, meta: &Meta) -> Result<(), PathError> {
        let rel = rel.as_ref();
        match meta.kind {
            FileKind::Regular if meta.nlink > 1 => Err(PathError::HardLinked {
                path: self.display(rel),
                nlink: meta.nlink,
            }),
            FileKind::Regular => Ok(()),
            found => Err(self.unexpected(rel, found, FileKind::Regular)),
        }
    }

    /// Reads the regular file `rel` whole, refusing more than `limit`
    /// bytes.
    pub fn read_file(&self, rel: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>, PathError> {
        let rel = rel.as_ref();
        let f = self.open_file(rel)?;
        read_limited(f, limit).map_err(|e| match e {
            None => PathError::Io {
                path: self.display(rel),
                action: "larger than the limit for this file",
                errno: Errno::FBIG,
            },
            Some(errno) => self.io(rel, "cannot read")(errno),
        })
    }

    /// The target of the symlink `rel` (not followed). Anything but a
    /// symlink is a [`PathError::WrongType`].
    pub fn read_link(&self, rel: impl AsRef<Path>) -> Result<PathBuf, PathError> {
        let rel = rel.as_ref();
        let (parent, name) = self.parent_of(rel)?;
        match rustix::fs::readlinkat(parent.fd(), name, Vec::new()) {
            Ok(t) => Ok(PathBuf::from(OsStr::from_bytes(t.as_bytes()))),
            Err(Errno::INVAL) => {
                let found = parent
                    .stat(name)?
                    .map(|m| m.kind)
                    .unwrap_or(FileKind::Unknown);
                Err(PathError::WrongType {
                    path: self.display(rel),
                    found,
                    expected: FileKind::Symlink,
                })
            }
            Err(errno) => Err(self.io(rel, "cannot read symlink")(errno)),
        }
    }

    /// The directory holding `rel` (opened safely) and `rel`'s last name.
    pub fn parent_of<'r>(&self, rel: &'r Path) -> Result<(Dir, &'r OsStr), PathError> {
        check_rel(&self.path, rel)?;
        let name = rel.file_name().ok_or_else(|| PathError::BadName {
            path: self.display(rel),
            reason: "no file name",
        })?;
        match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => Ok((self.open_dir(p)?, name)),
            _ => Ok((self.clone(), name)),
        }
    }

    /// The error for entry `name` of this directory, found to be `found`
    /// where the layout has a `expected` (a symlink's target is read for
    /// the message, never followed).
    pub fn unexpected(
        &self,
        name: impl AsRef<Path>,
        found: FileKind,
        expected: FileKind,
    ) -> PathError {
        let name = name.as_ref();
        match found {
            FileKind::Symlink => PathError::Symlink {
                path: self.display(name),
                target: self.link_target(name),
            },
            found => PathError::WrongType {
                path: self.display(name),
                found,
                expected,
            },
        }
    }

    /// The entries of this directory (without `.` and `..`), sorted by
    /// name, with their types (never followed).
    pub fn entries(&self) -> Result<Vec<Entry>, PathError> {
        let io = self.io("", "cannot list");
        let mut out = Vec::new();
        for e in rustix::fs::Dir::read_from(&*self.fd).map_err(&io)? {
            let e = e.map_err(&io)?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name).to_owned();
            let kind = match FileKind::of(e.file_type()) {
                // DT_UNKNOWN: some filesystems leave the type to stat.
                FileKind::Unknown => {
                    match rustix::fs::statat(&*self.fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => FileKind::of_stat(&st),
                        Err(Errno::NOENT) => continue,
                        Err(errno) => return Err(self.io(&name, "cannot inspect")(errno)),
                    }
                }
                k => k,
            };
            out.push(Entry { name, kind });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Creates directory `name` here with `mode` (exactly, whatever the
    /// umask); `false` if something named so exists already (check it
    /// with [`Dir::open_dir`]).
    pub fn create_dir(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<bool, PathError> {
        let name = name.as_ref();
        check_name(&self.path, name)?;
        match rustix::fs::mkdirat(&*self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => {
                let d = self.open_dir(Path::new(name))?;
                d.set_mode(mode)?;
                Ok(true)
            }
            Err(Errno::EXIST) => Ok(false),
            Err(errno) => Err(self.io(name, "cannot create directory")(errno)),
        }
    }

    /// Opens the directory `rel`, creating what is missing (mode 0755),
    /// one verified component at a time.
    pub fn ensure_dir(&self, rel: impl AsRef<Path>) -> Result<Dir, PathError> {
        let rel = rel.as_ref();
        check_rel(&self.path, rel)?;
        let mut dir = self.clone();
        for c in rel.components() {
            dir.create_dir(c.as_os_str(), 0o755)?;
            dir = dir.open_dir(Path::new(c.as_os_str()))?;
        }
        Ok(dir)
    }

    /// Sets this directory's mode.
    pub fn set_mode(&self, mode: u32) -> Result<(), PathError> {
        rustix::fs::fchmod(&*self.fd, Mode::from_raw_mode(mode))
            .map_err(self.io("", "cannot set the mode of"))
    }

    /// Creates a new directory with a unique name starting with `prefix`
    /// here; returns its name.
    pub fn create_temp_dir(&self, prefix: &str, mode: u32) -> Result<String, PathError> {
        loop {
            let name = unique_name(prefix);
            if self.create_dir(&name, mode)? {
                return Ok(name);
            }
        }
    }

    /// Renames `from` (a name here) to `to` in `to_dir`, replacing what is
    /// there (a file or symlink is replaced, never followed).
    pub fn rename(
        &self,
        from: impl AsRef<OsStr>,
        to_dir: &Dir,
        to: impl AsRef<OsStr>,
    ) -> Result<(), PathError> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(&self.path, from)?;
        check_name(&to_dir.path, to)?;
        rustix::fs::renameat_with(&*self.fd, from, &*to_dir.fd, to, RenameFlags::empty())
            .map_err(to_dir.io(to, "cannot rename into place"))
    }

    /// Creates the symlink `name` -> `target` here.
    pub fn symlink(&self, target: &Path, name: impl AsRef<OsStr>) -> Result<(), PathError> {
        let name = name.as_ref();
        check_name(&self.path, name)?;
        rustix::fs::symlinkat(target, &*self.fd, name)
            .map_err(self.io(name, "cannot create symlink"))
    }

    /// Removes the non-directory `name` here (a symlink itself, never its
    /// target). Missing is fine.
    pub fn unlink(&self, name: impl AsRef<OsStr>) -> Result<(), PathError> {
        let name = name.as_ref();
        check_name(&self.path, name)?;
        match rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(self.io(name, "cannot remove")(errno)),
        }
    }

    /// Removes the directory `name` here and everything in it, descending
    /// only into real directories (symlinks inside are removed, never
    /// followed). `name` itself must be a directory.
    pub fn remove_tree(&self, name: impl AsRef<OsStr>) -> Result<(), PathError> {
        /// A directory being emptied: its parent, itself, its name in the
        /// parent, and the subdirectories still to empty.
        struct Frame {
            parent: Dir,
            dir: Dir,
            name: OsString,
            subdirs: Vec<OsString>,
        }
        fn enter(parent: Dir, name: OsString) -> Result<Frame, PathError> {
            let dir = parent.open_dir(Path::new(&name))?;
            let mut subdirs = Vec::new();
            for e in dir.entries()? {
                if e.kind == FileKind::Directory {
                    subdirs.push(e.name);
                } else {
                    dir.unlink(&e.name)?;
                }
            }
            Ok(Frame {
                parent,
                dir,
                name,
                subdirs,
            })
        }
        let name = name.as_ref();
        check_name(&self.path, name)?;
        let mut stack = vec![enter(self.clone(), name.to_owned())?];
        while let Some(top) = stack.last_mut() {
            if let Some(sub) = top.subdirs.pop() {
                let parent = top.dir.clone();
                if stack.len() >= MAX_TREE_DEPTH {
                    return Err(PathError::TooDeep {
                        path: parent.display(&sub),
                    });
                }
                stack.push(enter(parent, sub)?);
                continue;
            }
            let done = stack.pop();
            if let Some(f) = done {
                drop(f.dir);
                match rustix::fs::unlinkat(f.parent.fd(), &f.name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(errno) => {
                        return Err(f.parent.io(&f.name, "cannot remove directory")(errno));
                    }
                }
            }
        }
        Ok(())
    }

    /// `fsync` of this directory (renames into it are durable).
    pub fn sync(&self) -> Result<(), PathError> {
        rustix::fs::fsync(&*self.fd).map_err(self.io("", "cannot sync directory"))
    }

    /// `syncfs` of the filesystem this directory is on.
    pub fn syncfs(&self) -> Result<(), PathError> {
        rustix::fs::syncfs(&*self.fd).map_err(self.io("", "cannot sync the filesystem of"))
    }
}

/// Reads `f` whole: `Err(None)` when it holds more than `limit` bytes.
fn read_limited(f: File, limit: u64) -> Result<Vec<u8>, Option<Errno>> {
    let mut out = Vec::new();
    f.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Some(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
    if out.len() as u64 > limit {
        return Err(None);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_only_go_down() {
        let base = Path::new("/r");
        for bad in ["", "/etc", "../x", "a/../b", "./a"] {
            assert!(check_rel(base, Path::new(bad)).is_err(), "{bad}");
        }
        for good in ["a", "a/b", "objects/ab/cdef"] {
            check_rel(base, Path::new(good)).unwrap();
        }
        for bad in ["", ".", "..", "a/b"] {
            assert!(check_name(base, OsStr::new(bad)).is_err(), "{bad}");
        }
    }
}
