//! The verification chain of `docs/repository.md` ("What `sealroot-prepare`
//! proves"): from the selected digest to a verified, open EROFS file.
//!
//! 1. locate the deployment the selector names (its `deployment.json` is
//!    a hint: everything it says is re-checked);
//! 2. the manifest and where the signatures are ([`super::signatures`]):
//!    a sealing artifact (the manifest is itself a signed file), or the
//!    manifest's inline annotations (the manifest is trusted by its
//!    sha256 only);
//! 3. the config: a signed file ([`super::files::open_signed`]: opened,
//!    measured by the kernel, signature checked by the kernel and in
//!    userspace), whose sha256 and size the manifest names;
//! 4. binding and rollback floor ([`super::binding`]): a trusted signature
//!    must tie config and EROFS together, and the image must not be older
//!    than `min-created`;
//! 5. the EROFS: the bootable variant when the source signs one that its
//!    binding record covers (unless the selector names the merged EROFS),
//!    else the merged EROFS; a signed file, returned open for mounting.
//!
//! Manifests, configs and the artifact are read through one helper
//! ([`super::files::read_document`]: bounded read, size and sha256
//! compared before parsing).

use std::fs::File;

use super::binding::{self, BindingProof};
use super::cmdline::Selector;
use super::config::{Config, SignaturePolicy};
use super::files::{Expected, open_signed, read_document};
use super::record::{Files, ImageRecord};
use super::repo::{Repo, RepoError, blob_path};
use super::signatures;
use crate::crypto::{Cert, CertInfo};
use crate::oci::artifact::{Role, VerityAlgorithm};
use crate::oci::stored::MAX_JSON_SIZE;
use crate::oci::{ConfigDigest, ImageConfig, ManifestDigest, Sha256Digest};
use crate::timestamp::Timestamp;
use crate::verity::FsVerityDigest;

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading the repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A file, digest or signature that does not check out.
    #[error("{what}: {reason}")]
    Refused {
        /// The file or item.
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// Nothing in the repository matches the selector.
    #[error(
        "{selector}: no such image is deployed in {repo} ({looked}); deploy it with \
         `sealroot deploy`, or fix the kernel command line"
    )]
    NotDeployed {
        /// The selector, as written on the command line.
        selector: String,
        /// The repository.
        repo: String,
        /// Where it looked.
        looked: String,
    },
}

pub(super) fn refused(what: impl Into<String>, reason: impl Into<String>) -> VerifyError {
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
    /// The detached PKCS#7 (artifact blob or inline annotation), checked
    /// in userspace against the kernel-measured digest.
    Userspace,
}

/// What was proven about one signed file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileProof {
    /// Path below the repository.
    pub path: String,
    /// fs-verity digest measured by the kernel (`sha256:<hex>`).
    pub fsverity: String,
    /// Who checked the signature.
    pub signature: SignatureCheck,
    /// Whether fs-verity was enabled with the signature during this boot.
    pub attached: bool,
    /// The certificate that made the signature.
    pub signer: CertInfo,
    /// The trusted certificate (from certs.d) the decision rests on.
    pub trusted_by: CertInfo,
}

impl FileProof {
    /// The proof of a file at `path` whose fs-verity digest the kernel
    /// measured and whose signature `verified` checked (by the kernel too
    /// when `kernel_checked`).
    pub fn new(
        path: String,
        measured: &FsVerityDigest,
        kernel_checked: bool,
        attached: bool,
        verified: crate::pkcs7::Verified,
    ) -> FileProof {
        FileProof {
            path,
            fsverity: measured.to_string(),
            signature: if kernel_checked {
                SignatureCheck::Kernel
            } else {
                SignatureCheck::Userspace
            },
            attached,
            signer: verified.signer,
            trusted_by: verified.trusted,
        }
    }
}

