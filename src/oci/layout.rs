//! Reading images from an OCI image layout (image-spec `image-layout.md`),
//! as a directory or inside an `oci-archive` tar.
//!
//! A layout is `oci-layout` (`{"imageLayoutVersion": "1.0.0"}`),
//! `index.json` (an image index whose entries are the layout's images, tagged
//! by the `org.opencontainers.image.ref.name` annotation) and
//! `blobs/<alg>/<hex>`. Resolving a reference walks index.json, then nested
//! indexes (choosing a platform), to an image manifest and its config. Every
//! blob is read through a [`VerifyingReader`]; manifests and configs are
//! kept as their stored bytes ([`Stored`]).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::archive::{Archive, ArchiveError};
use super::config::ImageConfig;
use super::descriptor::Descriptor;
use super::digest::{DiffId, ManifestDigest, Sha256Digest};
use super::index::ImageIndex;
use super::manifest::ImageManifest;
use super::platform::Platform;
use super::reference::{ImageReference, Selector, Transport};
use super::stored::{Document, JsonError, MAX_JSON_SIZE, Stored};
use super::verify::VerifyingReader;

/// How deep indexes may nest below index.json before we call it a loop.
pub const MAX_INDEX_DEPTH: usize = 8;

/// Something wrong with a layout or with finding an image in it.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// No `oci-layout` file, or one of another version.
    #[error("{path} is not an OCI image layout: {reason}")]
    NotALayout {
        /// The directory or archive.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The oci-archive cannot be read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A JSON document (index, manifest, config) is invalid.
    #[error("{location}: {error}")]
    Json {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
        /// Why.
        error: JsonError,
    },
    /// A blob a descriptor names is not in `blobs/sha256/`.
    #[error("{location}: blob {digest} ({what}) is missing")]
    MissingBlob {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
        /// The blob's digest.
        digest: Sha256Digest,
        /// What it should have been.
        what: String,
    },
    /// A JSON document larger than sealroot reads.
    #[error(
        "{location}: {what} {digest} is {size} bytes; refusing JSON documents over {max} bytes"
    )]
    TooLarge {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
        /// What the document is.
        what: String,
        /// Its digest.
        digest: Sha256Digest,
        /// Its size per descriptor.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A blob's content does not match its descriptor (or cannot be read).
    #[error(transparent)]
    Blob(io::Error),
    /// No image has the tag asked for.
    #[error(
        "{location}: no image is tagged {tag:?}; tags present: {}",
        list(available)
    )]
    NoSuchTag {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
        /// The tag asked for.
        tag: String,
        /// The tags there are.
        available: Vec<String>,
    },
    /// No manifest or index has the digest asked for.
    #[error(
        "{location}: no manifest or index {digest} is listed in index.json or an index below it"
    )]
    NoSuchDigest {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
        /// The digest asked for.
        digest: ManifestDigest,
    },
    /// `index.json` lists nothing.
    #[error("{location} holds no image")]
    Empty {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
    },
    /// Several images and no tag or digest to choose.
    #[error(
        "{location} holds {count} images; name one with :TAG or @sha256:DIGEST (tags: {})",
        list(tags)
    )]
    Ambiguous {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
        /// How many images.
        count: usize,
        /// Their tags.
        tags: Vec<String>,
    },
    /// An index without the platform asked for.
    #[error(
        "{location}: index {index} has no image for platform {wanted}; available: {} \
         (choose one with --platform)",
        list(available)
    )]
    NoPlatform {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
        /// The index.
        index: Sha256Digest,
        /// The platform asked for.
        wanted: String,
        /// The platforms it has.
        available: Vec<String>,
    },
    /// Indexes nested deeper than [`MAX_INDEX_DEPTH`].
    #[error("{location}: indexes nest more than {MAX_INDEX_DEPTH} deep (a loop?)")]
    TooDeep {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
    },
    /// The descriptor selected is neither a manifest nor an index.
    #[error("{location}: {digest} is a {media_type}, not an image manifest or index")]
    NotAnImage {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
        /// Its digest.
        digest: Sha256Digest,
        /// Its media type.
        media_type: String,
    },
    /// The config's `diff_ids` do not match the manifest's layers.
    #[error(
        "{location}: image {manifest} has {layers} layers but its config {config} lists {diff_ids} \
         diff_ids"
    )]
    LayerCount {
        /// The layout (`oci:DIR` or `oci-archive:FILE`), for messages.
        location: String,
        /// The manifest.
        manifest: ManifestDigest,
        /// Its config.
        config: Sha256Digest,
        /// The manifest's layer count.
        layers: usize,
        /// The config's `diff_ids` count.
        diff_ids: usize,
    },
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A readable file and its size.
type OpenedFile = (Box<dyn Read + Send>, u64);

