//! ECDSA P-256 signing with a precomputed table of multiples of the
//! generator, for signing many digests with one key (one signature per
//! content object when sealing, issue 11).
//!
//! Why it exists: `p256` 0.13 computes the nonce point k·G with the generic
//! variable-base multiplication (`primeorder` 0.13's `mul_by_generator` has
//! a "TODO: precomputed basepoint tables"), which costs about ten times what
//! OpenSSL's fixed-base code does. Here k·G is a sum of one table entry per
//! window: only mixed additions (`ProjectivePoint + AffinePoint`), no
//! doublings. The table is built once per process from
//! `ProjectivePoint::GENERATOR` with the crate's own arithmetic.
//!
//! What it guarantees:
//! - **Byte-identical output** to `p256::ecdsa::SigningKey::sign_prehash`
//!   (ecdsa 0.16): the same RFC 6979 nonce (HMAC-DRBG over SHA-256 keyed
//!   with the private scalar and `bits2field` of the prehash, no additional
//!   data), r = x(k·G) mod n, s = k⁻¹(z + r·d) mod n, s *not* normalized to
//!   the low half (p256 does not normalize either), the same DER encoding.
//!   The tests compare the two byte for byte.
//! - **Constant time in the nonce**: the scalar is recoded into signed
//!   digits without branches, every table entry of a window is read (and
//!   chosen with `subtle::ConditionallySelectable`), the zero digit selects
//!   the identity (which the complete addition formulas absorb) and the
//!   sign is applied with a conditional select. No branch or memory index
//!   depends on secret bits. The point normalization is the crate's
//!   constant-time one; k⁻¹ is computed on the blinded k·b (fresh random
//!   b), see [`invert_blinded`].
//!
//! No field or scalar arithmetic is written here: all of it is `p256`'s.

use std::sync::OnceLock;

use ecdsa::elliptic_curve::ops::{Invert, Reduce};
use ecdsa::elliptic_curve::point::AffineCoordinates;
use ecdsa::elliptic_curve::point::Double;
use ecdsa::elliptic_curve::subtle::{ConditionallySelectable, ConstantTimeEq};
use ecdsa::elliptic_curve::{Curve, Field, FieldBytesEncoding, PrimeField};
use p256::{AffinePoint, FieldBytes, NistP256, ProjectivePoint, Scalar, U256};
use zeroize::Zeroizing;

/// Bits per window. Signed digits in [−2^(W−1), 2^(W−1)] need 2^(W−1)
/// table entries per window. Wider windows trade mixed additions for
/// longer constant-time scans. Measured as the speed-up over p256 in the
/// same run (loaded 2-core host, two runs each): 3.5× at 4 bits, 3.7–3.8×
/// at 5, 3.6–3.8× at 6; 5 bits keeps the table (52 × 16 points, 60 KB)
/// quick to build (832 normalizations) and cache-resident.
const WINDOW_BITS: usize = 5;
/// Entries per window: 1·B … 2^(W−1)·B for the window's base B.
const ENTRIES: usize = 1 << (WINDOW_BITS - 1);
/// Windows: enough to hold a 257-bit value, so the carry out of the
/// top scalar window always lands in a window (k < n < 2^256).
const WINDOWS: usize = 257usize.div_ceil(WINDOW_BITS);

/// Window i holds j·2^(W·i)·G for j = 1 … ENTRIES.
type Table = [[AffinePoint; ENTRIES]; WINDOWS];

