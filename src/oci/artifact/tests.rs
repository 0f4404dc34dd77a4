use serde_json::{Value, json};

use super::*;

fn subject() -> Descriptor {
    Descriptor::for_bytes(MediaType::OCI_MANIFEST, b"{\"schemaVersion\":2}")
}

fn d256(b: u8) -> FsVerityDigest {
    FsVerityDigest::new(HashAlgorithm::Sha256, &[b; 32]).unwrap()
}

fn sigs() -> Vec<(Role, FsVerityDigest, Vec<u8>)> {
    vec![
        (Role::Manifest, d256(1), vec![0x30, 1]),
        (Role::Config, d256(2), vec![0x30, 2]),
        (Role::Merged, d256(3), vec![0x30, 3]),
    ]
}

fn parse_json(v: &Value) -> Result<SealArtifact, ArtifactError> {
    let stored = Stored::<ImageManifest>::parse(serde_json::to_vec(v).unwrap()).unwrap();
    SealArtifact::parse(&stored)
}

fn built_json() -> Value {
    let b = build(&subject(), VerityAlgorithm::SHA256_12, &sigs(), None).unwrap();
    serde_json::from_slice(&b.manifest).unwrap()
}

#[test]
fn algorithm_identifiers() {
    for s in [
        "fsverity-sha256-12",
        "fsverity-sha512-12",
        "fsverity-sha256-16",
        "fsverity-sha512-10",
    ] {
        assert_eq!(s.parse::<VerityAlgorithm>().unwrap().to_string(), s);
    }
    let a: VerityAlgorithm = "fsverity-sha512-16".parse().unwrap();
    assert_eq!((a.hash, a.block_size.get()), (HashAlgorithm::Sha512, 65536));
    for bad in [
        "sha256-12",
        "fsverity-sha256",
        "fsverity-md5-12",
        "fsverity-sha256-9",
        "fsverity-sha256-17",
        "fsverity-sha256-012",
        "fsverity-sha256-+12",
        "fsverity-2-12",
    ] {
        assert!(bad.parse::<VerityAlgorithm>().is_err(), "{bad}");
    }
}

