//! An ostree deployment booted through `sealroot-prepare` (`[boot] layout =
//! ostree`) on a real kernel (Linux 6.12 in the test bed), in place of
//! ostree-prepare-root.
//!
//! The fixture is made by the real tools: the commit by bookworm's ostree
//! 2022.7, the sysroot by sid's 2026.4 (`admin init-fs`, `os-init`,
//! `pull-local`, `admin deploy`, which writes the boot entry with its
//! `ostree=` argument and the `boot.N` links), the seal by `sealroot ostree
//! seal`; one sealing boot runs `sealroot ostree deploy --signatures
//! builtin` with the signer in `.fs-verity`. Every test then boots its own
//! copy of that disk with the disk at /sysroot (the test init plays
//! systemd's part), `ostree=` from ostree's own boot entry on the command
//! line, and an initramfs holding prepare.conf (`layout = ostree`), the
//! signer's certificate and ostree's `prepare-root.conf`.
//!
//! The attacker's changes are made the way someone with the disk would:
//! below the filesystem (`DiskImage::corrupt_byte`), with `debugfs` on the
//! image (which ignores the deployment's immutable flag), or by replacing
//! files in the VM before sealroot-prepare runs.

mod common;
#[path = "ostree_support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use sealroot_testbed::{
    BootLog, DiskImage, Initramfs, Kernel, MIB, Result, Vm, ext4_image, static_binaries,
};
use support::*;

fn sha(b: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
}

/// The sealed disk and what the tests need to know about it.
struct Fixture {
    disk: DiskImage,
    commit: String,
    /// `ostree=...` from the boot entry `ostree admin deploy` wrote.
    ostree_arg: String,
    /// The link `ostree=` names, below the physical root.
    boot_link: String,
    /// The object `usr/bin/small` is redirected to (`XX/<rest>.file`).
    small_object: String,
    signer_cert: Vec<u8>,
    /// A signature of this deployment's binding record by a key the
    /// initramfs does not trust.
    untrusted_sig: Vec<u8>,
    large_sha256: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn deployment(&self) -> String {
        format!("/ostree/deploy/testos/deploy/{}.0", self.commit)
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| build().expect("building the sealed ostree disk"))
}

