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
use crate::verity::FsVerityDigest;

use super::{Bundle, MAX_BUNDLE, MEDIA_TYPE};

/// The bundle of deployment `d` (`None`: its artifact has none), read and
/// checked (sha256 against the artifact's descriptor, format).
pub fn deployment_bundle(repo: &Repository, d: &Deployment) -> Result<Option<Bundle>, String> {
    let apath = repo.blob_path(&d.artifact);
    let bytes = std::fs::read(&apath).map_err(|e| format!("{}: {e}", apath.display()))?;
    let stored =
        Stored::<ImageManifest>::parse(bytes).map_err(|e| format!("{}: {e}", apath.display()))?;
    let artifact = SealArtifact::parse(&stored).map_err(|e| e.to_string())?;
    let Some(desc) = artifact.extension(MEDIA_TYPE) else {
        return Ok(None);
    };
    read_blob(repo, desc).map(Some)
}

fn read_blob(repo: &Repository, desc: &Descriptor) -> Result<Bundle, String> {
    let path = repo.blob_path(&desc.digest);
    if desc.size > MAX_BUNDLE as u64 {
        return Err(format!(
            "{}: {} bytes, too large",
            path.display(),
            desc.size
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "object signature bundle {}: {e}{}",
            path.display(),
            if e.kind() == std::io::ErrorKind::NotFound {
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
pub struct RepoBundles(Vec<Bundle>);

impl RepoBundles {
    pub fn load(repo: &Repository) -> Result<RepoBundles, crate::repo::Error> {
        let mut out = Vec::new();
        for (dir, d) in repo.deployments()? {
            let Ok(d) = d else { continue };
            if d.signatures == crate::repo::SignatureMode::Detached {
                continue;
            }
            match deployment_bundle(repo, &d) {
                Ok(Some(b)) => out.push(b),
                Ok(None) => {}
                Err(e) => {
                    return Err(crate::repo::Error::Refused(format!(
                        "{}: {e}",
                        dir.display()
                    )));
                }
            }
        }
        Ok(RepoBundles(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The builtin signature for object `digest` from the first bundle
    /// that has one.
    pub fn pkcs7(&self, digest: &FsVerityDigest) -> Option<Vec<u8>> {
        self.0.iter().find_map(|b| b.pkcs7(digest))
    }
}
