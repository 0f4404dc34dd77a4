//! sealroot's mkosi scripts (`mkosi/`) run the way mkosi 24.3 runs them,
//! on a small real OS tree, without mkosi itself and without the Debian
//! mirror (the full mkosi build is `tests/mkosi_image.rs`).
//!
//! What is real: the tree (the bed's busybox OS, the bed kernel's complete
//! module tree in `/usr/lib/modules/<release>`, and the files
//! `mkosi/mkosi.conf`'s `ExtraTrees=` lines name, applied from that file),
//! the three scripts with the environment mkosi sets for them (`BUILDROOT`,
//! `SRCDIR`, `ARTIFACTDIR`, `OUTPUTDIR`, run from `SRCDIR`), the static
//! `sealroot` and `sealroot-prepare`, `sealroot oci seal`/`deploy`, the
//! host's dracut 106 with the tree's dracut module, and a GPT disk image
//! for `mkosi.postoutput`.
//!
//! What stands in: `mkosi-chroot`. mkosi's runs the command with the image
//! as `/` (bubblewrap); this tree has no dracut of its own, so the stand-in
//! (`MKOSI_CHROOT` below) runs the host's dracut and points it at the
//! tree's module, configuration snippet, unit, `sealroot-prepare`,
//! certificates and module tree, as the image's dracut finds them at `/`.
//!
//! Checked from the outputs: the deployment in the tree (`sealroot repo
//! fsck`), the sealed image's contents (`composefs-info ls`, the reference
//! tool), `/etc/kernel/cmdline`, the initramfs (`lsinitrd`, and its
//! `sealroot-prepare` byte for byte), and the root partition's ext4
//! `verity` feature (`dumpe2fs`), untouched on a non-root partition.
//!
//! Run: `SEALROOT_TESTBED_CACHE=/work/testbed-cache cargo test --test mkosi_scripts`.

mod common;
#[path = "vm_dracut/kmods.rs"]
mod kmods;
#[allow(dead_code)]
#[path = "vm_dracut/os.rs"]
mod os;
#[allow(dead_code)]
#[path = "vm_dracut/sealed.rs"]
mod sealed;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use kmods::io_error;
use sealroot_testbed::host;
use sealroot_testbed::{Error, Kernel, Result, static_binaries};

