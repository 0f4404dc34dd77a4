//! An ostree sysroot's deployments, and the sealed files sealroot adds to
//! each (docs/ostree.md, "On-disk contract"):
//!
//! ```text
//! <sysroot>/ostree/repo/                                the system repository (bare)
//! <sysroot>/ostree/deploy/<os>/deploy/<commit>.<serial>/
//!     .ostree.cfs               composefs EROFS (ostree's name and bytes), fs-verity on
//!     .sealroot.binding         the binding record (super::binding), fs-verity on,
//!                               with the PKCS#7 as builtin signature in builtin mode
//!     .sealroot.binding.sig     the DER PKCS#7 over the record's fs-verity digest
//! ```
//!
//! Every path below the sysroot is resolved with [`Dir`] (no symlink is
//! followed); files are written to a temporary name in the deployment
//! directory, synced, given fs-verity, and renamed into place, the record
//! last (a deployment with a record is complete).

use std::io::Write;
use std::path::Path;

use super::image::ExternalObject;
use super::objects::Checksum;
use super::repo::{Repo, RepoError};
use crate::repo::dir::{Dir, FileKind, PathError};
use crate::repo::json::SignatureMode;
use crate::verity::ioctl;
use crate::verity::{FsVerityDigest, VerityParams};

/// The composefs image, where ostree puts it (`OSTREE_COMPOSEFS_NAME`).
pub const IMAGE_FILE: &str = ".ostree.cfs";
/// The binding record.
pub const BINDING_FILE: &str = ".sealroot.binding";
/// The signature of the binding record.
pub const SIGNATURE_FILE: &str = ".sealroot.binding.sig";

/// Why a sysroot or deployment could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A path inside the sysroot that is not what it must be (a symlink,
    /// missing, not a directory).
    #[error(transparent)]
    Path(#[from] PathError),
    /// The sysroot's ostree repository.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// Reading or writing a file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// An fs-verity ioctl failed.
    #[error(transparent)]
    Verity(#[from] ioctl::Error),
    /// An object whose fs-verity digest, measured by the kernel, is not
    /// the one the image records.
    #[error(
        "{path}: after enabling fs-verity it measures {actual}, but the image records {expected}: \
         the object changed while sealroot read it; run `ostree fsck` and deploy again"
    )]
    ObjectChanged {
        /// The object file.
        path: String,
        /// The digest the EROFS image records.
        expected: Box<FsVerityDigest>,
        /// The digest the kernel measured.
        actual: Box<FsVerityDigest>,
    },
}

/// An ostree sysroot (`ostree admin init-fs` made it).
#[derive(Debug, Clone)]
pub struct Sysroot {
    ostree: Dir,
    repo: Repo,
}

/// One deployment directory `ostree/deploy/<os>/deploy/<commit>.<serial>`.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The stateroot (`<os>`) it belongs to.
    pub stateroot: String,
    /// The directory name, `<commit>.<serial>`.
    pub name: String,
    /// The commit it checks out.
    pub commit: Checksum,
    /// Its serial (several deployments of one commit differ by it).
    pub serial: u32,
    /// The opened directory.
    pub dir: Dir,
}

/// `<64 hex>.<serial>`: a deployment directory's name. Anything else
/// (`<name>.origin` files, temporaries) is not a deployment.
pub fn parse_deployment_name(name: &str) -> Option<(Checksum, u32)> {
    let (commit, serial) = name.split_once('.')?;
    if serial.is_empty() || serial.len() > 9 || !serial.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if serial.len() > 1 && serial.starts_with('0') {
        return None;
    }
    Some((commit.parse().ok()?, serial.parse().ok()?))
}

impl Sysroot {
    /// Opens the sysroot `path` (the caller's path, followed), whose
    /// `ostree/`, `ostree/repo/` and `ostree/deploy/` must be real
    /// directories.
    pub fn open(path: &Path) -> Result<Sysroot, DeployError> {
        let root = Dir::open_followed(path)?;
        let ostree = root.open_dir("ostree")?;
        let repo = Repo::open_dir(ostree.open_dir("repo")?)?;
        Ok(Sysroot { ostree, repo })
    }

