//! A composefs-rs deployment booted through `sealroot-prepare` (`[boot]
//! layout = composefs-rs`) on a real kernel (Linux 6.12 in the test bed),
//! in place of composefs-setup-root.
//!
//! The fixture is made by the real tool, cfsctl 0.9.4 (composefs-rs, the
//! reference bootc builds on), offline:
//!
//! ```sh
//! cfsctl --repo root/composefs init --insecure --algorithm fsverity-sha256-12   # or sha512
//! cfsctl --repo root/composefs oci pull oci:LAYOUT:os os
//! cfsctl --repo root/composefs oci prepare-boot os --bootdir root/boot
//! ```
//!
//! `prepare-boot` commits the bootable EROFS to `images/<hex>`, writes the
//! BLS entry whose `options` carry the `composefs.digest=` argument, and
//! creates `state/deploy/<hex>/{etc/upper,etc/work,var}`. `--insecure`
//! only because the host's temporary directory has no fs-verity (it makes
//! cfsctl put the insecure marker `?` in the entry; the disk's repository
//! gets fs-verity in a sealing boot, and the tests boot the argument
//! without it — and check that sealroot refuses it with it). Most tests use
//! a sha256 repository (`--algorithm fsverity-sha256-12`); one boots
//! cfsctl's default, sha512 (objects, image digest, metacopy digests all
//! sha512: nothing in this layout enables fs-verity, so sealroot's own
//! sha512 object-store work is not involved).
//!
//! The sealing boot enables fs-verity on every object as composefs-rs does
//! on a verity filesystem, and makes two extra copies of the EROFS with a
//! builtin signature: one by the key the initramfs trusts, one by another.
//! Every test then boots its own copy of that disk (the disk's `root` bound
//! at /sysroot, as systemd would mount a root partition), the command line
//! from cfsctl's boot entry, and an initramfs holding prepare.conf
//! (`layout = composefs-rs`), the signer's certificate and, where a test
//! says so, `/usr/lib/composefs/setup-root-conf.toml`.

mod oci_support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use oci_support::fixture::{ImageBuilder, LayerBuilder};
use oci_support::images::content;
use oci_support::{cfsctl, run};
use sealroot::oci::media_type::Compression;
use sealroot_testbed::{
    BootLog, DiskImage, Initramfs, Kernel, MIB, Result, Vm, ext4_image, static_binaries,
};

fn sealroot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealroot"))
}

fn sha(b: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
}

/// The sealed disk and what the tests need to know about it.
struct Fixture {
    disk: DiskImage,
    /// The image's digest (hex), as cfsctl named it.
    image: String,
    /// `composefs.digest=...` from cfsctl's boot entry, as written (with
    /// the `?` of an insecure repository).
    entry_arg: String,
    /// The object the EROFS image is (`XX/<rest>` below objects/).
    image_object: String,
    /// The object `usr/bin/small` is redirected to.
    small_object: String,
    signer_cert: Vec<u8>,
    large_sha256: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// The argument sealroot boots: cfsctl's, without the insecure marker.
    fn arg(&self) -> String {
        self.entry_arg.replacen("=?", "=", 1)
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| build("sha256").expect("building the composefs-rs disk"))
}

/// The same with cfsctl's default algorithm, sha512 (objects, image).
fn fixture_sha512() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| build("sha512").expect("building the sha512 composefs-rs disk"))
}

