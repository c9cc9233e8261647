//! Arithmetic in R_q: NTT plans, samplers and bit packing (the scalar
//! modular helpers of [`super::modular`] re-exported).
//!
//! A polynomial in RNS form is [`PRIMES`] residue vectors of length N, one per
//! prime of [`CIPHERTEXT_PRIMES`]. Products go through `tfhe-ntt` (negacyclic NTT,
//! AVX-512 / AVX2 / scalar chosen at run time). NTT outputs are unnormalised:
//! `inv(fwd(x)) = N·x`, so one factor of every product is stored multiplied by
//! N^−1 ("normalised"), which makes `inv(fwd(x) ⊙ norm(fwd(y))) = x·y`.

use std::sync::OnceLock;

use rand::RngCore;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tfhe_ntt::prime64::Plan;

pub(crate) use super::modular::{
    add_mod, inv_mod, lift_small, mul_mod, mul_shoup, reduce_i128, shoup, sub_mod,
};
use super::params::{CIPHERTEXT_PRIMES, ERROR_ETA, POLY_DEGREE, PRIMES};
use crate::{Error, Result};

/// NTT plans for every prime, built once per process.
pub(crate) struct Ntt {
    pub plans: [Plan; PRIMES],
}

/// The shared NTT plans.
pub(crate) fn ntt() -> &'static Ntt {
    static NTT: OnceLock<Ntt> = OnceLock::new();
    NTT.get_or_init(|| Ntt {
        plans: CIPHERTEXT_PRIMES.map(|p| {
            // The primes are fixed constants tested to be NTT-friendly.
            Plan::try_new(POLY_DEGREE, p).expect("CIPHERTEXT_PRIMES are NTT-friendly for N")
        }),
    })
}

/// Fills `out` with uniform residues modulo p by rejection sampling.
pub(crate) fn sample_uniform_mod<R: RngCore>(rng: &mut R, p: u64, out: &mut [u64]) {
    let mask = u64::MAX >> p.leading_zeros();
    for v in out.iter_mut() {
        *v = loop {
            let x = rng.next_u64() & mask;
            if x < p {
                break x;
            }
        };
    }
}

/// The public polynomial `a` of an RLWE sample, expanded from a 32-byte seed
/// and a per-ciphertext stream index, in coefficient form for every prime.
/// Client and server call this identically, so only the seed travels.
pub(crate) fn expand_a(seed: &[u8; 32], stream: u64, out: &mut [Vec<u64>; PRIMES]) {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    rng.set_stream(stream);
    for (i, o) in out.iter_mut().enumerate() {
        o.resize(POLY_DEGREE, 0);
        sample_uniform_mod(&mut rng, CIPHERTEXT_PRIMES[i], o);
    }
}

/// Centred binomial noise CBD(η): a sum of η fair ±1/2 pairs, |e| ≤ η.
pub(crate) fn sample_cbd<R: RngCore>(rng: &mut R, out: &mut [i64]) {
    const MASK: u64 = (1 << ERROR_ETA) - 1;
    for v in out.iter_mut() {
        let x = rng.next_u64();
        *v = (x & MASK).count_ones() as i64 - ((x >> ERROR_ETA) & MASK).count_ones() as i64;
    }
}

/// Uniform ternary coefficients in {−1, 0, 1}.
pub(crate) fn sample_ternary<R: RngCore>(rng: &mut R, out: &mut [i64]) {
    // 2^32 − 1 is a multiple of 3: accepting x < 2^32 − 1 makes x % 3 uniform.
    const LIMIT: u32 = u32::MAX;
    for v in out.iter_mut() {
        *v = loop {
            let x = rng.next_u32();
            if x < LIMIT {
                break (x % 3) as i64 - 1;
            }
        };
    }
}

/// Forward NTT of a small signed polynomial (|coefficients| < 2^49) into every prime.
pub(crate) fn small_to_ntt(coeffs: &[i64], out: &mut [Vec<u64>; PRIMES]) {
    let ntt = ntt();
    for (i, o) in out.iter_mut().enumerate() {
        let p = CIPHERTEXT_PRIMES[i];
        o.clear();
        o.extend(coeffs.iter().map(|&c| lift_small(c, p)));
        ntt.plans[i].fwd(o);
    }
}