fn build() -> Result<Fixture> {
    let kernel = Kernel::get()?;
    let tmp = tempfile::tempdir().unwrap();
    let (tree, src) = (tmp.path().join("tree"), tmp.path().join("src"));
    source_tree(&tree);
    let commit = commit(&src, "bare-user", &tree, "testos/stable", &[]);
    let disk_dir = tmp.path().join("disk");
    fs::create_dir_all(&disk_dir).unwrap();
    let (key, cert, _) = keys(&tmp.path().join("keys"));
    let (bad_key, bad_cert, _) = keys(&tmp.path().join("untrusted"));
    seal(&src, &commit, &key, &cert);
    let (sysroot, _deployment, _guard) =
        deployed_sysroot(tmp.path(), &src, "testos/stable", &commit);
    // The disk is the physical root itself: cp -a keeps hard links
    // (objects and checkouts), owners, modes, xattrs and the boot.N links.
    let root = disk_dir.join("root");
    run(Command::new("cp").arg("-a").arg(&sysroot).arg(&root));
    let _copy_guard = Immutable(root.join(format!("ostree/deploy/testos/deploy/{commit}.0")));
    fs::write(disk_dir.join("signer.crt.pem"), fs::read(&cert).unwrap()).unwrap();

    // ostree= from the boot entry ostree wrote.
    let entries = root.join("boot/loader/entries");
    let entry = fs::read_dir(&entries)
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .next()
        .expect("ostree admin deploy wrote no boot entry");
    let ostree_arg = entry
        .lines()
        .filter_map(|l| l.strip_prefix("options "))
        .flat_map(str::split_whitespace)
        .find(|a| a.starts_with("ostree="))
        .expect("no ostree= in the boot entry")
        .to_owned();
    let boot_link = ostree_arg.trim_start_matches("ostree=").to_owned();
    assert!(
        fs::symlink_metadata(root.join(boot_link.trim_start_matches('/')))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let dump = tmp.path().join("commit.dump");
    let erofs = run(sealroot()
        .args(["ostree", "compute-id", "--dump"])
        .arg(&dump)
        .arg("--repo")
        .arg(root.join("ostree/repo"))
        .arg(&commit));
    let small_object = object_of(&dump, "/usr/bin/small");
    // The same record, signed by a key the initramfs does not trust.
    let record_file = tmp.path().join("record");
    fs::write(&record_file, record(&commit, erofs.trim())).unwrap();
    let untrusted = tmp.path().join("untrusted.sig");
    run(sealroot()
        .args(["sign", "--key"])
        .arg(&bad_key)
        .arg("--cert")
        .arg(&bad_cert)
        .arg(&record_file)
        .arg(&untrusted));

    let disk = ext4_image(&disk_dir, 96 * MIB)?;
    let scenario = r#"
export S=/bin/sealroot D=/mnt/disk
bed_run keyring_add $S keyring add $D/signer.crt.pem
bed_run deploy $S ostree deploy --sysroot $D/root --cert $D/signer.crt.pem --signatures builtin
"#;
    let image = Initramfs::test(kernel, scenario)?
        .static_binaries(static_binaries()?)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .name("ostree-boot-seal")
        .disk(&disk)
        .timeout(Duration::from_secs(600))
        .run()?;
    log.result("keyring_add")?.assert_ok()?;
    log.result("deploy")?.assert_ok()?;
    // The physical root is the disk's /root: each boot binds it at
    // /sysroot, as systemd would mount a root partition there.
    Ok(Fixture {
        disk,
        commit,
        ostree_arg,
        boot_link,
        small_object,
        signer_cert: fs::read(&cert).unwrap(),
        untrusted_sig: fs::read(&untrusted).unwrap(),
        large_sha256: sha(&fs::read(tree.join("usr/bin/large")).unwrap()),
        _dir: tmp,
    })
}

/// `debugfs -w -R CMD` on a disk image (the attacker's access: it ignores
/// the immutable flag).
fn debugfs(disk: &Path, cmd: &str) {
    let out = Command::new("debugfs")
        .args(["-w", "-R", cmd])
        .arg(disk)
        .output()
        .unwrap();
    assert!(out.status.success(), "debugfs {cmd}: {out:?}");
}

/// Runs the debugfs commands `cmds` (one per line) on a disk image.
fn debugfs_script(disk: &Path, cmds: &str) {
    use std::io::Write;
    let mut child = Command::new("debugfs")
        .args(["-w", "-f", "-"])
        .arg(disk)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cmds.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "debugfs {cmds}: {out:?}");
}

/// One boot: a copy of the sealed disk, mounted, its `root` bound at
/// /sysroot; `before` (shell) runs first, then sealroot-prepare, then
/// `checks`.
fn boot(
    name: &str,
    cmdline: &str,
    before: &str,
    checks: &str,
    edit: impl FnOnce(&Path),
) -> Result<BootLog> {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let disk = f.disk.copy_to(&dir.path().join("disk.ext4"))?;
    edit(disk.path());
    let kernel = Kernel::get()?;
    let scenario = format!(
        r#"
mkdir -p /mnt/disk /sysroot
mount -t ext4 /dev/vda /mnt/disk && mount --bind /mnt/disk/root /sysroot || exit 1
{before}
bed_run prepare /bin/sealroot-prepare
bed_value status "$(cat /run/sealroot/status.json)"
bed_value sysroot_mounts "$(grep -c ' /sysroot' /proc/mounts)"
{checks}
"#
    );
    let image = Initramfs::test(kernel, &scenario)?
        .load_modules(kernel, &["virtio_blk"])?
        .static_binaries(static_binaries()?)
        .dir("/etc/sealroot/certs.d", 0o755)
        .file(
            "/etc/sealroot/certs.d/signer.crt.pem",
            f.signer_cert.clone(),
            0o644,
        )
        .file(
            "/etc/sealroot/prepare.conf",
            "[boot]\nlayout = ostree\n",
            0o644,
        )
        .file(
            "/usr/lib/ostree/prepare-root.conf",
            "[composefs]\nenabled = verity\n[sysroot]\nreadonly = true\n",
            0o644,
        )
        .file("/root/untrusted.sig", f.untrusted_sig.clone(), 0o644);
    let log = Vm::new(kernel, image)
        .name(name)
        .cmdline(cmdline)
        .disk(&disk)
        .timeout(Duration::from_secs(600))
        .run()?;
    Ok(log)
}

/// The EROFS digest (hex) of the sealed deployment, from its record on
/// the disk.
fn status_erofs(f: &Fixture) -> String {
    let rec = f
        .disk
        .read_to_string(&format!("/root{}/.sealroot.binding", f.deployment()))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&rec).unwrap();
    v["erofs"].as_str().unwrap().to_owned()
}

