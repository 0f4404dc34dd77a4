//! Image manifests (image-spec `manifest.md`) and Docker schema 2 manifests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::descriptor::Descriptor;
use super::digest::ConfigDigest;
use super::media_type::MediaType;
use super::stored::{Document, check_schema_version};

/// An image manifest. Also the shape of OCI artifacts (artifacts-guidance.md),
/// which differ only in `artifactType`, `config` and layer media types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// `schemaVersion`: 2.
    pub schema_version: u32,
    /// `mediaType`, when given (it should be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// `artifactType`, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    /// `config`: the image config (or an artifact's config blob).
    pub config: Descriptor,
    /// `layers`, base first.
    pub layers: Vec<Descriptor>,
    /// `subject`: the manifest this one refers to (referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// `annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Document for ImageManifest {
    const KIND: &'static str = "image manifest";
    fn validate(&self) -> Result<(), String> {
        check_schema_version(self.schema_version)?;
        match &self.media_type {
            Some(mt) if !mt.is_manifest() => {
                return Err(format!(
                    "mediaType is {mt}, expected {}",
                    MediaType::OCI_MANIFEST
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

impl ImageManifest {
    /// The config's digest, with its role.
    pub fn config_digest(&self) -> ConfigDigest {
        ConfigDigest(self.config.digest)
    }

    /// Is this a runnable image (its config is an image config), as opposed
    /// to an artifact such as a signature?
    pub fn is_image(&self) -> bool {
        self.artifact_type.is_none() && self.config.media_type.is_image_config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::stored::Stored;

    const M: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
      "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,
        "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
      "layers":[]}"#;

    #[test]
    fn keeps_exact_bytes() {
        // Whitespace and key order are part of the identity: the digest is of
        // the bytes, not of a re-serialisation.
        let s = Stored::<ImageManifest>::parse(M.as_bytes().to_vec()).unwrap();
        assert_eq!(s.bytes(), M.as_bytes());
        assert_eq!(
            s.digest(),
            crate::oci::digest::Sha256Digest::of(M.as_bytes())
        );
        assert_ne!(serde_json::to_vec(s.value()).unwrap(), M.as_bytes());
        assert!(s.is_image());
    }

    #[test]
    fn rejects_index_media_type() {
        let bad = M.replace("image.manifest.v1", "image.index.v1");
        let e = Stored::<ImageManifest>::parse(bad.into_bytes()).unwrap_err();
        assert!(e.to_string().contains("mediaType is"), "{e}");
    }
}
