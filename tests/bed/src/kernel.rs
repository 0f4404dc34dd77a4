//! The test kernel: Debian's `linux-image-6.12.*-cloud-amd64-unsigned`
//! from bookworm-backports, fetched with `scripts/debian-fetch`, unpacked
//! into the cache once and shared by every test.
//!
//! Cache layout (`<cache>/kernel/`):
//!
//! ```text
//! current                      name of the kernel in use (its release)
//! <release>/vmlinuz                 the bzImage (UEFI boots, via its EFI stub)
//! <release>/vmlinux                 its payload, decompressed (PVH boots)
//! <release>/config
//! <release>/info               package=..., version=..., release=...
//! <release>/lib/modules/<release>/kernel/.../<mod>.ko.xz   as shipped
//! <release>/lib/modules/<release>/kernel/.../<mod>.ko      decompressed
//! <release>/lib/modules/<release>/modules.dep              for our modules
//! ```
//!
//! Once a kernel is cached it is used without asking the network again, so
//! runs are reproducible; set `SEALROOT_TESTBED_KERNEL_UPDATE=1` to look for
//! a newer one, or `SEALROOT_TESTBED_KERNEL=<package>` to pin one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, IoContext, Result};
use crate::host::{self, CacheLock};

/// The Debian suite the kernel comes from.
pub const SUITE: &str = "bookworm-backports";
/// Which binary packages qualify (`apt-cache pkgnames` names, extended regex).
pub const PACKAGE_REGEX: &str = r"linux-image-6\.12\.[0-9]+.*-cloud-amd64-unsigned";

/// The modules the bed loads, in load order, with their path under
/// `lib/modules/<release>/`. Debian does not ship `modules.dep` in the
/// package; `depends=` in each module's modinfo (`strings foo.ko | grep
/// ^depends=`) says erofs needs libcrc32c and the others need nothing.
pub const MODULES: &[(&str, &str, &[&str])] = &[
    ("libcrc32c", "kernel/lib/libcrc32c.ko", &[]),
    ("erofs", "kernel/fs/erofs/erofs.ko", &["libcrc32c"]),
    ("overlay", "kernel/fs/overlayfs/overlay.ko", &[]),
    ("loop", "kernel/drivers/block/loop.ko", &[]),
    ("virtio_blk", "kernel/drivers/block/virtio_blk.ko", &[]),
];

/// Which file of a module: as Debian ships it, or decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleForm {
    /// `foo.ko`: loadable by any `insmod`, and by `finit_module(2)` without flags.
    Plain,
    /// `foo.ko.xz`: as shipped; needs `MODULE_INIT_COMPRESSED_FILE` or a
    /// decompressing loader (busybox modprobe/insmod handle it).
    Xz,
}

impl ModuleForm {
    fn suffix(self) -> &'static str {
        match self {
            ModuleForm::Plain => "",
            ModuleForm::Xz => ".xz",
        }
    }
}

/// `modules.dep` (see modules.dep(5)) for our modules in the given form:
/// `<module>: <dependencies...>`, paths relative to `lib/modules/<release>`.
/// Debian's package does not ship one (depmod runs at install time).
pub fn modules_dep(form: ModuleForm) -> String {
    let suffix = form.suffix();
    let mut out = String::new();
    for (_, rel, deps) in MODULES {
        out.push_str(&format!("{rel}{suffix}:"));
        for dep in deps.iter() {
            if let Some((_, dep_rel, _)) = MODULES.iter().find(|(n, _, _)| n == dep) {
                out.push_str(&format!(" {dep_rel}{suffix}"));
            }
        }
        out.push('\n');
    }
    out
}

/// One kernel module, available both as shipped (`.ko.xz`) and decompressed.
#[derive(Debug, Clone)]
pub struct Module {
    /// Module name as the kernel knows it (`erofs`).
    pub name: String,
    /// Path of the decompressed module below `lib/modules/<release>/`
    /// (`kernel/fs/erofs/erofs.ko`); the shipped file is this plus `.xz`.
    pub rel_path: String,
    /// Names of the modules it needs loaded first.
    pub depends: Vec<String>,
    /// The decompressed module in the cache.
    pub ko: PathBuf,
    /// The module as Debian ships it (xz-compressed) in the cache.
    pub ko_xz: PathBuf,
}

