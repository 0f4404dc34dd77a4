//! Images of known shapes for cross-checks against composefs-rs, and a
//! filesystem with hardlink groups that can be written as tar members in
//! any order. Shared by `tests/hardlink_order.rs` and
//! `tests/cfsctl_interop.rs`.

use std::path::Path;

use sealroot::oci::artifact::VerityAlgorithm;
use sealroot::oci::import::import_layers;
use sealroot::oci::layout::ImageLayout;
use sealroot::oci::sink::DigestOnlySink;
use sealroot::oci::{Compression, ImageReference, Platform};
use sealroot::repo::image::{MergedImage, merged_from_layers};

use super::fixture::{Fixture, ImageBuilder, LayerBuilder, MTIME};

/// Writes `layers` (uncompressed tars, lowest first) as the image tagged
/// `tag` in the layout `dir`, alternating gzip and plain blobs.
pub fn write_image(dir: &Path, tag: &str, layers: &[Vec<u8>]) -> Fixture {
    let mut b = ImageBuilder::new();
    for (i, tar) in layers.iter().enumerate() {
        let c = if i % 2 == 0 {
            Compression::Gzip
        } else {
            Compression::None
        };
        b = b.layer(tar.clone(), c);
    }
    b.write(dir, tag)
}

/// sealroot's merged EROFS of `oci:DIR:TAG` with objects (and image digest)
/// in `algorithm`: what `sealroot oci compute-id --algorithm` computes.
pub fn sealroot_merged(dir: &Path, tag: &str, algorithm: VerityAlgorithm) -> MergedImage {
    let reference: ImageReference = format!("oci:{}:{tag}", dir.display()).parse().unwrap();
    let layout = ImageLayout::open(&reference).unwrap();
    let image = layout
        .resolve(&reference.selector, &Platform::host())
        .unwrap();
    let sink = DigestOnlySink::new(algorithm.params());
    let layers = import_layers(&layout, &image, &sink).unwrap();
    merged_from_layers(&layers).unwrap()
}

/// sealroot's bootable EROFS of `oci:DIR:TAG` (objects and digest in
/// `algorithm`): what `sealroot oci compute-id --bootable` computes.
pub fn sealroot_bootable(
    dir: &Path,
    tag: &str,
    algorithm: VerityAlgorithm,
) -> Result<MergedImage, sealroot::repo::Error> {
    let reference: ImageReference = format!("oci:{}:{tag}", dir.display()).parse().unwrap();
    let layout = ImageLayout::open(&reference).unwrap();
    let image = layout
        .resolve(&reference.selector, &Platform::host())
        .unwrap();
    let sink = DigestOnlySink::new(algorithm.params());
    let layers = import_layers(&layout, &image, &sink).unwrap();
    let merged = merged_from_layers(&layers).unwrap();
    let objects = sealroot::oci::boot::objects::LayerObjects::new(&layout, &image, &layers);
    sealroot::repo::image::bootable_of(&merged, &objects)
}

/// fsverity-sha512-12, what `cfsctl init` defaults to.
pub const SHA512_12: VerityAlgorithm = VerityAlgorithm {
    hash: sealroot::verity::HashAlgorithm::Sha512,
    block_size: sealroot::verity::BlockSize::DEFAULT,
};

/// Content of `n` bytes, distinct per `seed` (so objects differ).
pub fn content(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| seed.wrapping_mul(31).wrapping_add((i % 251) as u8))
        .collect()
}

// ---------------------------------------------------------------------------
// Hardlink groups in any member order

/// One tar member of a [`LinkedTree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Dir(String),
    File(String, Vec<u8>),
    /// A hardlink member: path, target path.
    Link(String, String),
}

/// A filesystem whose hardlink groups can be written with the data on any
/// of their names and the members in any order: the image must not
/// depend on either.
#[derive(Debug, Clone)]
pub struct LinkedTree {
    /// Directories, parents before children.
    pub dirs: Vec<String>,
    /// Each group: the names of one inode, and its content.
    pub groups: Vec<(Vec<String>, Vec<u8>)>,
}

