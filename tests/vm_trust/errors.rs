//! Every failure path of the fs-verity ioctls that `sealroot` explains,
//! produced on the real kernel: the errno it names and the explanation it
//! gives (src/verity/ioctl.rs), and the exit status.

use std::process::Command;

use sealroot_testbed::{DiskImage, Result};

use super::fixtures::{data, run};
use super::scenario::{
    DISK, Script, assert_enable_refused, assert_kernel_errno, boot_with, disk_from,
};

/// A second ext4 disk made WITHOUT `-O verity`:
/// `mkfs.ext4 -q -F -b 4096 -E root_owner=0:0 -d DIR IMAGE`.
fn ext4_without_verity(dir: &std::path::Path, image: &std::path::Path) -> DiskImage {
    let file = std::fs::File::create(image).unwrap();
    file.set_len(16 << 20).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096", "-E", "root_owner=0:0", "-d"])
        .arg(dir)
        .arg(image));
    let disk = DiskImage::open(image);
    assert!(
        !disk.ext4_features().unwrap().iter().any(|f| f == "verity"),
        "mkfs.ext4 enabled verity by default"
    );
    disk
}

/// Sets EXT4_APPEND_FL (0x20, `chattr +a`; busybox here has no chattr) on
/// a file of the unmounted image: `debugfs -w -R 'set_inode_field PATH flags
/// FLAGS'`, keeping the flags it has.
fn set_append_only(disk: &DiskImage, path: &str) {
    let stat = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat {path}"))
        .arg(disk.path()));
    let text = String::from_utf8_lossy(&stat.stdout);
    let flags = text
        .split("Flags: 0x")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("debugfs stat {path}: no flags in {text}"));
    run(Command::new("debugfs")
        .arg("-w")
        .arg("-R")
        .arg(format!("set_inode_field {path} flags {:#x}", flags | 0x20))
        .arg(disk.path()));
}

