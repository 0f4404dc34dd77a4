//! Bundles: the rebuilt PKCS#7 equals what `pkcs7::sign_fsverity` (itself
//! checked byte for byte against `fsverity sign` in `pkcs7::tests`) writes
//! for the same digest; round trips; the parser's refusals.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use proptest::prelude::*;

use super::check::check_bundle;
use super::splice::Template;
use super::*;
use crate::crypto::builder::{Issuer, Role, issue};
use crate::crypto::key::KeySigner;
use crate::crypto::{Cert, DigestAlgorithm, KeyAlgorithm, PrivateKey};
use crate::pkcs7::{SignOptions, sign_fsverity, verify_fsverity};
use crate::verity::FormattedDigest;

struct Key {
    key: PrivateKey,
    cert: Cert,
}

fn key(alg: KeyAlgorithm) -> &'static Key {
    static P256: OnceLock<Key> = OnceLock::new();
    static RSA: OnceLock<Key> = OnceLock::new();
    let cell = match alg {
        KeyAlgorithm::Rsa { .. } => &RSA,
        _ => &P256,
    };
    cell.get_or_init(|| {
        let key = PrivateKey::generate(alg).unwrap();
        let cert = issue(&key, "CN=objsig test", Role::Signer, Issuer::SelfSigned, 30).unwrap();
        Key { key, cert }
    })
}

fn digest(alg: HashAlgorithm, i: u32) -> FsVerityDigest {
    let raw = DigestAlgorithm::Sha512.digest(&i.to_le_bytes());
    FsVerityDigest::new(alg, &raw[..alg.digest_size()]).unwrap()
}

fn digests(alg: HashAlgorithm, n: u32) -> Vec<FsVerityDigest> {
    let set: BTreeSet<FsVerityDigest> = (0..n).map(|i| digest(alg, i)).collect();
    set.into_iter().collect()
}

fn raw_signature(k: &Key, d: &FsVerityDigest) -> Vec<u8> {
    let alg = DigestAlgorithm::for_fsverity(d.algorithm());
    k.key
        .sign(alg, &FormattedDigest::new(*d).to_bytes())
        .unwrap()
}