    /// The sysroot's repository, `ostree/repo`.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// The deployments of stateroot `os` (every stateroot when `None`),
    /// sorted by stateroot and name.
    pub fn deployments(&self, os: Option<&str>) -> Result<Vec<Deployment>, DeployError> {
        let deploy = self.ostree.open_dir("deploy")?;
        let stateroots: Vec<String> = match os {
            Some(os) => vec![os.to_owned()],
            None => deploy
                .entries()?
                .into_iter()
                .filter(|e| e.kind == FileKind::Directory)
                .map(|e| e.name_lossy())
                .collect(),
        };
        let mut out = Vec::new();
        for os in stateroots {
            let dir = deploy.open_dir(Path::new(&os).join("deploy"))?;
            for e in dir.entries()? {
                let name = e.name_lossy();
                let Some((commit, serial)) = parse_deployment_name(&name) else {
                    continue;
                };
                if e.kind != FileKind::Directory {
                    return Err(dir.unexpected(&name, e.kind, FileKind::Directory).into());
                }
                out.push(Deployment {
                    stateroot: os.clone(),
                    dir: dir.open_dir(&name)?,
                    name,
                    commit,
                    serial,
                });
            }
        }
        Ok(out)
    }

    /// One deployment by stateroot and directory name.
    pub fn deployment(&self, os: &str, name: &str) -> Result<Deployment, DeployError> {
        let (commit, serial) = parse_deployment_name(name).ok_or_else(|| DeployError::Io {
            path: name.to_owned(),
            reason: "not a deployment name (<64 hex commit>.<serial>)".into(),
        })?;
        let dir = self
            .ostree
            .open_dir(Path::new("deploy").join(os).join("deploy").join(name))?;
        Ok(Deployment {
            stateroot: os.to_owned(),
            name: name.to_owned(),
            commit,
            serial,
            dir,
        })
    }
}

/// What happened to fs-verity on a file sealroot wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileVerity {
    /// Enabled with a builtin signature.
    Signed,
    /// Enabled without signature.
    Enabled,
    /// Left off on purpose (attach-at-boot).
    Off,
    /// The filesystem or kernel has no fs-verity.
    Unsupported,
}

impl FileVerity {
    /// Words for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FileVerity::Signed => "builtin signature",
            FileVerity::Enabled => "enabled",
            FileVerity::Off => "off (attach at boot)",
            FileVerity::Unsupported => "unsupported here",
        }
    }
}

/// How to give fs-verity to a file being written.
#[derive(Debug, Clone, Copy)]
pub struct VerityWish<'a> {
    /// Algorithm, block size and salt to enable with.
    pub params: &'a VerityParams,
    /// False: leave verity off.
    pub enable: bool,
    /// A builtin signature to attach; `required` says whether the kernel
    /// refusing it is an error (builtin) or means "enable without it"
    /// (auto).
    pub signature: Option<(&'a [u8], bool)>,
}

/// Writes `bytes` as `name` in `dir` atomically, with fs-verity as
/// `wish` says. An existing regular file with the same bytes and the
/// same verity state is kept.
pub fn write_file(
    dir: &Dir,
    name: &str,
    bytes: &[u8],
    wish: VerityWish<'_>,
) -> Result<FileVerity, DeployError> {
    let io = |reason: String| DeployError::Io {
        path: dir.display(name).display().to_string(),
        reason,
    };
    let want_digest = crate::verity::digest::digest_bytes(wish.params, bytes);
    if let Some(v) = existing(dir, name, bytes, &want_digest, &wish)? {
        return Ok(v);
    }
    let mut tmp = dir.create_temp(".tmp-sealroot-", 0o644)?;
    {
        let f = tmp.file()?;
        f.write_all(bytes)
            .map_err(|e| io(format!("cannot write: {e}")))?;
        f.sync_all().map_err(|e| io(format!("cannot sync: {e}")))?;
    }
    tmp.close();
    let verity = if !wish.enable {
        FileVerity::Off
    } else {
        let f = tmp.reopen()?;
        enable_with(&f, &tmp.path(), &wish)?
    };
    tmp.persist(dir, name)?;
    dir.sync()?;
    Ok(verity)
}

