//! A builtin signature is checked again whenever the file's verity metadata
//! is loaded (first open after boot): on a second boot without its
//! certificate the file cannot be opened. `fs.verity.require_signatures`
//! extends that to verity files without a signature.

use sealroot_testbed::Result;

use super::fixtures::{Pki, data, our_digest, sign};
use super::scenario::{
    DISK, Script, assert_dmesg_contains, assert_enable_refused, boot, disk_from,
};

const SYSCTL: &str = "/proc/sys/fs/verity/require_signatures";

#[test]
fn signed_file_opens_only_while_its_certificate_is_loaded() -> Result<()> {
    let pki = Pki::get();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("disk");
    std::fs::create_dir_all(&src).unwrap();
    let signer = pki.signer("rsa2048");
    std::fs::copy(&signer.cert, src.join("signer.pem")).unwrap();
    std::fs::copy(pki.signer("p256").cert, src.join("other.pem")).unwrap();
    let signed = src.join("signed");
    std::fs::write(&signed, data(50_000, 1)).unwrap();
    sign(&signed, &src.join("signed.sig"), &signer, false, &[]);
    std::fs::write(src.join("unsigned"), data(7000, 2)).unwrap();
    std::fs::write(src.join("plain"), "no verity here\n").unwrap();
    std::fs::write(src.join("plain2"), "no verity here either\n").unwrap();
    let digest = our_digest(&signed, &[]);
    let disk = disk_from(&src)?;

    // Boot 1: the certificate is loaded; both files get verity.
    let mut s = Script::new();
    s.sealroot("add", format!("keyring add {DISK}/signer.pem"));
    s.sealroot(
        "enable-signed",
        format!("enable --signature={DISK}/signed.sig {DISK}/signed"),
    );
    s.sealroot("enable-unsigned", format!("enable {DISK}/unsigned"));
    s.run("read-signed", format!("cat {DISK}/signed"));
    let log = boot("vm-trust-persist-1", &s, &[&disk])?;
    log.result("add")?.assert_ok()?;
    log.result("enable-signed")?.assert_ok()?;
    log.result("enable-unsigned")?.assert_ok()?;
    log.result("read-signed")?.assert_ok()?;

    // Boot 2, same disk, nothing loaded into .fs-verity.
    let mut s = Script::new();
    s.run("open-signed", format!("cat {DISK}/signed"));
    s.sealroot("measure-signed", format!("measure {DISK}/signed"));
    s.run("stat-signed", format!("stat -c %s {DISK}/signed"));
    s.run("sysctl-default", format!("cat {SYSCTL}"));
    // require_signatures=1 before the unsigned file's first open since
    // boot: the check runs when its verity metadata is loaded.
    s.run("require", format!("sh -c 'echo 1 > {SYSCTL}'"));
    s.run("open-unsigned-required", format!("cat {DISK}/unsigned"));
    s.sealroot(
        "measure-unsigned-required",
        format!("measure {DISK}/unsigned"),
    );
    s.run("open-plain-required", format!("cat {DISK}/plain"));
    s.sealroot("enable-unsigned-required", format!("enable {DISK}/plain2"));
    s.run("open-signed-required", format!("cat {DISK}/signed"));
    s.run("relax", format!("sh -c 'echo 0 > {SYSCTL}'"));
    s.run("open-unsigned-relaxed", format!("cat {DISK}/unsigned"));
    // Another certificate does not help; the signer's does.
    s.sealroot("add-other", format!("keyring add {DISK}/other.pem"));
    s.run("open-signed-other-cert", format!("cat {DISK}/signed"));
    s.sealroot("add-signer", format!("keyring add {DISK}/signer.pem"));
    s.run("open-signed-with-cert", format!("sha256sum {DISK}/signed"));
    s.sealroot("measure-signed-with-cert", format!("measure {DISK}/signed"));
    s.dmesg();
    let log = boot("vm-trust-persist-2", &s, &[&disk])?;

    // Opening fails with ENOKEY ("Required key not available").
    log.result("open-signed")?
        .assert_rc(1)?
        .assert_stderr_contains("Required key not available")?;
    assert_kernel_errno_at_open(&log, "measure-signed", "ENOKEY")?.assert_stderr_contains(
        "the .fs-verity keyring does not hold the certificate that made it",
    )?;
    // The inode itself is fine: stat does not load verity metadata.
    log.result("stat-signed")?
        .assert_ok()?
        .assert_stdout_eq("50000\n")?;
    log.result("sysctl-default")?
        .assert_ok()?
        .assert_stdout_eq("0\n")?;
    log.result("require")?.assert_ok()?;
    log.result("open-unsigned-required")?
        .assert_rc(1)?
        .assert_stderr_contains("Operation not permitted")?;
    assert_kernel_errno_at_open(&log, "measure-unsigned-required", "EPERM")?
        .assert_stderr_contains("fs.verity.require_signatures = 1")?;
    log.result("open-plain-required")?
        .assert_ok()?
        .assert_stdout_eq("no verity here\n")?;
    assert_enable_refused(&log, "enable-unsigned-required", "EPERM")?
        .assert_stderr_contains("fs.verity.require_signatures")?;
    log.result("open-signed-required")?
        .assert_rc(1)?
        .assert_stderr_contains("Required key not available")?;
    log.result("relax")?.assert_ok()?;
    log.result("open-unsigned-relaxed")?.assert_ok()?;
    log.result("add-other")?.assert_ok()?;
    log.result("open-signed-other-cert")?
        .assert_rc(1)?
        .assert_stderr_contains("Required key not available")?;
    log.result("add-signer")?.assert_ok()?;
    let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&signed).unwrap(),
    ));
    log.result("open-signed-with-cert")?
        .assert_ok()?
        .assert_stdout_eq(&format!("{sum}  {DISK}/signed\n"))?;
    log.result("measure-signed-with-cert")?
        .assert_ok()?
        .assert_stdout_eq(&format!("{digest} {DISK}/signed\n"))?;
    assert_dmesg_contains(
        &log,
        &[
            "fs-verity keyring is empty, rejecting signed file!",
            "require_signatures=1, rejecting unsigned file!",
            "File's signing cert isn't in the fs-verity keyring",
        ],
    )?;
    Ok(())
}

/// `sealroot measure` could not even open the file: the kernel checks the
/// signature at open. The message must name the errno and say why.
fn assert_kernel_errno_at_open<'a>(
    log: &'a sealroot_testbed::BootLog,
    name: &str,
    errno: &str,
) -> Result<sealroot_testbed::Checked<'a>> {
    log.result(name)?
        .assert_rc(1)?
        .assert_stderr_contains(&format!("cannot open '{DISK}/"))?
        .assert_stderr_contains(&format!("for reading: {errno}: "))
}