#[derive(Debug, Clone)]
enum Store {
    Dir(PathBuf),
    Archive(Archive),
}

/// An opened layout.
#[derive(Debug, Clone)]
pub struct ImageLayout {
    store: Store,
    location: String,
}

/// An image found in a layout: its manifest and config as stored.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The descriptor that led to the manifest (media type, digest, size).
    pub descriptor: Descriptor,
    /// The image manifest, as stored.
    pub manifest: Stored<ImageManifest>,
    /// The image config, as stored and checked against the manifest.
    pub config: Stored<ImageConfig>,
    /// Indexes walked through, top (index.json's entry) first.
    pub indexes: Vec<Descriptor>,
}

impl ResolvedImage {
    /// The manifest's digest, with its role.
    pub fn manifest_digest(&self) -> ManifestDigest {
        ManifestDigest(self.manifest.digest())
    }

    /// Layers with their diff_ids, lowest first.
    pub fn layers(&self) -> impl ExactSizeIterator<Item = (&Descriptor, DiffId)> {
        self.manifest
            .layers
            .iter()
            .zip(self.config.rootfs.diff_ids.iter().copied())
    }
}

#[derive(Deserialize)]
struct LayoutHeader {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

impl ImageLayout {
    /// Opens the layout or archive a reference names.
    pub fn open(reference: &ImageReference) -> Result<Self, LayoutError> {
        match reference.transport {
            Transport::Layout => Self::open_dir(&reference.path),
            Transport::Archive => Self::open_archive(&reference.path),
        }
    }

    /// Opens a layout directory.
    pub fn open_dir(path: &Path) -> Result<Self, LayoutError> {
        let layout = ImageLayout {
            store: Store::Dir(path.to_owned()),
            location: format!("oci:{}", path.display()),
        };
        layout.check_header()?;
        Ok(layout)
    }

    /// Opens an oci-archive.
    pub fn open_archive(path: &Path) -> Result<Self, LayoutError> {
        let layout = ImageLayout {
            store: Store::Archive(Archive::open(path)?),
            location: format!("oci-archive:{}", path.display()),
        };
        layout.check_header()?;
        Ok(layout)
    }

    /// `oci:DIR` or `oci-archive:FILE`, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The layout directory, if this is one (archives are read-only).
    pub fn dir(&self) -> Option<&Path> {
        match &self.store {
            Store::Dir(p) => Some(p),
            Store::Archive(_) => None,
        }
    }

    fn not_a_layout(&self, reason: impl Into<String>) -> LayoutError {
        let path = match &self.store {
            Store::Dir(p) => p.clone(),
            Store::Archive(a) => a.path().to_owned(),
        };
        LayoutError::NotALayout {
            path,
            reason: reason.into(),
        }
    }

