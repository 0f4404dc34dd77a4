//! The repository's two JSON documents, `repo.json` and
//! `deployments/<hex>/deployment.json` (docs/repository.md). Both are
//! *hints*: the initramfs re-derives or re-verifies every digest they name.
//! The parsers take untrusted bytes (a tampered root filesystem), so they
//! are strict, bounded and fuzzed (`fuzz/fuzz_targets/repo_json.rs`), and
//! never panic.
//!
//! No host dependencies: `sealroot-prepare` uses these types too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::oci::artifact::VerityAlgorithm;
use crate::oci::{ConfigDigest, ManifestDigest, Sha256Digest};
use crate::verity::FsVerityDigest;

/// The repository format (`repo.json`), and the `deployment.json` format
/// of a deployment sealed with an artifact.
pub const FORMAT: u32 = 1;

/// `deployment.json` format 2: as 1, and `artifact` may be `null` for an
/// image sealed inline (its signatures are in its own manifest). Written
/// only for such deployments, so sealroot-prepare releases that read
/// format 1 still boot every artifact-sealed deployment, and refuse an
/// inline one with "upgrade sealroot" instead of misreading it.
pub const FORMAT_INLINE: u32 = 2;

/// `deployment.json` format 3: as 1 (an artifact deployment), with the
/// `bootable` digest of the bootable variant the artifact signs (and
/// sealroot-prepare boots). Written only for such deployments, so an
/// older initramfs refuses them with "upgrade sealroot" instead of
/// booting the merged EROFS or failing on an unknown field.
pub const FORMAT_BOOTABLE: u32 = 3;

/// Neither document is legitimately anywhere near this size.
pub const MAX_JSON_SIZE: usize = 64 << 10;

/// A malformed `repo.json` or `deployment.json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Larger than [`MAX_JSON_SIZE`].
    #[error("{what} is {size} bytes; at most {MAX_JSON_SIZE} are accepted")]
    TooLarge {
        /// Which document.
        what: &'static str,
        /// Its size.
        size: usize,
    },
    /// Not the JSON the document must be (syntax, fields, values).
    #[error("{what} is not valid: {reason}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// `repo.json` of a format this sealroot does not read.
    #[error(
        "{what} has format {found}; this sealroot reads formats {FORMAT} and \
         {REPO_FORMAT_OBJECTS} (upgrade sealroot)"
    )]
    Format {
        /// Which document.
        what: &'static str,
        /// Its `format`.
        found: u32,
    },
    /// `deployment.json` of a format this sealroot does not read.
    #[error(
        "deployment.json has format {found}; this sealroot reads formats {FORMAT}, \
         {FORMAT_INLINE} and {FORMAT_BOOTABLE} (upgrade sealroot)"
    )]
    DeploymentFormat {
        /// Its `format`.
        found: u32,
    },
}

/// `repo.json` format 2: as 1, plus `objects`, the fs-verity algorithm of
/// the content objects. Written only for a repository whose objects are
/// not sha256 (format 1 means sha256 objects), so every sha256 repository
/// stays readable by sealroot releases that read format 1, and one of them
/// meeting a sha512 repository refuses it ("upgrade sealroot") instead of
/// enabling sha256 fs-verity on its objects.
pub const REPO_FORMAT_OBJECTS: u32 = 2;

/// `repo.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepoConfig {
    /// fs-verity algorithm of the signed files (manifest, config, EROFS)
    /// and of the `images/<hex>` names.
    pub algorithm: VerityAlgorithm,
    /// fs-verity algorithm of the content objects: their `objects/XX/<rest>`
    /// names, the digests the EROFS records for them, the parameters
    /// fs-verity is enabled with. Equal to `algorithm`, except in format-1
    /// repositories created with sha512 signed files by sealroot releases
    /// that stored sha256 objects whatever the algorithm ([`RepoConfig::is_mixed`]).
    pub objects: VerityAlgorithm,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoConfigJson {
    format: u32,
    algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    objects: Option<String>,
}

impl RepoConfig {
    /// A new repository: one algorithm for objects and signed files (as a
    /// composefs-rs repository, `cfsctl init --algorithm`).
    pub fn new(algorithm: VerityAlgorithm) -> Self {
        RepoConfig {
            algorithm,
            objects: algorithm,
        }
    }

