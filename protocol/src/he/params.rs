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

/// Target hiding of the flooding noise, per sent coefficient, in bits: the
/// planner sizes the flood so that every sent c0 coefficient has
/// |v|·√D ≤ 2^−s, where v is everything in its phase that depends on the
/// weights or on the server's re-randomisation and D is the flood's
/// "Hellinger constant" (module docs, *Noise flooding*). Distances compose
/// in ℓ2: an inference sending K coefficients at hiding s is within
/// statistical distance √K·2^−s (+ K·2^−71 tail events) of a
/// weight-independent simulation. ResNet18 (m = 64) sends K ≈ 2^19.2
/// coefficients, so 40 bits per coefficient give about 2^−30.4 per
/// inference at least; the planner raises s above this target wherever the
/// chosen packing leaves noise budget, and [`inference_hiding_bits`]
/// reports what holds. 40 bits *per inference* (DESIGN.md §3.6) does not fit
/// N = 4096, log q ≤ 109, l = 37 and 16-bit weights: it needs about 10 more
/// bits of q/t (see the module docs).
///
/// [`inference_hiding_bits`]: super::layout::inference_hiding_bits
pub const TARGET_HIDING_BITS: u32 = 40;

/// Smallest per-coefficient hiding the planner accepts: a layer whose single
/// output sums so many weights that even one output per ciphertext cannot
/// reach [`TARGET_HIDING_BITS`] gets the most the budget allows, but no less
/// than this.
pub const MIN_HIDING_BITS: u32 = 36;

/// Largest per-coefficient hiding the planner asks for (more brings nothing).
pub const MAX_HIDING_BITS: u32 = 64;

/// Upper bound D·M² ≤ 36 on the flood's Hellinger constant, valid for a
/// triangular flood of width M ≤ 2^96 (D·M² ≤ 2.5 + ln(M)/2, module docs);
/// √36 = 6 enters the flood size. Every accepted plan has M < 2^72.
pub(crate) const FLOOD_SQRT_D: u128 = 6;

/// Public bound on weight magnitudes: |w| < 2^WEIGHT_BITS (weights at scale
/// f = 12 means |w_float| < 16). The flooding noise depends on this public
/// bound, never on the actual weights; larger weights are refused.
pub const WEIGHT_BITS: u32 = 16;

/// Low bits of c0 dropped before sending (after the switch to p0).
pub const C0_DROP_BITS: u32 = 13;
/// Low bits of c1 dropped before sending (after the switch to p0).
pub const C1_DROP_BITS: u32 = 4;

/// Smallest margin between Δ'/2 and the noise bound the planner accepts, as
/// the ratio MARGIN_NUM/MARGIN_DEN ≥ 2^0.25 (on top of the 2^−71 tails).
/// Integer, so that both parties plan identically on every platform.
pub const MARGIN_NUM: u128 = 1190;
/// Denominator of the decryption margin ratio.
pub const MARGIN_DEN: u128 = 1000;

/// Tail factor τ = 10 for sums of independent sub-Gaussian terms: a
/// variable with variance proxy σ² exceeds 10σ with probability
/// ≤ 2·exp(−50) < 2^−71. Bounds below use τ² = 100 inside integer square roots.
pub(crate) const TAIL_SQ: u128 = 100;

/// Per-coefficient probability (log2, upper bound) that a τ-bound fails.
pub const TAIL_FAILURE_LOG2: i32 = -71;

