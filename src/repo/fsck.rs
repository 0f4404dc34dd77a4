//! `sealroot repo fsck`: re-verify a repository from its bytes.
//!
//! - every object's fs-verity digest equals its name (and, where verity is
//!   enabled, the kernel's measurement agrees);
//! - every blob's sha256 equals its name;
//! - every image's fs-verity digest equals its name, it reads as a
//!   composefs EROFS, and every object it references is present;
//! - every deployment is complete: `deployment.json` parses; manifest,
//!   config, artifact and image are present and agree (the config is the
//!   manifest's, the artifact's subject is the manifest, its signed digests
//!   are the files' digests); the state directories and `by-*` names exist;
//!   with trusted certificates, every signature verifies.
//!
//! Hashing runs on all cores.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::crypto::Cert;
use crate::dumpfile::print::walk;
use crate::erofs::reader::read_tree;
use crate::oci::artifact::{Role, SealArtifact};
use crate::oci::manifest::ImageManifest;
use crate::oci::stored::Stored;
use crate::oci::{ImageConfig, Sha256Digest};
use crate::pkcs7::verify_fsverity;
use crate::tree::Content;
use crate::verity::digest::digest_file;
use crate::verity::{FsVerityDigest, VerityParams, ioctl};

use super::Error;
use super::json::{Deployment, SignatureMode, parse_verity_hex};
use super::store::Repository;

/// One problem found, with the file it concerns.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub problem: String,
}

/// What fsck checked and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    pub objects: u64,
    pub blobs: u64,
    pub images: u64,
    pub deployments: u64,
    /// Signatures verified against the trusted certificates.
    pub signatures_verified: u64,
    /// Objects whose builtin signature verified against the trusted
    /// certificates (per-object signatures, docs/ipe.md).
    pub object_signatures_verified: u64,
    pub problems: Vec<Problem>,
}

impl FsckReport {
    fn problem(&mut self, path: impl Into<PathBuf>, problem: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            problem: problem.into(),
        });
    }
}

