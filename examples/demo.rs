//! The sealroot demonstration (README, "Try it"; run by `scripts/demo`).
//!
//! Seals a small sample OS image and boots it on a real kernel (Debian's
//! 6.12 cloud kernel in QEMU, from the VM test bed, `tests/bed`), the way a
//! user would, with the same commands:
//!
//! 1. a sample OS tree (busybox, an init, `/etc/os-release`) becomes an OCI
//!    image layout (`mkosi/mkosi.finalize --oci-from-tree`);
//! 2. `sealroot keygen` makes a throwaway CA and signing certificate;
//! 3. `sealroot oci seal` signs the image, `sealroot oci verify` checks it;
//! 4. an installer VM loads the certificate into `.fs-verity` and runs
//!    `sealroot deploy` onto an ext4 disk image (the kernel enables fs-verity
//!    with builtin signatures; this host cannot);
//! 5. the sealed boot: an initramfs mounts the disk at `/sysroot`, runs
//!    `sealroot-prepare` (certificate in `/etc/sealroot/certs.d/`) and
//!    switches root into the sealed image, whose init reports what it sees
//!    and `/run/sealroot/status.json`;
//! 6. one byte of one object on the disk is changed: the boot still mounts
//!    (objects are checked when read), reading that file fails with EIO;
//! 7. one byte of the merged EROFS image is changed: `sealroot-prepare`
//!    refuses, and the machine never leaves the initramfs.
//!
//! Every step checks its outcome; the exit status is non-zero when any
//! expectation fails. The work directory (default `target/demo`) is kept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sealroot_testbed::{
    BootLog, DiskImage, Initramfs, Kernel, MIB, StaticBins, Vm, host, static_binaries,
};
use serde_json::Value;

/// The sealed image's tag in the OCI layout.
const TAG: &str = "demo";

/// The file whose object step 6 alters (over 64 bytes, so it is an object
/// in the store and not inlined into the EROFS).
const MESSAGE_PATH: &str = "usr/share/demo/message.txt";
const MESSAGE: &str = "Hello from the sealed root.\n\
This file is not in the EROFS image: the image names its fs-verity digest,\n\
and overlayfs (verity=require) serves it from the object store, checking\n\
every block against that digest as it is read.\n";