/// How to write a [`LinkedTree`] as layers.
#[derive(Debug, Clone)]
pub struct Order {
    /// Per group, which of its names carries the data.
    pub carriers: Vec<usize>,
    /// A permutation of the names of all groups (indexes into the list of
    /// all `(group, name)` pairs, group by group).
    pub names: Vec<usize>,
    /// Members before this position (after the directories) go to the
    /// first layer, the others to a second one.
    pub split: usize,
}

impl LinkedTree {
    /// `(group, name index)` of every name, group by group.
    pub fn names(&self) -> Vec<(usize, usize)> {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(g, (names, _))| (0..names.len()).map(move |n| (g, n)))
            .collect()
    }

    /// The members in `order`: directories first, then the names in the
    /// permuted order, where the first name of a group to appear carries
    /// the data and names the chosen carrier's path (so the carrier always
    /// precedes its links, as tar requires).
    pub fn members(&self, order: &Order) -> Vec<Member> {
        let all = self.names();
        let mut out: Vec<Member> = self.dirs.iter().map(|d| Member::Dir(d.clone())).collect();
        let mut started = vec![false; self.groups.len()];
        // Names of a group in order of appearance; the carrier takes the
        // first slot.
        for &k in &order.names {
            let (g, _) = all[k];
            let (names, data) = &self.groups[g];
            let carrier = &names[order.carriers[g] % names.len()];
            if !started[g] {
                started[g] = true;
                out.push(Member::File(carrier.clone(), data.clone()));
            } else {
                // The next name of this group not yet written, other than
                // the carrier.
                let written: Vec<&String> = out
                    .iter()
                    .filter_map(|m| match m {
                        Member::File(p, _) | Member::Link(p, _) => Some(p),
                        Member::Dir(_) => None,
                    })
                    .collect();
                let next = names
                    .iter()
                    .find(|n| *n != carrier && !written.contains(n))
                    .expect("a name left");
                out.push(Member::Link(next.clone(), carrier.clone()));
            }
        }
        out
    }

    /// The members of `order` as one or two tar layers.
    pub fn layers(&self, order: &Order) -> Vec<Vec<u8>> {
        let members = self.members(order);
        let split = self
            .dirs
            .len()
            .saturating_add(order.split)
            .min(members.len());
        let mut layers = vec![tar_of(&members[..split])];
        if split < members.len() {
            layers.push(tar_of(&members[split..]));
        }
        layers
    }

    /// The plainest order: each group's first name carries the data, names
    /// in group order, one layer.
    pub fn plain_order(&self) -> Order {
        Order {
            carriers: vec![0; self.groups.len()],
            names: (0..self.names().len()).collect(),
            split: usize::MAX,
        }
    }
}

/// A tar of `members` (directories 0755, files 0755, all at [`MTIME`]).
pub fn tar_of(members: &[Member]) -> Vec<u8> {
    let mut l = LayerBuilder::new();
    for m in members {
        match m {
            Member::Dir(p) => l.dir(p, 0o755),
            Member::File(p, data) => l.file(p, data, 0o755),
            Member::Link(p, target) => l.hardlink(p, target),
        };
    }
    l.finish()
}

/// Programs and their alias links, as a GNU tar of a real /usr lists them:
/// the data often sits on a name that is not the first in sorted order,
/// groups span directories (/usr/bin and /usr/sbin) and depths (the first
/// name depth-first is deeper than the first one breadth-first).
pub fn programs() -> LinkedTree {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    LinkedTree {
        dirs: s(&[
            "usr",
            "usr/bin",
            "usr/lib",
            "usr/lib/x",
            "usr/lib/x/deep",
            "usr/sbin",
        ]),
        groups: vec![
            (
                s(&["usr/bin/gzip", "usr/bin/gunzip", "usr/bin/zcat"]),
                content(1, 4000),
            ),
            (
                s(&["usr/sbin/e2fsck", "usr/sbin/fsck.ext4", "usr/bin/e2fsck"]),
                content(2, 70),
            ),
            (
                s(&["usr/lib/x/deep/a", "usr/lib/zz", "usr/bin/zz"]),
                content(3, 20),
            ),
            (s(&["usr/bin/a", "usr/bin/b"]), Vec::new()),
            (s(&["usr/bin/single"]), content(4, 100)),
        ],
    }
}

