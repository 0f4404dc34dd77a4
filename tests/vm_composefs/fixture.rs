//! The hand-made trees: a directory a normal user can create (every file
//! size class around the inline limit and block boundaries, duplicate
//! content, odd names, modes, symlinks, a fifo, user xattrs, mtimes with
//! nanoseconds), and dumpfiles for what only a dumpfile (or root) can
//! express: devices, sockets, foreign owners, security/trusted/ACL xattrs,
//! user `trusted.overlay.*` xattrs, hardlinks, whiteouts, extreme mtimes —
//! and broken objects.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};
use sealroot::verity::{FsVerityDigest, VerityParams, digest};

/// Deterministic bytes (content must be stable for digests to be).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = crate::common::trees::Rng::new(seed);
    rng.bytes(len)
}

/// `XX/rest-of-hex`, where an object store keeps content with this digest.
pub fn object_path(d: &FsVerityDigest) -> String {
    let hex = d.to_hex();
    format!("{}/{}", &hex[..2], &hex[2..])
}

pub fn digest_of(data: &[u8]) -> FsVerityDigest {
    digest::digest_bytes(&VerityParams::sha256(), data)
}

/// Escapes bytes for a dumpfile field: all but graphic ASCII as `\xNN`,
/// plus `\` and `=` (composefs-dump(5)).
pub fn esc(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\\' | b'=' => {
                let _ = write!(s, "\\x{b:02x}");
            }
            0x21..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

fn set_mtime(path: &Path, sec: i64, nsec: u32) {
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
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Content of the source directory's files by name (also used by the
/// dumpfiles, which point at the same objects).
pub const BIG: u64 = 300_000;

/// Builds the source directory at `root` (which must not exist). Every
/// entry gets its own mtime with nanoseconds; the root too.
pub fn source_dir(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let p = |name: &[u8]| root.join(std::ffi::OsStr::from_bytes(name));
    fs::create_dir(root).unwrap();
    for dir in [
        &b"sub"[..],
        b"sub/dir",
        b"sub/dir/deep",
        b"sticky",
        b"private",
        b"links",
        b"xattr-dir",
    ] {
        fs::create_dir(p(dir)).unwrap();
    }
    let files: &[(&[u8], Vec<u8>, u32)] = &[
        (b"empty", vec![], 0o644),
        (b"one", b"1".to_vec(), 0o600),
        (b"inline64", bytes(1, 64), 0o644),
        (b"ext65", bytes(2, 65), 0o644),
        (b"page", bytes(3, 4096), 0o644),
        (b"page-plus-one", bytes(4, 4097), 0o644),
        (b"big", bytes(5, BIG as usize), 0o644),
        (b"dup-a", bytes(6, 10_000), 0o644),
        (b"dup-b", bytes(6, 10_000), 0o444),
        (b"exec", bytes(7, 200), 0o755),
        (b"setuid", bytes(8, 100), 0o4755),
        (b"name with spaces", b"spaces\n".to_vec(), 0o644),
        (b"back\\slash=eq", b"escapes\n".to_vec(), 0o644),
        (b"-", b"dash\n".to_vec(), 0o644),
        (b"new\nline", b"newline\n".to_vec(), 0o644),
        (b"\xff\xfe not utf-8", b"latin\n".to_vec(), 0o644),
        (b"sub/dir/deep/file.txt", bytes(9, 5000), 0o640),
        (b"sticky/x", b"x".to_vec(), 0o644),
        (b"private/secret", bytes(10, 70), 0o600),
        (b"xattrs", bytes(11, 100), 0o644),
        (
            b"xattr-dir/inline",
            b"in a dir with xattrs\n".to_vec(),
            0o644,
        ),
    ];
    for (name, content, mode) in files {
        fs::write(p(name), content).unwrap();
        chmod(&p(name), *mode);
    }
    chmod(&p(b"sticky"), 0o1777);
    chmod(&p(b"private"), 0o700);
    let long_target = "a/".repeat(500);
    for (name, target) in [
        ("links/rel", "../one"),
        ("links/abs", "/etc/passwd"),
        ("links/dangling", "nowhere"),
        ("links/long", long_target.as_str()),
    ] {
        std::os::unix::fs::symlink(target, p(name.as_bytes())).unwrap();
    }
    rustix::fs::mknodat(
        CWD,
        p(b"fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    chmod(&p(b"fifo"), 0o640);
    for (name, key, value) in [
        (&b"xattrs"[..], &b"user.test"[..], &b"value"[..]),
        (b"xattrs", b"user.empty", b""),
        (b"xattrs", b"user.binary", b"\x00\x01\xff="),
        (b"xattrs", b"user.overlay.thing", b"not overlayfs' business"),
        (b"xattr-dir", b"user.dir", b"1"),
        (b"", b"user.root", b"on the root"),
    ] {
        rustix::fs::lsetxattr(p(name), key, value, XattrFlags::empty()).unwrap_or_else(|e| {
            panic!(
                "setting {} on {}: {e} (does the filesystem of $TMPDIR support user xattrs?)",
                String::from_utf8_lossy(key),
                p(name).display()
            )
        });
    }
    // mtimes last, children before their directories.
    let mut all: Vec<std::path::PathBuf> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        all.push(dir.clone());
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.symlink_metadata().unwrap().is_dir() {
                stack.push(path);
            } else {
                all.push(path);
            }
        }
    }
    // Deepest first, then by name: deterministic times.
    all.sort_by(|a, b| (b.components().count(), a).cmp(&(a.components().count(), b)));
    for (i, path) in all.iter().enumerate() {
        let i = i as i64;
        set_mtime(
            path,
            1_700_000_000 + i * 3_600,
            ((i * 123_456_789 + 1) % 1_000_000_000) as u32,
        );
    }
}

/// A regular file line: inline up to 64 bytes, else external with the
/// content's digest (the object must be in the store).
fn file_line(
    out: &mut String,
    path: &str,
    content: &[u8],
    (mode, nlink): (u32, u32),
    owner: (u32, u32),
    mtime: &str,
    xattrs: &str,
) {
    if content.len() <= 64 {
        let c = if content.is_empty() {
            "-".into()
        } else {
            esc(content)
        };
        let _ = writeln!(
            out,
            "{path} {} {mode:o} {nlink} {} {} 0 {mtime} - {c} -{xattrs}",
            content.len(),
            owner.0,
            owner.1
        );
    } else {
        let d = digest_of(content);
        let _ = writeln!(
            out,
            "{path} {} {mode:o} {nlink} {} {} 0 {mtime} {} - {}{xattrs}",
            content.len(),
            owner.0,
            owner.1,
            object_path(&d),
            d.to_hex()
        );
    }
}

/// `security.capability`, VFS_CAP_REVISION_2 with the effective flag:
/// permitted = CAP_NET_BIND_SERVICE (include/uapi/linux/capability.h).
fn capability() -> Vec<u8> {
    let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
    for word in [1u32 << 10, 0, 0, 0] {
        v.extend_from_slice(&word.to_le_bytes());
    }
    v
}

/// `system.posix_acl_access`: user::rw- user:1000:r-- group::r-- mask::r--
/// other::--- (include/uapi/linux/posix_acl_xattr.h, version 2, entries
/// sorted by tag as the kernel keeps them).
fn acl() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 1000),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

