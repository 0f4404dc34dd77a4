//! The in-memory filesystem every importer fills and every writer reads.
//!
//! Importers (the composefs-dump(5) parser, the directory walker, OCI layer
//! application) build a [`Tree`]; writers (EROFS, dumpfile) read it. The
//! model is the one of composefs (`libcomposefs/lcfs-writer.c`): inodes with
//! full stat metadata and xattrs; directory entries naming them; regular
//! files whose content is either inline (small files) or an external object
//! named by its fs-verity digest; hardlinks as several entries naming one
//! inode.
//!
//! Memory: inodes live in one arena (`Vec`) and are addressed by a 4-byte
//! [`InodeId`]; names, inline content and payloads live in one byte arena;
//! xattr lists are interned ([`xattr`]). An inode costs about 80 bytes plus
//! 16 bytes per directory entry, so a 1,000,000-entry tree fits in ~100 MB.
//!
//! Hardlinks: an inode named by several entries has one *primary* entry,
//! where writers place the inode (the EROFS inode slot, the full dumpfile
//! line); the other entries are links to it. The primary is a property of
//! the tree's shape, not of the order it was filled in: the first entry in
//! depth-first, name-sorted order — composefs' canonical order, the one
//! `composefs-info dump` prints and composefs-rs places inodes by
//! (`collect_tree` in `crates/composefs/src/erofs/writer.rs`) — unless an
//! importer *pins* another entry ([`Tree::pin_primary`]: a dumpfile's
//! non-`@` line, which `mkcomposefs` serializes the inode at). So the same
//! filesystem, whatever the order of the tar members or layers that built
//! it, gives the same image ([`links`]).

#[cfg(feature = "host")]
pub mod fromdir;
mod links;
#[cfg(feature = "host")]
pub mod store;
mod validate;
mod xattr;

pub use links::Primaries;
pub use validate::{
    MAX_INLINE_CONTENT, MAX_NAME_LEN, MAX_SYMLINK_LEN, MAX_XATTR_NAME_LEN, MAX_XATTR_VALUE_LEN,
    validate_name,
};
pub use xattr::XattrSetId;

use crate::verity::{FsVerityDigest, HashAlgorithm, VerityParams};
use xattr::XattrPool;

/// The unit [`DigestRef`] counts in: a sha256 digest's length, of which a
/// sha512 digest is two.
const DIGEST_UNIT: usize = 32;

/// The fs-verity parameters `mkcomposefs` gives external content objects
/// (sha256, 4096-byte blocks: `libcomposefs` computes no other), used by
/// the directory importer and its `--digest-store` ([`fromdir`],
/// [`store`]). A repository's objects use the algorithm its `repo.json`
/// records (`crate::repo::RepoConfig::objects`), and the initramfs takes
/// it from the signed EROFS (`crate::erofs::objects`): neither uses this.
pub fn mkcomposefs_object_params() -> VerityParams {
    VerityParams::sha256()
}

/// `S_IFMT` and the file type bits of `st_mode` (`include/uapi/linux/stat.h`).
pub mod mode {
    /// Mask of the file type bits.
    pub const S_IFMT: u32 = 0o170000;
    /// Socket.
    pub const S_IFSOCK: u32 = 0o140000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120000;
    /// Regular file.
    pub const S_IFREG: u32 = 0o100000;
    /// Block device.
    pub const S_IFBLK: u32 = 0o060000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040000;
    /// Character device.
    pub const S_IFCHR: u32 = 0o020000;
    /// FIFO.
    pub const S_IFIFO: u32 = 0o010000;
}

