//! Private keys: loading from PEM or DER in PKCS#8 (RSA, EC P-256/P-384),
//! PKCS#1 (RSA) or SEC1 (EC), generating, saving, and signing digests.
//!
//! Keys the kernel cannot use are refused when loaded, with the reason:
//! Ed25519/Ed448, RSA-PSS, curves other than P-256/P-384, RSA sizes other
//! than 2048/3072/4096, and encrypted keys (no passphrase prompts here).

use std::path::Path;

use der::Decode;
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

use super::algorithm::{KeyAlgorithm, PublicKey, SignatureAlgorithm, Unsupported, oid};
use super::cert::{Cert, read_limited};
use super::signer::{SignRequest, Signer, SignerError};
use super::{DigestAlgorithm, Error, pem};

/// A private key of a kind the kernel can verify signatures from.
#[derive(Clone)]
pub enum PrivateKey {
    /// An RSA key.
    Rsa(Box<rsa::RsaPrivateKey>),
    /// A P-256 key.
    P256(p256::ecdsa::SigningKey),
    /// A P-384 key.
    P384(p384::ecdsa::SigningKey),
}

/// The PEM labels of the private key formats we read.
const KEY_LABELS: &str =
    "'PRIVATE KEY' (PKCS#8), 'RSA PRIVATE KEY' (PKCS#1) or 'EC PRIVATE KEY' (SEC1)";

impl PrivateKey {
    /// Loads a key file (PEM or DER, detected).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let bytes = Zeroizing::new(read_limited(path)?);
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses PEM or DER key bytes; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self, Error> {
        if pem::looks_like_pem(bytes) {
            let blocks = pem::decode_blocks(bytes).map_err(|d| Error::malformed(origin, d))?;
            // `openssl ecparam -genkey` writes an 'EC PARAMETERS' block first.
            let keys: Vec<_> = blocks
                .into_iter()
                .filter(|b| b.label != "EC PARAMETERS")
                .collect();
            let [block] = keys.as_slice() else {
                let labels: Vec<_> = keys.iter().map(|b| format!("'{}'", b.label)).collect();
                return Err(Error::malformed(
                    origin,
                    format!(
                        "expected exactly one PEM private key block ({KEY_LABELS}), found {}",
                        if labels.is_empty() {
                            "none".to_string()
                        } else {
                            labels.join(", ")
                        }
                    ),
                ));
            };
            let der = Zeroizing::new(block.der.clone());
            match block.label.as_str() {
                "PRIVATE KEY" => Self::from_pkcs8(&der, origin),
                "RSA PRIVATE KEY" => Self::from_pkcs1(&der, origin),
                "EC PRIVATE KEY" => Self::from_sec1(&der, origin),
                "ENCRYPTED PRIVATE KEY" => Err(Error::Unsupported {
                    origin: origin.to_owned(),
                    reason: Unsupported::EncryptedKey,
                }),
                other => Err(Error::malformed(
                    origin,
                    format!("expected a PEM private key block ({KEY_LABELS}), found '{other}'"),
                )),
            }
        } else {
            Self::from_der(bytes, origin)
        }
    }

    /// DER of unknown flavour: PKCS#8, then PKCS#1, then SEC1.
    fn from_der(der: &[u8], origin: &str) -> Result<Self, Error> {
        if pkcs8::PrivateKeyInfo::from_der(der).is_ok() {
            return Self::from_pkcs8(der, origin);
        }
        if pkcs1::RsaPrivateKey::from_der(der).is_ok() {
            return Self::from_pkcs1(der, origin);
        }
        if sec1::EcPrivateKey::from_der(der).is_ok() {
            return Self::from_sec1(der, origin);
        }
        if EncryptedPrivateKeyInfo::from_der(der).is_ok() {
            return Err(Error::Unsupported {
                origin: origin.to_owned(),
                reason: Unsupported::EncryptedKey,
            });
        }
        let hint = if x509_cert::Certificate::from_der(der).is_ok() {
            "this is an X.509 certificate, not a private key"
        } else {
            "not PEM, and not a DER PKCS#8, PKCS#1 or SEC1 private key (truncated or not a key?)"
        };
        Err(Error::malformed(origin, hint))
    }