// ---------------------------------------------------------------------------
// Image shapes for the composefs-rs cross-check

/// A named image: its layers, lowest first.
pub struct Shape {
    pub name: &'static str,
    pub layers: Vec<Vec<u8>>,
}

fn base(l: &mut LayerBuilder) {
    l.dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .dir("usr/lib", 0o755)
        .dir("etc", 0o755)
        .symlink("bin", "usr/bin")
        .symlink("lib", "usr/lib");
}

/// Every shape [`shapes`] knows, by name.
pub fn shapes() -> Vec<Shape> {
    vec![
        files_and_metadata(),
        whiteouts(),
        hardlinks_across_layers(),
        replacements(),
        special_files(),
        xattrs(),
        run_and_root(),
        edge_members(),
    ]
}

/// Regular files of every size class (empty, inline up to 64 bytes,
/// external just above, one block, several blocks), modes with setuid and
/// sticky bits, owners, long names and symlink targets, nested dirs, and
/// programs with alias hardlinks whose data is on a later name.
pub fn files_and_metadata() -> Shape {
    let mut l = LayerBuilder::new();
    base(&mut l);
    let long = "n".repeat(255);
    l.file("usr/bin/empty", b"", 0o644)
        .file("usr/bin/one", b"1", 0o644)
        .file("usr/bin/inline64", &content(5, 64), 0o644)
        .file("usr/bin/external65", &content(6, 65), 0o755)
        .file("usr/bin/block", &content(7, 4096), 0o755)
        .file("usr/bin/big", &content(8, 300_000), 0o755)
        .file("usr/bin/setuid", &content(9, 100), 0o4755)
        .file("usr/bin/sticky", b"x", 0o1777)
        .file_owned("usr/lib/owned", &content(10, 200), 0o640, 1000, 4294967294)
        .file(&format!("usr/lib/{long}"), b"long name", 0o644)
        .symlink("usr/lib/longlink", &"t/".repeat(1000))
        .dir("usr/lib/a", 0o700)
        .dir("usr/lib/a/b", 0o755)
        .dir("usr/lib/a/b/c", 0o755)
        .file("usr/lib/a/b/c/deep", &content(11, 90), 0o644)
        // GNU tar: the data on gzip, aliases first in sorted order.
        .file("usr/bin/gzip", &content(12, 5000), 0o755)
        .hardlink("usr/bin/gunzip", "usr/bin/gzip")
        .hardlink("usr/bin/zcat", "usr/bin/gzip")
        .file("etc/hostname", b"sealed\n", 0o644);
    Shape {
        name: "files-and-metadata",
        layers: vec![l.finish()],
    }
}

/// Whiteouts of files and directories, an opaque directory, names removed
/// and added again in later layers.
pub fn whiteouts() -> Shape {
    let mut l1 = LayerBuilder::new();
    base(&mut l1);
    l1.dir("usr/share", 0o755)
        .dir("usr/share/doc", 0o755)
        .file("usr/share/doc/a", &content(20, 100), 0o644)
        .file("usr/share/doc/b", b"b", 0o644)
        .dir("usr/share/opaque", 0o755)
        .file("usr/share/opaque/old", &content(21, 100), 0o644)
        .dir("usr/share/opaque/sub", 0o755)
        .file("usr/share/opaque/sub/x", b"x", 0o644)
        .file("etc/gone", b"gone", 0o644)
        .file("etc/back", b"first", 0o644);
    let mut l2 = LayerBuilder::new();
    l2.dir("usr", 0o755)
        .dir("usr/share", 0o755)
        .whiteout("usr/share/doc")
        .dir("usr/share/opaque", 0o755)
        .opaque("usr/share/opaque")
        .file("usr/share/opaque/new", &content(22, 100), 0o644)
        .dir("etc", 0o755)
        .whiteout("etc/gone")
        .whiteout("etc/back");
    let mut l3 = LayerBuilder::new();
    l3.dir("etc", 0o755)
        .file("etc/back", b"second", 0o600)
        .dir("usr", 0o755)
        .dir("usr/share", 0o755)
        .dir("usr/share/doc", 0o750)
        .file("usr/share/doc/c", &content(23, 100), 0o644);
    Shape {
        name: "whiteouts",
        layers: vec![l1.finish(), l2.finish(), l3.finish()],
    }
}

