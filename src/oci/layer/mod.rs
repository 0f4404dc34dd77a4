//! Reading one filesystem layer: decompression, digest checks, tar members
//! turned into validated [`Change`]s.
//!
//! The stream is layered like this, each stage pulling from the one below,
//! so nothing is buffered beyond a block or two:
//!
//! ```text
//! blob file ─ VerifyingReader (sha256 + size of the blob, from the manifest)
//!           ─ decompressor (by media type, magic bytes checked)
//!           ─ HashingReader (sha256 of the tar stream = diff_id, from the config)
//!           ─ TarReader (framing, bounded extension headers)
//!           ─ LayerReader::next_change (path normalisation, whiteouts, kinds)
//! ```
//!
//! Regular file content is not read by [`LayerReader::next_change`]; the
//! caller streams it with [`LayerReader::content`] (e.g. into an object
//! store) or leaves it, and it is skipped. [`LayerReader::finish`] drains the
//! rest and checks diff_id and blob digest: until it returns `Ok`, nothing
//! read from the layer is trustworthy.

pub mod entry;
pub mod path;
pub mod pax;
pub mod tar;

use std::collections::BTreeMap;
use std::io::{self, BufReader, Cursor, Read};

pub use self::entry::{Change, EntryKind, Metadata, Timestamp};
pub use self::path::{EntryPath, PathError};
use self::tar::{RawEntry, TarError, TarReader};
use super::descriptor::Descriptor;
use super::digest::{DiffId, LayerDigest};
use super::media_type::{Compression, MediaType};
use super::verify::{HashingReader, VerifyingReader};

/// Longest symlink target Linux stores (`PATH_MAX - 1`).
pub const SYMLINK_MAX: usize = 4095;
/// Longest xattr name (`XATTR_NAME_MAX`).
pub const XATTR_NAME_MAX: usize = 255;
/// Largest xattr value (`XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 65536;

/// Whiteout prefix (image-spec `layer.md`, "Whiteouts").
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Opaque directory marker (same section).
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// A layer that cannot be read. Every variant names the layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A media type that is not a filesystem layer.
    #[error(
        "layer {layer} has media type {media_type}, which is not a Linux filesystem layer \
         (expected tar, tar+gzip or tar+zstd)"
    )]
    MediaType {
        /// The layer.
        layer: LayerDigest,
        /// Its media type.
        media_type: MediaType,
    },
    /// Content whose magic bytes contradict the media type.
    #[error("layer {layer}: its media type says {declared} but the content {found}")]
    Magic {
        /// The layer.
        layer: LayerDigest,
        /// The compression the media type says.
        declared: Compression,
        /// What the content looks like.
        found: &'static str,
    },
    /// Reading or decompressing failed (or the blob check did).
    #[error("layer {layer}: {error}")]
    Stream {
        /// The layer.
        layer: LayerDigest,
        /// Why.
        error: io::Error,
    },
    /// The tar stream is malformed.
    #[error("layer {layer}: {error}")]
    Tar {
        /// The layer.
        layer: LayerDigest,
        /// Why.
        error: TarError,
    },
    /// A member sealroot refuses (name, type, xattr, size).
    #[error("layer {layer}: entry {entry:?} (tar offset {offset}): {reason}")]
    Entry {
        /// The layer.
        layer: LayerDigest,
        /// The member's name.
        entry: String,
        /// Its header's offset in the tar stream.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// The uncompressed stream is not the config's `diff_id`.
    #[error(
        "layer {layer}: the uncompressed tar stream has digest {actual}, but the image config \
         lists diff_id {expected} for it; the layer or the config was modified"
    )]
    DiffId {
        /// The layer.
        layer: LayerDigest,
        /// What the config lists.
        expected: DiffId,
        /// What the stream hashes to.
        actual: DiffId,
    },
}

impl LayerError {
    /// The layer the error is about.
    pub fn layer(&self) -> LayerDigest {
        match self {
            LayerError::MediaType { layer, .. }
            | LayerError::Magic { layer, .. }
            | LayerError::Stream { layer, .. }
            | LayerError::Tar { layer, .. }
            | LayerError::Entry { layer, .. }
            | LayerError::DiffId { layer, .. } => *layer,
        }
    }
}

type Source<R> = BufReader<io::Chain<Cursor<Vec<u8>>, VerifyingReader<R>>>;

