//! RLWE parameters and the noise budget they imply.
//!
//! Every security-relevant number is a named constant with its source. The
//! noise analysis itself is written out in the module docs of [`crate::he`];
//! the functions here evaluate it for one layer.

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Ring dimension N of R_q = Z_q\[X\]/(X^N + 1).
pub const POLY_DEGREE: usize = 4096;

/// The two RNS primes of the ciphertext modulus q = p0 * p1.
///
/// Both are p = k * 2^37 + 1 (k = 185358 and 185345), the two largest such
/// primes below 2^54.5, so that
/// - p ≡ 1 (mod 2N): negacyclic NTT-friendly for N = 4096;
/// - q ≡ 1 (mod 2^37), hence q ≡ 1 (mod t) for every t = 2^l with l ≤ 37: with
///   Δ = (q − 1)/t the plaintext-product error term is only |W·m|/t, not
///   (q mod t)·|W·m|/t (see the module docs);
/// - log2 q = 108.9998 ≤ 109, the largest modulus the Homomorphic Encryption
///   Security Standard (Albrecht et al., homomorphicencryption.org, 2018,
///   Table 1) allows for N = 4096, ternary secret, error σ = 3.2 at 128-bit
///   classical security.
///
/// Ciphertexts sent back to the client are switched down to `p0` alone.
pub const CIPHERTEXT_PRIMES: [u64; 2] = [25_475_409_537_662_977, 25_473_622_831_267_841];

/// Index in [`CIPHERTEXT_PRIMES`] of the prime kept by the modulus switch.
pub(crate) const KEEP: usize = 0;
/// Index of the prime dropped by the modulus switch.
pub(crate) const DROP: usize = 1;

/// Largest ring bit width l supported: t = 2^l must divide p − 1 for both primes.
pub const MAX_RING_BITS: u32 = 37;

/// Error distribution: centred binomial with η = 21, variance η/2 = 10.5
/// (σ ≈ 3.24 ≥ the standard's σ = 3.2), bounded by |e| ≤ 21.
pub const ERROR_ETA: u32 = 21;

/// Statistical security parameter: the flooding noise is 2^40 times the
/// weight-dependent noise it hides (smudging lemma), DESIGN.md §3.6.
pub const STATISTICAL_SECURITY_BITS: u32 = 40;

/// Public bound on weight magnitudes: |w| < 2^WEIGHT_BITS (weights at scale
/// f = 12 means |w_float| < 16). The flooding noise depends on this public
/// bound, never on the actual weights; larger weights are refused.
pub const WEIGHT_BITS: u32 = 16;

/// Low bits of c0 dropped before sending (after the switch to p0).
pub const C0_DROP_BITS: u32 = 14;
/// Low bits of c1 dropped before sending (after the switch to p0).
pub const C1_DROP_BITS: u32 = 6;

/// Smallest margin (in bits, between Δ'/2 and the noise bound) the planner
/// accepts, on top of the 2^−71 tail bounds.
pub const MIN_MARGIN_BITS: f64 = 0.25;

/// Tail factor for sums of independent sub-Gaussian terms: a variable with
/// variance proxy σ² exceeds 10σ with probability ≤ 2·exp(−50) < 2^−71.
pub(crate) const TAIL: f64 = 10.0;

/// Parameters of the RLWE layer for one session. Only the ring width varies;
/// everything else is fixed by the constants above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeParams {
    ring_bits: u32,
    shares: ShareDistribution,
}

/// What the noise analysis may assume about the client's share c.
///
/// The rounding term of the plaintext product, k = ⌊W·c / t⌋ (centred c), is
/// at most ‖W‖₁/2 for arbitrary c but only about ‖W‖₂/2 per standard
/// deviation when c is uniform on Z_2^l, which it is in the protocol: the
/// client's share of every linear layer's input is a fresh uniform mask
/// (DESIGN.md §3.1, semi-honest client). The tighter bound lets up to ~8x
/// more output channels share one reply ciphertext in wide layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareDistribution {
    /// c is uniform on Z_2^l (the protocol's case; the default).
    Uniform,
    /// c is arbitrary: worst-case bound, correct for any share.
    Arbitrary,
}

impl Default for HeParams {
    fn default() -> Self {
        Self {
            ring_bits: MAX_RING_BITS,
            shares: ShareDistribution::Uniform,
        }
    }
}

