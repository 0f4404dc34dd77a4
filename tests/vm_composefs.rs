//! The real kernel (Linux 6.12 in the test bed) mounts sealroot's
//! composefs images: EROFS file-backed (`sealroot mount`, no loop device)
//! and through a loop device (busybox `mount`), under overlayfs with
//! `metacopy=on,redirect_dir=on,verity=require` and the object store as a
//! data-only layer (`lowerdir=IMAGE::OBJECTS`).
//!
//! What the mount shows is compared on the host, per path, with the
//! source: the source directory as C mkcomposefs 1.0.8 reads it (the
//! reference tools), or the dumpfile as parsed. Inside the VM,
//! `sealroot mkcomposefs MOUNTPOINT` re-images the mounted tree (reading
//! every file through overlayfs, so the kernel checks every object's
//! fs-verity digest) and `find -print0` + `find -exec stat -c` list
//! inode numbers and metadata; see `vm_composefs/listing.rs`.
//!
//! Four boots (~15-35 s, ~40 s, ~30 s and ~85-105 s under TCG): the
//! hand-made trees (both mount paths, format versions 0 and 1, image
//! digests), broken objects, sha512 object digests, and a generated tree of 2,000 entries served from a
//! host-built object store and from one the VM fills itself on ext4
//! (`--digest-store` enabling fs-verity). `fsck.erofs` checks every
//! image, host-built or VM-built.

mod common;
#[path = "vm_composefs/fixture.rs"]
mod fixture;
#[path = "vm_composefs/generate.rs"]
mod generate;
#[path = "vm_composefs/listing.rs"]
mod listing;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use listing::{
    Listing, assert_same_entries, assert_stats, entry_differences, listing, parse_stats, presented,
    stat_differences,
};
use sealroot::dumpfile::{self, ParseOptions};
use sealroot::erofs::{self, WriteOptions, reader};
use sealroot::tree::Tree;
use sealroot_testbed::{
    BootLog, DiskImage, Initramfs, Kernel, MIB, Result, Vm, ext4_image, static_binaries,
};

/// Shell functions every scenario starts with.
const LIB: &str = r#"
export D=/mnt/disk
export OUT=$D/out
mkdir -p $OUT
# IMAGE MNT OBJECTS: EROFS straight from the file (sealroot mount, new mount API)
cfs_mount_file() { mkdir -p "$2" && /bin/sealroot mount --basedir "$3" "$1" "$2"; }
# IMAGE MNT OBJECTS: busybox mount sets up a loop device for a regular file
cfs_mount_loop() {
    mkdir -p "$2" "$2.erofs" &&
    mount -t erofs -o ro "$1" "$2.erofs" &&
    mount -t overlay composefs -o "ro,metacopy=on,redirect_dir=on,verity=require,lowerdir=$2.erofs::$3" "$2"
}
# NAME DIR: re-image the mounted tree; list names and stat lines (two
# walks of a read-only tree list it in the same order; busybox xargs -0
# garbles long names, so no xargs)
cfs_list() {
    /bin/sealroot mkcomposefs "$2" "$OUT/$1.cfs" &&
    (cd "$2" && find . -print0) > "$OUT/$1.names" &&
    (cd "$2" && find . -exec stat -c 'STAT_FORMAT' {} +) > "$OUT/$1.stat"
}
"#;

fn scenario(body: &str) -> String {
    LIB.replace("STAT_FORMAT", listing::STAT_FORMAT) + body
}

/// Runs the host `sealroot`, panicking with its stderr on failure; stdout.
fn sealroot<I: AsRef<OsStr>>(args: impl IntoIterator<Item = I>) -> String {
    let out = common::run(Command::new(env!("CARGO_BIN_EXE_sealroot")).args(args));
    String::from_utf8(out.stdout).unwrap()
}

fn fsck_erofs(image: &Path) {
    common::run(common::tool("fsck.erofs").arg(image));
}

/// C mkcomposefs's image of a directory, and its tree as composefs-info
/// dumps it: the expectation for anything made from that directory.
fn reference_image(src: &Path, dir: &Path) -> (Vec<u8>, Tree) {
    let image = dir.join("reference.cfs");
    common::run(common::tool("mkcomposefs").arg(src).arg(&image));
    let dump = common::run(common::tool("composefs-info").arg("dump").arg(&image)).stdout;
    let tree = dumpfile::parse_bytes(&dump, ParseOptions { strict: true }).unwrap();
    (fs::read(&image).unwrap(), tree)
}

fn parse_dump(text: &str) -> Tree {
    dumpfile::parse_bytes(text.as_bytes(), ParseOptions { strict: true }).unwrap()
}

