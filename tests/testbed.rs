//! Proves the VM test bed itself (tests/bed): boots, the result protocol,
//! disks, the time limit, OVMF with a db certificate, static binaries.
//! Each boot takes ~5 s (SeaBIOS) or ~10 s (OVMF) under TCG.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sealroot_testbed::{
    Error, Firmware, Initramfs, Kernel, KernelImage, MIB, Ovmf, Result, Vm, check_static,
    ext4_image, static_binaries,
};

/// One plain boot in each of two threads at once (one per kernel image): each gets its own
/// results, the kernel release matches the cached kernel, and values and
/// command results come back intact (including bytes the shell would mangle).
#[test]
fn two_plain_boots_in_parallel_report_results() -> Result<()> {
    let kernel = Kernel::get()?;
    let boot = |tag: &'static str, image: KernelImage| {
        std::thread::spawn(move || -> Result<()> {
            let scenario = format!(
                "bed_run hello echo hello from {tag}\n\
                 bed_value tag {tag}\n\
                 bed_value tricky \"$(printf 'a  b\\tc\\n\\\\x @@bed done - rc=9\\n')\"\n"
            );
            let log = Vm::new(kernel, Initramfs::test(kernel, &scenario)?)
                .name(&format!("parallel-{tag}"))
                .kernel_image(image)
                .run()?;
            log.result("hello")?
                .assert_ok()?
                .assert_stdout_eq(&format!("hello from {tag}\n"))?;
            assert_eq!(log.value("tag")?, tag);
            // Command substitution strips the final newline only.
            assert_eq!(log.value("tricky")?, "a  b\tc\n\\x @@bed done - rc=9");
            assert_eq!(log.release(), Some(kernel.release.as_str()));
            log.assert_scenario_ok()?;
            // Module loading is reported as results too.
            for module in kernel.modules() {
                log.result(&format!("bed:insmod:{}", module.name))?
                    .assert_ok()?;
            }
            Ok(())
        })
    };
    // One boots the vmlinux through PVH (the default), one the bzImage.
    let (a, b) = (
        boot("alpha", KernelImage::Pvh),
        boot("beta", KernelImage::BzImage),
    );
    a.join().expect("thread alpha")?;
    b.join().expect("thread beta")?;
    Ok(())
}

