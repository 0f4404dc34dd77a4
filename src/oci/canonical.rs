//! The canonical filesystem of an OCI image: what composefs-rs makes of the
//! merged layers before it computes an image's composefs digest, so the
//! same image gives sealroot and composefs-rs (`cfsctl oci compute-id`,
//! bootc's sealed UKIs) the same EROFS.
//!
//! composefs-rs 0.9.4, `FileSystem::transform_for_oci`
//! (`crates/composefs/src/generic_tree.rs`), called by `create_filesystem`
//! (`crates/composefs-oci/src/image.rs`) after the last layer:
//!
//! 1. `copy_root_metadata_from_usr`: `/` takes `/usr`'s mode, owner,
//!    mtime and xattrs. Layers rarely carry a `./` member and runtimes
//!    ignore it, so the root's metadata is otherwise undefined.
//! 2. `canonicalize_run`: `/run` (a tmpfs at runtime) is emptied and takes
//!    `/usr`'s mtime.
//! 3. `filter_xattrs(is_allowed_container_xattr)`: every xattr but
//!    `security.capability` (`CONTAINER_XATTR_ALLOWLIST`) is dropped, on
//!    every inode including `/` — build-host SELinux labels and overlayfs
//!    internals must not reach the image; the boot variant relabels from
//!    the image's own policy.
//!
//! composefs-rs refuses an image without a `/usr` directory, or whose
//! `/run` is not a directory (`get_directory` fails). sealroot keeps such
//! images: the root keeps the metadata the layers gave it, a non-directory
//! `/run` stays as it is, and a `/run` directory is emptied keeping its
//! mtime. Their digests have no composefs-rs counterpart to match.

use crate::tree::Tree;

/// The only xattr composefs-rs keeps (`CONTAINER_XATTR_ALLOWLIST`):
/// file capabilities are part of what the image means.
pub const XATTR_ALLOWLIST: &[&[u8]] = &[b"security.capability"];

/// Applies the rules of the module documentation to a merged tree.
pub fn canonicalize(tree: &mut Tree) {
    let root = tree.root();
    let usr = tree.lookup(root, b"usr").filter(|&u| tree.is_dir(u));
    if let Some(usr) = usr {
        let from = *tree.stat(usr);
        let st = tree.stat_mut(root);
        st.mode = from.mode;
        st.uid = from.uid;
        st.gid = from.gid;
        st.mtime = from.mtime;
        tree.copy_xattrs(usr, root);
    }
    if let Some(run) = tree.lookup(root, b"run").filter(|&r| tree.is_dir(r)) {
        tree.clear_dir(run);
        if let Some(usr) = usr {
            tree.stat_mut(run).mtime = tree.stat(usr).mtime;
        }
    }
    tree.retain_xattrs(|name| XATTR_ALLOWLIST.contains(&name));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{NewContent, Stat, Timestamp, mode};

    fn stat(fmt: u32, perm: u32, sec: i64) -> Stat {
        Stat {
            mode: fmt | perm,
            nlink: 1,
            mtime: Timestamp { sec, nsec: 7 },
            ..Stat::default()
        }
    }

    fn tree_with(names: &[(&str, u32)]) -> Tree {
        let mut t = Tree::new(stat(mode::S_IFDIR, 0o700, 1)).unwrap();
        for &(name, fmt) in names {
            let content = match fmt {
                mode::S_IFDIR => NewContent::Directory,
                mode::S_IFLNK => NewContent::Symlink(b"usr"),
                _ => NewContent::None,
            };
            let id = t.add_inode(stat(fmt, 0o751, 50), content).unwrap();
            t.set_xattr(id, b"security.selinux", b"label").unwrap();
            t.set_xattr(id, b"security.capability", b"cap").unwrap();
            t.link(t.root(), name.as_bytes(), id).unwrap();
        }
        t
    }

    #[test]
    fn root_takes_usr_metadata_run_is_emptied_xattrs_filtered() {
        let mut t = tree_with(&[("usr", mode::S_IFDIR), ("run", mode::S_IFDIR)]);
        let run = t.lookup(t.root(), b"run").unwrap();
        let f = t
            .add_inode(stat(mode::S_IFREG, 0o644, 3), NewContent::None)
            .unwrap();
        t.link(run, b"stale", f).unwrap();
        t.stat_mut(run).mtime.sec = 99;
        {
            let usr = t.lookup(t.root(), b"usr").unwrap();
            let st = t.stat_mut(usr);
            st.uid = 5;
            st.gid = 6;
        }
        canonicalize(&mut t);
        let root = *t.stat(t.root());
        assert_eq!(root.mode, mode::S_IFDIR | 0o751);
        assert_eq!((root.uid, root.gid), (5, 6));
        assert_eq!(root.mtime, Timestamp { sec: 50, nsec: 7 });
        assert_eq!(t.entries(run).len(), 0);
        assert_eq!(t.stat(run).mtime, Timestamp { sec: 50, nsec: 7 });
        for id in [t.root(), run, t.lookup(t.root(), b"usr").unwrap()] {
            let names: Vec<&[u8]> = t.xattrs(id).map(|(n, _)| n).collect();
            assert_eq!(names, [&b"security.capability"[..]]);
        }
    }

    #[test]
    fn without_a_usr_directory_the_root_keeps_its_metadata() {
        for usr in [mode::S_IFLNK, mode::S_IFREG] {
            let mut t = tree_with(&[("usr", usr), ("run", mode::S_IFLNK)]);
            canonicalize(&mut t);
            assert_eq!(t.stat(t.root()).mode, mode::S_IFDIR | 0o700);
            assert_eq!(t.stat(t.root()).mtime.sec, 1);
            // A /run symlink stays a symlink.
            let run = t.lookup(t.root(), b"run").unwrap();
            assert!(!t.is_dir(run));
        }
    }
}
