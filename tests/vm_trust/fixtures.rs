//! Host-side fixtures for the trust-core VM tests: keys and certificates
//! (made once per test process), signatures, data files, and the reference
//! tools (`openssl`, `fsverity` from fsverity-utils) that provide expected
//! values.
//!
//! Key families, each in its own directory as `ca.{key,crt}.pem` and
//! `signer.{key,crt}.pem`:
//! - `rsa2048`, `p256`, `p384`: `sealroot keygen` (CA + signer), so the
//!   kernel also judges the certificates our keygen writes;
//! - `rsa3072`, `rsa4096`, `stranger`: `openssl req -x509` self-signed
//!   signers (RSA 4096 key generation is slow in our debug build);
//! - `chain`: `sealroot keygen --type p256` CA + leaf, for embedded-cert
//!   signatures and CA-restricted keyrings; `grandleaf`: a certificate
//!   issued by the chain *leaf* with `openssl x509 -req`;
//! - `inter`: an intermediate CA issued by the chain CA (`ca`) and a leaf
//!   it issued (`signer`), for embedded chains (`--extra-cert`);
//! - `noca`: a self-signed root with basicConstraints cA=FALSE and a leaf it
//!   issued (openssl): the kernel does not check cA, sealroot does;
//! - `certsign-only`: a self-signed CA whose keyUsage is keyCertSign only
//!   (no digitalSignature), used as a data signer;
//! - `fakeca`: a forged "chain CA" (same subject and subjectKeyIdentifier,
//!   another key) and a leaf it issued: the kernel finds the real CA by key
//!   id and rejects the signature.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const SEALROOT: &str = env!("CARGO_BIN_EXE_sealroot");

/// Where a family's files are.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub key: PathBuf,
    pub cert: PathBuf,
}

/// The certificates and keys, made once per test process.
pub struct Pki {
    dir: tempfile::TempDir,
}

/// Runs a host command; panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `run`, returning stdout as text.
pub fn run_text(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("UTF-8 output")
}

pub fn sealroot() -> Command {
    Command::new(SEALROOT)
}

pub fn openssl() -> Command {
    Command::new("openssl")
}

pub fn fsverity() -> Command {
    Command::new("fsverity")
}

