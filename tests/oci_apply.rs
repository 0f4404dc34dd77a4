//! Layer application: OCI semantics checked on an in-memory tree, and the
//! whole pipeline (layout -> verified layers -> tree) cross-checked against
//! umoci's extraction of the same image.

mod oci_support;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_support::fixture::{ImageBuilder, LayerBuilder};
use oci_support::memtree::{MemTree, MemorySink};
use sealroot::oci::import::{ImportError, apply_layers, import_layer, import_layers};
use sealroot::oci::layer::{EntryKind, LayerReader};
use sealroot::oci::layout::ImageLayout;
use sealroot::oci::sink::FileContent;
use sealroot::oci::verify::VerifyingReader;
use sealroot::oci::{Compression, Descriptor, DiffId, MediaType, Platform, Selector, Sha256Digest};

/// Applies uncompressed tars in order.
fn apply(layers: &[Vec<u8>]) -> Result<(MemTree, MemorySink), ImportError> {
    let sink = MemorySink::default();
    let mut imported = Vec::new();
    for tar in layers {
        let desc = Descriptor::for_bytes(MediaType::OCI_LAYER_TAR, tar);
        let blob = VerifyingReader::new(&tar[..], "layer", desc.digest, desc.size);
        let reader = LayerReader::new(blob, &desc, DiffId(Sha256Digest::of(tar)))?;
        imported.push(import_layer(reader, &desc, &sink)?);
    }
    let mut tree = MemTree::new();
    apply_layers(&mut tree, &imported)?;
    Ok((tree, sink))
}

fn content(tree: &MemTree, sink: &MemorySink, path: &str) -> Vec<u8> {
    match &tree
        .get(path)
        .unwrap_or_else(|| panic!("{path} missing"))
        .kind
    {
        EntryKind::File(c) => sink.content(c),
        k => panic!("{path} is a {}", k.type_name()),
    }
}

#[test]
fn later_layers_replace_and_whiteout() {
    let l1 = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/a", b"one", 0o644)
        .file("etc/b", b"bee", 0o644)
        .dir("etc/sub", 0o700)
        .file("etc/sub/x", b"x", 0o644)
        .finish();
    let l2 = LayerBuilder::new()
        .file("etc/a", b"two", 0o600)
        .whiteout("etc/b")
        .whiteout("etc/sub")
        .whiteout("etc/never-existed")
        .dir("etc", 0o750)
        .finish();
    let (tree, sink) = apply(&[l1, l2]).unwrap();
    assert_eq!(content(&tree, &sink, "etc/a"), b"two");
    assert_eq!(tree.get("etc/a").unwrap().meta.permissions, 0o600);
    assert!(tree.get("etc/b").is_none());
    assert!(tree.get("etc/sub").is_none());
    // Directory member over an existing directory: metadata updated,
    // children kept.
    assert_eq!(tree.get("etc").unwrap().meta.permissions, 0o750);
    assert!(tree.get("etc/a").is_some());
}

#[test]
fn whiteout_spares_same_layer_content_in_any_order() {
    let l1 = LayerBuilder::new().file("d/old", b"o", 0o644).finish();
    // Whiteout after the file it names, in the same layer: the file stays.
    let l2 = LayerBuilder::new()
        .file("d/new", b"n", 0o644)
        .whiteout("d/new")
        .whiteout("d/old")
        .finish();
    let (tree, _) = apply(&[l1, l2]).unwrap();
    assert!(tree.get("d/new").is_some());
    assert!(tree.get("d/old").is_none());
}

#[test]
fn opaque_directory_hides_lower_content_only() {
    let l1 = LayerBuilder::new()
        .dir("opt", 0o755)
        .file("opt/lower", b"l", 0o644)
        .dir("opt/keep", 0o755)
        .file("opt/keep/lower2", b"l2", 0o644)
        .file("other", b"o", 0o644)
        .finish();
    // Upper entries before and after the marker both survive; lower ones go,
    // also below a directory this layer re-adds.
    let l2 = LayerBuilder::new()
        .file("opt/before", b"b", 0o644)
        .file("opt/keep/upper", b"u", 0o644)
        .opaque("opt")
        .file("opt/after", b"a", 0o644)
        .finish();
    let (tree, _) = apply(&[l1, l2]).unwrap();
    let paths = tree.paths();
    assert_eq!(
        paths,
        [
            "/",
            "/opt",
            "/opt/after",
            "/opt/before",
            "/opt/keep",
            "/opt/keep/upper",
            "/other"
        ]
    );
}

