//! Composefs EROFS images back into a [`Tree`], as `composefs-info` reads
//! them (`lcfs_load_node_from_image` in `libcomposefs/lcfs-writer-erofs.c`):
//! the composefs overlay xattrs turn back into payloads, digests and
//! whiteouts; escaped `trusted.overlay.overlay.*` xattrs are unescaped; the
//! root's `00`..`ff` whiteouts and `.`/`..` are dropped.
//!
//! Images are untrusted: every offset is bounds-checked, nothing panics,
//! a directory reached twice (a cycle or a hardlinked directory) is an
//! error, and work and memory stay proportional to the image size (each
//! tree entry costs a 12-byte dirent in the image).

use super::format::*;
use crate::tree::{self, FileType, InodeId, NewContent, Stat, Timestamp, Tree, mode};
use crate::verity::{FsVerityDigest, HashAlgorithm};
use std::collections::HashMap;

/// Why an image cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not a composefs image: {0}")]
    NotComposefs(&'static str),
    #[error("unsupported composefs header version {0} (known: 1)")]
    HeaderVersion(u32),
    #[error("corrupt image: inode {nid}: {reason}")]
    Inode { nid: u64, reason: String },
    #[error(
        "corrupt image: directory inode {nid} is reached twice (a cycle or a hardlinked directory)"
    )]
    DirectoryCycle { nid: u64 },
    #[error("corrupt image: inode {nid}: {source}")]
    Tree { nid: u64, source: tree::Error },
}

fn bad(nid: u64, reason: impl Into<String>) -> ReadError {
    ReadError::Inode {
        nid,
        reason: reason.into(),
    }
}

/// The composefs header and EROFS superblock fields a reader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// composefs format version (0 or 1).
    pub version: u32,
    pub flags: u32,
    pub root_nid: u64,
    pub inodes: u64,
    pub build_time: Timestamp,
    pub blocks: u32,
    pub meta_blkaddr: u32,
    pub xattr_blkaddr: u32,
}

/// Parses and checks the header and superblock.
pub fn superblock(data: &[u8]) -> Result<Superblock, ReadError> {
    if (data.len() as u64) < BLOCK_SIZE {
        return Err(ReadError::NotComposefs("shorter than one 4096-byte block"));
    }
    let g32 = |o| get_u32(data, o).unwrap_or(0);
    if g32(0) != COMPOSEFS_MAGIC {
        return Err(ReadError::NotComposefs(
            "no composefs magic 0xd078629a at offset 0",
        ));
    }
    if g32(4) != COMPOSEFS_HEADER_VERSION {
        return Err(ReadError::HeaderVersion(g32(4)));
    }
    let sb = EROFS_SUPER_OFFSET as usize;
    if g32(sb) != EROFS_SUPER_MAGIC_V1 {
        return Err(ReadError::NotComposefs(
            "no EROFS superblock magic at offset 1024",
        ));
    }
    if data[sb + 12] != BLOCK_BITS as u8 {
        return Err(ReadError::NotComposefs("EROFS block size is not 4096"));
    }
    let s = Superblock {
        version: g32(12),
        flags: g32(8),
        root_nid: get_u16(data, sb + 14).unwrap_or(0) as u64,
        inodes: get_u64(data, sb + 16).unwrap_or(0),
        build_time: Timestamp {
            sec: get_u64(data, sb + 24).unwrap_or(0) as i64,
            nsec: g32(sb + 32),
        },
        blocks: g32(sb + 36),
        meta_blkaddr: g32(sb + 40),
        xattr_blkaddr: g32(sb + 44),
    };
    if s.meta_blkaddr as u64 * BLOCK_SIZE >= data.len() as u64
        || s.xattr_blkaddr as u64 * BLOCK_SIZE >= data.len() as u64
    {
        return Err(ReadError::NotComposefs(
            "metadata or xattr area beyond the end of the image",
        ));
    }
    Ok(s)
}

/// One parsed inode.
struct RawInode<'a> {
    compact: bool,
    layout: u16,
    mode: u32,
    nlink: u32,
    size: u64,
    uid: u32,
    gid: u32,
    rdev: u32,
    raw_blkaddr: u32,
    mtime: Timestamp,
    xattrs: &'a [u8],
    /// Bytes after the xattrs (tail data), to the end of the image.
    after: &'a [u8],
}