/// A verified image, ready to mount.
#[derive(Debug)]
pub struct Verified {
    /// The image manifest's digest.
    pub manifest: ManifestDigest,
    /// The config's digest.
    pub config: ConfigDigest,
    /// The sealing artifact; `None` for an image sealed inline.
    pub artifact: Option<Sha256Digest>,
    /// The EROFS mounted: the merged one or its bootable variant.
    pub image: FsVerityDigest,
    /// Whether `image` is the bootable variant (role merged.bootable).
    pub bootable: bool,
    /// Deployment directory below the repository (`deployments/<hex>`).
    pub deployment: String,
    /// `None` inline: nothing signs the manifest, its sha256 is checked.
    pub manifest_proof: Option<FileProof>,
    /// What was proven about the config.
    pub config_proof: FileProof,
    /// What was proven about the EROFS.
    pub image_proof: FileProof,
    /// What binds the config and the EROFS, and the rollback floor.
    pub binding: BindingProof,
    /// The EROFS file, open and verified: mount exactly this.
    pub image_file: File,
}

impl Verified {
    fn proofs(&self) -> impl Iterator<Item = &FileProof> {
        [
            self.manifest_proof.as_ref(),
            Some(&self.config_proof),
            Some(&self.image_proof),
        ]
        .into_iter()
        .flatten()
    }

    /// `kernel` when every signature was kernel-checked, `userspace` when
    /// none, else `mixed`.
    pub fn mode(&self) -> &'static str {
        let kernel = self
            .proofs()
            .filter(|p| p.signature == SignatureCheck::Kernel)
            .count();
        match kernel {
            0 => "userspace",
            k if k == self.proofs().count() => "kernel",
            _ => "mixed",
        }
    }

    /// The status record's `image` (docs/prepare.md, status.json).
    pub fn record(&self, repo: &Repo) -> ImageRecord {
        ImageRecord {
            manifest: self.manifest.to_string(),
            config: self.config.to_string(),
            artifact: self.artifact.map(|a| a.to_string()),
            sealed: if self.artifact.is_some() {
                "artifact"
            } else {
                "inline"
            },
            erofs: self.image.to_string(),
            variant: if self.bootable { "bootable" } else { "merged" },
            repository: repo.path().display().to_string(),
            deployment: self.deployment.clone(),
            files: Files {
                manifest: self.manifest_proof.clone(),
                config: self.config_proof.clone(),
                erofs: self.image_proof.clone(),
            },
            binding: self.binding.clone(),
        }
    }
}

/// Inputs of the verification.
#[derive(Debug)]
pub struct Policy<'a> {
    /// The trusted certificates (`certs.d`).
    pub certs: &'a [Cert],
    /// Which checks must have run (`signatures` in prepare.conf).
    pub signatures: SignaturePolicy,
    /// Whether files without fs-verity get it now (`attach-signatures`).
    pub attach: bool,
    /// Whether the kernel checks builtin signatures (`.fs-verity` exists).
    pub kernel_signatures: bool,
    /// Refuse images whose config and EROFS no signature ties together.
    pub require_binding: bool,
    /// Refuse images created before this.
    pub min_created: Option<&'a Timestamp>,
}

impl<'a> Policy<'a> {
    /// The policy `prepare.conf` sets.
    pub fn new(config: &'a Config, certs: &'a [Cert], kernel_signatures: bool) -> Self {
        Policy {
            certs,
            signatures: config.signatures,
            attach: config.attach_signatures,
            kernel_signatures,
            require_binding: config.require_binding,
            min_created: config.min_created.as_ref(),
        }
    }
}

