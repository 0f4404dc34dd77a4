//! Algorithms, public keys, and the policy of what the kernel can use.
//!
//! Linux 6.12 verifies fs-verity builtin signatures with the asymmetric-key
//! subsystem (`crypto/asymmetric_keys/`). What it accepts, and what we accept:
//!
//! | what                  | kernel 6.12                                          | sealroot                      |
//! |-----------------------|------------------------------------------------------|-------------------------------|
//! | RSA key sizes         | 2048, 3072, 4096 (+512/1024/1536 outside FIPS), `crypto/rsa.c` `rsa_check_key_length()` | 2048, 3072, 4096 |
//! | EC curves             | P-192, P-256, P-384, P-521 (`x509_extract_key_data()`) | P-256, P-384                |
//! | RSA padding           | PKCS#1 v1.5 only (`public_key.c`, "pkcs1pad"); no PSS | PKCS#1 v1.5                   |
//! | digests               | sha1, sha224, sha256, sha384, sha512, sha3-*, sm3, streebog | sha256, sha384, sha512 |
//! | EdDSA, RSA-PSS keys   | not parsed (`-ENOPKG`)                                | refused                       |
//!
//! Everything here is pure computation over untrusted bytes and never panics.

use std::fmt;

use const_oid::ObjectIdentifier;
use der::Decode;
use der::asn1::AnyRef;
use rsa::traits::PublicKeyParts;
use sha2::Digest as _;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};

/// Object identifiers we recognise (RFC 5912, RFC 5480, RFC 8410, RFC 5652).
pub mod oid {
    use const_oid::ObjectIdentifier as Oid;

    /// `rsaEncryption`.
    pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    /// `id-RSASSA-PSS`.
    pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    /// `sha1WithRSAEncryption`.
    pub const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
    /// `sha256WithRSAEncryption`.
    pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    /// `sha384WithRSAEncryption`.
    pub const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    /// `sha512WithRSAEncryption`.
    pub const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    /// `sha224WithRSAEncryption`.
    pub const SHA224_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.14");
    /// `id-ecPublicKey`.
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    /// `ecdsa-with-SHA1`.
    pub const ECDSA_WITH_SHA1: Oid = Oid::new_unwrap("1.2.840.10045.4.1");
    /// `ecdsa-with-SHA224`.
    pub const ECDSA_WITH_SHA224: Oid = Oid::new_unwrap("1.2.840.10045.4.3.1");
    /// `ecdsa-with-SHA256`.
    pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    /// `ecdsa-with-SHA384`.
    pub const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    /// `ecdsa-with-SHA512`.
    pub const ECDSA_WITH_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
    /// `secp256r1 (NIST P-256)`.
    pub const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    /// `secp384r1 (NIST P-384)`.
    pub const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    /// `id-Ed25519`.
    pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
    /// `id-Ed448`.
    pub const ED448: Oid = Oid::new_unwrap("1.3.101.113");
    /// `id-sha1`.
    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    /// `id-sha256`.
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// `id-sha384`.
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    /// `id-sha512`.
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
    /// `id-sha224`.
    pub const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
    /// `id-data`.
    pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    /// `id-signedData`.
    pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    /// `the contentType attribute`.
    pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
    /// `the messageDigest attribute`.
    pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
    /// `the signingTime attribute`.
    pub const SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
    /// `smimeCapabilities (attribute openssl adds)`.
    pub const SMIME_CAPABILITIES: Oid = Oid::new_unwrap("1.2.840.113549.1.9.15");
    /// `SpcSpOpusInfo (Authenticode attribute)`.
    pub const MS_SP_OPUS_INFO: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.12");
    /// `SpcStatementType (Authenticode attribute)`.
    pub const MS_STATEMENT_TYPE: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.11");
}

/// A human name for an OID: its registered name when it is one messages
/// name ([`super::names::object_name`]), always with the dotted form.
pub fn oid_name(oid: &ObjectIdentifier) -> String {
    match super::names::object_name(oid) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_string(),
    }
}