    /// A format-1 repository with sha512 signed files and sha256 objects
    /// (sealroot before per-repository object algorithms). It keeps
    /// working for the images sealed that way; images sealed since (whose
    /// EROFS records objects of the artifact's algorithm) need a
    /// repository created with that algorithm.
    pub fn is_mixed(&self) -> bool {
        self.algorithm != self.objects
    }

    /// Parses `repo.json` (untrusted: never panics).
    pub fn parse(bytes: &[u8]) -> Result<Self, JsonError> {
        const WHAT: &str = "repo.json";
        let j: RepoConfigJson = parse_json(WHAT, bytes)?;
        let algorithm = parse_algorithm(WHAT, &j.algorithm)?;
        let invalid = |reason: String| JsonError::Invalid { what: WHAT, reason };
        let objects = match (j.format, &j.objects) {
            (FORMAT, None) => VerityAlgorithm::SHA256_12,
            (FORMAT, Some(_)) => {
                return Err(invalid(format!(
                    "objects: only format {REPO_FORMAT_OBJECTS} names the objects' algorithm \
                     (format {FORMAT} means sha256 objects)"
                )));
            }
            (REPO_FORMAT_OBJECTS, Some(o)) => {
                let objects = parse_algorithm(WHAT, o).map_err(|e| match e {
                    JsonError::Invalid { what, reason } => JsonError::Invalid {
                        what,
                        reason: format!("objects: {reason}"),
                    },
                    e => e,
                })?;
                // One algorithm per repository: a format-2 file naming two
                // was not written by sealroot.
                if objects != algorithm {
                    return Err(invalid(format!(
                        "objects {objects} differs from algorithm {algorithm}: a repository \
                         uses one fs-verity algorithm for its objects and its signed files"
                    )));
                }
                if objects == VerityAlgorithm::SHA256_12 {
                    return Err(invalid(format!(
                        "format {REPO_FORMAT_OBJECTS} with sha256 objects: such a repository \
                         is format {FORMAT}"
                    )));
                }
                objects
            }
            (REPO_FORMAT_OBJECTS, None) => {
                return Err(invalid(format!(
                    "format {REPO_FORMAT_OBJECTS} needs the objects' algorithm (\"objects\")"
                )));
            }
            (found, _) => return Err(JsonError::Format { what: WHAT, found }),
        };
        Ok(RepoConfig { algorithm, objects })
    }

    /// The JSON sealroot writes.
    pub fn to_json(&self) -> Vec<u8> {
        let sha256_objects = self.objects == VerityAlgorithm::SHA256_12;
        let j = RepoConfigJson {
            format: if sha256_objects {
                FORMAT
            } else {
                REPO_FORMAT_OBJECTS
            },
            algorithm: self.algorithm.to_string(),
            objects: (!sha256_objects).then(|| self.objects.to_string()),
        };
        let mut v = serde_json::to_vec_pretty(&j).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// How the three signed files of a deployment carry their signatures
/// (docs/repository.md, "Signature modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureMode {
    /// fs-verity enabled with the PKCS#7 as builtin signature.
    Builtin,
    /// fs-verity enabled without signature; PKCS#7 in `blobs/`.
    Detached,
    /// fs-verity left off; the initramfs enables it with the signature.
    AttachAtBoot,
}

impl SignatureMode {
    /// The name in `deployment.json` and `--signatures`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMode::Builtin => "builtin",
            SignatureMode::Detached => "detached",
            SignatureMode::AttachAtBoot => "attach-at-boot",
        }
    }
}

impl fmt::Display for SignatureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignatureMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "builtin" => Ok(SignatureMode::Builtin),
            "detached" => Ok(SignatureMode::Detached),
            "attach-at-boot" => Ok(SignatureMode::AttachAtBoot),
            other => Err(format!(
                "unknown signature mode {other:?}: expected builtin, detached or attach-at-boot"
            )),
        }
    }
}

