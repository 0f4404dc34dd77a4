//! An ostree deployment sealed by `sealroot ostree deploy` on a real kernel
//! (Linux 6.12 in the test bed): the sysroot is made on the host by the
//! real ostree (bookworm's 2022.7 commits into a bare-user repository,
//! sid's 2026.4 pulls it into the bare system repository and runs `ostree
//! admin deploy` with composefs), the commit sealed with `sealroot ostree
//! seal`, and the whole sysroot copied onto an ext4 disk with `-O verity`.
//! In the VM (one boot, ~40-90 s under TCG):
//!
//! - `sealroot ostree deploy --signatures builtin` with the signer in
//!   `.fs-verity`: the kernel takes the record's builtin signature, every
//!   object the image references gets fs-verity, `.ostree.cfs` too;
//! - `enable-verity --check` then finds nothing missing;
//! - the deployment's `.ostree.cfs` mounts over `ostree/repo/objects` with
//!   `verity=require` and every file reads back as the source tree has it
//!   (sha256 per file, symlink targets, modes and owners);
//! - a copy of the objects in which one object has other bytes (fs-verity
//!   enabled on every copy): that file reads as EIO ("has the wrong
//!   fs-verity digest"), the others still read.

mod common;
#[path = "ostree_support/mod.rs"]
mod support;

use std::fs;
use std::process::Command;
use std::time::Duration;

use sealroot_testbed::{Initramfs, Kernel, MIB, Result, Vm, ext4_image, static_binaries};
use support::*;

fn sha(b: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
}