/// `hash`: `sha256` or `sha512`, for the repository, its objects and the
/// image.
fn build(hash: &str) -> Result<Fixture> {
    let kernel = Kernel::get()?;
    let tmp = tempfile::tempdir().unwrap();
    let large = content(7, 200_000);
    let mut l = LayerBuilder::new();
    for d in [
        "etc",
        "var",
        "var/lib",
        "sysroot",
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/lib/modules",
        "usr/lib/modules/6.12.0",
        "boot",
    ] {
        l.dir(d, 0o755);
    }
    l.file("etc/hostname", b"cfs-rs\n", 0o644)
        .file("var/lib/image-var", b"from the image\n", 0o644)
        .file("usr/bin/large", &large, 0o755)
        .file("usr/bin/small", &content(3, 300), 0o755)
        .file("usr/lib/os-release", b"ID=cfsrs\nVERSION_ID=1\n", 0o644)
        // prepare-boot copies these into the boot entry; their contents do
        // not matter here (the VM boots the test bed's kernel).
        .file("usr/lib/modules/6.12.0/vmlinuz", b"not a kernel", 0o644)
        .file(
            "usr/lib/modules/6.12.0/initramfs.img",
            b"not an initramfs",
            0o644,
        );
    let layout = tmp.path().join("oci");
    ImageBuilder::new()
        .layer(l.finish(), Compression::Gzip)
        .write(&layout, "os");

    let disk_dir = tmp.path().join("disk");
    let root = disk_dir.join("root");
    let repo = root.join("composefs");
    fs::create_dir_all(root.join("boot")).unwrap();
    let cfs = |args: &[&str]| {
        let mut c = Command::new(cfsctl());
        c.arg("--repo").arg(&repo).args(args);
        String::from_utf8(run(&mut c)).unwrap()
    };
    let algorithm = format!("fsverity-{hash}-12");
    cfs(&["init", "--insecure", "--algorithm", &algorithm]);
    cfs(&["oci", "pull", &format!("oci:{}:os", layout.display()), "os"]);
    let bootdir = root.join("boot");
    cfs(&[
        "oci",
        "prepare-boot",
        "os",
        "--bootdir",
        bootdir.to_str().unwrap(),
    ]);
    let entries = bootdir.join("loader/entries");
    let entry = fs::read_dir(&entries)
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .next()
        .expect("cfsctl oci prepare-boot wrote no boot entry");
    let entry_arg = entry
        .lines()
        .filter_map(|l| l.strip_prefix("options "))
        .flat_map(str::split_whitespace)
        .find(|a| a.starts_with("composefs"))
        .unwrap_or_else(|| panic!("no composefs argument in the boot entry:\n{entry}"))
        .to_owned();
    let image = entry_arg
        .rsplit([':', '='])
        .next()
        .unwrap()
        .trim_start_matches('?')
        .to_owned();
    let hex_len = if hash == "sha256" { 64 } else { 128 };
    assert_eq!(image.len(), hex_len, "{entry_arg}");
    assert!(entry_arg.contains(&format!("-{hash}-12:")), "{entry_arg}");
    let link = fs::read_link(repo.join("images").join(&image)).unwrap();
    let image_object = link
        .to_str()
        .unwrap()
        .strip_prefix("../objects/")
        .unwrap_or_else(|| panic!("images/{image} -> {}", link.display()))
        .to_owned();
    assert!(
        root.join(format!("state/deploy/{image}/etc/upper"))
            .is_dir(),
        "prepare-boot made no state directory"
    );
    // The redirect of usr/bin/small, from composefs-rs' own dump.
    let dump = cfs(&["oci", "dump", "os"]);
    let small_object = dump
        .lines()
        .find(|l| l.split(' ').next() == Some("/usr/bin/small"))
        .and_then(|l| l.split(' ').nth(8))
        .expect("usr/bin/small is not an external file in cfsctl's dump")
        .to_owned();
    assert!(repo.join("objects").join(&small_object).is_file());

    // The signatures of the EROFS (its fs-verity digest: `hash`, 4096).
    let keys = |d: &str| {
        let dir = tmp.path().join(d);
        run(sealroot().arg("keygen").arg("--out-dir").arg(&dir));
        (dir.join("signer.key.pem"), dir.join("signer.crt.pem"))
    };
    let (key, cert) = keys("trusted");
    let (bad_key, bad_cert) = keys("untrusted");
    let extra = disk_dir.join("extra");
    fs::create_dir_all(&extra).unwrap();
    let erofs = repo.join("objects").join(&image_object);
    for (k, c, out) in [
        (&key, &cert, "signed.sig"),
        (&bad_key, &bad_cert, "untrusted.sig"),
    ] {
        run(sealroot()
            .args(["sign", "--hash-alg", hash, "--key"])
            .arg(k)
            .arg("--cert")
            .arg(c)
            .arg(&erofs)
            .arg(extra.join(out)));
        fs::copy(c, extra.join(out.replace(".sig", ".crt.pem"))).unwrap();
    }

    let disk = ext4_image(&disk_dir, 64 * MIB)?;
    let scenario = format!(
        r#"
export S=/bin/sealroot D=/mnt/disk R=/mnt/disk/root/composefs H={hash}
bed_run keyring_add $S keyring add $D/extra/signed.crt.pem $D/extra/untrusted.crt.pem
for s in signed untrusted; do cp $R/objects/{image_object} $D/extra/$s || exit 1; done
bed_run sign_trusted $S enable --hash-alg $H --signature $D/extra/signed.sig $D/extra/signed
bed_run sign_untrusted $S enable --hash-alg $H --signature $D/extra/untrusted.sig $D/extra/untrusted
bed_run objects sh -c 'for f in '$R'/objects/*/*; do '$S' enable --hash-alg '$H' $f || exit 1; done'
bed_run measure $S measure $R/images/{image}
"#
    );
    let initramfs = Initramfs::test(kernel, &scenario)?
        .static_binaries(static_binaries()?)
        .mount_disk();
    let log = Vm::new(kernel, initramfs)
        .name(&format!("composefs-rs-seal-{hash}"))
        .disk(&disk)
        .timeout(Duration::from_secs(600))
        .run()?;
    for step in ["keyring_add", "sign_trusted", "sign_untrusted", "objects"] {
        log.result(step)?.assert_ok()?;
    }
    // The kernel's digest of the image is the name cfsctl gave it.
    log.result("measure")?
        .assert_ok()?
        .assert_stdout_contains(&image)?;
    Ok(Fixture {
        disk,
        image,
        entry_arg,
        image_object,
        small_object,
        signer_cert: fs::read(&cert).unwrap(),
        large_sha256: sha(&large),
        _dir: tmp,
    })
}

