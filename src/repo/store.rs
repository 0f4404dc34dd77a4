//! The repository directory and its atomic, content-addressed writes.
//!
//! Every file is written to `tmp/` (same filesystem), made read-only to
//! writers, given fs-verity where the filesystem supports it, and renamed to
//! its content-derived name: a reader never sees a partial file, and a
//! crash leaves at most an unreferenced temporary for `sealroot gc`.
//!
//! Objects are not fsynced one by one (that would cost a disk flush per
//! file of an image with 50,000 files); `deploy` calls `syncfs` once before
//! it writes the deployment that references them, so after a crash no
//! deployment names an object whose data was not on disk. Existing objects
//! are kept (dedup); `fsck` re-hashes them.
//!
//! Every path inside the repository goes through [`super::dir`]: nothing
//! on the disk (a symlink, a hard link, a FIFO) leads a host tool outside
//! the repository. A [`Repository`] holds the repository's lock for as long
//! as it lives (docs/repository.md, "Path resolution, hard links and
//! locking").

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::io::Errno;

use super::Error;
use super::dir::{Dir, LockHolder, LockMode, PathError, TempFile, optional};
use super::json::{Deployment, MAX_JSON_SIZE, RepoConfig};
use crate::oci::artifact::VerityAlgorithm;
use crate::oci::sink::{ObjectSink, copy_exact};
use crate::oci::{ManifestDigest, Sha256Digest};
use crate::verity::digest::{MerkleHasher, digest_bytes};
use crate::verity::{FsVerityDigest, VerityParams, ioctl};

/// Largest blob read back (manifests, configs, artifacts, signatures:
/// the OCI JSON limit).
pub const MAX_BLOB_SIZE: u64 = crate::oci::stored::MAX_JSON_SIZE;
/// Largest merged EROFS read back whole (fsck, gc).
pub const MAX_IMAGE_SIZE: u64 = 4 << 30;

/// The directories of the layout, in creation order (docs/repository.md).
pub const LAYOUT_DIRS: [&str; 8] = [
    "objects",
    "images",
    "blobs",
    "blobs/sha256",
    "deployments",
    "by-config",
    "by-image",
    "tmp",
];

/// A deployment directory and its parsed `deployment.json` (or why it
/// could not be read, e.g. the entry is a symlink).
#[derive(Debug)]
pub struct FoundDeployment {
    /// The directory's name (the manifest hex when intact).
    pub name: String,
    /// `deployments/<name>`, for messages.
    pub path: PathBuf,
    /// Its `deployment.json`, or why it cannot be read.
    pub deployment: Result<Deployment, Error>,
}

/// Where the repository is, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `<sysroot>/sealroot`: the sysroot must exist (it is the target's
    /// root filesystem); `sealroot` in it must be a directory, not a
    /// symlink.
    Sysroot(PathBuf),
    /// The repository directory itself: the path up to its last component
    /// is the user's (resolved normally), the last component must be a
    /// directory, not a symlink.
    Repo(PathBuf),
}

impl Location {
    /// The repository's path, for messages.
    pub fn path(&self) -> PathBuf {
        match self {
            Location::Sysroot(s) => s.join(super::SYSROOT_DIR),
            Location::Repo(r) => r.clone(),
        }
    }

    /// Opens the repository directory, creating it (only it, never a
    /// parent) when `create`.
    fn open(&self, create: bool) -> Result<Dir, Error> {
        let not_a_repo = || Error::NotARepository {
            path: self.path(),
            location: self.to_string(),
        };
        let (parent, name, what) = match self {
            Location::Sysroot(s) => (
                s.as_path(),
                OsStr::new(super::SYSROOT_DIR),
                "root filesystem (--sysroot)",
            ),
            Location::Repo(r) => match (r.parent(), r.file_name()) {
                (Some(p), Some(n)) if !p.as_os_str().is_empty() => (p, n, "directory"),
                (_, Some(n)) => (Path::new("."), n, "directory"),
                // `/`, `.` or `..`: nothing to create, nothing to refuse.
                _ => {
                    return Dir::open_path(r).map_err(|e| {
                        if e.is_not_found() {
                            not_a_repo()
                        } else {
                            e.into()
                        }
                    });
                }
            },
        };
        let parent_dir = Dir::open_followed(parent).map_err(|e| {
            if e.is_not_found() {
                Error::NoParent {
                    path: parent.to_owned(),
                    what,
                }
            } else {
                e.into()
            }
        })?;
        if create {
            parent_dir.create_dir(name, 0o755)?;
        }
        parent_dir.open_dir(Path::new(name)).map_err(|e| {
            if e.is_not_found() {
                not_a_repo()
            } else {
                e.into()
            }
        })
    }
}