impl Module {
    /// The cached file of this module in the given form.
    pub fn file(&self, form: ModuleForm) -> &Path {
        match form {
            ModuleForm::Plain => &self.ko,
            ModuleForm::Xz => &self.ko_xz,
        }
    }

    /// Its path below `lib/modules/<release>/` in the given form.
    pub fn rel_path(&self, form: ModuleForm) -> String {
        format!("{}{}", self.rel_path, form.suffix())
    }
}

/// A kernel ready to boot, with its modules.
#[derive(Debug)]
pub struct Kernel {
    /// `uname -r` of this kernel, e.g. `6.12.95+deb12-cloud-amd64`.
    pub release: String,
    /// The Debian package it came from.
    pub package: String,
    /// The Debian package version.
    pub package_version: String,
    dir: PathBuf,
    modules: Vec<Module>,
}

impl Kernel {
    /// The test kernel, fetched and unpacked on first use (per cache), then
    /// shared. Safe to call from many threads and processes at once.
    pub fn get() -> Result<&'static Kernel> {
        static KERNEL: OnceLock<Result<Kernel, String>> = OnceLock::new();
        let kernel = KERNEL.get_or_init(|| {
            let kernel = Kernel::load_or_fetch().map_err(|e| e.to_string())?;
            eprintln!("sealroot-testbed: {}", kernel.describe());
            Ok(kernel)
        });
        kernel.as_ref().map_err(|msg| Error::Setup(msg.clone()))
    }

    /// One line for logs: release, package and where it lives.
    pub fn describe(&self) -> String {
        format!(
            "kernel {} ({} {}, {})",
            self.release,
            self.package,
            self.package_version,
            self.dir.display()
        )
    }

    /// The bootable kernel image (bzImage).
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    /// The uncompressed kernel (ELF) that QEMU boots directly through the
    /// PVH entry point (CONFIG_PVH=y). Under TCG this skips the bzImage's
    /// zstd decompression, which costs 1.5-6 s of emulated CPU per boot.
    pub fn vmlinux(&self) -> PathBuf {
        self.dir.join("vmlinux")
    }

    /// The kernel's build configuration.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// The directory holding `lib/modules/<release>/...` (both `.ko` and
    /// `.ko.xz` files, plus `modules.dep` for the `.ko.xz` files).
    pub fn root(&self) -> &Path {
        &self.dir
    }

    /// The modules, in load order.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// One module by name.
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// Whether the kernel config has `CONFIG_<name>=y` or `=m`.
    pub fn config_option(&self, name: &str) -> Result<Option<String>> {
        let path = self.config();
        let text = fs::read_to_string(&path).ctx("cannot read kernel config", &path)?;
        let prefix = format!("CONFIG_{name}=");
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned)))
    }

    fn load_or_fetch() -> Result<Kernel> {
        let base = host::cache_subdir("kernel")?;
        let _lock = CacheLock::acquire("kernel")?;
        // Under the lock, staging directories can only be a dead run's leftovers.
        for entry in fs::read_dir(&base).ctx("cannot list", &base)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".fetch-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let pinned = std::env::var("SEALROOT_TESTBED_KERNEL")
            .ok()
            .filter(|s| !s.is_empty());
        let update = std::env::var_os("SEALROOT_TESTBED_KERNEL_UPDATE").is_some_and(|v| v == "1");
        let current = base.join("current");
        if pinned.is_none()
            && !update
            && let Ok(release) = fs::read_to_string(&current)
            && let Ok(kernel) = Kernel::load(&base.join(release.trim()))
        {
            return Ok(kernel);
        }
        let package = match pinned {
            Some(package) => package,
            None => latest_package()?,
        };
        // A pinned or newer package may already be unpacked.
        if let Some(kernel) = Kernel::find_cached(&base, &package) {
            host::write_atomic(&current, kernel.release.as_bytes())?;
            return Ok(kernel);
        }
        let kernel = fetch(&base, &package)?;
        host::write_atomic(&current, kernel.release.as_bytes())?;
        Ok(kernel)
    }

    fn find_cached(base: &Path, package: &str) -> Option<Kernel> {
        fs::read_dir(base)
            .ok()?
            .flatten()
            .filter_map(|entry| Kernel::load(&entry.path()).ok())
            .find(|kernel| kernel.package == package)
    }

    /// Loads a complete cached kernel directory; errors if anything is missing.
    fn load(dir: &Path) -> Result<Kernel> {
        let info_path = dir.join("info");
        let info = fs::read_to_string(&info_path).ctx("cannot read", &info_path)?;
        let info: BTreeMap<&str, &str> = info.lines().filter_map(|l| l.split_once('=')).collect();
        let field = |key: &str| {
            info.get(key)
                .map(|v| v.to_string())
                .ok_or_else(|| Error::Invalid(format!("{}: no `{key}=`", info_path.display())))
        };
        let release = field("release")?;
        let modules = MODULES
            .iter()
            .map(|(name, rel, deps)| {
                let ko = dir.join("lib/modules").join(&release).join(rel);
                Module {
                    name: name.to_string(),
                    rel_path: rel.to_string(),
                    depends: deps.iter().map(|d| d.to_string()).collect(),
                    ko_xz: PathBuf::from(format!("{}.xz", ko.display())),
                    ko,
                }
            })
            .collect::<Vec<_>>();
        let kernel = Kernel {
            package: field("package")?,
            package_version: field("version")?,
            release,
            dir: dir.to_path_buf(),
            modules,
        };
        let required = [kernel.vmlinuz(), kernel.vmlinux(), kernel.config()];
        let module_files = kernel
            .modules
            .iter()
            .flat_map(|m| [m.ko.clone(), m.ko_xz.clone()]);
        if let Some(missing) = required
            .into_iter()
            .chain(module_files)
            .find(|p| !p.is_file())
        {
            return Err(Error::Invalid(format!(
                "cached kernel is incomplete, {} is missing",
                missing.display()
            )));
        }
        Ok(kernel)
    }
}

