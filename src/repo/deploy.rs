//! Deploying a sealed image into a sysroot's repository
//! (docs/repository.md): objects, the merged EROFS, the exact manifest,
//! config and artifact bytes with their signatures, a deployment directory
//! with persistent state, and the `by-config`/`by-image` names.
//!
//! Order of writes, so that an interrupted or failed deploy leaves the
//! previous state intact: content-addressed files first (objects, blobs,
//! image; each atomic, none referenced yet), `syncfs`, then the deployment
//! (assembled under `deployments/.tmp-*` and renamed, or for a re-deploy
//! only its `deployment.json` replaced), then the symlinks (renamed over).

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use crate::crypto::{Cert, CertInfo};
use crate::oci::artifact::{Role, SealArtifact};
use crate::oci::layout::{ImageLayout, ResolvedImage};
use crate::oci::manifest::ImageManifest;
use crate::oci::referrers::seal_artifacts;
use crate::oci::stored::Stored;
use crate::oci::{Descriptor, ManifestDigest, Sha256Digest};
use crate::pkcs7::verify_fsverity;
use crate::verity::{FsVerityDigest, ioctl};

use super::check::read_signature;
use super::image::{MergedImage, build_merged};
use super::json::{Deployment, SignatureMode};
use super::seal::SealDigests;
use super::store::{
    ObjectSigning, ObjectStats, Repository, SigningMode, VerityRequest, VerityState, is_unsupported,
};
use super::{Error, var};

/// How to attach signatures (docs/repository.md, "Signature modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    /// Builtin when the running kernel accepts the signature (its signer
    /// is in `.fs-verity`), else detached.
    Auto,
    Fixed(SignatureMode),
}

/// What to deploy and how.
#[derive(Debug, Clone)]
pub struct DeployOptions<'a> {
    /// Recorded in deployment.json (e.g. `oci:/srv/img:41`).
    pub source: String,
    pub mode: ModeChoice,
    /// When given, the artifact's signatures must verify against these
    /// before anything is written (recommended).
    pub trusted: &'a [Cert],
    /// Pick this artifact when the image has several.
    pub artifact: Option<Sha256Digest>,
    /// Copy the image's `/var` into a new deployment's `var/`.
    pub seed_var: bool,
}

/// What a deploy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeployReport {
    pub deployment: Deployment,
    #[serde(skip)]
    pub deployment_dir: std::path::PathBuf,
    pub composefs_digest: String,
    pub objects: ObjectStats,
    /// First deploy of this image (state directories created).
    pub created: bool,
    /// Entries copied from the image's /var (first deploy only).
    pub var_entries: u64,
    /// Trusted certificates the signatures verified against (userspace).
    pub verified_by: Vec<CertInfo>,
    pub kernel_cmdline: String,
}

/// A chosen artifact with its raw bytes and signature blobs.
struct Chosen {
    descriptor: Descriptor,
    manifest: Stored<ImageManifest>,
    artifact: SealArtifact,
    /// (role, signed digest, DER) for manifest, config, merged.
    signatures: Vec<(Role, FsVerityDigest, Vec<u8>)>,
    verified_by: Vec<CertInfo>,
}

fn choose_artifact(
    repo: &Repository,
    layout: &ImageLayout,
    image: &ResolvedImage,
    digests: &SealDigests,
    opts: &DeployOptions<'_>,
) -> Result<Chosen, Error> {
    let alg = repo.algorithm();
    let mut reasons = Vec::new();
    for (desc, parsed) in seal_artifacts(layout, &image.manifest)? {
        if let Some(want) = opts.artifact
            && desc.digest != want
        {
            continue;
        }
        let a = match parsed {
            Ok(a) => a,
            Err(e) => {
                reasons.push(e.to_string());
                continue;
            }
        };
        if a.algorithm != alg {
            reasons.push(format!(
                "artifact {} uses {}, the repository {alg}",
                desc.digest, a.algorithm
            ));
            continue;
        }
        match load_signatures(layout, &desc, &a, digests, opts.trusted) {
            Ok((signatures, verified_by)) => {
                let manifest: Stored<ImageManifest> =
                    layout.read_json(&desc, "sealing artifact")?;
                return Ok(Chosen {
                    descriptor: desc,
                    manifest,
                    artifact: a,
                    signatures,
                    verified_by,
                });
            }
            Err(e) => reasons.push(format!("artifact {}: {e}", desc.digest)),
        }
    }
    let why = if reasons.is_empty() {
        match opts.artifact {
            Some(d) => format!("no sealing artifact {d} refers to it"),
            None => "no sealing artifact refers to it; seal it with `sealroot oci seal`".into(),
        }
    } else {
        reasons.join("; ")
    };
    Err(Error::Refused(format!(
        "image {} cannot be deployed: {why}",
        image.manifest_digest()
    )))
}

