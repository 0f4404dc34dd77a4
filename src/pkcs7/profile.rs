//! The PKCS#7 profile the kernel accepts for fs-verity builtin signatures,
//! and a parser that checks a message against it.
//!
//! The kernel path is `fs/verity/signature.c` -> `verify_pkcs7_signature()`
//! (`certs/system_keyring.c`) with `VERIFYING_UNSPECIFIED_SIGNATURE`, over
//! `crypto/asymmetric_keys/pkcs7_{parser,verify,trust}.c`. In Linux 6.12:
//!
//! - ContentInfo must be `signedData`; SignedData version 1 or 3.
//! - eContentType must be `id-data` (else EKEYREJECTED); the content must be
//!   detached: fs-verity supplies it, and attached data fails with EBADMSG.
//! - SignerInfo version 1 identifies the signer by issuerAndSerialNumber
//!   (SignedData must then be version 1), version 3 by
//!   subjectKeyIdentifier (SignedData must not be version 1).
//! - digestAlgorithm: sha1, sha224, sha256, sha384, sha512, sha3-*, sm3,
//!   streebog (`pkcs7_sig_note_digest_algo`). sealroot accepts
//!   sha256/384/512.
//! - signatureAlgorithm: `rsaEncryption` (PKCS#1 v1.5 with the digest from
//!   digestAlgorithm) or `ecdsa-with-*` (`pkcs7_sig_note_pkey_algo`). Note:
//!   `sha256WithRSAEncryption` and RSA-PSS are NOT accepted there (ENOPKG).
//!   For ECDSA the kernel hashes with digestAlgorithm whatever the OID says;
//!   sealroot requires the two to agree.
//! - Signed attributes are optional for this usage; when present they must
//!   hold exactly one contentType (= the data type) and one messageDigest,
//!   no S/MIME capabilities or Authenticode attributes, and at most one
//!   signingTime, which must fall in the signer certificate's validity.
//! - Embedded certificates are parsed like keyring certificates; one the
//!   kernel cannot parse fails the whole message.
//!
//! Beyond the kernel, sealroot requires exactly one SignerInfo (the kernel
//! verifies every signer and trusts the message if any is trusted),
//! canonical DER (the kernel takes BER; `fsverity sign`, openssl and
//! sealroot all write DER), and no revocation lists (the kernel skips
//! them unread; no fs-verity or IPE signing tool writes them).

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    DigestAlgorithmIdentifiers, EncapsulatedContentInfo, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{AnyRef, SetOfVec};
use der::{Decode, Encode, Sequence, Tag, Tagged};

use crate::crypto::algorithm::{oid, oid_name};
use crate::crypto::{self, Cert, DigestAlgorithm, SignatureAlgorithm, Unsupported};

/// The signer named by a SignerInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerId {
    /// By issuer and serial number (what `fsverity sign` writes).
    IssuerSerial {
        /// DER of the issuer Name.
        issuer_der: Vec<u8>,
        /// RFC 4514 form, for messages.
        issuer: String,
        /// The serial number, big-endian bytes.
        serial: Vec<u8>,
    },
    /// By subjectKeyIdentifier.
    SubjectKeyId(Vec<u8>),
}

impl std::fmt::Display for SignerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerId::IssuerSerial { issuer, serial, .. } => {
                write!(f, "issuer '{issuer}', serial {}", hex::encode(serial))
            }
            SignerId::SubjectKeyId(id) => write!(f, "subjectKeyIdentifier {}", hex::encode(id)),
        }
    }
}

/// Signed attributes, when a signer used them.
#[derive(Debug, Clone)]
pub struct SignedAttributes {
    /// The messageDigest attribute.
    pub message_digest: Vec<u8>,
    /// signingTime, seconds since the epoch.
    pub signing_time: Option<u64>,
    /// The bytes the signature covers: the attributes as a DER SET
    /// (RFC 5652 5.4; `pkcs7_digest()` re-tags the [0] as SET).
    pub signed_bytes: Vec<u8>,
}

/// A PKCS#7 message that passed the profile checks.
#[derive(Debug, Clone)]
pub struct SignedMessage {
    /// The SignerInfo's digest algorithm.
    pub digest_algorithm: DigestAlgorithm,
    /// The SignerInfo's signature algorithm.
    pub signature_algorithm: SignatureAlgorithm,
    /// Who the SignerInfo says signed.
    pub signer: SignerId,
    /// The signed attributes, if any.
    pub signed_attributes: Option<SignedAttributes>,
    /// The signature value.
    pub signature: Vec<u8>,
    /// Certificates embedded in the message, in message order.
    pub certificates: Vec<Cert>,
}

