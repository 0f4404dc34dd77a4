//! `oci-archive:` — an OCI image layout inside a tar file.
//!
//! We index the archive instead of extracting it: one pass over the tar
//! headers records where each member's data lies, and blobs are then read
//! in place with positioned reads (`pread`). Compared with extracting into a
//! temporary directory (what skopeo does), this needs no scratch space the
//! size of the image, writes nothing, and has no extraction attack surface
//! at all: member names never become host paths. Every blob is still checked
//! against its digest as it is read, so a tampered archive is caught exactly
//! as a tampered directory is.
//!
//! Requirements on the archive (all met by `skopeo copy ... oci-archive:`
//! and `podman save --format oci-archive`): uncompressed tar; members are
//! regular files or directories; no duplicate names (which tar would resolve
//! by "last one wins" and a reader by index might not).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::layer::path::EntryPath;
use super::layer::tar::{TarError, TarReader};

/// An archive that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the archive failed.
    #[error("cannot read oci-archive {path}: {error}")]
    Io {
        /// The archive.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// Not a tar the reader accepts.
    #[error("oci-archive {path} is not a readable tar: {error}")]
    Tar {
        /// The archive.
        path: PathBuf,
        /// Why.
        error: TarError,
    },
    /// A compressed archive (sealroot reads uncompressed ones).
    #[error(
        "oci-archive {path} is {compression}-compressed; sealroot reads uncompressed archives \
         (decompress it first, e.g. `{tool} -d`)"
    )]
    Compressed {
        /// The archive.
        path: PathBuf,
        /// The compression its magic bytes show.
        compression: &'static str,
        /// The tool that decompresses it.
        tool: &'static str,
    },
    /// A member the layout cannot use (duplicate, not a regular file, ...).
    #[error("oci-archive {path}: member {member:?}: {reason}")]
    Member {
        /// The archive.
        path: PathBuf,
        /// The member's name.
        member: String,
        /// Why.
        reason: String,
    },
}

/// Where one member's data is.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    size: u64,
}

/// An indexed oci-archive.
#[derive(Debug, Clone)]
pub struct Archive {
    path: PathBuf,
    file: Arc<File>,
    members: HashMap<Vec<u8>, Span>,
}

impl Archive {
    /// Opens an uncompressed oci-archive (a tar of an image layout) and
    /// indexes its members; blobs are read in place later.
    pub fn open(path: &Path) -> Result<Self, ArchiveError> {
        let io_err = |source| ArchiveError::Io {
            path: path.to_owned(),
            error: source,
        };
        let file = File::open(path).map_err(io_err)?;
        let mut magic = [0u8; 4];
        let n = file.read_at(&mut magic, 0).map_err(io_err)?;
        let compressed = match &magic[..n] {
            [0x1f, 0x8b, ..] => Some(("gzip", "gzip")),
            [0x28, 0xb5, 0x2f, 0xfd] => Some(("zstd", "zstd")),
            [b'B', b'Z', b'h', ..] => Some(("bzip2", "bzip2")),
            [0xfd, b'7', b'z', b'X'] => Some(("xz", "xz")),
            _ => None,
        };
        if let Some((compression, tool)) = compressed {
            return Err(ArchiveError::Compressed {
                path: path.to_owned(),
                compression,
                tool,
            });
        }

        let mut tar = TarReader::new(BufReader::with_capacity(64 << 10, &file));
        let mut members = HashMap::new();
        loop {
            let entry = match tar.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(source) => {
                    return Err(ArchiveError::Tar {
                        path: path.to_owned(),
                        error: source,
                    });
                }
            };
            let member_err = |reason: String| ArchiveError::Member {
                path: path.to_owned(),
                member: entry.name.escape_ascii().to_string(),
                reason,
            };
            let name = EntryPath::parse(&entry.name).map_err(|e| member_err(e.to_string()))?;
            match entry.typeflag {
                b'5' => continue,
                b'0' => {}
                t => {
                    return Err(member_err(format!(
                        "type {:?} is not a regular file or directory; an OCI layout holds only files",
                        t as char
                    )));
                }
            }
            let span = Span {
                offset: entry.data_offset,
                size: entry.size,
            };
            if members.insert(name.as_bytes().to_vec(), span).is_some() {
                return Err(member_err("appears twice in the archive".into()));
            }
        }
        Ok(Archive {
            path: path.to_owned(),
            file: Arc::new(file),
            members,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the member at `name` (a normalised path such as `index.json`
    /// or `blobs/sha256/<hex>`), or `None` if there is none.
    pub fn open_member(&self, name: &str) -> Option<(MemberReader, u64)> {
        let span = *self.members.get(name.as_bytes())?;
        Some((
            MemberReader {
                file: Arc::clone(&self.file),
                pos: span.offset,
                end: span.offset + span.size,
            },
            span.size,
        ))
    }
}

/// Reads one member in place.
#[derive(Debug)]
pub struct MemberReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.end - self.pos) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive file shrank while being read",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}
