//! `/run/sealroot/status.json`: what `sealroot-prepare` verified and
//! mounted, for the booted system to audit (see `docs/prepare.md`).
//!
//! Written atomically ([`crate::atomic`]: temporary file, fsync, rename) once, at the end, on
//! success and on failure. `format` is bumped on incompatible changes.

use std::path::Path;

use serde::Serialize;

use super::binding::BindingProof;
use super::config::Config;
use super::mountroot::Mounted;
use super::verify::FileProof;
use crate::crypto::CertInfo;

/// Directory of the record.
pub const RUN_DIR: &str = "/run/sealroot";
/// The record.
pub const STATUS_FILE: &str = "/run/sealroot/status.json";
/// Left when sealroot-prepare stood down (`[boot] required = no`, no
/// sealroot parameter on the command line): the drop-ins of
/// ostree-prepare-root.service and composefs-setup-root.service require
/// it, so they act only when sealroot explicitly let them.
pub const STOOD_DOWN_FILE: &str = "/run/sealroot/stood-down";

/// `result`: the sealed root is mounted.
pub const RESULT_MOUNTED: &str = "mounted";
/// `result`: the flow failed (see `error`).
pub const RESULT_REFUSED: &str = "refused";
/// `result`: sealroot stood down (nothing selected, not required).
pub const RESULT_NOT_SELECTED: &str = "not-selected";

/// The whole record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// The record's format version.
    pub format: u32,
    /// `mounted`, `refused` or `not-selected` (stood down).
    pub result: &'static str,
    /// The binary's exit status (`prepare::exit`).
    pub exit_code: u8,
    /// The error line, when refused.
    pub error: Option<String>,
    /// sealroot's version.
    pub version: &'static str,
    /// The running kernel's release (`uname -r`).
    pub kernel: String,
    /// What the kernel command line selected, as parsed.
    pub selector: Option<String>,
    /// The settings in effect (`prepare.conf` with defaults filled in).
    pub config: Option<Config>,
    /// `kernel`, `userspace` or `mixed`: how the three signatures were
    /// established.
    pub verification: Option<&'static str>,
    /// The image verified and mounted (sealroot's repository layout).
    pub image: Option<ImageRecord>,
    /// The ostree deployment booted (`[boot] layout = ostree`); `image` is
    /// then `null`.
    pub ostree: Option<super::ostree::OstreeRecord>,
    /// The composefs-rs / bootc image booted (`[boot] layout =
    /// composefs-rs`); `image` is then `null`.
    pub composefs_rs: Option<super::composefs_rs::ComposefsRsRecord>,
    /// The `.fs-verity` keyring as sealroot left it.
    pub keyring: Option<KeyringRecord>,
    /// Kernel modules sealroot loaded (not those built in or already
    /// loaded).
    pub modules_loaded: Vec<String>,
    /// The mounts that make up the sealed root.
    pub mount: Option<Mounted>,
    /// Set on the first boot of a deployment made without fs-verity (with
    /// `attach-signatures = yes`): objects given fs-verity now.
    pub objects_verity: Option<super::objects::ObjectsEnabled>,
    /// The IPE policy from the initramfs, when there is one: what was
    /// loaded and whether it is active (docs/ipe.md).
    pub ipe: Option<super::ipe::IpeRecord>,
    /// Wall time per phase.
    pub timings_us: Timings,
    /// CPU time of the process at the end: `user` is the binary's own work
    /// (parsing, userspace signature checks), `system` the kernel's on its
    /// behalf (module loading, fs-verity, keyring, mounts).
    pub cpu_us: crate::sys::rusage::CpuTime,
    /// `/proc/uptime` when the binary started and finished, in ms.
    pub uptime_ms: Uptime,
}