/// What an initramfs carries besides the binaries.
struct Setup<'a> {
    prepare_conf: &'a str,
    setup_root_conf: Option<&'a str>,
}

const SECURE: Setup<'static> = Setup {
    prepare_conf: "[boot]\nlayout = composefs-rs\n",
    setup_root_conf: None,
};

/// One boot: a copy of the sealed disk, mounted, its `root` bound at
/// /sysroot; `before` (shell) runs first, then sealroot-prepare, then
/// `checks`.
fn boot(
    name: &str,
    cmdline: &str,
    setup: &Setup<'_>,
    before: &str,
    checks: &str,
    edit: impl FnOnce(&Path),
) -> Result<BootLog> {
    boot_disk(fixture(), name, cmdline, setup, before, checks, edit)
}

/// [`boot`] on the disk of `f`.
fn boot_disk(
    f: &Fixture,
    name: &str,
    cmdline: &str,
    setup: &Setup<'_>,
    before: &str,
    checks: &str,
    edit: impl FnOnce(&Path),
) -> Result<BootLog> {
    let dir = tempfile::tempdir().unwrap();
    let disk = f.disk.copy_to(&dir.path().join("disk.ext4"))?;
    edit(disk.path());
    let kernel = Kernel::get()?;
    let scenario = format!(
        r#"
mkdir -p /mnt/disk /sysroot
mount -t ext4 /dev/vda /mnt/disk && mount --bind /mnt/disk/root /sysroot || exit 1
export R=/mnt/disk/root/composefs X=/mnt/disk/extra
{before}
bed_run prepare /bin/sealroot-prepare
bed_value status "$(cat /run/sealroot/status.json)"
bed_value sysroot_mounts "$(grep -c ' /sysroot' /proc/mounts)"
{checks}
"#
    );
    let mut image = Initramfs::test(kernel, &scenario)?
        .load_modules(kernel, &["virtio_blk"])?
        .static_binaries(static_binaries()?)
        .dir("/etc/sealroot/certs.d", 0o755)
        .file(
            "/etc/sealroot/certs.d/signer.crt.pem",
            f.signer_cert.clone(),
            0o644,
        )
        .file("/etc/sealroot/prepare.conf", setup.prepare_conf, 0o644);
    if let Some(conf) = setup.setup_root_conf {
        image = image.dir("/usr/lib/composefs", 0o755).file(
            "/usr/lib/composefs/setup-root-conf.toml",
            conf,
            0o644,
        );
    }
    Vm::new(kernel, image)
        .name(name)
        .cmdline(cmdline)
        .disk(&disk)
        .timeout(Duration::from_secs(600))
        .run()
}