fn main() {
    if let Err(err) = run() {
        eprintln!("\ndemo FAILED: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let work = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => host::workspace_root().join("target/demo"),
    };
    let started = Instant::now();
    println!("sealroot demo: seal an OS image and boot it on a real kernel");
    println!("work directory: {} (kept afterwards)", work.display());
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot empty the work directory {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;

    step("0. Tools");
    let kernel = Kernel::get()?;
    note(&format!(
        "kernel: Linux {} ({} {})",
        kernel.release, kernel.package, kernel.package_version
    ));
    note("building the static sealroot and sealroot-prepare (the first time: a few minutes)...");
    let bins = static_binaries()?;
    let sealroot = bins.sealroot.as_path();
    note(&format!(
        "sealroot (host tool): {}\n  sealroot-prepare (initramfs): {} bytes, static",
        sealroot.display(),
        std::fs::metadata(&bins.sealroot_prepare)?.len()
    ));

    step("1. A sample OS image");
    let tree = work.join("tree");
    write_sample_os(&tree)?;
    let phys = work.join("disk");
    let layout = phys.join("oci");
    std::fs::create_dir_all(&phys)?;
    show(
        Command::new(host::workspace_root().join("mkosi/mkosi.finalize"))
            .arg("--oci-from-tree")
            .arg(&tree)
            .arg(&layout)
            .arg(TAG),
    )?;
    let image = format!("oci:{}:{TAG}", layout.display());
    note(&format!(
        "{} files and directories, one layer: {image}",
        count_entries(&tree)
    ));

    step("2. Throwaway keys");
    let keys = work.join("keys");
    show(
        Command::new(sealroot)
            .args(["keygen", "--type", "p256", "--out-dir"])
            .arg(&keys)
            .args(["--subject", "CN=sealroot demo signer"]),
    )?;
    let (key, cert) = find_keys(&keys)?;

    step("3. Seal the image, then verify it offline");
    show(
        Command::new(sealroot)
            .args(["oci", "seal", &image, "--key"])
            .arg(&key)
            .arg("--cert")
            .arg(&cert),
    )?;
    show(
        Command::new(sealroot)
            .args(["oci", "verify", &image, "--cert"])
            .arg(&cert),
    )?;

    step("4. Deploy onto a disk image (inside a VM: the kernel enables fs-verity)");
    std::fs::copy(&cert, phys.join("signer.crt.pem"))?;
    let disk = DiskImage::ext4_at(&work.join("disk.ext4"), Some(&phys), 64 * MIB)?;
    let deployed = install(kernel, bins, &disk)?;
    let kernel_arg = deployed["kernel_cmdline"]
        .as_str()
        .context("`sealroot deploy --json` printed no kernel_cmdline")?
        .to_owned();
    let erofs = deployed["deployment"]["image"]
        .as_str()
        .or_else(|| deployed["image"].as_str())
        .map(|s| s.trim_start_matches("sha256:").to_owned())
        .context("`sealroot deploy --json` printed no EROFS image digest")?;
    note(&format!(
        "deployed to {} (fs-verity on every object; signatures: {})",
        disk.path().display(),
        deployed["deployment"]["signatures"].as_str().unwrap_or("?")
    ));
    note(&format!("kernel command line: {kernel_arg}"));

    step("5. Boot the sealed root");
    let certs = std::fs::read(&cert)?;
    let log = boot(kernel, bins, &disk, &kernel_arg, &certs, "demo-boot")?;
    print_console(&log);
    let status: Value = serde_json::from_str(log.value("status")?)
        .context("the sealed system printed no /run/sealroot/status.json")?;
    ensure!(
        status["result"] == "mounted",
        "sealroot-prepare did not mount the root: {status:#}"
    );
    ensure!(
        log.console()
            .contains("demo| message.txt: Hello from the sealed root."),
        "the sealed system could not read its own files"
    );
    ensure!(
        log.console().contains("demo| /usr is read-only"),
        "the sealed root is writable"
    );
    summarize(&status);

    step("6. Alter one byte of one object on the disk, boot again");
    let object = object_path(sealroot, &tree.join(MESSAGE_PATH))?;
    let altered = disk.copy_to(&work.join("disk-altered-object.ext4"))?;
    let at = altered.corrupt_byte(&format!("/sealroot/{object}"), 7)?;
    note(&format!(
        "flipped the byte at offset {at} of {}: sealroot/{object} (= /{MESSAGE_PATH})",
        altered.path().display()
    ));
    let log = boot(kernel, bins, &altered, &kernel_arg, &certs, "demo-object")?;
    print_console(&log);
    ensure!(
        log.console()
            .contains("demo| reading /usr/share/demo/message.txt failed"),
        "the altered object was read without an error"
    );
    note(
        "=> the root mounts (objects are verified when read), but the altered file cannot be read",
    );

    step("7. Alter one byte of the signed EROFS image, boot again");
    let altered = disk.copy_to(&work.join("disk-altered-erofs.ext4"))?;
    let at = altered.corrupt_byte(&format!("/sealroot/images/{erofs}"), 1100)?;
    note(&format!(
        "flipped the byte at offset {at} of {}: sealroot/images/{erofs}",
        altered.path().display()
    ));
    let log = boot(kernel, bins, &altered, &kernel_arg, &certs, "demo-erofs")?;
    print_console(&log);
    ensure!(
        log.value("prepare_rc").is_ok_and(|rc| rc == "1"),
        "sealroot-prepare did not refuse the altered EROFS image (exit 1)"
    );
    ensure!(
        log.console().contains("(altered on disk)"),
        "sealroot-prepare's refusal does not say the image was altered"
    );
    ensure!(
        !log.console().contains("demo| booted:"),
        "the altered image was booted"
    );
    note("=> sealroot-prepare refused; nothing was mounted, the machine stayed in the initramfs");

    println!(
        "\ndemo passed in {:.0} s. Console logs: {}; the disk images are in {}.",
        started.elapsed().as_secs_f64(),
        host::cache_subdir("logs")?.display(),
        work.display()
    );
    Ok(())
}

/// The sample OS: busybox, an init that reports what it sees, os-release,
/// and the directories `sealroot-prepare` mounts onto.
fn write_sample_os(tree: &Path) -> Result<()> {
    let busybox = sealroot_testbed::initramfs::busybox()?;
    let write = |rel: &str, contents: &[u8], mode: u32| -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = tree.join(rel);
        std::fs::create_dir_all(path.parent().unwrap_or(tree))?;
        std::fs::write(&path, contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    write("bin/busybox", &std::fs::read(&busybox.path)?, 0o755)?;
    for applet in [
        "sh", "cat", "echo", "grep", "mount", "touch", "base64", "poweroff", "head",
    ] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet))?;
    }
    write("sbin/init", SEALED_INIT.as_bytes(), 0o755)?;
    write(
        "etc/os-release",
        b"NAME=\"sealroot demo OS\"\nID=sealroot-demo\nVERSION_ID=1\n\
          PRETTY_NAME=\"sealroot demo OS 1 (busybox)\"\n",
        0o644,
    )?;
    write("etc/hostname", b"sealed\n", 0o644)?;
    write(MESSAGE_PATH, MESSAGE.as_bytes(), 0o644)?;
    write("var/lib/demo/state", b"first boot\n", 0o644)?;
    for dir in ["proc", "sys", "dev", "run", "tmp", "sysroot", "mnt"] {
        std::fs::create_dir_all(tree.join(dir))?;
    }
    Ok(())
}

