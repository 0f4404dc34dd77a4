//! `sealroot-prepare` on a real kernel: the test init plays systemd's role
//! (mounts the ext4 disk at /sysroot, runs `/bin/sealroot-prepare`, then
//! looks at the result). Fixtures: `vm_prepare_support` (`sealroot oci
//! seal` + `sealroot deploy` on the host, one sealing boot per test process
//! for all of them running `sealroot repo enable-verity`); each test then
//! boots its own copy.
//!
//! Run: `SEALROOT_TESTBED_CACHE=/work/testbed-cache cargo test --test vm_prepare`

mod oci_support;
mod repo_support;
mod vm_prepare_support;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use sealroot::tree::store::object_path;
use sealroot::verity::VerityParams;
use sealroot::verity::digest::digest_bytes;
use sealroot_testbed::{
    BootLog, DiskImage, Initramfs, Kernel, ModuleForm, Result, Vm, static_binaries,
};
use serde_json::Value;
use vm_prepare_support::*;

struct Fixtures {
    trusted: Signer,
    /// A second key whose certificate is never in certs.d.
    untrusted: Signer,
    disks: BTreeMap<String, (DiskImage, Deployed)>,
}

/// Every fixture disk, sealed in one boot (the first test process pays;
/// the others load them, see `sealed_set`).
fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let (signers, disks) = sealed_set("vm_prepare", build_fixtures);
        let [trusted, untrusted]: [Signer; 2] = signers.try_into().ok().unwrap();
        Fixtures {
            trusted,
            untrusted,
            disks,
        }
    })
}

fn build_fixtures() -> (Vec<Signer>, Vec<(String, DiskImage, Deployed)>) {
    let trusted = Signer::generate("trusted");
    let untrusted = Signer::generate("untrusted");
    let builtin = Signing::new(&trusted, SigMode::Builtin);
    let detached = Signing::new(&trusted, SigMode::Detached);
    let make = |spec: ImageSpec, signing: &Signing<'_>| {
        let dir = tempfile::tempdir().unwrap();
        let d = deploy_fixture(dir.path(), &spec, signing);
        (dir, d)
    };
    let mut variants: Vec<(&'static str, tempfile::TempDir, Deployed)> = Vec::new();
    let mut push =
        |name: &'static str, (dir, d): (tempfile::TempDir, Deployed)| variants.push((name, dir, d));
    push("builtin", make(ImageSpec::standard("os-a"), &builtin));
    push("detached", make(ImageSpec::standard("os-d"), &detached));
    push(
        "attach",
        make(
            ImageSpec::standard("os-t"),
            &Signing::new(&trusted, SigMode::AttachAtBoot),
        ),
    );
    push("bootable", make(ImageSpec::bootable("os-boot"), &builtin));
    // Sealed with a bootable variant (merged.bootable role); and the same
    // with that EROFS changed on the disk (one padding byte, as
    // erofs-changed below).
    push(
        "boot-variant",
        make(ImageSpec::with_boot("os-bv"), &builtin),
    );
    let (dir, d) = make(ImageSpec::with_boot("os-bc"), &builtin);
    let bootable = format!("images/{}", d.bootable_digest.unwrap().to_hex());
    tamper(dir.path(), &bootable, |b| b[100] ^= 1);
    push("boot-variant-changed", (dir, d));
    // One byte: the first indentation space becomes a tab (still JSON).
    let space_to_tab = |b: &mut Vec<u8>| {
        let at = b.iter().position(|&c| c == b' ').unwrap();
        b[at] = b'\t';
    };
    let (dir, d) = make(ImageSpec::standard("os-m"), &builtin);
    tamper(dir.path(), &d.manifest_path(), space_to_tab);
    push("manifest-changed", (dir, d));
    let (dir, d) = make(ImageSpec::standard("os-c"), &builtin);
    tamper(dir.path(), &d.config_path(), space_to_tab);
    push("config-changed", (dir, d));
    // A byte in the padding between the composefs header and the
    // superblock: the image would still mount, only its digest differs.
    let (dir, d) = make(ImageSpec::standard("os-e"), &builtin);
    tamper(dir.path(), &d.image_path(), |b| b[100] ^= 1);
    push("erofs-changed", (dir, d));
    // Forged on top of a real builtin deployment: the EROFS signature
    // is by a key whose certificate is never in certs.d.
    let (dir, d) = make(ImageSpec::standard("os-u"), &builtin);
    let d = resign_erofs(dir.path(), &d, &untrusted);
    push("untrusted-erofs", (dir, d));
    let (dir, d) = make(ImageSpec::standard("os-s"), &detached);
    std::fs::remove_file(
        repo_dir(dir.path()).join(format!("blobs/sha256/{}", d.signature_blobs[2].to_hex())),
    )
    .unwrap();
    push("signature-missing", (dir, d));
    // Deployed on the host and never given fs-verity on the target.
    let (dir, d) = make(ImageSpec::standard("os-n"), &builtin);
    skip_enable_verity(dir.path());
    push("no-verity", (dir, d));
    // The same in a sha512 repository (objects and signed files
    // fsverity-sha512-12), sealed with per-object signatures (of the
    // objects' sha512 digests).
    let (dir, d) = make(
        ImageSpec::standard("os-512"),
        &Signing::new(&trusted, SigMode::Builtin)
            .sha512()
            .with_object_signatures(),
    );
    skip_enable_verity(dir.path());
    push("sha512-no-verity", (dir, d));
    // A second image deployed into the same repository; the first
    // deployment's hint is pointed at the second image's artifact.
    let (dir, d) = make(ImageSpec::standard("os-x"), &detached);
    let other = deploy_fixture(dir.path(), &ImageSpec::standard("os-y"), &detached);
    point_at_artifact(dir.path(), &d, other.artifact_digest.unwrap());
    push("subject-mismatch", (dir, d));

    // Binding (issue 10): sealed inline; an artifact without a binding
    // record (as sealroot wrote them before); and the forged pairing of
    // image NEW's manifest and config with image OLD's EROFS (both signed
    // by the same key, deployed in one repository), without and with NEW's
    // binding record.
    push(
        "inline",
        make(
            ImageSpec::standard("os-in"),
            &Signing::inline(&trusted, SigMode::Builtin),
        ),
    );
    let (dir, d) = make(ImageSpec::standard("os-ub"), &builtin);
    let d = strip_binding(dir.path(), &d);
    push("unbound", (dir, d));
    for (name, keep_record) in [("forged-unbound", false), ("forged-record", true)] {
        let (dir, new) = make(ImageSpec::standard("os-new"), &builtin);
        let old = deploy_fixture(dir.path(), &ImageSpec::standard("os-old"), &builtin);
        let d = pair_with_erofs_of(dir.path(), &new, &old, keep_record);
        push(name, (dir, d));
    }

    let paths: Vec<&std::path::Path> = variants.iter().map(|(_, d, _)| d.path()).collect();
    let disks = seal_disks(&paths, DISK_SIZE).expect("sealing the fixture disks");
    let disks = variants
        .into_iter()
        .zip(disks)
        .map(|((name, _dir, d), disk)| (name.to_owned(), disk, d))
        .collect();
    (vec![trusted, untrusted], disks)
}

fn fixture(name: &str) -> (DiskImage, Deployed) {
    let (disk, d) = &fixtures().disks[name];
    (copy_disk(disk), d.clone())
}

