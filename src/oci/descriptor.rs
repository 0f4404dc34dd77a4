//! Content descriptors (image-spec `descriptor.md`): what a manifest, an
//! index or `index.json` says about a blob it points to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Sha256Digest;
use super::media_type::MediaType;
use super::platform::Platform;

/// Annotation naming a tag in a layout's `index.json` (annotations.md).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A descriptor. Unknown fields are ignored on read, as descriptor.md
/// requires ("implementations MUST ignore unknown properties").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// `mediaType` of the blob.
    pub media_type: MediaType,
    /// `digest` of the blob.
    pub digest: Sha256Digest,
    /// The blob's size in bytes; `int64` in the spec, so negative sizes fail
    /// to parse here instead of wrapping.
    pub size: u64,
    /// `urls` to fetch the blob from (never used by sealroot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// `annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Embedded content (base64). Never trusted instead of the blob: sealroot
    /// always reads and verifies the blob itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// `platform` of the manifest it points to (in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// `artifactType` of the artifact it points to (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
}

impl Descriptor {
    /// A plain descriptor for `bytes` of the given media type.
    pub fn for_bytes(media_type: impl Into<MediaType>, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest: Sha256Digest::of(bytes),
            size: bytes.len() as u64,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            data: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// The tag this descriptor carries in `index.json`, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(ANNOTATION_REF_NAME)
            .map(String::as_str)
    }

    /// The descriptor reduced to what identifies the blob (type, digest,
    /// size), as a `subject` or a `config` is written.
    pub fn bare(&self) -> Self {
        Descriptor {
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            data: None,
            platform: None,
            artifact_type: None,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_unknown_fields_and_rejects_negative_size() {
        let j = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size":2,"future":{"x":1},
            "annotations":{"org.opencontainers.image.ref.name":"latest"}}"#;
        let d: Descriptor = serde_json::from_str(j).unwrap();
        assert_eq!(d.ref_name(), Some("latest"));
        assert!(d.media_type.is_manifest());
        let neg = j.replace("\"size\":2", "\"size\":-2");
        assert!(serde_json::from_str::<Descriptor>(&neg).is_err());
        let missing = j.replace("\"size\":2,", "");
        assert!(serde_json::from_str::<Descriptor>(&missing).is_err());
    }
}
