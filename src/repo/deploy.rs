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

use std::io;
use std::path::Path;

use crate::crypto::{Cert, CertInfo};
use crate::oci::artifact::Role;
use crate::oci::layout::{ImageLayout, ResolvedImage};
use crate::oci::{Descriptor, ManifestDigest, Sha256Digest};
use crate::verity::{FsVerityDigest, ioctl};

use super::check::read_signature;
use super::dir::FileKind;
use super::image::{MergedImage, bootable_of, merged_from_layers};
use super::json::{Deployment, SignatureMode};
use super::seal::SealDigests;
use super::source::{self, BoundBy, Choice, SealSource};
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
    /// This mode, whatever the kernel says.
    Fixed(SignatureMode),
}

/// What to deploy and how.
#[derive(Debug, Clone)]
pub struct DeployOptions<'a> {
    /// Recorded in deployment.json (e.g. `oci:/srv/img:41`).
    pub source: String,
    /// How signatures are attached (`--signatures`).
    pub mode: ModeChoice,
    /// When given, the artifact's signatures must verify against these
    /// before anything is written (recommended).
    pub trusted: &'a [Cert],
    /// Pick this artifact when the image has several.
    pub artifact: Option<Sha256Digest>,
    /// Deploy an image nothing binds (docs/sealing.md, "Binding").
    pub allow_unbound: bool,
    /// Copy the image's `/var` into a new deployment's `var/`.
    pub seed_var: bool,
}

/// What a deploy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeployReport {
    /// The deployment as `deployment.json` records it.
    pub deployment: Deployment,
    /// Its directory.
    #[serde(skip)]
    pub deployment_dir: std::path::PathBuf,
    /// The merged EROFS's fs-verity digest (`sha256:<hex>`).
    pub composefs_digest: String,
    /// Objects added and already present.
    pub objects: ObjectStats,
    /// First deploy of this image (state directories created).
    pub created: bool,
    /// Entries copied from the image's /var (first deploy only).
    pub var_entries: u64,
    /// Trusted certificates the signatures verified against (userspace).
    pub verified_by: Vec<CertInfo>,
    /// What binds config and EROFS (`None`: unbound, `--allow-unbound`).
    pub bound_by: Option<BoundBy>,
    /// The kernel command line argument that selects the image.
    pub kernel_cmdline: String,
    /// Why this deployment will likely not boot (e.g. the image lacks a
    /// directory sealroot-prepare mounts on); the binary prints them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Deploys `image` (sealed, from `layout`) into `repo`.
