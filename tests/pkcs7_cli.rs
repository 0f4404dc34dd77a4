//! Cross-checks of `sealroot sign/verify/keygen/keyring` against reference
//! tools, on the host:
//! - keys made by `openssl genpkey/ecparam/pkey` in PKCS#8, PKCS#1 and SEC1,
//!   PEM and DER, certificates by `openssl req -x509`;
//! - RSA signatures byte-identical to `fsverity sign` (fsverity-utils) for
//!   the same key, certificate and file, over RSA-2048/3072/4096 and
//!   sha256/sha512 fs-verity digests;
//! - `openssl cms -verify` accepts ours (RSA, ECDSA, embedded or not,
//!   CA-chained leaf), and our verifier accepts `fsverity sign`'s output and
//!   refuses tampering with the right reason;
//! - refusals of keys the kernel cannot use, with asserted messages;
//! - keyring add/list/seal on a private session keyring of the host kernel
//!   (RSA only: ECDSA needs the kernel's ecdsa module). The `.fs-verity`
//!   keyring and FS_IOC_ENABLE_VERITY are VM tests.

#[path = "pkcs7_cli/env.rs"]
mod env;
#[path = "pkcs7_cli/keyring.rs"]
mod keyring;
#[path = "pkcs7_cli/refusals.rs"]
mod refusals;
#[path = "common/tools.rs"]
mod tools;

use env::{Env, der_key_kind};
use tools::fsverity;

#[test]
fn rsa_signatures_are_byte_identical_to_fsverity_sign() {
    let env = Env::new();
    env.data("small", 5000, 1);
    env.data("big", 300_000, 2);
    for bits in [2048, 3072, 4096] {
        let key = format!("rsa{bits}.pem");
        let cert = format!("rsa{bits}.crt");
        env.openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
            &key,
        ]);
        env.self_signed(&key, "PEM", &format!("rsa{bits}"), &cert);
        let cases: &[(&str, &[&str])] = &[
            ("small", &["--hash-alg", "sha256"]),
            ("big", &["--hash-alg", "sha512"]),
            (
                "big",
                &[
                    "--hash-alg",
                    "sha256",
                    "--block-size",
                    "1024",
                    "--salt",
                    "00ff",
                ],
            ),
        ];
        for (i, (file, params)) in cases.iter().enumerate() {
            let theirs = format!("{file}.{bits}.{i}.fsverity.sig");
            let ours = format!("{file}.{bits}.{i}.sealroot.sig");
            env.fsverity_sign(file, &theirs, &key, &cert, params);
            let mut args = vec!["sign", file, &ours, "--key", &key, "--cert", &cert];
            args.extend_from_slice(params);
            let line = env.sealroot_ok(&args);
            // Same output line as `fsverity sign`.
            assert!(
                line.starts_with(&format!("Signed file '{file}' (sha")),
                "{line}"
            );
            assert_eq!(
                std::fs::read(env.path(&ours)).unwrap(),
                std::fs::read(env.path(&theirs)).unwrap(),
                "RSA-{bits} {file} {params:?}: not byte-identical to fsverity sign"
            );
        }
    }
}

