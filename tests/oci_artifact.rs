//! Writing sealing artifacts into a layout and finding them again; the
//! image stays untouched and other tools keep reading the layout.

mod oci_support;

use std::collections::BTreeMap;
use std::path::Path;

use oci_support::fixture::{ImageBuilder, LayerBuilder, add_to_index, write_blob};
use oci_support::{run, tool};
use sealroot::oci::artifact::{self, Role, VerityAlgorithm};
use sealroot::oci::layout::ImageLayout;
use sealroot::oci::referrers::{list_referrers, seal_artifacts};
use sealroot::oci::write::LayoutWriter;
use sealroot::oci::{Compression, MediaType, Platform, Selector, Sha256Digest};
use sealroot::verity::{FsVerityDigest, HashAlgorithm};
use serde_json::json;

fn image(dir: &Path) -> oci_support::fixture::Fixture {
    let l = LayerBuilder::new()
        .file("etc/hostname", b"sealed\n", 0o644)
        .finish();
    ImageBuilder::new()
        .layer(l, Compression::Gzip)
        .write(dir, "v1")
}

fn signatures(seed: u8) -> Vec<(Role, FsVerityDigest, Vec<u8>)> {
    let d = |b: u8| FsVerityDigest::new(HashAlgorithm::Sha256, &[b; 32]).unwrap();
    // Stand-ins for DER PKCS#7: the layout code never looks inside.
    vec![
        (Role::Manifest, d(1), vec![0x30, seed, 1]),
        (Role::Config, d(2), vec![0x30, seed, 2]),
        (Role::Merged, d(3), vec![0x30, seed, 3]),
    ]
}

/// Every file of the layout but index.json, with its content.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path()).unwrap(),
        );
    }
    out.insert(
        "oci-layout".into(),
        std::fs::read(dir.join("oci-layout")).unwrap(),
    );
    out
}

#[test]
fn seal_adds_referrers_and_changes_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let f = image(tmp.path());
    let layout = ImageLayout::open_dir(tmp.path()).unwrap();
    let img = layout
        .resolve(&Selector::Tag("v1".into()), &Platform::host())
        .unwrap();
    let before = snapshot(tmp.path());

    let writer = LayoutWriter::open(tmp.path()).unwrap();
    let subject = img.manifest.descriptor(img.descriptor.media_type.clone());
    let a1 = artifact::build(&subject, VerityAlgorithm::SHA256_12, &signatures(1), None).unwrap();
    writer.write_artifact(&a1).unwrap();
    // Idempotent: writing the same artifact again adds nothing.
    let index_once = std::fs::read(tmp.path().join("index.json")).unwrap();
    writer.write_artifact(&a1).unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("index.json")).unwrap(),
        index_once
    );
    // Re-sealing with another key adds a second artifact.
    let a2 = artifact::build(&subject, VerityAlgorithm::SHA256_12, &signatures(2), None).unwrap();
    writer.write_artifact(&a2).unwrap();

    // Image blobs are untouched; only new blobs were added.
    let after = snapshot(tmp.path());
    for (name, bytes) in &before {
        assert_eq!(after.get(name), Some(bytes), "{name} changed");
    }
    assert_eq!(
        after.len(),
        before.len() + 1 /* {} */ + 6 /* sigs */ + 2 /* manifests */
    );

    // index.json lists both, untagged, with artifactType.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for e in &entries[1..] {
        assert_eq!(e["artifactType"], MediaType::COMPOSEFS_METADATA_V1);
        assert!(e.get("annotations").is_none());
    }

    // Found again, parsed and checked against the image.
    let found = seal_artifacts(&layout, &img.manifest).unwrap();
    assert_eq!(found.len(), 2);
    let parsed: Vec<_> = found.into_iter().map(|(_, r)| r.unwrap()).collect();
    assert_eq!(
        parsed[0].entries[2].blob.digest,
        Sha256Digest::of(&[0x30, 1, 3])
    );
    assert_eq!(
        parsed[1].entries[2].blob.digest,
        Sha256Digest::of(&[0x30, 2, 3])
    );
    assert!(
        list_referrers(&layout, &img.manifest.digest(), Some("application/other"))
            .unwrap()
            .is_empty()
    );

    // The untagged form still means the image, not an artifact.
    let only = layout.resolve(&Selector::Only, &Platform::host()).unwrap();
    assert_eq!(only.manifest_digest().0, f.manifest);
}

