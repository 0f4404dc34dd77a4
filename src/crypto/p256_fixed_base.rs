//! ECDSA P-256 signing with a precomputed table of multiples of the
//! generator, in batches, for signing many digests with one key (one
//! signature per content object when sealing, issue 11).
//!
//! Why it exists: `p256` 0.13 computes the nonce point k·G with the generic
//! variable-base multiplication (`primeorder` 0.13's `mul_by_generator` has
//! a "TODO: precomputed basepoint tables"), which costs about ten times what
//! OpenSSL's fixed-base code does. Here k·G is a sum of one table entry per
//! window: only mixed additions, no doublings. The table is built once per
//! process from `ProjectivePoint::GENERATOR` with the crate's own
//! arithmetic.
//!
//! Each signature needs two inversions: R = k·G to affine coordinates
//! (x = X/Z, a field inversion) and k⁻¹ (a scalar inversion); profiled one
//! by one, out of the 37% of a seal's CPU that signing took, 16% was field
//! multiplication (much of it that inversion) and 6% k⁻¹, so
//! [`sign_prehashes`] shares them across a batch with Montgomery's trick
//! (`ff::BatchInverter`: one inversion and three multiplications per
//! element). `p256` keeps a projective point's coordinates private, so the
//! accumulation runs on `Projective`, this module's (X:Y:Z) point, with the
//! complete mixed addition of Renes, Costello and Batina (Algorithm 5) over
//! `p256`'s field elements (feature `expose-field`); the tests compare it
//! with the crate's own addition.
//!
//! What it guarantees:
//! - **Byte-identical output** to `p256::ecdsa::SigningKey::sign_prehash`
//!   (ecdsa 0.16), whatever the batch: the same RFC 6979 nonce (HMAC-DRBG
//!   over SHA-256 keyed with the private scalar and `bits2field` of the
//!   prehash, no additional data), r = x(k·G) mod n, s = k⁻¹(z + r·d) mod
//!   n, s *not* normalized to the low half (p256 does not normalize
//!   either), the same DER encoding. The tests compare the two byte for
//!   byte, and batches with one-by-one signing.
//! - **Constant time in the nonces**: the scalar is recoded into signed
//!   digits without branches, every table entry of a window is read (and
//!   chosen with `subtle::ConditionallySelectable`), a zero digit keeps the
//!   accumulator with a conditional select and the sign is applied with
//!   one. Both batch inversions are the crates' constant-time ones (Fermat:
//!   a fixed exponentiation) applied to the product of the batch, and
//!   Montgomery's trick only multiplies and selects (`ff`'s zero check is a
//!   constant-time select). No branch or memory index depends on secret
//!   bits, so no blinding is needed (the one-by-one signer used to blind k
//!   for a variable-time inversion; one constant-time inversion per batch
//!   costs less).
//!
//! No field or scalar arithmetic is written here: all of it is `p256`'s.

use std::sync::OnceLock;

use ecdsa::elliptic_curve::ff::BatchInverter;
use ecdsa::elliptic_curve::ops::Reduce;
use ecdsa::elliptic_curve::point::Double;
use ecdsa::elliptic_curve::sec1::ToEncodedPoint;
use ecdsa::elliptic_curve::subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use ecdsa::elliptic_curve::{Curve, FieldBytesEncoding, PrimeField};
use p256::{FieldBytes, FieldElement, NistP256, ProjectivePoint, Scalar, U256};
use primeorder::PrimeCurveParams;
use zeroize::Zeroizing;

/// Bits per window. Signed digits in [−2^(W−1), 2^(W−1)] need 2^(W−1)
/// table entries per window. Wider windows trade mixed additions for
/// longer constant-time scans. Measured as the speed-up over p256 in the
/// same run (loaded 2-core host, two runs each): 3.5× at 4 bits, 3.7–3.8×
/// at 5, 3.6–3.8× at 6; 5 bits keeps the table (52 × 16 points, 52 KB)
/// quick to build (832 normalizations) and cache-resident.
const WINDOW_BITS: usize = 5;
/// Entries per window: 1·B … 2^(W−1)·B for the window's base B.
const ENTRIES: usize = 1 << (WINDOW_BITS - 1);
/// Windows: enough to hold a 257-bit value, so the carry out of the
/// top scalar window always lands in a window (k < n < 2^256).
const WINDOWS: usize = 257usize.div_ceil(WINDOW_BITS);

