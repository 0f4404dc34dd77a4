//! Listing the layout's directories for `fsck`, `gc` and `enable-verity`:
//! what is there of the kind the layout puts there, and everything else as
//! an error naming it. Nothing is followed: a symlink where the layout has
//! a file or directory is listed as unexpected, not looked through.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::Error;
use super::dir::{Dir, FileKind, Meta, PathError};
use super::store::Repository;

/// An entry of the kind the layout has at that place.
#[derive(Debug, Clone)]
pub struct Found {
    /// For objects the digest hex (`XX` and the rest); elsewhere the file
    /// name (lossy UTF-8: the layout's names are hex).
    pub name: String,
    /// The directory holding it.
    pub dir: Dir,
    /// Its name in that directory.
    pub file_name: OsString,
    /// The path relative to the repository.
    pub rel: PathBuf,
}

impl Found {
    /// The full path, for messages.
    pub fn path(&self) -> PathBuf {
        self.dir.display(&self.file_name)
    }

    /// Opens it as a regular file with one link.
    pub fn open(&self) -> Result<File, PathError> {
        self.dir.open_file(&self.file_name)
    }

    /// Reads it whole (at most `limit` bytes), as a regular file with one
    /// link.
    pub fn read(&self, limit: u64) -> Result<Vec<u8>, PathError> {
        self.dir.read_file(&self.file_name, limit)
    }

    /// `lstat` (`None` if it is gone).
    pub fn meta(&self) -> Result<Option<Meta>, PathError> {
        self.dir.stat(&self.file_name)
    }
}

/// What a directory of the layout holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Entries of the expected kind, sorted by name.
    pub found: Vec<Found>,
    /// Everything else: each error names the entry and what it is.
    pub unexpected: Vec<PathError>,
}

impl Listing {
    fn entry(
        &mut self,
        dir: &Dir,
        rel: &Path,
        name: &OsString,
        kind: FileKind,
        expected: FileKind,
    ) {
        if kind == expected {
            self.found.push(Found {
                name: name.to_string_lossy().into_owned(),
                dir: dir.clone(),
                file_name: name.clone(),
                rel: rel.join(name),
            });
        } else {
            self.unexpected
                .push(dir.unexpected(Path::new(name), kind, expected));
        }
    }

    /// The first unexpected entry as an error (for commands that refuse to
    /// work on a repository holding one), saying how many there are.
    pub fn refuse_unexpected(self, command: &str) -> Result<Vec<Found>, Error> {
        let count = self.unexpected.len();
        match self.unexpected.into_iter().next() {
            None => Ok(self.found),
            Some(first) if count == 1 => Err(Error::Unsafe {
                command: command.to_owned(),
                first,
                more: 0,
            }),
            Some(first) => Err(Error::Unsafe {
                command: command.to_owned(),
                first,
                more: count - 1,
            }),
        }
    }

    fn append(&mut self, other: Listing) {
        self.found.extend(other.found);
        self.unexpected.extend(other.unexpected);
    }
}

/// `objects/`: regular files in the `XX/` directories. A regular file
/// directly in `objects/` is listed under its own name (never an object
/// name: fsck reports it, gc removes it).
pub fn objects(repo: &Repository) -> Result<Listing, Error> {
    let objects = repo.dir().open_dir("objects")?;
    let mut out = Listing::default();
    for e in objects.entries()? {
        match e.kind {
            FileKind::Directory => {
                let sub = objects.open_dir(Path::new(&e.name))?;
                let prefix = e.name_lossy();
                let rel = Path::new("objects").join(&e.name);
                let mut l = Listing::default();
                for f in sub.entries()? {
                    l.entry(&sub, &rel, &f.name, f.kind, FileKind::Regular);
                }
                for f in &mut l.found {
                    f.name = format!("{prefix}{}", f.name);
                }
                out.append(l);
            }
            FileKind::Regular => out.entry(
                &objects,
                Path::new("objects"),
                &e.name,
                e.kind,
                FileKind::Regular,
            ),
            kind => out.entry(
                &objects,
                Path::new("objects"),
                &e.name,
                kind,
                FileKind::Directory,
            ),
        }
    }
    Ok(out)
}

/// The entries of directory `rel` that are of kind `expected` (regular
/// files in `images/`, `blobs/sha256/`, `tmp/`; symlinks in `by-config/`
/// and `by-image/`).
pub fn entries(repo: &Repository, rel: &str, expected: FileKind) -> Result<Listing, Error> {
    let dir = repo.dir().open_dir(rel)?;
    let mut out = Listing::default();
    for e in dir.entries()? {
        out.entry(&dir, Path::new(rel), &e.name, e.kind, expected);
    }
    Ok(out)
}
