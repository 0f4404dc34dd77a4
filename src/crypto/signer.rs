//! The signing abstraction: something that turns the bytes to sign into a
//! signature. [`crate::crypto::key::KeySigner`] signs in-process with a key
//! file; an HSM, KMS or external command can implement [`Signer`] too, and
//! `pkcs7::sign` will wrap its output in the kernel's PKCS#7 profile.

use super::{DigestAlgorithm, PublicKey};

/// What to sign. Both the message and its digest are given: most HSM and
/// KMS APIs sign a digest ("prehashed"), some commands want the message.
#[derive(Debug)]
pub struct SignRequest<'a> {
    /// The exact bytes covered by the signature (for fs-verity: the
    /// formatted digest, `"FSVerity" | alg | size | digest`).
    pub message: &'a [u8],
    /// The digest algorithm the PKCS#7 SignerInfo will name.
    pub digest_algorithm: DigestAlgorithm,
    /// `digest_algorithm` applied to `message`.
    pub digest: &'a [u8],
}

impl<'a> SignRequest<'a> {
    /// Hashes `message` into `digest_storage` and builds the request.
    pub fn new(
        message: &'a [u8],
        digest_algorithm: DigestAlgorithm,
        digest_storage: &'a mut Vec<u8>,
    ) -> Self {
        *digest_storage = digest_algorithm.digest(message);
        SignRequest {
            message,
            digest_algorithm,
            digest: digest_storage,
        }
    }
}

/// Produces signatures in the form PKCS#7 carries them:
/// - RSA: RSASSA-PKCS1-v1_5 (RFC 8017 8.2.1) over the DigestInfo of
///   `digest_algorithm`, as many bytes as the modulus;
/// - ECDSA: a DER `Ecdsa-Sig-Value` (RFC 5480 / X9.62).
///
/// The caller checks every signature against the signer certificate's
/// public key before using it, so a signer with the wrong key or a faulty
/// backend is caught at signing time, not at boot.
pub trait Signer {
    /// Signs `request`: returns the raw signature value (PKCS#1 v1.5 or DER
    /// ECDSA) over `request.message`.
    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, SignerError>;

    /// Signs several requests: one result per request, in order, each the
    /// bytes [`Signer::sign`] gives for it. The default signs them one by
    /// one; an in-process P-256 key shares its costly inversions across
    /// the batch (`crypto::p256_fixed_base`).
    fn sign_batch(&self, requests: &[SignRequest<'_>]) -> Vec<Result<Vec<u8>, SignerError>> {
        requests.iter().map(|r| self.sign(r)).collect()
    }

    /// How many requests [`Signer::sign_batch`] is best given at a time
    /// (1: no gain from batching).
    fn batch_size(&self) -> usize {
        1
    }

    /// For messages: "RSA-2048 key /path/key.pem", "command 'kms-sign ...'".
    fn description(&self) -> String;

    /// The public key, if the signer knows it (an in-process key does);
    /// used to refuse a key/certificate mismatch before signing.
    fn public_key(&self) -> Option<PublicKey> {
        None
    }
}

/// A signer failed.
#[derive(Debug, thiserror::Error)]
#[error("{signer}: {reason}")]
pub struct SignerError {
    /// The signer (key file or command).
    pub signer: String,
    /// What went wrong.
    pub reason: String,
}

impl SignerError {
    /// An error of `signer`.
    pub fn new(signer: impl Into<String>, reason: impl Into<String>) -> Self {
        SignerError {
            signer: signer.into(),
            reason: reason.into(),
        }
    }
}