struct Reader<'a> {
    data: &'a [u8],
    sb: Superblock,
}

impl<'a> Reader<'a> {
    fn inode(&self, nid: u64) -> Result<RawInode<'a>, ReadError> {
        let off = nid
            .checked_mul(SLOT_SIZE)
            .and_then(|o| o.checked_add(self.sb.meta_blkaddr as u64 * BLOCK_SIZE))
            .filter(|&o| o < self.data.len() as u64)
            .ok_or_else(|| bad(nid, "beyond the end of the image"))? as usize;
        let b = &self.data[off..];
        let format = get_u16(b, 0).ok_or_else(|| bad(nid, "truncated"))?;
        let compact = format & 1 == 0;
        let isize = if compact {
            INODE_COMPACT_SIZE
        } else {
            INODE_EXTENDED_SIZE
        };
        if b.len() < isize {
            return Err(bad(nid, "truncated inode"));
        }
        let r16 = |o| get_u16(b, o).unwrap_or(0);
        let r32 = |o| get_u32(b, o).unwrap_or(0);
        let icount = r16(2);
        let mut ino = RawInode {
            compact,
            layout: (format >> 1) & 7,
            mode: r16(4) as u32,
            nlink: 0,
            size: 0,
            uid: 0,
            gid: 0,
            rdev: r32(16),
            raw_blkaddr: r32(16),
            mtime: self.sb.build_time,
            xattrs: &[],
            after: &[],
        };
        if compact {
            ino.nlink = r16(6) as u32;
            ino.size = r32(8) as u64;
            ino.uid = r16(24) as u32;
            ino.gid = r16(26) as u32;
        } else {
            ino.size = get_u64(b, 8).unwrap_or(0);
            ino.uid = r32(24);
            ino.gid = r32(28);
            ino.mtime = Timestamp {
                sec: get_u64(b, 32).unwrap_or(0) as i64,
                nsec: r32(40),
            };
            ino.nlink = r32(44);
        }
        let xsize = xattr_area_size(icount);
        if ino.mtime.nsec >= 1_000_000_000 {
            return Err(bad(
                nid,
                format!("mtime nanoseconds {} out of range", ino.mtime.nsec),
            ));
        }
        ino.xattrs = b
            .get(isize..isize + xsize)
            .ok_or_else(|| bad(nid, "xattr area beyond the end of the image"))?;
        ino.after = &b[isize + xsize..];
        Ok(ino)
    }

    /// The bytes of a flat (plain or tail-packed) inode's data.
    fn flat_data(&self, nid: u64, ino: &RawInode<'a>, limit: u64) -> Result<Vec<u8>, ReadError> {
        if ino.size > limit || ino.size > self.data.len() as u64 {
            return Err(bad(
                nid,
                format!(
                    "{} bytes of data, more than this reader allows ({limit})",
                    ino.size
                ),
            ));
        }
        let size = ino.size as usize;
        let (oob, tail) = match ino.layout {
            LAYOUT_FLAT_PLAIN => (size, 0),
            LAYOUT_FLAT_INLINE => {
                let tail = size % BLOCK_SIZE as usize;
                (size - tail, tail)
            }
            l => return Err(bad(nid, format!("data layout {l} is not flat"))),
        };
        let mut out = Vec::with_capacity(size);
        if oob > 0 {
            let start = ino.raw_blkaddr as usize * BLOCK_SIZE as usize;
            out.extend_from_slice(
                self.data
                    .get(start..start + oob)
                    .ok_or_else(|| bad(nid, "data blocks beyond the end of the image"))?,
            );
        }
        out.extend_from_slice(
            ino.after
                .get(..tail)
                .ok_or_else(|| bad(nid, "tail data beyond the end of the image"))?,
        );
        Ok(out)
    }

    fn xattr_at(&self, nid: u64, b: &'a [u8]) -> Result<(Vec<u8>, &'a [u8], usize), ReadError> {
        let trunc = || bad(nid, "xattr entry beyond its area");
        let (name_len, index) = (
            *b.first().ok_or_else(trunc)? as usize,
            *b.get(1).ok_or_else(trunc)?,
        );
        let value_len = get_u16(b, 2).ok_or_else(trunc)? as usize;
        let prefix = XATTR_PREFIXES
            .get(index as usize)
            .ok_or_else(|| bad(nid, format!("unknown xattr name index {index}")))?;
        let suffix = b.get(4..4 + name_len).ok_or_else(trunc)?;
        let value = b
            .get(4 + name_len..4 + name_len + value_len)
            .ok_or_else(trunc)?;
        let mut name = prefix.to_vec();
        name.extend_from_slice(suffix);
        Ok((
            name,
            value,
            round_up((4 + name_len + value_len) as u64, 4) as usize,
        ))
    }

    /// All xattrs of an inode: inline ones, then shared ones.
    fn xattrs(&self, nid: u64, area: &'a [u8]) -> Result<Xattrs<'a>, ReadError> {
        let mut out = Vec::new();
        if area.is_empty() {
            return Ok(out);
        }
        let shared = *area
            .get(4)
            .ok_or_else(|| bad(nid, "truncated xattr header"))? as usize;
        let mut pos = XATTR_IBODY_HEADER_SIZE + shared * 4;
        if pos > area.len() {
            return Err(bad(nid, "shared xattr ids beyond the xattr area"));
        }
        while pos + XATTR_ENTRY_SIZE < area.len() {
            let (name, value, size) = self.xattr_at(nid, &area[pos..])?;
            out.push((name, value));
            pos += size;
        }
        let base = self.sb.xattr_blkaddr as u64 * BLOCK_SIZE;
        for k in 0..shared {
            let id = get_u32(area, XATTR_IBODY_HEADER_SIZE + 4 * k).unwrap_or(0) as u64;
            let off = base + id * 4;
            let b = self
                .data
                .get(off as usize..)
                .ok_or_else(|| bad(nid, "shared xattr beyond the end of the image"))?;
            let (name, value, _) = self.xattr_at(nid, b)?;
            out.push((name, value));
        }
        Ok(out)
    }

    /// The entries of a directory inode: (name, nid).
    fn dirents(&self, nid: u64, ino: &RawInode<'a>) -> Result<Vec<(&'a [u8], u64)>, ReadError> {
        let mut out = Vec::new();
        let n_blocks = ino.size.div_ceil(BLOCK_SIZE);
        let inline = ino.layout == LAYOUT_FLAT_INLINE;
        if ino.layout != LAYOUT_FLAT_PLAIN && !inline {
            return Err(bad(
                nid,
                format!("directory with data layout {}", ino.layout),
            ));
        }
        if ino.size > self.data.len() as u64 {
            return Err(bad(nid, "directory larger than the image"));
        }
        let oob_blocks = if inline {
            n_blocks.saturating_sub(1)
        } else {
            n_blocks
        };
        for blk in 0..oob_blocks {
            let start = (ino.raw_blkaddr as u64 + blk) * BLOCK_SIZE;
            let mut len = BLOCK_SIZE;
            if !inline && blk + 1 == oob_blocks && ino.size % BLOCK_SIZE != 0 {
                len = ino.size % BLOCK_SIZE;
            }
            let block = self
                .data
                .get(start as usize..(start + len) as usize)
                .ok_or_else(|| bad(nid, "directory block beyond the end of the image"))?;
            self.dirent_block(nid, block, &mut out)?;
        }
        if inline {
            let tail = (ino.size % BLOCK_SIZE) as usize;
            let block = ino
                .after
                .get(..tail)
                .ok_or_else(|| bad(nid, "directory tail beyond the end of the image"))?;
            if !block.is_empty() {
                self.dirent_block(nid, block, &mut out)?;
            }
        }
        Ok(out)
    }

    fn dirent_block(
        &self,
        nid: u64,
        block: &'a [u8],
        out: &mut Vec<(&'a [u8], u64)>,
    ) -> Result<(), ReadError> {
        let first = get_u16(block, 8)
            .ok_or_else(|| bad(nid, "directory block shorter than one dirent"))?
            as usize;
        if first % DIRENT_SIZE != 0 || first == 0 || first > block.len() {
            return Err(bad(nid, "corrupt first dirent name offset"));
        }
        let n = first / DIRENT_SIZE;
        for i in 0..n {
            let child = get_u64(block, i * DIRENT_SIZE).unwrap_or(0);
            let off = get_u16(block, i * DIRENT_SIZE + 8).unwrap_or(0) as usize;
            let end = if i + 1 < n {
                get_u16(block, (i + 1) * DIRENT_SIZE + 8).unwrap_or(0) as usize
            } else {
                let rest = block.get(off..).unwrap_or(&[]);
                off + rest.iter().position(|&c| c == 0).unwrap_or(rest.len())
            };
            if off < first || end < off || end > block.len() {
                return Err(bad(nid, "corrupt dirent name offsets"));
            }
            out.push((&block[off..end], child));
        }
        Ok(())
    }
}

const REDIRECT: &[u8] = b"trusted.overlay.redirect";
const METACOPY: &[u8] = b"trusted.overlay.metacopy";
const OVERLAY: &[u8] = b"trusted.overlay.";
const ESCAPED: &[u8] = b"trusted.overlay.overlay.";

/// Reads an image into a tree (what `composefs-info dump` prints).
pub fn read_tree(data: &[u8]) -> Result<Tree, ReadError> {
    let sb = superblock(data)?;
    let r = Reader { data, sb };
    let root_raw = r.inode(sb.root_nid)?;
    if root_raw.mode & mode::S_IFMT != mode::S_IFDIR {
        return Err(bad(sb.root_nid, "the root is not a directory"));
    }
    let (root_stat, _, root_x) =
        node_parts(&r, sb.root_nid, &root_raw)?.ok_or_else(|| bad(sb.root_nid, "root"))?;
    let mut tree = Tree::new(root_stat).map_err(|source| ReadError::Tree {
        nid: sb.root_nid,
        source,
    })?;
    let root = tree.root();
    set_xattrs(&mut tree, root, sb.root_nid, root_x)?;
    let mut seen: HashMap<u64, InodeId> = HashMap::new();
    seen.insert(sb.root_nid, root);
    // Depth-first, each subtree before the next sibling, like the C reader.
    let mut stack = vec![(root, r.dirents(sb.root_nid, &root_raw)?, 0usize)];
    while let Some((dir, ents, idx)) = stack.last_mut() {
        let Some(&(name, nid)) = ents.get(*idx) else {
            stack.pop();
            continue;
        };
        *idx += 1;
        let dir = *dir;
        if name == b"." || name == b".." {
            continue;
        }
        let tree_err = |source| ReadError::Tree { nid, source };
        if let Some(&existing) = seen.get(&nid) {
            if tree.is_dir(existing) {
                return Err(ReadError::DirectoryCycle { nid });
            }
            tree.link(dir, name, existing).map_err(tree_err)?;
            continue;
        }
        let raw = r.inode(nid)?;
        let Some((stat, content, xattrs)) = node_parts(&r, nid, &raw)? else {
            continue; // a real whiteout (the root's 00..ff)
        };
        let new = match &content {
            Parsed::Dir => NewContent::Directory,
            Parsed::Symlink(t) => NewContent::Symlink(t),
            Parsed::Inline(c) => NewContent::Inline(c),
            Parsed::External { payload, digest } => NewContent::External {
                payload: payload.as_deref(),
                digest: *digest,
            },
            Parsed::None => NewContent::None,
        };
        let id = tree.add_inode(stat, new).map_err(tree_err)?;
        set_xattrs(&mut tree, id, nid, xattrs)?;
        tree.link(dir, name, id).map_err(tree_err)?;
        seen.insert(nid, id);
        if matches!(content, Parsed::Dir) {
            let ents = r.dirents(nid, &raw)?;
            stack.push((id, ents, 0));
        }
    }
    Ok(tree)
}

enum Parsed {
    None,
    Dir,
    Symlink(Vec<u8>),
    Inline(Vec<u8>),
    External {
        payload: Option<Vec<u8>>,
        digest: Option<FsVerityDigest>,
    },
}

type Xattrs<'a> = Vec<(Vec<u8>, &'a [u8])>;

