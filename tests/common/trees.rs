//! Random composefs trees, as dumpfiles and as directories on disk, from a
//! seed (proptest supplies and shrinks the seeds; a failure names its seed).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// xorshift64*: small, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn esc(out: &mut String, bytes: &[u8], equal: bool) {
    if bytes == b"-" {
        out.push_str("\\x2d");
        return;
    }
    for &c in bytes {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'=' if equal => out.push_str("\\x3d"),
            0x21..=0x7e => out.push(c as char),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
}

/// A file name: mostly tame, sometimes full of bytes that need escaping,
/// sometimes long, sometimes one of the root whiteout names.
pub fn name(rng: &mut Rng, on_disk: bool) -> Vec<u8> {
    let n = raw_name(rng, on_disk);
    if n == b"." || n == b".." {
        b"dot".to_vec()
    } else {
        n
    }
}

fn raw_name(rng: &mut Rng, on_disk: bool) -> Vec<u8> {
    match rng.below(10) {
        0 => {
            let max = if rng.chance(20) { 255 } else { 12 };
            let len = 1 + rng.below(max) as usize;
            let mut n: Vec<u8> = rng
                .bytes(len)
                .into_iter()
                .filter(|&b| b != b'/' && b != 0)
                .collect();
            if n.is_empty() || n == b"." || n == b".." {
                n = b"x".to_vec();
            }
            n
        }
        1 => format!("{:02x}", rng.below(256)).into_bytes(),
        2 => rng
            .pick(&[
                &b"-"[..],
                b"a b",
                b"=",
                b"a=b",
                b"\\",
                b"..a",
                b".hidden",
                b"#",
                b"!",
            ])
            .to_vec(),
        _ if on_disk || rng.chance(50) => {
            let len = 1 + rng.below(16) as usize;
            (0..len)
                .map(|_| *rng.pick(b"abcdefghijklmnopqrstuvwxyz0123456789_.-"))
                .collect::<Vec<u8>>()
        }
        _ => format!("f{}", rng.below(1000)).into_bytes(),
    }
}

const XATTR_POOL: &[(&[u8], &[u8])] = &[
    (b"security.selinux", b"system_u:object_r:usr_t:s0\0"),
    (b"security.selinux", b"system_u:object_r:bin_t:s0\0"),
    (b"user.shared", b"same"),
    (b"trusted.overlay.opaque", b"y"),
    (b"trusted.overlay.redirect", b"/elsewhere"),
    (b"user.overlay.opaque", b"y"),
    (b"system.posix_acl_access", b"\x02\0\0\0\x01\0\x06\0\xff\xff\xff\xff\x04\0\x04\0\xff\xff\xff\xff\x20\0\x04\0\xff\xff\xff\xff"),
    (b"security.capability", b"\x01\0\0\x02\0\x20\0\0\0\0\0\0\0\0\0\0\0\0\0\0"),
    (b"trusted.x", b""),
    (b"system.nfs4_acl", b"z"),
];

fn xattrs(rng: &mut Rng) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for _ in 0..rng.below(5) {
        let (n, val) = if rng.chance(70) {
            let (n, v) = rng.pick(XATTR_POOL);
            (n.to_vec(), v.to_vec())
        } else {
            const PREFIXES: [&[u8]; 5] = [
                b"user.",
                b"trusted.",
                b"security.",
                b"trusted.overlay.",
                b"user.overlay.",
            ];
            let mut n = rng.pick(&PREFIXES).to_vec();
            let mut suffix = name(rng, true);
            // Escaping adds 8 bytes ("overlay."); keep within XATTR_NAME_MAX.
            suffix.truncate(200);
            n.extend(suffix);
            let max = if rng.chance(5) { 3000 } else { 40 };
            let len = rng.below(max) as usize;
            (n, rng.bytes(len))
        };
        if !v.iter().any(|(m, _)| *m == n) {
            v.push((n, val));
        }
    }
    v
}

