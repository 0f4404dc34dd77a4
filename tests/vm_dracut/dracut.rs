//! Builds a systemd initramfs with the host's real dracut, for the bed's
//! kernel, with sealroot's dracut module and systemd unit taken from this
//! worktree (nothing is installed on the host).
//!
//! - dracut's own modules come from `/usr/lib/dracut`; a private
//!   `dracutbasedir` (symlinks to them plus `dracut/90sealroot`) adds ours.
//! - `--conf /dev/null --confdir DIR` keeps the host's dracut configuration
//!   out; DIR holds our shipped `dracut.conf.d/50-sealroot.conf` (so the
//!   test proves that snippet is what enables the module) and a test
//!   snippet pointing the module at the worktree's unit, a certificate
//!   directory and the static `sealroot-prepare`.
//! - `--no-hostonly`: this container is not the machine that boots; the
//!   modules are named explicitly: `systemd-initrd rootfs-block` (the
//!   minimal systemd initrd that mounts `root=`) and `dracut-systemd`
//!   (whose emergency.service has a working `sulogin`: without it,
//!   emergency.service exits at once and systemd retries the boot
//!   transaction, our unit included, every few seconds — still fail-closed,
//!   but no steady state); virtio_blk is added for the VM's disk; `--kmoddir` is the full module tree of the bed kernel.
//! - `--no-compress`: TCG pays for every decompressed byte; an uncompressed
//!   cpio costs only QEMU's load time.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sealroot_testbed::host;
use sealroot_testbed::{Error, Kernel, Result};

use crate::kmods::{self, io_error};

/// dracut's installed module directory (Debian's `dracut-core`).
const DRACUT_BASE: &str = "/usr/lib/dracut";

/// What goes into the initramfs besides dracut's minimal systemd initrd.
pub struct Build<'a> {
    pub kernel: &'a Kernel,
    /// The static `sealroot-prepare` to install.
    pub sealroot_prepare: &'a Path,
    /// Trusted certificates (the module's `sealroot_certs_dir`).
    pub certs_dir: &'a Path,
    /// Optional `prepare.conf`.
    pub config: Option<&'a Path>,
    /// Optional signed IPE policy (the module's `sealroot_ipe_policy`).
    pub ipe_policy: Option<&'a Path>,
    /// More dracut modules to include (e.g. Debian ostree-boot's `ostree`).
    pub extra_modules: &'a [&'a str],
}

/// A built initramfs and what dracut and `lsinitrd` said about it.
pub struct Built {
    _dir: tempfile::TempDir,
    pub image: PathBuf,
    /// `lsinitrd` listing (`ls -l` style lines).
    pub listing: String,
    /// dracut's log (stdout + stderr).
    pub log: String,
    pub elapsed: Duration,
}

impl Built {
    /// Whether the listing has a path ending in `path` (relative, no `/`).
    pub fn contains(&self, path: &str) -> bool {
        self.listing
            .lines()
            .any(|line| line.split_whitespace().any(|field| field == path))
    }

    /// Fails with the listing's matching lines when `path` is missing.
    pub fn assert_contains(&self, path: &str) -> Result<()> {
        if self.contains(path) {
            return Ok(());
        }
        Err(Error::Assertion(format!(
            "the initramfs {} has no `{path}`; lsinitrd lines mentioning sealroot:\n{}",
            self.image.display(),
            self.listing
                .lines()
                .filter(|l| l.contains("sealroot"))
                .collect::<Vec<_>>()
                .join("\n")
        )))
    }
}