/// A mount's re-image and stat lines, read back from the disk.
struct Seen {
    image: Vec<u8>,
    stats: Vec<(Vec<u8>, listing::StatLine)>,
}

fn seen(disk: &DiskImage, log: &BootLog, name: &str) -> Result<Seen> {
    log.result(&format!("list:{name}"))?.assert_ok()?;
    let image = disk.read_file(&format!("/out/{name}.cfs"))?;
    let names = disk.read_file(&format!("/out/{name}.names"))?;
    let stats = disk.read_to_string(&format!("/out/{name}.stat"))?;
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("view.cfs"), &image).unwrap();
    fsck_erofs(&dir.path().join("view.cfs"));
    Ok(Seen {
        stats: parse_stats(&names, &stats),
        image,
    })
}

/// What the re-image of a mount must list: the presented tree, through
/// the same image write/read round trip (which folds the presented
/// xwhiteouts back into whiteouts, as composefs readers do).
fn through_image(tree: &Tree) -> Listing {
    let bytes = erofs::image_bytes(tree, &WriteOptions::default()).unwrap();
    listing(&reader::read_tree(&bytes).unwrap())
}

fn assert_digest(log: &BootLog, name: &str, printed: &str) -> Result<()> {
    log.result(&format!("digest:{name}"))?
        .assert_ok()?
        .assert_stdout_eq(&format!("{}\n", printed.trim()))?;
    Ok(())
}

/// The mounts of the hand-made trees' images.
const MOUNTS: [&str; 6] = [
    "dir-file",
    "dir-loop",
    "dir-v1",
    "dump-file",
    "dump-loop",
    "dump-v0",
];

