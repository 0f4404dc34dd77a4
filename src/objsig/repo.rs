//! The object signature bundles of a deployed repository (host side:
//! `sealroot repo enable-verity`, `repo fsck`). A deployment's bundle is
//! the extension layer of its sealing artifact, stored in `blobs/sha256/`
//! by `sealroot deploy`.

use crate::oci::artifact::SealArtifact;
use crate::oci::manifest::ImageManifest;
use crate::oci::stored::Stored;
use crate::oci::{Descriptor, Sha256Digest};
use crate::repo::Repository;
use crate::repo::json::Deployment;
use crate::repo::store::MAX_BLOB_SIZE;
use crate::verity::FsVerityDigest;

use super::{Bundle, MAX_BUNDLE, MEDIA_TYPE};

/// The bundle of deployment `d` (`None`: its artifact has none, or it was
/// sealed inline and has no artifact), read and checked (sha256 against the
/// artifact's descriptor, format). Both files are read through the
/// repository's [`Dir`](crate::repo::dir::Dir) (no symlink, no special or
/// hard-linked file, nothing outside the repository).
pub fn deployment_bundle(repo: &Repository, d: &Deployment) -> Result<Option<Bundle>, String> {
    let Some(artifact) = &d.artifact else {
        return Ok(None);
    };
    let arel = repo.blob_rel(artifact);
    let bytes = repo
        .read_file(&arel, MAX_BLOB_SIZE)
        .map_err(|e| e.to_string())?;
    let apath = repo.display(&arel);
    if Sha256Digest::of(&bytes) != *artifact {
        return Err(format!(
            "{}: sha256 of the content differs from the name (altered)",
            apath.display()
        ));
    }
    let stored =
        Stored::<ImageManifest>::parse(bytes).map_err(|e| format!("{}: {e}", apath.display()))?;
    let artifact = SealArtifact::parse(&stored).map_err(|e| format!("{}: {e}", apath.display()))?;
    let Some(desc) = artifact.extension(MEDIA_TYPE) else {
        return Ok(None);
    };
    read_blob(repo, desc).map(Some)
}

fn read_blob(repo: &Repository, desc: &Descriptor) -> Result<Bundle, String> {
    let rel = repo.blob_rel(&desc.digest);
    let path = repo.display(&rel);
    if desc.size > MAX_BUNDLE as u64 {
        return Err(format!(
            "{}: {} bytes, too large",
            path.display(),
            desc.size
        ));
    }
    let bytes = repo.read_file(&rel, desc.size).map_err(|e| {
        let missing = matches!(&e, crate::repo::Error::Path(p) if p.is_not_found());
        format!(
            "object signature bundle: {e}{}",
            if missing {
                " (deployed by a sealroot without object signature support? deploy again)"
            } else {
                ""
            }
        )
    })?;
    if Sha256Digest::of(&bytes) != desc.digest || bytes.len() as u64 != desc.size {
        return Err(format!(
            "{}: sha256 or size differs from the artifact's descriptor (altered)",
            path.display()
        ));
    }
    Bundle::parse(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every bundle of the repository's deployments that may give objects
/// their signatures (not `detached` ones), first deployment first.
#[derive(Debug)]
pub struct RepoBundles(Vec<Bundle>);

impl RepoBundles {
    /// The bundles of every deployment that has one (deployments with
    /// detached signatures have none); a bundle that does not parse is a
    /// refusal naming its deployment.
    pub fn load(repo: &Repository) -> Result<RepoBundles, crate::repo::Error> {
        let mut out = Vec::new();
        for found in repo.deployments()? {
            let Ok(d) = &found.deployment else { continue };
            if d.signatures == crate::repo::SignatureMode::Detached {
                continue;
            }
            match deployment_bundle(repo, d) {
                Ok(Some(b)) => out.push(b),
                Ok(None) => {}
                Err(e) => {
                    return Err(crate::repo::Error::Refused(format!(
                        "{}: {e}",
                        found.path.display()
                    )));
                }
            }
        }
        Ok(RepoBundles(out))
    }

    /// True when no deployment has a bundle.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The builtin signature for object `digest` from the first bundle
    /// that has one.
    pub fn pkcs7(&self, digest: &FsVerityDigest) -> Option<Vec<u8>> {
        self.0.iter().find_map(|b| b.pkcs7(digest))
    }
}
