//! sha512 repositories on the host (docs/repository.md, "repo.json"): one
//! fs-verity algorithm per repository, for its objects and its signed
//! files, chosen at creation and refused when an image of another is
//! deployed into it. The objects' names are cross-checked with
//! fsverity-utils (`fsverity digest --hash-alg=sha512`).

mod oci_support;
mod repo_support;

use std::path::{Path, PathBuf};

use oci_support::{flip_byte, run, tool};
use repo_support::{Keys, image_ref, sample_image, sample_image_variant, seal, sr_fails, sr_ok};
use sealroot::erofs::objects::ImageObjects;
use sealroot::verity::HashAlgorithm;
use serde_json::Value;

const SHA512: &str = "fsverity-sha512-12";

fn fsverity_sha512(path: &Path) -> String {
    let out = run(tool("fsverity", "fsverity").args([
        "digest",
        "--compact",
        "--hash-alg=sha512",
        path.to_str().unwrap(),
    ]));
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// Every object below `repo/objects`, as (name hex, path).
fn objects(repo: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(repo.join("objects")).unwrap() {
        let sub = sub.unwrap();
        for f in std::fs::read_dir(sub.path()).unwrap() {
            let f = f.unwrap();
            out.push((
                format!(
                    "{}{}",
                    sub.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ),
                f.path(),
            ));
        }
    }
    out.sort();
    out
}

fn deploy(layout: &Path, sysroot: &Path, keys: &Keys, extra: &[&str]) -> Value {
    let r = image_ref(layout);
    let cert = keys.cert();
    let mut args = vec![
        "deploy",
        &r,
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--cert",
        &cert,
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&sr_ok(&args)).unwrap()
}

/// `repo init --algorithm fsverity-sha512-12`, a sha512 seal, deploy: the
/// repository records sha512 objects, every object is named by its sha512
/// fs-verity digest (fsverity-utils), the EROFS records exactly those
/// digests, fsck finds nothing wrong and names an altered object, gc keeps
/// what the deployment needs, and `oci verify` accepts the seal.
#[test]
fn sha512_repository_stores_sha512_objects_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    sample_image(&layout);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=sha512 test");
    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    let sys = sysroot.to_str().unwrap();
    let repo = sysroot.join("sealroot");

    let out = sr_ok(&["repo", "init", "--sysroot", sys, "--algorithm", SHA512]);
    assert!(out.contains(SHA512), "{out}");
    let repo_json: Value =
        serde_json::from_slice(&std::fs::read(repo.join("repo.json")).unwrap()).unwrap();
    assert_eq!(
        repo_json,
        serde_json::json!({"format": 2, "algorithm": SHA512, "objects": SHA512})
    );

    let sealed = seal(&layout, &keys, &["--algorithm", SHA512]);
    assert_eq!(sealed["algorithm"], SHA512);
    // The composefs digest is the sha512 one, of the EROFS the seal signs.
    assert_eq!(sealed["composefsDigest"], sealed["digests"]["merged"]);
    let cert = keys.cert();
    let verify: Value = serde_json::from_str(&sr_ok(&[
        "oci",
        "verify",
        &image_ref(&layout),
        "--cert",
        &cert,
        "--json",
    ]))
    .unwrap();
    assert_eq!(verify["ok"], true, "{verify:#}");

    let d = deploy(&layout, &sysroot, &keys, &[]);
    assert_eq!(d["deployment"]["algorithm"], SHA512);
    let image_hex = d["deployment"]["image"].as_str().unwrap().to_owned();
    assert_eq!(image_hex, sealed["digests"]["merged"].as_str().unwrap());
    let image_path = repo.join("images").join(&image_hex);
    assert_eq!(fsverity_sha512(&image_path), image_hex);

    let objs = objects(&repo);
    assert!(objs.len() >= 2, "{objs:?}");
    for (name, path) in &objs {
        assert_eq!(name.len(), 128, "{}", path.display());
        assert_eq!(&fsverity_sha512(path), name, "{}", path.display());
    }
    let recorded = ImageObjects::read(&std::fs::read(&image_path).unwrap()).unwrap();
    assert_eq!(recorded.algorithm(), Some(HashAlgorithm::Sha512));
    let recorded: Vec<String> = recorded.digests().iter().map(|d| d.to_hex()).collect();
    let stored: Vec<String> = objs.iter().map(|(n, _)| n.clone()).collect();
    for r in &recorded {
        assert!(
            stored.contains(r),
            "object {r} the EROFS records is not stored"
        );
    }

    let fsck = sr_ok(&["repo", "fsck", "--sysroot", sys, "--cert", &cert]);
    assert!(fsck.contains("; 0 problems"), "{fsck}");
    // gc keeps exactly the objects the EROFS records (the others are of
    // files a later layer deleted).
    let gc: Value =
        serde_json::from_str(&sr_ok(&["repo", "gc", "--sysroot", sys, "--json"])).unwrap();
    let objs = objects(&repo);
    let kept: Vec<String> = objs.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(kept, recorded, "{gc:#}");
    sr_ok(&["repo", "fsck", "--sysroot", sys, "--cert", &cert]);

    // An altered object: fsck names it (its sha512 digest is not its name).
    let (name, path) = &objs[0];
    flip_byte(path, 0);
    let t = sr_fails(&["repo", "fsck", "--sysroot", sys, "--cert", &cert], 1);
    assert!(
        t.contains(&name[2..]) && t.contains("not its name"),
        "fsck did not name {name}:\n{t}"
    );
}

