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
//!
//! gc runs as root from a timer on the booted system, whose repository an
//! offline attacker controls, so it works only on what the layout itself
//! puts there: it lists everything first and, if anything is a symlink,
//! special file or other entry deploy never creates (e.g. `tmp/` as a
//! symlink to `/etc`), refuses before removing anything. Removal is by name
//! relative to a verified directory handle (`unlinkat`); an interrupted
//! deploy's directory is removed without following the symlinks in it.
//! The caller holds the repository's exclusive lock, so nothing a deploy is
//! writing is seen as garbage.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::oci::manifest::ImageManifest;
use crate::oci::stored::Stored;

use super::Error;
use super::dir::{FileKind, optional};
use super::fsck::image_objects;
use super::scan::{self, Found, Listing};
use super::store::{MAX_BLOB_SIZE, MAX_IMAGE_SIZE, Repository};

/// What gc removed (or would remove, with `dry_run`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Nothing was removed; `removed` is what would have been.
    pub dry_run: bool,
    /// The files and directories removed.
    pub removed: Vec<PathBuf>,
    /// Their size.
    pub bytes: u64,
    /// Objects still referenced by a deployment.
    pub kept_objects: u64,
    /// EROFS images still referenced.
    pub kept_images: u64,
    /// Blobs still referenced.
    pub kept_blobs: u64,
}

const COMMAND: &str = "garbage collection";

/// The live set: what deployments reference.
#[derive(Default)]
struct Live {
    blobs: BTreeSet<String>,
    images: BTreeSet<String>,
    objects: BTreeSet<String>,
    names: BTreeSet<String>,
}

fn refused(what: String) -> Error {
    Error::Refused(format!("refusing to collect garbage: {what}"))
}

fn live_set(repo: &Repository) -> Result<Live, Error> {
    let mut live = Live::default();
    for found in repo.deployments()? {
        let d = found.deployment.map_err(|e| {
            refused(format!(
                "deployment {} is unreadable ({e}); repair it or remove that directory first",
                found.path.display()
            ))
        })?;
        live.blobs.insert(d.manifest.0.to_hex());
        live.blobs.insert(d.config.0.to_hex());
        // Inline-sealed images have no artifact: their manifest carries the
        // signatures.
        if let Some(artifact) = d.artifact {
            live.blobs.insert(artifact.to_hex());
            // A missing artifact has no blobs to keep; anything else in its
            // place (a symlink, a FIFO) is refused.
            let arel = repo.blob_rel(&artifact);
            if let Some(bytes) = optional(repo.dir().read_file(&arel, MAX_BLOB_SIZE))?
                && let Ok(m) = Stored::<ImageManifest>::parse(bytes)
            {
                live.blobs.insert(m.config.digest.to_hex());
                live.blobs
                    .extend(m.layers.iter().map(|l| l.digest.to_hex()));
            }
        }
        live.names
            .insert(format!("by-config/{}", d.config.0.to_hex()));
        // The merged EROFS and its bootable variant, if any.
        for (_, image) in d.images() {
            live.images.insert(image.to_hex());
            live.names.insert(format!("by-image/{}", image.to_hex()));
            let irel = repo.image_rel(&image);
            if let Some(data) = optional(repo.dir().read_file(&irel, MAX_IMAGE_SIZE))? {
                let objs = image_objects(&data).map_err(|e| {
                    refused(format!(
                        "image {} of deployment {} is unreadable ({e}); run `sealroot repo fsck`",
                        repo.display(&irel).display(),
                        found.path.display()
                    ))
                })?;
                live.objects.extend(objs);
            }
        }
    }
    Ok(live)
}

/// Collects garbage; with `dry_run` nothing is removed. The caller holds
/// the repository's exclusive lock.
pub fn gc(repo: &Repository, dry_run: bool) -> Result<GcReport, Error> {
    collect(repo, dry_run).map_err(|e| e.refusing(COMMAND))
}

fn collect(repo: &Repository, dry_run: bool) -> Result<GcReport, Error> {
    let live = live_set(repo)?;

    // Everything is listed (and refused if unsafe) before anything is
    // removed.
    let mut unexpected = Vec::new();
    let mut take = |l: Listing| {
        unexpected.extend(l.unexpected);
        l.found
    };
    let objects = take(scan::objects(repo)?);
    let images = take(scan::entries(repo, "images", FileKind::Regular)?);
    let blobs = take(scan::entries(repo, "blobs/sha256", FileKind::Regular)?);
    let tmp = take(scan::entries(repo, "tmp", FileKind::Regular)?);
    let mut interrupted = Listing::default();
    let deployments = repo.dir().open_dir("deployments")?;
    for e in deployments.entries()? {
        if !e.name_lossy().starts_with(".tmp-") {
            continue;
        }
        if e.kind == FileKind::Directory {
            interrupted.found.push(Found {
                name: e.name_lossy(),
                dir: deployments.clone(),
                rel: Path::new("deployments").join(&e.name),
                file_name: e.name,
            });
        } else {
            interrupted.unexpected.push(deployments.unexpected(
                Path::new(&e.name),
                e.kind,
                FileKind::Directory,
            ));
        }
    }
    let interrupted = take(interrupted);
    let mut names = Vec::new();
    for kind in ["by-config", "by-image"] {
        let l = take(scan::entries(repo, kind, FileKind::Symlink)?);
        names.extend(l.into_iter().map(|f| (kind, f)));
    }
    Listing {
        found: Vec::new(),
        unexpected,
    }
    .refuse_unexpected(COMMAND)?;

    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let remove = |f: &Found, tree: bool, report: &mut GcReport| -> Result<(), Error> {
        if let Some(meta) = f.meta()?
            && meta.kind == FileKind::Regular
        {
            report.bytes += meta.size;
        }
        if !dry_run {
            if tree {
                f.dir.remove_tree(&f.file_name)?;
            } else {
                f.dir.unlink(&f.file_name)?;
            }
        }
        report.removed.push(f.path());
        Ok(())
    };
    for f in &objects {
        if live.objects.contains(&f.name) {
            report.kept_objects += 1;
        } else {
            remove(f, false, &mut report)?;
        }
    }
    for f in &images {
        if live.images.contains(&f.name) {
            report.kept_images += 1;
        } else {
            remove(f, false, &mut report)?;
        }
    }
    for f in &blobs {
        if live.blobs.contains(&f.name) {
            report.kept_blobs += 1;
        } else {
            remove(f, false, &mut report)?;
        }
    }
    for f in &tmp {
        remove(f, false, &mut report)?;
    }
    for f in &interrupted {
        remove(f, true, &mut report)?;
    }
    for (kind, f) in &names {
        if !live.names.contains(&format!("{kind}/{}", f.name)) {
            remove(f, false, &mut report)?;
        }
    }
    Ok(report)
}