fn mtime(rng: &mut Rng) -> (i64, u32) {
    match rng.below(4) {
        0 => (1_600_000_000, 0),
        1 => (
            1_600_000_000 + rng.below(100) as i64,
            rng.below(1_000_000_000) as u32,
        ),
        2 => (rng.below(1 << 33) as i64, 0),
        _ => (1_600_000_000, 0),
    }
}

fn inline_size(rng: &mut Rng) -> usize {
    *rng.pick(&[
        1, 2, 63, 64, 65, 100, 2047, 2048, 2049, 4000, 4095, 4096, 4097, 5000,
    ]) as usize
}

/// A random dumpfile of about `n` entries.
pub fn dumpfile(seed: u64, n: usize) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::new();
    let mut dirs: Vec<String> = vec![String::new()];
    let mut files: Vec<String> = Vec::new();
    let line_tail = |rng: &mut Rng, out: &mut String| {
        for (k, v) in xattrs(rng) {
            out.push(' ');
            esc(out, &k, true);
            out.push('=');
            esc(out, &v, true);
        }
        out.push('\n');
    };
    let (s, ns) = mtime(&mut rng);
    let _ = write!(out, "/ 4096 40755 2 0 0 0 {s}.{ns} - - -");
    line_tail(&mut rng, &mut out);
    let mut used = std::collections::HashSet::new();
    for _ in 0..n {
        let parent = rng.pick(&dirs).clone();
        let nm = name(&mut rng, false);
        let mut path = parent.clone();
        path.push('/');
        esc(&mut path, &nm, false);
        if !used.insert(path.clone()) {
            continue;
        }
        let (s, ns) = mtime(&mut rng);
        let uid = if rng.chance(10) {
            70000 + rng.below(1000)
        } else {
            rng.below(3) * 1000
        };
        let gid = if rng.chance(10) { 70000 } else { uid };
        let perm = 0o644 | rng.below(0o7777) as u32;
        let kind = rng.below(14);
        if kind == 0 && !files.is_empty() {
            let target = rng.pick(&files).clone();
            let _ = writeln!(out, "{path} 0 @100644 1 0 0 0 0.0 {target} - -");
            continue;
        }
        match kind {
            1 | 2 => {
                let _ = write!(
                    out,
                    "{path} 0 {:o} 2 {uid} {gid} 0 {s}.{ns} - - -",
                    0o40000 | (perm & 0o7777)
                );
                dirs.push(path.clone());
            }
            3 | 4 => {
                let size = inline_size(&mut rng);
                let c = rng.bytes(size);
                let _ = write!(
                    out,
                    "{path} {} {:o} 1 {uid} {gid} 0 {s}.{ns} - ",
                    c.len(),
                    0o100000 | perm
                );
                esc(&mut out, &c, false);
                out.push_str(" -");
                files.push(path.clone());
            }
            5..=7 => {
                let size = *rng.pick(&[
                    1u64,
                    65,
                    4096,
                    4097,
                    1 << 20,
                    123_456_789,
                    1 << 40,
                    (1 << 43) + 1,
                ]);
                let digest = hex::encode(rng.bytes(32));
                let payload = if rng.chance(80) {
                    format!("{}/{}", &digest[..2], &digest[2..])
                } else {
                    "-".into()
                };
                let d = if rng.chance(85) { digest } else { "-".into() };
                let nlink = 1 + rng.below(3);
                let _ = write!(
                    out,
                    "{path} {size} {:o} {nlink} {uid} {gid} 0 {s}.{ns} {payload} - {d}",
                    0o100000 | perm
                );
                files.push(path.clone());
            }
            8 => {
                let len = if rng.chance(10) {
                    4095
                } else {
                    1 + rng.below(100) as usize
                };
                let t: Vec<u8> = rng
                    .bytes(len)
                    .into_iter()
                    .map(|b| if b == 0 { b'z' } else { b })
                    .collect();
                let mut te = String::new();
                esc(&mut te, &t, false);
                let _ = write!(out, "{path} {len} 120777 1 {uid} {gid} 0 {s}.{ns} {te} - -");
            }
            9 => {
                let _ = write!(out, "{path} 0 20644 1 {uid} {gid} 0 {s}.{ns} - - -");
            }
            10 => {
                let ty = rng.pick(&[0o20000u32, 0o60000]);
                let rdev = 1 + rng.below(1 << 20);
                let _ = write!(
                    out,
                    "{path} 0 {:o} 1 {uid} {gid} {rdev} {s}.{ns} - - -",
                    ty | 0o600
                );
            }
            11 => {
                let ty = rng.pick(&[0o10000u32, 0o140000]);
                let _ = write!(
                    out,
                    "{path} 0 {:o} 1 {uid} {gid} 0 {s}.{ns} - - -",
                    ty | 0o600
                );
            }
            _ => {
                let _ = write!(
                    out,
                    "{path} 0 {:o} 1 {uid} {gid} 0 {s}.{ns} - - -",
                    0o100000 | perm
                );
                files.push(path.clone());
            }
        }
        line_tail(&mut rng, &mut out);
    }
    out
}