#[test]
fn other_tools_still_read_a_sealed_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = image(&dir);
    let layout = ImageLayout::open_dir(&dir).unwrap();
    let img = layout.resolve(&Selector::Only, &Platform::host()).unwrap();
    let subject = img.manifest.descriptor(MediaType::OCI_MANIFEST);
    let a = artifact::build(&subject, VerityAlgorithm::SHA256_12, &signatures(1), None).unwrap();
    LayoutWriter::open(&dir)
        .unwrap()
        .write_artifact(&a)
        .unwrap();

    let reference = format!("oci:{}:v1", dir.display());
    let info: serde_json::Value =
        serde_json::from_slice(&run(tool("skopeo", "skopeo").args(["inspect", &reference])))
            .unwrap();
    assert_eq!(info["Digest"], f.manifest.to_string());
    // Known limitation of skopeo's oci: transport, not of the layout: with
    // more than one index.json entry, the untagged form is ambiguous to it
    // (containers/image `getManifestDescriptor`), so sealed layouts must be
    // named with a tag. sealroot itself skips referrers when untagged.
    let untagged = tool("skopeo", "skopeo")
        .args(["inspect", &format!("oci:{}", dir.display())])
        .output()
        .unwrap();
    assert!(!untagged.status.success());
    let copy = tmp.path().join("copy");
    run(tool("skopeo", "skopeo").args(["copy", &reference, &format!("oci:{}:v1", copy.display())]));
    let tags = run(tool("umoci", "umoci").args(["ls", "--layout"]).arg(&dir));
    assert_eq!(String::from_utf8(tags).unwrap().trim(), "v1");
}

#[test]
fn referrers_tag_schema_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let f = image(tmp.path());
    let layout = ImageLayout::open_dir(tmp.path()).unwrap();
    let img = layout.resolve(&Selector::Only, &Platform::host()).unwrap();
    let a = artifact::build(
        &f.descriptor(),
        VerityAlgorithm::SHA256_12,
        &signatures(1),
        None,
    )
    .unwrap();
    for (_, b) in &a.blobs {
        write_blob(tmp.path(), b);
    }
    write_blob(tmp.path(), &a.manifest);
    // A referrers index tagged sha256-<hex>, as the distribution-spec
    // fallback writes it; the artifact itself is not in index.json.
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MediaType::OCI_INDEX,
        "manifests": [a.descriptor]
    }))
    .unwrap();
    let d = write_blob(tmp.path(), &idx);
    add_to_index(
        tmp.path(),
        json!({"mediaType": MediaType::OCI_INDEX, "digest": d.to_string(), "size": idx.len(),
               "annotations": {"org.opencontainers.image.ref.name": format!("sha256-{}", f.manifest.to_hex())}}),
    );
    let found = seal_artifacts(&layout, &img.manifest).unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].1.is_ok());
    // And the referrers tag does not count as a second image.
    assert!(layout.resolve(&Selector::Only, &Platform::host()).is_ok());
}

#[test]
fn writes_refuse_broken_layouts_and_repair_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(LayoutWriter::open(tmp.path()).is_err());
    let f = image(tmp.path());
    let w = LayoutWriter::open(tmp.path()).unwrap();
    // A corrupt existing blob is replaced, atomically.
    let path = f.blob(&f.config);
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, b"garbage").unwrap();
    assert_eq!(w.write_blob(&good).unwrap(), f.config);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    // An invalid index.json is left alone.
    std::fs::write(
        tmp.path().join("index.json"),
        b"{\"schemaVersion\":1,\"manifests\":[]}",
    )
    .unwrap();
    let a = artifact::build(
        &f.descriptor(),
        VerityAlgorithm::SHA256_12,
        &signatures(1),
        None,
    )
    .unwrap();
    let e = w.write_artifact(&a).unwrap_err().to_string();
    assert!(e.contains("not a valid image index"), "{e}");
    assert_eq!(
        std::fs::read(tmp.path().join("index.json")).unwrap(),
        b"{\"schemaVersion\":1,\"manifests\":[]}"
    );
    // No temporary files are left behind.
    let stray: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".sealroot-"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}
