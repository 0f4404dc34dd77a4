//! Composefs EROFS images, byte for byte what `mkcomposefs` 1.0 writes
//! (`libcomposefs/lcfs-writer-erofs.c`).
//!
//! Layout: the 32-byte composefs header, zeros to 1024, the EROFS
//! superblock, then all inodes (32-byte slots, compact where the inode's
//! mtime is the image's minimum and ids/sizes fit 16/32 bits, with their
//! xattrs and tail data inline), then the shared xattrs (those used by more
//! than one inode), then, block-aligned, the data blocks (directory blocks
//! and the few file/symlink blocks that are not tail-packed). External
//! files are chunk-based inodes whose single chunk is a hole: overlayfs
//! finds their data through `trusted.overlay.redirect`.

use std::collections::HashMap;
use std::io::{self, Write};

use super::build::{Data, Image, Node};
use super::format::*;
use crate::tree::{Tree, mode};
use crate::verity::FsVerityDigest;
use crate::verity::digest::MerkleHasher;

/// Which composefs format version to write; the defaults are mkcomposefs'
/// (`--min-version=0 --max-version=1`): version 0 unless the tree holds a
/// whiteout, which version 1 marks differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub min_version: u32,
    pub max_version: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            min_version: 0,
            max_version: 1,
        }
    }
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "composefs format version {0} is not supported: this writer (like mkcomposefs 1.0) writes versions 0 and 1"
    )]
    Version(u32),
    #[error(
        "{path}: file of {size} bytes is too large for a composefs image (external files are at most 2^53 bytes)"
    )]
    FileTooLarge { path: String, size: u64 },
    #[error("{path}: its xattrs need {size} bytes, more than an EROFS inode can index; drop some")]
    XattrsTooLarge { path: String, size: u64 },
    #[error("internal error in the EROFS writer: a hardlink names an inode placed nowhere")]
    OrphanLink,
    #[error("hardlink {name:?} points to a directory; directories cannot be hardlinked")]
    DirectoryHardlink { name: String },
    #[error("the image is too large for EROFS: {0}")]
    TooLarge(&'static str),
    #[error("internal error in the EROFS writer: {0}")]
    Internal(&'static str),
    #[error("writing the image: {0}")]
    Io(#[from] io::Error),
}

/// Per-inode layout, computed before anything is written.
#[derive(Default, Clone, Copy)]
struct Layout {
    compact: bool,
    ipad: u32,
    xattr_size: u32,
    n_shared: u32,
    n_blocks: u32,
    tail: u32,
    nid: u64,
    raw_blkaddr: u32,
}

/// Output that counts bytes and optionally computes the fs-verity digest.
struct Sink<'w, W: Write> {
    out: Option<&'w mut W>,
    hasher: Option<MerkleHasher>,
    written: u64,
}

impl<W: Write> Sink<'_, W> {
    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        if let Some(h) = &mut self.hasher {
            h.update(b);
        }
        if let Some(o) = &mut self.out {
            o.write_all(b)?;
        }
        self.written += b.len() as u64;
        Ok(())
    }
    fn pad(&mut self, n: u64) -> io::Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        let mut n = n;
        while n > 0 {
            let k = n.min(4096);
            self.write(&ZEROS[..k as usize])?;
            n -= k;
        }
        Ok(())
    }
    fn align(&mut self, to: u64) -> io::Result<()> {
        let end = round_up(self.written, to);
        self.pad(end - self.written)
    }
}

/// Greedy split of directory entries into blocks (`compute_erofs_dir_size`):
/// returns the full blocks as index ranges and the size of the rest.
fn dirent_blocks(names: impl Iterator<Item = usize>) -> (Vec<(usize, usize)>, usize, usize) {
    let mut blocks = Vec::new();
    let (mut size, mut first) = (0usize, 0usize);
    for (i, len) in names.enumerate() {
        let len = DIRENT_SIZE + len;
        if size + len > BLOCK_SIZE as usize {
            blocks.push((first, i));
            size = 0;
            first = i;
        }
        size += len;
    }
    (blocks, first, size)
}

