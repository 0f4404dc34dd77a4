//! Reading layouts and archives: resolution, platform choice, tamper
//! detection, and agreement with skopeo.

mod oci_support;

use oci_support::fixture::{ImageBuilder, LayerBuilder, write_index};
use oci_support::memtree::MemorySink;
use oci_support::{flip_byte, run, tool};
use sealroot::oci::import::{ImportError, import_layers};
use sealroot::oci::layer::LayerError;
use sealroot::oci::layout::{ImageLayout, LayoutError};
use sealroot::oci::{
    Compression, ImageReference, ManifestDigest, Platform, Selector, Sha256Digest,
};

fn small_image(content: &[u8]) -> ImageBuilder {
    let l1 = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/os-release", b"ID=test\n", 0o644)
        .finish();
    let l2 = LayerBuilder::new()
        .file("usr/lib/data", content, 0o644)
        .finish();
    ImageBuilder::new()
        .layer(l1, Compression::Gzip)
        .layer(l2, Compression::Zstd)
}

fn host() -> Platform {
    "linux/amd64".parse().unwrap()
}

#[test]
fn resolves_by_tag_digest_and_sole_image() {
    let tmp = tempfile::tempdir().unwrap();
    let f = small_image(&[1; 100]).write(tmp.path(), "v1");
    let layout = ImageLayout::open_dir(tmp.path()).unwrap();
    for sel in [
        Selector::Tag("v1".into()),
        Selector::Only,
        Selector::Digest(ManifestDigest(f.manifest)),
    ] {
        let img = layout.resolve(&sel, &host()).unwrap();
        assert_eq!(img.manifest_digest().0, f.manifest);
        assert_eq!(img.manifest.bytes(), &f.manifest_bytes[..]);
        assert_eq!(img.config.digest(), f.config);
        assert_eq!(img.layers().len(), 2);
    }
    let e = layout
        .resolve(&Selector::Tag("v2".into()), &host())
        .unwrap_err();
    assert!(matches!(e, LayoutError::NoSuchTag { .. }));
    assert!(e.to_string().contains("tags present: v1"), "{e}");

    // A second image makes the untagged form ambiguous.
    small_image(&[2; 100]).write(tmp.path(), "v2");
    let e = layout.resolve(&Selector::Only, &host()).unwrap_err();
    assert!(
        e.to_string().contains("holds 2 images") && e.to_string().contains("v1, v2"),
        "{e}"
    );
}

#[test]
fn reference_syntax_opens_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let f = small_image(b"x").write(tmp.path(), "latest");
    let r: ImageReference = format!("oci:{}:latest", tmp.path().display())
        .parse()
        .unwrap();
    let img = ImageLayout::open(&r)
        .unwrap()
        .resolve(&r.selector, &host())
        .unwrap();
    assert_eq!(img.manifest_digest().0, f.manifest);
    let r: ImageReference = format!("oci:{}@{}", tmp.path().display(), f.manifest)
        .parse()
        .unwrap();
    let img = ImageLayout::open(&r)
        .unwrap()
        .resolve(&r.selector, &host())
        .unwrap();
    assert_eq!(img.manifest_digest().0, f.manifest);
}

#[test]
fn multi_platform_index_selects_by_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let amd = small_image(b"amd").write_blobs(tmp.path());
    let arm = small_image(b"arm").arch("arm64").write_blobs(tmp.path());
    let index = write_index(
        tmp.path(),
        &[(&amd, "amd64", None), (&arm, "arm64", Some("v8"))],
        "multi",
    );
    let layout = ImageLayout::open_dir(tmp.path()).unwrap();
    let sel = Selector::Tag("multi".into());
    let img = layout.resolve(&sel, &host()).unwrap();
    assert_eq!(img.manifest_digest().0, amd.manifest);
    assert_eq!(img.indexes[0].digest, index);
    let img = layout
        .resolve(&sel, &"linux/arm64".parse().unwrap())
        .unwrap();
    assert_eq!(img.manifest_digest().0, arm.manifest);
    assert_eq!(img.config.architecture, "arm64");
    let e = layout
        .resolve(&sel, &"linux/s390x".parse().unwrap())
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("linux/amd64, linux/arm64/v8") && msg.contains("--platform"),
        "{msg}"
    );
    // A platform-specific manifest can also be named by digest directly.
    let img = layout
        .resolve(&Selector::Digest(ManifestDigest(arm.manifest)), &host())
        .unwrap();
    assert_eq!(img.manifest_digest().0, arm.manifest);
}

#[test]
fn skopeo_reads_the_same_image() {
    let tmp = tempfile::tempdir().unwrap();
    let f = small_image(&[7; 5000]).write(tmp.path(), "v1");
    let reference = format!("oci:{}:v1", tmp.path().display());
    let layout = ImageLayout::open_dir(tmp.path()).unwrap();
    let img = layout
        .resolve(&Selector::Tag("v1".into()), &host())
        .unwrap();

    // `skopeo inspect --raw` prints the manifest bytes as stored.
    let raw = run(tool("skopeo", "skopeo").args(["inspect", "--raw", &reference]));
    assert_eq!(raw, img.manifest.bytes());
    let config = run(tool("skopeo", "skopeo").args(["inspect", "--config", "--raw", &reference]));
    assert_eq!(config, img.config.bytes());
    let info: serde_json::Value =
        serde_json::from_slice(&run(tool("skopeo", "skopeo").args(["inspect", &reference])))
            .unwrap();
    assert_eq!(info["Digest"], f.manifest.to_string());
    let layers: Vec<String> = img.layers().map(|(d, _)| d.digest.to_string()).collect();
    assert_eq!(info["Layers"], serde_json::json!(layers));
}