/// Stat, content and user-visible xattrs of an inode; `None` for a real
/// whiteout, which readers skip.
fn node_parts<'a>(
    r: &Reader<'a>,
    nid: u64,
    raw: &RawInode<'a>,
) -> Result<Option<(Stat, Parsed, Xattrs<'a>)>, ReadError> {
    let ty = raw.mode & mode::S_IFMT;
    let mut stat = Stat {
        mode: raw.mode,
        uid: raw.uid,
        gid: raw.gid,
        nlink: raw.nlink,
        rdev: 0,
        size: raw.size,
        mtime: raw.mtime,
    };
    if ty == mode::S_IFCHR || ty == mode::S_IFBLK {
        stat.rdev = raw.rdev as u64;
        if ty == mode::S_IFCHR && raw.rdev == 0 {
            return Ok(None);
        }
    }
    let ft = FileType::from_mode(raw.mode)
        .ok_or_else(|| bad(nid, format!("invalid mode {:o}", raw.mode)))?;
    let mut parsed = match ft {
        FileType::Directory => Parsed::Dir,
        FileType::Symlink => {
            Parsed::Symlink(r.flat_data(nid, raw, crate::tree::MAX_SYMLINK_LEN as u64)?)
        }
        FileType::Regular if raw.size > 0 && raw.layout != LAYOUT_CHUNK_BASED => {
            Parsed::Inline(r.flat_data(nid, raw, crate::tree::MAX_INLINE_CONTENT as u64)?)
        }
        FileType::Regular if raw.size > 0 => Parsed::External {
            payload: None,
            digest: None,
        },
        _ => Parsed::None,
    };
    let mut user = Vec::new();
    for (name, value) in r.xattrs(nid, raw.xattrs)? {
        if name == REDIRECT {
            if ft == FileType::Regular {
                let v = if value.len() > 1 && value[0] == b'/' {
                    &value[1..]
                } else {
                    value
                };
                match &mut parsed {
                    Parsed::External { payload, .. } => *payload = Some(v.to_vec()),
                    p @ Parsed::None => {
                        *p = Parsed::External {
                            payload: Some(v.to_vec()),
                            digest: None,
                        }
                    }
                    _ => {}
                }
            }
        } else if name == METACOPY {
            // 36 bytes: a sha256 digest, taken as libcomposefs does
            // (`lcfs_node_set_fsverity_digest`, whatever the algorithm
            // byte). 68 bytes with algorithm 2: a sha512 digest, as
            // composefs-rs writes for sha512 repositories (libcomposefs
            // 1.0 ignores those).
            let algorithm = match value.len() {
                36 => Some(HashAlgorithm::Sha256),
                68 if value[3] == HashAlgorithm::Sha512.kernel_id() => Some(HashAlgorithm::Sha512),
                _ => None,
            };
            if let (FileType::Regular, Some(algorithm)) = (ft, algorithm) {
                let d = FsVerityDigest::new(algorithm, &value[4..])
                    .map_err(|e| bad(nid, e.to_string()))?;
                match &mut parsed {
                    Parsed::External { digest, .. } => *digest = Some(d),
                    p @ Parsed::None => {
                        *p = Parsed::External {
                            payload: None,
                            digest: Some(d),
                        }
                    }
                    _ => {}
                }
            }
        } else if name == b"trusted.overlay.overlay.whiteout" && ft == FileType::Regular {
            stat.mode = (stat.mode & !mode::S_IFMT) | mode::S_IFCHR;
            stat.rdev = 0;
            stat.size = 0;
            parsed = Parsed::None;
        } else if name == b"trusted.overlay.overlay.whiteouts"
            || name == b"user.overlay.whiteout"
            || name == b"user.overlay.whiteouts"
        {
        } else if let Some(rest) = name.strip_prefix(ESCAPED) {
            let mut n = OVERLAY.to_vec();
            n.extend_from_slice(rest);
            user.push((n, value));
        } else if !name.starts_with(OVERLAY) {
            user.push((name, value));
        }
    }
    Ok(Some((stat, parsed, user)))
}

