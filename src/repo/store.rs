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

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::io::Errno;

use super::Error;
use super::json::{Deployment, RepoConfig};
use crate::oci::artifact::VerityAlgorithm;
use crate::oci::sink::{ObjectSink, copy_exact};
use crate::oci::{ManifestDigest, Sha256Digest};
use crate::verity::digest::MerkleHasher;
use crate::verity::{FsVerityDigest, VerityParams, ioctl};

/// A deployment directory and its parsed `deployment.json` (or why it
/// could not be read).
pub type FoundDeployment = (PathBuf, Result<Deployment, Error>);

/// A repository (`<sysroot>/sealroot`).
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
    config: RepoConfig,
}

/// What fs-verity a written file should get.
#[derive(Debug, Clone, Copy)]
pub enum VerityRequest<'a> {
    /// Leave it off (attach-at-boot).
    Off,
    /// Enable it, optionally with a builtin signature.
    On {
        params: &'a VerityParams,
        signature: Option<&'a [u8]>,
    },
}

/// What fs-verity a file ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerityState {
    Off,
    Enabled,
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
    /// Opens an existing repository.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        let path = root.join("repo.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotARepository { path: root });
            }
            Err(e) => return Err(Error::io("reading", &path)(e)),
        };
        let config = RepoConfig::parse(&bytes).map_err(|source| Error::Json { path, source })?;
        Ok(Repository { root, config })
    }

    /// Opens the repository at `root`, creating it with `algorithm` (default
    /// sha256) if it does not exist. An existing repository must use
    /// `algorithm` when one is given.
    pub fn open_or_create(
        root: impl Into<PathBuf>,
        algorithm: Option<VerityAlgorithm>,
    ) -> Result<Self, Error> {
        let root = root.into();
        let repo = match Repository::open(&root) {
            Ok(r) => r,
            Err(Error::NotARepository { .. }) => {
                fs::create_dir_all(&root).map_err(Error::io("creating", &root))?;
                let config = RepoConfig {
                    algorithm: algorithm.unwrap_or(VerityAlgorithm::SHA256_12),
                };
                let repo = Repository { root, config };
                repo.create_dirs()?;
                // repo.json last: its presence means the layout is complete.
                repo.put_file(
                    &repo.root.join("repo.json"),
                    &config.to_json(),
                    VerityRequest::Off,
                )?;
                return Ok(repo);
            }
            Err(e) => return Err(e),
        };
        if let Some(wanted) = algorithm
            && wanted != repo.config.algorithm
        {
            return Err(Error::AlgorithmMismatch {
                path: repo.root,
                found: repo.config.algorithm,
                wanted,
            });
        }
        repo.create_dirs()?;
        Ok(repo)
    }

    fn create_dirs(&self) -> Result<(), Error> {
        for d in [
            "objects",
            "images",
            "blobs/sha256",
            "deployments",
            "by-config",
            "by-image",
            "tmp",
        ] {
            let p = self.root.join(d);
            fs::create_dir_all(&p).map_err(Error::io("creating", &p))?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn algorithm(&self) -> VerityAlgorithm {
        self.config.algorithm
    }

    /// fs-verity parameters of the signed files.
    pub fn params(&self) -> VerityParams {
        self.config.algorithm.params()
    }

    /// `objects/XX/<rest>`.
    pub fn object_path(&self, digest: &FsVerityDigest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join("objects").join(&hex[..2]).join(&hex[2..])
    }

    /// `images/<hex>`.
    pub fn image_path(&self, digest: &FsVerityDigest) -> PathBuf {
        self.root.join("images").join(digest.to_hex())
    }

    /// `blobs/sha256/<hex>`.
    pub fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.to_hex())
    }

    /// `deployments/<manifest hex>`.
    pub fn deployment_dir(&self, manifest: &ManifestDigest) -> PathBuf {
        self.root.join("deployments").join(manifest.0.to_hex())
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Every deployment, with its parsed `deployment.json` (or why it could
    /// not be read), sorted by directory name. Temporary `.tmp-*`
    /// directories of interrupted deploys are skipped.
    pub fn deployments(&self) -> Result<Vec<FoundDeployment>, Error> {
        let dir = self.root.join("deployments");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(Error::io("listing", &dir))? {
            let e = e.map_err(Error::io("listing", &dir))?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path().join("deployment.json");
            let parsed = fs::read(&path)
                .map_err(Error::io("reading", &path))
                .and_then(|b| {
                    Deployment::parse(&b).map_err(|source| Error::Json {
                        path: path.clone(),
                        source,
                    })
                });
            out.push((e.path(), parsed));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// A temporary file in `tmp/`.
    pub fn tempfile(&self) -> Result<tempfile::NamedTempFile, Error> {
        let dir = self.tmp_dir();
        tempfile::Builder::new()
            .prefix("w")
            .tempfile_in(&dir)
            .map_err(Error::io("creating a temporary file in", &dir))
    }

    /// Writes `bytes` as `dest` (content-addressed: `dest`'s name is
    /// derived from the content) with the requested fs-verity. An existing
    /// file with the same bytes and at least the requested verity is kept;
    /// otherwise it is replaced atomically.
    pub fn put_file(
        &self,
        dest: &Path,
        bytes: &[u8],
        verity: VerityRequest<'_>,
    ) -> Result<VerityState, Error> {
        if let Some(state) = existing_state(dest, bytes, verity) {
            return Ok(state);
        }
        let mut tmp = self.tempfile()?;
        let tpath = tmp.path().to_owned();
        tmp.write_all(bytes)
            .and_then(|()| {
                tmp.as_file()
                    .set_permissions(fs::Permissions::from_mode(0o644))
            })
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(Error::io("writing", &tpath))?;
        // fs-verity needs the file open read-only with no writer left.
        let path = tmp.into_temp_path();
        let state = enable(&path, verity)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
        }
        path.persist(dest)
            .map_err(|e| Error::io("renaming into place", dest)(e.error))?;
        sync_dir(dest)?;
        Ok(state)
    }

    /// A sink that stores file contents as objects while an image is
    /// imported.
    pub fn object_sink(&self) -> ObjectWriter<'_> {
        self.object_sink_signed(None)
    }

    /// An object sink that gives each object its builtin signature from a
    /// bundle (`objsig`), as `signing` says.
    pub fn object_sink_signed<'r>(
        &'r self,
        signing: Option<ObjectSigning<'r>>,
    ) -> ObjectWriter<'r> {
        ObjectWriter {
            repo: self,
            params: VerityParams::sha256(),
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
        }
    }

    /// `syncfs` of the repository's filesystem: makes every object written
    /// so far durable before a deployment references them.
    pub fn sync(&self) -> Result<(), Error> {
        let f = File::open(&self.root).map_err(Error::io("opening", &self.root))?;
        rustix::fs::syncfs(&f)
            .map_err(|e| Error::io("syncing the filesystem of", &self.root)(e.into()))
    }
}

