//! sealroot inside a real dracut + systemd initramfs, booted in QEMU.
//!
//! The initramfs is built by the host's dracut (Debian bookworm-backports
//! 106, with the host's systemd) for the bed's Debian 6.12 kernel, from
//! dracut's own `systemd-initrd` + `rootfs-block` modules and our
//! `dracut/90sealroot` module, enabled by our shipped
//! `dracut.conf.d/50-sealroot.conf` (see `vm_dracut/dracut.rs`). systemd
//! in the initramfs mounts `root=/dev/vda` at /sysroot, runs
//! `sealroot-prepare.service` (on every boot), checks the switch with
//! `sealroot-prepare --check-switch-root`, and switches into the root, whose
//! tiny busybox `/sbin/init` reports through the bed's result channel
//! (`vm_dracut/os.rs`) - or stops in emergency.target. Most tests here are
//! attacks from docs/prepare.md's "Threat model": each must end in
//! emergency.target with the reason on the console and no root's init run.
//!
//! Run: `SEALROOT_TESTBED_CACHE=/work/testbed-cache cargo nextest run --test vm_dracut`.
//! A systemd initramfs under TCG takes 30-60 s to reach the root (more on
//! a loaded machine); each VM gets `BOOT_TIMEOUT`.

#[path = "vm_dracut/dracut.rs"]
mod dracut;
#[path = "vm_dracut/kmods.rs"]
mod kmods;
#[path = "vm_dracut/os.rs"]
mod os;
#[path = "vm_dracut/sealed.rs"]
mod sealed;

use std::path::Path;
use std::time::Duration;

use sealroot_testbed::host;
use sealroot_testbed::{BootLog, Error, Kernel, MIB, Result, Vm, ext4_image, static_binaries};

/// Time limit per boot: a systemd initramfs under TCG on 2 shared cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(400);

/// Kernel arguments for every boot: the physical root, and systemd's status
/// lines on the console (the bed boots with `quiet`, which hides them).
const ROOT_ARGS: &str = "root=/dev/vda rw systemd.show_status=1";

/// A self-signed test certificate (P-256, `openssl req -x509`) in
/// `dir/certs.d/<name>`; its key stays in `dir/key.pem`.
fn test_certs_named(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    let certs = dir.join("certs.d");
    std::fs::create_dir_all(&certs).map_err(|e| kmods::io_error("cannot create", &certs, e))?;
    host::self_signed_p256(
        &dir.join("key.pem"),
        &certs.join(name),
        "sealroot vm_dracut test",
    )?;
    Ok(certs)
}

/// [`test_certs_named`] as `test.pem`.
fn test_certs(dir: &Path) -> Result<std::path::PathBuf> {
    test_certs_named(dir, "test.pem")
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("cannot create a temporary directory")
}

/// The plain physical root: the tiny OS whose init reports as pid 1 and
/// what the initramfs left in /run. Reaching it from an initramfs with
/// sealroot means an unverified root booted.
fn physical_root(dir: &Path) -> Result<sealroot_testbed::DiskImage> {
    os::write_tree(
        dir,
        "physical-root",
        r#"
        bed_run no-initrd-release test ! -e /etc/initrd-release
        bed_run status cat /run/sealroot/status.json
        bed_run marker cat /run/sealroot/stood-down
        # The initramfs's journal stays in /run/log/journal after switch-root;
        # short messages are stored uncompressed.
        bed_value journal "$(grep -ahoE 'MESSAGE=[^[:cntrl:]]*sealroot[^[:cntrl:]]*' /run/log/journal/*/*.journal)"
        mount -o remount,ro /
        "#,
    )?;
    ext4_image(dir, 64 * MIB)
}

/// Builds the initramfs (our module, the trusted certificates in
/// `certs_dir`, `config` as prepare.conf).
fn build_initramfs(certs_dir: &Path, config: Option<&Path>) -> Result<dracut::Built> {
    build_initramfs_with_policy(certs_dir, config, None)
}

/// [`build_initramfs`] with a signed IPE policy (`sealroot_ipe_policy=`).
fn build_initramfs_with_policy(
    certs_dir: &Path,
    config: Option<&Path>,
    ipe_policy: Option<&Path>,
) -> Result<dracut::Built> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let built = dracut::build(&dracut::Build {
        kernel,
        sealroot_prepare: &bins.sealroot_prepare,
        certs_dir,
        config,
        extra_modules: &[],
        ipe_policy,
    })?;
    eprintln!(
        "dracut built {} ({} KiB) in {:.1} s",
        built.image.display(),
        std::fs::metadata(&built.image)
            .map(|m| m.len() / 1024)
            .unwrap_or(0),
        built.elapsed.as_secs_f64()
    );
    Ok(built)
}

