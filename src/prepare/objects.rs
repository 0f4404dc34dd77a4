//! The content objects of the deployment: the first boot of a deployment
//! made where fs-verity was unavailable, and the per-object signatures
//! IPE needs (docs/ipe.md).
//!
//! First boot (`deployment.json` says `"verity": false`: an mkosi image
//! built on a host without ext4 fs-verity, a copied disk): with `[verify]
//! attach-signatures = yes`, the content objects get fs-verity here, before
//! the composefs mount, since overlayfs `verity=require` refuses any lower
//! file without it (fs/overlayfs/util.c, `ovl_validate_verity()`). When the
//! image was sealed with per-object signatures, each object gets its
//! builtin signature from the bundle (the kernel checks it against the
//! sealed `.fs-verity` keyring as it enables fs-verity); objects of other
//! deployments, or without an entry, get fs-verity without one.
//!
//! This extends no trust. The kernel computes each object's digest from
//! the bytes on the disk, and overlayfs compares it with the digest the
//! signed EROFS records for the file (`trusted.overlay.metacopy`): an
//! object altered before this boot reads as EIO all the same; a signature
//! the kernel accepts covers exactly those bytes. Objects use
//! [`object_params`] (sha256, as the bundle's entries), not the
//! repository's algorithm for the signed files: in a sha512 repository,
//! sha512 parameters would match no object name and enable nothing.
//!
//! An object with more than one hard link is refused (the boot stops)
//! before anything is done to it: the disk is the attacker's, and an
//! `objects/XX/…` name linked to a file elsewhere on the physical root
//! would make this walk give that outside file fs-verity (read-only from
//! then on, and signed if its bytes match a bundle entry). The host's
//! deploy never creates such links (`repo::dir` requires single-link
//! files), and `sealroot repo fsck` reports them.
//! Afterwards
//! `deployment.json` says `"verity": true`, so later boots skip the walk
//! (the flag only saves work: a lying flag leaves objects without
//! fs-verity, which overlayfs refuses).

use rustix::io::Errno;

use super::repo::{Repo, RepoError, blob_path};
use crate::objsig::{self, Bundle};
use crate::oci::ImageManifest;
use crate::oci::Sha256Digest;
use crate::oci::artifact::SealArtifact;
use crate::oci::stored::Stored;
use crate::repo::json::Deployment;
use crate::tree::object_params;
use crate::verity::FsVerityDigest;
use crate::verity::ioctl as vioctl;

/// What the walk did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ObjectsEnabled {
    /// Objects that got fs-verity now.
    pub enabled: u64,
    /// Of those, objects that got their builtin signature from the bundle.
    pub signed: u64,
    /// Objects that already had it.
    pub present: u64,
}

/// How signatures are attached during the walk.
#[derive(Debug)]
pub struct Attach<'a> {
    /// The deployment's per-object signatures, if it has them.
    pub bundle: Option<&'a Bundle>,
    /// A signature the kernel refuses is an error (IPE needs every object
    /// signed); otherwise the object gets fs-verity without it.
    pub require_signatures: bool,
}