impl Pki {
    pub fn get() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(Pki::make)
    }

    pub fn signer(&self, family: &str) -> KeyPair {
        self.pair(family, "signer")
    }

    pub fn ca(&self, family: &str) -> KeyPair {
        self.pair(family, "ca")
    }

    fn pair(&self, family: &str, role: &str) -> KeyPair {
        let dir = self.dir.path().join(family);
        let pair = KeyPair {
            key: dir.join(format!("{role}.key.pem")),
            cert: dir.join(format!("{role}.crt.pem")),
        };
        assert!(pair.cert.is_file(), "no fixture {family}/{role}");
        pair
    }

    fn make() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let root = pki.dir.path();
        for (family, kind) in [("rsa2048", "rsa2048"), ("p256", "p256"), ("p384", "p384")] {
            run(sealroot()
                .args([
                    "keygen",
                    "--type",
                    kind,
                    "--subject",
                    &format!("CN={family} signer"),
                    "--ca-subject",
                    &format!("CN={family} CA"),
                    "--days",
                    "30",
                    "--out-dir",
                ])
                .arg(root.join(family)));
        }
        run(sealroot()
            .args([
                "keygen",
                "--type",
                "p256",
                "--subject",
                "CN=chain leaf",
                "--ca-subject",
                "CN=chain CA",
                "--days",
                "30",
                "--out-dir",
            ])
            .arg(root.join("chain")));
        for (family, bits) in [("rsa3072", 3072), ("rsa4096", 4096), ("stranger", 2048)] {
            let dir = root.join(family);
            std::fs::create_dir_all(&dir).unwrap();
            let key = dir.join("signer.key.pem");
            genrsa(&key, bits);
            self_signed(
                &key,
                &format!("/CN={family} signer"),
                &dir.join("signer.crt.pem"),
            );
        }

        // A leaf issued by the chain leaf (not a CA).
        let leaf = pki.signer("chain");
        issue_leaf(
            &root.join("grandleaf"),
            "/CN=grandleaf",
            &leaf,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        );

        // An intermediate CA issued by the chain CA, and a leaf it issued.
        let inter = root.join("inter");
        issue(
            &inter,
            "ca",
            "/CN=intermediate CA",
            &pki.ca("chain"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n",
        );
        issue_leaf(
            &inter,
            "/CN=intermediate leaf",
            &pki.ca("inter"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        );

        // A root that is not a CA, and a leaf it issued.
        let noca = root.join("noca");
        std::fs::create_dir_all(&noca).unwrap();
        genrsa(&noca.join("ca.key.pem"), 2048);
        self_signed_with(
            &noca.join("ca.key.pem"),
            "noca root",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
            &noca.join("ca.crt.pem"),
        );
        issue_leaf(
            &noca,
            "/CN=noca leaf",
            &pki.ca("noca"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        );

        // A CA certificate whose keyUsage allows only certificate signing,
        // used to sign data directly.
        let certsign = root.join("certsign-only");
        std::fs::create_dir_all(&certsign).unwrap();
        genrsa(&certsign.join("signer.key.pem"), 2048);
        self_signed_with(
            &certsign.join("signer.key.pem"),
            "certsign-only CA",
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
            &certsign.join("signer.crt.pem"),
        );

        // A forged chain CA: same subject and key id, different key.
        let chain_ca = sealroot::crypto::Cert::load(&pki.ca("chain").cert).unwrap();
        let skid = hex::encode(chain_ca[0].subject_key_id().expect("keygen writes SKIDs"));
        let fake = root.join("fakeca");
        std::fs::create_dir_all(&fake).unwrap();
        run(openssl()
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(fake.join("ca.key.pem")));
        self_signed_with(
            &fake.join("ca.key.pem"),
            "chain CA",
            &format!(
                "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n\
                 subjectKeyIdentifier={skid}\nauthorityKeyIdentifier=keyid\n"
            ),
            &fake.join("ca.crt.pem"),
        );
        issue_leaf(
            &fake,
            "/CN=forged leaf",
            &pki.ca("fakeca"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        );
        pki
    }
}

fn genrsa(out: &Path, bits: u32) {
    run(openssl()
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
        ])
        .arg(out));
}

/// `openssl req -x509` with openssl's default extensions (cA=TRUE, SKID,
/// AKID).
fn self_signed(key: &Path, subject: &str, out: &Path) {
    run(openssl()
        .args(["req", "-x509", "-days", "30", "-subj", subject, "-key"])
        .arg(key)
        .arg("-out")
        .arg(out));
}

/// `openssl req -x509` with exactly the extensions in `ext` (a config
/// section), subject CN=`cn`.
fn self_signed_with(key: &Path, cn: &str, ext: &str, out: &Path) {
    let config = out.with_extension("cnf");
    std::fs::write(
        &config,
        format!(
            "[req]\ndistinguished_name=dn\nprompt=no\nx509_extensions=ext\n[dn]\nCN={cn}\n[ext]\n{ext}"
        ),
    )
    .unwrap();
    run(openssl()
        .args(["req", "-x509", "-days", "30", "-config"])
        .arg(&config)
        .arg("-key")
        .arg(key)
        .arg("-out")
        .arg(out));
}

/// A P-256 leaf `dir/signer.{key,crt}.pem` issued by `issuer`.
fn issue_leaf(dir: &Path, subject: &str, issuer: &KeyPair, ext: &str) {
    issue(dir, "signer", subject, issuer, ext);
}

/// A P-256 certificate `dir/ROLE.{key,crt}.pem` issued by `issuer` with
/// `openssl x509 -req` (extensions `ext` plus SKID and AKID by key id).
fn issue(dir: &Path, role: &str, subject: &str, issuer: &KeyPair, ext: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join(format!("{role}.key.pem"));
    let csr = dir.join(format!("{role}.csr"));
    let extfile = dir.join(format!("{role}.ext"));
    run(openssl()
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key));
    run(openssl()
        .args(["req", "-new", "-subj", subject, "-key"])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    std::fs::write(
        &extfile,
        format!("{ext}subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"),
    )
    .unwrap();
    run(openssl()
        .args([
            "x509",
            "-req",
            "-days",
            "30",
            "-set_serial",
            "0x5ea1",
            "-in",
        ])
        .arg(&csr)
        .arg("-CA")
        .arg(&issuer.cert)
        .arg("-CAkey")
        .arg(&issuer.key)
        .arg("-extfile")
        .arg(&extfile)
        .arg("-out")
        .arg(dir.join(format!("{role}.crt.pem"))));
}

