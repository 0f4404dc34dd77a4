//! Signing every content object of an image (`sealroot oci seal
//! --object-signatures`), on all cores.
//!
//! Entry 0 is signed through `pkcs7::sign_fsverity` (the full message,
//! self-checked) and becomes the template; every other object gets only
//! its raw signature from the signer, over the same formatted digest
//! (`"FSVerity" | le16 alg | le16 size | digest`).
//!
//! Signatures from a signer that does not know its key (an external
//! command: HSM, KMS) are each verified against the certificate's public key
//! before they go into the bundle, so a wrong key, a faulty HSM or a broken
//! command fails sealing instead of the boot. An in-process key whose public
//! key equals the certificate's (checked once, and the template is fully
//! self-checked) is not verified per object: with RustCrypto's P-256 a
//! verification costs more than the signature itself, and would double the
//! time object signing adds to `oci seal` (docs/sealing.md has the figures);
//! `sealroot oci verify` checks every object signature afterwards.

use rayon::prelude::*;

use crate::crypto::{Cert, DigestAlgorithm, SignRequest, SignatureAlgorithm, Signer};
use crate::pkcs7::{SignError, SignOptions, sign_fsverity};
use crate::verity::{BlockSize, FormattedDigest, FsVerityDigest};

use super::splice::Template;
use super::{Bundle, BundleError};

/// Why object signing failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectSignError {
    /// Signing the first object, whose complete builtin signature becomes
    /// the bundle's template, failed.
    #[error("signing object {digest}: {error}")]
    Template {
        /// The object's fs-verity digest.
        digest: FsVerityDigest,
        /// What the signer said.
        error: Box<SignError>,
    },
    /// Signing a later object failed, its signature does not verify with
    /// the certificate, or the signing threads could not start.
    #[error("signing object {digest}: {reason}")]
    Object {
        /// The object's fs-verity digest.
        digest: FsVerityDigest,
        /// Why.
        reason: String,
    },
    /// The image has no external objects to sign.
    #[error("no objects to sign (an image of empty and inline files only)")]
    Empty,
    /// The bundle written does not read back.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// Signs every digest of `digests` (sorted, without duplicates, one
/// algorithm, `block_size` blocks) and returns the encoded bundle.
/// `threads` bounds the signing threads (an external command spends its
/// time in fork/exec, so more processes than cores pay off; in-process
/// keys use the global pool). `progress` is called once per signature.
pub fn sign_objects(
    digests: &[FsVerityDigest],
    block_size: BlockSize,
    signer: &(dyn Signer + Sync),
    cert: &Cert,
    options: &SignOptions,
    threads: Option<usize>,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<u8>, ObjectSignError> {
    let (first, rest) = digests.split_first().ok_or(ObjectSignError::Empty)?;
    let template = sign_fsverity(first, signer, cert, options).map_err(|source| {
        ObjectSignError::Template {
            digest: *first,
            error: Box::new(source),
        }
    })?;
    let template = Template::new(template).map_err(|e| ObjectSignError::Object {
        digest: *first,
        reason: e.to_string(),
    })?;
    progress();
    let digest_algorithm = DigestAlgorithm::for_fsverity(first.algorithm());
    let algorithm = SignatureAlgorithm::for_key(cert.key_algorithm(), digest_algorithm);
    let verify_each = signer.public_key().as_ref() != Some(cert.public_key());
    let sign_one = |digest: &FsVerityDigest| -> Result<(FsVerityDigest, Vec<u8>), ObjectSignError> {
        let fail = |reason: String| ObjectSignError::Object {
            digest: *digest,
            reason,
        };
        let message = FormattedDigest::new(*digest).to_bytes();
        let mut hash = Vec::new();
        let request = SignRequest::new(&message, digest_algorithm, &mut hash);
        let signature = signer.sign(&request).map_err(|e| fail(e.to_string()))?;
        if verify_each {
            cert.public_key()
                .verify_prehash(algorithm, request.digest, &signature)
                .map_err(|e| {
                    fail(format!(
                        "{} produced a signature that does not verify with {}: {e}",
                        signer.description(),
                        cert.info()
                    ))
                })?;
        }
        progress();
        Ok((*digest, signature))
    };
    let signed: Result<Vec<_>, ObjectSignError> = match threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| ObjectSignError::Object {
                digest: *first,
                reason: format!("cannot start {n} signing threads: {e}"),
            })?
            .install(|| rest.par_iter().map(sign_one).collect()),
        None => rest.par_iter().map(sign_one).collect(),
    };
    let mut entries = Vec::with_capacity(digests.len());
    entries.push((*first, template.signature().to_vec()));
    entries.extend(signed?);
    Ok(Bundle::encode(
        first.algorithm(),
        block_size,
        template.der(),
        &entries,
    )?)
}

/// The fs-verity digests of every content object `tree` references (the
/// regular files stored outside the EROFS), sorted.
pub fn tree_objects(tree: &crate::tree::Tree) -> std::collections::BTreeSet<FsVerityDigest> {
    let mut set = std::collections::BTreeSet::new();
    let _ = crate::dumpfile::print::walk(tree, |_, id, _| {
        if let crate::tree::Content::External {
            digest: Some(d), ..
        } = tree.content(id)
        {
            set.insert(d);
        }
        Ok(())
    });
    set
}
