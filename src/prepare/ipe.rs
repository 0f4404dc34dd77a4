//! IPE in the initramfs: load the signed policy from the initramfs through
//! securityfs and activate it once the sealed root is mounted (docs/ipe.md,
//! "What sealroot-prepare does").
//!
//! Order, so that a refusal leaves nothing mounted at the sysroot:
//!
//! 1. with the settings: read and parse the policy file ([`read_policy`];
//!    a broken file is a configuration error);
//! 2. after verification, before mounting ([`load`]): the kernel has IPE
//!    (securityfs mounted if needed, `ipe` in `/sys/kernel/security/lsm`)
//!    and builtin fs-verity signatures; the deployment's objects carry
//!    their builtin signatures ([`ObjectSignatures`]: without them the
//!    policy would make the root unbootable); then the policy is written to
//!    `ipe/new_policy`, where the kernel checks its signature (secondary
//!    trusted keyring, then the platform keyring: UEFI db, MOK) and its
//!    grammar — loaded, not yet active;
//! 3. after the root is mounted ([`Loaded::activate`]): `policies/<name>/active`,
//!    then `ipe/enforce` must read 1 (the kernel command line's
//!    `ipe.enforce=0` is overridden: the command line never weakens
//!    policy). If activation fails the caller unmounts the new root.
//!
//! Any failure before activation deletes the loaded policy again (hygiene;
//! an inactive policy enforces nothing).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::config::IpeConfig;
use crate::errno::errno_name;
use crate::ipe::SignedPolicy;
use crate::ipe::signed::{MAX_SIGNED_POLICY, PolicySigner};

/// Where securityfs is mounted.
pub const SECURITYFS: &str = "/sys/kernel/security";
/// `SECURITYFS_MAGIC` (`include/uapi/linux/magic.h`).
const SECURITYFS_MAGIC: u64 = 0x7363_6673;

/// Why IPE could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IpeError {
    /// The initramfs' policy file (configuration).
    #[error("IPE policy {path}: {reason}")]
    PolicyFile {
        /// The policy file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The kernel cannot or will not take the policy (system).
    #[error("IPE: {0}")]
    Kernel(String),
    /// The deployment lacks the object signatures the policy needs.
    #[error("refused: IPE: {0}")]
    ObjectSignatures(String),
}

fn kernel(m: impl Into<String>) -> IpeError {
    IpeError::Kernel(m.into())
}

/// What `status.json` records about IPE.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IpeRecord {
    /// The policy file in the initramfs.
    pub file: String,
    /// `policy_name=`.
    pub name: String,
    /// `policy_version=`.
    pub version: String,
    /// sha256 of the signed policy file (`sha256:<hex>`).
    pub sha256: String,
    /// Who signed it, as the message names it; the kernel decided the
    /// signer is trusted (secondary trusted or platform keyring).
    pub signer: Option<PolicySigner>,
    /// `/sys/kernel/security/lsm`.
    pub lsm: Option<String>,
    /// How the object signatures were established.
    pub objects: Option<String>,
    /// The policy was already loaded (a second run in the same boot).
    pub reused: bool,
    /// The policy is the active one.
    pub active: bool,
    /// `ipe/enforce` after activation.
    pub enforcing: bool,
    /// `ipe.enforce=0` was on the kernel command line and was switched
    /// back to enforcing.
    pub enforce_overridden: bool,
}

/// The policy read from the initramfs.
#[derive(Debug)]
pub struct Planned {
    /// The policy file.
    pub path: PathBuf,
    /// Its contents, parsed and checked against the PKCS#7 profile.
    pub policy: SignedPolicy,
    /// What `status.json` will say, filled in as the steps run.
    pub record: IpeRecord,
}

