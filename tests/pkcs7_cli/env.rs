//! The scratch-directory harness shared by the PKCS#7 cross-checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::tools::{fsverity, openssl};

pub const SEALROOT: &str = env!("CARGO_BIN_EXE_sealroot");

/// A scratch directory; commands run inside it.
pub struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, mut cmd: Command) -> Output {
        cmd.current_dir(self.dir.path());
        let out = cmd.output().expect("spawn");
        assert!(out.status.code().is_some(), "{cmd:?} died from a signal");
        out
    }

    pub fn ok(&self, cmd: Command) -> String {
        let desc = format!("{cmd:?}");
        let out = self.run(cmd);
        assert!(
            out.status.success(),
            "{desc} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub fn openssl(&self, args: &[&str]) -> String {
        let mut cmd = openssl().command();
        cmd.args(args);
        self.ok(cmd)
    }

    pub fn sealroot(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(SEALROOT);
        cmd.args(args);
        self.run(cmd)
    }

    pub fn sealroot_ok(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(SEALROOT);
        cmd.args(args);
        self.ok(cmd)
    }

    /// Asserts `sealroot args` exits with `code` and stderr contains `needle`.
    pub fn sealroot_fails(&self, args: &[&str], code: i32, needle: &str) -> String {
        let out = self.sealroot(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "sealroot {args:?}: {err}");
        assert!(
            err.contains(needle),
            "sealroot {args:?}: {err:?} lacks {needle:?}"
        );
        err
    }

    /// A file of pseudo-random bytes.
    pub fn data(&self, name: &str, len: usize, seed: u64) -> PathBuf {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// `fsverity sign` (the reference) into `out`.
    pub fn fsverity_sign(&self, file: &str, out: &str, key: &str, cert: &str, extra: &[&str]) {
        let mut cmd = fsverity().command();
        cmd.args(["sign", file, out, "--key", key, "--cert", cert]);
        cmd.args(extra);
        self.ok(cmd);
    }

    /// The signed bytes for `file`, built from `fsverity digest --compact`
    /// (the reference) and the documented header.
    pub fn formatted_digest(&self, file: &str, hash_alg: &str, extra: &[&str]) -> PathBuf {
        let mut cmd = fsverity().command();
        cmd.args(["digest", "--compact", "--hash-alg", hash_alg, file]);
        cmd.args(extra);
        let hex = self.ok(cmd);
        let digest = hex::decode(hex.trim()).unwrap();
        let alg: u16 = if hash_alg == "sha256" { 1 } else { 2 };
        let mut bytes = b"FSVerity".to_vec();
        bytes.extend_from_slice(&alg.to_le_bytes());
        bytes.extend_from_slice(&(digest.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&digest);
        let p = self.path(&format!("{file}.{hash_alg}.formatted"));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// `openssl cms -verify` of a detached DER signature.
    pub fn cms_verify(&self, sig: &str, content: &Path, trust: &[&str]) {
        let mut args = vec![
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            sig,
            "-purpose",
            "any",
            "-out",
            "/dev/null",
            "-content",
        ];
        let content = content.to_str().unwrap();
        args.push(content);
        args.extend_from_slice(trust);
        self.openssl(&args);
    }

    /// A self-signed certificate for `key` (PEM), as `openssl req -x509`.
    pub fn self_signed(&self, key: &str, keyform: &str, cn: &str, out: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-key",
            key,
            "-keyform",
            keyform,
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "2",
            "-out",
            out,
        ]);
    }
}

/// What kind of private key DER this is: "pkcs8" (version, then an
/// AlgorithmIdentifier SEQUENCE) or "pkcs1/sec1" (version, then INTEGER or
/// OCTET STRING) — so a fixture cannot silently be the other format.
pub fn der_key_kind(der: &[u8]) -> &'static str {
    // SEQUENCE hdr (2 or 4 bytes), INTEGER version (3 bytes), next tag.
    let hdr = if der[1] & 0x80 != 0 {
        2 + (der[1] & 0x7f) as usize
    } else {
        2
    };
    match der[hdr + 3] {
        0x30 => "pkcs8",
        0x02 => "pkcs1",
        0x04 => "sec1",
        _ => "unknown",
    }
}