#[test]
fn spliced_message_equals_a_freshly_signed_one() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa { bits: 2048 }] {
        let k = key(alg);
        let signer = KeySigner::new(k.key.clone(), "test");
        for hash in HashAlgorithm::ALL {
            // With the certificate embedded the lengths of every container
            // need more bytes: both encodings are exercised.
            for embed in [false, true] {
                let options = SignOptions {
                    embed_signer_cert: embed,
                    extra_certs: vec![],
                };
                let t = Template::new(
                    sign_fsverity(&digest(hash, 0), &signer, &k.cert, &options).unwrap(),
                )
                .unwrap();
                for i in 1..6 {
                    let d = digest(hash, i);
                    let fresh = sign_fsverity(&d, &signer, &k.cert, &options).unwrap();
                    assert_eq!(
                        t.with_signature(&raw_signature(k, &d)),
                        fresh,
                        "{alg} {hash} embed={embed} object {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn splice_handles_length_changes() {
    // ECDSA signatures are 70..72 bytes: a signature of another length
    // changes every enclosing length; the result must still be a message
    // in the kernel's profile carrying exactly that signature.
    let k = key(KeyAlgorithm::EcdsaP256);
    let signer = KeySigner::new(k.key.clone(), "test");
    let t = Template::new(
        sign_fsverity(
            &digest(HashAlgorithm::Sha256, 0),
            &signer,
            &k.cert,
            &SignOptions::default(),
        )
        .unwrap(),
    )
    .unwrap();
    for len in [1, 60, 127, 128, 200, 255, 256, 300, 1000] {
        let sig = vec![0x5a; len];
        let der = t.with_signature(&sig);
        let msg = crate::pkcs7::profile::parse(&der).unwrap();
        assert_eq!(msg.signature, sig, "len {len}");
        assert_eq!(Template::new(der).unwrap().signature(), &sig[..]);
    }
}

fn bundle_of(alg: KeyAlgorithm, hash: HashAlgorithm, n: u32) -> (Vec<FsVerityDigest>, Vec<u8>) {
    let k = key(alg);
    let signer = KeySigner::new(k.key.clone(), "test");
    let ds = digests(hash, n);
    let bytes = build::sign_objects(
        &ds,
        BlockSize::DEFAULT,
        &signer,
        &k.cert,
        &SignOptions::default(),
        None,
        &|| {},
    )
    .unwrap();
    (ds, bytes)
}

#[test]
fn round_trip_and_kernel_profile() {
    for (alg, hash) in [
        (KeyAlgorithm::EcdsaP256, HashAlgorithm::Sha256),
        (KeyAlgorithm::EcdsaP256, HashAlgorithm::Sha512),
        (KeyAlgorithm::Rsa { bits: 2048 }, HashAlgorithm::Sha256),
    ] {
        let (ds, bytes) = bundle_of(alg, hash, 40);
        let b = Bundle::parse(bytes.clone()).unwrap();
        assert_eq!(b.len(), ds.len());
        assert_eq!(b.algorithm(), hash);
        assert_eq!(b.bytes(), &bytes[..]);
        let listed: Vec<FsVerityDigest> = b.iter().map(|(d, _)| d).collect();
        assert_eq!(listed, ds);
        for d in &ds {
            let der = b.pkcs7(d).unwrap();
            let v = verify_fsverity(&der, d, std::slice::from_ref(&key(alg).cert)).unwrap();
            assert_eq!(v.signer.subject, "CN=objsig test");
        }
        assert!(b.pkcs7(&digest(hash, 999)).is_none());
        // Per entry: digest + 2 + signature, nothing else.
        let per = (bytes.len() - 20 - b.template().len()) as f64 / ds.len() as f64;
        let sig = match alg {
            KeyAlgorithm::Rsa { .. } => 256.0,
            _ => 72.0,
        };
        assert!(per <= hash.digest_size() as f64 + 2.0 + sig, "{per}");
    }
}

/// Objects are signed in batches (P-256: shared inversions); every
/// signature in the bundle is the one p256's own signer gives for that
/// object's formatted digest, and the one sealroot signs one by one.
#[test]
fn batch_signed_bundle_holds_the_one_by_one_signatures() {
    use signature::hazmat::PrehashSigner;
    let k = key(KeyAlgorithm::EcdsaP256);
    let PrivateKey::P256(p256_key) = &k.key else {
        unreachable!("a P-256 key")
    };
    for hash in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
        let (ds, bytes) = bundle_of(KeyAlgorithm::EcdsaP256, hash, 300);
        let b = Bundle::parse(bytes).unwrap();
        assert_eq!(b.len(), ds.len());
        for (d, signature) in b.iter() {
            let alg = DigestAlgorithm::for_fsverity(d.algorithm());
            let prehash = alg.digest(&FormattedDigest::new(d).to_bytes());
            let reference: p256::ecdsa::Signature = p256_key.sign_prehash(&prehash).unwrap();
            assert_eq!(signature, reference.to_der().as_bytes(), "{d}");
            assert_eq!(signature, raw_signature(k, &d), "{d}");
        }
    }
}

#[test]
fn check_reports_missing_bad_and_untrusted() {
    let alg = KeyAlgorithm::EcdsaP256;
    let (ds, mut bytes) = bundle_of(alg, HashAlgorithm::Sha256, 20);
    let trusted = std::slice::from_ref(&key(alg).cert);
    let mut objects: BTreeSet<FsVerityDigest> = ds.iter().copied().collect();
    let b = Bundle::parse(bytes.clone()).unwrap();
    let c = check_bundle(&b, &objects, trusted);
    assert!(c.complete(), "{}", c.summary());
    assert_eq!(
        (c.entries, c.objects, c.missing, c.bad, c.extra),
        (20, 20, 0, 0, 0)
    );
    // An object the bundle does not cover; an entry for no object.
    let absent = digest(HashAlgorithm::Sha256, 1000);
    objects.insert(absent);
    objects.remove(&ds[3]);
    let c = check_bundle(&b, &objects, trusted);
    assert_eq!((c.missing, c.extra), (1, 1));
    assert_eq!(c.missing_examples, vec![absent.to_string()]);
    assert!(!c.complete());
    // A flipped bit in the last signature's last byte.
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let b = Bundle::parse(bytes).unwrap();
    let objects: BTreeSet<FsVerityDigest> = ds.iter().copied().collect();
    let c = check_bundle(&b, &objects, trusted);
    assert_eq!(c.bad, 1, "{}", c.summary());
    assert!(c.bad_examples[0].starts_with(&ds[19].to_string()));
    // Nobody trusted: the template's signer is unknown.
    let other = key(KeyAlgorithm::Rsa { bits: 2048 });
    let c = check_bundle(&b, &objects, std::slice::from_ref(&other.cert));
    assert!(c.untrusted_only && c.problem.is_some());
}

#[test]
fn parser_refusals() {
    let (_, good) = bundle_of(KeyAlgorithm::EcdsaP256, HashAlgorithm::Sha256, 3);
    let tlen = u32::from_le_bytes(good[16..20].try_into().unwrap()) as usize;
    let first_entry = 20 + tlen;
    let err = |b: Vec<u8>| Bundle::parse(b).unwrap_err().to_string();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    assert!(err(edit(&|b| b[0] = b'X')).contains("magic"));
    assert!(err(edit(&|b| b[8] = 2)).contains("format version 2"));
    assert!(err(edit(&|b| b[9] = 7)).contains("hash algorithm 7"));
    assert!(err(edit(&|b| b[10] = 40)).contains("block size"));
    assert!(err(edit(&|b| b[11] = 1)).contains("reserved"));
    assert!(err(edit(&|b| b[12..16].copy_from_slice(&0u32.to_le_bytes()))).contains("no entries"));
    assert!(
        err(edit(&|b| b[12..16].copy_from_slice(&u32::MAX.to_le_bytes()))).contains("cannot fit")
    );
    assert!(err(edit(&|b| b.push(0))).contains("after the last entry"));
    assert!(err(edit(&|b| b.truncate(b.len() - 1))).contains("truncated"));
    // The sha256 objects claimed to be sha512: the template disagrees.
    assert!(err(edit(&|b| b[9] = 2)).contains("template signs with sha256"));
    // Entry 0's digest moved after entry 1's: out of order.
    let e = err(edit(&|b| {
        let d1 = first_entry
            + 32
            + 2
            + u16::from_le_bytes([b[first_entry + 32], b[first_entry + 33]]) as usize;
        let second: Vec<u8> = b[d1..d1 + 32].to_vec();
        b[first_entry..first_entry + 32].copy_from_slice(&second);
    }));
    assert!(e.contains("strictly increasing"), "{e}");
    // Entry 0's signature is not the template's.
    let e = err(edit(&|b| {
        let s = first_entry + 34;
        b[s + 10] ^= 1;
    }));
    assert!(e.contains("entry 0's signature"), "{e}");
    assert!(err(b"SRObj".to_vec()).contains("shorter than its header"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Corrupting any byte, or cutting the bundle anywhere, never panics;
    /// what still parses still has sorted entries.
    #[test]
    fn mutations_never_panic(at in any::<prop::sample::Index>(), value in any::<u8>(), cut in any::<prop::sample::Index>()) {
        static GOOD: OnceLock<Vec<u8>> = OnceLock::new();
        let good = GOOD.get_or_init(|| bundle_of(KeyAlgorithm::EcdsaP256, HashAlgorithm::Sha256, 5).1);
        let mut b = good.clone();
        let i = at.index(b.len());
        b[i] = value;
        if let Ok(parsed) = Bundle::parse(b.clone()) {
            let ds: Vec<_> = parsed.iter().map(|(d, _)| d).collect();
            prop_assert!(ds.windows(2).all(|w| w[0] < w[1]));
            for d in &ds { let _ = parsed.pkcs7(d); }
        }
        b.truncate(cut.index(b.len()));
        let _ = Bundle::parse(b);
    }
}