/// The hand-made trees through both mount paths and both format versions:
/// every file's content (inline and external), mode, owner, mtime with
/// nanoseconds, xattrs (user, security, trusted, ACL, and user
/// `trusted.overlay.*` ones the writer escapes and overlayfs unescapes),
/// symlink targets, device numbers, fifos and sockets read back as in the
/// source; hardlinks share one inode; whiteouts show as xwhiteouts that a
/// stacked overlayfs honours; each image's `--print-digest` is what the
/// kernel measures after `sealroot enable`.
#[test]
fn handmade_trees_read_back_through_both_mount_paths() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let tmp = tempfile::tempdir().unwrap();
    let (src, disk_dir) = (tmp.path().join("src"), tmp.path().join("disk"));
    let images = disk_dir.join("images");
    fs::create_dir_all(&images).unwrap();
    fixture::source_dir(&src);
    let dump_path = tmp.path().join("privileged.dump");
    let dump_text = fixture::privileged_dump();
    fs::write(&dump_path, &dump_text).unwrap();

    // Host: images and the object store, as users would make them.
    let store = format!("--digest-store={}", disk_dir.join("objects").display());
    let img = |name: &str| images.join(format!("{name}.cfs"));
    let mut printed = std::collections::BTreeMap::new();
    for (name, extra) in [
        ("dir", &[][..]),
        ("dir-v1", &["--min-version=1", "--max-version=1"][..]),
    ] {
        let mut args: Vec<&OsStr> = vec![
            "mkcomposefs".as_ref(),
            "--print-digest".as_ref(),
            store.as_ref(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        let out = img(name);
        args.extend([src.as_os_str(), out.as_os_str()]);
        printed.insert(name, sealroot(args));
    }
    for (name, extra) in [("dump", None), ("dump-v0", Some("--max-version=0"))] {
        let mut args: Vec<&OsStr> = vec![
            "mkcomposefs".as_ref(),
            "--print-digest".as_ref(),
            "--from-file".as_ref(),
        ];
        args.extend(extra.map(OsStr::new));
        let out = img(name);
        args.extend([dump_path.as_os_str(), out.as_os_str()]);
        printed.insert(name, sealroot(args));
    }
    for name in printed.keys() {
        fsck_erofs(&img(name));
    }
    // The expectations: the directory as C mkcomposefs reads it (our
    // image must already be byte-identical to it), the dumpfile as parsed.
    let (ref_image, ref_tree) = reference_image(&src, tmp.path());
    assert!(
        fs::read(img("dir")).unwrap() == ref_image,
        "dir.cfs differs from C mkcomposefs' image"
    );
    let dump_tree = parse_dump(&dump_text);
    // The format versions: 0 unless asked for 1 or holding a whiteout.
    for (name, version) in [("dir", 0), ("dir-v1", 1), ("dump", 1), ("dump-v0", 0)] {
        let sb = reader::superblock(&fs::read(img(name)).unwrap()).unwrap();
        assert_eq!(sb.version, version, "{name}.cfs");
    }

    let disk = ext4_image(&disk_dir, 64 * MIB)?;
    let body = r#"
bed_run enable-objects sh -c 'for f in $D/objects/*/*; do /bin/sealroot enable "$f" || exit 1; done'
for i in dir dir-v1 dump dump-v0; do
    bed_run digest:$i sh -c "/bin/sealroot enable $D/images/$i.cfs && /bin/sealroot measure --compact $D/images/$i.cfs"
done
bed_run mount:dir-file   cfs_mount_file $D/images/dir.cfs     /mnt/dir-file   $D/objects
bed_run mount:dir-loop   cfs_mount_loop $D/images/dir.cfs     /mnt/dir-loop   $D/objects
bed_run mount:dir-v1     cfs_mount_file $D/images/dir-v1.cfs  /mnt/dir-v1     $D/objects
bed_run mount:dump-file  cfs_mount_file $D/images/dump.cfs    /mnt/dump-file  $D/objects
bed_run mount:dump-loop  cfs_mount_loop $D/images/dump.cfs    /mnt/dump-loop  $D/objects
bed_run mount:dump-v0    cfs_mount_loop $D/images/dump-v0.cfs /mnt/dump-v0    $D/objects
bed_run mounts cat /proc/mounts
bed_run losetup losetup -a
bed_run erofs-log sh -c 'dmesg | grep -i erofs'
for m in dir-file dir-loop dir-v1 dump-file dump-loop dump-v0; do
    bed_run list:$m cfs_list $m /mnt/$m
done
# Another overlayfs stacked on a composefs mount honours its whiteouts.
mkdir -p /tmp/below/whiteouts && echo under > /tmp/below/whiteouts/gone && echo under > /tmp/below/whiteouts/other
for m in dump-loop dump-v0 dump-file; do
    bed_run stack:$m sh -c "mkdir -p /mnt/stack-$m && mount -t overlay stacked -o ro,lowerdir=/mnt/$m:/tmp/below /mnt/stack-$m && ls -a /mnt/stack-$m/whiteouts"
done
for m in stack-dump-loop stack-dump-v0 stack-dump-file dir-file dir-loop dir-v1 dump-file dump-loop dump-v0; do
    umount /mnt/$m 2>/dev/null; umount /mnt/$m.erofs 2>/dev/null
done
"#;
    let image = Initramfs::test(kernel, &scenario(body))?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .disk(&disk)
        .timeout(Duration::from_secs(300))
        .run()?;
    log.result("enable-objects")?.assert_ok()?;
    for (name, digest) in &printed {
        assert_digest(&log, name, digest)?;
    }
    for m in MOUNTS {
        log.result(&format!("mount:{m}"))?.assert_ok()?;
    }
    // Each image mounted through busybox holds one loop device; the
    // file-backed mounts of the same images hold none.
    let losetup = log.result("losetup")?.assert_ok()?.stdout.clone();
    for (image, n) in [
        ("dir.cfs", 1),
        ("dump.cfs", 1),
        ("dump-v0.cfs", 1),
        ("dir-v1.cfs", 0),
    ] {
        let found = losetup
            .lines()
            .filter(|l| l.ends_with(&format!("/images/{image}")))
            .count();
        assert_eq!(found, n, "loop devices for {image}:\n{losetup}");
    }
    let mounts = log.result("mounts")?.stdout.clone();
    for m in MOUNTS {
        let line = mounts
            .lines()
            .find(|l| l.contains(&format!(" /mnt/{m} overlay ")))
            .unwrap_or_else(|| panic!("no overlay at /mnt/{m}:\n{mounts}"));
        assert!(
            line.contains("verity=require") && line.contains("metacopy=on"),
            "{line}"
        );
    }
    // EROFS names its device: the loop device, or "erofs" when it reads
    // the image file itself.
    let erofs_log = log.result("erofs-log")?.stdout.clone();
    let count = |needle: &str| erofs_log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("erofs: (device erofs): mounted"), 3, "{erofs_log}");
    assert_eq!(count("erofs: (device loop"), 3, "{erofs_log}");

    // Directory images: the re-image of the mount is byte for byte C
    // mkcomposefs' image of the source; stat agrees with the source.
    let expected = listing(&ref_tree);
    for m in ["dir-file", "dir-loop", "dir-v1"] {
        let s = seen(&disk, &log, m)?;
        if s.image != ref_image {
            assert_same_entries(
                m,
                &expected,
                &listing(&reader::read_tree(&s.image).unwrap()),
            );
            panic!(
                "{m}: the re-image differs from C mkcomposefs' image, but not in any listed field"
            );
        }
        assert_stats(m, &expected, &s.stats);
    }
    // Dumpfile images: per path as the dumpfile says, hardlinks included.
    for (m, version) in [("dump-file", 1), ("dump-loop", 1), ("dump-v0", 0)] {
        let shown = presented(&dump_tree, version);
        let s = seen(&disk, &log, m)?;
        assert_same_entries(
            m,
            &through_image(&shown),
            &listing(&reader::read_tree(&s.image).unwrap()),
        );
        assert_stats(m, &listing(&shown), &s.stats);
    }
    // An overlayfs stacked on a composefs mount (over a layer holding
    // `whiteouts/gone` and `whiteouts/other`) honours the image's whiteout.
    // Format version 1 marks the directory `opaque=x`, so overlayfs also
    // drops the name from listings; with version 0 it only fails lookups:
    // `ls` sees the name, then cannot stat it.
    let listed = ".\n..\nkept\nother\n";
    for m in ["dump-loop", "dump-file"] {
        log.result(&format!("stack:{m}"))?
            .assert_ok()?
            .assert_stdout_eq(listed)?;
    }
    log.result("stack:dump-v0")?
        .assert_rc(1)?
        .assert_stdout_eq(listed)?
        .assert_stderr_contains("/mnt/stack-dump-v0/whiteouts/gone: No such file or directory")?;
    disk.fsck()?;
    Ok(())
}

