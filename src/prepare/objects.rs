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
//! sealed `.fs-verity` keyring as it enables fs-verity); objects without
//! an entry get fs-verity without one.
//!
//! Which objects, and with which fs-verity algorithm, comes from the
//! *verified* EROFS (`erofs::objects::ImageObjects`): the digests it
//! records in `trusted.overlay.metacopy` name the objects
//! (`objects/XX/<rest>`) and fix their algorithm (sha256 or sha512), the
//! same digests overlayfs `verity=require` compares at open. Neither
//! `repo.json` nor `deployment.json` is asked: both are on the attacker's
//! disk, and a lying algorithm would otherwise make this walk give objects
//! fs-verity of the wrong algorithm, which can never be undone (fs-verity
//! cannot be disabled) and leaves every file of the image unreadable.
//!
//! This extends no trust. The kernel computes each object's digest from
//! the bytes on the disk as it enables fs-verity; the walk then measures it
//! and compares it with the digest the signed EROFS records: an object
//! altered before this boot (or missing) refuses the boot, naming it,
//! rather than leaving a root whose file reads as EIO; a signature the
//! kernel accepts covers exactly those bytes. Objects of other deployments
//! are left to their own first boot (or `sealroot repo enable-verity`).
//!
//! An object with more than one hard link is refused (the boot stops)
//! before anything is done to it: the disk is the attacker's, and an
//! `objects/XX/…` name linked to a file elsewhere on the physical root
//! would make this walk give that outside file fs-verity (read-only from
//! then on, and signed if its bytes match a bundle entry). The host's
//! deploy never creates such links (`repo::dir` requires single-link
//! files), and `sealroot repo fsck` reports them.
//!
//! Afterwards `deployment.json` says `"verity": true`, so later boots skip
//! the walk (the flag only saves work: a lying flag leaves objects without
//! fs-verity, which overlayfs refuses).

use rustix::io::Errno;

use super::repo::{Repo, RepoError, blob_path};
use crate::erofs::objects::ImageObjects;
use crate::objsig::{self, Bundle};
use crate::oci::ImageManifest;
use crate::oci::Sha256Digest;
use crate::oci::artifact::SealArtifact;
use crate::oci::stored::Stored;
use crate::repo::json::Deployment;
use crate::verity::FsVerityDigest;
use crate::verity::ioctl as vioctl;

/// What the walk did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ObjectsEnabled {
    /// The objects' fs-verity hash (`sha256`, `sha512`), from the verified
    /// EROFS; `None` when it has no external file.
    pub algorithm: Option<&'static str>,
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

/// The largest merged EROFS the first-boot walk reads into memory (its
/// metadata only: about 100 bytes per file of the image).
pub const MAX_IMAGE_AT_BOOT: u64 = 1 << 30;

/// Enables fs-verity (with the bundle's builtin signature where there is
/// one) on every object the verified EROFS `image` (digest
/// `image_digest`) references that lacks
/// it, checks every one's measured digest against the EROFS, then records
/// `"verity": true` in `<deployment>/deployment.json`.
pub fn enable_missing(
    repo: &Repo,
    deployment_dir: &str,
    deployment: &Deployment,
    image: (&std::fs::File, &FsVerityDigest),
    attach: &Attach<'_>,
) -> Result<ObjectsEnabled, RepoError> {
    let objects = image_objects(repo, image)?;
    let done = enable_objects(repo, &objects, attach)?;
    let mut updated = deployment.clone();
    updated.verity = true;
    repo.replace_file(deployment_dir, "deployment.json", &updated.to_json())?;
    Ok(done)
}

