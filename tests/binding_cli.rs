//! Binding (docs/sealing.md "Binding", issue 10): the binding record
//! `sealroot oci seal` puts into its artifact, inline sealing (`oci seal
//! --inline`), how `oci verify` reports binding, and `deploy` refusing
//! unbound images unless `--allow-unbound`. Cross-checked with openssl
//! (every PKCS#7), fsverity-utils (every signed digest) and skopeo (inline
//! metadata survives `skopeo copy`).

mod oci_support;
mod repo_support;

use std::path::Path;

use base64::Engine as _;
use oci_support::{run, tool};
use repo_support::{
    Keys, TAG, image_ref, openssl_verifies, sample_image, seal, sr, sr_fails, sr_ok,
};
use sealroot::oci::artifact::{self, SealArtifact};
use sealroot::oci::inline::InlineSeal;
use sealroot::oci::write::LayoutWriter;
use sealroot::oci::{ImageConfig, ImageManifest, Stored};
use serde_json::Value;

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()
}

fn index(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

/// `fsverity digest --compact` of `bytes` (fsverity-utils, the reference).
fn fsverity_digest(tmp: &Path, name: &str, bytes: &[u8]) -> String {
    let path = tmp.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out =
        run(tool("fsverity", "fsverity").args(["digest", "--compact", path.to_str().unwrap()]));
    String::from_utf8(out).unwrap().trim().to_owned()
}

fn verify_json(image: &str, cert: &str) -> Value {
    serde_json::from_str(&sr_ok(&["oci", "verify", image, "--cert", cert, "--json"])).unwrap()
}

#[test]
fn artifact_carries_a_signed_binding_record_of_manifest_config_and_erofs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k"), "rsa2048", "CN=binding signer");
    let out = seal(&dir, &keys, &[]);
    let m: Value = serde_json::from_slice(&blob(&dir, out["artifact"].as_str().unwrap())).unwrap();
    // The spec's three signature layers, unchanged; the record in the
    // artifact's annotations.
    assert_eq!(m["layers"].as_array().unwrap().len(), 3);
    let ann = &m["annotations"];
    let record = ann["sealroot.binding.v1"].as_str().unwrap();
    let r: Value = serde_json::from_str(record).unwrap();
    assert_eq!(r["mediaType"], "application/vnd.sealroot.binding.v1+json");
    assert_eq!(r["manifest"], f.manifest.to_string());
    assert_eq!(r["config"], f.config.to_string());
    assert_eq!(r["algorithm"], "fsverity-sha256-12");
    assert_eq!(r["merged"], out["digests"]["merged"]);
    // Its digest is fsverity-utils' digest of the record bytes, and its
    // PKCS#7 verifies with openssl.
    let digest = fsverity_digest(tmp.path(), "record", record.as_bytes());
    assert_eq!(
        ann["sealroot.binding.v1.fsverity-sha256-12"],
        digest.as_str()
    );
    assert_eq!(out["binding"]["digest"], digest.as_str());
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            ann["sealroot.binding.v1.fsverity-sha256-12.sig"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    openssl_verifies(tmp.path(), "record", &der, &digest, &keys.cert());

    // oci verify: bound by the record, which the certificate verifies.
    let j = verify_json(&image_ref(&dir), &keys.cert());
    assert_eq!(j["ok"], true, "{j:#}");
    assert_eq!(j["binding"]["bound"], true);
    assert_eq!(j["binding"]["by"][0]["by"], "binding-record");
    assert_eq!(j["binding"]["by"][0]["artifact"], out["artifact"]);
    assert!(
        j["artifacts"][0]["binding"]["verified_by"]["subject"]
            .as_str()
            .unwrap()
            .contains("binding signer")
    );
    let text = sr_ok(&["oci", "verify", &image_ref(&dir), "--cert", &keys.cert()]);
    assert!(text.contains("binding record ok, signed by"), "{text}");
    assert!(
        text.contains("bound: yes, by the binding record of artifact"),
        "{text}"
    );
}

/// An artifact as sealroot wrote it before binding records: every
/// signature verifies, `oci verify` passes but says it is not bound, and
/// `deploy` refuses it unless `--allow-unbound`.
#[test]
fn unbound_artifacts_are_reported_and_refused_by_deploy_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=old signer");
    let out = seal(&dir, &keys, &[]);
    // Rebuild the artifact without its record and replace the sealed one.
    let sealed = out["artifact"].as_str().unwrap();
    let a =
        SealArtifact::parse(&Stored::<ImageManifest>::parse(blob(&dir, sealed)).unwrap()).unwrap();
    let sigs: Vec<_> = a
        .entries
        .iter()
        .map(|e| (e.role, e.digest, blob(&dir, &e.blob.digest.to_string())))
        .collect();
    let old_style = artifact::build(&a.subject, a.algorithm, &sigs, None).unwrap();
    let mut idx = index(&dir);
    idx["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["digest"] != sealed);
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    LayoutWriter::open(&dir)
        .unwrap()
        .write_artifact(&old_style)
        .unwrap();

    let j = verify_json(&image_ref(&dir), &keys.cert());
    assert_eq!(j["ok"], true, "{j:#}");
    assert_eq!(j["binding"]["bound"], false);
    assert_eq!(j["artifacts"][0]["binding"], Value::Null);
    let text = sr_ok(&["oci", "verify", &image_ref(&dir), "--cert", &keys.cert()]);
    assert!(text.contains("bound: NO"), "{text}");

    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    let sys = sysroot.to_str().unwrap();
    let cert = keys.cert();
    let r = image_ref(&dir);
    let t = sr_fails(&["deploy", &r, "--sysroot", sys, "--cert", &cert], 1);
    assert!(
        t.contains("is not bound") && t.contains("--allow-unbound") && t.contains("Reseal"),
        "{t}"
    );
    assert!(
        !sysroot.join("sealroot/deployments").exists() || {
            std::fs::read_dir(sysroot.join("sealroot/deployments"))
                .unwrap()
                .count()
                == 0
        }
    );
    let report: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &r,
        "--sysroot",
        sys,
        "--cert",
        &cert,
        "--allow-unbound",
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["bound_by"], Value::Null);
    let text = sr_ok(&[
        "deploy",
        &r,
        "--sysroot",
        sys,
        "--cert",
        &cert,
        "--allow-unbound",
    ]);
    assert!(text.contains("UNBOUND"), "{text}");
}