impl HeParams {
    /// Parameters for the ring Z_2^l.
    pub fn new(ring_bits: u32) -> Result<Self> {
        if !(8..=MAX_RING_BITS).contains(&ring_bits) {
            return Err(Error::BadInput(format!(
                "HE ring bits must be in 8..={MAX_RING_BITS}, got {ring_bits}"
            )));
        }
        Ok(Self {
            ring_bits,
            shares: ShareDistribution::Uniform,
        })
    }

    /// The same parameters with another assumption about the client's shares.
    pub fn with_shares(self, shares: ShareDistribution) -> Self {
        Self { shares, ..self }
    }

    /// The assumption about the client's shares.
    pub fn shares(&self) -> ShareDistribution {
        self.shares
    }

    /// l, the bit width of the ring Z_2^l (plaintext modulus t = 2^l).
    pub fn ring_bits(&self) -> u32 {
        self.ring_bits
    }

    /// Mask of the low l bits.
    pub fn ring_mask(&self) -> u64 {
        (1u64 << self.ring_bits) - 1
    }

    /// Δ = (q − 1)/t reduced modulo prime i.
    pub(crate) fn delta_mod(&self, i: usize) -> u64 {
        // q − 1 = p0 p1 − 1; (q − 1)/t mod p_i computed in u128 (q < 2^109).
        let q = CIPHERTEXT_PRIMES[0] as u128 * CIPHERTEXT_PRIMES[1] as u128;
        (((q - 1) >> self.ring_bits) % CIPHERTEXT_PRIMES[i] as u128) as u64
    }

    /// Δ' = (p0 − 1)/t, the scale after switching down to p0.
    pub(crate) fn delta_keep(&self) -> u64 {
        (CIPHERTEXT_PRIMES[KEEP] - 1) >> self.ring_bits
    }

