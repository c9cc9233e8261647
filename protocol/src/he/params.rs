//! RLWE parameters and the noise budget they imply.
//!
//! Every security-relevant number is a named constant with its source. The
//! noise analysis itself is written out in the module docs of [`crate::he`];
//! the functions here evaluate it for one layer, in integer arithmetic
//! rounded up, so that both parties plan identically on every platform.

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Ring dimension N of R_q = Z_q\[X\]/(X^N + 1).
pub const POLY_DEGREE: usize = 8192;

/// Number of RNS primes of keys and uploads (ciphertexts at the full modulus q).
pub const PRIMES: usize = 3;

/// The RNS primes of the ciphertext modulus q = p0 · p1 · p2.
///
/// They are p = k · 2^37 + 1 for k = 8190, 8189 and 8174, the three largest
/// such primes below 2^50, so that
/// - p ≡ 1 (mod 2N): negacyclic NTT-friendly for N = 8192;
/// - q ≡ 1 (mod 2^37), hence q ≡ 1 (mod t) for every t = 2^l with l ≤ 37:
///   with Δ = (q − 1)/t the plaintext-product error term is only |W·m|/t,
///   not (q mod t)·|W·m|/t (see the module docs);
/// - p < 2^50: `tfhe-ntt` runs its AVX-512 IFMA kernels (52-bit multipliers)
///   for such primes, about twice as fast as its 64-bit path;
/// - log2 q = 149.996, against the 218 bits that the Homomorphic Encryption
///   Security Standard (Albrecht et al., HomomorphicEncryption.org, 2018,
///   §5.4, ternary secret, error σ ≈ 3.2) allows for N = 8192 at 128-bit
///   classical security: a margin of 68 bits. q even stays below the
///   standard's 152-bit bound for 192-bit security at N = 8192
///   ([`STANDARD_LOG_Q_128`], [`STANDARD_LOG_Q_192`]).
///
/// Replies are switched down to `p0` alone before they are sent; p1 · p2 ≈
/// 2^100 is the room that the flooding noise lives in (module docs).
pub const CIPHERTEXT_PRIMES: [u64; PRIMES] = [
    1_125_625_028_935_681,
    1_125_487_589_982_209,
    1_123_426_005_680_129,
];

/// Largest log2 q the HE standard allows for N = 8192, ternary secret, at
/// 128-bit classical security (Albrecht et al. 2018, §5.4; the same table
/// gives 109 for N = 4096).
pub const STANDARD_LOG_Q_128: u32 = 218;
/// The same table's bound for N = 8192 at 192-bit classical security.
pub const STANDARD_LOG_Q_192: u32 = 152;

/// Index in [`CIPHERTEXT_PRIMES`] of the prime kept by the modulus switch
/// (the two others are dropped).
pub(crate) const KEEP: usize = 0;

/// Largest ring bit width l supported: t = 2^l must divide p − 1 for every prime.
pub const MAX_RING_BITS: u32 = 37;

/// Error distribution: centred binomial with η = 21, variance η/2 = 10.5
/// (σ ≈ 3.24 ≥ the standard's σ = 3.2), bounded by |e| ≤ 21.
pub const ERROR_ETA: u32 = 21;

/// Per-coefficient hiding, in bits, that the planner sizes every layer's
/// packing for: the flood makes √D·rms(v) ≤ 2^−s for every sent c0
/// coefficient, where v is everything in its phase that depends on the
/// weights or on the server's re-randomisation and D is the flood's
/// "Hellinger constant" (module docs, *Noise flooding*). Distances compose
/// in ℓ2 over every coefficient any client ever receives from one weight
/// set: Q inferences sending K coefficients each at hiding s are within
/// statistical distance √(Q·K)·2^−s of a weight-independent simulation.
/// The requirement 2^−40 at Q = 2^30 needs s ≥ 40 + ½·log2(Q·K) = 64.6
/// for ResNet18 (K ≈ 2^19.2 coefficients per inference); 72 leaves room
/// for networks with 2^8 times more outputs or budgets of 2^38
/// inferences. The planner raises s towards [`MAX_HIDING_BITS`] where the
/// chosen packing leaves noise budget; [`super::hiding::WeightHiding`]
/// reports what holds.
pub const TARGET_HIDING_BITS: u32 = 72;