fn set_xattrs(tree: &mut Tree, id: InodeId, nid: u64, xattrs: Xattrs<'_>) -> Result<(), ReadError> {
    for (name, value) in xattrs {
        tree.set_xattr(id, &name, value)
            .map_err(|source| ReadError::Tree { nid, source })?;
    }
    Ok(())
}

/// Where in an image `offset` lies, in words: for test failures and
/// debugging ("inode 42 (/usr/bin/ls) +16: i_u").
pub fn describe_offset(data: &[u8], offset: u64) -> String {
    const SB_FIELDS: [(u64, &str); 14] = [
        (0, "magic"),
        (4, "checksum"),
        (8, "feature_compat"),
        (12, "blkszbits"),
        (14, "root_nid"),
        (16, "inos"),
        (24, "build_time"),
        (32, "build_time_nsec"),
        (36, "blocks"),
        (40, "meta_blkaddr"),
        (44, "xattr_blkaddr"),
        (48, "uuid"),
        (64, "volume_name"),
        (80, "feature_incompat/reserved"),
    ];
    if offset < COMPOSEFS_HEADER_SIZE as u64 {
        return format!("composefs header +{offset}");
    }
    if offset < EROFS_SUPER_OFFSET {
        return "padding before the superblock".into();
    }
    if offset < EROFS_SUPER_OFFSET + EROFS_SUPER_SIZE {
        let rel = offset - EROFS_SUPER_OFFSET;
        let f = SB_FIELDS
            .iter()
            .rev()
            .find(|(o, _)| *o <= rel)
            .map_or("?", |f| f.1);
        return format!("superblock +{rel} ({f})");
    }
    let Ok(sb) = superblock(data) else {
        return "beyond the superblock of an unreadable image".into();
    };
    let xattr_start = sb.xattr_blkaddr as u64 * BLOCK_SIZE;
    let meta = sb.meta_blkaddr as u64 * BLOCK_SIZE;
    // Map inodes to paths by walking the directories.
    let r = Reader { data, sb };
    let mut inodes: Vec<(u64, String)> = vec![(sb.root_nid, "/".into())];
    let mut stack = vec![(sb.root_nid, String::new())];
    let mut seen = std::collections::HashSet::new();
    while let Some((nid, path)) = stack.pop() {
        if !seen.insert(nid) {
            continue;
        }
        let Ok(ino) = r.inode(nid) else { continue };
        if ino.mode & mode::S_IFMT != mode::S_IFDIR {
            continue;
        }
        for (name, child) in r.dirents(nid, &ino).unwrap_or_default() {
            if name == b"." || name == b".." {
                continue;
            }
            let p = format!("{path}/{}", String::from_utf8_lossy(name));
            inodes.push((child, p.clone()));
            stack.push((child, p));
        }
    }
    let best = inodes
        .iter()
        .filter(|(nid, _)| meta.saturating_add(nid.saturating_mul(SLOT_SIZE)) <= offset)
        .max_by_key(|(nid, _)| *nid);
    let mut what = String::new();
    if let Some((nid, path)) = best {
        let rel = offset - (meta.saturating_add(nid.saturating_mul(SLOT_SIZE)));
        let compact = r.inode(*nid).map(|i| i.compact).unwrap_or(true);
        let field = match (compact, rel) {
            (_, 0..=1) => "i_format",
            (_, 2..=3) => "i_xattr_icount",
            (_, 4..=5) => "i_mode",
            (true, 6..=7) => "i_nlink",
            (true, 8..=11) | (false, 8..=15) => "i_size",
            (_, 16..=19) => "i_u (blkaddr/rdev/chunk format)",
            (_, 20..=23) => "i_ino",
            (true, 24..=25) | (false, 24..=27) => "i_uid",
            (true, 26..=27) | (false, 28..=31) => "i_gid",
            (false, 32..=43) => "i_mtime",
            (false, 44..=47) => "i_nlink",
            (true, 28..=31) | (false, 48..=63) => "reserved",
            _ => "xattrs or tail data after the inode core",
        };
        what = format!("inode nid {nid} ({path}) +{rel}: {field}");
    }
    if offset >= xattr_start {
        what = format!("{what}; at or after the shared xattr area start {xattr_start:#x}");
    }
    what
}