pub fn deploy(
    repo: &Repository,
    layout: &ImageLayout,
    image: &ResolvedImage,
    opts: &DeployOptions<'_>,
) -> Result<DeployReport, Error> {
    let alg = repo.algorithm();
    let choice = Choice {
        algorithm: alg,
        trusted: opts.trusted,
        artifact: opts.artifact,
        allow_unbound: opts.allow_unbound,
    };
    // Refuse before writing anything when no source can match: manifest
    // and config digests (and signatures) are known without the layers.
    let first = source::choose(layout, image, &SealDigests::of(image, alg, None), &choice)?;
    // Per-object signatures go onto the objects as they are written
    // (fs-verity takes its builtin signature when it is enabled, once).
    // Inline-sealed images have none (`oci seal --inline` refuses
    // --object-signatures: docs/sealing.md, "Object signatures").
    let first_artifact = first.artifact();
    let bundle = match &first.source {
        SealSource::Artifact {
            descriptor,
            artifact,
            ..
        } => crate::objsig::check::read_bundle(layout, artifact)
            .transpose()
            .map_err(|e| Error::Refused(format!("artifact {}: {e}", descriptor.digest)))?,
        SealSource::Inline(_) => None,
    };
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
    let sink = repo.object_sink_signed(signing)?;
    let layers = crate::oci::import::import_layers(layout, image, &sink)?;
    let merged = merged_from_layers(&layers)?;
    let warnings: Vec<String> = missing_mount_points(&merged.tree).into_iter().collect();
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
                first_artifact.map(|d| d.to_string()).unwrap_or_default(),
                missing.len()
            )));
        }
    }
    // The bootable variant, when an artifact signs one: stored and signed
    // next to the merged EROFS, and what sealroot-prepare boots.
    let bootable = if source::signs_bootable(layout, image)? {
        let objects = crate::oci::boot::objects::LayerObjects::new(layout, image, &layers);
        Some(bootable_of(&merged, &objects)?)
    } else {
        None
    };
    let digests = SealDigests::of(image, alg, Some(merged.digest(alg)))
        .with_bootable(bootable.as_ref().map(|b| b.digest(alg)));
    let chosen = source::choose(layout, image, &digests, &choice).map_err(|e| match e {
        // The seal signs the EROFS of sha512 objects; this repository
        // stores sha256 ones (docs/repository.md, "repo.json").
        Error::Refused(why) if repo.config().is_mixed() => Error::Refused(format!(
            "{why}. Repository {} has {} signed files but sha256 objects (repo.json format 1, \
             made by an older sealroot), so its EROFS records sha256 object digests; images \
             sealed with --algorithm {} by this sealroot record {} ones: deploy them into a \
             new repository (`sealroot repo init --algorithm {}`)",
            repo.root().display(),
            alg,
            alg,
            alg.hash,
            alg
        )),
        e => e,
    })?;
    if chosen.artifact() != first_artifact && bundle.is_some() {
        return Err(Error::Refused(format!(
            "image {}: the layers match the signatures of {}, not artifact {} whose object \
             signatures were attached; pick one with --artifact",
            image.manifest_digest(),
            chosen
                .artifact()
                .map(|d| format!("artifact {d}"))
                .unwrap_or_else(|| "its inline metadata".into()),
            first_artifact.map(|d| d.to_string()).unwrap_or_default(),
        )));
    }
    let params = repo.params();

    // Unreferenced blobs first: the artifact and its signatures (inline:
    // the manifest carries them).
    if let SealSource::Artifact {
        descriptor,
        manifest,
        artifact,
    } = &chosen.source
    {
        for e in &artifact.entries {
            let der = read_signature(layout, descriptor.digest, e).map_err(Error::Refused)?;
            repo.put_file(&repo.blob_rel(&e.blob.digest), &der, VerityRequest::Off)?;
        }
        // sealroot's extension layers (the object signature bundle):
        // enable-verity, fsck and the initramfs read them from the
        // repository. Read from the layout again, sha256-checked.
        for d in &artifact.extensions {
            let mut blob = Vec::new();
            std::io::Read::read_to_end(
                &mut layout.open_blob(d, "sealing artifact extension layer")?,
                &mut blob,
            )
            .map_err(Error::io(
                "reading the sealing artifact extension layer",
                layout_path(layout, d),
            ))?;
            repo.put_file(&repo.blob_rel(&d.digest), &blob, VerityRequest::Off)?;
        }
        let empty = crate::oci::artifact::EMPTY_JSON;
        repo.put_file(
            &repo.blob_rel(&Sha256Digest::of(empty)),
            empty,
            VerityRequest::Off,
        )?;
        repo.put_file(
            &repo.blob_rel(&descriptor.digest),
            manifest.bytes(),
            VerityRequest::Off,
        )?;
    }

    // The signed files (inline: the manifest has no signature).
    let mut files: Vec<(Role, std::path::PathBuf, &[u8])> = vec![
        (
            Role::Manifest,
            repo.blob_rel(&image.manifest.digest()),
            image.manifest.bytes(),
        ),
        (
            Role::Config,
            repo.blob_rel(&image.config.digest()),
            image.config.bytes(),
        ),
        (
            Role::Merged,
            repo.image_rel(&merged.digest(alg)),
            &merged.erofs,
        ),
    ];
    // Only when the chosen source signs it (another artifact may not).
    let bootable = bootable.filter(|_| chosen.signature(Role::MergedBootable).is_some());
    if let Some(b) = &bootable {
        files.push((
            Role::MergedBootable,
            repo.image_rel(&b.digest(alg)),
            &b.erofs,
        ));
    }
    let unsigned = VerityRequest::On {
        params: &params,
        signature: None,
    };
    let mut mode = opts.mode;
    let mut verity = true;
    for (role, path, bytes) in &files {
        let signature = chosen.signature(*role);
        let state = match mode {
            ModeChoice::Fixed(SignatureMode::AttachAtBoot) => {
                repo.put_file(path, bytes, VerityRequest::Off)?
            }
            _ if signature.is_none() => repo.put_file(path, bytes, unsigned)?,
            ModeChoice::Fixed(SignatureMode::Detached) => repo.put_file(path, bytes, unsigned)?,
            ModeChoice::Fixed(SignatureMode::Builtin) => {
                let request = VerityRequest::On {
                    params: &params,
                    signature,
                };
                match repo.put_file(path, bytes, request) {
                    // No fs-verity here (a build host): the deployment
                    // stays builtin with "verity": false, and `sealroot
                    // repo enable-verity` on the target attaches the
                    // signatures (docs/repository.md, deployment.json).
                    Err(Error::Verity { error: source, .. }) if is_unsupported(&source) => {
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
                    signature,
                };
                match repo.put_file(path, bytes, request) {
                    Ok(s) => {
                        mode = ModeChoice::Fixed(SignatureMode::Builtin);
                        s
                    }
                    Err(Error::Verity { error: source, .. })
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
        artifact: chosen.artifact(),
        image: merged.digest(alg),
        bootable: bootable.as_ref().map(|b| b.digest(alg)),
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
    for (_, image) in deployment.images() {
        link_name(repo, "by-image", &image.to_hex(), &deployment.manifest)?;
    }
    repo.sync()?;
    Ok(DeployReport {
        warnings,
        kernel_cmdline: format!("sealroot={}", deployment.manifest.0),
        deployment,
        deployment_dir: dir,
        composefs_digest: merged.composefs_digest.to_hex(),
        objects,
        created,
        var_entries,
        verified_by: chosen.verified_by,
        bound_by: chosen.bound_by,
    })
}

/// The directories sealroot-prepare mounts on (`prepare::mountroot`):
/// without them it refuses the image at boot, so deploy warns now, with the
/// fix. (A warning, not a refusal: the image is still what its signer
/// sealed, and `[etc] mode = image` needs no /etc.) A symlink passes (the
/// mounted image resolves it; the boot-time check has the last word).
fn missing_mount_points(tree: &crate::tree::Tree) -> Option<String> {
    use crate::tree::FileType;
    let missing: Vec<&str> = ["etc", "var", "sysroot"]
        .into_iter()
        .filter(|dir| {
            !tree
                .lookup_path(dir.as_bytes())
                .is_some_and(|id| tree.is_dir(id) || tree.file_type(id) == FileType::Symlink)
        })
        .collect();
    if missing.is_empty() {
        return None;
    }
    let list = missing
        .iter()
        .map(|d| format!("/{d}"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "the image has no {list} directory: sealroot-prepare mounts /etc, /var and the \
         physical root (/sysroot) on these and, with default settings, refuses the image at \
         boot; add them to the image (e.g. `RUN mkdir -p /etc /var /sysroot` in its \
         Containerfile), then seal and deploy it again"
    ))
}

/// Where blob `d` of `layout` is, for messages.
fn layout_path(layout: &ImageLayout, d: &Descriptor) -> std::path::PathBuf {
    layout
        .dir()
        .map(|p| p.join("blobs/sha256").join(d.digest.to_hex()))
        .unwrap_or_else(|| std::path::PathBuf::from(d.digest.to_string()))
}

/// ENOKEY / EKEYREJECTED / EBADMSG: the kernel checked the builtin
/// signature and did not accept it (signer not in `.fs-verity`).
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
    let deployments = repo.dir().open_dir("deployments")?;
    let hex = d.manifest.0.to_hex();
    let path = deployments.display(&hex);
    if let Some(meta) = deployments.stat(&hex)? {
        if meta.kind != FileKind::Directory {
            return Err(deployments
                .unexpected(&hex, meta.kind, FileKind::Directory)
                .into());
        }
        // Re-deploy: state directories stay; only the index is replaced.
        // They must be what the initramfs mounts (never a symlink).
        let existing = deployments.open_dir(&hex)?;
        for sub in ["etc/upper", "etc/work", "var"] {
            existing.open_dir(sub)?;
        }
        if let Some(meta) = existing.stat("deployment.json")? {
            existing.require_file("deployment.json", &meta)?;
        }
        replace_deployment_json(repo, d)?;
        return Ok((path, false, 0));
    }
    // Assembled under a temporary name; removed again on failure.
    let tmp_name = deployments.create_temp_dir(".tmp-", 0o700)?;
    let assemble = || -> Result<u64, Error> {
        let t = deployments.open_dir(&tmp_name)?;
        // overlayfs requires an empty workdir it owns; root-only like /etc.
        let etc = t.ensure_dir("etc")?;
        etc.set_mode(0o755)?;
        for sub in ["upper", "work"] {
            etc.create_dir(sub, 0o755)?;
        }
        let var_entries = if opts.seed_var {
            var::seed(repo, &merged.tree, &t)?
        } else {
            t.create_dir("var", 0o755)?;
            0
        };
        let mut f = t.create_temp(".deployment.json", 0o644)?;
        let fpath = f.path();
        let file = f.file()?;
        io::Write::write_all(file, &d.to_json())
            .and_then(|()| file.sync_all())
            .map_err(Error::io("writing", &fpath))?;
        f.persist(&t, "deployment.json")?;
        deployments.rename(&tmp_name, &deployments, &hex)?;
        Ok(var_entries)
    };
    let var_entries = match assemble() {
        Ok(n) => n,
        Err(e) => {
            let _ = deployments.remove_tree(&tmp_name);
            return Err(e);
        }
    };
    deployments.sync()?;
    Ok((path, true, var_entries))
}

/// Atomically replaces the `deployment.json` of an existing deployment
/// (renamed over whatever is there, never written through it).
pub fn replace_deployment_json(repo: &Repository, d: &Deployment) -> Result<(), Error> {
    let dir = repo.dir().open_dir(repo.deployment_rel(&d.manifest))?;
    let mut tmp = dir.create_temp(".deployment.json", 0o644)?;
    let path = dir.display("deployment.json");
    let file = tmp.file()?;
    io::Write::write_all(file, &d.to_json())
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing", &path))?;
    tmp.persist(&dir, "deployment.json")?;
    Ok(dir.sync()?)
}

/// `<kind>/<name>` -> `../deployments/<manifest hex>`, replaced atomically
/// (the old entry is read as a symlink and renamed over, never followed).
fn link_name(
    repo: &Repository,
    kind: &str,
    name: &str,
    manifest: &ManifestDigest,
) -> Result<(), Error> {
    let dir = repo.dir().open_dir(kind)?;
    let target = Path::new("../deployments").join(manifest.0.to_hex());
    if dir.read_link(name).ok().as_deref() == Some(target.as_path()) {
        return Ok(());
    }
    let tmp = format!(".tmp-{name}-{}", std::process::id());
    dir.unlink(&tmp)?;
    dir.symlink(&target, &tmp)?;
    dir.rename(&tmp, &dir, name)?;
    Ok(dir.sync()?)
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
