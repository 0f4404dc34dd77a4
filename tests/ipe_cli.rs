//! `sealroot ipe policy|sign|show` on the host, cross-checked with OpenSSL
//! (`openssl smime -sign -noattr -nodetach -nosmimecap -binary -outform
//! der`, the signing command of the kernel's IPE documentation,
//! Documentation/admin-guide/LSM/ipe.rst). The kernel's verdict on the same
//! files is `tests/vm_ipe.rs`.

mod oci_support;
mod repo_support;

use std::path::Path;
use std::process::Command;

use repo_support::{Keys, sr, sr_fails, sr_ok};
use sealroot::ipe::{Action, Op, Policy, Property};

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (scripts/install-deps)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The policy CLI writes what the model generates, and the text parses back
/// with the kernel's grammar into the rules docs/ipe.md describes.
#[test]
fn policy_text_parses_back_with_the_kernel_grammar() {
    let text = sr_ok(&["ipe", "policy"]);
    let policy = Policy::parse(text.as_bytes()).unwrap();
    assert_eq!(policy.name.as_str(), "sealroot");
    assert_eq!(policy.global_default, Some(Action::Deny));
    for op in Op::ALL {
        assert_eq!(policy.default_for(op), Some(Action::Deny), "{op}");
    }
    let allowed = |op: Op| -> Vec<Vec<Property>> {
        policy
            .rules_for(op)
            .filter(|r| r.action == Action::Allow)
            .map(|r| r.properties.clone())
            .collect()
    };
    let signed = vec![
        vec![Property::BootVerified(true)],
        vec![Property::FsVeritySignature(true)],
    ];
    for op in [
        Op::Execute,
        Op::KernelModule,
        Op::Firmware,
        Op::Policy,
        Op::X509Cert,
    ] {
        assert_eq!(allowed(op), signed, "{op}");
    }
    assert!(allowed(Op::KexecImage).is_empty() && allowed(Op::KexecInitramfs).is_empty());

    // Options: name, version, per-operation trust; --out writes the file.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.ipe");
    sr_ok(&[
        "ipe",
        "policy",
        "--policy-name",
        "fleet-7",
        "--policy-version",
        "2.5.65535",
        "--kernel-modules",
        "any",
        "--kexec",
        "signed",
        "--out",
        p(&out),
    ]);
    let policy = Policy::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(policy.name.as_str(), "fleet-7");
    assert_eq!(policy.version.to_string(), "2.5.65535");
    assert_eq!(policy.default_for(Op::KernelModule), Some(Action::Allow));
    assert_eq!(policy.rules_for(Op::KexecImage).count(), 2);
    // Values the kernel would refuse never reach a policy.
    sr_fails(&["ipe", "policy", "--policy-version", "1.0"], 1);
    sr_fails(&["ipe", "policy", "--policy-name", "a/b"], 1);
    let e = sr_fails(&["ipe", "policy", "--firmware", "maybe"], 2);
    assert!(e.contains("signed, any, deny"), "{e}");
}

