//! What a path in the repository turned out to be, and why it was not
//! used.

use std::fmt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Stat};
use rustix::io::Errno;

use crate::errno::errno_name;

/// Deepest directory tree [`Dir::remove_tree`] descends into (an attacker
/// can nest directories without bound; this keeps the descriptors bounded).
pub const MAX_TREE_DEPTH: usize = 512;

/// What kind of file a path names (`st_mode & S_IFMT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO.
    Fifo,
    /// A socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A type the kernel did not report.
    Unknown,
}

impl FileKind {
    pub(super) fn of(t: FileType) -> FileKind {
        match t {
            FileType::RegularFile => FileKind::Regular,
            FileType::Directory => FileKind::Directory,
            FileType::Symlink => FileKind::Symlink,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            FileType::Unknown => FileKind::Unknown,
        }
    }

    pub(super) fn of_stat(st: &Stat) -> FileKind {
        FileKind::of(FileType::from_raw_mode(st.st_mode))
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "regular file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "FIFO",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Unknown => "file of unknown type",
        })
    }
}

/// Why a path in the repository was not used. The cause is in the message
/// (no `#[source]`), so it is printed once.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// A system call on the path failed.
    #[error("{path}: {action}: {} ({})", errno_name(*errno), std::io::Error::from(*errno))]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// What the kernel said.
        errno: Errno,
    },
    /// A symlink where the layout has none: never followed.
    #[error(
        "{path} is a symlink{}, where the repository has none: sealroot never follows it and \
         did nothing through it; find out who planted it and remove it (`sealroot repo fsck` \
         lists every such entry)",
        target.as_ref().map(|t| format!(" (to {})", t.display())).unwrap_or_default()
    )]
    Symlink {
        /// The symlink.
        path: PathBuf,
        /// Where it points, if readable (for the message only).
        target: Option<PathBuf>,
    },
    /// Another file type than the layout has there: never opened.
    #[error(
        "{path} is a {found} where the repository has a {expected}: sealroot never opens it \
         and did nothing through it; remove it (`sealroot repo fsck` lists every such entry)"
    )]
    WrongType {
        /// The path.
        path: PathBuf,
        /// What it is.
        found: FileKind,
        /// What the layout has there.
        expected: FileKind,
    },
    /// A file with more than one name, which the repository never
    /// creates: acting on it could change a file outside.
    #[error(
        "{path} has {nlink} hard links, but the repository never creates one: another name \
         (possibly outside the repository, on the same filesystem) shares this file, and \
         sealroot does not act on it; remove this name (`sealroot repo fsck` lists every such \
         entry)"
    )]
    HardLinked {
        /// The path.
        path: PathBuf,
        /// Its link count.
        nlink: u64,
    },
    /// A name that is not a plain relative path (`..`, `.`, absolute,
    /// empty).
    #[error("{path}: not a path inside the repository ({reason})")]
    BadName {
        /// The name as given.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A directory tree deeper than [`MAX_TREE_DEPTH`].
    #[error(
        "{path}: nested deeper than {MAX_TREE_DEPTH} directories; sealroot stops there \
         (remove the tree by hand)"
    )]
    TooDeep {
        /// The directory where descending stopped.
        path: PathBuf,
    },
}

impl PathError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PathError::Io { path, .. }
            | PathError::Symlink { path, .. }
            | PathError::WrongType { path, .. }
            | PathError::HardLinked { path, .. }
            | PathError::BadName { path, .. }
            | PathError::TooDeep { path } => path,
        }
    }

    /// The message without the leading path (for reports that print the
    /// path in a column of their own).
    pub fn reason(&self) -> String {
        let full = self.to_string();
        let path = self.path().display().to_string();
        match full.strip_prefix(&path) {
            Some(rest) => rest.trim_start_matches(':').trim_start().to_owned(),
            None => full,
        }
    }

    /// The errno of an I/O failure (e.g. `ENOKEY` when the kernel refused
    /// a file's builtin fs-verity signature at open).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            PathError::Io { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Whether this is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            PathError::Io {
                errno: Errno::NOENT,
                ..
            }
        )
    }

    /// Whether the path is unsafe to use (a symlink, special file or hard
    /// link where the layout has none), as opposed to an I/O failure.
    pub fn is_unsafe(&self) -> bool {
        matches!(
            self,
            PathError::Symlink { .. } | PathError::WrongType { .. } | PathError::HardLinked { .. }
        )
    }
}

/// `Ok(None)` for "not found".
pub fn optional<T>(r: Result<T, PathError>) -> Result<Option<T>, PathError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