/// Reads the policy file of `[ipe]`; `None` when there is none and none is
/// required.
pub fn read_policy(config: &IpeConfig) -> Result<Option<Planned>, IpeError> {
    let path = &config.policy;
    let err = |reason: String| IpeError::PolicyFile {
        path: path.display().to_string(),
        reason,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !config.required => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err(
                "missing, and prepare.conf says [ipe] required = yes: the initramfs must \
                 carry the signed policy (sealroot ipe sign; the dracut module installs \
                 /etc/sealroot/ipe/policy.p7s)"
                    .into(),
            ));
        }
        Err(e) => return Err(err(format!("cannot open: {e}"))),
    };
    let mut der = Vec::new();
    file.by_ref()
        .take(MAX_SIGNED_POLICY as u64 + 1)
        .read_to_end(&mut der)
        .map_err(|e| err(format!("cannot read: {e}")))?;
    let policy = SignedPolicy::parse(&der).map_err(|e| err(e.to_string()))?;
    let record = IpeRecord {
        file: path.display().to_string(),
        name: policy.policy.name.to_string(),
        version: policy.policy.version.to_string(),
        sha256: crate::oci::Sha256Digest::of(&der).to_string(),
        signer: Some(policy.signer.clone()),
        ..Default::default()
    };
    Ok(Some(Planned {
        path: path.clone(),
        policy,
        record,
    }))
}

/// Whether the deployment's objects carry the builtin signatures the
/// policy's `fsverity_signature=TRUE` needs, as far as the initramfs checks
/// ([`object_signatures`]; docs/ipe.md, "What is checked at boot"). Each
/// object's signature is the kernel's business: checking 60,000 objects
/// here would cost one PKCS#7 verification each (the kernel verifies a
/// builtin signature at the first open), seconds on every boot.
#[derive(Debug, Clone)]
pub enum ObjectSignatures {
    /// Attached; how, for the record.
    Attached(String),
    /// Missing: why, naming what is missing.
    Missing(String),
}

/// Before mounting: the kernel can enforce IPE, the objects are signed,
/// and the kernel accepts the policy (loaded, inactive).
pub fn load(
    planned: &mut Planned,
    builtin_signatures: bool,
    objects: ObjectSignatures,
) -> Result<Loaded, IpeError> {
    ensure_securityfs()?;
    let lsm = std::fs::read_to_string(Path::new(SECURITYFS).join("lsm"))
        .ok()
        .map(|s| s.trim().to_owned());
    planned.record.lsm = lsm.clone();
    let ipe = Path::new(SECURITYFS).join("ipe");
    let listed = lsm
        .as_deref()
        .is_some_and(|l| l.split(',').any(|m| m == "ipe"));
    if !listed || !ipe.join("new_policy").exists() {
        return Err(kernel(format!(
            "the kernel does not enforce IPE ({}): the policy {} cannot be loaded; a \
             kernel with CONFIG_SECURITY_IPE and `ipe` among its LSMs (an `lsm=` on the \
             kernel command line that leaves it out switches it off) is required",
            match &lsm {
                Some(l) => format!("active LSMs: {l}"),
                None => format!("no {SECURITYFS}/lsm"),
            },
            planned.path.display()
        )));
    }
    if !builtin_signatures {
        return Err(kernel(
            "the kernel has no builtin fs-verity signatures (no .fs-verity keyring, \
             CONFIG_FS_VERITY_BUILTIN_SIGNATURES): IPE's fsverity_signature=TRUE can never \
             hold, the policy would refuse every program of the sealed root",
        ));
    }
    match objects {
        ObjectSignatures::Attached(how) => planned.record.objects = Some(how),
        ObjectSignatures::Missing(why) => return Err(IpeError::ObjectSignatures(why)),
    }
    let name = planned.policy.policy.name.as_str().to_owned();
    let dir = ipe.join("policies").join(&name);
    match write_once(&ipe.join("new_policy"), &planned.policy.der) {
        Ok(()) => Ok(Loaded { dir, reused: false }),
        Err(Errno::EXIST) => {
            // Loaded before in this boot (or compiled in with this name):
            // usable only if it is exactly this signed policy.
            let same = std::fs::read(dir.join("pkcs7")).ok().as_deref()
                == Some(planned.policy.der.as_slice());
            if !same {
                return Err(kernel(format!(
                    "a different policy named '{name}' is already loaded \
                     ({}/pkcs7 differs from {}): refusing to activate it",
                    dir.display(),
                    planned.path.display()
                )));
            }
            planned.record.reused = true;
            Ok(Loaded { dir, reused: true })
        }
        Err(errno) => Err(kernel(format!(
            "the kernel refused the policy {} ('{name}' {}, signed by {}): {}: {}",
            planned.path.display(),
            planned.policy.policy.version,
            planned.policy.signer_description(),
            errno_name(errno),
            explain_load(errno)
        ))),
    }
}

