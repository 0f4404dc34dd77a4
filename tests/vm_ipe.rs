//! IPE on a real kernel (Debian 6.12 in QEMU, UEFI with OVMF whose `db`
//! holds the policy certificate, which Linux loads into the `.platform`
//! keyring): `sealroot-prepare` loads the signed policy from the initramfs
//! and activates it once the sealed root is mounted; programs of the sealed
//! root run, the same bytes anywhere else do not; kernel modules follow the
//! policy's KMODULE rules; every refusal leaves nothing mounted.
//!
//! Fixtures (`vm_prepare_support`): images sealed with `sealroot oci seal
//! --object-signatures` and deployed with `sealroot deploy` on the host; the
//! sealing boot runs `sealroot repo enable-verity`, which attaches each
//! object's signature from the bundle. Policies are written and signed with
//! `sealroot ipe policy|sign`.
//!
//! Run: `SEALROOT_TESTBED_CACHE=... cargo nextest run --test vm_ipe`.
//! Each test is one OVMF boot (15-40 s under TCG on a loaded machine).

mod oci_support;
mod repo_support;
mod vm_prepare_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use repo_support::sr_ok;
use sealroot_testbed::{BootLog, DiskImage, Firmware, Initramfs, Kernel, Ovmf, Result, Vm};
use serde_json::Value;
use vm_prepare_support::*;

struct Fixtures {
    /// Signs the images (its certificate is in certs.d).
    trusted: Signer,
    /// The policy key: its certificate is enrolled in db.
    db: Signer,
    /// Another policy key, never enrolled.
    rogue: Signer,
    disks: BTreeMap<String, (DiskImage, Deployed)>,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let (signers, disks) = sealed_set("vm_ipe", build_fixtures);
        let [trusted, db, rogue]: [Signer; 3] = signers.try_into().ok().unwrap();
        Fixtures {
            trusted,
            db,
            rogue,
            disks,
        }
    })
}