/// `/sbin/init` of the sealed image: reports on the console (`demo| `) and
/// hands `/run/sealroot/status.json` to the host over the bed's result
/// channel (`/dev/ttyS1`, see tests/bed/src/bed.sh).
const SEALED_INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "demo| $*"; }
. /etc/os-release
say "booted: $PRETTY_NAME; PID 1 is /sbin/init from the sealed image"
say "root: $(grep ' / ' /proc/mounts | head -n 1)"
if err=$(touch /usr/probe 2>&1); then say "/usr is WRITABLE"; else say "/usr is read-only ($err)"; fi
if msg=$(head -n 1 /usr/share/demo/message.txt 2>&1); then
    say "message.txt: $msg"
else
    say "reading /usr/share/demo/message.txt failed: $msg"
fi
emit() { printf '@@bed value %s value=b64:%s\n' "$1" "$(base64 -w 0 "$2")" >>/dev/ttyS1; }
emit status /run/sealroot/status.json
printf '@@bed done - rc=0\n' >>/dev/ttyS1
poweroff -f
"#;

/// The initramfs's `/init`: physical root at /sysroot, `sealroot-prepare`,
/// switch root (with `/run`, which holds the status record).
const INITRAMFS_INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
insmod /lib/modules/$(uname -r)/@VIRTIO_BLK@
mkdir -p /sysroot
mount -t ext4 /dev/vda /sysroot
/bin/sealroot-prepare
rc=$?
if [ $rc = 0 ]; then
    mount --move /run /sysroot/run
    exec switch_root /sysroot /sbin/init
fi
echo "demo| sealroot-prepare exited $rc: the boot stops in the initramfs"
printf '@@bed value prepare_rc value=b64:%s\n' "$(echo -n $rc | base64 -w 0)" >>/dev/ttyS1
printf '@@bed done - rc=0\n' >>/dev/ttyS1
poweroff -f
"#;

/// Step 4: in a VM with the disk at /mnt/disk, load the certificate into
/// `.fs-verity` and deploy; returns `sealroot deploy --json`'s report.
fn install(kernel: &'static Kernel, bins: &StaticBins, disk: &DiskImage) -> Result<Value> {
    let script = r#"
bed_run keyring /bin/sealroot keyring add /mnt/disk/signer.crt.pem || exit 1
bed_run deploy /bin/sealroot deploy oci:/mnt/disk/oci:demo --sysroot /mnt/disk \
    --cert /mnt/disk/signer.crt.pem --json || exit 1
rm -rf /mnt/disk/oci /mnt/disk/signer.crt.pem
"#;
    println!("  (VM) $ sealroot keyring add signer.crt.pem");
    println!(
        "  (VM) $ sealroot deploy oci:/mnt/disk/oci:{TAG} --sysroot /mnt/disk --cert signer.crt.pem"
    );
    let image = Initramfs::test(kernel, script)?
        .load_modules(kernel, &["virtio_blk"])?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .name("demo-install")
        .disk(disk)
        .timeout(Duration::from_secs(300))
        .run()?;
    log.assert_scenario_ok()?;
    let deploy = log.result("deploy")?.assert_ok()?;
    disk.fsck()?;
    serde_json::from_str(&deploy.stdout)
        .with_context(|| format!("`sealroot deploy --json` printed:\n{}", deploy.stdout))
}

/// Steps 5-7: boots the disk through `sealroot-prepare`.
fn boot(
    kernel: &'static Kernel,
    bins: &StaticBins,
    disk: &DiskImage,
    kernel_arg: &str,
    cert_pem: &[u8],
    name: &str,
) -> Result<BootLog> {
    let virtio_blk = kernel
        .modules()
        .iter()
        .find(|m| m.name == "virtio_blk")
        .context("the test bed kernel has no virtio_blk module")?
        .rel_path(sealroot_testbed::ModuleForm::Plain);
    let image = Initramfs::test(kernel, "")?
        .static_binaries(bins)
        .file(
            "/init",
            INITRAMFS_INIT.replace("@VIRTIO_BLK@", &virtio_blk),
            0o755,
        )
        .dir("/etc/sealroot/certs.d", 0o755)
        .file(
            "/etc/sealroot/certs.d/demo-signer.pem",
            cert_pem.to_vec(),
            0o644,
        );
    println!(
        "  $ qemu-system-x86_64 -kernel vmlinuz -initrd <sealroot-prepare + certificate> -append '{kernel_arg}'"
    );
    let log = Vm::new(kernel, image)
        .name(name)
        .cmdline(kernel_arg)
        .disk(disk)
        .timeout(Duration::from_secs(180))
        .run_unchecked()?;
    if log.done().is_none() {
        bail!(
            "the VM did not finish; console tail:\n{}",
            log.console_tail(40)
        );
    }
    Ok(log)
}