/// Enables fs-verity on the closed temporary file `path` as requested.
pub fn enable(path: &Path, verity: VerityRequest<'_>) -> Result<VerityState, Error> {
    let VerityRequest::On { params, signature } = verity else {
        return Ok(VerityState::Off);
    };
    let f = File::open(path).map_err(Error::io("opening", path))?;
    match ioctl::enable(&f, params, signature) {
        Ok(()) if signature.is_some() => Ok(VerityState::Signed),
        Ok(()) => Ok(VerityState::Enabled),
        Err(e) if is_unsupported(&e) && signature.is_none() => Ok(VerityState::Unsupported),
        Err(source) => Err(Error::Verity {
            path: path.to_owned(),
            source: source.at(path),
        }),
    }
}

/// The state of an existing `dest` if it holds `bytes` with at least the
/// requested verity; `None` when it must be (re)written.
fn existing_state(dest: &Path, bytes: &[u8], verity: VerityRequest<'_>) -> Option<VerityState> {
    let have = fs::read(dest).ok()?;
    if have != bytes {
        return None;
    }
    let f = File::open(dest).ok()?;
    let enabled = ioctl::has_verity(&f).unwrap_or(false);
    match verity {
        VerityRequest::Off => Some(if enabled {
            VerityState::Enabled
        } else {
            VerityState::Off
        }),
        VerityRequest::On { params, signature } => {
            if !enabled {
                return None;
            }
            let d = ioctl::measure(&f).ok()?;
            if d.algorithm() != params.algorithm {
                return None;
            }
            match signature {
                None => Some(VerityState::Enabled),
                Some(sig) => (ioctl::read_signature(&f).ok()?.as_deref() == Some(sig))
                    .then_some(VerityState::Signed),
            }
        }
    }
}

/// fsyncs the directory holding `path` (the rename is durable).
pub fn sync_dir(path: &Path) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing directory", dir))
}