/// `deployment.json`: what a deployment is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The image manifest's digest.
    pub manifest: ManifestDigest,
    /// The config's digest.
    pub config: ConfigDigest,
    /// The signature artifact's manifest; `None` for an image sealed
    /// inline (its manifest's annotations carry the signatures).
    pub artifact: Option<Sha256Digest>,
    /// fs-verity digest (repository algorithm) of the merged EROFS:
    /// `images/<hex>`.
    pub image: FsVerityDigest,
    /// fs-verity digest of the bootable variant (`oci::boot`), when the
    /// artifact signs one: `images/<hex>` too, what sealroot-prepare
    /// boots.
    pub bootable: Option<FsVerityDigest>,
    /// The repository's fs-verity algorithm.
    pub algorithm: VerityAlgorithm,
    /// How the signed files carry their signatures.
    pub signatures: SignatureMode,
    /// Whether deploy could enable fs-verity on the files (false on
    /// filesystems or kernels without fs-verity: run `sealroot repo
    /// enable-verity` on the target before booting).
    pub verity: bool,
    /// Where the image came from (informational).
    pub source: String,
    /// RFC 3339 UTC (informational).
    pub deployed_at: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentJson {
    format: u32,
    manifest: String,
    config: String,
    artifact: Option<String>,
    image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bootable: Option<String>,
    algorithm: String,
    signatures: String,
    verity: bool,
    source: String,
    deployed_at: String,
}

impl Deployment {
    /// Parses `deployment.json` (untrusted: never panics).
    pub fn parse(bytes: &[u8]) -> Result<Self, JsonError> {
        const WHAT: &str = "deployment.json";
        let j: DeploymentJson = parse_json(WHAT, bytes)?;
        if ![FORMAT, FORMAT_INLINE, FORMAT_BOOTABLE].contains(&j.format) {
            return Err(JsonError::DeploymentFormat { found: j.format });
        }
        let invalid = |field: &str, e: String| JsonError::Invalid {
            what: WHAT,
            reason: format!("{field}: {e}"),
        };
        let sha = |field: &str, s: &str| -> Result<Sha256Digest, JsonError> {
            s.parse::<Sha256Digest>()
                .map_err(|e| invalid(field, e.to_string()))
        };
        let algorithm = parse_algorithm(WHAT, &j.algorithm)?;
        let image = parse_verity_hex(&j.image, algorithm).map_err(|e| invalid("image", e))?;
        let bootable = j
            .bootable
            .as_deref()
            .map(|b| parse_verity_hex(b, algorithm).map_err(|e| invalid("bootable", e)))
            .transpose()?;
        if bootable.is_some() != (j.format == FORMAT_BOOTABLE) {
            return Err(invalid(
                "bootable",
                format!("present exactly in format {FORMAT_BOOTABLE} deployments"),
            ));
        }
        let artifact = match (&j.artifact, j.format) {
            (Some(a), _) => Some(sha("artifact", a)?),
            (None, FORMAT_INLINE) => None,
            (None, _) => {
                return Err(invalid(
                    "artifact",
                    format!("null is an inline deployment, which needs format {FORMAT_INLINE}"),
                ));
            }
        };
        Ok(Deployment {
            manifest: ManifestDigest(sha("manifest", &j.manifest)?),
            config: ConfigDigest(sha("config", &j.config)?),
            artifact,
            image,
            bootable,
            algorithm,
            signatures: j.signatures.parse().map_err(|e| invalid("signatures", e))?,
            verity: j.verity,
            source: j.source,
            deployed_at: j.deployed_at,
        })
    }

    fn to_struct(&self) -> DeploymentJson {
        DeploymentJson {
            format: match (self.artifact, self.bootable) {
                (Some(_), Some(_)) => FORMAT_BOOTABLE,
                (Some(_), None) => FORMAT,
                (None, _) => FORMAT_INLINE,
            },
            manifest: self.manifest.0.to_string(),
            config: self.config.0.to_string(),
            artifact: self.artifact.map(|a| a.to_string()),
            image: self.image.to_hex(),
            bootable: self.bootable.map(|b| b.to_hex()),
            algorithm: self.algorithm.to_string(),
            signatures: self.signatures.to_string(),
            verity: self.verity,
            source: self.source.clone(),
            deployed_at: self.deployed_at.clone(),
        }
    }

    /// The EROFS images the deployment keeps, with the role that signs
    /// each: the merged one and, if signed, its bootable variant.
    pub fn images(&self) -> impl Iterator<Item = (crate::oci::artifact::Role, FsVerityDigest)> {
        use crate::oci::artifact::Role;
        std::iter::once((Role::Merged, self.image))
            .chain(self.bootable.map(|b| (Role::MergedBootable, b)))
    }