/// Appends `values`, each below 2^bits, as a little-endian bit stream.
pub(crate) fn pack_bits(values: &[u64], bits: u32, out: &mut Vec<u8>) {
    debug_assert!((1..=64).contains(&bits));
    let mut acc: u128 = 0;
    let mut n: u32 = 0;
    for &v in values {
        debug_assert!(bits == 64 || v >> bits == 0);
        acc |= (v as u128) << n;
        n += bits;
        if n >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            n -= 64;
        }
    }
    while n > 0 {
        out.push(acc as u8);
        acc >>= 8;
        n = n.saturating_sub(8);
    }
}

/// Bytes taken by `count` values of `bits` bits.
pub(crate) fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

/// Reads `count` values of `bits` bits written by [`pack_bits`] from the front
/// of `bytes` (which must hold exactly [`packed_len`] bytes for them), rejecting
/// any value above `max` and non-zero padding bits as peer misbehaviour.
pub(crate) fn unpack_bits(
    bytes: &[u8],
    bits: u32,
    count: usize,
    max: u64,
    out: &mut Vec<u64>,
) -> Result<()> {
    if bytes.len() != packed_len(count, bits) {
        return Err(Error::malformed(format!(
            "packed field has {} bytes, expected {}",
            bytes.len(),
            packed_len(count, bits)
        )));
    }
    let mask: u128 = (1u128 << bits) - 1;
    let mut acc: u128 = 0;
    let mut n: u32 = 0;
    let mut it = bytes[bytes.len() - bytes.len() % 8..].iter();
    out.clear();
    out.reserve(count);
    let mut words = bytes.chunks_exact(8);
    for _ in 0..count {
        if n < bits {
            // Whole 64-bit words while they last, then the tail bytes; the
            // length was checked above, so the stream holds enough bits.
            if let Some(w) = words.next() {
                let mut le = [0u8; 8];
                le.copy_from_slice(w);
                acc |= (u64::from_le_bytes(le) as u128) << n;
                n += 64;
            } else {
                while n < bits {
                    let b = *it
                        .next()
                        .ok_or_else(|| Error::malformed("short packed field"))?;
                    acc |= (b as u128) << n;
                    n += 8;
                }
            }
        }
        let v = (acc & mask) as u64;
        acc >>= bits;
        n -= bits;
        if v > max {
            return Err(Error::malformed(format!(
                "packed value {v} exceeds its bound {max}"
            )));
        }
        out.push(v);
    }
    if acc != 0 || it.any(|&b| b != 0) || words.next().is_some() {
        return Err(Error::malformed("non-zero padding bits in packed field"));
    }
    Ok(())
}