    /// Opens a top-level file (`oci-layout`, `index.json`) with its size.
    fn open_file(&self, name: &str) -> Result<Option<OpenedFile>, LayoutError> {
        match &self.store {
            Store::Dir(dir) => {
                let path = dir.join(name);
                match File::open(&path) {
                    Ok(f) => {
                        let size = f
                            .metadata()
                            .map_err(|source| LayoutError::Io {
                                path: path.clone(),
                                error: source,
                            })?
                            .len();
                        Ok(Some((Box::new(f), size)))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(LayoutError::Io {
                        path,
                        error: source,
                    }),
                }
            }
            Store::Archive(a) => Ok(a
                .open_member(name)
                .map(|(r, size)| (Box::new(r) as Box<dyn Read + Send>, size))),
        }
    }

    fn read_small_file(&self, name: &str) -> Result<Option<Vec<u8>>, LayoutError> {
        let Some((r, size)) = self.open_file(name)? else {
            return Ok(None);
        };
        if size > MAX_JSON_SIZE {
            return Err(self.not_a_layout(format!("{name} is {size} bytes, over {MAX_JSON_SIZE}")));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.take(MAX_JSON_SIZE)
            .read_to_end(&mut buf)
            .map_err(|source| LayoutError::Io {
                path: PathBuf::from(format!("{}/{name}", self.location)),
                error: source,
            })?;
        Ok(Some(buf))
    }

    fn check_header(&self) -> Result<(), LayoutError> {
        let bytes = self
            .read_small_file("oci-layout")?
            .ok_or_else(|| self.not_a_layout("there is no oci-layout file"))?;
        let header: LayoutHeader = serde_json::from_slice(&bytes)
            .map_err(|e| self.not_a_layout(format!("oci-layout is not valid: {e}")))?;
        // image-layout.md: the version is "1.0.0" (unchanged in image-spec 1.1).
        // Accept any 1.x; a 2.x layout would be a different format.
        if header.image_layout_version.split('.').next() != Some("1") {
            return Err(self.not_a_layout(format!(
                "imageLayoutVersion is {:?}; sealroot reads version 1 layouts",
                header.image_layout_version
            )));
        }
        Ok(())
    }

    /// `index.json`, parsed and validated.
    pub fn index(&self) -> Result<Stored<ImageIndex>, LayoutError> {
        let bytes = self
            .read_small_file("index.json")?
            .ok_or_else(|| self.not_a_layout("there is no index.json"))?;
        Stored::parse(bytes).map_err(|source| LayoutError::Json {
            location: format!("{}/index.json", self.location),
            error: source,
        })
    }

    /// The path of a blob inside a layout directory.
    pub fn blob_path(dir: &Path, digest: &Sha256Digest) -> PathBuf {
        dir.join("blobs").join("sha256").join(digest.to_hex())
    }

    /// Opens a blob for verified reading. `what` names it in errors
    /// ("layer 3 of image sha256:...").
    pub fn open_blob(
        &self,
        desc: &Descriptor,
        what: &str,
    ) -> Result<VerifyingReader<Box<dyn Read + Send>>, LayoutError> {
        let name = format!("blobs/sha256/{}", desc.digest.to_hex());
        let (reader, _) = self
            .open_file(&name)?
            .ok_or_else(|| LayoutError::MissingBlob {
                location: self.location.clone(),
                digest: desc.digest,
                what: what.to_owned(),
            })?;
        let label = format!("{}: {what}", self.location);
        Ok(VerifyingReader::new(reader, label, desc.digest, desc.size))
    }

    /// Reads and parses a JSON blob, verified and size-capped.
    pub fn read_json<T: Document>(
        &self,
        desc: &Descriptor,
        what: &str,
    ) -> Result<Stored<T>, LayoutError> {
        if desc.size > MAX_JSON_SIZE {
            return Err(LayoutError::TooLarge {
                location: self.location.clone(),
                what: what.to_owned(),
                digest: desc.digest,
                size: desc.size,
                max: MAX_JSON_SIZE,
            });
        }
        let mut r = self.open_blob(desc, what)?;
        let mut bytes = Vec::with_capacity(desc.size as usize);
        r.read_to_end(&mut bytes).map_err(LayoutError::Blob)?;
        r.finish().map_err(LayoutError::Blob)?;
        Stored::parse(bytes).map_err(|source| LayoutError::Json {
            location: self.location.clone(),
            error: source,
        })
    }

    /// The index.json entries `Selector::Only` chooses among: images and
    /// indexes that are not referrers (no `artifactType`, not a
    /// `sha256-<hex>` referrers tag).
    fn image_entries(index: &ImageIndex) -> Vec<&Descriptor> {
        index
            .manifests
            .iter()
            .filter(|d| {
                (d.media_type.is_manifest() || d.media_type.is_index())
                    && d.artifact_type.is_none()
                    && !d.ref_name().is_some_and(is_referrers_tag)
            })
            .collect()
    }

    /// Finds the image a selector names and, through indexes, the manifest
    /// for `platform`.
    pub fn resolve(
        &self,
        selector: &Selector,
        platform: &Platform,
    ) -> Result<ResolvedImage, LayoutError> {
        let index = self.index()?;
        let top = match selector {
            Selector::Tag(tag) => {
                let found: Vec<&Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| d.ref_name() == Some(tag.as_str()))
                    .collect();
                match found.as_slice() {
                    [] => {
                        let mut available: Vec<String> = index
                            .manifests
                            .iter()
                            .filter_map(|d| d.ref_name().map(str::to_owned))
                            .collect();
                        available.sort();
                        available.dedup();
                        return Err(LayoutError::NoSuchTag {
                            location: self.location.clone(),
                            tag: tag.clone(),
                            available,
                        });
                    }
                    [first, rest @ ..] if rest.iter().all(|d| d.digest == first.digest) => {
                        (*first).clone()
                    }
                    more => {
                        return Err(LayoutError::Ambiguous {
                            location: self.location.clone(),
                            count: more.len(),
                            tags: vec![tag.clone()],
                        });
                    }
                }
            }
            Selector::Digest(digest) => {
                self.find_digest(&index.manifests, digest, 0)?
                    .ok_or_else(|| LayoutError::NoSuchDigest {
                        location: self.location.clone(),
                        digest: *digest,
                    })?
            }
            Selector::Only => {
                let entries = Self::image_entries(&index);
                match entries.as_slice() {
                    [] => {
                        return Err(LayoutError::Empty {
                            location: self.location.clone(),
                        });
                    }
                    [one] => (*one).clone(),
                    more => {
                        return Err(LayoutError::Ambiguous {
                            location: self.location.clone(),
                            count: more.len(),
                            tags: more
                                .iter()
                                .filter_map(|d| d.ref_name().map(str::to_owned))
                                .collect(),
                        });
                    }
                }
            }
        };
        self.descend(top, platform)
    }

    /// Looks for a descriptor with `digest` in `entries` and the indexes
    /// they name.
    fn find_digest(
        &self,
        entries: &[Descriptor],
        digest: &ManifestDigest,
        depth: usize,
    ) -> Result<Option<Descriptor>, LayoutError> {
        if let Some(d) = entries.iter().find(|d| d.digest == digest.0) {
            return Ok(Some(d.clone()));
        }
        if depth >= MAX_INDEX_DEPTH {
            return Ok(None);
        }
        for d in entries.iter().filter(|d| d.media_type.is_index()) {
            let idx: Stored<ImageIndex> = self.read_json(d, "image index")?;
            if let Some(found) = self.find_digest(&idx.manifests, digest, depth + 1)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    fn descend(
        &self,
        mut desc: Descriptor,
        platform: &Platform,
    ) -> Result<ResolvedImage, LayoutError> {
        let mut indexes = Vec::new();
        while desc.media_type.is_index() {
            if indexes.len() >= MAX_INDEX_DEPTH {
                return Err(LayoutError::TooDeep {
                    location: self.location.clone(),
                });
            }
            let idx: Stored<ImageIndex> = self.read_json(&desc, "image index")?;
            let next = choose_platform(&idx, platform).ok_or_else(|| LayoutError::NoPlatform {
                location: self.location.clone(),
                index: idx.digest(),
                wanted: platform.to_string(),
                available: idx
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
                    .collect(),
            })?;
            indexes.push(desc);
            desc = next;
        }
        if !desc.media_type.is_manifest() {
            return Err(LayoutError::NotAnImage {
                location: self.location.clone(),
                digest: desc.digest,
                media_type: desc.media_type.to_string(),
            });
        }
        let manifest: Stored<ImageManifest> = self.read_json(&desc, "image manifest")?;
        if !manifest.config.media_type.is_image_config() {
            return Err(LayoutError::NotAnImage {
                location: self.location.clone(),
                digest: desc.digest,
                media_type: format!(
                    "artifact (config type {}, artifactType {})",
                    manifest.config.media_type,
                    manifest
                        .artifact_type
                        .as_ref()
                        .map_or("none".into(), ToString::to_string)
                ),
            });
        }
        let what = format!("config of image {}", desc.digest);
        let config: Stored<ImageConfig> = self.read_json(&manifest.config, &what)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(LayoutError::LayerCount {
                location: self.location.clone(),
                manifest: ManifestDigest(manifest.digest()),
                config: config.digest(),
                layers: manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        Ok(ResolvedImage {
            descriptor: desc,
            manifest,
            config,
            indexes,
        })
    }
}

/// The entry of `index` for `platform`: the first whose platform matches;
/// failing that, the only image entry if it states no platform.
pub fn choose_platform(index: &ImageIndex, platform: &Platform) -> Option<Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.media_type.is_manifest() || d.media_type.is_index())
        .collect();
    if let Some(d) = candidates
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
    {
        return Some((*d).clone());
    }
    match candidates.as_slice() {
        [only] if only.platform.is_none() => Some((*only).clone()),
        _ => None,
    }
}

/// The referrers tag schema (distribution-spec, "Referrers Tag Schema"):
/// `sha256-<64 hex>` tags an index of referrers of that digest.
pub fn is_referrers_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|h| Sha256Digest::from_hex(h).is_ok())
}
