//! The repository's importer: the pipelined layer reader gives exactly the
//! changes of the sequential one (`oci::import`), objects land under their
//! fs-verity digest (fsverity-utils), and failures name the entry.

mod oci_support;
mod repo_support;

use oci_support::fixture::{ImageBuilder, LayerBuilder};
use oci_support::{flip_byte, run, tool};
use repo_support::{TAG, bytes, sample_image};
use sealroot::oci::layout::ImageLayout;
use sealroot::oci::sink::DigestOnlySink;
use sealroot::oci::{Compression, Platform, Selector, import};
use sealroot::repo::{Location, Repository};
use sealroot::repo::{image, pipeline};

fn open(dir: &std::path::Path) -> (ImageLayout, sealroot::oci::layout::ResolvedImage) {
    let layout = ImageLayout::open_dir(dir).unwrap();
    let img = layout
        .resolve(&Selector::Tag(TAG.into()), &Platform::host())
        .unwrap();
    (layout, img)
}

/// One big layer with many files of all sizes around the thresholds
/// (inline 64, buffered 8 MiB), so read-ahead, inline and streamed paths
/// interleave.
fn many_files(dir: &std::path::Path) {
    let mut l = LayerBuilder::new();
    l.dir("d", 0o755);
    let sizes = [
        0usize,
        1,
        64,
        65,
        4095,
        4096,
        4097,
        100_000,
        8 << 20,
        (8 << 20) + 1,
        3 << 20,
    ];
    for i in 0..600usize {
        let size = if i < sizes.len() {
            sizes[i]
        } else {
            65 + (i * 7919) % 70_000
        };
        l.file(&format!("d/f{i}"), &bytes(i as u64, size), 0o644);
        if i % 50 == 0 {
            l.hardlink(&format!("d/h{i}"), &format!("d/f{i}"));
        }
    }
    let tar = l.finish();
    ImageBuilder::new()
        .layer(tar, Compression::Zstd)
        .write(dir, TAG);
}

#[test]
fn pipelined_import_equals_sequential() {
    for (name, build) in [
        (
            "sample",
            &(|d: &std::path::Path| {
                sample_image(d);
            }) as &dyn Fn(&std::path::Path),
        ),
        ("many", &many_files),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let (layout, img) = open(tmp.path());
        let sink = DigestOnlySink::default();
        let seq = import::import_layers(&layout, &img, &sink).unwrap();
        let par = pipeline::import_layers(&layout, &img, &sink).unwrap();
        assert_eq!(seq.len(), par.len(), "{name}");
        for (a, b) in seq.iter().zip(&par) {
            assert_eq!(a.changes, b.changes, "{name}");
            assert_eq!((a.diff_id, a.tar_size), (b.diff_id, b.tar_size));
        }
        let e1 = image::merged_from_layers(&seq).unwrap();
        let e2 = image::merged_from_layers(&par).unwrap();
        assert_eq!(e1.erofs, e2.erofs, "{name}");
    }
}

#[test]
fn objects_are_named_by_their_fsverity_digest() {
    let tmp = tempfile::tempdir().unwrap();
    many_files(&tmp.path().join("layout"));
    let (layout, img) = open(&tmp.path().join("layout"));
    let repo = create_repo(&tmp.path().join("repo"));
    let sink = repo.object_sink().unwrap();
    let merged = image::build_merged(&layout, &img, &sink).unwrap();
    let stats = sink.stats();
    // 600 files, 3 of them inline (0, 1 and 64 bytes), hardlinks share.
    assert_eq!(stats.added + stats.existing, 597, "{stats:?}");
    // Every object's name is its content's digest by fsverity-utils.
    let objects = sealroot::repo::scan::objects(&repo).unwrap();
    assert!(objects.unexpected.is_empty(), "{:?}", objects.unexpected);
    let objects = objects.found;
    assert_eq!(objects.len() as u64, stats.added);
    for f in objects.iter().step_by(37) {
        let path = f.path();
        let out =
            run(tool("fsverity", "fsverity").args(["digest", "--compact", path.to_str().unwrap()]));
        assert_eq!(String::from_utf8(out).unwrap().trim(), f.name);
    }
    // The image references exactly the stored objects.
    let refs = sealroot::repo::fsck::image_objects(&merged.erofs).unwrap();
    let names: std::collections::BTreeSet<String> = objects.into_iter().map(|f| f.name).collect();
    assert_eq!(refs, names);
    // Importing again stores nothing new.
    let again = repo.object_sink().unwrap();
    image::build_merged(&layout, &img, &again).unwrap();
    assert_eq!(again.stats().added, 0);
    assert_eq!(
        std::fs::read_dir(repo.root().join("tmp")).unwrap().count(),
        0,
        "no temporary files left"
    );
}

#[test]
fn a_damaged_layer_fails_naming_it_and_leaves_no_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = sample_image(&dir);
    flip_byte(&f.blob(&f.layers[0]), 300);
    let (layout, img) = open(&dir);
    let repo = create_repo(&tmp.path().join("repo"));
    let err = image::build_merged(&layout, &img, &repo.object_sink().unwrap()).unwrap_err();
    assert!(err.to_string().contains(&f.layers[0].to_string()), "{err}");
    assert_eq!(
        std::fs::read_dir(repo.root().join("tmp")).unwrap().count(),
        0
    );
}

fn create_repo(path: &std::path::Path) -> Repository {
    Repository::open_or_create(&Location::Repo(path.to_owned()), None, &mut |_| {}).unwrap()
}
