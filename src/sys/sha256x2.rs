//! Two SHA-256 computations interleaved on the x86 SHA extensions (SHA-NI).
//!
//! fs-verity hashes every data block independently, so two blocks can be
//! hashed at once. One SHA-NI stream is bound by the latency of
//! `sha256rnds2`; two independent streams keep the unit busy and run close
//! to twice as fast on CPUs where its throughput exceeds 1/latency. Linux
//! does the same for fs-verity (`sha256_finup_2x()` in `lib/crypto/x86/`).
//!
//! The round structure follows the Intel SHA Extensions reference (Intel,
//! "New Instructions Supporting the Secure Hash Algorithm on Intel
//! Architecture Processors", 2013): state kept as ABEF/CDGH, message
//! schedule by `sha256msg1`/`sha256msg2`. The single-stream compression is
//! the `sha2` crate's; this is only the paired form. Correctness is checked
//! against `sha2` in the tests below and, through the digest code, against
//! fsverity-utils.

/// Whether [`compress_x2`] can run on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs the SHA-256 compression function over `a` into `states[0]` and over
/// `b` into `states[1]`, two streams interleaved. `a` and `b` must have the
/// same length, a multiple of 64 bytes.
///
/// # Panics
/// If the lengths differ or are not multiples of 64, or if [`available`]
/// is false (callers check it once and fall back to `sha2`).
pub fn compress_x2(states: &mut [[u32; 8]; 2], a: &[u8], b: &[u8]) {
    compress(states, [a, b]);
}

/// One stream of the same code: the SHA-256 compression function over
/// `data` (a multiple of 64 bytes) into `state`. Same panics as
/// [`compress_x2`].
pub fn compress_x1(state: &mut [u32; 8], data: &[u8]) {
    compress(std::array::from_mut(state), [data]);
}

