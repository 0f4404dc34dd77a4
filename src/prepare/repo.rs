//! Read access to the deployed repository (`docs/repository.md`) on the
//! untrusted physical root.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)` below the repository directory, so a symlink on
//! the disk (`by-config/<hex>`, or a planted one) can never lead outside
//! the repository, e.g. into the initramfs. The repository directory
//! itself is opened without following any symlink
//! (`RESOLVE_NO_SYMLINKS`): a symlink at `<sysroot>/sealroot` (or at any
//! component of the configured path) is refused, not followed.
//!
//! Files are opened as `O_PATH` first and must be regular files before
//! they are really opened: a FIFO (whose open blocks until a writer
//! comes), a device node (whose open may act on hardware), a socket or a
//! directory planted where a file is expected is refused at once. Every
//! read is bounded ([`Repo::read_limited`]). Nothing read here is trusted:
//! `deployment.json` and `repo.json` only say where to look, and the
//! verification in [`super::verify`] re-checks every digest.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::errno::errno_name;
use crate::oci::Sha256Digest;
use crate::oci::artifact::VerityAlgorithm;
use crate::repo::json::{Deployment, MAX_JSON_SIZE, RepoConfig};

/// A repository problem (missing or unreadable file, bad JSON hint).
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A system call on a repository path failed.
    #[error("{path}: {what}: {}: {}", errno_name(*errno), explain(*errno))]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// What the kernel said.
        errno: Errno,
    },
    /// A file that is there but unusable (JSON hint, size, contents).
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Something other than a regular file where one must be (a
    /// directory, a FIFO, a device): never opened.
    #[error(
        "{path}: {what}: it is {kind}, not a regular file; something was planted in the \
         repository (remove it and redeploy)"
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// Which file it should have been.
        what: &'static str,
        /// What it is instead.
        kind: &'static str,
    },
}

/// What a non-regular file is, for messages.
fn file_kind(mode: u32) -> &'static str {
    match rustix::fs::FileType::from_raw_mode(mode) {
        rustix::fs::FileType::RegularFile => "a regular file",
        rustix::fs::FileType::Directory => "a directory",
        rustix::fs::FileType::Symlink => "a symlink",
        rustix::fs::FileType::Fifo => "a FIFO (named pipe)",
        rustix::fs::FileType::Socket => "a socket",
        rustix::fs::FileType::CharacterDevice => "a character device",
        rustix::fs::FileType::BlockDevice => "a block device",
        rustix::fs::FileType::Unknown => "of unknown type",
    }
}

fn explain(errno: Errno) -> String {
    match errno {
        Errno::NOENT => "no such file or directory".into(),
        Errno::XDEV => "the path leaves the repository".into(),
        Errno::LOOP => {
            "a symlink where none is allowed, too many symlinks, or a /proc magic link".into()
        }
        Errno::IO => "I/O error (for a file with fs-verity: its content does not match its \
                      Merkle tree, i.e. the disk was altered)"
            .into(),
        Errno::NOKEY => "the kernel refused the file's builtin fs-verity signature: no \
                         certificate in the .fs-verity keyring matches its signer"
            .into(),
        Errno::KEYREJECTED => "the kernel refused the file's builtin fs-verity signature: it \
                               does not verify (the file or the signature was altered)"
            .into(),
        Errno::BADMSG => "the kernel refused the file's builtin fs-verity signature: it is \
                          not a valid PKCS#7 message"
            .into(),
        Errno::PERM => "permission denied (with fs.verity.require_signatures=1: the file has \
                        no builtin signature)"
            .into(),
        other => std::io::Error::from(other).to_string(),
    }
}

/// The repository directory.
#[derive(Debug)]
pub struct Repo {
    dir: OwnedFd,
    path: PathBuf,
    /// How paths below it are resolved.
    resolve: ResolveFlags,
}