/// The decompressing stage.
enum Decoder<R: Read> {
    Plain(Source<R>),
    Gzip(flate2::bufread::MultiGzDecoder<Source<R>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, Source<R>>>),
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: Read> Decoder<R> {
    fn into_blob(self) -> VerifyingReader<R> {
        let source = match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish(),
        };
        source.into_inner().into_inner().1
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

fn sniff(magic: &[u8]) -> Option<Compression> {
    if magic.starts_with(GZIP_MAGIC) {
        Some(Compression::Gzip)
    } else if magic.starts_with(ZSTD_MAGIC)
        // zstd skippable frames: 0x184D2A50..5F little-endian.
        || (magic.len() == 4 && magic[0] & 0xf0 == 0x50 && magic[1..] == [0x2a, 0x4d, 0x18])
    {
        Some(Compression::Zstd)
    } else {
        None
    }
}

/// Streams the changes of one layer.
pub struct LayerReader<R: Read> {
    layer: LayerDigest,
    diff_id: DiffId,
    tar: TarReader<HashingReader<Decoder<R>>>,
    current: Option<(String, u64)>,
}

impl<R: Read> std::fmt::Debug for LayerReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerReader")
            .field("layer", &self.layer)
            .field("diff_id", &self.diff_id)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl<R: Read> LayerReader<R> {
    /// Starts reading `blob` (already wrapped to check the layer descriptor)
    /// as the layer `descriptor`, whose uncompressed digest must be `diff_id`.
    pub fn new(
        mut blob: VerifyingReader<R>,
        descriptor: &Descriptor,
        diff_id: DiffId,
    ) -> Result<Self, LayerError> {
        let layer = LayerDigest(descriptor.digest);
        let compression =
            descriptor
                .media_type
                .layer_compression()
                .ok_or_else(|| LayerError::MediaType {
                    layer,
                    media_type: descriptor.media_type.clone(),
                })?;
        let mut magic = vec![0u8; 4];
        let mut n = 0;
        while n < magic.len() {
            match blob.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(LayerError::Stream {
                        layer,
                        error: source,
                    });
                }
            }
        }
        magic.truncate(n);
        let found = sniff(&magic);
        if found != (compression != Compression::None).then_some(compression) {
            let found = match found {
                Some(Compression::Gzip) => "is gzip-compressed",
                Some(Compression::Zstd) => "is zstd-compressed",
                _ if compression == Compression::None => "is compressed",
                _ => "is not compressed that way (wrong magic bytes)",
            };
            return Err(LayerError::Magic {
                layer,
                declared: compression,
                found,
            });
        }
        let source = BufReader::with_capacity(128 << 10, Cursor::new(magic).chain(blob));
        let decoder = match compression {
            Compression::None => Decoder::Plain(source),
            Compression::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(source)),
            Compression::Zstd => Decoder::Zstd(Box::new(
                zstd::stream::read::Decoder::with_buffer(source).map_err(|source| {
                    LayerError::Stream {
                        layer,
                        error: source,
                    }
                })?,
            )),
        };
        Ok(LayerReader {
            layer,
            diff_id,
            tar: TarReader::new(HashingReader::new(decoder)),
            current: None,
        })
    }

    /// The layer's digest.
    pub fn layer(&self) -> LayerDigest {
        self.layer
    }

    fn tar_error(&self, e: TarError) -> LayerError {
        match e {
            TarError::Io(source) => LayerError::Stream {
                layer: self.layer,
                error: source,
            },
            e => LayerError::Tar {
                layer: self.layer,
                error: e,
            },
        }
    }

    /// The next change, or `None` at the end of the archive. Members that
    /// carry no change (aufs `.wh..wh.*` metadata) are skipped.
    pub fn next_change(&mut self) -> Result<Option<Change<u64>>, LayerError> {
        loop {
            self.current = None;
            let raw = match self.tar.next_entry() {
                Ok(Some(raw)) => raw,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.tar_error(e)),
            };
            let name = raw.name.escape_ascii().to_string();
            let offset = raw.header_offset;
            match to_change(raw) {
                Ok(Some(change)) => {
                    self.current = Some((name, offset));
                    return Ok(Some(change));
                }
                Ok(None) => continue,
                Err(reason) => {
                    return Err(LayerError::Entry {
                        layer: self.layer,
                        entry: name,
                        offset,
                        reason,
                    });
                }
            }
        }
    }

    /// The current regular file's content (empty for other kinds). Errors
    /// name the layer and the entry.
    pub fn content(&mut self) -> Content<'_, R> {
        Content { reader: self }
    }

    /// Data bytes of the current entry not read yet.
    pub fn content_left(&self) -> u64 {
        self.tar.data_left()
    }

    /// An error about the current entry (for callers that find fault with
    /// an entry while handling it).
    pub fn entry_error(&self, reason: impl Into<String>) -> LayerError {
        let (entry, offset) = self.current.clone().unwrap_or_default();
        LayerError::Entry {
            layer: self.layer,
            entry,
            offset,
            reason: reason.into(),
        }
    }

    /// Turns an error met while reading into the most useful one: if the
    /// blob does not match its descriptor, that is the cause (a corrupt
    /// deflate stream or a garbled tar header are only symptoms), so the
    /// rest of the blob is read to check its digest. Otherwise the original
    /// error stands.
    pub fn explain(self, err: LayerError) -> LayerError {
        if matches!(
            err,
            LayerError::DiffId { .. } | LayerError::MediaType { .. }
        ) {
            return err;
        }
        let layer = self.layer;
        let blob = self.tar.into_inner().into_inner_reader().into_blob();
        match blob.finish() {
            Err(source) if super::verify::BlobMismatch::from_io(&source).is_some() => {
                LayerError::Stream {
                    layer,
                    error: source,
                }
            }
            _ => err,
        }
    }

    /// Reads to the end of the stream and checks the diff_id and the blob's
    /// digest and size. Returns the diff_id and the uncompressed size.
    pub fn finish(self) -> Result<(DiffId, u64), LayerError> {
        let layer = self.layer;
        let stream = |source| LayerError::Stream {
            layer,
            error: source,
        };
        let hashing = self.tar.into_inner();
        let (actual, size, decoder) = hashing.finish().map_err(stream)?;
        decoder.into_blob().finish().map_err(stream)?;
        // Both digests are checked before either is reported, so a modified
        // blob is reported as such rather than as a diff_id mismatch.
        if DiffId(actual) != self.diff_id {
            return Err(LayerError::DiffId {
                layer,
                expected: self.diff_id,
                actual: DiffId(actual),
            });
        }
        Ok((self.diff_id, size))
    }
}

