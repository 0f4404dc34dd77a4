//! ostree commits as sealed composefs roots (docs/ostree.md).
//!
//! - [`gvariant`]: the GVariant serialisation format (ostree's objects);
//! - [`objects`]: commit, dirtree, dirmeta and file metadata, parsed;
//! - [`repo`]: a bare / bare-user repository on disk, read without the
//!   ostree library, every path resolved without leaving it;
//! - [`image`]: the commit's composefs EROFS, byte for byte what ostree's
//!   composefs integration writes (`.ostree.cfs`);
//! - [`binding`]: the signed record binding a commit to its EROFS, and its
//!   place in the commit's detached metadata;
//! - [`deploy`]: a sysroot's deployments and the sealed files sealroot
//!   writes into each.
//!
//! The reading side (GVariant, objects, binding record) has no host
//! dependencies; building images and writing deployments is host-only.

pub mod binding;
#[cfg(feature = "host")]
pub mod deploy;
pub mod gvariant;
#[cfg(feature = "host")]
pub mod image;
pub mod objects;
#[cfg(feature = "host")]
pub mod repo;
