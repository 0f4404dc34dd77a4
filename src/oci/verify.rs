//! Reading a blob while checking it against its descriptor.
//!
//! Every byte sealroot takes from a layout passes through a
//! [`VerifyingReader`]: it hashes what it hands out, refuses to read past the
//! descriptor's size, and at end of stream compares size and sha256. A
//! mismatch surfaces as an `io::Error` wrapping a [`BlobMismatch`], so it
//! stops whatever is consuming the stream (decompressor, tar parser, JSON
//! reader) at the point where the data stops being trustworthy.
//!
//! Bytes read before the end are *not yet verified*: callers must not commit
//! anything derived from them until [`VerifyingReader::finish`] succeeded.
//! The layer importer honours this by writing objects content-addressed
//! (harmless if the import later fails) and publishing nothing before all
//! digests checked out.

use std::io::{self, Read};

use super::digest::{Sha256Digest, Sha256Hasher};

/// What went wrong with a blob's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobMismatch {
    /// More bytes than the descriptor's size.
    #[error(
        "{what} {expected}: content is longer than the {size} bytes its descriptor says; \
         the blob was modified or the descriptor is wrong"
    )]
    TooLong {
        /// What the blob is (`layer`, `config`, ...).
        what: String,
        /// The descriptor's digest.
        expected: Sha256Digest,
        /// The descriptor's size.
        size: u64,
    },
    /// Fewer bytes than the descriptor's size.
    #[error(
        "{what} {expected}: content ends after {actual} bytes but its descriptor says {size}; \
         the blob is truncated or was modified"
    )]
    TooShort {
        /// What the blob is.
        what: String,
        /// The descriptor's digest.
        expected: Sha256Digest,
        /// The descriptor's size.
        size: u64,
        /// The bytes there were.
        actual: u64,
    },
    /// The right size, another digest.
    #[error(
        "{what} {expected}: content has digest {actual}; the blob was modified or \
         corrupted (re-copy the image, e.g. with skopeo copy)"
    )]
    Digest {
        /// What the blob is.
        what: String,
        /// The descriptor's digest.
        expected: Sha256Digest,
        /// The content's digest.
        actual: Sha256Digest,
    },
}

impl BlobMismatch {
    /// Finds a mismatch inside an `io::Error` produced by a verifying reader
    /// (possibly wrapped by a decompressor that kept the inner error).
    pub fn from_io(err: &io::Error) -> Option<&BlobMismatch> {
        err.get_ref()?.downcast_ref::<BlobMismatch>()
    }
}

/// A reader that checks size and sha256 of everything read through it.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    what: String,
    expected: Sha256Digest,
    size: u64,
    read: u64,
    hasher: Option<Sha256Hasher>,
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// `what` names the blob in errors ("layer 2 of image sha256:...").
    pub fn new(inner: R, what: impl Into<String>, expected: Sha256Digest, size: u64) -> Self {
        VerifyingReader {
            inner,
            what: what.into(),
            expected,
            size,
            read: 0,
            hasher: Some(Sha256Hasher::new()),
            verified: false,
        }
    }

    /// What the blob is, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn check_end(&mut self) -> io::Result<()> {
        if self.verified {
            return Ok(());
        }
        if self.read != self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                BlobMismatch::TooShort {
                    what: self.what.clone(),
                    expected: self.expected,
                    size: self.size,
                    actual: self.read,
                },
            ));
        }
        let actual = self.hasher.take().map(Sha256Hasher::finish);
        match actual {
            Some(actual) if actual == self.expected => {
                self.verified = true;
                Ok(())
            }
            Some(actual) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                BlobMismatch::Digest {
                    what: self.what.clone(),
                    expected: self.expected,
                    actual,
                },
            )),
            // The hasher is gone only after a failed check; keep failing.
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} {}: already failed verification",
                    self.what, self.expected
                ),
            )),
        }
    }

    /// Reads whatever the consumer left unread (trailing padding after a
    /// tar's end, bytes after a gzip member), then checks size and digest.
    /// Must be called before anything derived from the blob is trusted.
    pub fn finish(mut self) -> io::Result<Sha256Digest> {
        io::copy(&mut self, &mut io::sink())?;
        self.check_end()?;
        Ok(self.expected)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Ask for one byte more than the descriptor allows, so an over-long
        // blob is detected without reading it all.
        let remaining = self.size - self.read;
        let want = buf
            .len()
            .min(usize::try_from(remaining.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.check_end()?;
            return Ok(0);
        }
        if n as u64 > remaining {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                BlobMismatch::TooLong {
                    what: self.what.clone(),
                    expected: self.expected,
                    size: self.size,
                },
            ));
        }
        self.read += n as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Hashes an uncompressed layer stream on its way to the tar parser, for the
/// `diff_id` check.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256Hasher,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256Hasher::new(),
            read: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The wrapped reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The wrapped reader, abandoning the hash.
    pub fn into_inner_reader(self) -> R {
        self.inner
    }

    /// Drains the rest of the stream and returns its digest and length.
    pub fn finish(mut self) -> io::Result<(Sha256Digest, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.read, self.inner))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8], expected: Sha256Digest, size: u64) -> io::Result<Vec<u8>> {
        let mut r = VerifyingReader::new(data, "test blob", expected, size);
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        r.finish()?;
        Ok(out)
    }

    #[test]
    fn accepts_exact_content() {
        let d = Sha256Digest::of(b"hello");
        assert_eq!(read_all(b"hello", d, 5).unwrap(), b"hello");
    }

    #[test]
    fn names_blob_on_digest_mismatch() {
        let d = Sha256Digest::of(b"hello");
        let e = read_all(b"hellO", d, 5).unwrap_err();
        let m = BlobMismatch::from_io(&e).unwrap();
        assert!(matches!(m, BlobMismatch::Digest { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("test blob") && msg.contains(&d.to_string()),
            "{msg}"
        );
        assert!(
            msg.contains(&Sha256Digest::of(b"hellO").to_string()),
            "{msg}"
        );
    }

    #[test]
    fn size_checks() {
        let d = Sha256Digest::of(b"hello");
        let e = read_all(b"hello!", d, 5).unwrap_err();
        assert!(matches!(
            BlobMismatch::from_io(&e),
            Some(BlobMismatch::TooLong { .. })
        ));
        let e = read_all(b"hell", d, 5).unwrap_err();
        assert!(matches!(
            BlobMismatch::from_io(&e),
            Some(BlobMismatch::TooShort { actual: 4, .. })
        ));
    }

    #[test]
    fn finish_drains_unread_tail() {
        let d = Sha256Digest::of(b"hello world");
        let mut r = VerifyingReader::new(&b"hello world"[..], "t", d, 11);
        let mut five = [0u8; 5];
        r.read_exact(&mut five).unwrap();
        assert_eq!(r.finish().unwrap(), d);
        let mut r = VerifyingReader::new(&b"hello worlD"[..], "t", d, 11);
        r.read_exact(&mut five).unwrap();
        assert!(r.finish().is_err());
    }
}