#[test]
fn hardlinks_within_and_across_layers() {
    let l1 = LayerBuilder::new()
        .file("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
        .hardlink("usr/bin/tool-alias", "usr/bin/tool")
        .finish();
    let l2 = LayerBuilder::new()
        .hardlink("usr/sbin/tool", "usr/bin/tool")
        .file("usr/bin/tool-alias", b"replaced", 0o755)
        .finish();
    let (tree, sink) = apply(&[l1, l2]).unwrap();
    let a = tree.inode("usr/bin/tool").unwrap();
    assert_eq!(tree.inode("usr/sbin/tool"), Some(a));
    // Replacing one name breaks the link, as overlayfs copy-up does.
    assert_ne!(tree.inode("usr/bin/tool-alias"), Some(a));
    assert_eq!(content(&tree, &sink, "usr/bin/tool-alias"), b"replaced");
}

#[test]
fn hardlink_errors_name_layer_and_paths() {
    let l1 = LayerBuilder::new().hardlink("a", "missing").finish();
    let e = apply(&[l1]).unwrap_err().to_string();
    assert!(e.contains("applying layer 1 (sha256:"), "{e}");
    assert!(
        e.contains("/a: hardlink target /missing does not exist"),
        "{e}"
    );
    let l1 = LayerBuilder::new()
        .dir("d", 0o755)
        .hardlink("a", "d")
        .finish();
    let e = apply(&[l1]).unwrap_err().to_string();
    assert!(e.contains("is a directory"), "{e}");
}

#[test]
fn symlinked_parents_are_followed_inside_the_root() {
    // A merged-/usr base: bin -> usr/bin. A later layer writing bin/foo
    // lands in usr/bin/foo, as containerd and umoci place it.
    let l1 = LayerBuilder::new()
        .dir("usr/bin", 0o755)
        .symlink("bin", "usr/bin")
        .symlink("escape", "../../../../etc")
        .symlink("abs", "/usr")
        .finish();
    let l2 = LayerBuilder::new()
        .file("bin/foo", b"foo", 0o755)
        .file("escape/passwd", b"root::0:0", 0o644)
        .file("abs/lib/x", b"x", 0o644)
        .finish();
    let (tree, _) = apply(&[l1, l2]).unwrap();
    assert!(tree.get("usr/bin/foo").is_some());
    // `..` stops at the root: escape -> /etc inside the image.
    assert!(tree.get("etc/passwd").is_some());
    assert!(tree.get("usr/lib/x").is_some());
    // The symlinks themselves are untouched.
    assert!(matches!(
        tree.get("bin").unwrap().kind,
        EntryKind::Symlink(_)
    ));
}

#[test]
fn symlink_loops_and_file_parents_are_errors() {
    let l1 = LayerBuilder::new()
        .symlink("loop", "loop")
        .file("f", b"f", 0o644)
        .finish();
    let l2 = LayerBuilder::new().file("loop/x", b"", 0o644).finish();
    let e = apply(&[l1.clone(), l2]).unwrap_err().to_string();
    assert!(e.contains("symlinks followed"), "{e}");
    let l3 = LayerBuilder::new().file("f/x", b"", 0o644).finish();
    let e = apply(&[l1, l3]).unwrap_err().to_string();
    assert!(e.contains("not a directory"), "{e}");
}

#[test]
fn final_symlink_is_replaced_not_followed() {
    let l1 = LayerBuilder::new()
        .file("target", b"t", 0o644)
        .symlink("link", "target")
        .finish();
    let l2 = LayerBuilder::new().file("link", b"new", 0o644).finish();
    let (tree, sink) = apply(&[l1, l2]).unwrap();
    assert_eq!(content(&tree, &sink, "target"), b"t");
    assert_eq!(content(&tree, &sink, "link"), b"new");
}

#[test]
fn implicit_parents_get_fixed_defaults() {
    let (tree, _) = apply(&[LayerBuilder::new().file("a/b/c", b"", 0o644).finish()]).unwrap();
    let a = tree.get("a").unwrap();
    assert_eq!(
        (a.meta.permissions, a.meta.uid, a.meta.mtime.sec),
        (0o755, 0, 0)
    );
}

#[test]
fn root_entry_sets_root_metadata() {
    let (tree, _) = apply(&[LayerBuilder::new().dir("./", 0o700).finish()]).unwrap();
    assert_eq!(tree.get("/").unwrap().meta.permissions, 0o700);
}

// ---- umoci cross-check -------------------------------------------------

/// A description of one path, comparable between our tree and a real
/// directory: type, permissions, owner, content or target, xattrs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: String,
    perms: u32,
    uid: u32,
    gid: u32,
    mtime: Option<(i64, u32)>,
    data: Vec<u8>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn describe_tree(tree: &MemTree, sink: &MemorySink) -> (BTreeMap<String, Entry>, Vec<Vec<String>>) {
    let mut out = BTreeMap::new();
    let mut by_inode: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (path, inode) in tree.walk() {
        let n = &tree.nodes[inode];
        let (kind, data) = match &n.kind {
            EntryKind::File(c) => ("file".to_string(), sink.content(c)),
            EntryKind::Directory => ("dir".into(), vec![]),
            EntryKind::Symlink(t) => ("symlink".into(), t.clone()),
            EntryKind::CharDevice { major, minor } => (format!("chr {major}:{minor}"), vec![]),
            EntryKind::BlockDevice { major, minor } => (format!("blk {major}:{minor}"), vec![]),
            EntryKind::Fifo => ("fifo".into(), vec![]),
            EntryKind::Hardlink(_) => unreachable!(),
        };
        let is_dir = kind == "dir";
        if !is_dir {
            by_inode.entry(inode).or_default().push(path.clone());
        }
        out.insert(
            path,
            Entry {
                perms: if kind == "symlink" {
                    0o777
                } else {
                    n.meta.permissions
                },
                uid: n.meta.uid,
                gid: n.meta.gid,
                mtime: (!is_dir && kind != "symlink")
                    .then_some((n.meta.mtime.sec, n.meta.mtime.nsec)),
                kind,
                data,
                xattrs: n.meta.xattrs.clone(),
            },
        );
    }
    (out, groups(by_inode))
}

fn groups<K>(m: BTreeMap<K, Vec<String>>) -> Vec<Vec<String>> {
    let mut g: Vec<Vec<String>> = m.into_values().filter(|v| v.len() > 1).collect();
    for v in &mut g {
        v.sort();
    }
    g.sort();
    g
}

fn describe_dir(root: &Path) -> (BTreeMap<String, Entry>, Vec<Vec<String>>) {
    let mut out = BTreeMap::new();
    let mut by_inode: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
        let rel = if rel == "/" {
            rel
        } else {
            rel.trim_end_matches('/').to_string()
        };
        let ft = md.file_type();
        let (kind, data) = if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            ("dir".to_string(), vec![])
        } else if ft.is_symlink() {
            use std::os::unix::ffi::OsStrExt;
            (
                "symlink".into(),
                std::fs::read_link(&p)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if ft.is_file() {
            ("file".into(), std::fs::read(&p).unwrap())
        } else if ft.is_char_device() {
            (
                format!(
                    "chr {}:{}",
                    rustix::fs::major(md.rdev()),
                    rustix::fs::minor(md.rdev())
                ),
                vec![],
            )
        } else if ft.is_block_device() {
            (
                format!(
                    "blk {}:{}",
                    rustix::fs::major(md.rdev()),
                    rustix::fs::minor(md.rdev())
                ),
                vec![],
            )
        } else {
            ("fifo".into(), vec![])
        };
        let mut xattrs = BTreeMap::new();
        let mut names = vec![0u8; 65536];
        let n = rustix::fs::llistxattr(&p, &mut names[..]).unwrap_or(0);
        for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let mut value = vec![0u8; 65536];
            let c = std::ffi::CString::new(name).unwrap();
            let len = rustix::fs::lgetxattr(&p, c.as_c_str(), &mut value[..]).unwrap();
            xattrs.insert(name.to_vec(), value[..len].to_vec());
        }
        let is_dir = kind == "dir";
        if !is_dir {
            by_inode.entry(md.ino()).or_default().push(rel.clone());
        }
        out.insert(
            rel,
            Entry {
                perms: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: (!is_dir && kind != "symlink")
                    .then_some((md.mtime(), md.mtime_nsec() as u32)),
                kind,
                data,
                xattrs,
            },
        );
    }
    (out, groups(by_inode))
}

