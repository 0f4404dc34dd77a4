//! Choosing QEMU's accelerator. `/dev/kvm` exists on these machines, but
//! nested KVM fails with the test kernel (the guest hangs silently in the
//! kernel's decompressor; QEMU eventually reports "emulation failure" at a
//! VEX-encoded instruction), so KVM is used only
//! after a short probe boot with it succeeded. The probe's outcome is cached
//! per (kernel, QEMU, host kernel) in `<cache>/kvm-probe`.

use std::fmt;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::host::{self, CacheLock};
use crate::initramfs::Initramfs;
use crate::kernel::Kernel;
use crate::vm::Vm;

/// How long the KVM probe boot may take (a working KVM boots in 1-2 s; a
/// broken one shows nothing at all, so this is the probe's cost here).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: slow but works everywhere (`-accel tcg -cpu max`).
    Tcg,
    /// Hardware virtualisation (`-accel kvm -cpu host`).
    Kvm,
}

impl Accel {
    pub fn qemu_args(self) -> [&'static str; 4] {
        match self {
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        })
    }
}

/// The accelerator for this process's VMs, with the reason it was chosen.
pub fn select(kernel: &'static Kernel) -> Result<Accel> {
    static CHOICE: OnceLock<Result<(Accel, String), String>> = OnceLock::new();
    let choice = CHOICE.get_or_init(|| {
        let choice = choose(kernel).map_err(|e| e.to_string())?;
        eprintln!("sealroot-testbed: accelerator {} ({})", choice.0, choice.1);
        Ok(choice)
    });
    choice
        .as_ref()
        .map(|(accel, _)| *accel)
        .map_err(|msg| Error::Setup(msg.clone()))
}

/// The accelerator and why, for reports (runs the probe if needed).
pub fn describe(kernel: &'static Kernel) -> Result<String> {
    choose(kernel).map(|(accel, why)| format!("{accel} ({why})"))
}

fn choose(kernel: &'static Kernel) -> Result<(Accel, String)> {
    match std::env::var("SEALROOT_TESTBED_ACCEL").as_deref() {
        Ok("tcg") => return Ok((Accel::Tcg, "SEALROOT_TESTBED_ACCEL=tcg".into())),
        Ok("kvm") => return Ok((Accel::Kvm, "SEALROOT_TESTBED_ACCEL=kvm".into())),
        Ok("") | Err(_) => {}
        Ok(other) => {
            return Err(Error::Invalid(format!(
                "SEALROOT_TESTBED_ACCEL={other}: expected tcg or kvm"
            )));
        }
    }
    let kvm = Path::new("/dev/kvm");
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(kvm)
        .is_err()
    {
        return Ok((Accel::Tcg, "/dev/kvm is missing or not accessible".into()));
    }
    let key = probe_key(kernel)?;
    let cache = host::cache_dir()?.join("kvm-probe");
    let _lock = CacheLock::acquire("kvm-probe")?;
    if let Ok(text) = fs::read_to_string(&cache)
        && let Some((cached_key, outcome)) = text.split_once('\n')
        && cached_key == key
    {
        return Ok(parse_outcome(outcome));
    }
    let outcome = probe(kernel);
    host::write_atomic(&cache, format!("{key}\n{outcome}\n").as_bytes())?;
    Ok(parse_outcome(&outcome))
}

fn parse_outcome(outcome: &str) -> (Accel, String) {
    match outcome.strip_prefix("kvm ") {
        Some(why) => (Accel::Kvm, why.trim().to_string()),
        None => (
            Accel::Tcg,
            outcome
                .strip_prefix("tcg ")
                .unwrap_or(outcome)
                .trim()
                .to_string(),
        ),
    }
}

/// What the cached probe outcome depends on.
fn probe_key(kernel: &Kernel) -> Result<String> {
    let qemu = host::tool("qemu-system-x86_64", "qemu-system-x86")?;
    let version = host::run(Command::new(qemu).arg("--version"), None)?;
    let qemu_version = String::from_utf8_lossy(&version.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let host_kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Ok(format!(
        "guest {} | {qemu_version} | host {}",
        kernel.release,
        host_kernel.trim()
    ))
}

/// Boots a trivial scenario under KVM; "kvm ..." on success, "tcg ..." with
/// the reason otherwise.
fn probe(kernel: &'static Kernel) -> String {
    let result = Initramfs::test(kernel, "bed_value probe ok\n").and_then(|image| {
        Vm::new(kernel, image)
            .name("kvm-probe")
            .accel(Accel::Kvm)
            .timeout(PROBE_TIMEOUT)
            .abort_on("emulation failure")
            .abort_on("KVM internal error")
            .run()
    });
    match result {
        Ok(log) if log.value("probe").ok() == Some("ok") => {
            format!(
                "kvm KVM probe boot succeeded in {:.1} s",
                log.elapsed.as_secs_f64()
            )
        }
        Ok(log) => format!(
            "tcg KVM probe boot did not report (log {})",
            log.log_path.display()
        ),
        Err(err) => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or_default();
            format!("tcg KVM probe boot failed: {first}")
        }
    }
}