/// What a newcomer wants from the console: `sealroot-prepare`'s lines, the
/// sealed system's report, and fs-verity's complaints.
/// A line the kernel log and stderr both brought to the console is shown
/// once.
fn print_console(log: &BootLog) {
    let mut last = "";
    for line in log.console().lines() {
        // Kernel log lines carry a "[    5.123456] " timestamp.
        let text = match line.find("] ") {
            Some(i) if line.starts_with('[') => &line[i + 2..],
            _ => line,
        };
        let text = text.trim_end();
        if text == last {
            continue;
        }
        last = text;
        if let Some(report) = text.strip_prefix("demo| ") {
            println!("  | {report}");
        } else if text.starts_with("sealroot:") || text.contains("FILE CORRUPTED") {
            println!("  > {text}");
        }
    }
}

/// The audit record, summarized.
fn summarize(status: &Value) {
    let image = &status["image"];
    let files = &image["files"];
    println!(
        "  verified ({} signatures):",
        status["verification"].as_str().unwrap_or("?")
    );
    for role in ["manifest", "config", "erofs"] {
        let f = &files[role];
        let digest = match role {
            "erofs" => image["erofs"].as_str(),
            _ => image[role].as_str(),
        }
        .unwrap_or("?");
        println!(
            "    {role:<8} {digest}\n             signed by {} (certificate {}, {})",
            f["signer"]["subject"].as_str().unwrap_or("?"),
            f["signer"]["fingerprint"].as_str().unwrap_or("?"),
            f["signer"]["key"].as_str().unwrap_or("?"),
        );
    }
    println!(
        "  keyring .fs-verity sealed ({}); /etc {}, /var {}",
        status["keyring"]["sealed"].as_str().unwrap_or("?"),
        status["mount"]["etc"].as_str().unwrap_or("?"),
        status["mount"]["var"].as_str().unwrap_or("?"),
    );
    let t = &status["timings_us"];
    let ms = |k: &str| {
        t[k].as_u64()
            .map_or("?".into(), |us| format!("{:.1}", us as f64 / 1000.0))
    };
    println!(
        "  sealroot-prepare took {} ms under QEMU TCG (modules {}, keyring {}, verify {}, mount {})",
        ms("total"),
        ms("modules"),
        ms("keyring"),
        ms("verify"),
        ms("mount")
    );
}

/// Runs a command the way the user would, showing it and its output.
fn show(cmd: &mut Command) -> Result<String> {
    println!("  $ {}", pretty_command(cmd));
    let out = host::run(cmd, None)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in text
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        println!("    {line}");
    }
    Ok(text)
}

/// The command with the program's file name only (the static build's path
/// is long and says nothing).
fn pretty_command(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let program = if program == "mkosi.finalize" {
        "mkosi/mkosi.finalize".to_owned()
    } else {
        program
    };
    std::iter::once(program)
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn note(text: &str) {
    println!("  {text}");
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                1 + if e.file_type().is_ok_and(|t| t.is_dir()) {
                    count_entries(&e.path())
                } else {
                    0
                }
            })
            .sum()
    })
}

/// The signing key and certificate `sealroot keygen` wrote.
fn find_keys(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let key = dir.join("signer.key.pem");
    let cert = dir.join("signer.crt.pem");
    ensure!(
        key.is_file() && cert.is_file(),
        "sealroot keygen did not write {} and {}",
        key.display(),
        cert.display()
    );
    Ok((key, cert))
}

/// `objects/XX/rest` of a file, by its fs-verity digest (`sealroot digest`).
fn object_path(sealroot: &Path, file: &Path) -> Result<String> {
    let out = host::run(
        Command::new(sealroot)
            .args(["digest", "--compact"])
            .arg(file),
        None,
    )?;
    let hex = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ensure!(hex.len() == 64, "sealroot digest printed {hex:?}");
    Ok(format!("objects/{}/{}", &hex[..2], &hex[2..]))
}
