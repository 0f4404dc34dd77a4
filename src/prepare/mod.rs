//! The initramfs flow behind `sealroot-prepare`: from "the physical root is
//! mounted at /sysroot" to "the sealed root is mounted at /sysroot", or a
//! refusal. See `docs/prepare.md` for the user's view.
//!
//! 1. settings from the initramfs only: [`config`] (`prepare.conf`), the
//!    trusted certificates (`/etc/sealroot/certs.d`), and the image the
//!    kernel command line selects ([`cmdline`]);
//! 2. [`modules`]: erofs and overlay (loop for the fallback), if not built in;
//! 3. every certificate into `.fs-verity`, then the keyring sealed — before
//!    any signed file is opened;
//! 4. [`verify`]: manifest, artifact or inline signatures ([`signatures`]),
//!    config, binding and rollback floor ([`binding`]), EROFS ([`files`]
//!    opens and measures; [`repo`] reads the untrusted disk); on the first boot of a deployment made without
//!    fs-verity, with attaching allowed, [`objects`] gives the object store
//!    fs-verity;
//! 5. [`ipe`] (when the initramfs carries a policy): the kernel enforces
//!    IPE, the objects carry their signatures, the kernel accepts the
//!    policy (loaded, not active);
//! 6. [`mountroot`]: composefs (EROFS + overlayfs `verity=require`), /etc,
//!    /var, /sysroot, moved onto the sysroot in one step; then the IPE
//!    policy is activated (or the new root unmounted again);
//! 7. [`record`] writes `/run/sealroot/status.json`.
//!
//! With `[boot] layout = ostree` the command line selects an ostree
//! deployment, and steps 4–7 are [`ostree`]'s (same keyring, same
//! [`mountroot::assemble`], same record; no IPE policy, which the
//! configuration refuses for this layout). With `[boot] layout =
//! composefs-rs` they are [`composefs_rs`]'s: the image composefs-rs or
//! bootc deployed, named by `composefs.digest=`/`composefs=` (likewise
//! without IPE).
//!
//! Fail closed: the first problem stops the flow with one [`Error`], whose
//! message is the one line the binary prints, and nothing is left mounted.
//! No selector is such a problem, unless the initramfs says `[boot]
//! required = no` and the command line names nothing of sealroot's: then
//! the flow stands down after step 1 ([`Outcome::StoodDown`]).
//!
//! [`gate`] is the second mode of the binary: run just before systemd
//! switches root, it allows the switch only into the root this flow
//! mounted (or after it stood down as allowed).

pub mod binding;
pub mod cmdline;
pub mod composefs_rs;
pub mod config;
pub mod files;
pub mod gate;
pub mod ipe;
pub mod log;
pub mod modules;
pub mod mountroot;
pub mod objects;
pub mod ostree;
pub mod record;
pub mod repo;
pub mod signatures;
pub mod verify;

use std::path::Path;
use std::time::Instant;

use crate::crypto::Cert;
use crate::keyring::{FsVerityKeyring, Restriction};
use config::{Config, SealMode, SignaturePolicy};
use record::{KeyringRecord, Status};

pub use crate::sys::rusage::{CpuTime, cpu_time};

/// Trusted certificates, DER or PEM.
pub const CERTS_DIR: &str = "/etc/sealroot/certs.d";

/// Exit codes of `sealroot-prepare` (documented in `docs/prepare.md`).
pub mod exit {
    /// The sealed root is mounted.
    pub const OK: u8 = 0;
    /// The image was refused: not deployed, altered, or not signed by a
    /// trusted key.
    pub const REFUSED: u8 = 1;
    /// The initramfs or the command line is wrong: prepare.conf, certs.d,
    /// kernel command line.
    pub const CONFIG: u8 = 2;
    /// The system cannot do it: kernel features, modules, keyring, mounts.
    pub const SYSTEM: u8 = 3;
}