#[test]
fn inline_seal_writes_a_new_signed_manifest_beside_the_original() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k"), "rsa2048", "CN=inline signer");
    let (key, cert) = (keys.key(), keys.cert());
    let r = image_ref(&dir);
    let out: Value = serde_json::from_str(&sr_ok(&[
        "oci", "seal", &r, "--inline", "--tag", "sealed", "--key", &key, "--cert", &cert, "--json",
    ]))
    .unwrap();
    assert_eq!(out["originalManifest"], f.manifest.to_string());
    let new_manifest = out["manifest"].as_str().unwrap();
    assert_ne!(new_manifest, f.manifest.to_string());

    // The original: same bytes, same tag; the new manifest tagged "sealed".
    let idx = index(&dir);
    let tagged = |tag: &str| -> Vec<String> {
        idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .map(|d| d["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(tagged(TAG), [f.manifest.to_string()]);
    assert_eq!(tagged("sealed"), [new_manifest.to_owned()]);
    assert_eq!(blob(&dir, &f.manifest.to_string()), f.manifest_bytes);

    // The new manifest: the same layers, a new (labelled) config, the
    // spec's inline annotations.
    let bytes = blob(&dir, new_manifest);
    let m = Stored::<ImageManifest>::parse(bytes.clone()).unwrap();
    let original = Stored::<ImageManifest>::parse(f.manifest_bytes.clone()).unwrap();
    assert_eq!(m.layers, original.layers);
    assert_eq!(m.config.digest.to_string(), out["config"].as_str().unwrap());
    let config_bytes = blob(&dir, &m.config.digest.to_string());
    let config = Stored::<ImageConfig>::parse(config_bytes.clone()).unwrap();
    assert_eq!(config.seal_label(), out["digests"]["merged"].as_str());
    assert_eq!(
        config.rootfs,
        Stored::<ImageConfig>::parse(blob(&dir, &f.config.to_string()))
            .unwrap()
            .rootfs
    );
    let seal = InlineSeal::parse(&m).unwrap().unwrap();
    assert!(seal.is_signed());
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let keys_of = |o: &Value| -> Vec<String> {
        o.as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("composefs."))
            .cloned()
            .collect()
    };
    assert_eq!(
        keys_of(&v["annotations"]),
        [
            "composefs.merged.erofs.v1.fsverity-sha256-12",
            "composefs.merged.erofs.v1.fsverity-sha256-12.sig"
        ]
    );
    assert_eq!(
        keys_of(&v["config"]["annotations"]),
        [
            "composefs.config.fsverity-sha256-12",
            "composefs.config.fsverity-sha256-12.sig"
        ]
    );
    // The config digest is fsverity-utils' over the new config's bytes; the
    // merged one is what an artifact seal of the same image signs; both
    // base64-decoded signatures verify with openssl.
    let config_digest = fsverity_digest(tmp.path(), "config", &config_bytes);
    assert_eq!(seal.config.digest.to_hex(), config_digest);
    assert_eq!(out["digests"]["config"], config_digest.as_str());
    let artifact_seal = seal_json_merged(&dir, &keys);
    assert_eq!(seal.merged.digest.to_hex(), artifact_seal);
    for (name, e) in [("config", &seal.config), ("merged", &seal.merged)] {
        let b64 = v
            .pointer(&format!(
                "/{}/composefs.{}.fsverity-sha256-12.sig",
                if name == "config" {
                    "config/annotations"
                } else {
                    "annotations"
                },
                if name == "config" {
                    "config"
                } else {
                    "merged.erofs.v1"
                }
            ))
            .unwrap()
            .as_str()
            .unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(Some(der.clone()), e.signature);
        openssl_verifies(tmp.path(), name, &der, &e.digest.to_hex(), &cert);
    }

    // oci verify: inline metadata verified, bound by the config label.
    let sealed_ref = format!("oci:{}:sealed", dir.display());
    let j = verify_json(&sealed_ref, &cert);
    assert_eq!(j["ok"], true, "{j:#}");
    assert_eq!(j["inline"]["verified"], true);
    assert_eq!(
        j["binding"]["by"],
        serde_json::json!([{"by": "config-label"}])
    );
    assert_eq!(j["artifacts"], serde_json::json!([]));

    // An existing tag is refused unless replaced.
    let other = Keys::new(&tmp.path().join("k2"), "p256", "CN=second signer");
    let (key2, cert2) = (other.key(), other.cert());
    let t = sr_fails(
        &[
            "oci", "seal", &r, "--inline", "--tag", "sealed", "--key", &key2, "--cert", &cert2,
        ],
        3,
    );
    assert!(
        t.contains("tag \"sealed\" already names") && t.contains("--replace-tag"),
        "{t}"
    );
    assert_eq!(tagged("sealed"), [new_manifest.to_owned()]);
    let again: Value = serde_json::from_str(&sr_ok(&[
        "oci",
        "seal",
        &r,
        "--inline",
        "--tag",
        "sealed",
        "--replace-tag",
        "--key",
        &key2,
        "--cert",
        &cert2,
        "--json",
    ]))
    .unwrap();
    assert_eq!(again["replacedTag"], new_manifest);
    let t = sr_fails(
        &[
            "oci", "seal", &r, "--inline", "--tag", "bad tag", "--key", &key, "--cert", &cert,
        ],
        3,
    );
    assert!(t.contains("not a valid tag"), "{t}");
    let t = String::from_utf8_lossy(
        &sr(&[
            "oci", "seal", &r, "--inline", "--key", &key, "--cert", &cert,
        ])
        .stderr,
    )
    .into_owned();
    assert!(t.contains("--tag"), "{t}");
}

/// The merged digest an artifact seal of the same image signs.
fn seal_json_merged(dir: &Path, keys: &Keys) -> String {
    seal(dir, keys, &[])["digests"]["merged"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Inline metadata travels with the manifest: `skopeo copy` to another
/// layout keeps the bytes (so the annotations), skopeo shows them, and the
/// copy verifies and deploys.
#[test]
fn inline_metadata_survives_skopeo_copy_and_deploys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=inline signer");
    let (key, cert) = (keys.key(), keys.cert());
    let out: Value = serde_json::from_str(&sr_ok(&[
        "oci",
        "seal",
        &image_ref(&dir),
        "--inline",
        "--tag",
        "sealed",
        "--key",
        &key,
        "--cert",
        &cert,
        "--json",
    ]))
    .unwrap();
    let manifest = out["manifest"].as_str().unwrap();
    let copy = tmp.path().join("copy");
    run(tool("skopeo", "skopeo").args([
        "copy",
        &format!("oci:{}:sealed", dir.display()),
        &format!("oci:{}:copied", copy.display()),
    ]));
    let raw = run(tool("skopeo", "skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:copied", copy.display()),
    ]));
    assert_eq!(
        raw,
        blob(&dir, manifest),
        "skopeo copy changed the manifest"
    );
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert!(
        v["annotations"]["composefs.merged.erofs.v1.fsverity-sha256-12.sig"].is_string(),
        "{v:#}"
    );
    let copied = format!("oci:{}:copied", copy.display());
    let j = verify_json(&copied, &cert);
    assert_eq!(j["ok"], true, "{j:#}");
    assert_eq!(j["binding"]["bound"], true);

    // Deploy the copy: no artifact, deployment.json format 2 naming none.
    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    let sys = sysroot.to_str().unwrap();
    let report: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &copied,
        "--sysroot",
        sys,
        "--cert",
        &cert,
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["deployment"]["artifact"], Value::Null);
    assert_eq!(report["deployment"]["manifest"], manifest);
    assert_eq!(
        report["bound_by"],
        serde_json::json!({"by": "config-label"})
    );
    assert_eq!(
        report["deployment"]["image"].as_str().unwrap(),
        out["digests"]["merged"].as_str().unwrap()
    );
    let hex = &manifest[7..];
    let dj: Value = serde_json::from_slice(
        &std::fs::read(sysroot.join(format!("sealroot/deployments/{hex}/deployment.json")))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (dj["format"].clone(), dj["artifact"].clone()),
        (2.into(), Value::Null)
    );
    // fsck verifies the inline signatures; gc keeps manifest, config, image.
    let fsck = sr_ok(&["repo", "fsck", "--sysroot", sys, "--cert", &cert]);
    assert!(
        fsck.contains("2 signatures verified; 0 object signatures verified; 0 problems"),
        "{fsck}"
    );
    let gc: Value =
        serde_json::from_str(&sr_ok(&["repo", "gc", "--sysroot", sys, "--json"])).unwrap();
    // (It removes objects of files a later layer deleted: deploy stores
    // them while streaming, docs/repository.md "Atomicity".)
    assert!(
        gc["removed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.as_str().unwrap().contains("/objects/")),
        "{gc:#}"
    );
    assert_eq!(
        (gc["kept_blobs"].clone(), gc["kept_images"].clone()),
        (2.into(), 1.into())
    );
    // A text deploy says so.
    let text = sr_ok(&["deploy", &copied, "--sysroot", sys, "--cert", &cert]);
    assert!(
        text.contains("sealed inline") && text.contains("bound      by the config"),
        "{text}"
    );
}
