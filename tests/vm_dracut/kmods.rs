//! The test kernel's complete module tree, for dracut.
//!
//! The bed caches only the five modules its own initramfs loads. dracut
//! resolves modules by name through `modules.dep`, `modules.alias` and
//! friends (`--kmoddir`), so it needs the whole `lib/modules/<release>` of
//! the same package. This fetches exactly the bed's package and version with
//! `scripts/debian-fetch`, runs `depmod -b` (Debian's package ships no
//! `modules.dep`: depmod runs at install time), and caches the result in
//! `<cache>/dracut-kmods/<release>/lib/modules/<release>` (about 30 MB,
//! published by an atomic rename under a cache lock).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sealroot_testbed::host::{self, CacheLock};
use sealroot_testbed::{Error, Kernel, Result};

/// Creates, or finds in the cache, the complete module tree of `kernel`
/// and returns `.../lib/modules/<release>` (for `dracut --kmoddir`).
pub fn module_tree(kernel: &Kernel) -> Result<PathBuf> {
    let base = host::cache_subdir("dracut-kmods")?;
    let dest = base.join(&kernel.release);
    let tree = dest.join("lib/modules").join(&kernel.release);
    let _lock = CacheLock::acquire("dracut-kmods")?;
    if tree.join("modules.dep.bin").is_file() {
        return Ok(tree);
    }
    let staging = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(&base)
        .map_err(|e| io_error("cannot create a staging directory in", &base, e))?;
    let depmod = host::tool("depmod", "kmod")?;
    let script = host::workspace_root().join("scripts/debian-fetch");
    host::run(
        Command::new(script)
            .env("SEALROOT_CACHE", host::cache_dir()?)
            .arg(sealroot_testbed::kernel::SUITE)
            .arg(staging.path())
            .arg(format!("{}={}", kernel.package, kernel.package_version)),
        Some(
            "the module tree comes from the bed kernel's own Debian package; check network access to the Debian mirror",
        ),
    )?;
    let root = staging.path().join("root");
    let unpacked = root.join("lib/modules").join(&kernel.release);
    if !unpacked.join("modules.order").is_file() {
        return Err(Error::Invalid(format!(
            "{} {} unpacked no {}/modules.order",
            kernel.package,
            kernel.package_version,
            unpacked.display()
        )));
    }
    host::run(
        Command::new(depmod)
            .arg("-b")
            .arg(&root)
            .arg(&kernel.release),
        None,
    )?;
    let out = staging.path().join("out/lib/modules");
    fs::create_dir_all(&out).map_err(|e| io_error("cannot create", &out, e))?;
    fs::rename(&unpacked, out.join(&kernel.release))
        .map_err(|e| io_error("cannot move the module tree out of", &unpacked, e))?;
    let _ = fs::remove_dir_all(&dest);
    fs::rename(staging.path().join("out"), &dest)
        .map_err(|e| io_error("cannot publish the module tree as", &dest, e))?;
    Ok(tree)
}

pub fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