/// A name for an elliptic curve OID; const-oid's database lacks some.
pub fn curve_name(o: &ObjectIdentifier) -> String {
    let name = match o.to_string().as_str() {
        "1.2.840.10045.3.1.1" => "P-192 (too weak)",
        "1.3.132.0.33" => "P-224 (secp224r1)",
        "1.3.132.0.35" => "P-521 (kernel 6.10+ knows it, sealroot does not)",
        "1.3.132.0.10" => "secp256k1",
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1",
        "1.3.36.3.3.2.8.1.1.11" => "brainpoolP384r1",
        "1.3.36.3.3.2.8.1.1.13" => "brainpoolP512r1",
        _ => return oid_name(o),
    };
    format!("{name} ({o})")
}

/// Why a key, certificate or algorithm cannot be used. Each message says
/// what the kernel does with it, so the user knows whether to change the
/// key or the tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// An Ed25519 or Ed448 key.
    #[error(
        "Ed25519/Ed448 keys cannot be used: the kernel's X.509 parser does not know EdDSA, so \
         fs-verity cannot check such signatures; use RSA (2048-4096) or ECDSA P-256/P-384"
    )]
    EdDsa,
    /// RSA-PSS.
    #[error(
        "RSA-PSS keys and signatures cannot be used: kernel 6.12 verifies RSA only with PKCS#1 \
         v1.5 padding; create a plain RSA key (openssl genpkey -algorithm RSA)"
    )]
    RsaPss,
    /// An RSA size above 2048 that the kernel does not accept.
    #[error(
        "{bits}-bit RSA key: the kernel accepts only 2048, 3072 and 4096-bit RSA keys \
         (crypto/rsa.c rsa_check_key_length)"
    )]
    RsaKeySize {
        /// Modulus size.
        bits: usize,
    },
    /// An RSA key under 2048 bits.
    #[error(
        "{bits}-bit RSA key is too weak: sealroot requires 2048, 3072 or 4096 bits (kernels in \
         FIPS mode refuse smaller keys too)"
    )]
    RsaTooSmall {
        /// Modulus size.
        bits: usize,
    },
    /// An elliptic curve other than P-256 and P-384.
    #[error(
        "elliptic curve {curve} is not supported: use NIST P-256 or P-384 \
         (the kernel knows only the NIST curves; sealroot supports P-256 and P-384)"
    )]
    Curve {
        /// The curve's name or OID.
        curve: String,
    },
    /// EC parameters that are not a named curve.
    #[error("EC key without a named curve: only namedCurve parameters are supported")]
    NoCurve,
    /// Another public key algorithm (its name).
    #[error("public key algorithm {0} is not supported: use RSA (2048-4096) or ECDSA P-256/P-384")]
    KeyAlgorithm(String),
    /// A digest algorithm sealroot refuses (its name).
    #[error(
        "digest algorithm {0} is not accepted: use sha256, sha384 or sha512 \
         (sealroot refuses SHA-1/SHA-224 and algorithms it cannot compute)"
    )]
    Digest(String),
    /// A signature algorithm sealroot refuses (its name, and a hint).
    #[error("signature algorithm {0} is not supported{1}")]
    SignatureAlgorithm(String, &'static str),
    /// An encrypted private key.
    #[error(
        "encrypted private keys are not supported: decrypt it first (openssl pkey -in KEY -out PLAIN.pem)"
    )]
    EncryptedKey,
}

