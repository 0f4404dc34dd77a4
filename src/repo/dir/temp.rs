//! Temporary files in a [`Dir`], for atomic writes (write, fsync, rename
//! into place).

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::{Dir, PathError, unique_name};

impl Dir {
    /// Creates a new, empty file with a unique name starting with
    /// `prefix` here, open for writing; removed again unless persisted.
    pub fn create_temp(&self, prefix: &str, mode: u32) -> Result<TempFile, PathError> {
        loop {
            let name = unique_name(prefix);
            match rustix::fs::openat(
                &*self.fd,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            ) {
                Ok(fd) => {
                    let file = File::from(fd);
                    rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                        .map_err(self.io(&name, "cannot set the mode of"))?;
                    return Ok(TempFile {
                        dir: self.clone(),
                        name,
                        file: Some(file),
                        persisted: false,
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(errno) => return Err(self.io(&name, "cannot create")(errno)),
            }
        }
    }
}

/// A file being written under a temporary name in a [`Dir`]; removed on
/// drop unless [`TempFile::persist`]ed.
#[derive(Debug)]
pub struct TempFile {
    dir: Dir,
    name: String,
    file: Option<File>,
    persisted: bool,
}

impl TempFile {
    /// The open file (for writing), until [`TempFile::close`].
    pub fn file(&mut self) -> Result<&mut File, PathError> {
        let (dir, name) = (&self.dir, &self.name);
        self.file.as_mut().ok_or_else(|| PathError::Io {
            path: dir.display(name),
            action: "already closed",
            errno: Errno::BADF,
        })
    }

    /// The path, for messages.
    pub fn path(&self) -> PathBuf {
        self.dir.display(&self.name)
    }

    /// Closes the writer (fs-verity needs a file no one has open for
    /// writing).
    pub fn close(&mut self) {
        self.file = None;
    }

    /// Opens the file again read-only (after [`TempFile::close`]).
    pub fn reopen(&self) -> Result<File, PathError> {
        self.dir.open_file(&self.name)
    }

    /// Renames it to `name` in `dir` (replacing what is there).
    pub fn persist(mut self, dir: &Dir, name: impl AsRef<OsStr>) -> Result<(), PathError> {
        self.file = None;
        self.dir.rename(&self.name, dir, name)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            self.file = None;
            let _ = rustix::fs::unlinkat(&*self.dir.fd, self.name.as_str(), AtFlags::empty());
        }
    }
}