/// The writer's state over one image.
struct Writer<'t> {
    img: Image<'t>,
    layout: Vec<Layout>,
    /// Shared xattr pair -> byte offset in the shared area.
    shared: HashMap<(u32, u32), u64>,
    shared_order: Vec<(u32, u32)>,
    shared_size: u64,
    inodes_end: u64,
    n_data_blocks: u64,
    version: u32,
}

fn children<'a, 't>(img: &'a Image<'t>, node: &Node<'t>) -> &'a [super::build::Child<'t>] {
    match node.data {
        Data::Dir { start, end } => &img.children[start as usize..end as usize],
        _ => &[],
    }
}

impl<'t> Writer<'t> {
    fn xattr_pairs(&self, i: usize) -> &[(u32, u32)] {
        let n = &self.img.nodes[i];
        &self.img.xattrs[n.xattr_start as usize..n.xattr_end as usize]
    }

    /// `compute_erofs_shared_xattrs`: xattrs used more than once are stored
    /// once, in descending (name, value length, value) order.
    fn share_xattrs(&mut self) {
        let mut count: HashMap<(u32, u32), u32> = HashMap::new();
        for &pair in &self.img.xattrs {
            *count.entry(pair).or_default() += 1;
        }
        let mut multi: Vec<(u32, u32)> = count
            .into_iter()
            .filter(|&(_, c)| c > 1)
            .map(|(p, _)| p)
            .collect();
        let (names, values) = (&self.img.names, &self.img.values);
        multi.sort_unstable_by(|a, b| {
            let (an, av, bn, bv) = (
                names.get(a.0),
                values.get(a.1),
                names.get(b.0),
                values.get(b.1),
            );
            bn.cmp(an)
                .then(bv.len().cmp(&av.len()))
                .then_with(|| bv.cmp(av))
        });
        let mut off = 0;
        for &p in &multi {
            self.shared.insert(p, off);
            off += xattr_entry_size(names.get(p.0), values.get(p.1).len());
        }
        self.shared_size = off;
        self.shared_order = multi;
    }

    /// Whether the i-th xattr of a node is stored shared: shared ones, up
    /// to 128 per inode, in name order.
    fn shared_flags(&self, i: usize) -> impl Iterator<Item = ((u32, u32), bool)> + '_ {
        let mut n_shared = 0;
        self.xattr_pairs(i).iter().map(move |&p| {
            let s = self.shared.contains_key(&p) && n_shared < MAX_SHARED_PER_INODE;
            if s {
                n_shared += 1;
            }
            (p, s)
        })
    }

    fn compute_layout(&mut self) -> Result<(), WriteError> {
        let min = self.img.min_mtime;
        let mut pos = EROFS_SUPER_OFFSET + EROFS_SUPER_SIZE;
        let meta_start = pos / BLOCK_SIZE * BLOCK_SIZE;
        self.layout = vec![Layout::default(); self.img.nodes.len()];
        for i in 0..self.img.nodes.len() {
            let node = &self.img.nodes[i];
            let ty = node.mode & mode::S_IFMT;
            let (mut n_blocks, mut tail): (u64, u64) = match node.data {
                Data::Dir { .. } => {
                    let (blocks, _, rest) =
                        dirent_blocks(children(&self.img, node).iter().map(|c| c.name.len()));
                    let (mut nb, mut t) = (blocks.len() as u64, rest as u64);
                    if t > BLOCK_SIZE / 2 {
                        nb += 1;
                        t = 0;
                    }
                    (nb, t)
                }
                Data::Symlink(t) => (0, t.len() as u64),
                Data::Inline(c) => {
                    let (mut nb, mut t) =
                        (c.len() as u64 / BLOCK_SIZE, c.len() as u64 % BLOCK_SIZE);
                    if t > BLOCK_SIZE / 2 {
                        nb += 1;
                        t = 0;
                    }
                    (nb, t)
                }
                Data::External { chunks, .. } => (0, chunks as u64 * 4),
                Data::None => (0, 0),
            };
            let size = match node.data {
                Data::Dir { .. } => n_blocks * BLOCK_SIZE + tail,
                _ => node.size,
            };
            let compact = node.mtime == min
                && node.nlink <= u16::MAX as u32
                && node.uid <= u16::MAX as u32
                && node.gid <= u16::MAX as u32
                && size <= u32::MAX as u64;
            let inode_size = if compact {
                INODE_COMPACT_SIZE
            } else {
                INODE_EXTENDED_SIZE
            } as u64;
            let (mut n_shared, mut unshared) = (0u64, 0u64);
            for (p, s) in self.shared_flags(i) {
                if s {
                    n_shared += 1;
                } else {
                    unshared +=
                        xattr_entry_size(self.img.names.get(p.0), self.img.values.get(p.1).len());
                }
            }
            let xattr_size = if n_shared == 0 && unshared == 0 {
                0
            } else {
                round_up(XATTR_IBODY_HEADER_SIZE as u64 + n_shared * 4 + unshared, 4)
            };
            if xattr_icount(xattr_size) > u16::MAX as u64 {
                return Err(WriteError::XattrsTooLarge {
                    path: self.img_path(i),
                    size: xattr_size,
                });
            }
            let ppos = pos;
            pos = round_up(pos, SLOT_SIZE);
            let mut ipad = pos - ppos;
            // compute_erofs_inode_padding_for_tail: keep tail data within one block.
            let non_tail = inode_size + xattr_size;
            let extra = if ty == mode::S_IFLNK {
                let total = non_tail + tail;
                let (pos_block, end_block) = (pos / BLOCK_SIZE, (pos + total - 1) / BLOCK_SIZE);
                if total / BLOCK_SIZE > 0 {
                    n_blocks += 1;
                    tail = 0;
                }
                if pos_block != end_block {
                    round_up(pos, BLOCK_SIZE) - pos
                } else {
                    0
                }
            } else {
                let remainder = BLOCK_SIZE - (pos + non_tail) % BLOCK_SIZE;
                if remainder < tail {
                    let extra_pad = round_up(remainder, SLOT_SIZE);
                    let remainder = BLOCK_SIZE - (pos + non_tail + extra_pad) % BLOCK_SIZE;
                    if tail <= remainder {
                        extra_pad
                    } else {
                        n_blocks += 1;
                        tail = 0;
                        round_up(pos, BLOCK_SIZE) - pos
                    }
                } else {
                    0
                }
            };
            ipad += extra;
            pos += extra;
            let isize = inode_size + xattr_size + tail;
            self.n_data_blocks += n_blocks;
            self.layout[i] = Layout {
                compact,
                ipad: ipad as u32,
                xattr_size: xattr_size as u32,
                n_shared: n_shared as u32,
                n_blocks: n_blocks as u32,
                tail: tail as u32,
                nid: (pos - meta_start) / SLOT_SIZE,
                raw_blkaddr: 0,
            };
            pos += isize;
        }
        self.inodes_end = round_up(pos, SLOT_SIZE);
        // Data blocks follow the shared xattrs, in inode order.
        let mut block = round_up(self.inodes_end + self.shared_size, BLOCK_SIZE) / BLOCK_SIZE;
        for l in &mut self.layout {
            if l.n_blocks > 0 {
                l.raw_blkaddr = u32::try_from(block)
                    .map_err(|_| WriteError::TooLarge("more than 2^32 blocks"))?;
                block += l.n_blocks as u64;
            }
        }
        if self.layout[0].nid >= u16::MAX as u64 {
            return Err(WriteError::TooLarge(
                "root inode beyond the 16-bit root_nid",
            ));
        }
        Ok(())
    }

    fn img_path(&self, mut i: usize) -> String {
        let mut parts = Vec::new();
        while i != 0 {
            parts.push(String::from_utf8_lossy(self.img.nodes[i].name).into_owned());
            i = self.img.nodes[i].parent as usize;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn file_type(node: &Node<'_>) -> u8 {
        match node.mode & mode::S_IFMT {
            mode::S_IFREG => ft::REG_FILE,
            mode::S_IFDIR => ft::DIR,
            mode::S_IFCHR => ft::CHRDEV,
            mode::S_IFBLK => ft::BLKDEV,
            mode::S_IFIFO => ft::FIFO,
            mode::S_IFSOCK => ft::SOCK,
            mode::S_IFLNK => ft::SYMLINK,
            _ => 0,
        }
    }

    fn write_xattr<W: Write>(&self, s: &mut Sink<'_, W>, p: (u32, u32)) -> io::Result<()> {
        let (name, value) = (self.img.names.get(p.0), self.img.values.get(p.1));
        let (index, suffix) = xattr_split(name);
        let mut e = [0u8; 4];
        e[0] = suffix.len() as u8;
        e[1] = index;
        put_u16(&mut e, 2, value.len() as u16);
        s.write(&e)?;
        s.write(suffix)?;
        s.write(value)?;
        s.align(4)
    }

    /// Writes entries `range` of a directory as one dirent chunk.
    fn write_dirents<W: Write>(
        &self,
        s: &mut Sink<'_, W>,
        node: &Node<'_>,
        range: (usize, usize),
        align: u64,
    ) -> io::Result<()> {
        let kids = &children(&self.img, node)[range.0..range.1];
        let mut nameoff = (kids.len() * DIRENT_SIZE) as u64;
        let mut buf = Vec::with_capacity(BLOCK_SIZE as usize);
        for c in kids {
            let target = &self.img.nodes[c.target as usize];
            let mut d = [0u8; DIRENT_SIZE];
            put_u64(&mut d, 0, self.layout[c.target as usize].nid);
            put_u16(&mut d, 8, nameoff as u16);
            d[10] = Self::file_type(target);
            buf.extend_from_slice(&d);
            nameoff += c.name.len() as u64;
        }
        for c in kids {
            buf.extend_from_slice(c.name);
        }
        s.write(&buf)?;
        s.align(align)
    }

    fn write_inode<W: Write>(&self, s: &mut Sink<'_, W>, i: usize) -> io::Result<()> {
        let node = &self.img.nodes[i];
        let l = self.layout[i];
        s.pad(l.ipad as u64)?;
        let ty = node.mode & mode::S_IFMT;
        let mut layout_kind = if l.tail > 0 {
            LAYOUT_FLAT_INLINE
        } else {
            LAYOUT_FLAT_PLAIN
        };
        let mut chunk_format = None;
        let size = match node.data {
            Data::Dir { .. } => l.n_blocks as u64 * BLOCK_SIZE + l.tail as u64,
            Data::External { chunk_bits, .. } => {
                layout_kind = LAYOUT_CHUNK_BASED;
                chunk_format = Some((chunk_bits - BLOCK_BITS) as u16);
                node.size
            }
            Data::Symlink(_) if l.n_blocks == 0 => l.tail as u64,
            _ => node.size,
        };
        let format = layout_kind << 1 | u16::from(!l.compact);
        let icount = xattr_icount(l.xattr_size as u64) as u16;
        // i_u: block address, device number, or chunk format (which, as in
        // mkcomposefs, overwrites the low half of a block address).
        let mut iu = [0u8; 4];
        match ty {
            mode::S_IFCHR | mode::S_IFBLK => put_u32(&mut iu, 0, node.rdev as u32),
            mode::S_IFDIR | mode::S_IFREG | mode::S_IFLNK => {
                if l.n_blocks > 0 {
                    put_u32(&mut iu, 0, l.raw_blkaddr);
                }
                if let Some(f) = chunk_format {
                    put_u16(&mut iu, 0, f);
                }
            }
            _ => {}
        }
        let ino = i as u32;
        if l.compact {
            let mut b = [0u8; INODE_COMPACT_SIZE];
            put_u16(&mut b, 0, format);
            put_u16(&mut b, 2, icount);
            put_u16(&mut b, 4, node.mode as u16);
            put_u16(&mut b, 6, node.nlink as u16);
            put_u32(&mut b, 8, size as u32);
            b[16..20].copy_from_slice(&iu);
            put_u32(&mut b, 20, ino);
            put_u16(&mut b, 24, node.uid as u16);
            put_u16(&mut b, 26, node.gid as u16);
            s.write(&b)?;
        } else {
            let mut b = [0u8; INODE_EXTENDED_SIZE];
            put_u16(&mut b, 0, format);
            put_u16(&mut b, 2, icount);
            put_u16(&mut b, 4, node.mode as u16);
            put_u64(&mut b, 8, size);
            b[16..20].copy_from_slice(&iu);
            put_u32(&mut b, 20, ino);
            put_u32(&mut b, 24, node.uid);
            put_u32(&mut b, 28, node.gid);
            put_u64(&mut b, 32, node.mtime.sec as u64);
            put_u32(&mut b, 40, node.mtime.nsec);
            put_u32(&mut b, 44, node.nlink);
            s.write(&b)?;
        }
        if l.xattr_size > 0 {
            let mut filter = 0u32;
            for &(n, _) in self.xattr_pairs(i) {
                let (index, suffix) = xattr_split(self.img.names.get(n));
                let bit =
                    xxhash_rust::xxh32::xxh32(suffix, XATTR_FILTER_SEED.wrapping_add(index as u32))
                        & (XATTR_FILTER_BITS - 1);
                filter |= 1 << bit;
            }
            let mut h = [0u8; XATTR_IBODY_HEADER_SIZE];
            put_u32(&mut h, 0, !filter);
            h[4] = l.n_shared as u8;
            s.write(&h)?;
            let shared_base = self.inodes_end % BLOCK_SIZE;
            for (p, sh) in self.shared_flags(i) {
                if sh {
                    let off = shared_base + self.shared[&p];
                    s.write(&((off / 4) as u32).to_le_bytes())?;
                }
            }
            for (p, sh) in self.shared_flags(i) {
                if !sh {
                    self.write_xattr(s, p)?;
                }
            }
        }
        match node.data {
            Data::Dir { .. } => {
                let (blocks, rest, _) =
                    dirent_blocks(children(&self.img, node).iter().map(|c| c.name.len()));
                let n = children(&self.img, node).len();
                if blocks.len() as u32 >= l.n_blocks && l.tail > 0 {
                    self.write_dirents(s, node, (rest, n), 1)?;
                }
            }
            Data::Symlink(t) if l.n_blocks == 0 => s.write(t)?,
            Data::Inline(c) if l.tail > 0 => s.write(&c[c.len() - l.tail as usize..])?,
            Data::External { chunks, .. } if l.tail > 0 => {
                for _ in 0..chunks {
                    s.write(&NULL_ADDR.to_le_bytes())?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn write_blocks<W: Write>(&self, s: &mut Sink<'_, W>, i: usize) -> io::Result<()> {
        let node = &self.img.nodes[i];
        let l = self.layout[i];
        if l.n_blocks == 0 {
            return Ok(());
        }
        match node.data {
            Data::Dir { .. } => {
                let kids = children(&self.img, node);
                let (blocks, rest, _) = dirent_blocks(kids.iter().map(|c| c.name.len()));
                for &b in &blocks {
                    self.write_dirents(s, node, b, BLOCK_SIZE)?;
                }
                if (blocks.len() as u32) < l.n_blocks {
                    self.write_dirents(s, node, (rest, kids.len()), BLOCK_SIZE)?;
                }
            }
            // Like mkcomposefs, only the first block of content: inline
            // files are at most 5000 bytes, whose rest is tail-packed.
            Data::Inline(c) | Data::Symlink(c) => {
                s.write(&c[..c.len().min(BLOCK_SIZE as usize)])?;
                s.align(BLOCK_SIZE)?;
            }
            Data::External { .. } => {
                for _ in 0..MAX_CHUNKS {
                    s.write(&NULL_ADDR.to_le_bytes())?;
                }
            }
            Data::None => {}
        }
        Ok(())
    }

    fn write<W: Write>(&self, s: &mut Sink<'_, W>) -> Result<(), WriteError> {
        let mut header = [0u8; COMPOSEFS_HEADER_SIZE];
        put_u32(&mut header, 0, COMPOSEFS_MAGIC);
        put_u32(&mut header, 4, COMPOSEFS_HEADER_VERSION);
        put_u32(
            &mut header,
            8,
            if self.img.has_acl {
                COMPOSEFS_FLAG_HAS_ACL
            } else {
                0
            },
        );
        put_u32(&mut header, 12, self.version);
        s.write(&header)?;
        s.pad(EROFS_SUPER_OFFSET - COMPOSEFS_HEADER_SIZE as u64)?;

        let data_start = round_up(self.inodes_end + self.shared_size, BLOCK_SIZE);
        let blocks = data_start / BLOCK_SIZE + self.n_data_blocks;
        let mut sb = [0u8; EROFS_SUPER_SIZE as usize];
        put_u32(&mut sb, 0, EROFS_SUPER_MAGIC_V1);
        put_u32(
            &mut sb,
            8,
            FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER,
        );
        sb[12] = BLOCK_BITS as u8;
        put_u16(&mut sb, 14, self.layout[0].nid as u16);
        put_u64(&mut sb, 16, self.img.nodes.len() as u64);
        put_u64(&mut sb, 24, self.img.min_mtime.sec as u64);
        put_u32(&mut sb, 32, self.img.min_mtime.nsec);
        put_u32(
            &mut sb,
            36,
            u32::try_from(blocks).map_err(|_| WriteError::TooLarge("more than 2^32 blocks"))?,
        );
        put_u32(
            &mut sb,
            40,
            ((EROFS_SUPER_OFFSET + EROFS_SUPER_SIZE) / BLOCK_SIZE) as u32,
        );
        put_u32(&mut sb, 44, (self.inodes_end / BLOCK_SIZE) as u32);
        s.write(&sb)?;

        for i in 0..self.img.nodes.len() {
            self.write_inode(s, i)?;
        }
        s.align(SLOT_SIZE)?;
        if s.written != self.inodes_end {
            return Err(WriteError::Internal("inode area size mismatch"));
        }
        for &p in &self.shared_order {
            self.write_xattr(s, p)?;
        }
        s.align(BLOCK_SIZE)?;
        if s.written != data_start {
            return Err(WriteError::Internal("shared xattr area size mismatch"));
        }
        for i in 0..self.img.nodes.len() {
            self.write_blocks(s, i)?;
        }
        if s.written != blocks * BLOCK_SIZE {
            return Err(WriteError::Internal("data area size mismatch"));
        }
        Ok(())
    }
}

fn prepare<'t>(tree: &'t Tree, opts: &WriteOptions) -> Result<Writer<'t>, WriteError> {
    if opts.min_version > COMPOSEFS_VERSION_MAX {
        return Err(WriteError::Version(opts.min_version));
    }
    if opts.max_version > COMPOSEFS_VERSION_MAX {
        return Err(WriteError::Version(opts.max_version));
    }
    let max = opts.max_version.max(opts.min_version);
    let version = super::build::choose_version(tree, opts.min_version, max);
    let img = Image::build(tree, version)?;
    let mut w = Writer {
        img,
        layout: Vec::new(),
        shared: HashMap::new(),
        shared_order: Vec::new(),
        shared_size: 0,
        inodes_end: 0,
        n_data_blocks: 0,
        version,
    };
    w.share_xattrs();
    w.compute_layout()?;
    Ok(w)
}

/// Writes the image of `tree` to `out`; returns the image's fs-verity
/// (sha256, 4096-byte blocks) digest, what `mkcomposefs --print-digest`
/// prints.
pub fn write_image(
    tree: &Tree,
    opts: &WriteOptions,
    out: &mut impl Write,
) -> Result<FsVerityDigest, WriteError> {
    let w = prepare(tree, opts)?;
    let mut s = Sink {
        out: Some(out),
        hasher: Some(MerkleHasher::new(&crate::verity::VerityParams::sha256())),
        written: 0,
    };
    w.write(&mut s)?;
    let hasher = s.hasher.take().ok_or(WriteError::Internal("hasher"))?;
    Ok(hasher.finish())
}

/// The image of `tree` in memory.
pub fn image_bytes(tree: &Tree, opts: &WriteOptions) -> Result<Vec<u8>, WriteError> {
    let w = prepare(tree, opts)?;
    let mut out = Vec::new();
    let mut s = Sink {
        out: Some(&mut out),
        hasher: None,
        written: 0,
    };
    w.write(&mut s)?;
    Ok(out)
}

/// The image's fs-verity digest without writing it anywhere
/// (`mkcomposefs --print-digest-only`).
pub fn image_digest(tree: &Tree, opts: &WriteOptions) -> Result<FsVerityDigest, WriteError> {
    let w = prepare(tree, opts)?;
    let mut s: Sink<'_, io::Sink> = Sink {
        out: None,
        hasher: Some(MerkleHasher::new(&crate::verity::VerityParams::sha256())),
        written: 0,
    };
    w.write(&mut s)?;
    let hasher = s.hasher.take().ok_or(WriteError::Internal("hasher"))?;
    Ok(hasher.finish())
}
