//! OCI images: layouts, archives, manifests, layers, and the composefs
//! sealing artifact.
//!
//! (Design notes are completed at the end of this file.)

pub mod config;
pub mod descriptor;
pub mod artifact;
pub mod digest;
pub mod index;
pub mod manifest;
pub mod media_type;
pub mod platform;
pub mod reference;
pub mod stored;
pub mod verify;

pub use config::ImageConfig;
pub use descriptor::Descriptor;
pub use digest::{ConfigDigest, DiffId, LayerDigest, ManifestDigest, Sha256Digest};
pub use index::ImageIndex;
pub use manifest::ImageManifest;
pub use media_type::{Compression, MediaType};
pub use platform::Platform;
pub use reference::{ImageReference, Selector};
pub use stored::Stored;

#[cfg(feature = "host")]
pub mod layer;
#[cfg(feature = "host")]
pub mod apply;
#[cfg(feature = "host")]
pub mod sink;
#[cfg(feature = "host")]
pub mod archive;
#[cfg(feature = "host")]
pub mod layout;
#[cfg(feature = "host")]
pub mod import;
#[cfg(feature = "host")]
pub mod referrers;
#[cfg(feature = "host")]
pub mod write;