#[test]
fn build_parse_round_trip() {
    let b = build(&subject(), VerityAlgorithm::SHA256_12, &sigs(), None).unwrap();
    assert_eq!(
        b.descriptor.artifact_type.as_ref().unwrap(),
        MediaType::COMPOSEFS_METADATA_V1
    );
    assert_eq!(b.descriptor.digest, Sha256Digest::of(&b.manifest));
    assert_eq!(b.blobs[0].1, b"{}");
    assert_eq!(
        b.blobs[0].0.digest.to_string(),
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    let stored = Stored::<ImageManifest>::parse(b.manifest.clone()).unwrap();
    let a = SealArtifact::parse(&stored).unwrap();
    assert_eq!(a.format, ArtifactFormat::MetadataV1);
    assert_eq!(a.subject, subject());
    assert_eq!(a.entries.len(), 3);
    assert_eq!(a.entry(Role::Merged).unwrap().digest, d256(3));
    assert_eq!(
        a.entry(Role::Config).unwrap().blob.digest,
        Sha256Digest::of(&[0x30, 2])
    );
    let v: Value = serde_json::from_slice(&b.manifest).unwrap();
    assert_eq!(
        v["layers"][2]["annotations"]["composefs.merged.erofs.v1.fsverity-sha256-12"],
        d256(3).to_hex()
    );
}

#[test]
fn build_refuses_inconsistent_input() {
    let mut s = sigs();
    s[1].1 = FsVerityDigest::new(HashAlgorithm::Sha512, &[2; 64]).unwrap();
    assert!(build(&subject(), VerityAlgorithm::SHA256_12, &s, None).is_err());
    let mut s = sigs();
    s.swap(0, 1);
    let e = build(&subject(), VerityAlgorithm::SHA256_12, &s, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("after"), "{e}");
    let s = sigs()[..2].to_vec();
    let e = build(&subject(), VerityAlgorithm::SHA256_12, &s, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no merged EROFS signature"), "{e}");
}

#[test]
fn spec_example_shape_with_bootable_and_sha512() {
    let hex = |b: u8| hex::encode([b; 64]);
    let layer = |key: &str, b: u8| {
        json!({"mediaType": MediaType::COMPOSEFS_SIGNATURE_PKCS7,
               "digest": Sha256Digest::of(&[b]).to_string(), "size": 456,
               "annotations": {key: hex(b)}})
    };
    let v = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OCI_MANIFEST,
        "artifactType": MediaType::COMPOSEFS_METADATA_V1,
        "config": {"mediaType": MediaType::OCI_EMPTY,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [
            layer("composefs.manifest.fsverity-sha512-12", 1),
            layer("composefs.config.fsverity-sha512-12", 2),
            layer("composefs.merged.erofs.v1.fsverity-sha512-12", 3),
            layer("composefs.merged.bootable.erofs.v1.fsverity-sha512-12", 4),
        ],
        "subject": {"mediaType": MediaType::OCI_MANIFEST,
                    "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270", "size": 7682}
    });
    let a = parse_json(&v).unwrap();
    assert_eq!(a.algorithm.to_string(), "fsverity-sha512-12");
    let roles: Vec<Role> = a.entries.iter().map(|e| e.role).collect();
    assert_eq!(
        roles,
        [
            Role::Manifest,
            Role::Config,
            Role::Merged,
            Role::MergedBootable
        ]
    );
    assert_eq!(a.subject.size, 7682);
}

fn draft_layer(t: &str, b: u8) -> Value {
    json!({"mediaType": MediaType::COMPOSEFS_SIGNATURE_PKCS7,
           "digest": Sha256Digest::of(&[b]).to_string(), "size": 100,
           "annotations": {"composefs.signature.type": t, "composefs.digest": hex::encode([b; 64])}})
}

/// A valid draft-format artifact (manifest, config, two layers, merged).
fn draft_json() -> Value {
    let layer = draft_layer;
    json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OCI_MANIFEST,
        "artifactType": MediaType::COMPOSEFS_SIGNATURE_V1,
        "config": {"mediaType": MediaType::OCI_EMPTY,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [layer("manifest", 1), layer("config", 2), layer("layer", 3), layer("layer", 4), layer("merged", 5)],
        "subject": subject(),
        "annotations": {"composefs.algorithm": "fsverity-sha512-12"}
    })
}

#[test]
fn draft_format() {
    let layer = draft_layer;
    let mut v = draft_json();
    let a = parse_json(&v).unwrap();
    assert_eq!(a.format, ArtifactFormat::SignatureDraft);
    let roles: Vec<Role> = a.entries.iter().map(|e| e.role).collect();
    assert_eq!(
        roles,
        [
            Role::Manifest,
            Role::Config,
            Role::Layer(0),
            Role::Layer(1),
            Role::Merged
        ]
    );
    // The layer group is required; order is enforced.
    v["layers"] = json!([layer("manifest", 1), layer("merged", 5)]);
    assert!(matches!(parse_json(&v), Err(ArtifactError::Missing { .. })));
    v["layers"] = json!([layer("layer", 3), layer("config", 2)]);
    assert!(parse_json(&v).unwrap_err().to_string().contains("after"));
    v["layers"] = json!([layer("layer", 3)]);
    v["annotations"] = json!({});
    assert!(
        parse_json(&v)
            .unwrap_err()
            .to_string()
            .contains("composefs.algorithm")
    );
}