    /// Digest of everything both parties must agree on; carried by every message.
    pub fn digest(&self) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(b"pi-he-params-v1");
        h.update([self.shares as u8]);
        h.update((POLY_DEGREE as u64).to_le_bytes());
        for p in CIPHERTEXT_PRIMES {
            h.update(p.to_le_bytes());
        }
        for v in [
            self.ring_bits,
            ERROR_ETA,
            STATISTICAL_SECURITY_BITS,
            WEIGHT_BITS,
            C0_DROP_BITS,
            C1_DROP_BITS,
        ] {
            h.update(v.to_le_bytes());
        }
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    }

    /// High-probability bound on the weight-dependent noise of one output
    /// coefficient at the full modulus, when that coefficient sums
    /// `n_terms` weights: the client's encryption noise times the weights
    /// (sub-Gaussian, variance proxy 10.5·‖w‖², ‖w‖² ≤ n·2^(2·WEIGHT_BITS))
    /// plus the rounding term k = ⌊W·m/t⌋: worst case n·2^(WEIGHT_BITS−1),
    /// or for uniform shares (Hoeffding: each w_j·m_j/t ranges over an
    /// interval of length |w_j|) 10·‖w‖₂/2 + 1.
    pub(crate) fn weight_noise_bound(&self, n_terms: usize) -> f64 {
        let n = n_terms as f64;
        let wmax = 2f64.powi(WEIGHT_BITS as i32);
        let rounding = match self.shares {
            ShareDistribution::Arbitrary => n * wmax / 2.0,
            ShareDistribution::Uniform => TAIL * n.sqrt() * wmax / 2.0 + 1.0,
        };
        TAIL * (ERROR_ETA as f64 / 2.0).sqrt() * n.sqrt() * wmax + rounding
    }

    /// Bound F of the flooding noise, uniform on [−F, F] with
    /// F ≥ 2^40 · weight_noise_bound (a public function of the shape).
    pub(crate) fn flood_bound(&self, n_terms: usize) -> u128 {
        let f =
            (self.weight_noise_bound(n_terms) * 2f64.powi(STATISTICAL_SECURITY_BITS as i32)).ceil();
        // f < 2^80 for any accepted layer; saturating cast keeps it defined.
        f as u128
    }

    /// Noise bound (in units of p0) of a returned coefficient, over all terms
    /// of the analysis in the module docs.
    pub(crate) fn total_noise_bound(&self, n_terms: usize) -> f64 {
        let n = POLY_DEGREE as f64;
        let p_drop = CIPHERTEXT_PRIMES[DROP] as f64;
        // Fresh public-key encryption of zero, worst case: u·e + e0 + e1·s.
        let pk_noise = 2.0 * n * ERROR_ETA as f64 + ERROR_ETA as f64;
        let full = self.flood_bound(n_terms) as f64 + self.weight_noise_bound(n_terms) + pk_noise;
        let switched = full / p_drop;
        // Modulus-switch rounding r0 + r1·s with |r| ≤ 1/2, s ternary.
        let switch_round = 0.5 + TAIL * n.sqrt() * 0.5;
        // Dropped low bits of c0 (worst case) and of c1 (times s, sub-Gaussian).
        let drop0 = 2f64.powi(C0_DROP_BITS as i32 - 1);
        let drop1 = TAIL * n.sqrt() * 2f64.powi(C1_DROP_BITS as i32 - 1);
        // Message term m·(1 − p0/q)/t < 1 and slack for integer rounding.
        switched + switch_round + drop0 + drop1 + 2.0
    }

    /// Margin in bits between the decryption bound Δ'/2 and the noise bound,
    /// or an error if the layer's sums are too long for the budget.
    pub(crate) fn noise_margin_bits(&self, n_terms: usize) -> f64 {
        (self.delta_keep() as f64 / 2.0).log2() - self.total_noise_bound(n_terms).log2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_prime(n: u64) -> bool {
        if n < 2 {
            return false;
        }
        let mul = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
        let pow = |mut b: u64, mut e: u64| {
            let mut r = 1u64;
            while e > 0 {
                if e & 1 == 1 {
                    r = mul(r, b);
                }
                b = mul(b, b);
                e >>= 1;
            }
            r
        };
        let (mut d, mut s) = (n - 1, 0);
        while d % 2 == 0 {
            d /= 2;
            s += 1;
        }
        // Deterministic Miller–Rabin bases for n < 3.3e24.
        'bases: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41] {
            if a % n == 0 {
                continue;
            }
            let mut x = pow(a, d);
            if x == 1 || x == n - 1 {
                continue;
            }
            for _ in 1..s {
                x = mul(x, x);
                if x == n - 1 {
                    continue 'bases;
                }
            }
            return false;
        }
        true
    }

    #[test]
    fn primes_match_their_documented_properties() {
        let q = CIPHERTEXT_PRIMES[0] as u128 * CIPHERTEXT_PRIMES[1] as u128;
        assert!(q < 1u128 << 109, "log q must stay at most 109");
        assert_eq!(q % (1u128 << MAX_RING_BITS), 1);
        for (p, k) in CIPHERTEXT_PRIMES.iter().zip([185_358u64, 185_345]) {
            assert!(is_prime(*p));
            assert_eq!(*p, k * (1u64 << 37) + 1);
            assert_eq!((p - 1) % (2 * POLY_DEGREE as u64), 0);
        }
        // They are the two largest primes of that form below 2^54.5.
        let kmax = (2f64.powf(54.5) / 2f64.powi(37)) as u64;
        let found: Vec<u64> = (0..=kmax)
            .rev()
            .map(|k| k * (1 << 37) + 1)
            .filter(|&p| (p as f64) < 2f64.powf(54.5) && is_prime(p))
            .take(2)
            .collect();
        assert_eq!(found, CIPHERTEXT_PRIMES.to_vec());
    }

    #[test]
    fn resnet_sized_sums_fit_the_budget() {
        let p = HeParams::default().with_shares(ShareDistribution::Arbitrary);
        // 3x3 conv over 512 channels with up to 4 output channels per ciphertext,
        // and an FC over 512·4·4 inputs.
        assert!(p.noise_margin_bits(4 * 512 * 9) > 0.4);
        assert!(p.noise_margin_bits(512 * 16) > 0.8);
        assert!(p.noise_margin_bits(1 << 20) < 0.0);
        assert!(p.flood_bound(1) >= 1 << STATISTICAL_SECURITY_BITS);
        assert!(p.flood_bound(100) as f64 >= p.weight_noise_bound(100) * 2f64.powi(40));
        assert_ne!(p.digest(), HeParams::new(36).unwrap().digest());
        assert_ne!(p.digest(), HeParams::default().digest());
        // Uniform shares: a 1200-channel 3x3 conv fits 8 outputs per ciphertext.
        assert!(HeParams::default().noise_margin_bits(8 * 1200 * 9) > MIN_MARGIN_BITS);
    }
}
