//! Disk images for the VM: ext4 with fs-verity support, built from a host
//! directory without root or loop devices, and read back after a boot.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::host;

/// One MiB, for image sizes.
pub const MIB: u64 = 1024 * 1024;

/// A raw disk image on the host, attached to a VM as a virtio disk
/// (`/dev/vda`, `/dev/vdb`, ... in attach order). When the bed created it in
/// a temporary directory, the directory lives as long as any clone.
#[derive(Debug, Clone)]
pub struct DiskImage {
    path: PathBuf,
    _dir: Option<Arc<tempfile::TempDir>>,
}

/// Builds an ext4 image of `size` bytes holding a copy of `dir` (in a new
/// temporary directory). See [`DiskImage::ext4_at`].
pub fn ext4_image(dir: &Path, size: u64) -> Result<DiskImage> {
    let tmp = tempfile::Builder::new()
        .prefix("sealroot-disk-")
        .tempdir()
        .ctx("cannot create a temporary directory", Path::new("/tmp"))?;
    let mut image = DiskImage::ext4_at(&tmp.path().join("disk.ext4"), Some(dir), size)?;
    image._dir = Some(Arc::new(tmp));
    Ok(image)
}

/// An empty ext4 image of `size` bytes, with fs-verity enabled.
pub fn empty_ext4_image(size: u64) -> Result<DiskImage> {
    let empty =
        tempfile::tempdir().ctx("cannot create a temporary directory", Path::new("/tmp"))?;
    ext4_image(empty.path(), size)
}

impl DiskImage {
    /// Uses an existing raw image file.
    pub fn open(path: impl Into<PathBuf>) -> DiskImage {
        DiskImage {
            path: path.into(),
            _dir: None,
        }
    }

    /// Creates `dest` as an ext4 filesystem of `size` bytes, 4 KiB blocks
    /// and the `verity` feature, filled from `src` when given:
    /// `mkfs.ext4 -q -F -b 4096 -O verity -E root_owner=0:0 -d SRC DEST`.
    /// The block size must be at least the Merkle tree block size used
    /// with FS_IOC_ENABLE_VERITY, or the kernel answers EINVAL. Ownership
    /// of files below the root is copied from `src` (as root: as is; as a
    /// normal user: that user's ids); the VM runs as root either way.
    pub fn ext4_at(dest: &Path, src: Option<&Path>, size: u64) -> Result<DiskImage> {
        let mkfs = host::tool("mkfs.ext4", "e2fsprogs")?;
        let file = fs::File::create(dest).ctx("cannot create disk image", dest)?;
        file.set_len(size).ctx("cannot size disk image", dest)?;
        drop(file);
        let mut cmd = Command::new(mkfs);
        cmd.args([
            "-q",
            "-F",
            "-b",
            "4096",
            "-O",
            "verity",
            "-E",
            "root_owner=0:0",
        ]);
        if let Some(src) = src {
            cmd.arg("-d").arg(src);
        }
        cmd.arg(dest);
        host::run(
            &mut cmd,
            Some("mkfs.ext4 needs e2fsprogs >= 1.45 (for -d and -O verity)"),
        )?;
        Ok(DiskImage::open(dest))
    }

    /// A copy of the image at `dest` (sparse, reflinked where the
    /// filesystem can), for a test or a demo step that alters its disk.
    pub fn copy_to(&self, dest: &Path) -> Result<DiskImage> {
        host::run(
            Command::new("cp")
                .args(["--sparse=always", "--reflink=auto"])
                .arg(&self.path)
                .arg(dest),
            None,
        )?;
        Ok(DiskImage::open(dest))
    }