    fn from_pkcs8(der: &[u8], origin: &str) -> Result<Self, Error> {
        let info = pkcs8::PrivateKeyInfo::from_der(der)
            .map_err(|e| Error::malformed(origin, format!("malformed PKCS#8 private key: {e}")))?;
        let unsupported = |reason| Error::Unsupported {
            origin: origin.to_owned(),
            reason,
        };
        let bad = |e: &dyn std::fmt::Display| {
            Error::malformed(origin, format!("malformed PKCS#8 private key: {e}"))
        };
        match info.algorithm.oid {
            oid::RSA_ENCRYPTION => {
                let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| bad(&e))?;
                Self::rsa(key, origin)
            }
            oid::EC_PUBLIC_KEY => {
                let curve = info
                    .algorithm
                    .parameters_oid()
                    .map_err(|_| unsupported(Unsupported::NoCurve))?;
                Self::ec(
                    curve,
                    origin,
                    || p256::SecretKey::from_pkcs8_der(der).map_err(|e| bad(&e)),
                    || p384::SecretKey::from_pkcs8_der(der).map_err(|e| bad(&e)),
                )
            }
            oid::ED25519 | oid::ED448 => Err(unsupported(Unsupported::EdDsa)),
            oid::RSASSA_PSS => Err(unsupported(Unsupported::RsaPss)),
            other => Err(unsupported(Unsupported::KeyAlgorithm(
                super::algorithm::oid_name(&other),
            ))),
        }
    }

    fn from_pkcs1(der: &[u8], origin: &str) -> Result<Self, Error> {
        use pkcs1::DecodeRsaPrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(|e| {
            Error::malformed(origin, format!("malformed PKCS#1 RSA private key: {e}"))
        })?;
        Self::rsa(key, origin)
    }

    fn from_sec1(der: &[u8], origin: &str) -> Result<Self, Error> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::malformed(origin, format!("malformed SEC1 EC private key: {e}"))
        };
        let info = sec1::EcPrivateKey::from_der(der).map_err(|e| bad(&e))?;
        let curve = info
            .parameters
            .and_then(|p| p.named_curve())
            .ok_or(Error::Unsupported {
                origin: origin.to_owned(),
                reason: Unsupported::NoCurve,
            })?;
        Self::ec(
            curve,
            origin,
            || p256::SecretKey::from_sec1_der(der).map_err(|e| bad(&e)),
            || p384::SecretKey::from_sec1_der(der).map_err(|e| bad(&e)),
        )
    }

    fn rsa(key: rsa::RsaPrivateKey, origin: &str) -> Result<Self, Error> {
        // Apply the same size policy as for certificates.
        let public = PublicKey::Rsa(key.to_public_key());
        check_policy(&public, origin)?;
        Ok(PrivateKey::Rsa(Box::new(key)))
    }

    /// Dispatches on the curve OID to the matching parser.
    fn ec(
        curve: const_oid::ObjectIdentifier,
        origin: &str,
        p256: impl FnOnce() -> Result<p256::SecretKey, Error>,
        p384: impl FnOnce() -> Result<p384::SecretKey, Error>,
    ) -> Result<Self, Error> {
        match curve {
            oid::P256 => Ok(PrivateKey::P256(p256()?.into())),
            oid::P384 => Ok(PrivateKey::P384(p384()?.into())),
            other => Err(Error::Unsupported {
                origin: origin.to_owned(),
                reason: Unsupported::Curve {
                    curve: super::algorithm::curve_name(&other),
                },
            }),
        }
    }

    /// Generates a fresh key with the OS random number generator.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, Error> {
        let mut rng = rand_core::OsRng;
        match alg {
            KeyAlgorithm::Rsa { bits } => {
                if !matches!(bits, 2048 | 3072 | 4096) {
                    return Err(Error::Generate(format!(
                        "cannot generate RSA-{bits}: choose 2048, 3072 or 4096"
                    )));
                }
                rsa::RsaPrivateKey::new(&mut rng, bits)
                    .map(|k| PrivateKey::Rsa(Box::new(k)))
                    .map_err(|e| Error::Generate(format!("RSA key generation failed: {e}")))
            }
            KeyAlgorithm::EcdsaP256 => {
                Ok(PrivateKey::P256(p256::ecdsa::SigningKey::random(&mut rng)))
            }
            KeyAlgorithm::EcdsaP384 => {
                Ok(PrivateKey::P384(p384::ecdsa::SigningKey::random(&mut rng)))
            }
        }
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
        }
    }

    /// Kind and size.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PrivateKey::Rsa(k) => KeyAlgorithm::Rsa { bits: k.size() * 8 },
            PrivateKey::P256(_) => KeyAlgorithm::EcdsaP256,
            PrivateKey::P384(_) => KeyAlgorithm::EcdsaP384,
        }
    }

    /// PKCS#8 PEM, the format `openssl genpkey` writes.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        let lf = pkcs8::LineEnding::LF;
        match self {
            PrivateKey::Rsa(k) => k.to_pkcs8_pem(lf),
            PrivateKey::P256(k) => k.to_pkcs8_pem(lf),
            PrivateKey::P384(k) => k.to_pkcs8_pem(lf),
        }
        .map_err(|e| Error::Generate(format!("cannot encode private key: {e}")))
    }

    /// Refuses a certificate whose public key is not this key's.
    pub fn check_matches(&self, key_origin: &str, cert: &Cert) -> Result<(), Error> {
        if &self.public_key() == cert.public_key() {
            Ok(())
        } else {
            Err(Error::KeyCertMismatch {
                key: key_origin.to_owned(),
                cert: cert.origin().to_owned(),
                subject: cert.subject(),
            })
        }
    }

    /// Signs a digest: RSASSA-PKCS1-v1_5 over the DigestInfo (the raw
    /// signature, modulus-sized), or ECDSA (a DER `Ecdsa-Sig-Value`).
    ///
    /// ECDSA nonces are derived as in RFC 6979 (HMAC-DRBG keyed with the
    /// private key and the digest), so signatures are reproducible: the
    /// same key and digest give the same bytes, like RSA.
    pub fn sign_prehash(&self, digest: DigestAlgorithm, hash: &[u8]) -> Result<Vec<u8>, Error> {
        use signature::hazmat::PrehashSigner;
        let fail = |e: &dyn std::fmt::Display| Error::Generate(format!("signing failed: {e}"));
        if hash.len() != digest.output_len() {
            return Err(fail(&format!(
                "{digest} digest has {} bytes, expected {}",
                hash.len(),
                digest.output_len()
            )));
        }
        match self {
            PrivateKey::Rsa(k) => {
                let scheme = match digest {
                    DigestAlgorithm::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    DigestAlgorithm::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    DigestAlgorithm::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                };
                // With an RNG the private operation is blinded (timing side
                // channels); PKCS#1 v1.5 output stays deterministic.
                k.sign_with_rng(&mut rand_core::OsRng, scheme, hash)
                    .map_err(|e| fail(&e))
            }
            // The same bytes as `k.sign_prehash(hash)`, with a precomputed
            // table for k·G (several times faster; sealing signs every
            // content object, in batches: `sign_prehashes`).
            PrivateKey::P256(k) => {
                super::p256_fixed_base::sign_prehash(k, hash).map_err(|e| fail(&e))
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(hash).map_err(|e| fail(&e))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }

    /// Signs many digests, one result each, in order: the same bytes as
    /// [`Self::sign_prehash`] one by one. P-256 signs them in batches (the
    /// costly inversions shared, `p256_fixed_base::sign_prehashes`); other
    /// keys one by one.
    pub fn sign_prehashes(
        &self,
        digest: DigestAlgorithm,
        hashes: &[&[u8]],
    ) -> Vec<Result<Vec<u8>, Error>> {
        let PrivateKey::P256(k) = self else {
            return hashes
                .iter()
                .map(|h| self.sign_prehash(digest, h))
                .collect();
        };
        if hashes.iter().any(|h| h.len() != digest.output_len()) {
            // The length check and its message are sign_prehash's.
            return hashes
                .iter()
                .map(|h| self.sign_prehash(digest, h))
                .collect();
        }
        super::p256_fixed_base::sign_prehashes(k, hashes)
            .into_iter()
            .map(|r| r.map_err(|e| Error::Generate(format!("signing failed: {e}"))))
            .collect()
    }

    /// Signs a message with the given digest (hashing it first).
    pub fn sign(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_prehash(digest, &digest.digest(message))
    }

    /// The signature algorithm this key uses with `digest`.
    pub fn signature_algorithm(&self, digest: DigestAlgorithm) -> SignatureAlgorithm {
        SignatureAlgorithm::for_key(self.algorithm(), digest)
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.algorithm())
    }
}

