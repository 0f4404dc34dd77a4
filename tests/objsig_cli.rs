//! Per-object signatures on the host: `oci seal --object-signatures`
//! writes the bundle layer, `oci verify` checks every object's signature
//! and the coverage, `deploy` copies the bundle into the repository and
//! `repo fsck` accepts it. The kernel's side (attaching, IPE) is
//! `tests/vm_ipe.rs`.

mod oci_support;
mod repo_support;

use std::path::Path;

use repo_support::{Keys, image_ref, sample_image, seal, sr, sr_fails, sr_ok};
use sealroot::crypto::key::KeySigner;
use sealroot::crypto::{Cert, PrivateKey};
use sealroot::objsig::{self, Bundle};
use sealroot::oci::artifact::{self, Role, SealArtifact};
use sealroot::oci::{Descriptor, ImageManifest, Stored};
use sealroot::verity::{BlockSize, FsVerityDigest};
use serde_json::Value;

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()
}

fn artifact(dir: &Path, digest: &str) -> SealArtifact {
    SealArtifact::parse(&Stored::<ImageManifest>::parse(blob(dir, digest)).unwrap()).unwrap()
}

fn verify_json(dir: &Path, cert: &str) -> (Option<i32>, Value) {
    let r = image_ref(dir);
    let out = sr(&["oci", "verify", &r, "--cert", cert, "--json"]);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[test]
fn sealed_objects_verify_for_both_key_types() {
    for key_type in ["p256", "rsa2048"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("layout");
        sample_image(&dir);
        let keys = Keys::new(&tmp.path().join("k"), key_type, "CN=objects");
        let out = seal(&dir, &keys, &["--object-signatures"]);
        let o = &out["objectSignatures"];
        let count = o["count"].as_u64().unwrap();
        assert!(count >= 6, "{out}");
        // The layer: after the three signatures, our media type, the count.
        let a = artifact(&dir, out["artifact"].as_str().unwrap());
        assert_eq!(a.entries.len(), 3);
        let layer = a.extension(objsig::MEDIA_TYPE).unwrap();
        assert_eq!(layer.digest.to_string(), o["digest"].as_str().unwrap());
        assert_eq!(
            layer.annotations[objsig::COUNT_ANNOTATION],
            count.to_string()
        );
        let bundle = Bundle::parse(blob(&dir, o["digest"].as_str().unwrap())).unwrap();
        assert_eq!(bundle.len() as u64, count);
        // Every rebuilt message verifies against the certificate.
        let cert = Cert::load(Path::new(&keys.cert())).unwrap();
        for (d, _) in bundle.iter() {
            sealroot::pkcs7::verify_fsverity(&bundle.pkcs7(&d).unwrap(), &d, &cert).unwrap();
        }
        let (code, v) = verify_json(&dir, &keys.cert());
        assert_eq!(code, Some(0), "{v}");
        let os = &v["artifacts"][0]["object_signatures"];
        assert_eq!(os["objects"], count);
        assert_eq!(os["missing"], 0);
        assert_eq!(os["bad"], 0);
        assert_eq!(os["verified_by"]["subject"], "CN=objects");
        // Another key: reported untrusted, not broken.
        let other = Keys::new(&tmp.path().join("o"), key_type, "CN=other");
        let (code, v) = verify_json(&dir, &other.cert());
        assert_eq!(code, Some(1));
        assert_eq!(
            v["artifacts"][0]["object_signatures"]["untrusted_only"],
            true
        );
    }
}

#[test]
fn verify_reports_missing_and_tampered_object_signatures() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=objects");
    let out = seal(&dir, &keys, &["--object-signatures"]);
    let digest = out["artifact"].as_str().unwrap().to_owned();
    let a = artifact(&dir, &digest);
    let bundle = Bundle::parse(blob(&dir, &a.extensions[0].digest.to_string())).unwrap();

    // FORGED: an artifact with the same three signatures and a bundle that
    // lacks the last object (real sealing never writes one).
    let key = PrivateKey::load(Path::new(&keys.key())).unwrap();
    let cert = Cert::load(Path::new(&keys.cert())).unwrap().remove(0);
    let digests: Vec<FsVerityDigest> = bundle.iter().map(|(d, _)| d).collect();
    let short = objsig::build::sign_objects(
        &digests[..digests.len() - 1],
        BlockSize::DEFAULT,
        &KeySigner::new(key, "k"),
        &cert,
        &Default::default(),
        None,
        &|| {},
    )
    .unwrap();
    let sigs: Vec<(Role, FsVerityDigest, Vec<u8>)> = a
        .entries
        .iter()
        .map(|e| (e.role, e.digest, blob(&dir, &e.blob.digest.to_string())))
        .collect();
    let layer = Descriptor::for_bytes(objsig::MEDIA_TYPE, &short);
    // The original binding record too: only the bundle differs.
    let built = artifact::build_with_extensions(
        &a.subject,
        a.algorithm,
        &sigs,
        a.binding.as_ref(),
        &[(layer, short)],
    )
    .unwrap();
    sealroot::oci::write::LayoutWriter::open(&dir)
        .unwrap()
        .write_artifact(&built)
        .unwrap();
    let (code, v) = verify_json(&dir, &keys.cert());
    assert_eq!(code, Some(1), "{v}");
    let forged = v["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["artifact"] == built.descriptor.digest.to_string())
        .unwrap();
    assert_eq!(forged["object_signatures"]["missing"], 1);
    assert_eq!(
        forged["object_signatures"]["missing_examples"][0],
        digests.last().unwrap().to_string()
    );

    // The real bundle's blob altered on disk: its sha256 no longer matches.
    let path = dir
        .join("blobs/sha256")
        .join(a.extensions[0].digest.to_hex());
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let r = image_ref(&dir);
    let text = sr_fails(&["oci", "verify", &r, "--cert", &keys.cert()], 1);
    assert!(
        text.contains("objects") && text.contains("FAILED"),
        "{text}"
    );
}

#[test]
fn command_signer_signs_objects_and_deploy_keeps_the_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=hsm");
    let r = image_ref(&dir);
    let cmd = format!(
        "openssl dgst -\"$SEALROOT_SIGN_DIGEST_ALGORITHM\" -sign {}",
        keys.key()
    );
    let out: Value = serde_json::from_str(&sr_ok(&[
        "oci",
        "seal",
        &r,
        "--cert",
        &keys.cert(),
        "--sign-command",
        &cmd,
        "--object-signatures",
        "--json",
    ]))
    .unwrap();
    assert!(out["objectSignatures"]["count"].as_u64().unwrap() > 0);
    let (code, v) = verify_json(&dir, &keys.cert());
    assert_eq!(code, Some(0), "{v}");
    // A command that signs with another key fails sealing, naming an object.
    let other = Keys::new(&tmp.path().join("o"), "p256", "CN=other");
    let bad = format!("openssl dgst -sha256 -sign {}", other.key());
    let e = sr_fails(
        &[
            "oci",
            "seal",
            &r,
            "--cert",
            &keys.cert(),
            "--sign-command",
            &bad,
            "--object-signatures",
        ],
        3,
    );
    assert!(e.contains("does not verify"), "{e}");

    // Deploy on the host (no fs-verity here): the bundle lands in blobs/.
    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir_all(&sysroot).unwrap();
    let report: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &r,
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--cert",
        &keys.cert(),
        "--json",
        "--artifact",
        out["artifact"].as_str().unwrap(),
    ]))
    .unwrap();
    let bundle_digest = out["objectSignatures"]["digest"].as_str().unwrap();
    let copied = sysroot
        .join("sealroot/blobs/sha256")
        .join(bundle_digest.strip_prefix("sha256:").unwrap());
    assert!(copied.is_file(), "{report}");
    Bundle::parse(std::fs::read(&copied).unwrap()).unwrap();
    sr_ok(&[
        "repo",
        "fsck",
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--cert",
        &keys.cert(),
    ]);
}

