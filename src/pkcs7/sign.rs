//! Creating fs-verity builtin signatures: DER PKCS#7 SignedData, detached,
//! over the formatted digest, in exactly the shape `fsverity sign`
//! (fsverity-utils 1.5, OpenSSL `PKCS7_sign()` with `PKCS7_BINARY |
//! PKCS7_DETACHED | PKCS7_NOATTR | PKCS7_NOCERTS | PKCS7_PARTIAL`, then
//! `PKCS7_sign_add_signer()` with the fs-verity hash) writes:
//!
//! ```text
//! ContentInfo { signedData, [0] SignedData {
//!   version 1, digestAlgorithms { <hash, NULL> }, { id-data } (no content),
//!   [certificates only with --embed-cert],
//!   signerInfos { { version 1, issuerAndSerialNumber, <hash, NULL>,
//!                   rsaEncryption NULL | ecdsa-with-<hash>, signature } } } }
//! ```
//!
//! RSA PKCS#1 v1.5 is deterministic, so for RSA keys the output is byte for
//! byte what `fsverity sign` produces. ECDSA uses RFC 6979 nonces: also
//! reproducible, but not equal to OpenSSL's randomized signatures.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::Encode;
use der::asn1::{Any, OctetString, SetOfVec};
use spki::AlgorithmIdentifierOwned;

use crate::crypto::algorithm::oid;
use crate::crypto::{
    Cert, CertInfo, DigestAlgorithm, KeyAlgorithm, SignRequest, SignatureAlgorithm, Signer,
    SignerError,
};
use crate::verity::{FormattedDigest, FsVerityDigest};

use super::verify::{VerifyError, verify};

/// What goes into the message besides the signature.
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// Embed the signer certificate, so that the keyring (or `--cert` of
    /// `sealroot verify`) need only hold the CA that issued it.
    pub embed_signer_cert: bool,
    /// Further certificates to embed: intermediate CAs between the signer
    /// and the trusted CA.
    pub extra_certs: Vec<Cert>,
}

#[derive(Debug, thiserror::Error)]
/// Why a signature could not be made.
pub enum SignError {
    /// The signer (key or command) failed.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The key does not belong to the certificate.
    #[error(
        "{signer} does not belong to the certificate {cert}: their public keys differ; \
         pass the key the certificate was issued for"
    )]
    KeyCertMismatch {
        /// The signer.
        signer: String,
        /// The certificate.
        cert: Box<CertInfo>,
    },
    /// The certificate's keyUsage forbids signing.
    #[error("{cert} may not sign data: its keyUsage lacks digitalSignature")]
    CertCannotSign {
        /// The certificate.
        cert: Box<CertInfo>,
    },
    /// The signer returned a signature that does not verify.
    #[error(
        "{signer} produced a signature that does not verify with {cert}: {reason}; \
         is it the key for this certificate?"
    )]
    BadSignature {
        /// The signer.
        signer: String,
        /// The certificate.
        cert: Box<CertInfo>,
        /// Why it does not verify.
        reason: String,
    },
    /// DER encoding failed.
    #[error("cannot encode the PKCS#7 message: {0}")]
    Encode(der::Error),
    /// The new message fails sealroot's own verification.
    #[error("the new signature does not pass sealroot's own verification: {0}")]
    SelfCheck(VerifyError),
}

// Not `#[from]`: that would make the cause a `source` as well, and the
// message already names it (printed once, see `verity::ioctl::Error`).
impl From<der::Error> for SignError {
    fn from(error: der::Error) -> Self {
        SignError::Encode(error)
    }
}

/// Signs an fs-verity digest the way `fsverity sign` does: the PKCS#7
/// digest algorithm is the fs-verity hash algorithm.
pub fn sign_fsverity(
    digest: &FsVerityDigest,
    signer: &dyn Signer,
    cert: &Cert,
    options: &SignOptions,
) -> Result<Vec<u8>, SignError> {
    let content = FormattedDigest::new(*digest).to_bytes();
    sign(
        &content,
        DigestAlgorithm::for_fsverity(digest.algorithm()),
        signer,
        cert,
        options,
    )
}

