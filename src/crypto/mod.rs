//! Keys and certificates: loading (PEM or DER; PKCS#8, PKCS#1, SEC1,
//! X.509), fingerprints, certificate chain checks, and the policy of what
//! the kernel's asymmetric-key code can use ([`algorithm`]).
//!
//! One file per structure: [`algorithm`] (digests, signature algorithms,
//! public keys), [`builder`] (issuing certificates, host only), [`cert`] (X.509 certificates), [`key`] (private keys,
//! host only), [`signer`] (the signing abstraction, host only), [`pem`]
//! (finding PEM blocks).

pub mod algorithm;
#[cfg(feature = "host")]
pub mod builder;
pub mod cert;
#[cfg(feature = "host")]
pub mod command;
#[cfg(feature = "host")]
pub mod key;
pub mod pem;
#[cfg(feature = "host")]
pub mod signer;

pub use algorithm::{
    DigestAlgorithm, Fingerprint, KeyAlgorithm, PublicKey, SignatureAlgorithm, SignatureError,
    Unsupported,
};
pub use cert::{Cert, CertInfo};
#[cfg(feature = "host")]
pub use key::PrivateKey;
#[cfg(feature = "host")]
pub use signer::{SignRequest, Signer, SignerError};

use std::path::PathBuf;

/// Errors loading or checking keys and certificates. `origin` names the
/// file (or "certificate #2 embedded in the signature", ...) so every
/// message says where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{origin}: {detail}")]
    Malformed { origin: String, detail: String },
    #[error("{origin}: {reason}")]
    Unsupported { origin: String, reason: Unsupported },
    #[error("{origin}: no certificate found (expected PEM 'CERTIFICATE' blocks or DER X.509)")]
    NoCertificates { origin: String },
    #[error(
        "the private key {key} does not belong to the certificate {cert} ({subject}): \
         their public keys differ; pass the key the certificate was issued for"
    )]
    KeyCertMismatch {
        key: String,
        cert: String,
        subject: String,
    },
    #[error(
        "certificate {issuer} cannot vouch for {subject}: it is not a CA certificate \
         ({why}); issue {subject} from a CA (basicConstraints cA=TRUE, keyUsage keyCertSign)"
    )]
    NotACa {
        issuer: String,
        subject: String,
        why: &'static str,
    },
    #[error("the signature on certificate {subject} by {issuer} {reason}")]
    CertSignature {
        subject: String,
        issuer: String,
        reason: SignatureError,
    },
    #[error("{0}")]
    Generate(String),
}

impl Error {
    pub(crate) fn malformed(origin: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Error::Malformed {
            origin: origin.into(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn read(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Read {
            path: path.to_owned(),
            error: source,
        }
    }
}