/// A failing command reports its exit code and stderr; assertion failures
/// name the result and show the console tail; `exit` in the scenario sets
/// the scenario's exit code without losing the results before it; a
/// chosen module set is loaded with its dependencies.
#[test]
fn failing_commands_report_rc_and_stderr() -> Result<()> {
    let kernel = Kernel::get()?;
    let scenario = r#"
bed_run missing cat /nonexistent
bed_run mixed sh -c 'echo out; echo err >&2; exit 3'
my_check() { echo "in a function"; return 5; }
bed_run function my_check
bed_run dmesg_tail sh -c 'dmesg | tail -n 3'
bed_log "console marker 7f3a"
exit 4
"#;
    // Loading only erofs also loads its dependency, and nothing else.
    let image = Initramfs::test(kernel, scenario)?.load_modules(kernel, &["erofs"])?;
    let log = Vm::new(kernel, image).run()?;
    let loaded: Vec<&str> = log
        .results()
        .commands
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(loaded[..2], ["bed:insmod:libcrc32c", "bed:insmod:erofs"]);
    assert!(log.result("bed:insmod:loop").is_err());
    log.result("missing")?
        .assert_rc(1)?
        .assert_stderr_contains("can't open '/nonexistent': No such file or directory")?;
    log.result("mixed")?
        .assert_rc(3)?
        .assert_stdout_eq("out\n")?
        .assert_stderr_contains("err")?;
    log.result("function")?
        .assert_rc(5)?
        .assert_stdout_eq("in a function\n")?;
    log.result("dmesg_tail")?.assert_ok()?;
    assert_eq!(log.done(), Some(&sealroot_testbed::Done::Rc(4)));
    log.assert_console_contains("[bed] console marker 7f3a")?;

    let err = log.result("missing")?.assert_ok().unwrap_err().to_string();
    for needle in [
        "result `missing`: expected rc=0, got rc=1",
        "command: cat /nonexistent",
        "No such file or directory",
        "--- console tail ---",
        "console marker 7f3a",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let err = log.assert_scenario_ok().unwrap_err().to_string();
    assert!(
        err.contains("expected the scenario to exit 0, got Some(Rc(4))"),
        "{err}"
    );
    Ok(())
}

/// An ext4 disk built from a host directory mounts in the VM with
/// fs-verity support; what the VM writes is read back on the host, and a
/// second boot on the same disk sees it (persistence).
#[test]
fn ext4_disk_round_trip_and_fsverity_keyring() -> Result<()> {
    let kernel = Kernel::get()?;
    let src = tempfile::tempdir().expect("tempdir");
    fs::create_dir(src.path().join("dir")).expect("mkdir");
    fs::write(src.path().join("dir/hello.txt"), "hello from the host\n").expect("write");
    let disk = ext4_image(src.path(), 32 * MIB)?;
    assert!(disk.ext4_features()?.iter().any(|f| f == "verity"));

    let first = r#"
bed_run read cat /mnt/disk/dir/hello.txt
bed_run keys cat /proc/keys
bed_run verity_feature cat /sys/fs/ext4/features/verity
bed_run mounts grep ' /mnt/disk ' /proc/mounts
bed_run write sh -c 'echo "written in boot 1" > /mnt/disk/dir/out.txt'
"#;
    let log = Vm::new(kernel, Initramfs::test(kernel, first)?.mount_disk())
        .disk(&disk)
        .name("ext4-boot-1")
        .run()?;
    log.result("read")?
        .assert_ok()?
        .assert_stdout_eq("hello from the host\n")?;
    log.result("keys")?
        .assert_ok()?
        .assert_stdout_contains(".fs-verity")?;
    log.result("verity_feature")?
        .assert_ok()?
        .assert_stdout_eq("supported\n")?;
    log.result("mounts")?
        .assert_ok()?
        .assert_stdout_contains("/dev/vda /mnt/disk ext4 rw")?;
    log.result("write")?.assert_ok()?;

    // Read back on the host: the init unmounted cleanly.
    disk.fsck()?;
    assert_eq!(disk.read_to_string("/dir/out.txt")?, "written in boot 1\n");
    assert_eq!(disk.list_dir("/dir")?, ["hello.txt", "out.txt"]);

    let second = "bed_run read_again cat /mnt/disk/dir/out.txt\n";
    let log = Vm::new(kernel, Initramfs::test(kernel, second)?.mount_disk())
        .disk(&disk)
        .name("ext4-boot-2")
        .run()?;
    log.result("read_again")?
        .assert_ok()?
        .assert_stdout_eq("written in boot 1\n")?;
    Ok(())
}

/// A VM that does not finish is killed at the time limit, and the error
/// shows the console tail (here: the scenario's last words). The limit is
/// calibrated on a plain boot first, so a loaded machine (TCG is CPU-bound)
/// cannot make the VM time out before it reaches the scenario.
#[test]
fn timeout_kills_the_vm_and_shows_the_console_tail() -> Result<()> {
    let kernel = Kernel::get()?;
    let calibration = Vm::new(kernel, Initramfs::test(kernel, "")?)
        .name("timeout-calibration")
        .run()?;
    let limit = calibration.elapsed * 2 + Duration::from_secs(10);
    let scenario = "bed_log 'about to hang: marker c0ffee'\nsleep 600\n";
    let started = Instant::now();
    let err = Vm::new(kernel, Initramfs::test(kernel, scenario)?)
        .timeout(limit)
        .run()
        .expect_err("the scenario sleeps for 10 minutes: the VM must time out");
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("timed out after {:.1} s", limit.as_secs_f64())),
        "{msg}"
    );
    assert!(msg.contains("about to hang: marker c0ffee"), "{msg}");
    assert!(
        elapsed < limit + Duration::from_secs(10),
        "killing took too long: {elapsed:?}"
    );
    Ok(())
}

