//! Reading (and, for detached metadata, writing) an ostree repository on
//! disk, without the ostree library.
//!
//! Layout (ostree's `src/libostree/ostree-repo.c`, `_ostree_loose_path`):
//! `config` (a key file; `[core] mode=`), `refs/heads/<ref>`,
//! `refs/remotes/<remote>/<ref>`, and loose objects
//! `objects/XX/<62 hex>.<type>` with types `commit`, `commitmeta`
//! (detached metadata), `dirtree`, `dirmeta` and `file` (content).
//!
//! Supported modes are the *bare* ones, whose content objects are the
//! files themselves (what composefs redirects to): `bare` (ownership,
//! mode and xattrs are the object file's own; symlinks are symlinks),
//! `bare-user` (the object is a regular file owned by whoever wrote it,
//! the real uid, gid, mode and xattrs in its `user.ostreemeta` xattr;
//! symlinks are regular files holding the target) and `bare-user-only`
//! (mode from the file, uid and gid 0, no xattrs). `archive` repositories
//! (compressed `.filez` objects) cannot back a composefs image.
//!
//! Every path is resolved below the repository with [`Dir`] (no symlink is
//! followed, except that a `bare` symlink object is read as a link);
//! objects may have several hard links (a deployment's checkout shares
//! them by design). Metadata objects are checked against their names
//! (sha256 of their bytes) before use, so the tree read is the one the
//! commit checksum names; content objects are checked by
//! [`super::image`] while it hashes them.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::gvariant::{self, DictEntry};
use super::objects::{Checksum, Commit, DirTree, Meta, ObjectError, Xattrs, check_file_mode};
use crate::repo::dir::{Dir, FileKind, PathError};
use crate::tree::mode;

/// Largest metadata object read (ostree's `OSTREE_MAX_METADATA_SIZE` is
/// 128 MiB; no real dirtree comes near it).
pub const MAX_METADATA_SIZE: u64 = 128 << 20;

/// Why the repository could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A path that is not what it must be (a symlink, missing, not a
    /// directory).
    #[error(transparent)]
    Path(#[from] PathError),
    /// An object that does not parse.
    #[error("{path}: {cause}")]
    Object {
        /// The object file.
        path: PathBuf,
        /// Why.
        cause: ObjectError,
    },
    /// An object whose bytes do not hash to its name.
    #[error(
        "{path}: its sha256 is {actual}, not the checksum it is named by: the object was \
         altered or replaced (run `ostree fsck`)"
    )]
    Corrupt {
        /// The object file.
        path: PathBuf,
        /// The checksum its bytes have.
        actual: Checksum,
    },
    /// A file of the repository (config, ref, object) that cannot be
    /// used.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An `archive` repository (compressed content objects).
    #[error(
        "{repo}: repository mode {mode:?} cannot back a composefs image: its content objects \
         are not plain files. Use a bare, bare-user or bare-user-only repository (a system's \
         /ostree/repo is bare), e.g. `ostree pull-local` into one"
    )]
    UnsupportedMode {
        /// The repository.
        repo: PathBuf,
        /// Its `core.mode`.
        mode: String,
    },
    /// A ref that is not there.
    #[error("{repo}: no ref {name:?} (looked in refs/heads, refs/remotes and refs/mirrors)")]
    NoRef {
        /// The repository.
        repo: PathBuf,
        /// The ref asked for.
        name: String,
    },
}

/// How content objects store their metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoMode {
    /// `bare`: owner, mode and xattrs are the file's own.
    Bare,
    /// `bare-user`: files owned by the user, the real metadata in the
    /// `user.ostreemeta` xattr.
    BareUser,
    /// `bare-user-only`: no ownership or xattrs recorded; modes are the
    /// file's own.
    BareUserOnly,
}

impl RepoMode {
    /// The `core.mode` value.
    pub fn name(self) -> &'static str {
        match self {
            RepoMode::Bare => "bare",
            RepoMode::BareUser => "bare-user",
            RepoMode::BareUserOnly => "bare-user-only",
        }
    }
}

