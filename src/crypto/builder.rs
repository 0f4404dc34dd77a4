//! Issuing certificates the kernel's X.509 parser accepts: a throwaway CA
//! and leaf (signing) certificates, for demos and tests.
//!
//! The kernel (`crypto/asymmetric_keys/x509_cert_parser.c`) reads
//! basicConstraints (must be an empty SEQUENCE or start with cA=TRUE),
//! keyUsage, subjectKeyIdentifier and authorityKeyIdentifier, and refuses
//! certificates whose signature algorithm it does not know. The profiles
//! of `x509-cert`'s builder produce exactly these extensions:
//! - CA: basicConstraints cA=TRUE (critical), keyUsage keyCertSign|cRLSign,
//!   subjectKeyIdentifier;
//! - leaf: basicConstraints cA=FALSE, keyUsage digitalSignature|
//!   nonRepudiation, subjectKeyIdentifier, authorityKeyIdentifier (also on
//!   a self-signed leaf, where it names its own key, which the kernel's
//!   `x509_check_for_self_signed()` accepts).

use std::str::FromStr;
use std::time::Duration;

use der::asn1::BitString;
use der::{Decode, Encode};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use super::{Cert, Error, PrivateKey, SignatureAlgorithm};

/// Who signs the new certificate.
#[derive(Debug)]
pub enum Issuer<'a> {
    /// The certificate signs itself (a root CA or a self-signed leaf).
    SelfSigned,
    /// A CA certificate and its key.
    Ca {
        /// The issuing CA's certificate.
        cert: &'a Cert,
        /// Its private key.
        key: &'a PrivateKey,
    },
}

/// What the new certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May issue certificates (basicConstraints cA=TRUE).
    Ca,
    /// Signs data (files, fs-verity digests).
    Signer,
}

/// Issues a certificate for `key` named `subject` (RFC 4514, e.g.
/// `CN=example,O=Example`), valid from now for `days`.
pub fn issue(
    key: &PrivateKey,
    subject: &str,
    role: Role,
    issuer: Issuer<'_>,
    days: u32,
) -> Result<Cert, Error> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Error::Generate(format!("{what}: {e}"));
    let subject_name =
        Name::from_str(subject).map_err(|e| fail(&format!("invalid subject {subject:?}"), &e))?;
    let (signing_key, profile) = match (&issuer, role) {
        (Issuer::SelfSigned, Role::Ca) => (key, Profile::Root),
        (Issuer::SelfSigned, Role::Signer) => (
            key,
            Profile::Leaf {
                issuer: subject_name.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
        ),
        (Issuer::Ca { cert, key: ca_key }, role) => {
            ca_key.check_matches("the CA key", cert)?;
            let issuer = cert.certificate().tbs_certificate.subject.clone();
            let profile = match role {
                Role::Ca => Profile::SubCA {
                    issuer,
                    path_len_constraint: None,
                },
                Role::Signer => Profile::Leaf {
                    issuer,
                    enable_key_agreement: false,
                    enable_key_encipherment: false,
                },
            };
            (*ca_key, profile)
        }
    };
    let spki_der = key
        .public_key()
        .to_spki_der()
        .map_err(|e| fail("cannot encode public key", &e))?;
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(&spki_der)
        .map_err(|e| fail("cannot encode public key", &e))?;
    let validity = Validity::from_now(Duration::from_secs(u64::from(days) * 86400))
        .map_err(|e| fail("invalid validity", &e))?;
    let signer = CertSigner(signing_key);
    let builder = CertificateBuilder::new(
        profile,
        random_serial()?,
        validity,
        subject_name,
        spki,
        &signer,
    )
    .map_err(|e| fail("cannot build certificate", &e))?;
    let cert = builder
        .build::<CertSignature>()
        .map_err(|e| fail("cannot sign certificate", &e))?;
    let der = cert
        .to_der()
        .map_err(|e| fail("cannot encode certificate", &e))?;
    Cert::from_der(&der, format!("new certificate '{subject}'"))
}

/// A positive random 16-byte serial number (RFC 5280 4.1.2.2: at most 20).
fn random_serial() -> Result<SerialNumber, Error> {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // no leading zero byte, so the length stays 16
    SerialNumber::new(&bytes).map_err(|e| Error::Generate(format!("serial number: {e}")))
}

/// Adapts [`PrivateKey`] to the traits `x509-cert`'s builder wants.
struct CertSigner<'a>(&'a PrivateKey);

#[derive(Clone)]
struct SpkiKey(Vec<u8>);

impl spki::EncodePublicKey for SpkiKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::try_from(self.0.as_slice())?)
    }
}

impl signature::Keypair for CertSigner<'_> {
    type VerifyingKey = SpkiKey;
    fn verifying_key(&self) -> SpkiKey {
        SpkiKey(self.0.public_key().to_spki_der().unwrap_or_default())
    }
}

impl spki::DynSignatureAlgorithmIdentifier for CertSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<spki::AlgorithmIdentifierOwned> {
        Ok(self.algorithm().x509_identifier())
    }
}

impl CertSigner<'_> {
    fn algorithm(&self) -> SignatureAlgorithm {
        let alg = self.0.algorithm();
        SignatureAlgorithm::for_key(alg, alg.cert_digest())
    }
}

struct CertSignature(Vec<u8>);

impl spki::SignatureBitStringEncoding for CertSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

impl signature::Signer<CertSignature> for CertSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<CertSignature, signature::Error> {
        self.0
            .sign(self.algorithm().digest(), msg)
            .map(CertSignature)
            .map_err(signature::Error::from_source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyAlgorithm;

    #[test]
    fn ca_issues_leaf_that_verifies() {
        let ca_key = PrivateKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
        let ca = issue(&ca_key, "CN=test CA", Role::Ca, Issuer::SelfSigned, 1).unwrap();
        assert!(ca.is_ca());
        assert_eq!(ca.is_self_signed(), Ok(true));
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let leaf = issue(
            &key,
            "CN=leaf,O=sealroot",
            Role::Signer,
            Issuer::Ca {
                cert: &ca,
                key: &ca_key,
            },
            1,
        )
        .unwrap();
        assert!(!leaf.is_ca());
        assert!(leaf.can_sign_data());
        assert_eq!(leaf.is_self_signed(), Ok(false));
        assert_eq!(leaf.issuer(), "CN=test CA");
        assert_eq!(leaf.authority_key_id(), ca.subject_key_id());
        leaf.verify_issued_by(&ca).unwrap();
        // A leaf cannot vouch for anything.
        assert!(matches!(
            ca.verify_issued_by(&leaf),
            Err(Error::NotACa { .. })
        ));
        // Self-signed leaf: the kernel's notion of self-signed holds.
        let own = issue(&key, "CN=own", Role::Signer, Issuer::SelfSigned, 1).unwrap();
        assert_eq!(own.is_self_signed(), Ok(true));
        // The CA key must match the CA certificate.
        let err = issue(
            &key,
            "CN=x",
            Role::Signer,
            Issuer::Ca {
                cert: &ca,
                key: &key,
            },
            1,
        )
        .unwrap_err();
        assert!(matches!(err, Error::KeyCertMismatch { .. }), "{err}");
    }
}