fn debian_fetch() -> Result<Command> {
    let script = host::workspace_root().join("scripts/debian-fetch");
    for (tool, package) in [("apt-get", "apt"), ("dpkg-deb", "dpkg")] {
        host::tool(tool, package)?;
    }
    if !Path::new("/usr/share/keyrings/debian-archive-keyring.gpg").is_file() {
        return Err(Error::Missing {
            what: "the Debian archive keyring (to check downloaded kernels)".into(),
            fix: "apt-get install debian-archive-keyring".into(),
        });
    }
    let mut cmd = Command::new(script);
    // Keep debian-fetch's private apt state inside the bed's cache.
    cmd.env("SEALROOT_CACHE", host::cache_dir()?);
    Ok(cmd)
}

const FETCH_HINT: &str = "the kernel comes from Debian's bookworm-backports; check network access to the Debian mirror apt uses (scripts/debian-mirror prints it; SEALROOT_DEBIAN_MIRROR overrides it)";

fn latest_package() -> Result<String> {
    let output = host::run(
        debian_fetch()?.args(["--latest", SUITE, PACKAGE_REGEX]),
        Some(FETCH_HINT),
    )?;
    let name = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if name.is_empty() {
        return Err(Error::Missing {
            what: format!("no package matching {PACKAGE_REGEX} in Debian {SUITE}"),
            fix:
                "check SEALROOT_DEBIAN_MIRROR, or pin a package with SEALROOT_TESTBED_KERNEL=<name>"
                    .into(),
        });
    }
    Ok(name)
}