/// Signatures [`sign_prehashes`] computes together. A constant-time
/// inversion is a fixed exponentiation of some 300 to 450 multiplications;
/// shared by 128 it costs each signature a few, against about 600 field
/// multiplications in its 52 mixed additions, while a batch is still
/// small work for a thread (callers hand batches of this size to their
/// threads).
pub const BATCH: usize = 128;

/// A point on the curve (x, y), never the identity: the table's entries.
#[derive(Clone, Copy, Debug, Default)]
struct Affine {
    x: FieldElement,
    y: FieldElement,
}

impl ConditionallySelectable for Affine {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Affine {
            x: FieldElement::conditional_select(&a.x, &b.x, choice),
            y: FieldElement::conditional_select(&a.y, &b.y, choice),
        }
    }
}

/// A point in projective coordinates (X:Y:Z), x = X/Z and y = Y/Z; the
/// identity is (0:1:0). `p256`'s `ProjectivePoint` is the same thing with
/// private fields; this one lets a batch read every Z.
#[derive(Clone, Copy, Debug)]
struct Projective {
    x: FieldElement,
    y: FieldElement,
    z: FieldElement,
}

impl ConditionallySelectable for Projective {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Projective {
            x: FieldElement::conditional_select(&a.x, &b.x, choice),
            y: FieldElement::conditional_select(&a.y, &b.y, choice),
            z: FieldElement::conditional_select(&a.z, &b.z, choice),
        }
    }
}

impl Projective {
    const IDENTITY: Projective = Projective {
        x: FieldElement::ZERO,
        y: FieldElement::ONE,
        z: FieldElement::ZERO,
    };

    /// self + q, complete (any self, the identity and q itself included;
    /// q is never the identity): Renes, Costello, Batina, "Complete
    /// addition formulas for prime order elliptic curves" (EUROCRYPT 2016,
    /// eprint 2015/1060), Algorithm 5, mixed addition for a = −3, step by
    /// step (the numbers are the paper's). 11 multiplications, 2 of them
    /// by b; no branch.
    fn add_mixed(&self, q: &Affine) -> Projective {
        let b = <NistP256 as PrimeCurveParams>::EQUATION_B;
        let (x1, y1, z1) = (self.x, self.y, self.z);
        let (x2, y2) = (q.x, q.y);
        let mut t0 = x1 * x2; // 1
        let mut t1 = y1 * y2; // 2
        let mut t3 = x2 + y2; // 3
        let mut t4 = x1 + y1; // 4
        t3 *= t4; // 5
        t4 = t0 + t1; // 6
        t3 -= t4; // 7
        t4 = y2 * z1; // 8
        t4 += y1; // 9
        let mut y3 = x2 * z1; // 10
        y3 += x1; // 11
        let mut z3 = b * z1; // 12
        let mut x3 = y3 - z3; // 13
        z3 = x3 + x3; // 14
        x3 += z3; // 15
        z3 = t1 - x3; // 16
        x3 += t1; // 17
        y3 *= b; // 18
        t1 = z1 + z1; // 19
        let t2 = t1 + z1; // 20
        y3 -= t2; // 21
        y3 -= t0; // 22
        t1 = y3 + y3; // 23
        y3 += t1; // 24
        t1 = t0 + t0; // 25
        t0 += t1; // 26
        t0 -= t2; // 27
        t1 = t4 * y3; // 28
        let t2 = t0 * y3; // 29
        y3 = x3 * z3; // 30
        y3 += t2; // 31
        x3 *= t3; // 32
        x3 -= t1; // 33
        z3 *= t4; // 34
        t1 = t3 * t0; // 35
        z3 += t1; // 36
        Projective {
            x: x3,
            y: y3,
            z: z3,
        }
    }
}

/// Window i holds j·2^(W·i)·G for j = 1 … ENTRIES.
type Table = [[Affine; ENTRIES]; WINDOWS];

