//! UEFI boots with OVMF, optionally with test certificates in the `db`
//! variable. Linux (CONFIG_LOAD_UEFI_KEYS) loads `db` certificates into the
//! `.platform` keyring at boot (security/integrity/platform_certs/load_uefi.c),
//! which IPE accepts for policy signatures (CONFIG_IPE_POLICY_SIG_PLATFORM_KEYRING).
//! The kernel is still passed with `-kernel`: OVMF starts it through its EFI
//! stub, so no disk image or boot loader is needed. Secure boot stays off.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::host;

/// The owner GUID the bed records for certificates it adds to `db`
/// (any GUID works; this one names the sealroot test bed).
pub const TEST_OWNER_GUID: &str = "5ea1a007-7e57-4bed-8d1c-5ea1a0075eed";

/// Where Debian's `ovmf` package puts the 4 MiB firmware images.
const CODE_CANDIDATES: &[&str] = &[
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/ovmf/OVMF_CODE_4M.fd",
];
const VARS_CANDIDATES: &[&str] = &[
    "/usr/share/OVMF/OVMF_VARS_4M.fd",
    "/usr/share/ovmf/OVMF_VARS_4M.fd",
];

/// OVMF firmware: read-only code and a variable store template. Each VM
/// boots from its own writable copy of the variables.
#[derive(Debug, Clone)]
pub struct Ovmf {
    pub code: PathBuf,
    pub vars: PathBuf,
    _dir: Option<Arc<tempfile::TempDir>>,
}

impl Ovmf {
    /// The host's OVMF (package `ovmf`), with its empty variable store.
    pub fn system() -> Result<Ovmf> {
        let find = |candidates: &[&str]| candidates.iter().map(PathBuf::from).find(|p| p.is_file());
        match (find(CODE_CANDIDATES), find(VARS_CANDIDATES)) {
            (Some(code), Some(vars)) => Ok(Ovmf {
                code,
                vars,
                _dir: None,
            }),
            _ => Err(Error::Missing {
                what: format!("OVMF firmware ({} and OVMF_VARS_4M.fd)", CODE_CANDIDATES[0]),
                fix: "apt-get install ovmf".into(),
            }),
        }
    }

    /// A copy whose variable store has `certs` (PEM or DER X.509) added to
    /// `db`, owned by [`TEST_OWNER_GUID`]:
    /// `virt-fw-vars --input VARS --output NEW --add-db GUID CERT...`.
    pub fn with_db_certs(&self, certs: &[&Path]) -> Result<Ovmf> {
        let tool = virt_fw_vars()?;
        let dir = tempfile::Builder::new()
            .prefix("sealroot-ovmf-")
            .tempdir()
            .ctx("cannot create a temporary directory", Path::new("/tmp"))?;
        let vars = dir.path().join("OVMF_VARS_4M.fd");
        let mut cmd = Command::new(tool);
        cmd.arg("--input")
            .arg(&self.vars)
            .arg("--output")
            .arg(&vars);
        for cert in certs {
            cmd.arg("--add-db").arg(TEST_OWNER_GUID).arg(cert);
        }
        host::run(
            &mut cmd,
            Some("virt-fw-vars could not add the certificate to db"),
        )?;
        Ok(Ovmf {
            code: self.code.clone(),
            vars,
            _dir: Some(Arc::new(dir)),
        })
    }
}

/// Finds `virt-fw-vars` (PyPI `virt-firmware`): `$SEALROOT_TESTBED_VIRT_FW_VARS`,
/// `$PATH`, the venv `scripts/install-deps` creates, then `~/.local/bin`.
pub fn virt_fw_vars() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SEALROOT_TESTBED_VIRT_FW_VARS").filter(|p| !p.is_empty())
    {
        return Ok(PathBuf::from(path));
    }
    let venv = std::env::var_os("SEALROOT_VENV")
        .map_or_else(|| PathBuf::from("/opt/sealroot-venv"), PathBuf::from);
    let home_local =
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/bin/virt-fw-vars"));
    host::which("virt-fw-vars")
        .into_iter()
        .chain([venv.join("bin/virt-fw-vars")])
        .chain(home_local)
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Missing {
            what: "`virt-fw-vars` (PyPI package virt-firmware) is not installed".into(),
            fix: "python3 -m venv /opt/sealroot-venv && /opt/sealroot-venv/bin/pip install virt-firmware".into(),
        })
}