/// Why the root was not mounted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel command line selects nothing, or selects badly.
    #[error("kernel command line: {0}")]
    Cmdline(cmdline::CmdlineError),
    /// `/proc/cmdline` could not be read.
    #[error("cannot read /proc/cmdline: {0}")]
    ProcCmdline(std::io::Error),
    /// `prepare.conf` is wrong.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// `certs.d` is missing, empty, or holds a certificate the policy
    /// refuses.
    #[error("trusted certificates: {0}")]
    Certs(String),
    /// erofs, overlay or loop is neither built in nor loadable.
    #[error(transparent)]
    Module(#[from] modules::ModuleError),
    /// Adding the certificates to `.fs-verity` or sealing it failed.
    #[error("{0}")]
    Keyring(String),
    /// A signature, digest or binding did not check out.
    #[error("refused: {0}")]
    Verify(verify::VerifyError),
    /// The repository on the disk is not what a deployment needs.
    #[error(transparent)]
    Repo(#[from] repo::RepoError),
    /// Assembling or moving the sealed root failed.
    #[error("mounting the sealed root: {0}")]
    Mount(mountroot::MountError),
    /// Enabling fs-verity on the object store at first boot failed.
    #[error(
        "first boot of a deployment made without fs-verity: enabling it on the object \
         store failed (the physical root must be writable, on a filesystem with the \
         verity feature): {0}"
    )]
    Objects(repo::RepoError),
    /// The IPE policy could not be read, loaded or enforced.
    #[error(transparent)]
    Ipe(#[from] ipe::IpeError),
    /// The switch-root gate refuses the root ([`gate`]).
    #[error("refusing to switch root: {0}")]
    Gate(String),
    /// The ostree layout's steps failed.
    #[error(transparent)]
    Ostree(#[from] ostree::OstreeError),
    /// The composefs-rs layout's steps failed.
    #[error(transparent)]
    ComposefsRs(composefs_rs::ComposefsRsError),
    /// The marker other units wait for after a stand-down could not be
    /// written.
    #[error("cannot leave the stand-down marker {path}: {reason}")]
    Marker {
        /// The marker file.
        path: &'static str,
        /// What the system said.
        reason: std::io::Error,
    },
}

// Not `#[from]`: that would make the cause a `source` as well, and the
// message already names it (printed once, see `verity::ioctl::Error`).
impl From<mountroot::MountError> for Error {
    fn from(error: mountroot::MountError) -> Self {
        Error::Mount(error)
    }
}

impl From<verify::VerifyError> for Error {
    fn from(error: verify::VerifyError) -> Self {
        Error::Verify(error)
    }
}

impl From<cmdline::CmdlineError> for Error {
    fn from(error: cmdline::CmdlineError) -> Self {
        Error::Cmdline(error)
    }
}

impl Error {
    /// The exit status for this error ([`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Cmdline(_) | Error::ProcCmdline(_) | Error::Config(_) | Error::Certs(_) => {
                exit::CONFIG
            }
            Error::Mount(e) if e.is_refusal() => exit::REFUSED,
            Error::Module(_)
            | Error::Keyring(_)
            | Error::Mount(_)
            | Error::Objects(_)
            | Error::Marker { .. } => exit::SYSTEM,
            Error::Verify(_) | Error::Repo(_) | Error::Gate(_) => exit::REFUSED,
            Error::Ipe(ipe::IpeError::PolicyFile { .. }) => exit::CONFIG,
            Error::Ipe(ipe::IpeError::Kernel(_)) => exit::SYSTEM,
            Error::Ipe(ipe::IpeError::ObjectSignatures(_)) => exit::REFUSED,
            Error::Ostree(e) => e.exit_code(),
            Error::ComposefsRs(e) => e.exit_code(),
        }
    }
}

/// Where the flow reads its inputs (fixed in the initramfs; tests of the
/// parsers use the pieces directly).
#[derive(Debug)]
pub struct Inputs<'a> {
    /// `prepare.conf` ([`config::CONFIG_PATH`]).
    pub config_file: &'a Path,
    /// The trusted certificates ([`CERTS_DIR`]).
    pub certs_dir: &'a Path,
    /// The kernel command line (`/proc/cmdline`).
    pub cmdline_file: &'a Path,
}