/// Downloads `package`, keeps vmlinuz, config and our modules (both forms),
/// and installs the result as `<base>/<release>` by an atomic rename.
fn fetch(base: &Path, package: &str) -> Result<Kernel> {
    let started = std::time::Instant::now();
    let staging = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(base)
        .ctx("cannot create a staging directory in", base)?;
    host::run(
        debian_fetch()?.arg(SUITE).arg(staging.path()).arg(package),
        Some(FETCH_HINT),
    )?;
    let unpacked = staging.path().join("root");
    let versions_path = staging.path().join("versions");
    let versions = fs::read_to_string(&versions_path).ctx("cannot read", &versions_path)?;
    let package_version = versions
        .lines()
        .find_map(|l| l.strip_prefix(package)?.strip_prefix(' '))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{}: no version for {package}",
                versions_path.display()
            ))
        })?
        .to_string();
    let modules_dir = unpacked.join("lib/modules");
    let release = fs::read_dir(&modules_dir)
        .ctx("cannot list", &modules_dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| Error::Invalid(format!("{package} ships no lib/modules/<release>")))?;

    let out = staging.path().join("out");
    let copy = |from: PathBuf, to: PathBuf| -> Result<()> {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).ctx("cannot create", parent)?;
        }
        fs::copy(&from, &to).ctx("cannot copy", &from)?;
        Ok(())
    };
    copy(
        unpacked.join(format!("boot/vmlinuz-{release}")),
        out.join("vmlinuz"),
    )?;
    copy(
        unpacked.join(format!("boot/config-{release}")),
        out.join("config"),
    )?;
    let bzimage_path = out.join("vmlinuz");
    let bzimage = fs::read(&bzimage_path).ctx("cannot read", &bzimage_path)?;
    let vmlinux = crate::bzimage::extract_vmlinux(&bzimage, &bzimage_path)?;
    fs::write(out.join("vmlinux"), vmlinux).ctx("cannot write", &out.join("vmlinux"))?;
    for (_, rel, _) in MODULES {
        let shipped = modules_dir.join(&release).join(format!("{rel}.xz"));
        let dest = out.join("lib/modules").join(&release).join(rel);
        copy(
            shipped.clone(),
            PathBuf::from(format!("{}.xz", dest.display())),
        )?;
        let plain = decompress_xz(&shipped)?;
        if !plain.starts_with(b"\x7fELF") {
            return Err(Error::Invalid(format!(
                "{}: not an ELF module after xz -d",
                shipped.display()
            )));
        }
        fs::write(&dest, plain).ctx("cannot write", &dest)?;
    }
    let dep_path = out.join("lib/modules").join(&release).join("modules.dep");
    fs::write(&dep_path, modules_dep(ModuleForm::Xz)).ctx("cannot write", &dep_path)?;
    let info = format!("package={package}\nversion={package_version}\nrelease={release}\n");
    fs::write(out.join("info"), info).ctx("cannot write", &out.join("info"))?;

    let dest = base.join(&release);
    if dest.exists() {
        // An older download of the same release under another package name.
        fs::remove_dir_all(&dest).ctx("cannot replace", &dest)?;
    }
    host::rename(&out, &dest)?;
    let kernel = Kernel::load(&dest)?;
    eprintln!(
        "sealroot-testbed: fetched {package} {package_version} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(kernel)
}

fn decompress_xz(path: &Path) -> Result<Vec<u8>> {
    let file = fs::File::open(path).ctx("cannot open", path)?;
    let mut input = std::io::BufReader::new(file);
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut input, &mut out)
        .map_err(|e| Error::Invalid(format!("{}: xz: {e}", path.display())))?;
    // Anything after the stream would be silently ignored: refuse it.
    let mut rest = Vec::new();
    input.read_to_end(&mut rest).ctx("cannot read", path)?;
    if rest.iter().any(|&b| b != 0) {
        return Err(Error::Invalid(format!(
            "{}: trailing data after the xz stream",
            path.display()
        )));
    }
    Ok(out)
}