#[test]
fn every_key_format_signs_and_openssl_verifies() {
    let env = Env::new();
    let file = "payload";
    env.data(file, 10_000, 3);
    let content = env.formatted_digest(file, "sha256", &[]);
    // (key file, keyform, expected DER kind) made with openssl.
    env.openssl(&["genpkey", "-algorithm", "RSA", "-out", "rsa8.pem"]);
    env.openssl(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "rsa8.pem", "-outform", "DER", "-out", "rsa8.der",
    ]);
    env.openssl(&[
        "pkey",
        "-in",
        "rsa8.pem",
        "-traditional",
        "-out",
        "rsa1.pem",
    ]);
    env.openssl(&[
        "rsa",
        "-in",
        "rsa8.pem",
        "-traditional",
        "-outform",
        "DER",
        "-out",
        "rsa1.der",
    ]);
    env.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "p256.pem",
    ]);
    env.openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        "sec1.pem",
    ]);
    env.openssl(&[
        "ec", "-in", "sec1.pem", "-outform", "DER", "-out", "sec1.der",
    ]);
    env.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        "p384.pem",
    ]);
    env.openssl(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "p384.pem", "-outform", "DER", "-out", "p384.der",
    ]);
    let keys: &[(&str, &str, Option<&str>)] = &[
        ("rsa8.pem", "PEM", None),
        ("rsa8.der", "DER", Some("pkcs8")),
        ("rsa1.pem", "PEM", None),
        ("rsa1.der", "DER", Some("pkcs1")),
        ("p256.pem", "PEM", None),
        ("sec1.pem", "PEM", None),
        ("sec1.der", "DER", Some("sec1")),
        ("p384.der", "DER", Some("pkcs8")),
    ];
    assert!(
        std::fs::read_to_string(env.path("rsa1.pem"))
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY")
    );
    assert!(
        std::fs::read_to_string(env.path("sec1.pem"))
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    for (key, form, kind) in keys {
        if let Some(kind) = kind {
            assert_eq!(
                der_key_kind(&std::fs::read(env.path(key)).unwrap()),
                *kind,
                "{key}"
            );
        }
        let cert_pem = format!("{key}.crt.pem");
        let cert_der = format!("{key}.crt.der");
        env.self_signed(key, form, key, &cert_pem);
        env.openssl(&[
            "x509", "-in", &cert_pem, "-outform", "DER", "-out", &cert_der,
        ]);
        for (cert, embed) in [(&cert_pem, false), (&cert_der, true)] {
            let sig = format!("{key}.{embed}.sig");
            let mut args = vec!["sign", file, &sig, "--key", key, "--cert", cert];
            if embed {
                args.push("--embed-cert");
            }
            env.sealroot_ok(&args);
            if embed {
                env.cms_verify(&sig, &content, &["-CAfile", &cert_pem]);
            } else {
                env.cms_verify(
                    &sig,
                    &content,
                    &["-certfile", &cert_pem, "-CAfile", &cert_pem],
                );
            }
            let out = env.sealroot_ok(&["verify", file, &sig, "--cert", cert]);
            assert!(out.starts_with("Verified file 'payload'"), "{out}");
        }
    }
}

#[test]
fn ecdsa_sha512_and_p384_verify_with_openssl_and_are_reproducible() {
    let env = Env::new();
    env.data("f", 70_000, 4);
    for curve in ["P-256", "P-384"] {
        let key = format!("{curve}.pem");
        let cert = format!("{curve}.crt");
        env.openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-out",
            &key,
        ]);
        env.self_signed(&key, "PEM", curve, &cert);
        for alg in ["sha256", "sha512"] {
            let content = env.formatted_digest("f", alg, &[]);
            let sig = format!("f.{curve}.{alg}.sig");
            env.sealroot_ok(&[
                "sign",
                "f",
                &sig,
                "--key",
                &key,
                "--cert",
                &cert,
                "--hash-alg",
                alg,
            ]);
            env.cms_verify(&sig, &content, &["-certfile", &cert, "-CAfile", &cert]);
            // RFC 6979: signing again gives the same bytes.
            let again = format!("{sig}.again");
            env.sealroot_ok(&[
                "sign",
                "f",
                &again,
                "--key",
                &key,
                "--cert",
                &cert,
                "--hash-alg",
                alg,
            ]);
            assert_eq!(
                std::fs::read(env.path(&sig)).unwrap(),
                std::fs::read(env.path(&again)).unwrap()
            );
            // The ASN.1 shape matches fsverity sign's: ecdsa-with-<alg>.
            let dump = env.openssl(&["asn1parse", "-inform", "DER", "-in", &sig]);
            let want = if alg == "sha256" {
                "ecdsa-with-SHA256"
            } else {
                "ecdsa-with-SHA512"
            };
            assert!(dump.contains(want), "{dump}");
        }
    }
}

