//! Per-object signatures on a real kernel (tests/bed, SeaBIOS): `sealroot
//! deploy` gives every object fs-verity with its builtin signature from the
//! image's bundle; an object shared with another image keeps the signature
//! it has when the kernel accepts it (one builtin signature per file: the
//! first), and is re-created when it has none; `sealroot repo fsck --cert`
//! reports objects whose signature does not verify against the trust given;
//! `sealroot repo enable-verity` attaches the signatures to a deployment
//! made on the host. IPE itself is `tests/vm_ipe.rs`.
//!
//! One boot.

mod oci_support;
mod repo_support;

use std::path::Path;
use std::process::Command;

use repo_support::{Keys, TAG, bytes, sample_image_variant, seal, sr_ok};
use sealroot::objsig::Bundle;
use sealroot::verity::FsVerityDigest;
use sealroot_testbed::{Initramfs, Kernel, MIB, Result, Vm, ext4_image, static_binaries};
use serde_json::Value;

/// The fs-verity digest of `content`, by fsverity-utils.
fn object_digest(dir: &Path, content: &[u8]) -> FsVerityDigest {
    let probe = dir.join("probe");
    std::fs::write(&probe, content).unwrap();
    let out = Command::new("fsverity")
        .args(["digest", "--compact"])
        .arg(&probe)
        .output()
        .expect("fsverity (fsverity-utils)");
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap();
    FsVerityDigest::from_hex(sealroot::verity::HashAlgorithm::Sha256, hex.trim()).unwrap()
}

fn bundle(layout: &Path, sealed: &Value) -> Bundle {
    let d = &sealed["objectSignatures"]["digest"].as_str().unwrap()[7..];
    Bundle::parse(std::fs::read(layout.join("blobs/sha256").join(d)).unwrap()).unwrap()
}

fn rel(d: &FsVerityDigest) -> String {
    let h = d.to_hex();
    format!("{}/{}", &h[..2], &h[2..])
}