/// Boots `disks` (`/dev/vda`, ...) with `args` after [`ROOT_ARGS`]; stops at emergency.target
/// (emergency.service waits for a root login on the console).
fn boot_until_emergency(
    built: &dracut::Built,
    disks: &[&sealroot_testbed::DiskImage],
    args: &[&str],
    name: &str,
) -> Result<BootLog> {
    let kernel = Kernel::get()?;
    let mut vm = Vm::with_initrd_file(kernel, &built.image).name(name);
    for disk in disks {
        vm = vm.disk(disk);
    }
    // systemd's status line when emergency.target is reached, and
    // emergency.service's own greeting (after initrd-switch-root.service
    // failed, systemd prints only the latter).
    let mut vm = vm
        .cmdline(ROOT_ARGS)
        .timeout(BOOT_TIMEOUT)
        .abort_on("Emergency Mode")
        .abort_on("You are in emergency mode");
    for arg in args {
        vm = vm.cmdline(arg);
    }
    let log = vm.run_unchecked()?;
    eprintln!("{name}: {:.1} s", log.elapsed.as_secs_f64());
    Ok(log)
}

/// The boot stopped in the initramfs: `steps` appear on the console in
/// this order, then emergency mode (systemd's "Reached target
/// emergency.target", or emergency.service's greeting), and no root's
/// init ran.
fn assert_stopped_in_emergency(log: &BootLog, steps: &[&str]) -> Result<()> {
    assert_console_order(log, steps)?;
    let console = log.console();
    let after = steps
        .last()
        .and_then(|last| console.rfind(last).map(|at| &console[at..]))
        .unwrap_or(console);
    if !after.contains("Reached target emergency.target")
        && !after.contains("You are in emergency mode")
    {
        return Err(log.failure(&format!("no emergency mode after {:?}", steps.last())));
    }
    log.assert_console_lacks("os init:")?;
    Ok(())
}

/// The module installs the unit, its drop-ins and the gate; the unit has
/// no condition the command line could use to skip it. Booted without any
/// selector, sealroot-prepare fails with its reason on the console and the
/// boot stops in emergency.target: the physical root never runs (it did
/// before issue 10: the unit was skipped and systemd switched into the
/// disk as it was). The trusted certificate is named `*.cert`, a name
/// sealroot-prepare reads and the module used to skip.
#[test]
fn dracut_initramfs_without_a_selector_stops_in_emergency() -> Result<()> {
    let work = tmpdir();
    let certs = test_certs_named(work.path(), "test.cert")?;
    // A signed IPE policy (`sealroot ipe sign`) goes in as it is.
    let policy = signed_ipe_policy(work.path())?;
    let built = build_initramfs_with_policy(&certs, None, Some(&policy))?;
    if !built.log.contains("sealroot: 1 trusted certificate(s)") {
        return Err(Error::Assertion(format!(
            "dracut did not run the sealroot module's install(); log:\n{}",
            built.log
        )));
    }
    for path in [
        "usr/bin/sealroot-prepare",
        "usr/lib/systemd/system/sealroot-prepare.service",
        "etc/systemd/system/initrd-root-fs.target.wants/sealroot-prepare.service",
        "usr/lib/systemd/system/ostree-prepare-root.service.d/50-sealroot.conf",
        "usr/lib/systemd/system/composefs-setup-root.service.d/50-sealroot.conf",
        "usr/lib/systemd/system/bootc-root-setup.service.d/50-sealroot.conf",
        "usr/lib/systemd/system/initrd-switch-root.service.d/50-sealroot.conf",
        "usr/lib/modules-load.d/sealroot.conf",
        "etc/sealroot/certs.d/test.cert",
        "etc/sealroot/ipe/policy.p7s",
        "usr/lib/systemd/system/emergency.target",
        "usr/lib/systemd/system/initrd-root-fs.target",
    ] {
        built.assert_contains(path)?;
    }
    for module in ["erofs", "overlay", "libcrc32c", "loop", "virtio_blk"] {
        if !built.listing.contains(&format!("/{module}.ko")) {
            return Err(Error::Assertion(format!(
                "kernel module {module} is not in the initramfs"
            )));
        }
    }
    let unit = built.read("usr/lib/systemd/system/sealroot-prepare.service")?;
    if unit
        .lines()
        .any(|l| l.starts_with("ConditionKernelCommandLine"))
        || !unit.contains("OnFailure=emergency.target")
    {
        return Err(Error::Assertion(format!(
            "the initramfs's sealroot-prepare.service can be skipped from the command line or does not fail closed:\n{unit}"
        )));
    }
    let gate =
        built.read("usr/lib/systemd/system/initrd-switch-root.service.d/50-sealroot.conf")?;
    if !gate.contains("ExecStartPre=/usr/bin/sealroot-prepare --check-switch-root") {
        return Err(Error::Assertion(format!("no switch-root gate:\n{gate}")));
    }
    if built.contains("usr/lib/systemd/system-generators/systemd-run-generator") {
        return Err(Error::Assertion(
            "systemd-run-generator is in the initramfs".into(),
        ));
    }

    let root = tmpdir();
    let disk = physical_root(root.path())?;
    let log = boot_until_emergency(&built, &[&disk], &[], "dracut-no-selector")?;
    assert_stopped_in_emergency(
        &log,
        &[
            "Mounted sysroot.mount",
            "Starting sealroot-prepare.service",
            "sealroot: error: kernel command line: no image selected: add sealroot=sha256:<manifest digest>",
            "Failed to start sealroot-prepare",
        ],
    )?;
    log.assert_console_lacks("Reached target initrd-root-fs.target")?;
    Ok(())
}