/// Broken object stores, and the image digest as a mount condition:
/// - `sealroot mount --digest` refuses an image without fs-verity
///   (ENODATA) and one with another digest, and mounts the right one;
/// - an intact object with fs-verity reads back;
/// - a missing object: open fails with ENOENT;
/// - an object replaced by other bytes of the same size, with fs-verity:
///   open fails with EIO (the digest differs from the image's);
/// - an intact object without fs-verity: open fails with EIO, and the
///   kernel log says the file "has no fs-verity digest";
/// - stat works on all of them (metadata comes from the image), and
///   inline files (<= 64 bytes) read back with no objects at all.
#[test]
fn broken_objects_fail_to_open_and_inline_files_need_none() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let tmp = tempfile::tempdir().unwrap();
    let (src, disk_dir) = (tmp.path().join("src"), tmp.path().join("disk"));
    fs::create_dir_all(disk_dir.join("no-objects")).unwrap();
    fixture::source_dir(&src);
    let broken = fixture::Broken::new();
    broken.write_store(&disk_dir.join("bad-objects"));
    let dump_path = tmp.path().join("broken.dump");
    fs::write(&dump_path, broken.dump()).unwrap();
    let bad = disk_dir.join("bad.cfs");
    let digest = sealroot([
        "mkcomposefs".as_ref(),
        "--print-digest".as_ref(),
        "--from-file".as_ref(),
        dump_path.as_os_str(),
        bad.as_os_str(),
    ]);
    let dir_img = disk_dir.join("dir.cfs");
    sealroot([
        OsStr::new("mkcomposefs"),
        src.as_os_str(),
        dir_img.as_os_str(),
    ]);
    fsck_erofs(&bad);
    fsck_erofs(&dir_img);
    let object = |content: &[u8]| {
        format!(
            "$D/bad-objects/{}",
            fixture::object_path(&fixture::digest_of(content))
        )
    };
    let wrong = "0".repeat(64);
    // Inline files of the source directory (simple names, for the shell).
    let inline = ["one", "inline64", "sticky/x", "xattr-dir/inline", "-"];
    let external = ["ext65", "big", "dup-a"];

    let body = format!(
        r#"
bed_run enable:good /bin/sealroot enable {good}
bed_run enable:tampered /bin/sealroot enable {tampered}
mkdir -p /mnt/bad
bed_run mount:no-verity /bin/sealroot mount --digest {digest} --basedir $D/bad-objects $D/bad.cfs /mnt/bad
bed_run enable:image /bin/sealroot enable $D/bad.cfs
bed_run mount:wrong-digest /bin/sealroot mount --digest {wrong} --basedir $D/bad-objects $D/bad.cfs /mnt/bad
bed_run mount:right-digest /bin/sealroot mount --digest sha256:{digest} --basedir $D/bad-objects $D/bad.cfs /mnt/bad
bed_run sizes sh -c 'cd /mnt/bad && stat -c "%n %s" good missing tampered unsealed inline'
for f in good missing tampered unsealed inline; do
    dmesg -c > /dev/null
    bed_run read:$f sha256sum /mnt/bad/$f
    bed_value dmesg:$f "$(dmesg)"
done
mkdir -p /mnt/bare
bed_run mount:bare cfs_mount_file $D/dir.cfs /mnt/bare $D/no-objects
for f in {inline}; do bed_run inline:$f sha256sum "/mnt/bare/$f"; done
for f in {external}; do bed_run external:$f sha256sum "/mnt/bare/$f"; done
umount /mnt/bad; umount /mnt/bare
"#,
        good = object(&broken.good),
        tampered = object(&broken.tampered),
        digest = digest.trim(),
        inline = inline.join(" "),
        external = external.join(" "),
    );
    let disk = ext4_image(&disk_dir, 32 * MIB)?;
    let image = Initramfs::test(kernel, &scenario(&body))?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .disk(&disk)
        .timeout(Duration::from_secs(300))
        .run()?;

    log.result("enable:good")?.assert_ok()?;
    log.result("enable:tampered")?.assert_ok()?;
    log.result("mount:no-verity")?
        .assert_rc(1)?
        .assert_stderr_contains("ENODATA")?;
    log.result("enable:image")?.assert_ok()?;
    log.result("mount:wrong-digest")?
        .assert_rc(1)?
        .assert_stderr_contains(&format!(
            "has fs-verity digest sha256:{}, not the expected sha256:{wrong}",
            digest.trim()
        ))?;
    log.result("mount:right-digest")?.assert_ok()?;
    let sizes = format!(
        "good {}\nmissing {}\ntampered {}\nunsealed {}\ninline 15\n",
        broken.good.len(),
        broken.missing.len(),
        broken.tampered.len(),
        broken.unsealed.len()
    );
    log.result("sizes")?.assert_ok()?.assert_stdout_eq(&sizes)?;
    let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    log.result("read:good")?
        .assert_ok()?
        .assert_stdout_eq(&format!("{}  /mnt/bad/good\n", sha(&broken.good)))?;
    log.result("read:inline")?
        .assert_ok()?
        .assert_stdout_eq(&format!("{}  /mnt/bad/inline\n", sha(b"inline content\n")))?;
    log.result("read:missing")?
        .assert_rc(1)?
        .assert_stderr_contains("can't open '/mnt/bad/missing': No such file or directory")?;
    for f in ["tampered", "unsealed"] {
        log.result(&format!("read:{f}"))?
            .assert_rc(1)?
            .assert_stderr_contains(&format!("can't open '/mnt/bad/{f}': Input/output error"))?;
    }
    let tampered_hex = fixture::digest_of(&broken.tampered).to_hex();
    let dmesg = log.value("dmesg:tampered")?;
    assert!(
        dmesg.contains(&format!(
            "lower file '{}' has the wrong fs-verity digest",
            &tampered_hex[2..]
        )),
        "{dmesg}"
    );
    let dmesg = log.value("dmesg:missing")?;
    assert!(
        dmesg.contains("overlayfs: lazy lowerdata lookup failed (/missing, err=-2)"),
        "{dmesg}"
    );
    assert_eq!(log.value("dmesg:good")?, "");
    let unsealed_hex = fixture::digest_of(&broken.unsealed).to_hex();
    let dmesg = log.value("dmesg:unsealed")?;
    assert!(
        // overlayfs names the object by its file name (without the XX/ directory).
        dmesg.contains(&format!(
            "lower file '{}' has no fs-verity digest",
            &unsealed_hex[2..]
        )),
        "{dmesg}"
    );

    log.result("mount:bare")?.assert_ok()?;
    for f in inline {
        let content = fs::read(src.join(f)).unwrap();
        log.result(&format!("inline:{f}"))?
            .assert_ok()?
            .assert_stdout_eq(&format!("{}  /mnt/bare/{f}\n", sha(&content)))?;
    }
    for f in external {
        log.result(&format!("external:{f}"))?
            .assert_rc(1)?
            .assert_stderr_contains("No such file or directory")?;
    }
    Ok(())
}