/// The objects the verified EROFS `image` (its open file, and the digest
/// it was verified as, for messages) records, and their algorithm: what a
/// first boot may trust about the object store (module docs). Any layout
/// whose images name objects as `objects/XX/<rest>` (sealroot's,
/// composefs-rs') can use it.
pub fn image_objects(
    repo: &Repo,
    (image, image_digest): (&std::fs::File, &FsVerityDigest),
) -> Result<ImageObjects, RepoError> {
    let image_rel = format!("images/{}", image_digest.to_hex());
    let erofs = read_whole(image, MAX_IMAGE_AT_BOOT).map_err(|e| match e {
        Some(errno) => RepoError::Io {
            path: repo.display(&image_rel),
            what: "cannot read the verified EROFS",
            errno,
        },
        None => RepoError::Invalid {
            path: repo.display(&image_rel),
            reason: format!(
                "larger than {MAX_IMAGE_AT_BOOT} bytes: too large to list its objects at \
                 first boot; run `sealroot repo enable-verity` on it instead"
            ),
        },
    })?;
    ImageObjects::read(&erofs).map_err(|e| RepoError::Invalid {
        path: repo.display(&image_rel),
        reason: format!("cannot list the objects of the verified image: {e}"),
    })
}

/// Gives every object of `objects` below `objects/` of `repo` fs-verity
/// with their algorithm (and the bundle's builtin signature where there is
/// one) unless it has it, and refuses any whose measured digest is not
/// the one the image records.
pub fn enable_objects(
    repo: &Repo,
    objects: &ImageObjects,
    attach: &Attach<'_>,
) -> Result<ObjectsEnabled, RepoError> {
    let mut done = ObjectsEnabled {
        algorithm: objects.algorithm().map(|a| a.name()),
        ..ObjectsEnabled::default()
    };
    if let Some(params) = objects.params() {
        for digest in objects.digests() {
            enable_one(repo, digest, &params, attach, &mut done)?;
        }
    }
    Ok(done)
}

/// `objects/XX/<rest>`: fs-verity on, then its measured digest compared
/// with `digest` (the signed EROFS's).
fn enable_one(
    repo: &Repo,
    digest: &FsVerityDigest,
    params: &crate::verity::VerityParams,
    attach: &Attach<'_>,
    done: &mut ObjectsEnabled,
) -> Result<(), RepoError> {
    let hex = digest.to_hex();
    let rel = format!("objects/{}/{}", &hex[..2], &hex[2..]);
    let file = repo.open_file(
        &rel,
        "cannot open the object (the image needs it; redeploy)",
    )?;
    refuse_hard_links(repo, &rel, &file)?;
    let kernel = |e: vioctl::Error| RepoError::Invalid {
        path: repo.display(&rel),
        reason: format!("cannot enable fs-verity: {e}"),
    };
    let enabled = if vioctl::has_verity(&file).map_err(kernel)? {
        done.present += 1;
        false
    } else {
        let signature = attach.bundle.and_then(|b| b.pkcs7(digest));
        let mut signed = false;
        if let Some(sig) = &signature {
            match vioctl::enable(&file, params, Some(sig)) {
                Ok(()) => signed = true,
                Err(e) if e.errno() == Some(Errno::EXIST) => {}
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
        if signed {
            done.signed += 1;
            true
        } else {
            match vioctl::enable(&file, params, None) {
                Ok(()) => true,
                // Enabled meanwhile (another prepare would be a bug, but
                // the result is what is wanted; the digest is checked
                // below all the same).
                Err(e) if e.errno() == Some(Errno::EXIST) => {
                    done.present += 1;
                    false
                }
                Err(e) => return Err(kernel(e)),
            }
        }
    };
    if enabled {
        done.enabled += 1;
    }
    let measured = vioctl::measure(&file).map_err(|e| RepoError::Invalid {
        path: repo.display(&rel),
        reason: format!("cannot measure its fs-verity digest: {e}"),
    })?;
    if measured != *digest {
        return Err(RepoError::Invalid {
            path: repo.display(&rel),
            reason: format!(
                "its fs-verity digest is {measured}, the signed image records {digest}: the \
                 object was altered on the disk; refusing to boot a root whose files would \
                 read as EIO (redeploy the image)"
            ),
        });
    }
    Ok(())
}

/// The whole file, read with `pread` (the caller's file position, which
/// the mount may use, is left alone): `Err(None)` if larger than `limit`.
fn read_whole(file: &std::fs::File, limit: u64) -> Result<Vec<u8>, Option<Errno>> {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read_at(&mut buf, out.len() as u64)
            .map_err(|e| Some(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() as u64 + n as u64 > limit {
            return Err(None);
        }
        out.extend_from_slice(&buf[..n]);
    }
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