fn compress<const N: usize>(states: &mut [[u32; 8]; N], data: [&[u8]; N]) {
    let len = data[0].len();
    assert!(
        len % 64 == 0 && data.iter().all(|d| d.len() == len),
        "bad block lengths"
    );
    assert!(available(), "SHA-NI not available");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available()` confirmed the CPU has the SHA, SSE4.1 and SSSE3
    // extensions the function is compiled for; the slices hold whole 64-byte
    // blocks of equal count (checked above) and are only read through
    // unaligned loads.
    unsafe {
        x86::compress(states, data)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// SHA-256 round constants, FIPS 180-4 section 4.2.2.
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Loads state words a..h into the ABEF / CDGH register layout.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn load_state(s: &[u32; 8]) -> (__m128i, __m128i) {
        // SAFETY: `s` is 32 readable bytes; loadu has no alignment needs.
        let (dcba, hgfe) = unsafe {
            (
                _mm_loadu_si128(s.as_ptr().cast()),
                _mm_loadu_si128(s.as_ptr().add(4).cast()),
            )
        };
        let cdab = _mm_shuffle_epi32(dcba, 0xb1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1b);
        let abef = _mm_alignr_epi8(cdab, efgh, 8);
        let cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);
        (abef, cdgh)
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn store_state(abef: __m128i, cdgh: __m128i, s: &mut [u32; 8]) {
        let feba = _mm_shuffle_epi32(abef, 0x1b);
        let dchg = _mm_shuffle_epi32(cdgh, 0xb1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xf0);
        let hgfe = _mm_alignr_epi8(dchg, feba, 8);
        // SAFETY: `s` is 32 writable bytes; storeu has no alignment needs.
        unsafe {
            _mm_storeu_si128(s.as_mut_ptr().cast(), dcba);
            _mm_storeu_si128(s.as_mut_ptr().add(4).cast(), hgfe);
        }
    }

    /// Four rounds: `wk` holds W[t..t+4] + K[t..t+4].
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn rounds4(abef: &mut __m128i, cdgh: &mut __m128i, wk: __m128i) {
        *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
        *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0e));
    }

    /// The message schedule's next four words from the previous sixteen.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
        let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
        _mm_sha256msg2_epu32(t, w3)
    }

    /// `N` interleaved streams: `states[i]` absorbs `data[i]`. All slices
    /// have the same length, a multiple of 64 (checked by the callers).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress<const N: usize>(states: &mut [[u32; 8]; N], data: [&[u8]; N]) {
        let bswap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let mut abef = [_mm_setzero_si128(); N];
        let mut cdgh = [_mm_setzero_si128(); N];
        for i in 0..N {
            (abef[i], cdgh[i]) = load_state(&states[i]);
        }
        let blocks = data[0].len() / 64;
        // Four rounds of every stream on message words `w` (+ K[4g..4g+4]).
        let quad =
            |abef: &mut [__m128i; N], cdgh: &mut [__m128i; N], w: &[__m128i; N], g: usize| {
                // SAFETY: K has 64 entries and g < 16, so 4g + 4 <= 64.
                let k = unsafe { _mm_loadu_si128(K.as_ptr().add(4 * g).cast()) };
                for i in 0..N {
                    rounds4(&mut abef[i], &mut cdgh[i], _mm_add_epi32(w[i], k));
                }
            };
        // The next four schedule words of every stream, into `w0`.
        let next =
            |w0: &mut [__m128i; N], w1: &[__m128i; N], w2: &[__m128i; N], w3: &[__m128i; N]| {
                for i in 0..N {
                    w0[i] = schedule(w0[i], w1[i], w2[i], w3[i]);
                }
            };
        for blk in 0..blocks {
            let (save_abef, save_cdgh) = (abef, cdgh);
            let load = |j: usize| {
                let mut w = [_mm_setzero_si128(); N];
                for i in 0..N {
                    // SAFETY: every slice holds `blocks` whole 64-byte
                    // blocks, so 64 * blk + 16 * j + 16 <= len; loadu has no
                    // alignment needs.
                    w[i] = unsafe {
                        _mm_shuffle_epi8(
                            _mm_loadu_si128(data[i].as_ptr().add(64 * blk + 16 * j).cast()),
                            bswap,
                        )
                    };
                }
                w
            };
            // Message words 0..16 in four registers per stream, rotated by
            // name so every index is a constant (no spills to memory).
            let (mut w0, mut w1, mut w2, mut w3) = (load(0), load(1), load(2), load(3));
            quad(&mut abef, &mut cdgh, &w0, 0);
            quad(&mut abef, &mut cdgh, &w1, 1);
            quad(&mut abef, &mut cdgh, &w2, 2);
            quad(&mut abef, &mut cdgh, &w3, 3);
            for g in [4, 8, 12] {
                next(&mut w0, &w1, &w2, &w3);
                quad(&mut abef, &mut cdgh, &w0, g);
                next(&mut w1, &w2, &w3, &w0);
                quad(&mut abef, &mut cdgh, &w1, g + 1);
                next(&mut w2, &w3, &w0, &w1);
                quad(&mut abef, &mut cdgh, &w2, g + 2);
                next(&mut w3, &w0, &w1, &w2);
                quad(&mut abef, &mut cdgh, &w3, g + 3);
            }
            for i in 0..N {
                abef[i] = _mm_add_epi32(abef[i], save_abef[i]);
                cdgh[i] = _mm_add_epi32(cdgh[i], save_cdgh[i]);
            }
        }
        for i in 0..N {
            store_state(abef[i], cdgh[i], &mut states[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 initial hash value, FIPS 180-4 section 5.3.3.
    const H0: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    /// SHA-256 of a whole number of 64-byte blocks through our compression.
    fn finish(mut state: [u32; 8], len: usize, compress: impl Fn(&mut [u32; 8], &[u8])) -> Vec<u8> {
        let mut pad = [0u8; 64];
        pad[0] = 0x80;
        pad[56..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
        compress(&mut state, &pad);
        state.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// Paired and single compression give the `sha2` crate's SHA-256.
    #[test]
    #[allow(clippy::print_stderr)] // says why the test checks nothing here
    fn matches_sha2() {
        use sha2::{Digest, Sha256};
        if !available() {
            eprintln!("no SHA-NI on this CPU: this code is unused here");
            return;
        }
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut data = vec![0u8; 64 * 70];
        for b in data.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        let (a, b) = data.split_at(64 * 35);
        for nblocks in [1usize, 2, 35] {
            let (a, b) = (&a[..64 * nblocks], &b[..64 * nblocks]);
            let mut paired = [H0, H0];
            compress_x2(&mut paired, a, b);
            let len = a.len();
            let x1 = |s: &mut [u32; 8], d: &[u8]| compress_x1(s, d);
            assert_eq!(finish(paired[0], len, x1), Sha256::digest(a).to_vec());
            assert_eq!(finish(paired[1], len, x1), Sha256::digest(b).to_vec());
            let mut single = H0;
            compress_x1(&mut single, a);
            assert_eq!(single, paired[0], "{nblocks} blocks, one stream");
        }
    }
}
