//! The bootable variant through the host tools: `oci seal` signs it as the
//! `merged.bootable` role (and names it in the binding record), `oci
//! verify` regenerates and checks it, `deploy` stores it signed next to the
//! merged EROFS and names it in deployment.json and by-image/, `repo fsck`
//! checks it and `repo gc` keeps it. The digest itself is
//! `sealroot oci compute-id --bootable`'s, which `tests/cfsctl_interop.rs`
//! checks against `cfsctl oci compute-id --bootable`. The kernel's part
//! (sealroot-prepare mounting it) is `tests/vm_prepare.rs`.

mod oci_support;
mod repo_support;

use std::path::Path;

use oci_support::images;
use repo_support::{Keys, TAG, image_ref, sample_image, seal, sr, sr_fails, sr_ok};
use sealroot::oci::artifact::{Role, SealArtifact};
use sealroot::oci::{ImageManifest, Stored};
use serde_json::Value;

/// `sealroot oci compute-id [--bootable]` of the image in `layout`.
fn compute_id(layout: &Path, bootable: bool) -> String {
    let r = image_ref(layout);
    let mut args = vec!["oci", "compute-id", &r];
    if bootable {
        args.push("--bootable");
    }
    sr_ok(&args).trim().to_string()
}

fn artifact(layout: &Path, sealed: &Value) -> SealArtifact {
    let hex = &sealed["artifact"].as_str().unwrap()["sha256:".len()..];
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    SealArtifact::parse(&Stored::<ImageManifest>::parse(bytes).unwrap()).unwrap()
}

#[test]
fn seal_signs_the_bootable_variant_and_deploy_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let shape = images::selinux_policy();
    images::write_image(&layout, TAG, &shape.layers);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=bootable signer");
    let bootable = compute_id(&layout, true);
    let merged = compute_id(&layout, false);
    assert_ne!(bootable, merged);

    let sealed = seal(&layout, &keys, &[]);
    assert_eq!(sealed["digests"]["bootable"], bootable.as_str());
    assert_eq!(sealed["digests"]["merged"], merged.as_str());
    let a = artifact(&layout, &sealed);
    let roles: Vec<Role> = a.entries.iter().map(|e| e.role).collect();
    assert_eq!(
        roles,
        [
            Role::Manifest,
            Role::Config,
            Role::Merged,
            Role::MergedBootable
        ],
        "the spec's layer order"
    );
    let entry = a.entry(Role::MergedBootable).unwrap();
    assert_eq!(entry.digest.to_hex(), bootable);
    let record = &a.binding.as_ref().unwrap().record;
    assert_eq!(record.bootable.map(|b| b.to_hex()), Some(bootable.clone()));

    // verify regenerates the variant and checks its signature.
    let r = image_ref(&layout);
    let out = sr_ok(&["oci", "verify", &r, "--cert", &keys.cert(), "--json"]);
    assert!(out.contains(&bootable), "{out}");

    // deploy: images/<bootable>, signed like the others, named twice.
    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    let report: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &r,
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--cert",
        &keys.cert(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        report["deployment"]["bootable"],
        bootable.as_str(),
        "{report}"
    );
    assert_eq!(report["deployment"]["image"], merged.as_str(), "{report}");
    let repo = sysroot.join("sealroot");
    let erofs = tmp.path().join("boot.erofs");
    sr_ok(&[
        "oci",
        "compute-id",
        &r,
        "--bootable",
        "--erofs",
        erofs.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(repo.join("images").join(&bootable)).unwrap()
            == std::fs::read(&erofs).unwrap()
    );
    let m = &sealed["manifest"].as_str().unwrap()["sha256:".len()..];
    for name in [&bootable, &merged] {
        assert_eq!(
            std::fs::read_link(repo.join("by-image").join(name)).unwrap(),
            Path::new("../deployments").join(m)
        );
    }
    let repo_arg = repo.to_str().unwrap();
    let fsck = sr_ok(&["repo", "fsck", "--repo", repo_arg, "--cert", &keys.cert()]);
    assert!(fsck.contains("0 problems"), "{fsck}");
    sr_ok(&["repo", "gc", "--repo", repo_arg]);
    assert!(repo.join("images").join(&bootable).is_file(), "gc kept it");

    // fsck notices a bootable image that is not what was signed.
    std::fs::write(repo.join("images").join(&bootable), b"tampered").unwrap();
    let out = sr(&["repo", "fsck", "--repo", repo_arg, "--cert", &keys.cert()]);
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&bootable), "{text}");
}

