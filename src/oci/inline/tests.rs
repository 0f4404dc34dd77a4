use serde_json::{Value, json};

use super::*;
use crate::oci::ImageConfig;
use crate::oci::media_type::MediaType;
use crate::verity::HashAlgorithm;

const SIG: &str = "MAECAw=="; // base64 of 30 01 02 03

fn image(config_ann: Value, top: Value) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OCI_MANIFEST,
        "config": {"mediaType": MediaType::OCI_CONFIG,
                   "digest": Sha256Digest::of(b"c").to_string(), "size": 1,
                   "annotations": config_ann},
        "layers": [{"mediaType": MediaType::OCI_LAYER_TAR_GZIP,
                    "digest": Sha256Digest::of(b"l").to_string(), "size": 1}],
        "annotations": top,
    })
}

fn parse(v: &Value) -> Result<Option<InlineSeal>, InlineError> {
    let stored = Stored::<ImageManifest>::parse(serde_json::to_vec(v).unwrap()).unwrap();
    InlineSeal::parse(&stored)
}

fn signed(alg: &str, n: usize) -> Value {
    let c = format!("composefs.config.{alg}");
    let m = format!("composefs.merged.erofs.v1.{alg}");
    image(
        json!({c.clone(): "cd".repeat(n), format!("{c}.sig"): SIG}),
        json!({m.clone(): "ef".repeat(n), format!("{m}.sig"): SIG, "org.example": "kept"}),
    )
}

fn err(v: &Value) -> String {
    parse(v).unwrap_err().to_string()
}

#[test]
fn spec_shaped_inline_metadata_parses() {
    let s = parse(&signed("fsverity-sha512-12", 64)).unwrap().unwrap();
    assert_eq!(s.algorithm.to_string(), "fsverity-sha512-12");
    assert_eq!(s.config.role, Role::Config);
    assert_eq!(
        s.merged.digest,
        FsVerityDigest::new(HashAlgorithm::Sha512, &[0xef; 64]).unwrap()
    );
    assert_eq!(s.merged.signature.as_deref(), Some(&[0x30, 1, 2, 3][..]));
    assert!(s.is_signed());
    assert_eq!(s.bootable, None);
    // Digest-only (the spec's first example): parsed, not signed.
    let v = image(
        json!({"composefs.config.fsverity-sha256-12": "cd".repeat(32)}),
        json!({"composefs.merged.erofs.v1.fsverity-sha256-12": "ef".repeat(32)}),
    );
    let s = parse(&v).unwrap().unwrap();
    assert!(!s.is_signed());
    // No composefs annotations at all: not an inline image.
    assert_eq!(parse(&image(json!({}), json!({"a": "b"}))).unwrap(), None);
}

#[test]
fn layer_digests_and_bootable() {
    let mut v = signed("fsverity-sha256-12", 32);
    v["layers"][0]["annotations"] =
        json!({"composefs.layer.erofs.v1.fsverity-sha256-12": "01".repeat(32)});
    v["annotations"]["composefs.merged.bootable.erofs.v1.fsverity-sha256-12"] =
        json!("02".repeat(32));
    v["annotations"]["composefs.merged.bootable.erofs.v1.fsverity-sha256-12.sig"] = json!(SIG);
    let s = parse(&v).unwrap().unwrap();
    assert_eq!(s.layer_digests, 1);
    assert_eq!(s.bootable.as_ref().unwrap().role, Role::MergedBootable);
    assert_eq!(s.entries().count(), 3);
}