/// Errors building or validating a tree. Each names the offending path or
/// name when one is known.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A file name that is empty, over 255 bytes, `.` or `..`, or has `/` or
    /// NUL.
    #[error("invalid file name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A mode whose file type bits name no type.
    #[error(
        "invalid mode {mode:o}: the file type bits name no file type (regular, directory, symlink, block/char device, fifo, socket)"
    )]
    InvalidMode {
        /// The mode.
        mode: u32,
    },
    /// A path component that is not a directory.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// The name is taken.
    #[error("{path}: already exists")]
    Exists {
        /// The path.
        path: String,
    },
    /// No such path.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path.
        path: String,
    },
    /// A hard link to a directory.
    #[error("{path}: directories cannot be hardlinked")]
    DirectoryHardlink {
        /// The path.
        path: String,
    },
    /// A hard link to itself.
    #[error("{path}: a hardlink cannot point to itself")]
    SelfHardlink {
        /// The path.
        path: String,
    },
    /// A symlink target composefs cannot store.
    #[error("invalid symlink target {target:?}: {reason}")]
    InvalidSymlink {
        /// The target.
        target: String,
        /// Why.
        reason: &'static str,
    },
    /// An xattr name composefs cannot store.
    #[error("invalid xattr name {name:?}: {reason}")]
    InvalidXattrName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An xattr value over the limit.
    #[error("xattr {name:?}: value is {len} bytes, the maximum is {MAX_XATTR_VALUE_LEN}")]
    XattrValueTooLong {
        /// The xattr.
        name: String,
        /// Its value's length.
        len: usize,
    },
    /// More xattr bytes on one inode than allowed.
    #[error("too many or too large xattrs on one file: about {size} bytes, the maximum is {max}")]
    XattrsTooLarge {
        /// Bytes needed (about).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Inline content over the limit.
    #[error(
        "inline content is {len} bytes, the maximum is {MAX_INLINE_CONTENT}; store larger files as external objects"
    )]
    InlineTooLarge {
        /// The content's length.
        len: usize,
    },
    /// More than 2^32 inodes.
    #[error("inode table full (more than 2^32 inodes)")]
    TooManyInodes,
    /// An entry that cannot be made its inode's primary one.
    #[error("{path}: cannot pin it as its inode's primary entry: {reason}")]
    Pin {
        /// The entry.
        path: String,
        /// Why.
        reason: &'static str,
    },
}

/// Seconds and nanoseconds since the epoch, as in `struct timespec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds, below 10^9.
    pub nsec: u32,
}

/// The stat fields composefs stores.
///
/// `size` is the file size for regular files; for directories and symlinks
/// writers compute their own (a symlink's is its target length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stat {
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Device number of a device node.
    pub rdev: u64,
    /// Size in bytes of a regular file.
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
}

impl Stat {
    /// The file type, if the mode names one.
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }
}

/// The file types composefs (and the kernel) knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Block device.
    BlockDevice,
    /// Character device.
    CharDevice,
    /// FIFO.
    Fifo,
    /// Socket.
    Socket,
}