/// Largest per-coefficient hiding the planner asks for.
pub const MAX_HIDING_BITS: u32 = 80;

/// Largest flood width M accepted, as a power of two: keeps U1 − U2 in
/// i128 and bounds the flood's Hellinger constant ([`FLOOD_SQRT_D`]).
pub(crate) const MAX_FLOOD_BITS: u32 = 126;

/// Upper bound √(D·M²) ≤ 7 on the flood's Hellinger constant, valid for a
/// triangular flood of width M ≤ 2^126: D·M² ≤ 2.5 + ln(M)/2 ≤ 46.2 ≤ 49
/// (module docs, test `triangular_hellinger_constant`). It enters the
/// flood width M = 7·2^s·V.
pub(crate) const FLOOD_SQRT_D: u128 = 7;

/// Public bound on weight magnitudes: |w| < 2^WEIGHT_BITS (weights at scale
/// f = 12 means |w_float| < 16). The flooding noise depends on this public
/// bound, never on the actual weights; larger weights are refused.
pub const WEIGHT_BITS: u32 = 16;

/// Low bits of c0 dropped before sending (after the switch to p0).
pub const C0_DROP_BITS: u32 = 10;
/// Low bits of c1 dropped before sending (after the switch to p0).
pub const C1_DROP_BITS: u32 = 2;

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

/// Per-coefficient probability (log2, upper bound) that one τ-bound fails.
pub const TAIL_FAILURE_LOG2: i32 = -71;

/// τ-bounds whose failure could break the decryption of one coefficient:
/// the weight noise e·W − k and the c1 rounding (switch and dropped bits)
/// times the secret; every other term is bounded with certainty. A
/// decryption fails with probability at most this many times
/// 2^[`TAIL_FAILURE_LOG2`] per returned coefficient.
pub const TAIL_EVENTS_PER_COEFFICIENT: u32 = 2;

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

/// The product p1 · p2 of the primes dropped by the modulus switch.
pub(crate) const fn dropped_modulus() -> u128 {
    CIPHERTEXT_PRIMES[1] as u128 * CIPHERTEXT_PRIMES[2] as u128
}