fn explain_load(errno: Errno) -> &'static str {
    match errno {
        Errno::BADMSG => {
            "it is not a policy the kernel can parse: not PKCS#7-signed (an unsigned \
             policy fails this way), or a syntax this kernel does not know"
        }
        Errno::NOKEY => {
            "its signer is in neither the secondary trusted keyring nor the platform \
             keyring: enrol the policy certificate in the firmware's db or as a MOK \
             (docs/ipe.md, \"Enrolling the policy key\")"
        }
        Errno::KEYREJECTED => {
            "the signature does not verify: the policy or its signature was altered"
        }
        Errno::NOPKG => "the kernel does not support the signature's algorithm",
        Errno::PERM => "not permitted (CAP_MAC_ADMIN is needed)",
        Errno::ACCESS => "the policy name cannot be a securityfs directory name",
        Errno::INVAL | Errno::RANGE => "its policy_version is invalid",
        _ => "see the kernel log",
    }
}

/// Mounts securityfs at [`SECURITYFS`] unless it is there.
fn ensure_securityfs() -> Result<(), IpeError> {
    let path = Path::new(SECURITYFS);
    if let Ok(st) = rustix::fs::statfs(path)
        && st.f_type as u64 == SECURITYFS_MAGIC
    {
        return Ok(());
    }
    let mount = || -> Result<(), crate::mount::Error> {
        let ctx = crate::mount::FsContext::new("securityfs")?;
        ctx.set("source", "securityfs")?;
        ctx.mount(
            rustix::mount::MountAttrFlags::MOUNT_ATTR_NOSUID
                | rustix::mount::MountAttrFlags::MOUNT_ATTR_NODEV
                | rustix::mount::MountAttrFlags::MOUNT_ATTR_NOEXEC,
        )?
        .attach(path)
    };
    mount().map_err(|e| {
        kernel(format!(
            "securityfs is not mounted at {SECURITYFS} and mounting it failed: {e} (a \
             kernel without CONFIG_SECURITYFS, or /sys not mounted)"
        ))
    })
}

/// Writes `bytes` in one write(2): a securityfs policy node parses each
/// write as a whole.
fn write_once(path: &Path, bytes: &[u8]) -> Result<(), Errno> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    let n = rustix::io::write(&fd, bytes)?;
    if n != bytes.len() {
        return Err(Errno::IO);
    }
    Ok(())
}