/// The image `status.json` records (sealroot's repository layout).
#[derive(Debug, Clone, Serialize)]
pub struct ImageRecord {
    /// The image manifest's digest (`sha256:<hex>`).
    pub manifest: String,
    /// The config's digest (`sha256:<hex>`).
    pub config: String,
    /// The sealing artifact; `null` for an image sealed inline.
    pub artifact: Option<String>,
    /// `artifact` or `inline`: where the signatures came from.
    pub sealed: &'static str,
    /// fs-verity digest of the EROFS mounted (`sha256:<hex>`).
    pub erofs: String,
    /// `bootable` (the merged.bootable role's EROFS) or `merged`.
    pub variant: &'static str,
    /// The repository's path in the initramfs (`/sysroot/sealroot`).
    pub repository: String,
    /// The deployment's directory in the repository (`deployments/<hex>`).
    pub deployment: String,
    /// How each signed file was established.
    pub files: Files,
    /// What binds config and EROFS, and the rollback floor check.
    pub binding: BindingProof,
}

/// The proof for each signed file of the image.
#[derive(Debug, Clone, Serialize)]
pub struct Files {
    /// `null` for an image sealed inline (no manifest signature).
    pub manifest: Option<FileProof>,
    /// The config.
    pub config: FileProof,
    /// The merged EROFS.
    pub erofs: FileProof,
}

/// The `.fs-verity` keyring, as `status.json` records it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyringRecord {
    /// Whether the kernel checks builtin signatures (`.fs-verity` exists).
    pub builtin_signatures: bool,
    /// The keyring serial, when it exists.
    pub serial: Option<i32>,
    /// `reject-all` or `ca-chain`; `None` without a keyring.
    pub sealed: Option<&'static str>,
    /// The trusted certificates from certs.d.
    pub certificates: Vec<CertInfo>,
}

/// Microseconds per phase, measured by the binary.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Reading prepare.conf, certs.d, the command line and the policy.
    pub config: u64,
    /// Loading kernel modules.
    pub modules: u64,
    /// Adding the certificates and sealing the keyring.
    pub keyring: u64,
    /// Checking signatures, digests and the binding.
    pub verify: u64,
    /// Enabling fs-verity on objects (first boot without it; else ~0).
    pub objects: u64,
    /// IPE checks and loading the policy (activation is in `mount`'s
    /// wake, a single write).
    pub ipe: u64,
    /// Assembling and moving the sealed root.
    pub mount: u64,
    /// From the start of `main` to the root mounted (or the refusal).
    pub total: u64,
}

/// `/proc/uptime` at the binary's start and end, in ms.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Uptime {
    /// When `main` started.
    pub start: u64,
    /// When the record was written.
    pub end: u64,
}

/// Milliseconds since boot from `/proc/uptime` (10 ms resolution), 0 if
/// unreadable.
pub fn uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| {
            let first = t.split_whitespace().next()?.to_owned();
            let (s, frac) = first.split_once('.')?;
            let s: u64 = s.parse().ok()?;
            let frac: u64 = format!("{frac:0<3}")[..3].parse().ok()?;
            Some(s * 1000 + frac)
        })
        .unwrap_or(0)
}

/// Writes the stand-down marker ([`STOOD_DOWN_FILE`]) into `dir`.
pub fn write_stood_down(dir: &Path) -> std::io::Result<()> {
    write_file(
        dir,
        "stood-down",
        b"sealroot-prepare stood down: [boot] required = no and no sealroot parameter on \
          the kernel command line\n",
    )
}

/// Writes the record atomically into `dir`.
pub fn write(dir: &Path, status: &Status) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    json.push(b'\n');
    write_file(dir, "status.json", &json)
}

/// `dir/name` through the one atomic writer ([`crate::atomic`]); the
/// caller names the file, so the error keeps the failed step and its cause.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::atomic::write(&dir.join(name), crate::atomic::Mode::Umask, bytes)
        .map_err(|e| std::io::Error::new(e.error.kind(), format!("{}: {}", e.what, e.error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let s = Status {
            format: 1,
            result: "refused",
            exit_code: 1,
            error: Some("x".into()),
            ..Default::default()
        };
        write(dir.path(), &s).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("status.json")).unwrap())
                .unwrap();
        assert_eq!(v["result"], "refused");
        assert_eq!(v["exit_code"], 1);
        assert_eq!(v["timings_us"]["total"], 0);
        // Nothing but the record is left in the directory.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["status.json"]);
        assert!(uptime_ms() > 0);
    }
}