/// log2 q, for reports and tests (q itself does not fit in 128 bits).
pub fn log2_modulus() -> f64 {
    CIPHERTEXT_PRIMES.iter().map(|&p| (p as f64).log2()).sum()
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
/// (docs/ARCHITECTURE.md §5, semi-honest client). The tighter bound lets more output
/// channels share one reply ciphertext in wide layers.
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

    /// Δ = (q − 1)/t reduced modulo prime i. Since Δ·t = q − 1 ≡ −1
    /// (mod p_i), Δ ≡ −t^−1 (mod p_i); q itself never needs to be formed.
    pub(crate) fn delta_mod(&self, i: usize) -> u64 {
        let p = CIPHERTEXT_PRIMES[i];
        let t_inv = super::modular::inv_mod((1u64 << self.ring_bits) % p, p);
        p - t_inv
    }

    /// Δ' = (p0 − 1)/t, the scale after switching down to p0.
    pub(crate) fn delta_keep(&self) -> u64 {
        (CIPHERTEXT_PRIMES[KEEP] - 1) >> self.ring_bits
    }

    /// Digest of everything both parties must agree on; carried by every
    /// message and compared in the session handshake.
    pub fn digest(&self) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(b"pi-he-params-v3");
        h.update([self.shares as u8]);
        h.update((POLY_DEGREE as u64).to_le_bytes());
        h.update((PRIMES as u64).to_le_bytes());
        for p in CIPHERTEXT_PRIMES {
            h.update(p.to_le_bytes());
        }
        h.update((KEEP as u64).to_le_bytes());
        for v in [
            self.ring_bits,
            ERROR_ETA,
            TARGET_HIDING_BITS,
            MAX_HIDING_BITS,
            MAX_FLOOD_BITS,
            FLOOD_SQRT_D as u32,
            WEIGHT_BITS,
            C0_DROP_BITS,
            C1_DROP_BITS,
        ] {
            h.update(v.to_le_bytes());
        }
        for v in [MARGIN_NUM, MARGIN_DEN, TAIL_SQ] {
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
    /// 10.5·‖w‖², ‖w‖² ≤ n·w̄²) plus the rounding term k = ⌊W·c/t⌋.
    /// Uniform shares: W·c/t is a sum of independent terms each in an
    /// interval of length |w_j| (Hoeffding: proxy ‖w‖²/4), independent of e,
    /// so e·W + W·c/t has proxy 10.75·n·w̄² and |k − W·c/t| ≤ 1:
    /// τ·√(10.75·n)·w̄ + 1. Arbitrary shares: τ·√(10.5·n)·w̄ + n·w̄/2 + 1.
    /// For decryption only; the flood is sized from second moments
    /// ([`Self::flood_rms_bound`]).
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
    /// u·e_pk + e0 + e1·s (u, s ternary, |e| ≤ η): 2·η·N + η.
    pub(crate) fn pk_noise_bound(&self) -> u128 {
        2 * ERROR_ETA as u128 * POLY_DEGREE as u128 + ERROR_ETA as u128
    }

    /// V with V² ≥ E[v²], v the part of a sent coefficient's phase that the
    /// flood must hide, for a coefficient summing `n_terms` weights of
    /// magnitude below w̄ = 2^WEIGHT_BITS (module docs, *Noise flooding*):
    /// v = e·W − k + ν with three uncorrelated terms,
    /// - E[(e·W)²] = (η/2)·‖w‖² ≤ (η/2)·n·w̄²;
    /// - E[k²] ≤ (√E[y²] + 1)² for y = W·c/t, |k − y| ≤ 1. Uniform shares:
    ///   |c_j/t| ≤ 1/2 and |E[c_j/t]| = 1/(2t), so E[y²] ≤ n·w̄²/4 +
    ///   (n·w̄)²/(4t²). Arbitrary shares: |y| ≤ n·w̄/2;
    /// - E[ν²] for ν = u·e_pk + e0 + e1·s: (2/3)·(η/2)·N twice plus η/2.
    ///
    /// Integer arithmetic, every step rounded up.
    pub(crate) fn flood_rms_bound(&self, n_terms: usize) -> u128 {
        let n = n_terms as u128;
        let eta = ERROR_ETA as u128;
        let w = 1u128 << WEIGHT_BITS;
        let weight = (eta * n * w * w).div_ceil(2);
        let rounding = match self.shares {
            ShareDistribution::Uniform => {
                let t2 = 1u128 << (2 * self.ring_bits);
                let y2 = (n * w * w).div_ceil(4) + (n * w * n * w).div_ceil(4 * t2);
                y2 + 2 * ceil_sqrt(y2) + 1
            }
            ShareDistribution::Arbitrary => {
                let y = (n * w).div_ceil(2) + 1;
                y * y
            }
        };
        let big_n = POLY_DEGREE as u128;
        let pk = (2 * eta * big_n).div_ceil(3) + eta.div_ceil(2);
        ceil_sqrt(weight + rounding + pk)
    }

    /// Width M of the triangular flood (difference of two uniforms on
    /// [0, M)) that hides every coefficient summing `n_terms` weights at
    /// `hiding_bits` s: M = 7·2^s·V with V from [`Self::flood_rms_bound`],
    /// so that √D·V ≤ 2^−s. A public function of the shape; `None` past
    /// 2^[`MAX_FLOOD_BITS`].
    pub(crate) fn flood_bound(&self, n_terms: usize, hiding_bits: u32) -> Option<u128> {
        let base = self.flood_rms_bound(n_terms) * FLOOD_SQRT_D;
        if hiding_bits + (128 - base.leading_zeros()) > MAX_FLOOD_BITS {
            return None;
        }
        Some(base << hiding_bits)
    }

    /// Noise bound (in units of p0, rounded up) of a returned coefficient,
    /// over all terms of the analysis in the module docs; `None` if the
    /// flood is out of range.
    pub(crate) fn total_noise_bound(&self, n_terms: usize, hiding_bits: u32) -> Option<u128> {
        let full = self.flood_bound(n_terms, hiding_bits)?
            + self.weight_noise_bound(n_terms)
            + self.pk_noise_bound();
        let switched = full.div_ceil(dropped_modulus());
        // c1 rounding: the switch (≤ 1/2) plus the dropped low bits
        // (≤ 2^(d1−1)) per coefficient, times the ternary secret: a
        // Hoeffding tail τ·√N·(1/2 + 2^(d1−1)), rounded up.
        let tau_sqrt_n = ceil_sqrt(TAIL_SQ * POLY_DEGREE as u128);
        let c1_round = (tau_sqrt_n * ((1u128 << C1_DROP_BITS) + 1)).div_ceil(2);
        // c0 rounding: switch (≤ 1/2) plus dropped bits (≤ 2^(d0−1)), worst case.
        let c0_round = (1u128 << (C0_DROP_BITS - 1)) + 1;
        // Message term m·(1 − 1/(p1·p2))/t < 1 and slack for integer rounding.
        Some(switched + c1_round + c0_round + 2)
    }

    /// Whether a coefficient summing `n_terms` weights, flooded for
    /// `hiding_bits`, decrypts with the required margin:
    /// total·MARGIN_NUM ≤ (Δ'/2)·MARGIN_DEN. Exact integer comparison.
    pub(crate) fn fits(&self, n_terms: usize, hiding_bits: u32) -> bool {
        self.total_noise_bound(n_terms, hiding_bits)
            .is_some_and(|t| t * MARGIN_NUM * 2 <= self.delta_keep() as u128 * MARGIN_DEN)
    }

    /// Largest hiding in [TARGET_HIDING_BITS, MAX_HIDING_BITS] that fits, if any.
    pub(crate) fn max_hiding_bits(&self, n_terms: usize) -> Option<u32> {
        (TARGET_HIDING_BITS..=MAX_HIDING_BITS)
            .rev()
            .find(|&s| self.fits(n_terms, s))
    }

    /// Margin in bits between the decryption bound Δ'/2 and the noise bound
    /// (for reports only; planning uses [`Self::fits`]).
    pub(crate) fn noise_margin_bits(&self, n_terms: usize, hiding_bits: u32) -> f64 {
        match self.total_noise_bound(n_terms, hiding_bits) {
            Some(t) => (self.delta_keep() as f64 / 2.0).log2() - (t as f64).log2(),
            None => f64::NEG_INFINITY,
        }
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
        let log_q = log2_modulus();
        assert!(log_q < 150.0 && log_q > 149.9, "{log_q}");
        assert!(log_q <= STANDARD_LOG_Q_192 as f64 && log_q + 60.0 <= STANDARD_LOG_Q_128 as f64);
        for (p, k) in CIPHERTEXT_PRIMES.iter().zip([8190u64, 8189, 8174]) {
            assert!(is_prime(*p));
            assert_eq!(*p, k * (1u64 << 37) + 1);
            assert_eq!((p - 1) % (2 * POLY_DEGREE as u64), 0);
            assert!(*p < 1 << 50);
        }
        // Decreasing, and p1 < 2·p2 (the switch reduces p1-residues mod p2
        // with one subtraction).
        assert!(CIPHERTEXT_PRIMES.windows(2).all(|w| w[0] > w[1]));
        assert!(CIPHERTEXT_PRIMES[1] < 2 * CIPHERTEXT_PRIMES[2]);
        // They are the three largest primes of that form below 2^50.
        let found: Vec<u64> = (0..(1u64 << 13))
            .rev()
            .map(|k| k * (1 << 37) + 1)
            .filter(|&p| is_prime(p))
            .take(PRIMES)
            .collect();
        assert_eq!(found, CIPHERTEXT_PRIMES.to_vec());
        // Δ·t ≡ −1 modulo every prime, for every ring width.
        for l in [8, 32, 37] {
            let p = HeParams::new(l).unwrap();
            for (i, &pi) in CIPHERTEXT_PRIMES.iter().enumerate() {
                let dt = (p.delta_mod(i) as u128 * (1u128 << l)) % pi as u128;
                assert_eq!(dt as u64, pi - 1);
            }
        }
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
        // The widest sums of ResNet18 and the HRNs (a 1200-channel 3x3 conv,
        // the FC over 1200·4·4 inputs) with 64 outputs per ciphertext fit the
        // target under both analyses; with one output per ciphertext they
        // reach 77 bits or more.
        for params in [u, p] {
            assert!(params.fits(64 * 1200 * 9, TARGET_HIDING_BITS));
            assert!(params.max_hiding_bits(1200 * 16).unwrap() >= 77);
            assert!(params.max_hiding_bits(512 * 9).unwrap() >= 79);
            assert!(params.noise_margin_bits(512 * 9, 79) >= 0.25);
            // Far beyond any layer: the flood no longer fits under p1·p2.
            assert!(params.max_hiding_bits(1 << 40).is_none());
        }
        // Uniform shares: up to 2^30 weights per coefficient still fit.
        assert!(u.fits(1 << 30, TARGET_HIDING_BITS));
        assert_eq!(u.max_hiding_bits(1200 * 16), Some(MAX_HIDING_BITS));
        // The flood hides the second moment at the stated ratio and stays
        // in range.
        for n in [1, 100, 4608, 1 << 20] {
            let m = u.flood_bound(n, TARGET_HIDING_BITS).unwrap();
            assert!((u.flood_rms_bound(n) * FLOOD_SQRT_D) << TARGET_HIDING_BITS <= m);
            assert!(m < 1 << MAX_FLOOD_BITS);
        }
        assert!(u.flood_bound(1, 126).is_none());
        assert!(u.weight_noise_bound(100) < p.weight_noise_bound(100));
        assert!(u.flood_rms_bound(100) < p.flood_rms_bound(100));
        assert_ne!(p.digest(), HeParams::new(36).unwrap().digest());
        assert_ne!(p.digest(), HeParams::default().digest());
    }

    /// The second-moment bound against a direct computation in floating
    /// point: (η/2)·n·w̄² + (√(n·w̄²/4) + 1)² + 14·N + 10.5.
    #[test]
    fn flood_rms_bound_matches_the_formula() {
        let u = HeParams::default();
        for n in [1usize, 9, 4608, 1 << 20] {
            let w2 = 2f64.powi(2 * WEIGHT_BITS as i32);
            let nf = n as f64;
            let want = (10.5 * nf * w2
                + ((nf * w2 / 4.0).sqrt() + 1.0).powi(2)
                + 14.0 * POLY_DEGREE as f64
                + 10.5)
                .sqrt();
            let got = u.flood_rms_bound(n) as f64;
            assert!(
                got >= want && got <= want * (1.0 + 1e-6) + 2.0,
                "{n}: {got} vs {want}"
            );
        }
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
        let bound = 2.5 + MAX_FLOOD_BITS as f64 * 2f64.ln() / 2.0;
        assert!(bound <= (FLOOD_SQRT_D * FLOOD_SQRT_D) as f64);
    }
}
