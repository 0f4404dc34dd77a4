//! A signed IPE policy as the kernel takes it: DER PKCS#7 SignedData with
//! the policy text attached (`security/ipe/policy.c`, `ipe_new_policy()`:
//! `verify_pkcs7_signature()` without detached data, against the secondary
//! trusted keyring and then the platform keyring). Parsed here without
//! trusting it: the kernel decides whether the signer is trusted; sealroot
//! reads the policy's name and version (to find `policies/<name>` and to
//! report them) and who signed it.

use crate::pkcs7::{ProfileError, SignedMessage, SignerId, profile};

use super::policy::{Policy, PolicyError};

/// Larger than any sensible policy; the kernel copies the whole write
/// (`memdup_user_nul`) into memory.
pub const MAX_SIGNED_POLICY: usize = 1 << 20;

/// Who signed a policy, as the message names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicySigner {
    /// The signer's issuer (RFC 4514) and serial (hex), or its
    /// subjectKeyIdentifier (hex).
    pub id: String,
    /// Subject of the signer certificate, when the message embeds it.
    pub subject: Option<String>,
    /// sha256 fingerprint of that certificate (`sha256:<hex>`).
    pub fingerprint: Option<String>,
}

/// A parsed signed policy.
#[derive(Debug, Clone)]
pub struct SignedPolicy {
    /// The PKCS#7 bytes, to be written to `new_policy` as they are.
    pub der: Vec<u8>,
    /// The attached policy text.
    pub text: Vec<u8>,
    /// The attached text, parsed.
    pub policy: Policy,
    /// Who signed it, for messages.
    pub signer: PolicySigner,
    /// The PKCS#7 message, checked against the kernel's profile.
    pub message: SignedMessage,
}

/// Why a file is not a signed IPE policy.
#[derive(Debug, thiserror::Error)]
pub enum SignedPolicyError {
    /// Larger than a policy may be (the size in bytes).
    #[error("{0} bytes: larger than the {MAX_SIGNED_POLICY} bytes a policy may have")]
    TooLarge(usize),
    /// Not a PKCS#7 message with the policy attached.
    #[error(
        "not a signed IPE policy (DER PKCS#7 with the policy attached, as `sealroot ipe \
         sign` or `openssl smime -sign -nodetach -binary -outform der` write it): {0}"
    )]
    Pkcs7(ProfileError),
    /// The attached text is not a valid policy.
    #[error("the signed text is not a valid IPE policy: {0}")]
    Policy(PolicyError),
}

impl SignedPolicy {
    /// Parses a signed policy (untrusted bytes: never panics).
    pub fn parse(der: &[u8]) -> Result<SignedPolicy, SignedPolicyError> {
        if der.len() > MAX_SIGNED_POLICY {
            return Err(SignedPolicyError::TooLarge(der.len()));
        }
        let (message, text) = profile::parse_attached(der).map_err(SignedPolicyError::Pkcs7)?;
        let policy = Policy::parse(&text).map_err(SignedPolicyError::Policy)?;
        let embedded = match &message.signer {
            SignerId::IssuerSerial {
                issuer_der, serial, ..
            } => message
                .certificates
                .iter()
                .find(|c| c.has_issuer_serial(issuer_der, serial)),
            SignerId::SubjectKeyId(skid) => message
                .certificates
                .iter()
                .find(|c| c.subject_key_id() == Some(skid.as_slice())),
        };
        let signer = PolicySigner {
            id: message.signer.to_string(),
            subject: embedded.map(|c| c.subject()),
            fingerprint: embedded.map(|c| format!("sha256:{}", c.fingerprint().to_hex())),
        };
        Ok(SignedPolicy {
            der: der.to_vec(),
            text,
            policy,
            signer,
            message,
        })
    }

    /// "CN=... (issuer ..., serial ...)" for messages.
    pub fn signer_description(&self) -> String {
        match &self.signer.subject {
            Some(s) => format!("'{s}' ({})", self.signer.id),
            None => self.signer.id.clone(),
        }
    }
}
