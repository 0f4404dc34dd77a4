//! Keys and certificates the kernel cannot use, and malformed inputs, are
//! refused with messages that name the file and the reason.

use super::env::Env;

#[test]
fn keys_the_kernel_cannot_use_are_refused_clearly() {
    let env = Env::new();
    env.data("f", 100, 8);
    env.openssl(&["genpkey", "-algorithm", "RSA", "-out", "rsa.key"]);
    env.self_signed("rsa.key", "PEM", "rsa", "rsa.crt");
    env.openssl(&["genpkey", "-algorithm", "RSA", "-out", "rsa2.key"]);
    let sign = |key: &str, cert: &str, code: i32, needle: &str| {
        let out_sig = format!("{key}.sig");
        env.sealroot_fails(
            &["sign", "f", &out_sig, "--key", key, "--cert", cert],
            code,
            needle,
        );
        assert!(!env.path(&out_sig).exists(), "no partial output for {key}");
    };
    env.openssl(&["genpkey", "-algorithm", "ed25519", "-out", "ed25519.key"]);
    sign(
        "ed25519.key",
        "rsa.crt",
        3,
        "ed25519.key: Ed25519/Ed448 keys cannot be used",
    );
    env.openssl(&["genpkey", "-algorithm", "ed448", "-out", "ed448.key"]);
    sign(
        "ed448.key",
        "rsa.crt",
        3,
        "Ed25519/Ed448 keys cannot be used",
    );
    env.openssl(&["genpkey", "-algorithm", "RSA-PSS", "-out", "pss.key"]);
    sign(
        "pss.key",
        "rsa.crt",
        3,
        "RSA-PSS keys and signatures cannot be used",
    );
    env.openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        "rsa1024.key",
    ]);
    sign("rsa1024.key", "rsa.crt", 3, "1024-bit RSA key is too weak");
    env.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-521",
        "-out",
        "p521.key",
    ]);
    sign(
        "p521.key",
        "rsa.crt",
        3,
        "elliptic curve P-521 (kernel 6.10+ knows it, sealroot does not)",
    );
    env.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:secp256k1",
        "-out",
        "k1.key",
    ]);
    sign(
        "k1.key",
        "rsa.crt",
        3,
        "elliptic curve secp256k1 (1.3.132.0.10) is not supported",
    );
    sign(
        "rsa2.key",
        "rsa.crt",
        3,
        "the private key rsa2.key does not belong to the certificate rsa.crt (CN=rsa)",
    );
    // Encrypted PKCS#8.
    env.openssl(&[
        "pkcs8", "-topk8", "-in", "rsa.key", "-passout", "pass:x", "-out", "enc.key",
    ]);
    sign(
        "enc.key",
        "rsa.crt",
        3,
        "encrypted private keys are not supported",
    );
    // Certificates with keys the kernel cannot use.
    env.self_signed("ed25519.key", "PEM", "ed", "ed.crt");
    sign(
        "rsa.key",
        "ed.crt",
        3,
        "ed.crt: Ed25519/Ed448 keys cannot be used",
    );
    env.openssl(&[
        "req", "-x509", "-key", "pss.key", "-subj", "/CN=pss", "-days", "2", "-out", "pss.crt",
    ]);
    sign("rsa.key", "pss.crt", 3, "pss.crt: RSA-PSS");
    // Malformed inputs, named by file.
    let pem = std::fs::read_to_string(env.path("rsa.key")).unwrap();
    std::fs::write(env.path("bad64.key"), pem.replacen("MII", "M!I", 1)).unwrap();
    sign(
        "bad64.key",
        "rsa.crt",
        3,
        "bad64.key: PEM block 'PRIVATE KEY' does not decode",
    );
    std::fs::write(env.path("noend.key"), &pem[..pem.len() - 30]).unwrap();
    sign(
        "noend.key",
        "rsa.crt",
        3,
        "noend.key: PEM block 'PRIVATE KEY' has no '-----END PRIVATE KEY-----' line",
    );
    sign(
        "rsa.crt",
        "rsa.crt",
        3,
        "rsa.crt: expected a PEM private key block ('PRIVATE KEY' (PKCS#8), 'RSA PRIVATE KEY' (PKCS#1) or 'EC PRIVATE KEY' (SEC1)), found 'CERTIFICATE'",
    );
    sign(
        "rsa.key",
        "rsa.key",
        3,
        "rsa.key: expected PEM 'CERTIFICATE' blocks, found 'PRIVATE KEY'",
    );
    env.openssl(&[
        "pkey", "-in", "rsa.key", "-outform", "DER", "-out", "rsa.der",
    ]);
    let der = std::fs::read(env.path("rsa.der")).unwrap();
    std::fs::write(env.path("trunc.der"), &der[..der.len() - 7]).unwrap();
    sign(
        "trunc.der",
        "rsa.crt",
        3,
        "trunc.der: not PEM, and not a DER PKCS#8, PKCS#1 or SEC1 private key",
    );
    env.openssl(&[
        "x509",
        "-in",
        "rsa.crt",
        "-outform",
        "DER",
        "-out",
        "rsa.crt.der",
    ]);
    let der = std::fs::read(env.path("rsa.crt.der")).unwrap();
    std::fs::write(env.path("trunc.crt"), &der[..der.len() - 7]).unwrap();
    sign("rsa.key", "trunc.crt", 3, "trunc.crt: neither PEM nor DER");
    sign(
        "rsa.crt.der",
        "rsa.crt",
        3,
        "rsa.crt.der: this is an X.509 certificate, not a private key",
    );
    std::fs::write(env.path("empty.key"), "").unwrap();
    sign(
        "empty.key",
        "rsa.crt",
        3,
        "empty.key: not PEM, and not a DER",
    );
}