#[test]
fn ca_chained_leaf_embedded_verifies_with_only_the_ca() {
    let env = Env::new();
    env.data("f", 12_345, 5);
    let content = env.formatted_digest("f", "sha256", &[]);
    // An openssl-made CA and leaf.
    env.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        "ca.key",
    ]);
    env.openssl(&[
        "req",
        "-x509",
        "-key",
        "ca.key",
        "-subj",
        "/CN=openssl CA",
        "-days",
        "2",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-out",
        "ca.crt",
    ]);
    env.openssl(&["genpkey", "-algorithm", "RSA", "-out", "leaf.key"]);
    env.openssl(&[
        "req",
        "-new",
        "-key",
        "leaf.key",
        "-subj",
        "/CN=openssl leaf",
        "-out",
        "leaf.csr",
    ]);
    std::fs::write(
        env.path("leaf.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    env.openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.crt",
    ]);
    env.sealroot_ok(&[
        "sign",
        "--embed-cert",
        "f",
        "f.sig",
        "--key",
        "leaf.key",
        "--cert",
        "leaf.crt",
    ]);
    env.cms_verify("f.sig", &content, &["-CAfile", "ca.crt"]);
    let out = env.sealroot_ok(&["verify", "f", "f.sig", "--cert", "ca.crt", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["trusted"]["subject"], "CN=openssl CA");
    assert_eq!(v["signer"]["subject"], "CN=openssl leaf");
    // Not embedded: the CA alone cannot identify the signer.
    env.sealroot_ok(&[
        "sign", "f", "bare.sig", "--key", "leaf.key", "--cert", "leaf.crt",
    ]);
    env.sealroot_fails(&["verify", "f", "bare.sig", "--cert", "ca.crt"], 1, "unknown signer: no trusted certificate matches the signer (issuer 'CN=openssl CA', serial ");
    // Our keygen's CA and leaf, checked by openssl.
    env.sealroot_ok(&["keygen", "--out-dir", "k", "--type", "p256"]);
    env.openssl(&["verify", "-CAfile", "k/ca.crt.pem", "k/signer.crt.pem"]);
    let text = env.openssl(&["x509", "-in", "k/ca.crt.pem", "-noout", "-text"]);
    assert!(
        text.contains("CA:TRUE") && text.contains("Certificate Sign"),
        "{text}"
    );
    let text = env.openssl(&["x509", "-in", "k/signer.crt.pem", "-noout", "-text"]);
    assert!(
        text.contains("CA:FALSE") && text.contains("Digital Signature"),
        "{text}"
    );
    env.sealroot_ok(&[
        "sign",
        "--embed-cert",
        "f",
        "k.sig",
        "--key",
        "k/signer.key.pem",
        "--cert",
        "k/signer.crt.pem",
    ]);
    env.cms_verify("k.sig", &content, &["-CAfile", "k/ca.crt.pem"]);
    env.sealroot_ok(&["verify", "f", "k.sig", "--certs-dir", "k"]);
    // A leaf cannot act as CA: openssl agrees.
    env.sealroot_fails(&["keygen", "--out-dir", "k"], 3, "exists; pass --force");
    env.sealroot_ok(&[
        "keygen",
        "--out-dir",
        "self",
        "--self-signed",
        "--type",
        "rsa2048",
    ]);
    assert!(!env.path("self/ca.crt.pem").exists());
    env.openssl(&[
        "verify",
        "-CAfile",
        "self/signer.crt.pem",
        "self/signer.crt.pem",
    ]);
}

#[test]
fn our_verifier_accepts_fsverity_sign_and_names_refusals() {
    let env = Env::new();
    env.data("f", 40_000, 6);
    env.data("g", 40_000, 9);
    env.openssl(&["genpkey", "-algorithm", "RSA", "-out", "rsa.key"]);
    env.self_signed("rsa.key", "PEM", "rsa", "rsa.crt");
    env.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "ec.key",
    ]);
    env.self_signed("ec.key", "PEM", "ec", "ec.crt");
    let reason = |args: &[&str]| -> String {
        let out = env.sealroot(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verified"], false);
        v["reason"].as_str().unwrap().to_owned()
    };
    for (key, cert, other) in [
        ("rsa.key", "rsa.crt", "ec.crt"),
        ("ec.key", "ec.crt", "rsa.crt"),
    ] {
        for alg in ["sha256", "sha512"] {
            let sig = format!("{key}.{alg}.sig");
            env.fsverity_sign("f", &sig, key, cert, &["--hash-alg", alg]);
            let out = env.sealroot_ok(&["verify", "f", &sig, "--cert", cert, "--hash-alg", alg]);
            assert!(out.starts_with("Verified file 'f' ("), "{out}");
            // Wrong certificate: unknown signer.
            assert_eq!(
                reason(&[
                    "verify",
                    "f",
                    &sig,
                    "--cert",
                    other,
                    "--hash-alg",
                    alg,
                    "--json"
                ]),
                "unknown-signer"
            );
            // Other file: RSA recovers the signed digest, ECDSA cannot.
            let want = if key == "rsa.key" {
                "digest-mismatch"
            } else {
                "signature-mismatch"
            };
            assert_eq!(
                reason(&[
                    "verify",
                    "g",
                    &sig,
                    "--cert",
                    cert,
                    "--hash-alg",
                    alg,
                    "--json"
                ]),
                want
            );
            // Flipped byte inside the signature value (the message ends with it).
            let mut bytes = std::fs::read(env.path(&sig)).unwrap();
            let n = bytes.len();
            bytes[n - 5] ^= 0x40;
            let flipped = format!("{sig}.flipped");
            std::fs::write(env.path(&flipped), &bytes).unwrap();
            let r = reason(&[
                "verify",
                "f",
                &flipped,
                "--cert",
                cert,
                "--hash-alg",
                alg,
                "--json",
            ]);
            assert_eq!(r, "signature-mismatch", "{sig}");
        }
    }
    // The wrong --hash-alg gets a hint.
    env.fsverity_sign(
        "f",
        "f512.sig",
        "rsa.key",
        "rsa.crt",
        &["--hash-alg", "sha512"],
    );
    env.sealroot_fails(
        &["verify", "f", "f512.sig", "--cert", "rsa.crt"],
        1,
        "was the file signed with --hash-alg=sha512?",
    );
    // Truncated: not DER at all, malformed input (README "Exit status": 3).
    let bytes = std::fs::read(env.path("f512.sig")).unwrap();
    std::fs::write(env.path("short.sig"), &bytes[..bytes.len() / 2]).unwrap();
    env.sealroot_fails(
        &["verify", "f", "short.sig", "--cert", "rsa.crt"],
        3,
        "not a DER PKCS#7 message",
    );
    // --digest mode gives the same signature as signing the file.
    let mut cmd = fsverity().command();
    cmd.args(["digest", "f"]);
    let digest = env.ok(cmd).split_whitespace().next().unwrap().to_owned();
    env.sealroot_ok(&[
        "sign", "f", "file.sig", "--key", "rsa.key", "--cert", "rsa.crt",
    ]);
    let line = env.sealroot_ok(&[
        "sign",
        &format!("--digest={digest}"),
        "digest.sig",
        "--key",
        "rsa.key",
        "--cert",
        "rsa.crt",
    ]);
    assert_eq!(line.trim(), format!("Signed digest ({digest})"));
    assert_eq!(
        std::fs::read(env.path("file.sig")).unwrap(),
        std::fs::read(env.path("digest.sig")).unwrap()
    );
    env.sealroot_ok(&[
        "verify",
        &format!("--digest={digest}"),
        "digest.sig",
        "--cert",
        "rsa.crt",
    ]);
}

