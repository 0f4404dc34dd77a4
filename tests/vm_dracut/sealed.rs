//! A physical root disk holding a sealed, deployed image, made with the
//! real tools only:
//!
//! 1. the tiny OS (`os.rs`) becomes an OCI image layout through
//!    `mkosi/mkosi.finalize --oci-from-tree` (the same code the mkosi
//!    integration runs);
//! 2. `sealroot oci seal` signs it on the host (key and certificate from
//!    `openssl req -x509`, P-256);
//! 3. `sealroot deploy --sysroot` runs *in a bed VM* on the ext4 disk, so the
//!    repository gets real fs-verity from the test kernel (a build host's
//!    `mkfs.ext4 -d` cannot carry it); the VM reports the kernel argument
//!    deploy printed (`--json`, `kernel_cmdline`);
//! 4. optionally, still in that VM, a tamper step edits the deployment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sealroot_testbed::host;
use sealroot_testbed::{DiskImage, Error, Initramfs, Kernel, MIB, Result, Vm, ext4_image};

use crate::kmods::io_error;
use crate::os;

/// The signing key and certificate (self-signed, P-256) and a `certs.d`
/// directory holding only the certificate, for the initramfs.
pub struct Keys {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub certs_dir: PathBuf,
}

impl Keys {
    pub fn generate(dir: &Path) -> Result<Keys> {
        let certs_dir = dir.join("certs.d");
        std::fs::create_dir_all(&certs_dir)
            .map_err(|e| io_error("cannot create", &certs_dir, e))?;
        let keys = Keys {
            key: dir.join("key.pem"),
            cert: certs_dir.join("signer.pem"),
            certs_dir,
        };
        host::self_signed_p256(&keys.key, &keys.cert, "sealroot vm_dracut signer")?;
        Ok(keys)
    }
}

/// A deployed physical root and the kernel argument that selects it.
pub struct SealedRoot {
    pub disk: DiskImage,
    /// `sealroot=sha256:<manifest hex>`, as `sealroot deploy` printed it.
    pub kernel_arg: String,
    /// The merged EROFS's fs-verity digest (hex), deploy's
    /// `deployment.image`: its file is `sealroot/images/<hex>`.
    pub image: String,
}

/// Builds the sealed tiny OS (marker + scenario, see `os::write_tree`),
/// seals it with `keys`, deploys it onto a fresh ext4 disk in a bed VM, and
/// runs `tamper` (busybox sh, repository at `$repo`, deployment's manifest
/// hex in `$manifest`) there afterwards when given.
pub fn sealed_root(
    kernel: &'static Kernel,
    sealroot: &Path,
    keys: &Keys,
    marker: &str,
    scenario: &str,
    tamper: Option<&str>,
) -> Result<SealedRoot> {
    let work = tempfile::tempdir().map_err(|e| {
        io_error(
            "cannot create a temporary directory in",
            Path::new("/tmp"),
            e,
        )
    })?;
    let tree = work.path().join("tree");
    os::write_tree(&tree, marker, scenario)?;
    // The physical root: an empty filesystem plus the OCI layout and the
    // certificate to deploy from.
    let phys = work.path().join("phys");
    let layout = phys.join("oci");
    std::fs::create_dir_all(&phys).map_err(|e| io_error("cannot create", &phys, e))?;
    host::run(
        Command::new(host::workspace_root().join("mkosi/mkosi.finalize"))
            .arg("--oci-from-tree")
            .arg(&tree)
            .arg(&layout)
            .arg("os"),
        None,
    )?;
    host::run(
        Command::new(sealroot)
            .args(["oci", "seal"])
            .arg(format!("oci:{}:os", layout.display()))
            .arg("--key")
            .arg(&keys.key)
            .arg("--cert")
            .arg(&keys.cert),
        Some("sealing needs `sealroot oci seal` (branch repo)"),
    )?;
    std::fs::copy(&keys.cert, phys.join("signer.pem"))
        .map_err(|e| io_error("cannot copy", &keys.cert, e))?;
    let disk = ext4_image(&phys, 128 * MIB)?;

    // Deploy on the target kernel; `--json` output stays in the result's
    // stdout, parsed below.
    let mut deploy_script = String::from(
        r#"
        bed_run deploy /bin/sealroot deploy oci:/mnt/disk/oci:os --sysroot /mnt/disk \
            --cert /mnt/disk/signer.pem --signatures detached --json || exit 1
        "#,
    );
    if let Some(tamper) = tamper {
        deploy_script.push_str("repo=/mnt/disk/sealroot\n");
        deploy_script.push_str("manifest=$(ls /mnt/disk/sealroot/deployments | head -n 1)\n");
        deploy_script.push_str(tamper);
        deploy_script.push('\n');
    }
    deploy_script.push_str("rm -rf /mnt/disk/oci /mnt/disk/signer.pem\ncd /\n");
    let image = Initramfs::test(kernel, &deploy_script)?
        .load_modules(kernel, &["virtio_blk"])?
        .static_binaries(sealroot_testbed::static_binaries()?)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .name(&format!("deploy-{marker}"))
        .disk(&disk)
        .timeout(Duration::from_secs(300))
        .run()?;
    log.assert_scenario_ok()?;
    let deploy = log.result("deploy")?.assert_ok()?;
    let report: serde_json::Value = serde_json::from_str(&deploy.stdout).map_err(|e| {
        Error::Assertion(format!(
            "`sealroot deploy --json` printed no JSON ({e}):\n{}",
            deploy.stdout
        ))
    })?;
    let kernel_arg = report["kernel_cmdline"]
        .as_str()
        .filter(|arg| arg.starts_with("sealroot=sha256:"))
        .ok_or_else(|| {
            Error::Assertion(format!(
                "`sealroot deploy --json` has no kernel_cmdline sealroot=sha256:...:\n{}",
                deploy.stdout
            ))
        })?
        .to_owned();
    let image = report["deployment"]["image"]
        .as_str()
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            Error::Assertion(format!(
                "`sealroot deploy --json` has no deployment.image (64 hex digits):\n{}",
                deploy.stdout
            ))
        })?
        .to_owned();
    disk.fsck()?;
    Ok(SealedRoot {
        disk,
        kernel_arg,
        image,
    })
}