    /// The JSON sealroot writes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(&self.to_struct()).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

impl Serialize for Deployment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_struct().serialize(s)
    }
}

/// Lower-case hex of exactly the algorithm's digest size (file names and
/// `deployment.json` use this spelling).
pub fn parse_verity_hex(hex: &str, alg: VerityAlgorithm) -> Result<FsVerityDigest, String> {
    let want = 2 * alg.hash.digest_size();
    if hex.len() != want || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "{hex:?} is not {want} lower-case hex digits ({} digest)",
            alg.hash
        ));
    }
    FsVerityDigest::from_hex(alg.hash, hex).map_err(|e| e.to_string())
}

fn parse_algorithm(what: &'static str, s: &str) -> Result<VerityAlgorithm, JsonError> {
    let alg: VerityAlgorithm =
        s.parse().map_err(
            |e: crate::oci::artifact::AlgorithmError| JsonError::Invalid {
                what,
                reason: e.to_string(),
            },
        )?;
    if alg.block_size.get() != 4096 {
        return Err(JsonError::Invalid {
            what,
            reason: format!(
                "algorithm {alg}: repositories use 4096-byte fs-verity blocks \
                 (fsverity-sha256-12 or fsverity-sha512-12)"
            ),
        });
    }
    Ok(alg)
}

fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, JsonError> {
    if bytes.len() > MAX_JSON_SIZE {
        return Err(JsonError::TooLarge {
            what,
            size: bytes.len(),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| JsonError::Invalid {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verity::HashAlgorithm;

    fn sample() -> Deployment {
        Deployment {
            manifest: ManifestDigest(Sha256Digest::of(b"m")),
            config: ConfigDigest(Sha256Digest::of(b"c")),
            artifact: Some(Sha256Digest::of(b"a")),
            image: FsVerityDigest::new(HashAlgorithm::Sha512, &[0xab; 64]).unwrap(),
            bootable: None,
            algorithm: "fsverity-sha512-12".parse().unwrap(),
            signatures: SignatureMode::AttachAtBoot,
            verity: false,
            source: "oci:/x:y".into(),
            deployed_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn deployment_round_trip() {
        let d = sample();
        assert_eq!(Deployment::parse(&d.to_json()).unwrap(), d);
        // No `bootable` key unless there is a bootable variant.
        assert!(!String::from_utf8(d.to_json()).unwrap().contains("bootable"));
        let b = Deployment {
            bootable: Some(FsVerityDigest::new(HashAlgorithm::Sha512, &[0xcd; 64]).unwrap()),
            ..sample()
        };
        assert_eq!(Deployment::parse(&b.to_json()).unwrap(), b);
        let j = String::from_utf8(b.to_json()).unwrap();
        assert!(j.contains("\"format\": 3"), "{j}");
        // bootable only in format 3, format 3 only with bootable.
        assert!(Deployment::parse(j.replace("\"format\": 3", "\"format\": 1").as_bytes()).is_err());
        let plain = String::from_utf8(d.to_json())
            .unwrap()
            .replace("\"format\": 1", "\"format\": 3");
        assert!(Deployment::parse(plain.as_bytes()).is_err());
        assert_eq!(
            b.images().map(|(r, _)| r.to_string()).collect::<Vec<_>>(),
            ["merged EROFS", "bootable merged EROFS"]
        );
        let short = String::from_utf8(b.to_json())
            .unwrap()
            .replace(&"cd".repeat(64), &"cd".repeat(32));
        assert!(Deployment::parse(short.as_bytes()).is_err());
        let sha512 = "fsverity-sha512-12".parse().unwrap();
        for r in [
            RepoConfig::new(VerityAlgorithm::SHA256_12),
            RepoConfig::new(sha512),
            RepoConfig {
                algorithm: sha512,
                objects: VerityAlgorithm::SHA256_12,
            },
        ] {
            assert_eq!(RepoConfig::parse(&r.to_json()).unwrap(), r);
        }
    }

    #[test]
    fn inline_deployments_are_format_2_and_others_stay_format_1() {
        let d = sample();
        let v: serde_json::Value = serde_json::from_slice(&d.to_json()).unwrap();
        assert_eq!(v["format"], 1);
        let inline = Deployment {
            artifact: None,
            ..sample()
        };
        let j = inline.to_json();
        let v: serde_json::Value = serde_json::from_slice(&j).unwrap();
        assert_eq!(
            (v["format"].clone(), v["artifact"].clone()),
            (2.into(), serde_json::Value::Null)
        );
        assert_eq!(Deployment::parse(&j).unwrap(), inline);
        // null needs format 2; format 2 may still name an artifact.
        let text = String::from_utf8(j).unwrap();
        let e = Deployment::parse(text.replace("\"format\": 2", "\"format\": 1").as_bytes())
            .unwrap_err();
        assert!(e.to_string().contains("format 2"), "{e}");
        let named = String::from_utf8(d.to_json())
            .unwrap()
            .replace("\"format\": 1", "\"format\": 2");
        assert_eq!(Deployment::parse(named.as_bytes()).unwrap(), d);
        let e = Deployment::parse(named.replace("\"format\": 2", "\"format\": 4").as_bytes())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("formats 1, 2 and 3 (upgrade sealroot)"),
            "{e}"
        );
    }

    #[test]
    fn refuses_mismatched_digest_length_and_unknown_fields() {
        let j = String::from_utf8(sample().to_json()).unwrap();
        // A sha256-sized image digest under a sha512 algorithm.
        let short = j.replace(&"ab".repeat(64), &"ab".repeat(32));
        let e = Deployment::parse(short.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("image"), "{e}");
        let extra = j.replacen('{', "{\"x\": 1,", 1);
        assert!(Deployment::parse(extra.as_bytes()).is_err());
        let upper = j.replace(&"ab".repeat(64), &"AB".repeat(64));
        assert!(Deployment::parse(upper.as_bytes()).is_err());
        let e = RepoConfig::parse(br#"{"format":3,"algorithm":"fsverity-sha256-12"}"#).unwrap_err();
        assert!(matches!(e, JsonError::Format { found: 3, .. }));
        let e = RepoConfig::parse(br#"{"format":1,"algorithm":"fsverity-sha256-16"}"#).unwrap_err();
        assert!(e.to_string().contains("4096"), "{e}");
    }

    #[test]
    fn repo_json_records_the_object_algorithm() {
        let sha512: VerityAlgorithm = "fsverity-sha512-12".parse().unwrap();
        // sha256 repositories stay format 1 (older readers boot them).
        let v: serde_json::Value =
            serde_json::from_slice(&RepoConfig::new(VerityAlgorithm::SHA256_12).to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"format": 1, "algorithm": "fsverity-sha256-12"})
        );
        let v: serde_json::Value =
            serde_json::from_slice(&RepoConfig::new(sha512).to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"format": 2, "algorithm": "fsverity-sha512-12",
                               "objects": "fsverity-sha512-12"})
        );
        // Format 1 with sha512 signed files: sha256 objects (older sealroot).
        let legacy =
            RepoConfig::parse(br#"{"format":1,"algorithm":"fsverity-sha512-12"}"#).unwrap();
        assert_eq!(legacy.objects, VerityAlgorithm::SHA256_12);
        assert!(legacy.is_mixed());
        assert!(!RepoConfig::new(sha512).is_mixed());
        for (bad, why) in [
            (
                r#"{"format":1,"algorithm":"fsverity-sha256-12","objects":"fsverity-sha256-12"}"#,
                "only format 2",
            ),
            (
                r#"{"format":2,"algorithm":"fsverity-sha512-12"}"#,
                "needs the objects' algorithm",
            ),
            (
                r#"{"format":2,"algorithm":"fsverity-sha256-12","objects":"fsverity-sha512-12"}"#,
                "one fs-verity algorithm",
            ),
            (
                r#"{"format":2,"algorithm":"fsverity-sha256-12","objects":"fsverity-sha256-12"}"#,
                "is format 1",
            ),
            (
                r#"{"format":2,"algorithm":"fsverity-sha512-12","objects":"fsverity-sha512-16"}"#,
                "4096",
            ),
            (
                r#"{"format":2,"algorithm":"fsverity-sha512-12","objects":"sha512"}"#,
                "objects",
            ),
        ] {
            let e = RepoConfig::parse(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