fn read_flag(path: &Path) -> Option<bool> {
    match std::fs::read_to_string(path).ok()?.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// A policy the kernel accepted, not yet active.
#[derive(Debug)]
pub struct Loaded {
    /// `/sys/kernel/security/ipe/policies/<name>`.
    dir: PathBuf,
    reused: bool,
}

impl Loaded {
    /// Makes the policy the active one and IPE enforcing; fills `record`.
    pub fn activate(&self, record: &mut IpeRecord) -> Result<(), IpeError> {
        let active = self.dir.join("active");
        write_once(&active, b"1").map_err(|errno| {
            kernel(format!(
                "activating {}: {}: {}",
                self.dir.display(),
                errno_name(errno),
                match errno {
                    Errno::INVAL => "a policy with a higher version is already active",
                    _ => "see the kernel log",
                }
            ))
        })?;
        if read_flag(&active) != Some(true) {
            return Err(kernel(format!(
                "{} does not read 1 after activation",
                active.display()
            )));
        }
        record.active = true;
        let enforce = Path::new(SECURITYFS).join("ipe/enforce");
        if read_flag(&enforce) == Some(false) {
            // ipe.enforce=0 on the command line: policy is not the command
            // line's to weaken.
            write_once(&enforce, b"1").map_err(|errno| {
                kernel(format!(
                    "IPE is permissive (ipe.enforce=0 on the kernel command line?) and \
                     switching {} to 1 failed: {}",
                    enforce.display(),
                    errno_name(errno)
                ))
            })?;
            record.enforce_overridden = true;
        }
        if read_flag(&enforce) != Some(true) {
            return Err(kernel(format!(
                "{} does not read 1: IPE is not enforcing",
                enforce.display()
            )));
        }
        record.enforcing = true;
        Ok(())
    }

    /// Deletes the policy again (on a refusal before activation).
    pub fn discard(self) {
        if !self.reused {
            let _ = write_once(&self.dir.join("delete"), b"1");
        }
    }
}

/// How many objects [`object_signatures`] opens to see their signature.
const SAMPLE: usize = 8;

/// Decides [`ObjectSignatures`] for the verified deployment. `bundle` is
/// the verified artifact's object signature bundle, `hint` its
/// `deployment.json` (as read before this boot's first-boot walk, only for
/// messages), `attached` what that walk did. The image must have a bundle;
/// then [`SAMPLE`] of the bundle's objects present in the repository,
/// spread over the digest range, are opened and must carry a builtin
/// signature. That catches a deployment made `detached`, or by a sealroot
/// that did not attach object signatures, and names an object; a mix of
/// signed and unsigned objects can slip through (`sealroot repo fsck
/// --cert` finds every one), and only costs availability: IPE refuses
/// whatever is unsigned when it is executed.
pub fn object_signatures(
    repo: &super::repo::Repo,
    artifact: Option<&crate::oci::Sha256Digest>,
    bundle: Option<&crate::objsig::Bundle>,
    hint: &crate::repo::json::Deployment,
    attached: Option<&super::objects::ObjectsEnabled>,
) -> ObjectSignatures {
    use crate::repo::json::SignatureMode;
    let Some(artifact) = artifact else {
        return ObjectSignatures::Missing(format!(
            "the image was sealed inline (no sealing artifact), and inline mode carries no \
             per-object signatures ({} is an artifact layer): no file of the sealed root \
             carries the builtin signature the IPE policy requires (fsverity_signature=TRUE) \
             and the policy would refuse every program; seal the image in artifact mode with \
             `sealroot oci seal --object-signatures` and deploy it again",
            crate::objsig::MEDIA_TYPE
        ));
    };
    let Some(bundle) = bundle else {
        return ObjectSignatures::Missing(format!(
            "the image was sealed without per-object signatures: its sealing artifact {artifact} \
             has no {} layer, so no file of the sealed root carries the builtin signature the \
             IPE policy requires (fsverity_signature=TRUE) and the policy would refuse every \
             program; seal the image with `sealroot oci seal --object-signatures` and deploy \
             it again",
            crate::objsig::MEDIA_TYPE
        ));
    };
    let how = match (attached, hint.signatures) {
        (Some(done), _) => format!(
            "attached at this boot: {} objects signed from the bundle of {} entries",
            done.signed,
            bundle.len()
        ),
        (None, SignatureMode::AttachAtBoot) => {
            format!(
                "attached at the first boot (bundle of {} entries)",
                bundle.len()
            )
        }
        (None, _) => format!(
            "attached before this boot (sealroot deploy or repo enable-verity; bundle of {} \
             entries)",
            bundle.len()
        ),
    };
    let step = bundle.len().div_ceil(SAMPLE).max(1);
    let mut checked = 0;
    for (digest, _) in bundle.iter().step_by(step) {
        let hex = digest.to_hex();
        let rel = format!("objects/{}/{}", &hex[..2], &hex[2..]);
        let path = repo.display(&rel);
        let file = match repo.open_file(&rel, "cannot open object") {
            Ok(f) => f,
            // An entry for an object this repository does not have.
            Err(super::repo::RepoError::Io {
                errno: Errno::NOENT,
                ..
            }) => continue,
            Err(e) => {
                return ObjectSignatures::Missing(format!(
                    "object {} (its builtin signature is checked by the kernel at open): {e}",
                    path.display()
                ));
            }
        };
        checked += 1;
        let missing = match crate::verity::ioctl::read_signature(&file) {
            Ok(Some(_)) => continue,
            Ok(None) => "has fs-verity but no builtin signature",
            Err(_) => "has no fs-verity",
        };
        return ObjectSignatures::Missing(format!(
            "object {} {missing}, so the IPE policy would refuse the programs of the sealed \
             root (deployment.json: \"signatures\": \"{}\"; the {} object signatures of the \
             image's bundle were not attached): deploy with --signatures=builtin (the \
             signer's certificate in .fs-verity) or --signatures=attach-at-boot",
            path.display(),
            hint.signatures,
            bundle.len()
        ));
    }
    if checked == 0 {
        return ObjectSignatures::Missing(format!(
            "none of the objects sampled from the image's signature bundle ({} entries) is in \
             the repository: the bundle does not belong to this deployment",
            bundle.len()
        ));
    }
    ObjectSignatures::Attached(how)
}