#[test]
fn strict_validation() {
    let check = |f: &dyn Fn(&mut Value), needle: &str| {
        let mut v = built_json();
        f(&mut v);
        let e = parse_json(&v).unwrap_err().to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e}");
    };
    let key = |role: &str| format!("composefs.{role}.fsverity-sha256-12");
    check(
        &|v| v["artifactType"] = json!("application/x"),
        "not a composefs sealing artifact",
    );
    check(&|v| v["config"]["size"] = json!(3), "empty descriptor");
    check(
        &|v| {
            v.as_object_mut().unwrap().remove("subject");
        },
        "no subject",
    );
    check(
        &|v| v["subject"]["mediaType"] = json!(MediaType::OCI_INDEX),
        "subject is a",
    );
    check(&|v| v["layers"] = json!([]), "no signature layers");
    check(
        &|v| v["layers"][0]["mediaType"] = json!("application/octet-stream"),
        "media type is",
    );
    check(
        &|v| v["layers"][0]["size"] = json!(20000),
        "the kernel accepts",
    );
    check(
        &|v| {
            let l = v["layers"][0].clone();
            v["layers"][1] = l;
        },
        "a second manifest",
    );
    check(
        &|v| {
            let a = v["layers"][0].clone();
            v["layers"][0] = v["layers"][1].clone();
            v["layers"][1] = a;
        },
        "manifest signature after config",
    );
    check(
        &|v| {
            v["layers"].as_array_mut().unwrap().pop();
        },
        "no merged EROFS signature",
    );
    check(
        &|v| {
            v["layers"].as_array_mut().unwrap().remove(0);
        },
        "no manifest signature",
    );
    check(
        &|v| {
            v["layers"][1]["annotations"] =
                json!({key("config").replace("sha256", "sha512"): hex::encode([2u8; 64])})
        },
        "all entries must use one algorithm",
    );
    check(
        &|v| v["layers"][1]["annotations"] = json!({key("config"): "AB".repeat(32)}),
        "lower-case hex",
    );
    check(
        &|v| v["layers"][1]["annotations"] = json!({key("config"): "ab".repeat(31)}),
        "lower-case hex",
    );
    check(
        &|v| v["layers"][1]["annotations"] = json!({key("layer.erofs.v1"): "ab".repeat(32)}),
        "per-layer",
    );
    check(
        &|v| v["layers"][1]["annotations"] = json!({key("merged.erofs.v2"): "ab".repeat(32)}),
        "unknown role",
    );
    check(
        &|v| v["layers"][1]["annotations"] = json!({}),
        "no composefs.",
    );
    check(
        &|v| {
            v["layers"][1]["annotations"][key("manifest")] = json!("ab".repeat(32));
        },
        "2 role annotations",
    );
    check(
        &|v| v["layers"][1]["annotations"]["composefs.signature.type"] = json!("config"),
        "mixes formats",
    );
    check(
        &|v| v["annotations"] = json!({"composefs.algorithm": "fsverity-sha256-12"}),
        "mixes formats",
    );
    // Unrelated annotations are allowed.
    let mut v = built_json();
    v["layers"][0]["annotations"]["org.opencontainers.image.title"] = json!("manifest.sig");
    assert!(parse_json(&v).is_ok());
}

#[test]
fn subject_check() {
    let image = Stored::<ImageManifest>::parse(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MediaType::OCI_MANIFEST,
            "config": {"mediaType": MediaType::OCI_CONFIG, "digest": Sha256Digest::of(b"c").to_string(), "size": 1},
            "layers": []})).unwrap(),
    )
    .unwrap();
    let b = build(
        &image.descriptor(MediaType::OCI_MANIFEST),
        VerityAlgorithm::SHA256_12,
        &sigs(),
        None,
    )
    .unwrap();
    let stored = Stored::<ImageManifest>::parse(b.manifest).unwrap();
    let a = SealArtifact::parse(&stored).unwrap();
    a.check_subject(stored.digest(), &image).unwrap();
    let other = Stored::<ImageManifest>::parse(image.bytes().iter().chain(b" ").copied().collect())
        .unwrap();
    let e = a.check_subject(stored.digest(), &other).unwrap_err();
    assert!(matches!(e, ArtifactError::WrongSubject { .. }));
}