fn table() -> &'static Table {
    static TABLE: OnceLock<Box<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Built with p256's own arithmetic and normalization (one inversion
        // per entry, a few milliseconds once per process); the coordinates
        // are read from the uncompressed SEC1 encoding.
        let mut table = Box::new([[Affine::default(); ENTRIES]; WINDOWS]);
        let mut base = ProjectivePoint::GENERATOR;
        for window in table.iter_mut() {
            let mut multiple = base;
            for entry in window.iter_mut() {
                let encoded = multiple.to_affine().to_encoded_point(false);
                let coordinate = |c: Option<&FieldBytes>| {
                    // j·2^(W·i)·G with 0 < j·2^(W·i) < n is never the
                    // identity, so both coordinates are there and reduced.
                    let bytes = c.expect("a multiple of G below n has coordinates");
                    Option::<FieldElement>::from(FieldElement::from_bytes(bytes))
                        .expect("p256 encodes reduced coordinates")
                };
                *entry = Affine {
                    x: coordinate(encoded.x()),
                    y: coordinate(encoded.y()),
                };
                multiple += base;
            }
            for _ in 0..WINDOW_BITS {
                base = base.double();
            }
        }
        table
    })
}

/// Signed base-2^W digits of the big-endian scalar `k`: digit i in
/// [−2^(W−1), 2^(W−1)], k = Σ digit_i·2^(W·i). Branch-free: bit positions
/// are public, values are only shifted, masked and added.
fn signed_digits(k: &FieldBytes) -> Zeroizing<[i8; WINDOWS]> {
    let bit = |pos: usize| -> i32 {
        if pos >= 256 {
            0 // public: the position, not the value
        } else {
            i32::from((k[31 - pos / 8] >> (pos % 8)) & 1)
        }
    };
    let mut digits = Zeroizing::new([0i8; WINDOWS]);
    let mut carry = 0i32;
    for (i, digit) in digits.iter_mut().enumerate() {
        let mut value = carry;
        for b in 0..WINDOW_BITS {
            value += bit(WINDOW_BITS * i + b) << b;
        }
        // value ∈ [0, 2^W]; values of 2^(W−1) and more borrow from the
        // next window: carry = 1, digit = value − 2^W ∈ [−2^(W−1), 0].
        carry = (value + (1 << (WINDOW_BITS - 1))) >> WINDOW_BITS;
        *digit = (value - (carry << WINDOW_BITS)) as i8;
    }
    digits
}

/// k·G from the table, constant time in `k`.
fn mul_by_generator(k: &Scalar) -> Projective {
    let table = table();
    let digits = signed_digits(&Zeroizing::new(k.to_bytes()));
    let mut acc = Projective::IDENTITY;
    for (window, &digit) in table.iter().zip(digits.iter()) {
        let digit = i32::from(digit);
        let negative = (digit >> 31) & 1; // arithmetic shift: 0 or 1
        let magnitude = ((digit ^ -negative) + negative) as u8; // |digit|
        let mut point = Affine::default();
        for (j, entry) in window.iter().enumerate() {
            point.conditional_assign(entry, magnitude.ct_eq(&(j as u8 + 1)));
        }
        point
            .y
            .conditional_assign(&-point.y, Choice::from(negative as u8));
        // A zero digit adds nothing: the sum (with a meaningless point)
        // is computed all the same and dropped by the select.
        let sum = acc.add_mixed(&point);
        acc.conditional_assign(&sum, !magnitude.ct_eq(&0));
    }
    acc
}

/// Why a signature could not be made: the cases where
/// `p256::ecdsa::SigningKey::sign_prehash` fails.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The prehash is shorter than 16 bytes (its length).
    #[error("a prehash of {0} bytes is too short for P-256 (at least 16)")]
    ShortPrehash(usize),
    /// r or s came out zero (negligibly rare; p256 fails the same way).
    #[error("ECDSA produced r = 0 or s = 0 (retry with another digest)")]
    ZeroComponent,
}