/// Layers exercising everything layer application must get right.
fn feature_image(compressions: [Compression; 3]) -> ImageBuilder {
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}", "n".repeat(150));
    let base = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .file("etc/shadow", b"root:*::0:::::\n", 0o600)
        .dir("usr/bin", 0o755)
        .file("usr/bin/big", &vec![0x5a; 100_000], 0o755)
        .hardlink("usr/bin/big-link", "usr/bin/big")
        .symlink("bin", "usr/bin")
        .file_owned("home/user/file", b"mine", 0o640, 1000, 1000)
        .file_pax(
            "etc/caps",
            b"cap",
            &[("SCHILY.xattr.user.bin", b"\x00\n\xff")],
        )
        .file_pax("etc/ns", b"ns", &[("mtime", b"1700000000.123456789")])
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/loop0", tar::EntryType::Block, 7, 0)
        .fifo("run/fifo")
        .dir("opt/app", 0o755)
        .file("opt/app/old", b"old", 0o644)
        .dir("var/cache", 0o755)
        .file("var/cache/junk", b"junk", 0o644)
        .file(&long_name, b"long", 0o644)
        .file_pax_path(&format!("{long_dir}/pax-{}", "p".repeat(140)), b"pax")
        .finish();
    let middle = LayerBuilder::new()
        .whiteout("etc/shadow")
        .opaque("opt/app")
        .file("opt/app/new", b"new", 0o644)
        .hardlink("usr/bin/cross-layer-link", "usr/bin/big")
        .file("bin/via-symlink", b"through bin", 0o755)
        .dir("etc", 0o700)
        .finish();
    let top = LayerBuilder::new()
        .whiteout("var/cache")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/bash\n", 0o644)
        .finish();
    ImageBuilder::new()
        .layer(base, compressions[0])
        .layer(middle, compressions[1])
        .layer(top, compressions[2])
}