fn status(log: &BootLog) -> serde_json::Value {
    serde_json::from_str(log.value("status").unwrap()).unwrap()
}

fn assert_refused(log: &BootLog, message: &str) -> Result<()> {
    log.result("prepare")?
        .assert_rc(1)?
        .assert_stderr_contains(message)?;
    // Only the physical root (and the bind of it) at /sysroot.
    assert_eq!(log.value("sysroot_mounts")?, "1", "nothing new mounted");
    let s = status(log);
    assert_eq!(s["result"], "refused");
    assert!(s["error"].as_str().unwrap().contains(message));
    Ok(())
}

#[test]
fn boots_the_sealed_ostree_deployment_as_ostree_prepare_root_would() -> Result<()> {
    let f = fixture();
    let objects = "/mnt/disk/root/ostree/repo/objects";
    // An object altered (other bytes, fs-verity enabled): the EROFS
    // records the original's digest.
    let before = format!(
        r#"
printf 'HI\n' > {objects}/forged && /bin/sealroot enable {objects}/forged >/dev/null &&
    mv {objects}/forged {objects}/{small} || exit 1
"#,
        small = f.small_object
    );
    let dep = f.deployment();
    let checks = format!(
        r#"
bed_value mounts "$(grep ' /sysroot' /proc/mounts)"
bed_run large sha256sum /sysroot/usr/bin/large
bed_run small cat /sysroot/usr/bin/small
bed_run root_ro touch /sysroot/usr/new
bed_run physical_ro touch /sysroot/sysroot/new
bed_run etc_rw sh -c 'echo x > /sysroot/etc/marker && cat /mnt/disk/root{dep}/etc/marker'
bed_run var_rw sh -c 'echo y > /sysroot/var/marker && cat /mnt/disk/root/ostree/deploy/testos/var/marker'
bed_run run_ostree ls -a /run/ostree
bed_value booted "$(od -An -v -tx1 /run/ostree-booted | tr -d ' \n')"
bed_value devino "$(stat -c '%d %i' /sysroot/sysroot{dep})"
bed_run gate /bin/sealroot-prepare --check-switch-root
"#
    );
    let cmdline = format!("{} rw", f.ostree_arg);
    let log = boot("ostree-boot-ok", &cmdline, &before, &checks, |_| {})?;
    log.result("prepare")?.assert_ok()?;
    let s = status(&log);
    assert_eq!(s["result"], "mounted");
    assert_eq!(s["verification"], "kernel");
    assert_eq!(s["ostree"]["commit"], f.commit.as_str());
    assert_eq!(s["ostree"]["deployment"], dep.trim_start_matches('/'));
    assert_eq!(s["ostree"]["argument"], f.ostree_arg.as_str());
    assert_eq!(s["mount"]["physical_root_read_only"], true);
    let mounts = log.value("mounts")?;
    let line = |mp: &str| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(mp))
            .unwrap_or_else(|| panic!("no mount at {mp}:\n{mounts}"))
            .to_owned()
    };
    // The last /sysroot line is the sealed root (covering the physical one).
    let root_line = mounts
        .lines()
        .rfind(|l| l.split(' ').nth(1) == Some("/sysroot"))
        .unwrap();
    assert!(
        root_line.contains(" /sysroot overlay ro,") && root_line.contains("verity=require"),
        "{mounts}"
    );
    let opts = |l: &str| {
        l.split(' ')
            .nth(3)
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for (mp, rw) in [
        ("/sysroot/etc", "rw"),
        ("/sysroot/var", "rw"),
        ("/sysroot/sysroot", "ro"),
    ] {
        let o = opts(&line(mp));
        for want in [rw, "nosuid", "nodev"] {
            assert!(o.iter().any(|x| x == want), "{mp} lacks {want}: {o:?}");
        }
    }
    log.result("large")?
        .assert_ok()?
        .assert_stdout_contains(&f.large_sha256)?;
    log.result("small")?
        .assert_failed()?
        .assert_stderr_contains("Input/output error")?;
    log.result("root_ro")?
        .assert_failed()?
        .assert_stderr_contains("Read-only file system")?;
    log.result("physical_ro")?
        .assert_failed()?
        .assert_stderr_contains("Read-only file system")?;
    log.result("etc_rw")?.assert_ok()?.assert_stdout_eq("x\n")?;
    log.result("var_rw")?.assert_ok()?.assert_stdout_eq("y\n")?;
    log.result("run_ostree")?
        .assert_ok()?
        .assert_stdout_contains(".private")?
        .assert_stdout_contains("initramfs-mount-var")?;
    // /run/ostree-booted carries the deployment directory's device and
    // inode as the kernel reports them (busybox stat in the VM).
    let booted = hex::decode(log.value("booted")?).unwrap();
    let entries = sealroot::ostree::gvariant::read_vardict(&booted).unwrap();
    let devino = log.value("devino")?;
    let (dev, ino) = devino.split_once(' ').unwrap();
    let mut want = dev.parse::<u64>().unwrap().to_le_bytes().to_vec();
    want.extend_from_slice(&ino.parse::<u64>().unwrap().to_le_bytes());
    let e = entries
        .iter()
        .find(|e| e.key == "backing-root-device-inode")
        .unwrap();
    assert_eq!((e.ty.as_str(), &e.value), ("(tt)", &want));
    let b = |k: &str| entries.iter().find(|e| e.key == k).unwrap().value.clone();
    assert_eq!(b("composefs"), [1]);
    assert_eq!(b("composefs.verity"), [1]);
    assert_eq!(b("sysroot-ro"), [1]);
    log.result("gate")?.assert_ok()?;
    Ok(())
}