/// Signs `prehash` like `p256::ecdsa::SigningKey::sign_prehash` and returns
/// the DER `Ecdsa-Sig-Value` (the same bytes). For many prehashes,
/// [`sign_prehashes`] is faster.
pub fn sign_prehash(key: &p256::ecdsa::SigningKey, prehash: &[u8]) -> Result<Vec<u8>, SignError> {
    let mut signed = Vec::with_capacity(1);
    sign_batch(key, &[prehash], &mut signed);
    signed.pop().unwrap_or(Err(SignError::ZeroComponent))
}

/// Signs every prehash of `prehashes` like
/// `p256::ecdsa::SigningKey::sign_prehash` (the same DER bytes as signing
/// them one by one), [`BATCH`] at a time; one result per prehash, in
/// order. One thread: callers spread batches over threads.
pub fn sign_prehashes<P: AsRef<[u8]>>(
    key: &p256::ecdsa::SigningKey,
    prehashes: &[P],
) -> Vec<Result<Vec<u8>, SignError>> {
    let mut signed = Vec::with_capacity(prehashes.len());
    let mut batch: Vec<&[u8]> = Vec::with_capacity(BATCH.min(prehashes.len()));
    for chunk in prehashes.chunks(BATCH) {
        batch.clear();
        batch.extend(chunk.iter().map(AsRef::as_ref));
        sign_batch(key, &batch, &mut signed);
    }
    signed
}

/// One nonce of a batch: what its signature needs after the inversions.
struct Nonce {
    /// Index into the batch.
    index: usize,
    /// The prehash reduced mod n.
    z: Scalar,
    /// k, then k⁻¹ after the batch inversion.
    k: Scalar,
    /// X of R = k·G.
    x: FieldElement,
    /// Z of R, then 1/Z after the batch inversion.
    z_r: FieldElement,
    /// Montgomery's trick's running products.
    k_scratch: Scalar,
    z_scratch: FieldElement,
}

impl Drop for Nonce {
    fn drop(&mut self) {
        // k, k⁻¹ and products of nonces give the private key away with
        // the signatures.
        zeroize::Zeroize::zeroize(&mut self.k);
        zeroize::Zeroize::zeroize(&mut self.k_scratch);
    }
}

/// Signs `prehashes` (a batch: every inversion is shared) and appends one
/// result each to `out`.
fn sign_batch(
    key: &p256::ecdsa::SigningKey,
    prehashes: &[&[u8]],
    out: &mut Vec<Result<Vec<u8>, SignError>>,
) {
    let d: &Scalar = key.as_nonzero_scalar().as_ref();
    let d_bytes = Zeroizing::new(d.to_bytes());
    let order = NistP256::ORDER.encode_field_bytes();
    let first = out.len();
    let mut nonces = Vec::with_capacity(prehashes.len());
    for (index, prehash) in prehashes.iter().enumerate() {
        // Replaced below unless the prehash is refused.
        out.push(Err(SignError::ZeroComponent));
        // RFC 6979 § 2.3.2 bits2field: truncate or left-pad to 32 bytes.
        let Ok(z_bytes) = ecdsa::hazmat::bits2field::<NistP256>(prehash) else {
            out[first + index] = Err(SignError::ShortPrehash(prehash.len()));
            continue;
        };
        // As ecdsa 0.16's `SignPrimitive::try_sign_prehashed_rfc6979` with
        // p256's digest (SHA-256) and no additional data.
        let k_bytes = Zeroizing::new(rfc6979::generate_k::<sha2::Sha256, _>(
            &d_bytes,
            &order,
            &z_bytes,
            &[],
        ));
        // generate_k only returns 0 < k < n, so this is always Some.
        let Some(k) = Option::<Scalar>::from(Scalar::from_repr(*k_bytes)) else {
            continue;
        };
        let big_r = mul_by_generator(&k);
        nonces.push(Nonce {
            index,
            z: <Scalar as Reduce<U256>>::reduce_bytes(&z_bytes),
            k,
            x: big_r.x,
            z_r: big_r.z,
            k_scratch: Scalar::ZERO,
            z_scratch: FieldElement::ZERO,
        });
    }
    // Montgomery's trick with the crates' constant-time inversions (see the
    // module comment). A zero is left zero: Z = 0 is R at infinity, whose
    // x p256 takes as 0, so r = 0 is refused below as p256 refuses it; k is
    // never 0.
    BatchInverter::invert_with_internal_scratch(&mut nonces, z_of_r, z_scratch);
    BatchInverter::invert_with_internal_scratch(&mut nonces, nonce, k_scratch);
    for n in &nonces {
        let x = n.x * n.z_r;
        let r = <Scalar as Reduce<U256>>::reduce_bytes(&x.to_bytes());
        let s = n.k * (n.z + r * d);
        // from_scalars refuses r = 0 or s = 0, as p256 does.
        out[first + n.index] = p256::ecdsa::Signature::from_scalars(r, s)
            .map(|signature| signature.to_der().as_bytes().to_vec())
            .map_err(|_| SignError::ZeroComponent);
    }
}