/// A misspelled parameter (`sealroot.conf=` for `sealroot.config=`) does
/// not turn sealroot off: sealroot-prepare names it, the boot stops.
#[test]
fn misspelled_sealroot_parameter_stops_in_emergency() -> Result<()> {
    let work = tmpdir();
    let built = build_initramfs(&test_certs(work.path())?, None)?;
    let root = tmpdir();
    let disk = physical_root(root.path())?;
    let arg = format!("sealroot.conf=sha256:{}", "ab".repeat(32));
    let log = boot_until_emergency(&built, &[&disk], &[&arg], "dracut-misspelled")?;
    assert_stopped_in_emergency(
        &log,
        &[
            "Starting sealroot-prepare.service",
            &format!("sealroot: error: kernel command line: {arg}: unknown sealroot parameter"),
            "Failed to start sealroot-prepare",
        ],
    )
}

/// `rd.systemd.mask=sealroot-prepare.service` on the physical root an
/// attacker wants booted: the unit never starts (a masked unit is no
/// failure, so nothing stops the boot there); systemd reaches the switch,
/// and the switch-root gate refuses it ("has not run in this boot"):
/// initrd-switch-root.service fails, emergency mode, the root never runs.
#[test]
fn masked_sealroot_prepare_cannot_switch_root() -> Result<()> {
    let work = tmpdir();
    let built = build_initramfs(&test_certs(work.path())?, None)?;
    let root = tmpdir();
    let disk = physical_root(root.path())?;
    let log = boot_until_emergency(
        &built,
        &[&disk],
        &["rd.systemd.mask=sealroot-prepare.service"],
        "dracut-masked",
    )?;
    log.assert_console_lacks("Starting sealroot-prepare.service")?;
    assert_stopped_in_emergency(
        &log,
        &[
            "Reached target initrd.target",
            "Starting initrd-switch-root.service",
            "sealroot: error: refusing to switch root: sealroot-prepare has not run in this boot (no /run/sealroot/status.json)",
            "Failed to start initrd-switch-root",
        ],
    )
}

/// An initramfs whose prepare.conf says `[boot] required = no` (files in
/// `dir`).
fn optional_initramfs(dir: &Path) -> Result<dracut::Built> {
    let certs = test_certs(dir)?;
    let conf = dir.join("prepare.conf");
    std::fs::write(&conf, "[boot]\nrequired = no\n")
        .map_err(|e| kmods::io_error("cannot write", &conf, e))?;
    build_initramfs(&certs, Some(&conf))
}