/// One algorithm per repository: a sha512 seal is refused by a sha256
/// repository and the other way round, naming both; an older sealroot's
/// sha512 repository (repo.json format 1: sha512 signed files, sha256
/// objects) refuses a sha512 seal of this sealroot with what to do; fsck
/// of a sha512 repository names an image that records sha256 objects.
#[test]
fn mixing_algorithms_in_one_repository_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    sample_image_variant(&layout, 5);
    let keys = Keys::new(&tmp.path().join("k"), "p256", "CN=mixing test");
    let cert = keys.cert();
    let r = image_ref(&layout);
    let sealed256 = seal(&layout, &keys, &[]);
    let sys256 = tmp.path().join("sys256");
    std::fs::create_dir(&sys256).unwrap();
    let d256 = deploy(&layout, &sys256, &keys, &[]);

    // Also sealed sha512 now: a sha256 repository still takes the sha256
    // seal, and `oci verify` checks both (one EROFS per object algorithm).
    seal(&layout, &keys, &["--algorithm", SHA512]);
    let verify: Value =
        serde_json::from_str(&sr_ok(&["oci", "verify", &r, "--cert", &cert, "--json"])).unwrap();
    assert_eq!(verify["ok"], true, "{verify:#}");
    assert_eq!(verify["artifacts"].as_array().unwrap().len(), 2);

    // A sha256 repository and a sha512-only image.
    let only512 = tmp.path().join("only512");
    sample_image_variant(&only512, 6);
    seal(&only512, &keys, &["--algorithm", SHA512]);
    let t = sr_fails(
        &[
            "deploy",
            &image_ref(&only512),
            "--sysroot",
            sys256.to_str().unwrap(),
            "--cert",
            &cert,
        ],
        1,
    );
    assert!(
        t.contains("uses fsverity-sha512-12, the repository fsverity-sha256-12"),
        "{t}"
    );
    let t = sr_fails(
        &[
            "repo",
            "init",
            "--sysroot",
            sys256.to_str().unwrap(),
            "--algorithm",
            SHA512,
        ],
        1,
    );
    assert!(
        t.contains("the algorithm is fixed when a repository is created"),
        "{t}"
    );

    // An older sealroot's sha512 repository: sha512 signed files, sha256
    // objects. Its EROFS would record sha256 digests, the seal signs the
    // sha512-object one.
    let legacy = tmp.path().join("legacy");
    std::fs::create_dir(&legacy).unwrap();
    sr_ok(&[
        "repo",
        "init",
        "--sysroot",
        legacy.to_str().unwrap(),
        "--algorithm",
        SHA512,
    ]);
    std::fs::write(
        legacy.join("sealroot/repo.json"),
        format!("{{\"format\": 1, \"algorithm\": \"{SHA512}\"}}\n"),
    )
    .unwrap();
    let out = sr_ok(&[
        "repo",
        "init",
        "--sysroot",
        legacy.to_str().unwrap(),
        "--algorithm",
        SHA512,
    ]);
    assert!(out.contains("fsverity-sha256-12 objects"), "{out}");
    let t = sr_fails(
        &[
            "deploy",
            &image_ref(&only512),
            "--sysroot",
            legacy.to_str().unwrap(),
            "--cert",
            &cert,
        ],
        1,
    );
    assert!(
        t.contains("older sealroot") && t.contains("sealroot repo init --algorithm"),
        "{t}"
    );

    // A sha512 repository holding an image whose EROFS records sha256
    // objects (planted under its sha512 name): fsck names it.
    let sys512 = tmp.path().join("sys512");
    std::fs::create_dir(&sys512).unwrap();
    // Without --algorithm, the repository deploy creates takes the seal's.
    let d512 = deploy(&only512, &sys512, &keys, &[]);
    assert_eq!(d512["deployment"]["algorithm"], SHA512, "{d512:#}");
    let erofs256 = sys256
        .join("sealroot/images")
        .join(d256["deployment"]["image"].as_str().unwrap());
    let planted_hex = fsverity_sha512(&erofs256);
    let planted = sys512.join("sealroot/images").join(&planted_hex);
    std::fs::copy(&erofs256, &planted).unwrap();
    let t = sr_fails(&["repo", "fsck", "--sysroot", sys512.to_str().unwrap()], 1);
    assert!(
        t.contains(&planted_hex) && t.contains("records sha256 object digests"),
        "{t}"
    );
    let _ = sealed256;
}

