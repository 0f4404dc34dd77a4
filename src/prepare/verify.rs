//! The verification chain of `docs/repository.md` ("What `sealroot-prepare`
//! proves"): from the selected digest to a verified, open EROFS file.
//!
//! For each of the three signed files (manifest, config, merged EROFS):
//! 1. open it (the kernel checks a builtin signature at open, against the
//!    already sealed `.fs-verity` keyring: ENOKEY/EKEYREJECTED refuse it);
//! 2. if it has no fs-verity and attaching is allowed, enable fs-verity
//!    with the artifact's PKCS#7 (the kernel checks it);
//! 3. measure it (`FS_IOC_MEASURE_VERITY`: the kernel's digest, never one
//!    computed here) and require the digest the artifact signs;
//! 4. verify the artifact's PKCS#7 — and the builtin one, if present and
//!    different — in userspace against the trusted certificates;
//! 5. (manifest, config) read the content through the verity file, so the
//!    bytes hashed are the bytes the Merkle tree covers.
//!
//! The artifact itself is unsigned: it is only a container of signatures.
//! It is bound to the image by its `subject` (manifest digest and size),
//! and each of its entries is bound to a file by the kernel-measured
//! digest.

use std::fs::File;

use rustix::io::Errno;

use super::cmdline::Selector;
use super::config::SignaturePolicy;
use super::repo::{Repo, RepoError, blob_path};
use crate::crypto::{Cert, CertInfo};
use crate::oci::artifact::{Role, SealArtifact, SignatureEntry};
use crate::oci::stored::{MAX_JSON_SIZE, Stored};
use crate::oci::{ConfigDigest, ImageConfig, ImageManifest, ManifestDigest, Sha256Digest};
use crate::repo::json::{Deployment, SignatureMode};
use crate::verity::FsVerityDigest;
use crate::verity::ioctl as vioctl;

/// Label composefs-rs puts into a "sealed" image's config: the merged
/// EROFS digest. When present it must match (it binds config and EROFS
/// directly; `crates/composefs-oci/src/oci_image.rs`).
const SEAL_LABEL: &str = "containers.composefs.fsverity";

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{what}: {reason}")]
    Refused { what: String, reason: String },
    #[error(
        "{selector}: no such image is deployed in {repo} ({looked}); deploy it with \
         `sealroot deploy`, or fix the kernel command line"
    )]
    NotDeployed {
        selector: String,
        repo: String,
        looked: String,
    },
}

fn refused(what: impl Into<String>, reason: impl Into<String>) -> VerifyError {
    VerifyError::Refused {
        what: what.into(),
        reason: reason.into(),
    }
}

/// How a file's signature was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureCheck {
    /// Builtin signature, checked by the kernel at open (and in userspace).
    Kernel,
    /// The artifact's detached PKCS#7, checked in userspace against the
    /// kernel-measured digest.
    Userspace,
}

/// What was proven about one signed file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileProof {
    /// Path below the repository.
    pub path: String,
    /// fs-verity digest measured by the kernel (`sha256:<hex>`).
    pub fsverity: String,
    pub signature: SignatureCheck,
    /// Whether fs-verity was enabled with the signature during this boot.
    pub attached: bool,
    /// The certificate that made the signature.
    pub signer: CertInfo,
    /// The trusted certificate (from certs.d) the decision rests on.
    pub trusted_by: CertInfo,
}

/// A verified image, ready to mount.
pub struct Verified {
    pub manifest: ManifestDigest,
    pub config: ConfigDigest,
    pub artifact: Sha256Digest,
    pub image: FsVerityDigest,
    /// Deployment directory below the repository (`deployments/<hex>`).
    pub deployment: String,
    pub manifest_proof: FileProof,
    pub config_proof: FileProof,
    pub image_proof: FileProof,
    /// The EROFS file, open and verified: mount exactly this.
    pub image_file: File,
}

impl Verified {
    /// `kernel` when all three signatures were kernel-checked, `userspace`
    /// when none, else `mixed`.
    pub fn mode(&self) -> &'static str {
        let k = [&self.manifest_proof, &self.config_proof, &self.image_proof]
            .iter()
            .filter(|p| p.signature == SignatureCheck::Kernel)
            .count();
        match k {
            3 => "kernel",
            0 => "userspace",
            _ => "mixed",
        }
    }
}

