//! `sealroot oci seal` and `sealroot oci verify --cert`: sealing a
//! real-world shaped image, re-sealing, external signing commands,
//! reproducibility across machines, the draft format, and tampering.

mod oci_support;
mod repo_support;

use std::path::Path;

use oci_support::{flip_byte, run, tool};
use repo_support::{
    Keys, TAG, image_ref, openssl_verifies, sample_image, seal, sr, sr_fails, sr_ok,
};
use sealroot::oci::{ImageManifest, MediaType, Sha256Digest, Stored};
use serde_json::{Value, json};

fn index(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()
}

fn verify(dir: &Path, certs: &[&str]) -> std::process::Output {
    let r = image_ref(dir);
    let mut args = vec!["oci", "verify", r.as_str()];
    for c in certs {
        args.extend(["--cert", c]);
    }
    sr(&args)
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn seal_writes_a_spec_artifact_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = sample_image(&dir);
    let keys = Keys::new(&tmp.path().join("k1"), "rsa2048", "CN=release signer");
    let out = seal(&dir, &keys, &[]);
    assert_eq!(out["manifest"], f.manifest.to_string());

    // The artifact: a valid image manifest in the composefs sealing format.
    let artifact_digest = out["artifact"].as_str().unwrap();
    let bytes = blob(&dir, artifact_digest);
    assert_eq!(Sha256Digest::of(&bytes).to_string(), artifact_digest);
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], MediaType::OCI_MANIFEST);
    assert_eq!(m["artifactType"], MediaType::COMPOSEFS_METADATA_V1);
    // image-spec "empty descriptor": the 2-byte {} blob.
    assert_eq!(
        m["config"],
        json!({"mediaType": "application/vnd.oci.empty.v1+json",
               "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
               "size": 2})
    );
    assert_eq!(blob(&dir, m["config"]["digest"].as_str().unwrap()), b"{}");
    // Subject from the stored manifest bytes.
    assert_eq!(m["subject"]["digest"], f.manifest.to_string());
    assert_eq!(m["subject"]["size"], f.manifest_bytes.len());
    let keys_in_order: Vec<String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], MediaType::COMPOSEFS_SIGNATURE_PKCS7);
            let a = l["annotations"].as_object().unwrap();
            assert_eq!(a.len(), 1);
            let (k, v) = a.iter().next().unwrap();
            let role = k.split('.').nth(1).unwrap();
            assert_eq!(
                v,
                &out["digests"][if role == "merged" { "merged" } else { role }]
            );
            k.clone()
        })
        .collect();
    assert_eq!(
        keys_in_order,
        [
            "composefs.manifest.fsverity-sha256-12",
            "composefs.config.fsverity-sha256-12",
            "composefs.merged.erofs.v1.fsverity-sha256-12"
        ]
    );
    // Each PKCS#7 verifies with openssl over the formatted digest
    // ("FSVerity" | le16 1 | le16 32 | digest), the reference for the profile.
    for (l, role) in m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["manifest", "config", "merged"])
    {
        openssl_verifies(
            tmp.path(),
            role,
            &blob(&dir, l["digest"].as_str().unwrap()),
            out["digests"][role].as_str().unwrap(),
            &keys.cert(),
        );
    }
    // The manifest's fs-verity digest equals fsverity-utils' on its bytes.
    let mpath = f.blob(&f.manifest);
    let fsv = String::from_utf8(run(tool("fsverity", "fsverity").args([
        "digest",
        "--compact",
        mpath.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(fsv.trim(), out["digests"]["manifest"]);

    // Verify with the certificate: every signature, named signer.
    let o = verify(&dir, &[&keys.cert()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("VERIFIED"), "{t}");
    assert!(t.contains("release signer"), "{t}");
    for role in ["manifest", "config", "merged EROFS"] {
        assert!(t.contains(&format!("{role:<14} ok")), "{role}: {t}");
    }
    // --json says the same.
    let r = image_ref(&dir);
    let cert = keys.cert();
    let j: Value =
        serde_json::from_str(&sr_ok(&["oci", "verify", &r, "--cert", &cert, "--json"])).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["artifacts"][0]["verified"], true);
    assert_eq!(
        j["artifacts"][0]["roles"][2]["actual_digest"],
        out["digests"]["merged"]
    );

    // An unrelated certificate: not trusted, exit 1, nothing "tampered".
    let other = Keys::new(&tmp.path().join("k2"), "p256", "CN=stranger");
    let o = verify(&dir, &[&other.cert()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("NOT TRUSTED") && t.contains("unknown signer"),
        "{t}"
    );
    assert!(
        t.contains("no sealing artifact or inline metadata is signed by a trusted certificate"),
        "{t}"
    );

    // skopeo still reads the layout (by tag: skopeo 1.9 counts the
    // artifact as a second image in index.json).
    let inspect = run(tool("skopeo", "skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:{TAG}", dir.display()),
    ]));
    assert_eq!(inspect, f.manifest_bytes);
    let cfg = run(tool("skopeo", "skopeo").args([
        "inspect",
        "--config",
        "--raw",
        &format!("oci:{}:{TAG}", dir.display()),
    ]));
    assert_eq!(Sha256Digest::of(&cfg), f.config);
}

#[test]
fn resealing_adds_a_second_artifact_and_changes_nothing_of_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = sample_image(&dir);
    let k1 = Keys::new(&tmp.path().join("k1"), "rsa2048", "CN=first");
    let k2 = Keys::new(&tmp.path().join("k2"), "p256", "CN=second");
    let mut image_blobs: Vec<(Sha256Digest, Vec<u8>)> = [f.manifest, f.config]
        .into_iter()
        .chain(f.layers.iter().copied())
        .map(|d| (d, std::fs::read(f.blob(&d)).unwrap()))
        .collect();
    image_blobs.sort();
    let image_entry = index(&dir)["manifests"][0].clone();

    let a1 = seal(&dir, &k1, &[]);
    // Same key again: RSA PKCS#1 v1.5 is deterministic, same artifact.
    let again = seal(&dir, &k1, &[]);
    assert_eq!(a1["artifact"], again["artifact"]);
    assert_eq!(index(&dir)["manifests"].as_array().unwrap().len(), 2);
    let a2 = seal(&dir, &k2, &["--algorithm", "fsverity-sha512-12"]);
    assert_ne!(a1["artifact"], a2["artifact"]);
    assert_eq!(a2["digests"]["merged"].as_str().unwrap().len(), 128);

    let idx = index(&dir);
    let entries = idx["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0], image_entry, "the image's entry is unchanged");
    for (d, bytes) in &image_blobs {
        assert_eq!(
            &std::fs::read(f.blob(d)).unwrap(),
            bytes,
            "blob {d} changed"
        );
    }

    // Both verify, each by its own certificate.
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(k1.cert(), certs.join("1.pem")).unwrap();
    std::fs::copy(k2.cert(), certs.join("2.pem")).unwrap();
    let r = image_ref(&dir);
    let out = sr_ok(&["oci", "verify", &r, "--certs-dir", certs.to_str().unwrap()]);
    assert_eq!(out.matches("VERIFIED").count(), 2, "{out}");
    assert!(
        out.contains("fsverity-sha512-12") && out.contains("'CN=second'"),
        "{out}"
    );
    // Trusting only the second key: one verified, the other not trusted,
    // which is not a failure.
    let o = verify(&dir, &[&k2.cert()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("NOT TRUSTED") && t.contains("VERIFIED"), "{t}");
}

#[test]
fn external_signing_command_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    sample_image(&dir);
    let rsa = Keys::new(&tmp.path().join("rsa"), "rsa2048", "CN=hsm rsa");
    let ec = Keys::new(&tmp.path().join("ec"), "p256", "CN=hsm ec");
    let r = image_ref(&dir);
    let by_key = seal(&dir, &rsa, &[]);

    // Example 1 of the documentation, exactly: the message on stdin.
    let cmd1 = format!(
        "openssl dgst -\"$SEALROOT_SIGN_DIGEST_ALGORITHM\" -sign {}",
        rsa.key()
    );
    let cert = rsa.cert();
    let out: Value = serde_json::from_str(&sr_ok(&[
        "oci",
        "seal",
        &r,
        "--cert",
        &cert,
        "--sign-command",
        &cmd1,
        "--json",
    ]))
    .unwrap();
    // PKCS#1 v1.5 is deterministic: byte-identical to signing in-process.
    assert_eq!(out["artifact"], by_key["artifact"]);

    // Example 2, exactly: a prehashed digest (HSM/KMS style), ECDSA key.
    let cmd2 = format!(
        "openssl dgst -\"$SEALROOT_SIGN_DIGEST_ALGORITHM\" -binary | openssl pkeyutl -sign -inkey {} -pkeyopt digest:\"$SEALROOT_SIGN_DIGEST_ALGORITHM\"",
        ec.key()
    );
    let ecert = ec.cert();
    sr_ok(&[
        "oci",
        "seal",
        &r,
        "--cert",
        &ecert,
        "--sign-command",
        &cmd2,
        "--algorithm",
        "fsverity-sha512-12",
    ]);
    let o = verify(&dir, &[&ecert]);
    assert!(o.status.success(), "{}", text(&o));

    // The environment carries the digest the protocol promises.
    let check = tmp.path().join("env.txt");
    let cmd3 = format!(
        "printf '%s %s %s' \"$SEALROOT_SIGN_DIGEST_ALGORITHM\" \"$SEALROOT_SIGN_KEY_ALGORITHM\" \"$SEALROOT_SIGN_DIGEST\" > {}; \
         test \"$(openssl dgst -sha256 -hex | sed 's/.*= //')\" = \"$SEALROOT_SIGN_DIGEST\" || exit 9; \
         openssl dgst -sha256 -sign {} < /dev/null > /dev/null; {}",
        check.display(),
        rsa.key(),
        cmd1.replace("openssl dgst", "printf '' | openssl dgst")
    );
    // (The last command signs the wrong message: caught by the check.)
    let t = sr_fails(
        &["oci", "seal", &r, "--cert", &cert, "--sign-command", &cmd3],
        3,
    );
    assert!(t.contains("does not verify"), "{t}");
    let env = std::fs::read_to_string(&check).unwrap();
    let parts: Vec<&str> = env.split(' ').collect();
    assert_eq!(&parts[..2], ["sha256", "rsa"]);
    assert_eq!(parts[2].len(), 64);

    // The wrong key: refused before anything is written.
    let before = index(&dir);
    let wrong = format!("openssl dgst -sha256 -sign {}", ec.key());
    let t = sr_fails(
        &["oci", "seal", &r, "--cert", &cert, "--sign-command", &wrong],
        3,
    );
    assert!(t.contains("does not verify"), "{t}");
    assert_eq!(index(&dir), before);
    // A failing command: its exit status and stderr are shown.
    let t = sr_fails(
        &[
            "oci",
            "seal",
            &r,
            "--cert",
            &cert,
            "--sign-command",
            "echo token expired >&2; exit 7",
        ],
        3,
    );
    assert!(
        t.contains("exit status: 7") && t.contains("token expired"),
        "{t}"
    );
}

/// The same image, built on "two machines": separate layout directories
/// with blobs written in a different order and different file timestamps.
#[test]
fn the_same_image_gives_the_same_erofs_digest_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("machine-a");
    let b = tmp.path().join("machine-b");
    let fa = sample_image(&a);
    // Machine B: the blobs appear in reverse order, a minute apart, and the
    // layout has an unrelated extra blob.
    std::fs::create_dir_all(b.join("blobs/sha256")).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(a.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names.reverse();
    for (i, n) in names.iter().enumerate() {
        let dst = b.join("blobs/sha256").join(n);
        std::fs::copy(a.join("blobs/sha256").join(n), &dst).unwrap();
        run(std::process::Command::new("touch").args([
            "-d",
            &format!("@{}", 1_000_000 + i * 60),
            dst.to_str().unwrap(),
        ]));
    }
    std::fs::copy(a.join("oci-layout"), b.join("oci-layout")).unwrap();
    std::fs::copy(a.join("index.json"), b.join("index.json")).unwrap();
    let k = Keys::new(&tmp.path().join("k"), "p256", "CN=k");
    let sa = seal(&a, &k, &[]);
    let sb = seal(&b, &k, &[]);
    assert_eq!(sa["digests"], sb["digests"]);
    assert_eq!(sa["composefsDigest"], sb["composefsDigest"]);
    // And sealing twice on one machine.
    let sa2 = seal(&a, &k, &[]);
    assert_eq!(sa["digests"], sa2["digests"]);
    assert_eq!(sa["manifest"], fa.manifest.to_string());
}

#[test]
fn draft_format_artifacts_are_verified() {
    use sealroot::crypto::Cert;
    use sealroot::crypto::key::KeySigner;
    use sealroot::oci::artifact::VerityAlgorithm;
    use sealroot::oci::layout::ImageLayout;
    use sealroot::oci::sink::DigestOnlySink;
    use sealroot::oci::write::LayoutWriter;
    use sealroot::oci::{Platform, Selector};
    use sealroot::pkcs7::{SignOptions, sign_fsverity};
    use sealroot::repo::image::build_merged;
    use sealroot::repo::seal::SealDigests;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    sample_image(&dir);
    let k = Keys::new(&tmp.path().join("k"), "rsa2048", "CN=draft signer");
    let layout = ImageLayout::open_dir(&dir).unwrap();
    let image = layout
        .resolve(&Selector::Tag(TAG.into()), &Platform::host())
        .unwrap();
    let alg: VerityAlgorithm = "fsverity-sha512-12".parse().unwrap();
    // A sha512 seal signs the EROFS that records sha512 object digests.
    let merged = build_merged(&layout, &image, &DigestOnlySink::new(alg.params())).unwrap();
    let digests = SealDigests::of(&image, alg, Some(merged.digest(alg)));
    let signer = KeySigner::load(Path::new(&k.key())).unwrap();
    let cert = Cert::load(Path::new(&k.cert())).unwrap().remove(0);
    let writer = LayoutWriter::open(&dir).unwrap();
    let mut layers = Vec::new();
    let mut sign = |kind: &str, d: sealroot::verity::FsVerityDigest| {
        let der = sign_fsverity(&d, &signer, &cert, &SignOptions::default()).unwrap();
        let bd = writer.write_blob(&der).unwrap();
        layers.push(json!({"mediaType": MediaType::COMPOSEFS_SIGNATURE_PKCS7, "digest": bd.to_string(),
            "size": der.len(), "annotations": {"composefs.signature.type": kind, "composefs.digest": d.to_hex()}}));
    };
    sign("manifest", digests.manifest);
    sign("config", digests.config);
    // Per-layer EROFS digests of the draft: sealroot does not generate
    // those; it checks their signatures against the stated digests.
    for i in 0..3u8 {
        sign(
            "layer",
            sealroot::verity::FsVerityDigest::new(alg.hash, &[i; 64]).unwrap(),
        );
    }
    sign("merged", digests.merged.unwrap());
    writer.write_blob(b"{}").unwrap();
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MediaType::OCI_MANIFEST,
        "artifactType": MediaType::COMPOSEFS_SIGNATURE_V1,
        "config": {"mediaType": MediaType::OCI_EMPTY, "digest": Sha256Digest::of(b"{}").to_string(), "size": 2},
        "layers": layers,
        "subject": {"mediaType": MediaType::OCI_MANIFEST, "digest": image.manifest.digest().to_string(), "size": image.manifest.bytes().len()},
        "annotations": {"composefs.algorithm": alg.to_string()}
    })).unwrap();
    let md = writer.write_blob(&m).unwrap();
    let mut desc = sealroot::oci::Descriptor::for_bytes(MediaType::OCI_MANIFEST, &m);
    desc.artifact_type = Some(MediaType::new(MediaType::COMPOSEFS_SIGNATURE_V1));
    writer.add_to_index(&desc).unwrap();
    let _ = Stored::<ImageManifest>::parse(m).unwrap();

    let o = verify(&dir, &[&k.cert()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(&md.to_string()) && t.contains("(draft)") && t.contains("VERIFIED"),
        "{t}"
    );
    assert!(t.contains("layer 3") && t.contains("merged EROFS"), "{t}");
}