impl Repo {
    /// Opens the repository at `path` (an absolute path: the sysroot,
    /// where the initramfs mounted the disk, joined with the repository's
    /// place on it). No component may be a symlink: one planted on the
    /// disk could send everything below to another directory (another
    /// disk, the initramfs); ELOOP says so.
    pub fn open(path: &Path) -> Result<Repo, RepoError> {
        let dir = rustix::fs::openat2(
            rustix::fs::CWD,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|errno| match errno {
            Errno::LOOP => RepoError::Invalid {
                path: path.to_owned(),
                reason: "cannot open the repository: the path contains a symlink, which is \
                         refused (the repository must be a real directory on the physical \
                         root; a symlink there is not sealroot's doing)"
                    .into(),
            },
            errno => RepoError::Io {
                path: path.to_owned(),
                what: "cannot open the repository",
                errno,
            },
        })?;
        Ok(Repo {
            dir,
            path: path.to_owned(),
            resolve: ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        })
    }

    /// As [`Repo::open`], but paths below it are resolved with
    /// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: a symlink anywhere below is
    /// refused (ELOOP), not followed (an ostree deployment's signed files,
    /// the object store: docs/ostree.md, "On-disk contract").
    pub fn open_beneath(path: &Path) -> Result<Repo, RepoError> {
        let mut repo = Repo::open(path)?;
        repo.resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        Ok(repo)
    }