#[test]
fn deploy_attaches_object_signatures_and_the_first_one_stays() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let tmp = tempfile::tempdir().unwrap();
    let disk_dir = tmp.path().join("disk");
    // Two images sharing most objects (variant 1 differs in libbig.so),
    // sealed with object signatures by two keys.
    let (la, lb) = (disk_dir.join("a"), disk_dir.join("b"));
    sample_image_variant(&la, 0);
    sample_image_variant(&lb, 1);
    let ka = Keys::new(&disk_dir.join("ka"), "p256", "CN=key A");
    let kb = Keys::new(&disk_dir.join("kb"), "rsa2048", "CN=key B");
    let sa = seal(&la, &ka, &["--object-signatures"]);
    let sb = seal(&lb, &kb, &["--object-signatures"]);
    let (ba, bb) = (bundle(&la, &sa), bundle(&lb, &sb));
    // usr/bin/ping is in both images; libbig.so of variant 1 only in B.
    let shared = object_digest(tmp.path(), &bytes(4, 5000));
    let only_b = object_digest(tmp.path(), &bytes(3, 300_000));
    assert!(ba.signature(&shared).is_some() && bb.signature(&shared).is_some());
    assert!(ba.signature(&only_b).is_none() && bb.signature(&only_b).is_some());
    // What the kernel must hold as builtin signatures.
    std::fs::write(disk_dir.join("shared.by-b.p7s"), bb.pkcs7(&shared).unwrap()).unwrap();
    std::fs::write(disk_dir.join("shared.by-a.p7s"), ba.pkcs7(&shared).unwrap()).unwrap();
    // A deployment of A made on the host (no fs-verity here). Sysroots
    // must exist (deploy creates only the repository in them).
    for d in ["hostroot", "root"] {
        std::fs::create_dir_all(disk_dir.join(d)).unwrap();
    }
    let host: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &format!("oci:{}:{TAG}", la.display()),
        "--sysroot",
        disk_dir.join("hostroot").to_str().unwrap(),
        "--signatures",
        "builtin",
        "--cert",
        &ka.cert(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(host["deployment"]["verity"], false, "{host}");
    let disk = ext4_image(&disk_dir, 96 * MIB)?;

    let scenario = format!(
        "SHARED={}; ONLYB={}; TAG={TAG}\n",
        rel(&shared),
        rel(&only_b)
    ) + r#"
S=/bin/sealroot; D=/mnt/disk; R=$D/root/sealroot; H=$D/hostroot/sealroot
bed_run keyring_add $S keyring add $D/ka $D/kb
# A detached: its objects get fs-verity without signatures.
bed_run deploy_a_detached $S deploy oci:$D/a:$TAG --sysroot $D/root --signatures detached --cert $D/ka --json
bed_run shared_unsigned $S show-signature --out /tmp/sig $R/objects/$SHARED
# B builtin: shared objects are re-created with B's signature.
bed_run deploy_b $S deploy oci:$D/b:$TAG --sysroot $D/root --signatures builtin --cert $D/kb --json
same_sig() { $S show-signature --out /tmp/sig "$1" && cmp /tmp/sig "$2" && echo same; }
bed_run shared_by_b same_sig $R/objects/$SHARED $D/shared.by-b.p7s
bed_run only_b_signed $S show-signature --out /tmp/sig $R/objects/$ONLYB
# A again, builtin: the shared object keeps B's signature (the first).
bed_run deploy_a $S deploy oci:$D/a:$TAG --sysroot $D/root --signatures builtin --cert $D/ka --json
bed_run shared_still_b same_sig $R/objects/$SHARED $D/shared.by-b.p7s
bed_run fsck_both $S repo fsck --repo $R --cert $D/ka --cert $D/kb
bed_run fsck_a_only $S repo fsck --repo $R --cert $D/ka
# The host deployment: enable-verity attaches A's object signatures.
bed_run host_enable $S repo enable-verity --repo $H --json
bed_run host_shared_by_a same_sig $H/objects/$SHARED $D/shared.by-a.p7s
bed_run host_fsck $S repo fsck --repo $H --cert $D/ka
"#;
    let image = Initramfs::test(kernel, &scenario)?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .disk(&disk)
        .name("vm_objsig")
        .timeout(std::time::Duration::from_secs(600))
        .run()?;
    log.result("keyring_add")?.assert_ok()?;
    let report = |name: &str| -> Value {
        serde_json::from_str(&log.result(name).unwrap().stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    log.result("deploy_a_detached")?.assert_ok()?;
    let a = report("deploy_a_detached");
    assert_eq!(a["deployment"]["signatures"], "detached", "{a}");
    assert_eq!(a["objects"]["signed"], 0, "{a}");
    // fs-verity, no signature (show-signature says so and fails).
    log.result("shared_unsigned")?.assert_failed()?;

    log.result("deploy_b")?.assert_ok()?;
    let b = report("deploy_b");
    assert_eq!(b["deployment"]["signatures"], "builtin", "{b}");
    assert!(b["objects"]["resigned"].as_u64().unwrap() >= 1, "{b}");
    assert_eq!(b["objects"]["unsigned"], 0, "{b}");
    assert_eq!(
        b["objects"]["signed"].as_u64().unwrap(),
        bb.len() as u64,
        "every object of B signed now: {b}"
    );
    log.result("shared_by_b")?
        .assert_ok()?
        .assert_stdout_eq("same\n")?;
    log.result("only_b_signed")?.assert_ok()?;

    log.result("deploy_a")?.assert_ok()?;
    let a2 = report("deploy_a");
    assert!(
        a2["objects"]["signature_kept"].as_u64().unwrap() >= 1,
        "{a2}"
    );
    log.result("shared_still_b")?
        .assert_ok()?
        .assert_stdout_eq("same\n")?;

    log.result("fsck_both")?.assert_ok()?;
    // With only A trusted, the objects signed by B are reported, by path.
    let fsck = log.result("fsck_a_only")?.assert_rc(1)?;
    assert!(
        fsck.stdout
            .lines()
            .any(|l| l.contains(&format!("objects/{}", rel(&shared)))
                && l.contains(
                    "builtin signature does not verify against the trusted certificates"
                )),
        "{}",
        fsck.stdout
    );

    let enabled: Value =
        serde_json::from_str(&log.result("host_enable")?.assert_ok()?.stdout).unwrap();
    assert_eq!(enabled["objectsSigned"], ba.len() as u64, "{enabled}");
    log.result("host_shared_by_a")?
        .assert_ok()?
        .assert_stdout_eq("same\n")?;
    log.result("host_fsck")?.assert_ok()?;
    Ok(())
}