/// `oci seal --algorithm fsverity-sha512-12 --object-signatures` signs
/// the sha512 digests the EROFS records (bundle algorithm sha512), and
/// each rebuilt PKCS#7 is byte for byte what fsverity-utils' `fsverity
/// sign --hash-alg=sha512` makes for the deployed object with the same
/// RSA key (the reference for the kernel's profile).
#[test]
fn sha512_object_signatures_match_fsverity_sign() {
    use sealroot::objsig::Bundle;
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    sample_image(&layout);
    let keys = Keys::new(&tmp.path().join("k"), "rsa2048", "CN=sha512 objects");
    let sealed = seal(
        &layout,
        &keys,
        &["--algorithm", SHA512, "--object-signatures"],
    );
    let bundle_hex = &sealed["objectSignatures"]["digest"].as_str().unwrap()[7..];
    let bundle =
        Bundle::parse(std::fs::read(layout.join("blobs/sha256").join(bundle_hex)).unwrap())
            .unwrap();
    assert_eq!(bundle.algorithm(), HashAlgorithm::Sha512);

    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    deploy(&layout, &sysroot, &keys, &["--algorithm", SHA512]);
    let repo = sysroot.join("sealroot");
    let recorded = ImageObjects::read(
        &std::fs::read(
            repo.join("images")
                .join(sealed["digests"]["merged"].as_str().unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(bundle.len(), recorded.digests().len());
    let cert = sealroot::crypto::Cert::load(Path::new(&keys.cert())).unwrap();
    for d in recorded.digests() {
        let ours = bundle.pkcs7(d).expect("every recorded object is signed");
        sealroot::pkcs7::verify_fsverity(&ours, d, &cert).unwrap();
    }
    // fsverity-utils on the first object.
    let d = &recorded.digests()[0];
    let hex = d.to_hex();
    let object = repo.join("objects").join(&hex[..2]).join(&hex[2..]);
    let sig = tmp.path().join("object.sig");
    run(tool("fsverity", "fsverity").args([
        "sign",
        "--hash-alg=sha512",
        "--key",
        &keys.key(),
        "--cert",
        &keys.cert(),
        object.to_str().unwrap(),
        sig.to_str().unwrap(),
    ]));
    assert!(
        std::fs::read(&sig).unwrap() == bundle.pkcs7(d).unwrap(),
        "sealroot's sha512 object signature differs from `fsverity sign --hash-alg=sha512`"
    );
}