pub fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

/// The dumpfile of things a directory made by a normal user cannot hold.
/// Its external files use the source directory's contents ([`BIG`] and
/// the 4097-byte file), so the directory's object store serves both.
pub fn privileged_dump() -> String {
    let mut d = String::new();
    let selinux = esc(b"system_u:object_r:root_t:s0\0");
    let _ = writeln!(
        d,
        "/ 4096 40755 7 0 0 0 1700000100.100000001 - - - security.selinux={selinux}"
    );
    let _ = writeln!(d, "/dev 4096 40755 2 0 0 0 1700000101.1 - - -");
    for (name, ty, major, minor, mode) in [
        ("null", 0o020000u32, 1u64, 3u64, 0o666u32),
        ("sda1", 0o060000, 8, 1, 0o660),
        ("wide", 0o020000, 300, 70_000, 0o600),
        ("wide-block", 0o060000, 4095, 1_048_575, 0o600),
    ] {
        let _ = writeln!(
            d,
            "/dev/{name} 0 {:o} 1 0 6 {} 1700000102.{major} - - -",
            ty | mode,
            makedev(major, minor)
        );
    }
    let _ = writeln!(d, "/dev/fifo 0 10644 1 0 0 0 1700000103.3 - - -");
    let _ = writeln!(d, "/dev/socket 0 140777 1 0 0 0 1700000104.4 - - -");
    let _ = writeln!(d, "/owners 4096 40755 2 0 0 0 1700000105.5 - - -");
    file_line(
        &mut d,
        "/owners/user",
        b"owned by 1000\n",
        (0o100644, 1),
        (1000, 1000),
        "1700000106.6",
        "",
    );
    file_line(
        &mut d,
        "/owners/big-ids",
        b"",
        (0o100600, 1),
        (70_000, 70_001),
        "1700000107.7",
        "",
    );
    file_line(
        &mut d,
        "/owners/nobody",
        &bytes(4, 4097),
        (0o100640, 1),
        (65_534, 65_534),
        "1700000108.8",
        "",
    );
    let _ = writeln!(
        d,
        "/owners/dir-1000 4096 40750 2 1000 100 0 1700000109.9 - - -"
    );
    let _ = writeln!(
        d,
        "/xattrs 4096 40755 2 0 0 0 1700000110.10 - - - trusted.overlay.opaque=y"
    );
    let xattrs = format!(
        " user.a=1 security.selinux={selinux} security.capability={} trusted.overlay.redirect=/elsewhere trusted.overlay.custom={} trusted.plain=t user.overlay.opaque=y",
        esc(&capability()),
        esc(b"\x00\xffbinary=")
    );
    file_line(
        &mut d,
        "/xattrs/file",
        b"hello\n",
        (0o100755, 1),
        (0, 0),
        "1700000111.11",
        &xattrs,
    );
    file_line(
        &mut d,
        "/xattrs/acl",
        b"acl\n",
        (0o100640, 1),
        (0, 0),
        "1700000112.12",
        &format!(" system.posix_acl_access={}", esc(&acl())),
    );
    let _ = writeln!(
        d,
        "/xattrs/link 7 120777 1 0 0 0 1700000113.13 ../file - - trusted.symlink=t"
    );
    let _ = writeln!(d, "/links 4096 40755 2 0 0 0 1700000114.14 - - -");
    file_line(
        &mut d,
        "/links/data",
        &bytes(5, BIG as usize),
        (0o100644, 2),
        (0, 0),
        "1700000115.15",
        " user.shared=1",
    );
    let _ = writeln!(d, "/links/data-again 0 @100644 0 0 0 0 0.0 /links/data - -");
    file_line(
        &mut d,
        "/links/small",
        b"abc",
        (0o100600, 2),
        (0, 0),
        "1700000116.16",
        "",
    );
    let _ = writeln!(
        d,
        "/links/small-again 0 @100644 0 0 0 0 0.0 /links/small - -"
    );
    let _ = writeln!(d, "/whiteouts 4096 40755 2 0 0 0 1700000117.17 - - -");
    let _ = writeln!(d, "/whiteouts/gone 0 20000 1 0 0 0 1700000118.18 - - -");
    file_line(
        &mut d,
        "/whiteouts/kept",
        b"kept\n",
        (0o100644, 1),
        (0, 0),
        "1700000119.19",
        "",
    );
    let _ = writeln!(d, "/times 4096 40755 2 0 0 0 1700000120.20 - - -");
    file_line(
        &mut d,
        "/times/ns",
        b"",
        (0o100644, 1),
        (0, 0),
        "1234567890.999999999",
        "",
    );
    file_line(
        &mut d,
        "/times/epoch",
        b"",
        (0o100644, 1),
        (0, 0),
        "0.0",
        "",
    );
    file_line(
        &mut d,
        "/times/y2100",
        b"",
        (0o100644, 1),
        (0, 0),
        "4102444800.1",
        "",
    );
    file_line(
        &mut d,
        "/times/y2500",
        b"",
        (0o100644, 1),
        (0, 0),
        "16725225600.500000000",
        "",
    );
    d
}

