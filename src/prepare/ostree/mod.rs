//! The ostree layout of the flow (`[boot] layout = ostree`): locate the
//! deployment `ostree=` names ([`select`]), verify its signed binding
//! record and EROFS (docs/ostree.md, "On-disk contract", steps 2–7), mount
//! it with [`super::mountroot::assemble`] as ostree-prepare-root lays it
//! out, and leave the markers ostree's tools read ([`markers`]).
//! Settings from ostree's `prepare-root.conf` in the initramfs: [`conf`].

pub mod conf;
pub mod markers;
pub mod select;

use std::fs::File;
use std::path::Path;

use super::config::{Config, SignaturePolicy};
use super::modules::Loader;
use super::mountroot::{self, EtcPlan, MountError, Mounted, Plan, VarPlan};
use super::repo::{Repo, RepoError};
use super::verify::{FileProof, Policy, SignatureCheck};
use crate::oci::artifact::VerityAlgorithm;
use crate::ostree::binding::Binding;
use crate::verity::digest::digest_small;
use crate::verity::{FsVerityDigest, ioctl as vioctl};

/// Largest `.sealroot.binding` read.
const MAX_RECORD: u64 = 1024;
/// Largest builtin signature the kernel takes (`fs/verity/enable.c`).
const MAX_SIGNATURE: u64 = 16128;

