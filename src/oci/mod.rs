//! OCI images: layouts, archives, manifests, layers, and the composefs
//! sealing artifact.
//!
//! # Map
//!
//! JSON model (no host dependencies; `sealroot-prepare` parses manifests,
//! configs and artifacts with it): [`digest`] (sha256 newtypes with roles),
//! [`media_type`], [`descriptor`], [`platform`], [`index`], [`manifest`],
//! [`config`], [`stored`] (documents kept as their exact bytes),
//! [`verify`] (blob verification while reading), [`reference`]
//! (`oci:DIR[:TAG|@sha256:D]`, `oci-archive:FILE[:TAG]`), [`artifact`]
//! (sealing artifact model, parse, build), [`inline`] (inline sealing
//! metadata in an image manifest), [`binding`] (sealroot's signed binding
//! record), [`keys`] (the annotation key scheme all three share).
//!
//! Host side (`host` feature): `layout` and `archive` (reading images),
//! `layer` (one layer as a stream of validated changes), `sink` (where file
//! content goes), `import` (all layers of an image, in parallel), `apply`
//! (changes into a tree with OCI semantics), `write` (atomic additions to a
//! layout), `referrers` (finding artifacts attached to an image).
//!
//! Typical use (the repository/seal code):
//!
//! ```no_run
//! # #[cfg(feature = "host")] fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use sealroot::oci::{ImageReference, Platform, import, layout::ImageLayout, sink::DigestOnlySink};
//! let r: ImageReference = "oci:/srv/images:os-1.0".parse()?;
//! let layout = ImageLayout::open(&r)?;
//! let image = layout.resolve(&r.selector, &Platform::host())?;
//! // image.manifest.bytes() / image.config.bytes(): what gets stored and signed.
//! let layers = import::import_layers(&layout, &image, &DigestOnlySink::default())?;
//! // import::apply_layers(&mut tree, &layers)?; then write the EROFS from the tree.
//! # Ok(()) }
//! ```
//!
//! # Trust
//!
//! Nothing read from a layout is trusted until its digest checked out: every
//! blob goes through a [`verify::VerifyingReader`] (size and sha256 against
//! the descriptor that named it), every layer's tar stream is hashed for its
//! `diff_id`, and a mismatch stops the work with an error naming the blob,
//! the expected and the actual digest. Manifests and configs are never
//! re-serialised: their stored bytes are what is hashed, stored and signed.
//!
//! # Streaming and memory
//!
//! Memory is bounded by metadata, never by content:
//!
//! - a layer is a pipeline of readers (blob file → sha256/size check →
//!   gzip/zstd decoder → diff_id hash → tar framing), each pulling a block
//!   at a time; no layer is ever held in memory, and a layer is read exactly
//!   once;
//! - tar extension headers (PAX, GNU long names) are capped at 1 MiB, so a
//!   hostile size field cannot allocate without bound;
//! - regular files stream from the tar straight into the
//!   [`sink::ObjectSink`], which hashes (fs-verity) and writes the object in
//!   the same pass — the fs-verity digest of a file is computed while it is
//!   written to the object store, never by reading it back; files of at most
//!   64 bytes stay inline in the tree, as composefs stores them;
//! - what a layer leaves behind is its list of changes: paths, metadata and
//!   digests (about 200 bytes per entry), from which the tree is built.
//!
//! # Parallelism
//!
//! Hashing dominates (sha256 of the compressed blob and of the tar stream,
//! inflate, and the fs-verity Merkle tree of every file). Layers are
//! independent until applied, so [`import::import_layers`] reads all layers
//! of an image at once on the rayon pool, one task per layer: each task runs
//! its own pipeline. Within a layer, files of up to 8 MiB are read ahead
//! into memory (16 MiB in flight per import) and stored by the (shared,
//! `Sync`) sink on the pool while the layer task reads on, so even a
//! single-layer image, the common bootc case, keeps every core busy.
//! Applying the resulting change lists to the tree is cheap and sequential,
//! lowest layer first. Within one stream, sha256 (blob), decompression and
//! sha256 (diff_id) are inherently sequential.

pub mod artifact;
pub mod binding;
pub mod config;
pub mod descriptor;
pub mod digest;
pub mod index;
pub mod inline;
pub mod keys;
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
pub mod apply;
#[cfg(feature = "host")]
pub mod archive;
#[cfg(feature = "host")]
pub mod boot;
#[cfg(feature = "host")]
pub mod canonical;
#[cfg(feature = "host")]
pub mod import;
#[cfg(feature = "host")]
pub mod layer;
#[cfg(feature = "host")]
pub mod layout;
#[cfg(feature = "host")]
pub mod referrers;
#[cfg(feature = "host")]
pub mod sink;
#[cfg(feature = "host")]
pub mod tree_target;
#[cfg(feature = "host")]
pub mod write;