    /// The image file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a file out of the (unmounted) ext4 image:
    /// `debugfs -R 'dump -p PATH OUT' IMAGE`. The VM must have unmounted
    /// the filesystem cleanly (the test init does), as debugfs does not
    /// replay the journal.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        check_debugfs_path(path)?;
        let tmp =
            tempfile::tempdir().ctx("cannot create a temporary directory", Path::new("/tmp"))?;
        let out = tmp.path().join("dump");
        let output = self.debugfs(&format!("dump -p \"{path}\" \"{}\"", out.display()))?;
        if !out.is_file() {
            return Err(Error::Assertion(format!(
                "{path} is not in disk image {}: {}",
                self.path.display(),
                debugfs_errors(&output)
            )));
        }
        fs::read(&out).ctx("cannot read", &out)
    }

    /// Reads a file out of the image as UTF-8 text.
    pub fn read_to_string(&self, path: &str) -> Result<String> {
        let bytes = self.read_file(path)?;
        String::from_utf8(bytes).map_err(|_| {
            Error::Assertion(format!("{path} in {} is not UTF-8", self.path.display()))
        })
    }

    /// Names in a directory of the image (without `.` and `..`), sorted.
    pub fn list_dir(&self, path: &str) -> Result<Vec<String>> {
        check_debugfs_path(path)?;
        let output = self.debugfs(&format!("ls -p \"{path}\""))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        // `ls -p` lines: /inode/mode/uid/gid/name/size/
        let mut names: Vec<String> = stdout
            .lines()
            .filter_map(|line| line.split('/').nth(5).map(str::to_owned))
            .filter(|name| name != "." && name != "..")
            .collect();
        if names.is_empty() && !stdout.contains("/./") {
            return Err(Error::Assertion(format!(
                "{path} is not a directory in disk image {}: {}",
                self.path.display(),
                debugfs_errors(&output)
            )));
        }
        names.sort();
        Ok(names)
    }

    /// Flips one byte of `path`'s data directly in the image, below ext4 and
    /// fs-verity, the way an attacker with the disk would: the byte at
    /// `offset` of the file's first block (`debugfs -R "bmap PATH 0"`). The
    /// filesystem must be unmounted; returns the image offset changed.
    pub fn corrupt_byte(&self, path: &str, offset: u64) -> Result<u64> {
        use std::os::unix::fs::FileExt;
        check_debugfs_path(path)?;
        let output = self.debugfs(&format!("bmap \"{path}\" 0"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let block: u64 = text
            .trim()
            .parse()
            .ok()
            .filter(|&b| b != 0)
            .ok_or_else(|| {
                Error::Assertion(format!(
                    "{path} has no first data block in disk image {}: {}",
                    self.path.display(),
                    debugfs_errors(&output)
                ))
            })?;
        let block_size = self.block_size()?;
        if offset >= block_size {
            return Err(Error::Invalid(format!(
                "offset {offset} is outside the first {block_size}-byte block of {path}"
            )));
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .ctx("cannot open disk image", &self.path)?;
        let at = block * block_size + offset;
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, at)
            .ctx("cannot read disk image", &self.path)?;
        byte[0] ^= 0x55;
        file.write_all_at(&byte, at)
            .ctx("cannot write disk image", &self.path)?;
        Ok(at)
    }

    /// The superblock as `dumpe2fs -h` prints it.
    fn superblock(&self) -> Result<String> {
        let dumpe2fs = host::tool("dumpe2fs", "e2fsprogs")?;
        let output = host::run(Command::new(dumpe2fs).arg("-h").arg(&self.path), None)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The filesystem's block size (`dumpe2fs -h`).
    fn block_size(&self) -> Result<u64> {
        self.superblock()?
            .lines()
            .find_map(|l| l.strip_prefix("Block size:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "dumpe2fs -h {}: no block size",
                    self.path.display()
                ))
            })
    }

    /// The superblock's feature list (`dumpe2fs -h`), e.g. contains `verity`.
    pub fn ext4_features(&self) -> Result<Vec<String>> {
        let text = self.superblock()?;
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("Filesystem features:"))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "dumpe2fs -h {}: no feature list",
                    self.path.display()
                ))
            })?;
        Ok(line.split_whitespace().map(str::to_owned).collect())
    }

    /// Checks the filesystem without changing it (`e2fsck -fn`): proves the
    /// VM left it consistent and cleanly unmounted.
    pub fn fsck(&self) -> Result<()> {
        let e2fsck = host::tool("e2fsck", "e2fsprogs")?;
        host::run(
            Command::new(e2fsck).arg("-fn").arg(&self.path),
            Some("the VM left the filesystem inconsistent or not cleanly unmounted"),
        )
        .map(drop)
    }

    fn debugfs(&self, request: &str) -> Result<std::process::Output> {
        let debugfs = host::tool("debugfs", "e2fsprogs")?;
        host::run(
            Command::new(debugfs).arg("-R").arg(request).arg(&self.path),
            None,
        )
    }
}

fn check_debugfs_path(path: &str) -> Result<()> {
    if !path.starts_with('/') || path.contains(['"', '\n']) {
        return Err(Error::Invalid(format!(
            "disk image paths must be absolute and free of quotes and newlines: {path:?}"
        )));
    }
    Ok(())
}

/// debugfs reports errors on stderr after its version banner, exit code 0.
fn debugfs_errors(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext4_image_round_trips_through_debugfs() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("sub dir")).unwrap();
        fs::write(src.path().join("sub dir/file"), b"\x00binary\xff").unwrap();
        fs::write(src.path().join("hello"), "hello\n").unwrap();
        let image = ext4_image(src.path(), 16 * MIB).unwrap();
        assert_eq!(fs::metadata(image.path()).unwrap().len(), 16 * MIB);
        assert!(image.ext4_features().unwrap().iter().any(|f| f == "verity"));
        assert_eq!(image.read_to_string("/hello").unwrap(), "hello\n");
        assert_eq!(image.read_file("/sub dir/file").unwrap(), b"\x00binary\xff");
        assert_eq!(
            image.list_dir("/").unwrap(),
            ["hello", "lost+found", "sub dir"]
        );
        image.fsck().unwrap();
        let err = image.read_file("/nope").unwrap_err().to_string();
        assert!(
            err.contains("/nope is not in disk image") && err.contains("File not found"),
            "{err}"
        );
        let err = image.list_dir("/hello/x").unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
    }
}