/// The verity state of an existing `name` if it already is what `wish`
/// asks for with the same bytes.
fn existing(
    dir: &Dir,
    name: &str,
    bytes: &[u8],
    want: &FsVerityDigest,
    wish: &VerityWish<'_>,
) -> Result<Option<FileVerity>, DeployError> {
    let Some(meta) = dir.stat(name)? else {
        return Ok(None);
    };
    if meta.kind != FileKind::Regular || meta.nlink != 1 || meta.size != bytes.len() as u64 {
        return Ok(None);
    }
    let f = dir.open_file(name)?;
    let measured = ioctl::measure(&f).ok();
    let signature = measured
        .and_then(|_| ioctl::read_metadata_all(&f, ioctl::MetadataType::Signature).ok())
        .filter(|s| !s.is_empty());
    let state = match (measured, signature) {
        (Some(d), _) if d != *want => return Ok(None),
        (Some(_), Some(sig)) => match wish.signature {
            Some((s, _)) if s == sig.as_slice() => FileVerity::Signed,
            _ => return Ok(None),
        },
        (Some(_), None) if wish.signature.is_some_and(|(_, required)| required) => {
            return Ok(None);
        }
        (Some(_), None) if wish.enable => FileVerity::Enabled,
        (None, _) if !wish.enable => FileVerity::Off,
        _ => return Ok(None),
    };
    let mut content = Vec::with_capacity(bytes.len());
    use std::io::Read;
    (&f).take(bytes.len() as u64 + 1)
        .read_to_end(&mut content)
        .map_err(|e| DeployError::Io {
            path: dir.display(name).display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
    Ok((content == bytes).then_some(state))
}

fn enable_with(
    f: &std::fs::File,
    path: &Path,
    wish: &VerityWish<'_>,
) -> Result<FileVerity, DeployError> {
    use rustix::io::Errno;
    let unsupported = |e: &ioctl::Error| {
        matches!(
            e.errno(),
            Some(Errno::OPNOTSUPP | Errno::NOTTY | Errno::INVAL)
        )
    };
    if let Some((sig, required)) = wish.signature {
        match ioctl::enable(f, wish.params, Some(sig)) {
            Ok(()) => return Ok(FileVerity::Signed),
            Err(e) if unsupported(&e) => return Ok(FileVerity::Unsupported),
            // The signer is not in .fs-verity (or the kernel has no
            // builtin signatures): detached, unless builtin was asked for.
            Err(e)
                if !required
                    && matches!(
                        e.errno(),
                        Some(Errno::NOKEY | Errno::KEYREJECTED | Errno::BADMSG | Errno::PERM)
                    ) => {}
            Err(e) => return Err(e.at(path).into()),
        }
    }
    match ioctl::enable(f, wish.params, None) {
        Ok(()) => Ok(FileVerity::Enabled),
        Err(e) if unsupported(&e) => Ok(FileVerity::Unsupported),
        Err(e) => Err(e.at(path).into()),
    }
}

/// The three files of a sealed deployment, as `sealroot ostree deploy`
/// writes them.
#[derive(Debug)]
pub struct SealedFiles<'a> {
    /// The composefs EROFS, written as [`IMAGE_FILE`].
    pub image: &'a [u8],
    /// The binding record, written as [`BINDING_FILE`].
    pub record: &'a [u8],
    /// The DER PKCS#7 over the record's digest, written as
    /// [`SIGNATURE_FILE`].
    pub signature: &'a [u8],
    /// The fs-verity parameters of the image and the record.
    pub params: &'a VerityParams,
    /// None: auto (builtin if the kernel takes the signature, else
    /// detached).
    pub mode: Option<SignatureMode>,
}

/// The verity outcome of each file written.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// The EROFS image's.
    pub image: FileVerity,
    /// The binding record's.
    pub record: FileVerity,
}

/// Writes the sealed files into `deployment` (image, signature, then the
/// record).
pub fn write_sealed(
    deployment: &Deployment,
    files: &SealedFiles<'_>,
) -> Result<Written, DeployError> {
    let dir = &deployment.dir;
    let _mutable = Mutable::new(dir)?;
    let image = write_file(
        dir,
        IMAGE_FILE,
        files.image,
        VerityWish {
            params: files.params,
            enable: true,
            signature: None,
        },
    )?;
    write_file(
        dir,
        SIGNATURE_FILE,
        files.signature,
        VerityWish {
            params: files.params,
            enable: false,
            signature: None,
        },
    )?;
    let wish = match files.mode {
        None => VerityWish {
            params: files.params,
            enable: true,
            signature: Some((files.signature, false)),
        },
        Some(SignatureMode::Builtin) => VerityWish {
            params: files.params,
            enable: true,
            signature: Some((files.signature, true)),
        },
        Some(SignatureMode::Detached) => VerityWish {
            params: files.params,
            enable: true,
            signature: None,
        },
        Some(SignatureMode::AttachAtBoot) => VerityWish {
            params: files.params,
            enable: false,
            signature: None,
        },
    };
    let record = write_file(dir, BINDING_FILE, files.record, wish)?;
    Ok(Written { image, record })
}

/// Lifts the immutable attribute of a deployment directory while sealroot
/// writes into it, and puts it back when dropped. ostree makes every
/// deployment's root directory immutable (`FS_IMMUTABLE_FL`, `chattr +i`)
/// once it is complete (`ostree-sysroot-deploy.c`: "Make the deployment
/// root immutable"), after writing `.ostree.cfs` into it; it lifts the
/// flag the same way to unlock or remove a deployment.
struct Mutable<'a> {
    dir: &'a Dir,
    restore: Option<rustix::fs::IFlags>,
}

