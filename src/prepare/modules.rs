//! Loading the kernel modules the sealed root needs (erofs, overlay; loop
//! for the fallback) when they are not built in, like a minimal `modprobe`:
//!
//! - a filesystem listed in `/proc/filesystems`, or a module present in
//!   `/sys/module/<name>`, is already there;
//! - otherwise the module is found in `/lib/modules/$(uname -r)/` through
//!   `modules.dep` (modules.dep(5): `path: dependency-paths...`, paths
//!   relative to that directory, full dependency closure), its
//!   dependencies loaded first; without `modules.dep` the directory tree is
//!   searched for `<name>.ko[.xz|.zst|.gz]` and the module loaded alone;
//! - `finit_module(2)` loads it; compressed modules are passed with
//!   `MODULE_INIT_COMPRESSED_FILE` so the kernel decompresses them
//!   (`CONFIG_MODULE_DECOMPRESS`, Linux 5.17); EEXIST means another loader
//!   won the race and is fine.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::errno::errno_name;

/// `MODULE_INIT_COMPRESSED_FILE` (`include/uapi/linux/module.h`).
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// A module that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("kernel module {module}: {reason}")]
pub struct ModuleError {
    /// The module's name.
    pub module: String,
    /// Why it is not available.
    pub reason: String,
}

/// The module directory of the running kernel.
pub fn module_dir() -> PathBuf {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy().into_owned();
    PathBuf::from("/lib/modules").join(release)
}

/// Loads modules from one module directory.
#[derive(Debug)]
pub struct Loader {
    dir: PathBuf,
    /// modules.dep: module name -> (path, dependency paths).
    deps: Option<BTreeMap<String, (String, Vec<String>)>>,
    /// What this loader loaded, in order.
    pub loaded: Vec<String>,
}

/// The module name of a path: base name without `.ko[.*]`, `-` as `_`.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split_once(".ko").map(|(s, _)| s).unwrap_or(base);
    stem.replace('-', "_")
}

/// Parses modules.dep text.
pub fn parse_modules_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        let path = path.trim();
        if path.is_empty() {
            continue;
        }
        let deps = deps.split_whitespace().map(str::to_owned).collect();
        map.entry(module_name(path))
            .or_insert_with(|| (path.to_owned(), deps));
    }
    map
}

impl Loader {
    /// A loader for `dir` (normally [`module_dir`]).
    pub fn new(dir: PathBuf) -> Loader {
        let deps = std::fs::read_to_string(dir.join("modules.dep"))
            .ok()
            .map(|t| parse_modules_dep(&t));
        Loader {
            dir,
            deps,
            loaded: Vec::new(),
        }
    }

    /// Makes sure filesystem `fstype` is available, loading module
    /// `module` (and its dependencies) if needed. Returns whether anything
    /// was loaded.
    pub fn ensure_filesystem(&mut self, fstype: &str, module: &str) -> Result<bool, ModuleError> {
        if filesystem_known(fstype) {
            return Ok(false);
        }
        self.ensure_module(module)?;
        if !filesystem_known(fstype) {
            return Err(ModuleError {
                module: module.into(),
                reason: format!(
                    "loaded, but /proc/filesystems still lacks {fstype:?}: the module does not \
                     provide it"
                ),
            });
        }
        Ok(true)
    }

    /// Makes sure module `name` is loaded (or built in).
    pub fn ensure_module(&mut self, name: &str) -> Result<(), ModuleError> {
        self.ensure(name, 0)
    }

    fn ensure(&mut self, name: &str, depth: usize) -> Result<(), ModuleError> {
        let name = module_name(name);
        if module_present(&name) || self.loaded.contains(&name) {
            return Ok(());
        }
        let err = |reason: String| ModuleError {
            module: name.clone(),
            reason,
        };
        if depth > 32 {
            return Err(err(
                "dependency chain deeper than 32 in modules.dep (a loop?)".into(),
            ));
        }
        let (path, deps) = match self.deps.as_ref().and_then(|d| d.get(&name)) {
            Some((path, deps)) => (self.dir.join(path), deps.clone()),
            None => {
                let found = find_module_file(&self.dir, &name).ok_or_else(|| {
                    err(format!(
                        "not built into the kernel and no {name}.ko[.xz|.zst|.gz] under {}{}; \
                         add it to the initramfs (dracut: --add-drivers {name})",
                        self.dir.display(),
                        if self.deps.is_some() {
                            " (nor in modules.dep)"
                        } else {
                            ""
                        }
                    ))
                })?;
                (found, Vec::new())
            }
        };
        for dep in deps {
            self.ensure(&dep, depth + 1)?;
        }
        load_file(&path).map_err(err)?;
        self.loaded.push(name);
        Ok(())
    }
}