/// Enables fs-verity (with the bundle's builtin signature where there is
/// one) on every object below `objects/` that lacks it, then records
/// `"verity": true` in `<deployment>/deployment.json`.
pub fn enable_missing(
    repo: &Repo,
    deployment_dir: &str,
    deployment: &Deployment,
    attach: &Attach<'_>,
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
            refuse_hard_links(repo, &rel, &file)?;
            let kernel = |e: vioctl::Error| RepoError::Invalid {
                path: repo.display(&rel),
                reason: format!("cannot enable fs-verity: {e}"),
            };
            if vioctl::has_verity(&file).map_err(kernel)? {
                done.present += 1;
                continue;
            }
            let signature = attach.bundle.and_then(|b| {
                FsVerityDigest::from_hex(params.algorithm, &format!("{sub}{name}"))
                    .ok()
                    .and_then(|d| b.pkcs7(&d))
            });
            if let Some(sig) = &signature {
                match vioctl::enable(&file, &params, Some(sig)) {
                    Ok(()) => {
                        done.enabled += 1;
                        done.signed += 1;
                        continue;
                    }
                    Err(e) if e.errno() == Some(Errno::EXIST) => {
                        done.present += 1;
                        continue;
                    }
                    Err(e) if attach.require_signatures => {
                        return Err(RepoError::Invalid {
                            path: repo.display(&rel),
                            reason: format!(
                                "the kernel refused the object's builtin signature from the \
                                 image's object signature bundle: {e}; IPE needs it (is the \
                                 bundle's signer in certs.d?)"
                            ),
                        });
                    }
                    // Refused (e.g. another signer): fs-verity without.
                    Err(_) => {}
                }
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

/// The largest bundle the initramfs reads (about 200,000 objects with
/// RSA-2048 signatures): the bundle is read into memory, and the disk is
/// not trusted to size it.
pub const MAX_BUNDLE_AT_BOOT: u64 = 64 << 20;

/// The object signature bundle of the sealing artifact `artifact` (a
/// sealroot extension layer; `None` when the image was sealed without
/// per-object signatures, or inline: an inline-sealed image has no
/// artifact and carries no bundle, docs/sealing.md). The artifact's sha256
/// is checked again here, and the bundle's against the artifact's
/// descriptor.
pub fn load_bundle(
    repo: &Repo,
    artifact: Option<&Sha256Digest>,
) -> Result<Option<Bundle>, RepoError> {
    let Some(artifact) = artifact else {
        return Ok(None);
    };
    let rel = blob_path(artifact);
    let mut f = repo.open_file(&rel, "cannot open the signature artifact")?;
    let bytes = repo.read_limited(&mut f, &rel, 1 << 20)?;
    let invalid = |rel: &str, reason: String| RepoError::Invalid {
        path: repo.display(rel),
        reason,
    };
    if Sha256Digest::of(&bytes) != *artifact {
        return Err(invalid(
            &rel,
            "sha256 differs from its name: altered".into(),
        ));
    }
    let stored = Stored::<ImageManifest>::parse(bytes).map_err(|e| invalid(&rel, e.to_string()))?;
    let parsed = SealArtifact::parse(&stored).map_err(|e| invalid(&rel, e.to_string()))?;
    let Some(desc) = parsed.extension(objsig::MEDIA_TYPE) else {
        return Ok(None);
    };
    let brel = blob_path(&desc.digest);
    let mut f = repo.open_file(&brel, "cannot open the object signature bundle")?;
    let bytes = repo.read_limited(&mut f, &brel, MAX_BUNDLE_AT_BOOT)?;
    if Sha256Digest::of(&bytes) != desc.digest || bytes.len() as u64 != desc.size {
        return Err(invalid(
            &brel,
            "sha256 or size differs from the artifact's descriptor: altered".into(),
        ));
    }
    Bundle::parse(bytes)
        .map(Some)
        .map_err(|e| invalid(&brel, e.to_string()))
}

/// Refuses an object that has another name somewhere on the filesystem
/// (the open went through `O_PATH` and `/proc/self/fd`, so `file` is the
/// inode below `objects/`; its link count says whether it is also
/// elsewhere).
fn refuse_hard_links(repo: &Repo, rel: &str, file: &std::fs::File) -> Result<(), RepoError> {
    let stat = rustix::fs::fstat(file).map_err(|errno| RepoError::Io {
        path: repo.display(rel),
        what: "cannot stat object",
        errno,
    })?;
    if stat.st_nlink > 1 {
        return Err(RepoError::Invalid {
            path: repo.display(rel),
            reason: format!(
                "has {} hard links: an object must have no other name, or enabling fs-verity \
                 on it would change a file outside the repository; refusing to enable \
                 fs-verity on the object store (remove the extra link, or redeploy)",
                stat.st_nlink
            ),
        });
    }
    Ok(())
}

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