#[test]
fn refuses_malformed_metadata() {
    let alg = "fsverity-sha256-12";
    let c = format!("composefs.config.{alg}");
    let m = format!("composefs.merged.erofs.v1.{alg}");
    // Bad base64.
    let mut v = signed(alg, 32);
    v["annotations"][format!("{m}.sig")] = json!("MAECAw"); // unpadded
    assert!(err(&v).contains("base64"), "{}", err(&v));
    v["annotations"][format!("{m}.sig")] = json!("MA*CAw==");
    assert!(err(&v).contains("base64"));
    // A missing .sig while the other entry is signed.
    let mut v = signed(alg, 32);
    v["config"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(&format!("{c}.sig"));
    assert!(err(&v).contains("has no .sig"), "{}", err(&v));
    // A .sig without its digest.
    let mut v = signed(alg, 32);
    v["annotations"].as_object_mut().unwrap().remove(&m);
    assert!(err(&v).contains("without"), "{}", err(&v));
    // A wrong algorithm name.
    let v = signed("fsverity-sha384-12", 48);
    assert!(
        err(&v).contains("invalid fs-verity algorithm"),
        "{}",
        err(&v)
    );
    // Mixed algorithms.
    let mut v = signed(alg, 32);
    let ann = v["annotations"].as_object_mut().unwrap();
    ann.remove(&m);
    ann.remove(&format!("{m}.sig"));
    ann.insert(
        "composefs.merged.erofs.v1.fsverity-sha512-12".into(),
        json!("ef".repeat(64)),
    );
    ann.insert(
        "composefs.merged.erofs.v1.fsverity-sha512-12.sig".into(),
        json!(SIG),
    );
    assert!(err(&v).contains("mixed algorithms"), "{}", err(&v));
    // A digest of the wrong length for the algorithm.
    let mut v = signed(alg, 32);
    v["annotations"][&m] = json!("ef".repeat(64));
    assert!(err(&v).contains("64 lower-case hex"), "{}", err(&v));
    // Keys on the wrong descriptor, and the manifest role.
    let mut v = signed(alg, 32);
    v["annotations"][&c] = json!("cd".repeat(32));
    assert!(err(&v).contains("belongs on the config descriptor"));
    let mut v = signed(alg, 32);
    v["annotations"][format!("composefs.manifest.{alg}")] = json!("cd".repeat(32));
    assert!(err(&v).contains("no manifest digest"));
    // Config or merged missing.
    let v = image(json!({}), json!({&m: "ef".repeat(32)}));
    assert!(err(&v).contains("both required"));
    // An unknown composefs role is an error, not ignored.
    let mut v = signed(alg, 32);
    v["annotations"]["composefs.merged.erofs.v2.fsverity-sha256-12"] = json!("ef".repeat(32));
    assert!(err(&v).contains("unknown role"));
}

#[test]
fn label_and_annotate_round_trip() {
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"a \u0026\u0026 b"}]}"#;
    let merged = FsVerityDigest::new(HashAlgorithm::Sha256, &[0xab; 32]).unwrap();
    let labelled = label_config(config, &merged).unwrap();
    let parsed = Stored::<ImageConfig>::parse(labelled.clone()).unwrap();
    assert_eq!(parsed.seal_label(), Some("ab".repeat(32).as_str()));
    let v: Value = serde_json::from_slice(&labelled).unwrap();
    assert_eq!(v["config"]["Env"], json!(["A=1"]));
    assert_eq!(v["history"][0]["created_by"], "a && b");
    // Null or absent runtime config.
    for c in [&br#"{"config":null}"#[..], br#"{}"#] {
        let v: Value = serde_json::from_slice(&label_config(c, &merged).unwrap()).unwrap();
        assert_eq!(
            v["config"]["Labels"]["containers.composefs.fsverity"],
            merged.to_hex()
        );
    }
    assert!(label_config(br#"{"config":{"Labels":[]}}"#, &merged).is_err());

    // Re-sealing replaces earlier composefs keys (and drops per-layer ones,
    // here of another algorithm) and keeps the rest.
    let mut original = signed("fsverity-sha512-12", 64);
    original["layers"][0]["annotations"] = json!({
        "composefs.layer.erofs.v1.fsverity-sha512-12": "01".repeat(64),
        "org.example.layer": "kept"
    });
    let new_config = Descriptor::for_bytes(MediaType::OCI_CONFIG, &labelled);
    let entry = |role, b: u8| InlineEntry {
        role,
        digest: FsVerityDigest::new(HashAlgorithm::Sha256, &[b; 32]).unwrap(),
        signature: Some(vec![0x30, b]),
    };
    let seal = InlineSeal {
        algorithm: VerityAlgorithm::SHA256_12,
        config: entry(Role::Config, 1),
        merged: entry(Role::Merged, 2),
        bootable: None,
        layer_digests: 0,
    };
    let out =
        annotate_manifest(&serde_json::to_vec(&original).unwrap(), &new_config, &seal).unwrap();
    let stored = Stored::<ImageManifest>::parse(out.clone()).unwrap();
    assert_eq!(stored.config.digest, new_config.digest);
    assert_eq!(stored.config.size, new_config.size);
    assert_eq!(stored.annotations["org.example"], "kept");
    assert_eq!(InlineSeal::parse(&stored).unwrap(), Some(seal.clone()));
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["config"]["annotations"].as_object().unwrap().len(), 2);
    assert_eq!(
        v["layers"][0]["annotations"],
        json!({"org.example.layer": "kept"})
    );
    let mut unsigned = seal.clone();
    unsigned.merged.signature = None;
    assert!(annotate_manifest(&out, &new_config, &unsigned).is_err());
}