/// A content object's metadata, as `ostree_repo_load_file` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// File type and permission bits (regular file or symlink).
    pub mode: u32,
    /// A regular file's size (a symlink's is its target's length).
    pub size: u64,
    /// A symlink's target.
    pub symlink: Option<Vec<u8>>,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repo {
    root: Dir,
    objects: Dir,
    mode: RepoMode,
    /// `[core] disable-xattrs=true`: bare objects report no xattrs.
    disable_xattrs: bool,
}

impl Repo {
    /// Opens the repository directory `path` (the caller's path; the
    /// repository itself must be a directory, not a symlink).
    pub fn open(path: &Path) -> Result<Repo, RepoError> {
        Self::open_dir(Dir::open_path(path)?)
    }

    /// Opens a repository through a handle already resolved safely (e.g.
    /// `ostree/repo` below a sysroot).
    pub fn open_dir(root: Dir) -> Result<Repo, RepoError> {
        let config = read_limited(&root, Path::new("config"), 1 << 20)?;
        let config = String::from_utf8_lossy(&config);
        let mode = config_value(&config, "core", "mode").unwrap_or_else(|| "bare".into());
        if config_value(&config, "core", "parent").is_some() {
            return Err(RepoError::Invalid {
                path: root.display("config"),
                reason: "has a parent repository ([core] parent=); sealroot reads one \
                         repository only: pull the commit into this one"
                    .into(),
            });
        }
        let mode = match mode.as_str() {
            "bare" => RepoMode::Bare,
            "bare-user" => RepoMode::BareUser,
            "bare-user-only" => RepoMode::BareUserOnly,
            other => {
                return Err(RepoError::UnsupportedMode {
                    repo: root.path().to_owned(),
                    mode: other.to_owned(),
                });
            }
        };
        let disable_xattrs =
            config_value(&config, "core", "disable-xattrs").is_some_and(|v| v == "true");
        let objects = root.open_dir("objects")?;
        Ok(Repo {
            root,
            objects,
            mode,
            disable_xattrs,
        })
    }

    /// The repository's mode (`config`, `core.mode`).
    pub fn mode(&self) -> RepoMode {
        self.mode
    }

    /// The repository's path, for messages.
    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// The `objects/` directory.
    pub fn objects(&self) -> &Dir {
        &self.objects
    }

    /// A checksum as given, or the commit a ref names: `NAME`
    /// (`refs/heads/NAME`, then `refs/mirrors/NAME`) or `REMOTE:NAME`
    /// (`refs/remotes/REMOTE/NAME`).
    pub fn resolve(&self, rev: &str) -> Result<Checksum, RepoError> {
        if let Ok(c) = rev.parse::<Checksum>() {
            return Ok(c);
        }
        let candidates: Vec<PathBuf> = match rev.split_once(':') {
            Some((remote, name)) => vec![Path::new("refs/remotes").join(remote).join(name)],
            None => vec![
                Path::new("refs/heads").join(rev),
                Path::new("refs/mirrors").join(rev),
            ],
        };
        for rel in candidates {
            match read_limited(&self.root, &rel, 1024) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    return text
                        .trim_end_matches('\n')
                        .parse()
                        .map_err(|e| RepoError::Invalid {
                            path: self.root.display(&rel),
                            reason: format!("{e}"),
                        });
                }
                Err(RepoError::Path(e)) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(RepoError::NoRef {
            repo: self.root.path().to_owned(),
            name: rev.to_owned(),
        })
    }

    /// A metadata object's bytes, checked against its checksum.
    fn metadata(&self, csum: &Checksum, ext: &str) -> Result<Vec<u8>, RepoError> {
        let rel = csum.loose_path(ext);
        let bytes = read_limited(&self.objects, Path::new(&rel), MAX_METADATA_SIZE)?;
        let actual = Checksum::of(&bytes);
        if actual != *csum {
            return Err(RepoError::Corrupt {
                path: self.objects.display(&rel),
                actual,
            });
        }
        Ok(bytes)
    }