impl Default for Inputs<'static> {
    fn default() -> Self {
        Inputs {
            config_file: Path::new(config::CONFIG_PATH),
            certs_dir: Path::new(CERTS_DIR),
            cmdline_file: Path::new("/proc/cmdline"),
        }
    }
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

/// How the flow ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The sealed root is mounted at the sysroot.
    Mounted,
    /// `[boot] required = no` and the command line names no sealroot
    /// parameter: nothing was done; the caller records it and leaves the
    /// marker other units wait for.
    StoodDown,
}

/// Runs the whole flow; `status` is filled as far as it got.
pub fn run(
    inputs: &Inputs<'_>,
    log: &mut log::Log,
    status: &mut Status,
    started: Instant,
) -> Result<Outcome, Error> {
    status.format = 1;
    status.version = env!("CARGO_PKG_VERSION");
    status.kernel = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();

    // 1. Settings. Nothing from the root filesystem is read yet.
    let t = Instant::now();
    let config = config::load(inputs.config_file)?;
    status.config = Some(config.clone());
    let cmdline = std::fs::read_to_string(inputs.cmdline_file).map_err(Error::ProcCmdline)?;
    // Standing down is the initramfs' decision; the command line can only
    // keep sealroot in (any sealroot parameter, even a malformed one, is
    // parsed and must select an image).
    if !config.boot.required && !cmdline::names_sealroot(&cmdline) {
        // Standing down boots a root sealroot did not verify, without the
        // IPE policy: an initramfs that requires IPE never allows that
        // (the gate checks the same).
        if config.ipe.required {
            return Err(Error::Config(config::ConfigError::File {
                file: inputs.config_file.display().to_string(),
                reason: config::STAND_DOWN_WITH_IPE_REQUIRED.into(),
            }));
        }
        status.timings_us.config = micros(t);
        log.notice(&format!(
            "no sealroot parameter on the kernel command line and [boot] required = no in {}: \
             standing down (sealroot verified and mounted nothing; another unit prepares the \
             root)",
            inputs.config_file.display()
        ));
        return Ok(Outcome::StoodDown);
    }
    // The initramfs' layout decides what selects (`[boot] layout`).
    let selected = ostree::Selected::parse(&config, &cmdline)?;
    status.selector = Some(selected.to_string());
    let certs = load_certs(inputs.certs_dir)?;
    let mut ipe_plan = ipe::read_policy(&config.ipe)?;
    status.ipe = ipe_plan.as_ref().map(|p| p.record.clone());
    // A policy file present is always enforced; the ostree and
    // composefs-rs layouts cannot (config.rs refuses `[ipe] required` with
    // them; this is the file alone).
    let no_ipe = match selected {
        ostree::Selected::Repository(_) => None,
        ostree::Selected::Ostree(_) => Some(config::OSTREE_WITH_IPE),
        ostree::Selected::ComposefsRs(_) => Some(config::COMPOSEFS_RS_WITH_IPE),
    };
    if let (Some(_), Some(reason)) = (&ipe_plan, no_ipe) {
        return Err(Error::Config(config::ConfigError::File {
            file: config.ipe.policy.display().to_string(),
            reason: reason.into(),
        }));
    }
    status.timings_us.config = micros(t);

    // 2. Modules.
    let t = Instant::now();
    let mut loader = modules::Loader::new(modules::module_dir());
    let loaded = loader
        .ensure_filesystem("erofs", "erofs")
        .and_then(|_| loader.ensure_filesystem("overlay", "overlay"));
    status.modules_loaded = loader.loaded.clone();
    loaded?;
    status.timings_us.modules = micros(t);

    // 3. Certificates into the keyring, then seal it: before any signed
    //    file is opened.
    let t = Instant::now();
    let keyring = load_keyring(&certs, &config, log)?;
    let kernel_signatures = keyring.serial.is_some();
    status.keyring = Some(keyring);
    status.timings_us.keyring = micros(t);

    // 4.–5. Per layout: an ostree deployment goes its own way from here.
    let selector = match selected {
        ostree::Selected::Repository(s) => s,
        ostree::Selected::Ostree(arg) => {
            let policy = verify::Policy::new(&config, &certs, kernel_signatures);
            return ostree::boot(&config, &arg, &policy, &mut loader, log, status, started);
        }
        ostree::Selected::ComposefsRs(selection) => {
            let policy = verify::Policy::new(&config, &certs, kernel_signatures);
            return composefs_rs::boot(
                &config,
                &selection,
                &policy,
                &mut loader,
                log,
                status,
                started,
            );
        }
    };

    // 4. Verification.
    let t = Instant::now();
    let repo = repo::Repo::open(&config.repository_path())?;
    let verified = verify::verify(
        &repo,
        &selector,
        &verify::Policy::new(&config, &certs, kernel_signatures),
    )?;
    status.verification = Some(verified.mode());
    status.image = Some(verified.record(&repo));
    status.timings_us.verify = micros(t);
    log.info(&format!(
        "verified image {} (config {}, EROFS {}): {} signatures by '{}', {}",
        verified.manifest,
        verified.config,
        verified.image,
        verified.mode(),
        verified.image_proof.signer.subject,
        match verified.binding.bound_by.as_slice() {
            [] => "NOT bound (require-binding = no)".to_string(),
            by => format!("bound by {}", by.join(" and ")),
        }
    ));
    if verified.binding.bound_by.is_empty() {
        log.notice(&format!(
            "image {} is not bound: its EROFS is trusted only per file signature \
             ([verify] require-binding = no)",
            verified.manifest
        ));
    }

    // 4b. A deployment made without fs-verity, booted for the first time
    //     with attaching allowed: its objects get fs-verity now, with their
    //     builtin signatures when the image has per-object signatures (see
    //     `objects`). The hint decides only whether to do the work.
    let hint = repo.deployment(&verified.deployment)?;
    let first_boot = config.attach_signatures && !hint.verity;
    let bundle = if first_boot || ipe_plan.is_some() {
        objects::load_bundle(&repo, verified.artifact.as_ref())?
    } else {
        None
    };
    if first_boot {
        let t = Instant::now();
        let attach = objects::Attach {
            bundle: bundle.as_ref(),
            require_signatures: ipe_plan.is_some(),
        };
        let done = objects::enable_missing(
            &repo,
            &verified.deployment,
            &hint,
            (&verified.image_file, &verified.image),
            &attach,
        )
        .map_err(Error::Objects)?;
        log.info(&format!(
            "first boot of {}: enabled fs-verity ({}, as the signed EROFS records) on {} \
             objects ({} with their builtin signature; {} had it)",
            verified.deployment,
            done.algorithm.unwrap_or("no objects"),
            done.enabled,
            done.signed,
            done.present
        ));
        status.objects_verity = Some(done);
        status.timings_us.objects = micros(t);
    }

    // 5. IPE, before anything is mounted: kernel support, object
    //    signatures, the kernel's verdict on the policy (loaded, inactive).
    let loaded = match ipe_plan.as_mut() {
        None => None,
        Some(plan) => {
            let t = Instant::now();
            let objects = ipe::object_signatures(
                &repo,
                verified.artifact.as_ref(),
                bundle.as_ref(),
                &hint,
                status.objects_verity.as_ref(),
            );
            let loaded = ipe::load(plan, kernel_signatures, objects);
            status.ipe = Some(plan.record.clone());
            status.timings_us.ipe = micros(t);
            Some(loaded?)
        }
    };

    // 6. Mount.
    let t = Instant::now();
    let mounted = mountroot::mount_root(
        &config,
        &repo,
        &verified.image_file,
        &verified.deployment,
        &mut loader,
    );
    status.modules_loaded = loader.loaded.clone();
    let mounted = match mounted {
        Ok(m) => m,
        Err(e) => {
            if let Some(l) = loaded {
                l.discard();
            }
            return Err(e.into());
        }
    };
    status.mount = Some(mounted);
    status.timings_us.mount = micros(t);

    // 6b. The policy becomes active only now that the sealed root is in
    //     place; if that fails, the new root goes away again.
    if let (Some(loaded), Some(plan)) = (loaded, ipe_plan.as_mut()) {
        let activated = loaded.activate(&mut plan.record);
        status.ipe = Some(plan.record.clone());
        if let Err(e) = activated {
            let _ = crate::mount::detach(&config.sysroot);
            status.mount = None;
            return Err(e.into());
        }
        log.info(&format!(
            "IPE policy '{}' {} (signed by {}) is active and enforcing{}; objects: {}",
            plan.record.name,
            plan.record.version,
            plan.policy.signer_description(),
            if plan.record.enforce_overridden {
                " (ipe.enforce=0 on the kernel command line was overridden)"
            } else {
                ""
            },
            plan.record.objects.as_deref().unwrap_or("")
        ));
    }
    status.timings_us.total = micros(started);
    log.info(&format!(
        "mounted the sealed root at {} in {} ms (/etc {}, /var {})",
        config.sysroot.display(),
        status.timings_us.total / 1000,
        kebab(&config.etc),
        kebab(&config.var),
    ));
    Ok(Outcome::Mounted)
}