/// Signs detached `content` with `signer`, whose certificate is `cert`.
pub fn sign(
    content: &[u8],
    digest_algorithm: DigestAlgorithm,
    signer: &dyn Signer,
    cert: &Cert,
    options: &SignOptions,
) -> Result<Vec<u8>, SignError> {
    sign_message(content, false, digest_algorithm, signer, cert, options)
}

/// Signs `content` and carries it inside the message (eContent), the shape
/// IPE takes for a policy: what `openssl smime -sign -noattr -nodetach
/// -nosmimecap -binary -outform der` writes (with `embed_signer_cert`, as
/// openssl embeds the signer certificate unless told `-nocerts`).
pub fn sign_attached(
    content: &[u8],
    digest_algorithm: DigestAlgorithm,
    signer: &dyn Signer,
    cert: &Cert,
    options: &SignOptions,
) -> Result<Vec<u8>, SignError> {
    sign_message(content, true, digest_algorithm, signer, cert, options)
}

fn sign_message(
    content: &[u8],
    attach: bool,
    digest_algorithm: DigestAlgorithm,
    signer: &dyn Signer,
    cert: &Cert,
    options: &SignOptions,
) -> Result<Vec<u8>, SignError> {
    if let Some(key) = signer.public_key()
        && &key != cert.public_key()
    {
        return Err(SignError::KeyCertMismatch {
            signer: signer.description(),
            cert: Box::new(cert.info()),
        });
    }
    if !cert.can_sign_data() {
        return Err(SignError::CertCannotSign {
            cert: Box::new(cert.info()),
        });
    }
    let algorithm = SignatureAlgorithm::for_key(cert.key_algorithm(), digest_algorithm);
    let mut digest = Vec::new();
    let request = SignRequest::new(content, digest_algorithm, &mut digest);
    let signature = signer.sign(&request)?;
    cert.public_key()
        .verify_prehash(algorithm, request.digest, &signature)
        .map_err(|e| SignError::BadSignature {
            signer: signer.description(),
            cert: Box::new(cert.info()),
            reason: e.to_string(),
        })?;

    let signature_algorithm = match cert.key_algorithm() {
        // OpenSSL writes rsaEncryption with NULL parameters; the kernel
        // accepts no other RSA OID here.
        KeyAlgorithm::Rsa { .. } => AlgorithmIdentifierOwned {
            oid: oid::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => AlgorithmIdentifierOwned {
            oid: SignatureAlgorithm::ecdsa_oid(digest_algorithm),
            parameters: None,
        },
    };
    let tbs = &cert.certificate().tbs_certificate;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_alg: digest_algorithm.identifier(),
        signed_attrs: None,
        signature_algorithm,
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let mut embedded: Vec<&Cert> = Vec::new();
    if options.embed_signer_cert {
        embedded.push(cert);
    }
    embedded.extend(options.extra_certs.iter().filter(|c| *c != cert));
    let certificates = if embedded.is_empty() {
        None
    } else {
        let choices: Vec<_> = embedded
            .iter()
            .map(|c| CertificateChoices::Certificate(c.certificate().clone()))
            .collect();
        Some(CertificateSet(SetOfVec::try_from(choices)?))
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_algorithm.identifier()])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::ID_DATA,
            econtent: if attach {
                Some(Any::encode_from(&OctetString::new(content)?)?)
            } else {
                None
            },
        },
        certificates,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    let message = ContentInfo {
        content_type: oid::ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    }
    .to_der()?;
    // The message must pass our own verifier with the signer's certificate
    // trusted; anything else is a bug worth stopping for.
    if attach {
        let (_, carried) = super::verify::verify_attached(&message, std::slice::from_ref(cert))
            .map_err(SignError::SelfCheck)?;
        if carried != content {
            return Err(SignError::SelfCheck(VerifyError::Profile(
                super::ProfileError::Malformed("the carried content differs".into()),
            )));
        }
    } else {
        verify(&message, content, std::slice::from_ref(cert)).map_err(SignError::SelfCheck)?;
    }
    Ok(message)
}