// Accessors for `BatchInverter` (closures cannot state that the result
// borrows from the argument).
fn z_of_r(n: &mut Nonce) -> &mut FieldElement {
    &mut n.z_r
}
fn z_scratch(n: &mut Nonce) -> &mut FieldElement {
    &mut n.z_scratch
}
fn nonce(n: &mut Nonce) -> &mut Scalar {
    &mut n.k
}
fn k_scratch(n: &mut Nonce) -> &mut Scalar {
    &mut n.k_scratch
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use signature::hazmat::PrehashSigner;

    fn expected(key: &p256::ecdsa::SigningKey, prehash: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = key.sign_prehash(prehash).unwrap();
        sig.to_der().as_bytes().to_vec()
    }

    /// A scalar whose every W-bit window below bit 248 holds `digit`
    /// (the top byte stays zero, so it is below n).
    fn every_window(digit: u8) -> Scalar {
        let mut bytes = FieldBytes::default();
        for pos in 0..248 {
            if (digit >> (pos % WINDOW_BITS)) & 1 == 1 {
                bytes[31 - pos / 8] |= 1 << (pos % 8);
            }
        }
        Option::<Scalar>::from(Scalar::from_repr(bytes)).unwrap()
    }

    /// Edge scalars: 1, 2, small ones, n−1, n−2, a top bit alone, values
    /// with whole zero windows, windows all at the digit boundary 2^(W−1)
    /// (each borrows from the next), just below it (none does) and all
    /// ones (carry chains), and values around the boundary.
    fn edge_scalars() -> Vec<Scalar> {
        let half = 1u64 << (WINDOW_BITS - 1);
        let mut v: Vec<Scalar> = [
            1u64,
            2,
            3,
            half - 1,
            half,
            half + 1,
            2 * half - 1,
            2 * half,
            2 * half + 1,
            0xffff,
            1 << 63,
        ]
        .into_iter()
        .map(Scalar::from)
        .collect();
        v.push(-Scalar::ONE);
        v.push(-Scalar::from(2u64));
        v.push(-Scalar::from(half));
        for digit in [half as u8, half as u8 - 1, (2 * half - 1) as u8, 1] {
            v.push(every_window(digit));
        }
        let from_hex = |h: &str| {
            let mut bytes = FieldBytes::default();
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
            }
            Option::<Scalar>::from(Scalar::from_repr(bytes)).unwrap()
        };
        // top bit set, everything else zero (zero windows throughout)
        v.push(from_hex(
            "8000000000000000000000000000000000000000000000000000000000000000",
        ));
        // zero windows between set bits
        v.push(from_hex(
            "8000000f00000000000000008000000000000000000000000000000000000001",
        ));
        // nearly all ones below n (n = ffffffff00000000ffff…)
        v.push(from_hex(
            "fffffffeffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ));
        v
    }

    /// `p` in p256's own affine type (the identity when Z = 0), through
    /// the uncompressed SEC1 encoding.
    fn to_p256(p: &Projective) -> p256::AffinePoint {
        let Some(z_inv) = Option::<FieldElement>::from(p.z.invert()) else {
            return p256::AffinePoint::IDENTITY;
        };
        let encoded = p256::EncodedPoint::from_affine_coordinates(
            &(p.x * z_inv).to_bytes(),
            &(p.y * z_inv).to_bytes(),
            false,
        );
        use ecdsa::elliptic_curve::sec1::FromEncodedPoint;
        Option::<p256::AffinePoint>::from(p256::AffinePoint::from_encoded_point(&encoded))
            .expect("the point is on the curve")
    }

    /// xorshift64: reproducible scalars spread over the whole range.
    struct Xorshift(u64);
    impl Xorshift {
        fn bytes<const N: usize>(&mut self) -> [u8; N] {
            let mut out = [0u8; N];
            for b in out.iter_mut() {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                *b = self.0 as u8;
            }
            out
        }
        fn scalar(&mut self) -> Scalar {
            <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(self.bytes::<32>()))
        }
    }

    #[test]
    fn mixed_addition_matches_the_crate() {
        let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
        let entry = |k: &Scalar| {
            let p = mul_by_generator(k);
            let z_inv = p.z.invert().unwrap();
            Affine {
                x: p.x * z_inv,
                y: p.y * z_inv,
            }
        };
        for _ in 0..64 {
            let (a, b) = (rng.scalar(), rng.scalar());
            let q = entry(&b);
            let q_p256 = (ProjectivePoint::GENERATOR * b).to_affine();
            // P in projective coordinates with a random Z: X, Y, Z scaled
            // by the same λ stand for the same point.
            let lambda = FieldElement::from_bytes(&FieldBytes::from(rng.bytes::<32>()))
                .unwrap_or(FieldElement::ONE);
            let p = mul_by_generator(&a);
            let scaled = Projective {
                x: p.x * lambda,
                y: p.y * lambda,
                z: p.z * lambda,
            };
            let expected = (ProjectivePoint::GENERATOR * a + q_p256).to_affine();
            assert_eq!(to_p256(&p.add_mixed(&q)), expected);
            assert_eq!(to_p256(&scaled.add_mixed(&q)), expected);
            // The exceptional cases of incomplete formulas: the identity
            // plus Q, Q plus Q (a doubling), −Q plus Q (the identity).
            assert_eq!(to_p256(&Projective::IDENTITY.add_mixed(&q)), q_p256);
            let q_proj = mul_by_generator(&b);
            assert_eq!(
                to_p256(&q_proj.add_mixed(&q)),
                (ProjectivePoint::GENERATOR * (b + b)).to_affine()
            );
            assert_eq!(
                to_p256(&mul_by_generator(&-b).add_mixed(&q)),
                p256::AffinePoint::IDENTITY
            );
        }
    }

    #[test]
    fn table_multiplication_matches_the_crate_for_edge_scalars() {
        for k in edge_scalars() {
            assert_eq!(
                to_p256(&mul_by_generator(&k)),
                (ProjectivePoint::GENERATOR * k).to_affine(),
                "k = {:x?}",
                k.to_bytes()
            );
        }
        assert_eq!(
            to_p256(&mul_by_generator(&Scalar::ZERO)),
            p256::AffinePoint::IDENTITY,
            "0·G is the identity"
        );
    }

    #[test]
    fn digits_recombine_to_the_scalar() {
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        let radix = Scalar::from(1u64 << WINDOW_BITS);
        let mut scalars = edge_scalars();
        scalars.extend((0..200).map(|_| rng.scalar()));
        for k in scalars {
            let digits = signed_digits(&k.to_bytes());
            let mut sum = Scalar::ZERO;
            for &d in digits.iter().rev() {
                assert!(i32::from(d).unsigned_abs() as usize <= ENTRIES);
                let magnitude = Scalar::from(u64::from(d.unsigned_abs()));
                sum = sum * radix + if d < 0 { -magnitude } else { magnitude };
            }
            assert_eq!(sum, k);
        }
    }

    #[test]
    fn same_bytes_as_p256_for_edge_prehashes() {
        let key = p256::ecdsa::SigningKey::from_bytes(&FieldBytes::from([0x11; 32])).unwrap();
        // 16 bytes (shortest accepted), 32, 48 and 64 (truncated), all
        // zeros, all ones (≥ n, reduced).
        for prehash in [
            vec![0u8; 16],
            vec![0x5a; 16],
            vec![0u8; 32],
            vec![0xff; 32],
            vec![0xa5; 48],
            vec![0x3c; 64],
        ] {
            assert_eq!(
                sign_prehash(&key, &prehash).unwrap(),
                expected(&key, &prehash),
                "prehash {prehash:x?}"
            );
        }
        assert!(matches!(
            sign_prehash(&key, &[0u8; 15]),
            Err(SignError::ShortPrehash(15))
        ));
        assert!(
            key.sign_prehash(&[0u8; 15])
                .map(|_: p256::ecdsa::Signature| ())
                .is_err()
        );
    }

    /// Batches of every awkward size (1, odd, one short of and one past
    /// [`BATCH`], several batches) give, for several keys, the bytes of
    /// p256's signer and of signing one by one, in order.
    #[test]
    fn batches_sign_as_one_by_one() {
        let mut rng = Xorshift(0x1234_5678_9abc_def1);
        let prehashes: Vec<Vec<u8>> = (0..2 * BATCH + 3)
            .map(|i| match i % 5 {
                0 => rng.bytes::<16>().to_vec(),
                1 => rng.bytes::<48>().to_vec(),
                2 => rng.bytes::<64>().to_vec(),
                _ => rng.bytes::<32>().to_vec(),
            })
            .collect();
        for key_seed in 1..=4u8 {
            let key = p256::ecdsa::SigningKey::from_bytes(&FieldBytes::from(
                rng.bytes::<32>().map(|b| b ^ key_seed),
            ))
            .unwrap();
            let one_by_one: Vec<Vec<u8>> = prehashes
                .iter()
                .map(|p| sign_prehash(&key, p).unwrap())
                .collect();
            for (p, sig) in prehashes.iter().zip(&one_by_one) {
                assert_eq!(sig, &expected(&key, p));
            }
            for size in [1, 2, 3, 7, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH + 3] {
                let batch = sign_prehashes(&key, &prehashes[..size]);
                assert_eq!(batch.len(), size);
                for (i, signed) in batch.into_iter().enumerate() {
                    assert_eq!(signed.unwrap(), one_by_one[i], "size {size}, item {i}");
                }
            }
        }
    }

    /// A refused prehash fails alone; the rest of its batch is signed.
    #[test]
    fn a_short_prehash_fails_alone_in_its_batch() {
        let key = p256::ecdsa::SigningKey::from_bytes(&FieldBytes::from([0x22; 32])).unwrap();
        let prehashes: Vec<Vec<u8>> =
            vec![vec![1; 32], vec![2; 15], vec![3; 32], vec![], vec![4; 16]];
        let signed = sign_prehashes(&key, &prehashes);
        assert!(matches!(signed[1], Err(SignError::ShortPrehash(15))));
        assert!(matches!(signed[3], Err(SignError::ShortPrehash(0))));
        for i in [0, 2, 4] {
            assert_eq!(signed[i].as_ref().unwrap(), &expected(&key, &prehashes[i]));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn same_bytes_as_p256(
            secret in prop::array::uniform32(any::<u8>()),
            prehash in prop::collection::vec(any::<u8>(), 16..=64),
        ) {
            // Secrets ≥ n or 0 are not keys; p256 refuses them too.
            let Ok(key) = p256::ecdsa::SigningKey::from_bytes(&FieldBytes::from(secret)) else {
                return Ok(());
            };
            prop_assert_eq!(sign_prehash(&key, &prehash).unwrap(), expected(&key, &prehash));
        }

        #[test]
        fn batches_give_the_same_bytes_as_p256(
            secret in prop::array::uniform32(any::<u8>()),
            prehashes in prop::collection::vec(prop::collection::vec(any::<u8>(), 16..=64), 1..=40),
        ) {
            let Ok(key) = p256::ecdsa::SigningKey::from_bytes(&FieldBytes::from(secret)) else {
                return Ok(());
            };
            let signed = sign_prehashes(&key, &prehashes);
            prop_assert_eq!(signed.len(), prehashes.len());
            for (p, s) in prehashes.iter().zip(signed) {
                prop_assert_eq!(s.unwrap(), expected(&key, p));
            }
        }
    }
}
