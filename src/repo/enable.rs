//! `sealroot repo enable-verity`: enable fs-verity where a deploy could not
//! (a build host, a filesystem without it): on objects (sha256), and on the
//! signed files of each deployment (the repository algorithm, with the
//! PKCS#7 of the artifact, or of the inline-sealed manifest, as builtin
//! signature when the deployment says builtin), then record
//! `"verity": true`. An object gets the builtin signature the first
//! deployment's object signature bundle (`objsig`) has for it, if any
//! (docs/ipe.md): IPE's `fsverity_signature=TRUE` needs one.
//!
//! Files are re-created atomically (a copy gets verity, then is renamed
//! over) because verity needs a file with no writer, which an in-place file
//! may have. Everything is inspected before anything is changed: a symlink,
//! special file or hard-linked file where the layout has a file refuses the
//! whole command (enabling fs-verity makes a file immutable for good; it
//! must never reach a file outside the repository). The caller holds the
//! repository's exclusive lock.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::objsig::repo::RepoBundles;
use crate::oci::artifact::Role;
use crate::oci::manifest::ImageManifest;
use crate::oci::stored::Stored;
use crate::verity::{VerityParams, ioctl};

use super::Error;
use super::deploy::replace_deployment_json;
use super::json::{Deployment, SignatureMode, parse_verity_hex};
use super::scan;
use super::source::deployed;
use super::store::{MAX_BLOB_SIZE, MAX_IMAGE_SIZE, Repository, VerityRequest, VerityState};

const COMMAND: &str = "enable-verity";

/// What enable-verity did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnableReport {
    /// Files that got fs-verity now.
    pub enabled: u64,
    /// Files that had it already.
    pub already: u64,
    /// Of `enabled`, objects that got their builtin signature from a
    /// deployment's object signature bundle.
    pub objects_signed: u64,
}

/// A file that lacks fs-verity and what it should get.
struct Pending {
    rel: PathBuf,
    params: VerityParams,
    signature: Option<Vec<u8>>,
    limit: u64,
}

/// Enables fs-verity on every repository file that lacks it. `progress` is
/// told each file before it is rewritten.
pub fn enable_verity(
    repo: &Repository,
    progress: &mut dyn FnMut(&Path),
) -> Result<EnableReport, Error> {
    run(repo, progress).map_err(|e| e.refusing(COMMAND))
}

fn run(repo: &Repository, progress: &mut dyn FnMut(&Path)) -> Result<EnableReport, Error> {
    let mut report = EnableReport::default();
    let has_verity = |rel: &Path| -> Result<bool, Error> {
        let f = repo.open_file(rel)?;
        Ok(ioctl::has_verity(&f).unwrap_or(false))
    };

    // Inspect.
    let mut pending = Vec::new();
    let bundles = RepoBundles::load(repo)?;
    let object_alg = repo.object_algorithm();
    for f in scan::objects(repo)?.refuse_unexpected(COMMAND)? {
        if ioctl::has_verity(&f.open()?).unwrap_or(false) {
            report.already += 1;
        } else {
            let signature = parse_verity_hex(&f.name, object_alg)
                .ok()
                .and_then(|d| bundles.pkcs7(&d));
            if signature.is_some() {
                report.objects_signed += 1;
            }
            pending.push(Pending {
                rel: f.rel,
                params: object_alg.params(),
                signature,
                limit: MAX_IMAGE_SIZE,
            });
        }
    }
    let params = repo.params();
    let mut deployments: Vec<(Deployment, usize)> = Vec::new();
    for found in repo.deployments()? {
        let d = found.deployment?;
        if d.signatures == SignatureMode::AttachAtBoot {
            // The initramfs enables verity with the signature at boot.
            continue;
        }
        // Only builtin deployments attach signatures; the others need none
        // (and a wrong hint is sealroot-prepare's to refuse, not ours).
        // They come from the artifact, or (inline) from the manifest.
        let mut signatures = if d.signatures == SignatureMode::Builtin {
            let manifest = repo.read_file(repo.blob_rel(&d.manifest.0), MAX_BLOB_SIZE)?;
            let manifest = Stored::<ImageManifest>::parse(manifest).map_err(|e| {
                Error::Refused(format!(
                    "{}: not an image manifest: {e}",
                    repo.display(repo.blob_rel(&d.manifest.0)).display()
                ))
            })?;
            deployed(repo, &d, &manifest)?
        } else {
            Vec::new()
        };
        let files = [
            (Role::Manifest, repo.blob_rel(&d.manifest.0), MAX_BLOB_SIZE),
            (Role::Config, repo.blob_rel(&d.config.0), MAX_BLOB_SIZE),
        ]
        .into_iter()
        .chain(
            d.images()
                .map(|(role, image)| (role, repo.image_rel(&image), MAX_IMAGE_SIZE)),
        );
        for (role, rel, limit) in files {
            if has_verity(&rel)? {
                report.already += 1;
                continue;
            }
            // The role's signature, if it has one (an inline manifest has
            // none).
            let signature = match signatures.iter().position(|s| s.role == role) {
                Some(i) => Some(signatures.swap_remove(i).der?),
                None => None,
            };
            pending.push(Pending {
                rel,
                params: params.clone(),
                signature,
                limit,
            });
        }
        deployments.push((d, pending.len()));
    }

    // Act: objects first, then each deployment's files, then its record.
    let mut done = 0;
    let mut enable = |p: &Pending, report: &mut EnableReport| -> Result<(), Error> {
        progress(&repo.display(&p.rel));
        let bytes = repo.read_file(&p.rel, p.limit)?;
        let request = VerityRequest::On {
            params: &p.params,
            signature: p.signature.as_deref(),
        };
        match repo.put_file(&p.rel, &bytes, request)? {
            VerityState::Unsupported => Err(Error::Refused(format!(
                "{}: this filesystem or kernel has no fs-verity (EOPNOTSUPP); run this on the \
                 target system (ext4 with -O verity, btrfs, f2fs)",
                repo.display(&p.rel).display()
            ))),
            _ => {
                report.enabled += 1;
                Ok(())
            }
        }
    };
    for (mut d, end) in deployments {
        while done < end {
            enable(&pending[done], &mut report)?;
            done += 1;
        }
        if !d.verity {
            d.verity = true;
            replace_deployment_json(repo, &d)?;
        }
    }
    while done < pending.len() {
        enable(&pending[done], &mut report)?;
        done += 1;
    }
    Ok(report)
}
