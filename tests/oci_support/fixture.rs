//! Builds OCI image layouts from generated layers.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sealroot::oci::{Compression, Descriptor, MediaType, Sha256Digest};
use serde_json::json;

pub const MTIME: u64 = 1_700_000_000;

/// Writes tar layers member by member.
pub struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(0);
    h
}

impl LayerBuilder {
    pub fn new() -> Self {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Complete);
        LayerBuilder { b }
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = header(tar::EntryType::Directory, mode);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// A directory with its owner and mtime.
    pub fn dir_with(&mut self, path: &str, mode: u32, uid: u64, gid: u64, mtime: u64) -> &mut Self {
        let mut h = header(tar::EntryType::Directory, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// PAX records (`SCHILY.xattr.*`, `mtime`, ...) for the next member.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.b
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    pub fn file(&mut self, path: &str, content: &[u8], mode: u32) -> &mut Self {
        self.file_owned(path, content, mode, 0, 0)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        content: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = header(tar::EntryType::Regular, mode);
        h.set_size(content.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.b.append_data(&mut h, path, content).unwrap();
        self
    }

    /// A file with PAX records (xattrs as `SCHILY.xattr.*`, `mtime`, ...).
    pub fn file_pax(&mut self, path: &str, content: &[u8], records: &[(&str, &[u8])]) -> &mut Self {
        self.pax(records).file(path, content, 0o644)
    }

    /// A file whose name is carried only by a PAX `path` record.
    pub fn file_pax_path(&mut self, path: &str, content: &[u8]) -> &mut Self {
        self.b
            .append_pax_extensions([("path", path.as_bytes())])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(MTIME);
        h.set_size(content.len() as u64);
        h.set_path("placeholder").unwrap();
        h.set_cksum();
        self.b.append(&h, content).unwrap();
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Symlink, 0o777);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Link, 0o644);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn device(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut h = header(kind, 0o600);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn fifo(&mut self, path: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Fifo, 0o644);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// `.wh.<name>` next to `path`.
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, b"", 0o600)
    }

    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o600)
    }

    /// Appends a raw header block (for malformed members); `name` is
    /// written into the name field unchecked.
    pub fn raw(
        &mut self,
        kind: tar::EntryType,
        name: &[u8],
        link: &[u8],
        content: &[u8],
    ) -> &mut Self {
        let mut h = header(kind, 0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_size(content.len() as u64);
        h.set_cksum();
        self.b.append(&h, content).unwrap();
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// A layer blob in a given compression.
pub fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(tar, 3).unwrap(),
    }
}

pub fn layer_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => MediaType::OCI_LAYER_TAR,
        Compression::Gzip => MediaType::OCI_LAYER_TAR_GZIP,
        Compression::Zstd => MediaType::OCI_LAYER_TAR_ZSTD,
    }
}

/// What was written for one image.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub dir: PathBuf,
    pub manifest: Sha256Digest,
    pub manifest_bytes: Vec<u8>,
    pub config: Sha256Digest,
    pub layers: Vec<Sha256Digest>,
    pub diff_ids: Vec<Sha256Digest>,
}

impl Fixture {
    pub fn blob(&self, d: &Sha256Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.to_hex())
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor::for_bytes(MediaType::OCI_MANIFEST, &self.manifest_bytes)
    }
}

pub fn write_blob(dir: &Path, bytes: &[u8]) -> Sha256Digest {
    let d = Sha256Digest::of(bytes);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(d.to_hex()), bytes).unwrap();
    d
}

/// Builds an image from layers.
pub struct ImageBuilder {
    pub layers: Vec<(Vec<u8>, Compression)>,
    pub arch: String,
    /// Overrides for diff_ids (to build inconsistent images).
    pub diff_ids: Option<Vec<Sha256Digest>>,
    /// The config's `created` (none by default).
    pub created: Option<String>,
}

impl ImageBuilder {
    pub fn new() -> Self {
        ImageBuilder {
            layers: Vec::new(),
            arch: "amd64".into(),
            diff_ids: None,
            created: None,
        }
    }

    pub fn layer(mut self, tar: Vec<u8>, c: Compression) -> Self {
        self.layers.push((tar, c));
        self
    }

    pub fn arch(mut self, a: &str) -> Self {
        self.arch = a.into();
        self
    }

    /// Writes blobs (and the layout skeleton if missing) without touching
    /// index.json.
    pub fn write_blobs(&self, dir: &Path) -> Fixture {
        init_layout(dir);
        let mut layer_descs = Vec::new();
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (tar, c) in &self.layers {
            let blob = compress(tar, *c);
            let d = write_blob(dir, &blob);
            layers.push(d);
            diff_ids.push(Sha256Digest::of(tar));
            layer_descs.push(json!({
                "mediaType": layer_media_type(*c), "digest": d.to_string(), "size": blob.len()
            }));
        }
        let ids = self.diff_ids.clone().unwrap_or_else(|| diff_ids.clone());
        let mut config = json!({
            "architecture": self.arch, "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], "Labels": {"containers.bootc": "1"}},
            "rootfs": {"type": "layers", "diff_ids": ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
            "history": [{"created_by": "sealroot test fixture"}]
        });
        if let Some(c) = &self.created {
            config["created"] = json!(c);
        }
        let config = serde_json::to_vec_pretty(&config).unwrap();
        let config_digest = write_blob(dir, &config);
        let manifest_bytes = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": MediaType::OCI_MANIFEST,
            "config": {"mediaType": MediaType::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": layer_descs,
        }))
        .unwrap();
        let manifest = write_blob(dir, &manifest_bytes);
        Fixture {
            dir: dir.to_owned(),
            manifest,
            manifest_bytes,
            config: config_digest,
            layers,
            diff_ids,
        }
    }

    /// Writes the image and tags it in index.json.
    pub fn write(&self, dir: &Path, tag: &str) -> Fixture {
        let f = self.write_blobs(dir);
        let mut annotations = BTreeMap::new();
        annotations.insert("org.opencontainers.image.ref.name", tag);
        add_to_index(
            dir,
            json!({"mediaType": MediaType::OCI_MANIFEST, "digest": f.manifest.to_string(),
                   "size": f.manifest_bytes.len(), "annotations": annotations}),
        );
        f
    }
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

pub fn init_layout(dir: &Path) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        std::fs::write(layout, br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(
            dir.join("index.json"),
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        )
        .unwrap();
    }
}

/// Appends a descriptor to index.json.
pub fn add_to_index(dir: &Path, desc: serde_json::Value) {
    let path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().push(desc);
    std::fs::write(path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Writes a multi-platform index over `images` (each with its platform)
/// and tags it.
pub fn write_index(
    dir: &Path,
    images: &[(&Fixture, &str, Option<&str>)],
    tag: &str,
) -> Sha256Digest {
    let manifests: Vec<_> = images
        .iter()
        .map(|(f, arch, variant)| {
            let mut p = json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant {
                p["variant"] = json!(v);
            }
            json!({"mediaType": MediaType::OCI_MANIFEST, "digest": f.manifest.to_string(),
                   "size": f.manifest_bytes.len(), "platform": p})
        })
        .collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MediaType::OCI_INDEX, "manifests": manifests
    }))
    .unwrap();
    let d = write_blob(dir, &index);
    add_to_index(
        dir,
        json!({"mediaType": MediaType::OCI_INDEX, "digest": d.to_string(), "size": index.len(),
               "annotations": {"org.opencontainers.image.ref.name": tag}}),
    );
    d
}