impl Built {
    /// The contents of `path` (relative, no `/`) in the initramfs
    /// (`lsinitrd -f`).
    pub fn read(&self, path: &str) -> Result<String> {
        let lsinitrd = host::tool("lsinitrd", "dracut-core")?;
        let out = host::run(
            Command::new(lsinitrd).arg(&self.image).args(["-f", path]),
            None,
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Runs dracut as described in the module docs.
pub fn build(spec: &Build) -> Result<Built> {
    let dracut = host::tool(
        "dracut",
        "dracut (on bookworm: apt-get install -t bookworm-backports dracut; see scripts/install-deps)",
    )?;
    let lsinitrd = host::tool("lsinitrd", "dracut-core")?;
    let kmoddir = kmods::module_tree(spec.kernel)?;
    let dir = tempfile::Builder::new()
        .prefix("sealroot-dracut-")
        .tempdir()
        .map_err(|e| {
            io_error(
                "cannot create a temporary directory in",
                Path::new("/tmp"),
                e,
            )
        })?;
    let basedir = private_basedir(dir.path())?;
    let confdir = dir.path().join("conf.d");
    fs::create_dir_all(&confdir).map_err(|e| io_error("cannot create", &confdir, e))?;
    let worktree = host::workspace_root();
    let shipped = worktree.join("dracut/dracut.conf.d/50-sealroot.conf");
    fs::copy(&shipped, confdir.join("50-sealroot.conf"))
        .map_err(|e| io_error("cannot copy", &shipped, e))?;
    let mut test_conf = format!(
        "# written by tests/vm_dracut\nsealroot_prepare={}\nsealroot_certs_dir={}\nsealroot_unit_dir={}\n",
        spec.sealroot_prepare.display(),
        spec.certs_dir.display(),
        worktree.join("systemd").display()
    );
    if let Some(config) = spec.config {
        test_conf.push_str(&format!("sealroot_config={}\n", config.display()));
    } else {
        // Point away from the build host's /etc so the test never picks it up.
        test_conf.push_str(&format!(
            "sealroot_config={}\n",
            dir.path().join("no-prepare.conf").display()
        ));
    }
    // Likewise for the IPE policy: the given one, or none at all.
    test_conf.push_str(&format!(
        "sealroot_ipe_policy={}\n",
        spec.ipe_policy
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("no-policy.p7s"))
            .display()
    ));
    let test_conf_path = confdir.join("90-test.conf");
    fs::write(&test_conf_path, test_conf)
        .map_err(|e| io_error("cannot write", &test_conf_path, e))?;

    let image = dir.path().join("initrd.img");
    let started = Instant::now();
    let output = host::run(
        Command::new(dracut)
            .env("dracutbasedir", &basedir)
            .args(["--force", "--conf", "/dev/null", "--confdir"])
            .arg(&confdir)
            .args(["--no-hostonly", "--no-hostonly-cmdline", "--kver"])
            .arg(&spec.kernel.release)
            .arg("--kmoddir")
            .arg(&kmoddir)
            .arg("--modules")
            .arg(
                ["systemd-initrd", "rootfs-block", "dracut-systemd"]
                    .iter()
                    .chain(spec.extra_modules)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .args(["--add-drivers", "virtio_blk"])
            .args(["--no-compress", "--no-early-microcode"])
            .arg(&image),
        Some("dracut failed; its log is above (the sealroot module reports with `sealroot:`)"),
    )?;
    let elapsed = started.elapsed();
    let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    let listing = host::run(Command::new(lsinitrd).arg(&image), None)?;
    Ok(Built {
        listing: String::from_utf8_lossy(&listing.stdout).into_owned(),
        image,
        log,
        elapsed,
        _dir: dir,
    })
}

/// `DIR/dracut`: symlinks to everything in `/usr/lib/dracut`, with
/// `modules.d` rebuilt as symlinks plus `90sealroot` from the worktree.
fn private_basedir(dir: &Path) -> Result<PathBuf> {
    let base = dir.join("dracut");
    let modules = base.join("modules.d");
    fs::create_dir_all(&modules).map_err(|e| io_error("cannot create", &modules, e))?;
    let installed = Path::new(DRACUT_BASE);
    let link_all = |from: &Path, to: &Path, skip: &str| -> Result<()> {
        for entry in fs::read_dir(from).map_err(|e| io_error("cannot list", from, e))? {
            let entry = entry.map_err(|e| io_error("cannot list", from, e))?;
            if entry.file_name() == skip {
                continue;
            }
            let link = to.join(entry.file_name());
            symlink(entry.path(), &link)
                .map_err(|e| io_error("cannot create symlink", &link, e))?;
        }
        Ok(())
    };
    link_all(installed, &base, "modules.d")?;
    link_all(&installed.join("modules.d"), &modules, "90sealroot")?;
    let ours = host::workspace_root().join("dracut/90sealroot");
    let link = modules.join("90sealroot");
    symlink(&ours, &link).map_err(|e| io_error("cannot create symlink", &link, e))?;
    Ok(base)
}