/// With an RSA key our signed policy is byte for byte OpenSSL's; with
/// ECDSA (random nonces in OpenSSL) each side verifies the other's and
/// extracts the same policy text.
#[test]
fn signed_policy_matches_openssl_smime() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = d.join("policy.ipe");
    sr_ok(&["ipe", "policy", "--out", p(&policy)]);
    for (name, newkey) in [("rsa", "rsa:2048"), ("ec", "ec")] {
        let key = d.join(format!("{name}.key"));
        let cert = d.join(format!("{name}.crt"));
        let mut args = vec![
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ipe policy signer",
        ];
        let ec_params;
        if name == "ec" {
            ec_params = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
            args.extend(ec_params);
        } else {
            args.extend(["-newkey", newkey]);
        }
        args.extend(["-keyout", p(&key), "-out", p(&cert)]);
        openssl(&args);
        let ours = d.join(format!("{name}.ours.p7s"));
        let theirs = d.join(format!("{name}.openssl.p7s"));
        sr_ok(&[
            "ipe",
            "sign",
            p(&policy),
            "--key",
            p(&key),
            "--cert",
            p(&cert),
            "--out",
            p(&ours),
        ]);
        openssl(&[
            "smime",
            "-sign",
            "-in",
            p(&policy),
            "-signer",
            p(&cert),
            "-inkey",
            p(&key),
            "-noattr",
            "-nodetach",
            "-nosmimecap",
            "-binary",
            "-outform",
            "der",
            "-out",
            p(&theirs),
        ]);
        if name == "rsa" {
            assert_eq!(
                std::fs::read(&ours).unwrap(),
                std::fs::read(&theirs).unwrap()
            );
        }
        // OpenSSL verifies ours and extracts the text.
        let out = openssl(&[
            "smime",
            "-verify",
            "-inform",
            "der",
            "-in",
            p(&ours),
            "-binary",
            "-CAfile",
            p(&cert),
            "-purpose",
            "any",
        ]);
        assert_eq!(out.stdout, std::fs::read(&policy).unwrap(), "{name}");
        // And we read and verify theirs.
        let shown = sr_ok(&["ipe", "show", p(&theirs), "--cert", p(&cert), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(v["name"], "sealroot");
        assert_eq!(v["version"], "1.0.0");
        assert_eq!(v["signer"]["subject"], "CN=ipe policy signer");
        assert_eq!(v["verifiedBy"]["subject"], "CN=ipe policy signer");
    }
}

#[test]
fn sign_and_show_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = Keys::new(&d.join("k"), "p256", "CN=policy key");
    let other = Keys::new(&d.join("o"), "p256", "CN=other key");
    let policy = d.join("policy.ipe");
    sr_ok(&["ipe", "policy", "--out", p(&policy)]);
    let signed = d.join("policy.p7s");
    // Not signable: the kernel's grammar refuses it; the line is named.
    let bad = d.join("bad.ipe");
    std::fs::write(
        &bad,
        "policy_name=x policy_version=1.0.0\nop=EXECUTE action=ALLOW\n",
    )
    .unwrap();
    let e = sr_fails(
        &[
            "ipe",
            "sign",
            p(&bad),
            "--key",
            &keys.key(),
            "--cert",
            &keys.cert(),
            "--out",
            p(&signed),
        ],
        1,
    );
    assert!(e.contains("no default for op=EXECUTE"), "{e}");
    std::fs::write(&bad, "policy_name=x policy_version=1.0.0\nDEFAULT action=DENY\nop=EXECUTE fsverity_signature=yes action=ALLOW\n").unwrap();
    let e = sr_fails(
        &[
            "ipe",
            "sign",
            p(&bad),
            "--key",
            &keys.key(),
            "--cert",
            &keys.cert(),
            "--out",
            p(&signed),
        ],
        1,
    );
    assert!(e.contains("line 3") && e.contains("TRUE or FALSE"), "{e}");
    assert!(!signed.exists());
    // A key that is not the certificate's.
    sr_fails(
        &[
            "ipe",
            "sign",
            p(&policy),
            "--key",
            &other.key(),
            "--cert",
            &keys.cert(),
            "--out",
            p(&signed),
        ],
        3,
    );
    // An external signing command (the oci seal protocol).
    let cmd = format!(
        "openssl dgst -\"$SEALROOT_SIGN_DIGEST_ALGORITHM\" -sign {}",
        keys.key()
    );
    sr_ok(&[
        "ipe",
        "sign",
        p(&policy),
        "--sign-command",
        &cmd,
        "--cert",
        &keys.cert(),
        "--out",
        p(&signed),
    ]);
    sr_ok(&["ipe", "show", p(&signed), "--cert", &keys.cert()]);
    // Signed by someone else: shown, not verified, exit 1.
    let e = sr_fails(&["ipe", "show", p(&signed), "--cert", &other.cert()], 1);
    assert!(
        e.contains("NOT verified") && e.contains("not trusted"),
        "{e}"
    );
    // The plain text is not a signed policy (the kernel says EBADMSG).
    let e = sr_fails(&["ipe", "show", p(&policy)], 1);
    assert!(e.contains("not a signed IPE policy"), "{e}");
    // A detached signature over the policy is not what IPE takes.
    let detached = d.join("detached.p7s");
    openssl(&[
        "smime",
        "-sign",
        "-in",
        p(&policy),
        "-signer",
        &keys.cert(),
        "-inkey",
        &keys.key(),
        "-noattr",
        "-nosmimecap",
        "-binary",
        "-outform",
        "der",
        "-out",
        p(&detached),
    ]);
    let e = sr_fails(&["ipe", "show", p(&detached)], 1);
    assert!(e.contains("carries no content"), "{e}");
    // Without -noattr OpenSSL adds S/MIME capabilities the kernel refuses.
    let attrs = d.join("attrs.p7s");
    openssl(&[
        "smime",
        "-sign",
        "-in",
        p(&policy),
        "-signer",
        &keys.cert(),
        "-inkey",
        &keys.key(),
        "-nodetach",
        "-binary",
        "-outform",
        "der",
        "-out",
        p(&attrs),
    ]);
    let e = sr_fails(&["ipe", "show", p(&attrs)], 1);
    assert!(
        e.contains("Authenticode") || e.contains("EKEYREJECTED"),
        "{e}"
    );
    // Garbage never panics.
    std::fs::write(d.join("junk"), [0x30, 0x82, 0xff, 0xff, 0]).unwrap();
    let out = sr(&["ipe", "show", p(&d.join("junk"))]);
    assert_eq!(out.status.code(), Some(1));
}