/// Why the ostree deployment was not booted.
#[derive(Debug, thiserror::Error)]
pub enum OstreeError {
    /// The deployment's `prepare-root.conf` is wrong.
    #[error("{0}")]
    Conf(#[from] conf::ConfError),
    /// `ostree=` leads to no deployment.
    #[error("{0}")]
    Locate(#[from] select::LocateError),
    /// Reading the physical root failed.
    #[error("{0}")]
    Repo(#[from] RepoError),
    /// The deployment's image, binding record or signature does not check
    /// out.
    #[error("refused: ostree deployment {deployment}: {reason}")]
    Refused {
        /// The deployment directory.
        deployment: String,
        /// Why.
        reason: String,
    },
    /// Assembling or moving the sealed root failed.
    #[error("mounting the sealed root: {0}")]
    Mount(#[from] MountError),
    /// `/run/ostree-booted` or its companions could not be written.
    #[error("cannot leave ostree's boot markers: {0}")]
    Markers(String),
}

impl OstreeError {
    /// The exit status for this error (`prepare::exit`).
    pub fn exit_code(&self) -> u8 {
        use super::exit;
        match self {
            OstreeError::Conf(_) => exit::CONFIG,
            OstreeError::Mount(e) if e.is_refusal() => exit::REFUSED,
            OstreeError::Mount(_) | OstreeError::Markers(_) => exit::SYSTEM,
            OstreeError::Locate(_) | OstreeError::Repo(_) | OstreeError::Refused { .. } => {
                exit::REFUSED
            }
        }
    }
}

/// What status.json records for an ostree boot (`ostree` in
/// docs/prepare.md's record).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OstreeRecord {
    /// The `ostree=` argument.
    pub argument: String,
    /// The stateroot (`<os>`).
    pub stateroot: String,
    /// The deployment directory below the physical root.
    pub deployment: String,
    /// The commit deployed (64 hex digits).
    pub commit: String,
    /// The deployment serial (`<commit>.<serial>`).
    pub deploy_serial: u32,
    /// fs-verity digest of `.ostree.cfs` (`sha256:<hex>`).
    pub erofs: String,
    /// The signed binding record's proof.
    pub binding: FileProof,
    /// What the deployment's `prepare-root.conf` says, as used.
    pub prepare_root_conf: conf::PrepareRootConf,
}

/// A verified deployment, ready to mount.
#[derive(Debug)]
pub struct Verified {
    /// The deployment.
    pub deployment: select::Deployment,
    /// `.ostree.cfs`, open and measured: mount exactly this.
    pub image: File,
    /// Its fs-verity digest, measured and bound by the signed record.
    pub erofs: FsVerityDigest,
    /// What was proven about the binding record.
    pub proof: FileProof,
}

/// Steps 2–5 of the contract: locate, measure, check the record and its
/// signature.
pub fn verify(
    sysroot: &Path,
    arg: &select::BootArg,
    policy: &Policy<'_>,
) -> Result<Verified, OstreeError> {
    let physical = Repo::open(sysroot)?;
    let deployment = select::locate(&physical, arg)?;
    let dir = Repo::open_beneath(&physical.display(&deployment.relative_path()))?;
    let refused = |reason: String| OstreeError::Refused {
        deployment: dir.path().display().to_string(),
        reason,
    };
    // The directory opened by name is the one ostree= resolved to.
    let st = rustix::fs::fstat(dir.dir()).map_err(|errno| RepoError::Io {
        path: dir.path().to_owned(),
        what: "cannot stat",
        errno,
    })?;
    if (st.st_dev, st.st_ino) != (deployment.dev, deployment.ino) {
        return Err(refused("was replaced while it was being opened".into()));
    }
    let kernel = |rel: &str| {
        let path = dir.display(rel);
        move |e: vioctl::Error| refused(e.at(&path).to_string())
    };
    let open = |rel: &str, what: &str| match dir.open_file(rel, "cannot open") {
        Err(RepoError::Io {
            errno: rustix::io::Errno::NOENT,
            ..
        }) => Err(refused(format!(
            "{rel} is missing ({what}); run `sealroot ostree deploy` for this deployment"
        ))),
        r => r.map_err(OstreeError::from),
    };

    // 3. The EROFS, measured by the kernel.
    let image = open(".ostree.cfs", "the composefs image")?;
    if !vioctl::has_verity(&image).map_err(kernel(".ostree.cfs"))? {
        return Err(refused(
            ".ostree.cfs has no fs-verity: it was not sealed, or was replaced".into(),
        ));
    }
    let erofs = vioctl::measure(&image).map_err(kernel(".ostree.cfs"))?;
    let algorithm = VerityAlgorithm {
        hash: erofs.algorithm(),
        ..VerityAlgorithm::SHA256_12
    };

    // 4. The record it must have, built here, and the one on the disk.
    let expected = Binding {
        commit: deployment.commit,
        algorithm,
        erofs,
    }
    .to_bytes();
    let mut record = open(".sealroot.binding", "the binding record")?;
    let on_disk = dir.read_limited(&mut record, ".sealroot.binding", MAX_RECORD)?;
    if on_disk != expected {
        return Err(refused(format!(
            ".sealroot.binding does not bind commit {} to the EROFS .ostree.cfs measures \
             ({erofs}): the image or the record is another deployment's",
            deployment.commit
        )));
    }
    let params = algorithm.params();
    let record_digest = digest_small(&params, &expected)
        .ok_or_else(|| refused("the binding record is larger than one block".into()))?;

    // 5. The signature: in userspace always, by the kernel when the
    //    record carries it as its builtin signature.
    let mut sig_file = open(".sealroot.binding.sig", "the signature: unsigned")?;
    let signature = dir.read_limited(&mut sig_file, ".sealroot.binding.sig", MAX_SIGNATURE)?;
    let userspace = |sig: &[u8], which: &str| {
        crate::pkcs7::verify_fsverity(sig, &record_digest, policy.certs).map_err(|e| {
            refused(format!(
                "{which} of the binding record (commit {}, EROFS {erofs}) is refused: {e}",
                deployment.commit
            ))
        })
    };
    let verified = userspace(&signature, ".sealroot.binding.sig")?;
    let mut attached = false;
    if !vioctl::has_verity(&record).map_err(kernel(".sealroot.binding"))? {
        if !(policy.attach && policy.kernel_signatures) {
            return Err(refused(
                ".sealroot.binding has no fs-verity (deployed with --signatures \
                 attach-at-boot?): allow attaching with `[verify] attach-signatures = yes` \
                 (needs a kernel with builtin signatures), or redeploy with builtin or detached \
                 signatures"
                    .into(),
            ));
        }
        // Enabling needs a descriptor without writers; this one is
        // read-only.
        vioctl::enable(&record, &params, Some(&signature)).map_err(kernel(".sealroot.binding"))?;
        attached = true;
    }
    let measured = vioctl::measure(&record).map_err(kernel(".sealroot.binding"))?;
    if measured != record_digest {
        return Err(refused(format!(
            ".sealroot.binding measures {measured}, the record's digest is {record_digest}: \
             its fs-verity does not match its bytes"
        )));
    }
    let builtin = vioctl::read_signature(&record).map_err(kernel(".sealroot.binding"))?;
    let kernel_checked = policy.kernel_signatures && builtin.is_some();
    if let Some(b) = &builtin
        && *b != signature
    {
        userspace(b, "the builtin signature")?;
    }
    if policy.signatures == SignaturePolicy::Kernel && !kernel_checked {
        return Err(refused(
            "[verify] signatures = kernel, but .sealroot.binding carries no builtin signature \
             the kernel checked (deploy with --signatures builtin)"
                .into(),
        ));
    }
    Ok(Verified {
        image,
        erofs,
        proof: FileProof::new(
            dir.display(".sealroot.binding").display().to_string(),
            &measured,
            kernel_checked,
            attached,
            verified,
        ),
        deployment,
    })
}

/// Steps 6–8: the composefs root over ostree's objects, the deployment's
/// `/etc`, the stateroot's `/var`, the physical root (read-only as
/// `sysroot.readonly` says), onto the sysroot; then ostree's markers.
pub fn mount(
    config: &Config,
    verified: &Verified,
    prepare_root: &conf::PrepareRootConf,
    loader: &mut Loader,
) -> Result<Mounted, OstreeError> {
    let physical = Repo::open(&config.sysroot)?;
    let d = &verified.deployment;
    let beneath = |rel: &str| Repo::open_beneath(&physical.display(rel));
    let objects = beneath("ostree/repo")?.open_dir("objects", "cannot open the object store")?;
    let etc = beneath(&d.relative_path())?.open_dir("etc", "cannot open the deployment's /etc")?;
    let var = beneath(&d.stateroot())?.open_dir("var", "cannot open the stateroot's /var")?;
    let backing_dev = rustix::fs::stat(&config.sysroot).ok().map(|s| s.st_dev);
    let plan = Plan {
        image: &verified.image,
        objects,
        etc: EtcPlan::Bind(etc),
        var: VarPlan::Bind(var),
        physical_read_only: prepare_root.sysroot_readonly,
    };
    let (erofs_backing, ids) =
        mountroot::assemble(&config.sysroot, config.erofs_backing, plan, loader)?;
    markers::write(
        Path::new("/run"),
        &markers::Booted {
            dev: d.dev,
            ino: d.ino,
            sysroot_readonly: prepare_root.sysroot_readonly,
            physical_root_dev: backing_dev,
        },
    )
    .map_err(|e| OstreeError::Markers(e.to_string()))?;
    Ok(Mounted {
        erofs_backing,
        etc: super::config::EtcMode::Persistent,
        var: super::config::VarMode::Persistent,
        physical_root: format!("{}/sysroot", config.sysroot.display()),
        physical_root_read_only: prepare_root.sysroot_readonly,
        ids,
    })
}

/// What the kernel command line selected, in the initramfs' layout.
#[derive(Debug)]
pub enum Selected {
    /// sealroot's repository ([`super::cmdline`]).
    Repository(super::cmdline::Selector),
    /// An ostree deployment ([`select`]).
    Ostree(select::BootArg),
    /// A composefs-rs / bootc image ([`super::composefs_rs::select`]).
    ComposefsRs(super::composefs_rs::select::Selection),
}

impl Selected {
    /// Parses the command line for `config.boot.layout`.
    pub fn parse(config: &Config, cmdline: &str) -> Result<Selected, super::Error> {
        Ok(match config.boot.layout {
            super::config::Layout::Repository => {
                Selected::Repository(super::cmdline::parse(cmdline)?)
            }
            super::config::Layout::Ostree => Selected::Ostree(select::parse(cmdline)?),
            super::config::Layout::ComposefsRs => Selected::ComposefsRs(
                super::composefs_rs::select::parse(cmdline)
                    .map_err(super::composefs_rs::ComposefsRsError::from)?,
            ),
        })
    }
}

impl std::fmt::Display for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selected::Repository(s) => s.fmt(f),
            Selected::Ostree(a) => a.fmt(f),
            Selected::ComposefsRs(s) => s.fmt(f),
        }
    }
}