/// Stores file content as `objects/XX/<rest>` while layers are imported
/// (an [`ObjectSink`]): one pass streams the content into a temporary file
/// and through the fs-verity hasher; the object is then named by the digest.
#[derive(Debug)]
pub struct ObjectWriter<'r> {
    repo: &'r Repository,
    params: VerityParams,
    /// Cleared at the first "not supported" so 50,000 objects do not each
    /// make a failing ioctl.
    try_verity: AtomicBool,
    added: AtomicU64,
    existing: AtomicU64,
    bytes: AtomicU64,
    verity_enabled: AtomicU64,
    without_verity: AtomicU64,
    signing: Option<ObjectSigning<'r>>,
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
    pub bundle: &'b crate::objsig::Bundle,
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

    fn store_inner(&self, content: &mut dyn io::Read, size: u64) -> io::Result<FsVerityDigest> {
        let mut tmp = self.repo.tempfile().map_err(io::Error::other)?;
        let mut hasher = MerkleHasher::new(&self.params);
        {
            let file = tmp.as_file_mut();
            copy_exact(content, size, |chunk| {
                hasher.update(chunk);
                file.write_all(chunk)
            })?;
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let digest = hasher.finish();
        let dest = self.repo.object_path(&digest);
        let signature = self.signature_for(&digest)?;
        if fs::symlink_metadata(&dest).is_ok() {
            self.existing.fetch_add(1, Ordering::Relaxed);
            match signature {
                Some(Signature::Attach(sig)) => self.ensure_signed(&dest, tmp, &sig)?,
                Some(Signature::LeaveOff) => {}
                None => self.ensure_verity(&dest),
            }
            return Ok(digest);
        }
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
        let path = tmp.into_temp_path();
        if let Some(signature) = signature {
            if let Signature::Attach(sig) = signature {
                self.enable_signed(&path, &sig)?;
            }
        } else if self.try_verity.load(Ordering::Relaxed) {
            let request = VerityRequest::On {
                params: &self.params,
                signature: None,
            };
            match enable(&path, request).map_err(io::Error::other)? {
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
        if let Some(parent) = dest.parent() {
            match fs::create_dir(parent) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        path.persist(&dest).map_err(|e| e.error)?;
        self.added.fetch_add(1, Ordering::Relaxed);
        Ok(digest)
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
    fn signature_for(&self, digest: &FsVerityDigest) -> io::Result<Option<Signature>> {
        let Some(s) = self.signing else {
            return Ok(None);
        };
        if s.mode == SigningMode::AttachAtBoot {
            return Ok(Some(Signature::LeaveOff));
        }
        if s.mode == SigningMode::Try && !self.try_signing.load(Ordering::Relaxed) {
            self.unsigned.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        // No entry: content a later layer replaced or removed (stored all
        // the same, but not in the merged image the bundle covers); the
        // deploy checks the merged image's coverage once it is known.
        Ok(s.bundle.pkcs7(digest).map(Signature::Attach))
    }

    /// Enables fs-verity with `sig` on the closed file `path`; in `Try`
    /// mode a kernel refusal falls back to fs-verity without a signature
    /// (and stops further attempts).
    fn enable_signed(&self, path: &Path, sig: &[u8]) -> io::Result<()> {
        if !self.try_verity.load(Ordering::Relaxed) {
            self.without_verity.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let f = File::open(path)?;
        match ioctl::enable(&f, &self.params, Some(sig)) {
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
                match ioctl::enable(&f, &self.params, None) {
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

    /// An existing object, to carry a builtin signature: without fs-verity
    /// it gets it with `sig` in place; with fs-verity and a signature the
    /// kernel accepts (at open) it is kept — one builtin signature per file,
    /// the first wins; with fs-verity but no signature, or one the kernel
    /// refuses, the freshly written copy `tmp` (same content) gets it and
    /// is renamed over the object.
    fn ensure_signed(
        &self,
        dest: &Path,
        tmp: tempfile::NamedTempFile,
        sig: &[u8],
    ) -> io::Result<()> {
        let keep = match File::open(dest) {
            Ok(f) => match ioctl::has_verity(&f) {
                Ok(false) => {
                    drop(f);
                    return self.enable_signed(dest, sig);
                }
                Ok(true) => matches!(ioctl::read_signature(&f), Ok(Some(_))),
                Err(e) => return Err(io::Error::other(e.at(dest))),
            },
            // The kernel checks a builtin signature at open: refused now.
            Err(e)
                if matches!(
                    Errno::from_io_error(&e),
                    Some(Errno::NOKEY | Errno::KEYREJECTED | Errno::BADMSG)
                ) =>
            {
                false
            }
            Err(e) => return Err(e),
        };
        if keep {
            self.signature_kept.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
        let path = tmp.into_temp_path();
        self.enable_signed(&path, sig)?;
        path.persist(dest).map_err(|e| e.error)?;
        self.resigned.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// An existing object lacking fs-verity (e.g. written where the
    /// filesystem had none, or by an older deploy) gets it in place:
    /// objects are immutable, so no writer can hold it open.
    fn ensure_verity(&self, dest: &Path) {
        let Ok(f) = File::open(dest) else {
            self.without_verity.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if ioctl::has_verity(&f).unwrap_or(false) {
            return;
        }
        if !self.try_verity.load(Ordering::Relaxed) {
            self.without_verity.fetch_add(1, Ordering::Relaxed);
            return;
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
    }
}

impl ObjectSink for ObjectWriter<'_> {
    fn params(&self) -> &VerityParams {
        &self.params
    }

    fn store(&self, content: &mut dyn io::Read, size: u64) -> io::Result<FsVerityDigest> {
        self.store_inner(content, size)
    }
}
