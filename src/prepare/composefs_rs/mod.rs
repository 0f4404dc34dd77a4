//! The composefs-rs layout of the flow (`[boot] layout = composefs-rs`):
//! boot the image composefs-rs (`cfsctl oci prepare-boot`) or bootc's
//! composefs backend deployed, in place of composefs-setup-root.
//!
//! On the physical root (composefs-rs `crates/composefs/src/repository.rs`
//! and `crates/composefs-boot/src/design.rs`):
//!
//! ```text
//! composefs/objects/XX/<rest>        fs-verity-named objects (sha256 or sha512)
//! composefs/images/<hex>             -> ../objects/XX/<rest>: the EROFS, named by
//!                                       its own fs-verity digest
//! composefs/streams/, meta.json      (not read at boot)
//! state/deploy/<hex>/{etc,var}       per-deployment state (bootc: var -> ../../os/default/var)
//! ```
//!
//! What sealroot-prepare does that composefs-setup-root does not: the
//! `.fs-verity` keyring holds only the initramfs' certificates and is
//! sealed before anything is opened; the image is refused unless its
//! kernel-measured fs-verity digest is the one the command line names
//! (composefs-setup-root checks that too, unless `?`); unless
//! `[composefs-rs] require-signature = no`, the image must carry a builtin
//! signature by a trusted certificate, which the kernel checks when the
//! file is opened (against the sealed keyring: ENOKEY otherwise,
//! `fs/verity/open.c`) and this module again in userspace against
//! `certs.d` (for kernels without builtin signatures); a signature present
//! is always checked. Then the same [`super::mountroot::assemble`]
//! as the other layouts: overlayfs `verity=require` over the repository's
//! objects, /etc and /var as `setup-root-conf.toml` says ([`conf`]), all of
//! it `nosuid,nodev`, and the same status record and switch-root gate.
//!
//! Why the signature matters: a composefs-rs image has no other signed
//! anchor than the digest on the kernel command line. On a UKI that line is
//! signed; on a BLS boot anyone at the boot menu (or with the disk) can
//! edit it and name an image they planted in the repository, which then
//! verifies perfectly against its own digest (docs/boot-chains.md,
//! "bootc").

pub mod conf;
pub mod select;

use std::fs::File;
use std::path::Path;

use super::config::{Config, EtcMode, SignaturePolicy, VarMode};
use super::mountroot::{self, EtcPlan, MountError, Mounted, Plan, VarPlan};
use super::repo::{Repo, RepoError};
use super::verify::{FileProof, Policy, SignatureCheck};
use crate::verity::{FsVerityDigest, ioctl as vioctl};
use conf::{MountType, SetupRootConf};

/// The repository, below the physical root (composefs-setup-root opens
/// `composefs` in the sysroot).
pub const REPOSITORY: &str = "composefs";
/// The per-deployment state, below the physical root
/// (`state/deploy/<hex>`, composefs-setup-root `setup_root`).
pub const STATE: &str = "state";