/// sha512 object digests (composefs-rs repositories: `cfsctl init`
/// defaults to fsverity-sha512-12): the image records each object's
/// sha512 fs-verity digest in `trusted.overlay.metacopy` (`struct
/// ovl_metacopy`: version 0, len 4 + 64, flags 0, digest_algo 2) and the
/// redirect `/XX/<126 hex>`; overlayfs `verity=require`
/// (`ovl_validate_verity`) must open an object with that sha512 digest and
/// refuse, with EIO, one with other bytes, one whose fs-verity is sha256
/// (same content: the algorithm differs), and one without fs-verity.
#[test]
fn sha512_object_digests_are_checked_by_overlayfs() -> Result<()> {
    use sealroot::tree::{NewContent, Stat, Timestamp, mode};
    use sealroot::verity::{VerityParams, digest::digest_bytes};

    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let tmp = tempfile::tempdir().unwrap();
    let disk_dir = tmp.path().join("disk");
    let store = disk_dir.join("objects");
    let sha512 = |b: &[u8]| digest_bytes(&VerityParams::sha512(), b);
    let files: [(&str, Vec<u8>, Vec<u8>); 4] = [
        (
            "good",
            fixture::bytes(30, 10_000),
            fixture::bytes(30, 10_000),
        ),
        (
            "tampered",
            fixture::bytes(31, 5000),
            fixture::bytes(32, 5000),
        ),
        (
            "sha256-verity",
            fixture::bytes(33, 5000),
            fixture::bytes(33, 5000),
        ),
        (
            "unsealed",
            fixture::bytes(34, 5000),
            fixture::bytes(34, 5000),
        ),
    ];
    let dir_stat = Stat {
        mode: mode::S_IFDIR | 0o755,
        nlink: 2,
        mtime: Timestamp {
            sec: 1_700_000_000,
            nsec: 0,
        },
        ..Stat::default()
    };
    let mut tree = Tree::new(dir_stat).unwrap();
    for (name, content, on_disk) in &files {
        let digest = sha512(content);
        let path = fixture::object_path(&digest);
        assert_eq!(path.len(), 2 + 1 + 126);
        let stat = Stat {
            mode: mode::S_IFREG | 0o644,
            nlink: 1,
            size: content.len() as u64,
            mtime: dir_stat.mtime,
            ..Stat::default()
        };
        let id = tree
            .add_inode(
                stat,
                NewContent::External {
                    payload: Some(path.as_bytes()),
                    digest: Some(digest),
                },
            )
            .unwrap();
        tree.link(tree.root(), name.as_bytes(), id).unwrap();
        let object = store.join(&path);
        fs::create_dir_all(object.parent().unwrap()).unwrap();
        fs::write(&object, on_disk).unwrap();
    }
    let opts = WriteOptions {
        min_version: 1,
        max_version: 1,
    };
    let image = erofs::image_bytes(&tree, &opts).unwrap();
    // The reader takes the sha512 metacopy back (the root line differs
    // only by the directory size the writer computes).
    let files_of = |t: &Tree| {
        let dump = String::from_utf8(dumpfile::to_bytes(t)).unwrap();
        dump.lines().skip(1).map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(
        files_of(&reader::read_tree(&image).unwrap()),
        files_of(&tree)
    );
    fs::write(disk_dir.join("sha512.cfs"), &image).unwrap();
    fsck_erofs(&disk_dir.join("sha512.cfs"));
    let object = |name: &str| {
        let content = &files.iter().find(|f| f.0 == name).unwrap().1;
        format!("$D/objects/{}", fixture::object_path(&sha512(content)))
    };
    let body = format!(
        r#"
bed_run enable:good /bin/sealroot enable --hash-alg sha512 {good}
bed_run enable:tampered /bin/sealroot enable --hash-alg sha512 {tampered}
bed_run enable:sha256 /bin/sealroot enable --hash-alg sha256 {sha256}
bed_run mount cfs_mount_file $D/sha512.cfs /mnt/s $D/objects
for f in good tampered sha256-verity unsealed; do
    dmesg -c > /dev/null
    bed_run read:$f sha256sum /mnt/s/$f
    bed_value dmesg:$f "$(dmesg)"
done
umount /mnt/s
"#,
        good = object("good"),
        tampered = object("tampered"),
        sha256 = object("sha256-verity"),
    );
    let disk = ext4_image(&disk_dir, 32 * MIB)?;
    let initramfs = Initramfs::test(kernel, &scenario(&body))?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, initramfs)
        .disk(&disk)
        .timeout(Duration::from_secs(300))
        .run()?;
    for step in ["enable:good", "enable:tampered", "enable:sha256", "mount"] {
        log.result(step)?.assert_ok()?;
    }
    let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    log.result("read:good")?
        .assert_ok()?
        .assert_stdout_eq(&format!("{}  /mnt/s/good\n", sha(&files[0].1)))?;
    assert_eq!(log.value("dmesg:good")?, "");
    for (name, why) in [
        ("tampered", "has the wrong fs-verity digest"),
        ("sha256-verity", "has the wrong fs-verity digest"),
        ("unsealed", "has no fs-verity digest"),
    ] {
        log.result(&format!("read:{name}"))?
            .assert_rc(1)?
            .assert_stderr_contains(&format!("can't open '/mnt/s/{name}': Input/output error"))?;
        let hex = sha512(&files.iter().find(|f| f.0 == name).unwrap().1).to_hex();
        let dmesg = log.value(&format!("dmesg:{name}"))?;
        assert!(
            // overlayfs names the object by its file name (without XX/).
            dmesg.contains(&format!("lower file '{}' {why}", &hex[2..])),
            "{name}: {dmesg}"
        );
    }
    Ok(())
}