impl FileType {
    /// From `st_mode`'s file type bits.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        use mode::*;
        Some(match mode & S_IFMT {
            S_IFREG => FileType::Regular,
            S_IFDIR => FileType::Directory,
            S_IFLNK => FileType::Symlink,
            S_IFBLK => FileType::BlockDevice,
            S_IFCHR => FileType::CharDevice,
            S_IFIFO => FileType::Fifo,
            S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }
}

/// A 4-byte handle on an inode of one [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeId(u32);

impl InodeId {
    /// Position in the tree's inode table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Bytes in the tree's arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    off: u64,
    len: u32,
}

/// An fs-verity digest in [`Tree::digests`]: its algorithm and where its
/// bytes start, in units of 32 bytes (sha256 takes one unit, sha512 two).
#[derive(Debug, Clone, Copy)]
struct DigestRef {
    algorithm: HashAlgorithm,
    unit: u32,
}

#[derive(Debug, Clone, Copy)]
enum Data {
    None,
    Dir(u32),
    Symlink(Span),
    Inline(Span),
    External {
        payload: Option<Span>,
        digest: Option<DigestRef>,
    },
}

#[derive(Debug, Clone)]
struct InodeRec {
    stat: Stat,
    xattrs: XattrSetId,
    data: Data,
    /// Entries naming this inode, counting those in detached subtrees.
    refs: u32,
    /// One of its entries was pinned as primary ([`Tree::pin_primary`]).
    pinned: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    name_off: u64,
    inode: InodeId,
    name_len: u8,
    /// This entry is its inode's pinned primary.
    pinned: bool,
}

/// What a regular file, symlink or directory holds, when creating an inode.
#[derive(Debug, Clone, Copy)]
pub enum NewContent<'a> {
    /// Devices, fifos, sockets, empty regular files.
    None,
    /// A directory.
    Directory,
    /// A symlink and its target.
    Symlink(&'a [u8]),
    /// Regular file content stored in the image (at most [`MAX_INLINE_CONTENT`]).
    Inline(&'a [u8]),
    /// Regular file stored outside the image: `payload` is the backing
    /// file's path relative to the object store (`XX/rest-of-hex`).
    External {
        /// Path of the backing file in the object store, if known.
        payload: Option<&'a [u8]>,
        /// Its fs-verity digest, if known.
        digest: Option<FsVerityDigest>,
    },
}

/// What an inode holds, as read from a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// Devices, fifos, sockets, empty regular files.
    None,
    /// A directory.
    Directory,
    /// A symlink and its target.
    Symlink(&'a [u8]),
    /// Regular file content stored in the image.
    Inline(&'a [u8]),
    /// A regular file stored outside the image.
    External {
        /// Path of the backing file in the object store, if known.
        payload: Option<&'a [u8]>,
        /// Its fs-verity digest, if known.
        digest: Option<FsVerityDigest>,
    },
}

/// One directory entry. Whether it is its inode's primary entry is a
/// property of the whole tree: see [`Tree::primaries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The entry's name.
    pub name: &'a [u8],
    /// The inode it names.
    pub inode: InodeId,
}

/// The filesystem tree. See the module documentation.
#[derive(Debug, Clone)]
pub struct Tree {
    inodes: Vec<InodeRec>,
    dirs: Vec<Vec<Entry>>,
    arena: Vec<u8>,
    /// Object digests, back to back (see [`DigestRef`]).
    digests: Vec<u8>,
    xattrs: XattrPool,
    entries: usize,
    /// Some inode was named by more than one entry at some point.
    hardlinks: bool,
}

impl Tree {
    /// A tree holding only its root directory.
    pub fn new(root: Stat) -> Result<Tree, Error> {
        let mut tree = Tree {
            inodes: Vec::new(),
            dirs: Vec::new(),
            arena: Vec::new(),
            digests: Vec::new(),
            xattrs: XattrPool::default(),
            entries: 0,
            hardlinks: false,
        };
        if FileType::from_mode(root.mode) != Some(FileType::Directory) {
            return Err(Error::NotADirectory { path: "/".into() });
        }
        let id = tree.add_inode(root, NewContent::Directory)?;
        tree.inodes[id.index()].refs = 1;
        Ok(tree)
    }

    /// The root directory.
    pub fn root(&self) -> InodeId {
        InodeId(0)
    }

    /// Number of inodes (including ones no entry names any more).
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    /// Number of directories (including detached ones).
    pub fn dir_count(&self) -> usize {
        self.dirs.len()
    }

    /// Number of directory entries (hardlinks count once each).
    pub fn entry_count(&self) -> usize {
        self.entries
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> Span {
        let off = self.arena.len() as u64;
        self.arena.extend_from_slice(bytes);
        Span {
            off,
            len: bytes.len() as u32,
        }
    }

    fn bytes(&self, span: Span) -> &[u8] {
        &self.arena[span.off as usize..span.off as usize + span.len as usize]
    }

    fn make_data(&mut self, stat: &Stat, content: NewContent<'_>) -> Result<Data, Error> {
        let ft = stat
            .file_type()
            .ok_or(Error::InvalidMode { mode: stat.mode })?;
        Ok(match (ft, content) {
            (FileType::Directory, _) => {
                self.dirs.push(Vec::new());
                Data::Dir(self.dirs.len() as u32 - 1)
            }
            (FileType::Symlink, NewContent::Symlink(target)) => {
                validate::symlink_target(target)?;
                Data::Symlink(self.push_bytes(target))
            }
            (FileType::Symlink, _) => {
                return Err(Error::InvalidSymlink {
                    target: String::new(),
                    reason: "a symlink needs a non-empty target",
                });
            }
            (FileType::Regular, NewContent::Inline(bytes)) if !bytes.is_empty() => {
                if bytes.len() > MAX_INLINE_CONTENT {
                    return Err(Error::InlineTooLarge { len: bytes.len() });
                }
                Data::Inline(self.push_bytes(bytes))
            }
            (FileType::Regular, NewContent::External { payload, digest }) => {
                let payload = match payload {
                    Some(p) => {
                        validate::payload(p)?;
                        Some(self.push_bytes(p))
                    }
                    None => None,
                };
                let digest = match digest {
                    Some(d) => {
                        let unit = (self.digests.len() / DIGEST_UNIT) as u32;
                        self.digests.extend_from_slice(d.as_bytes());
                        Some(DigestRef {
                            algorithm: d.algorithm(),
                            unit,
                        })
                    }
                    None => None,
                };
                Data::External { payload, digest }
            }
            _ => Data::None,
        })
    }

    /// Creates an inode not yet named by any entry. For symlinks the
    /// size is set to the target length; for inline files to the content
    /// length.
    pub fn add_inode(&mut self, mut stat: Stat, content: NewContent<'_>) -> Result<InodeId, Error> {
        if self.inodes.len() >= u32::MAX as usize {
            return Err(Error::TooManyInodes);
        }
        let data = self.make_data(&stat, content)?;
        match data {
            Data::Symlink(s) | Data::Inline(s) => stat.size = s.len as u64,
            _ => {}
        }
        self.inodes.push(InodeRec {
            stat,
            xattrs: XattrSetId::EMPTY,
            data,
            refs: 0,
            pinned: false,
        });
        Ok(InodeId(self.inodes.len() as u32 - 1))
    }

    /// Replaces what an inode holds (the file type stays). Sizes follow as in
    /// [`Tree::add_inode`].
    pub fn set_content(&mut self, id: InodeId, content: NewContent<'_>) -> Result<(), Error> {
        let stat = self.inodes[id.index()].stat;
        if stat.file_type() == Some(FileType::Directory) {
            return Ok(());
        }
        let data = self.make_data(&stat, content)?;
        let rec = &mut self.inodes[id.index()];
        rec.data = data;
        if let Data::Symlink(s) | Data::Inline(s) = data {
            rec.stat.size = s.len as u64;
        }
        Ok(())
    }

    /// The inode's stat fields.
    pub fn stat(&self, id: InodeId) -> &Stat {
        &self.inodes[id.index()].stat
    }

    /// Mutable stat. Changing the file type of an inode with content or
    /// entries is the caller's responsibility to keep consistent.
    pub fn stat_mut(&mut self, id: InodeId) -> &mut Stat {
        &mut self.inodes[id.index()].stat
    }

    /// The inode's file type.
    pub fn file_type(&self, id: InodeId) -> FileType {
        // Every stored inode passed make_data, whose mode check is the same.
        self.stat(id).file_type().unwrap_or(FileType::Regular)
    }

    /// Whether the inode is a directory.
    pub fn is_dir(&self, id: InodeId) -> bool {
        matches!(self.inodes[id.index()].data, Data::Dir(_))
    }

    /// What the inode holds.
    pub fn content(&self, id: InodeId) -> Content<'_> {
        match self.inodes[id.index()].data {
            Data::None => Content::None,
            Data::Dir(_) => Content::Directory,
            Data::Symlink(s) => Content::Symlink(self.bytes(s)),
            Data::Inline(s) => Content::Inline(self.bytes(s)),
            Data::External { payload, digest } => Content::External {
                payload: payload.map(|p| self.bytes(p)),
                digest: digest.map(|d| self.digest(d)),
            },
        }
    }

    fn digest(&self, d: DigestRef) -> FsVerityDigest {
        let start = d.unit as usize * DIGEST_UNIT;
        let bytes = &self.digests[start..start + d.algorithm.digest_size()];
        // The bytes were copied from a digest of this algorithm.
        FsVerityDigest::new(d.algorithm, bytes).expect("stored digest has its algorithm's length")
    }

    fn dir_index(&self, id: InodeId) -> Option<usize> {
        match self.inodes[id.index()].data {
            Data::Dir(d) => Some(d as usize),
            _ => None,
        }
    }

    fn entry_name(&self, e: &Entry) -> &[u8] {
        &self.arena[e.name_off as usize..e.name_off as usize + e.name_len as usize]
    }

    fn search(&self, dir: usize, name: &[u8]) -> Result<usize, usize> {
        let entries = &self.dirs[dir];
        // Fast path: importers mostly add names in sorted order.
        match entries.last() {
            None => return Err(0),
            Some(last) => match self.entry_name(last).cmp(name) {
                std::cmp::Ordering::Less => return Err(entries.len()),
                std::cmp::Ordering::Equal => return Ok(entries.len() - 1),
                std::cmp::Ordering::Greater => {}
            },
        }
        entries.binary_search_by(|e| self.entry_name(e).cmp(name))
    }

    /// Names `inode` as `name` in directory `parent`. A directory can be
    /// named once; other inodes any number of times (hardlinks).
    pub fn link(&mut self, parent: InodeId, name: &[u8], inode: InodeId) -> Result<(), Error> {
        validate_name(name)?;
        let dir = self.dir_index(parent).ok_or_else(|| Error::NotADirectory {
            path: String::from_utf8_lossy(name).into_owned(),
        })?;
        let refs = self.inodes[inode.index()].refs;
        if (refs > 0 && self.is_dir(inode)) || inode == parent || inode == self.root() {
            return Err(Error::DirectoryHardlink {
                path: String::from_utf8_lossy(name).into_owned(),
            });
        }
        let pos = match self.search(dir, name) {
            Ok(_) => {
                return Err(Error::Exists {
                    path: String::from_utf8_lossy(name).into_owned(),
                });
            }
            Err(pos) => pos,
        };
        let span = self.push_bytes(name);
        let entry = Entry {
            name_off: span.off,
            inode,
            name_len: name.len() as u8,
            pinned: false,
        };
        self.dirs[dir].insert(pos, entry);
        self.add_ref(inode);
        self.entries += 1;
        Ok(())
    }

    fn add_ref(&mut self, inode: InodeId) {
        let rec = &mut self.inodes[inode.index()];
        rec.refs += 1;
        if rec.refs > 1 {
            self.hardlinks = true;
        }
    }

    fn drop_ref(&mut self, entry: &Entry) {
        let rec = &mut self.inodes[entry.inode.index()];
        rec.refs = rec.refs.saturating_sub(1);
        if entry.pinned {
            rec.pinned = false;
        }
    }

    /// Removes the entry `name` from `parent` and returns the inode it
    /// named. Removing a directory's entry detaches its whole subtree.
    pub fn unlink(&mut self, parent: InodeId, name: &[u8]) -> Result<InodeId, Error> {
        let not_found = || Error::NotFound {
            path: String::from_utf8_lossy(name).into_owned(),
        };
        let dir = self.dir_index(parent).ok_or_else(not_found)?;
        let pos = self.search(dir, name).map_err(|_| not_found())?;
        let entry = self.dirs[dir].remove(pos);
        self.drop_ref(&entry);
        self.entries -= 1;
        Ok(entry.inode)
    }

    /// Removes every entry of a directory (detaching subdirectories with
    /// their subtrees); no-op on other inodes.
    pub fn clear_dir(&mut self, dir: InodeId) {
        let Some(d) = self.dir_index(dir) else {
            return;
        };
        let removed = std::mem::take(&mut self.dirs[d]);
        self.entries -= removed.len();
        for e in &removed {
            self.drop_ref(e);
        }
    }

    /// Points the existing entry `name` in `parent` at `inode`. Used by
    /// importers that resolve hardlink targets after reserving the link's
    /// name. No-op if there is no such entry.
    pub fn retarget(&mut self, parent: InodeId, name: &[u8], inode: InodeId) {
        let Some(dir) = self.dir_index(parent) else {
            return;
        };
        let Ok(pos) = self.search(dir, name) else {
            return;
        };
        let old = self.dirs[dir][pos];
        self.drop_ref(&old);
        let e = &mut self.dirs[dir][pos];
        e.inode = inode;
        e.pinned = false;
        self.add_ref(inode);
    }

    /// A new inode no entry names yet, with `id`'s metadata, content and
    /// xattrs: for splitting a hardlink whose names must differ in
    /// metadata (the bootable variant's SELinux labels, `oci::boot`).
    /// Directories have one entry and are not cloned.
    pub fn clone_inode(&mut self, id: InodeId) -> Result<InodeId, Error> {
        if self.is_dir(id) {
            return Err(Error::DirectoryHardlink {
                path: format!("inode {}", id.index()),
            });
        }
        if self.inodes.len() >= u32::MAX as usize {
            return Err(Error::TooManyInodes);
        }
        let mut rec = self.inodes[id.index()].clone();
        rec.refs = 0;
        rec.pinned = false;
        self.inodes.push(rec);
        Ok(InodeId(self.inodes.len() as u32 - 1))
    }

    /// Makes the entry `name` in `parent` its inode's primary entry, where
    /// writers place the inode whatever its other entries' positions (a
    /// dumpfile's non-`@` line: `mkcomposefs` serializes a hardlinked inode
    /// there). Without a pin the primary is the canonical one, the first
    /// entry in depth-first name order; a pinned entry that is removed, or
    /// no longer reachable, falls back to that.
    pub fn pin_primary(&mut self, parent: InodeId, name: &[u8]) -> Result<(), Error> {
        let path = || String::from_utf8_lossy(name).into_owned();
        let dir = self
            .dir_index(parent)
            .ok_or_else(|| Error::NotFound { path: path() })?;
        let pos = self
            .search(dir, name)
            .map_err(|_| Error::NotFound { path: path() })?;
        let inode = self.dirs[dir][pos].inode;
        if self.is_dir(inode) {
            return Err(Error::Pin {
                path: path(),
                reason: "directories have a single entry",
            });
        }
        if self.inodes[inode.index()].pinned {
            if self.dirs[dir][pos].pinned {
                return Ok(());
            }
            return Err(Error::Pin {
                path: path(),
                reason: "another entry of the same inode is pinned",
            });
        }
        self.dirs[dir][pos].pinned = true;
        self.inodes[inode.index()].pinned = true;
        Ok(())
    }

    /// The entry `name` in directory `parent`.
    pub fn lookup(&self, parent: InodeId, name: &[u8]) -> Option<InodeId> {
        let dir = self.dir_index(parent)?;
        self.search(dir, name)
            .ok()
            .map(|pos| self.dirs[dir][pos].inode)
    }

    /// Resolves an absolute or relative path from the root, without
    /// following symlinks. Empty components and a leading `/` are ignored.
    pub fn lookup_path(&self, path: &[u8]) -> Option<InodeId> {
        let mut cur = self.root();
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            cur = self.lookup(cur, comp)?;
        }
        Some(cur)
    }

    /// The entries of a directory, sorted by name (bytewise); empty for
    /// non-directories.
    pub fn entries(&self, dir: InodeId) -> impl ExactSizeIterator<Item = DirEntry<'_>> + '_ {
        let list: &[Entry] = match self.dir_index(dir) {
            Some(d) => &self.dirs[d],
            None => &[],
        };
        list.iter().map(move |e| DirEntry {
            name: self.entry_name(e),
            inode: e.inode,
        })
    }

    /// The `idx`-th entry of a directory in name order, in O(1).
    pub fn entry(&self, dir: InodeId, idx: usize) -> Option<DirEntry<'_>> {
        let e = self.dirs.get(self.dir_index(dir)?)?.get(idx)?;
        Some(DirEntry {
            name: self.entry_name(e),
            inode: e.inode,
        })
    }