/// Lists the regular files two levels below `objects/` (`XX/rest`).
pub fn list_objects(repo: &Repository) -> Result<Vec<(String, PathBuf)>, Error> {
    let dir = repo.root().join("objects");
    let mut out = Vec::new();
    for d in fs::read_dir(&dir).map_err(Error::io("listing", &dir))? {
        let d = d.map_err(Error::io("listing", &dir))?;
        let sub = d.path();
        if !sub.is_dir() {
            out.push((d.file_name().to_string_lossy().into_owned(), sub));
            continue;
        }
        for f in fs::read_dir(&sub).map_err(Error::io("listing", &sub))? {
            let f = f.map_err(Error::io("listing", &sub))?;
            out.push((
                format!(
                    "{}{}",
                    d.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ),
                f.path(),
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// Files directly in `dir`, by name.
pub fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(Error::io("listing", dir))? {
        let e = e.map_err(Error::io("listing", dir))?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    out.sort();
    Ok(out)
}

/// The objects (`XX/rest` names, as hex without the slash) a composefs
/// image references.
pub fn image_objects(path: &Path) -> Result<BTreeSet<String>, String> {
    let data = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let tree = read_tree(&data).map_err(|e| format!("not a readable composefs EROFS: {e}"))?;
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

/// Checks the whole repository.
pub fn fsck(repo: &Repository, trusted: &[Cert]) -> Result<FsckReport, Error> {
    let mut r = FsckReport::default();

    // Objects: fs-verity sha256 of the content equals the name; builtin
    // signatures verify against the trust; objects IPE needs signed are.
    let objects = list_objects(repo)?;
    r.objects = objects.len() as u64;
    let sha256 = VerityParams::sha256();
    let need_signature = objects_needing_signatures(repo);
    let results: Vec<Result<bool, Problem>> = objects
        .par_iter()
        .map(|(name, path)| {
            check_object(&sha256, name, path)?;
            check_object_signature(name, path, trusted, need_signature.get(name.as_str()))
        })
        .collect();
    for res in results {
        match res {
            Ok(true) => r.object_signatures_verified += 1,
            Ok(false) => {}
            Err(p) => r.problems.push(p),
        }
    }
    let present: BTreeSet<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();

    // Blobs: sha256 equals the name.
    let blobs = list_dir(&repo.root().join("blobs/sha256"))?;
    r.blobs = blobs.len() as u64;
    let bad: Vec<Problem> = blobs
        .par_iter()
        .filter_map(|(name, path)| {
            let ok = fs::read(path)
                .map(|b| Sha256Digest::of(&b).to_hex() == *name)
                .map_err(|e| e.to_string());
            match ok {
                Ok(true) => None,
                Ok(false) => Some(Problem {
                    path: path.clone(),
                    problem: "sha256 of the content differs from the name (corrupted or tampered)"
                        .into(),
                }),
                Err(e) => Some(Problem {
                    path: path.clone(),
                    problem: format!("cannot read: {e}"),
                }),
            }
        })
        .collect();
    r.problems.extend(bad);

    // Images: digest equals the name, readable, objects present.
    let params = repo.params();
    let images = list_dir(&repo.root().join("images"))?;
    r.images = images.len() as u64;
    for (name, path) in &images {
        match digest_file(&params, path) {
            Ok(d) if d.to_hex() == *name => {}
            Ok(d) => r.problem(
                path,
                format!(
                    "fs-verity digest ({}) is {}, not its name",
                    repo.algorithm(),
                    d.to_hex()
                ),
            ),
            Err(e) => r.problem(path, format!("cannot read: {e}")),
        }
        match image_objects(path) {
            Ok(objs) => {
                let missing: Vec<&String> = objs
                    .iter()
                    .filter(|o| !present.contains(o.as_str()))
                    .collect();
                if let Some(first) = missing.first() {
                    r.problem(
                        path,
                        format!(
                            "{} referenced objects are missing from objects/, e.g. {}/{}",
                            missing.len(),
                            &first[..2.min(first.len())],
                            &first[2.min(first.len())..]
                        ),
                    );
                }
            }
            Err(e) => r.problem(path, e),
        }
    }

    for (dir, d) in repo.deployments()? {
        r.deployments += 1;
        match d {
            Ok(d) => check_deployment(repo, &dir, &d, trusted, &mut r),
            Err(e) => r.problem(&dir, e.to_string()),
        }
    }
    Ok(r)
}

/// Objects (by name) of deployments that promise every object a builtin
/// signature (`builtin`, fs-verity enabled, an object signature bundle),
/// with one such deployment's directory for messages.
fn objects_needing_signatures(repo: &Repository) -> std::collections::HashMap<String, PathBuf> {
    let mut out = std::collections::HashMap::new();
    let Ok(deployments) = repo.deployments() else {
        return out;
    };
    for (dir, d) in deployments {
        let Ok(d) = d else { continue };
        if d.signatures != SignatureMode::Builtin || !d.verity {
            continue;
        }
        if !matches!(
            crate::objsig::repo::deployment_bundle(repo, &d),
            Ok(Some(_))
        ) {
            continue;
        }
        if let Ok(objs) = image_objects(&repo.image_path(&d.image)) {
            for o in objs {
                out.entry(o).or_insert_with(|| dir.clone());
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
/// `Ok(true)`: a signature verified.
fn check_object_signature(
    name: &str,
    path: &Path,
    trusted: &[Cert],
    needed_by: Option<&PathBuf>,
) -> Result<bool, Problem> {
    let problem = |p: String| Problem {
        path: path.to_owned(),
        problem: p,
    };
    if trusted.is_empty() && needed_by.is_none() {
        return Ok(false);
    }
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            return Err(problem(format!(
                "cannot open: {e}{}",
                match rustix::io::Errno::from_io_error(&e) {
                    Some(rustix::io::Errno::NOKEY | rustix::io::Errno::KEYREJECTED) =>
                        ": the kernel refuses its builtin signature (its signer is not in \
                         .fs-verity); every image using this object fails to read it — deploy \
                         an image with object signatures by a trusted key to replace it",
                    _ => "",
                }
            )));
        }
    };
    if !ioctl::has_verity(&f).unwrap_or(false) {
        return Ok(false);
    }
    let sig = match ioctl::read_signature(&f) {
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
    let digest = parse_verity_hex(name, crate::oci::artifact::VerityAlgorithm::SHA256_12)
        .map_err(|e| problem(format!("not an object name: {e}")))?;
    match verify_fsverity(&sig, &digest, trusted) {
        Ok(_) => Ok(true),
        Err(e) => Err(problem(format!(
            "builtin signature does not verify against the trusted certificates: {e}; the \
             kernel keeps one builtin signature per file (the first one attached), so every \
             image sharing this object depends on that signer being trusted"
        ))),
    }
}

fn check_object(params: &VerityParams, name: &str, path: &Path) -> Result<(), Problem> {
    let problem = |p: String| Problem {
        path: path.to_owned(),
        problem: p,
    };
    let alg = crate::oci::artifact::VerityAlgorithm::SHA256_12;
    let expected =
        parse_verity_hex(name, alg).map_err(|e| problem(format!("not an object name: {e}")))?;
    let actual = digest_file(params, path).map_err(|e| problem(format!("cannot read: {e}")))?;
    if actual != expected {
        return Err(problem(format!(
            "content has fs-verity digest {}, not its name (corrupted or tampered)",
            actual.to_hex()
        )));
    }
    if let Ok(f) = fs::File::open(path)
        && let Ok(measured) = ioctl::measure(&f)
        && measured != expected
    {
        return Err(problem(format!(
            "the kernel measures fs-verity digest {measured}, not its name"
        )));
    }
    Ok(())
}

fn check_deployment(
    repo: &Repository,
    dir: &Path,
    d: &Deployment,
    trusted: &[Cert],
    r: &mut FsckReport,
) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name != d.manifest.0.to_hex() {
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
    for sub in ["etc/upper", "etc/work", "var"] {
        if !dir.join(sub).is_dir() {
            r.problem(dir.join(sub), "state directory missing");
        }
    }
    for (kind, n) in [
        ("by-config", d.config.0.to_hex()),
        ("by-image", d.image.to_hex()),
    ] {
        let link = repo.root().join(kind).join(&n);
        let want = Path::new("../deployments").join(d.manifest.0.to_hex());
        if fs::read_link(&link).ok().as_deref() != Some(want.as_path()) {
            r.problem(
                &link,
                format!("missing or not pointing to {}", want.display()),
            );
        }
    }
    let read = |path: &Path, r: &mut FsckReport| match fs::read(path) {
        Ok(b) => Some(b),
        Err(e) => {
            r.problem(
                path,
                format!("referenced by {}: cannot read: {e}", dir.display()),
            );
            None
        }
    };
    let mpath = repo.blob_path(&d.manifest.0);
    let Some(manifest) = read(&mpath, r) else {
        return;
    };
    let manifest = match Stored::<ImageManifest>::parse(manifest) {
        Ok(m) => m,
        Err(e) => return r.problem(&mpath, format!("not an image manifest: {e}")),
    };
    if manifest.config_digest() != d.config {
        r.problem(
            &mpath,
            format!(
                "its config is {}, deployment.json says {}",
                manifest.config.digest, d.config.0
            ),
        );
    }
    let cpath = repo.blob_path(&d.config.0);
    let config = read(&cpath, r);
    if let Some(c) = &config
        && let Err(e) = Stored::<ImageConfig>::parse(c.clone())
    {
        r.problem(&cpath, format!("not an image config: {e}"));
    }
    let ipath = repo.image_path(&d.image);
    let apath = repo.blob_path(&d.artifact);
    let Some(abytes) = read(&apath, r) else {
        return;
    };
    let artifact = Stored::<ImageManifest>::parse(abytes)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            let a = SealArtifact::parse(&m).map_err(|e| e.to_string())?;
            a.check_subject(d.artifact, &manifest)
                .map_err(|e| e.to_string())?;
            Ok(a)
        });
    let artifact = match artifact {
        Ok(a) => a,
        Err(e) => return r.problem(&apath, e),
    };
    let params = d.algorithm.params();
    for (role, path) in [
        (Role::Manifest, &mpath),
        (Role::Config, &cpath),
        (Role::Merged, &ipath),
    ] {
        let Some(entry) = artifact.entry(role) else {
            continue;
        };
        let actual = match digest_file(&params, path) {
            Ok(a) => a,
            Err(e) => {
                r.problem(path, format!("{role}: cannot read: {e}"));
                continue;
            }
        };
        if actual != entry.digest {
            r.problem(
                path,
                format!(
                    "{role}: fs-verity digest {} differs from the signed {}",
                    actual.to_hex(),
                    entry.digest.to_hex()
                ),
            );
            continue;
        }
        check_verity_state(path, d, &actual, r);
        let spath = repo.blob_path(&entry.blob.digest);
        let Some(sig) = read(&spath, r) else {
            continue;
        };
        if !trusted.is_empty() {
            match verify_fsverity(&sig, &actual, trusted) {
                Ok(_) => r.signatures_verified += 1,
                Err(e) => r.problem(&spath, format!("{role} signature: {e}")),
            }
        }
    }
}

fn check_verity_state(path: &Path, d: &Deployment, digest: &FsVerityDigest, r: &mut FsckReport) {
    let Ok(f) = fs::File::open(path) else { return };
    let enabled = ioctl::has_verity(&f).unwrap_or(false);
    if enabled {
        match ioctl::measure(&f) {
            Ok(m) if m == *digest => {}
            Ok(m) => r.problem(path, format!("the kernel measures {m}, expected {digest}")),
            Err(e) => r.problem(path, e.to_string()),
        }
        if d.signatures == SignatureMode::Builtin
            && !matches!(ioctl::read_signature(&f), Ok(Some(_)))
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