fn status(log: &BootLog) -> serde_json::Value {
    serde_json::from_str(log.value("status").unwrap()).unwrap()
}

fn assert_refused(log: &BootLog, rc: i32, message: &str) -> Result<()> {
    log.result("prepare")?
        .assert_rc(rc)?
        .assert_stderr_contains(message)?;
    // Only the physical root (and the bind of it) at /sysroot.
    assert_eq!(log.value("sysroot_mounts")?, "1", "nothing new mounted");
    let s = status(log);
    assert_eq!(s["result"], "refused");
    assert!(s["error"].as_str().unwrap().contains(message), "{s}");
    Ok(())
}

/// Mount options of the mount at `mp` in a /proc/mounts dump.
fn options(mounts: &str, mp: &str) -> Vec<String> {
    let line = mounts
        .lines()
        .rfind(|l| l.split(' ').nth(1) == Some(mp))
        .unwrap_or_else(|| panic!("no mount at {mp}:\n{mounts}"));
    line.split(' ')
        .nth(3)
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// Puts the trusted-signed copy of the EROFS in place of the object.
fn signed(f: &Fixture) -> String {
    format!("mv $X/signed $R/objects/{} || exit 1", f.image_object)
}

#[test]
fn boots_the_signed_composefs_rs_image_as_composefs_setup_root_would() -> Result<()> {
    let f = fixture();
    let state = format!("/mnt/disk/root/state/deploy/{}", f.image);
    // An object altered (other bytes, fs-verity enabled): the EROFS
    // records the original's digest.
    let before = format!(
        "{}\nprintf 'HI\\n' > $R/forged && /bin/sealroot enable $R/forged >/dev/null && \
         mv $R/forged $R/objects/{} || exit 1",
        signed(f),
        f.small_object
    );
    let checks = format!(
        r#"
bed_value mounts "$(grep ' /sysroot' /proc/mounts)"
bed_run large sha256sum /sysroot/usr/bin/large
bed_run small cat /sysroot/usr/bin/small
bed_run hostname cat /sysroot/etc/hostname
bed_run root_ro touch /sysroot/usr/new
bed_run etc_rw sh -c 'echo x > /sysroot/etc/marker && cat {state}/etc/upper/marker'
bed_run var_rw sh -c 'echo y > /sysroot/var/marker && cat {state}/var/marker'
bed_run gate /bin/sealroot-prepare --check-switch-root
"#
    );
    let log = boot("cfsrs-boot-ok", &f.arg(), &SECURE, &before, &checks, |_| {})?;
    log.result("prepare")?.assert_ok()?;
    let s = status(&log);
    assert_eq!(s["result"], "mounted");
    assert_eq!(s["verification"], "kernel");
    let c = &s["composefs_rs"];
    assert_eq!(c["argument"], f.arg().as_str());
    assert_eq!(c["image"], format!("images/{}", f.image).as_str());
    assert_eq!(c["erofs"], format!("sha256:{}", f.image).as_str());
    assert_eq!(c["trust"], "signature");
    assert_eq!(c["signature"]["signature"], "kernel");
    assert_eq!(c["setup_root_conf"]["etc"], "overlay");
    assert_eq!(c["setup_root_conf"]["var"], "bind");
    let mounts = log.value("mounts")?;
    let root = options(mounts, "/sysroot");
    assert!(root.iter().any(|o| o == "ro"), "{root:?}");
    assert!(root.iter().any(|o| o == "verity=require"), "{mounts}");
    for mp in ["/sysroot/etc", "/sysroot/var", "/sysroot/sysroot"] {
        let o = options(mounts, mp);
        for want in ["rw", "nosuid", "nodev"] {
            assert!(o.iter().any(|x| x == want), "{mp} lacks {want}: {o:?}");
        }
    }
    log.result("large")?
        .assert_ok()?
        .assert_stdout_contains(&f.large_sha256)?;
    log.result("small")?
        .assert_failed()?
        .assert_stderr_contains("Input/output error")?;
    log.result("hostname")?
        .assert_ok()?
        .assert_stdout_eq("cfs-rs\n")?;
    log.result("root_ro")?
        .assert_failed()?
        .assert_stderr_contains("Read-only file system")?;
    log.result("etc_rw")?.assert_ok()?.assert_stdout_eq("x\n")?;
    log.result("var_rw")?.assert_ok()?.assert_stdout_eq("y\n")?;
    log.result("gate")?.assert_ok()?;
    Ok(())
}

#[test]
fn unsigned_images_need_require_signature_no_and_honour_setup_root_conf() -> Result<()> {
    let f = fixture();
    // Default (require-signature = yes): cfsctl's own, unsigned EROFS is
    // refused.
    let log = boot("cfsrs-boot-unsigned", &f.arg(), &SECURE, "", "", |_| {})?;
    assert_refused(&log, 1, "carries no builtin signature")?;

    // require-signature = no: the command line's digest is the anchor;
    // /etc transient, /var an overlay with its upper in the state.
    let setup = Setup {
        prepare_conf: "[boot]\nlayout = composefs-rs\n[composefs-rs]\nrequire-signature = no\n",
        setup_root_conf: Some("[etc]\nmount = \"transient\"\n[var]\nmount = \"overlay\"\n"),
    };
    let state = format!("/mnt/disk/root/state/deploy/{}", f.image);
    let checks = format!(
        r#"
bed_value mounts "$(grep ' /sysroot' /proc/mounts)"
bed_run image_var cat /sysroot/var/lib/image-var
bed_run var_rw sh -c 'echo y > /sysroot/var/marker && cat {state}/var/upper/marker'
bed_run etc_tmp sh -c 'echo x > /sysroot/etc/marker && ls {state}/etc/upper'
bed_run gate /bin/sealroot-prepare --check-switch-root
"#
    );
    let log = boot(
        "cfsrs-boot-cmdline-trust",
        &f.arg(),
        &setup,
        "",
        &checks,
        |_| {},
    )?;
    log.result("prepare")?.assert_ok()?;
    let s = status(&log);
    assert_eq!(s["verification"], "command-line");
    assert_eq!(s["composefs_rs"]["trust"], "command-line");
    assert!(s["composefs_rs"]["signature"].is_null());
    assert_eq!(s["mount"]["etc"], "transient");
    let mounts = log.value("mounts")?;
    assert!(
        options(mounts, "/sysroot")
            .iter()
            .any(|o| o == "verity=require"),
        "{mounts}"
    );
    log.result("image_var")?
        .assert_ok()?
        .assert_stdout_eq("from the image\n")?;
    log.result("var_rw")?.assert_ok()?.assert_stdout_eq("y\n")?;
    // The transient /etc wrote nothing into the state directory.
    log.result("etc_tmp")?.assert_ok()?.assert_stdout_eq("")?;
    log.result("gate")?.assert_ok()?;
    Ok(())
}

#[test]
fn refuses_missing_insecure_swapped_tampered_and_untrusted_images() -> Result<()> {
    let f = fixture();

    // A digest the repository does not hold.
    let missing: String = f
        .image
        .chars()
        .enumerate()
        .map(|(i, c)| match (i, c) {
            (0, '0') => '1',
            (0, _) => '0',
            (_, c) => c,
        })
        .collect();
    let arg = f.arg().replace(&f.image, &missing);
    let log = boot("cfsrs-boot-missing", &arg, &SECURE, "", "", |_| {})?;
    assert_refused(&log, 1, "not present in /sysroot/composefs")?;

    // cfsctl's own argument, insecure marker and all.
    let log = boot("cfsrs-boot-insecure", &f.entry_arg, &SECURE, "", "", |_| {})?;
    assert_refused(&log, 2, "the insecure marker '?' is not supported")?;

    // images/<hex> swapped for another (valid, fs-verity) object.
    let before = format!(
        "{}\nln -sfn ../objects/{} $R/images/{} || exit 1",
        signed(f),
        f.small_object,
        f.image
    );
    let log = boot("cfsrs-boot-swapped", &f.arg(), &SECURE, &before, "", |_| {})?;
    assert_refused(&log, 1, "the image file was replaced or swapped")?;

    // The signed EROFS altered below fs-verity: its data fails
    // verification when the kernel reads it.
    let log = boot(
        "cfsrs-boot-tampered",
        &f.arg(),
        &SECURE,
        &signed(f),
        "",
        |d| {
            DiskImage::open(d)
                .corrupt_byte("/extra/signed", 100)
                .unwrap();
        },
    )?;
    assert_refused(&log, 1, "fails fs-verity verification")?;

    // Signed, but by a key the initramfs does not trust: the kernel
    // refuses the open (the sealed keyring lacks the signer).
    let before = format!("mv $X/untrusted $R/objects/{} || exit 1", f.image_object);
    let log = boot(
        "cfsrs-boot-untrusted",
        &f.arg(),
        &SECURE,
        &before,
        "",
        |_| {},
    )?;
    assert_refused(
        &log,
        1,
        "ENOKEY: the kernel refused the file's builtin fs-verity signature",
    )?;
    Ok(())
}

#[test]
fn boots_a_sha512_repository_cfsctl_made_by_default() -> Result<()> {
    // cfsctl init's default algorithm: sha512 objects, a sha512 image
    // digest on the command line, sha512 metacopy digests in the EROFS
    // that overlayfs checks.
    let f = fixture_sha512();
    let before = format!(
        "{}\nprintf 'HI\\n' > $R/forged && /bin/sealroot enable --hash-alg sha512 $R/forged \
         >/dev/null && mv $R/forged $R/objects/{} || exit 1",
        signed(f),
        f.small_object
    );
    let checks = r#"
bed_value mounts "$(grep ' /sysroot' /proc/mounts)"
bed_run large sha256sum /sysroot/usr/bin/large
bed_run small cat /sysroot/usr/bin/small
bed_run gate /bin/sealroot-prepare --check-switch-root
"#;
    let log = boot_disk(
        f,
        "cfsrs-boot-sha512",
        &f.arg(),
        &SECURE,
        &before,
        checks,
        |_| {},
    )?;
    log.result("prepare")?.assert_ok()?;
    let s = status(&log);
    assert_eq!(s["verification"], "kernel");
    assert_eq!(
        s["composefs_rs"]["erofs"],
        format!("sha512:{}", f.image).as_str()
    );
    assert_eq!(s["composefs_rs"]["trust"], "signature");
    let mounts = log.value("mounts")?;
    assert!(
        options(mounts, "/sysroot")
            .iter()
            .any(|o| o == "verity=require"),
        "{mounts}"
    );
    log.result("large")?
        .assert_ok()?
        .assert_stdout_contains(&f.large_sha256)?;
    log.result("small")?
        .assert_failed()?
        .assert_stderr_contains("Input/output error")?;
    log.result("gate")?.assert_ok()?;

    // The image file without fs-verity (a plain copy of its bytes in its
    // place): refused, not mounted unverified.
    let before = format!(
        "O=$R/objects/{}; cp $O /tmp/plain && rm $O && cp /tmp/plain $O || exit 1",
        f.image_object
    );
    let log = boot_disk(
        f,
        "cfsrs-boot-no-verity",
        &f.arg(),
        &SECURE,
        &before,
        "",
        |_| {},
    )?;
    assert_refused(&log, 1, "has no fs-verity")?;
    Ok(())
}