impl fmt::Display for Location {
    /// As command-line arguments: `--sysroot DIR` or `--repo DIR`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (flag, p) = match self {
            Location::Sysroot(s) => ("--sysroot", s),
            Location::Repo(r) => ("--repo", r),
        };
        let s = p.to_string_lossy();
        if !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@".contains(&b))
        {
            write!(f, "{flag} {s}")
        } else {
            write!(f, "{flag} '{}'", s.replace('\'', r"'\''"))
        }
    }
}

/// Which lock a command takes on the repository (docs/repository.md,
/// "Locking").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No lock: only reads files that writers replace atomically
    /// (`repo list`).
    Unlocked,
    /// Shared: readers that must see a stable repository (`fsck`).
    Shared,
    /// Exclusive: every writer (`deploy`, `gc`, `enable-verity`, `init`).
    Exclusive,
}

/// A repository (`<sysroot>/sealroot`), locked as opened.
#[derive(Debug, Clone)]
pub struct Repository {
    root: Dir,
    config: RepoConfig,
}

/// What fs-verity a written file should get.
#[derive(Debug, Clone, Copy)]
pub enum VerityRequest<'a> {
    /// Leave it off (attach-at-boot).
    Off,
    /// Enable it, optionally with a builtin signature.
    On {
        /// Algorithm, block size and salt.
        params: &'a VerityParams,
        /// A builtin signature (DER PKCS#7) to enable it with.
        signature: Option<&'a [u8]>,
    },
}

/// What fs-verity a file ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerityState {
    /// No fs-verity.
    Off,
    /// fs-verity without a builtin signature.
    Enabled,
    /// fs-verity with a builtin signature the kernel accepted.
    Signed,
    /// Requested, but the filesystem or kernel has no fs-verity.
    Unsupported,
}

/// Whether `e` means "this filesystem/kernel cannot do fs-verity" (as
/// opposed to a refusal such as EKEYREJECTED, which is an error).
pub fn is_unsupported(e: &ioctl::Error) -> bool {
    matches!(
        e.errno(),
        Some(Errno::OPNOTSUPP | Errno::NOTTY | Errno::NOSYS)
    )
}

impl Repository {
    /// Opens an existing repository and takes the lock `access` asks for;
    /// `waiting` is told who holds a conflicting lock before this waits
    /// for it.
    pub fn open(
        location: &Location,
        access: Access,
        waiting: &mut dyn FnMut(&[LockHolder]),
    ) -> Result<Self, Error> {
        let root = location.open(false)?;
        match access {
            Access::Unlocked => {}
            Access::Shared => root.lock(LockMode::Shared, waiting)?,
            Access::Exclusive => root.lock(LockMode::Exclusive, waiting)?,
        }
        let Some(config) = read_config(&root)? else {
            return Err(Error::NotARepository {
                path: location.path(),
                location: location.to_string(),
            });
        };
        Ok(Repository { root, config })
    }