/// `[boot] required = no` baked into the initramfs, no sealroot parameter:
/// sealroot-prepare stands down (status `not-selected`, the marker the
/// other units' drop-ins require), the gate lets the switch happen, and the
/// physical root boots: the coexistence path, chosen by the initramfs.
#[test]
fn optional_initramfs_without_a_selector_boots_the_physical_root() -> Result<()> {
    let work = tmpdir();
    let built = optional_initramfs(work.path())?;
    built.assert_contains("etc/sealroot/prepare.conf")?;
    let root = tmpdir();
    let disk = physical_root(root.path())?;
    let kernel = Kernel::get()?;
    let log = Vm::with_initrd_file(kernel, &built.image)
        .name("dracut-optional")
        .disk(&disk)
        .cmdline(ROOT_ARGS)
        .timeout(BOOT_TIMEOUT)
        .abort_on("Emergency Mode")
        .run()?;
    log.assert_scenario_ok()?;
    if log.value("os-marker")? != "physical-root" || log.value("pid")? != "1" {
        return Err(log.failure("the physical root's /sbin/init did not run as pid 1"));
    }
    log.result("no-initrd-release")?.assert_ok()?;
    let status = log.result("status")?.assert_ok()?;
    let json: serde_json::Value = serde_json::from_str(&status.stdout)
        .map_err(|e| log.failure(&format!("status.json: {e}:\n{}", status.stdout)))?;
    if json["result"] != "not-selected"
        || json["exit_code"] != 0
        || json["config"]["boot"]["required"] != false
    {
        return Err(log.failure(&format!(
            "status.json does not record the stand-down:\n{}",
            status.stdout
        )));
    }
    log.result("marker")?.assert_ok()?;
    assert_console_order(
        &log,
        &[
            "Starting sealroot-prepare.service",
            "standing down (sealroot verified and mounted nothing",
            "Finished sealroot-prepare.service",
            "sealroot: switch root allowed: sealroot stood down",
        ],
    )?;
    Ok(())
}

/// `[boot] required = no` does not make a present but malformed selector
/// optional: refused, emergency.
#[test]
fn optional_initramfs_refuses_a_malformed_selector() -> Result<()> {
    let work = tmpdir();
    let built = optional_initramfs(work.path())?;
    let root = tmpdir();
    let disk = physical_root(root.path())?;
    let log = boot_until_emergency(
        &built,
        &[&disk],
        &["sealroot=sha256:abc"],
        "dracut-optional-malformed",
    )?;
    assert_stopped_in_emergency(
        &log,
        &[
            "Starting sealroot-prepare.service",
            "sealroot: error: kernel command line: sealroot=sha256:abc: expected 64 lower-case hex digits",
            "Failed to start sealroot-prepare",
        ],
    )
}

/// Checks the sealed OS's init runs as pid 1 on the sealed root.
const SEALED_CHECKS: &str = r#"
    bed_run status cat /run/sealroot/status.json
    bed_value mounts "$(cat /proc/mounts)"
    bed_value ostree-journal "$(grep -ahoE 'MESSAGE=[^[:cntrl:]]*ostree-prepare-root[^[:cntrl:]]*' /run/log/journal/*/*.journal)"
"#;

/// The sealed OS's view of its root, from `SEALED_CHECKS`: `/` is the
/// composefs overlay (read-only, `verity=require`, EROFS lower layer, the
/// repository's objects as data layer), the physical root stays reachable
/// at `/sysroot`, and sealroot-prepare's status.json names the image the
/// command line selected and `sealroot deploy` reported.
fn assert_sealed_root_mounted(log: &BootLog, root: &sealed::SealedRoot) -> Result<()> {
    let mounts = log.value("mounts")?;
    let fields = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
    // The last mount on a path is the visible one.
    let mounted_at = |path: &str| {
        mounts
            .lines()
            .rev()
            .map(fields)
            .find(|f| f.len() >= 4 && f[1] == path)
    };
    let slash = mounted_at("/").ok_or_else(|| log.failure("no mount on / in /proc/mounts"))?;
    let options: Vec<&str> = slash[3].split(',').collect();
    if slash[2] != "overlay"
        || !options.contains(&"ro")
        || !options.contains(&"verity=require")
        || !options.iter().any(|o| o.starts_with("lowerdir+="))
        || !options.iter().any(|o| o.starts_with("datadir+="))
    {
        return Err(log.failure(&format!(
            "/ is not the read-only composefs overlay (verity=require, lowerdir+=, datadir+=): {}",
            slash.join(" ")
        )));
    }
    match mounted_at("/sysroot") {
        Some(f) if f[0] == "/dev/vda" && f[2] == "ext4" => {}
        other => {
            return Err(log.failure(&format!(
                "the physical root /dev/vda (ext4) is not at /sysroot: {other:?}"
            )));
        }
    }
    // What comes from the disk is mounted nosuid,nodev on the booted system.
    for path in ["/etc", "/var", "/sysroot"] {
        let f =
            mounted_at(path).ok_or_else(|| log.failure(&format!("nothing mounted at {path}")))?;
        let options: Vec<&str> = f[3].split(',').collect();
        if !options.contains(&"nosuid") || !options.contains(&"nodev") {
            return Err(log.failure(&format!("{path} is not nosuid,nodev: {}", f.join(" "))));
        }
    }
    let status = log.result("status")?.assert_ok()?;
    let json: serde_json::Value = serde_json::from_str(&status.stdout).map_err(|e| {
        log.failure(&format!(
            "/run/sealroot/status.json is not JSON ({e}):\n{}",
            status.stdout
        ))
    })?;
    let manifest = root.kernel_arg.trim_start_matches("sealroot=");
    let erofs = format!("sha256:{}", root.image);
    let expected = [
        ("/result", serde_json::json!("mounted")),
        ("/exit_code", serde_json::json!(0)),
        ("/selector", serde_json::json!(root.kernel_arg)),
        ("/image/manifest", serde_json::json!(manifest)),
        ("/image/erofs", serde_json::json!(erofs)),
    ];
    for (pointer, want) in expected {
        if json.pointer(pointer) != Some(&want) {
            return Err(log.failure(&format!(
                "status.json {pointer} is {:?}, expected {want}:\n{}",
                json.pointer(pointer),
                status.stdout
            )));
        }
    }
    Ok(())
}