#[test]
fn oci_archive_written_by_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = small_image(&[9; 70_000]).write(&dir, "v1");
    let archive = tmp.path().join("image.tar");
    run(tool("skopeo", "skopeo").args([
        "copy",
        &format!("oci:{}:v1", dir.display()),
        &format!("oci-archive:{}:v1", archive.display()),
    ]));
    let r: ImageReference = format!("oci-archive:{}:v1", archive.display())
        .parse()
        .unwrap();
    let layout = ImageLayout::open(&r).unwrap();
    let img = layout.resolve(&r.selector, &host()).unwrap();
    // skopeo copies OCI to OCI without rewriting: same manifest digest.
    assert_eq!(img.manifest_digest().0, f.manifest);
    let from_archive = import_layers(&layout, &img, &MemorySink::default()).unwrap();
    let dir_layout = ImageLayout::open_dir(&dir).unwrap();
    let dir_img = dir_layout.resolve(&Selector::Only, &host()).unwrap();
    let from_dir = import_layers(&dir_layout, &dir_img, &MemorySink::default()).unwrap();
    let changes = |v: &[sealroot::oci::import::ImportedLayer]| {
        v.iter().map(|l| l.changes.clone()).collect::<Vec<_>>()
    };
    assert_eq!(changes(&from_archive), changes(&from_dir));

    // Compressed archives are refused with advice.
    let gz = tmp.path().join("image.tar.gz");
    let data = std::fs::read(&archive).unwrap();
    std::fs::write(
        &gz,
        oci_support::fixture::compress(&data, Compression::Gzip),
    )
    .unwrap();
    let e = ImageLayout::open_archive(&gz).unwrap_err().to_string();
    assert!(
        e.contains("gzip-compressed") && e.contains("gzip -d"),
        "{e}"
    );
}

#[test]
fn tampered_layer_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let f = small_image(&[3; 3000]).write(tmp.path(), "v1");
    flip_byte(&f.blob(&f.layers[0]), 40);
    let layout = ImageLayout::open_dir(tmp.path()).unwrap();
    let img = layout.resolve(&Selector::Only, &host()).unwrap();
    let e = import_layers(&layout, &img, &MemorySink::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&f.layers[0].to_string()), "{msg}");
    assert!(msg.contains("layer 1 of 2"), "{msg}");
}

#[test]
fn tampered_manifest_and_config_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let f = small_image(b"m").write(tmp.path(), "v1");
    let layout = ImageLayout::open_dir(tmp.path()).unwrap();

    // A changed byte in the config (inside a JSON string, still valid JSON).
    let config = f.blob(&f.config);
    let text = std::fs::read(&config).unwrap();
    let pos = text.windows(4).position(|w| w == b"test").unwrap();
    flip_byte(&config, pos);
    let e = layout
        .resolve(&Selector::Only, &host())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&f.config.to_string()) && e.contains("config of image"),
        "{e}"
    );
    assert!(e.contains("was modified"), "{e}");
    flip_byte(&config, pos);

    let manifest = f.blob(&f.manifest);
    flip_byte(&manifest, 10);
    let e = layout
        .resolve(&Selector::Only, &host())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&f.manifest.to_string()) && e.contains("image manifest"),
        "{e}"
    );
    flip_byte(&manifest, 10);

    std::fs::remove_file(f.blob(&f.layers[1])).unwrap();
    let img = layout.resolve(&Selector::Only, &host()).unwrap();
    let e = import_layers(&layout, &img, &MemorySink::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&f.layers[1].to_string()) && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn wrong_diff_id_stops_import() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = small_image(b"d");
    b.diff_ids = Some(vec![Sha256Digest::of(b"not it"), Sha256Digest::of(b"x")]);
    b.write(tmp.path(), "v1");
    let layout = ImageLayout::open_dir(tmp.path()).unwrap();
    let img = layout.resolve(&Selector::Only, &host()).unwrap();
    let e = import_layers(&layout, &img, &MemorySink::default()).unwrap_err();
    assert!(
        matches!(e, ImportError::Layer(LayerError::DiffId { .. })),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&Sha256Digest::of(b"not it").to_string())
    );
}

#[test]
fn not_a_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let e = ImageLayout::open_dir(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("no oci-layout file"), "{e}");
    std::fs::write(
        tmp.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let e = ImageLayout::open_dir(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("version 1"), "{e}");
}

#[test]
fn malicious_layer_names_layer_and_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let evil = LayerBuilder::new()
        .file("ok", b"fine", 0o644)
        .raw(
            tar::EntryType::Regular,
            b"../../../etc/cron.d/x",
            b"",
            b"* * * * * root sh",
        )
        .finish();
    let f = ImageBuilder::new()
        .layer(evil, Compression::Gzip)
        .write(tmp.path(), "evil");
    let layout = ImageLayout::open_dir(tmp.path()).unwrap();
    let img = layout.resolve(&Selector::Only, &host()).unwrap();
    let e = import_layers(&layout, &img, &MemorySink::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&f.layers[0].to_string()), "{e}");
    assert!(
        e.contains("\"../../../etc/cron.d/x\"") && e.contains("climbs above"),
        "{e}"
    );
}