type Signatures = (Vec<(Role, FsVerityDigest, Vec<u8>)>, Vec<CertInfo>);

fn load_signatures(
    layout: &ImageLayout,
    desc: &Descriptor,
    a: &SealArtifact,
    digests: &SealDigests,
    trusted: &[Cert],
) -> Result<Signatures, String> {
    let mut out = Vec::new();
    let mut verified_by = Vec::new();
    for (role, actual) in digests.roles() {
        let e = a
            .entry(role)
            .ok_or_else(|| format!("no {role} signature"))?;
        // Unknown yet (checked again once the layers are imported).
        let Some(actual) = actual else { continue };
        if e.digest != actual {
            return Err(format!(
                "its {role} signature covers {}, but this image's {role} has fs-verity digest {}",
                e.digest.to_hex(),
                actual.to_hex()
            ));
        }
        let der = read_signature(layout, desc.digest, e)?;
        if !trusted.is_empty() {
            let v = verify_fsverity(&der, &actual, trusted)
                .map_err(|err| format!("{role} signature: {err}"))?;
            if !verified_by.contains(&v.trusted) {
                verified_by.push(v.trusted);
            }
        }
        out.push((role, actual, der));
    }
    Ok((out, verified_by))
}

/// Deploys `image` (sealed, from `layout`) into `repo`.
pub fn deploy(
    repo: &Repository,
    layout: &ImageLayout,
    image: &ResolvedImage,
    opts: &DeployOptions<'_>,
) -> Result<DeployReport, Error> {
    let alg = repo.algorithm();
    // Refuse before writing anything when no artifact can match: manifest
    // and config digests (and signatures) are known without the layers.
    let first = choose_artifact(
        repo,
        layout,
        image,
        &SealDigests::of(image, alg, None),
        opts,
    )?;
    // Per-object signatures go onto the objects as they are written
    // (fs-verity takes its builtin signature when it is enabled, once).
    let first_artifact = first.descriptor.digest;
    let bundle = crate::objsig::check::read_bundle(layout, &first.artifact)
        .transpose()
        .map_err(|e| Error::Refused(format!("artifact {}: {e}", first.descriptor.digest)))?;
    let signing = bundle.as_ref().and_then(|b| {
        let mode = match opts.mode {
            ModeChoice::Fixed(SignatureMode::Builtin) => SigningMode::Required,
            ModeChoice::Fixed(SignatureMode::AttachAtBoot) => SigningMode::AttachAtBoot,
            ModeChoice::Fixed(SignatureMode::Detached) => return None,
            ModeChoice::Auto => SigningMode::Try,
        };
        Some(ObjectSigning { bundle: b, mode })
    });
    let attach_objects = signing.is_some();
    let sink = repo.object_sink_signed(signing);
    let merged = build_merged(layout, image, &sink)?;
    if let (Some(b), true) = (&bundle, attach_objects) {
        // The bundle must cover the merged image (`oci verify` checks the
        // same): a missing entry would be an object IPE refuses to run.
        let missing: Vec<FsVerityDigest> = crate::objsig::build::tree_objects(&merged.tree)
            .into_iter()
            .filter(|d| b.signature(d).is_none())
            .collect();
        if let Some(first) = missing.first() {
            return Err(Error::Refused(format!(
                "image {}: its object signature bundle (artifact {}) has no signature for {} \
                 of its objects, e.g. {first}: it does not belong to this image; seal it again \
                 with `sealroot oci seal --object-signatures`",
                image.manifest_digest(),
                first_artifact,
                missing.len()
            )));
        }
    }
    let digests = SealDigests::of(image, alg, Some(merged.digest(alg)));
    let chosen = choose_artifact(repo, layout, image, &digests, opts)?;
    if chosen.descriptor.digest != first.descriptor.digest && bundle.is_some() {
        return Err(Error::Refused(format!(
            "image {}: the layers match sealing artifact {}, not {} whose object signatures \
             were attached; pick one with --artifact",
            image.manifest_digest(),
            chosen.descriptor.digest,
            first.descriptor.digest
        )));
    }
    let params = repo.params();

    // Unreferenced blobs first: the artifact and its signatures.
    for d in &chosen.manifest.layers {
        let e = chosen
            .artifact
            .entries
            .iter()
            .find(|e| e.blob.digest == d.digest);
        if let Some(e) = e {
            let der =
                read_signature(layout, chosen.descriptor.digest, e).map_err(Error::Refused)?;
            repo.put_file(&repo.blob_path(&d.digest), &der, VerityRequest::Off)?;
        }
    }
    // sealroot extension layers (the object signature bundle): the
    // initramfs reads them from the repository.
    for d in &chosen.artifact.extensions {
        let mut blob = Vec::new();
        std::io::Read::read_to_end(
            &mut layout.open_blob(d, "sealing artifact extension")?,
            &mut blob,
        )
        .map_err(Error::io("reading extension layer", layout_path(layout, d)))?;
        repo.put_file(&repo.blob_path(&d.digest), &blob, VerityRequest::Off)?;
    }
    let empty = crate::oci::artifact::EMPTY_JSON;
    repo.put_file(
        &repo.blob_path(&Sha256Digest::of(empty)),
        empty,
        VerityRequest::Off,
    )?;
    repo.put_file(
        &repo.blob_path(&chosen.descriptor.digest),
        chosen.manifest.bytes(),
        VerityRequest::Off,
    )?;

    // The three signed files.
    let sig = |role: Role| -> &[u8] {
        chosen
            .signatures
            .iter()
            .find(|(r, _, _)| *r == role)
            .map(|(_, _, d)| d.as_slice())
            .unwrap_or_default()
    };
    let files: [(Role, std::path::PathBuf, &[u8]); 3] = [
        (
            Role::Manifest,
            repo.blob_path(&image.manifest.digest()),
            image.manifest.bytes(),
        ),
        (
            Role::Config,
            repo.blob_path(&image.config.digest()),
            image.config.bytes(),
        ),
        (
            Role::Merged,
            repo.image_path(&merged.digest(alg)),
            &merged.erofs,
        ),
    ];
    let unsigned = VerityRequest::On {
        params: &params,
        signature: None,
    };
    let mut mode = opts.mode;
    let mut verity = true;
    for (role, path, bytes) in &files {
        let state = match mode {
            ModeChoice::Fixed(SignatureMode::AttachAtBoot) => {
                repo.put_file(path, bytes, VerityRequest::Off)?
            }
            ModeChoice::Fixed(SignatureMode::Detached) => repo.put_file(path, bytes, unsigned)?,
            ModeChoice::Fixed(SignatureMode::Builtin) => {
                let request = VerityRequest::On {
                    params: &params,
                    signature: Some(sig(*role)),
                };
                match repo.put_file(path, bytes, request) {
                    // No fs-verity here (a build host): the deployment
                    // stays builtin with "verity": false, and `sealroot
                    // repo enable-verity` on the target attaches the
                    // signatures (docs/repository.md, deployment.json).
                    Err(Error::Verity { source, .. }) if is_unsupported(&source) => {
                        repo.put_file(path, bytes, unsigned)?
                    }
                    other => other?,
                }
            }
            ModeChoice::Auto => {
                // The kernel itself answers whether the signer is in
                // .fs-verity: enabling with the signature succeeds, or
                // fails with ENOKEY/EKEYREJECTED (verity stays off, the
                // temporary file is discarded) and we fall back.
                let request = VerityRequest::On {
                    params: &params,
                    signature: Some(sig(*role)),
                };
                match repo.put_file(path, bytes, request) {
                    Ok(s) => {
                        mode = ModeChoice::Fixed(SignatureMode::Builtin);
                        s
                    }
                    Err(Error::Verity { source, .. })
                        if is_unsupported(&source) || kernel_refused(&source) =>
                    {
                        mode = ModeChoice::Fixed(SignatureMode::Detached);
                        repo.put_file(path, bytes, unsigned)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if state == VerityState::Unsupported {
            verity = false;
        }
    }
    let mode = match mode {
        ModeChoice::Fixed(m) => m,
        ModeChoice::Auto => SignatureMode::Detached,
    };
    let objects = sink.stats();
    if objects.without_verity > 0 {
        verity = false;
    }
    // "builtin" promises IPE that every object carries its signature
    // (docs/ipe.md): with auto, the files' signer was accepted but the
    // objects' was not.
    if bundle.is_some() && mode == SignatureMode::Builtin && objects.unsigned > 0 {
        return Err(Error::Refused(format!(
            "image {}: the kernel accepted the signer of the manifest, config and EROFS but \
             refused {} object signatures (another signer, not in .fs-verity); load its \
             certificate (`sealroot keyring add`) or deploy with --signatures=detached",
            image.manifest_digest(),
            objects.unsigned
        )));
    }
    if mode == SignatureMode::AttachAtBoot {
        verity = false;
    }
    repo.sync()?;

    let deployment = Deployment {
        manifest: image.manifest_digest(),
        config: image.manifest.config_digest(),
        artifact: chosen.descriptor.digest,
        image: merged.digest(alg),
        algorithm: alg,
        signatures: mode,
        verity,
        source: opts.source.clone(),
        deployed_at: now_rfc3339(),
    };
    let (dir, created, var_entries) = write_deployment(repo, &deployment, &merged, opts)?;
    link_name(
        repo,
        "by-config",
        &deployment.config.0.to_hex(),
        &deployment.manifest,
    )?;
    link_name(
        repo,
        "by-image",
        &deployment.image.to_hex(),
        &deployment.manifest,
    )?;
    repo.sync()?;
    Ok(DeployReport {
        kernel_cmdline: format!("sealroot={}", deployment.manifest.0),
        deployment,
        deployment_dir: dir,
        composefs_digest: merged.composefs_digest.to_hex(),
        objects,
        created,
        var_entries,
        verified_by: chosen.verified_by,
    })
}

/// ENOKEY / EKEYREJECTED / EBADMSG: the kernel checked the builtin
/// signature and did not accept it (signer not in `.fs-verity`).
fn layout_path(layout: &ImageLayout, d: &Descriptor) -> std::path::PathBuf {
    layout
        .dir()
        .map(|p| p.join("blobs/sha256").join(d.digest.to_hex()))
        .unwrap_or_else(|| std::path::PathBuf::from(d.digest.to_string()))
}

fn kernel_refused(e: &ioctl::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        e.errno(),
        Some(Errno::NOKEY | Errno::KEYREJECTED | Errno::BADMSG | Errno::PERM)
    )
}

fn write_deployment(
    repo: &Repository,
    d: &Deployment,
    merged: &MergedImage,
    opts: &DeployOptions<'_>,
) -> Result<(std::path::PathBuf, bool, u64), Error> {
    let dir = repo.deployment_dir(&d.manifest);
    if dir.is_dir() {
        // Re-deploy: state directories stay; only the index is replaced.
        replace_deployment_json(repo, d)?;
        return Ok((dir, false, 0));
    }
    let parent = repo.root().join("deployments");
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(&parent)
        .map_err(Error::io("creating a temporary directory in", &parent))?;
    let t = tmp.path();
    for sub in ["etc/upper", "etc/work"] {
        fs::create_dir_all(t.join(sub)).map_err(Error::io("creating", t.join(sub)))?;
    }
    // overlayfs requires an empty workdir it owns; root-only like /etc.
    for sub in ["etc", "etc/upper", "etc/work"] {
        fs::set_permissions(t.join(sub), fs::Permissions::from_mode(0o755))
            .map_err(Error::io("setting permissions of", t.join(sub)))?;
    }
    let var_entries = if opts.seed_var {
        var::seed(repo, &merged.tree, &t.join("var"))?
    } else {
        fs::create_dir(t.join("var")).map_err(Error::io("creating", t.join("var")))?;
        0
    };
    let path = t.join("deployment.json");
    fs::write(&path, d.to_json())
        .and_then(|()| fs::File::open(&path)?.sync_all())
        .map_err(Error::io("writing", &path))?;
    let t = tmp.keep();
    fs::rename(&t, &dir).map_err(|e| {
        let _ = fs::remove_dir_all(&t);
        Error::io("renaming into place", &dir)(e)
    })?;
    super::store::sync_dir(&dir)?;
    Ok((dir, true, var_entries))
}

/// Atomically replaces the `deployment.json` of an existing deployment.
pub fn replace_deployment_json(repo: &Repository, d: &Deployment) -> Result<(), Error> {
    let dir = repo.deployment_dir(&d.manifest);
    let path = dir.join("deployment.json");
    let mut tmp = tempfile::Builder::new()
        .prefix(".deployment.json")
        .tempfile_in(&dir)
        .map_err(Error::io("creating a temporary file in", &dir))?;
    io::Write::write_all(&mut tmp, &d.to_json())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(Error::io("writing", &path))?;
    tmp.persist(&path)
        .map_err(|e| Error::io("renaming into place", &path)(e.error))?;
    super::store::sync_dir(&path)
}

/// `<kind>/<name>` -> `../deployments/<manifest hex>`, replaced atomically.
fn link_name(
    repo: &Repository,
    kind: &str,
    name: &str,
    manifest: &ManifestDigest,
) -> Result<(), Error> {
    let dir = repo.root().join(kind);
    let dest = dir.join(name);
    let target = Path::new("../deployments").join(manifest.0.to_hex());
    if fs::read_link(&dest).ok().as_deref() == Some(target.as_path()) {
        return Ok(());
    }
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    symlink(&target, &tmp).map_err(Error::io("creating symlink", &tmp))?;
    fs::rename(&tmp, &dest).map_err(Error::io("renaming into place", &dest))?;
    super::store::sync_dir(&dest)
}

/// The current time as RFC 3339 UTC (`2026-01-31T12:00:00Z`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