/// How a message departs from the profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Not DER PKCS#7 at all (the decoder's reason).
    #[error("not a DER PKCS#7 message: {0}")]
    Malformed(String),
    /// BER that is not DER.
    #[error(
        "the PKCS#7 message is valid BER but not canonical DER; re-create it with \
         `sealroot sign` or `fsverity sign`"
    )]
    NotDer,
    /// Another content type than signedData.
    #[error("PKCS#7 content type is {0}, expected signedData")]
    NotSignedData(String),
    /// A version the kernel does not accept.
    #[error("unsupported {what} version {version} (the kernel accepts {allowed})")]
    Version {
        /// Which structure.
        what: &'static str,
        /// The version found.
        version: u8,
        /// The versions the kernel accepts.
        allowed: &'static str,
    },
    /// Signed content that is not id-data.
    #[error(
        "wrong content type {0}: fs-verity signatures sign id-data \
         (the kernel refuses others with EKEYREJECTED)"
    )]
    ContentType(String),
    /// Content inside the message (fs-verity signatures are detached).
    #[error(
        "the signature carries attached content: fs-verity signatures must be detached \
         (the kernel refuses attached content with EBADMSG); sign with -binary/-nodetach off"
    )]
    AttachedContent,
    /// Content detached where it must be attached (an IPE policy).
    #[error(
        "the signature carries no content: an IPE policy must be signed with its text \
         attached (openssl smime -sign -nodetach, or `sealroot ipe sign`)"
    )]
    DetachedContent,
    /// Not exactly one SignerInfo.
    #[error("the message has {0} SignerInfos; sealroot requires exactly one")]
    SignerCount(usize),
    /// An algorithm sealroot does not support.
    #[error(transparent)]
    Algorithm(#[from] Unsupported),
    /// A SignerInfo signature algorithm the kernel rejects.
    #[error(
        "signature algorithm {0} is not accepted in a PKCS#7 SignerInfo by the kernel \
         (6.12 accepts rsaEncryption and ecdsa-with-*; it fails others with ENOPKG)"
    )]
    SignerInfoAlgorithm(String),
    /// Signature and digest algorithms that disagree.
    #[error("signature algorithm {signature} names {named}, but the digest algorithm is {digest}")]
    DigestDisagreement {
        /// The signature algorithm.
        signature: String,
        /// The digest it names.
        named: DigestAlgorithm,
        /// The digest algorithm given.
        digest: DigestAlgorithm,
    },
    /// Signed attributes that break the profile.
    #[error("signed attributes: {0}")]
    SignedAttributes(String),
    /// An embedded certificate that does not parse.
    #[error("embedded certificate {index}: {error}")]
    EmbeddedCert {
        /// Its position in the message.
        index: usize,
        /// Why it does not parse.
        error: crypto::Error,
    },
}

/// Parses a DER PKCS#7 message and checks it against the profile (content
/// detached, as fs-verity requires).
pub fn parse(der_bytes: &[u8]) -> Result<SignedMessage, ProfileError> {
    let (msg, content) = parse_message(der_bytes)?;
    if content.is_some() {
        return Err(ProfileError::AttachedContent);
    }
    Ok(msg)
}

/// Parses a DER PKCS#7 message that carries its content (`openssl smime
/// -sign -nodetach`, what IPE takes for a policy: `verify_pkcs7_signature()`
/// with no detached data, `security/ipe/policy.c`), checks it against the
/// same profile, and returns the content.
pub fn parse_attached(der_bytes: &[u8]) -> Result<(SignedMessage, Vec<u8>), ProfileError> {
    let (msg, content) = parse_message(der_bytes)?;
    let content = content.ok_or(ProfileError::DetachedContent)?;
    Ok((msg, content))
}

/// RFC 5652 5.1 `SignedData`, with the certificates left as DER for
/// [`Cert::from_der`] (which parses and checks each one) and the
/// revocation lists undecoded (refused when present). `cms`'s own
/// `SignedData` would decode both in full: a second copy of the X.509
/// decoder and a CRL decoder, a tenth of `sealroot-prepare`
/// (docs/prepare.md, "Size").
#[derive(Sequence)]
struct SignedData<'a> {
    version: CmsVersion,
    // Checked by the decoder only; the SignerInfo names the digest used.
    #[allow(dead_code)]
    digest_algorithms: DigestAlgorithmIdentifiers,
    encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    certificates: Option<SetOfVec<AnyRef<'a>>>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    crls: Option<AnyRef<'a>>,
    signer_infos: SignerInfos,
}