/// An artifact sealed with `--object-signatures` carries both sealroot
/// extensions: the signed binding record (top-level annotations) and the
/// bundle (an extension layer). `oci verify` accepts both together (bound
/// by the record, every object signed), and `deploy` (with `--cert`)
/// accepts the image as bound and copies the bundle.
#[test]
fn binding_record_and_object_signatures_travel_together() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=objects");
    let out = seal(&dir, &keys, &["--object-signatures"]);
    let a = artifact(&dir, out["artifact"].as_str().unwrap());
    let binding = a
        .binding
        .as_ref()
        .expect("the artifact has a binding record");
    assert_eq!(
        binding.digest.to_hex(),
        out["binding"]["digest"].as_str().unwrap()
    );
    let layer = a.extension(objsig::MEDIA_TYPE).expect("the bundle layer");
    assert_eq!(
        layer.digest.to_string(),
        out["objectSignatures"]["digest"].as_str().unwrap()
    );
    assert_eq!(a.extensions.len(), 1);

    let (code, v) = verify_json(&dir, &keys.cert());
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["binding"]["bound"], true, "{v:#}");
    assert_eq!(v["binding"]["by"][0]["by"], "binding-record", "{v:#}");
    let c = &v["artifacts"][0];
    assert_eq!(
        c["binding"]["verified_by"]["subject"], "CN=objects",
        "{v:#}"
    );
    assert_eq!(c["object_signatures"]["missing"], 0, "{v:#}");
    assert_eq!(c["object_signatures"]["bad"], 0, "{v:#}");
    assert_eq!(
        c["object_signatures"]["verified_by"]["subject"], "CN=objects",
        "{v:#}"
    );
    let text = sr_ok(&["oci", "verify", &image_ref(&dir), "--cert", &keys.cert()]);
    assert!(text.contains("binding record ok, signed by"), "{text}");
    assert!(text.contains("objects"), "{text}");
    assert!(text.contains("bound: yes"), "{text}");

    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir_all(&sysroot).unwrap();
    let report: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &image_ref(&dir),
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--cert",
        &keys.cert(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["bound_by"]["by"], "binding-record", "{report:#}");
    assert_eq!(
        report["deployment"]["artifact"], out["artifact"],
        "{report:#}"
    );
    let copied = sysroot
        .join("sealroot/blobs/sha256")
        .join(layer.digest.to_hex());
    assert_eq!(
        Bundle::parse(std::fs::read(&copied).unwrap())
            .unwrap()
            .len() as u64,
        out["objectSignatures"]["count"].as_u64().unwrap()
    );
    sr_ok(&[
        "repo",
        "fsck",
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--cert",
        &keys.cert(),
    ]);
}