/// The module fails the dracut build (instead of producing an initramfs
/// that trusts nothing, or one that carries a signing key) when the
/// certificate directory holds a private key, is empty, or is missing.
#[test]
fn dracut_refuses_private_keys_and_missing_certificates() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let work = tmpdir();
    let certs = test_certs(work.path())?;
    std::fs::copy(work.path().join("key.pem"), certs.join("signer.pem"))
        .map_err(|e| kmods::io_error("cannot copy", &certs, e))?;
    let empty = work.path().join("empty.d");
    std::fs::create_dir_all(&empty).map_err(|e| kmods::io_error("cannot create", &empty, e))?;
    let missing = work.path().join("missing.d");
    for (dir, message) in [
        (
            &certs,
            "signer.pem contains a private key; only certificates belong in the initramfs",
        ),
        (
            &empty,
            "no certificates (*.pem, *.crt, *.cer, *.cert, *.der) in",
        ),
        (&missing, "no trusted certificate directory"),
    ] {
        let result = dracut::build(&dracut::Build {
            kernel,
            sealroot_prepare: &bins.sealroot_prepare,
            certs_dir: dir,
            config: None,
            extra_modules: &[],
            ipe_policy: None,
        });
        match result {
            Ok(built) => {
                return Err(Error::Assertion(format!(
                    "dracut built {} although {} is unusable",
                    built.image.display(),
                    dir.display()
                )));
            }
            Err(e) => {
                let text = e.to_string();
                if !text.contains(message)
                    || !text.contains("Module 'sealroot' cannot be installed")
                {
                    return Err(Error::Assertion(format!(
                        "dracut failed without saying `{message}`:\n{text}"
                    )));
                }
            }
        }
    }
    // IPE: an unsigned (plain-text) policy, and prepare.conf requiring a
    // policy the build host does not have.
    let good = test_certs(&work.path().join("good"))?;
    let plain = work.path().join("policy.ipe");
    std::fs::write(
        &plain,
        "policy_name=x policy_version=1.0.0\nDEFAULT action=ALLOW\n",
    )
    .map_err(|e| kmods::io_error("cannot write", &plain, e))?;
    let requiring = work.path().join("prepare.conf");
    std::fs::write(&requiring, "[ipe]\nrequired = yes # no policy without it\n")
        .map_err(|e| kmods::io_error("cannot write", &requiring, e))?;
    for (config, policy, message) in [
        (
            None,
            Some(plain.as_path()),
            "is not a signed IPE policy (DER PKCS#7)",
        ),
        (
            Some(requiring.as_path()),
            None,
            "says [ipe] required = yes, but there is no",
        ),
    ] {
        let result = dracut::build(&dracut::Build {
            kernel,
            sealroot_prepare: &bins.sealroot_prepare,
            certs_dir: &good,
            config,
            extra_modules: &[],
            ipe_policy: policy,
        });
        match result {
            Ok(built) => {
                return Err(Error::Assertion(format!(
                    "dracut built {} although the IPE policy is unusable ({message})",
                    built.image.display()
                )));
            }
            Err(e) => {
                let text = e.to_string();
                if !text.contains(message)
                    || !text.contains("Module 'sealroot' cannot be installed")
                {
                    return Err(Error::Assertion(format!(
                        "dracut failed without saying `{message}`:\n{text}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `sealroot ipe policy`, signed by `sealroot ipe sign` with a throwaway
/// P-256 key: `dir/policy.p7s`.
fn signed_ipe_policy(dir: &Path) -> Result<std::path::PathBuf> {
    let bins = static_binaries()?;
    let (key, cert) = (dir.join("ipe.key"), dir.join("ipe.crt"));
    host::self_signed_p256(&key, &cert, "sealroot vm_dracut IPE policy")?;
    let text = dir.join("policy.ipe");
    let signed = dir.join("policy.p7s");
    host::run(
        std::process::Command::new(&bins.sealroot)
            .args(["ipe", "policy", "--out"])
            .arg(&text),
        None,
    )?;
    host::run(
        std::process::Command::new(&bins.sealroot)
            .args(["ipe", "sign"])
            .arg(&text)
            .arg("--key")
            .arg(&key)
            .arg("--cert")
            .arg(&cert)
            .arg("--out")
            .arg(&signed),
        None,
    )?;
    Ok(signed)
}

/// Fails unless the console lines containing `needles` appear in this order.
fn assert_console_order(log: &BootLog, needles: &[&str]) -> Result<()> {
    let console = log.console();
    let mut from = 0;
    for needle in needles {
        match console[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => {
                return Err(log.failure(&format!(
                    "console lacks `{needle}` after the earlier steps {needles:?}"
                )));
            }
        }
    }
    Ok(())
}

/// The sealed tiny OS (marker `sealed-root`, [`SEALED_CHECKS`]) deployed
/// onto a fresh disk by `sealed::sealed_root` (`tamper` as there), with
/// the keys that sealed it; the directory holds the keys.
fn sealed_disk(
    tamper: Option<&str>,
) -> Result<(tempfile::TempDir, sealed::Keys, sealed::SealedRoot)> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let work = tmpdir();
    let keys = sealed::Keys::generate(work.path())?;
    let root = sealed::sealed_root(
        kernel,
        &bins.sealroot,
        &keys,
        "sealed-root",
        SEALED_CHECKS,
        tamper,
    )?;
    Ok((work, keys, root))
}

/// With `sealroot=sha256:<manifest>`: systemd mounts the physical root,
/// runs sealroot-prepare (after sysroot.mount, before
/// initrd-root-fs.target), which verifies and mounts the sealed image at
/// /sysroot; systemd switches into it and its init runs as pid 1 on an
/// overlay root. ostree-prepare-root.service is in the same initramfs and
/// `ostree=` on the command line, and stands down (our drop-in).
#[test]
fn sealed_root_boots_through_dracut_and_systemd() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let (_work, keys, root) = sealed_disk(None)?;
    // Debian's ostree-boot dracut module puts ostree-prepare-root.service
    // into the same slot; with `ostree=` also on the command line only our
    // drop-in keeps it from acting as well.
    let built = dracut::build(&dracut::Build {
        kernel,
        sealroot_prepare: &bins.sealroot_prepare,
        certs_dir: &keys.certs_dir,
        config: None,
        extra_modules: &["ostree"],
        ipe_policy: None,
    })?;
    built.assert_contains(
        "etc/systemd/system/initrd-root-fs.target.wants/ostree-prepare-root.service",
    )?;
    let log = Vm::with_initrd_file(kernel, &built.image)
        .disk(&root.disk)
        .cmdline(ROOT_ARGS)
        .cmdline(&root.kernel_arg)
        .cmdline("ostree=/ostree/boot.1/sealroot-test/0")
        .timeout(BOOT_TIMEOUT)
        // A refusal waits for a root login on the console: fail at once.
        .abort_on("Emergency Mode")
        .run()?;
    eprintln!(
        "boot to the sealed root's init: {:.1} s",
        log.elapsed.as_secs_f64()
    );
    log.assert_scenario_ok()?;
    if log.value("os-marker")? != "sealed-root" || log.value("pid")? != "1" {
        return Err(log.failure("the sealed root's /sbin/init did not run as pid 1"));
    }
    assert_sealed_root_mounted(&log, &root)?;
    let ostree = log.value("ostree-journal")?;
    if !ostree.contains(
        "was skipped because of an unmet condition check (ConditionPathExists=/run/sealroot/stood-down)",
    ) {
        return Err(log.failure(&format!(
            "ostree-prepare-root.service was not stood down by our drop-in:\n{ostree}"
        )));
    }
    assert_console_order(
        &log,
        &[
            "Mounted sysroot.mount",
            "Starting sealroot-prepare.service",
            "Finished sealroot-prepare.service",
            "Reached target initrd-root-fs.target",
            "Starting initrd-parse-etc.service",
            "Reached target initrd-switch-root.target",
            "Starting initrd-switch-root.service",
            "sealroot: switch root allowed: /sysroot is the sealed root sealroot-prepare mounted",
        ],
    )?;
    Ok(())
}

/// `[boot] layout = ostree` in the initramfs (sealroot-prepare replaces
/// ostree-prepare-root, whose unit Debian's ostree module also installs):
/// an `ostree=` that names no deployment on the disk stops the boot in
/// emergency mode with sealroot-prepare's reason; ostree-prepare-root never
/// starts in its place and the physical root never runs.
#[test]
fn ostree_layout_initramfs_stops_on_a_missing_deployment() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let work = tmpdir();
    let certs = test_certs(work.path())?;
    let conf = work.path().join("prepare.conf");
    std::fs::write(&conf, "[boot]\nlayout = ostree\n")
        .map_err(|e| kmods::io_error("cannot write", &conf, e))?;
    let built = dracut::build(&dracut::Build {
        kernel,
        sealroot_prepare: &bins.sealroot_prepare,
        certs_dir: &certs,
        config: Some(&conf),
        extra_modules: &["ostree"],
        ipe_policy: None,
    })?;
    built.assert_contains(
        "etc/systemd/system/initrd-root-fs.target.wants/ostree-prepare-root.service",
    )?;
    let root = tmpdir();
    let disk = physical_root(root.path())?;
    let arg = format!("ostree=/ostree/boot.1/testos/{}/0", "ab".repeat(32));
    let log = boot_until_emergency(&built, &[&disk], &[&arg], "dracut-ostree-missing")?;
    assert_stopped_in_emergency(
        &log,
        &[
            "Mounted sysroot.mount",
            "Starting sealroot-prepare.service",
            &format!("sealroot: error: {arg}: no such deployment below /sysroot (ENOENT)"),
            "Failed to start sealroot-prepare",
        ],
    )?;
    log.assert_console_lacks("Starting ostree-prepare-root")?;
    log.assert_console_lacks("Reached target initrd-root-fs.target")?;
    Ok(())
}

/// `mount.usr=` on an editable command line: systemd mounts the named
/// partition at /sysusr/usr and binds it onto /sysroot/usr, over the sealed
/// root's /usr, after sealroot-prepare verified and mounted it. Without the
/// switch-root gate the sealed OS would run the attacker's /usr. The gate
/// sees the extra mount below the sealed root and refuses the switch.
#[test]
fn mount_usr_cannot_shadow_the_sealed_usr() -> Result<()> {
    let (_work, keys, root) = sealed_disk(None)?;
    let attacker = tmpdir();
    std::fs::create_dir_all(attacker.path().join("bin"))
        .map_err(|e| kmods::io_error("cannot create", attacker.path(), e))?;
    std::fs::write(attacker.path().join("attacker-usr"), "not signed\n")
        .map_err(|e| kmods::io_error("cannot write", attacker.path(), e))?;
    let usr = ext4_image(attacker.path(), 16 * MIB)?;
    let built = build_initramfs(&keys.certs_dir, None)?;
    let log = boot_until_emergency(
        &built,
        &[&root.disk, &usr],
        &[
            &root.kernel_arg,
            "mount.usr=/dev/vdb",
            "mount.usrfstype=ext4",
        ],
        "dracut-mount-usr",
    )?;
    assert_stopped_in_emergency(
        &log,
        &[
            "Finished sealroot-prepare.service",
            "Starting initrd-switch-root.service",
            "sealroot: error: refusing to switch root: /sysroot/usr (ext4 from /dev/vdb, mount id ",
            "was mounted below the sealed root after sealroot-prepare ran",
            "Failed to start initrd-switch-root",
        ],
    )?;
    Ok(())
}

/// The same image with its merged EROFS altered on disk (rewritten with one
/// bit flipped and fs-verity re-enabled, as someone with write access to the
/// disk could): the unit
/// fails, sealroot-prepare's refusal is on the console, systemd isolates
/// emergency.target and the sealed OS never runs.
#[test]
fn tampered_image_lands_in_emergency() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let work = tmpdir();
    let keys = sealed::Keys::generate(work.path())?;
    // Rewrite images/<hex> with one bit flipped and fs-verity enabled again
    // (a verity file cannot be edited in place; an attacker replaces it,
    // but cannot sign the new digest).
    let tamper = r#"
        flip() {
            img=$(ls $repo/images | head -n 1)
            cp $repo/images/$img /tmp/img &&
            printf '\x01' | dd of=/tmp/img bs=1 seek=1200 conv=notrunc 2>/dev/null &&
            rm -f $repo/images/$img && cp /tmp/img $repo/images/$img &&
            /bin/sealroot enable $repo/images/$img && echo "flipped a bit of $img, verity re-enabled"
        }
        bed_run tamper flip || exit 1
    "#;
    let root = sealed::sealed_root(
        kernel,
        &bins.sealroot,
        &keys,
        "tampered-root",
        SEALED_CHECKS,
        Some(tamper),
    )?;
    let built = dracut::build(&dracut::Build {
        kernel,
        sealroot_prepare: &bins.sealroot_prepare,
        certs_dir: &keys.certs_dir,
        config: None,
        extra_modules: &[],
        ipe_policy: None,
    })?;
    // emergency.service waits on the console for a root login: stop there.
    let log = Vm::with_initrd_file(kernel, &built.image)
        .disk(&root.disk)
        .cmdline(ROOT_ARGS)
        .cmdline(&root.kernel_arg)
        .timeout(BOOT_TIMEOUT)
        .abort_on("Emergency Mode")
        .run_unchecked()?;
    eprintln!(
        "boot to emergency.target: {:.1} s",
        log.elapsed.as_secs_f64()
    );
    assert_console_order(
        &log,
        &[
            "Mounted sysroot.mount",
            "Starting sealroot-prepare.service",
            "sealroot-prepare[",
            "sealroot: error: refused: ",
            "Failed to start sealroot-prepare",
            "Reached target emergency.target",
        ],
    )?;
    // sealroot-prepare's own line, through the unit's journal+console
    // output, naming the image and why (docs/prepare.md, "Messages").
    let image = &root.image;
    log.assert_console_contains(&format!(
        "]: sealroot: error: refused: merged EROFS sha256:{image}: fs-verity digest mismatch: /sysroot/sealroot/images/{image} measures sha256:"
    ))?;
    log.assert_console_contains(&format!(
        ", the artifact signs sha256:{image}: the file was altered or replaced"
    ))?;
    log.assert_console_lacks("Reached target initrd-root-fs.target")?;
    log.assert_console_lacks("os init:")?;
    Ok(())
}

/// The dracut module installs exactly the certificate files
/// sealroot-prepare reads (`sealroot::crypto::cert::CERT_EXTENSIONS`):
/// its `sealroot_certs` function, run by bash on a directory with one
/// certificate per name that prepare reads and a few it does not, lists
/// exactly the former. (Before issue 10 it skipped `*.cert`.)
#[test]
fn dracut_module_installs_exactly_the_certificate_names_prepare_reads() -> Result<()> {
    use sealroot::crypto::cert::CERT_EXTENSIONS;
    let work = tmpdir();
    let certs = test_certs(work.path())?;
    let pem = certs.join("test.pem");
    let pem_bytes = std::fs::read(&pem).map_err(|e| kmods::io_error("cannot read", &pem, e))?;
    std::fs::remove_file(&pem).map_err(|e| kmods::io_error("cannot remove", &pem, e))?;
    let mut expected = Vec::new();
    for ext in CERT_EXTENSIONS {
        let name = format!("signer.{ext}");
        std::fs::write(certs.join(&name), &pem_bytes)
            .map_err(|e| kmods::io_error("cannot write", &certs, e))?;
        expected.push(name);
    }
    for other in ["signer.txt", "signer.pem.bak", "signer.PEM", "README"] {
        std::fs::write(certs.join(other), &pem_bytes)
            .map_err(|e| kmods::io_error("cannot write", &certs, e))?;
    }
    expected.sort();
    // What prepare's loader picks from the same directory: all of them.
    let loaded = sealroot::crypto::Cert::load(&certs)
        .map_err(|e| Error::Assertion(format!("Cert::load: {e}")))?;
    assert!(!loaded.is_empty());
    let module = host::workspace_root().join("dracut/90sealroot/module-setup.sh");
    let script = r#"
        derror() { echo "derror: $*" >&2; }
        dwarning() { echo "dwarning: $*" >&2; }
        . "$1"
        sealroot_certs_dir=$2
        sealroot_certs
    "#;
    let out = host::run(
        std::process::Command::new("bash")
            .args(["-c", script, "module-setup"])
            .arg(&module)
            .arg(&certs),
        Some("the module's sealroot_certs failed"),
    )?;
    let mut listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.rsplit('/').next().unwrap_or(l).to_owned())
        .collect();
    listed.sort();
    if listed != expected {
        return Err(Error::Assertion(format!(
            "the dracut module installs {listed:?}, sealroot-prepare reads {expected:?}"
        )));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("skipping") || !stderr.contains(".pem, .crt, .cer, .cert, .der") {
        return Err(Error::Assertion(format!(
            "no warning naming the accepted names:\n{stderr}"
        )));
    }
    Ok(())
}