/// Finds the deployment directory (or `by-*` link) the selector names.
fn locate(
    repo: &Repo,
    selector: &Selector,
    algorithm: VerityAlgorithm,
) -> Result<String, VerifyError> {
    let not_deployed = |looked: String| VerifyError::NotDeployed {
        selector: selector.to_string(),
        repo: repo.path().display().to_string(),
        looked,
    };
    let first_present = |names: Vec<String>| -> Result<Option<String>, VerifyError> {
        for n in names {
            if repo.exists(&n)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    };
    match selector {
        Selector::Manifest(m) => {
            let dir = format!("deployments/{}", m.0.to_hex());
            first_present(vec![dir.clone()])?.ok_or_else(|| not_deployed(format!("no {dir}")))
        }
        Selector::Config(c) => {
            let link = format!("by-config/{}", c.0.to_hex());
            first_present(vec![link.clone()])?.ok_or_else(|| not_deployed(format!("no {link}")))
        }
        Selector::Image(candidates) => {
            let names = candidates
                .iter()
                .filter(|c| c.digest.algorithm() == algorithm.hash)
                .map(|c| format!("by-image/{}", c.digest.to_hex()))
                .collect();
            first_present(names)?.ok_or_else(|| {
                not_deployed(format!(
                    "no by-image/<digest> for any {} digest; the repository uses {algorithm}",
                    algorithm.hash
                ))
            })
        }
    }
}

/// Finds and verifies the image `selector` names.
pub fn verify(
    repo: &Repo,
    selector: &Selector,
    policy: &Policy<'_>,
) -> Result<Verified, VerifyError> {
    // 1. The deployment (a hint: everything is re-checked).
    let located = locate(repo, selector, repo.algorithm()?)?;
    let hint = repo.deployment(&located)?;
    let manifest_digest = match selector {
        Selector::Manifest(m) if hint.manifest != *m => {
            return Err(refused(
                repo.display(&format!("{located}/deployment.json"))
                    .display()
                    .to_string(),
                format!("names manifest {}, not the selected {m}", hint.manifest),
            ));
        }
        _ => hint.manifest,
    };
    // The state directory is always the verified manifest's.
    let deployment = format!("deployments/{}", manifest_digest.0.to_hex());

    // 2. The manifest, and where its signatures are.
    let (source, manifest, manifest_proof) =
        signatures::load(repo, &hint, manifest_digest, policy)?;
    let m_what = format!("manifest {manifest_digest}");
    if !manifest.is_image() {
        return Err(refused(
            &m_what,
            "is not an image manifest (it has an artifactType or no image config)",
        ));
    }
    // Attaching uses the source's parameters (the spec fixes "no salt").
    let params = source.algorithm().params();

    // 3. The config.
    let config_digest = manifest.config_digest();
    if let Selector::Config(c) = selector
        && *c != config_digest
    {
        return Err(refused(
            &m_what,
            format!("its config is {config_digest}, not the selected {c}"),
        ));
    }
    let c_path = blob_path(&config_digest.0);
    let c_what = format!("config {config_digest}");
    let c_signed = source.signed(Role::Config)?;
    let (mut c_file, config_proof) =
        open_signed(repo, &c_path, &c_what, &c_signed, &params, &hint, policy)?;
    let config = read_document::<ImageConfig>(
        repo,
        &mut c_file,
        &c_path,
        &c_what,
        &Expected {
            digest: config_digest.0,
            size: Some(manifest.config.size),
            limit: MAX_JSON_SIZE,
        },
    )?;

    // 4. Binding and rollback floor, before the EROFS is touched.
    let merged = source.signed(Role::Merged)?.digest;
    let bootable = source.digest(Role::MergedBootable);
    if let Selector::Image(c) = selector
        && !c
            .iter()
            .any(|c| c.digest == merged || Some(c.digest) == bootable)
    {
        return Err(refused(
            source.describe(),
            format!(
                "signs merged EROFS {merged}{}, not the selected {selector}",
                bootable
                    .map(|b| format!(" and bootable EROFS {b}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let binding = binding::check(
        &source,
        &binding::Image {
            manifest: manifest_digest,
            config_digest,
            config: &config,
            merged,
        },
        policy,
    )?;

    // 5. The EROFS to mount: the bootable variant when the source signs
    // one and its binding record (verified above, naming it) ties it to
    // this config, unless the selector names the merged EROFS itself
    // (docs/prepare.md, "Which EROFS").
    let role = match bootable {
        Some(b)
            if binding.bound_by.contains(&"binding-record")
                && !matches!(selector, Selector::Image(c) if !c.iter().any(|c| c.digest == b)) =>
        {
            Role::MergedBootable
        }
        _ => Role::Merged,
    };
    let e_signed = source.signed(role)?;
    let image = e_signed.digest;
    let e_path = format!("images/{}", image.to_hex());
    let e_what = format!("{role} {image}");
    let (image_file, image_proof) =
        open_signed(repo, &e_path, &e_what, &e_signed, &params, &hint, policy)?;

    let verified = Verified {
        manifest: manifest_digest,
        config: config_digest,
        artifact: source.artifact(),
        image,
        bootable: role == Role::MergedBootable,
        deployment,
        manifest_proof,
        config_proof,
        image_proof,
        binding,
        image_file,
    };
    if policy.signatures == SignaturePolicy::Kernel && verified.mode() != "kernel" {
        // open_signed() already refused files without a builtin signature.
        return Err(refused(&m_what, "not every signature was kernel-checked"));
    }
    Ok(verified)
}
