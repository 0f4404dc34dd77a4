//! The composefs object store: backing files named by their fs-verity
//! digest, `XX/rest-of-hex` under a directory (what
//! `mkcomposefs --digest-store=DIR` fills and overlayfs' data-only lower
//! layer serves).
//!
//! Objects are added atomically: copied (reflinked with `FICLONE` where the
//! filesystem can, else `copy_file_range` through `std::io::copy`) into a
//! temporary file in the store, made world-readable, synced, given
//! fs-verity where the filesystem supports it, then renamed into place. An
//! existing object is left alone.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::mkcomposefs_object_params;
use crate::verity::FsVerityDigest;

/// Why an object could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store directory could not be created or used.
    #[error("object store {path}: {error}")]
    Store {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// A file could not be stored.
    #[error("storing {src} as {digest} in the object store: {error}")]
    Object {
        /// The source file.
        src: PathBuf,
        /// Its fs-verity digest (the object's name).
        digest: FsVerityDigest,
        /// What the system said.
        error: io::Error,
    },
}

/// How an object got into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It was already there.
    Existing,
    /// Copied; `verity` says whether fs-verity could be enabled.
    Added {
        /// Reflinked rather than copied.
        reflinked: bool,
        /// fs-verity was enabled on it.
        verity: bool,
    },
}

/// An object directory.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    root: PathBuf,
}

/// `XX/rest-of-hex`, the path of an object relative to the store.
pub fn object_path(digest: &FsVerityDigest) -> String {
    let hex = digest.to_hex();
    format!("{}/{}", &hex[..2], &hex[2..])
}

impl ObjectStore {
    /// Opens (creating if needed) an object store directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<ObjectStore, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| StoreError::Store {
            path: root.clone(),
            error: source,
        })?;
        Ok(ObjectStore { root })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores a copy of `src`, whose fs-verity digest the caller computed.
    pub fn insert_file(&self, src: &Path, digest: &FsVerityDigest) -> Result<Stored, StoreError> {
        self.insert_inner(src, digest)
            .map_err(|source| StoreError::Object {
                src: src.to_owned(),
                digest: *digest,
                error: source,
            })
    }

    fn insert_inner(&self, src: &Path, digest: &FsVerityDigest) -> io::Result<Stored> {
        let rel = object_path(digest);
        let dest = self.root.join(&rel);
        if fs::symlink_metadata(&dest).is_ok() {
            return Ok(Stored::Existing);
        }
        let dir = self.root.join(&rel[..2]);
        match fs::create_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let mut input = File::open(src)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp")
            .tempfile_in(&self.root)?;
        let reflinked = rustix::fs::ioctl_ficlone(tmp.as_file(), &input).is_ok();
        if !reflinked {
            io::copy(&mut input, tmp.as_file_mut())?;
        }
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
        tmp.as_file().sync_all()?;
        // fs-verity needs the file open read-only with no writer left.
        let path = tmp.into_temp_path();
        let verity = File::open(&path)
            .map(|f| crate::verity::ioctl::enable(&f, &mkcomposefs_object_params(), None).is_ok())
            .unwrap_or(false);
        path.persist(&dest).map_err(|e| e.error)?;
        Ok(Stored::Added { reflinked, verity })
    }
}
