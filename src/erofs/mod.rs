//! composefs EROFS images: the on-disk [`format`], the [`writer`]
//! (byte-identical to `mkcomposefs` 1.0) and the [`reader`] (hostile-input
//! safe, what `composefs-info` does).

#[cfg(feature = "host")]
mod build;
pub mod format;
pub mod objects;
pub mod reader;
// Writing images is the host's job; sealroot-prepare only reads them.
#[cfg(feature = "host")]
pub mod writer;

#[cfg(feature = "host")]
pub use writer::{WriteError, WriteOptions, image_bytes, image_digest, write_image};