    /// Opens the repository at `location` (exclusively locked), creating it
    /// with `algorithm` (default sha256) if it does not exist. An existing
    /// repository must use `algorithm` when one is given. Only the
    /// repository directory is created: its parent (the sysroot) must
    /// exist.
    pub fn open_or_create(
        location: &Location,
        algorithm: Option<VerityAlgorithm>,
        waiting: &mut dyn FnMut(&[LockHolder]),
    ) -> Result<Self, Error> {
        let root = location.open(true)?;
        root.lock(LockMode::Exclusive, waiting)?;
        let Some(config) = read_config(&root)? else {
            let config = RepoConfig::new(algorithm.unwrap_or(VerityAlgorithm::SHA256_12));
            let repo = Repository { root, config };
            repo.create_dirs()?;
            // repo.json last: its presence means the layout is complete.
            repo.put_file(
                Path::new("repo.json"),
                &config.to_json(),
                VerityRequest::Off,
            )?;
            return Ok(repo);
        };
        let repo = Repository { root, config };
        if let Some(wanted) = algorithm
            && wanted != repo.config.algorithm
        {
            return Err(Error::AlgorithmMismatch {
                path: repo.root().to_owned(),
                found: repo.config.algorithm,
                wanted,
            });
        }
        repo.create_dirs()?;
        Ok(repo)
    }

    /// Creates the layout's directories that are missing; the existing
    /// ones must be directories (not symlinks).
    fn create_dirs(&self) -> Result<(), Error> {
        for d in LAYOUT_DIRS {
            self.root.ensure_dir(d)?;
        }
        Ok(())
    }

    /// The repository's path, for messages.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The repository directory: every path below it resolves safely.
    pub fn dir(&self) -> &Dir {
        &self.root
    }

    /// The repository's fs-verity algorithm (`repo.json`).
    pub fn algorithm(&self) -> VerityAlgorithm {
        self.config.algorithm
    }

    /// fs-verity parameters of the signed files.
    pub fn params(&self) -> VerityParams {
        self.config.algorithm.params()
    }

    /// The repository's `repo.json`.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// fs-verity algorithm of the content objects (`repo.json`): their
    /// names, the digests the EROFS records, the parameters fs-verity is
    /// enabled with.
    pub fn object_algorithm(&self) -> VerityAlgorithm {
        self.config.objects
    }

    /// fs-verity parameters of the content objects.
    pub fn object_params(&self) -> VerityParams {
        self.config.objects.params()
    }

    /// `objects/XX/<rest>` (relative to the repository).
    pub fn object_rel(&self, digest: &FsVerityDigest) -> PathBuf {
        let hex = digest.to_hex();
        Path::new("objects").join(&hex[..2]).join(&hex[2..])
    }

    /// `images/<hex>`.
    pub fn image_rel(&self, digest: &FsVerityDigest) -> PathBuf {
        Path::new("images").join(digest.to_hex())
    }

    /// `blobs/sha256/<hex>`.
    pub fn blob_rel(&self, digest: &Sha256Digest) -> PathBuf {
        Path::new("blobs/sha256").join(digest.to_hex())
    }

    /// `deployments/<manifest hex>`.
    pub fn deployment_rel(&self, manifest: &ManifestDigest) -> PathBuf {
        Path::new("deployments").join(manifest.0.to_hex())
    }

    /// `rel` as a full path, for messages.
    pub fn display(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.display(rel)
    }

    /// Opens the regular file `rel` (one link, no symlink on the way).
    pub fn open_file(&self, rel: impl AsRef<Path>) -> Result<File, Error> {
        Ok(self.root.open_file(rel)?)
    }