/// PKCS#8 `EncryptedPrivateKeyInfo` (RFC 5208 6), only to recognise it.
#[derive(der::Sequence)]
struct EncryptedPrivateKeyInfo {
    encryption_algorithm: spki::AlgorithmIdentifierOwned,
    encrypted_data: der::asn1::OctetString,
}

fn check_policy(public: &PublicKey, origin: &str) -> Result<(), Error> {
    use spki::der::Decode as _;
    let der = public
        .to_spki_der()
        .map_err(|e| Error::malformed(origin, format!("cannot encode public key: {e}")))?;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(&der)
        .map_err(|e| Error::malformed(origin, format!("cannot encode public key: {e}")))?;
    PublicKey::from_spki(spki).map(|_| ()).map_err(|e| match e {
        super::algorithm::SpkiError::Unsupported(reason) => Error::Unsupported {
            origin: origin.to_owned(),
            reason,
        },
        super::algorithm::SpkiError::Malformed(d) => Error::malformed(origin, d),
    })
}

/// A key loaded from a file signs in-process.
#[derive(Debug)]
pub struct KeySigner {
    key: PrivateKey,
    origin: String,
}

impl KeySigner {
    /// A signer for `key`; `origin` names it in messages.
    pub fn new(key: PrivateKey, origin: impl Into<String>) -> Self {
        KeySigner {
            key,
            origin: origin.into(),
        }
    }