fn parse_message(der_bytes: &[u8]) -> Result<(SignedMessage, Option<Vec<u8>>), ProfileError> {
    let info = ContentInfo::from_der(der_bytes)
        .map_err(|e| ProfileError::Malformed(format!("ContentInfo: {e}")))?;
    // Everything below re-encodes parts of the message (signed attributes,
    // certificates); that is only faithful if the input was DER.
    if info.to_der().ok().as_deref() != Some(der_bytes) {
        return Err(ProfileError::NotDer);
    }
    if info.content_type != oid::ID_SIGNED_DATA {
        return Err(ProfileError::NotSignedData(oid_name(&info.content_type)));
    }
    let sd: SignedData<'_> = info
        .content
        .decode_as()
        .map_err(|e| ProfileError::Malformed(format!("SignedData: {e}")))?;
    if sd.crls.is_some() {
        return Err(ProfileError::Malformed(
            "the SignedData carries revocation lists (crls): the kernel does not read them and \
             fs-verity signatures have none; sign without them (no -crlfile)"
                .into(),
        ));
    }
    let sd_version = sd.version as u8;
    if !matches!(sd.version, CmsVersion::V1 | CmsVersion::V3) {
        return Err(ProfileError::Version {
            what: "SignedData",
            version: sd_version,
            allowed: "1 and 3",
        });
    }
    if sd.encap_content_info.econtent_type != oid::ID_DATA {
        return Err(ProfileError::ContentType(oid_name(
            &sd.encap_content_info.econtent_type,
        )));
    }
    let content = match &sd.encap_content_info.econtent {
        None => None,
        Some(any) => Some(
            any.decode_as::<der::asn1::OctetString>()
                .map_err(|e| ProfileError::Malformed(format!("eContent: {e}")))?
                .into_bytes(),
        ),
    };
    let mut certificates = Vec::new();
    for (i, choice) in sd.certificates.iter().flat_map(|s| s.iter()).enumerate() {
        let index = i + 1;
        // CertificateChoices (RFC 5652 10.2.2): an X.509 certificate is a
        // SEQUENCE; the other choices are context-tagged.
        if choice.tag() != Tag::Sequence {
            return Err(ProfileError::Malformed(format!(
                "embedded certificate {index} is not an X.509 certificate"
            )));
        }
        let der = choice
            .to_der()
            .map_err(|e| ProfileError::Malformed(format!("embedded certificate {index}: {e}")))?;
        let cert = Cert::from_der(
            &der,
            format!("certificate {index} embedded in the signature"),
        )
        .map_err(|error| ProfileError::EmbeddedCert { index, error })?;
        certificates.push(cert);
    }
    let signers = sd.signer_infos.0.as_slice();
    let [si] = signers else {
        return Err(ProfileError::SignerCount(signers.len()));
    };
    let signer = signer_id(si, sd.version)?;
    let digest_algorithm = DigestAlgorithm::from_oid(&si.digest_alg.oid)?;
    let signature_algorithm = signature_algorithm(si, digest_algorithm)?;
    let signed_attributes = si
        .signed_attrs
        .as_ref()
        .map(signed_attributes)
        .transpose()?;
    Ok((
        SignedMessage {
            digest_algorithm,
            signature_algorithm,
            signer,
            signed_attributes,
            signature: si.signature.as_bytes().to_vec(),
            certificates,
        },
        content,
    ))
}

fn signer_id(si: &SignerInfo, sd_version: CmsVersion) -> Result<SignerId, ProfileError> {
    // pkcs7_note_signerinfo_version(): v1 <-> issuerAndSerialNumber in a v1
    // SignedData, v3 <-> subjectKeyIdentifier in a non-v1 SignedData.
    let bad_version = |allowed| ProfileError::Version {
        what: "SignerInfo",
        version: si.version as u8,
        allowed,
    };
    match (&si.sid, si.version, sd_version) {
        (SignerIdentifier::IssuerAndSerialNumber(isn), CmsVersion::V1, CmsVersion::V1) => {
            Ok(SignerId::IssuerSerial {
                issuer_der: isn
                    .issuer
                    .to_der()
                    .map_err(|e| ProfileError::Malformed(e.to_string()))?,
                issuer: crate::crypto::names::name_to_string(&isn.issuer),
                serial: isn.serial_number.as_bytes().to_vec(),
            })
        }
        (SignerIdentifier::SubjectKeyIdentifier(skid), CmsVersion::V3, CmsVersion::V3) => {
            Ok(SignerId::SubjectKeyId(skid.0.as_bytes().to_vec()))
        }
        (SignerIdentifier::IssuerAndSerialNumber(_), _, _) => Err(bad_version(
            "1, with issuerAndSerialNumber in a version 1 SignedData",
        )),
        (SignerIdentifier::SubjectKeyIdentifier(_), _, _) => Err(bad_version(
            "3, with subjectKeyIdentifier in a version 3 SignedData",
        )),
    }
}