/// Loads one module file with `finit_module(2)`.
fn load_file(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| {
        format!(
            "cannot open {}: {}: {e}",
            path.display(),
            crate::errno::io_errno_name(&e)
        )
    })?;
    let compressed = path
        .extension()
        .is_some_and(|e| e == "xz" || e == "zst" || e == "gz");
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    match rustix::system::finit_module(&file, c"", flags) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(format!(
            "finit_module({}) failed: {}: {}",
            path.display(),
            errno_name(e),
            explain_finit(e, compressed)
        )),
    }
}

fn explain_finit(errno: Errno, compressed: bool) -> String {
    match errno {
        Errno::OPNOTSUPP | Errno::INVAL if compressed => {
            "the kernel cannot decompress modules (CONFIG_MODULE_DECOMPRESS) or not this \
             compression; ship the module uncompressed"
                .into()
        }
        Errno::KEYREJECTED | Errno::NOKEY => {
            "the module's signature is not accepted by the kernel (module.sig_enforce); \
             use the modules of the running kernel"
                .into()
        }
        Errno::NOEXEC => "not a valid module for this kernel".into(),
        Errno::NOENT => "an unknown symbol: a dependency is missing (run depmod to create \
                         modules.dep)"
            .into(),
        Errno::PERM => "module loading is disabled or needs CAP_SYS_MODULE".into(),
        other => std::io::Error::from(other).to_string(),
    }
}

/// Whether `/proc/filesystems` lists `fstype`.
pub fn filesystem_known(fstype: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|t| filesystems_list(&t, fstype))
}

/// Whether the `/proc/filesystems` text lists `fstype` (lines are
/// `[nodev]\t<name>`).
pub fn filesystems_list(text: &str, fstype: &str) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().last() == Some(fstype))
}

/// Whether `/sys/module/<name>` exists (loaded, or built in with
/// parameters).
fn module_present(name: &str) -> bool {
    Path::new("/sys/module").join(name).exists()
}

/// Searches `dir` (depth-first, bounded) for `<name>.ko*`.
fn find_module_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut stack = vec![(dir.to_owned(), 0)];
    let mut visited = 0;
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            visited += 1;
            if visited > 100_000 {
                return None;
            }
            let Ok(ft) = e.file_type() else { continue };
            let file_name = e.file_name();
            let fname = file_name.to_string_lossy();
            if ft.is_dir() && depth < 16 {
                stack.push((e.path(), depth + 1));
            } else if ft.is_file()
                && fname.contains(".ko")
                && module_name(&fname) == name
                && [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                    .iter()
                    .any(|s| fname.ends_with(s))
            {
                return Some(e.path());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(module_name("kernel/fs/erofs/erofs.ko.xz"), "erofs");
        assert_eq!(module_name("kernel/lib/libcrc32c.ko"), "libcrc32c");
        assert_eq!(module_name("virtio-blk.ko.zst"), "virtio_blk");
    }

    #[test]
    fn modules_dep() {
        // The format depmod writes (modules.dep(5)).
        let m = parse_modules_dep(
            "kernel/lib/libcrc32c.ko.xz:\nkernel/fs/erofs/erofs.ko.xz: kernel/lib/libcrc32c.ko.xz\n\nbad line\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(
            m["erofs"],
            (
                "kernel/fs/erofs/erofs.ko.xz".to_string(),
                vec!["kernel/lib/libcrc32c.ko.xz".to_string()]
            )
        );
    }

    #[test]
    fn proc_filesystems() {
        let t = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n";
        assert!(filesystems_list(t, "ext4"));
        assert!(filesystems_list(t, "overlay"));
        assert!(!filesystems_list(t, "erofs"));
        assert!(!filesystems_list(t, "nodev"));
    }

    #[test]
    fn finds_files_without_modules_dep() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("kernel/fs/erofs")).unwrap();
        std::fs::write(dir.path().join("kernel/fs/erofs/erofs.ko.xz"), b"x").unwrap();
        std::fs::write(dir.path().join("kernel/fs/erofs/erofs_x.ko"), b"x").unwrap();
        assert_eq!(
            find_module_file(dir.path(), "erofs"),
            Some(dir.path().join("kernel/fs/erofs/erofs.ko.xz"))
        );
        assert_eq!(find_module_file(dir.path(), "overlay"), None);
        let mut l = Loader::new(dir.path().to_owned());
        let e = l.ensure_module("no_such_module_here").unwrap_err();
        assert!(e.to_string().contains("no no_such_module_here.ko"), "{e}");
    }
}
