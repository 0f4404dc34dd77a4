//! One boot judging builtin signatures: which ones FS_IOC_ENABLE_VERITY
//! accepts (RSA 2048/3072/4096, ECDSA P-256/P-384, sha256 and sha512
//! fs-verity digests, embedded certificates) and with which errno it
//! refuses the others — and `sealroot verify` on the host reaching the same
//! verdict for the same bytes, or a documented stricter one.

use std::path::{Path, PathBuf};

use sealroot_testbed::Result;

use super::fixtures::{
    KeyPair, Pki, Verdict, data, fsverity, our_digest, reference_digest, run, sign_with, verify,
};
use super::scenario::{
    DISK, Script, assert_dmesg_contains, assert_enable_refused, boot, disk_from,
};

/// Which certificates travel in the signature.
#[derive(Debug, Clone, Copy)]
enum Embed<'a> {
    None,
    /// `--embed-cert`.
    Signer,
    /// `--embed-cert --extra-cert CERT`.
    SignerAnd(&'a Path),
}

/// What a signature does to the file it is for.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    None,
    /// The last byte (inside the signature value) flipped.
    FlipLastByte,
    /// Cut to half its length.
    Truncate,
    /// 300 pseudo-random bytes instead of DER.
    Garbage,
    /// A valid signature, for other content.
    OtherContent,
}

/// One signature case: the kernel's verdict on enabling the file with it,
/// and `sealroot verify`'s on the host.
struct Case {
    name: String,
    /// fs-verity parameters at enable (and verify) time.
    params: Vec<&'static str>,
    /// `None`: accepted; else the errno.
    kernel: Option<&'static str>,
    /// `None`: verified; else the `--json` reason.
    verify: Option<&'static str>,
    /// Text the refusal's message must contain.
    verify_error: Option<&'static str>,
    /// Why the verdicts legitimately differ (sealroot stricter than the
    /// kernel, `src/pkcs7/verify.rs`).
    stricter: Option<&'static str>,
}

/// The verifier reasons that correspond to each kernel errno: ENOKEY = no
/// trusted key for the signer; EKEYREJECTED = a key was found but the
/// signature does not verify (other key or other content); EBADMSG = the
/// PKCS#7 does not parse.
fn reasons_for(errno: &str) -> &'static [&'static str] {
    match errno {
        "ENOKEY" => &["unknown-signer", "untrusted-root"],
        // "chain": an embedded certificate's own signature does not verify
        // with the trusted key its authorityKeyIdentifier names.
        "EKEYREJECTED" => &["signature-mismatch", "digest-mismatch", "chain"],
        "EBADMSG" => &["profile"],
        other => panic!("no verifier reason is defined for {other}"),
    }
}

struct Bench {
    src: PathBuf,
    cases: Vec<Case>,
}

impl Bench {
    fn file(&self, name: &str) -> PathBuf {
        self.src.join("files").join(name)
    }

    fn sig(&self, name: &str) -> PathBuf {
        self.src.join("sigs").join(format!("{name}.sig"))
    }

    /// Writes files/NAME and sigs/NAME.sig (signed by `signer` with
    /// `sign_params`, then tampered with).
    fn signed(
        &self,
        name: &str,
        signer: &KeyPair,
        sign_params: &[&str],
        embed: Embed<'_>,
        tamper: Tamper,
    ) {
        let (embed, extra): (bool, Vec<&Path>) = match embed {
            Embed::None => (false, vec![]),
            Embed::Signer => (true, vec![]),
            Embed::SignerAnd(cert) => (true, vec![cert]),
        };
        let seed = name
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
        let file = self.file(name);
        std::fs::write(&file, data(20_000 + (seed % 5000) as usize, seed)).unwrap();
        let sig = self.sig(name);
        if let Tamper::OtherContent = tamper {
            let other = self.src.join("other-content");
            std::fs::write(&other, data(1000, seed + 1)).unwrap();
            sign_with(&other, &sig, signer, embed, &extra, sign_params);
            std::fs::remove_file(other).unwrap();
        } else {
            sign_with(&file, &sig, signer, embed, &extra, sign_params);
        }
        let mut bytes = std::fs::read(&sig).unwrap();
        match tamper {
            Tamper::None | Tamper::OtherContent => {}
            Tamper::FlipLastByte => *bytes.last_mut().unwrap() ^= 0x01,
            Tamper::Truncate => bytes.truncate(bytes.len() / 2),
            Tamper::Garbage => bytes = data(300, seed ^ 0xbad),
        }
        std::fs::write(&sig, bytes).unwrap();
    }