    /// Reads the regular file `rel` whole (at most `limit` bytes).
    pub fn read_file(&self, rel: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>, Error> {
        Ok(self.root.read_file(rel, limit)?)
    }

    /// `tmp/`.
    pub fn tmp_dir(&self) -> Result<Dir, Error> {
        Ok(self.root.open_dir("tmp")?)
    }

    /// Every deployment, with its parsed `deployment.json` (or why it
    /// could not be read), sorted by directory name. Temporary `.tmp-*`
    /// directories of interrupted deploys are skipped.
    pub fn deployments(&self) -> Result<Vec<FoundDeployment>, Error> {
        let dir = self.root.open_dir("deployments")?;
        let mut out = Vec::new();
        for e in dir.entries()? {
            let name = e.name_lossy();
            if name.starts_with('.') {
                continue;
            }
            let deployment = dir
                .open_dir(Path::new(&e.name))
                .and_then(|d| d.read_file("deployment.json", MAX_JSON_SIZE as u64))
                .map_err(Error::from)
                .and_then(|b| {
                    Deployment::parse(&b).map_err(|source| Error::Json {
                        path: dir.display(&e.name).join("deployment.json"),
                        error: source,
                    })
                });
            out.push(FoundDeployment {
                path: dir.display(&e.name),
                name,
                deployment,
            });
        }
        Ok(out)
    }

    /// Writes `bytes` as `rel` (content-addressed: its name is derived
    /// from the content) with the requested fs-verity. An existing file
    /// with the same bytes and at least the requested verity is kept;
    /// otherwise it is replaced atomically. A symlink, special file or
    /// hard-linked file at `rel` is an error, never written through.
    pub fn put_file(
        &self,
        rel: &Path,
        bytes: &[u8],
        verity: VerityRequest<'_>,
    ) -> Result<VerityState, Error> {
        let (parent, name) = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => (
                self.root.ensure_dir(p)?,
                rel.file_name().unwrap_or(rel.as_os_str()),
            ),
            _ => (self.root.clone(), rel.as_os_str()),
        };
        if let Some(state) = existing_state(&parent, name, bytes, verity)? {
            return Ok(state);
        }
        let mut tmp = self.tmp_dir()?.create_temp("w", 0o644)?;
        let tpath = tmp.path();
        let f = tmp.file()?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(Error::io("writing", &tpath))?;
        // fs-verity needs the file open read-only with no writer left.
        tmp.close();
        let state = enable(&tmp, &self.display(rel), verity)?;
        tmp.persist(&parent, name)?;
        parent.sync()?;
        Ok(state)
    }

    /// A sink that stores file contents as objects while an image is
    /// imported.
    pub fn object_sink(&self) -> Result<ObjectWriter<'static>, Error> {
        self.object_sink_signed(None)
    }

    /// An object sink that gives each object its builtin signature from a
    /// bundle (`objsig`), as `signing` says.
    pub fn object_sink_signed<'b>(
        &self,
        signing: Option<ObjectSigning<'b>>,
    ) -> Result<ObjectWriter<'b>, Error> {
        Ok(ObjectWriter {
            tmp: self.tmp_dir()?,
            objects: self.root.open_dir("objects")?,
            fanout: (0..256).map(|_| OnceLock::new()).collect(),
            params: self.object_params(),
            try_verity: AtomicBool::new(true),
            added: AtomicU64::new(0),
            existing: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            verity_enabled: AtomicU64::new(0),
            without_verity: AtomicU64::new(0),
            signing,
            try_signing: AtomicBool::new(true),
            signed: AtomicU64::new(0),
            resigned: AtomicU64::new(0),
            signature_kept: AtomicU64::new(0),
            unsigned: AtomicU64::new(0),
        })
    }

    /// `syncfs` of the repository's filesystem: makes every object written
    /// so far durable before a deployment references them.
    pub fn sync(&self) -> Result<(), Error> {
        Ok(self.root.syncfs()?)
    }
}

/// `repo.json`, or `None` when there is none.
fn read_config(root: &Dir) -> Result<Option<RepoConfig>, Error> {
    let Some(bytes) = optional(root.read_file("repo.json", MAX_JSON_SIZE as u64))? else {
        return Ok(None);
    };
    RepoConfig::parse(&bytes)
        .map(Some)
        .map_err(|source| Error::Json {
            path: root.display("repo.json"),
            error: source,
        })
}

/// Enables fs-verity on the closed temporary file `tmp` as requested
/// (`dest` names it in messages).
fn enable(tmp: &TempFile, dest: &Path, verity: VerityRequest<'_>) -> Result<VerityState, Error> {
    let VerityRequest::On { params, signature } = verity else {
        return Ok(VerityState::Off);
    };
    let f = tmp.reopen()?;
    match ioctl::enable(&f, params, signature) {
        Ok(()) if signature.is_some() => Ok(VerityState::Signed),
        Ok(()) => Ok(VerityState::Enabled),
        Err(e) if is_unsupported(&e) && signature.is_none() => Ok(VerityState::Unsupported),
        Err(source) => Err(Error::Verity {
            path: dest.to_owned(),
            error: source.at(dest),
        }),
    }
}