    /// The repository's path (for messages and records).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` as an absolute path, for messages.
    pub fn display(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    fn openat(&self, rel: &str, flags: OFlags, what: &'static str) -> Result<OwnedFd, RepoError> {
        // RESOLVE_IN_ROOT: ".." and absolute symlinks stay inside the
        // repository; RESOLVE_NO_MAGICLINKS: no /proc-style jumps (or, for
        // `open_beneath`, no symlink at all).
        // openat2() refuses O_PATH with flags other than O_DIRECTORY,
        // O_NOFOLLOW and O_CLOEXEC (EINVAL, fs/open.c build_open_flags()).
        let flags = if flags.contains(OFlags::PATH) {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        rustix::fs::openat2(&self.dir, rel, flags, Mode::empty(), self.resolve).map_err(|errno| {
            RepoError::Io {
                path: self.display(rel),
                what,
                errno,
            }
        })
    }

    /// Opens a regular file read-only. It is looked up as `O_PATH` first
    /// (no open of a FIFO, device or socket happens) and reopened through
    /// `/proc/self/fd` only if `fstat` says it is a regular file; that
    /// reopen is the real open (the kernel checks a builtin fs-verity
    /// signature there) of exactly the inode that was checked.
    pub fn open_file(&self, rel: &str, what: &'static str) -> Result<File, RepoError> {
        let handle = self.openat(rel, OFlags::PATH, what)?;
        let io = |errno| RepoError::Io {
            path: self.display(rel),
            what,
            errno,
        };
        let stat = rustix::fs::fstat(&handle).map_err(io)?;
        let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
        if kind != rustix::fs::FileType::RegularFile {
            return Err(RepoError::NotAFile {
                path: self.display(rel),
                what,
                kind: file_kind(stat.st_mode),
            });
        }
        let proc_path = format!("/proc/self/fd/{}", handle.as_raw_fd());
        rustix::fs::open(
            proc_path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(io)
    }

    /// Opens a directory as an `O_PATH` handle.
    pub fn open_dir(&self, rel: &str, what: &'static str) -> Result<OwnedFd, RepoError> {
        self.openat(rel, OFlags::PATH | OFlags::DIRECTORY, what)
    }

    /// Creates `rel` (and missing parents) as directories with `mode`;
    /// for state directories a deploy did not create.
    pub fn create_dirs(&self, rel: &str, mode: u32) -> Result<(), RepoError> {
        let mut done = String::new();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if !done.is_empty() {
                done.push('/');
            }
            done.push_str(part);
            if self.exists(&done)? {
                continue;
            }
            let (parent, name) = match done.rsplit_once('/') {
                Some((p, n)) => (self.open_dir(p, "cannot open the parent directory")?, n),
                None => (
                    rustix::io::dup(&self.dir).map_err(|errno| RepoError::Io {
                        path: self.path.clone(),
                        what: "dup",
                        errno,
                    })?,
                    done.as_str(),
                ),
            };
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(errno) => {
                    return Err(RepoError::Io {
                        path: self.display(&done),
                        what: "cannot create the state directory",
                        errno,
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads a small file whole, refusing more than `limit` bytes.
    pub fn read_limited(
        &self,
        file: &mut File,
        rel: &str,
        limit: u64,
    ) -> Result<Vec<u8>, RepoError> {
        read_limited(file, limit).map_err(|e| match e {
            ReadLimit::Io(errno) => RepoError::Io {
                path: self.display(rel),
                what: "cannot read",
                errno,
            },
            ReadLimit::TooLarge => RepoError::Invalid {
                path: self.display(rel),
                reason: format!("larger than {limit} bytes"),
            },
        })
    }

    /// Reads a small JSON hint file.
    fn read_hint(&self, rel: &str) -> Result<Vec<u8>, RepoError> {
        let mut f = self.open_file(rel, "cannot open")?;
        self.read_limited(&mut f, rel, MAX_JSON_SIZE as u64)
    }

    /// The fs-verity algorithm of the signed files, from `repo.json`.
    pub fn algorithm(&self) -> Result<VerityAlgorithm, RepoError> {
        let bytes = self.read_hint("repo.json")?;
        RepoConfig::parse(&bytes)
            .map(|c| c.algorithm)
            .map_err(|e| RepoError::Invalid {
                path: self.display("repo.json"),
                reason: e.to_string(),
            })
    }

    /// `deployment.json` of a deployment directory, parsed as `sealroot
    /// deploy` writes it (`repo::json`, the one parser of the contract in
    /// docs/repository.md: all fields required, unknown fields refused).
    pub fn deployment(&self, dir: &str) -> Result<Deployment, RepoError> {
        let rel = format!("{dir}/deployment.json");
        let bytes = self.read_hint(&rel)?;
        Deployment::parse(&bytes).map_err(|e| RepoError::Invalid {
            path: self.display(&rel),
            reason: e.to_string(),
        })
    }

    /// Whether `rel` exists (as anything); errors other than ENOENT are
    /// errors.
    pub fn exists(&self, rel: &str) -> Result<bool, RepoError> {
        match self.openat(rel, OFlags::PATH, "cannot look up") {
            Ok(_) => Ok(true),
            Err(RepoError::Io {
                errno: Errno::NOENT,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The names in directory `rel` (without `.` and `..`), unsorted.
    pub fn list_dir(&self, rel: &str, what: &'static str) -> Result<Vec<String>, RepoError> {
        let fd = self.openat(rel, OFlags::RDONLY | OFlags::DIRECTORY, what)?;
        let io = |errno| RepoError::Io {
            path: self.display(rel),
            what,
            errno,
        };
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy();
            if name != "." && name != ".." {
                names.push(name.into_owned());
            }
        }
        Ok(names)
    }

    /// Replaces `name` in directory `dir` with `bytes`, atomically: a
    /// temporary file written and fsynced, then renamed over it (no
    /// symlink is followed, nothing outside the repository is touched).
    pub fn replace_file(&self, dir: &str, name: &str, bytes: &[u8]) -> Result<(), RepoError> {
        use std::io::Write;
        let what = "cannot replace";
        let dir_fd = self.openat(dir, OFlags::RDONLY | OFlags::DIRECTORY, what)?;
        let tmp = format!(".{name}.tmp");
        let io = |errno| RepoError::Io {
            path: self.display(&format!("{dir}/{name}")),
            what,
            errno,
        };
        // Whatever has the temporary name (a leftover, or a FIFO planted
        // so that opening it for writing would block) goes first; the new
        // file is then created, never opened.
        match rustix::fs::unlinkat(&dir_fd, tmp.as_str(), rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(errno) => return Err(io(errno)),
        }
        let fd = rustix::fs::openat(
            &dir_fd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(io)?;
        let mut file = File::from(fd);
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
        drop(file);
        rustix::fs::renameat(&dir_fd, tmp.as_str(), &dir_fd, name).map_err(io)?;
        rustix::fs::fsync(&dir_fd).map_err(io)
    }

    /// The directory handle (for `openat`-style callers).
    pub fn dir(&self) -> impl AsFd + '_ {
        &self.dir
    }
}

enum ReadLimit {
    Io(Errno),
    TooLarge,
}

fn read_limited(file: &mut File, limit: u64) -> Result<Vec<u8>, ReadLimit> {
    let mut out = Vec::new();
    file.by_ref()
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReadLimit::Io(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
    if out.len() as u64 > limit {
        return Err(ReadLimit::TooLarge);
    }
    Ok(out)
}

/// `blobs/sha256/<hex>`.
pub fn blob_path(d: &Sha256Digest) -> String {
    format!("blobs/sha256/{}", d.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `f` on a thread; fails the test if it takes longer than 10 s
    /// (an open that blocks on a FIFO never returns).
    fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{what} did not return within 10 s (blocked?)"))
    }

    fn real_tempdir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().canonicalize().unwrap();
        (t, path)
    }

    #[test]
    fn open_file_refuses_what_is_not_a_regular_file_without_opening_it() {
        let (_t, dir) = real_tempdir();
        std::fs::write(dir.join("file"), b"content").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // /dev/null's numbers: a real device, whose open would succeed.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("null"),
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
        std::fs::create_dir(dir.join("dir")).unwrap();
        std::os::unix::fs::symlink("fifo", dir.join("link-to-fifo")).unwrap();

        let d = dir.clone();
        let results = within_10s("open_file", move || {
            let repo = Repo::open(&d).unwrap();
            ["file", "fifo", "null", "socket", "dir", "link-to-fifo"].map(|name| {
                repo.open_file(name, "cannot open")
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        });
        assert!(results[0].is_ok(), "{:?}", results[0]);
        for (i, kind) in [
            (1, "a FIFO (named pipe)"),
            (2, "a character device"),
            (3, "a socket"),
            (4, "a directory"),
            (5, "a FIFO (named pipe)"),
        ] {
            let e = results[i].as_ref().unwrap_err();
            assert!(
                e.contains(&format!("it is {kind}, not a regular file")),
                "{i}: {e}"
            );
            assert!(e.starts_with(&dir.display().to_string()), "{e}");
        }
        let repo = Repo::open(&dir).unwrap();
        let mut f = repo.open_file("file", "cannot open").unwrap();
        assert_eq!(repo.read_limited(&mut f, "file", 7).unwrap(), b"content");
        let mut f = repo.open_file("file", "cannot open").unwrap();
        assert!(repo.read_limited(&mut f, "file", 6).is_err());
    }

    #[test]
    fn replace_file_does_not_block_on_a_planted_fifo() {
        let (_t, dir) = real_tempdir();
        std::fs::create_dir(dir.join("d")).unwrap();
        std::fs::write(dir.join("d/deployment.json"), b"old").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("d/.deployment.json.tmp"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let d = dir.clone();
        within_10s("replace_file", move || {
            Repo::open(&d)
                .unwrap()
                .replace_file("d", "deployment.json", b"new")
                .unwrap()
        });
        assert_eq!(
            std::fs::read(dir.join("d/deployment.json")).unwrap(),
            b"new"
        );
        assert!(!dir.join("d/.deployment.json.tmp").exists());
    }

    #[test]
    fn refuses_a_repository_path_through_a_symlink() {
        let (_t, dir) = real_tempdir();
        std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
        std::fs::create_dir_all(dir.join("sysroot/real")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", dir.join("sysroot/sealroot")).unwrap();
        std::os::unix::fs::symlink("sysroot", dir.join("linked-sysroot")).unwrap();
        assert!(Repo::open(&dir.join("sysroot/real")).is_ok());
        for path in ["sysroot/sealroot", "linked-sysroot/real"] {
            let e = Repo::open(&dir.join(path)).err().unwrap().to_string();
            assert!(
                e.contains("the path contains a symlink, which is refused"),
                "{e}"
            );
        }
    }
}