/// Inputs of the verification.
pub struct Policy<'a> {
    pub certs: &'a [Cert],
    pub signatures: SignaturePolicy,
    pub attach: bool,
    /// Whether the kernel checks builtin signatures (`.fs-verity` exists).
    pub kernel_signatures: bool,
}

/// Finds and verifies the image `selector` names.
pub fn verify(
    repo: &Repo,
    selector: &Selector,
    policy: &Policy<'_>,
) -> Result<Verified, VerifyError> {
    let algorithm = repo.algorithm()?;
    let not_deployed = |looked: String| VerifyError::NotDeployed {
        selector: selector.to_string(),
        repo: repo.path().display().to_string(),
        looked,
    };
    // 1. The deployment directory (a hint: everything is re-checked).
    let deployment = match selector {
        Selector::Manifest(m) => {
            let dir = format!("deployments/{}", m.0.to_hex());
            if !repo.exists(&dir)? {
                return Err(not_deployed(format!("no {dir}")));
            }
            dir
        }
        Selector::Config(c) => {
            let link = format!("by-config/{}", c.0.to_hex());
            if !repo.exists(&link)? {
                return Err(not_deployed(format!("no {link}")));
            }
            link
        }
        Selector::Image(candidates) => {
            let mut found = None;
            for c in candidates
                .iter()
                .filter(|c| c.digest.algorithm() == algorithm.hash)
            {
                let link = format!("by-image/{}", c.digest.to_hex());
                if repo.exists(&link)? {
                    found = Some(link);
                    break;
                }
            }
            match found {
                Some(link) => link,
                None => {
                    return Err(not_deployed(format!(
                        "no by-image/<digest> for any {} digest; the repository uses {algorithm}",
                        algorithm.hash
                    )));
                }
            }
        }
    };
    let hint = repo.deployment(&deployment)?;
    let manifest_digest = match selector {
        Selector::Manifest(m) => {
            if hint.manifest != *m {
                return Err(refused(
                    repo.display(&format!("{deployment}/deployment.json"))
                        .display()
                        .to_string(),
                    format!("names manifest {}, not the selected {m}", hint.manifest),
                ));
            }
            *m
        }
        _ => hint.manifest,
    };
    // The state directory is always the verified manifest's.
    let deployment = format!("deployments/{}", manifest_digest.0.to_hex());

    // 2. The artifact: a container of signatures, checked entry by entry.
    let artifact_path = blob_path(&hint.artifact);
    let artifact_what = format!("signature artifact {}", hint.artifact);
    let mut f = repo.open_file(&artifact_path, "cannot open the signature artifact")?;
    let bytes = repo.read_limited(&mut f, &artifact_path, 1 << 20)?;
    let stored = Stored::<ImageManifest>::parse(bytes)
        .map_err(|e| refused(&artifact_what, e.to_string()))?;
    if stored.digest() != hint.artifact {
        return Err(refused(
            &artifact_what,
            format!(
                "{} has sha256 {}: the file was altered",
                repo.display(&artifact_path).display(),
                stored.digest()
            ),
        ));
    }
    let artifact =
        SealArtifact::parse(&stored).map_err(|e| refused(&artifact_what, e.to_string()))?;
    if artifact.subject.digest != manifest_digest.0 {
        return Err(refused(
            &artifact_what,
            format!(
                "artifact subject mismatch: it signs image {}, not {manifest_digest}",
                artifact.subject.digest
            ),
        ));
    }
    let entry = |role: Role| {
        artifact.entry(role).ok_or_else(|| {
            refused(
                &artifact_what,
                format!("signature missing: the artifact has no {role} signature"),
            )
        })
    };
    let (m_entry, c_entry, e_entry) = (
        entry(Role::Manifest)?,
        entry(Role::Config)?,
        entry(Role::Merged)?,
    );

    // Attaching uses the artifact's parameters (the spec fixes "no salt").
    let params = artifact.algorithm.params();

    // 3. The manifest.
    let m_path = blob_path(&manifest_digest.0);
    let m_what = format!("manifest {manifest_digest}");
    let (mut m_file, m_proof) =
        open_signed(repo, &m_path, &m_what, m_entry, &params, &hint, policy)?;
    let m_bytes = repo.read_limited(&mut m_file, &m_path, MAX_JSON_SIZE)?;
    let manifest =
        Stored::<ImageManifest>::parse(m_bytes).map_err(|e| refused(&m_what, e.to_string()))?;
    if manifest.digest() != manifest_digest.0 {
        return Err(refused(
            &m_what,
            format!(
                "its content has sha256 {}: the manifest was altered (or is another image's)",
                manifest.digest()
            ),
        ));
    }
    artifact
        .check_subject(hint.artifact, &manifest)
        .map_err(|e| refused(&artifact_what, format!("artifact subject mismatch: {e}")))?;
    if !manifest.is_image() {
        return Err(refused(
            &m_what,
            "is not an image manifest (it has an artifactType or no image config)",
        ));
    }

    // 4. The config.
    let config_digest = manifest.config_digest();
    if let Selector::Config(c) = selector {
        if *c != config_digest {
            return Err(refused(
                &m_what,
                format!("its config is {config_digest}, not the selected {c}"),
            ));
        }
    }
    let c_path = blob_path(&config_digest.0);
    let c_what = format!("config {config_digest}");
    let (mut c_file, c_proof) =
        open_signed(repo, &c_path, &c_what, c_entry, &params, &hint, policy)?;
    let c_bytes = repo.read_limited(&mut c_file, &c_path, MAX_JSON_SIZE)?;
    if c_bytes.len() as u64 != manifest.config.size {
        return Err(refused(
            &c_what,
            format!(
                "is {} bytes, the manifest says {}: the config was altered",
                c_bytes.len(),
                manifest.config.size
            ),
        ));
    }
    let config =
        Stored::<ImageConfig>::parse(c_bytes).map_err(|e| refused(&c_what, e.to_string()))?;
    if config.digest() != config_digest.0 {
        return Err(refused(
            &c_what,
            format!(
                "its content has sha256 {}: the config was altered",
                config.digest()
            ),
        ));
    }

    // 5. The merged EROFS.
    let image = e_entry.digest;
    if let Selector::Image(c) = selector {
        if !c.iter().any(|c| c.digest == image) {
            return Err(refused(
                &artifact_what,
                format!("signs merged EROFS {image}, not the selected {selector}"),
            ));
        }
    }
    if let Some(label) = config
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(SEAL_LABEL))
    {
        if *label != image.to_hex() {
            return Err(refused(
                &c_what,
                format!(
                    "its label {SEAL_LABEL}={label} names another EROFS than the artifact's {image}"
                ),
            ));
        }
    }
    let e_path = format!("images/{}", image.to_hex());
    let e_what = format!("merged EROFS {image}");
    let (image_file, e_proof) =
        open_signed(repo, &e_path, &e_what, e_entry, &params, &hint, policy)?;

    let verified = Verified {
        manifest: manifest_digest,
        config: config_digest,
        artifact: hint.artifact,
        image,
        deployment,
        manifest_proof: m_proof,
        config_proof: c_proof,
        image_proof: e_proof,
        image_file,
    };
    if policy.signatures == SignaturePolicy::Kernel && verified.mode() != "kernel" {
        // open_signed() already refused files without a builtin signature.
        return Err(refused(&m_what, "not every signature was kernel-checked"));
    }
    Ok(verified)
}

