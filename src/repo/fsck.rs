//! `sealroot repo fsck`: re-verify a repository from its bytes.
//!
//! - every object's fs-verity digest equals its name (and, where verity is
//!   enabled, the kernel's measurement agrees); its builtin signature, if
//!   it has one, verifies against the trusted certificates (the kernel
//!   keeps the first one attached), and an object a `builtin` deployment
//!   with object signatures uses has one (IPE needs it);
//! - every blob's sha256 equals its name;
//! - every image's fs-verity digest equals its name, it reads as a
//!   composefs EROFS, and every object it references is present;
//! - every deployment is complete: `deployment.json` parses; manifest,
//!   config, artifact (none for an image sealed inline: its manifest's
//!   annotations carry the signatures) and image are present and agree
//!   (the config is the manifest's, the artifact's subject is the manifest,
//!   the signed digests are the files' digests); the state directories and
//!   `by-*` names exist; with trusted certificates, every signature
//!   verifies;
//! - the layout itself: its directories are directories, `tmp/` holds
//!   regular files, `by-*/` symlinks of the form deploy writes (read, never
//!   followed), and no symlink, special file or hard-linked file sits where
//!   the layout has a file or directory (each is a problem naming it;
//!   nothing is read through it).
//!
//! Hashing runs on all cores.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::crypto::Cert;
use crate::dumpfile::print::walk;
use crate::erofs::objects::ImageObjects;
use crate::erofs::reader::read_tree;
use crate::oci::artifact::{Role, VerityAlgorithm};
use crate::oci::manifest::ImageManifest;
use crate::oci::stored::Stored;
use crate::oci::{ImageConfig, Sha256Digest};
use crate::pkcs7::verify_fsverity;
use crate::tree::Content;
use crate::verity::digest::{digest_bytes, digest_open_file};
use crate::verity::{FsVerityDigest, ioctl};

use super::Error;
use super::dir::{FileKind, PathError};
use super::json::{Deployment, SignatureMode, parse_verity_hex};
use super::scan::{self, Found, Listing};
use super::source::{DeployedError, deployed};
use super::store::{FoundDeployment, LAYOUT_DIRS, MAX_BLOB_SIZE, MAX_IMAGE_SIZE, Repository};

/// One problem found, with the file it concerns.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

/// What fsck checked and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    /// Objects checked.
    pub objects: u64,
    /// Blobs (manifests, configs, artifacts) checked.
    pub blobs: u64,
    /// EROFS images checked.
    pub images: u64,
    /// Deployments checked.
    pub deployments: u64,
    /// Signatures verified against the trusted certificates.
    pub signatures_verified: u64,
    /// Objects whose builtin signature verified against the trusted
    /// certificates (per-object signatures, docs/ipe.md).
    pub object_signatures_verified: u64,
    /// Everything found wrong.
    pub problems: Vec<Problem>,
}

impl Problem {
    /// A path that could not be used, as a problem of that path.
    fn of(e: &PathError) -> Problem {
        Problem {
            path: e.path().to_owned(),
            problem: e.reason(),
        }
    }
}

impl FsckReport {
    fn problem(&mut self, path: impl Into<PathBuf>, problem: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            problem: problem.into(),
        });
    }
}