/// Smallest integer r with r² ≥ v.
pub(crate) fn ceil_sqrt(v: u128) -> u128 {
    if v == 0 {
        return 0;
    }
    // Newton from above on integers: floor sqrt, then round up.
    let mut x = 1u128 << (128 - v.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + v / x) / 2;
        if y >= x {
            break;
        }
        x = y;
    }
    if x * x < v { x + 1 } else { x }
}

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
        h.update(b"pi-he-params-v2");
        h.update([self.shares as u8]);
        h.update((POLY_DEGREE as u64).to_le_bytes());
        for p in CIPHERTEXT_PRIMES {
            h.update(p.to_le_bytes());
        }
        for v in [
            self.ring_bits,
            ERROR_ETA,
            TARGET_HIDING_BITS,
            MIN_HIDING_BITS,
            MAX_HIDING_BITS,
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

    /// Bound (w.p. 1 − 2^−71) on the weight-dependent noise of one output
    /// coefficient at the full modulus, when that coefficient sums `n_terms`
    /// weights: e·W (client's encryption noise, sub-Gaussian with proxy
    /// 10.5·‖w‖², ‖w‖² ≤ n·w̄²) plus the rounding term k = round(W·c/t).
    /// Uniform shares: W·c/t is a sum of independent terms each in an
    /// interval of length |w_j| (Hoeffding: proxy ‖w‖²/4), independent of e,
    /// so e·W + W·c/t has proxy 10.75·n·w̄² and |k − W·c/t| ≤ 1/2:
    /// τ·√(10.75·n)·w̄ + 1. Arbitrary shares: τ·√(10.5·n)·w̄ + n·w̄/2 + 1.
    /// Integer arithmetic throughout, rounded up.
    pub(crate) fn weight_noise_bound(&self, n_terms: usize) -> u128 {
        let n = n_terms as u128;
        let w = 1u128 << WEIGHT_BITS;
        match self.shares {
            ShareDistribution::Uniform => ceil_sqrt(TAIL_SQ * 1075 * n / 100 + 1) * w + 1,
            ShareDistribution::Arbitrary => {
                ceil_sqrt(TAIL_SQ * 105 * n / 10 + 1) * w + n * w / 2 + 1
            }
        }
    }

    /// Worst-case noise of the server's fresh public-key encryption of zero,
    /// u·e_pk + e0 + e1·s (u, s ternary, |e| ≤ η): 2·η·N + η. It is part of
    /// the phase the client sees and correlated with c1 (through u and e1),
    /// so the flood must hide it too (module docs, step 5).
    pub(crate) fn pk_noise_bound(&self) -> u128 {
        2 * ERROR_ETA as u128 * POLY_DEGREE as u128 + ERROR_ETA as u128
    }

    /// Width M of the triangular flood (difference of two uniforms on
    /// [0, M)) that hides every coefficient summing `n_terms` weights at
    /// `hiding_bits` s: M = 6·2^s·(weight noise + pk noise), since
    /// √(D·M²) ≤ 6, so that |v|·√D ≤ 2^−s. A public function of the shape.
    pub(crate) fn flood_bound(&self, n_terms: usize, hiding_bits: u32) -> u128 {
        ((self.weight_noise_bound(n_terms) + self.pk_noise_bound()) * FLOOD_SQRT_D) << hiding_bits
    }

    /// Noise bound (in units of p0, rounded up) of a returned coefficient,
    /// over all terms of the analysis in the module docs.
    pub(crate) fn total_noise_bound(&self, n_terms: usize, hiding_bits: u32) -> u128 {
        let p_drop = CIPHERTEXT_PRIMES[DROP] as u128;
        let sqrt_n = ceil_sqrt(POLY_DEGREE as u128);
        let full = self.flood_bound(n_terms, hiding_bits)
            + self.weight_noise_bound(n_terms)
            + self.pk_noise_bound();
        let switched = full.div_ceil(p_drop);
        // Modulus-switch rounding r0 + r1·s with |r| ≤ 1/2, s ternary:
        // 1/2 + τ·√N/2, rounded up.
        let switch_round = (1 + ceil_sqrt(TAIL_SQ) * sqrt_n).div_ceil(2);
        // Dropped low bits of c0 (worst case) and of c1 (times s, sub-Gaussian).
        let drop0 = 1u128 << (C0_DROP_BITS - 1);
        let drop1 = (ceil_sqrt(TAIL_SQ) * sqrt_n) << (C1_DROP_BITS - 1);
        // Message term m·(1 − p0/q)/t < 1 and slack for integer rounding.
        switched + switch_round + drop0 + drop1 + 2
    }

    /// Whether a coefficient summing `n_terms` weights, flooded for
    /// `hiding_bits`, decrypts with the required margin:
    /// total·MARGIN_NUM ≤ (Δ'/2)·MARGIN_DEN. Exact integer comparison.
    pub(crate) fn fits(&self, n_terms: usize, hiding_bits: u32) -> bool {
        self.total_noise_bound(n_terms, hiding_bits) * MARGIN_NUM * 2
            <= self.delta_keep() as u128 * MARGIN_DEN
    }

    /// Largest hiding in [MIN_HIDING_BITS, MAX_HIDING_BITS] that fits, if any.
    pub(crate) fn max_hiding_bits(&self, n_terms: usize) -> Option<u32> {
        (MIN_HIDING_BITS..=MAX_HIDING_BITS)
            .rev()
            .find(|&s| self.fits(n_terms, s))
    }

    /// Margin in bits between the decryption bound Δ'/2 and the noise bound
    /// (for reports only; planning uses [`Self::fits`]).
    pub(crate) fn noise_margin_bits(&self, n_terms: usize, hiding_bits: u32) -> f64 {
        (self.delta_keep() as f64 / 2.0).log2()
            - (self.total_noise_bound(n_terms, hiding_bits) as f64).log2()
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
    fn ceil_sqrt_is_exact() {
        for v in (0u128..5000).chain([u64::MAX as u128, 1 << 100, (1 << 100) + 1]) {
            let r = ceil_sqrt(v);
            assert!(r * r >= v && (r == 0 || (r - 1) * (r - 1) < v), "{v}");
        }
    }

    #[test]
    fn resnet_sized_sums_fit_the_budget() {
        let u = HeParams::default();
        let p = u.with_shares(ShareDistribution::Arbitrary);
        // A 512-channel 3x3 conv and the FC over 512·4·4 inputs, one output
        // per ciphertext, reach the 40-bit target with uniform shares, and
        // at least the floor under the worst-case analysis.
        assert!(u.max_hiding_bits(512 * 9).unwrap() >= TARGET_HIDING_BITS);
        assert!(u.fits(512 * 16, TARGET_HIDING_BITS));
        assert!(p.max_hiding_bits(512 * 9).unwrap() >= MIN_HIDING_BITS);
        assert!(!p.fits(512 * 9, TARGET_HIDING_BITS));
        for params in [u, p] {
            assert!(params.max_hiding_bits(1 << 22).is_none());
        }
        // Uniform shares: three 512-channel outputs per ciphertext at 40 bits.
        assert!(u.fits(3 * 512 * 9, TARGET_HIDING_BITS));
        assert!(u.noise_margin_bits(3 * 512 * 9, TARGET_HIDING_BITS) >= 0.25);
        // The flood hides weight and pk noise at the stated ratio.
        for n in [1, 100, 4608] {
            let m = u.flood_bound(n, 40);
            let v = u.weight_noise_bound(n) + u.pk_noise_bound();
            assert!((v * FLOOD_SQRT_D) << 40 <= m);
            assert!(m < 1 << 96);
        }
        assert!(u.weight_noise_bound(100) < p.weight_noise_bound(100));
        assert_ne!(p.digest(), HeParams::new(36).unwrap().digest());
        assert_ne!(p.digest(), HeParams::default().digest());
    }

    /// The constant behind FLOOD_SQRT_D: for the triangular pmf
    /// p(x) = (M − |x|)/M², D·M² = Σ_x (√a(x+1) − √a(x))² with a = M − |x|,
    /// computed exactly for small M and bounded by 2.5 + ln(M)/2.
    #[test]
    fn triangular_hellinger_constant() {
        for m in [2u64, 3, 10, 1000, 100_000] {
            let a = |x: i64| (m as i64 - x.abs()).max(0) as f64;
            let d: f64 = (-(m as i64)..=m as i64)
                .map(|x| (a(x + 1).sqrt() - a(x).sqrt()).powi(2))
                .sum();
            assert!(d <= 2.5 + (m as f64).ln() / 2.0, "M = {m}: {d}");
        }
        assert!(2.5 + 96.0 * 2f64.ln() / 2.0 <= (FLOOD_SQRT_D * FLOOD_SQRT_D) as f64);
    }
}