/// One boot: the disk at /sysroot, `conf` as prepare.conf, the trusted
/// certificate in certs.d (unless `certs` says otherwise), `cmdline`, then
/// `/bin/sealroot-prepare` and `checks`.
struct Boot<'a> {
    name: &'a str,
    cmdline: String,
    conf: Option<&'a str>,
    certs: Option<Vec<(&'a str, Vec<u8>)>>,
    /// Shell run before prepare (e.g. to make mounts shared).
    before: &'a str,
    checks: &'a str,
    xz_modules: bool,
    /// More files in the initramfs: (path, contents, mode).
    extra_files: Vec<(&'a str, Vec<u8>, u32)>,
}

impl<'a> Boot<'a> {
    fn new(name: &'a str, cmdline: String) -> Self {
        Boot {
            name,
            cmdline,
            conf: None,
            certs: None,
            before: "",
            checks: "",
            xz_modules: false,
            extra_files: Vec::new(),
        }
    }

    fn run(&self, disk: &DiskImage) -> Result<BootLog> {
        let kernel = Kernel::get()?;
        let scenario = format!(
            r#"
{before}
bed_run prepare /bin/sealroot-prepare
bed_value status "$(cat /run/sealroot/status.json)"
bed_value sysroot_mounts "$(grep -c ' /sysroot' /proc/mounts)"
bed_value stage "$(ls -a /run/sealroot)"
bed_value kmsg "$(dmesg | grep 'sealroot:')"
{checks}
if grep -q '"result": "mounted"' /run/sealroot/status.json; then
    cd / && umount -l /sysroot
fi
"#,
            before = self.before,
            checks = self.checks
        );
        let mut image = Initramfs::test(kernel, &scenario)?
            .load_modules(kernel, &["virtio_blk"])?
            .static_binaries(static_binaries()?)
            .mount("/dev/vda", "/sysroot", "ext4", "")
            .file(
                "/root/untrusted.der",
                fixtures().untrusted.cert.der().to_vec(),
                0o644,
            )
            .dir("/etc/sealroot/certs.d", 0o755);
        if self.xz_modules {
            image = image.kernel_modules(kernel, ModuleForm::Xz);
        }
        let certs = self
            .certs
            .clone()
            .unwrap_or_else(|| vec![("trusted.der", fixtures().trusted.cert.der().to_vec())]);
        for (name, der) in certs {
            image = image.file(&format!("/etc/sealroot/certs.d/{name}"), der, 0o644);
        }
        if let Some(conf) = self.conf {
            image = image.file("/etc/sealroot/prepare.conf", conf, 0o644);
        }
        for (path, contents, mode) in &self.extra_files {
            image = image.file(path, contents.clone(), *mode);
        }
        Vm::new(kernel, image)
            .name(self.name)
            .cmdline(&self.cmdline)
            .disk(disk)
            .run()
    }
}

fn status(log: &BootLog) -> Value {
    serde_json::from_str(log.value("status").unwrap())
        .unwrap_or_else(|e| panic!("status.json: {e}\n{}", log.value("status").unwrap()))
}

fn sha256_hex(b: &[u8]) -> String {
    sealroot::oci::Sha256Digest::of(b).to_hex()
}

/// A refusal: exit code, the one message line, nothing new mounted at
/// /sysroot, no staging left, and the record says refused.
fn assert_refused(log: &BootLog, rc: i32, message: &str) -> Result<()> {
    log.result("prepare")?
        .assert_rc(rc)?
        .assert_stderr_contains(message)?;
    let stderr = &log.result("prepare")?.stderr;
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("sealroot: error:"))
            .count(),
        1,
        "exactly one message line expected:\n{stderr}"
    );
    assert_eq!(
        log.value("sysroot_mounts")?,
        "1",
        "only the physical root at /sysroot"
    );
    assert!(
        !log.value("stage")?.contains(".stage"),
        "staging left behind"
    );
    let s = status(log);
    assert_eq!(s["result"], "refused");
    assert_eq!(s["exit_code"], rc);
    assert!(s["error"].as_str().unwrap().contains(message));
    assert!(
        log.value("kmsg")?.contains(message),
        "message not in the kernel log"
    );
    Ok(())
}

const COMMON_CHECKS: &str = r#"
bed_run os-release cat /sysroot/etc/os-release
bed_run big sha256sum /sysroot/usr/share/big.txt
bed_run link readlink /sysroot/usr/share/link
bed_run ro touch /sysroot/usr/new-file
bed_run keyring-sealed /bin/sealroot keyring add /root/untrusted.der
bed_run physical ls /sysroot/sysroot/sealroot
bed_value mounts "$(grep ' /sysroot' /proc/mounts)"
"#;

fn assert_common(log: &BootLog, tag: &str) -> Result<()> {
    log.result("prepare")?.assert_ok()?;
    log.result("os-release")?
        .assert_ok()?
        .assert_stdout_eq(&format!("ID={tag}\n"))?;
    log.result("big")?
        .assert_ok()?
        .assert_stdout_contains(&sha256_hex(&big_content(tag)))?;
    log.result("link")?.assert_stdout_eq("big.txt\n")?;
    log.result("ro")?
        .assert_failed()?
        .assert_stderr_contains("Read-only file system")?;
    // reject-all: EPERM; ca-chain: ENOKEY (not signed by a key in it).
    let sealed = log.result("keyring-sealed")?.assert_failed()?;
    assert!(
        sealed.stderr.contains("EPERM") || sealed.stderr.contains("ENOKEY: the keyring is sealed"),
        "{}",
        sealed.stderr
    );
    log.result("physical")?
        .assert_stdout_contains("deployments")?;
    let mounts = log.value("mounts")?;
    // Exactly: the physical root, the sealed root, /etc, /var, /sysroot.
    assert_eq!(mounts.lines().count(), 5, "{mounts}");
    assert!(
        mounts.contains("/sysroot overlay ro")
            && mounts.contains("verity=require")
            && mounts.contains("/sysroot/sysroot ext4"),
        "{mounts}"
    );
    Ok(())
}