/// A digest algorithm usable in signatures (not the fs-verity Merkle-tree
/// hash, which is [`crate::verity::HashAlgorithm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm's OID.
    pub const fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha256 => oid::SHA256,
            DigestAlgorithm::Sha384 => oid::SHA384,
            DigestAlgorithm::Sha512 => oid::SHA512,
        }
    }

    /// From an OID; other digests are [`Unsupported::Digest`].
    pub fn from_oid(o: &ObjectIdentifier) -> Result<Self, Unsupported> {
        match *o {
            oid::SHA256 => Ok(DigestAlgorithm::Sha256),
            oid::SHA384 => Ok(DigestAlgorithm::Sha384),
            oid::SHA512 => Ok(DigestAlgorithm::Sha512),
            _ => Err(Unsupported::Digest(oid_name(o))),
        }
    }

    /// Lower-case name (`sha256`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha384 => "sha384",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// Digest length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlgorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The digest `fsverity sign` uses for a given fs-verity hash: the same
    /// algorithm (fsverity-utils `lib/sign_digest.c` passes the fs-verity
    /// hash's EVP_MD to `PKCS7_sign_add_signer`).
    pub const fn for_fsverity(alg: crate::verity::HashAlgorithm) -> Self {
        match alg {
            crate::verity::HashAlgorithm::Sha256 => DigestAlgorithm::Sha256,
            crate::verity::HashAlgorithm::Sha512 => DigestAlgorithm::Sha512,
        }
    }

    /// AlgorithmIdentifier with NULL parameters, as OpenSSL writes it.
    pub fn identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: Some(der::asn1::Any::null()),
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DigestAlgorithm {
    type Err = Unsupported;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(DigestAlgorithm::Sha256),
            "sha384" => Ok(DigestAlgorithm::Sha384),
            "sha512" => Ok(DigestAlgorithm::Sha512),
            other => Err(Unsupported::Digest(other.to_owned())),
        }
    }
}

/// The kind and size of a key, for reporting and key generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum KeyAlgorithm {
    /// RSA.
    Rsa {
        /// Modulus size.
        bits: usize,
    },
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
}

impl KeyAlgorithm {
    /// The digest used when this key signs a certificate: the curve's
    /// natural hash for ECDSA, sha256 for RSA (what openssl does).
    pub const fn cert_digest(self) -> DigestAlgorithm {
        match self {
            KeyAlgorithm::Rsa { .. } | KeyAlgorithm::EcdsaP256 => DigestAlgorithm::Sha256,
            KeyAlgorithm::EcdsaP384 => DigestAlgorithm::Sha384,
        }
    }

    fn check_rsa_bits(bits: usize) -> Result<(), Unsupported> {
        match bits {
            2048 | 3072 | 4096 => Ok(()),
            b if b < 2048 => Err(Unsupported::RsaTooSmall { bits: b }),
            b => Err(Unsupported::RsaKeySize { bits: b }),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyAlgorithm::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyAlgorithm::EcdsaP384 => f.write_str("ECDSA P-384"),
        }
    }
}

/// A signature algorithm: the padding/scheme plus the digest it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5 (RFC 8017 8.2) over a DigestInfo.
    RsaPkcs1v15(DigestAlgorithm),
    /// ECDSA with a DER `Ecdsa-Sig-Value` (RFC 5480, X9.62).
    Ecdsa(DigestAlgorithm),
}

impl SignatureAlgorithm {
    /// The digest the signature covers.
    pub const fn digest(self) -> DigestAlgorithm {
        match self {
            SignatureAlgorithm::RsaPkcs1v15(d) | SignatureAlgorithm::Ecdsa(d) => d,
        }
    }

    /// The algorithm a key of this kind signs with, for a given digest.
    pub const fn for_key(key: KeyAlgorithm, digest: DigestAlgorithm) -> Self {
        match key {
            KeyAlgorithm::Rsa { .. } => SignatureAlgorithm::RsaPkcs1v15(digest),
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => SignatureAlgorithm::Ecdsa(digest),
        }
    }

    /// `ecdsa-with-SHA*` OID for the ECDSA digest (RFC 5758 3.2).
    pub const fn ecdsa_oid(digest: DigestAlgorithm) -> ObjectIdentifier {
        match digest {
            DigestAlgorithm::Sha256 => oid::ECDSA_WITH_SHA256,
            DigestAlgorithm::Sha384 => oid::ECDSA_WITH_SHA384,
            DigestAlgorithm::Sha512 => oid::ECDSA_WITH_SHA512,
        }
    }