fn signature_algorithm(
    si: &SignerInfo,
    digest: DigestAlgorithm,
) -> Result<SignatureAlgorithm, ProfileError> {
    let o = si.signature_algorithm.oid;
    let named = match o {
        oid::RSA_ENCRYPTION => return Ok(SignatureAlgorithm::RsaPkcs1v15(digest)),
        oid::ECDSA_WITH_SHA256 => DigestAlgorithm::Sha256,
        oid::ECDSA_WITH_SHA384 => DigestAlgorithm::Sha384,
        oid::ECDSA_WITH_SHA512 => DigestAlgorithm::Sha512,
        oid::ECDSA_WITH_SHA1 | oid::ECDSA_WITH_SHA224 => {
            return Err(Unsupported::Digest(oid_name(&o)).into());
        }
        oid::RSASSA_PSS => return Err(Unsupported::RsaPss.into()),
        oid::ED25519 | oid::ED448 => return Err(Unsupported::EdDsa.into()),
        _ => return Err(ProfileError::SignerInfoAlgorithm(oid_name(&o))),
    };
    if named != digest {
        return Err(ProfileError::DigestDisagreement {
            signature: oid_name(&o),
            named,
            digest,
        });
    }
    Ok(SignatureAlgorithm::Ecdsa(digest))
}

/// Checks signed attributes as `pkcs7_sig_note_authenticated_attr()` and
/// `pkcs7_sig_note_set_of_authattrs()` do.
fn signed_attributes(
    attrs: &cms::signed_data::SignedAttributes,
) -> Result<SignedAttributes, ProfileError> {
    let err = |m: String| ProfileError::SignedAttributes(m);
    let mut content_type = None;
    let mut message_digest = None;
    let mut signing_time = None;
    let mut seen = Vec::new();
    for attr in attrs.iter() {
        if seen.contains(&attr.oid) {
            return Err(err(format!(
                "attribute {} is repeated; the kernel refuses that with EKEYREJECTED",
                oid_name(&attr.oid)
            )));
        }
        seen.push(attr.oid);
        let [value] = attr.values.as_slice() else {
            return Err(err(format!(
                "attribute {} has {} values; the kernel permits exactly one",
                oid_name(&attr.oid),
                attr.values.len()
            )));
        };
        match attr.oid {
            oid::CONTENT_TYPE => {
                let ct: const_oid::ObjectIdentifier = value
                    .decode_as()
                    .map_err(|e| err(format!("contentType: {e}")))?;
                if ct != oid::ID_DATA {
                    return Err(err(format!(
                        "contentType attribute is {}, but the content is id-data",
                        oid_name(&ct)
                    )));
                }
                content_type = Some(ct);
            }
            oid::MESSAGE_DIGEST => {
                let md: der::asn1::OctetString = value
                    .decode_as()
                    .map_err(|e| err(format!("messageDigest: {e}")))?;
                message_digest = Some(md.as_bytes().to_vec());
            }
            oid::SIGNING_TIME => {
                let t = value
                    .to_der()
                    .and_then(|d| x509_cert::time::Time::from_der(&d))
                    .map_err(|e| err(format!("signingTime: {e}")))?;
                signing_time = Some(t.to_unix_duration().as_secs());
            }
            oid::SMIME_CAPABILITIES | oid::MS_SP_OPUS_INFO | oid::MS_STATEMENT_TYPE => {
                return Err(err(format!(
                    "{} is only allowed in Authenticode signatures (the kernel refuses it \
                     with EKEYREJECTED); sign with -noattr or -nosmimecap",
                    oid_name(&attr.oid)
                )));
            }
            _ => {}
        }
    }
    if content_type.is_none() {
        return Err(err(
            "no contentType attribute (the kernel requires it)".into()
        ));
    }
    let message_digest = message_digest
        .ok_or_else(|| err("no messageDigest attribute (the kernel requires it)".into()))?;
    let signed_bytes = attrs
        .to_der()
        .map_err(|e| err(format!("cannot re-encode: {e}")))?;
    Ok(SignedAttributes {
        message_digest,
        signing_time,
        signed_bytes,
    })
}
