//! `sealroot repo gc`: remove what no deployment references.
//!
//! Live set: for every deployment, its manifest, config, artifact manifest
//! and the artifact's blobs (signatures, empty config; none for an image
//! sealed inline), its image, and every
//! object that image references. Everything else in `objects/`, `images/`,
//! `blobs/sha256/`, `tmp/`, `deployments/.tmp-*` (interrupted deploys) and
//! dangling `by-*` names is garbage. State directories of existing
//! deployments are never touched. If any deployment cannot be read, gc
//! refuses: it could not know what that deployment needs.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use serde::Serialize;

use crate::oci::manifest::ImageManifest;
use crate::oci::stored::Stored;

use super::Error;
use super::fsck::{image_objects, list_dir, list_objects};
use super::store::Repository;

/// What gc removed (or would remove, with `dry_run`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub removed: Vec<PathBuf>,
    pub bytes: u64,
    pub kept_objects: u64,
    pub kept_images: u64,
    pub kept_blobs: u64,
}

/// Collects garbage; with `dry_run` nothing is removed.
pub fn gc(repo: &Repository, dry_run: bool) -> Result<GcReport, Error> {
    let mut blobs = BTreeSet::new();
    let mut images = BTreeSet::new();
    let mut objects = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (dir, d) in repo.deployments()? {
        let d = d.map_err(|e| {
            Error::Refused(format!(
                "refusing to collect garbage: deployment {} is unreadable ({e}); \
                 repair it or remove that directory first",
                dir.display()
            ))
        })?;
        blobs.insert(d.manifest.0.to_hex());
        blobs.insert(d.config.0.to_hex());
        // Inline-sealed images have no artifact: their manifest carries the
        // signatures.
        if let Some(artifact) = d.artifact
            && let Ok(m) = fs::read(repo.blob_path(&artifact)).map(Stored::<ImageManifest>::parse)
            && let Ok(m) = m
        {
            blobs.insert(artifact.to_hex());
            blobs.insert(m.config.digest.to_hex());
            blobs.extend(m.layers.iter().map(|l| l.digest.to_hex()));
        }
        images.insert(d.image.to_hex());
        names.insert(format!("by-config/{}", d.config.0.to_hex()));
        names.insert(format!("by-image/{}", d.image.to_hex()));
        let ipath = repo.image_path(&d.image);
        if ipath.exists() {
            let objs = image_objects(&ipath).map_err(|e| {
                Error::Refused(format!(
                    "refusing to collect garbage: image {} of deployment {} is unreadable \
                     ({e}); run `sealroot repo fsck`",
                    ipath.display(),
                    dir.display()
                ))
            })?;
            objects.extend(objs);
        }
    }
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let remove = |path: PathBuf, report: &mut GcReport| -> Result<(), Error> {
        let meta = fs::symlink_metadata(&path).map_err(Error::io("inspecting", &path))?;
        report.bytes += if meta.is_file() { meta.len() } else { 0 };
        if !dry_run {
            if meta.is_dir() {
                fs::remove_dir_all(&path).map_err(Error::io("removing", &path))?;
            } else {
                fs::remove_file(&path).map_err(Error::io("removing", &path))?;
            }
        }
        report.removed.push(path);
        Ok(())
    };
    for (name, path) in list_objects(repo)? {
        if objects.contains(&name) {
            report.kept_objects += 1;
        } else {
            remove(path, &mut report)?;
        }
    }
    for (name, path) in list_dir(&repo.root().join("images"))? {
        if images.contains(&name) {
            report.kept_images += 1;
        } else {
            remove(path, &mut report)?;
        }
    }
    for (name, path) in list_dir(&repo.root().join("blobs/sha256"))? {
        if blobs.contains(&name) {
            report.kept_blobs += 1;
        } else {
            remove(path, &mut report)?;
        }
    }
    for (_, path) in list_dir(&repo.tmp_dir())? {
        remove(path, &mut report)?;
    }
    for (name, path) in list_dir(&repo.root().join("deployments"))? {
        if name.starts_with(".tmp-") {
            remove(path, &mut report)?;
        }
    }
    for kind in ["by-config", "by-image"] {
        for (name, path) in list_dir(&repo.root().join(kind))? {
            if !names.contains(&format!("{kind}/{name}")) {
                remove(path, &mut report)?;
            }
        }
    }
    Ok(report)
}