#[test]
fn kernel_errors_are_named_and_explained() -> Result<()> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("disk");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::create_dir_all(src.join("ro")).unwrap();
    for (i, name) in [
        "twice", "busy", "bigblock", "plain", "unsigned", "ro/file", "append",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(src.join(name), data(10_000, i as u64)).unwrap();
    }
    let other = tmp.path().join("noverity");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("file"), "on a filesystem without verity\n").unwrap();

    let mut s = Script::new();
    s.sealroot("enable-once", format!("enable {DISK}/twice"));
    s.sealroot("enable-twice", format!("enable {DISK}/twice"));
    s.run(
        "write-verity-file",
        format!("sh -c 'echo more >> {DISK}/twice'"),
    );
    // A writable descriptor held open while enabling.
    s.line(format!(
        "hold_writer() {{ exec 3>>{DISK}/busy; /bin/sealroot enable {DISK}/busy; }}"
    ));
    s.run("enable-while-open-for-writing", "hold_writer");
    s.sealroot("enable-after-writer-closed", format!("enable {DISK}/busy"));
    s.sealroot(
        "block-size-64k",
        format!("enable --block-size=65536 {DISK}/bigblock"),
    );
    s.sealroot("enable-directory", format!("enable {DISK}/dir"));
    // append-only (set on the host, see `set_append_only`).
    s.run("truncate-append-only", format!("sh -c ': > {DISK}/append'"));
    s.sealroot("enable-append-only", format!("enable {DISK}/append"));
    s.sealroot("measure-plain", format!("measure {DISK}/plain"));
    s.sealroot(
        "dump-descriptor-plain",
        format!("dump-metadata descriptor {DISK}/plain"),
    );
    s.sealroot(
        "show-signature-plain",
        format!("show-signature {DISK}/plain"),
    );
    s.sealroot("enable-unsigned", format!("enable {DISK}/unsigned"));
    s.sealroot(
        "show-signature-unsigned",
        format!("show-signature {DISK}/unsigned"),
    );
    s.sealroot(
        "dump-signature-unsigned",
        format!("dump-metadata signature {DISK}/unsigned"),
    );
    // tmpfs does not implement fs-verity at all.
    s.line("echo tmpfs > /tmp/file");
    s.sealroot("enable-tmpfs", "enable /tmp/file");
    s.sealroot("measure-tmpfs", "measure /tmp/file");
    // A read-only bind mount of a verity-capable ext4.
    s.line(format!(
        "mkdir -p /mnt/ro && mount --bind {DISK}/ro /mnt/ro && mount -o remount,bind,ro /mnt/ro"
    ));
    s.run("ro-mounted", "grep -F ' /mnt/ro ' /proc/mounts");
    s.sealroot("enable-read-only", "enable /mnt/ro/file");
    s.line("umount /mnt/ro");
    // ext4 without the verity feature.
    s.sealroot("enable-no-verity-feature", "enable /mnt/noverity/file");
    s.sealroot("measure-no-verity-feature", "measure /mnt/noverity/file");
    s.dmesg();

    let disk = disk_from(&src)?;
    set_append_only(&disk, "/append");
    let noverity = ext4_without_verity(&other, &tmp.path().join("noverity.ext4"));
    let log = boot_with("vm-trust-errors", &s, &[&disk, &noverity], |image| {
        image.mount("/dev/vdb", "/mnt/noverity", "ext4", "")
    })?;

    log.result("enable-once")?.assert_ok()?;
    assert_enable_refused(&log, "enable-twice", "EEXIST")?
        .assert_stderr_contains("already has fs-verity enabled")?;
    log.result("write-verity-file")?
        .assert_rc(1)?
        .assert_stderr_contains("Operation not permitted")?;
    assert_enable_refused(&log, "enable-while-open-for-writing", "ETXTBSY")?
        .assert_stderr_contains("open for writing")?;
    log.result("enable-after-writer-closed")?.assert_ok()?;
    assert_enable_refused(&log, "block-size-64k", "EINVAL")?
        .assert_stderr_contains("must not exceed the page size")?;
    assert_enable_refused(&log, "enable-directory", "EISDIR")?;
    log.result("truncate-append-only")?
        .assert_rc(1)?
        .assert_stderr_contains("Operation not permitted")?;
    assert_enable_refused(&log, "enable-append-only", "EPERM")?
        .assert_stderr_contains("append-only")?;
    assert_kernel_errno(&log, "measure-plain", "FS_IOC_MEASURE_VERITY", "ENODATA")?
        .assert_stderr_contains("does not have fs-verity enabled")?;
    assert_kernel_errno(
        &log,
        "dump-descriptor-plain",
        "FS_IOC_READ_VERITY_METADATA (descriptor)",
        "ENODATA",
    )?;
    assert_kernel_errno(
        &log,
        "show-signature-plain",
        "FS_IOC_READ_VERITY_METADATA (signature)",
        "ENODATA",
    )?;
    log.result("enable-unsigned")?.assert_ok()?;
    log.result("show-signature-unsigned")?
        .assert_rc(3)?
        .assert_stderr_contains("has fs-verity but no builtin signature")?;
    assert_kernel_errno(
        &log,
        "dump-signature-unsigned",
        "FS_IOC_READ_VERITY_METADATA (signature)",
        "ENODATA",
    )?
    .assert_stderr_contains("no builtin signature")?;
    assert_enable_refused(&log, "enable-tmpfs", "ENOTTY")?
        .assert_stderr_contains("does not implement fs-verity")?;
    assert_kernel_errno(&log, "measure-tmpfs", "FS_IOC_MEASURE_VERITY", "ENOTTY")?;
    log.result("ro-mounted")?
        .assert_ok()?
        .assert_stdout_contains(" ro,")?;
    assert_enable_refused(&log, "enable-read-only", "EROFS")?
        .assert_stderr_contains("mounted read-only")?;
    assert_enable_refused(&log, "enable-no-verity-feature", "EOPNOTSUPP")?
        .assert_stderr_contains("lacks the 'verity' feature")?;
    assert_kernel_errno(
        &log,
        "measure-no-verity-feature",
        "FS_IOC_MEASURE_VERITY",
        "EOPNOTSUPP",
    )?;
    Ok(())
}