/// Bit length of v (0 for 0).
pub(crate) fn bit_len(v: u64) -> u32 {
    64 - v.leading_zeros()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng as _;

    /// Schoolbook negacyclic product modulo p: the slow, independent oracle.
    pub(crate) fn schoolbook(a: &[u64], b: &[u64], p: u64) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for i in 0..n {
            if a[i] == 0 {
                continue;
            }
            for j in 0..n {
                let prod = mul_mod(a[i], b[j], p);
                let k = i + j;
                if k < n {
                    out[k] = add_mod(out[k], prod, p);
                } else {
                    out[k - n] = sub_mod(out[k - n], prod, p);
                }
            }
        }
        out
    }

    #[test]
    fn ntt_product_matches_schoolbook() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let ntt = ntt();
        for (i, &p) in CIPHERTEXT_PRIMES.iter().enumerate() {
            let mut a = vec![0u64; POLY_DEGREE];
            let mut b = vec![0u64; POLY_DEGREE];
            sample_uniform_mod(&mut rng, p, &mut a);
            // Sparse second factor keeps the schoolbook oracle fast.
            for _ in 0..64 {
                let k = rng.random_range(0..POLY_DEGREE);
                b[k] = rng.random_range(0..p);
            }
            let want = schoolbook(&b, &a, p);
            let (mut fa, mut fb) = (a.clone(), b.clone());
            ntt.plans[i].fwd(&mut fa);
            ntt.plans[i].fwd(&mut fb);
            ntt.plans[i].normalize(&mut fb);
            let mut acc = vec![0u64; POLY_DEGREE];
            ntt.plans[i].mul_accumulate(&mut acc, &fa, &fb);
            ntt.plans[i].inv(&mut acc);
            assert_eq!(acc, want);
        }
    }

    #[test]
    fn samplers_stay_in_range() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut e = vec![0i64; 1 << 14];
        sample_cbd(&mut rng, &mut e);
        assert!(e.iter().all(|v| v.abs() <= ERROR_ETA as i64));
        let var = e.iter().map(|v| (v * v) as f64).sum::<f64>() / e.len() as f64;
        assert!((var - 10.5).abs() < 1.0, "CBD variance {var}");
        sample_ternary(&mut rng, &mut e);
        assert!(e.iter().all(|v| (-1..=1).contains(v)));
        assert!(e.contains(&-1) && e.contains(&0) && e.contains(&1));
        let mut a: [Vec<u64>; PRIMES] = Default::default();
        let mut a2: [Vec<u64>; PRIMES] = Default::default();
        expand_a(&[7; 32], 3, &mut a);
        expand_a(&[7; 32], 3, &mut a2);
        assert_eq!(a, a2);
        expand_a(&[7; 32], 4, &mut a2);
        assert_ne!(a[0], a2[0]);
        for i in 0..PRIMES {
            assert!(a[i].iter().all(|&v| v < CIPHERTEXT_PRIMES[i]));
        }
    }

    #[test]
    fn shoup_matches_u128() {
        let p = CIPHERTEXT_PRIMES[0];
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for _ in 0..1000 {
            let w = rng.random_range(0..p);
            let x = rand::RngCore::next_u64(&mut rng);
            assert_eq!(
                mul_shoup(x, w, shoup(w, p), p),
                ((x as u128 * w as u128) % p as u128) as u64
            );
        }
        assert_eq!(mul_mod(inv_mod(12345, p), 12345, p), 1);
    }

    proptest! {
        #[test]
        fn pack_round_trip(bits in 1u32..=64, vals in proptest::collection::vec(any::<u64>(), 0..50)) {
            let vals: Vec<u64> = vals.into_iter().map(|v| if bits == 64 { v } else { v & ((1 << bits) - 1) }).collect();
            let mut bytes = Vec::new();
            pack_bits(&vals, bits, &mut bytes);
            prop_assert_eq!(bytes.len(), packed_len(vals.len(), bits));
            let mut back = Vec::new();
            unpack_bits(&bytes, bits, vals.len(), u64::MAX, &mut back).unwrap();
            prop_assert_eq!(back, vals);
        }
    }

    #[test]
    fn unpack_rejects_out_of_range_and_padding() {
        let mut bytes = Vec::new();
        pack_bits(&[5, 9], 4, &mut bytes);
        let mut out = Vec::new();
        assert!(matches!(
            unpack_bits(&bytes, 4, 2, 8, &mut out),
            Err(Error::PeerMisbehaved(_))
        ));
        let mut bytes = Vec::new();
        pack_bits(&[5], 4, &mut bytes);
        bytes[0] |= 0x80;
        assert!(matches!(
            unpack_bits(&bytes, 4, 1, 15, &mut out),
            Err(Error::PeerMisbehaved(_))
        ));
        assert!(unpack_bits(&bytes, 4, 3, 15, &mut out).is_err());
        // Word-sized reads: 3 x 55 bits = 2 words + 5 tail bytes, 3 padding bits.
        let vals = [(1u64 << 55) - 1, 0, 12345];
        let mut bytes = Vec::new();
        pack_bits(&vals, 55, &mut bytes);
        assert_eq!(bytes.len(), 21);
        unpack_bits(&bytes, 55, 3, u64::MAX, &mut out).unwrap();
        assert_eq!(out, vals);
        bytes[20] |= 0x80;
        assert!(matches!(
            unpack_bits(&bytes, 55, 3, u64::MAX, &mut out),
            Err(Error::PeerMisbehaved(_))
        ));
    }
}