/// A kernel panic (here: /init exits) ends the VM early: `run_unchecked`
/// returns the log, and the check `run` applies names the problem and
/// shows the panic.
#[test]
fn dead_init_is_reported_as_incomplete() -> Result<()> {
    let kernel = Kernel::get()?;
    let image = Initramfs::test(kernel, "")?.file(
        "/init",
        "#!/bin/sh\necho 'init exiting now'\nexit 7\n",
        0o755,
    );
    let log = Vm::new(kernel, image).run_unchecked()?;
    log.assert_console_contains("init exiting now")?;
    assert_eq!(log.done(), None);
    // What `Vm::run` does with such a boot:
    let err = log
        .require_done()
        .expect_err("init exited: the scenario never finished");
    let msg = err.to_string();
    assert!(matches!(err, Error::Incomplete { .. }), "{msg}");
    assert!(msg.contains("no `@@bed done` line"), "{msg}");
    assert!(msg.contains("Attempted to kill init"), "{msg}");
    Ok(())
}

/// UEFI boot (OVMF, kernel via -kernel) with a throwaway certificate
/// enrolled in db: Linux loads it into the .platform keyring.
#[test]
fn ovmf_boot_loads_db_certificate_into_platform_keyring() -> Result<()> {
    let kernel = Kernel::get()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let cn = format!("sealroot testbed db {}", std::process::id());
    let cert = make_cert(dir.path(), &cn);
    let ovmf = Ovmf::system()?.with_db_certs(&[&cert])?;
    let scenario = r#"
bed_run keys cat /proc/keys
bed_run uefi_dmesg sh -c 'dmesg | grep -E "integrity|UEFI:db|platform"'
bed_run efi test -d /sys/firmware/efi
"#;
    let log = Vm::new(kernel, Initramfs::test(kernel, scenario)?)
        .firmware(Firmware::Ovmf(ovmf))
        .run()?;
    log.result("efi")?.assert_ok()?;
    // OVMF writes to every serial port, the result channel included; the
    // start line must still parse.
    assert_eq!(log.release(), Some(kernel.release.as_str()));
    // The .platform keyring exists and holds one key; the key is ours.
    log.result("keys")?
        .assert_ok()?
        .assert_stdout_contains("keyring   .platform: 1")?
        .assert_stdout_contains(&format!("asymmetri {cn}: "))?;
    // load_uefi.c logs where it came from and that it was loaded.
    log.result("uefi_dmesg")?
        .assert_ok()?
        .assert_stdout_contains("Loading X.509 certificate: UEFI:db")?
        .assert_stdout_contains(&format!("Loaded X.509 cert '{cn}"))?;
    Ok(())
}

/// `sealroot` and `sealroot-prepare` are built static and run in the VM.
#[test]
fn static_binaries_run_in_the_vm() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    check_static(&bins.sealroot)?;
    check_static(&bins.sealroot_prepare)?;
    let scenario =
        "bed_run version /bin/sealroot --version\nbed_run prepare /bin/sealroot-prepare\n";
    let image = Initramfs::test(kernel, scenario)?.static_binaries(bins);
    let log = Vm::new(kernel, image).run()?;
    log.result("version")?
        .assert_ok()?
        .assert_stdout_eq(&format!("sealroot {}\n", env!("CARGO_PKG_VERSION")))?;
    // It ran (a missing or non-executable binary gives 127/126 and "not found").
    let prepare = log.result("prepare")?;
    assert!(
        ![126, 127].contains(&prepare.rc) && !prepare.stderr.contains("not found"),
        "sealroot-prepare did not execute: rc={} stderr={}",
        prepare.rc,
        prepare.stderr
    );
    Ok(())
}

/// A self-signed certificate with a throwaway RSA key:
/// `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=...`.
fn make_cert(dir: &Path, cn: &str) -> std::path::PathBuf {
    let cert = dir.join("cert.pem");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed (scripts/install-deps)");
    assert!(status.success(), "openssl req failed");
    cert
}
