//! Read access to the deployed repository (`docs/repository.md`) on the
//! untrusted physical root.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)` below the repository directory, so a symlink on
//! the disk (`by-config/<hex>`, or a planted one) can never lead outside
//! the repository, e.g. into the initramfs. Nothing read here is trusted:
//! `deployment.json` and `repo.json` only say where to look, and the
//! verification in [`super::verify`] re-checks every digest.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde::Deserialize;

use crate::errno::errno_name;
use crate::oci::Sha256Digest;
use crate::oci::artifact::VerityAlgorithm;

/// A repository problem (missing or unreadable file, bad JSON hint).
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path}: {what}: {}: {}", errno_name(*errno), explain(*errno))]
    Io {
        path: PathBuf,
        what: &'static str,
        errno: Errno,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn explain(errno: Errno) -> String {
    match errno {
        Errno::NOENT => "no such file or directory".into(),
        Errno::XDEV => "the path leaves the repository".into(),
        Errno::LOOP => "too many symlinks, or a /proc magic link".into(),
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

/// The largest JSON hint read (`repo.json`, `deployment.json`).
const MAX_HINT_SIZE: u64 = 64 * 1024;

/// The repository directory.
pub struct Repo {
    dir: OwnedFd,
    path: PathBuf,
}

/// `repo.json`.
#[derive(Debug, Deserialize)]
struct RepoJson {
    format: u32,
    algorithm: String,
}

/// The parts of `deployment.json` the initramfs uses (hints).
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentJson {
    pub format: u32,
    pub manifest: Sha256Digest,
    pub artifact: Sha256Digest,
}

impl Repo {
    /// Opens the repository at `path` (an absolute path in the initramfs).
    pub fn open(path: &Path) -> Result<Repo, RepoError> {
        let dir = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| RepoError::Io {
            path: path.to_owned(),
            what: "cannot open the repository",
            errno,
        })?;
        Ok(Repo {
            dir,
            path: path.to_owned(),
        })
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
        // repository; RESOLVE_NO_MAGICLINKS: no /proc-style jumps.
        // openat2() refuses O_PATH with flags other than O_DIRECTORY,
        // O_NOFOLLOW and O_CLOEXEC (EINVAL, fs/open.c build_open_flags()).
        let flags = if flags.contains(OFlags::PATH) {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        rustix::fs::openat2(
            &self.dir,
            rel,
            flags,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|errno| RepoError::Io {
            path: self.display(rel),
            what,
            errno,
        })
    }

    /// Opens a file read-only.
    pub fn open_file(&self, rel: &str, what: &'static str) -> Result<File, RepoError> {
        self.openat(rel, OFlags::RDONLY, what).map(File::from)
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
        self.read_limited(&mut f, rel, MAX_HINT_SIZE)
    }

    /// The fs-verity algorithm of the signed files, from `repo.json`.
    pub fn algorithm(&self) -> Result<VerityAlgorithm, RepoError> {
        let bytes = self.read_hint("repo.json")?;
        parse_repo_json(&bytes).map_err(|reason| RepoError::Invalid {
            path: self.display("repo.json"),
            reason,
        })
    }

    /// `deployment.json` of a deployment directory.
    pub fn deployment(&self, dir: &str) -> Result<DeploymentJson, RepoError> {
        let rel = format!("{dir}/deployment.json");
        let bytes = self.read_hint(&rel)?;
        parse_deployment_json(&bytes).map_err(|reason| RepoError::Invalid {
            path: self.display(&rel),
            reason,
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

/// Parses `repo.json`: format 1 and the algorithm of the signed files.
pub fn parse_repo_json(bytes: &[u8]) -> Result<VerityAlgorithm, String> {
    let j: RepoJson =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid repo.json: {e}"))?;
    if j.format != 1 {
        return Err(format!(
            "repository format {} is not supported (this sealroot-prepare reads format 1)",
            j.format
        ));
    }
    j.algorithm.parse().map_err(|e| format!("{e}"))
}

/// Parses `deployment.json` (the fields the initramfs uses; others are
/// ignored, so later formats may add some).
pub fn parse_deployment_json(bytes: &[u8]) -> Result<DeploymentJson, String> {
    let d: DeploymentJson =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid deployment.json: {e}"))?;
    if d.format != 1 {
        return Err(format!(
            "deployment format {} is not supported (expected 1)",
            d.format
        ));
    }
    Ok(d)
}

/// `blobs/sha256/<hex>`.
pub fn blob_path(d: &Sha256Digest) -> String {
    format!("blobs/sha256/{}", d.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_json() {
        // The form docs/repository.md specifies.
        let a = parse_repo_json(br#"{ "format": 1, "algorithm": "fsverity-sha256-12" }"#).unwrap();
        assert_eq!(a, VerityAlgorithm::SHA256_12);
        let e = parse_repo_json(br#"{"format":2,"algorithm":"fsverity-sha256-12"}"#).unwrap_err();
        assert!(e.contains("format 2 is not supported"), "{e}");
        let e = parse_repo_json(br#"{"format":1,"algorithm":"sha256"}"#).unwrap_err();
        assert!(e.contains("invalid fs-verity algorithm"), "{e}");
        assert!(parse_repo_json(b"{").is_err());
    }

    #[test]
    fn deployment_json() {
        let m = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let text = format!(
            r#"{{"format":1,"manifest":"{m}","config":"{m}","artifact":"{m}","image":"ab",
               "algorithm":"fsverity-sha256-12","signatures":"builtin","future":[1]}}"#
        );
        let d = parse_deployment_json(text.as_bytes()).unwrap();
        assert_eq!(d.manifest.to_string(), m);
        let bad = text.replace("\"format\":1", "\"format\":7");
        assert!(
            parse_deployment_json(bad.as_bytes())
                .unwrap_err()
                .contains("format 7")
        );
        let bad = text.replace(m, "sha256:XY");
        assert!(parse_deployment_json(bad.as_bytes()).is_err());
    }
}