fn table() -> &'static Table {
    static TABLE: OnceLock<Box<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // p256's field element lacks the `Invert` trait that `primeorder`'s
        // batch normalization asks for, so each entry pays one inversion
        // (a few milliseconds for the whole table, once per process).
        let mut table = Box::new([[AffinePoint::IDENTITY; ENTRIES]; WINDOWS]);
        let mut base = ProjectivePoint::GENERATOR;
        for window in table.iter_mut() {
            let mut multiple = base;
            for entry in window.iter_mut() {
                *entry = multiple.to_affine();
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
pub(crate) fn mul_by_generator(k: &Scalar) -> ProjectivePoint {
    let table = table();
    let digits = signed_digits(&k.to_bytes());
    let mut acc = ProjectivePoint::IDENTITY;
    for (window, &digit) in table.iter().zip(digits.iter()) {
        let digit = i32::from(digit);
        let negative = (digit >> 31) & 1; // arithmetic shift: 0 or 1
        let magnitude = ((digit ^ -negative) + negative) as u8; // |digit|
        let mut point = AffinePoint::IDENTITY;
        for (j, entry) in window.iter().enumerate() {
            point.conditional_assign(entry, magnitude.ct_eq(&(j as u8 + 1)));
        }
        let negated = -point;
        point.conditional_assign(&negated, (negative as u8).into());
        acc += point;
    }
    acc
}

/// k⁻¹, in time independent of k. p256's constant-time `invert` is a
/// generic square-and-multiply that costs a third of a table-driven
/// signature, so the nonce is blinded instead: k⁻¹ = b·(k·b)⁻¹ with a
/// fresh uniformly random b ≠ 0 from the OS. k·b is then uniform and
/// independent of k, so the variable-time (Stein) inversion p256 offers,
/// documented as safe for blinded scalars, reveals nothing about k. The
/// value is the same as `k.invert()`, so signatures stay deterministic.
fn invert_blinded(k: &Scalar) -> Result<Scalar, SignError> {
    use rand_core::RngCore;
    let mut bytes = Zeroizing::new(FieldBytes::default());
    let b = loop {
        // Rejection sampling: uniform in [1, n), as `Scalar::random`, but
        // with RNG failures reported instead of panicking.
        rand_core::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SignError::Random(e.to_string()))?;
        let candidate = Option::<Scalar>::from(Scalar::from_repr(*bytes));
        if let Some(b) = candidate.filter(|b| !bool::from(b.is_zero())) {
            break b;
        }
    };
    // k ≠ 0 and b ≠ 0, so k·b ≠ 0 and the inverse exists.
    let kb_inv = Option::<Scalar>::from(Invert::invert_vartime(&(k * &b)))
        .ok_or(SignError::ZeroComponent)?;
    Ok(kb_inv * b)
}

/// Why a signature could not be made: the cases where
/// `p256::ecdsa::SigningKey::sign_prehash` fails, and the OS random number
/// generator failing (blinding, see [`invert_blinded`]).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The prehash is shorter than 16 bytes (its length).
    #[error("a prehash of {0} bytes is too short for P-256 (at least 16)")]
    ShortPrehash(usize),
    /// r or s came out zero (negligibly rare; p256 fails the same way).
    #[error("ECDSA produced r = 0 or s = 0 (retry with another digest)")]
    ZeroComponent,
    /// The OS random number generator failed (the reason).
    #[error("cannot read the OS random number generator (to blind the ECDSA nonce): {0}")]
    Random(String),
}

/// Signs `prehash` like `p256::ecdsa::SigningKey::sign_prehash` and returns
/// the DER `Ecdsa-Sig-Value` (the same bytes).
pub fn sign_prehash(key: &p256::ecdsa::SigningKey, prehash: &[u8]) -> Result<Vec<u8>, SignError> {
    // RFC 6979 § 2.3.2 bits2field: truncate or left-pad to 32 bytes.
    let z_bytes = ecdsa::hazmat::bits2field::<NistP256>(prehash)
        .map_err(|_| SignError::ShortPrehash(prehash.len()))?;
    let d: &Scalar = key.as_nonzero_scalar().as_ref();
    let d_bytes = Zeroizing::new(d.to_bytes());
    // As ecdsa 0.16's `SignPrimitive::try_sign_prehashed_rfc6979` with
    // p256's digest (SHA-256) and no additional data.
    let k_bytes = Zeroizing::new(rfc6979::generate_k::<sha2::Sha256, _>(
        &d_bytes,
        &NistP256::ORDER.encode_field_bytes(),
        &z_bytes,
        &[],
    ));
    // generate_k only returns 0 < k < n, so this is always Some.
    let k = Option::<Scalar>::from(Scalar::from_repr(*k_bytes)).ok_or(SignError::ZeroComponent)?;
    let k_inv = invert_blinded(&k)?;
    let big_r = mul_by_generator(&k).to_affine();
    let r = <Scalar as Reduce<U256>>::reduce_bytes(&big_r.x());
    let z = <Scalar as Reduce<U256>>::reduce_bytes(&z_bytes);
    let s = k_inv * (z + r * d);
    // from_scalars refuses r = 0 or s = 0, as p256 does.
    let signature =
        p256::ecdsa::Signature::from_scalars(r, s).map_err(|_| SignError::ZeroComponent)?;
    Ok(signature.to_der().as_bytes().to_vec())
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

    #[test]
    fn table_multiplication_matches_the_crate_for_edge_scalars() {
        for k in edge_scalars() {
            assert_eq!(
                mul_by_generator(&k).to_affine(),
                (ProjectivePoint::GENERATOR * k).to_affine(),
                "k = {:x?}",
                k.to_bytes()
            );
        }
        assert_eq!(
            mul_by_generator(&Scalar::ZERO),
            ProjectivePoint::IDENTITY,
            "0·G is the identity"
        );
    }

    #[test]
    fn digits_recombine_to_the_scalar() {
        // xorshift64: reproducible scalars spread over the whole range
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut random_scalar = || {
            let mut bytes = FieldBytes::default();
            for b in bytes.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            <Scalar as Reduce<U256>>::reduce_bytes(&bytes)
        };
        let radix = Scalar::from(1u64 << WINDOW_BITS);
        let mut scalars = edge_scalars();
        scalars.extend((0..200).map(|_| random_scalar()));
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
    fn blinded_inverse_is_the_inverse() {
        for k in edge_scalars() {
            let inverse = invert_blinded(&k).unwrap();
            assert_eq!(inverse, k.invert().unwrap(), "k = {:x?}", k.to_bytes());
            assert_eq!(inverse * k, Scalar::ONE);
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
    }
}