/// Stand-in for mkosi's `mkosi-chroot`, for `mkosi-chroot dracut ARGS...`
/// only (what mkosi.finalize runs). dracut's own modules come from the
/// host; `90sealroot`, the dracut.conf.d snippets and everything the module
/// installs come from the tree.
const MKOSI_CHROOT: &str = r#"#!/bin/bash
set -euo pipefail
[ "${1:-}" = dracut ] || { echo "mkosi-chroot stand-in: only dracut, got: $*" >&2; exit 1; }
shift
kver=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	[ "${args[i]}" = --kver ] && kver=${args[i+1]}
done
[ -n "$kver" ] || { echo "mkosi-chroot stand-in: no --kver in: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/base" "$work/base/modules.d" "$work/conf.d"
for f in /usr/lib/dracut/*; do [ "${f##*/}" = modules.d ] || ln -s "$f" "$work/base/"; done
for m in /usr/lib/dracut/modules.d/*; do ln -s "$m" "$work/base/modules.d/"; done
ln -s "$BUILDROOT/usr/lib/dracut/modules.d/90sealroot" "$work/base/modules.d/90sealroot"
cp "$BUILDROOT"/usr/lib/dracut/dracut.conf.d/*.conf "$work/conf.d/"
cat >"$work/conf.d/99-tree.conf" <<EOF
sealroot_prepare=$BUILDROOT/usr/bin/sealroot-prepare
sealroot_certs_dir=$BUILDROOT/etc/sealroot/certs.d
sealroot_config=$BUILDROOT/etc/sealroot/prepare.conf
sealroot_unit_dir=$BUILDROOT/usr/lib/systemd/system
sealroot_ipe_policy=$BUILDROOT/etc/sealroot/ipe/policy.p7s
EOF
dracutbasedir=$work/base dracut --conf /dev/null --confdir "$work/conf.d" \
	--kmoddir "$BUILDROOT/usr/lib/modules/$kver" "$@"
"#;

/// The minimal systemd initrd, as in `tests/vm_dracut` (dracut's default
/// with `--no-hostonly` is every module the host could use: minutes);
/// passed through mkosi.finalize's own knob, word-split there.
const DRACUT_ARGS: &str = "--modules systemd-initrd --modules rootfs-block \
    --modules dracut-systemd --no-compress --no-early-microcode";

/// GPT type GUIDs (Discoverable Partitions Specification).
const ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
const LINUX_GENERIC: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const MIB: u64 = 1024 * 1024;

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn contains_all(what: &str, haystack: &str, needles: &[&str]) -> Result<()> {
    for needle in needles {
        if !haystack.contains(needle) {
            return Err(Error::Assertion(format!(
                "{what} lacks `{needle}`:\n{haystack}"
            )));
        }
    }
    Ok(())
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| io_error("cannot write", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| io_error("cannot chmod", path, e))
}

/// Applies `mkosi/mkosi.conf`'s `ExtraTrees=SRC:DST` lines to `tree` (SRC
/// relative to `mkosi/`, copied with `cp -a` as mkosi copies trees).
fn apply_extra_trees(tree: &Path) -> Result<usize> {
    let mkosi = host::workspace_root().join("mkosi");
    let conf_path = mkosi.join("mkosi.conf");
    let conf =
        fs::read_to_string(&conf_path).map_err(|e| io_error("cannot read", &conf_path, e))?;
    let mut count = 0;
    for line in conf.lines() {
        let Some(spec) = line.strip_prefix("ExtraTrees=") else {
            continue;
        };
        let (src, dst) = spec.split_once(':').ok_or_else(|| {
            Error::Invalid(format!("mkosi.conf: ExtraTrees= without ':': {line}"))
        })?;
        let dest = tree.join(dst.trim_start_matches('/'));
        let parent = dest.parent().expect("ExtraTrees destination has a parent");
        fs::create_dir_all(parent).map_err(|e| io_error("cannot create", parent, e))?;
        host::run(
            Command::new("cp").arg("-a").arg(mkosi.join(src)).arg(&dest),
            Some("an ExtraTrees= source of mkosi/mkosi.conf is missing"),
        )?;
        count += 1;
    }
    Ok(count)
}

/// `image.raw`: a GPT disk with the tree as an ext4 root partition (made
/// without the `verity` feature, as systemd-repart's mkfs does) and an
/// empty ext4 partition of another type.
fn disk_image(tree: &Path, out: &Path, work: &Path) -> Result<(PathBuf, u64, u64)> {
    let (root_mib, other_mib) = (192, 16);
    let (root_start, other_start) = (MIB / 512, (1 + root_mib) * MIB / 512);
    let image = out.join("image.raw");
    let file = fs::File::create(&image).map_err(|e| io_error("cannot create", &image, e))?;
    file.set_len((2 + root_mib + other_mib) * MIB)
        .map_err(|e| io_error("cannot size", &image, e))?;
    let layout = work.join("layout.sfdisk");
    fs::write(
        &layout,
        format!(
            "label: gpt\nstart={root_start}, size={}, type={ROOT_X86_64}\nstart={other_start}, size={}, type={LINUX_GENERIC}\n",
            root_mib * MIB / 512,
            other_mib * MIB / 512
        ),
    )
    .map_err(|e| io_error("cannot write", &layout, e))?;
    // host::run closes stdin; sfdisk reads its script from there.
    host::run(
        Command::new("sh")
            .args(["-c", "exec \"$0\" --quiet \"$1\" <\"$2\""])
            .arg(host::tool("sfdisk", "fdisk")?)
            .arg(&image)
            .arg(&layout),
        None,
    )?;
    let mkfs = host::tool("mkfs.ext4", "e2fsprogs")?;
    for (start, mib, source) in [
        (root_start, root_mib, Some(tree)),
        (other_start, other_mib, None),
    ] {
        let part = work.join(format!("part-{start}.ext4"));
        let mut cmd = Command::new(&mkfs);
        cmd.args(["-q", "-F", "-b", "4096", "-E", "root_owner=0:0"]);
        if let Some(source) = source {
            cmd.arg("-d").arg(source);
        }
        host::run(cmd.arg(&part).arg(format!("{mib}M")), None)?;
        host::run(
            Command::new("dd")
                .arg(format!("if={}", part.display()))
                .arg(format!("of={}", image.display()))
                .args(["bs=1M", "conv=notrunc,sparse", "status=none"])
                .arg(format!("seek={}", start * 512 / MIB)),
            None,
        )?;
    }
    Ok((image, root_start * 512, other_start * 512))
}

fn has_verity_feature(image: &Path, offset: u64) -> Result<bool> {
    let dumpe2fs = host::tool("dumpe2fs", "e2fsprogs")?;
    let out = host::run(
        Command::new(dumpe2fs)
            .arg("-h")
            .arg(format!("{}?offset={offset}", image.display())),
        None,
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.starts_with("Filesystem features:") && l.split_whitespace().any(|f| f == "verity")
    }))
}

#[test]
fn mkosi_scripts_seal_deploy_and_build_the_initramfs_from_a_real_tree() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let lsinitrd = host::tool("lsinitrd", "dracut-core")?;
    host::tool("dracut", "dracut")?;
    let work =
        tempfile::tempdir().map_err(|e| io_error("cannot create in", Path::new("/tmp"), e))?;
    let [tree, src, artifacts, out, bin] =
        ["buildroot", "src", "artifacts", "out", "bin"].map(|d| work.path().join(d));
    for dir in [&src, &artifacts, &out, &bin] {
        fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    }

    // The OS tree as mkosi has it before the scripts: packages (here the
    // busybox OS and the kernel's modules), then ExtraTrees=.
    os::write_tree(&tree, "mkosi-scripts", "")?;
    let modules = tree.join("usr/lib/modules");
    fs::create_dir_all(&modules).map_err(|e| io_error("cannot create", &modules, e))?;
    host::run(
        Command::new("cp")
            .arg("-a")
            .arg(kmods::module_tree(kernel)?)
            .arg(modules.join(&kernel.release)),
        None,
    )?;
    for (rel, content) in [
        ("etc/kernel/cmdline", "console=ttyS0 root=PARTUUID rw\n"),
        ("boot/vmlinuz-test", "not part of the sealed image\n"),
    ] {
        let path = tree.join(rel);
        fs::create_dir_all(path.parent().unwrap())
            .map_err(|e| io_error("cannot create", &path, e))?;
        fs::write(&path, content).map_err(|e| io_error("cannot write", &path, e))?;
    }
    let extra = apply_extra_trees(&tree)?;
    assert_eq!(extra, 7, "mkosi.conf's ExtraTrees= lines");

    // The project's mkosi.sealroot/ inputs (docs/boot-chains.md).
    let inputs = src.join("mkosi.sealroot");
    let keys = sealed::Keys::generate(work.path())?;
    let cert = inputs.join("cert.pem");
    fs::create_dir_all(inputs.join("certs.d"))
        .map_err(|e| io_error("cannot create", &inputs, e))?;
    fs::create_dir_all(inputs.join("bin")).map_err(|e| io_error("cannot create", &inputs, e))?;
    for (from, to) in [
        (&keys.key, inputs.join("key.pem")),
        (&keys.cert, cert.clone()),
        (&keys.cert, inputs.join("certs.d/signer.pem")),
        (&bins.sealroot, inputs.join("bin/sealroot")),
        (&bins.sealroot_prepare, inputs.join("bin/sealroot-prepare")),
    ] {
        fs::copy(from, &to).map_err(|e| io_error("cannot copy", from, e))?;
    }
    // A signed IPE policy: installed into the tree and the initramfs, and
    // the image sealed with per-object signatures (docs/ipe.md).
    let ipe = inputs.join("ipe");
    fs::create_dir_all(&ipe).map_err(|e| io_error("cannot create", &ipe, e))?;
    let policy_text = work.path().join("policy.ipe");
    host::run(
        Command::new(&bins.sealroot)
            .args(["ipe", "policy", "--out"])
            .arg(&policy_text),
        None,
    )?;
    host::run(
        Command::new(&bins.sealroot)
            .args(["ipe", "sign"])
            .arg(&policy_text)
            .arg("--key")
            .arg(&keys.key)
            .arg("--cert")
            .arg(&keys.cert)
            .arg("--out")
            .arg(ipe.join("policy.p7s")),
        None,
    )?;
    write_exec(&bin.join("mkosi-chroot"), MKOSI_CHROOT)?;

    let scripts = host::workspace_root().join("mkosi");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run_script = |name: &str| -> Result<String> {
        let started = Instant::now();
        let output = host::run(
            Command::new(scripts.join(name))
                .current_dir(&src)
                .env("PATH", &path)
                .env("BUILDROOT", &tree)
                .env("SRCDIR", &src)
                .env("ARTIFACTDIR", &artifacts)
                .env("OUTPUTDIR", &out)
                .env("SEALROOT_DRACUT_ARGS", DRACUT_ARGS),
            Some("a sealroot mkosi script failed; it reports with `sealroot (mkosi.<step>):`"),
        )?;
        eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
        Ok(text(&output))
    };

    // mkosi.postinst: sealroot-prepare and the certificates into the tree.
    let log = run_script("mkosi.postinst")?;
    contains_all(
        "mkosi.postinst's output",
        &log,
        &[
            "installed 1 trusted certificate(s) into /etc/sealroot/certs.d",
            "installed the signed IPE policy as /etc/sealroot/ipe/policy.p7s",
            "prepare.conf: [ipe] required = yes",
        ],
    )?;
    // Without a prepare.conf in the inputs, the default lets the first
    // boot give the build host's repository fs-verity.
    let conf_path = tree.join("etc/sealroot/prepare.conf");
    let conf =
        fs::read_to_string(&conf_path).map_err(|e| io_error("cannot read", &conf_path, e))?;
    let parsed = sealroot::prepare::config::parse(&conf, "prepare.conf")
        .map_err(|e| Error::Assertion(format!("the default prepare.conf does not parse: {e}")))?;
    if !parsed.attach_signatures || !parsed.ipe.required {
        return Err(Error::Assertion(format!(
            "the default prepare.conf does not allow attaching or require IPE:\n{conf}"
        )));
    }

    // mkosi.finalize: seal, deploy into the tree, command line, initramfs.
    let log = run_script("mkosi.finalize")?;
    contains_all(
        "mkosi.finalize's output",
        &log,
        &[
            "sealroot: 1 trusted certificate(s) from",
            "kernel command line: console=ttyS0 root=PARTUUID rw sealroot=sha256:",
        ],
    )?;
    let cmdline_path = tree.join("etc/kernel/cmdline");
    let cmdline =
        fs::read_to_string(&cmdline_path).map_err(|e| io_error("cannot read", &cmdline_path, e))?;
    let manifest = cmdline
        .trim_end()
        .strip_prefix("console=ttyS0 root=PARTUUID rw sealroot=sha256:")
        .filter(|hex| hex.len() == 64)
        .ok_or_else(|| {
            Error::Assertion(format!(
                "/etc/kernel/cmdline is not the old line + sealroot=: {cmdline:?}"
            ))
        })?
        .to_owned();

    // The deployment verifies against the certificate, and is the one the
    // command line selects, deployed for attaching signatures at boot.
    let fsck = host::run(
        Command::new(&bins.sealroot)
            .args(["repo", "fsck", "--sysroot"])
            .arg(&tree)
            .arg("--cert")
            .arg(&cert),
        Some("the deployment mkosi.finalize wrote does not verify"),
    )?;
    eprintln!("sealroot repo fsck: {}", text(&fsck).trim());
    let deployment_path = tree.join(format!("sealroot/deployments/{manifest}/deployment.json"));
    let deployment: serde_json::Value = serde_json::from_slice(
        &fs::read(&deployment_path).map_err(|e| io_error("cannot read", &deployment_path, e))?,
    )
    .map_err(|e| Error::Invalid(format!("{}: {e}", deployment_path.display())))?;
    if deployment["manifest"] != format!("sha256:{manifest}")
        || deployment["signatures"] != "attach-at-boot"
    {
        return Err(Error::Assertion(format!(
            "unexpected deployment.json: {deployment}"
        )));
    }

    // Sealed with per-object signatures: the artifact carries the bundle.
    let artifact_hex = deployment["artifact"]
        .as_str()
        .and_then(|a| a.strip_prefix("sha256:"))
        .unwrap_or_default();
    let artifact_path = tree.join("sealroot/blobs/sha256").join(artifact_hex);
    let artifact = sealroot::oci::Stored::<sealroot::oci::ImageManifest>::parse(
        fs::read(&artifact_path).map_err(|e| io_error("cannot read", &artifact_path, e))?,
    )
    .map_err(|e| Error::Invalid(format!("{}: {e}", artifact_path.display())))?;
    let artifact = sealroot::oci::artifact::SealArtifact::parse(&artifact)
        .map_err(|e| Error::Invalid(format!("{}: {e}", artifact_path.display())))?;
    let bundle = artifact
        .extension(sealroot::objsig::MEDIA_TYPE)
        .ok_or_else(|| Error::Assertion("the image was sealed without object signatures".into()))?;
    if !tree
        .join("sealroot/blobs/sha256")
        .join(bundle.digest.to_hex())
        .is_file()
    {
        return Err(Error::Assertion(
            "the object signature bundle was not deployed".into(),
        ));
    }

    // The sealed image is the finished tree (reference: composefs-info).
    let image_hex = deployment["image"].as_str().unwrap_or_default();
    let erofs = tree.join("sealroot/images").join(image_hex);
    let listing = common::run(common::tool("composefs-info").arg("ls").arg(&erofs));
    let listing = String::from_utf8_lossy(&listing.stdout);
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        // Directories are listed with a trailing slash.
        .map(|p| p.strip_suffix('/').unwrap_or(p))
        .collect();
    for wanted in [
        "/usr/bin/sealroot-prepare",
        "/etc/sealroot/certs.d/signer.pem",
        "/usr/lib/dracut/modules.d/90sealroot/module-setup.sh",
        "/usr/lib/dracut/dracut.conf.d/50-sealroot.conf",
        "/usr/lib/systemd/system/sealroot-prepare.service",
        "/usr/lib/systemd/system/ostree-prepare-root.service.d/50-sealroot.conf",
        "/usr/lib/systemd/system/initrd-switch-root.service.d/50-sealroot.conf",
        "/sbin/init",
        "/sysroot",
        "/boot",
    ] {
        if !paths.contains(&wanted) {
            return Err(Error::Assertion(format!(
                "the sealed image lacks {wanted}:\n{listing}"
            )));
        }
    }
    if let Some(bad) = paths
        .iter()
        .find(|p| p.starts_with("/sealroot") || p.starts_with("/boot/"))
    {
        return Err(Error::Assertion(format!(
            "the sealed image holds {bad} (the repository and /boot/* stay out)"
        )));
    }

    // The initramfs for mkosi's UKI: our module's contents, and the very
    // sealroot-prepare the inputs named.
    let initrd = artifacts
        .join("io.mkosi.initrd")
        .join(format!("sealroot-{}.initrd", kernel.release));
    let listing = text(&host::run(Command::new(&lsinitrd).arg(&initrd), None)?);
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(8))
        .collect();
    for wanted in [
        "usr/bin/sealroot-prepare",
        "usr/lib/systemd/system/sealroot-prepare.service",
        "etc/systemd/system/initrd-root-fs.target.wants/sealroot-prepare.service",
        "usr/lib/systemd/system/ostree-prepare-root.service.d/50-sealroot.conf",
        "usr/lib/systemd/system/composefs-setup-root.service.d/50-sealroot.conf",
        "usr/lib/systemd/system/bootc-root-setup.service.d/50-sealroot.conf",
        "usr/lib/systemd/system/initrd-switch-root.service.d/50-sealroot.conf",
        "usr/lib/modules-load.d/sealroot.conf",
        "etc/sealroot/certs.d/signer.pem",
        "etc/sealroot/ipe/policy.p7s",
    ] {
        if !files.contains(&wanted) {
            return Err(Error::Assertion(format!(
                "{} lacks {wanted}:\n{listing}",
                initrd.display()
            )));
        }
    }
    let inside = host::run(
        Command::new(&lsinitrd)
            .arg(&initrd)
            .args(["-f", "usr/bin/sealroot-prepare"]),
        None,
    )?;
    let original = fs::read(&bins.sealroot_prepare)
        .map_err(|e| io_error("cannot read", &bins.sealroot_prepare, e))?;
    if inside.stdout != original {
        return Err(Error::Assertion(
            "the initramfs's sealroot-prepare differs from the input binary".into(),
        ));
    }
    // The unit runs on every boot (nothing on the command line skips it),
    // and the switch-root gate is in place.
    let read = |path: &str| -> Result<String> {
        let out = host::run(
            Command::new(&lsinitrd).arg(&initrd).args(["-f", path]),
            None,
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let unit = read("usr/lib/systemd/system/sealroot-prepare.service")?;
    if unit
        .lines()
        .any(|l| l.starts_with("ConditionKernelCommandLine"))
    {
        return Err(Error::Assertion(format!(
            "the initramfs's sealroot-prepare.service can be skipped from the command line:\n{unit}"
        )));
    }
    let gate = read("usr/lib/systemd/system/initrd-switch-root.service.d/50-sealroot.conf")?;
    contains_all(
        "the initramfs's initrd-switch-root drop-in",
        &gate,
        &["ExecStartPre=/usr/bin/sealroot-prepare --check-switch-root"],
    )?;

    // mkosi.postoutput on mkosi's disk image: ext4 verity on the root
    // partition only.
    let (image, root_offset, other_offset) = disk_image(&tree, &out, work.path())?;
    if has_verity_feature(&image, root_offset)? {
        return Err(Error::Assertion(
            "the root partition has verity before postoutput".into(),
        ));
    }
    let log = run_script("mkosi.postoutput")?;
    contains_all(
        "mkosi.postoutput's output",
        &log,
        &["image.raw: ext4 verity feature on the root partition (sector 2048)"],
    )?;
    if !has_verity_feature(&image, root_offset)? || has_verity_feature(&image, other_offset)? {
        return Err(Error::Assertion(
            "postoutput must enable verity on the root partition and only there".into(),
        ));
    }
    Ok(())
}

/// `mkosi.postinst` installs exactly the certificate files sealroot-prepare
/// reads (`sealroot::crypto::cert::CERT_EXTENSIONS`) and skips the rest,
/// saying so. (Before issue 10 it skipped `*.cert`.)
#[test]
fn mkosi_postinst_installs_exactly_the_certificate_names_prepare_reads() -> Result<()> {
    use sealroot::crypto::cert::CERT_EXTENSIONS;
    let work =
        tempfile::tempdir().map_err(|e| io_error("cannot create in", Path::new("/tmp"), e))?;
    let tree = work.path().join("buildroot");
    let inputs = work.path().join("inputs");
    let certs = inputs.join("certs.d");
    fs::create_dir_all(&tree).map_err(|e| io_error("cannot create", &tree, e))?;
    fs::create_dir_all(&certs).map_err(|e| io_error("cannot create", &certs, e))?;
    let keys = sealed::Keys::generate(work.path())?;
    let pem = fs::read(&keys.cert).map_err(|e| io_error("cannot read", &keys.cert, e))?;
    let mut expected = Vec::new();
    for ext in CERT_EXTENSIONS {
        let name = format!("signer.{ext}");
        fs::write(certs.join(&name), &pem).map_err(|e| io_error("cannot write", &certs, e))?;
        expected.push(name);
    }
    for other in ["signer.txt", "signer.pem.bak", "README"] {
        fs::write(certs.join(other), &pem).map_err(|e| io_error("cannot write", &certs, e))?;
    }
    expected.sort();
    // Any executable stands in for sealroot-prepare here.
    let prepare = work.path().join("sealroot-prepare");
    write_exec(&prepare, "#!/bin/sh\n")?;
    let output = host::run(
        Command::new(host::workspace_root().join("mkosi/mkosi.postinst"))
            .env("BUILDROOT", &tree)
            .env("SEALROOT_INPUTS", &inputs)
            .env("SEALROOT_PREPARE", &prepare),
        Some("mkosi.postinst failed"),
    )?;
    let log = text(&output);
    contains_all(
        "mkosi.postinst's output",
        &log,
        &[
            &format!("installed {} trusted certificate(s)", CERT_EXTENSIONS.len()),
            "sealroot-prepare reads only .pem, .crt, .cer, .cert and .der",
        ],
    )?;
    let installed = tree.join("etc/sealroot/certs.d");
    let mut names: Vec<String> = fs::read_dir(&installed)
        .map_err(|e| io_error("cannot list", &installed, e))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| io_error("cannot list", &installed, e))?;
    names.sort();
    if names != expected {
        return Err(Error::Assertion(format!(
            "mkosi.postinst installed {names:?}, sealroot-prepare reads {expected:?}"
        )));
    }
    Ok(())
}