fn binding() -> SignedBinding {
    use crate::oci::binding::BindingRecord;
    use crate::oci::{ConfigDigest, ManifestDigest};
    let record = BindingRecord {
        manifest: ManifestDigest(subject().digest),
        config: ConfigDigest(Sha256Digest::of(b"c")),
        algorithm: VerityAlgorithm::SHA256_12,
        merged: d256(3),
        bootable: None,
    };
    let digest = SignedBinding::digest_of(&record).unwrap();
    SignedBinding::new(record, digest, vec![0x30, 4])
}

#[test]
fn binding_record_travels_in_the_artifact_annotations() {
    let b = build(
        &subject(),
        VerityAlgorithm::SHA256_12,
        &sigs(),
        Some(&binding()),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&b.manifest).unwrap();
    // The spec's layers are unchanged: three signatures, no extra layer.
    assert_eq!(v["layers"].as_array().unwrap().len(), 3);
    let ann = v["annotations"].as_object().unwrap();
    assert_eq!(
        ann.keys().collect::<Vec<_>>(),
        [
            "sealroot.binding.v1",
            "sealroot.binding.v1.fsverity-sha256-12",
            "sealroot.binding.v1.fsverity-sha256-12.sig"
        ]
    );
    let a = parse_json(&v).unwrap();
    assert_eq!(a.binding, Some(binding()));
    assert_eq!(a.entries.len(), 3);
    // Without the record: no binding, still a valid artifact.
    assert_eq!(parse_json(&built_json()).unwrap().binding, None);
}

#[test]
fn binding_record_strictness() {
    let with_binding = || {
        let b = build(
            &subject(),
            VerityAlgorithm::SHA256_12,
            &sigs(),
            Some(&binding()),
        )
        .unwrap();
        serde_json::from_slice::<Value>(&b.manifest).unwrap()
    };
    let check = |f: &dyn Fn(&mut Value), needle: &str| {
        let mut v = with_binding();
        f(&mut v);
        let e = parse_json(&v).unwrap_err().to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e}");
    };
    check(
        &|v| {
            v["annotations"]
                .as_object_mut()
                .unwrap()
                .remove("sealroot.binding.v1.fsverity-sha256-12.sig");
        },
        "incomplete binding record",
    );
    check(
        &|v| v["annotations"]["sealroot.unknown.v1.fsverity-sha256-12"] = json!("00"),
        "unknown role",
    );
    check(
        &|v| v["annotations"]["sealroot.note"] = json!("x"),
        "names no fsverity",
    );
    check(
        &|v| {
            let rec = v["annotations"]["sealroot.binding.v1"].as_str().unwrap();
            v["annotations"]["sealroot.binding.v1"] =
                json!(rec.replace(&d256(3).to_hex(), &d256(9).to_hex()));
        },
        "the record's fs-verity digest is",
    );
    // Unknown layers stay refused, before and after the signature layers.
    check(
        &|v| {
            let extra = json!({"mediaType": "application/vnd.sealroot.binding.v1+json",
                "digest": Sha256Digest::of(b"x").to_string(), "size": 1});
            v["layers"].as_array_mut().unwrap().push(extra);
        },
        "unknown sealroot extension layer application/vnd.sealroot.binding.v1+json",
    );
    check(
        &|v| {
            v["layers"][2]["annotations"] =
                json!({"sealroot.binding.v1.fsverity-sha256-12": d256(3).to_hex()});
        },
        "not as a signature layer",
    );
    check(
        &|v| {
            v["layers"][2]["annotations"] =
                json!({"composefs.merged.erofs.v1.fsverity-sha256-12.sig": "AAAA"});
        },
        "without .sig",
    );
}

