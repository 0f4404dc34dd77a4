//! Deploying on a real kernel (tests/bed): the static `sealroot` deploys a
//! sealed image onto an ext4 (`-O verity`) disk inside the VM after the
//! signer's certificate was loaded into `.fs-verity`, so the manifest,
//! config and merged EROFS get builtin signatures the kernel checks and
//! every object gets fs-verity. After a reboot, the signed files cannot be
//! opened until the certificate is back in the keyring. A deployment made on
//! the host (no fs-verity there) gets its verity with `sealroot repo
//! enable-verity` inside the VM. Finally the deployed repository mounts as
//! a composefs (overlayfs `verity=require` over `objects/`) and serves the
//! image's files.
//!
//! Two boots.

mod oci_support;
mod repo_support;

use std::process::Command;

use repo_support::{Keys, TAG, bytes, sample_image, seal, sr_ok};
use sealroot_testbed::{Initramfs, Kernel, MIB, Result, Vm, ext4_image, static_binaries};
use serde_json::Value;

#[test]
fn deploy_inside_the_vm_gives_kernel_checked_signatures() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let tmp = tempfile::tempdir().unwrap();
    let disk_dir = tmp.path().join("disk");
    let layout = disk_dir.join("layout");
    let f = sample_image(&layout);
    let keys = Keys::new(&disk_dir.join("keys"), "rsa2048", "CN=vm deploy signer");
    let sealed = seal(&layout, &keys, &[]);
    // A deployment made on the host, where fs-verity is unavailable.
    std::fs::create_dir(disk_dir.join("hostroot")).unwrap();
    std::fs::create_dir(disk_dir.join("root")).unwrap();
    let host = sr_ok(&[
        "deploy",
        &format!("oci:{}:{TAG}", layout.display()),
        "--sysroot",
        disk_dir.join("hostroot").to_str().unwrap(),
        "--cert",
        &keys.cert(),
        "--json",
    ]);
    let host: Value = serde_json::from_str(&host).unwrap();
    assert_eq!(host["deployment"]["verity"], false);
    // The object of usr/lib/libbig.so, by fsverity-utils.
    let probe = tmp.path().join("probe");
    std::fs::write(&probe, bytes(2, 300_000)).unwrap();
    let out = Command::new("fsverity")
        .args(["digest", "--compact"])
        .arg(&probe)
        .output()
        .unwrap();
    assert!(out.status.success());
    let object = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let disk = ext4_image(&disk_dir, 64 * MIB)?;

    let m = &sealed["manifest"].as_str().unwrap()[7..];
    let c = &sealed["config"].as_str().unwrap()[7..];
    let i = sealed["digests"]["merged"].as_str().unwrap();
    let o = format!("{}/{}", &object[..2], &object[2..]);
    // The artifact's PKCS#7 blobs: what the kernel must hold as builtin
    // signatures after the deploy.
    let art: Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(&sealed["artifact"].as_str().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    let sig = |n: usize| art["layers"][n]["digest"].as_str().unwrap()[7..].to_owned();
    let vars = format!(
        "M={m}; C={c}; I={i}; O={o}; TAG={TAG}; SM={}; SC={}; SI={}\n",
        sig(0),
        sig(1),
        sig(2)
    );
    let boot1 = vars.clone()
        + r#"
S=/bin/sealroot; D=/mnt/disk; R=$D/root/sealroot; H=$D/hostroot/sealroot
bed_run keyring_add $S keyring add $D/keys
bed_run deploy $S deploy oci:$D/layout:$TAG --sysroot $D/root --cert $D/keys --json
bed_run measure_image $S measure $R/images/$I
bed_run measure_manifest $S measure $R/blobs/sha256/$M
bed_run measure_config $S measure $R/blobs/sha256/$C
same_sig() { $S show-signature --out /tmp/sig "$1" && cmp /tmp/sig "$2" && echo same; }
bed_run sig_image same_sig $R/images/$I $R/blobs/sha256/$SI
bed_run sig_manifest same_sig $R/blobs/sha256/$M $R/blobs/sha256/$SM
bed_run sig_config same_sig $R/blobs/sha256/$C $R/blobs/sha256/$SC
bed_run measure_object $S measure $R/objects/$O
bed_run fsck $S repo fsck --repo $R --cert $D/keys
bed_run host_enable $S repo enable-verity --repo $H
bed_run host_measure $S measure $H/images/$I $H/objects/$O
bed_run host_fsck $S repo fsck --repo $H --cert $D/keys
mkdir -p /mnt/erofs /mnt/root
mount_root() {
    mount -t erofs -o ro $R/images/$I /mnt/erofs &&
    mount -t overlay overlay -o ro,metacopy=on,redirect_dir=on,verity=require,lowerdir=/mnt/erofs::$R/objects /mnt/root &&
    sha256sum /mnt/root/usr/lib/libbig.so /mnt/root/usr/bin/tool /mnt/root/etc/hostname &&
    ls /mnt/root/opt/old && cat /mnt/root/etc/hostname
}
bed_run mount mount_root
umount /mnt/root; umount /mnt/erofs
"#;
    let image = Initramfs::test(kernel, &boot1)?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .disk(&disk)
        .name("vm_deploy-1")
        .run()?;
    log.result("keyring_add")?.assert_ok()?;
    let deploy = log.result("deploy")?.assert_ok()?;
    let report: Value = serde_json::from_str(&deploy.stdout).unwrap();
    assert_eq!(report["deployment"]["signatures"], "builtin", "{report}");
    assert_eq!(report["deployment"]["verity"], true, "{report}");
    assert_eq!(report["deployment"]["image"], i);
    assert_eq!(report["kernel_cmdline"], format!("sealroot=sha256:{m}"));
    assert!(
        report["objects"]["verity_enabled"].as_u64().unwrap() >= 8,
        "{report}"
    );
    // The kernel measures what was signed.
    for (name, digest) in [
        ("measure_image", i),
        (
            "measure_manifest",
            sealed["digests"]["manifest"].as_str().unwrap(),
        ),
        (
            "measure_config",
            sealed["digests"]["config"].as_str().unwrap(),
        ),
        ("measure_object", object.as_str()),
    ] {
        log.result(name)?
            .assert_ok()?
            .assert_stdout_contains(&format!("sha256:{digest}"))?;
    }
    for name in ["sig_image", "sig_manifest", "sig_config"] {
        log.result(name)?
            .assert_ok()?
            .assert_stdout_contains("same")?;
    }
    log.result("fsck")?
        .assert_ok()?
        .assert_stdout_contains("3 signatures verified")?
        .assert_stdout_contains("0 problems")?;
    log.result("host_enable")?.assert_ok()?;
    log.result("host_measure")?
        .assert_ok()?
        .assert_stdout_contains(&format!("sha256:{i}"))?
        .assert_stdout_contains(&format!("sha256:{object}"))?;
    log.result("host_fsck")?
        .assert_ok()?
        .assert_stdout_contains("0 problems")?;
    let mounted = log.result("mount")?.assert_ok()?;
    let big = sealroot::oci::Sha256Digest::of(&bytes(2, 300_000)).to_hex();
    let tool = sealroot::oci::Sha256Digest::of(&bytes(8, 12_000)).to_hex();
    mounted
        .assert_stdout_contains(&format!("{big}  /mnt/root/usr/lib/libbig.so"))?
        .assert_stdout_contains(&format!("{tool}  /mnt/root/usr/bin/tool"))?
        .assert_stdout_contains("new\nsealed\n")?;
    // Read back on the host.
    let dj: Value = serde_json::from_str(
        &disk.read_to_string(&format!("/root/sealroot/deployments/{m}/deployment.json"))?,
    )
    .unwrap();
    assert_eq!(dj["signatures"], "builtin");
    let hj: Value = serde_json::from_str(&disk.read_to_string(&format!(
        "/hostroot/sealroot/deployments/{m}/deployment.json"
    ))?)
    .unwrap();
    assert_eq!(hj["verity"], true, "enable-verity records it");
    assert_eq!(f.manifest.to_hex(), m);

    // Boot 2: the builtin signatures are checked when the files are opened
    // again: refused without the certificate, readable with it.
    let boot2 = vars
        + r#"
S=/bin/sealroot; D=/mnt/disk; R=$D/root/sealroot
bed_run nocert_image cat $R/images/$I
bed_run nocert_manifest cat $R/blobs/sha256/$M
bed_run nocert_config cat $R/blobs/sha256/$C
bed_run keyring_add $S keyring add $D/keys
bed_run image sha256sum $R/images/$I
bed_run manifest sha256sum $R/blobs/sha256/$M
bed_run config sha256sum $R/blobs/sha256/$C
"#;
    let image = Initramfs::test(kernel, &boot2)?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .disk(&disk)
        .name("vm_deploy-2")
        .run()?;
    for name in ["nocert_image", "nocert_manifest", "nocert_config"] {
        // ENOKEY from fs/verity/signature.c: "File's signing cert isn't
        // in the fs-verity keyring".
        log.result(name)?
            .assert_failed()?
            .assert_stderr_contains("Required key not available")?;
    }
    log.result("keyring_add")?.assert_ok()?;
    log.result("manifest")?
        .assert_ok()?
        .assert_stdout_contains(m)?;
    log.result("config")?
        .assert_ok()?
        .assert_stdout_contains(c)?;
    let erofs_sha =
        sealroot::oci::Sha256Digest::of(&disk.read_file(&format!("/root/sealroot/images/{i}"))?);
    log.result("image")?
        .assert_ok()?
        .assert_stdout_contains(&erofs_sha.to_hex())?;
    Ok(())
}