/// Hardlinks made in a later layer to files of an earlier one, a link
/// whited out, a group member replaced by another file.
pub fn hardlinks_across_layers() -> Shape {
    let mut l1 = LayerBuilder::new();
    base(&mut l1);
    l1.file("usr/lib/libz.so.1.3", &content(30, 1000), 0o755)
        .file("usr/bin/tool", &content(31, 500), 0o755)
        .hardlink("usr/bin/tool-alias", "usr/bin/tool")
        .hardlink("usr/lib/tool-copy", "usr/bin/tool")
        .file("etc/small", b"tiny", 0o644)
        .hardlink("etc/small-link", "etc/small");
    let mut l2 = LayerBuilder::new();
    l2.dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .hardlink("usr/lib/libz.so", "usr/lib/libz.so.1.3")
        .hardlink("usr/lib/a-first", "usr/lib/libz.so.1.3")
        .whiteout("usr/lib/tool-copy")
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool-alias", &content(32, 600), 0o755)
        .dir("etc", 0o755)
        .hardlink("etc/another", "etc/small");
    Shape {
        name: "hardlinks-across-layers",
        layers: vec![l1.finish(), l2.finish()],
    }
}

/// A file replaced by a directory, a directory by a file, a symlink by a
/// directory and a directory by a symlink, across layers.
pub fn replacements() -> Shape {
    let mut l1 = LayerBuilder::new();
    base(&mut l1);
    l1.file("usr/lib/becomes-dir", &content(40, 100), 0o644)
        .dir("usr/lib/becomes-file", 0o755)
        .file("usr/lib/becomes-file/inner", b"inner", 0o644)
        .symlink("usr/lib/link-becomes-dir", "somewhere")
        .dir("usr/lib/dir-becomes-link", 0o755)
        .file("usr/lib/dir-becomes-link/x", &content(41, 100), 0o644);
    let mut l2 = LayerBuilder::new();
    l2.dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .dir("usr/lib/becomes-dir", 0o711)
        .file("usr/lib/becomes-dir/now", b"now", 0o644)
        .file("usr/lib/becomes-file", &content(42, 100), 0o600)
        .dir("usr/lib/link-becomes-dir", 0o755)
        .symlink("usr/lib/dir-becomes-link", "../elsewhere");
    Shape {
        name: "replacements",
        layers: vec![l1.finish(), l2.finish()],
    }
}

/// Character and block devices, fifos, and a character device 0:0 (an
/// overlayfs-style whiteout stored as a file, escaped in the EROFS).
pub fn special_files() -> Shape {
    let mut l = LayerBuilder::new();
    base(&mut l);
    l.dir("dev", 0o755)
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/sda", tar::EntryType::Block, 8, 0)
        .device("dev/big", tar::EntryType::Char, 4095, 1048575)
        .device("usr/lib/overlay-whiteout", tar::EntryType::Char, 0, 0)
        .fifo("dev/fifo");
    Shape {
        name: "special-files",
        layers: vec![l.finish()],
    }
}

