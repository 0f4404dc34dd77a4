//! Sealing the `.fs-verity` keyring: `keyring seal` (nothing more can be
//! added, EPERM), `seal --ca=CA` (only certificates the CA signed) and
//! `seal --chain` (only certificates signed by a key already in it). A
//! keyring can be sealed once per boot, so each mode is its own boot.

use std::path::{Path, PathBuf};

use sealroot_testbed::{BootLog, Result};

use super::fixtures::{KeyPair, Pki, data, openssl_fingerprint, sign};
use super::scenario::{DISK, Script, assert_enable_refused, boot, disk_from};

/// A disk with `certs/NAME.pem` for each (name, pair) and `files/NAME`
/// signed by that pair (`sigs/NAME.sig`, signer certificate embedded when
/// `embed`).
struct Layout {
    _tmp: tempfile::TempDir,
    src: PathBuf,
}

impl Layout {
    fn new(certs: &[(&str, KeyPair)], signed: &[(&str, KeyPair, bool)]) -> Layout {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("disk");
        for d in ["certs", "files", "sigs"] {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        for (name, pair) in certs {
            std::fs::copy(&pair.cert, src.join(format!("certs/{name}.pem"))).unwrap();
        }
        for (i, (name, pair, embed)) in signed.iter().enumerate() {
            let file = src.join(format!("files/{name}"));
            std::fs::write(&file, data(9000 + i, 40 + i as u64)).unwrap();
            sign(
                &file,
                &src.join(format!("sigs/{name}.sig")),
                pair,
                *embed,
                &[],
            );
        }
        Layout { _tmp: tmp, src }
    }

    fn cert(&self, name: &str) -> PathBuf {
        self.src.join(format!("certs/{name}.pem"))
    }
}

fn vm_cert(name: &str) -> String {
    format!("{DISK}/certs/{name}.pem")
}

fn enable(s: &mut Script, step: &str, name: &str) {
    s.sealroot(
        step,
        format!("enable --signature={DISK}/sigs/{name}.sig {DISK}/files/{name}"),
    );
}

/// `sealroot keyring add` of step `name` was refused by the kernel with
/// `errno` (exit 1, "cannot add 'SUBJECT' ... to the .fs-verity keyring:
/// ERRNO: hint").
fn assert_add_refused(log: &BootLog, name: &str, subject: &str, errno: &str) -> Result<()> {
    log.result(name)?
        .assert_rc(1)?
        .assert_stderr_contains(&format!("cannot add '{subject}'"))?
        .assert_stderr_contains(&format!("to the .fs-verity keyring: {errno}: "))?;
    Ok(())
}

/// `keyring list --cert certs/` of step `name` shows exactly these
/// certificates (by openssl's fingerprint).
fn assert_listed(log: &BootLog, name: &str, certs: &[&Path]) -> Result<()> {
    let listed = log.result(name)?.assert_ok()?;
    listed.assert_stdout_contains(&format!(": {} keys\n", certs.len()))?;
    for cert in certs {
        listed.assert_stdout_contains(&format!("[{} from ", openssl_fingerprint(cert)))?;
    }
    Ok(())
}

/// `keyring seal` without a CA: later `keyring add` fails with EPERM (and a
/// second seal with EEXIST), while the keys added before keep verifying
/// signatures.
#[test]
fn sealed_keyring_refuses_new_keys_and_keeps_its_own() -> Result<()> {
    let pki = Pki::get();
    let disk_layout = Layout::new(
        &[
            ("rsa2048", pki.signer("rsa2048")),
            ("p256", pki.signer("p256")),
            ("chain-ca", pki.ca("chain")),
        ],
        &[
            ("by-rsa2048", pki.signer("rsa2048"), false),
            ("by-p256", pki.signer("p256"), false),
        ],
    );
    let mut s = Script::new();
    s.sealroot("add", format!("keyring add {}", vm_cert("rsa2048")));
    s.sealroot("seal", "keyring seal");
    s.sealroot("add-after-seal", format!("keyring add {}", vm_cert("p256")));
    s.sealroot("seal-again", "keyring seal");
    s.sealroot("seal-again-chain", "keyring seal --chain");
    s.sealroot(
        "seal-again-ca",
        format!("keyring seal --ca={}", vm_cert("chain-ca")),
    );
    s.sealroot("list", format!("keyring list --cert {DISK}/certs"));
    s.run("proc-keys", "grep -F .fs-verity /proc/keys");
    enable(&mut s, "enable-by-rsa2048", "by-rsa2048");
    enable(&mut s, "enable-by-p256", "by-p256");

    let disk = disk_from(&disk_layout.src)?;
    let log = boot("vm-trust-seal", &s, &[&disk])?;
    log.result("add")?
        .assert_ok()?
        .assert_stdout_contains("Added 'CN=rsa2048 signer'")?;
    log.result("seal")?
        .assert_ok()?
        .assert_stdout_contains("Sealed keyring")?
        .assert_stdout_contains("no key can be added any more")?;
    assert_add_refused(&log, "add-after-seal", "CN=p256 signer", "EPERM")?;
    log.result("add-after-seal")?
        .assert_stderr_contains("EPERM: the .fs-verity keyring is sealed")?;
    for step in ["seal-again", "seal-again-chain"] {
        log.result(step)?.assert_rc(1)?.assert_stderr_contains(
            "cannot seal the .fs-verity keyring: EEXIST: the keyring is already sealed",
        )?;
    }
    // --ca adds the CA first: the sealed keyring refuses that.
    assert_add_refused(&log, "seal-again-ca", "CN=chain CA", "EPERM")?;
    assert_listed(&log, "list", &[&disk_layout.cert("rsa2048")])?;
    log.result("proc-keys")?
        .assert_ok()?
        .assert_stdout_contains("keyring   .fs-verity: 1")?;
    log.result("enable-by-rsa2048")?.assert_ok()?;
    assert_enable_refused(&log, "enable-by-p256", "ENOKEY")?;
    Ok(())
}

/// `keyring seal --ca=CA`: the CA's leaves can still be added; anything
/// else is refused — ENOKEY when the CA did not sign it, EKEYREJECTED when
/// it claims the CA (same issuer and key id) but the signature is false.
/// Leaves admitted after sealing verify files.
#[test]
fn ca_sealed_keyring_admits_only_what_the_ca_signed() -> Result<()> {
    let pki = Pki::get();
    let disk_layout = Layout::new(
        &[
            ("chain-ca", pki.ca("chain")),
            ("chain-leaf", pki.signer("chain")),
            ("stranger", pki.signer("stranger")),
            ("rsa2048", pki.signer("rsa2048")),
            ("forged-leaf", pki.signer("fakeca")),
            ("grandleaf", pki.signer("grandleaf")),
        ],
        &[
            ("by-chain-leaf", pki.signer("chain"), false),
            ("by-stranger", pki.signer("stranger"), false),
            ("by-grandleaf-embedded", pki.signer("grandleaf"), true),
        ],
    );
    let mut s = Script::new();
    s.sealroot(
        "seal-ca",
        format!("keyring seal --ca={}", vm_cert("chain-ca")),
    );
    // Before its certificate is added, the leaf's file is refused.
    enable(&mut s, "enable-leaf-too-early", "by-chain-leaf");
    s.sealroot("add-leaf", format!("keyring add {}", vm_cert("chain-leaf")));
    s.sealroot(
        "add-stranger",
        format!("keyring add {}", vm_cert("stranger")),
    );
    s.sealroot(
        "add-other-ca-leaf",
        format!("keyring add {}", vm_cert("rsa2048")),
    );
    s.sealroot(
        "add-forged",
        format!("keyring add {}", vm_cert("forged-leaf")),
    );
    s.sealroot(
        "add-grandleaf",
        format!("keyring add {}", vm_cert("grandleaf")),
    );
    s.sealroot("seal-again", "keyring seal");
    s.sealroot("list", format!("keyring list --cert {DISK}/certs"));
    enable(&mut s, "enable-by-leaf", "by-chain-leaf");
    enable(&mut s, "enable-by-stranger", "by-stranger");
    enable(
        &mut s,
        "enable-by-grandleaf-embedded",
        "by-grandleaf-embedded",
    );

    let disk = disk_from(&disk_layout.src)?;
    let log = boot("vm-trust-seal-ca", &s, &[&disk])?;
    log.result("seal-ca")?
        .assert_ok()?
        .assert_stdout_contains("only certificates signed by 'CN=chain CA'")?;
    assert_enable_refused(&log, "enable-leaf-too-early", "ENOKEY")?;
    log.result("add-leaf")?
        .assert_ok()?
        .assert_stdout_contains("Added 'CN=chain leaf'")?;
    assert_add_refused(&log, "add-stranger", "CN=stranger signer", "ENOKEY")?;
    log.result("add-stranger")?
        .assert_stderr_contains("ENOKEY: the keyring is sealed to a CA")?;
    assert_add_refused(&log, "add-other-ca-leaf", "CN=rsa2048 signer", "ENOKEY")?;
    assert_add_refused(&log, "add-forged", "CN=forged leaf", "EKEYREJECTED")?;
    // Only the CA's key may vouch, not a leaf in the keyring.
    assert_add_refused(&log, "add-grandleaf", "CN=grandleaf", "ENOKEY")?;
    log.result("seal-again")?
        .assert_rc(1)?
        .assert_stderr_contains("EEXIST")?;
    assert_listed(
        &log,
        "list",
        &[
            &disk_layout.cert("chain-ca"),
            &disk_layout.cert("chain-leaf"),
        ],
    )?;
    log.result("enable-by-leaf")?.assert_ok()?;
    assert_enable_refused(&log, "enable-by-stranger", "ENOKEY")?;
    // The restriction governs what joins the keyring, not what fs-verity
    // trusts: a signature embedding a certificate issued by the admitted
    // *leaf* is accepted, since pkcs7_validate_trust() does not check
    // basicConstraints. `sealroot verify` refuses it (not a CA).
    log.result("enable-by-grandleaf-embedded")?.assert_ok()?;
    let verdict = super::fixtures::verify(
        &disk_layout.src.join("files/by-grandleaf-embedded"),
        &disk_layout.src.join("sigs/by-grandleaf-embedded.sig"),
        &trusted_dir(&disk_layout, &["chain-ca", "chain-leaf"]),
        &[],
    );
    match verdict {
        super::fixtures::Verdict::Refused { reason, error }
            if reason == "chain" && error.contains("is not a CA certificate") => {}
        other => {
            return Err(log.failure(&format!(
                "sealroot verify should refuse the grandleaf signature as a non-CA chain: {other:?}"
            )));
        }
    }
    Ok(())
}

/// `keyring seal --chain`: a certificate signed by any key already in the
/// keyring can be added — including one issued by a *leaf* — and others are
/// refused (ENOKEY, or EKEYREJECTED for a forged issuer).
#[test]
fn chain_sealed_keyring_admits_what_its_keys_signed() -> Result<()> {
    let pki = Pki::get();
    let disk_layout = Layout::new(
        &[
            ("chain-ca", pki.ca("chain")),
            ("chain-leaf", pki.signer("chain")),
            ("grandleaf", pki.signer("grandleaf")),
            ("stranger", pki.signer("stranger")),
            ("forged-leaf", pki.signer("fakeca")),
            ("p256", pki.signer("p256")),
        ],
        &[("by-grandleaf", pki.signer("grandleaf"), false)],
    );
    let mut s = Script::new();
    s.sealroot("add-ca", format!("keyring add {}", vm_cert("chain-ca")));
    s.sealroot("seal-chain", "keyring seal --chain");
    s.sealroot(
        "add-grandleaf-too-early",
        format!("keyring add {}", vm_cert("grandleaf")),
    );
    s.sealroot("add-leaf", format!("keyring add {}", vm_cert("chain-leaf")));
    s.sealroot(
        "add-grandleaf",
        format!("keyring add {}", vm_cert("grandleaf")),
    );
    s.sealroot(
        "add-stranger",
        format!("keyring add {}", vm_cert("stranger")),
    );
    s.sealroot(
        "add-forged",
        format!("keyring add {}", vm_cert("forged-leaf")),
    );
    s.sealroot("add-p256", format!("keyring add {}", vm_cert("p256")));
    s.sealroot("seal-again", "keyring seal --chain");
    s.sealroot("list", format!("keyring list --cert {DISK}/certs"));
    enable(&mut s, "enable-by-grandleaf", "by-grandleaf");

    let disk = disk_from(&disk_layout.src)?;
    let log = boot("vm-trust-seal-chain", &s, &[&disk])?;
    log.result("add-ca")?.assert_ok()?;
    log.result("seal-chain")?
        .assert_ok()?
        .assert_stdout_contains("only certificates signed by a key in it can be added")?;
    // Its issuer (the chain leaf) is not in the keyring yet.
    assert_add_refused(&log, "add-grandleaf-too-early", "CN=grandleaf", "ENOKEY")?;
    log.result("add-leaf")?.assert_ok()?;
    log.result("add-grandleaf")?.assert_ok()?;
    assert_add_refused(&log, "add-stranger", "CN=stranger signer", "ENOKEY")?;
    log.result("add-stranger")?
        .assert_stderr_contains("after `seal --chain`, to the keys in it")?;
    assert_add_refused(&log, "add-forged", "CN=forged leaf", "EKEYREJECTED")?;
    assert_add_refused(&log, "add-p256", "CN=p256 signer", "ENOKEY")?;
    log.result("seal-again")?
        .assert_rc(1)?
        .assert_stderr_contains("EEXIST")?;
    assert_listed(
        &log,
        "list",
        &[
            &disk_layout.cert("chain-ca"),
            &disk_layout.cert("chain-leaf"),
            &disk_layout.cert("grandleaf"),
        ],
    )?;
    log.result("enable-by-grandleaf")?.assert_ok()?;
    Ok(())
}

/// A directory holding only the named certificates of `layout`.
fn trusted_dir(layout: &Layout, names: &[&str]) -> PathBuf {
    let dir = layout.src.parent().unwrap().join("trusted");
    std::fs::create_dir_all(&dir).unwrap();
    for name in names {
        std::fs::copy(layout.cert(name), dir.join(format!("{name}.pem"))).unwrap();
    }
    dir
}