/// The objects (`XX/rest` names, as hex without the slash) a composefs
/// image (its bytes) references.
pub fn image_objects(data: &[u8]) -> Result<BTreeSet<String>, String> {
    let tree = read_tree(data).map_err(|e| format!("not a readable composefs EROFS: {e}"))?;
    let mut set = BTreeSet::new();
    walk(&tree, |_, id, is_link| {
        if let (
            false,
            Content::External {
                payload: Some(p), ..
            },
        ) = (is_link, tree.content(id))
        {
            set.insert(String::from_utf8_lossy(p).replace('/', ""));
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(set)
}

/// Checks the whole repository. Whatever is not what the layout puts
/// there (a symlink, a special file, a hard-linked file) is a problem
/// naming it; nothing is followed or read through it.
pub fn fsck(repo: &Repository, trusted: &[Cert]) -> Result<FsckReport, Error> {
    let mut r = FsckReport::default();

    // The layout's directories are directories.
    for d in LAYOUT_DIRS {
        if let Err(e) = repo.dir().open_dir(d) {
            r.problem(e.path(), e.reason());
        }
    }
    // A listing that cannot even start (its directory is a symlink) was
    // reported just above.
    let list = |l: Result<Listing, Error>, r: &mut FsckReport| -> Vec<Found> {
        match l {
            Ok(l) => {
                for e in l.unexpected {
                    r.problem(e.path(), e.reason());
                }
                l.found
            }
            Err(Error::Path(_)) => Vec::new(),
            Err(e) => {
                r.problem(repo.root(), e.to_string());
                Vec::new()
            }
        }
    };

    // Objects: fs-verity digest (the repository's object algorithm) of the
    // content equals the name.
    let objects = list(scan::objects(repo), &mut r);
    r.objects = objects.len() as u64;
    let object_alg = repo.object_algorithm();
    let need_signature = objects_needing_signatures(repo);
    let results: Vec<Result<bool, Problem>> = objects
        .par_iter()
        .map(|f| {
            let (file, digest) = check_object(object_alg, f)?;
            check_object_signature(
                f,
                &file,
                &digest,
                trusted,
                need_signature.get(f.name.as_str()),
            )
        })
        .collect();
    for res in results {
        match res {
            Ok(true) => r.object_signatures_verified += 1,
            Ok(false) => {}
            Err(p) => r.problems.push(p),
        }
    }
    let present: BTreeSet<&str> = objects.iter().map(|f| f.name.as_str()).collect();

    // Blobs: sha256 equals the name.
    let blobs = list(
        scan::entries(repo, "blobs/sha256", FileKind::Regular),
        &mut r,
    );
    r.blobs = blobs.len() as u64;
    let bad: Vec<Problem> = blobs
        .par_iter()
        .filter_map(|f| {
            let problem = |p: String| Problem {
                path: f.path(),
                problem: p,
            };
            match f.read(MAX_BLOB_SIZE) {
                Ok(b) if Sha256Digest::of(&b).to_hex() == f.name => None,
                Ok(_) => Some(problem(
                    "sha256 of the content differs from the name (corrupted or tampered)".into(),
                )),
                Err(e) => Some(Problem::of(&e)),
            }
        })
        .collect();
    r.problems.extend(bad);

    // Images: digest equals the name, readable, objects present.
    let params = repo.params();
    let images = list(scan::entries(repo, "images", FileKind::Regular), &mut r);
    r.images = images.len() as u64;
    for f in &images {
        let path = f.path();
        let data = match f.read(MAX_IMAGE_SIZE) {
            Ok(d) => d,
            Err(e) => {
                r.problems.push(Problem::of(&e));
                continue;
            }
        };
        let d = digest_bytes(&params, &data);
        if d.to_hex() != f.name {
            r.problem(
                &path,
                format!(
                    "fs-verity digest ({}) is {}, not its name",
                    repo.algorithm(),
                    d.to_hex()
                ),
            );
        }
        // The EROFS records its objects' digests: of the repository's
        // object algorithm, or overlayfs refuses every file it stores outside.
        match ImageObjects::read(&data) {
            Ok(o) if o.algorithm().is_some_and(|a| a != object_alg.hash) => r.problem(
                &path,
                format!(
                    "records {} object digests; the repository's objects are {} (repo.json): \
                     no file of it stored outside the image can be read; it was not deployed \
                     by sealroot into this repository (remove its deployment and redeploy)",
                    o.algorithm().map(|a| a.name()).unwrap_or_default(),
                    object_alg
                ),
            ),
            Ok(_) => {}
            Err(e) => r.problem(&path, e.to_string()),
        }
        match image_objects(&data) {
            Ok(objs) => {
                let missing: Vec<&String> = objs
                    .iter()
                    .filter(|o| !present.contains(o.as_str()))
                    .collect();
                if let Some(first) = missing.first() {
                    r.problem(
                        &path,
                        format!(
                            "{} referenced objects are missing from objects/, e.g. {}/{}",
                            missing.len(),
                            &first[..2.min(first.len())],
                            &first[2.min(first.len())..]
                        ),
                    );
                }
            }
            Err(e) => r.problem(&path, e),
        }
    }

    // tmp/ holds only leftovers of interrupted writes (regular files).
    list(scan::entries(repo, "tmp", FileKind::Regular), &mut r);

    // by-config/, by-image/: symlinks of the form deploy writes, never
    // followed (the initramfs resolves them inside the repository only).
    for kind in ["by-config", "by-image"] {
        for f in list(scan::entries(repo, kind, FileKind::Symlink), &mut r) {
            match f.dir.read_link(&f.file_name) {
                Ok(t) if link_target_ok(&t) => {}
                Ok(t) => r.problem(
                    f.path(),
                    format!(
                        "symlink to {}, not ../deployments/<manifest hex> as deploy writes it",
                        t.display()
                    ),
                ),
                Err(e) => r.problems.push(Problem::of(&e)),
            }
        }
    }

    if let Ok(deployments) = repo.dir().open_dir("deployments") {
        // Interrupted deploys' directories (gc removes them) must be
        // directories: gc refuses anything else.
        for e in deployments.entries()? {
            if e.name_lossy().starts_with('.') && e.kind != FileKind::Directory {
                let err = deployments.unexpected(Path::new(&e.name), e.kind, FileKind::Directory);
                r.problem(err.path(), err.reason());
            }
        }
        for found in repo.deployments()? {
            r.deployments += 1;
            match &found.deployment {
                Ok(d) => check_deployment(repo, &found, d, trusted, &mut r),
                Err(Error::Path(e)) => r.problem(e.path(), e.reason()),
                Err(e) => r.problem(&found.path, e.to_string()),
            }
        }
    }
    Ok(r)
}

/// `../deployments/<64 lower-case hex>`: what deploy writes in `by-*/`.
fn link_target_ok(t: &Path) -> bool {
    t.to_str()
        .and_then(|s| s.strip_prefix("../deployments/"))
        .is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

/// Objects (by name) of deployments that promise every object a builtin
/// signature (`builtin`, fs-verity enabled, an object signature bundle),
/// with one such deployment's directory for messages. Everything is read
/// through the repository's `Dir`; what cannot be read is reported by the
/// deployment and image checks.
fn objects_needing_signatures(repo: &Repository) -> std::collections::HashMap<String, PathBuf> {
    let mut out = std::collections::HashMap::new();
    let Ok(deployments) = repo.deployments() else {
        return out;
    };
    for found in deployments {
        let Ok(d) = &found.deployment else { continue };
        if d.signatures != SignatureMode::Builtin || !d.verity {
            continue;
        }
        if !matches!(crate::objsig::repo::deployment_bundle(repo, d), Ok(Some(_))) {
            continue;
        }
        for (_, image) in d.images() {
            let Ok(data) = repo.read_file(repo.image_rel(&image), MAX_IMAGE_SIZE) else {
                continue;
            };
            if let Ok(objs) = image_objects(&data) {
                for o in objs {
                    out.entry(o).or_insert_with(|| found.path.clone());
                }
            }
        }
    }
    out
}

/// The object's builtin signature, if it has one: it must verify against
/// `trusted` (the kernel refuses to open an object whose signer is not in
/// `.fs-verity`, and keeps one signature per file: every image sharing the
/// object depends on it); an object a `builtin` deployment with object
/// signatures uses must have one (IPE refuses to execute it otherwise).
/// `file` is the object as [`check_object`] opened it. `Ok(true)`: a
/// signature verified.
fn check_object_signature(
    f: &Found,
    file: &File,
    digest: &FsVerityDigest,
    trusted: &[Cert],
    needed_by: Option<&PathBuf>,
) -> Result<bool, Problem> {
    let problem = |p: String| Problem {
        path: f.path(),
        problem: p,
    };
    if trusted.is_empty() && needed_by.is_none() {
        return Ok(false);
    }
    if !ioctl::has_verity(file).unwrap_or(false) {
        return Ok(false);
    }
    let sig = match ioctl::read_signature(file) {
        Ok(Some(sig)) => sig,
        Ok(None) => {
            return match needed_by {
                Some(dir) => Err(problem(format!(
                    "has fs-verity but no builtin signature, and deployment {} promises IPE \
                     one on every object (fsverity_signature=TRUE): programs in it will not \
                     run; deploy it again (sealroot deploy --signatures=builtin re-creates \
                     such objects)",
                    dir.display()
                ))),
                None => Ok(false),
            };
        }
        Err(e) => return Err(problem(format!("cannot read its builtin signature: {e}"))),
    };
    if trusted.is_empty() {
        return Ok(false);
    }
    match verify_fsverity(&sig, digest, trusted) {
        Ok(_) => Ok(true),
        Err(e) => Err(problem(format!(
            "builtin signature does not verify against the trusted certificates: {e}; the \
             kernel keeps one builtin signature per file (the first one attached), so every \
             image sharing this object depends on that signer being trusted"
        ))),
    }
}

/// Checks the object's fs-verity digest against its name and returns it
/// open (read-only, through the repository's `Dir`).
fn check_object(alg: VerityAlgorithm, f: &Found) -> Result<(File, FsVerityDigest), Problem> {
    let problem = |p: String| Problem {
        path: f.path(),
        problem: p,
    };
    let params = &alg.params();
    let expected =
        parse_verity_hex(&f.name, alg).map_err(|e| problem(format!("not an object name: {e}")))?;
    let file = f.open().map_err(|e| match e.errno() {
        Some(rustix::io::Errno::NOKEY | rustix::io::Errno::KEYREJECTED) => problem(format!(
            "{}: the kernel refuses its builtin signature (its signer is not in .fs-verity); \
             every image using this object fails to read it — deploy an image with object \
             signatures by a trusted key to replace it",
            e.reason()
        )),
        _ => Problem::of(&e),
    })?;
    let actual =
        digest_open_file(params, &file).map_err(|e| problem(format!("cannot read: {e}")))?;
    if actual != expected {
        return Err(problem(format!(
            "content has fs-verity digest {}, not its name (corrupted or tampered)",
            actual.to_hex()
        )));
    }
    if let Ok(measured) = ioctl::measure(&file)
        && measured != expected
    {
        return Err(problem(format!(
            "the kernel measures fs-verity digest {measured}, not its name"
        )));
    }
    Ok((file, expected))
}

fn check_deployment(
    repo: &Repository,
    found: &FoundDeployment,
    d: &Deployment,
    trusted: &[Cert],
    r: &mut FsckReport,
) {
    let dir = &found.path;
    if found.name != d.manifest.0.to_hex() {
        r.problem(
            dir,
            format!("deployment.json names manifest {}", d.manifest.0),
        );
    }
    if d.algorithm != repo.algorithm() {
        r.problem(
            dir,
            format!("uses {}, the repository {}", d.algorithm, repo.algorithm()),
        );
    }
    let rel = Path::new("deployments").join(&found.name);
    for sub in ["etc/upper", "etc/work", "var"] {
        match repo.dir().open_dir(rel.join(sub)) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => r.problem(dir.join(sub), "state directory missing"),
            Err(e) => r.problem(e.path(), e.reason()),
        }
    }
    let names = std::iter::once(("by-config", d.config.0.to_hex()))
        .chain(d.images().map(|(_, image)| ("by-image", image.to_hex())));
    for (kind, n) in names {
        let link = Path::new(kind).join(&n);
        let want = Path::new("../deployments").join(d.manifest.0.to_hex());
        if repo.dir().read_link(&link).ok().as_deref() != Some(want.as_path()) {
            r.problem(
                repo.display(&link),
                format!("missing or not pointing to {}", want.display()),
            );
        }
    }
    let open = |rel: &Path, r: &mut FsckReport| match repo.dir().open_file(rel) {
        Ok(f) => Some(f),
        Err(e) => {
            r.problem(
                e.path(),
                format!("referenced by {}: {}", dir.display(), e.reason()),
            );
            None
        }
    };
    let read = |rel: &Path, r: &mut FsckReport| {
        let mut f = open(rel, r)?;
        let mut b = Vec::new();
        match (&mut f).take(MAX_BLOB_SIZE).read_to_end(&mut b) {
            Ok(_) => Some(b),
            Err(e) => {
                r.problem(repo.display(rel), format!("cannot read: {e}"));
                None
            }
        }
    };
    let mrel = repo.blob_rel(&d.manifest.0);
    let Some(manifest) = read(&mrel, r) else {
        return;
    };
    let manifest = match Stored::<ImageManifest>::parse(manifest) {
        Ok(m) => m,
        Err(e) => return r.problem(repo.display(&mrel), format!("not an image manifest: {e}")),
    };
    if manifest.config_digest() != d.config {
        r.problem(
            repo.display(&mrel),
            format!(
                "its config is {}, deployment.json says {}",
                manifest.config.digest, d.config.0
            ),
        );
    }
    let crel = repo.blob_rel(&d.config.0);
    let config = read(&crel, r);
    if let Some(c) = &config
        && let Err(e) = Stored::<ImageConfig>::parse(c.clone())
    {
        r.problem(repo.display(&crel), format!("not an image config: {e}"));
    }
    let images: Vec<(Role, PathBuf)> = d
        .images()
        .map(|(role, image)| (role, repo.image_rel(&image)))
        .collect();
    // The signatures: from the artifact, or (inline) from the manifest.
    // A file that cannot be read is named with the deployment that needs it.
    let unusable = |e: &DeployedError, what: &str, r: &mut FsckReport| match e {
        DeployedError::Path(_) => r.problem(
            e.path(),
            format!("{what}referenced by {}: {}", dir.display(), e.reason()),
        ),
        DeployedError::Invalid { .. } => r.problem(e.path(), format!("{what}{}", e.reason())),
    };
    let sigs = match deployed(repo, d, &manifest) {
        Ok(s) => s,
        Err(e) => return unusable(&e, "", r),
    };
    let params = d.algorithm.params();
    let files = [(Role::Manifest, &mrel), (Role::Config, &crel)]
        .into_iter()
        .chain(images.iter().map(|(role, rel)| (*role, rel)));
    for (role, rel) in files {
        let Some(sig) = sigs.iter().find(|s| s.role == role) else {
            continue;
        };
        let signed = &sig.signed;
        let path = repo.display(rel);
        let Some(file) = open(rel, r) else {
            continue;
        };
        let actual = match digest_open_file(&params, &file) {
            Ok(a) => a,
            Err(e) => {
                r.problem(&path, format!("{role}: cannot read: {e}"));
                continue;
            }
        };
        if actual != *signed {
            r.problem(
                &path,
                format!(
                    "{role}: fs-verity digest {} differs from the signed {}",
                    actual.to_hex(),
                    signed.to_hex()
                ),
            );
            continue;
        }
        check_verity_state(&path, &file, d, &actual, r);
        let der = match &sig.der {
            Ok(der) => der,
            Err(e) => {
                unusable(e, &format!("{role} signature: "), r);
                continue;
            }
        };
        if !trusted.is_empty() {
            match verify_fsverity(der, &actual, trusted) {
                Ok(_) => r.signatures_verified += 1,
                Err(e) => r.problem(&sig.at, format!("{role} signature: {e}")),
            }
        }
    }
}

fn check_verity_state(
    path: &Path,
    f: &File,
    d: &Deployment,
    digest: &FsVerityDigest,
    r: &mut FsckReport,
) {
    let enabled = ioctl::has_verity(f).unwrap_or(false);
    if enabled {
        match ioctl::measure(f) {
            Ok(m) if m == *digest => {}
            Ok(m) => r.problem(path, format!("the kernel measures {m}, expected {digest}")),
            Err(e) => r.problem(path, e.to_string()),
        }
        if d.signatures == SignatureMode::Builtin
            && !matches!(ioctl::read_signature(f), Ok(Some(_)))
        {
            r.problem(
                path,
                "deployment.json says builtin signatures, but the file has none",
            );
        }
    } else if d.verity && d.signatures != SignatureMode::AttachAtBoot {
        r.problem(
            path,
            "deployment.json says fs-verity is enabled, but it is not",
        );
    }
}
