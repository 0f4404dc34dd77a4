//! Verifying a detached PKCS#7 signature against trusted certificates, the
//! way the kernel does for fs-verity (`pkcs7_verify()` then
//! `pkcs7_validate_trust()`), so that `sealroot verify` and the initramfs
//! can predict — or stand in for — the kernel's decision.
//!
//! The steps, after [`profile::parse`]:
//! 1. Digest the content; with signed attributes, check messageDigest and
//!    digest the attributes instead (`pkcs7_digest()`).
//! 2. If a certificate in the message has the signer's issuer and serial,
//!    verify the signature with it and walk the embedded chain upwards by
//!    authorityKeyIdentifier, verifying each link (`pkcs7_verify_one()`,
//!    `pkcs7_verify_sig_chain()`).
//! 3. Find trust (`pkcs7_validate_trust_one()`): the first certificate of
//!    that chain that is also trusted (same issuer+serial and
//!    subjectKeyIdentifier) must verify the signature below it with the
//!    *trusted* copy's key; else a trusted certificate named by the top of
//!    the chain's authorityKeyIdentifier must verify the top; else a trusted
//!    certificate matching the SignerInfo itself must verify the message.
//!    A self-signed certificate that is not trusted ends the search.
//!
//! sealroot is stricter than the kernel in two places (RFC 5280): a key
//! that vouches for a certificate must belong to a CA (basicConstraints
//! cA=TRUE, keyCertSign if keyUsage is present), and the key that signs the
//! content must not have a keyUsage without digitalSignature (both proven
//! on Linux 6.12 in `tests/vm_trust`: the kernel accepts such signatures,
//! and a leaf certificate in `.fs-verity` can vouch for an embedded signer
//! even when the keyring is sealed with `--ca`). Like the
//! kernel, it ignores validity periods (the clock is not trustworthy at
//! boot) except that a signingTime attribute must fall inside the signer
//! certificate's validity.

use crate::crypto::{Cert, CertInfo, DigestAlgorithm, SignatureAlgorithm, SignatureError};
use crate::verity::{FormattedDigest, FsVerityDigest};

use super::profile::{self, ProfileError, SignedMessage, SignerId};

/// A successful verification: who signed, and which trusted certificate
/// that trust comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// The trusted certificate the decision rests on.
    pub trusted: CertInfo,
    /// The certificate whose key made the signature (the trusted one
    /// itself, or one embedded in the message).
    pub signer: CertInfo,
    /// Embedded certificates from the signer up to (excluding) the trusted
    /// one.
    pub chain: Vec<CertInfo>,
    /// The digest algorithm of the signature.
    pub digest_algorithm: DigestAlgorithm,
    /// The signature algorithm.
    pub signature_algorithm: SignatureAlgorithm,
    /// The public key that verified the message's signature (of
    /// `signer`): what checks other signatures by the same signer (the
    /// per-object signatures of a bundle share one signer and chain).
    #[serde(skip)]
    pub signer_key: crate::crypto::PublicKey,
}

/// Why a signature was refused. Each variant names its evidence.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The message breaks the kernel's profile.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// No trusted or embedded certificate is the signer.
    #[error(
        "unknown signer: no trusted certificate matches the signer ({signer}); \
         trust its certificate (or its CA, if the signature embeds the signer certificate)"
    )]
    UnknownSigner {
        /// The SignerInfo's signer identifier.
        signer: String,
    },
    /// The embedded chain ends in an untrusted self-signed certificate.
    #[error(
        "the chain ends in a self-signed certificate that is not trusted: {cert}; \
         trust that certificate or re-sign with a trusted key"
    )]
    UntrustedRoot {
        /// The self-signed certificate.
        cert: Box<CertInfo>,
    },
    /// The signature value does not verify with the signer's key.
    #[error("signature mismatch: the signature {reason} of {cert}")]
    SignatureMismatch {
        /// The signer's certificate.
        cert: Box<CertInfo>,
        /// How it fails.
        reason: SignatureError,
    },
    /// The signature is over another digest than the content's.
    #[error(
        "digest mismatch: {signer} signed {algorithm} {signed}, but the content hashes to \
         {expected} (the signature is for other content, e.g. another file or other \
         fs-verity parameters)"
    )]
    DigestMismatch {
        /// The signing certificate, or "the signer" with signed attributes.
        signer: String,
        /// The digest algorithm.
        algorithm: DigestAlgorithm,
        /// The content's digest (hex).
        expected: String,
        /// The digest that was signed (hex).
        signed: String,
    },
    /// An embedded certificate in the chain is unusable.
    #[error(transparent)]
    Chain(#[from] crate::crypto::Error),
    /// The signer's keyUsage forbids signing.
    #[error("{cert} may not sign data: its keyUsage lacks digitalSignature (RFC 5280 4.2.1.3)")]
    SignerKeyUsage {
        /// The signer's certificate.
        cert: Box<CertInfo>,
    },
    /// signingTime outside the signer certificate's validity.
    #[error(
        "signingTime {time} is outside the validity of the signer certificate {cert} \
         (the kernel refuses this with EKEYREJECTED)"
    )]
    SigningTime {
        /// signingTime, seconds since the epoch.
        time: u64,
        /// The signer's certificate.
        cert: Box<CertInfo>,
    },
}