/// xattrs of every namespace through PAX `SCHILY.xattr.*` records: file
/// capabilities (kept), SELinux labels, user and trusted ones including
/// `trusted.overlay.*` that the EROFS must escape, on files, directories
/// (`/usr`'s are copied to `/`) and symlinks.
pub fn xattrs() -> Shape {
    let mut l = LayerBuilder::new();
    l.pax(&[
        (
            "SCHILY.xattr.security.selinux",
            b"system_u:object_r:usr_t:s0\0",
        ),
        ("SCHILY.xattr.user.dir", b"usr"),
    ])
    .dir("usr", 0o755)
    .dir("usr/bin", 0o755)
    .dir("etc", 0o755)
    .file_pax(
        "usr/bin/ping",
        &content(50, 300),
        &[
            (
                "SCHILY.xattr.security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            ),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:ping_exec_t:s0\0",
            ),
        ],
    )
    .file_pax(
        "usr/bin/overlay-names",
        b"x",
        &[
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/elsewhere"),
            ("SCHILY.xattr.user.overlay.whiteout", b""),
            ("SCHILY.xattr.security.capability", b"\x00\x00\x00\x02"),
        ],
    )
    .file_pax(
        "etc/user-xattrs",
        &content(51, 80),
        &[
            ("SCHILY.xattr.user.empty", b""),
            ("SCHILY.xattr.user.binary", b"\x00\xff\n="),
            ("SCHILY.xattr.security.ima", b"\x03\x02\x04"),
        ],
    )
    // libarchive's base64 form alone: ignored (Go's archive/tar users and
    // composefs-rs read SCHILY.xattr.* only).
    .file_pax(
        "etc/libarchive-only",
        b"y",
        &[("LIBARCHIVE.xattr.security.capability", b"AAAAAg")],
    );
    Shape {
        name: "xattrs",
        layers: vec![l.finish()],
    }
}

/// A `./` member with its own metadata, `/usr` with other metadata (which
/// `/` takes), and a `/run` with content in two layers (emptied, with
/// `/usr`'s mtime).
pub fn run_and_root() -> Shape {
    let mut l1 = LayerBuilder::new();
    l1.dir("./", 0o700)
        .dir_with("usr", 0o751, 7, 8, MTIME + 12345)
        .dir("usr/bin", 0o755)
        .dir("run", 0o755)
        .dir("run/lock", 0o1777)
        .file("run/lock/stale", &content(60, 100), 0o644)
        .file("usr/bin/shared", &content(61, 100), 0o755)
        .hardlink("run/shared-link", "usr/bin/shared");
    let mut l2 = LayerBuilder::new();
    l2.dir("run", 0o755)
        .file("run/more", b"more", 0o644)
        .dir("tmp", 0o1777);
    Shape {
        name: "run-and-root",
        layers: vec![l1.finish(), l2.finish()],
    }
}

/// Members the tar readers must agree on: PAX mtimes with nanoseconds and
/// far in the future, PAX uid/gid beyond 2^31, a mode field carrying the
/// file type bits, `./`-prefixed paths, a file and a directory given twice
/// in one layer, names that are not UTF-8 or hold spaces and newlines,
/// root entries named like the EROFS root whiteouts (`00`..`ff`),
/// hardlinks to a symlink, a fifo and a device, a link whose target is
/// replaced later in the same layer, user `trusted.overlay.*` xattrs on an
/// external file.
pub fn edge_members() -> Shape {
    let mut l = LayerBuilder::new();
    l.dir("./usr/", 0o755)
        .dir("usr/bin", 0o755)
        .pax(&[("mtime", b"1700000000.123456789")])
        .file("usr/bin/nsec", b"x", 0o644)
        .pax(&[("mtime", b"99999999999")])
        .file("usr/bin/far", b"x", 0o644)
        .pax(&[("uid", b"3000000000"), ("gid", b"4000000000")])
        .file("usr/bin/ids", b"x", 0o644)
        .file("usr/bin/typed-mode", b"x", 0o100644)
        .file("./usr/bin/dotted", b"x", 0o644)
        .file("usr/bin/twice", b"first", 0o644)
        .file("usr/bin/twice", &content(70, 200), 0o600)
        .dir("usr/bin/dir-twice", 0o700)
        .dir("usr/bin/dir-twice", 0o755)
        .file("usr/bin/a b\nc", b"spaces", 0o644)
        .raw(
            tar::EntryType::Regular,
            "usr/bin/\u{e9}\u{ff}".as_bytes(),
            b"",
            b"latin",
        )
        .raw(tar::EntryType::Regular, b"usr/bin/\xff\xfe", b"", b"bytes")
        .file("00", b"not a whiteout", 0o644)
        .dir("ff", 0o755)
        .device("ab", tar::EntryType::Char, 0, 0)
        .symlink("usr/bin/sym", "target")
        .hardlink("usr/bin/sym-link", "usr/bin/sym")
        .fifo("usr/bin/fifo")
        .hardlink("usr/bin/fifo-link", "usr/bin/fifo")
        .device("usr/bin/null", tar::EntryType::Char, 1, 3)
        .hardlink("usr/bin/null-link", "usr/bin/null")
        .file("usr/bin/replaced", &content(71, 100), 0o644)
        .hardlink("usr/bin/keeps-old", "usr/bin/replaced")
        .file("usr/bin/replaced", &content(72, 100), 0o644)
        .file_pax(
            "usr/bin/escaped",
            &content(73, 100),
            &[
                ("SCHILY.xattr.trusted.overlay.metacopy", b"abc"),
                ("SCHILY.xattr.trusted.overlay.overlay.x", b"1"),
                ("SCHILY.xattr.security.capability", b"cap"),
            ],
        );
    Shape {
        name: "edge-members",
        layers: vec![l.finish()],
    }
}

