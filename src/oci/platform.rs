//! Platforms (`os`/`architecture`/`variant`) and choosing one image out of a
//! multi-platform index.
//!
//! Values follow the image-spec (`image-index.md`, "platform"), which borrows
//! Go's `GOOS`/`GOARCH` spelling: `amd64`, `arm64`, `ppc64le`, ... Variant
//! defaults follow containerd's platform matcher, the de-facto reference:
//! an absent variant means `v8` on arm64, `v7` on arm and `v1` on amd64.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A platform as it appears in an index descriptor or an image config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    /// `architecture` (GOARCH: `amd64`, `arm64`, ...).
    pub architecture: String,
    /// `os` (GOOS: `linux`, ...).
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
    /// `variant` (`v8` of arm64, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `features` (reserved by the spec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// A `--platform` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid platform {0:?}: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64 or linux/arm64/v8"
)]
pub struct PlatformParseError(pub String);

impl Platform {
    /// A platform of these parts, the rest empty.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            variant: variant.map(str::to_owned),
            ..Platform::default()
        }
    }

    /// The platform this binary runs on, in OCI spelling.
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform::new(std::env::consts::OS, arch, variant)
    }

    /// The variant with containerd's defaults filled in, for comparison.
    fn normalized_variant(&self) -> &str {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None | Some("") | Some("v8")) => "v8",
            ("arm", None | Some("")) => "v7",
            ("amd64", None | Some("") | Some("v1")) => "v1",
            (_, v) => v.unwrap_or(""),
        }
    }

    /// Does `candidate` (from an index) run on `self` (what was asked for)?
    /// OS and architecture must be equal; a variant is compared only when
    /// the request names one (or has a default for its architecture).
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && self.normalized_variant() == candidate.normalized_variant()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(PlatformParseError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        for bad in ["", "linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn variant_defaults() {
        let want: Platform = "linux/arm64".parse().unwrap();
        assert!(want.matches(&"linux/arm64/v8".parse().unwrap()));
        assert!(!want.matches(&"linux/arm/v7".parse().unwrap()));
        let arm: Platform = "linux/arm".parse().unwrap();
        assert!(arm.matches(&"linux/arm/v7".parse().unwrap()));
        assert!(!arm.matches(&"linux/arm/v6".parse().unwrap()));
        let amd: Platform = "linux/amd64".parse().unwrap();
        assert!(amd.matches(&"linux/amd64".parse().unwrap()));
        assert!(!amd.matches(&"windows/amd64".parse().unwrap()));
    }

    #[test]
    fn host_is_linux() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(h.architecture, "amd64");
    }

    #[test]
    fn json_field_names() {
        let p: Platform =
            serde_json::from_str(r#"{"architecture":"amd64","os":"linux","os.version":"1"}"#)
                .unwrap();
        assert_eq!(p.os_version.as_deref(), Some("1"));
    }
}