    fn parsed<T>(
        &self,
        csum: &Checksum,
        ext: &str,
        parse: impl FnOnce(&[u8]) -> Result<T, ObjectError>,
    ) -> Result<T, RepoError> {
        let bytes = self.metadata(csum, ext)?;
        parse(&bytes).map_err(|cause| RepoError::Object {
            path: self.objects.display(csum.loose_path(ext)),
            cause,
        })
    }

    /// Reads, checks against its checksum and parses a commit object.
    pub fn commit(&self, csum: &Checksum) -> Result<Commit, RepoError> {
        self.parsed(csum, "commit", Commit::parse)
    }

    /// Reads, checks and parses a dirtree object.
    pub fn dirtree(&self, csum: &Checksum) -> Result<DirTree, RepoError> {
        self.parsed(csum, "dirtree", DirTree::parse)
    }

    /// Reads, checks and parses a dirmeta object.
    pub fn dirmeta(&self, csum: &Checksum) -> Result<Meta, RepoError> {
        self.parsed(csum, "dirmeta", Meta::parse_dirmeta)
    }

    /// The commit's detached metadata (`a{sv}`), empty when it has none.
    pub fn detached_metadata(&self, commit: &Checksum) -> Result<Vec<DictEntry>, RepoError> {
        let rel = commit.loose_path("commitmeta");
        let bytes = match read_limited(&self.objects, Path::new(&rel), MAX_METADATA_SIZE) {
            Ok(b) => b,
            Err(RepoError::Path(e)) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        gvariant::read_vardict(&bytes).map_err(|e| RepoError::Object {
            path: self.objects.display(&rel),
            cause: e.into(),
        })
    }

    /// Replaces the commit's detached metadata atomically (a temporary
    /// file in `objects/XX/`, renamed over `<commit>.commitmeta`), as
    /// `ostree_repo_write_commit_detached_metadata` does.
    pub fn write_detached_metadata(
        &self,
        commit: &Checksum,
        entries: &[DictEntry],
    ) -> Result<(), RepoError> {
        use std::io::Write;
        let rel = commit.loose_path("commitmeta");
        let (dir, name) = self.objects.parent_of(Path::new(&rel))?;
        let mut tmp = dir.create_temp(".tmp-commitmeta-", 0o644)?;
        let bytes = gvariant::write_vardict(entries);
        let path = tmp.path();
        let io = |e: std::io::Error| RepoError::Invalid {
            path: path.clone(),
            reason: format!("cannot write: {e}"),
        };
        let f = tmp.file()?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        tmp.persist(&dir, name)?;
        dir.sync()?;
        Ok(())
    }

    /// A content object's metadata (`ostree_repo_load_file`'s file info,
    /// symlink target and xattrs, per mode).
    pub fn file_info(&self, csum: &Checksum) -> Result<FileInfo, RepoError> {
        let rel = csum.loose_path("file");
        let (dir, name) = self.objects.parent_of(Path::new(&rel))?;
        let meta = dir.stat(name)?.ok_or_else(|| PathError::Io {
            path: self.objects.display(&rel),
            action: "missing content object",
            errno: rustix::io::Errno::NOENT,
        })?;
        let invalid = |reason: String| RepoError::Invalid {
            path: self.objects.display(&rel),
            reason,
        };
        // The proc path reaches the entry through the verified directory
        // handle, never through a path an attacker could redirect.
        let proc = format!("/proc/self/fd/{}/", dir.fd().as_raw_fd());
        let proc = PathBuf::from(proc).join(name);
        match (self.mode, meta.kind) {
            (RepoMode::BareUser, FileKind::Regular) => {
                let mut f = dir.open_file_linked(name)?;
                let raw = crate::tree::fromdir::get_xattr(&proc, b"user.ostreemeta")
                    .map_err(|e| invalid(format!("reading its user.ostreemeta xattr: {e}")))?
                    .ok_or_else(|| {
                        invalid("bare-user object without its user.ostreemeta xattr".into())
                    })?;
                let m = Meta::parse_filemeta(&raw).map_err(|cause| RepoError::Object {
                    path: self.objects.display(&rel),
                    cause,
                })?;
                let size = f.metadata().map_err(|e| invalid(format!("{e}")))?.len();
                let symlink = if m.mode & mode::S_IFMT == mode::S_IFLNK {
                    let mut target = Vec::new();
                    (&mut f)
                        .take(4097)
                        .read_to_end(&mut target)
                        .map_err(|e| invalid(format!("reading the symlink target: {e}")))?;
                    // ostree writes the target with its NUL and reads it
                    // back with g_strndup (up to the first NUL).
                    if let Some(nul) = target.iter().position(|&b| b == 0) {
                        target.truncate(nul);
                    }
                    Some(target)
                } else {
                    None
                };
                Ok(FileInfo {
                    uid: m.uid,
                    gid: m.gid,
                    mode: m.mode,
                    size,
                    symlink,
                    // `_ostree_canonicalize_xattrs`: sorted by name (the
                    // EROFS writer sorts anyway).
                    xattrs: m.xattrs,
                })
            }
            (RepoMode::Bare | RepoMode::BareUserOnly, FileKind::Regular | FileKind::Symlink) => {
                let st = rustix::fs::lstat(&proc).map_err(|e| invalid(format!("lstat: {e}")))?;
                check_file_mode(st.st_mode).map_err(|cause| RepoError::Object {
                    path: self.objects.display(&rel),
                    cause,
                })?;
                let symlink = match meta.kind {
                    FileKind::Symlink => {
                        Some(dir.read_link(name)?.into_os_string().into_encoded_bytes())
                    }
                    _ => None,
                };
                let (uid, gid, xattrs) = match self.mode {
                    RepoMode::Bare if self.disable_xattrs => (st.st_uid, st.st_gid, Vec::new()),
                    RepoMode::Bare => (
                        st.st_uid,
                        st.st_gid,
                        list_xattrs(&proc)
                            .map_err(|e| invalid(format!("reading its xattrs: {e}")))?,
                    ),
                    _ => (0, 0, Vec::new()),
                };
                Ok(FileInfo {
                    uid,
                    gid,
                    mode: st.st_mode,
                    size: st.st_size as u64,
                    symlink,
                    xattrs,
                })
            }
            (_, kind) => Err(invalid(format!(
                "a {kind} where a {} repository has a content object",
                self.mode.name()
            ))),
        }
    }

    /// Opens a regular content object's data read-only.
    pub fn open_content(&self, csum: &Checksum) -> Result<File, RepoError> {
        Ok(self.objects.open_file_linked(csum.loose_path("file"))?)
    }
}

fn read_limited(dir: &Dir, rel: &Path, limit: u64) -> Result<Vec<u8>, RepoError> {
    let f = dir.open_file_linked(rel)?;
    let mut out = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| RepoError::Invalid {
            path: dir.display(rel),
            reason: format!("cannot read: {e}"),
        })?;
    if out.len() as u64 > limit {
        return Err(RepoError::Invalid {
            path: dir.display(rel),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(out)
}

/// `key=value` of `[section]` in a GLib key file (what ostree's `config`
/// is); the last assignment wins, as in GKeyFile.
fn config_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = "";
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s;
            continue;
        }
        if current == section {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    found = Some(v.trim().to_owned());
                }
            }
        }
    }
    found
}

/// Every xattr of the entry at `path` (not followed), sorted by name
/// (`glnx_dfd_name_get_all_xattrs`; ostree canonicalises the order).
fn list_xattrs(path: &Path) -> Result<Xattrs, rustix::io::Errno> {
    let mut out = crate::tree::fromdir::list_xattrs(path)?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::config_value;

    #[test]
    fn key_file_values() {
        let text = "[core]\nrepo_version=1\nmode=bare-user\n\n[remote \"x\"]\nmode=nope\n";
        assert_eq!(
            config_value(text, "core", "mode").as_deref(),
            Some("bare-user")
        );
        assert_eq!(config_value(text, "core", "parent"), None);
        assert_eq!(
            config_value("[core]\nmode = bare\n", "core", "mode").as_deref(),
            Some("bare")
        );
    }
}
