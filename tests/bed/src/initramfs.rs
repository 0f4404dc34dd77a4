//! Initramfs images: a deterministic cpio (newc) builder, plus the pieces
//! every test VM needs (busybox, kernel modules, the test init).
//!
//! Entries are kept sorted by path, so parents always precede children and
//! the same inputs always give the same bytes (mtime 0, uid/gid 0, inode
//! numbers in order, gzip without a timestamp).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::bins::{self, StaticBins};
use crate::error::{Error, IoContext, Result};
use crate::host;
use crate::kernel::{Kernel, ModuleForm};

/// The test init and its shell library (see the README for the protocol).
pub const INIT_SH: &str = include_str!("init.sh");
pub const BED_SH: &str = include_str!("bed.sh");

/// Where the VM mounts the first disk when asked to (`Initramfs::mount_disk`).
pub const DISK_MOUNTPOINT: &str = "/mnt/disk";

/// How the cpio archive is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain cpio: the fastest to boot under TCG (nothing to inflate).
    #[default]
    None,
    /// gzip (flate2, level 6, no timestamp in the header).
    Gzip,
}

#[derive(Debug, Clone)]
enum Data {
    Bytes(Vec<u8>),
    Host(PathBuf),
}

#[derive(Debug, Clone)]
enum Entry {
    Dir { mode: u32 },
    File { data: Data, mode: u32 },
    Symlink { target: String },
    CharDevice { major: u32, minor: u32, mode: u32 },
}

// File type bits of st_mode (inode(7)).
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// A deterministic initramfs under construction. Paths are absolute inside
/// the image (`/bin/sh`); missing parent directories are created (0755);
/// adding a path again replaces the earlier entry.
#[derive(Debug, Clone, Default)]
pub struct Initramfs {
    entries: BTreeMap<String, Entry>,
    compression: Compression,
}

impl Initramfs {
    /// An empty image (just the root directory).
    pub fn new() -> Initramfs {
        let mut initramfs = Initramfs::default();
        initramfs
            .entries
            .insert(".".into(), Entry::Dir { mode: 0o755 });
        initramfs
    }

    /// Everything a test VM needs: busybox with its applets, the kernel's
    /// modules (decompressed, loaded by /init in order), `/init` and
    /// `/lib/bed.sh`, and `scenario` as `/etc/bed/scenario.sh`.
    pub fn test(kernel: &Kernel, scenario: &str) -> Result<Initramfs> {
        let load_order: String = kernel
            .modules()
            .iter()
            .map(|m| format!("{}\n", m.rel_path(ModuleForm::Plain)))
            .collect();
        Ok(Initramfs::new()
            .busybox()?
            .kernel_modules(kernel, ModuleForm::Plain)
            .file("/init", INIT_SH, 0o755)
            .file("/lib/bed.sh", BED_SH, 0o644)
            .file("/etc/bed/modules", load_order, 0o644)
            .file("/etc/bed/mounts", "", 0o644)
            .dir("/root", 0o700)
            .scenario(scenario))
    }

    /// Has the test init load only `names` (and what they depend on)
    /// instead of every module; each module load costs 0.1-0.2 s under TCG.
    /// An empty list loads none (`virtio_blk` is needed for disks).
    pub fn load_modules(self, kernel: &Kernel, names: &[&str]) -> Result<Initramfs> {
        let mut wanted: Vec<&str> = names.to_vec();
        let mut i = 0;
        while let Some(name) = wanted.get(i).copied() {
            let module = kernel.module(name).ok_or_else(|| {
                Error::Invalid(format!("no module `{name}` in the test bed kernel"))
            })?;
            wanted.extend(module.depends.iter().map(String::as_str));
            i += 1;
        }
        // Kernel::modules() is in load order (dependencies first).
        let list: String = kernel
            .modules()
            .iter()
            .filter(|m| wanted.contains(&m.name.as_str()))
            .map(|m| format!("{}\n", m.rel_path(ModuleForm::Plain)))
            .collect();
        Ok(self.file("/etc/bed/modules", list, 0o644))
    }

    /// Sets the scenario script run by the test init (busybox `sh`, sourced
    /// in a subshell after `/lib/bed.sh`).
    pub fn scenario(self, script: &str) -> Initramfs {
        self.file("/etc/bed/scenario.sh", script, 0o644)
    }