/// Verifies a DER PKCS#7 `signature` over detached `content` against
/// `trusted` certificates.
pub fn verify(signature: &[u8], content: &[u8], trusted: &[Cert]) -> Result<Verified, VerifyError> {
    let msg = profile::parse(signature)?;
    verify_message(&msg, content, trusted)
}

/// Verifies a DER PKCS#7 message with attached content (an IPE policy)
/// against `trusted` certificates; returns the verdict and the content.
pub fn verify_attached(
    signature: &[u8],
    trusted: &[Cert],
) -> Result<(Verified, Vec<u8>), VerifyError> {
    let (msg, content) = profile::parse_attached(signature)?;
    let verified = verify_message(&msg, &content, trusted)?;
    Ok((verified, content))
}

/// Verifies an fs-verity builtin signature for a file digest: the content
/// is the formatted digest (`"FSVerity" | alg | size | digest`).
pub fn verify_fsverity(
    signature: &[u8],
    digest: &FsVerityDigest,
    trusted: &[Cert],
) -> Result<Verified, VerifyError> {
    verify(
        signature,
        &FormattedDigest::new(*digest).to_bytes(),
        trusted,
    )
}

/// Step 1 to 3 on an already parsed message.
pub fn verify_message(
    msg: &SignedMessage,
    content: &[u8],
    trusted: &[Cert],
) -> Result<Verified, VerifyError> {
    let alg = msg.signature_algorithm;
    let digest_alg = msg.digest_algorithm;
    let content_hash = digest_alg.digest(content);
    let signed_hash = match &msg.signed_attributes {
        Some(attrs) => {
            if attrs.message_digest != content_hash {
                return Err(VerifyError::DigestMismatch {
                    signer: "the signer (messageDigest attribute)".into(),
                    algorithm: digest_alg,
                    expected: hex::encode(&content_hash),
                    signed: hex::encode(&attrs.message_digest),
                });
            }
            digest_alg.digest(&attrs.signed_bytes)
        }
        None => content_hash,
    };
    let check_message = |cert: &Cert| -> Result<(), VerifyError> {
        if !cert.can_sign_data() {
            return Err(VerifyError::SignerKeyUsage {
                cert: Box::new(cert.info()),
            });
        }
        cert.public_key()
            .verify_prehash(alg, &signed_hash, &msg.signature)
            .map_err(|reason| mismatch(cert, reason))
    };

    // Step 2: the embedded signer and its embedded chain.
    let certs = &msg.certificates;
    let mut chain: Vec<&Cert> = Vec::new();
    if let SignerId::IssuerSerial {
        issuer_der, serial, ..
    } = &msg.signer
        && let Some(signer) = certs
            .iter()
            .find(|c| c.has_issuer_serial(issuer_der, serial))
    {
        if let Some(time) = msg.signed_attributes.as_ref().and_then(|a| a.signing_time) {
            let v = &signer.certificate().tbs_certificate.validity;
            let from = v.not_before.to_unix_duration().as_secs();
            let to = v.not_after.to_unix_duration().as_secs();
            if time < from || time > to {
                return Err(VerifyError::SigningTime {
                    time,
                    cert: Box::new(signer.info()),
                });
            }
        }
        check_message(signer)?;
        chain = embedded_chain(signer, certs)?;
    }

    // Step 3: trust. `below` is the signature the next trusted match must
    // verify: the message's, then each certificate's own.
    for (i, cert) in chain.iter().enumerate() {
        let matches = find_trusted(
            trusted,
            Some((&cert.issuer_der(), cert.serial())),
            cert.subject_key_id(),
        );
        if !matches.is_empty() {
            let verified = first_ok(&matches, |anchor| match i {
                0 => check_message(anchor),
                _ => chain[i - 1]
                    .verify_issued_by(anchor)
                    .map_err(VerifyError::from),
            })?;
            let signer = if i == 0 { verified } else { chain[0] };
            return Ok(report(msg, verified, &chain[..i], signer));
        }
        if is_root(cert) {
            return Err(VerifyError::UntrustedRoot {
                cert: Box::new(cert.info()),
            });
        }
    }
    if let Some(top) = chain.last() {
        let akid_serial = top.authority_issuer_serial();
        let akid = top.authority_key_id();
        if akid_serial.is_some() || akid.is_some() {
            let matches = find_trusted(trusted, akid_serial, akid);
            if !matches.is_empty() {
                let verified = first_ok(&matches, |anchor| {
                    top.verify_issued_by(anchor).map_err(VerifyError::from)
                })?;
                return Ok(report(msg, verified, &chain, chain[0]));
            }
        }
    }
    // Last resort: a trusted certificate named by the SignerInfo itself.
    let matches = match &msg.signer {
        SignerId::IssuerSerial {
            issuer_der, serial, ..
        } => find_trusted(trusted, Some((issuer_der, serial)), None),
        SignerId::SubjectKeyId(skid) => find_trusted(trusted, None, Some(skid)),
    };
    if !matches.is_empty() {
        let verified = first_ok(&matches, check_message)?;
        return Ok(report(msg, verified, &[], verified));
    }
    Err(VerifyError::UnknownSigner {
        signer: msg.signer.to_string(),
    })
}