    /// Loads a key file (PEM or DER; PKCS#8, PKCS#1, SEC1); its path names
    /// it in messages.
    pub fn load(path: &Path) -> Result<Self, Error> {
        Ok(KeySigner::new(
            PrivateKey::load(path)?,
            path.display().to_string(),
        ))
    }

    /// The key.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// Where it came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl Signer for KeySigner {
    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, SignerError> {
        self.key
            .sign_prehash(request.digest_algorithm, request.digest)
            .map_err(|e| SignerError::new(self.description(), e.to_string()))
    }

    fn sign_batch(&self, requests: &[SignRequest<'_>]) -> Vec<Result<Vec<u8>, SignerError>> {
        // One digest algorithm for the whole batch (fs-verity objects of
        // one image), else one by one.
        let Some(first) = requests.first() else {
            return Vec::new();
        };
        if requests
            .iter()
            .any(|r| r.digest_algorithm != first.digest_algorithm)
        {
            return requests.iter().map(|r| self.sign(r)).collect();
        }
        let hashes: Vec<&[u8]> = requests.iter().map(|r| r.digest).collect();
        self.key
            .sign_prehashes(first.digest_algorithm, &hashes)
            .into_iter()
            .map(|r| r.map_err(|e| SignerError::new(self.description(), e.to_string())))
            .collect()
    }

    fn batch_size(&self) -> usize {
        match self.key {
            PrivateKey::P256(_) => super::p256_fixed_base::BATCH,
            _ => 1,
        }
    }

    fn description(&self) -> String {
        format!("{} key {}", self.key.algorithm(), self.origin)
    }

    fn public_key(&self) -> Option<PublicKey> {
        Some(self.key.public_key())
    }
}