#[test]
fn openssl_cms_signatures_with_signed_attributes_are_handled_like_the_kernel() {
    let env = Env::new();
    env.data("f", 3000, 10);
    let content = env.formatted_digest("f", "sha256", &[]);
    let content = content.to_str().unwrap();
    env.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "k",
    ]);
    env.self_signed("k", "PEM", "cms", "c");
    // contentType, signingTime, messageDigest: accepted (the kernel allows
    // signed attributes for fs-verity signatures).
    env.openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-in",
        content,
        "-signer",
        "c",
        "-inkey",
        "k",
        "-outform",
        "DER",
        "-nosmimecap",
        "-md",
        "sha256",
        "-out",
        "attrs.sig",
    ]);
    let dump = env.openssl(&["asn1parse", "-inform", "DER", "-in", "attrs.sig"]);
    assert!(
        dump.contains("messageDigest") && dump.contains("signingTime"),
        "{dump}"
    );
    env.sealroot_ok(&["verify", "f", "attrs.sig", "--cert", "c"]);
    // With S/MIME capabilities (openssl's default): the kernel refuses
    // that outside Authenticode, and so do we.
    env.openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-in",
        content,
        "-signer",
        "c",
        "-inkey",
        "k",
        "-outform",
        "DER",
        "-md",
        "sha256",
        "-out",
        "smime.sig",
    ]);
    env.sealroot_fails(
        &["verify", "f", "smime.sig", "--cert", "c"],
        1,
        "smimeCapabilities (1.2.840.113549.1.9.15) is only allowed in Authenticode signatures",
    );
    // The messageDigest attribute names the mismatch for another file.
    env.data("g", 3000, 11);
    env.sealroot_fails(
        &["verify", "g", "attrs.sig", "--cert", "c"],
        1,
        "digest mismatch: the signer (messageDigest attribute) signed sha256",
    );
    // Signer named by subjectKeyIdentifier (SignerInfo version 3): like the
    // kernel, matched against trusted certificates only, by key id.
    env.openssl(&[
        "cms", "-sign", "-binary", "-keyid", "-noattr", "-nocerts", "-in", content, "-signer", "c",
        "-inkey", "k", "-outform", "DER", "-md", "sha256", "-out", "skid.sig",
    ]);
    env.sealroot_ok(&["verify", "f", "skid.sig", "--cert", "c"]);
    env.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "k2",
    ]);
    env.self_signed("k2", "PEM", "other", "c2");
    env.sealroot_fails(
        &["verify", "f", "skid.sig", "--cert", "c2"],
        1,
        "unknown signer: no trusted certificate matches the signer (subjectKeyIdentifier ",
    );
    // Attached content: refused like the kernel (EBADMSG).
    env.openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-in",
        content,
        "-signer",
        "c",
        "-inkey",
        "k",
        "-outform",
        "DER",
        "-nosmimecap",
        "-out",
        "attached.sig",
    ]);
    env.sealroot_fails(
        &["verify", "f", "attached.sig", "--cert", "c"],
        1,
        "carries attached content",
    );
}