#[test]
fn sealed_ostree_deployment_mounts_with_verity_required() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let tmp = tempfile::tempdir().unwrap();
    let (tree, src) = (tmp.path().join("tree"), tmp.path().join("src"));
    source_tree(&tree);
    let commit = commit(&src, "bare-user", &tree, "testos/stable", &[]);
    let disk_dir = tmp.path().join("disk");
    fs::create_dir_all(&disk_dir).unwrap();
    let (key, cert, _) = keys(&disk_dir.join("keys"));
    seal(&src, &commit, &key, &cert);
    let (sysroot, _deployment, _guard) =
        deployed_sysroot(tmp.path(), &src, "testos/stable", &commit);
    // cp -a keeps the hard links between objects and checkout, owners,
    // modes and xattrs; mkfs.ext4 -d keeps them too.
    run(Command::new("cp")
        .arg("-a")
        .arg(&sysroot)
        .arg(disk_dir.join("sysroot")));
    let _copy_guard =
        Immutable(disk_dir.join(format!("sysroot/ostree/deploy/testos/deploy/{commit}.0")));
    let repo = sysroot.join("ostree/repo");
    let dump_path = tmp.path().join("commit.dump");
    let erofs = run(sealroot()
        .args(["ostree", "compute-id", "--dump"])
        .arg(&dump_path)
        .arg("--repo")
        .arg(&repo)
        .arg(&commit));
    let dump = fs::read_to_string(&dump_path).unwrap();
    let object_of = |path: &str| {
        dump.lines()
            .find(|l| l.split(' ').next() == Some(path))
            .and_then(|l| l.split(' ').nth(8))
            .unwrap()
            .to_owned()
    };
    let small_object = object_of("/usr/bin/small");

    let files = [
        "usr/bin/small",
        "usr/bin/exactly64",
        "usr/bin/just65",
        "usr/bin/large",
        "usr/bin/large-hardlink",
        "usr/bin/empty",
        "usr/share/doc/a.txt",
        "usr/share/doc/b.txt",
        "usr/sbin/suid",
        "usr/lib/private/key",
        "usr/share/owned",
    ];
    let body = format!(
        r#"
export S=/bin/sealroot D=/mnt/disk; SR=$D/sysroot; C={commit}
DEP=$SR/ostree/deploy/testos/deploy/$C.0
bed_run keyring_add $S keyring add $D/keys/signer.crt.pem
bed_run deploy $S ostree deploy --json --sysroot $SR --cert $D/keys/signer.crt.pem --signatures builtin
bed_run check $S ostree enable-verity --sysroot $SR --check
bed_run measure_image $S measure $DEP/.ostree.cfs
bed_run record cat $DEP/.sealroot.binding
same_sig() {{ $S show-signature --out /tmp/sig "$1" && cmp /tmp/sig "$2" && echo same; }}
bed_run record_sig same_sig $DEP/.sealroot.binding $DEP/.sealroot.binding.sig
mkdir -p /mnt/root /mnt/bad
bed_run mount $S mount --digest {erofs} --basedir $SR/ostree/repo/objects $DEP/.ostree.cfs /mnt/root
bed_run read sh -c 'cd /mnt/root && sha256sum {files}'
bed_run links sh -c 'cd /mnt/root/usr/bin && for l in rel-link abs-link dir-link; do readlink $l; done'
bed_run stats sh -c 'cd /mnt/root && stat -c "%n %a %u %g %h %s" usr/sbin/suid usr/lib/private/key usr/share/owned usr/bin/large-hardlink usr/bin/empty'
umount /mnt/root
cp -a $SR/ostree/repo/objects $D/bad
printf 'HI\n' > $D/bad/{small_object}
bed_run enable_bad sh -c 'for f in $(find $D/bad -type f -name "*.file"); do $S enable "$f" >/dev/null || exit 1; done; echo enabled'
bed_run mount_bad $S mount --basedir $D/bad $DEP/.ostree.cfs /mnt/bad
dmesg -c > /dev/null
bed_run read_bad cat /mnt/bad/usr/bin/small
bed_value dmesg "$(dmesg)"
bed_run read_good_in_bad sha256sum /mnt/bad/usr/bin/large
umount /mnt/bad
"#,
        erofs = erofs.trim(),
        files = files.join(" "),
    );
    let disk = ext4_image(&disk_dir, 96 * MIB)?;
    let image = Initramfs::test(kernel, &body)?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .disk(&disk)
        .timeout(Duration::from_secs(600))
        .run()?;

    log.result("keyring_add")?.assert_ok()?;
    let deploy = log.result("deploy")?.assert_ok()?;
    let out: serde_json::Value = serde_json::from_str(&deploy.stdout).unwrap();
    let d = &out["deployments"][0];
    assert_eq!(d["erofs"], erofs.trim());
    assert_eq!(d["imageVerity"], "enabled");
    assert_eq!(d["bindingVerity"], "builtin signature");
    assert_eq!(d["objectsWithoutVerity"], 0);
    assert!(d["objectsVerityEnabled"].as_u64().unwrap() > 5, "{d}");
    log.result("check")?.assert_ok()?;
    log.result("measure_image")?
        .assert_ok()?
        .assert_stdout_contains(&format!("sha256:{}", erofs.trim()))?;
    log.result("record")?
        .assert_ok()?
        .assert_stdout_eq(&record(&commit, erofs.trim()))?;
    log.result("record_sig")?
        .assert_ok()?
        .assert_stdout_eq("same\n")?;
    log.result("mount")?.assert_ok()?;
    let expected: String = files
        .iter()
        .map(|f| format!("{}  {f}\n", sha(&fs::read(tree.join(f)).unwrap())))
        .collect();
    log.result("read")?
        .assert_ok()?
        .assert_stdout_eq(&expected)?;
    log.result("links")?
        .assert_ok()?
        .assert_stdout_eq("small\n/usr/bin/large\n../share/doc\n")?;
    let large = fs::metadata(tree.join("usr/bin/large")).unwrap().len();
    log.result("stats")?
        .assert_ok()?
        .assert_stdout_eq(&format!(
            "usr/sbin/suid 4755 0 0 1 200\nusr/lib/private/key 600 0 0 1 100\n\
         usr/share/owned 644 1000 100 1 80\nusr/bin/large-hardlink 644 0 0 1 {large}\n\
         usr/bin/empty 644 0 0 1 0\n"
        ))?;
    log.result("enable_bad")?.assert_ok()?;
    log.result("mount_bad")?.assert_ok()?;
    log.result("read_bad")?
        .assert_rc(1)?
        .assert_stderr_contains("Input/output error")?;
    let dmesg = log.value("dmesg")?;
    assert!(dmesg.contains("has the wrong fs-verity digest"), "{dmesg}");
    log.result("read_good_in_bad")?
        .assert_ok()?
        .assert_stdout_contains(&sha(&fs::read(tree.join("usr/bin/large")).unwrap()))?;
    Ok(())
}
