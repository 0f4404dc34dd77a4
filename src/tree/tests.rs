use super::*;

fn dir() -> Stat {
    Stat {
        mode: mode::S_IFDIR | 0o755,
        nlink: 2,
        ..Stat::default()
    }
}

fn file() -> Stat {
    Stat {
        mode: mode::S_IFREG | 0o644,
        nlink: 1,
        ..Stat::default()
    }
}

#[test]
fn entries_stay_sorted_whatever_the_insertion_order() {
    let mut t = Tree::new(dir()).unwrap();
    for name in ["b", "a", "c", "aa", "B"] {
        let f = t.add_inode(file(), NewContent::None).unwrap();
        t.link(t.root(), name.as_bytes(), f).unwrap();
    }
    let names: Vec<_> = t.entries(t.root()).map(|e| e.name.to_vec()).collect();
    assert_eq!(names, [&b"B"[..], b"a", b"aa", b"b", b"c"]);
    assert_eq!(t.entry_count(), 5);
    let f = t.lookup(t.root(), b"aa").unwrap();
    assert!(matches!(
        t.link(t.root(), b"aa", f),
        Err(Error::Exists { .. })
    ));
}

#[test]
fn names_are_validated() {
    let mut t = Tree::new(dir()).unwrap();
    let f = t.add_inode(file(), NewContent::None).unwrap();
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
        assert!(
            matches!(t.link(t.root(), bad, f), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
    }
    t.link(t.root(), &[b'x'; 255], f).unwrap();
}

#[test]
fn hardlinks_have_one_primary_and_directories_none() {
    let mut t = Tree::new(dir()).unwrap();
    let d = t.add_inode(dir(), NewContent::Directory).unwrap();
    t.link(t.root(), b"d", d).unwrap();
    assert!(matches!(
        t.link(t.root(), b"d2", d),
        Err(Error::DirectoryHardlink { .. })
    ));
    assert!(matches!(
        t.link(d, b"self", d),
        Err(Error::DirectoryHardlink { .. })
    ));
    let f = t.add_inode(file(), NewContent::None).unwrap();
    // Linked at /g first, then at /d/f: the primary is /d/f, the first in
    // depth-first name order, whatever the order of linking.
    t.link(t.root(), b"g", f).unwrap();
    t.link(d, b"f", f).unwrap();
    let p = t.primaries();
    assert_eq!(p.len(), 1);
    assert!(p.is_primary(d, 0, f));
    assert!(!p.is_primary(t.root(), 1, f));
    // Removing the primary makes the remaining entry primary.
    t.unlink(d, b"f").unwrap();
    assert!(t.primaries().is_primary(t.root(), 1, f));
    t.recount_nlinks();
    assert_eq!(t.stat(f).nlink, 1);
    assert_eq!(t.stat(t.root()).nlink, 3);
}

#[test]
fn a_pinned_primary_wins_until_it_is_removed() {
    let mut t = Tree::new(dir()).unwrap();
    let f = t.add_inode(file(), NewContent::None).unwrap();
    for name in [&b"a"[..], b"b", b"c"] {
        t.link(t.root(), name, f).unwrap();
    }
    assert!(t.primaries().is_primary(t.root(), 0, f));
    t.pin_primary(t.root(), b"b").unwrap();
    assert!(t.primaries().is_primary(t.root(), 1, f));
    t.pin_primary(t.root(), b"b").unwrap();
    assert!(matches!(
        t.pin_primary(t.root(), b"c"),
        Err(Error::Pin { .. })
    ));
    t.unlink(t.root(), b"b").unwrap();
    let p = t.primaries();
    assert!(p.is_primary(t.root(), 0, f));
    assert!(!p.is_primary(t.root(), 1, f));
    // Now another entry can be pinned.
    t.pin_primary(t.root(), b"c").unwrap();
    assert!(t.primaries().is_primary(t.root(), 1, f));
}

#[test]
fn a_pinned_primary_in_a_detached_subtree_falls_back() {
    let mut t = Tree::new(dir()).unwrap();
    let d = t.add_inode(dir(), NewContent::Directory).unwrap();
    t.link(t.root(), b"d", d).unwrap();
    let f = t.add_inode(file(), NewContent::None).unwrap();
    t.link(d, b"f", f).unwrap();
    t.link(t.root(), b"x", f).unwrap();
    t.link(t.root(), b"y", f).unwrap();
    t.pin_primary(d, b"f").unwrap();
    assert!(t.primaries().is_primary(d, 0, f));
    t.unlink(t.root(), b"d").unwrap();
    let p = t.primaries();
    assert!(p.is_primary(t.root(), 0, f), "/x is now the first entry");
    assert!(!p.is_primary(t.root(), 1, f));
}

#[test]
fn sha512_object_digests_are_kept() {
    use crate::verity::{FsVerityDigest, HashAlgorithm};
    let mut t = Tree::new(dir()).unwrap();
    let d512 = FsVerityDigest::new(HashAlgorithm::Sha512, &[0xab; 64]).unwrap();
    let d256 = FsVerityDigest::new(HashAlgorithm::Sha256, &[0xcd; 32]).unwrap();
    let mut sized = file();
    sized.size = 100;
    let a = t
        .add_inode(
            sized,
            NewContent::External {
                payload: None,
                digest: Some(d256),
            },
        )
        .unwrap();
    let b = t
        .add_inode(
            sized,
            NewContent::External {
                payload: None,
                digest: Some(d512),
            },
        )
        .unwrap();
    let c = t
        .add_inode(
            sized,
            NewContent::External {
                payload: None,
                digest: Some(d256),
            },
        )
        .unwrap();
    for (id, want) in [(a, d256), (b, d512), (c, d256)] {
        assert_eq!(
            t.content(id),
            Content::External {
                payload: None,
                digest: Some(want)
            }
        );
    }
}

#[test]
fn content_and_limits() {
    let mut t = Tree::new(dir()).unwrap();
    let link = Stat {
        mode: mode::S_IFLNK | 0o777,
        ..file()
    };
    assert!(t.add_inode(link, NewContent::Symlink(b"")).is_err());
    assert!(
        t.add_inode(link, NewContent::Symlink(&[b'a'; 4096]))
            .is_err()
    );
    let l = t
        .add_inode(link, NewContent::Symlink(&[b'a'; 4095]))
        .unwrap();
    assert_eq!(t.stat(l).size, 4095);
    assert!(matches!(
        t.add_inode(file(), NewContent::Inline(&[0; 5001])),
        Err(Error::InlineTooLarge { len: 5001 })
    ));
    let f = t.add_inode(file(), NewContent::Inline(b"hello")).unwrap();
    assert_eq!(t.content(f), Content::Inline(b"hello"));
    assert_eq!(t.stat(f).size, 5);
    assert!(
        t.add_inode(
            Stat {
                mode: 0o644,
                ..file()
            },
            NewContent::None
        )
        .is_err()
    );
}

#[test]
fn xattrs_are_validated_and_interned() {
    let mut t = Tree::new(dir()).unwrap();
    let a = t.add_inode(file(), NewContent::None).unwrap();
    let b = t.add_inode(file(), NewContent::None).unwrap();
    for id in [a, b] {
        t.set_xattr(id, b"security.selinux", b"system_u:object_r:usr_t:s0\0")
            .unwrap();
    }
    assert_eq!(t.xattr_set_id(a), t.xattr_set_id(b));
    assert!(t.set_xattr(a, b"", b"x").is_err());
    assert!(t.set_xattr(a, &[b'a'; 256], b"x").is_err());
    assert!(t.set_xattr(a, b"user.big", &vec![0; 65536]).is_err());
    // The per-inode budget (mkcomposefs: UINT16_MAX / 2).
    assert!(t.set_xattr(a, b"user.big", &vec![0; 40000]).is_err());
    t.set_xattr(a, b"user.big", &vec![0; 30000]).unwrap();
    assert!(t.remove_xattr(a, b"user.big"));
    assert_eq!(t.xattr_set_id(a), t.xattr_set_id(b));
}