#[test]
fn bootable_choice_auto_yes_no() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=bootable signer");
    // The sample image has no /boot: auto signs no bootable variant, yes
    // refuses with the reason.
    let plain = tmp.path().join("plain");
    sample_image(&plain);
    let sealed = seal(&plain, &keys, &[]);
    assert_eq!(sealed["digests"]["bootable"], Value::Null);
    assert!(
        artifact(&plain, &sealed)
            .entry(Role::MergedBootable)
            .is_none()
    );
    let r = image_ref(&plain);
    let (key, cert) = (keys.key(), keys.cert());
    let base = ["oci", "seal", &r, "--key", &key, "--cert", &cert];
    let err = sr_fails(&[&base[..], &["--bootable=yes"]].concat(), 3);
    assert!(err.contains("/boot is missing"), "{err}");
    let err = sr_fails(&["oci", "compute-id", "--bootable", &r], 3);
    assert!(err.contains("/boot is missing"), "{err}");

    // A bootable image: no signs none; inline never does, and refuses yes.
    let boot = tmp.path().join("boot");
    images::write_image(&boot, TAG, &images::bootable_without_policy().layers);
    let sealed = seal(&boot, &keys, &["--bootable=no"]);
    assert_eq!(sealed["digests"]["bootable"], Value::Null);
    let r = image_ref(&boot);
    let base = ["oci", "seal", &r, "--key", &key, "--cert", &cert];
    let out = sr(&[&base[..], &["--inline", "--tag", "s", "--bootable=yes"]].concat());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs the sealing artifact"), "{err}");
    let sealed = seal(&boot, &keys, &[]);
    assert_eq!(
        sealed["digests"]["bootable"],
        compute_id(&boot, true).as_str()
    );
}

/// A sha512 seal of a bootable image signs the bootable variant of the
/// sha512-object EROFS (`compute-id --bootable --algorithm` of it), `oci
/// verify` checks both seals' variants (one per object algorithm), and a
/// sha512 repository deploys it.
#[test]
fn sha512_seal_signs_the_sha512_bootable_variant() {
    const SHA512: &str = "fsverity-sha512-12";
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let shape = images::selinux_policy();
    images::write_image(&layout, TAG, &shape.layers);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=bootable signer");
    let r = image_ref(&layout);
    let bootable512 = sr_ok(&["oci", "compute-id", &r, "--bootable", "--algorithm", SHA512])
        .trim()
        .to_string();
    assert_eq!(bootable512.len(), 128);

    seal(&layout, &keys, &[]);
    let sealed = seal(&layout, &keys, &["--algorithm", SHA512]);
    assert_eq!(sealed["digests"]["bootable"], bootable512.as_str());
    let a = artifact(&layout, &sealed);
    assert_eq!(
        a.entry(Role::MergedBootable).unwrap().digest.to_hex(),
        bootable512
    );

    let verify: Value = serde_json::from_str(&sr_ok(&[
        "oci",
        "verify",
        &r,
        "--cert",
        &keys.cert(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(verify["ok"], true, "{verify:#}");
    let artifacts = verify["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 2, "{verify:#}");
    assert!(
        artifacts.iter().all(|c| c["verified"] == true),
        "{verify:#}"
    );

    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    let report: Value = serde_json::from_str(&sr_ok(&[
        "deploy",
        &r,
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--cert",
        &keys.cert(),
        "--algorithm",
        SHA512,
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        report["deployment"]["bootable"],
        bootable512.as_str(),
        "{report}"
    );
}