/// A generated tree of 2,000 entries, through both ways an object store
/// gets its fs-verity:
/// 1. built on the host (`sealroot mkcomposefs --digest-store`, byte for
///    byte C mkcomposefs' image), fs-verity enabled in the VM with
///    `sealroot enable`, mounted file-backed: the mounted tree re-images
///    to the same bytes and `stat` agrees with the source for every path;
/// 2. rebuilt in the VM from that mount onto the ext4 disk
///    (`--digest-store` enables fs-verity as it stores): the same digest
///    and bytes again, every new object has fs-verity with the digest it
///    is named by, and the new image mounted through a loop device over
///    the new store shows the same tree again.
///
/// (The VM cannot start from a copy of the source on ext4: `mkfs.ext4
/// -d` of e2fsprogs 1.47.0 drops mtime nanoseconds and wraps mtimes past
/// 2038.)
#[test]
fn generated_tree_reads_back_completely_from_both_object_stores() -> Result<()> {
    let kernel = Kernel::get()?;
    let bins = static_binaries()?;
    let tmp = tempfile::tempdir().unwrap();
    let (src, disk_dir) = (tmp.path().join("src"), tmp.path().join("disk"));
    fs::create_dir_all(&disk_dir).unwrap();
    let made = generate::directory(0x5ea1_2000, &src, 2000);
    println!("generated: {made:?}");
    let (ref_image, ref_tree) = reference_image(&src, tmp.path());
    let ref_digest = sealroot::verity::digest::digest_bytes(
        &sealroot::verity::VerityParams::sha256(),
        &ref_image,
    )
    .to_hex();
    let gen_img = disk_dir.join("gen.cfs");
    let store = format!("--digest-store={}", disk_dir.join("objects").display());
    let printed = sealroot([
        OsStr::new("mkcomposefs"),
        "--print-digest".as_ref(),
        store.as_ref(),
        src.as_os_str(),
        gen_img.as_os_str(),
    ]);
    assert_eq!(printed.trim(), ref_digest);
    assert!(
        fs::read(&gen_img).unwrap() == ref_image,
        "gen.cfs differs from C mkcomposefs' image"
    );
    fsck_erofs(&gen_img);
    let expected = listing(&ref_tree);
    let externals: std::collections::BTreeSet<String> = expected
        .entries
        .values()
        .filter_map(|e| match &e.body {
            listing::Body::External(Some(d)) => Some(d.clone()),
            _ => None,
        })
        .collect();

    let body = r#"
bed_run enable-objects sh -c 'for f in $D/objects/*/*; do /bin/sealroot enable "$f" || exit 1; done'
bed_run digest:gen sh -c '/bin/sealroot enable $D/gen.cfs && /bin/sealroot measure --compact $D/gen.cfs'
bed_run mount:gen cfs_mount_file $D/gen.cfs /mnt/gen $D/objects
bed_run list:gen cfs_list gen /mnt/gen
bed_run build /bin/sealroot mkcomposefs --digest-store=$D/objects2 --print-digest /mnt/gen $D/gen2.cfs
bed_run objects2 sh -c 'cd $D/objects2 && /bin/sealroot measure */*'
bed_run digest:gen2 sh -c '/bin/sealroot enable $D/gen2.cfs && /bin/sealroot measure --compact $D/gen2.cfs'
bed_run mount:gen2 cfs_mount_loop $D/gen2.cfs /mnt/gen2 $D/objects2
bed_run list:gen2 cfs_list gen2 /mnt/gen2
umount /mnt/gen2; umount /mnt/gen2.erofs; umount /mnt/gen
"#;
    let disk = ext4_image(&disk_dir, 256 * MIB)?;
    let image = Initramfs::test(kernel, &scenario(body))?
        .static_binaries(bins)
        .mount_disk();
    let log = Vm::new(kernel, image)
        .disk(&disk)
        .timeout(Duration::from_secs(600))
        .run()?;
    for r in log
        .results()
        .commands
        .iter()
        .filter(|r| !r.name.starts_with("bed:"))
    {
        println!("VM step {}: {} ms", r.name, r.ms);
    }
    log.result("enable-objects")?.assert_ok()?;
    assert_digest(&log, "gen", &ref_digest)?;
    for (mount, list) in [("mount:gen", "gen"), ("mount:gen2", "gen2")] {
        if list == "gen2" {
            // The store the VM filled: every object named by the digest
            // fs-verity measures, one per distinct external content.
            log.result("build")?.assert_ok()?;
            let built = disk.read_file("/gen2.cfs")?;
            if built != ref_image {
                assert_same_entries(
                    "built in the VM",
                    &expected,
                    &listing(&reader::read_tree(&built).unwrap()),
                );
                panic!(
                    "the image built in the VM differs from C mkcomposefs', but not in any listed field"
                );
            }
            log.result("build")?
                .assert_stdout_eq(&format!("{ref_digest}\n"))?;
            assert_digest(&log, "gen2", &ref_digest)?;
            let objects = log.result("objects2")?.assert_ok()?.stdout.clone();
            let mut stored = std::collections::BTreeSet::new();
            for line in objects.lines() {
                // "sha256:HEX XX/REST", as `fsverity measure` prints
                let (measured, path) = line.split_once(' ').unwrap();
                let measured = measured.strip_prefix("sha256:").unwrap();
                assert_eq!(path.replace('/', ""), measured, "object {path}");
                stored.insert(measured.to_owned());
            }
            assert_eq!(
                stored, externals,
                "objects stored vs external files of the tree"
            );
        }
        log.result(mount)?.assert_ok()?;
        let s = seen(&disk, &log, list)?;
        if s.image != ref_image {
            assert_same_entries(
                list,
                &expected,
                &listing(&reader::read_tree(&s.image).unwrap()),
            );
            panic!(
                "{list}: the re-image differs from C mkcomposefs' image, but not in any listed field"
            );
        }
        assert_stats(list, &expected, &s.stats);
        println!(
            "{list}: {} paths and {} stat lines compared",
            expected.entries.len(),
            s.stats.len()
        );
    }
    println!("{} objects", externals.len());
    disk.fsck()?;
    Ok(())
}