/// Contents of the broken-objects image: one good object, one missing,
/// one replaced by other bytes of the same size (with fs-verity, enabled
/// in the VM), one intact but without fs-verity, and an inline file.
pub struct Broken {
    pub good: Vec<u8>,
    pub missing: Vec<u8>,
    pub tampered: Vec<u8>,
    pub tampered_with: Vec<u8>,
    pub unsealed: Vec<u8>,
}

impl Broken {
    pub fn new() -> Broken {
        Broken {
            good: bytes(20, 10_000),
            missing: bytes(21, 5000),
            tampered: bytes(22, 5000),
            tampered_with: bytes(23, 5000),
            unsealed: bytes(24, 5000),
        }
    }

    pub fn dump(&self) -> String {
        let mut d = String::from("/ 4096 40755 2 0 0 0 1700000000.0 - - -\n");
        for (name, content) in [
            ("good", &self.good),
            ("missing", &self.missing),
            ("tampered", &self.tampered),
            ("unsealed", &self.unsealed),
        ] {
            file_line(
                &mut d,
                &format!("/{name}"),
                content,
                (0o100644, 1),
                (0, 0),
                "1700000000.0",
                "",
            );
        }
        file_line(
            &mut d,
            "/inline",
            b"inline content\n",
            (0o100644, 1),
            (0, 0),
            "1700000000.0",
            "",
        );
        d
    }

    /// Writes the object store for [`Broken::dump`] under `store`.
    pub fn write_store(&self, store: &Path) {
        for (digest_of_content, bytes) in [
            (&self.good, &self.good),
            (&self.tampered, &self.tampered_with),
            (&self.unsealed, &self.unsealed),
        ] {
            let path = store.join(object_path(&digest_of(digest_of_content)));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, bytes).unwrap();
        }
    }
}