    /// The inode's xattrs (name, value), sorted by name.
    pub fn xattrs(&self, id: InodeId) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        self.xattrs.iter(self.inodes[id.index()].xattrs)
    }

    /// One xattr's value.
    pub fn xattr(&self, id: InodeId, name: &[u8]) -> Option<&[u8]> {
        self.xattrs.get(self.inodes[id.index()].xattrs, name)
    }

    /// The inode's interned xattr list (equal lists share an id).
    pub fn xattr_set_id(&self, id: InodeId) -> XattrSetId {
        self.inodes[id.index()].xattrs
    }

    /// Sets an xattr (replacing an existing value of that name). Limits are
    /// those of `lcfs_node_set_xattr` for external input: name 1..=255
    /// bytes, value at most 65535 bytes, and all xattrs of the inode
    /// together within what an EROFS inode can hold.
    pub fn set_xattr(&mut self, id: InodeId, name: &[u8], value: &[u8]) -> Result<(), Error> {
        validate::xattr(name, value)?;
        let set = self.inodes[id.index()].xattrs;
        let others = self
            .xattrs
            .iter(set)
            .filter(|(n, _)| *n != name)
            .map(|(n, v)| (n.len(), v.len()));
        validate::xattr_budget(others.chain([(name.len(), value.len())]))?;
        self.inodes[id.index()].xattrs = self.xattrs.with(set, name, value);
        Ok(())
    }

    /// Removes an xattr; returns whether it was there.
    pub fn remove_xattr(&mut self, id: InodeId, name: &[u8]) -> bool {
        let set = self.inodes[id.index()].xattrs;
        match self.xattrs.without(set, name) {
            Some(new) => {
                self.inodes[id.index()].xattrs = new;
                true
            }
            None => false,
        }
    }

    /// Gives `to` the xattrs of `from` (replacing its own).
    pub fn copy_xattrs(&mut self, from: InodeId, to: InodeId) {
        self.inodes[to.index()].xattrs = self.inodes[from.index()].xattrs;
    }

    /// Removes all xattrs of an inode.
    pub fn clear_xattrs(&mut self, id: InodeId) {
        self.inodes[id.index()].xattrs = XattrSetId::EMPTY;
    }

    /// Keeps, on every inode, only the xattrs whose name `keep` accepts.
    /// Each distinct xattr list is filtered once.
    pub fn retain_xattrs(&mut self, keep: impl Fn(&[u8]) -> bool) {
        let mut memo: std::collections::HashMap<XattrSetId, XattrSetId> =
            std::collections::HashMap::new();
        for rec in &mut self.inodes {
            if rec.xattrs == XattrSetId::EMPTY {
                continue;
            }
            let pool = &mut self.xattrs;
            rec.xattrs = *memo
                .entry(rec.xattrs)
                .or_insert_with(|| pool.retain(rec.xattrs, &keep));
        }
    }

    /// Number of distinct xattr lists in the tree.
    pub fn distinct_xattr_sets(&self) -> usize {
        self.xattrs.distinct_sets()
    }

    /// Sets every reachable non-directory inode's `nlink` to the number of
    /// reachable entries naming it, and every directory's to 2 + its
    /// subdirectories, as the kernel counts them. Entries in detached
    /// subtrees (whited out, replaced) do not count: composefs-rs counts
    /// the entries of the final tree (`FileSystem::nlinks`). (Dumpfiles
    /// carry their own counts, which mkcomposefs keeps as given; importers
    /// of real filesystems call this.)
    pub fn recount_nlinks(&mut self) {
        let mut counts = vec![0u32; self.inodes.len()];
        counts[0] = 1;
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            let Data::Dir(d) = self.inodes[i].data else {
                continue;
            };
            for e in &self.dirs[d as usize] {
                let child = e.inode.index();
                counts[child] += 1;
                // A directory has one entry, so it is pushed once.
                if matches!(self.inodes[child].data, Data::Dir(_)) {
                    stack.push(child);
                }
            }
        }
        for (i, &count) in counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            self.inodes[i].stat.nlink = match self.inodes[i].data {
                Data::Dir(d) => {
                    let subdirs = self.dirs[d as usize]
                        .iter()
                        .filter(|e| matches!(self.inodes[e.inode.index()].data, Data::Dir(_)))
                        .count() as u32;
                    2 + subdirs
                }
                _ => count,
            };
        }
    }
}

#[cfg(test)]
mod tests;