fn kebab<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The trusted certificates; an empty directory is an error (nothing
/// could ever verify).
fn load_certs(dir: &Path) -> Result<Vec<Cert>, Error> {
    match Cert::load(dir) {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) | Err(crate::crypto::Error::NoCertificates { .. }) => Err(Error::Certs(format!(
            "no certificates in {} (DER or PEM files *.pem, *.crt, *.cer, *.cert, *.der): \
             nothing could be verified, refusing to boot; add the signing certificate (or its \
             CA) to the initramfs",
            dir.display()
        ))),
        Err(crate::crypto::Error::Read {
            path,
            error: source,
        }) if source.kind() == std::io::ErrorKind::NotFound => Err(Error::Certs(format!(
            "{} does not exist: the initramfs carries no trusted certificates; refusing \
                 to boot",
            path.display()
        ))),
        Err(e) => Err(Error::Certs(e.to_string())),
    }
}

/// Adds `certs` to `.fs-verity` and seals it, if the kernel has it.
fn load_keyring(
    certs: &[Cert],
    config: &Config,
    log: &mut log::Log,
) -> Result<KeyringRecord, Error> {
    let mut record = KeyringRecord {
        builtin_signatures: false,
        serial: None,
        sealed: None,
        certificates: certs.iter().map(|c| c.info()).collect(),
    };
    let keyring = match FsVerityKeyring::find() {
        Ok(k) => k,
        Err(crate::keyring::Error::NotFound) => {
            if config.signatures == SignaturePolicy::Kernel {
                return Err(Error::Keyring(
                    "[verify] signatures = kernel, but the kernel has no .fs-verity keyring \
                     (CONFIG_FS_VERITY_BUILTIN_SIGNATURES is off): it cannot check builtin \
                     signatures; use signatures = auto or userspace"
                        .into(),
                ));
            }
            log.notice(
                "the kernel has no .fs-verity keyring (no builtin signature support): \
                 signatures are verified in userspace against kernel-measured digests",
            );
            return Ok(record);
        }
        Err(e) => return Err(Error::Keyring(e.to_string())),
    };
    for cert in certs {
        keyring
            .add(cert)
            .map_err(|e| Error::Keyring(e.to_string()))?;
    }
    let (restriction, name) = match config.seal {
        SealMode::RejectAll => (Restriction::RejectAll, "reject-all"),
        SealMode::CaChain => (Restriction::SignedByKeyring, "ca-chain"),
    };
    keyring
        .seal(restriction)
        .map_err(|e| Error::Keyring(e.to_string()))?;
    record.builtin_signatures = true;
    record.serial = Some(keyring.serial());
    record.sealed = Some(name);
    log.info(&format!(
        "loaded {} certificate(s) into the .fs-verity keyring and sealed it ({name})",
        certs.len()
    ));
    Ok(record)
}