#[test]
fn selects_by_manifest_digest_in_kernel_mode_and_persists_etc_and_var() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let conf = "[verify]\nsignatures = kernel\n[etc]\nmode = persistent\n";
    let checks = format!(
        "{COMMON_CHECKS}
bed_run etc-write sh -c 'echo persisted > /sysroot/etc/marker'
bed_run var-write sh -c 'echo kept > /sysroot/var/marker'
bed_run etc-upper ls /sysroot/sysroot/sealroot/{dep}/etc/upper
",
        dep = d.deployment_dir()
    );
    let mut boot = Boot::new(
        "prepare-manifest-kernel",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.conf = Some(conf);
    boot.checks = &checks;
    boot.xz_modules = true;
    let log = boot.run(&disk)?;
    assert_common(&log, "os-a")?;
    log.result("etc-write")?.assert_ok()?;
    log.result("var-write")?.assert_ok()?;
    log.result("etc-upper")?.assert_stdout_contains("marker")?;
    let s = status(&log);
    assert_eq!(s["result"], "mounted");
    assert_eq!(s["verification"], "kernel");
    assert_eq!(s["image"]["manifest"], d.manifest_digest.to_string());
    assert_eq!(s["image"]["config"], d.config_digest.to_string());
    assert_eq!(s["image"]["erofs"], d.image_digest.to_string());
    assert_eq!(s["image"]["files"]["erofs"]["signature"], "kernel");
    assert_eq!(
        s["image"]["files"]["manifest"]["trusted_by"]["fingerprint"],
        Value::String(fixtures().trusted.cert.fingerprint().to_string())
    );
    assert_eq!(s["keyring"]["sealed"], "reject-all");
    assert_eq!(s["mount"]["erofs_backing"], "file");
    // Loaded from the .ko.xz files with MODULE_INIT_COMPRESSED_FILE.
    assert_eq!(
        s["modules_loaded"],
        serde_json::json!(["libcrc32c", "erofs", "overlay"])
    );
    assert!(s["timings_us"]["total"].as_u64().unwrap() > 0);
    println!("timings: {}", s["timings_us"]);
    assert!(
        log.value("kmsg")?
            .contains("mounted the sealed root at /sysroot")
    );

    // Second boot: /etc and /var kept their writes.
    let mut boot2 = Boot::new(
        "prepare-manifest-kernel-2",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot2.conf = Some(conf);
    boot2.checks =
        "bed_run etc-read cat /sysroot/etc/marker\nbed_run var-read cat /sysroot/var/marker\n";
    let log = boot2.run(&disk)?;
    log.result("prepare")?.assert_ok()?;
    log.result("etc-read")?.assert_stdout_eq("persisted\n")?;
    log.result("var-read")?.assert_stdout_eq("kept\n")?;
    Ok(())
}

#[test]
fn selects_by_config_digest_in_userspace_mode_with_transient_etc() -> Result<()> {
    let (disk, d) = fixture("detached");
    let checks = format!(
        "{COMMON_CHECKS}
bed_run etc-write sh -c 'echo gone > /sysroot/etc/marker && cat /sysroot/etc/marker'
bed_run etc-upper ls -A /sysroot/sysroot/sealroot/{dep}/etc/upper
bed_run var-write sh -c 'echo kept > /sysroot/var/marker'
",
        dep = d.deployment_dir()
    );
    let mut boot = Boot::new(
        "prepare-config-userspace",
        format!("quiet sealroot.config=sha256:{}", d.config_digest.to_hex()),
    );
    boot.conf = Some("[verify]\nsignatures = userspace\n[etc]\nmode = transient\n");
    boot.checks = &checks;
    let log = boot.run(&disk)?;
    assert_common(&log, "os-d")?;
    log.result("etc-write")?.assert_stdout_eq("gone\n")?;
    // Transient: nothing reached the disk's /etc state.
    log.result("etc-upper")?.assert_ok()?.assert_stdout_eq("")?;
    let s = status(&log);
    assert_eq!(s["verification"], "userspace");
    assert_eq!(s["image"]["files"]["config"]["signature"], "userspace");
    assert_eq!(s["mount"]["etc"], "transient");
    assert_eq!(
        disk.list_dir(&format!("/sealroot/{}/etc/upper", d.deployment_dir()))?,
        Vec::<String>::new()
    );
    assert_eq!(
        disk.read_to_string(&format!("/sealroot/{}/var/marker", d.deployment_dir()))?,
        "kept\n"
    );
    Ok(())
}

#[test]
fn selects_by_erofs_digest_through_a_loop_device_under_shared_mounts() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let mut boot = Boot::new(
        "prepare-erofs-loop",
        format!("sealroot.image={}", d.image_digest.to_hex()),
    );
    boot.conf = Some("[mount]\nerofs-backing = loop\n[keyring]\nseal = ca-chain\n");
    // What systemd does in the initrd: every mount shared.
    boot.before = "mount --make-rshared /";
    boot.checks = COMMON_CHECKS;
    let log = boot.run(&disk)?;
    assert_common(&log, "os-a")?;
    let s = status(&log);
    assert!(
        s["mount"]["erofs_backing"]
            .as_str()
            .unwrap()
            .starts_with("loop:/dev/loop"),
        "{}",
        s["mount"]
    );
    assert_eq!(s["keyring"]["sealed"], "ca-chain");
    assert!(
        s["modules_loaded"]
            .as_array()
            .unwrap()
            .contains(&"loop".into())
    );
    Ok(())
}

#[test]
fn composefs_digest_form_selects_the_image() -> Result<()> {
    let (disk, d) = fixture("detached");
    let mut boot = Boot::new(
        "prepare-composefs-form",
        format!("composefs.digest=v1-sha256-12:{}", d.image_digest.to_hex()),
    );
    boot.checks = "bed_run os-release cat /sysroot/etc/os-release\n";
    let log = boot.run(&disk)?;
    log.result("prepare")?.assert_ok()?;
    log.result("os-release")?.assert_stdout_eq("ID=os-d\n")?;
    assert_eq!(status(&log)["verification"], "userspace");
    Ok(())
}

