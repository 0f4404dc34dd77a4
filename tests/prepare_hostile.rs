//! `sealroot-prepare`'s reading of the repository (`prepare::repo`,
//! `prepare::verify`) against a disk prepared by an attacker, on the host:
//! no kernel feature is needed to show that a FIFO planted where a file is
//! expected is refused at once, not waited on (the VM test
//! `vm_prepare::fifo_planted_in_the_repository_is_refused_not_waited_on`
//! does the same through the real binary, with the EROFS).
//!
//! The repository is a real one: a sample image sealed with `sealroot oci
//! seal` and deployed with `sealroot deploy --sysroot` (the host has no
//! fs-verity, so the deployment says `"verity": false`, and verification
//! without attaching ends at "has no fs-verity": the control below shows
//! that this is where an untouched repository stops).

mod oci_support;
mod repo_support;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use repo_support::{Keys, image_ref, sample_image, seal, sr_ok};
use sealroot::crypto::Cert;
use sealroot::oci::artifact::{Role, SealArtifact};
use sealroot::oci::{ImageManifest, Stored};
use sealroot::prepare::cmdline;
use sealroot::prepare::config::SignaturePolicy;
use sealroot::prepare::repo::Repo;
use sealroot::prepare::verify::{self, Policy};

struct Deployed {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    cert: PathBuf,
    manifest_hex: String,
    /// Empty for an image sealed inline.
    artifact_hex: String,
}

fn deployed() -> Deployed {
    deployed_as(false)
}

/// Sealed with an artifact, or `inline` (`oci seal --inline`: no
/// artifact, `deployment.json` format 2, the signatures in the manifest).
fn deployed_as(inline: bool) -> Deployed {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let layout = base.join("layout");
    sample_image(&layout);
    let keys = Keys::new(&base.join("k"), "p256", "CN=prepare hostile");
    let (sealed, image) = if inline {
        let sealed = seal(&layout, &keys, &["--inline", "--tag", "sealed"]);
        (sealed, format!("oci:{}:sealed", layout.display()))
    } else {
        (seal(&layout, &keys, &[]), image_ref(&layout))
    };
    let sysroot = base.join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    let cert = keys.cert();
    sr_ok(&[
        "deploy",
        &image,
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--cert",
        &cert,
        "--signatures",
        "detached",
    ]);
    Deployed {
        _tmp: tmp,
        repo: sysroot.join("sealroot"),
        cert: PathBuf::from(cert),
        manifest_hex: sealed["manifest"].as_str().unwrap()[7..].to_owned(),
        artifact_hex: sealed["artifact"]
            .as_str()
            .map_or(String::new(), |a| a[7..].to_owned()),
    }
}

/// Replaces `rel` in the repository with a FIFO.
fn plant_fifo(repo: &Path, rel: &str) {
    let path = repo.join(rel);
    std::fs::remove_file(&path).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// Runs prepare's verification of `sealroot=sha256:<manifest>` against the
/// repository on a thread; the refusal, or a failure after 20 s (blocked).
fn verify_refusal(d: &Deployed) -> String {
    let repo = d.repo.clone();
    let cert = d.cert.clone();
    let selector = format!("sealroot=sha256:{}", d.manifest_hex);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let certs = Cert::load(&cert).unwrap();
        let selector = cmdline::parse(&selector).unwrap();
        let result = Repo::open(&repo)
            .map_err(|e| e.to_string())
            .and_then(|repo| {
                verify::verify(
                    &repo,
                    &selector,
                    &Policy {
                        certs: &certs,
                        signatures: SignaturePolicy::Auto,
                        attach: false,
                        kernel_signatures: false,
                        require_binding: true,
                        min_created: None,
                    },
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
        let _ = tx.send(result);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(())) => panic!("verification passed on the host (no fs-verity here)"),
        Ok(Err(e)) => e,
        Err(_) => panic!("verification did not return within 20 s: it blocked"),
    }
}

#[test]
fn untouched_repository_is_refused_only_for_missing_fs_verity() {
    let d = deployed();
    let e = verify_refusal(&d);
    assert!(
        e.contains(&format!("manifest sha256:{}", d.manifest_hex))
            && e.contains("has no fs-verity"),
        "{e}"
    );
}

/// Plants a FIFO at `rel` and requires prepare's refusal to name it as
/// such, at once.
fn assert_fifo_refused(d: &Deployed, rel: &str) {
    plant_fifo(&d.repo, rel);
    let e = verify_refusal(d);
    assert!(
        e.contains(rel) && e.contains("it is a FIFO (named pipe), not a regular file"),
        "{e}"
    );
}

#[test]
fn fifo_at_deployment_json_is_refused() {
    let d = deployed();
    assert_fifo_refused(
        &d,
        &format!("deployments/{}/deployment.json", d.manifest_hex),
    );
}

#[test]
fn fifo_at_the_signature_artifact_is_refused() {
    let d = deployed();
    assert_fifo_refused(&d, &format!("blobs/sha256/{}", d.artifact_hex));
}

#[test]
fn fifo_at_a_signature_blob_is_refused() {
    let d = deployed();
    let artifact = std::fs::read(d.repo.join("blobs/sha256").join(&d.artifact_hex)).unwrap();
    let artifact = SealArtifact::parse(&Stored::<ImageManifest>::parse(artifact).unwrap()).unwrap();
    let blob = artifact.entry(Role::Manifest).unwrap().blob.digest;
    assert_fifo_refused(&d, &format!("blobs/sha256/{}", blob.to_hex()));
}

/// An inline-sealed deployment: its format-2 `deployment.json` and the
/// manifest its signatures come from.
#[test]
fn fifo_in_an_inline_deployment_is_refused() {
    for rel in ["deployment.json", "manifest"] {
        let d = deployed_as(true);
        assert!(d.artifact_hex.is_empty());
        let rel = match rel {
            "deployment.json" => format!("deployments/{}/deployment.json", d.manifest_hex),
            _ => format!("blobs/sha256/{}", d.manifest_hex),
        };
        assert_fifo_refused(&d, &rel);
    }
}
