//! What sealing does to skopeo and umoci, the tools people use on the same
//! layout, and what `sealroot oci seal` tells them about it.
//!
//! Sealing adds one untagged index.json entry (the artifact). skopeo's
//! `oci:DIR` without a tag only resolves while index.json has a single entry
//! (containers/image `getManifestDescriptor`: "more than one image in oci,
//! choose an image"), so sealing breaks that spelling, and `oci seal` says
//! which one works: `oci:DIR:TAG`, or for an untagged image `oci:DIR:@N`
//! (skopeo 1.18, trixie, from `scripts/reference-tools`; bookworm's 1.9
//! has no such form). umoci names images by tag only, so nothing changes
//! for it: `ls`, `stat` and `gc` work on a sealed layout, and `gc` keeps
//! the artifact (it is reachable from index.json). Real tools throughout:
//! the host's skopeo 1.9 and umoci, and Debian trixie's skopeo 1.18.

// Both support modules (common, oci_support) load the one
// tests/common/reference_tools.rs.
#![allow(clippy::duplicate_mod)]

mod common;
mod oci_support;
mod repo_support;

use std::process::{Command, Output};

use oci_support::{run, tool};
use repo_support::{Keys, TAG, sample_image, sr, sr_ok};

/// The manifest digest `skopeo inspect REF` reports, or its error output.
fn skopeo_digest(skopeo: &mut Command, reference: &str) -> Result<String, String> {
    let out = skopeo
        .args(["inspect", reference])
        .output()
        .expect("run skopeo");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(info["Digest"].as_str().unwrap().to_owned())
}

/// A named way to start one skopeo.
type Skopeo = (&'static str, fn() -> Command);

/// Both skopeos: the host's (bookworm: 1.9) and trixie's (1.18).
fn skopeos() -> [Skopeo; 2] {
    [
        ("host skopeo", || tool("skopeo", "skopeo")),
        ("skopeo 1.18", || common::tool("skopeo")),
    ]
}

fn seal(reference: &str, keys: &Keys) -> Output {
    let (key, cert) = (keys.key(), keys.cert());
    let out = sr(&["oci", "seal", reference, "--key", &key, "--cert", &cert]);
    assert!(
        out.status.success(),
        "sealroot oci seal {reference} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn notes(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("note:"))
        .map(str::to_owned)
        .collect()
}

fn host_skopeo_is_1_9() -> bool {
    let out = run(tool("skopeo", "skopeo").arg("--version"));
    String::from_utf8_lossy(&out).contains("version 1.9.")
}

#[test]
fn tagged_image_seal_names_the_tag_skopeo_needs_and_umoci_is_unaffected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = sample_image(&dir);
    let manifest = f.manifest.to_string();
    let untagged = format!("oci:{}", dir.display());
    let tagged = format!("oci:{}:{TAG}", dir.display());
    for (name, skopeo) in skopeos() {
        assert_eq!(
            skopeo_digest(&mut skopeo(), &untagged).as_deref(),
            Ok(manifest.as_str()),
            "{name} before sealing"
        );
    }

    let keys = Keys::new(&tmp.path().join("k1"), "p256", "CN=first");
    let out = seal(&tagged, &keys);
    assert_eq!(
        notes(&out),
        [format!(
            "note: skopeo now needs the tag: {tagged} (without it, it finds more than one \
             index.json entry now that the artifact is listed)"
        )]
    );
    for (name, skopeo) in skopeos() {
        let err = skopeo_digest(&mut skopeo(), &untagged).unwrap_err();
        assert!(err.contains("more than one image"), "{name}: {err}");
        assert_eq!(
            skopeo_digest(&mut skopeo(), &tagged).as_deref(),
            Ok(manifest.as_str()),
            "{name} with the tag the note names"
        );
    }
    // A second seal: skopeo's view did not change again, no note.
    let keys2 = Keys::new(&tmp.path().join("k2"), "p256", "CN=second");
    assert!(notes(&seal(&tagged, &keys2)).is_empty());

    // umoci: tags only, the artifacts are no tag.
    let tags = run(tool("umoci", "umoci").args(["ls", "--layout"]).arg(&dir));
    assert_eq!(String::from_utf8(tags).unwrap().trim(), TAG);
    // stat reads the image's manifest and config through umoci's own index
    // lookup (unpack would too, but restoring the sample's
    // security.capability needs a filesystem that takes it).
    let stat = run(tool("umoci", "umoci").args([
        "stat",
        "--json",
        "--image",
        &format!("{}:{TAG}", dir.display()),
    ]));
    let stat: serde_json::Value = serde_json::from_slice(&stat).unwrap();
    assert!(stat["history"].is_array(), "{stat}");
    run(tool("umoci", "umoci").args(["gc", "--layout"]).arg(&dir));
    let verified = sr_ok(&[
        "oci",
        "verify",
        &tagged,
        "--cert",
        &keys.cert(),
        "--cert",
        &keys2.cert(),
    ]);
    assert_eq!(
        verified.matches("VERIFIED").count(),
        2,
        "after umoci gc:\n{verified}"
    );
}

#[test]
fn untagged_image_seal_names_the_index_position() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = sample_image(&dir);
    let manifest = f.manifest.to_string();
    // The same image without its tag (as `skopeo copy ... oci:DIR` of an
    // untagged source, or an image builder, leaves it).
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"][0]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let untagged = format!("oci:{}", dir.display());
    for (name, skopeo) in skopeos() {
        assert_eq!(
            skopeo_digest(&mut skopeo(), &untagged).as_deref(),
            Ok(manifest.as_str()),
            "{name} before sealing"
        );
    }

    let keys = Keys::new(&tmp.path().join("k1"), "p256", "CN=first");
    let out = seal(&untagged, &keys);
    let by_position = format!("{untagged}:@0");
    assert_eq!(
        notes(&out),
        [format!(
            "note: skopeo no longer resolves the untagged {untagged} (index.json lists the \
             artifact too): name the image {by_position} (skopeo 1.18; bookworm's skopeo 1.9 \
             needs a tagged image, docs/oci.md)"
        )]
    );
    for (name, skopeo) in skopeos() {
        let err = skopeo_digest(&mut skopeo(), &untagged).unwrap_err();
        assert!(err.contains("more than one image"), "{name}: {err}");
    }
    assert_eq!(
        skopeo_digest(&mut common::tool("skopeo"), &by_position).as_deref(),
        Ok(manifest.as_str()),
        "skopeo 1.18 with the spelling the note names"
    );
    if host_skopeo_is_1_9() {
        // What the note says of bookworm's skopeo.
        assert!(skopeo_digest(&mut tool("skopeo", "skopeo"), &by_position).is_err());
    }
    // sealroot itself still takes the untagged form (referrers are skipped).
    let verified = sr_ok(&["oci", "verify", &untagged, "--cert", &keys.cert()]);
    assert!(verified.contains("VERIFIED"), "{verified}");
}
