//! Media types (`mediaType`, `artifactType`), kept as the exact string so an
//! unknown type survives a read-modify-write of `index.json` unchanged.
//!
//! The registered values come from the image-spec's `media-types.md`; the
//! Docker equivalents from the Docker "Image Manifest V2, Schema 2" document,
//! which OCI declares compatible (media-types.md, "Compatibility Matrix").

use std::fmt;

use serde::{Deserialize, Serialize};

/// Compression of a layer blob, decided by its media type (and checked
/// against the blob's magic bytes when it is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    None,
    /// `+gzip` (RFC 1952).
    Gzip,
    /// `+zstd` (RFC 8878).
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// A media type string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MediaType(String);

impl MediaType {
    /// An image index (image-index.md).
    pub const OCI_INDEX: &'static str = "application/vnd.oci.image.index.v1+json";
    /// An image manifest (manifest.md).
    pub const OCI_MANIFEST: &'static str = "application/vnd.oci.image.manifest.v1+json";
    /// An image config (config.md).
    pub const OCI_CONFIG: &'static str = "application/vnd.oci.image.config.v1+json";
    /// The `oci-layout` file (image-layout.md).
    pub const OCI_LAYOUT_HEADER: &'static str = "application/vnd.oci.layout.header.v1+json";
    /// The empty descriptor's type (manifest.md, "Guidance for an Empty Descriptor").
    pub const OCI_EMPTY: &'static str = "application/vnd.oci.empty.v1+json";
    /// An uncompressed layer (layer.md).
    pub const OCI_LAYER_TAR: &'static str = "application/vnd.oci.image.layer.v1.tar";
    /// A gzip layer.
    pub const OCI_LAYER_TAR_GZIP: &'static str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// A zstd layer.
    pub const OCI_LAYER_TAR_ZSTD: &'static str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Deprecated in image-spec 1.1 but still readable.
    pub const OCI_LAYER_NONDIST_TAR: &'static str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar";
    /// Its gzip form (deprecated likewise).
    pub const OCI_LAYER_NONDIST_TAR_GZIP: &'static str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// Its zstd form (deprecated likewise).
    pub const OCI_LAYER_NONDIST_TAR_ZSTD: &'static str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

    /// A Docker schema 2 image manifest.
    pub const DOCKER_MANIFEST: &'static str =
        "application/vnd.docker.distribution.manifest.v2+json";
    /// A Docker manifest list (the index's equivalent).
    pub const DOCKER_MANIFEST_LIST: &'static str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// A Docker image config.
    pub const DOCKER_CONFIG: &'static str = "application/vnd.docker.container.image.v1+json";
    /// A Docker gzip layer.
    pub const DOCKER_LAYER_TAR_GZIP: &'static str =
        "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Not in the Docker spec, but written by some tools for uncompressed layers.
    pub const DOCKER_LAYER_TAR: &'static str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Windows base layers; never valid for a Linux root filesystem.
    pub const DOCKER_FOREIGN_LAYER: &'static str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    /// `artifactType` of the composefs sealing artifact (sealing spec, current).
    pub const COMPOSEFS_METADATA_V1: &'static str = "application/vnd.composefs.metadata.v1";
    /// `artifactType` of the earlier draft of the sealing artifact.
    pub const COMPOSEFS_SIGNATURE_V1: &'static str = "application/vnd.composefs.signature.v1";
    /// Layer type of one DER PKCS#7 signature in a sealing artifact.
    pub const COMPOSEFS_SIGNATURE_PKCS7: &'static str =
        "application/vnd.composefs.signature.v1+pkcs7";
    /// sealroot's extension layer of a sealing artifact: the per-object
    /// signature bundle (`objsig`, docs/sealing.md "Object signatures").
    pub const SEALROOT_OBJECT_SIGNATURES: &'static str =
        "application/vnd.sealroot.object-signatures.v1";

    /// A media type, as written (any string: unknown types are kept).
    pub fn new(s: impl Into<String>) -> Self {
        MediaType(s.into())
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An image index or Docker manifest list.
    pub fn is_index(&self) -> bool {
        self.0 == Self::OCI_INDEX || self.0 == Self::DOCKER_MANIFEST_LIST
    }

    /// An image manifest (OCI or Docker schema 2).
    pub fn is_manifest(&self) -> bool {
        self.0 == Self::OCI_MANIFEST || self.0 == Self::DOCKER_MANIFEST
    }

    /// An image config (OCI or Docker).
    pub fn is_image_config(&self) -> bool {
        self.0 == Self::OCI_CONFIG || self.0 == Self::DOCKER_CONFIG
    }

    /// The compression of a filesystem layer of this type, or `None` when the
    /// type is not a (Linux) filesystem layer at all.
    pub fn layer_compression(&self) -> Option<Compression> {
        match self.0.as_str() {
            Self::OCI_LAYER_TAR | Self::OCI_LAYER_NONDIST_TAR | Self::DOCKER_LAYER_TAR => {
                Some(Compression::None)
            }
            Self::OCI_LAYER_TAR_GZIP
            | Self::OCI_LAYER_NONDIST_TAR_GZIP
            | Self::DOCKER_LAYER_TAR_GZIP => Some(Compression::Gzip),
            Self::OCI_LAYER_TAR_ZSTD | Self::OCI_LAYER_NONDIST_TAR_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        MediaType(s.to_owned())
    }
}

impl PartialEq<str> for MediaType {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_compressions() {
        let c = |s: &str| MediaType::from(s).layer_compression();
        assert_eq!(c(MediaType::OCI_LAYER_TAR), Some(Compression::None));
        assert_eq!(c(MediaType::OCI_LAYER_TAR_GZIP), Some(Compression::Gzip));
        assert_eq!(c(MediaType::DOCKER_LAYER_TAR_GZIP), Some(Compression::Gzip));
        assert_eq!(c(MediaType::OCI_LAYER_TAR_ZSTD), Some(Compression::Zstd));
        assert_eq!(c(MediaType::DOCKER_FOREIGN_LAYER), None);
        assert_eq!(c(MediaType::OCI_CONFIG), None);
    }
}
