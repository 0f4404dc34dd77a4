//! Shared by the `repo_*`, `seal_*` and `vm_deploy` tests: a real-world
//! shaped sample image (several layers, gzip and zstd, whiteouts, an opaque
//! directory, hardlinks, symlinks, xattrs, /var content), keys, and running
//! the `sealroot` binary. Builds on `oci_support`'s fixture builders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::oci_support::fixture::{Fixture, ImageBuilder, LayerBuilder};
use sealroot::oci::Compression;

pub const TAG: &str = "v1";

/// Deterministic pseudo-random bytes (xorshift), so layers are the same on
/// every run and machine.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The three layers of the sample image, as uncompressed tars.
pub fn sample_layers(variant: u64) -> Vec<(Vec<u8>, Compression)> {
    let base = LayerBuilder::new()
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .dir("usr/lib", 0o755)
        .file("usr/bin/tool", &bytes(1, 10_000), 0o755)
        .hardlink("usr/bin/tool-alias", "usr/bin/tool")
        .file("usr/lib/libbig.so", &bytes(2 + variant, 300_000), 0o644)
        .symlink("bin", "usr/bin")
        .dir("etc", 0o755)
        .file("etc/hostname", b"sealed\n", 0o644)
        .file("etc/app.conf", &bytes(3, 200), 0o600)
        .file_pax(
            "usr/bin/ping",
            &bytes(4, 5000),
            &[(
                "SCHILY.xattr.security.capability",
                &[1, 0, 0, 2, 0, 0x20, 0, 0][..],
            )],
        )
        .dir("var", 0o755)
        .dir("var/lib", 0o755)
        .dir("var/lib/app", 0o750)
        .file_owned("var/lib/app/state.db", &bytes(5, 4096), 0o640, 42, 42)
        .file("var/lib/app/small", b"tiny\n", 0o644)
        .symlink("var/run", "../run")
        .dir("opt", 0o755)
        .dir("opt/old", 0o755)
        .file("opt/old/gone", &bytes(6, 100), 0o644)
        .file("opt/remove-me", &bytes(7, 100), 0o644)
        .finish();
    let update = LayerBuilder::new()
        .file("usr/bin/tool", &bytes(8, 12_000), 0o755)
        .whiteout("opt/remove-me")
        .opaque("opt/old")
        .file("opt/old/new", &bytes(9, 1000), 0o644)
        .file_pax(
            "usr/lib/user-xattr",
            &bytes(10, 70),
            &[("SCHILY.xattr.user.origin", b"layer2")],
        )
        .finish();
    let top = LayerBuilder::new()
        .dir("usr/share", 0o755)
        .file("usr/share/doc.txt", &bytes(11, 65), 0o644)
        .file("usr/share/empty", b"", 0o644)
        .hardlink("usr/share/doc-link", "usr/share/doc.txt")
        .fifo("var/lib/app/fifo")
        .finish();
    vec![
        (base, Compression::Gzip),
        (update, Compression::Zstd),
        (top, Compression::Gzip),
    ]
}

/// Writes the sample image into the layout `dir` tagged [`TAG`].
pub fn sample_image(dir: &Path) -> Fixture {
    sample_image_variant(dir, 0)
}

/// A variant with different content (another image).
pub fn sample_image_variant(dir: &Path, variant: u64) -> Fixture {
    let mut b = ImageBuilder::new();
    for (tar, c) in sample_layers(variant) {
        b = b.layer(tar, c);
    }
    b.write(dir, TAG)
}

pub fn sealroot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealroot"))
}

/// Runs `sealroot ARGS`, returns the output whatever the status.
pub fn sr(args: &[&str]) -> Output {
    sealroot().args(args).output().expect("run sealroot")
}

/// Runs `sealroot ARGS` and fails the test unless it exits 0.
pub fn sr_ok(args: &[&str]) -> String {
    let out = sr(args);
    assert!(
        out.status.success(),
        "sealroot {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `sealroot ARGS`, requires exit status `code`; returns stdout+stderr.
pub fn sr_fails(args: &[&str], code: i32) -> String {
    let out = sr(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "sealroot {args:?}:\n{text}");
    text
}

/// A signing key pair made by `sealroot keygen`.
pub struct Keys {
    pub dir: PathBuf,
}

impl Keys {
    pub fn new(dir: &Path, key_type: &str, subject: &str) -> Keys {
        sr_ok(&[
            "keygen",
            "--out-dir",
            dir.to_str().unwrap(),
            "--type",
            key_type,
            "--self-signed",
            "--subject",
            subject,
        ]);
        Keys {
            dir: dir.to_owned(),
        }
    }

    pub fn key(&self) -> String {
        self.find("key")
    }

    pub fn cert(&self) -> String {
        self.find("crt")
    }

    fn find(&self, kind: &str) -> String {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("signer") && n.contains(&format!(".{kind}"))
            })
            .collect();
        names.sort();
        assert_eq!(
            names.len(),
            1,
            "one signer {kind} in {}: {names:?}",
            self.dir.display()
        );
        names[0].to_str().unwrap().to_owned()
    }
}

/// `oci:DIR:TAG`.
pub fn image_ref(dir: &Path) -> String {
    format!("oci:{}:{TAG}", dir.display())
}

/// Seals the image in `dir` with `keys`; returns the `--json` output.
pub fn seal(dir: &Path, keys: &Keys, extra: &[&str]) -> serde_json::Value {
    let r = image_ref(dir);
    let key = keys.key();
    let cert = keys.cert();
    let mut args = vec!["oci", "seal", &r, "--key", &key, "--cert", &cert, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&sr_ok(&args)).unwrap()
}

/// openssl (the reference for the kernel's PKCS#7 profile) accepts `der` as
/// a detached PKCS#7 by `cert` over the kernel's formatted sha256 fs-verity
/// digest (`"FSVerity" | le16 1 | le16 32 | digest`). Files go to `tmp`.
pub fn openssl_verifies(tmp: &Path, name: &str, der: &[u8], digest_hex: &str, cert: &str) {
    let sig = tmp.join(format!("{name}.p7s"));
    std::fs::write(&sig, der).unwrap();
    let mut content = b"FSVerity".to_vec();
    content.extend([1, 0, 32, 0]);
    content.extend(hex::decode(digest_hex).unwrap());
    let cpath = tmp.join(format!("{name}.bin"));
    std::fs::write(&cpath, content).unwrap();
    crate::oci_support::run(Command::new("openssl").args([
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-noverify",
        "-in",
        sig.to_str().unwrap(),
        "-content",
        cpath.to_str().unwrap(),
        "-certfile",
        cert,
        "-out",
        "/dev/null",
    ]));
}