/// The embedded certificates from `signer` upwards, following
/// authorityKeyIdentifier and verifying each link, until a self-signed
/// certificate, a missing issuer, or a loop (`pkcs7_verify_sig_chain`).
fn embedded_chain<'a>(signer: &'a Cert, certs: &'a [Cert]) -> Result<Vec<&'a Cert>, VerifyError> {
    let mut chain = vec![signer];
    let mut current = signer;
    loop {
        if is_root(current) {
            return Ok(chain);
        }
        let issuer = if let Some((issuer_der, serial)) = current.authority_issuer_serial() {
            let found = certs
                .iter()
                .find(|c| c.has_issuer_serial(issuer_der, serial));
            if let Some(p) = found
                && current.authority_key_id().is_some()
                && p.subject_key_id() != current.authority_key_id()
            {
                return Err(VerifyError::Profile(ProfileError::Malformed(format!(
                    "embedded chain: {} names its issuer by serial and by key id, and they \
                     disagree",
                    current.info()
                ))));
            }
            found
        } else if let Some(akid) = current.authority_key_id() {
            certs.iter().find(|c| c.subject_key_id() == Some(akid))
        } else {
            None
        };
        let Some(issuer) = issuer else {
            return Ok(chain);
        };
        if chain.contains(&issuer) {
            // A loop: stop here, as the kernel does.
            return Ok(chain);
        }
        current.verify_issued_by(issuer)?;
        chain.push(issuer);
        current = issuer;
    }
}

/// Self-signed in the kernel's sense, with a signature that verifies.
fn is_root(cert: &Cert) -> bool {
    cert.is_self_signed().unwrap_or(false)
}

/// Trusted certificates matching an issuer+serial and/or a key id, as
/// `find_asymmetric_key()`: the first id selects, the second (if given)
/// must also match.
fn find_trusted<'a>(
    trusted: &'a [Cert],
    issuer_serial: Option<(&[u8], &[u8])>,
    key_id: Option<&[u8]>,
) -> Vec<&'a Cert> {
    trusted
        .iter()
        .filter(|t| match (issuer_serial, key_id) {
            (Some((issuer, serial)), key_id) => {
                t.has_issuer_serial(issuer, serial)
                    && (key_id.is_none() || t.subject_key_id() == key_id)
            }
            (None, Some(key_id)) => t.subject_key_id() == Some(key_id),
            (None, None) => false,
        })
        .collect()
}

/// Tries each candidate; returns the first that passes, or the first error.
fn first_ok<'a>(
    candidates: &[&'a Cert],
    check: impl Fn(&'a Cert) -> Result<(), VerifyError>,
) -> Result<&'a Cert, VerifyError> {
    let mut first_err = None;
    for c in candidates {
        match check(c) {
            Ok(()) => return Ok(c),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| VerifyError::UnknownSigner {
        signer: String::new(),
    }))
}

fn mismatch(cert: &Cert, reason: SignatureError) -> VerifyError {
    match reason {
        SignatureError::DigestMismatch {
            algorithm,
            signed,
            expected,
        } => VerifyError::DigestMismatch {
            signer: cert.info().to_string(),
            algorithm,
            expected,
            signed,
        },
        reason => VerifyError::SignatureMismatch {
            cert: Box::new(cert.info()),
            reason,
        },
    }
}

fn report(msg: &SignedMessage, trusted: &Cert, chain: &[&Cert], signer: &Cert) -> Verified {
    Verified {
        trusted: trusted.info(),
        signer: signer.info(),
        chain: chain.iter().map(|c| c.info()).collect(),
        digest_algorithm: msg.digest_algorithm,
        signature_algorithm: msg.signature_algorithm,
        signer_key: signer.public_key().clone(),
    }
}
