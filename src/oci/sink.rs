//! Where regular file content goes while a layer is imported.
//!
//! composefs keeps files of at most 64 bytes inline in the EROFS image
//! (`LCFS_BUILD_INLINE_FILE_SIZE_LIMIT`) and every larger file as an object
//! named by its fs-verity digest. The importer makes that decision
//! ([`store_content`]); an [`ObjectSink`] only sees the large files. The
//! repository implements it by streaming into a temporary file in its object
//! directory while hashing, then `linkat`/`rename` to `objects/XX/<rest>`
//! (dedupe: an existing object of that name is kept). Because objects are
//! content-addressed, storing one for a layer that later fails verification
//! leaves nothing wrong behind — at worst an unreferenced object for gc.
//!
//! `store` takes `&self` and the trait requires `Sync`, so one sink can
//! serve layers imported in parallel (see the module docs of `oci`).

use std::cell::RefCell;
use std::io::{self, Read};

use crate::verity::digest::{MerkleHasher, digest_bytes};
use crate::verity::{FsVerityDigest, VerityParams};

/// Files up to this size are kept inline in the composefs image.
pub const INLINE_MAX: u64 = 64;

/// A regular file's content after import.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileContent {
    /// At most [`INLINE_MAX`] bytes, kept in the image (empty files too).
    Inline(Vec<u8>),
    /// Stored in the object store under its fs-verity digest.
    External {
        /// Its fs-verity digest (the object's name).
        digest: FsVerityDigest,
        /// Its size in bytes.
        size: u64,
    },
}

impl FileContent {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            FileContent::Inline(v) => v.len() as u64,
            FileContent::External { size, .. } => *size,
        }
    }
}

/// Stores file contents larger than [`INLINE_MAX`] and names them by their
/// fs-verity digest.
pub trait ObjectSink: Sync {
    /// The parameters objects are hashed with (composefs: sha256, 4 KiB
    /// blocks, no salt).
    fn params(&self) -> &VerityParams;

    /// Reads exactly `size` bytes from `content`, stores them, and returns
    /// their fs-verity digest. A short read is an error (`UnexpectedEof`),
    /// and nothing may be left under the digest's name unless it is
    /// complete.
    fn store(&self, content: &mut dyn Read, size: u64) -> io::Result<FsVerityDigest>;

    /// [`ObjectSink::store`] for content already in memory (the importer
    /// reads files of up to a few MiB ahead and hands them to worker
    /// threads). Sinks override it to hash and write straight from `data`,
    /// without the chunked copy a reader needs, and may hash before they
    /// write (an object that exists already is then not written at all).
    fn store_bytes(&self, data: &[u8]) -> io::Result<FsVerityDigest> {
        self.store(&mut &data[..], data.len() as u64)
    }
}

/// Computes digests without keeping anything: for dry runs and for
/// computing an image's composefs digest without a repository.
#[derive(Debug, Clone, Default)]
pub struct DigestOnlySink {
    params: VerityParams,
}

impl DigestOnlySink {
    /// A sink computing digests with `params`.
    pub fn new(params: VerityParams) -> Self {
        DigestOnlySink { params }
    }
}

impl ObjectSink for DigestOnlySink {
    fn params(&self) -> &VerityParams {
        &self.params
    }

    fn store(&self, content: &mut dyn Read, size: u64) -> io::Result<FsVerityDigest> {
        let mut hasher = MerkleHasher::new(&self.params);
        copy_exact(content, size, |chunk| {
            hasher.update(chunk);
            Ok(())
        })?;
        Ok(hasher.finish())
    }

    fn store_bytes(&self, data: &[u8]) -> io::Result<FsVerityDigest> {
        Ok(digest_bytes(&self.params, data))
    }
}

/// Size of the chunks [`copy_exact`] reads.
const COPY_CHUNK: usize = 256 << 10;

thread_local! {
    /// [`copy_exact`]'s buffer, one per thread and reused: allocating (and
    /// zeroing) 256 KiB per file cost more than hashing a small file.
    static COPY_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Feeds exactly `size` bytes of `content` to `f` in chunks. Helper for
/// sink implementations.
pub fn copy_exact(
    content: &mut dyn Read,
    size: u64,
    mut f: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    COPY_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < COPY_CHUNK {
                buf.resize(COPY_CHUNK, 0);
            }
            copy_with(&mut buf, content, size, &mut f)
        }
        // Called again from inside `f` on this thread: a buffer of its own.
        Err(_) => copy_with(
            &mut vec![0u8; COPY_CHUNK.min(usize::try_from(size).unwrap_or(COPY_CHUNK))],
            content,
            size,
            &mut f,
        ),
    })
}

fn copy_with(
    buf: &mut [u8],
    content: &mut dyn Read,
    size: u64,
    f: &mut impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut left = size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = match content.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("content ended {left} bytes before its declared size {size}"),
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        f(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Reads one file of `size` bytes: inline if small, else into `sink`.
pub fn store_content(
    sink: &dyn ObjectSink,
    content: &mut dyn Read,
    size: u64,
) -> io::Result<FileContent> {
    if size <= INLINE_MAX {
        let mut v = Vec::with_capacity(size as usize);
        copy_exact(content, size, |chunk| {
            v.extend_from_slice(chunk);
            Ok(())
        })?;
        return Ok(FileContent::Inline(v));
    }
    let digest = sink.store(content, size)?;
    Ok(FileContent::External { digest, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_threshold_and_digest() {
        let sink = DigestOnlySink::default();
        let small = vec![7u8; 64];
        assert_eq!(
            store_content(&sink, &mut &small[..], 64).unwrap(),
            FileContent::Inline(small.clone())
        );
        let big = vec![7u8; 65];
        let FileContent::External { digest, size } =
            store_content(&sink, &mut &big[..], 65).unwrap()
        else {
            panic!("65 bytes must be external")
        };
        assert_eq!(size, 65);
        assert_eq!(
            digest,
            crate::verity::digest::digest_bytes(&VerityParams::sha256(), &big)
        );
        let e = store_content(&sink, &mut &big[..10], 65).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