/// Inline mode has no artifact to hold the bundle: `oci seal --inline
/// --object-signatures` is refused before anything is written, naming both
/// options (exit status 3, unusable input); the layout is unchanged.
#[test]
fn inline_seal_refuses_object_signatures() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=objects");
    let index = std::fs::read(dir.join("index.json")).unwrap();
    let blobs = std::fs::read_dir(dir.join("blobs/sha256")).unwrap().count();
    let e = sr_fails(
        &[
            "oci",
            "seal",
            &image_ref(&dir),
            "--key",
            &keys.key(),
            "--cert",
            &keys.cert(),
            "--inline",
            "--tag",
            "sealed",
            "--object-signatures",
        ],
        3,
    );
    assert!(
        e.contains("--object-signatures needs the sealing artifact") && e.contains("--inline"),
        "{e}"
    );
    assert_eq!(std::fs::read(dir.join("index.json")).unwrap(), index);
    assert_eq!(
        std::fs::read_dir(dir.join("blobs/sha256")).unwrap().count(),
        blobs
    );
}

/// The bundle is read from the repository like every other file: a
/// symlink planted at its blob (to a copy outside the repository, so that
/// following it would succeed) is never followed. `repo enable-verity`
/// refuses, naming the blob; `repo fsck` reports it.
#[test]
fn bundle_planted_as_a_symlink_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=objects");
    let out = seal(&dir, &keys, &["--object-signatures"]);
    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir_all(&sysroot).unwrap();
    let sys = sysroot.to_str().unwrap();
    sr_ok(&[
        "deploy",
        &image_ref(&dir),
        "--sysroot",
        sys,
        "--signatures",
        "builtin",
        "--cert",
        &keys.cert(),
    ]);
    let hex = out["objectSignatures"]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let blob = sysroot.join("sealroot/blobs/sha256").join(&hex);
    let outside = tmp.path().join("outside-bundle");
    std::fs::copy(&blob, &outside).unwrap();
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&outside, &blob).unwrap();

    let e = sr_fails(&["repo", "enable-verity", "--sysroot", sys], 1);
    assert!(e.contains(&hex) && e.contains("symlink"), "{e}");
    let fsck = sr(&["repo", "fsck", "--sysroot", sys, "--cert", &keys.cert()]);
    let text = String::from_utf8_lossy(&fsck.stdout);
    assert_eq!(fsck.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("PROBLEM") && l.contains(&hex) && l.contains("symlink")),
        "{text}"
    );
}