#[test]
fn sealroot_extension_layers() {
    let objsig = MediaType::SEALROOT_OBJECT_SIGNATURES;
    let mut ext = Descriptor::for_bytes(objsig, b"x");
    ext.annotations
        .insert(keys::OBJECT_SIGNATURES_COUNT.into(), "7".into());
    let build_ext = |binding: Option<&SignedBinding>, ext: Descriptor| {
        build_with_extensions(
            &subject(),
            VerityAlgorithm::SHA256_12,
            &sigs(),
            binding,
            &[(ext, b"extension bytes".to_vec())],
        )
    };
    // Both extensions at once: the binding record in the annotations, the
    // bundle as the last layer.
    let b = build_ext(Some(&binding()), ext.clone()).unwrap();
    let a = parse_json(&serde_json::from_slice(&b.manifest).unwrap()).unwrap();
    assert_eq!(a.entries.len(), 3);
    assert_eq!(a.binding, Some(binding()));
    let e = a.extension(objsig).unwrap();
    assert_eq!(e.digest, Sha256Digest::of(b"extension bytes"));
    assert_eq!(e.annotations[keys::OBJECT_SIGNATURES_COUNT], "7");
    assert!(
        b.blobs
            .iter()
            .any(|(d, blob)| d.digest == e.digest && blob == b"extension bytes")
    );
    let built: Value = serde_json::from_slice(&b.manifest).unwrap();
    let check = |f: &dyn Fn(&mut Value), needle: &str| {
        let mut v = built.clone();
        f(&mut v);
        let e = parse_json(&v).unwrap_err().to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e}");
    };
    // Extensions come last: one before a signature layer is refused.
    check(
        &|v| {
            let layers = v["layers"].as_array_mut().unwrap();
            let last = layers.pop().unwrap();
            layers.insert(1, last);
        },
        "a signature layer after sealroot's extension layers",
    );
    // Once each.
    check(
        &|v| {
            let layers = v["layers"].as_array_mut().unwrap();
            let last = layers.last().unwrap().clone();
            layers.push(last);
        },
        "a second application/vnd.sealroot.object-signatures.v1 layer",
    );
    // Unknown sealroot media types and foreign layers after it are refused.
    check(
        &|v| v["layers"][3]["mediaType"] = json!("application/vnd.sealroot.other.v1"),
        "unknown sealroot extension layer application/vnd.sealroot.other.v1",
    );
    check(
        &|v| {
            let extra = json!({"mediaType": "application/vnd.example.other",
                "digest": Sha256Digest::of(b"x").to_string(), "size": 1});
            v["layers"].as_array_mut().unwrap().push(extra);
        },
        "after sealroot's extension layers",
    );
    // Only its own annotations.
    check(
        &|v| v["layers"][3]["annotations"]["sealroot.binding.v1"] = json!("x"),
        "annotation sealroot.binding.v1 does not belong",
    );
    check(
        &|v| {
            v["layers"][3]["annotations"]["composefs.merged.erofs.v1.fsverity-sha256-12"] =
                json!("00")
        },
        "does not belong on a application/vnd.sealroot.object-signatures.v1 layer",
    );
    check(&|v| v["layers"][3]["size"] = json!(0), "an empty");
    // Not a sealroot media type: not an extension; unknown ones are not built.
    let bad = Descriptor::for_bytes("application/vnd.example.v1", b"x");
    assert!(build_ext(None, bad).is_err());
    let unknown = Descriptor::for_bytes("application/vnd.sealroot.other.v1", b"x");
    assert!(build_ext(None, unknown).is_err());
    // Other readers' view: an artifact without them is still complete.
    assert!(parse_json(&built_json()).unwrap().extensions.is_empty());
}

#[test]
fn extension_layers_only_in_the_current_format() {
    let mut v = draft_json();
    let extra = json!({"mediaType": MediaType::SEALROOT_OBJECT_SIGNATURES,
        "digest": Sha256Digest::of(b"x").to_string(), "size": 1});
    v["layers"].as_array_mut().unwrap().push(extra);
    let e = parse_json(&v).unwrap_err().to_string();
    assert!(e.contains("belong only in a metadata.v1 artifact"), "{e}");
}