impl<'a> Mutable<'a> {
    fn new(dir: &'a Dir) -> Result<Mutable<'a>, DeployError> {
        use rustix::fs::IFlags;
        let io = |what: &str, e: rustix::io::Errno| DeployError::Io {
            path: dir.path().display().to_string(),
            reason: format!("{what} its attributes (chattr): {e}"),
        };
        let flags = match rustix::fs::ioctl_getflags(dir.fd()) {
            Ok(f) => f,
            // A filesystem without attributes has no immutable flag either.
            Err(rustix::io::Errno::NOTTY | rustix::io::Errno::OPNOTSUPP) => {
                return Ok(Mutable { dir, restore: None });
            }
            Err(e) => return Err(io("cannot read", e)),
        };
        if !flags.contains(IFlags::IMMUTABLE) {
            return Ok(Mutable { dir, restore: None });
        }
        rustix::fs::ioctl_setflags(dir.fd(), flags - IFlags::IMMUTABLE)
            .map_err(|e| io("cannot lift the immutable flag from", e))?;
        Ok(Mutable {
            dir,
            restore: Some(flags),
        })
    }
}

impl Drop for Mutable<'_> {
    fn drop(&mut self) {
        if let Some(flags) = self.restore {
            // Nothing better to do on failure than what ostree does: the
            // deployment stays mutable, which `ostree admin status` shows.
            let _ = rustix::fs::ioctl_setflags(self.dir.fd(), flags);
        }
    }
}

/// fs-verity on the content objects an image references.
#[derive(Debug, Clone, Default)]
pub struct ObjectVerity {
    /// Had sha256 fs-verity already.
    pub already: usize,
    /// Enabled now.
    pub enabled: usize,
    /// Lack fs-verity: not enabled (`check_only`), or the filesystem has
    /// none (checksums).
    pub missing: Vec<Checksum>,
    /// Have fs-verity with another algorithm than sha256: overlayfs will
    /// refuse them (checksums).
    pub wrong_algorithm: Vec<Checksum>,
}

/// Enables sha256 fs-verity (4 KiB blocks, what ostree itself enables
/// with `[ex-integrity] fsverity=true`) on every object of `objects`
/// lacking it. Each of those was checked against its name while the
/// image was built ([`super::image`]: the sha256 of ostree's file header
/// and its content is its checksum), and the kernel's measurement after
/// enabling must equal the digest computed then, so only a genuine
/// object of the commit is ever made immutable, even through a hard link
/// planted in `objects/`. With `check_only`, changes nothing and reports.
pub fn enable_object_verity(
    repo: &Repo,
    objects: &[ExternalObject],
    check_only: bool,
) -> Result<ObjectVerity, DeployError> {
    use rustix::io::Errno;
    let mut report = ObjectVerity::default();
    let params = super::image::object_params();
    for o in objects {
        let path = repo.objects().display(o.object.loose_path("file"));
        let f = repo.open_content(&o.object)?;
        match ioctl::measure(&f) {
            Ok(d) if d == o.digest => {
                report.already += 1;
                continue;
            }
            Ok(d) if d.algorithm() != params.algorithm => {
                report.wrong_algorithm.push(o.object);
                continue;
            }
            Ok(d) => {
                return Err(DeployError::ObjectChanged {
                    path: path.display().to_string(),
                    expected: Box::new(o.digest),
                    actual: Box::new(d),
                });
            }
            Err(_) => {}
        }
        if check_only {
            report.missing.push(o.object);
            continue;
        }
        // The image's digest of an object without verity was computed
        // from its content moments ago; the kernel's, after enabling, must
        // be the same, or the file changed in between.
        match ioctl::enable(&f, &params, None) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(Errno::EXIST) => {}
            Err(e)
                if matches!(
                    e.errno(),
                    Some(Errno::OPNOTSUPP | Errno::NOTTY | Errno::INVAL)
                ) =>
            {
                report.missing.push(o.object);
                continue;
            }
            Err(e) => return Err(e.at(&path).into()),
        }
        let actual = ioctl::measure(&f).map_err(|e| e.at(&path))?;
        if actual != o.digest {
            return Err(DeployError::ObjectChanged {
                path: path.display().to_string(),
                expected: Box::new(o.digest),
                actual: Box::new(actual),
            });
        }
        report.enabled += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::parse_deployment_name;

    #[test]
    fn deployment_names() {
        let c = "2d2426bb74c493029fab7e9bda2d2dbf172291eb66c64701d623710bbc2ff03d";
        assert_eq!(parse_deployment_name(&format!("{c}.0")).unwrap().1, 0);
        assert_eq!(parse_deployment_name(&format!("{c}.12")).unwrap().1, 12);
        for bad in [
            format!("{c}.0.origin"),
            format!("{c}."),
            format!("{c}.01"),
            format!("{c}.-1"),
            c.to_string(),
            format!("{}.0", &c[1..]),
        ] {
            assert!(parse_deployment_name(&bad).is_none(), "{bad}");
        }
    }
}