/// Copies a sealed layout, applies `tamper`, and returns verify's output
/// (which must fail with exit status 1).
fn tampered(src: &Path, cert: &str, name: &str, tamper: impl FnOnce(&Path)) -> String {
    let dst = src.parent().unwrap().join(name);
    run(std::process::Command::new("cp").args([
        "-a",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
    ]));
    tamper(&dst);
    let o = verify(&dst, &[cert]);
    let t = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{name} must fail verification:\n{t}"
    );
    t
}

#[test]
fn tampering_fails_verification_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let f = sample_image(&dir);
    let k = Keys::new(&tmp.path().join("k"), "rsa2048", "CN=k");
    let sealed = seal(&dir, &k, &[]);
    let cert = k.cert();
    let artifact = sealed["artifact"].as_str().unwrap().to_owned();
    let am: Value = serde_json::from_slice(&blob(&dir, &artifact)).unwrap();
    let sig = |i: usize| am["layers"][i]["digest"].as_str().unwrap().to_owned();

    let layer = f.layers[1];
    let t = tampered(&dir, &cert, "layer", |d| {
        flip_byte(&d.join("blobs/sha256").join(layer.to_hex()), 100)
    });
    assert!(t.contains(&layer.to_string()), "{t}");

    let t = tampered(&dir, &cert, "manifest", |d| {
        flip_byte(&d.join("blobs/sha256").join(f.manifest.to_hex()), 20)
    });
    assert!(t.contains(&f.manifest.to_string()), "{t}");

    let t = tampered(&dir, &cert, "config", |d| {
        flip_byte(&d.join("blobs/sha256").join(f.config.to_hex()), 20)
    });
    assert!(t.contains(&f.config.to_string()), "{t}");

    let s = sig(2);
    let t = tampered(&dir, &cert, "signature", |d| {
        flip_byte(
            &d.join("blobs/sha256")
                .join(s.strip_prefix("sha256:").unwrap()),
            60,
        )
    });
    assert!(
        t.contains("merged EROFS signature of artifact") && t.contains(&s),
        "{t}"
    );
    assert!(t.contains("FAILED"), "{t}");

    // The config's PKCS#7 in the manifest's slot (annotation unchanged):
    // a new artifact manifest, registered in index.json instead of the old.
    let t = tampered(&dir, &cert, "swapped", |d| {
        let mut m = am.clone();
        let config_layer = m["layers"][1].clone();
        m["layers"][0]["digest"] = config_layer["digest"].clone();
        m["layers"][0]["size"] = config_layer["size"].clone();
        let bytes = serde_json::to_vec(&m).unwrap();
        let nd = oci_support::fixture::write_blob(d, &bytes);
        let mut idx = index(d);
        for e in idx["manifests"].as_array_mut().unwrap() {
            if e["digest"] == artifact.as_str() {
                e["digest"] = json!(nd.to_string());
                e["size"] = json!(bytes.len());
            }
        }
        std::fs::write(d.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    });
    assert!(t.contains("manifest signature: digest mismatch"), "{t}");

    // A changed byte in the artifact manifest itself.
    let t = tampered(&dir, &cert, "artifact", |d| {
        flip_byte(
            &d.join("blobs/sha256")
                .join(artifact.strip_prefix("sha256:").unwrap()),
            30,
        )
    });
    assert!(t.contains(artifact.as_str()), "{t}");

    // The untouched original still verifies.
    assert!(verify(&dir, &[&cert]).status.success());
}
