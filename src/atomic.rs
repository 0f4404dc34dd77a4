//! Replacing a file atomically: the one way sealroot writes an output file
//! by path (signatures, keys, certificates, EROFS images, OCI blobs and
//! `index.json`, Merkle trees, and sealroot-prepare's `/run/sealroot`
//! records).
//!
//! The content goes to a new temporary file in the target's directory
//! (`O_CREAT|O_EXCL`, so nothing existing is ever written through), is
//! flushed and fsynced, renamed over the target, and the directory is
//! fsynced so the rename survives a crash. A reader sees the old file or
//! the complete new one, never a part. On any failure the temporary file is
//! removed and the target is untouched.
//!
//! **File modes, one rule**: outputs are created like any Unix tool creates
//! them (fopen(3), `fsverity sign`, `mkcomposefs`, skopeo): `0666` minus
//! the process umask ([`Mode::Umask`]). Secrets (private keys) are created
//! with exactly `0600` ([`Mode::Private`]) from the first byte on, whatever
//! the umask. The temporary file has the final mode before any content is
//! written.
//!
//! The repository (`repo::dir`) does not use this: it writes relative to
//! directory file descriptors and never follows a symlink on the disk.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The permission bits of a file written by [`write`] / [`write_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `0666` minus the process umask: every non-secret output.
    Umask,
    /// Exactly `0600`: private keys.
    Private,
}

/// Why a file could not be written; the target is as it was.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {what}: {error}", .path.display())]
pub struct Error {
    /// The file that was to be written.
    pub path: PathBuf,
    /// The step that failed.
    pub what: &'static str,
    /// The cause (named in the message, so not a `source`).
    pub error: io::Error,
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, mode: Mode, bytes: &[u8]) -> Result<(), Error> {
    write_with(path, mode, |w| w.write_all(bytes))
}

/// Writes `path` atomically with what `fill` writes (through a 1 MiB
/// buffer); returns what `fill` returns. An error from `fill` is reported
/// as the "writing" step.
pub fn write_with<T>(
    path: &Path,
    mode: Mode,
    fill: impl FnOnce(&mut BufWriter<&File>) -> io::Result<T>,
) -> Result<T, Error> {
    let fail = |what: &'static str| {
        move |error: io::Error| Error {
            path: path.to_owned(),
            what,
            error,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| fail("no file name")(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let (file, tmp) = create_temp(dir, name, mode).map_err(fail("creating a temporary file"))?;
    let guard = RemoveOnDrop(Some(tmp));
    let tmp = guard.0.as_deref().expect("set above");
    let result = {
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        let r = fill(&mut w).map_err(fail("writing"))?;
        w.flush().map_err(fail("writing"))?;
        r
    };
    file.sync_all().map_err(fail("fsync"))?;
    drop(file);
    std::fs::rename(tmp, path).map_err(fail("renaming the temporary file over it"))?;
    guard.disarm();
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("fsync of its directory"))?;
    Ok(result)
}

/// A new file `.NAME.tmp-PID-N` in `dir`, created exclusively with `mode`.
fn create_temp(dir: &Path, name: &std::ffi::OsStr, mode: Mode) -> io::Result<(File, PathBuf)> {
    let pid = std::process::id();
    for n in 0u32.. {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{pid}-{n}"));
        let tmp = dir.join(tmp_name);
        let bits = match mode {
            Mode::Umask => 0o666,
            Mode::Private => 0o600,
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(bits)
            .open(&tmp)
        {
            Ok(file) => {
                if mode == Mode::Private {
                    // open(2) applied the umask; a key is exactly 0600.
                    if let Err(e) = file.set_permissions(PermissionsExt::from_mode(0o600)) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                }
                return Ok((file, tmp));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// Removes the temporary file unless the rename consumed it.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, b"old").unwrap();
        write(&path, Mode::Umask, b"new content").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new content");
        assert_eq!(names(dir.path()), ["out"]);
    }

    #[test]
    fn a_failing_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, b"old").unwrap();
        let err = write_with(&path, Mode::Umask, |w| {
            w.write_all(&[7; 3 << 20])?;
            Err::<(), _>(io::Error::other("generator failed"))
        })
        .unwrap_err();
        assert_eq!(err.what, "writing");
        assert!(err.to_string().contains("generator failed"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["out"]);
    }

    #[test]
    fn a_failing_rename_leaves_no_temporary() {
        // The target is a non-empty directory: rename(2) fails (EISDIR).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("keep"), b"x").unwrap();
        let err = write(&path, Mode::Umask, b"new").unwrap_err();
        assert_eq!(err.what, "renaming the temporary file over it");
        assert_eq!(names(dir.path()), ["out"]);
        assert_eq!(names(&path), ["keep"]);
    }

    #[test]
    fn modes_follow_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        let out = dir.path().join("out");
        write(&key, Mode::Private, b"secret").unwrap();
        write(&out, Mode::Umask, b"public").unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        // 0666 minus the umask, read without changing it: a file created
        // by std with 0666 gets the same bits.
        let probe = dir.path().join("probe");
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&probe)
            .unwrap();
        let want = std::fs::metadata(&probe).unwrap().mode() & 0o777;
        assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o777, want);
    }
}
