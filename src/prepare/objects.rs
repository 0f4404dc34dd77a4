//! The first boot of a deployment made where fs-verity was unavailable
//! (`deployment.json` says `"verity": false`: an mkosi image built on a
//! host without ext4 fs-verity, a copied disk): with `[verify]
//! attach-signatures = yes`, the content objects get fs-verity here, before
//! the composefs mount, since overlayfs `verity=require` refuses any lower
//! file without it (fs/overlayfs/util.c, `ovl_validate_verity()`).
//!
//! This extends no trust. The kernel computes each object's digest from
//! the bytes on the disk, and overlayfs compares it with the digest the
//! signed EROFS records for the file (`trusted.overlay.metacopy`): an
//! object altered before this boot reads as EIO all the same. Objects use
//! [`object_params`] (sha256), not the repository's algorithm for the
//! signed files: in a sha512 repository, sha512 parameters would match no
//! object name and enable nothing. Afterwards
//! `deployment.json` says `"verity": true`, so later boots skip the walk
//! (the flag only saves work: a lying flag leaves objects without
//! fs-verity, which overlayfs refuses).

use rustix::io::Errno;

use super::repo::{Repo, RepoError};
use crate::repo::json::Deployment;
use crate::tree::object_params;
use crate::verity::ioctl as vioctl;

/// What the walk did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ObjectsEnabled {
    /// Objects that got fs-verity now.
    pub enabled: u64,
    /// Objects that already had it.
    pub present: u64,
}

/// Enables fs-verity (no signature: objects are checked through the EROFS)
/// on every object below `objects/` that lacks it, then records
/// `"verity": true` in `<deployment>/deployment.json`.
pub fn enable_missing(
    repo: &Repo,
    deployment_dir: &str,
    deployment: &Deployment,
) -> Result<ObjectsEnabled, RepoError> {
    let params = object_params();
    let mut done = ObjectsEnabled::default();
    let mut fanout = repo.list_dir("objects", "cannot list the object store")?;
    fanout.sort();
    for sub in fanout.iter().filter(|n| is_hex(n, 2)) {
        let dir = format!("objects/{sub}");
        for name in repo.list_dir(&dir, "cannot list the object store")? {
            // Objects only: leftovers of an interrupted deploy are not.
            if !is_hex(&name, params.algorithm.digest_size() * 2 - 2) {
                continue;
            }
            let rel = format!("{dir}/{name}");
            let file = repo.open_file(&rel, "cannot open object")?;
            let kernel = |e: vioctl::Error| RepoError::Invalid {
                path: repo.display(&rel),
                reason: format!("cannot enable fs-verity: {e}"),
            };
            if vioctl::has_verity(&file).map_err(kernel)? {
                done.present += 1;
                continue;
            }
            match vioctl::enable(&file, &params, None) {
                Ok(()) => done.enabled += 1,
                // Enabled meanwhile (another prepare would be a bug, but
                // the result is what is wanted).
                Err(e) if e.errno() == Some(Errno::EXIST) => done.present += 1,
                Err(e) => return Err(kernel(e)),
            }
        }
    }
    let mut updated = deployment.clone();
    updated.verity = true;
    repo.replace_file(deployment_dir, "deployment.json", &updated.to_json())?;
    Ok(done)
}

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