/// Reader over the current entry's content.
#[derive(Debug)]
pub struct Content<'a, R: Read> {
    reader: &'a mut LayerReader<R>,
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.tar.read_data(buf).map_err(|e| {
            let (entry, _) = self.reader.current.clone().unwrap_or_default();
            let kind = e.kind();
            io::Error::new(
                kind,
                format!("layer {} entry {entry:?}: {e}", self.reader.layer),
            )
        })
    }
}

/// Validates and normalises one member. `Ok(None)`: nothing to do.
fn to_change(raw: RawEntry) -> Result<Option<Change<u64>>, String> {
    let path = EntryPath::parse(&raw.name).map_err(|e| e.to_string())?;

    if let Some((parent, base)) = path.split_last() {
        if base == OPAQUE_MARKER {
            return Ok(Some(Change::Opaque(parent)));
        }
        if base.starts_with(b".wh..wh.") {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): no meaning in
            // OCI; containerd skips these too.
            return Ok(None);
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err("whiteout names no file".into());
            }
            return Ok(Some(Change::Whiteout(parent.join(hidden))));
        }
    }

    let kind = match raw.typeflag {
        b'0' => EntryKind::File(raw.size),
        b'1' => {
            let target = EntryPath::parse(&raw.link).map_err(|e| {
                format!(
                    "hardlink target {:?}: {e}",
                    raw.link.escape_ascii().to_string()
                )
            })?;
            if target.is_root() {
                return Err("hardlink to the image root".into());
            }
            EntryKind::Hardlink(target)
        }
        b'2' => {
            if raw.link.is_empty() {
                return Err("symlink with an empty target".into());
            }
            if raw.link.contains(&0) {
                return Err("symlink target contains a NUL byte".into());
            }
            if raw.link.len() > SYMLINK_MAX {
                return Err(format!(
                    "symlink target is {} bytes; Linux allows {SYMLINK_MAX}",
                    raw.link.len()
                ));
            }
            EntryKind::Symlink(raw.link)
        }
        b'3' | b'4' => {
            let (major, minor) = raw
                .device
                .ok_or("device without device numbers (pre-POSIX header)")?;
            if raw.typeflag == b'3' {
                EntryKind::CharDevice { major, minor }
            } else {
                EntryKind::BlockDevice { major, minor }
            }
        }
        b'5' => EntryKind::Directory,
        b'6' => EntryKind::Fifo,
        t => return Err(format!("unsupported member type {:?}", t as char)),
    };
    if path.is_root() && !matches!(kind, EntryKind::Directory) {
        return Err(format!(
            "a {} cannot replace the image root",
            kind.type_name()
        ));
    }

    let id = |v: u64, what: &str| {
        u32::try_from(v).map_err(|_| format!("{what} {v} does not fit 32 bits"))
    };
    let mut xattrs = BTreeMap::new();
    for (name, value) in raw.xattrs {
        if name.is_empty() || name.len() > XATTR_NAME_MAX || name.contains(&0) {
            return Err(format!(
                "invalid xattr name {:?}",
                name.escape_ascii().to_string()
            ));
        }
        if value.len() > XATTR_SIZE_MAX {
            return Err(format!(
                "xattr {} value is {} bytes; Linux allows {XATTR_SIZE_MAX}",
                name.escape_ascii(),
                value.len()
            ));
        }
        if let Some(old) = xattrs.insert(name.clone(), value.clone()) {
            if old != value {
                return Err(format!(
                    "xattr {} is given twice with different values",
                    name.escape_ascii()
                ));
            }
        }
    }
    let meta = Metadata {
        permissions: raw.mode & 0o7777,
        uid: id(raw.uid, "uid")?,
        gid: id(raw.gid, "gid")?,
        mtime: Timestamp {
            sec: raw.mtime.0,
            nsec: raw.mtime.1,
        },
        xattrs,
    };
    Ok(Some(Change::Add { path, kind, meta }))
}

#[cfg(test)]
mod tests;
