//! One boot judging builtin signatures: which ones FS_IOC_ENABLE_VERITY
//! accepts (RSA 2048/3072/4096, ECDSA P-256/P-384, sha256 and sha512
//! fs-verity digests, embedded certificates) and with which errno it
//! refuses the others — and `sealroot verify` on the host reaching the same
//! verdict for the same bytes, or a documented stricter one.

use std::path::{Path, PathBuf};

use sealroot_testbed::Result;

use super::fixtures::{
    KeyPair, Pki, Verdict, data, fsverity, openssl, our_digest, reference_digest, run, run_text,
    sign_with, verify,
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
    params: Vec<String>,
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
        // "profile": a message that parses but breaks the kernel's rules
        // (e.g. S/MIME capabilities outside Authenticode).
        "EKEYREJECTED" => &["signature-mismatch", "digest-mismatch", "chain", "profile"],
        // Malformed, or attached content.
        "EBADMSG" => &["profile"],
        // An algorithm the kernel's PKCS#7 parser does not know.
        "ENOPKG" => &["profile"],
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
    /// `sign_params`, then tampered with) and adds a case enabling it with
    /// the same parameters, expected to be accepted and verified.
    fn signed(
        &mut self,
        name: &str,
        signer: &KeyPair,
        sign_params: &[&str],
        embed: Embed<'_>,
        tamper: Tamper,
    ) -> &mut Case {
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
        self.push(name, sign_params)
    }

    /// Writes files/NAME and sigs/NAME.sig made by `openssl cms -sign
    /// -binary -outform DER ARGS` over the formatted digest that `fsverity
    /// digest --for-builtin-sig` prints (default parameters), and adds a
    /// case for it.
    fn cms_signed(&mut self, name: &str, signer: &KeyPair, args: &[&str]) -> &mut Case {
        let seed = name
            .bytes()
            .fold(11u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
        let file = self.file(name);
        std::fs::write(&file, data(15_000, seed)).unwrap();
        let hex = run_text(
            fsverity()
                .args(["digest", "--compact", "--for-builtin-sig"])
                .arg(&file),
        );
        let content = self.src.join("formatted");
        std::fs::write(&content, hex::decode(hex.trim()).unwrap()).unwrap();
        run(openssl()
            .args(["cms", "-sign", "-binary", "-outform", "DER", "-in"])
            .arg(&content)
            .arg("-signer")
            .arg(&signer.cert)
            .arg("-inkey")
            .arg(&signer.key)
            .arg("-out")
            .arg(self.sig(name))
            .args(args));
        std::fs::remove_file(content).unwrap();
        self.push(name, &[])
    }

    fn push(&mut self, name: &str, params: &[&str]) -> &mut Case {
        self.cases.push(Case {
            name: name.to_owned(),
            params: params.iter().map(|p| p.to_string()).collect(),
            kernel: None,
            verify: None,
            verify_error: None,
            stricter: None,
        });
        self.cases.last_mut().unwrap()
    }
}

impl Case {
    /// The kernel refuses with `errno`, `sealroot verify` with `reason`.
    fn refused(&mut self, errno: &'static str, reason: &'static str) -> &mut Case {
        self.kernel = Some(errno);
        self.verify = Some(reason);
        self
    }

    /// Enabled (and verified) with other fs-verity parameters than signed.
    fn enabled_with(&mut self, params: &[&str]) -> &mut Case {
        self.params = params.iter().map(|p| p.to_string()).collect();
        self
    }

    /// `sealroot verify`'s refusal must say this.
    fn saying(&mut self, text: &'static str) -> &mut Case {
        self.verify_error = Some(text);
        self
    }

    /// The kernel accepts, `sealroot verify` deliberately refuses with
    /// `reason`, for the documented reason `why`.
    fn stricter(&mut self, reason: &'static str, why: &'static str) -> &mut Case {
        self.verify = Some(reason);
        self.stricter = Some(why);
        self
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
    // The keyring: every signer except `stranger` (and the CA-as-signer
    // `certsign-only`); of `chain` and `noca` only the issuing certificate.
    for family in ["rsa2048", "rsa3072", "rsa4096", "p256", "p384"] {
        copy_cert(&pki.signer(family), &certs, &format!("{family}.pem"));
    }
    copy_cert(&pki.ca("chain"), &certs, "chain-ca.pem");
    copy_cert(&pki.ca("noca"), &certs, "noca-root.pem");
    copy_cert(&pki.signer("certsign-only"), &certs, "certsign-only.pem");

    let mut bench = Bench {
        src: src.clone(),
        cases: Vec::new(),
    };
    add_cases(&mut bench, pki);

    let s = scenario(&bench);
    let disk = disk_from(&src)?;
    let log = boot("vm-trust-signatures", &s, &[&disk])?;

    // The empty keyring refuses everything with ENOKEY, even garbage.
    assert_enable_refused(&log, "empty-keyring/garbage", "ENOKEY")?
        .assert_stderr_contains("while the keyring is empty")?;
    assert_enable_refused(&log, "empty-keyring/rsa2048-sha256", "ENOKEY")?;

    // keyring add/list: all eight certificates, fingerprints as openssl
    // computes them.
    let added = log.result("keyring-add")?.assert_ok()?;
    let listed = log.result("keyring-list")?.assert_ok()?;
    listed.assert_stdout_contains(": 8 keys\n")?;
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
    if entries.len() != 8 || entries.iter().any(|e| e["key_type"] != "asymmetric") {
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
                let refused = assert_enable_refused(&log, &step, errno)?;
                // The explanation covers each cause seen here.
                match name.as_str() {
                    "cms-smimecap" => refused.assert_stderr_contains("S/MIME capabilities")?,
                    "cms-attached" => refused.assert_stderr_contains("attached content")?,
                    "cms-rsa-pss" => refused.assert_stderr_contains("RSA-PSS")?,
                    "forged-embedded" => {
                        refused.assert_stderr_contains("its issuer did not sign")?
                    }
                    _ => refused,
                };
                assert_kernel_errno_after(&log, name)?;
            }
        }
        // Our verifier, on the host, for the same bytes.
        let file = bench.file(name);
        let sig = bench.sig(name);
        let params: Vec<&str> = case.params.iter().map(String::as_str).collect();
        let verdict = verify(&file, &sig, &certs, &params);
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
        let ours = our_digest(&file, &params);
        assert_eq!(ours, reference_digest(&file, &params), "{name}");
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

/// The boot: enable every case's file with its signature, and read back
/// what the kernel stored for the accepted ones.
fn scenario(bench: &Bench) -> Script {
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

    s
}

/// The cases, in scenario order.
fn add_cases(bench: &mut Bench, pki: &Pki) {
    use {Embed as E, Tamper as T};
    // Every key type we make, over sha256 and sha512 fs-verity digests.
    for family in ["rsa2048", "rsa3072", "rsa4096", "p256", "p384"] {
        for alg in ["sha256", "sha512"] {
            let name = format!("{family}-{alg}");
            let params = ["--hash-alg", alg];
            bench.signed(&name, &pki.signer(family), &params, E::None, T::None);
        }
    }
    let rsa = pki.signer("rsa2048");
    let small_blocks = ["--block-size", "1024", "--salt", "5a17"];
    bench.signed("rsa2048-1k-salt", &rsa, &small_blocks, E::None, T::None);
    bench.signed(
        "p256-embedded",
        &pki.signer("p256"),
        &[],
        E::Signer,
        T::None,
    );
    // `fsverity sign` (fsverity-utils), the reference signer.
    let file = bench.file("fsverity-sign");
    std::fs::write(&file, data(12_345, 99)).unwrap();
    run(fsverity()
        .arg("sign")
        .arg(&file)
        .arg(bench.sig("fsverity-sign"))
        .arg("--key")
        .arg(&rsa.key)
        .arg("--cert")
        .arg(&rsa.cert));
    bench.push("fsverity-sign", &[]);

    // Only the CA is trusted; the leaf travels in the signature.
    let chain_leaf = pki.signer("chain");
    bench.signed("chain-embedded", &chain_leaf, &[], E::Signer, T::None);
    bench
        .signed("chain-not-embedded", &chain_leaf, &[], E::None, T::None)
        .refused("ENOKEY", "unknown-signer");
    // An intermediate CA travels with the leaf; only the root is trusted.
    let inter_ca = pki.ca("inter").cert;
    let inter_leaf = pki.signer("inter");
    let with_inter = E::SignerAnd(&inter_ca);
    bench.signed(
        "inter-chain-embedded",
        &inter_leaf,
        &[],
        with_inter,
        T::None,
    );
    bench
        .signed("inter-leaf-only", &inter_leaf, &[], E::Signer, T::None)
        .refused("ENOKEY", "unknown-signer");
    // A leaf issued by a forged "chain CA" (same name and key id as the
    // trusted one, another key).
    bench
        .signed(
            "forged-embedded",
            &pki.signer("fakeca"),
            &[],
            E::Signer,
            T::None,
        )
        .refused("EKEYREJECTED", "chain")
        .saying("the signature on certificate 'CN=forged leaf'");
    // The trusted "root" is not a CA: the kernel's trust walk does not look
    // at basicConstraints; ours does (RFC 5280 6.1.4 (k)).
    bench
        .signed(
            "noca-embedded",
            &pki.signer("noca"),
            &[],
            E::Signer,
            T::None,
        )
        .stricter(
            "chain",
            "sealroot verify requires every certificate that vouches for another to be a CA \
             (basicConstraints cA=TRUE); pkcs7_validate_trust() only checks the signature",
        )
        .saying("is not a CA certificate (basicConstraints cA is not TRUE)");
    // The signer's keyUsage lacks digitalSignature: the kernel does not
    // look at keyUsage; we do (RFC 5280 4.2.1.3), and `sealroot sign`
    // refuses such a key, so openssl signs.
    let no_attrs = ["-noattr", "-nocerts", "-md", "sha256"];
    bench
        .cms_signed(
            "keyusage-certsign-only",
            &pki.signer("certsign-only"),
            &no_attrs,
        )
        .stricter(
            "key-usage",
            "sealroot verify requires the signer's keyUsage (when present) to include \
             digitalSignature; the kernel's public_key_verify_signature() ignores keyUsage",
        )
        .saying("may not sign data: its keyUsage lacks digitalSignature");

    // Unknown, tampered, mismatched and malformed signatures.
    bench
        .signed("stranger", &pki.signer("stranger"), &[], E::None, T::None)
        .refused("ENOKEY", "unknown-signer");
    bench
        .signed("flipped-rsa", &rsa, &[], E::None, T::FlipLastByte)
        .refused("EKEYREJECTED", "signature-mismatch");
    bench
        .signed(
            "flipped-p384",
            &pki.signer("p384"),
            &[],
            E::None,
            T::FlipLastByte,
        )
        .refused("EKEYREJECTED", "signature-mismatch");
    bench
        .signed(
            "other-content",
            &pki.signer("rsa4096"),
            &[],
            E::None,
            T::OtherContent,
        )
        .refused("EKEYREJECTED", "digest-mismatch");
    // Signed with the default parameters, enabled with a salt: another
    // fs-verity digest (ECDSA cannot tell which digest was signed).
    bench
        .signed("other-salt", &pki.signer("p256"), &[], E::None, T::None)
        .enabled_with(&["--salt", "01"])
        .refused("EKEYREJECTED", "signature-mismatch");
    bench
        .signed("truncated", &rsa, &[], E::None, T::Truncate)
        .refused("EBADMSG", "profile");
    bench
        .signed("garbage", &rsa, &[], E::None, T::Garbage)
        .refused("EBADMSG", "profile");

    // PKCS#7 variants from `openssl cms -sign`: what the kernel's profile
    // (src/pkcs7/profile.rs) says it accepts and refuses.
    let attrs = ["-nosmimecap", "-md", "sha256", "-nocerts"];
    bench.cms_signed("cms-signed-attributes", &rsa, &attrs);
    let keyid = ["-keyid", "-noattr", "-nocerts", "-md", "sha256"];
    bench.cms_signed("cms-keyid", &rsa, &keyid);
    bench.cms_signed(
        "cms-sha384",
        &rsa,
        &["-noattr", "-nocerts", "-md", "sha384"],
    );
    bench
        .cms_signed("cms-smimecap", &rsa, &["-md", "sha256", "-nocerts"])
        .refused("EKEYREJECTED", "profile");
    bench
        .cms_signed("cms-attached", &rsa, &["-nodetach", "-noattr", "-nocerts"])
        .refused("EBADMSG", "profile");
    let pss = [&no_attrs[..], &["-keyopt", "rsa_padding_mode:pss"]].concat();
    bench
        .cms_signed("cms-rsa-pss", &rsa, &pss)
        .refused("ENOPKG", "profile");
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
