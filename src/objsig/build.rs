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
    let sign_batch =
        |batch: &[FsVerityDigest]| -> Result<Vec<(FsVerityDigest, Vec<u8>)>, ObjectSignError> {
            let messages: Vec<Vec<u8>> = batch
                .iter()
                .map(|d| FormattedDigest::new(*d).to_bytes())
                .collect();
            let hashes: Vec<Vec<u8>> = messages
                .iter()
                .map(|m| digest_algorithm.digest(m))
                .collect();
            let requests: Vec<SignRequest<'_>> = messages
                .iter()
                .zip(&hashes)
                .map(|(message, hash)| SignRequest {
                    message,
                    digest_algorithm,
                    digest: hash,
                })
                .collect();
            let signatures = signer.sign_batch(&requests);
            if signatures.len() != requests.len() {
                return Err(ObjectSignError::Object {
                    digest: batch[0],
                    reason: format!(
                        "{} returned {} signatures for {} objects",
                        signer.description(),
                        signatures.len(),
                        requests.len()
                    ),
                });
            }
            let mut signed = Vec::with_capacity(batch.len());
            for ((digest, request), signature) in batch.iter().zip(&requests).zip(signatures) {
                let fail = |reason: String| ObjectSignError::Object {
                    digest: *digest,
                    reason,
                };
                let signature = signature.map_err(|e| fail(e.to_string()))?;
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
                signed.push((*digest, signature));
            }
            Ok(signed)
        };
    // Batches of what the signer does best with (an in-process P-256 key
    // shares its inversions over 128; a command signs one at a time), but
    // at least four per thread so that small images still use every core.
    let sign_all = || -> Result<Vec<Vec<_>>, ObjectSignError> {
        let per_thread = rest.len().div_ceil(4 * rayon::current_num_threads());
        let size = signer.batch_size().min(per_thread).max(1);
        rest.par_chunks(size).map(sign_batch).collect()
    };
    let signed = match threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| ObjectSignError::Object {
                digest: *first,
                reason: format!("cannot start {n} signing threads: {e}"),
            })?
            .install(sign_all),
        None => sign_all(),
    };
    let mut entries = Vec::with_capacity(digests.len());
    entries.push((*first, template.signature().to_vec()));
    entries.extend(signed?.into_iter().flatten());
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
