//! Image configs (image-spec `config.md`): the platform, the runtime
//! defaults and `rootfs.diff_ids`, the uncompressed digests of the layers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::DiffId;
use super::platform::Platform;
use super::stored::Document;

/// The label composefs-rs puts into a sealed image's config
/// (`config.Labels`): the merged EROFS's fs-verity digest in hex
/// (composefs-rs `crates/composefs-oci/src/oci_image.rs`). A signed config
/// carrying it binds config and EROFS; `sealroot oci seal --inline`
/// writes it.
pub const COMPOSEFS_SEAL_LABEL: &str = "containers.composefs.fsverity";

/// The parts of an image config sealroot reads. Everything else stays in the
/// stored bytes untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfig {
    /// `created`: RFC 3339 (the rollback floor compares it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `author`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `architecture` (GOARCH).
    pub architecture: String,
    /// `os` (GOOS).
    pub os: String,
    /// `os.version`.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// `os.features`.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// `variant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `config`: runtime defaults, and the labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RuntimeConfig>,
    /// `rootfs`: the layers' `diff_ids`.
    pub rootfs: RootFs,
}

/// `rootfs`: the layer chain by uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// `type`: always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `diff_ids`: the sha256 of each uncompressed layer, base first.
    pub diff_ids: Vec<DiffId>,
}

/// `config`: runtime defaults. Only what a boot flow may want to show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `Env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `Entrypoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `WorkingDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `Labels` (sealroot reads [`COMPOSEFS_SEAL_LABEL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

impl Document for ImageConfig {
    const KIND: &'static str = "image config";
    fn validate(&self) -> Result<(), String> {
        if self.rootfs.kind != "layers" {
            return Err(format!(
                "rootfs.type is {:?}, expected \"layers\"",
                self.rootfs.kind
            ));
        }
        Ok(())
    }
}

impl ImageConfig {
    /// The [`COMPOSEFS_SEAL_LABEL`] value, if the config has one.
    pub fn seal_label(&self) -> Option<&str> {
        self.config
            .as_ref()?
            .labels
            .as_ref()?
            .get(COMPOSEFS_SEAL_LABEL)
            .map(String::as_str)
    }

    /// The platform the config describes.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
            features: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::stored::Stored;

    #[test]
    fn parses_diff_ids_and_labels() {
        let j = r#"{"architecture":"amd64","os":"linux",
          "config":{"Env":["PATH=/bin"],"Labels":{"containers.bootc":"1"}},
          "rootfs":{"type":"layers","diff_ids":[
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"]},
          "history":[{"created_by":"x"}]}"#;
        let c = Stored::<ImageConfig>::parse(j.as_bytes().to_vec()).unwrap();
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert_eq!(c.platform().to_string(), "linux/amd64");
        let labels = c.config.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(labels["containers.bootc"], "1");
        let bad = j.replace("\"layers\",", "\"squash\",");
        assert!(Stored::<ImageConfig>::parse(bad.into_bytes()).is_err());
    }
}
