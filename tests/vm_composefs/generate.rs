//! A generated directory tree of about `n` entries that a normal user can
//! create: directories up to several levels deep, regular files of sizes
//! around the inline limit and block boundaries (most small, a few up to
//! 300 kB, some sharing content), hardlinks, symlinks, fifos, user
//! xattrs, names with any byte but `/` and NUL, and mtimes with
//! nanoseconds. Sizes are kept modest: the VM hashes everything twice
//! under TCG.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use crate::common::trees::{Rng, name};

/// What was made, for the test's own bookkeeping.
#[derive(Debug, Default)]
pub struct Made {
    pub entries: usize,
    pub dirs: usize,
    pub files: usize,
    pub bytes: u64,
    pub hardlinks: usize,
}

pub fn directory(seed: u64, root: &Path, n: usize) -> Made {
    let mut rng = Rng::new(seed);
    let mut made = Made::default();
    fs::create_dir(root).unwrap();
    let mut dirs = vec![root.to_path_buf()];
    let mut files: Vec<PathBuf> = Vec::new();
    let mut created = Vec::new();
    let shared: Vec<Vec<u8>> = (0..4).map(|i| rng.bytes(1000 + i * 3000)).collect();
    while made.entries < n {
        // Prefer recent directories a little, for depth.
        let parent = if rng.chance(50) {
            dirs[dirs.len() - 1 - rng.below(dirs.len().min(8) as u64) as usize].clone()
        } else {
            rng.pick(&dirs).clone()
        };
        let path = parent.join(OsStr::from_bytes(&name(&mut rng, true)));
        // Paths stay well below PATH_MAX (4096), for stat(1) in the VM.
        if path.as_os_str().len() > 3000 || path.symlink_metadata().is_ok() {
            continue;
        }
        match rng.below(100) {
            0..=11 => {
                fs::create_dir(&path).unwrap();
                dirs.push(path.clone());
                made.dirs += 1;
            }
            12..=20 => {
                let target = name(&mut rng, true);
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).unwrap();
            }
            21..=23 => {
                rustix::fs::mknodat(CWD, &path, FileType::Fifo, Mode::from_raw_mode(0o644), 0)
                    .unwrap();
            }
            24..=26 if !files.is_empty() => {
                fs::hard_link(rng.pick(&files), &path).unwrap();
                made.hardlinks += 1;
            }
            27..=33 => {
                let content = rng.pick(&shared).clone();
                fs::write(&path, &content).unwrap();
                made.bytes += content.len() as u64;
                files.push(path.clone());
            }
            _ => {
                let size = match rng.below(100) {
                    0..=4 => 0,
                    5..=44 => 1 + rng.below(64),
                    45..=79 => 65 + rng.below(4096 - 64),
                    80..=96 => *rng.pick(&[4096, 4097, 8191, 8192, 8193, 20_000, 65_536]),
                    _ => 65_537 + rng.below(240_000),
                } as usize;
                let content = rng.bytes(size);
                fs::write(&path, &content).unwrap();
                made.bytes += size as u64;
                files.push(path.clone());
            }
        }
        if !path.symlink_metadata().unwrap().file_type().is_symlink() {
            use std::os::unix::fs::PermissionsExt;
            let is_dir = path.is_dir();
            let perm = if is_dir {
                *rng.pick(&[0o755, 0o750, 0o700, 0o1777, 0o2755])
            } else {
                *rng.pick(&[0o644, 0o600, 0o755, 0o444, 0o640, 0o4755, 0o2711])
            };
            fs::set_permissions(&path, fs::Permissions::from_mode(perm)).unwrap();
        }
        made.entries += 1;
        made.files = files.len();
        created.push(path);
    }
    // user.* xattrs only go on regular files and directories.
    for path in created.iter().chain([&root.to_path_buf()]) {
        let md = path.symlink_metadata().unwrap();
        if !(md.is_file() || md.is_dir()) || !rng.chance(15) {
            continue;
        }
        for i in 0..1 + rng.below(3) {
            let mut key = b"user.".to_vec();
            key.extend(format!("k{}", rng.below(20)).bytes());
            // One value may be long; all of them fit one 4 KiB ext4 block.
            let max = if i == 0 && rng.chance(5) { 2000 } else { 40 };
            let len = rng.below(max) as usize;
            let value = rng.bytes(len);
            rustix::fs::lsetxattr(path, key.as_slice(), &value, XattrFlags::empty()).unwrap();
        }
    }
    // mtimes last, deepest first (a child's creation changes its parent's).
    let mut all: Vec<&PathBuf> = created.iter().collect();
    let root = root.to_path_buf();
    all.push(&root);
    all.sort_by(|a, b| (b.components().count(), a).cmp(&(a.components().count(), b)));
    for path in all {
        let (sec, nsec) = match rng.below(4) {
            0 => (1_600_000_000, 0),
            1 => (
                1_600_000_000 + rng.below(1 << 28) as i64,
                rng.below(1_000_000_000) as u32,
            ),
            2 => (rng.below(1 << 33) as i64, rng.below(1_000_000_000) as u32),
            _ => (1_700_000_000 + rng.below(1000) as i64, 999_999_999),
        };
        let t = Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        };
        rustix::fs::utimensat(
            CWD,
            path,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    made
}