    fn case(
        &mut self,
        name: &str,
        params: &[&'static str],
        kernel: Option<&'static str>,
        verify: Option<&'static str>,
    ) {
        self.cases.push(Case {
            name: name.to_owned(),
            params: params.to_vec(),
            kernel,
            verify,
            verify_error: None,
            stricter: None,
        });
    }
}

fn copy_cert(pair: &KeyPair, dir: &Path, name: &str) {
    std::fs::copy(&pair.cert, dir.join(name)).unwrap();
}

/// FS_IOC_ENABLE_VERITY with our signatures: the kernel accepts every key
/// type and digest we make, refuses tampered, unknown and malformed ones
/// with ENOKEY/EKEYREJECTED/EBADMSG (and ENOKEY for anything while the
/// keyring is empty), and our host verifier agrees with each verdict. The
/// signature read back from the kernel (`show-signature`, `dump-metadata
/// signature`) is the one we wrote, byte for byte; `measure` equals our
/// digest; `keyring list` shows the certificates with their fingerprints.
#[test]
fn kernel_judges_our_signatures_and_our_verifier_agrees() -> Result<()> {
    let pki = Pki::get();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("disk");
    for d in ["files", "sigs", "certs", "out"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    let certs = src.join("certs");
    // The keyring: every signer except `stranger`; of `chain` and `noca`
    // only the issuing certificate.
    for family in ["rsa2048", "rsa3072", "rsa4096", "p256", "p384"] {
        copy_cert(&pki.signer(family), &certs, &format!("{family}.pem"));
    }
    copy_cert(&pki.ca("chain"), &certs, "chain-ca.pem");
    copy_cert(&pki.ca("noca"), &certs, "noca-root.pem");

    let mut bench = Bench {
        src: src.clone(),
        cases: Vec::new(),
    };
    for family in ["rsa2048", "rsa3072", "rsa4096", "p256", "p384"] {
        for alg in ["sha256", "sha512"] {
            let name = format!("{family}-{alg}");
            let params = ["--hash-alg", alg];
            bench.signed(
                &name,
                &pki.signer(family),
                &params,
                Embed::None,
                Tamper::None,
            );
            let params: &[&'static str] = if alg == "sha256" {
                &["--hash-alg", "sha256"]
            } else {
                &["--hash-alg", "sha512"]
            };
            bench.case(&name, params, None, None);
        }
    }
    let small_blocks: &[&'static str] = &["--block-size", "1024", "--salt", "5a17"];
    bench.signed(
        "rsa2048-1k-salt",
        &pki.signer("rsa2048"),
        small_blocks,
        Embed::None,
        Tamper::None,
    );
    bench.case("rsa2048-1k-salt", small_blocks, None, None);
    bench.signed(
        "p256-embedded",
        &pki.signer("p256"),
        &[],
        Embed::Signer,
        Tamper::None,
    );
    bench.case("p256-embedded", &[], None, None);
    // `fsverity sign` (fsverity-utils), the reference signer.
    let file = bench.file("fsverity-sign");
    std::fs::write(&file, data(12_345, 99)).unwrap();
    let signer = pki.signer("rsa2048");
    run(fsverity()
        .arg("sign")
        .arg(&file)
        .arg(bench.sig("fsverity-sign"))
        .arg("--key")
        .arg(&signer.key)
        .arg("--cert")
        .arg(&signer.cert));
    bench.case("fsverity-sign", &[], None, None);

    // Only the CA is trusted; the leaf travels in the signature.
    bench.signed(
        "chain-embedded",
        &pki.signer("chain"),
        &[],
        Embed::Signer,
        Tamper::None,
    );
    bench.case("chain-embedded", &[], None, None);
    bench.signed(
        "chain-not-embedded",
        &pki.signer("chain"),
        &[],
        Embed::None,
        Tamper::None,
    );
    bench.case(
        "chain-not-embedded",
        &[],
        Some("ENOKEY"),
        Some("unknown-signer"),
    );
    // The trusted "root" is not a CA: the kernel's trust walk does not look
    // at basicConstraints; ours does (RFC 5280 6.1.4 (k)).
    bench.signed(
        "noca-embedded",
        &pki.signer("noca"),
        &[],
        Embed::Signer,
        Tamper::None,
    );
    bench.cases.push(Case {
        name: "noca-embedded".into(),
        params: Vec::new(),
        kernel: None,
        verify: Some("chain"),
        verify_error: Some("is not a CA certificate (basicConstraints cA is not TRUE)"),
        stricter: Some(
            "sealroot verify requires every certificate that vouches for another to be a CA \
             (basicConstraints cA=TRUE); pkcs7_validate_trust() only checks the signature",
        ),
    });

    // An intermediate CA travels with the leaf; only the root is trusted.
    let inter_ca = pki.ca("inter").cert;
    bench.signed(
        "inter-chain-embedded",
        &pki.signer("inter"),
        &[],
        Embed::SignerAnd(&inter_ca),
        Tamper::None,
    );
    bench.case("inter-chain-embedded", &[], None, None);
    bench.signed(
        "inter-leaf-only",
        &pki.signer("inter"),
        &[],
        Embed::Signer,
        Tamper::None,
    );
    bench.case(
        "inter-leaf-only",
        &[],
        Some("ENOKEY"),
        Some("unknown-signer"),
    );
    // A leaf issued by a forged "chain CA" (same name and key id as the
    // trusted one, another key).
    bench.signed(
        "forged-embedded",
        &pki.signer("fakeca"),
        &[],
        Embed::Signer,
        Tamper::None,
    );
    bench.case("forged-embedded", &[], Some("EKEYREJECTED"), Some("chain"));
    bench.cases.last_mut().unwrap().verify_error =
        Some("the signature on certificate 'CN=forged leaf'");

    bench.signed(
        "stranger",
        &pki.signer("stranger"),
        &[],
        Embed::None,
        Tamper::None,
    );
    bench.case("stranger", &[], Some("ENOKEY"), Some("unknown-signer"));
    bench.signed(
        "flipped-rsa",
        &pki.signer("rsa2048"),
        &[],
        Embed::None,
        Tamper::FlipLastByte,
    );
    bench.case(
        "flipped-rsa",
        &[],
        Some("EKEYREJECTED"),
        Some("signature-mismatch"),
    );
    bench.signed(
        "flipped-p384",
        &pki.signer("p384"),
        &[],
        Embed::None,
        Tamper::FlipLastByte,
    );
    bench.case(
        "flipped-p384",
        &[],
        Some("EKEYREJECTED"),
        Some("signature-mismatch"),
    );
    bench.signed(
        "other-content",
        &pki.signer("rsa4096"),
        &[],
        Embed::None,
        Tamper::OtherContent,
    );
    bench.case(
        "other-content",
        &[],
        Some("EKEYREJECTED"),
        Some("digest-mismatch"),
    );
    // Signed with the default parameters, enabled with a salt: another
    // fs-verity digest.
    bench.signed(
        "other-salt",
        &pki.signer("p256"),
        &[],
        Embed::None,
        Tamper::None,
    );
    bench.case(
        "other-salt",
        &["--salt", "01"],
        Some("EKEYREJECTED"),
        Some("signature-mismatch"),
    );
    bench.signed(
        "truncated",
        &pki.signer("rsa2048"),
        &[],
        Embed::None,
        Tamper::Truncate,
    );
    bench.case("truncated", &[], Some("EBADMSG"), Some("profile"));
    bench.signed(
        "garbage",
        &pki.signer("rsa2048"),
        &[],
        Embed::None,
        Tamper::Garbage,
    );
    bench.case("garbage", &[], Some("EBADMSG"), Some("profile"));

    // The scenario.
    let mut s = Script::new();
    let vm_file = |name: &str| format!("{DISK}/files/{name}");
    let vm_sig = |name: &str| format!("{DISK}/sigs/{name}.sig");
    // While .fs-verity is empty the kernel answers ENOKEY to anything.
    s.sealroot(
        "empty-keyring/garbage",
        format!(
            "enable --signature={} {}",
            vm_sig("garbage"),
            vm_file("garbage")
        ),
    );
    s.sealroot(
        "empty-keyring/rsa2048-sha256",
        format!(
            "enable --hash-alg=sha256 --signature={} {}",
            vm_sig("rsa2048-sha256"),
            vm_file("rsa2048-sha256")
        ),
    );
    s.sealroot("keyring-add", format!("keyring add {DISK}/certs"));
    s.sealroot("keyring-list", format!("keyring list --cert {DISK}/certs"));
    s.sealroot(
        "keyring-list-json",
        format!("keyring list --json --cert {DISK}/certs"),
    );
    for case in &bench.cases {
        let (file, sig) = (vm_file(&case.name), vm_sig(&case.name));
        let params = case.params.join(" ");
        s.sealroot(
            &format!("enable/{}", case.name),
            format!("enable {params} --signature={sig} {file}"),
        );
        if case.kernel.is_none() {
            s.sealroot(&format!("measure/{}", case.name), format!("measure {file}"));
            s.sealroot(
                &format!("show-signature/{}", case.name),
                format!("show-signature --out={DISK}/out/{}.show {file}", case.name),
            );
            s.run(
                &format!("dump-metadata/{}", case.name),
                format!(
                    "sh -c '/bin/sealroot dump-metadata signature {file} > {DISK}/out/{}.dump'",
                    case.name
                ),
            );
        } else {
            // A refused enable leaves the file as it was: no verity.
            s.sealroot(&format!("after/{}", case.name), format!("measure {file}"));
        }
    }
    // Every accepted file reads back intact (one step for all of them).
    let accepted: Vec<String> = bench
        .cases
        .iter()
        .filter(|c| c.kernel.is_none())
        .map(|c| vm_file(&c.name))
        .collect();
    s.run("read-accepted", format!("sha256sum {}", accepted.join(" ")));
    s.dmesg();

    let disk = disk_from(&src)?;
    let log = boot("vm-trust-signatures", &s, &[&disk])?;

    // The empty keyring refuses everything with ENOKEY, even garbage.
    assert_enable_refused(&log, "empty-keyring/garbage", "ENOKEY")?
        .assert_stderr_contains("while the keyring is empty")?;
    assert_enable_refused(&log, "empty-keyring/rsa2048-sha256", "ENOKEY")?;

    // keyring add/list: all seven certificates, fingerprints as openssl
    // computes them.
    let added = log.result("keyring-add")?.assert_ok()?;
    let listed = log.result("keyring-list")?.assert_ok()?;
    listed.assert_stdout_contains(": 7 keys\n")?;
    let mut names: Vec<_> = std::fs::read_dir(&certs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for cert in &names {
        let fingerprint = super::fixtures::openssl_fingerprint(cert);
        added.assert_stdout_contains(&fingerprint)?;
        listed.assert_stdout_contains(&format!("[{fingerprint} from {DISK}/certs/"))?;
    }
    let json: serde_json::Value = serde_json::from_str(&log.result("keyring-list-json")?.stdout)
        .map_err(|e| log.failure(&format!("keyring list --json: {e}")))?;
    let entries = json.as_array().cloned().unwrap_or_default();
    if entries.len() != 7 || entries.iter().any(|e| e["key_type"] != "asymmetric") {
        return Err(log.failure(&format!("keyring list --json: {json:#}")));
    }

    for case in &bench.cases {
        let name = &case.name;
        let step = format!("enable/{name}");
        // The kernel's verdict.
        match case.kernel {
            None => {
                log.result(&step)?.assert_ok()?;
            }
            Some(errno) => {
                assert_enable_refused(&log, &step, errno)?;
                assert_kernel_errno_after(&log, name)?;
            }
        }
        // Our verifier, on the host, for the same bytes.
        let file = bench.file(name);
        let sig = bench.sig(name);
        let verdict = verify(&file, &sig, &certs, &case.params);
        let expected_reason = case.verify;
        match (&verdict, expected_reason) {
            (Verdict::Verified, None) => {}
            (Verdict::Refused { reason, error }, Some(want))
                if reason == want && case.verify_error.is_none_or(|e| error.contains(e)) => {}
            _ => {
                return Err(log.failure(&format!(
                    "{name}: sealroot verify said {verdict:?}, expected {expected_reason:?}"
                )));
            }
        }
        // Agreement: the same accept/refuse outcome and a matching reason,
        // unless sealroot is deliberately stricter.
        match (case.kernel, &verdict, case.stricter) {
            (None, Verdict::Verified, None) => {}
            (Some(errno), Verdict::Refused { reason, .. }, None)
                if reasons_for(errno).contains(&reason.as_str()) => {}
            (None, Verdict::Refused { .. }, Some(why)) => {
                // The documented difference, explicitly.
                println!("{name}: the kernel accepts, sealroot verify refuses: {why}");
            }
            _ => {
                return Err(log.failure(&format!(
                    "{name}: the kernel said {:?} but sealroot verify said {verdict:?}",
                    case.kernel
                )));
            }
        }
        if case.kernel.is_some() {
            continue;
        }
        // The kernel measures our digest (and fsverity-utils').
        let ours = our_digest(&file, &case.params);
        assert_eq!(ours, reference_digest(&file, &case.params), "{name}");
        log.result(&format!("measure/{name}"))?
            .assert_ok()?
            .assert_stdout_eq(&format!("{ours} {DISK}/files/{name}\n"))?;
        let content = std::fs::read(&file).unwrap();
        let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
        log.result("read-accepted")?
            .assert_ok()?
            .assert_stdout_contains(&format!("{sum}  {DISK}/files/{name}\n"))?;
        // The signature the kernel stored is ours, byte for byte.
        log.result(&format!("show-signature/{name}"))?.assert_ok()?;
        log.result(&format!("dump-metadata/{name}"))?.assert_ok()?;
        let written = std::fs::read(&sig).unwrap();
        for kind in ["show", "dump"] {
            let read_back = disk.read_file(&format!("/out/{name}.{kind}"))?;
            if read_back != written {
                return Err(log.failure(&format!(
                    "{name}: the signature read back ({kind}, {} bytes) differs from the one \
                     written ({} bytes)",
                    read_back.len(),
                    written.len()
                )));
            }
        }
    }

    assert_dmesg_contains(
        &log,
        &[
            "fs-verity keyring is empty, rejecting signed file!",
            "File's signing cert isn't in the fs-verity keyring",
            "Incorrect file signature",
            "Malformed file signature",
        ],
    )?;
    disk.fsck()?;
    Ok(())
}

/// After a refused enable the file has no fs-verity (measure: ENODATA).
fn assert_kernel_errno_after(log: &sealroot_testbed::BootLog, name: &str) -> Result<()> {
    super::scenario::assert_kernel_errno(
        log,
        &format!("after/{name}"),
        "FS_IOC_MEASURE_VERITY",
        "ENODATA",
    )?;
    Ok(())
}
