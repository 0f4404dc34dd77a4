//! Per-object signatures (`sealroot::objsig`, docs/sealing.md "Object
//! signatures"): what one signature costs with each key type, on one core
//! and on all, and what the bundle format saves against storing every
//! PKCS#7 (zstd-compressed or not), for the import benchmark's shape
//! (SEALROOT_BENCH_OBJSIG_OBJECTS, default 60,000 objects). Also the
//! userspace cost of the first boot: rebuilding every object's PKCS#7 from
//! the bundle.
//!
//! Run: `cargo bench --bench objsig`.

use std::time::Instant;

use rayon::prelude::*;
use sealroot::crypto::builder::{Issuer, Role, issue};
use sealroot::crypto::key::KeySigner;
use sealroot::crypto::{KeyAlgorithm, PrivateKey};
use sealroot::objsig::{Bundle, build};
use sealroot::pkcs7::{SignOptions, sign_fsverity};
use sealroot::verity::{BlockSize, FsVerityDigest, HashAlgorithm};

fn main() {
    let n: usize = std::env::var("SEALROOT_BENCH_OBJSIG_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    let mut x = 0x5eed_u64;
    let mut digests: Vec<FsVerityDigest> = (0..n)
        .map(|_| {
            let mut d = [0u8; 32];
            for c in d.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes());
            }
            FsVerityDigest::new(HashAlgorithm::Sha256, &d).unwrap()
        })
        .collect();
    digests.sort();
    digests.dedup();
    let cores = rayon::current_num_threads();
    println!("{} objects, {cores} cores", digests.len());
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa { bits: 2048 }] {
        let key = PrivateKey::generate(alg).unwrap();
        let cert = issue(&key, "CN=bench", Role::Signer, Issuer::SelfSigned, 30).unwrap();
        let signer = KeySigner::new(key, "bench");
        let options = SignOptions::default();
        // One core, a sample.
        let sample = &digests[..digests.len().min(200)];
        let t = Instant::now();
        for d in sample {
            std::hint::black_box(sign_fsverity(d, &signer, &cert, &options).unwrap());
        }
        let full = t.elapsed().as_secs_f64() / sample.len() as f64;
        // All cores: the bundle as `oci seal --object-signatures` makes it.
        let t = Instant::now();
        let bundle = build::sign_objects(
            &digests,
            BlockSize::DEFAULT,
            &signer,
            &cert,
            &options,
            None,
            &|| {},
        )
        .unwrap();
        let wall = t.elapsed().as_secs_f64();
        let parsed = Bundle::parse(bundle.clone()).unwrap();
        // What storing every message would take: each with the digest it
        // is for (any store needs that index), then zstd over all.
        let t = Instant::now();
        let all: Vec<Vec<u8>> = digests
            .par_iter()
            .map(|d| parsed.pkcs7(d).unwrap())
            .collect();
        let rebuild = t.elapsed().as_secs_f64();
        let concat: Vec<u8> = digests
            .iter()
            .zip(&all)
            .flat_map(|(d, m)| d.as_bytes().iter().chain(m.iter()).copied())
            .collect();
        let zstd_all = zstd::bulk::compress(&concat, 19).unwrap().len();
        let zstd_bundle = zstd::bulk::compress(&bundle, 19).unwrap().len();
        let mb = |b: usize| b as f64 / 1e6;
        println!(
            "{alg}: sign_fsverity (full message, self-checked) {:.0} us/object on one core; \
             bundle signing {:.2} s wall = {:.0} us/object on {cores} cores\n  \
             bundle {:.2} MB ({:.0} B/object), zstd -19 of it {:.2} MB; every digest + PKCS#7 \
             {:.2} MB, zstd -19 {:.2} MB\n  rebuilding every PKCS#7 from the bundle: {:.0} ms",
            full * 1e6,
            wall,
            wall * 1e6 / digests.len() as f64 * cores as f64,
            mb(bundle.len()),
            bundle.len() as f64 / digests.len() as f64,
            mb(zstd_bundle),
            mb(concat.len()),
            mb(zstd_all),
            rebuild * 1e3
        );
    }
}