/// A hard link planted in `objects/` to a file elsewhere on the same
/// filesystem (another OS tree's file, say) must never get fs-verity from a
/// host tool: enabling it makes a file immutable for good. `deploy` (whose
/// dedup enables verity on existing objects in place) and `repo
/// enable-verity` refuse, naming the object; fsck reports it; the file
/// outside stays without fs-verity and writable. Once the link is gone the
/// same deploy gives the object fs-verity (the kernel can do it here).
#[test]
fn a_hardlinked_object_never_gets_fs_verity() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let tmp = tempfile::tempdir().unwrap();
    let disk_dir = tmp.path().join("disk");
    let layout = disk_dir.join("layout");
    sample_image(&layout);
    let keys = Keys::new(&disk_dir.join("keys"), "rsa2048", "CN=vm hardlink signer");
    seal(&layout, &keys, &[]);
    // Deployed on the host (no fs-verity there): the objects lack it, as
    // after a build-host deploy.
    std::fs::create_dir(disk_dir.join("root")).unwrap();
    sr_ok(&[
        "deploy",
        &format!("oci:{}:{TAG}", layout.display()),
        "--sysroot",
        disk_dir.join("root").to_str().unwrap(),
        "--cert",
        &keys.cert(),
    ]);
    // The object of usr/lib/libbig.so (fsverity-utils), and a file with
    // the same content outside the repository.
    std::fs::create_dir(disk_dir.join("other")).unwrap();
    let victim = disk_dir.join("other/victim");
    std::fs::write(&victim, bytes(2, 300_000)).unwrap();
    let out = Command::new("fsverity")
        .args(["digest", "--compact"])
        .arg(&victim)
        .output()
        .unwrap();
    assert!(out.status.success());
    let object = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let o = format!("{}/{}", &object[..2], &object[2..]);
    let disk = ext4_image(&disk_dir, 64 * MIB)?;
    let script = format!("O={o}; TAG={TAG}\n")
        + r#"