    /// Has the test init mount `device` at `dir` before the scenario and
    /// unmount it afterwards (`options` empty means `defaults`).
    pub fn mount(mut self, device: &str, dir: &str, fstype: &str, options: &str) -> Initramfs {
        let options = if options.is_empty() {
            "defaults"
        } else {
            options
        };
        let line = format!("{device} {dir} {fstype} {options}\n");
        let mut table = match self.entries.remove("etc/bed/mounts") {
            Some(Entry::File {
                data: Data::Bytes(bytes),
                ..
            }) => bytes,
            _ => Vec::new(),
        };
        table.extend_from_slice(line.as_bytes());
        self.file("/etc/bed/mounts", table, 0o644)
    }

    /// Mounts the first virtio disk (`/dev/vda`, ext4) at [`DISK_MOUNTPOINT`].
    pub fn mount_disk(self) -> Initramfs {
        self.mount("/dev/vda", DISK_MOUNTPOINT, "ext4", "")
    }

    /// Adds a file with the given contents and permission bits.
    pub fn file(self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Initramfs {
        self.insert(
            path,
            Entry::File {
                data: Data::Bytes(contents.into()),
                mode,
            },
        )
    }

    /// Adds a file copied from the host when the image is written.
    pub fn file_from(self, path: &str, host_path: impl Into<PathBuf>, mode: u32) -> Initramfs {
        self.insert(
            path,
            Entry::File {
                data: Data::Host(host_path.into()),
                mode,
            },
        )
    }

    /// Adds a directory.
    pub fn dir(self, path: &str, mode: u32) -> Initramfs {
        self.insert(path, Entry::Dir { mode })
    }

    /// Adds a symbolic link `path -> target`.
    pub fn symlink(self, path: &str, target: &str) -> Initramfs {
        self.insert(
            path,
            Entry::Symlink {
                target: target.to_string(),
            },
        )
    }

    /// Adds a character device node (devtmpfs provides the rest at runtime).
    pub fn char_device(self, path: &str, major: u32, minor: u32, mode: u32) -> Initramfs {
        self.insert(path, Entry::CharDevice { major, minor, mode })
    }

    /// Adds the host's static busybox as `/bin/busybox` with a symlink per
    /// applet in `/bin`, the usual directories and `/dev/console`.
    pub fn busybox(self) -> Result<Initramfs> {
        let busybox = busybox()?;
        let mut image = self
            .file_from("/bin/busybox", &busybox.path, 0o755)
            .char_device("/dev/console", 5, 1, 0o600);
        for dir in [
            "/sbin",
            "/usr/bin",
            "/usr/sbin",
            "/proc",
            "/sys",
            "/dev",
            "/run",
            "/mnt",
        ] {
            image = image.dir(dir, 0o755);
        }
        image = image.dir("/tmp", 0o1777);
        for applet in &busybox.applets {
            image = image.symlink(&format!("/bin/{applet}"), "busybox");
        }
        Ok(image)
    }

    /// Adds the kernel's modules in one form under
    /// `/lib/modules/<release>/kernel/...`, with a matching `modules.dep`.
    pub fn kernel_modules(mut self, kernel: &Kernel, form: ModuleForm) -> Initramfs {
        let base = format!("/lib/modules/{}", kernel.release);
        for module in kernel.modules() {
            self = self.file_from(
                &format!("{base}/{}", module.rel_path(form)),
                module.file(form),
                0o644,
            );
        }
        self.file(
            &format!("{base}/modules.dep"),
            crate::kernel::modules_dep(form),
            0o644,
        )
    }

    /// Adds `/bin/sealroot` and `/bin/sealroot-prepare`.
    pub fn static_binaries(self, bins: &StaticBins) -> Initramfs {
        self.file_from("/bin/sealroot", &bins.sealroot, 0o755)
            .file_from("/bin/sealroot-prepare", &bins.sealroot_prepare, 0o755)
    }

    /// Chooses how the archive is stored (default: uncompressed).
    pub fn compression(mut self, compression: Compression) -> Initramfs {
        self.compression = compression;
        self
    }

    /// The paths in the image, in archive order (without the leading `/`).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Writes the archive to `dest` (atomically); returns its size.
    pub fn write_to(&self, dest: &Path) -> Result<u64> {
        let bytes = self.to_bytes()?;
        host::write_atomic(dest, &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// The archive's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let cpio = self.cpio()?;
        match self.compression {
            Compression::None => Ok(cpio),
            Compression::Gzip => {
                let mut gz = flate2::GzBuilder::new()
                    .mtime(0)
                    .write(Vec::new(), flate2::Compression::default());
                gz.write_all(&cpio)
                    .and_then(|()| gz.finish())
                    .map_err(|e| Error::Invalid(format!("gzip of the initramfs failed: {e}")))
            }
        }
    }

    fn insert(mut self, path: &str, entry: Entry) -> Initramfs {
        let key = normalize(path);
        // Create missing parents as plain directories.
        let mut parent = Path::new(&key).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            self.entries
                .entry(dir.to_string_lossy().into_owned())
                .or_insert(Entry::Dir { mode: 0o755 });
            parent = dir.parent();
        }
        self.entries.insert(key, entry);
        self
    }

    /// The uncompressed newc archive (the format the kernel unpacks, see
    /// Documentation/driver-api/early-userspace/buffer-format.rst).
    fn cpio(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for (ino, (name, entry)) in self.entries.iter().enumerate() {
            let (mode, data, rdev) = match entry {
                Entry::Dir { mode } => (S_IFDIR | mode, Vec::new(), (0, 0)),
                Entry::File { data, mode } => {
                    let bytes = match data {
                        Data::Bytes(bytes) => bytes.clone(),
                        Data::Host(path) => {
                            fs::read(path).ctx("cannot read file for the initramfs", path)?
                        }
                    };
                    (S_IFREG | mode, bytes, (0, 0))
                }
                Entry::Symlink { target } => (S_IFLNK | 0o777, target.clone().into_bytes(), (0, 0)),
                Entry::CharDevice { major, minor, mode } => {
                    (S_IFCHR | mode, Vec::new(), (*major, *minor))
                }
            };
            let size = u32::try_from(data.len()).map_err(|_| {
                Error::Invalid(format!("initramfs entry {name} is larger than 4 GiB"))
            })?;
            let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
            let mut writer = cpio::newc::Builder::new(name)
                .ino(ino as u32 + 1)
                .mode(mode)
                .nlink(nlink)
                .rdev_major(rdev.0)
                .rdev_minor(rdev.1)
                .write(out, size);
            writer.write_all(&data).map_err(cpio_error)?;
            out = writer.finish().map_err(cpio_error)?;
        }
        cpio::newc::trailer(out).map_err(cpio_error)
    }
}

fn cpio_error(e: io::Error) -> Error {
    Error::Invalid(format!("writing the cpio archive failed: {e}"))
}

/// `/a/b/` -> `a/b`; `/` -> `.` (the root entry).
fn normalize(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        ".".into()
    } else {
        trimmed.to_string()
    }
}