#[test]
fn attaches_signatures_at_boot_when_allowed() -> Result<()> {
    let (disk, d) = fixture("attach");
    let checks = format!(
        "bed_run os-release cat /sysroot/etc/os-release\n\
         bed_run builtin /bin/sealroot show-signature --out=/tmp/sig /sysroot/sysroot/sealroot/{}\n",
        d.image_path()
    );
    let mut boot = Boot::new(
        "prepare-attach",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.conf = Some("[verify]\nattach-signatures = yes\n");
    boot.checks = &checks;
    let log = boot.run(&disk)?;
    log.result("prepare")?.assert_ok()?;
    log.result("os-release")?.assert_stdout_eq("ID=os-t\n")?;
    log.result("builtin")?.assert_ok()?;
    let s = status(&log);
    assert_eq!(s["verification"], "kernel");
    assert_eq!(s["image"]["files"]["erofs"]["attached"], true);
    Ok(())
}

#[test]
fn refuses_attach_at_boot_deployment_without_permission() -> Result<()> {
    let (disk, d) = fixture("attach");
    let log = Boot::new(
        "prepare-attach-refused",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "has no fs-verity")?;
    log.result("prepare")?
        .assert_stderr_contains("deployed with --signatures=attach-at-boot")?;
    Ok(())
}

/// A builtin deployment made on a host without fs-verity, booted before
/// `sealroot repo enable-verity` ran on the target: refused, and the
/// deployment's `"verity": false` (written by `sealroot deploy`, read by
/// `sealroot-prepare` with the same parser) turns into the fix.
#[test]
fn refuses_deployment_without_verity_and_names_the_fix() -> Result<()> {
    let (disk, d) = fixture("no-verity");
    let dj = disk.read_to_string(&format!("/sealroot/{}/deployment.json", d.deployment_dir()))?;
    let dj = sealroot::repo::json::Deployment::parse(dj.as_bytes()).unwrap();
    assert!(!dj.verity && dj.signatures == sealroot::repo::SignatureMode::Builtin);
    let log = Boot::new(
        "prepare-no-verity",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "has no fs-verity")?;
    log.result("prepare")?
        .assert_stderr_contains("\"verity\": false")?
        .assert_stderr_contains("sealroot repo enable-verity")?;
    Ok(())
}

/// The first boot of a deployment made without fs-verity (an mkosi image
/// built on a host without it), with attaching allowed: the signed files
/// get their builtin signatures, the objects fs-verity, deployment.json
/// `"verity": true`. An object altered on the disk *before* that boot is
/// caught as the walk measures it against the digest the signed EROFS
/// records: the boot is refused naming it (before, the boot went on and
/// the file read as EIO), and deployment.json keeps `"verity": false`.
#[test]
fn first_boot_without_verity_enables_it_on_objects_when_attaching() -> Result<()> {
    let (disk, d) = fixture("no-verity");
    let other = digest_bytes(&VerityParams::sha256(), &big_content("os-n-other"));
    let checks = format!(
        "bed_run big sha256sum /sysroot/usr/share/big.txt\n\
         bed_run other sha256sum /sysroot/usr/share/other.txt\n\
         bed_run measure /bin/sealroot measure /sysroot/sysroot/sealroot/objects/{}\n",
        object_path(&other)
    );
    let cmdline = format!("sealroot=sha256:{}", d.manifest_digest.to_hex());
    let mut boot = Boot::new("prepare-first-boot-objects", cmdline.clone());
    boot.conf = Some("[verify]\nattach-signatures = yes\n");
    boot.checks = &checks;
    let log = boot.run(&disk)?;
    log.result("prepare")?
        .assert_ok()?
        .assert_stderr_contains("enabled fs-verity (sha256, as the signed EROFS records) on")?;
    log.result("other")?
        .assert_ok()?
        .assert_stdout_contains(&sha256_hex(&big_content("os-n-other")))?;
    log.result("big")?
        .assert_ok()?
        .assert_stdout_contains(&sha256_hex(&big_content("os-n")))?;
    log.result("measure")?
        .assert_ok()?
        .assert_stdout_contains(&other.to_hex())?;
    let s = status(&log);
    assert_eq!(s["verification"], "kernel");
    assert_eq!(s["image"]["files"]["erofs"]["attached"], true);
    assert_eq!(s["objects_verity"]["algorithm"], "sha256");
    assert!(
        s["objects_verity"]["enabled"].as_u64().unwrap() >= 2,
        "{s:#}"
    );
    let dj = disk.read_to_string(&format!("/sealroot/{}/deployment.json", d.deployment_dir()))?;
    let dj = sealroot::repo::json::Deployment::parse(dj.as_bytes()).unwrap();
    assert!(dj.verity, "deployment.json still says verity: false");

    let (disk, _) = fixture("no-verity");
    let big = digest_bytes(&VerityParams::sha256(), &big_content("os-n"));
    let object = format!("/sealroot/objects/{}", object_path(&big));
    disk.corrupt_byte(&object, 10)?;
    let mut boot = Boot::new("prepare-first-boot-altered-object", cmdline);
    boot.conf = Some("[verify]\nattach-signatures = yes\n");
    let log = boot.run(&disk)?;
    assert_refused(&log, 3, "the object was altered on the disk")?;
    log.result("prepare")?
        .assert_stderr_contains(&format!("/sysroot{object}: its fs-verity digest is"))?
        .assert_stderr_contains(&format!("the signed image records {big}"))?;
    let dj = disk.read_to_string(&format!("/sealroot/{}/deployment.json", d.deployment_dir()))?;
    let dj = sealroot::repo::json::Deployment::parse(dj.as_bytes()).unwrap();
    assert!(
        !dj.verity,
        "deployment.json says verity: true after a refusal"
    );
    Ok(())
}

/// A hard link planted in `objects/` (an object's name linked to a file
/// outside the repository, same filesystem) before the first boot of a
/// deployment made without fs-verity: the first-boot walk refuses the boot
/// before enabling fs-verity on it, and the outside file stays an ordinary
/// writable file. Without the link-count check the walk gave that inode
/// fs-verity (the outside file immutable for good) and the boot went on.
#[test]
fn first_boot_refuses_a_hardlinked_object() -> Result<()> {
    let (disk, d) = fixture("no-verity");
    let other = digest_bytes(&VerityParams::sha256(), &big_content("os-n-other"));
    let object = format!("/sysroot/sealroot/objects/{}", object_path(&other));
    let before = format!(
        "cp {object} /sysroot/outside\n\
         ln -f /sysroot/outside {object}\n\
         bed_run links stat -c %h /sysroot/outside\n"
    );
    let mut boot = Boot::new(
        "prepare-first-boot-hardlink",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.conf = Some("[verify]\nattach-signatures = yes\n");
    boot.before = &before;
    boot.checks = "bed_run outside-writable sh -c 'echo appended >> /sysroot/outside'\n\
                   bed_run outside-verity /bin/sealroot measure /sysroot/outside\n";
    let log = boot.run(&disk)?;
    log.result("links")?.assert_ok()?.assert_stdout_eq("2\n")?;
    assert_refused(&log, 3, "has 2 hard links")?;
    log.result("prepare")?
        .assert_stderr_contains(&format!("{object}: has 2 hard links"))?;
    // No fs-verity on the inode: writable, and nothing to measure.
    log.result("outside-writable")?.assert_ok()?;
    log.result("outside-verity")?.assert_failed()?;
    let dj = disk.read_to_string(&format!("/sealroot/{}/deployment.json", d.deployment_dir()))?;
    let dj = sealroot::repo::json::Deployment::parse(dj.as_bytes()).unwrap();
    assert!(
        !dj.verity,
        "deployment.json says verity: true after a refusal"
    );
    Ok(())
}

#[test]
fn kernel_policy_refuses_detached_signatures() -> Result<()> {
    let (disk, d) = fixture("detached");
    let mut boot = Boot::new(
        "prepare-kernel-policy",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.conf = Some("[verify]\nsignatures = kernel\n");
    let log = boot.run(&disk)?;
    assert_refused(&log, 1, "has no builtin fs-verity signature")
}

#[test]
fn refuses_unknown_digest() -> Result<()> {
    let (disk, _) = fixture("builtin");
    let log = Boot::new(
        "prepare-unknown",
        format!("sealroot=sha256:{}", "ab".repeat(32)),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "no such image is deployed")
}

#[test]
fn refuses_changed_manifest() -> Result<()> {
    let (disk, d) = fixture("manifest-changed");
    let log = Boot::new(
        "prepare-manifest-changed",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "fs-verity digest mismatch")?;
    log.result("prepare")?
        .assert_stderr_contains("manifest sha256:")?;
    Ok(())
}

#[test]
fn refuses_changed_config() -> Result<()> {
    let (disk, d) = fixture("config-changed");
    let log = Boot::new(
        "prepare-config-changed",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "fs-verity digest mismatch")?;
    log.result("prepare")?
        .assert_stderr_contains("config sha256:")?;
    Ok(())
}

/// An artifact that signs a bootable variant: sealroot-prepare mounts that
/// one (its /boot is empty; its labels are checked against cfsctl on the
/// host, tests/cfsctl_interop.rs);
/// `sealroot.image=` naming the merged EROFS mounts the merged one (whose
/// /boot has the image's content), `composefs=` naming the bootable one
/// mounts it.
#[test]
fn boots_the_bootable_variant_when_the_artifact_signs_one() -> Result<()> {
    let (disk, d) = fixture("boot-variant");
    let bootable = d
        .bootable_digest
        .expect("oci seal signed a bootable variant");
    assert_ne!(bootable, d.image_digest);
    let checks = "bed_run os-release cat /sysroot/etc/os-release\n\
                  bed_run boot ls -A /sysroot/boot\n";
    for (name, cmdline, variant, digest) in [
        (
            "prepare-boot-variant",
            format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
            "bootable",
            bootable,
        ),
        (
            "prepare-boot-variant-composefs",
            format!("composefs={}", bootable.to_hex()),
            "bootable",
            bootable,
        ),
        (
            "prepare-boot-variant-merged",
            format!("sealroot.image={}", d.image_digest.to_hex()),
            "merged",
            d.image_digest,
        ),
    ] {
        let mut boot = Boot::new(name, cmdline);
        boot.checks = checks;
        let log = boot.run(&disk)?;
        log.result("prepare")?.assert_ok()?;
        log.result("os-release")?.assert_stdout_eq("ID=os-bv\n")?;
        let s = status(&log);
        assert_eq!(s["image"]["variant"], variant, "{name}: {}", s["image"]);
        assert_eq!(s["image"]["erofs"], digest.to_string(), "{name}");
        let boot_dir = log.result("boot")?.assert_ok()?;
        if variant == "bootable" {
            assert_eq!(boot_dir.stdout, "", "{name}: /boot must be empty");
        } else {
            boot_dir.assert_stdout_eq("boot-marker\n")?;
        }
    }
    Ok(())
}

#[test]
fn refuses_a_changed_bootable_erofs() -> Result<()> {
    let (disk, d) = fixture("boot-variant-changed");
    let log = Boot::new(
        "prepare-boot-variant-changed",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "fs-verity digest mismatch")?;
    log.result("prepare")?
        .assert_stderr_contains("bootable merged EROFS sha256:")?;
    Ok(())
}

#[test]
fn refuses_changed_erofs() -> Result<()> {
    let (disk, d) = fixture("erofs-changed");
    let log = Boot::new(
        "prepare-erofs-changed",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "fs-verity digest mismatch")?;
    log.result("prepare")?
        .assert_stderr_contains("merged EROFS sha256:")?;
    Ok(())
}

/// The EROFS altered *below* fs-verity (one byte on the disk): its measured
/// digest is still the signed one, so the checks on open pass; the kernel
/// refuses the data as the EROFS mount reads it (EIO), which prepare reports
/// as a refusal of the image, not a system failure.
#[test]
fn refuses_erofs_altered_on_disk_below_fs_verity() -> Result<()> {
    let (disk, d) = fixture("builtin");
    disk.corrupt_byte(&format!("/sealroot/{}", d.image_path()), 1100)?;
    let log = Boot::new(
        "prepare-erofs-altered-on-disk",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(
        &log,
        1,
        "data fails fs-verity verification (altered on disk)",
    )?;
    log.assert_console_contains("FILE CORRUPTED")?;
    Ok(())
}

#[test]
fn refuses_erofs_signed_by_an_untrusted_key() -> Result<()> {
    let (disk, d) = fixture("untrusted-erofs");
    let log = Boot::new(
        "prepare-untrusted",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    // Builtin mode: the kernel itself refuses to open the file.
    assert_refused(&log, 1, "ENOKEY")?;
    log.result("prepare")?
        .assert_stderr_contains("merged EROFS")?;
    Ok(())
}

#[test]
fn refuses_missing_signature() -> Result<()> {
    let (disk, d) = fixture("signature-missing");
    let log = Boot::new(
        "prepare-signature-missing",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "signature missing")
}

#[test]
fn refuses_artifact_of_another_image() -> Result<()> {
    let (disk, d) = fixture("subject-mismatch");
    let log = Boot::new(
        "prepare-subject-mismatch",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "artifact subject mismatch")
}

#[test]
fn refuses_empty_certificate_directory() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let mut boot = Boot::new(
        "prepare-no-certs",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.certs = Some(Vec::new());
    boot.checks = "bed_value keys \"$(cat /proc/keys)\"\n";
    let log = boot.run(&disk)?;
    assert_refused(&log, 2, "no certificates in /etc/sealroot/certs.d")?;
    Ok(())
}

#[test]
fn refuses_malformed_command_line() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let log = Boot::new(
        "prepare-bad-cmdline",
        format!("sealroot=sha256:{}", &d.manifest_digest.to_hex()[..40]),
    )
    .run(&disk)?;
    assert_refused(&log, 2, "kernel command line: sealroot=sha256:")
}

#[test]
fn altered_object_reads_as_eio_after_mounting() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let big = digest_bytes(&VerityParams::sha256(), &big_content("os-a"));
    disk.corrupt_byte(&format!("/sealroot/objects/{}", object_path(&big)), 10)?;
    let mut boot = Boot::new(
        "prepare-object-altered",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.checks = "bed_run big cat /sysroot/usr/share/big.txt\n\
                   bed_run other sha256sum /sysroot/usr/share/other.txt\n";
    let log = boot.run(&disk)?;
    log.result("prepare")?.assert_ok()?;
    log.result("big")?
        .assert_failed()?
        .assert_stderr_contains("Input/output error")?;
    log.result("other")?
        .assert_ok()?
        .assert_stdout_contains(&sha256_hex(&big_content("os-a-other")))?;
    Ok(())
}

#[test]
fn switch_root_into_the_sealed_root() -> Result<()> {
    let (disk, d) = fixture("bootable");
    let kernel = Kernel::get()?;
    // Our own /init: what the dracut/systemd integration will do.
    let init = "#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
insmod /lib/modules/$(uname -r)/kernel/drivers/block/virtio_blk.ko
mkdir -p /sysroot
mount -t ext4 /dev/vda /sysroot
/bin/sealroot-prepare || { echo \"PREPARE-FAILED $?\"; poweroff -f; }
exec switch_root /sysroot /sbin/init
";
    let image = Initramfs::test(kernel, "")?
        .static_binaries(static_binaries()?)
        .file("/init", init, 0o755)
        .dir("/etc/sealroot/certs.d", 0o755)
        .file(
            "/etc/sealroot/certs.d/trusted.der",
            fixtures().trusted.cert.der().to_vec(),
            0o644,
        );
    let log = Vm::new(kernel, image)
        .name("prepare-switch-root")
        .cmdline(&format!("sealroot=sha256:{}", d.manifest_digest.to_hex()))
        .disk(&disk)
        .run_unchecked()?;
    log.assert_console_contains("SEALROOT-SWITCHED ID=os-boot")?;
    log.assert_console_contains("root: composefs / overlay ro")?;
    Ok(())
}

/// The attack of issue 10, as reproduced on the code before binding: an
/// (unsigned) artifact for image NEW whose merged EROFS entry and signature
/// are image OLD's. Every signature in it is genuine, so before binding
/// records the boot mounted OLD's root while status.json named NEW; now
/// nothing ties NEW's config to that EROFS and the default refuses it.
#[test]
fn refuses_an_artifact_pairing_the_manifest_with_another_images_erofs() -> Result<()> {
    let (disk, d) = fixture("forged-unbound");
    let mut boot = Boot::new(
        "prepare-forged-pairing",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.checks = "bed_run os-release cat /sysroot/etc/os-release\n";
    let log = boot.run(&disk)?;
    assert_refused(&log, 1, "not bound")?;
    log.result("prepare")?
        .assert_stderr_contains(&format!("merged EROFS {}", d.image_digest))?
        .assert_stderr_contains("require-binding = no")?;
    log.result("os-release")?.assert_failed()?;
    Ok(())
}

/// The same forgery keeping NEW's binding record: the record is genuine
/// and signed, but it names NEW's EROFS, not the one the artifact pairs.
#[test]
fn refuses_a_binding_record_that_names_another_erofs() -> Result<()> {
    let (disk, d) = fixture("forged-record");
    let log = Boot::new(
        "prepare-forged-record",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "binding record names merged EROFS")?;
    log.result("prepare")?
        .assert_stderr_contains(&format!("this image's merged EROFS is {}", d.image_digest))?;
    Ok(())
}

/// `sealroot oci seal --inline`: no artifact, the signatures in the
/// manifest's annotations, the EROFS bound by the signed config's label;
/// booted in kernel mode with a rollback floor (which a label-bound image
/// satisfies).
#[test]
fn boots_an_inline_sealed_image() -> Result<()> {
    let (disk, d) = fixture("inline");
    let dj = disk.read_to_string(&format!("/sealroot/{}/deployment.json", d.deployment_dir()))?;
    assert!(
        dj.contains("\"artifact\": null") && dj.contains("\"format\": 2"),
        "{dj}"
    );
    let mut boot = Boot::new(
        "prepare-inline",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.conf = Some("[verify]\nsignatures = kernel\nmin-created = 2026-03-01T00:00:00Z\n");
    boot.checks = COMMON_CHECKS;
    let log = boot.run(&disk)?;
    assert_common(&log, "os-in")?;
    let s = status(&log);
    assert_eq!(s["image"]["sealed"], "inline");
    assert_eq!(s["image"]["artifact"], Value::Null);
    assert_eq!(s["image"]["files"]["manifest"], Value::Null);
    assert_eq!(s["image"]["files"]["config"]["signature"], "kernel");
    assert_eq!(s["image"]["files"]["erofs"]["signature"], "kernel");
    assert_eq!(s["verification"], "kernel");
    assert_eq!(
        s["image"]["binding"]["bound_by"],
        serde_json::json!(["config-label"])
    );
    assert_eq!(s["image"]["binding"]["created"], CREATED);
    assert_eq!(s["image"]["erofs"], d.image_digest.to_string());
    Ok(())
}

/// An image sealed before binding records (genuine signatures, nothing
/// tying them together) is refused under the default `require-binding`.
#[test]
fn refuses_an_unbound_image_by_default() -> Result<()> {
    let (disk, d) = fixture("unbound");
    let log = Boot::new(
        "prepare-unbound",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    )
    .run(&disk)?;
    assert_refused(&log, 1, "not bound")?;
    log.result("prepare")?
        .assert_stderr_contains("Reseal the image with this sealroot")?
        .assert_stderr_contains("require-binding = no")?;
    Ok(())
}

#[test]
fn boots_an_unbound_image_with_require_binding_no() -> Result<()> {
    let (disk, d) = fixture("unbound");
    let mut boot = Boot::new(
        "prepare-unbound-allowed",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.conf = Some("[verify]\nrequire-binding = no\n");
    boot.checks = "bed_run os-release cat /sysroot/etc/os-release\n";
    let log = boot.run(&disk)?;
    log.result("prepare")?
        .assert_ok()?
        .assert_stderr_contains("is not bound")?;
    log.result("os-release")?.assert_stdout_eq("ID=os-ub\n")?;
    let s = status(&log);
    assert_eq!(s["image"]["binding"]["bound_by"], serde_json::json!([]));
    assert_eq!(s["config"]["require-binding"], false);
    Ok(())
}

/// A floor needs a bound image: an unbound config's `created` says
/// nothing about the EROFS it is paired with.
#[test]
fn refuses_an_unbound_image_when_a_rollback_floor_is_set() -> Result<()> {
    let (disk, d) = fixture("unbound");
    let mut boot = Boot::new(
        "prepare-unbound-floor",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.conf = Some("[verify]\nrequire-binding = no\nmin-created = 2020-01-01T00:00:00Z\n");
    let log = boot.run(&disk)?;
    assert_refused(
        &log,
        1,
        "min-created = 2020-01-01T00:00:00Z is set, but the image is not bound",
    )
}

/// The rollback floor: the image's signed `created` (CREATED) is one
/// nanosecond below it.
#[test]
fn refuses_an_image_older_than_the_rollback_floor() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let floor = "2026-03-01T00:00:00.000000001Z";
    let mut boot = Boot::new(
        "prepare-below-floor",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    let conf = format!("[verify]\nmin-created = {floor}\n");
    boot.conf = Some(&conf);
    let log = boot.run(&disk)?;
    assert_refused(&log, 1, "older than [verify] min-created")?;
    log.result("prepare")?
        .assert_stderr_contains(&format!("created {CREATED}"))?
        .assert_stderr_contains(&format!("min-created = {floor}"))?;
    Ok(())
}

/// At the floor (the same instant, written with another offset) it boots.
#[test]
fn boots_an_image_at_the_rollback_floor() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let mut boot = Boot::new(
        "prepare-at-floor",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.conf = Some("[verify]\nmin-created = 2026-03-01T01:00:00+01:00\n");
    boot.checks = "bed_run os-release cat /sysroot/etc/os-release\n";
    let log = boot.run(&disk)?;
    log.result("prepare")?.assert_ok()?;
    log.result("os-release")?.assert_stdout_eq("ID=os-a\n")?;
    let s = status(&log);
    assert_eq!(
        s["image"]["binding"]["bound_by"],
        serde_json::json!(["binding-record"])
    );
    assert_eq!(s["image"]["binding"]["created"], CREATED);
    assert_eq!(
        s["image"]["binding"]["min_created"],
        "2026-03-01T01:00:00+01:00"
    );
    assert_eq!(
        s["image"]["binding"]["record_trusted_by"]["fingerprint"],
        Value::String(fixtures().trusted.cert.fingerprint().to_string())
    );
    Ok(())
}

/// A sha512 repository (`repo.json` format 2: objects and signed files
/// fsverity-sha512-12, as `cfsctl init` makes by default) deployed on a
/// host without fs-verity, booted three times with attaching allowed:
///
/// 1. an object altered before the first boot: the first-boot walk
///    enables sha512 fs-verity on it (the algorithm read from the signed
///    EROFS's metacopy digests, not from repo.json), measures it, and
///    refuses the boot naming it; deployment.json keeps `"verity": false`;
/// 2. untouched: every object the EROFS records gets sha512 fs-verity
///    (measured by the kernel equal to its 128-digit name) with its builtin
///    signature from the bundle (a PKCS#7 over the sha512 digest,
///    ecdsa-with-SHA512: the kernel checks it against `.fs-verity` as it
///    enables fs-verity), the signed files their signatures,
///    deployment.json `"verity": true`; the files read through overlayfs
///    `verity=require` with sha512 metacopy digests;
/// 3. the same disk again, an object altered below fs-verity: the walk is
///    skipped, the sealed root mounts, and that file reads as EIO.
///
/// The repository's repo.json is rewritten to claim sha256 objects before
/// the boots: the walk must not believe it (the disk is the attacker's).
#[test]
fn sha512_repository_first_boot_enables_sha512_objects_and_refuses_altered_ones() -> Result<()> {
    let name = "sha512-no-verity";
    let (_, d) = fixture(name);
    assert_eq!(
        d.image_digest.algorithm(),
        sealroot::verity::HashAlgorithm::Sha512
    );
    let big = digest_bytes(&VerityParams::sha512(), &big_content("os-512"));
    let other = digest_bytes(&VerityParams::sha512(), &big_content("os-512-other"));
    let object = format!("/sealroot/objects/{}", object_path(&big));
    let conf = "[verify]\nattach-signatures = yes\n";
    let cmdline = format!("sealroot=sha256:{}", d.manifest_digest.to_hex());
    // A lying hint, written in the VM before prepare runs: format-1
    // repo.json means sha256 objects.
    let lie = "printf '{\"format\": 1, \"algorithm\": \"fsverity-sha512-12\"}\\n' \
               > /sysroot/sealroot/repo.json\n\
               bed_run lie cat /sysroot/sealroot/repo.json\n";
    let repo_json = fixture(name).0.read_to_string("/sealroot/repo.json")?;
    assert!(
        repo_json.contains("\"objects\": \"fsverity-sha512-12\""),
        "{repo_json}"
    );

    // 1. Altered before the first boot.
    let (disk, _) = fixture(name);
    disk.corrupt_byte(&object, 10)?;
    let mut boot = Boot::new("prepare-sha512-altered-first-boot", cmdline.clone());
    boot.conf = Some(conf);
    boot.before = lie;
    let log = boot.run(&disk)?;
    log.result("lie")?.assert_stdout_contains("\"format\": 1")?;
    assert_refused(&log, 3, "the object was altered on the disk")?;
    log.result("prepare")?
        .assert_stderr_contains(&format!(
            "/sysroot{object}: its fs-verity digest is sha512:"
        ))?
        .assert_stderr_contains(&format!("the signed image records {big}"))?;
    let dj = disk.read_to_string(&format!("/sealroot/{}/deployment.json", d.deployment_dir()))?;
    let dj = sealroot::repo::json::Deployment::parse(dj.as_bytes()).unwrap();
    assert!(
        !dj.verity,
        "deployment.json says verity: true after a refusal"
    );

    // 2. Untouched.
    let (disk, _) = fixture(name);
    let checks = format!(
        "bed_run big sha256sum /sysroot/usr/share/big.txt\n\
         bed_run other sha256sum /sysroot/usr/share/other.txt\n\
         bed_run measure /bin/sealroot measure /sysroot/sysroot/sealroot/objects/{}\n",
        object_path(&other)
    );
    let mut boot = Boot::new("prepare-sha512-first-boot", cmdline.clone());
    boot.conf = Some(conf);
    boot.before = lie;
    boot.checks = &checks;
    let log = boot.run(&disk)?;
    log.result("prepare")?
        .assert_ok()?
        .assert_stderr_contains("enabled fs-verity (sha512, as the signed EROFS records) on")?;
    log.result("big")?
        .assert_ok()?
        .assert_stdout_contains(&sha256_hex(&big_content("os-512")))?;
    log.result("other")?
        .assert_ok()?
        .assert_stdout_contains(&sha256_hex(&big_content("os-512-other")))?;
    log.result("measure")?
        .assert_ok()?
        .assert_stdout_contains(&other.to_string())?;
    let s = status(&log);
    assert_eq!(s["image"]["erofs"], d.image_digest.to_string());
    assert_eq!(s["image"]["files"]["erofs"]["attached"], true);
    assert_eq!(s["objects_verity"]["algorithm"], "sha512");
    let enabled = s["objects_verity"]["enabled"].as_u64().unwrap();
    assert!(
        enabled >= 2,
        "every object the image records gets fs-verity: {s:#}"
    );
    assert_eq!(
        s["objects_verity"]["signed"].as_u64().unwrap(),
        enabled,
        "the kernel accepts every sha512 object signature: {s:#}"
    );
    let dj = disk.read_to_string(&format!("/sealroot/{}/deployment.json", d.deployment_dir()))?;
    let dj = sealroot::repo::json::Deployment::parse(dj.as_bytes()).unwrap();
    assert!(dj.verity, "deployment.json still says verity: false");

    // 3. Second boot, an object altered below fs-verity.
    disk.corrupt_byte(&object, 10)?;
    let mut boot2 = Boot::new("prepare-sha512-second-boot", cmdline);
    boot2.conf = Some(conf);
    boot2.checks = "bed_run big cat /sysroot/usr/share/big.txt\n\
                    bed_run other sha256sum /sysroot/usr/share/other.txt\n";
    let log = boot2.run(&disk)?;
    log.result("prepare")?.assert_ok()?;
    log.result("big")?
        .assert_failed()?
        .assert_stderr_contains("Input/output error")?;
    log.result("other")?
        .assert_ok()?
        .assert_stdout_contains(&sha256_hex(&big_content("os-512-other")))?;
    let s = status(&log);
    assert!(s["objects_verity"].is_null(), "{s:#}");
    assert_eq!(s["image"]["files"]["erofs"]["attached"], false);
    Ok(())
}

/// A static program that prints its real and effective uid
/// (`musl-gcc -static`): busybox drops set-id privileges on its own
/// (FEATURE_SUID) and cannot show whether the kernel honoured the bit.
fn euid_program() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("euid.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\n\
         int main(void) { printf(\"uid=%d euid=%d\\n\", (int)getuid(), (int)geteuid()); return 0; }\n",
    )
    .unwrap();
    let out = dir.path().join("euid");
    let cc = sealroot_testbed::host::tool("musl-gcc", "musl-tools").unwrap();
    let status = std::process::Command::new(cc)
        .args(["-static", "-Os", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success(), "musl-gcc failed");
    std::fs::read(&out).unwrap()
}

/// Item 3 of issue 10: a set-uid-root program and a device node (mode
/// 0666, the VM's disk) planted in the deployment's persistent /var and
/// /etc upper (as anyone with the disk could) do nothing on the booted
/// system: run as `nobody`, the program keeps euid 65534; opening the
/// node fails with EACCES, for root too; the same program and node on the
/// initramfs' own root (the controls, in /controls) do elevate and open.
/// Every mount below the sealed root, the physical root's bind included, is
/// `nosuid,nodev` in /proc/self/mountinfo. (deploy leaves the deployment
/// directory root-only, 0700; the attacker, who owns the disk, opens it so
/// that `nobody` reaches the program through the physical root at all.)
#[test]
fn planted_setuid_programs_and_device_nodes_in_etc_and_var_are_inert() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let dep = format!("/sysroot/sealroot/{}", d.deployment_dir());
    let before = format!(
        r#"
dev=$(cat /sys/block/vda/dev)
plant() {{
    cp /controls/euid "$1/euid" && chown 0:0 "$1/euid" && chmod 4755 "$1/euid" &&
    mknod -m 666 "$1/disk" b "${{dev%:*}}" "${{dev#*:}}"
}}
bed_run plant-var plant {dep}/var
bed_run open-deployment chmod 755 {dep}
bed_run plant-etc plant {dep}/etc/upper
bed_run plant-control sh -c 'chmod 4755 /controls/euid && mknod -m 666 /controls/disk b "${{0%:*}}" "${{0#*:}}"' "$dev"
"#
    );
    let nobody =
        |name: &str, cmd: &str| format!("bed_run {name} su -s /bin/sh nobody -c '{cmd}'\n");
    let mut checks = String::new();
    for (name, path) in [
        ("control", "/controls".to_string()),
        ("var", "/sysroot/var".to_string()),
        ("etc", "/sysroot/etc".to_string()),
        (
            "physical",
            format!("/sysroot/sysroot/sealroot/{}/var", d.deployment_dir()),
        ),
    ] {
        checks.push_str(&nobody(&format!("suid-{name}"), &format!("{path}/euid")));
        checks.push_str(&nobody(
            &format!("dev-{name}"),
            &format!("dd if={path}/disk of=/dev/null bs=512 count=1"),
        ));
        checks.push_str(&format!(
            "bed_run dev-root-{name} dd if={path}/disk of=/dev/null bs=512 count=1\n"
        ));
    }
    checks.push_str("bed_value mountinfo \"$(grep ' /sysroot' /proc/self/mountinfo)\"\n");
    let mut boot = Boot::new(
        "prepare-planted-privileges",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.before = &before;
    boot.checks = &checks;
    boot.extra_files = vec![
        ("/controls/euid", euid_program(), 0o755),
        (
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n".to_vec(),
            0o644,
        ),
        (
            "/etc/group",
            b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
            0o644,
        ),
    ];
    let log = boot.run(&disk)?;
    for r in ["plant-var", "open-deployment", "plant-etc", "plant-control"] {
        log.result(r)?.assert_ok()?;
    }
    log.result("prepare")?.assert_ok()?;
    // The controls: the kernel honours both where the mount allows it.
    log.result("suid-control")?
        .assert_ok()?
        .assert_stdout_eq("uid=65534 euid=0\n")?;
    log.result("dev-control")?.assert_ok()?;
    log.result("dev-root-control")?.assert_ok()?;
    for name in ["var", "etc", "physical"] {
        log.result(&format!("suid-{name}"))?
            .assert_ok()?
            .assert_stdout_eq("uid=65534 euid=65534\n")?;
        for who in ["dev", "dev-root"] {
            log.result(&format!("{who}-{name}"))?
                .assert_failed()?
                .assert_stderr_contains("Permission denied")?;
        }
    }
    let mountinfo = log.value("mountinfo")?;
    let below: Vec<&str> = mountinfo
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|mp| mp.starts_with("/sysroot/"))
        })
        .collect();
    assert!(below.len() >= 3, "{mountinfo}");
    for line in below {
        let options: Vec<&str> = line.split(' ').nth(5).unwrap().split(',').collect();
        assert!(
            options.contains(&"nosuid") && options.contains(&"nodev"),
            "not nosuid,nodev: {line}"
        );
    }
    Ok(())
}

/// A FIFO where the merged EROFS should be (an attacker's `mkfifo` on the
/// disk): the real binary refuses it at once, naming the file, instead of
/// waiting forever in open(2) for a writer (the unit has no start timeout).
#[test]
fn fifo_planted_in_the_repository_is_refused_not_waited_on() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let image = format!("/sysroot/sealroot/{}", d.image_path());
    let before = format!("bed_run plant sh -c 'rm -f {image} && mkfifo {image}'\n");
    let mut boot = Boot::new(
        "prepare-fifo-erofs",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.before = &before;
    let log = boot.run(&disk)?;
    log.result("plant")?.assert_ok()?;
    assert_refused(
        &log,
        1,
        &format!("{image}: cannot open: it is a FIFO (named pipe), not a regular file"),
    )?;
    log.result("prepare")?
        .assert_stderr_contains(&format!("merged EROFS {}", d.image_digest))?;
    assert!(log.result("prepare")?.ms < 60_000);
    Ok(())
}

/// The repository directory replaced by a symlink to another directory on
/// the disk (which could as well lead into the initramfs or another
/// disk): refused, nothing followed.
#[test]
fn refuses_a_symlink_at_the_repository_root() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let before = "bed_run plant sh -c 'mv /sysroot/sealroot /sysroot/elsewhere && ln -s elsewhere /sysroot/sealroot'\n";
    let mut boot = Boot::new(
        "prepare-symlinked-repository",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.before = before;
    let log = boot.run(&disk)?;
    log.result("plant")?.assert_ok()?;
    assert_refused(
        &log,
        1,
        "/sysroot/sealroot: cannot open the repository: the path contains a symlink, which is refused",
    )
}

/// `[boot] required = no` and a command line without any sealroot
/// parameter: sealroot-prepare does nothing but say so (exit 0, status
/// `not-selected`, /run/sealroot/stood-down for the other units' drop-ins),
/// and the switch-root gate lets the boot go on. A misspelled sealroot
/// parameter on the same initramfs is still refused, and the gate then
/// refuses the switch.
#[test]
fn stands_down_only_when_the_initramfs_allows_it_and_nothing_names_sealroot() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let conf = "[boot]\nrequired = no\n";
    let gate = "bed_run gate /bin/sealroot-prepare --check-switch-root\n\
                bed_run marker cat /run/sealroot/stood-down\n";
    let mut boot = Boot::new("prepare-stand-down", "quiet".into());
    boot.conf = Some(conf);
    boot.checks = gate;
    let log = boot.run(&disk)?;
    log.result("prepare")?.assert_ok()?.assert_stderr_contains(
        "[boot] required = no in /etc/sealroot/prepare.conf: standing down",
    )?;
    assert_eq!(log.value("sysroot_mounts")?, "1", "nothing mounted");
    let s = status(&log);
    assert_eq!(s["result"], "not-selected");
    assert_eq!(s["exit_code"], 0);
    assert!(s["selector"].is_null() && s["image"].is_null(), "{s:#}");
    assert_eq!(s["config"]["boot"]["required"], false);
    log.result("marker")?.assert_ok()?;
    log.result("gate")?
        .assert_ok()?
        .assert_stderr_contains("switch root allowed: sealroot stood down")?;

    let mut boot = Boot::new(
        "prepare-stand-down-misspelled",
        format!("sealroot.conf=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.conf = Some(conf);
    boot.checks = gate;
    let log = boot.run(&disk)?;
    assert_refused(&log, 2, "unknown sealroot parameter")?;
    log.result("marker")?.assert_failed()?;
    log.result("gate")?.assert_rc(1)?.assert_stderr_contains(
        "refusing to switch root: sealroot-prepare did not mount a sealed root (result \"refused\"",
    )?;
    Ok(())
}

/// The switch-root gate on a real kernel, after sealroot-prepare mounted
/// the sealed root: it allows the untouched root, and refuses (exit 1,
/// the reason on stderr) while something is mounted below it (a tmpfs at
/// /usr, as systemd's mount.usr= bind would be), while a mount below the
/// physical root lacks nosuid,nodev, while something is mounted over the
/// sealed root, and when there is no status record at all.
#[test]
fn switch_root_gate_allows_only_the_untouched_sealed_root() -> Result<()> {
    let (disk, d) = fixture("builtin");
    let checks = r#"
gate() { bed_run "gate-$1" /bin/sealroot-prepare --check-switch-root; }
gate untouched
mount -t tmpfs -o nosuid,nodev tmpfs /sysroot/usr && gate usr; umount /sysroot/usr
mkdir -p /sysroot/sysroot/gate-test
mount -t tmpfs tmpfs /sysroot/sysroot/gate-test && gate physical-suid; umount /sysroot/sysroot/gate-test
mount -t tmpfs -o nosuid,nodev tmpfs /sysroot/sysroot/gate-test && gate physical-nosuid; umount /sysroot/sysroot/gate-test
mount --bind /sysroot/sysroot /sysroot && gate over; umount /sysroot
mv /run/sealroot/status.json /run/sealroot/status.saved && gate no-record
mv /run/sealroot/status.saved /run/sealroot/status.json
gate again
"#;
    let mut boot = Boot::new(
        "prepare-switch-root-gate",
        format!("sealroot=sha256:{}", d.manifest_digest.to_hex()),
    );
    boot.checks = checks;
    let log = boot.run(&disk)?;
    log.result("prepare")?.assert_ok()?;
    let root = status(&log)["mount"]["ids"]["root"].as_u64().unwrap();
    for ok in ["untouched", "physical-nosuid", "again"] {
        log.result(&format!("gate-{ok}"))?
            .assert_ok()?
            .assert_stderr_contains(&format!(
                "switch root allowed: /sysroot is the sealed root sealroot-prepare mounted (mount id {root})"
            ))?;
    }
    for (refused, why) in [
        ("usr", "/sysroot/usr (tmpfs from tmpfs, mount id "),
        (
            "physical-suid",
            "/sysroot/sysroot/gate-test (tmpfs from tmpfs, mount id ",
        ),
        (
            "over",
            &format!(
                "/sysroot is no longer the sealed root sealroot-prepare mounted (mount id {root})"
            ),
        ),
        ("no-record", "sealroot-prepare has not run in this boot"),
    ] {
        log.result(&format!("gate-{refused}"))?
            .assert_rc(1)?
            .assert_stderr_contains("sealroot: error: refusing to switch root: ")?
            .assert_stderr_contains(why)?;
    }
    log.result("gate-usr")?
        .assert_stderr_contains("was mounted below the sealed root after sealroot-prepare ran")?;
    log.result("gate-physical-suid")?
        .assert_stderr_contains("is not nosuid,nodev")?;
    Ok(())
}