S=/bin/sealroot; D=/mnt/disk; R=$D/root/sealroot
rm $R/objects/$O && ln $D/other/victim $R/objects/$O
bed_run keyring_add $S keyring add $D/keys
bed_run deploy $S deploy oci:$D/layout:$TAG --sysroot $D/root --cert $D/keys
bed_run enable $S repo enable-verity --sysroot $D/root
bed_run fsck $S repo fsck --sysroot $D/root --cert $D/keys
bed_run victim_measure $S measure $D/other/victim
bed_run victim_write sh -c "echo appended >> $D/other/victim && echo writable"
bed_run unlink rm $R/objects/$O
bed_run redeploy $S deploy oci:$D/layout:$TAG --sysroot $D/root --cert $D/keys
bed_run object_measure $S measure $R/objects/$O
bed_run victim_after $S measure $D/other/victim
"#;
    let image = Initramfs::test(kernel, &script)?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .disk(&disk)
        .name("vm_deploy-hardlink")
        .run()?;
    log.result("keyring_add")?.assert_ok()?;
    let object_path = format!("/mnt/disk/root/sealroot/objects/{o}");
    let linked = format!("{object_path} has 2 hard links");
    log.result("deploy")?
        .assert_rc(1)?
        .assert_stderr_contains(&linked)?;
    log.result("enable")?
        .assert_rc(1)?
        .assert_stderr_contains("enable-verity refused, nothing was changed")?
        .assert_stderr_contains(&linked)?;
    log.result("fsck")?
        .assert_rc(1)?
        .assert_stdout_contains(&format!("PROBLEM {object_path}: has 2 hard links"))?;
    // FS_IOC_MEASURE_VERITY: ENODATA, the file has no fs-verity.
    log.result("victim_measure")?.assert_failed()?;
    log.result("victim_write")?
        .assert_ok()?
        .assert_stdout_contains("writable")?;
    log.result("unlink")?.assert_ok()?;
    let redeploy = log.result("redeploy")?.assert_ok()?;
    assert!(redeploy.stdout.contains("objects "), "{}", redeploy.stdout);
    log.result("object_measure")?
        .assert_ok()?
        .assert_stdout_contains(&format!("sha256:{object}"))?;
    log.result("victim_after")?.assert_failed()?;
    let after = disk.read_file("/other/victim")?;
    assert!(after.ends_with(b"appended\n") && after.len() == 300_000 + 9);
    Ok(())
}
