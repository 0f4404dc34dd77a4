//! Round-trip properties of sign + verify (reference-tool cross-checks are
//! in `tests/pkcs7_cli.rs`).

use std::sync::OnceLock;

use super::*;
use crate::crypto::builder::{Issuer, Role, issue};
use crate::crypto::key::KeySigner;
use crate::crypto::{Cert, KeyAlgorithm, PrivateKey, SignatureError};
use crate::verity::{FsVerityDigest, HashAlgorithm};

struct Pki {
    ca_key: PrivateKey,
    ca: Cert,
    leaf_key: PrivateKey,
    leaf: Cert,
    rsa_key: PrivateKey,
    rsa: Cert,
    other_key: PrivateKey,
    other: Cert,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let ca = issue(&ca_key, "CN=CA", Role::Ca, Issuer::SelfSigned, 1).unwrap();
        let leaf_key = PrivateKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
        let leaf = issue(
            &leaf_key,
            "CN=leaf",
            Role::Signer,
            Issuer::Ca {
                cert: &ca,
                key: &ca_key,
            },
            1,
        )
        .unwrap();
        let rsa_key = PrivateKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
        let rsa = issue(&rsa_key, "CN=rsa", Role::Signer, Issuer::SelfSigned, 1).unwrap();
        let other_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let other = issue(&other_key, "CN=other", Role::Signer, Issuer::SelfSigned, 1).unwrap();
        Pki {
            ca_key,
            ca,
            leaf_key,
            leaf,
            rsa_key,
            rsa,
            other_key,
            other,
        }
    })
}

fn digest(seed: u8, alg: HashAlgorithm) -> FsVerityDigest {
    FsVerityDigest::new(alg, &vec![seed; alg.digest_size()]).unwrap()
}

fn signed(key: &PrivateKey, cert: &Cert, d: &FsVerityDigest, embed: bool) -> Vec<u8> {
    let signer = KeySigner::new(key.clone(), "test key");
    let options = SignOptions {
        embed_signer_cert: embed,
        extra_certs: vec![],
    };
    sign_fsverity(d, &signer, cert, &options).unwrap()
}

#[test]
fn every_key_type_and_hash_round_trips() {
    let p = pki();
    for (key, cert) in [
        (&p.rsa_key, &p.rsa),
        (&p.other_key, &p.other),
        (&p.leaf_key, &p.leaf),
    ] {
        for alg in HashAlgorithm::ALL {
            let d = digest(1, alg);
            let sig = signed(key, cert, &d, false);
            let v = verify_fsverity(&sig, &d, std::slice::from_ref(cert)).unwrap();
            assert_eq!(v.trusted.fingerprint, cert.fingerprint());
            assert_eq!(v.digest_algorithm.name(), alg.name());
            // Deterministic: RSA PKCS#1 v1.5 and RFC 6979 ECDSA.
            assert_eq!(sig, signed(key, cert, &d, false));
        }
    }
}

#[test]
fn embedded_leaf_chains_to_trusted_ca() {
    let p = pki();
    let d = digest(2, HashAlgorithm::Sha256);
    let sig = signed(&p.leaf_key, &p.leaf, &d, true);
    let v = verify_fsverity(&sig, &d, std::slice::from_ref(&p.ca)).unwrap();
    assert_eq!(v.trusted.fingerprint, p.ca.fingerprint());
    assert_eq!(v.signer.fingerprint, p.leaf.fingerprint());
    assert_eq!(v.chain.len(), 1);
    // Without the embedded leaf, the CA alone cannot identify the signer.
    let bare = signed(&p.leaf_key, &p.leaf, &d, false);
    let err = verify_fsverity(&bare, &d, std::slice::from_ref(&p.ca)).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownSigner { .. }), "{err}");
    assert!(err.to_string().contains("issuer 'CN=CA'"), "{err}");
}

#[test]
fn a_leaf_cannot_act_as_ca() {
    let p = pki();
    // A certificate "issued" by the self-signed `other` leaf.
    let fake = issue(
        &p.ca_key,
        "CN=fake",
        Role::Signer,
        Issuer::Ca {
            cert: &p.other,
            key: &p.other_key,
        },
        1,
    )
    .unwrap();
    let d = digest(3, HashAlgorithm::Sha256);
    let sig = signed(&p.ca_key, &fake, &d, true);
    let err = verify_fsverity(&sig, &d, std::slice::from_ref(&p.other)).unwrap_err();
    assert!(
        matches!(err, VerifyError::Chain(crate::crypto::Error::NotACa { .. })),
        "{err}"
    );
}

