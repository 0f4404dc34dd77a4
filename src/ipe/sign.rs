//! Signing an IPE policy for the kernel (host only).

use crate::crypto::{Cert, DigestAlgorithm, Signer};
use crate::pkcs7::{SignError, SignOptions, sign_attached};

use super::policy::{Policy, PolicyError};

/// Why `sealroot ipe sign` refuses or fails.
#[derive(Debug, thiserror::Error)]
pub enum PolicySignError {
    /// The text is not a policy the kernel would accept.
    #[error("refusing to sign: {0}")]
    Policy(PolicyError),
    /// Signing failed (key, certificate, signer command).
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Checks `text` with the kernel's grammar, then signs it: DER PKCS#7,
/// SHA-256, the text attached, no signed attributes, the signer
/// certificate embedded unless `embed_cert` is false — byte for byte what
/// `openssl smime -sign -noattr -nodetach -nosmimecap -binary -outform der`
/// writes for an RSA key (ECDSA signatures differ: RFC 6979 here, random
/// nonces there).
pub fn sign_policy(
    text: &[u8],
    signer: &dyn Signer,
    cert: &Cert,
    embed_cert: bool,
) -> Result<(Policy, Vec<u8>), PolicySignError> {
    let policy = Policy::parse(text).map_err(PolicySignError::Policy)?;
    let options = SignOptions {
        embed_signer_cert: embed_cert,
        extra_certs: Vec::new(),
    };
    let der = sign_attached(text, DigestAlgorithm::Sha256, signer, cert, &options)?;
    Ok((policy, der))
}