fn build_fixtures() -> (Vec<Signer>, Vec<(String, DiskImage, Deployed)>) {
    let trusted = Signer::generate("trusted");
    let db = Signer::generate("ipe-db");
    let rogue = Signer::generate("ipe-rogue");
    let mut variants: Vec<(&'static str, tempfile::TempDir, Deployed)> = Vec::new();
    let mut make = |name: &'static str, tag: &str, signing: Signing<'_>, skip_verity: bool| {
        let dir = tempfile::tempdir().unwrap();
        let d = deploy_fixture(dir.path(), &ImageSpec::ipe(tag), &signing);
        if skip_verity {
            skip_enable_verity(dir.path());
        }
        variants.push((name, dir, d));
    };
    // Deployed with builtin signatures; enable-verity in the sealing boot
    // attaches every object's signature from the bundle.
    make(
        "signed",
        "os-ipe",
        Signing::new(&trusted, SigMode::Builtin).with_object_signatures(),
        false,
    );
    // As an mkosi build host leaves it: no fs-verity anywhere; the first
    // boot attaches the signatures.
    make(
        "first-boot",
        "os-first",
        Signing::new(&trusted, SigMode::AttachAtBoot).with_object_signatures(),
        true,
    );
    // Sealed without per-object signatures.
    make(
        "no-object-signatures",
        "os-plain",
        Signing::new(&trusted, SigMode::Builtin),
        false,
    );
    // Object signatures in the artifact, but deployed detached.
    make(
        "detached",
        "os-det",
        Signing::new(&trusted, SigMode::Detached).with_object_signatures(),
        false,
    );
    // Sealed inline (no artifact, so no bundle: `oci seal --inline`
    // refuses --object-signatures).
    make(
        "inline",
        "os-inline",
        Signing::inline(&trusted, SigMode::Builtin),
        false,
    );
    let paths: Vec<&Path> = variants.iter().map(|(_, d, _)| d.path()).collect();
    let disks = seal_disks(&paths, DISK_SIZE).expect("sealing the fixture disks");
    let disks = variants
        .into_iter()
        .zip(disks)
        .map(|((name, _dir, d), disk)| (name.to_owned(), disk, d))
        .collect();
    (vec![trusted, db, rogue], disks)
}

fn fixture(name: &str) -> (DiskImage, Deployed) {
    let (disk, d) = &fixtures().disks[name];
    (copy_disk(disk), d.clone())
}

/// A directory that outlives the test's VM (signed policies, certs).
fn work() -> PathBuf {
    tempfile::tempdir().unwrap().keep()
}

/// `sealroot ipe policy` signed by `signer` with `sealroot ipe sign`.
fn signed_policy(signer: &Signer, extra: &[&str]) -> Vec<u8> {
    let dir = work();
    let (key, cert) = signer.write_files(&dir);
    let text = dir.join("policy.ipe");
    let out = dir.join("policy.p7s");
    let mut args = vec!["ipe", "policy", "--out", text.to_str().unwrap()];
    args.extend_from_slice(extra);
    sr_ok(&args);
    sr_ok(&[
        "ipe",
        "sign",
        text.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    std::fs::read(out).unwrap()
}

/// One UEFI boot with the db certificate enrolled: the disk at /sysroot,
/// the trusted image certificate in certs.d, `policy` (if any) as
/// /etc/sealroot/ipe/policy.p7s, `conf` as prepare.conf, then
/// sealroot-prepare and `checks`.
struct Boot<'a> {
    name: &'a str,
    cmdline: String,
    conf: Option<&'a str>,
    policy: Option<Vec<u8>>,
    checks: &'a str,
}

impl Boot<'_> {
    fn run(&self, disk: &DiskImage) -> Result<BootLog> {
        let kernel = Kernel::get()?;
        let f = fixtures();
        let dir = work();
        let db_cert = dir.join("db.der");
        std::fs::write(&db_cert, f.db.cert.der()).unwrap();
        let ovmf = Ovmf::system()?.with_db_certs(&[&db_cert])?;
        let scenario = format!(
            r#"
bed_run prepare /bin/sealroot-prepare
bed_value status "$(cat /run/sealroot/status.json)"
bed_value sysroot_mounts "$(grep -c ' /sysroot' /proc/mounts)"
bed_value policies "$(ls /sys/kernel/security/ipe/policies 2>&1)"
bed_value kmsg "$(dmesg | grep 'sealroot:')"
{checks}
if grep -q '"result": "mounted"' /run/sealroot/status.json; then
    cd / && umount -l /sysroot
fi
"#,
            checks = self.checks
        );
        let mut image = Initramfs::test(kernel, &scenario)?
            .load_modules(kernel, &["virtio_blk"])?
            .static_binaries(sealroot_testbed::static_binaries()?)
            .mount("/dev/vda", "/sysroot", "ext4", "")
            .dir("/etc/sealroot/certs.d", 0o755)
            .file(
                "/etc/sealroot/certs.d/trusted.der",
                f.trusted.cert.der().to_vec(),
                0o644,
            );
        if let Some(p) = &self.policy {
            image = image.dir("/etc/sealroot/ipe", 0o755).file(
                "/etc/sealroot/ipe/policy.p7s",
                p.clone(),
                0o644,
            );
        }
        if let Some(conf) = self.conf {
            image = image.file("/etc/sealroot/prepare.conf", conf, 0o644);
        }
        Vm::new(kernel, image)
            .name(self.name)
            .firmware(Firmware::Ovmf(ovmf))
            .cmdline(&self.cmdline)
            .timeout(std::time::Duration::from_secs(300))
            .disk(disk)
            .run()
    }
}

fn cmdline(d: &Deployed) -> String {
    format!("sealroot=sha256:{}", d.manifest_digest.to_hex())
}

fn status(log: &BootLog) -> Value {
    serde_json::from_str(log.value("status").unwrap())
        .unwrap_or_else(|e| panic!("status.json: {e}\n{}", log.value("status").unwrap()))
}

/// A refusal: exit code, the message, nothing mounted at /sysroot but the
/// physical root, no policy left loaded, the record says refused.
fn assert_refused(log: &BootLog, rc: i32, message: &str) -> Result<()> {
    log.result("prepare")?
        .assert_rc(rc)?
        .assert_stderr_contains(message)?;
    assert_eq!(log.value("sysroot_mounts")?, "1", "only the physical root");
    // No policy left loaded (no policies directory at all without IPE).
    let policies = log.value("policies")?;
    assert!(
        policies.is_empty() || policies.contains("No such file or directory"),
        "policy left loaded: {policies}"
    );
    let s = status(log);
    assert_eq!(s["result"], "refused");
    assert!(s["error"].as_str().unwrap().contains(message), "{s}");
    Ok(())
}

/// Programs (and kernel modules) run from the sealed root and the
/// initramfs; the same bytes copied to /var, the /etc upper directory or a
/// tmpfs are refused with EACCES, and IPE's audit record names the file and
/// the rule.
const ENFORCEMENT: &str = r#"
bed_run active cat /sys/kernel/security/ipe/policies/sealroot/active
bed_run enforce cat /sys/kernel/security/ipe/enforce
bed_run sealed /sysroot/bin/busybox echo sealed-runs
bed_run etc-lower /sysroot/etc/busybox echo etc-lower-runs
bed_run initramfs /bin/busybox echo initramfs-runs
cp /sysroot/bin/busybox /sysroot/var/bb-copy
bed_run var /sysroot/var/bb-copy echo copy-runs
cp /sysroot/bin/busybox /sysroot/etc/bb-copy
bed_run etc-upper /sysroot/etc/bb-copy echo copy-runs
cp /sysroot/bin/busybox /tmp/bb-copy
bed_run tmpfs /tmp/bb-copy echo copy-runs
printf '#!/sysroot/bin/busybox sh\necho script-runs\n' > /tmp/script.sh
chmod 755 /tmp/script.sh
bed_run script-exec /tmp/script.sh
bed_run script-interpreted /sysroot/bin/busybox sh /tmp/script.sh
bed_run mod-sealed insmod /sysroot/usr/lib/modules-test/loop.ko
bed_run mod-loaded grep -c '^loop ' /proc/modules
bed_run mod-unload rmmod loop
cp /sysroot/usr/lib/modules-test/loop.ko /tmp/loop.ko
bed_run mod-tmpfs insmod /tmp/loop.ko
bed_run mod-initramfs insmod /lib/modules/$(uname -r)/kernel/drivers/block/loop.ko
bed_value audit "$(dmesg | grep 'ipe_op=')"
bed_value activation "$(dmesg | grep 'new_active_pol_name=')"
"#;

fn assert_enforced(log: &BootLog) -> Result<()> {
    log.result("active")?.assert_ok()?.assert_stdout_eq("1")?;
    // The kernel's own record of the activation (AUDIT_IPE_CONFIG_CHANGE).
    let activation = log.value("activation")?;
    assert!(
        activation.contains("old_active_pol_name=?")
            && activation.contains("new_active_pol_name=\"sealroot\""),
        "{activation}"
    );
    log.result("enforce")?.assert_ok()?.assert_stdout_eq("1")?;
    log.result("sealed")?
        .assert_ok()?
        .assert_stdout_eq("sealed-runs\n")?;
    // A file of the image's /etc, through the /etc overlay over the
    // composefs overlay: IPE follows both to the signed object.
    log.result("etc-lower")?
        .assert_ok()?
        .assert_stdout_eq("etc-lower-runs\n")?;
    log.result("initramfs")?
        .assert_ok()?
        .assert_stdout_eq("initramfs-runs\n")?;
    for (name, path) in [
        ("var", "/sysroot/var/bb-copy"),
        ("etc-upper", "/sysroot/etc/bb-copy"),
        ("tmpfs", "/tmp/bb-copy"),
    ] {
        // busybox sh: exec failed with EACCES -> "Permission denied", 126.
        log.result(name)?
            .assert_rc(126)?
            .assert_stderr_contains("Permission denied")?;
        let audit = log.value("audit")?;
        assert!(
            audit.lines().any(|l| l.contains("ipe_op=EXECUTE")
                && l.contains("ipe_hook=BPRM_CHECK")
                && l.contains("enforcing=1")
                && l.contains(&format!("path=\"{path}\""))
                && l.contains("rule=\"DEFAULT op=EXECUTE action=DENY\"")),
            "no IPE audit record refusing {path}:\n{audit}"
        );
    }
    // A script outside the sealed root cannot be executed (IPE checks the
    // script itself at execve), but a signed interpreter reads it as data:
    // not enforced (docs/ipe.md).
    log.result("script-exec")?
        .assert_rc(126)?
        .assert_stderr_contains("Permission denied")?;
    log.result("script-interpreted")?
        .assert_ok()?
        .assert_stdout_eq("script-runs\n")?;
    // Kernel modules: from the sealed root (a signed object) and from the
    // initramfs they load; a copy on a tmpfs is refused (finit_module and
    // busybox's init_module fallback both).
    log.result("mod-sealed")?.assert_ok()?;
    log.result("mod-loaded")?.assert_stdout_eq("1\n")?;
    log.result("mod-unload")?.assert_ok()?;
    log.result("mod-tmpfs")?.assert_failed()?;
    let audit = log.value("audit")?;
    assert!(
        audit.lines().any(|l| l.contains("ipe_op=KMODULE")
            && l.contains("path=\"/tmp/loop.ko\"")
            && l.contains("rule=\"DEFAULT op=KMODULE action=DENY\"")),
        "no IPE audit record refusing /tmp/loop.ko:\n{audit}"
    );
    log.result("mod-initramfs")?.assert_ok()?;
    Ok(())
}

#[test]
fn policy_is_enforced_on_the_sealed_root() -> Result<()> {
    let f = fixtures();
    let (disk, d) = fixture("signed");
    let log = Boot {
        name: "ipe-enforced",
        cmdline: cmdline(&d),
        conf: Some("[ipe]\nrequired = yes\n"),
        policy: Some(signed_policy(&f.db, &[])),
        checks: ENFORCEMENT,
    }
    .run(&disk)?;
    log.result("prepare")?.assert_ok()?;
    assert_eq!(log.value("policies")?, "sealroot");
    let s = status(&log);
    assert_eq!(s["result"], "mounted");
    let ipe = &s["ipe"];
    assert_eq!(ipe["name"], "sealroot");
    assert_eq!(ipe["version"], "1.0.0");
    assert_eq!(ipe["active"], true);
    assert_eq!(ipe["enforcing"], true);
    assert_eq!(ipe["enforce_overridden"], false);
    assert_eq!(ipe["signer"]["subject"], "CN=ipe-db,O=sealroot tests");
    assert!(ipe["lsm"].as_str().unwrap().split(',').any(|m| m == "ipe"));
    assert!(
        ipe["objects"]
            .as_str()
            .unwrap()
            .starts_with("attached before this boot"),
        "{ipe}"
    );
    // The console line names policy, version and signer.
    log.assert_console_contains(
        "sealroot: IPE policy 'sealroot' 1.0.0 (signed by 'CN=ipe-db,O=sealroot tests'",
    )?;
    assert_enforced(&log)
}

#[test]
fn first_boot_attaches_object_signatures_and_overrides_ipe_enforce_0() -> Result<()> {
    let f = fixtures();
    let (disk, d) = fixture("first-boot");
    let log = Boot {
        name: "ipe-first-boot",
        // The command line may not weaken the policy.
        cmdline: format!("{} ipe.enforce=0", cmdline(&d)),
        conf: Some("[verify]\nattach-signatures = yes\n[ipe]\nrequired = yes\n"),
        policy: Some(signed_policy(&f.db, &["--policy-version", "3.1.4"])),
        checks: ENFORCEMENT,
    }
    .run(&disk)?;
    log.result("prepare")?.assert_ok()?;
    let s = status(&log);
    let objects = &s["objects_verity"];
    assert!(objects["signed"].as_u64().unwrap() >= 3, "{objects}");
    assert_eq!(objects["signed"], objects["enabled"], "{objects}");
    let ipe = &s["ipe"];
    assert_eq!(ipe["version"], "3.1.4");
    assert_eq!(ipe["enforce_overridden"], true);
    assert_eq!(ipe["enforcing"], true);
    assert!(
        ipe["objects"]
            .as_str()
            .unwrap()
            .starts_with("attached at this boot")
    );
    log.assert_console_contains("ipe.enforce=0 on the kernel command line was overridden")?;
    assert_enforced(&log)
}

#[test]
fn unsigned_policy_is_refused() -> Result<()> {
    let (disk, d) = fixture("signed");
    let dir = work();
    let text = dir.join("policy.ipe");
    sr_ok(&["ipe", "policy", "--out", text.to_str().unwrap()]);
    let text = std::fs::read(text).unwrap();
    // The kernel too: the same text written to new_policy directly.
    let checks = format!(
        "printf '%s' '{}' | base64 -d > /tmp/plain.ipe\n\
         bed_run kernel-plain sh -c 'cat /tmp/plain.ipe > /sys/kernel/security/ipe/new_policy'\n",
        base64(&text)
    );
    let log = Boot {
        name: "ipe-unsigned",
        cmdline: cmdline(&d),
        conf: None,
        policy: Some(text),
        checks: &checks,
    }
    .run(&disk)?;
    assert_refused(&log, 2, "not a signed IPE policy")?;
    // EBADMSG from the kernel: "Bad message".
    log.result("kernel-plain")?
        .assert_failed()?
        .assert_stderr_contains("Bad message")?;
    Ok(())
}

#[test]
fn policy_signed_by_a_key_not_in_db_is_refused() -> Result<()> {
    let (disk, d) = fixture("signed");
    let log = Boot {
        name: "ipe-rogue",
        cmdline: cmdline(&d),
        conf: None,
        policy: Some(signed_policy(&fixtures().rogue, &[])),
        checks: "",
    }
    .run(&disk)?;
    assert_refused(&log, 3, "the kernel refused the policy")?;
    log.result("prepare")?
        .assert_stderr_contains("ENOKEY")?
        .assert_stderr_contains("CN=ipe-rogue")?;
    Ok(())
}

#[test]
fn deployments_without_object_signatures_are_refused() -> Result<()> {
    let f = fixtures();
    for (name, message) in [
        (
            "no-object-signatures",
            "sealed without per-object signatures",
        ),
        ("detached", "\"signatures\": \"detached\""),
    ] {
        let (disk, d) = fixture(name);
        let log = Boot {
            name: &format!("ipe-{name}"),
            cmdline: cmdline(&d),
            conf: None,
            policy: Some(signed_policy(&f.db, &[])),
            checks: "",
        }
        .run(&disk)?;
        assert_refused(&log, 1, message)?;
    }
    Ok(())
}

#[test]
fn kernel_without_ipe_is_refused() -> Result<()> {
    // Debian's CONFIG_LSM without ipe: the command line switches IPE off.
    let (disk, d) = fixture("signed");
    let kernel = Kernel::get()?;
    let lsm = kernel
        .config_option("LSM")?
        .expect("CONFIG_LSM")
        .trim_matches('"')
        .split(',')
        .filter(|m| *m != "ipe")
        .collect::<Vec<_>>()
        .join(",");
    let log = Boot {
        name: "ipe-lsm-off",
        cmdline: format!("{} lsm={lsm}", cmdline(&d)),
        conf: None,
        policy: Some(signed_policy(&fixtures().db, &[])),
        checks: "",
    }
    .run(&disk)?;
    assert_refused(&log, 3, "the kernel does not enforce IPE (active LSMs: ")?;
    // What the kernel reports active (capability first, LSMs not built in
    // dropped), without ipe.
    assert!(log.value("policies")?.contains("No such file or directory"));
    let active = status(&log)["ipe"]["lsm"].as_str().unwrap().to_owned();
    assert!(
        !active.split(',').any(|m| m == "ipe") && active.contains("lockdown"),
        "{active}"
    );
    Ok(())
}

#[test]
fn required_policy_missing_from_the_initramfs_is_refused() -> Result<()> {
    let (disk, d) = fixture("signed");
    let log = Boot {
        name: "ipe-required-missing",
        cmdline: cmdline(&d),
        conf: Some("[ipe]\nrequired = yes\n"),
        policy: None,
        checks: "",
    }
    .run(&disk)?;
    assert_refused(&log, 2, "[ipe] required = yes")?;
    Ok(())
}

/// An inline-sealed image has no sealing artifact and so no object
/// signature bundle: with `[ipe] required = yes` it is refused before the
/// policy is loaded, and the message says why and what to do.
#[test]
fn ipe_required_refuses_an_inline_sealed_image() -> Result<()> {
    let (disk, d) = fixture("inline");
    let log = Boot {
        name: "ipe-inline",
        cmdline: cmdline(&d),
        conf: Some("[ipe]\nrequired = yes\n"),
        policy: Some(signed_policy(&fixtures().db, &[])),
        checks: "",
    }
    .run(&disk)?;
    assert_refused(&log, 1, "the image was sealed inline (no sealing artifact)")?;
    log.result("prepare")?
        .assert_stderr_contains("inline mode carries no per-object signatures")?
        .assert_stderr_contains("sealroot oci seal --object-signatures")?;
    Ok(())
}

/// `[boot] required = no` lets sealroot-prepare stand down when the
/// command line names no image, but not when the initramfs requires IPE:
/// the root would run without the policy. Refused (exit 2), no stand-down
/// marker (so the switch-root gate refuses too: `src/prepare/gate.rs`,
/// `stand_down_is_refused_when_ipe_is_required`).
#[test]
fn stand_down_is_refused_when_ipe_is_required() -> Result<()> {
    let (disk, _) = fixture("signed");
    let log = Boot {
        name: "ipe-stand-down",
        cmdline: String::new(),
        conf: Some("[boot]\nrequired = no\n[ipe]\nrequired = yes\n"),
        policy: Some(signed_policy(&fixtures().db, &[])),
        checks: "bed_run no-marker test ! -e /run/sealroot/stood-down\n",
    }
    .run(&disk)?;
    assert_refused(
        &log,
        2,
        "standing down would boot a root sealroot did not verify",
    )?;
    log.result("no-marker")?.assert_ok()?;
    Ok(())
}

fn base64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