#[test]
fn refuses_unsigned_untrusted_altered_escaping_and_missing_deployments() -> Result<()> {
    let f = fixture();
    let dep = f.deployment();
    let ok = format!("{} rw", f.ostree_arg);

    // Unsigned: the signature file removed.
    let sig = format!("{dep}/.sealroot.binding.sig");
    let log = boot("ostree-boot-unsigned", &ok, "", "", |d| {
        debugfs(d, &format!("rm /root{sig}"))
    })?;
    assert_refused(&log, ".sealroot.binding.sig is missing")?;

    // Signed by a key the initramfs does not trust.
    let before = format!("cp /root/untrusted.sig /mnt/disk/root{sig} || exit 1");
    let log = boot("ostree-boot-untrusted", &ok, &before, "", |_| {})?;
    assert_refused(&log, ".sealroot.binding.sig of the binding record")?;

    // The record replaced by one naming another commit (same EROFS): the
    // record the initramfs builds from the directory's name differs.
    let other_commit: String = f
        .commit
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let forged = tempfile::NamedTempFile::new().unwrap();
    let erofs = status_erofs(f);
    fs::write(forged.path(), record(&other_commit, &erofs)).unwrap();
    let log = boot("ostree-boot-record", &ok, "", "", |d| {
        debugfs_script(
            d,
            &format!(
                "cd /root{dep}\nrm .sealroot.binding\nwrite {} .sealroot.binding\n",
                forged.path().display()
            ),
        )
    })?;
    assert_refused(&log, ".sealroot.binding does not bind commit")?;

    // The EROFS altered below fs-verity: its data fails verification.
    let log = boot("ostree-boot-erofs", &ok, "", "", |d| {
        DiskImage::open(d)
            .corrupt_byte(&format!("/root{dep}/.ostree.cfs"), 100)
            .unwrap();
    })?;
    assert_refused(&log, "fails fs-verity verification")?;

    // ostree= through a link that leaves the physical root: followed out,
    // it would reach the genuine deployment (via the initramfs' /sysroot);
    // resolved in the root, it leads nowhere.
    let depth = f.boot_link.trim_start_matches('/').matches('/').count();
    let escape = format!("{}sysroot{dep}", "../".repeat(depth + 1));
    let real_link = format!(
        "$(readlink -f /mnt/disk/root{})",
        Path::new(&f.boot_link).parent().unwrap().display()
    );
    let before = format!(
        "L={real_link}/{name}; rm $L && ln -s {escape} $L || exit 1\nbed_value link \"$(readlink $L)\"",
        name = Path::new(&f.boot_link)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap(),
    );
    let log = boot("ostree-boot-escape", &ok, &before, "", |_| {})?;
    assert_refused(&log, "no such deployment")?;

    // A deployment that does not exist (another boot serial).
    let missing = format!(
        "{}/7 rw",
        PathBuf::from(&f.ostree_arg).parent().unwrap().display()
    );
    let log = boot("ostree-boot-missing", &missing, "", "", |_| {})?;
    assert_refused(&log, "no such deployment")?;
    Ok(())
}
