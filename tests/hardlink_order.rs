//! One filesystem, one EROFS: the image of an OCI image must not depend on
//! the order its layers list hardlinked names in, nor on which name carries
//! the data (GNU tar puts it on whichever alias it met first), nor on
//! whether the links come in the same layer as the data or a later one.
//! A hardlinked inode is placed at its first name in depth-first order, as
//! composefs-rs and `composefs-info dump` | `mkcomposefs` place it; so the
//! image also equals mkcomposefs' image of sealroot's own dump of it.
//! (tests/cfsctl_interop.rs compares fixed orders with cfsctl.)

// Both support modules (common, oci_support) load the one
// tests/common/reference_tools.rs.
#![allow(clippy::duplicate_mod)]

mod common;
mod oci_support;

use oci_support::images::{self, LinkedTree, Order, content, sealroot_merged};
use proptest::prelude::*;
use sealroot::oci::artifact::VerityAlgorithm;

/// Directories names may go in: nested ones so that the first name in
/// depth-first order can be deeper than the first breadth-first.
const DIRS: [&str; 7] = ["a", "a/b", "a/b/c", "m", "usr", "usr/bin", "z"];
const NAMES: [&str; 6] = ["a", "aa", "gzip", "m", "zcat", "zz"];

/// A tree of 1..=12 names in up to 4 hardlink groups, each group empty,
/// inline or external.
fn linked_tree() -> impl Strategy<Value = LinkedTree> {
    let name = (0..=DIRS.len(), 0..NAMES.len(), 0..4usize);
    (
        proptest::collection::vec(name, 1..=12),
        proptest::collection::vec(0..3usize, 4),
    )
        .prop_map(|(names, sizes)| {
            let mut groups: Vec<(Vec<String>, Vec<u8>)> = (0..4)
                .map(|g| {
                    let size = [0, 20, 100][sizes[g]];
                    (Vec::new(), content(g as u8 + 1, size))
                })
                .collect();
            let mut used = std::collections::BTreeSet::new();
            for (dir, n, g) in names {
                // Index DIRS.len() is the root directory.
                let path = match DIRS.get(dir) {
                    Some(d) => format!("{d}/{}", NAMES[n]),
                    None => NAMES[n].to_string(),
                };
                // A name that is also a directory would replace it.
                if DIRS.contains(&path.as_str()) || !used.insert(path.clone()) {
                    continue;
                }
                groups[g].0.push(path);
            }
            groups.retain(|(names, _)| !names.is_empty());
            LinkedTree {
                dirs: DIRS.iter().map(|d| d.to_string()).collect(),
                groups,
            }
        })
}

/// The tree and an order to write it in.
fn tree_and_order() -> impl Strategy<Value = (LinkedTree, Order)> {
    linked_tree().prop_flat_map(|tree| {
        let n = tree.names().len();
        let groups = tree.groups.len();
        (
            Just(tree),
            proptest::collection::vec(0..4usize, groups),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            0..=n + 1,
        )
            .prop_map(|(tree, carriers, names, split)| {
                (
                    tree,
                    Order {
                        carriers,
                        names,
                        split,
                    },
                )
            })
    })
}

/// The merged EROFS of `layers`, written as an image in a fresh layout.
fn erofs_of(layers: &[Vec<u8>], algorithm: VerityAlgorithm) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    images::write_image(dir.path(), "t", layers);
    let merged = sealroot_merged(dir.path(), "t", algorithm);
    let dump = sealroot::dumpfile::to_bytes(&merged.tree);
    (merged.erofs, dump)
}

/// mkcomposefs 1.0.8's image (format version 1, as sealing writes) of a
/// dumpfile.
fn mkcomposefs(dump: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (src, img) = (dir.path().join("in.dump"), dir.path().join("out.cfs"));
    std::fs::write(&src, dump).unwrap();
    common::run(
        common::tool("mkcomposefs")
            .args(["--min-version=1", "--max-version=1", "--from-file"])
            .arg(&src)
            .arg(&img),
    );
    std::fs::read(&img).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_member_order_gives_one_erofs_equal_to_mkcomposefs((tree, order) in tree_and_order()) {
        let (reference, reference_dump) = erofs_of(&tree.layers(&tree.plain_order()), VerityAlgorithm::SHA256_12);
        let (ours, dump) = erofs_of(&tree.layers(&order), VerityAlgorithm::SHA256_12);
        prop_assert_eq!(String::from_utf8_lossy(&dump), String::from_utf8_lossy(&reference_dump));
        if let Some(d) = common::first_difference(&ours, &reference) {
            panic!("members {:?}: {d}", tree.members(&order));
        }
        if let Some(d) = common::first_difference(&ours, &mkcomposefs(&dump)) {
            panic!("members {:?}: against mkcomposefs of our dump: {d}\n{}", tree.members(&order), String::from_utf8_lossy(&dump));
        }
    }
}

/// The programs tree of the cfsctl cross-check, in every rotation of its
/// members and with each name of each group carrying the data: one image,
/// with sha256 and with sha512 objects.
#[test]
fn programs_in_every_rotation_and_carrier() {
    let tree = images::programs();
    let n = tree.names().len();
    for algorithm in [VerityAlgorithm::SHA256_12, images::SHA512_12] {
        let (reference, _) = erofs_of(&tree.layers(&tree.plain_order()), algorithm);
        for shift in 0..n {
            let order = Order {
                carriers: vec![shift; tree.groups.len()],
                names: (0..n).map(|k| (k + shift) % n).collect(),
                split: shift,
            };
            let (ours, _) = erofs_of(&tree.layers(&order), algorithm);
            if let Some(d) = common::first_difference(&ours, &reference) {
                panic!("{algorithm} rotation {shift}: {d}");
            }
        }
    }
}
