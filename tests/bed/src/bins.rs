//! Static builds of `sealroot` and `sealroot-prepare` for the VM, and a
//! check that an executable really is static (runs in a bare initramfs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, IoContext, Result};
use crate::host::{self, CacheLock};

/// The target triple the static binaries are built for.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Environment variables naming prebuilt static binaries (skip the build).
pub const SEALROOT_ENV: &str = "SEALROOT_TESTBED_SEALROOT";
pub const PREPARE_ENV: &str = "SEALROOT_TESTBED_SEALROOT_PREPARE";

/// The two sealroot executables, statically linked.
#[derive(Debug)]
pub struct StaticBins {
    /// `sealroot`, default features, `--release`.
    pub sealroot: PathBuf,
    /// `sealroot-prepare` from `scripts/build-prepare` (musl, static).
    pub sealroot_prepare: PathBuf,
}

/// Builds both binaries statically, once per test process (cargo's own
/// up-to-date check makes later processes cheap). The build uses its own
/// `CARGO_TARGET_DIR` (`<cache>/static`) so it never waits on the lock of
/// the cargo that runs the tests. `SEALROOT_TESTBED_SEALROOT` and
/// `SEALROOT_TESTBED_SEALROOT_PREPARE` may name prebuilt binaries instead.
pub fn static_binaries() -> Result<&'static StaticBins> {
    static BINS: OnceLock<Result<StaticBins, String>> = OnceLock::new();
    BINS.get_or_init(|| build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|msg| Error::Setup(msg.clone()))
}

fn build() -> Result<StaticBins> {
    let prebuilt = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let sealroot = match prebuilt(SEALROOT_ENV) {
        Some(path) => path,
        // Without debug info the release `sealroot` shrinks from 8.6 MB to
        // 2 MB, and every initramfs that carries it boots faster (panic
        // messages keep their file:line; only backtraces lose lines).
        None => cargo_build(
            &["--release", "--bin", "sealroot"],
            "-C strip=debuginfo",
            "release/sealroot",
        )?,
    };
    let sealroot_prepare = match prebuilt(PREPARE_ENV) {
        Some(path) => path,
        None => build_prepare()?,
    };
    for path in [&sealroot, &sealroot_prepare] {
        check_static(path)?;
    }
    Ok(StaticBins {
        sealroot,
        sealroot_prepare,
    })
}

/// The static build directory of this checkout: `<cache>/static-<name>-<hash of its path>`.
///
/// Checkouts cannot share one target directory: cargo names a workspace
/// member's artifacts by a hash of its path *relative to the workspace
/// root*, and judges freshness by comparing the dep-info mtimes with the
/// sources of whichever checkout runs the build. Two worktrees sharing
/// `<cache>/static` therefore take each other's freshly built
/// `sealroot-prepare` as up to date and test the wrong binary. A new
/// checkout's directory is seeded from `<cache>/static` (if that exists),
/// minus the `sealroot` package's own fingerprints, so only the root
/// package is rebuilt.
fn static_target_dir() -> Result<PathBuf> {
    let root = host::workspace_root();
    let name: String = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    // FNV-1a: stable across runs (unlike std's DefaultHasher seeds).
    let hash = root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
    let cache = host::cache_subdir("static")?;
    let parent = cache.parent().unwrap_or(&cache).to_owned();
    let dir = parent.join(format!("static-{name}-{hash:016x}"));
    if !dir.exists() {
        let tmp = parent.join(format!(".static-{name}-{hash:016x}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        let seeded = Command::new("cp")
            .arg("-a")
            .arg(&cache)
            .arg(&tmp)
            .status()
            .is_ok_and(|s| s.success());
        if seeded {
            // Forget the root package: it must be rebuilt from this checkout.
            for entry in walk_fingerprints(&tmp) {
                let _ = fs::remove_dir_all(entry);
            }
            fs::rename(&tmp, &dir).ctx("cannot publish the static build directory", &dir)?;
        } else {
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&dir).ctx("cannot create the static build directory", &dir)?;
        }
    }
    Ok(dir)
}

/// `<target>/<triple>/<profile>/.fingerprint/sealroot-*` directories.
fn walk_fingerprints(target: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(triples) = fs::read_dir(target) else {
        return out;
    };
    for triple in triples.flatten() {
        let Ok(profiles) = fs::read_dir(triple.path()) else {
            continue;
        };
        for profile in profiles.flatten() {
            let Ok(fps) = fs::read_dir(profile.path().join(".fingerprint")) else {
                continue;
            };
            for fp in fps.flatten() {
                let name = fp.file_name().to_string_lossy().into_owned();
                if name.starts_with("sealroot-") && !name.starts_with("sealroot-testbed-") {
                    out.push(fp.path());
                }
            }
        }
    }
    out
}

fn cargo_build(args: &[&str], extra_rustflags: &str, output: &str) -> Result<PathBuf> {
    let _lock = CacheLock::acquire("static-build")?;
    let target_dir = static_target_dir()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Niced: VMs booting in parallel test threads are CPU-bound under TCG
    // and time-limited; the build is neither.
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "10"])
        .arg(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(host::workspace_root().join("Cargo.toml"))
        .args(["--target", TARGET])
        .args(args)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env(
            "RUSTFLAGS",
            format!("-C target-feature=+crt-static {extra_rustflags}").trim_end(),
        )
        // The release profile's thin LTO (faster P-256 object signing,
        // Cargo.toml) lengthens every rebuild's link; the VMs sign a
        // handful of objects, so the test bed builds without it.
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        // These would override RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS");
    let (_, log, elapsed) = run_build(
        &mut cmd,
        "the static build of the sealroot binaries failed; run the command above by hand to see all of it",
        "static-build.log",
    )?;
    if elapsed.as_secs() > 2 {
        eprintln!(
            "sealroot-testbed: built {output} statically in {:.1} s (log: {})",
            elapsed.as_secs_f64(),
            log.display()
        );
    }
    Ok(target_dir.join(TARGET).join(output))
}

