//! What a layer says to do to the filesystem: the normalised, validated form
//! of its tar members.

use std::collections::BTreeMap;
use std::fmt;

use super::path::EntryPath;

/// A modification time with sub-second precision (PAX `mtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp {
    /// Seconds since the epoch.
    pub sec: i64,
    /// 0..1_000_000_000, counting forward from `sec`.
    pub nsec: u32,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.sec, self.nsec)
    }
}

/// Ownership, permissions, time and extended attributes of one inode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Metadata {
    /// Permission bits including setuid, setgid and sticky (`0o7777`); the
    /// file type is in [`EntryKind`].
    pub permissions: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Extended attributes by full name (`user.foo`, `security.capability`).
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The kind of inode an entry creates. `F` is what a regular file carries:
/// its size while the layer is being read ([`u64`]), its stored content
/// after import (`oci::sink::FileContent`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryKind<F> {
    /// A regular file.
    File(F),
    /// A directory.
    Directory,
    /// Target bytes exactly as in the layer; never resolved at import.
    Symlink(Vec<u8>),
    /// Another path of this or an earlier layer; shares its inode.
    Hardlink(EntryPath),
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A FIFO.
    Fifo,
}

impl<F> EntryKind<F> {
    /// `ls -l`-style type letter, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            EntryKind::File(_) => "regular file",
            EntryKind::Directory => "directory",
            EntryKind::Symlink(_) => "symlink",
            EntryKind::Hardlink(_) => "hardlink",
            EntryKind::CharDevice { .. } => "character device",
            EntryKind::BlockDevice { .. } => "block device",
            EntryKind::Fifo => "fifo",
        }
    }

    /// Replaces the file payload.
    pub fn map_file<G>(self, f: impl FnOnce(F) -> G) -> EntryKind<G> {
        match self {
            EntryKind::File(x) => EntryKind::File(f(x)),
            EntryKind::Directory => EntryKind::Directory,
            EntryKind::Symlink(t) => EntryKind::Symlink(t),
            EntryKind::Hardlink(t) => EntryKind::Hardlink(t),
            EntryKind::CharDevice { major, minor } => EntryKind::CharDevice { major, minor },
            EntryKind::BlockDevice { major, minor } => EntryKind::BlockDevice { major, minor },
            EntryKind::Fifo => EntryKind::Fifo,
        }
    }
}

/// One change a layer makes (image-spec `layer.md`, "Representing Changes").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change<F> {
    /// Create or replace the inode at `path` (for a directory that already
    /// exists: update its metadata, keep its children).
    Add {
        /// Where.
        path: EntryPath,
        /// What kind of inode.
        kind: EntryKind<F>,
        /// Ignored for hardlinks, which share their target's inode.
        meta: Metadata,
    },
    /// `.wh.<name>`: remove `path` and everything below it from lower layers.
    Whiteout(EntryPath),
    /// `.wh..wh..opq` in `dir`: hide everything lower layers put in `dir`.
    Opaque(EntryPath),
}

impl<F> Change<F> {
    /// The path this change is about.
    pub fn path(&self) -> &EntryPath {
        match self {
            Change::Add { path, .. } | Change::Whiteout(path) | Change::Opaque(path) => path,
        }
    }
}