/// The ostree layout's part of [`super::run`], after the keyring is
/// sealed: prepare-root.conf, verify, mount, markers, record.
pub fn boot(
    config: &Config,
    arg: &select::BootArg,
    policy: &Policy<'_>,
    loader: &mut Loader,
    log: &mut super::log::Log,
    status: &mut super::record::Status,
    started: std::time::Instant,
) -> Result<super::Outcome, super::Error> {
    let micros = |t: std::time::Instant| t.elapsed().as_micros() as u64;
    let prepare_root = conf::load(Path::new("/")).map_err(OstreeError::from)?;
    let t = std::time::Instant::now();
    let verified = verify(&config.sysroot, arg, policy)?;
    let d = &verified.deployment;
    status.verification = Some(match verified.proof.signature {
        SignatureCheck::Kernel => "kernel",
        SignatureCheck::Userspace => "userspace",
    });
    status.ostree = Some(OstreeRecord {
        argument: arg.to_string(),
        stateroot: d.os.clone(),
        deployment: d.relative_path(),
        commit: d.commit.to_hex(),
        deploy_serial: d.serial,
        erofs: verified.erofs.to_string(),
        binding: verified.proof.clone(),
        prepare_root_conf: prepare_root.clone(),
    });
    status.timings_us.verify = micros(t);
    log.info(&format!(
        "verified ostree deployment {} (commit {}, EROFS {}): {} signature by '{}'",
        d.relative_path(),
        d.commit,
        verified.erofs,
        status.verification.unwrap_or_default(),
        verified.proof.signer.subject,
    ));
    let t = std::time::Instant::now();
    let mounted = mount(config, &verified, &prepare_root, loader)?;
    status.modules_loaded = loader.loaded.clone();
    status.mount = Some(mounted);
    status.timings_us.mount = micros(t);
    status.timings_us.total = micros(started);
    log.info(&format!(
        "mounted ostree deployment {} at {} in {} ms (/etc, /var bound; /sysroot {})",
        d.name(),
        config.sysroot.display(),
        status.timings_us.total / 1000,
        if prepare_root.sysroot_readonly {
            "read-only"
        } else {
            "read-write"
        }
    ));
    Ok(super::Outcome::Mounted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OSTREE: &str = "ostree=/ostree/boot.1/os/0f5c2d6e3a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d/0";
    const SEALROOT: &str =
        "sealroot=sha256:e5095691ba024e3b2a86999faeec6ded57d52d6474080c3f0540e30fbaa8f4c0";

    #[test]
    fn the_initramfs_layout_decides_what_selects() {
        let repository = Config::default();
        let ostree = super::super::config::parse("[boot]\nlayout = ostree\n", "f").unwrap();
        // Repository layout: ostree= is not ours; sealroot= selects.
        let both = format!("{OSTREE} {SEALROOT}");
        assert!(matches!(
            Selected::parse(&repository, &both),
            Ok(Selected::Repository(_))
        ));
        assert!(Selected::parse(&repository, OSTREE).is_err());
        // Ostree layout: ostree= selects; a sealroot selector is an error,
        // and so is no ostree= at all.
        let s = Selected::parse(&ostree, OSTREE).unwrap();
        assert_eq!(s.to_string(), OSTREE);
        let e = Selected::parse(&ostree, &both).err().unwrap().to_string();
        assert!(
            e.contains("do not apply with [boot] layout = ostree"),
            "{e}"
        );
        let e = Selected::parse(&ostree, SEALROOT)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("do not apply"), "{e}");
        let e = Selected::parse(&ostree, "root=/dev/vda").err().unwrap();
        assert_eq!(e.exit_code(), super::super::exit::CONFIG);
        assert!(
            e.to_string().contains("no ostree deployment selected"),
            "{e}"
        );
    }
}
