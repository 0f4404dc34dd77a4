//! Adding to an OCI layout directory without ever leaving it corrupt.
//!
//! - Blobs are written to a temporary file in `blobs/sha256/`, fsynced and
//!   renamed to their digest; the directory is fsynced. A reader sees the
//!   whole blob or none. An existing blob is kept if its content is right.
//! - `index.json` is rewritten the same way (temporary file + rename), and
//!   only after every blob it will reference is in place.
//! - Concurrent writers (two `sealroot seal` runs, or one racing a tool
//!   that also takes the lock) are serialised by `flock` on the layout
//!   directory itself, so no lock file is added to the layout; the
//!   read-modify-write of index.json happens under that lock. (Tools that do
//!   not lock — skopeo, umoci — can still race; that is true of any two of
//!   them as well.)
//! - Existing index.json entries are kept as JSON values, unknown fields
//!   included: only an entry is appended.

use crate::atomic::Mode;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::artifact::BuiltArtifact;
use super::descriptor::{ANNOTATION_REF_NAME, Descriptor};
use super::digest::{Sha256Digest, Sha256Hasher};
use super::index::ImageIndex;
use super::stored::Stored;

/// A failed write. Nothing was changed unless the variant says so.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file system operation failed.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// An atomic write (blob, `index.json`) failed.
    #[error(transparent)]
    Write(#[from] crate::atomic::Error),
    /// The directory has no `oci-layout` file.
    #[error("{path} is not an OCI image layout (no oci-layout file); refusing to write into it")]
    NotALayout {
        /// The directory.
        path: PathBuf,
    },
    /// `index.json` does not parse, so it is not rewritten.
    #[error("{path}/index.json is not a valid image index, refusing to rewrite it: {reason}")]
    BadIndex {
        /// The layout directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The tag already names another manifest.
    #[error(
        "{path}: tag {tag:?} already names {digest}; choose another tag, or replace it \
         (sealroot oci seal --replace-tag)"
    )]
    TagExists {
        /// The layout directory.
        path: PathBuf,
        /// The tag.
        tag: String,
        /// The manifest it names.
        digest: Sha256Digest,
    },
}

/// Writes into an existing layout directory.
#[derive(Debug)]
pub struct LayoutWriter {
    dir: PathBuf,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_owned(),
        error: source,
    }
}

/// Writes `bytes` to `dir/name` atomically (`crate::atomic`: world-readable
/// minus the umask, as skopeo writes layouts).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
    Ok(crate::atomic::write(&dir.join(name), Mode::Umask, bytes)?)
}

impl LayoutWriter {
    /// Opens an existing layout for writing.
    pub fn open(dir: &Path) -> Result<Self, WriteError> {
        if !dir.join("oci-layout").is_file() {
            return Err(WriteError::NotALayout {
                path: dir.to_owned(),
            });
        }
        Ok(LayoutWriter {
            dir: dir.to_owned(),
        })
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a blob under its digest. Returns the digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Sha256Digest, WriteError> {
        let digest = Sha256Digest::of(bytes);
        let blobs = self.dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(io_at(&blobs))?;
        let path = blobs.join(digest.to_hex());
        if blob_is_intact(&path, &digest) {
            return Ok(digest);
        }
        write_atomic(&blobs, &digest.to_hex(), bytes)?;
        Ok(digest)
    }

    /// Appends `desc` to index.json unless an entry with its digest is
    /// already there. Returns whether it was added.
    pub fn add_to_index(&self, desc: &Descriptor) -> Result<bool, WriteError> {
        self.edit_index(|index, entries| {
            if index.manifests.iter().any(|d| d.digest == desc.digest) {
                return Ok(false);
            }
            entries.push(serde_json::to_value(desc).map_err(|e| e.to_string())?);
            Ok(true)
        })
    }

    /// Lists `desc` in index.json under the tag `tag`
    /// (`org.opencontainers.image.ref.name`). If the tag already names
    /// another manifest: an error, or with `replace` that entry is removed
    /// (as `skopeo copy` to `oci:DIR:TAG` does). Returns the digest the tag
    /// named before, if it was replaced.
    pub fn tag(
        &self,
        desc: &Descriptor,
        tag: &str,
        replace: bool,
    ) -> Result<Option<Sha256Digest>, WriteError> {
        let mut entry = desc.clone();
        entry
            .annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), tag.to_owned());
        let mut replaced = None;
        let mut conflict = None;
        self.edit_index(|index, entries| {
            let tagged: Vec<&Descriptor> = index
                .manifests
                .iter()
                .filter(|d| d.ref_name() == Some(tag))
                .collect();
            if tagged.iter().any(|d| d.digest == desc.digest) {
                return Ok(false);
            }
            if let Some(old) = tagged.first() {
                if !replace {
                    conflict = Some(old.digest);
                    return Ok(false);
                }
                replaced = Some(old.digest);
                entries.retain(|e| {
                    e.pointer("/annotations/org.opencontainers.image.ref.name")
                        .and_then(serde_json::Value::as_str)
                        != Some(tag)
                });
            }
            entries.push(serde_json::to_value(&entry).map_err(|e| e.to_string())?);
            Ok(true)
        })?;
        if let Some(digest) = conflict {
            return Err(WriteError::TagExists {
                path: self.dir.clone(),
                tag: tag.to_owned(),
                digest,
            });
        }
        Ok(replaced)
    }

    /// Read-modify-write of index.json under the layout lock: `edit` sees
    /// the validated index and its `manifests` array as JSON values (so
    /// fields we do not model survive) and says whether it changed them.
    fn edit_index(
        &self,
        edit: impl FnOnce(&ImageIndex, &mut Vec<serde_json::Value>) -> Result<bool, String>,
    ) -> Result<bool, WriteError> {
        let lock = File::open(&self.dir).map_err(io_at(&self.dir))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_at(&self.dir)(e.into()))?;
        let path = self.dir.join("index.json");
        let bytes = std::fs::read(&path).map_err(io_at(&path))?;
        let bad = |reason: String| WriteError::BadIndex {
            path: self.dir.clone(),
            reason,
        };
        // Validate with the typed model, edit the untyped one (keeps fields
        // we do not model).
        let index = Stored::<ImageIndex>::parse(bytes.clone()).map_err(|e| bad(e.to_string()))?;
        let mut value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let entries = value
            .get_mut("manifests")
            .and_then(serde_json::Value::as_array_mut)
            .ok_or_else(|| bad("no manifests array".into()))?;
        if !edit(&index, entries).map_err(bad)? {
            return Ok(false);
        }
        let out = serde_json::to_vec(&value).map_err(|e| bad(e.to_string()))?;
        write_atomic(&self.dir, "index.json", &out)?;
        // The lock is released when `lock` is dropped.
        drop(lock);
        Ok(true)
    }

    /// Writes an artifact's blobs, then its manifest, then registers it in
    /// index.json (untagged, with `artifactType`), so referrer-aware tools
    /// find it by scanning index.json for manifests with a matching subject.
    pub fn write_artifact(&self, artifact: &BuiltArtifact) -> Result<Descriptor, WriteError> {
        for (_, bytes) in &artifact.blobs {
            self.write_blob(bytes)?;
        }
        self.write_blob(&artifact.manifest)?;
        self.add_to_index(&artifact.descriptor)?;
        Ok(artifact.descriptor.clone())
    }
}

/// Does `path` hold exactly the blob `digest`?
fn blob_is_intact(path: &Path, digest: &Sha256Digest) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut h = Sha256Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return h.finish() == *digest,
            Ok(n) => h.update(&buf[..n]),
            Err(_) => return false,
        }
    }
}
