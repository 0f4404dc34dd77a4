//! Keys and certificates: loading (PEM or DER; PKCS#8, PKCS#1, SEC1,
//! X.509), fingerprints, certificate chain checks, and the policy of what
//! the kernel's asymmetric-key code can use ([`algorithm`]).
//!
//! One file per structure: [`algorithm`] (digests, signature algorithms,
//! public keys), [`builder`] (issuing certificates, host only), [`cert`] (X.509 certificates), [`key`] (private keys,
//! host only), [`names`] (distinguished names and OID names for messages), [`p256_fixed_base`] (fast P-256 signing, host only), [`signer`] (the signing abstraction, host only), [`pem`]
//! (finding PEM blocks).

pub mod algorithm;
#[cfg(feature = "host")]
pub mod builder;
pub mod cert;
#[cfg(feature = "host")]
pub mod command;
#[cfg(feature = "host")]
pub mod key;
pub mod names;
#[cfg(feature = "host")]
pub mod p256_fixed_base;
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
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// Bytes that are not the key or certificate expected.
    #[error("{origin}: {detail}")]
    Malformed {
        /// Where the bytes came from.
        origin: String,
        /// What is wrong.
        detail: String,
    },
    /// A key or algorithm the kernel cannot use.
    #[error("{origin}: {reason}")]
    Unsupported {
        /// Where it came from.
        origin: String,
        /// What is unsupported.
        reason: Unsupported,
    },
    /// A file or directory without certificates.
    #[error("{origin}: no certificate found (expected PEM 'CERTIFICATE' blocks or DER X.509)")]
    NoCertificates {
        /// The file or directory.
        origin: String,
    },
    /// A private key that does not belong to the certificate.
    #[error(
        "the private key {key} does not belong to the certificate {cert} ({subject}): \
         their public keys differ; pass the key the certificate was issued for"
    )]
    KeyCertMismatch {
        /// The key's origin.
        key: String,
        /// The certificate's origin.
        cert: String,
        /// The certificate's subject.
        subject: String,
    },
    /// An issuer that may not issue certificates.
    #[error(
        "certificate {issuer} cannot vouch for {subject}: it is not a CA certificate \
         ({why}); issue {subject} from a CA (basicConstraints cA=TRUE, keyUsage keyCertSign)"
    )]
    NotACa {
        /// The issuer.
        issuer: String,
        /// The certificate it issued.
        subject: String,
        /// Which constraint it lacks.
        why: &'static str,
    },
    /// A certificate whose signature does not verify with its issuer's key.
    #[error("the signature on certificate {subject} by {issuer} {reason}")]
    CertSignature {
        /// The certificate.
        subject: String,
        /// Its issuer.
        issuer: String,
        /// How it fails.
        reason: SignatureError,
    },
    /// Key or certificate generation failed.
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