// Bootable images for the composefs-rs cross-check of the bootable variant

/// The directories composefs-rs's boot transformation needs, a kernel where
/// bootc keeps it, and content in `/boot` and `/sysroot` to be emptied.
fn bootable_base(l: &mut LayerBuilder) {
    base(l);
    l.dir("usr/lib/modules", 0o755)
        .dir("usr/lib/modules/6.12.0", 0o755)
        .file("usr/lib/modules/6.12.0/vmlinuz", &content(70, 5000), 0o755)
        .dir("boot", 0o755)
        .dir("boot/grub2", 0o700)
        .file("boot/grub2/grub.cfg", &content(71, 300), 0o644)
        .file("boot/config-6.12.0", b"CONFIG_X=y\n", 0o644)
        .dir("sysroot", 0o755)
        .dir("sysroot/ostree", 0o755)
        .file("sysroot/ostree/stale", &content(72, 100), 0o644)
        .dir("var", 0o755)
        .dir("run", 0o755);
}

/// file_contexts(5) rules of every form composefs-boot reads: plain
/// regexes, `(/.*)?` subtrees, every file-type specifier, `<<none>>`, a
/// PCRE-only lookahead, comments, blank lines, tabs; more than 64 bytes,
/// so an external object the transformation must read from the layer.
pub const FILE_CONTEXTS: &[u8] = b"\
# file_contexts of the test policy
/.*\t\t\tsystem_u:object_r:default_t:s0
/\t\t\t-d\tsystem_u:object_r:root_t:s0

/usr(/.*)?\t\tsystem_u:object_r:usr_t:s0
/usr/bin(/.*)?\t\t--\tsystem_u:object_r:bin_t:s0
/usr/bin\t\t-d\tsystem_u:object_r:bin_dir_t:s0
/usr/lib/modules(/.*)?\tsystem_u:object_r:modules_object_t:s0
/usr/libexec/[^/]+\t--\tsystem_u:object_r:libexec_t:s0
/etc(/.*)?\t\tsystem_u:object_r:etc_t:s0
/etc/selinux(/.*)?\tsystem_u:object_r:selinux_config_t:s0
/etc/(?!shadow)[a-z]+-secret\t--\tsystem_u:object_r:secret_t:s0
/dev(/.*)?\t\tsystem_u:object_r:device_t:s0
/dev/null\t\t-c\tsystem_u:object_r:null_device_t:s0
/dev/sd[a-z]*\t\t-b\tsystem_u:object_r:fixed_disk_device_t:s0
/dev/initctl\t\t-p\tsystem_u:object_r:initctl_t:s0
/dev/log\t\t-s\tsystem_u:object_r:devlog_t:s0
/(bin|lib)\t\t-l\tsystem_u:object_r:bin_t:s0
/boot(/.*)?\t\tsystem_u:object_r:boot_t:s0
/sysroot(/.*)?\t\tsystem_u:object_r:root_t:s0
/run(/.*)?\t\tsystem_u:object_r:var_run_t:s0
/tmp(/.*)?\t\t<<none>>
/home(/.*)?\t\tsystem_u:object_r:home_root_t:s0
/var/home/[^/]+\t\t-d\tsystem_u:object_r:user_home_dir_t:s0
";

