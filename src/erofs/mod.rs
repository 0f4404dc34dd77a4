//! composefs EROFS images: the on-disk [`format`], the [`writer`]
//! (byte-identical to `mkcomposefs` 1.0) and the [`reader`] (hostile-input
//! safe, what `composefs-info` does).

mod build;
pub mod format;
pub mod reader;
pub mod writer;

pub use writer::{WriteError, WriteOptions, image_bytes, image_digest, write_image};