/// The comparisons above can fail: a changed byte, xattr, mtime or link
/// shows up as a difference (no VM).
#[test]
fn listing_comparisons_catch_differences() {
    let tree = parse_dump(&fixture::privileged_dump());
    let base = listing(&tree);
    let stats: Vec<(Vec<u8>, listing::StatLine)> = base
        .entries
        .iter()
        .enumerate()
        .map(|(i, (path, e))| {
            let (major, minor) = if matches!(e.mode & 0o170000, 0o020000 | 0o060000) {
                listing::major_minor(e.rdev)
            } else {
                (0, 0)
            };
            let ino = base
                .hardlinks
                .iter()
                .position(|g| g.contains(path))
                .map(|g| 1_000_000 + g as u64)
                .unwrap_or(i as u64);
            let subdirs = base
                .entries
                .iter()
                .filter(|(p, x)| {
                    x.mode & 0o170000 == 0o040000
                        && p.len() > path.len()
                        && p.starts_with(path)
                        && (path == b"/" || p[path.len()] == b'/')
                        && !p[path.len() + 1..].contains(&b'/')
                })
                .count() as u64;
            let nlink = if e.mode & 0o170000 == 0o040000 {
                2 + subdirs
            } else {
                base.nlink[path] as u64
            };
            let st = listing::StatLine {
                ino,
                nlink,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                major,
                minor,
                size: e.size.unwrap_or(4096),
                mtime: e.mtime,
            };
            (path.clone(), st)
        })
        .collect();
    assert_same_entries("identical", &base, &listing(&tree));
    assert_stats("identical", &base, &stats);

    let mut t = tree.clone();
    let id = t.lookup_path(b"/xattrs/file").unwrap();
    t.set_xattr(id, b"trusted.overlay.custom", b"changed")
        .unwrap();
    assert!(entry_differences("xattr", &base, &listing(&t)).is_err());
    let mut t = tree.clone();
    t.stat_mut(t.lookup_path(b"/times/ns").unwrap()).mtime.nsec = 999_999_998;
    assert!(entry_differences("mtime", &base, &listing(&t)).is_err());
    let mut t = tree.clone();
    t.set_content(
        t.lookup_path(b"/owners/user").unwrap(),
        sealroot::tree::NewContent::Inline(b"owned by 1001\n"),
    )
    .unwrap();
    assert!(entry_differences("content", &base, &listing(&t)).is_err());
    let mut t = tree.clone();
    t.unlink(t.root(), b"times").unwrap();
    assert!(entry_differences("missing dir", &base, &listing(&t)).is_err());

    let mut s = stats.clone();
    s[3].1.uid += 1;
    assert!(stat_differences("uid", &base, &s).is_err());
    let mut s = stats.clone();
    let i = s
        .iter()
        .position(|(p, _)| p == b"/links/small-again")
        .unwrap();
    s[i].1.ino = 42_424_242; // the hardlink is no longer one inode
    assert!(stat_differences("hardlink", &base, &s).is_err());
    let mut s = stats.clone();
    s.pop();
    assert!(stat_differences("missing", &base, &s).is_err());
}