/// An image with its own SELinux policy: rules in file_contexts (replaced
/// in a second layer, so the right object must be read),
/// file_contexts.local, an alias in file_contexts.subs and another in
/// .subs_dist; files of every type; a program hardlinked across
/// directories whose names get different labels; build-host labels that
/// must not survive.
pub fn selinux_policy() -> Shape {
    let mut l1 = LayerBuilder::new();
    bootable_base(&mut l1);
    l1.dir("etc/selinux", 0o755)
        .file(
            "etc/selinux/config",
            b"# SELinux\nSELINUX=enforcing\n  SelinuxType = targeted \n",
            0o644,
        )
        .dir("etc/selinux/targeted", 0o755)
        .dir("etc/selinux/targeted/contexts", 0o755)
        .dir("etc/selinux/targeted/contexts/files", 0o755)
        .file(
            "etc/selinux/targeted/contexts/files/file_contexts",
            b"/.* system_u:object_r:old_default_t:s0 # first version, replaced\n",
            0o644,
        )
        .dir("usr/libexec", 0o755)
        .file("usr/bin/tool", &content(73, 400), 0o755)
        .hardlink("usr/libexec/tool", "usr/bin/tool")
        .hardlink("usr/lib/tool-a", "usr/bin/tool")
        .hardlink("usr/lib/tool-b", "usr/bin/tool")
        .hardlink("usr/bin/tool-alias", "usr/bin/tool")
        .file_pax(
            "usr/bin/labelled",
            &content(74, 100),
            &[(
                "SCHILY.xattr.security.selinux",
                b"unconfined_u:object_r:container_file_t:s0:c1,c2\0",
            )],
        )
        .file("etc/api-secret", b"s", 0o600)
        .file("etc/shadow-secret", b"s", 0o600)
        .dir("dev", 0o755)
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/sda", tar::EntryType::Block, 8, 0)
        .fifo("dev/initctl")
        .dir("tmp", 0o1777)
        .file("tmp/scratch", b"x", 0o644)
        .dir("var/home", 0o755)
        .dir("var/home/alice", 0o700)
        .file("var/home/alice/notes", b"n", 0o600)
        .dir("opt", 0o755)
        .dir("opt/app", 0o755)
        .file("opt/app/run", b"r", 0o755);
    let mut l2 = LayerBuilder::new();
    l2.dir("etc", 0o755)
        .dir("etc/selinux", 0o755)
        .dir("etc/selinux/targeted", 0o755)
        .dir("etc/selinux/targeted/contexts", 0o755)
        .dir("etc/selinux/targeted/contexts/files", 0o755)
        .file(
            "etc/selinux/targeted/contexts/files/file_contexts",
            FILE_CONTEXTS,
            0o644,
        )
        .file(
            "etc/selinux/targeted/contexts/files/file_contexts.local",
            b"/opt/app(/.*)?\tsystem_u:object_r:app_t:s0\n",
            0o644,
        )
        .file(
            "etc/selinux/targeted/contexts/files/file_contexts.subs",
            b"# aliases\n/var/home /home\n/opt/app /usr/libexec\n",
            0o644,
        )
        .file(
            "etc/selinux/targeted/contexts/files/file_contexts.subs_dist",
            b"/opt/app /usr\n",
            0o644,
        );
    Shape {
        name: "selinux-policy",
        layers: vec![l1.finish(), l2.finish()],
    }
}

/// A bootable image without a policy: /boot and /sysroot emptied, every
/// security.selinux removed.
pub fn bootable_without_policy() -> Shape {
    let mut l = LayerBuilder::new();
    bootable_base(&mut l);
    l.dir("etc/selinux", 0o755)
        .file("etc/selinux/config", b"SELINUX=disabled\n", 0o644)
        .file("usr/bin/tool", &content(75, 400), 0o755)
        .hardlink("boot/tool-link", "usr/bin/tool");
    Shape {
        name: "bootable-no-policy",
        layers: vec![l.finish()],
    }
}

/// The bootable shapes, by name.
pub fn bootable_shapes() -> Vec<Shape> {
    vec![selinux_policy(), bootable_without_policy()]
}