#[test]
fn refusals_name_the_reason() {
    let p = pki();
    let d = digest(4, HashAlgorithm::Sha256);
    // Other content, RSA: the signed digest is recovered and shown.
    let sig = signed(&p.rsa_key, &p.rsa, &d, false);
    let err = verify_fsverity(
        &sig,
        &digest(5, HashAlgorithm::Sha256),
        std::slice::from_ref(&p.rsa),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::DigestMismatch { .. }), "{err}");
    // A flipped signature byte, RSA: garbage, not a digest.
    let mut bad = sig.clone();
    let n = bad.len();
    bad[n - 10] ^= 1;
    let err = verify_fsverity(&bad, &d, std::slice::from_ref(&p.rsa)).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::SignatureMismatch {
                reason: SignatureError::Invalid,
                ..
            }
        ),
        "{err}"
    );
    // Wrong certificate.
    let err = verify_fsverity(&sig, &d, std::slice::from_ref(&p.other)).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownSigner { .. }), "{err}");
    // ECDSA over other content: a plain mismatch.
    let sig = signed(&p.other_key, &p.other, &d, false);
    let err = verify_fsverity(
        &sig,
        &digest(5, HashAlgorithm::Sha256),
        std::slice::from_ref(&p.other),
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::SignatureMismatch { .. }),
        "{err}"
    );
    // Untrusted self-signed embedded signer.
    let sig = signed(&p.other_key, &p.other, &d, true);
    let err = verify_fsverity(&sig, &d, std::slice::from_ref(&p.ca)).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");
}

#[test]
fn key_and_cert_must_match() {
    let p = pki();
    let signer = KeySigner::new(p.other_key.clone(), "other key");
    let err = sign_fsverity(
        &digest(6, HashAlgorithm::Sha256),
        &signer,
        &p.rsa,
        &SignOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, SignError::KeyCertMismatch { .. }), "{err}");
    // A CA certificate (keyUsage without digitalSignature) cannot sign data.
    let signer = KeySigner::new(p.ca_key.clone(), "ca key");
    let err = sign_fsverity(
        &digest(6, HashAlgorithm::Sha256),
        &signer,
        &p.ca,
        &SignOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, SignError::CertCannotSign { .. }), "{err}");
}

#[test]
fn profile_violations_are_named() {
    let p = pki();
    let d = digest(7, HashAlgorithm::Sha256);
    let sig = signed(&p.other_key, &p.other, &d, false);
    // Truncation anywhere: malformed, never a panic.
    for cut in [0, 1, 10, sig.len() / 2, sig.len() - 1] {
        let err = verify_fsverity(&sig[..cut], &d, std::slice::from_ref(&p.other)).unwrap_err();
        assert!(
            matches!(err, VerifyError::Profile(ProfileError::Malformed(_))),
            "{cut}: {err}"
        );
    }
}

/// A message that carries revocation lists (here an
/// `OtherRevocationInfoFormat`, RFC 5652 10.2.1, added to a good
/// signature with `cms`'s own types) is refused, and says why.
#[test]
fn revocation_lists_are_refused() {
    use cms::content_info::ContentInfo;
    use cms::revocation::{OtherRevocationInfoFormat, RevocationInfoChoice, RevocationInfoChoices};
    use cms::signed_data::SignedData;
    use der::asn1::{Any, SetOfVec};
    use der::{Decode, Encode};

    let p = pki();
    let d = digest(8, HashAlgorithm::Sha256);
    let sig = signed(&p.other_key, &p.other, &d, true);
    assert!(verify_fsverity(&sig, &d, std::slice::from_ref(&p.other)).is_ok());
    let mut info = ContentInfo::from_der(&sig).unwrap();
    let mut sd: SignedData = info.content.decode_as().unwrap();
    let other = RevocationInfoChoice::Other(OtherRevocationInfoFormat {
        other_format: spki::AlgorithmIdentifierOwned {
            oid: crate::crypto::algorithm::oid::ID_DATA,
            parameters: None,
        },
        other: Any::null(),
    });
    sd.crls = Some(RevocationInfoChoices(
        SetOfVec::try_from(vec![other]).unwrap(),
    ));
    info.content = Any::encode_from(&sd).unwrap();
    let with_crls = info.to_der().unwrap();
    let err = verify_fsverity(&with_crls, &d, std::slice::from_ref(&p.other)).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Profile(ProfileError::Malformed(m)) if m.contains("revocation lists")),
        "{err}"
    );
}