/// A random directory tree on disk under `root` (which must exist): files
/// of many sizes (small ones inline, large ones external, duplicates),
/// hard links, symlinks, fifos, devices, xattrs (`user.*`, `trusted.*`), and mtimes
/// with nanoseconds.
pub fn directory(seed: u64, root: &Path, n: usize) {
    use rustix::fs::{Mode, Timespec, Timestamps};
    let mut rng = Rng::new(seed);
    let mut dirs = vec![root.to_path_buf()];
    let mut created = Vec::new();
    let shared_content = rng.bytes(10_000);
    for _ in 0..n {
        let parent = rng.pick(&dirs).clone();
        let nm = name(&mut rng, true);
        let path = parent.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&nm));
        if path.symlink_metadata().is_ok() {
            continue;
        }
        let ok = match rng.below(10) {
            0 | 1 => std::fs::create_dir(&path)
                .map(|_| dirs.push(path.clone()))
                .is_ok(),
            2 => std::os::unix::fs::symlink(
                String::from_utf8_lossy(&name(&mut rng, true)).as_ref(),
                &path,
            )
            .is_ok(),
            3 => rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                rustix::fs::FileType::Fifo,
                Mode::from_raw_mode(0o644),
                0,
            )
            .is_ok(),
            4 => rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                *rng.pick(&[
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::FileType::BlockDevice,
                ]),
                Mode::from_raw_mode(0o600),
                rustix::fs::makedev(rng.below(300) as u32, rng.below(300) as u32),
            )
            .is_ok(),
            5 => std::fs::write(&path, &shared_content).is_ok(),
            _ => {
                let size = *rng.pick(&[0usize, 1, 64, 65, 4096, 4097, 100_000, 1 << 20]);
                std::fs::write(&path, rng.bytes(size)).is_ok()
            }
        };
        if ok {
            created.push(path);
        }
    }
    // Hard links to some regular files (mkcomposefs gives each link an
    // inode of its own; sealroot hashes the shared content once).
    let files: Vec<PathBuf> = created
        .iter()
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        .cloned()
        .collect();
    for _ in 0..n / 10 {
        if files.is_empty() {
            break;
        }
        let target = rng.pick(&files).clone();
        let parent = rng.pick(&dirs).clone();
        let nm = name(&mut rng, true);
        let link = parent.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&nm));
        if link.symlink_metadata().is_err() && std::fs::hard_link(&target, &link).is_ok() {
            created.push(link);
        }
    }
    for path in created.iter().chain([&root.to_path_buf()]) {
        for (k, v) in xattrs(&mut rng) {
            if k.starts_with(b"user.") || k.starts_with(b"trusted.") {
                // user.* is not allowed on symlinks and devices; ignore refusals.
                let _ =
                    rustix::fs::lsetxattr(path, k.as_slice(), &v, rustix::fs::XattrFlags::empty());
            }
        }
    }
    // mtimes last (children change their directory's mtime), deepest first.
    for path in created.iter().rev().chain([&root.to_path_buf()]) {
        let (s, ns) = mtime(&mut rng);
        let t = Timespec {
            tv_sec: s,
            tv_nsec: ns as _,
        };
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
    }
}