    /// The AlgorithmIdentifier used in X.509 certificates (RFC 5754):
    /// `sha*WithRSAEncryption` with NULL parameters, `ecdsa-with-SHA*`
    /// without.
    pub fn x509_identifier(self) -> AlgorithmIdentifierOwned {
        match self {
            SignatureAlgorithm::RsaPkcs1v15(d) => AlgorithmIdentifierOwned {
                oid: match d {
                    DigestAlgorithm::Sha256 => oid::SHA256_WITH_RSA,
                    DigestAlgorithm::Sha384 => oid::SHA384_WITH_RSA,
                    DigestAlgorithm::Sha512 => oid::SHA512_WITH_RSA,
                },
                parameters: Some(der::asn1::Any::null()),
            },
            SignatureAlgorithm::Ecdsa(d) => AlgorithmIdentifierOwned {
                oid: Self::ecdsa_oid(d),
                parameters: None,
            },
        }
    }

    /// Parses the signature algorithm of an X.509 certificate.
    pub fn from_x509_oid(o: &ObjectIdentifier) -> Result<Self, Unsupported> {
        use DigestAlgorithm::*;
        match *o {
            oid::SHA256_WITH_RSA => Ok(SignatureAlgorithm::RsaPkcs1v15(Sha256)),
            oid::SHA384_WITH_RSA => Ok(SignatureAlgorithm::RsaPkcs1v15(Sha384)),
            oid::SHA512_WITH_RSA => Ok(SignatureAlgorithm::RsaPkcs1v15(Sha512)),
            oid::ECDSA_WITH_SHA256 => Ok(SignatureAlgorithm::Ecdsa(Sha256)),
            oid::ECDSA_WITH_SHA384 => Ok(SignatureAlgorithm::Ecdsa(Sha384)),
            oid::ECDSA_WITH_SHA512 => Ok(SignatureAlgorithm::Ecdsa(Sha512)),
            oid::RSASSA_PSS => Err(Unsupported::RsaPss),
            oid::ED25519 | oid::ED448 => Err(Unsupported::EdDsa),
            oid::SHA1_WITH_RSA
            | oid::ECDSA_WITH_SHA1
            | oid::SHA224_WITH_RSA
            | oid::ECDSA_WITH_SHA224 => Err(Unsupported::SignatureAlgorithm(
                oid_name(o),
                ": SHA-1 and SHA-224 certificate signatures are refused; re-issue with sha256",
            )),
            _ => Err(Unsupported::SignatureAlgorithm(
                oid_name(o),
                ": use sha256/384/512 with RSA or ECDSA",
            )),
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureAlgorithm::RsaPkcs1v15(d) => write!(f, "RSA PKCS#1 v1.5 with {d}"),
            SignatureAlgorithm::Ecdsa(d) => write!(f, "ECDSA with {d}"),
        }
    }
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A signature algorithm the key cannot make.
    #[error("{0} signature cannot be made with a {1} key")]
    KeyMismatch(SignatureAlgorithm, KeyAlgorithm),
    /// A digest of the wrong length (algorithm, given, expected).
    #[error("the {0} digest has {1} bytes, expected {2}")]
    DigestLength(DigestAlgorithm, usize, usize),
    /// An ECDSA signature that is not DER `Ecdsa-Sig-Value`.
    #[error("the ECDSA signature is not a valid DER Ecdsa-Sig-Value")]
    MalformedEcdsa,
    /// RSA only: the signature decrypts to a well-formed PKCS#1 v1.5
    /// DigestInfo, so it was made by this key, but over different data.
    #[error(
        "made by this key but over a different {algorithm} digest (signed {signed}, expected {expected})"
    )]
    DigestMismatch {
        /// The digest algorithm.
        algorithm: DigestAlgorithm,
        /// The digest in the signature (hex).
        signed: String,
        /// The digest of the data (hex).
        expected: String,
    },
    /// Any other failure to verify.
    #[error("does not verify with this public key")]
    Invalid,
}

/// A public key the kernel can verify fs-verity signatures with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key.
    Rsa(rsa::RsaPublicKey),
    /// A P-256 key.
    P256(p256::ecdsa::VerifyingKey),
    /// A P-384 key.
    P384(p384::ecdsa::VerifyingKey),
}