/// Imports the image tagged `tag` from `layout` into a fresh tree.
fn import(
    layout: &Path,
    tag: &str,
) -> (
    MemTree,
    MemorySink,
    Vec<sealroot::oci::import::ImportedLayer>,
) {
    let img = ImageLayout::open_dir(layout).unwrap();
    let resolved = img
        .resolve(&Selector::Tag(tag.into()), &Platform::host())
        .unwrap();
    let sink = MemorySink::default();
    let layers = import_layers(&img, &resolved, &sink).unwrap();
    let mut tree = MemTree::new();
    apply_layers(&mut tree, &layers).unwrap();
    (tree, sink, layers)
}

#[test]
fn compression_does_not_change_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    use Compression::*;
    feature_image([Gzip, Gzip, None]).write(tmp.path(), "gz");
    feature_image([Zstd, Zstd, Zstd]).write(tmp.path(), "zst");
    feature_image([None, None, None]).write(tmp.path(), "tar");
    let (t1, s1, _) = import(tmp.path(), "gz");
    let (t2, s2, _) = import(tmp.path(), "zst");
    let (t3, s3, _) = import(tmp.path(), "tar");
    assert_eq!(describe_tree(&t1, &s1), describe_tree(&t2, &s2));
    assert_eq!(describe_tree(&t1, &s1), describe_tree(&t3, &s3));
}

#[test]
fn matches_umoci_unpack() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    // umoci 0.4 reads gzip and plain tar layers only (zstd is covered by
    // compression_does_not_change_the_tree).
    feature_image([Compression::Gzip, Compression::Gzip, Compression::None]).write(&layout, "test");

    // Ours.
    let (tree, sink, layers) = import(&layout, "test");
    assert!(
        layers[0].changes.iter().any(|c| matches!(
            c,
            sealroot::oci::layer::Change::Add {
                kind: EntryKind::File(FileContent::External { .. }),
                ..
            }
        )),
        "the 100 kB file must go to the object sink"
    );

    // umoci's (a real extraction, as root so owners and devices are kept).
    let bundle = tmp.path().join("bundle");
    oci_support::run(
        oci_support::tool("umoci", "umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:test", layout.display()))
            .arg(&bundle),
    );
    let (theirs, their_links) = describe_dir(&bundle.join("rootfs"));
    let (mut ours, our_links) = describe_tree(&tree, &sink);

    // umoci stamps the root and implicit directories with its own choices
    // (we use fixed defaults); compare directory modes and owners only.
    ours.get_mut("/").unwrap().perms = theirs["/"].perms;
    let mut diffs = Vec::new();
    for path in ours
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (ours.get(path), theirs.get(path));
        if a != b {
            diffs.push(format!("{path}:\n  ours:  {a:?}\n  umoci: {b:?}"));
        }
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
    // The comparison covered the interesting cases (not vacuous).
    assert!(theirs.len() > 25, "{theirs:#?}");
    for p in [
        "/usr/bin/via-symlink",
        "/opt/app/new",
        "/dev/null",
        "/etc/caps",
    ] {
        assert!(theirs.contains_key(p), "{p}");
    }
    for gone in ["/etc/shadow", "/opt/app/old", "/var/cache"] {
        assert!(!theirs.contains_key(gone), "{gone}");
    }
    assert_eq!(theirs["/etc"].perms, 0o700);
    assert_eq!(theirs["/etc/ns"].mtime, Some((1_700_000_000, 123_456_789)));
    assert_eq!(theirs["/etc/caps"].xattrs[&b"user.bin"[..]], b"\x00\n\xff");
    assert_eq!(our_links, their_links);
    assert_eq!(
        our_links,
        [[
            "/usr/bin/big",
            "/usr/bin/big-link",
            "/usr/bin/cross-layer-link"
        ]]
    );
}