/// The state of an existing `name` in `dir` if it holds `bytes` with at
/// least the requested verity; `None` when it must be (re)written. A
/// symlink, special file or hard-linked file there is an error.
fn existing_state(
    dir: &Dir,
    name: &OsStr,
    bytes: &[u8],
    verity: VerityRequest<'_>,
) -> Result<Option<VerityState>, Error> {
    let Some(meta) = dir.stat(name)? else {
        return Ok(None);
    };
    dir.require_file(name, &meta)?;
    if meta.size != bytes.len() as u64 {
        return Ok(None);
    }
    let mut f = dir.open_file(name)?;
    let mut have = Vec::with_capacity(bytes.len());
    // Unreadable (e.g. EIO from a file whose content no longer matches its
    // Merkle tree): rewrite it.
    if f.read_to_end(&mut have).is_err() || have != bytes {
        return Ok(None);
    }
    let enabled = ioctl::has_verity(&f).unwrap_or(false);
    Ok(match verity {
        VerityRequest::Off => Some(if enabled {
            VerityState::Enabled
        } else {
            VerityState::Off
        }),
        VerityRequest::On { params, signature } => {
            if !enabled {
                return Ok(None);
            }
            match ioctl::measure(&f) {
                Ok(d) if d.algorithm() == params.algorithm => {}
                _ => return Ok(None),
            }
            match signature {
                None => Some(VerityState::Enabled),
                Some(sig) => {
                    let have = ioctl::read_signature(&f).ok().flatten();
                    (have.as_deref() == Some(sig)).then_some(VerityState::Signed)
                }
            }
        }
    })
}

/// Stores file content as `objects/XX/<rest>` while layers are imported
/// (an [`ObjectSink`]): one pass streams the content into a temporary file
/// and through the fs-verity hasher; the object is then named by the digest.
#[derive(Debug)]
pub struct ObjectWriter<'b> {
    tmp: Dir,
    objects: Dir,
    /// `objects/00` .. `objects/ff`, each opened (and checked) once.
    fanout: Vec<OnceLock<Dir>>,
    params: VerityParams,
    /// Cleared at the first "not supported" so 50,000 objects do not each
    /// make a failing ioctl.
    try_verity: AtomicBool,
    added: AtomicU64,
    existing: AtomicU64,
    bytes: AtomicU64,
    verity_enabled: AtomicU64,
    without_verity: AtomicU64,
    signing: Option<ObjectSigning<'b>>,
    /// Cleared at the first kernel refusal in [`SigningMode::Try`], so the
    /// other objects do not each make a failing signature check.
    try_signing: AtomicBool,
    signed: AtomicU64,
    resigned: AtomicU64,
    signature_kept: AtomicU64,
    unsigned: AtomicU64,
}

/// Per-object builtin signatures while objects are written (`objsig`;
/// docs/repository.md, "Object signatures").
#[derive(Debug, Clone, Copy)]
pub struct ObjectSigning<'b> {
    /// The deployment's signature bundle.
    pub bundle: &'b crate::objsig::Bundle,
    /// What to do with its signatures.
    pub mode: SigningMode,
}

/// What to do with the bundle's signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningMode {
    /// Every object with an entry gets its builtin signature; a refusal by
    /// the kernel (signer not in `.fs-verity`) is an error.
    Required,
    /// Builtin where the kernel accepts it, else fs-verity without.
    Try,
    /// No fs-verity at all: the initramfs attaches the signatures at the
    /// first boot (`--signatures=attach-at-boot`).
    AttachAtBoot,
}