/// Errors from [`PublicKey::from_spki`]: malformed encoding or a key the
/// kernel cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpkiError {
    /// The encoding does not parse (why).
    #[error("malformed public key: {0}")]
    Malformed(String),
    /// A key the kernel cannot use.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

impl PublicKey {
    /// Parses a SubjectPublicKeyInfo and applies the key policy.
    pub fn from_spki(spki: SubjectPublicKeyInfoRef<'_>) -> Result<Self, SpkiError> {
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| SpkiError::Malformed("public key BIT STRING has unused bits".into()))?;
        match spki.algorithm.oid {
            oid::RSA_ENCRYPTION => {
                let k = pkcs1::RsaPublicKey::from_der(bits)
                    .map_err(|e| SpkiError::Malformed(format!("RSA public key: {e}")))?;
                let n = k.modulus.as_bytes();
                KeyAlgorithm::check_rsa_bits(n.len() * 8)?;
                let key = rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(n),
                    rsa::BigUint::from_bytes_be(k.public_exponent.as_bytes()),
                )
                .map_err(|e| SpkiError::Malformed(format!("RSA public key: {e}")))?;
                Ok(PublicKey::Rsa(key))
            }
            oid::EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p: &AnyRef<'_>| p.decode_as::<ObjectIdentifier>().ok())
                    .ok_or(Unsupported::NoCurve)?;
                match curve {
                    oid::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P256)
                        .map_err(|_| SpkiError::Malformed("invalid P-256 point".into())),
                    oid::P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P384)
                        .map_err(|_| SpkiError::Malformed("invalid P-384 point".into())),
                    other => Err(Unsupported::Curve {
                        curve: curve_name(&other),
                    }
                    .into()),
                }
            }
            oid::ED25519 | oid::ED448 => Err(Unsupported::EdDsa.into()),
            oid::RSASSA_PSS => Err(Unsupported::RsaPss.into()),
            other => Err(Unsupported::KeyAlgorithm(oid_name(&other)).into()),
        }
    }

    /// Kind and size.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::Rsa(k) => KeyAlgorithm::Rsa { bits: k.size() * 8 },
            PublicKey::P256(_) => KeyAlgorithm::EcdsaP256,
            PublicKey::P384(_) => KeyAlgorithm::EcdsaP384,
        }
    }

    /// Verifies `signature` over an already computed `hash`.
    ///
    /// ECDSA hashes longer than the curve order are truncated and shorter
    /// ones used as they are (SEC1 4.1.4), as the kernel's `crypto/ecdsa.c`
    /// does, so any digest works with any curve.
    pub fn verify_prehash(
        &self,
        alg: SignatureAlgorithm,
        hash: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        use signature::hazmat::PrehashVerifier;
        let digest = alg.digest();
        if hash.len() != digest.output_len() {
            return Err(SignatureError::DigestLength(
                digest,
                hash.len(),
                digest.output_len(),
            ));
        }
        match (self, alg) {
            (PublicKey::Rsa(k), SignatureAlgorithm::RsaPkcs1v15(d)) => {
                let scheme = match d {
                    DigestAlgorithm::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    DigestAlgorithm::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    DigestAlgorithm::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                };
                if k.verify(scheme, hash, signature).is_ok() {
                    return Ok(());
                }
                // Tell "signed something else" from "signed by someone else".
                match rsa_recover_digest(k, d, signature) {
                    Some(signed) => Err(SignatureError::DigestMismatch {
                        algorithm: d,
                        signed: hex::encode(signed),
                        expected: hex::encode(hash),
                    }),
                    None => Err(SignatureError::Invalid),
                }
            }
            (PublicKey::P256(k), SignatureAlgorithm::Ecdsa(_)) => {
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::MalformedEcdsa)?;
                k.verify_prehash(hash, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
            (PublicKey::P384(k), SignatureAlgorithm::Ecdsa(_)) => {
                let sig = p384::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::MalformedEcdsa)?;
                k.verify_prehash(hash, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
            (key, alg) => Err(SignatureError::KeyMismatch(alg, key.algorithm())),
        }
    }

    /// Verifies a signature over `message` (hashing it first).
    pub fn verify(
        &self,
        alg: SignatureAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        self.verify_prehash(alg, &alg.digest().digest(message), signature)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, spki::Error> {
        use spki::EncodePublicKey;
        let doc = match self {
            PublicKey::Rsa(k) => k.to_public_key_der()?,
            PublicKey::P256(k) => k.to_public_key_der()?,
            PublicKey::P384(k) => k.to_public_key_der()?,
        };
        Ok(doc.as_bytes().to_vec())
    }
}

/// Applies the raw RSA public operation and, if the result is a well-formed
/// EMSA-PKCS1-v1_5 block holding a DigestInfo for `digest`, returns the
/// digest inside. Diagnostics only: called after verification failed.
fn rsa_recover_digest(
    key: &rsa::RsaPublicKey,
    digest: DigestAlgorithm,
    signature: &[u8],
) -> Option<Vec<u8>> {
    let k = key.size();
    if signature.len() != k {
        return None;
    }
    let s = rsa::BigUint::from_bytes_be(signature);
    if &s >= key.n() {
        return None;
    }
    let m = rsa::hazmat::rsa_encrypt(key, &s).ok()?.to_bytes_be();
    // EM = 0x00 || 0x01 || PS (0xff..) || 0x00 || DigestInfo; BigUint drops
    // the leading zero byte.
    let em = m.as_slice();
    if em.len() != k - 1 || em.first() != Some(&1) {
        return None;
    }
    let rest = &em[1..];
    let sep = rest.iter().position(|&b| b != 0xff)?;
    if sep < 8 || rest[sep] != 0 {
        return None;
    }
    let info = &rest[sep + 1..];
    let parsed = DigestInfo::from_der(info).ok()?;
    if parsed.algorithm.oid != digest.oid() {
        return None;
    }
    Some(parsed.digest.as_bytes().to_vec())
}

/// `DigestInfo` (RFC 8017 9.2).
#[derive(der::Sequence)]
struct DigestInfo {
    algorithm: AlgorithmIdentifierOwned,
    digest: der::asn1::OctetString,
}

/// SHA-256 of some DER, for fingerprints; displays as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        Fingerprint(sha2::Sha256::digest(der).into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_oids_round_trip() {
        for d in [
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
            DigestAlgorithm::Sha512,
        ] {
            assert_eq!(DigestAlgorithm::from_oid(&d.oid()).unwrap(), d);
            assert_eq!(d.digest(b"").len(), d.output_len());
            assert_eq!(d.name().parse::<DigestAlgorithm>().unwrap(), d);
        }
        assert!(matches!(
            DigestAlgorithm::from_oid(&oid::SHA1),
            Err(Unsupported::Digest(_))
        ));
    }

    #[test]
    fn x509_signature_oids_round_trip() {
        for d in [
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
            DigestAlgorithm::Sha512,
        ] {
            for alg in [
                SignatureAlgorithm::RsaPkcs1v15(d),
                SignatureAlgorithm::Ecdsa(d),
            ] {
                let id = alg.x509_identifier();
                assert_eq!(SignatureAlgorithm::from_x509_oid(&id.oid).unwrap(), alg);
            }
        }
        assert_eq!(
            SignatureAlgorithm::from_x509_oid(&oid::RSASSA_PSS),
            Err(Unsupported::RsaPss)
        );
    }

    #[test]
    fn rsa_sizes_follow_the_kernel() {
        assert!(KeyAlgorithm::check_rsa_bits(2048).is_ok());
        assert!(KeyAlgorithm::check_rsa_bits(3072).is_ok());
        assert!(KeyAlgorithm::check_rsa_bits(4096).is_ok());
        assert_eq!(
            KeyAlgorithm::check_rsa_bits(1024),
            Err(Unsupported::RsaTooSmall { bits: 1024 })
        );
        assert_eq!(
            KeyAlgorithm::check_rsa_bits(8192),
            Err(Unsupported::RsaKeySize { bits: 8192 })
        );
        assert!(KeyAlgorithm::check_rsa_bits(2056).is_err());
    }
}