/// Reads the PKCS#7 blob an artifact entry points to.
fn read_signature_blob(
    repo: &Repo,
    entry: &SignatureEntry,
    what: &str,
) -> Result<Vec<u8>, VerifyError> {
    let path = blob_path(&entry.blob.digest);
    let mut f = match repo.open_file(&path, "cannot open the signature") {
        Ok(f) => f,
        Err(RepoError::Io {
            errno: Errno::NOENT,
            ..
        }) => {
            return Err(refused(
                what,
                format!(
                    "signature missing: the {} signature blob {} is not in the repository",
                    entry.role, entry.blob.digest
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = repo.read_limited(&mut f, &path, crate::oci::artifact::MAX_SIGNATURE_SIZE)?;
    if Sha256Digest::of(&bytes) != entry.blob.digest || bytes.len() as u64 != entry.blob.size {
        return Err(refused(
            what,
            format!(
                "the {} signature blob {} was altered (sha256 or size differ)",
                entry.role, entry.blob.digest
            ),
        ));
    }
    Ok(bytes)
}

/// Steps 1-4 for one signed file; returns it open at offset 0. `hint` only
/// explains a missing fs-verity (docs/repository.md: "the flag only
/// explains why"); every decision rests on what the kernel measures.
fn open_signed(
    repo: &Repo,
    rel: &str,
    what: &str,
    entry: &SignatureEntry,
    params: &crate::verity::VerityParams,
    hint: &Deployment,
    policy: &Policy<'_>,
) -> Result<(File, FileProof), VerifyError> {
    let file = match repo.open_file(rel, "cannot open") {
        Ok(f) => f,
        Err(RepoError::Io {
            errno: Errno::NOENT,
            ..
        }) => {
            return Err(refused(
                what,
                format!(
                    "{} is missing from the repository",
                    repo.display(rel).display()
                ),
            ));
        }
        Err(e) => return Err(refused(what, e.to_string())),
    };
    let detached = read_signature_blob(repo, entry, what)?;
    let kernel_err = |e: vioctl::Error| refused(what, e.at(&repo.display(rel)).to_string());

    let mut attached = false;
    if !vioctl::has_verity(&file).map_err(kernel_err)? {
        if !policy.attach {
            let why = match (hint.signatures, hint.verity) {
                (SignatureMode::AttachAtBoot, _) => {
                    "deployed with --signatures=attach-at-boot; allow attaching with \
                     `[verify] attach-signatures = yes` in /etc/sealroot/prepare.conf, or \
                     redeploy with builtin signatures"
                }
                (_, false) => {
                    "deployment.json says \"verity\": false: it was deployed where fs-verity \
                     was unavailable; run `sealroot repo enable-verity --sysroot <root>` on this \
                     system, or deploy here"
                }
                (_, true) => {
                    "deployment.json says fs-verity was enabled, so the file was replaced: \
                     the disk was tampered with; redeploy the image"
                }
            };
            return Err(refused(
                what,
                format!("{} has no fs-verity ({why})", repo.display(rel).display()),
            ));
        }
        if !policy.kernel_signatures {
            return Err(refused(
                what,
                "cannot attach its signature: the kernel has no builtin fs-verity signature \
                 support (no .fs-verity keyring)",
            ));
        }
        vioctl::enable(&file, params, Some(&detached)).map_err(kernel_err)?;
        attached = true;
    }
    let measured = vioctl::measure(&file).map_err(kernel_err)?;
    if measured != entry.digest {
        return Err(refused(
            what,
            format!(
                "fs-verity digest mismatch: {} measures {measured}, the artifact signs {}: \
                 the file was altered or replaced",
                repo.display(rel).display(),
                entry.digest
            ),
        ));
    }
    let builtin = vioctl::read_signature(&file).map_err(kernel_err)?;
    let kernel_checked = policy.kernel_signatures && builtin.is_some();
    if policy.signatures == SignaturePolicy::Kernel && !kernel_checked {
        return Err(refused(
            what,
            if policy.kernel_signatures {
                format!(
                    "{} has no builtin fs-verity signature, and [verify] signatures = kernel \
                     requires one (deploy with --signatures=builtin)",
                    repo.display(rel).display()
                )
            } else {
                "[verify] signatures = kernel, but this kernel does not check builtin \
                 fs-verity signatures (no .fs-verity keyring: CONFIG_FS_VERITY_BUILTIN_SIGNATURES \
                 is off)"
                    .to_string()
            },
        ));
    }
    let userspace = |sig: &[u8], which: &str| {
        crate::pkcs7::verify_fsverity(sig, &measured, policy.certs).map_err(|e| {
            refused(
                what,
                format!("{which} signature refused by the userspace check: {e}"),
            )
        })
    };
    let verified = userspace(&detached, "the artifact's")?;
    let verified = match &builtin {
        Some(b) if *b != detached => userspace(b, "the builtin")?,
        _ => verified,
    };
    Ok((
        file,
        FileProof {
            path: rel.to_owned(),
            fsverity: measured.to_string(),
            signature: if kernel_checked {
                SignatureCheck::Kernel
            } else {
                SignatureCheck::Userspace
            },
            attached,
            signer: verified.signer,
            trusted_by: verified.trusted,
        },
    ))
}