/// The host's static busybox and its applet names.
#[derive(Debug)]
pub struct Busybox {
    pub path: PathBuf,
    pub applets: Vec<String>,
}

/// Where a static busybox is, if there is one (`/bin/busybox` from
/// Debian's busybox-static, else `$PATH`).
pub fn busybox_path() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .chain(host::which("busybox"))
        .find(|p| bins::check_static(p).is_ok())
}

/// The static busybox and its applets (`busybox --list`), found once.
pub fn busybox() -> Result<&'static Busybox> {
    static BUSYBOX: OnceLock<Result<Busybox, String>> = OnceLock::new();
    BUSYBOX
        .get_or_init(|| find_busybox().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|msg| Error::Setup(msg.clone()))
}

fn find_busybox() -> Result<Busybox> {
    let path = busybox_path().ok_or_else(|| Error::Missing {
        what: "no statically linked busybox (/bin/busybox is missing or dynamically linked)".into(),
        fix: "apt-get install busybox-static".into(),
    })?;
    let output = host::run(Command::new(&path).arg("--list"), None)?;
    let applets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox")
        .map(str::to_owned)
        .collect();
    for needed in [
        "sh", "mount", "insmod", "base64", "poweroff", "mktemp", "setsid", "cttyhack",
    ] {
        if !applets.iter().any(|a| a == needed) {
            return Err(Error::Missing {
                what: format!(
                    "{} lacks the `{needed}` applet the test init uses",
                    path.display()
                ),
                fix:
                    "apt-get install busybox-static (Debian's build has every applet the bed needs)"
                        .into(),
            });
        }
    }
    Ok(Busybox { path, applets })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Initramfs {
        Initramfs::new()
            .file("/etc/hello", "hello\n", 0o644)
            .file("/bin/tool", vec![0u8, 1, 2, 3, 4], 0o755)
            .symlink("/bin/sh", "busybox")
            .char_device("/dev/console", 5, 1, 0o600)
            .dir("/var/empty", 0o700)
    }

    /// Reads an archive back with the cpio crate's reader.
    fn read_back(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut entries = Vec::new();
        let mut rest = bytes;
        loop {
            let mut reader = cpio::newc::Reader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            let name = reader.entry().name().to_string();
            let mode = reader.entry().mode();
            let mut data = Vec::new();
            io::Read::read_to_end(&mut reader, &mut data).unwrap();
            entries.push((name, mode, data));
            rest = reader.finish().unwrap();
        }
        entries
    }

    #[test]
    fn round_trip_with_parents_first() {
        let entries = read_back(&sample().to_bytes().unwrap());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                ".",
                "bin",
                "bin/sh",
                "bin/tool",
                "dev",
                "dev/console",
                "etc",
                "etc/hello",
                "var",
                "var/empty"
            ]
        );
        let find = |n: &str| entries.iter().find(|e| e.0 == n).unwrap();
        assert_eq!(find("etc/hello").2, b"hello\n");
        assert_eq!(find("etc/hello").1, S_IFREG | 0o644);
        assert_eq!(find("bin/tool").1, S_IFREG | 0o755);
        assert_eq!(find("bin/sh").2, b"busybox");
        assert_eq!(find("bin/sh").1, S_IFLNK | 0o777);
        assert_eq!(find("var/empty").1, S_IFDIR | 0o700);
        assert_eq!(find("dev/console").1, S_IFCHR | 0o600);
    }

    #[test]
    fn output_is_deterministic_and_gzip_round_trips() {
        let a = sample().to_bytes().unwrap();
        let b = sample().to_bytes().unwrap();
        assert_eq!(a, b);
        let gz = sample().compression(Compression::Gzip).to_bytes().unwrap();
        assert_eq!(
            gz,
            sample().compression(Compression::Gzip).to_bytes().unwrap()
        );
        let mut plain = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
        assert_eq!(plain, a);
    }

    #[test]
    fn gnu_cpio_lists_the_same_entries() {
        // Reference tool: GNU cpio, `cpio -itv --quiet` (package cpio).
        let cpio = host::tool("cpio", "cpio").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.cpio");
        sample().write_to(&archive).unwrap();
        let out = Command::new(cpio)
            .args(["-itv", "--quiet", "-F"])
            .arg(&archive)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        for needle in [
            "-rw-r--r--   1 root     root            6 Jan  1  1970 etc/hello",
            "lrwxrwxrwx   1 root     root            7 Jan  1  1970 bin/sh -> busybox",
            "crw-------   1 root     root       5,   1 Jan  1  1970 dev/console",
            "drwx------   2 root     root            0 Jan  1  1970 var/empty",
        ] {
            assert!(listing.contains(needle), "missing {needle:?} in\n{listing}");
        }
    }

    #[test]
    fn later_entries_replace_earlier_ones_and_mounts_accumulate() {
        let image = Initramfs::new()
            .file("/etc/x", "one", 0o644)
            .file("/etc/x", "two", 0o600)
            .mount("/dev/vda", "/a", "ext4", "")
            .mount("/dev/vdb", "/b", "ext4", "ro");
        let entries = read_back(&image.to_bytes().unwrap());
        let find = |n: &str| entries.iter().find(|e| e.0 == n).unwrap().clone();
        assert_eq!(find("etc/x").2, b"two");
        assert_eq!(find("etc/x").1, S_IFREG | 0o600);
        assert_eq!(
            find("etc/bed/mounts").2,
            b"/dev/vda /a ext4 defaults\n/dev/vdb /b ext4 ro\n"
        );
    }
}
