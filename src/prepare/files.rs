//! Reading the repository's files for [`super::verify`]: a signed file
//! opened, measured by the kernel and checked against its signature
//! ([`open_signed`]), and a JSON document accepted only with the digest
//! that selected it ([`read_document`]).

use std::fs::File;

use rustix::io::Errno;

use super::repo::{Repo, RepoError, blob_path};
use super::signatures::{Pkcs7, Signed};
use super::verify::{FileProof, Policy, VerifyError, refused};
use crate::oci::Sha256Digest;
use crate::oci::stored::{Document, Stored};
use crate::repo::json::{Deployment, SignatureMode};
use crate::verity::VerityParams;
use crate::verity::ioctl as vioctl;

/// What a document read from the repository must be.
#[derive(Debug)]
pub struct Expected {
    /// The sha256 its bytes must have.
    pub digest: Sha256Digest,
    /// The size the referring descriptor states, if one does.
    pub size: Option<u64>,
    /// Largest size read.
    pub limit: u64,
}

/// Reads a JSON document whole from `file` (at most `expected.limit`
/// bytes) and accepts it only if its size and sha256 are the expected
/// ones; then parses it. `what` names it in errors.
pub fn read_document<T: Document>(
    repo: &Repo,
    file: &mut File,
    rel: &str,
    what: &str,
    expected: &Expected,
) -> Result<Stored<T>, VerifyError> {
    let bytes = repo.read_limited(file, rel, expected.limit)?;
    if let Some(size) = expected.size
        && bytes.len() as u64 != size
    {
        return Err(refused(
            what,
            format!(
                "{} is {} bytes, its descriptor says {size}: the file was altered",
                repo.display(rel).display(),
                bytes.len()
            ),
        ));
    }
    let actual = Sha256Digest::of(&bytes);
    if actual != expected.digest {
        return Err(refused(
            what,
            format!(
                "{} has sha256 {actual}: the file was altered (or is another image's)",
                repo.display(rel).display()
            ),
        ));
    }
    Stored::<T>::parse(bytes).map_err(|e| refused(what, e.to_string()))
}

/// Opens `rel` read-only; a missing file is a refusal naming it.
pub fn open_present(repo: &Repo, rel: &str, what: &str) -> Result<File, VerifyError> {
    match repo.open_file(rel, "cannot open") {
        Ok(f) => Ok(f),
        Err(RepoError::Io {
            errno: Errno::NOENT,
            ..
        }) => Err(refused(
            what,
            format!(
                "{} is missing from the repository",
                repo.display(rel).display()
            ),
        )),
        Err(e) => Err(refused(what, e.to_string())),
    }
}

/// The PKCS#7 of `signed`: from the artifact's blob in the repository
/// (bounded, sha256 and size checked), or the inline bytes.
fn load_pkcs7(repo: &Repo, signed: &Signed<'_>, what: &str) -> Result<Vec<u8>, VerifyError> {
    let blob = match signed.pkcs7 {
        Pkcs7::Inline(der) => return Ok(der.to_vec()),
        Pkcs7::Blob(blob) => blob,
    };
    let path = blob_path(&blob.digest);
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
                    signed.role, blob.digest
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = repo.read_limited(&mut f, &path, crate::oci::artifact::MAX_SIGNATURE_SIZE)?;
    if Sha256Digest::of(&bytes) != blob.digest || bytes.len() as u64 != blob.size {
        return Err(refused(
            what,
            format!(
                "the {} signature blob {} was altered (sha256 or size differ)",
                signed.role, blob.digest
            ),
        ));
    }
    Ok(bytes)
}

/// For one signed file: open it (the kernel checks a builtin signature at
/// open), enable fs-verity with the signature if it has none and
/// attaching is allowed, measure it (the kernel's digest), require the
/// signed digest, and verify the PKCS#7 — and the builtin one, when
/// different — in userspace. Returns the file open at offset 0. `hint`
/// only explains a missing fs-verity (docs/repository.md: "the flag only
/// explains why"); every decision rests on what the kernel measures.
pub fn open_signed(
    repo: &Repo,
    rel: &str,
    what: &str,
    signed: &Signed<'_>,
    params: &VerityParams,
    hint: &Deployment,
    policy: &Policy<'_>,
) -> Result<(File, FileProof), VerifyError> {
    let file = open_present(repo, rel, what)?;
    let detached = load_pkcs7(repo, signed, what)?;
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
    if measured != signed.digest {
        return Err(refused(
            what,
            format!(
                "fs-verity digest mismatch: {} measures {measured}, {} signs {}: \
                 the file was altered or replaced",
                repo.display(rel).display(),
                signed.source,
                signed.digest
            ),
        ));
    }
    let builtin = vioctl::read_signature(&file).map_err(kernel_err)?;
    let kernel_checked = policy.kernel_signatures && builtin.is_some();
    if policy.signatures == super::config::SignaturePolicy::Kernel && !kernel_checked {
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
        crate::pkcs7::verify_fsverity(sig, &measured, policy.certs)
            .map_err(|e| refused(what, format!("{which} refused by the userspace check: {e}")))
    };
    let verified = userspace(&detached, &format!("the signature from {}", signed.source))?;
    let verified = match &builtin {
        Some(b) if *b != detached => userspace(b, "the builtin signature")?,
        _ => verified,
    };
    Ok((
        file,
        FileProof::new(
            rel.to_owned(),
            &measured,
            kernel_checked,
            attached,
            verified,
        ),
    ))
}