/// The SHA-256 fingerprint of a PEM certificate as `openssl x509
/// -fingerprint -sha256` prints it, in sealroot's `sha256:<hex>` spelling.
pub fn openssl_fingerprint(cert: &Path) -> String {
    let out = run_text(
        openssl()
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert),
    );
    let hex = out
        .trim()
        .rsplit_once('=')
        .expect("openssl prints NAME=FINGERPRINT")
        .1
        .replace(':', "")
        .to_lowercase();
    format!("sha256:{hex}")
}

/// Deterministic pseudo-random bytes (xorshift), distinct per seed.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `sealroot sign FILE OUT --key --cert [--embed-cert] PARAMS` on the host.
pub fn sign(file: &Path, out: &Path, signer: &KeyPair, embed: bool, params: &[&str]) {
    sign_with(file, out, signer, embed, &[], params);
}

/// [`sign`], also embedding `extra` certificates (`--extra-cert`).
pub fn sign_with(
    file: &Path,
    out: &Path,
    signer: &KeyPair,
    embed: bool,
    extra: &[&Path],
    params: &[&str],
) {
    let mut cmd = sealroot();
    cmd.arg("sign")
        .arg(file)
        .arg(out)
        .arg("--key")
        .arg(&signer.key)
        .arg("--cert")
        .arg(&signer.cert)
        .args(params);
    if embed {
        cmd.arg("--embed-cert");
    }
    for cert in extra {
        cmd.arg("--extra-cert").arg(cert);
    }
    run(&mut cmd);
}

/// The fs-verity digest of a host file by fsverity-utils (the reference):
/// `fsverity digest --compact PARAMS FILE`, as `ALG:HEX`.
pub fn reference_digest(file: &Path, params: &[&str]) -> String {
    let hex = run_text(
        fsverity()
            .args(["digest", "--compact"])
            .args(params)
            .arg(file),
    );
    let alg = params
        .windows(2)
        .find(|w| w[0] == "--hash-alg")
        .map_or("sha256", |w| w[1]);
    format!("{alg}:{}", hex.trim())
}

/// `sealroot digest --compact PARAMS FILE` on the host, as `ALG:HEX`.
pub fn our_digest(file: &Path, params: &[&str]) -> String {
    let out = run_text(sealroot().arg("digest").args(params).arg(file));
    out.split_whitespace()
        .next()
        .expect("sealroot digest prints ALG:HEX FILE")
        .to_owned()
}

/// What `sealroot verify --json` on the host decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Verified,
    Refused { reason: String, error: String },
}

/// `sealroot verify FILE SIG --certs-dir=TRUSTED --json PARAMS`.
pub fn verify(file: &Path, sig: &Path, trusted_dir: &Path, params: &[&str]) -> Verdict {
    let out = sealroot()
        .arg("verify")
        .arg(file)
        .arg(sig)
        .arg("--certs-dir")
        .arg(trusted_dir)
        .arg("--json")
        .args(params)
        .output()
        .expect("run sealroot verify");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sealroot verify printed no JSON ({e}), rc={:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    match (out.status.code(), json["verified"].as_bool()) {
        (Some(0), Some(true)) => Verdict::Verified,
        // 3: a signature file that is not DER PKCS#7 at all (malformed
        // input, README "Exit status"), reported with reason "profile".
        (Some(1), Some(false)) | (Some(3), Some(false))
            if out.status.code() == Some(1) || json["reason"] == "profile" =>
        {
            Verdict::Refused {
                reason: json["reason"].as_str().unwrap_or_default().to_owned(),
                error: json["error"].as_str().unwrap_or_default().to_owned(),
            }
        }
        (code, _) => panic!(
            "sealroot verify: unexpected exit {code:?} / JSON {json}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