/// `sealroot-prepare` exactly as initramfs images get it:
/// `scripts/build-prepare` (musl, `-Z build-std`, `panic=immediate-abort`,
/// non-PIE static; see its header), into this checkout's static target
/// directory.
fn build_prepare() -> Result<PathBuf> {
    let _lock = CacheLock::acquire("static-build")?;
    let target_dir = static_target_dir()?;
    let script = host::workspace_root().join("scripts/build-prepare");
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "10"])
        .arg(&script)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("SEALROOT_CACHE", host::cache_subdir("build-prepare")?);
    let (result, log, elapsed) = run_build(
        &mut cmd,
        "scripts/build-prepare failed (it needs the rustup nightly toolchain, musl-tools from \
         scripts/install-deps, and network access to Debian and crates.io the first time); \
         run it by hand to see all of it",
        "static-build-prepare.log",
    )?;
    let path = String::from_utf8_lossy(&result.stdout)
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| Error::Setup("scripts/build-prepare printed no path".into()))?;
    if elapsed.as_secs() > 2 {
        eprintln!(
            "sealroot-testbed: built {} with scripts/build-prepare in {:.1} s (log: {})",
            path.display(),
            elapsed.as_secs_f64(),
            log.display()
        );
    }
    Ok(path)
}

/// Runs a build command outside the jobserver of the cargo running the
/// tests, keeps its stderr in `<cache>/logs/<log_name>`, and times it.
fn run_build(
    cmd: &mut Command,
    hint: &str,
    log_name: &str,
) -> Result<(std::process::Output, PathBuf, std::time::Duration)> {
    cmd.env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS");
    let started = std::time::Instant::now();
    let result = host::run(cmd, Some(hint))?;
    let log = host::cache_subdir("logs")?.join(log_name);
    let _ = fs::write(&log, &result.stderr);
    Ok((result, log, started.elapsed()))
}

/// ELF constants, from the System V gABI / `include/uapi/linux/elf.h`.
const PT_INTERP: u32 = 3;
const EM_X86_64: u16 = 62;

/// Checks that `path` is an x86-64 ELF executable without a program
/// interpreter (`PT_INTERP`), i.e. it runs without a dynamic loader.
/// Static-PIE executables (what `+crt-static` produces) pass: they carry
/// `PT_DYNAMIC` for self-relocation but no interpreter.
pub fn check_static(path: &Path) -> Result<()> {
    let bytes = fs::read(path).ctx("cannot read executable", path)?;
    let bad = |why: String| Error::Invalid(format!("{}: {why}", path.display()));
    let u16_at = |off: usize| {
        bytes
            .get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |off: usize| {
        bytes
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let u64_at = |off: usize| {
        bytes
            .get(off..off + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return Err(bad("not a little-endian 64-bit ELF file".into()));
    }
    if u16_at(0x12) != Some(EM_X86_64) {
        return Err(bad("not an x86-64 executable".into()));
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err(bad("truncated ELF header".into()));
    };
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff)
            .unwrap_or(usize::MAX)
            .saturating_add(i * usize::from(phentsize));
        let p_type = u32_at(at).ok_or_else(|| bad("truncated program headers".into()))?;
        if p_type == PT_INTERP {
            let interp = u64_at(at + 8)
                .zip(u64_at(at + 32))
                .and_then(|(off, len)| bytes.get(off as usize..(off + len) as usize))
                .map(|s| {
                    String::from_utf8_lossy(s)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .unwrap_or_default();
            return Err(bad(format!(
                "dynamically linked (program interpreter {interp}); build with RUSTFLAGS=\"-C target-feature=+crt-static\" --target {TARGET}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ls_is_dynamic_and_busybox_static_is_static() {
        // Reference: `file /bin/ls` says "dynamically linked, interpreter
        // /lib64/ld-linux-x86-64.so.2"; `file /bin/busybox` (busybox-static)
        // says "statically linked".
        let err = check_static(Path::new("/bin/ls")).unwrap_err().to_string();
        assert!(
            err.contains("dynamically linked") && err.contains("ld-linux"),
            "{err}"
        );
        let busybox = crate::initramfs::busybox().unwrap();
        check_static(&busybox.path).unwrap();
    }

    #[test]
    fn non_elf_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        let err = check_static(&script).unwrap_err().to_string();
        assert!(err.contains("not a little-endian 64-bit ELF"), "{err}");
    }
}
