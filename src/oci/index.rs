//! Image indexes (image-spec `image-index.md`), including a layout's
//! `index.json`, and Docker manifest lists.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::descriptor::Descriptor;
use super::media_type::MediaType;
use super::stored::{Document, check_schema_version};

/// An image index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// `schemaVersion`: 2.
    pub schema_version: u32,
    /// `mediaType`, when given (it should be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// `artifactType`, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    /// `manifests`: the manifests (or indexes) it lists.
    pub manifests: Vec<Descriptor>,
    /// `subject`: the manifest this one refers to (referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// `annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Document for ImageIndex {
    const KIND: &'static str = "image index";
    fn validate(&self) -> Result<(), String> {
        check_schema_version(self.schema_version)?;
        match &self.media_type {
            Some(mt) if !mt.is_index() => Err(format!(
                "mediaType is {mt}, expected {}",
                MediaType::OCI_INDEX
            )),
            _ => Ok(()),
        }
    }
}

impl ImageIndex {
    /// An empty OCI index, as a new layout's `index.json` starts.
    pub fn empty() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(MediaType::new(MediaType::OCI_INDEX)),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::stored::Stored;

    #[test]
    fn rejects_wrong_schema_and_type() {
        let ok = br#"{"schemaVersion":2,"manifests":[]}"#.to_vec();
        assert!(Stored::<ImageIndex>::parse(ok).is_ok());
        let v1 = br#"{"schemaVersion":1,"manifests":[]}"#.to_vec();
        let e = Stored::<ImageIndex>::parse(v1).unwrap_err().to_string();
        assert!(e.contains("schemaVersion is 1"), "{e}");
        let mt = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}"#;
        assert!(Stored::<ImageIndex>::parse(mt.to_vec()).is_err());
    }
}