/// What an [`ObjectWriter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ObjectStats {
    /// New objects written.
    pub added: u64,
    /// Objects that were already in the repository (dedup).
    pub existing: u64,
    /// Content bytes hashed (new and existing).
    pub bytes: u64,
    /// Objects (new or existing) on which fs-verity was enabled now.
    pub verity_enabled: u64,
    /// Objects (new or existing) left without fs-verity (none where the
    /// filesystem supports it).
    pub without_verity: u64,
    /// Objects given their builtin signature now (new, existing without
    /// fs-verity, or re-created: `resigned`).
    pub signed: u64,
    /// Existing objects re-created to carry their signature (they had
    /// fs-verity without one, or one the kernel no longer accepts).
    pub resigned: u64,
    /// Existing objects that keep the builtin signature they have (another
    /// trusted image signed the same content first: the kernel keeps one
    /// signature per file).
    pub signature_kept: u64,
    /// Objects with an entry in the bundle left without their signature:
    /// the kernel refused it in `Try` mode (signer not in `.fs-verity`).
    pub unsigned: u64,
}

impl ObjectWriter<'_> {
    /// What was written so far.
    pub fn stats(&self) -> ObjectStats {
        ObjectStats {
            added: self.added.load(Ordering::Relaxed),
            existing: self.existing.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            verity_enabled: self.verity_enabled.load(Ordering::Relaxed),
            without_verity: self.without_verity.load(Ordering::Relaxed),
            signed: self.signed.load(Ordering::Relaxed),
            resigned: self.resigned.load(Ordering::Relaxed),
            signature_kept: self.signature_kept.load(Ordering::Relaxed),
            unsigned: self.unsigned.load(Ordering::Relaxed),
        }
    }

    /// `objects/XX`, created if missing.
    fn fanout_dir(&self, hex: &str) -> Result<Dir, PathError> {
        let i = usize::from_str_radix(&hex[..2], 16).unwrap_or(0);
        if let Some(d) = self.fanout.get(i).and_then(OnceLock::get) {
            return Ok(d.clone());
        }
        let d = self.objects.ensure_dir(&hex[..2])?;
        Ok(match self.fanout.get(i) {
            Some(slot) => slot.get_or_init(|| d).clone(),
            None => d,
        })
    }

    fn store_inner(&self, content: &mut dyn io::Read, size: u64) -> io::Result<FsVerityDigest> {
        let mut tmp = self.tmp.create_temp("w", 0o644).map_err(io::Error::other)?;
        let mut hasher = MerkleHasher::new(&self.params);
        {
            let file = tmp.file().map_err(io::Error::other)?;
            copy_exact(content, size, |chunk| {
                hasher.update(chunk);
                file.write_all(chunk)
            })?;
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let digest = hasher.finish();
        let dir = self
            .fanout_dir(&digest.to_hex())
            .map_err(io::Error::other)?;
        let signature = self.signature_for(&digest);
        // The written copy serves either an existing object's re-signing
        // or the new object, never both.
        let mut written = Some(tmp);
        let take = || {
            written
                .take()
                .ok_or_else(|| io::Error::other("object copy used twice"))
        };
        if self.found_existing(&dir, &digest, signature.as_ref(), take)? {
            return Ok(digest);
        }
        let tmp = written
            .take()
            .ok_or_else(|| io::Error::other("object copy used twice"))?;
        self.persist_new(tmp, &dir, &digest, signature)?;
        Ok(digest)
    }

    /// Content already in memory: hashed first, so an object that exists
    /// already (a layer re-imported, a file shared between images) is not
    /// written at all.
    fn store_bytes_inner(&self, data: &[u8]) -> io::Result<FsVerityDigest> {
        let digest = digest_bytes(&self.params, data);
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        let dir = self
            .fanout_dir(&digest.to_hex())
            .map_err(io::Error::other)?;
        let signature = self.signature_for(&digest);
        let copy = || -> io::Result<TempFile> {
            let mut tmp = self.tmp.create_temp("w", 0o644).map_err(io::Error::other)?;
            tmp.file().map_err(io::Error::other)?.write_all(data)?;
            Ok(tmp)
        };
        if self.found_existing(&dir, &digest, signature.as_ref(), copy)? {
            return Ok(digest);
        }
        self.persist_new(copy()?, &dir, &digest, signature)?;
        Ok(digest)
    }

    /// Whether the object named by `digest` exists already in `dir` (its
    /// fan-out directory). It then gets fs-verity if it lacks it: with its
    /// builtin signature when signing ([`Self::ensure_signed`], which may
    /// need a fresh copy of the content: `copy` makes one), left off when
    /// signatures are attached at boot.
    fn found_existing(
        &self,
        dir: &Dir,
        digest: &FsVerityDigest,
        signature: Option<&Signature>,
        copy: impl FnOnce() -> io::Result<TempFile>,
    ) -> io::Result<bool> {
        let hex = digest.to_hex();
        let rest = &hex[2..];
        let Some(meta) = dir.stat(rest).map_err(io::Error::other)? else {
            return Ok(false);
        };
        // A symlink or hard link here would make the in-place fs-verity
        // below act on a file outside the repository.
        dir.require_file(rest, &meta).map_err(io::Error::other)?;
        self.existing.fetch_add(1, Ordering::Relaxed);
        match signature {
            Some(Signature::Attach(sig)) => self.ensure_signed(dir, rest, copy, sig)?,
            Some(Signature::LeaveOff) => {}
            None => self.ensure_verity(dir, rest).map_err(io::Error::other)?,
        }
        Ok(true)
    }

    /// Closes the fully written `tmp`, enables fs-verity on it where the
    /// filesystem can (with its builtin signature when signing; left off
    /// when signatures are attached at boot), and links it in under its
    /// digest's name.
    fn persist_new(
        &self,
        mut tmp: TempFile,
        dir: &Dir,
        digest: &FsVerityDigest,
        signature: Option<Signature>,
    ) -> io::Result<()> {
        let hex = digest.to_hex();
        let rest = &hex[2..];
        tmp.close();
        if let Some(signature) = signature {
            if let Signature::Attach(sig) = signature {
                let f = tmp.reopen().map_err(io::Error::other)?;
                self.enable_signed(&f, &dir.display(rest), &sig)?;
            }
        } else if self.try_verity.load(Ordering::Relaxed) {
            let request = VerityRequest::On {
                params: &self.params,
                signature: None,
            };
            let dest = dir.display(rest);
            match enable(&tmp, &dest, request).map_err(io::Error::other)? {
                VerityState::Unsupported => {
                    self.try_verity.store(false, Ordering::Relaxed);
                    self.without_verity.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    self.verity_enabled.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else {
            self.without_verity.fetch_add(1, Ordering::Relaxed);
        }
        tmp.persist(dir, rest).map_err(io::Error::other)?;
        self.added.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// What a signing sink does with one object.
enum Signature {
    /// Enable fs-verity with this builtin signature.
    Attach(Vec<u8>),
    /// Leave fs-verity off (attach at boot).
    LeaveOff,
}

impl ObjectWriter<'_> {
    /// The signature decision for `digest`; `None` when not signing.
    fn signature_for(&self, digest: &FsVerityDigest) -> Option<Signature> {
        let s = self.signing?;
        if s.mode == SigningMode::AttachAtBoot {
            return Some(Signature::LeaveOff);
        }
        if s.mode == SigningMode::Try && !self.try_signing.load(Ordering::Relaxed) {
            self.unsigned.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // No entry: content a later layer replaced or removed (stored all
        // the same, but not in the merged image the bundle covers); the
        // deploy checks the merged image's coverage once it is known.
        s.bundle.pkcs7(digest).map(Signature::Attach)
    }

    /// Enables fs-verity with `sig` on `f`, a read-only descriptor of a
    /// checked repository file with no writer (`path` names it in
    /// messages); in `Try` mode a kernel refusal falls back to fs-verity
    /// without a signature (and stops further attempts).
    fn enable_signed(&self, f: &File, path: &Path, sig: &[u8]) -> io::Result<()> {
        if !self.try_verity.load(Ordering::Relaxed) {
            self.without_verity.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match ioctl::enable(f, &self.params, Some(sig)) {
            // No fs-verity here (a build host): like unsigned objects, left
            // for `sealroot repo enable-verity` on the target, which
            // attaches the bundle's signatures.
            Err(e) if is_unsupported(&e) => {
                self.try_verity.store(false, Ordering::Relaxed);
                self.without_verity.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(()) => {
                self.signed.fetch_add(1, Ordering::Relaxed);
                self.verity_enabled.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e)
                if self.signing.is_some_and(|s| s.mode == SigningMode::Try)
                    && matches!(
                        e.errno(),
                        Some(Errno::NOKEY | Errno::KEYREJECTED | Errno::BADMSG | Errno::PERM)
                    ) =>
            {
                self.try_signing.store(false, Ordering::Relaxed);
                self.unsigned.fetch_add(1, Ordering::Relaxed);
                match ioctl::enable(f, &self.params, None) {
                    Ok(()) => {
                        self.verity_enabled.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => Err(io::Error::other(e.at(path))),
                }
            }
            Err(e) => Err(io::Error::other(format!(
                "{}; the object's builtin signature was refused (is the signer's certificate \
                 in the .fs-verity keyring? `sealroot keyring add`)",
                e.at(path)
            ))),
        }
    }

    /// An existing object (`name` in `dir`, checked to be a regular file
    /// with one link), to carry a builtin signature: without fs-verity it
    /// gets it with `sig` in place, on a descriptor opened through
    /// [`Dir::open_file`] (one link, checked on the open file: never a file
    /// outside the repository); with fs-verity and a signature the kernel
    /// accepts (at open) it is kept — one builtin signature per file, the
    /// first wins; with fs-verity but no signature, or one the kernel
    /// refuses, a fresh copy of the content (`copy`) gets it and
    /// is renamed over the object (replacing the name, never writing
    /// through it).
    fn ensure_signed(
        &self,
        dir: &Dir,
        name: &str,
        copy: impl FnOnce() -> io::Result<TempFile>,
        sig: &[u8],
    ) -> io::Result<()> {
        let dest = dir.display(name);
        let keep = match dir.open_file(name) {
            Ok(f) => match ioctl::has_verity(&f) {
                Ok(false) => return self.enable_signed(&f, &dest, sig),
                Ok(true) => matches!(ioctl::read_signature(&f), Ok(Some(_))),
                Err(e) => return Err(io::Error::other(e.at(&dest))),
            },
            // The kernel checks a builtin signature at open: refused now.
            Err(e)
                if matches!(
                    e.errno(),
                    Some(Errno::NOKEY | Errno::KEYREJECTED | Errno::BADMSG)
                ) =>
            {
                false
            }
            Err(e) => return Err(io::Error::other(e)),
        };
        if keep {
            self.signature_kept.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut tmp = copy()?;
        tmp.close();
        let f = tmp.reopen().map_err(io::Error::other)?;
        self.enable_signed(&f, &dest, sig)?;
        drop(f);
        tmp.persist(dir, name).map_err(io::Error::other)?;
        self.resigned.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// An existing object lacking fs-verity (e.g. written where the
    /// filesystem had none, or by an older deploy) gets it in place:
    /// objects are immutable, so no writer can hold it open. It is opened
    /// as a regular file with one link (checked on the open descriptor),
    /// so this never makes a file outside the repository immutable.
    fn ensure_verity(&self, dir: &Dir, name: &str) -> Result<(), PathError> {
        let f = dir.open_file(name)?;
        if ioctl::has_verity(&f).unwrap_or(false) {
            return Ok(());
        }
        if !self.try_verity.load(Ordering::Relaxed) {
            self.without_verity.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match ioctl::enable(&f, &self.params, None) {
            Ok(()) => {
                self.verity_enabled.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if is_unsupported(&e) {
                    self.try_verity.store(false, Ordering::Relaxed);
                }
                self.without_verity.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

impl ObjectSink for ObjectWriter<'_> {
    fn params(&self) -> &VerityParams {
        &self.params
    }

    fn store(&self, content: &mut dyn io::Read, size: u64) -> io::Result<FsVerityDigest> {
        self.store_inner(content, size)
    }

    fn store_bytes(&self, data: &[u8]) -> io::Result<FsVerityDigest> {
        self.store_bytes_inner(data)
    }
}