/// Why the composefs-rs image was not booted.
#[derive(Debug, thiserror::Error)]
pub enum ComposefsRsError {
    /// The command line selects no image, or selects it wrongly.
    #[error(transparent)]
    Select(#[from] select::SelectError),
    /// `setup-root-conf.toml` does not parse, or asks what sealroot refuses.
    #[error(transparent)]
    Conf(#[from] conf::ConfError),
    /// The repository on the disk is not what booting needs.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The image does not check out (digest, fs-verity, signature).
    #[error("refused: composefs image {image}: {reason}")]
    Refused {
        /// `images/<hex>`.
        image: String,
        /// Why, and what to do.
        reason: String,
    },
    /// Assembling or moving the sealed root failed.
    #[error("mounting the sealed root: {0}")]
    Mount(MountError),
}

// Not `#[from]`: that would make the cause a `source` as well, and the
// message already names it (printed once, see `verity::ioctl::Error`).
impl From<MountError> for ComposefsRsError {
    fn from(error: MountError) -> Self {
        ComposefsRsError::Mount(error)
    }
}

impl ComposefsRsError {
    /// The exit status this refusal gives (`prepare::exit`).
    pub fn exit_code(&self) -> u8 {
        use super::exit;
        match self {
            ComposefsRsError::Select(_) | ComposefsRsError::Conf(_) => exit::CONFIG,
            ComposefsRsError::Mount(e) if e.is_refusal() => exit::REFUSED,
            ComposefsRsError::Mount(_) => exit::SYSTEM,
            ComposefsRsError::Repo(_) | ComposefsRsError::Refused { .. } => exit::REFUSED,
        }
    }
}

/// What status.json records for a composefs-rs boot (`composefs_rs` in
/// docs/prepare.md's record).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComposefsRsRecord {
    /// The command-line argument that selected the image.
    pub argument: String,
    /// The image below the repository (`images/<hex>`).
    pub image: String,
    /// Its fs-verity digest as the kernel measured it (`sha256:<hex>`).
    pub erofs: String,
    /// The image's builtin signature, when it has one (always checked).
    pub signature: Option<FileProof>,
    /// What the boot rests on: `signature` or `command-line` (only with
    /// `[composefs-rs] require-signature = no` and an unsigned image).
    pub trust: &'static str,
    /// The state directory below the physical root (`state/deploy/<hex>`).
    pub state: String,
    /// `setup-root-conf.toml` from the initramfs, resolved.
    pub setup_root_conf: SetupRootConf,
}

/// A verified image, ready to mount.
#[derive(Debug)]
pub struct Verified {
    /// The candidate that was found.
    pub argument: String,
    /// The image's fs-verity digest, as the kernel measured it.
    pub digest: FsVerityDigest,
    /// The EROFS, open and measured: mount exactly this.
    pub image: File,
    /// The image's builtin signature, as checked; `None` when unsigned.
    pub signature: Option<FileProof>,
}

impl Verified {
    /// `images/<hex>`, `state/deploy/<hex>`: composefs-rs names both by the
    /// digest as the command line wrote it.
    fn name(&self) -> String {
        self.digest.to_hex()
    }
}

/// Finds the first candidate present in the repository and verifies it:
/// its measured fs-verity digest, then its builtin signature.
pub fn verify(
    repo: &Repo,
    selection: &select::Selection,
    policy: &Policy<'_>,
    require_signature: bool,
) -> Result<Verified, ComposefsRsError> {
    let mut found = None;
    for c in &selection.candidates {
        let rel = format!("images/{}", c.digest.to_hex());
        // images/<hex> is a symlink into objects/; the repository resolves
        // it inside itself (RESOLVE_IN_ROOT), never out of it.
        match repo.open_file(&rel, "cannot open the composefs image") {
            Ok(file) => {
                found = Some((c, rel, file));
                break;
            }
            Err(RepoError::Io {
                errno: rustix::io::Errno::NOENT,
                ..
            }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let Some((candidate, rel, image)) = found else {
        let tried: Vec<String> = selection
            .candidates
            .iter()
            .map(|c| format!("images/{}", c.digest.to_hex()))
            .collect();
        return Err(ComposefsRsError::Refused {
            image: selection.to_string(),
            reason: format!(
                "not present in {} (looked for {}): the command line names an image this \
                 repository does not hold; boot an entry of a deployed image",
                repo.path().display(),
                tried.join(", ")
            ),
        });
    };
    let path = repo.display(&rel);
    let refused = |reason: String| ComposefsRsError::Refused {
        image: path.display().to_string(),
        reason,
    };
    let kernel = |e: vioctl::Error| refused(e.at(&path).to_string());

    // The trust anchor without a signature: the kernel's measurement of
    // the very file that will be mounted equals the selected digest.
    if !vioctl::has_verity(&image).map_err(kernel)? {
        return Err(refused(
            "has no fs-verity: composefs-rs enables it on every object of a secure \
             repository; this one was deployed insecurely (cfsctl init --insecure) or replaced"
                .into(),
        ));
    }
    let measured = vioctl::measure(&image).map_err(kernel)?;
    if measured != candidate.digest {
        return Err(refused(format!(
            "its fs-verity digest is {measured}, but {} names {}: the image file was replaced \
             or swapped",
            candidate.argument, candidate.digest
        )));
    }

    // The signature: always checked when present, required unless the
    // initramfs says the command line alone is trusted.
    let builtin = vioctl::read_signature(&image).map_err(kernel)?;
    let signature = match builtin {
        Some(sig) => {
            let verified =
                crate::pkcs7::verify_fsverity(&sig, &measured, policy.certs).map_err(|e| {
                    refused(format!(
                        "its builtin signature (fs-verity {measured}) is refused: {e}"
                    ))
                })?;
            Some(FileProof::new(
                rel.clone(),
                &measured,
                policy.kernel_signatures,
                false,
                verified,
            ))
        }
        None if require_signature => {
            return Err(refused(
                "carries no builtin signature, and [composefs-rs] require-signature = yes: \
                 sign the image and enable its fs-verity with the signature \
                 (docs/boot-chains.md, \"bootc\"), or, only where the kernel command line is \
                 itself signed (a UKI), set require-signature = no"
                    .into(),
            ));
        }
        None => None,
    };
    if policy.signatures == SignaturePolicy::Kernel
        && signature
            .as_ref()
            .is_some_and(|s| s.signature != SignatureCheck::Kernel)
    {
        return Err(refused(
            "[verify] signatures = kernel, but the kernel did not check the image's builtin \
             signature"
                .into(),
        ));
    }
    Ok(Verified {
        argument: candidate.argument.clone(),
        digest: measured,
        image,
        signature,
    })
}

/// The composefs root over the repository's objects, /etc and /var as
/// `conf` says, the physical root at /sysroot; onto the sysroot.
pub fn mount(
    config: &Config,
    repo: &Repo,
    verified: &Verified,
    conf: &SetupRootConf,
    loader: &mut super::modules::Loader,
) -> Result<Mounted, ComposefsRsError> {
    if conf.root_transient {
        return Err(ComposefsRsError::Conf(conf::ConfError {
            file: conf::SETUP_ROOT_CONF.into(),
            line: 0,
            reason: "[root] transient = true is not supported by sealroot-prepare: the root \
                     must be the verified composefs mount itself (the switch-root gate checks \
                     it), not a writable overlay over it; use [etc]/[var] mount = \"transient\""
                .into(),
        }));
    }
    let deploy = format!("deploy/{}", verified.name());
    // The state directory is opened only when a mode needs it, as a
    // repository of its own: a symlink inside it (bootc's var ->
    // ../../os/default/var) resolves within `state/`, never out of it.
    let state = || Repo::open(&config.sysroot.join(STATE));
    let overlay_dirs = |dir: &str| -> Result<(_, _), RepoError> {
        let state = state()?;
        let (upper, work) = (
            format!("{deploy}/{dir}/upper"),
            format!("{deploy}/{dir}/work"),
        );
        // 0755: the merged directory takes the upper's mode (composefs-rs
        // issue 287); work is kernel-internal.
        state.create_dirs(&upper, 0o755)?;
        state.create_dirs(&work, 0o700)?;
        Ok((
            state.open_dir(&upper, "cannot open the state directory")?,
            state.open_dir(&work, "cannot open the state directory")?,
        ))
    };
    let bind_dir = |dir: &str| {
        state()?.open_dir(
            &format!("{deploy}/{dir}"),
            "cannot open the state directory",
        )
    };
    let etc = match conf.etc {
        MountType::None => EtcPlan::Image,
        MountType::Transient => EtcPlan::Transient,
        MountType::Bind => EtcPlan::Bind(bind_dir("etc")?),
        MountType::Overlay => {
            let (upper, work) = overlay_dirs("etc")?;
            EtcPlan::Overlay { upper, work }
        }
    };
    let var = match conf.var {
        MountType::None => VarPlan::Image,
        MountType::Transient => VarPlan::OverlayTransient,
        MountType::Bind => VarPlan::Bind(bind_dir("var")?),
        MountType::Overlay => {
            let (upper, work) = overlay_dirs("var")?;
            VarPlan::Overlay { upper, work }
        }
    };
    let plan = Plan {
        image: &verified.image,
        objects: repo.open_dir("objects", "cannot open the object store")?,
        etc,
        var,
        physical_read_only: false,
    };
    let (erofs_backing, ids) =
        mountroot::assemble(&config.sysroot, config.erofs_backing, plan, loader)?;
    Ok(Mounted {
        erofs_backing,
        etc: match conf.etc {
            MountType::None => EtcMode::Image,
            MountType::Transient => EtcMode::Transient,
            MountType::Bind | MountType::Overlay => EtcMode::Persistent,
        },
        var: match conf.var {
            MountType::None => VarMode::Image,
            MountType::Transient => VarMode::Transient,
            MountType::Bind | MountType::Overlay => VarMode::Persistent,
        },
        physical_root: format!("{}/sysroot", config.sysroot.display()),
        physical_root_read_only: false,
        ids,
    })
}

/// The composefs-rs layout's part of [`super::run`], after the keyring is
/// sealed: setup-root-conf.toml, verify, mount, record.
pub fn boot(
    config: &Config,
    selection: &select::Selection,
    policy: &Policy<'_>,
    loader: &mut super::modules::Loader,
    log: &mut super::log::Log,
    status: &mut super::record::Status,
    started: std::time::Instant,
) -> Result<super::Outcome, super::Error> {
    let micros = |t: std::time::Instant| t.elapsed().as_micros() as u64;
    let setup_root =
        conf::load(Path::new(conf::SETUP_ROOT_CONF)).map_err(ComposefsRsError::from)?;
    let t = std::time::Instant::now();
    let repo = Repo::open(&config.sysroot.join(REPOSITORY)).map_err(ComposefsRsError::from)?;
    let verified = verify(
        &repo,
        selection,
        policy,
        config.composefs_rs.require_signature,
    )?;
    let name = verified.name();
    status.verification = Some(match verified.signature.as_ref().map(|s| s.signature) {
        Some(SignatureCheck::Kernel) => "kernel",
        Some(SignatureCheck::Userspace) => "userspace",
        None => "command-line",
    });
    status.composefs_rs = Some(ComposefsRsRecord {
        argument: verified.argument.clone(),
        image: format!("images/{name}"),
        erofs: verified.digest.to_string(),
        signature: verified.signature.clone(),
        trust: if verified.signature.is_some() {
            "signature"
        } else {
            "command-line"
        },
        state: format!("{STATE}/deploy/{name}"),
        setup_root_conf: setup_root,
    });
    status.timings_us.verify = micros(t);
    match &verified.signature {
        Some(s) => log.info(&format!(
            "verified composefs image {} ({}): {} signature by '{}'",
            verified.digest,
            verified.argument,
            status.verification.unwrap_or_default(),
            s.signer.subject
        )),
        None => log.notice(&format!(
            "composefs image {} ({}) is unsigned: booting it on the command line's word alone \
             ([composefs-rs] require-signature = no)",
            verified.digest, verified.argument
        )),
    }
    let t = std::time::Instant::now();
    let mounted = mount(config, &repo, &verified, &setup_root, loader)?;
    status.modules_loaded = loader.loaded.clone();
    status.mount = Some(mounted);
    status.timings_us.mount = micros(t);
    status.timings_us.total = micros(started);
    let kebab = |m: MountType| {
        serde_json::to_value(m)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    log.info(&format!(
        "mounted composefs image {} at {} in {} ms (/etc {}, /var {})",
        name,
        config.sysroot.display(),
        status.timings_us.total / 1000,
        kebab(setup_root.etc),
        kebab(setup_root.var),
    ));
    Ok(super::Outcome::Mounted)
}

impl From<ComposefsRsError> for super::Error {
    fn from(e: ComposefsRsError) -> Self {
        super::Error::ComposefsRs(e)
    }
}
