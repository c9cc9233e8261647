//! How well the replies hide the weights, per inference and over the
//! lifetime of one weight set (docs/ARCHITECTURE.md §4; the argument is in the
//! module docs of [`crate::he`], *Noise flooding*).
//!
//! Every sent c0 coefficient of layer l carries a flood that hides it at
//! s_l bits: D·E[v²] ≤ 2^(−2·s_l). The bound on the statistical distance
//! between everything clients see and a weight-independent simulation is
//! √(Σ D·E[v²]) over *every coefficient ever sent with the same weights*:
//! the floods, keys, shares and masks are fresh for each inference, but the
//! weights are common to all of them, whatever the session or the client
//! (clients may collude, and one client may open any number of sessions).
//! So Q inferences cost √Q:
//!
//! SD ≤ √(Q · Σ_l K_l · 2^(−2·s_l)), K_l = coefficients sent for layer l.
//!
//! [`WeightHiding`] evaluates this for the plans of a network. The server
//! refuses to start when the bound over its lifetime budget
//! (`pi-server --lifetime-inferences`, default [`DEFAULT_LIFETIME_INFERENCES`])
//! is above 2^−[`STATISTICAL_SECURITY_BITS`]. The bound assumes a
//! semi-honest client (it encrypts honestly drawn shares with honest noise
//! under an honest key): a client that deviates can learn the weights
//! with far fewer queries (Lehmkuhl et al., MUSE, USENIX Security 2021),
//! which this runtime does not defend against.

use super::layout::LayerPlan;
use super::params::{TAIL_EVENTS_PER_COEFFICIENT, TAIL_FAILURE_LOG2};
use crate::{Error, Result};

/// Statistical security the weights must keep over their lifetime, in bits
/// (docs/ARCHITECTURE.md §4: 40-bit statistical security).
pub const STATISTICAL_SECURITY_BITS: u32 = 40;

/// Default lifetime budget: inferences served with one weight set, over
/// all sessions and clients (2^30).
pub const DEFAULT_LIFETIME_INFERENCES: u64 = 1 << 30;

/// The flooding bound of one network's plans. Floating point: for reports
/// and the start-up check only, never for planning.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightHiding {
    /// Σ_l K_l · 2^(−2·s_l).
    sum_sq: f64,
    /// Σ_l K_l: coefficients the client receives per inference.
    coefficients: u64,
    /// min_l s_l (0 without layers).
    min_bits: u32,
}

impl WeightHiding {
    /// The bound for one inference running every plan once.
    pub fn new<'a>(plans: impl IntoIterator<Item = &'a LayerPlan>) -> Self {
        let (mut sum_sq, mut coefficients, mut min_bits) = (0f64, 0u64, u32::MAX);
        for p in plans {
            let k = p.sent_coefficients() as u64;
            sum_sq += k as f64 * (-2.0 * p.hiding_bits() as f64).exp2();
            coefficients += k;
            min_bits = min_bits.min(p.hiding_bits());
        }
        Self {
            sum_sq,
            coefficients,
            min_bits: if coefficients == 0 { 0 } else { min_bits },
        }
    }

    /// Coefficients the client receives per inference (K = Σ_l K_l).
    pub fn coefficients(&self) -> u64 {
        self.coefficients
    }

    /// The smallest per-coefficient hiding over the layers, in bits.
    pub fn min_coefficient_bits(&self) -> u32 {
        self.min_bits
    }

    /// −log2 of the statistical-distance bound for one inference.
    pub fn inference_bits(&self) -> f64 {
        -0.5 * self.sum_sq.log2()
    }

    /// −log2 of the bound over `inferences` inferences with the same weights
    /// (across all sessions and clients): [`Self::inference_bits`] − ½·log2 Q.
    pub fn lifetime_bits(&self, inferences: u64) -> f64 {
        self.inference_bits() - 0.5 * (inferences.max(1) as f64).log2()
    }

    /// log2 of the most inferences that keep `bits` bits of hiding.
    pub fn max_inferences_log2(&self, bits: u32) -> f64 {
        2.0 * (self.inference_bits() - bits as f64)
    }

    /// log2 of the bound on the probability that some coefficient of one
    /// inference fails to decrypt (a τ-bound of the noise analysis fails).
    pub fn decryption_failure_log2(&self) -> f64 {
        ((self.coefficients.max(1) * TAIL_EVENTS_PER_COEFFICIENT as u64) as f64).log2()
            + TAIL_FAILURE_LOG2 as f64
    }

    /// Checks that `inferences` inferences keep at least
    /// [`STATISTICAL_SECURITY_BITS`] bits of hiding.
    ///
    /// # Errors
    /// [`Error::BadInput`] with the figures if they do not.
    pub fn check_lifetime(&self, inferences: u64) -> Result<()> {
        let bits = self.lifetime_bits(inferences);
        if inferences == 0 || bits < STATISTICAL_SECURITY_BITS as f64 {
            return Err(Error::BadInput(format!(
                "a lifetime of {inferences} inferences hides the weights to statistical \
                 distance 2^-{bits:.1}, less than the required 2^-{STATISTICAL_SECURITY_BITS} \
                 (2^-{:.1} per inference over {} coefficients; at most 2^{:.1} inferences)",
                self.inference_bits(),
                self.coefficients,
                self.max_inferences_log2(STATISTICAL_SECURITY_BITS)
            )));
        }
        Ok(())
    }
}

/// Parses a lifetime budget as written on a command line: a positive
/// integer (`1073741824`) or a power of two (`2^30`).
///
/// # Errors
/// [`Error::BadInput`] for anything else, zero, or more than 2^63.
pub fn parse_inferences(text: &str) -> Result<u64> {
    let bad = || {
        Error::BadInput(format!(
            "inference count {text:?}: expected a positive integer or 2^K with K ≤ 63"
        ))
    };
    let t = text.trim();
    let v = match t.strip_prefix("2^") {
        Some(k) => {
            let k: u32 = k.parse().map_err(|_| bad())?;
            1u64.checked_shl(k).filter(|_| k <= 63).ok_or_else(bad)?
        }
        None => t.parse::<u64>().map_err(|_| bad())?,
    };
    if v == 0 {
        return Err(bad());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::he::{ConvShape, FcShape, HeParams, LayerShape};

    fn plans() -> Vec<LayerPlan> {
        let p = HeParams::default();
        [
            LayerShape::Conv(ConvShape {
                c_in: 16,
                c_out: 32,
                h: 16,
                w: 16,
                kernel: 3,
                stride: 1,
                pad: 1,
            }),
            LayerShape::Fc(FcShape {
                inputs: 512,
                outputs: 10,
            }),
        ]
        .into_iter()
        .map(|s| LayerPlan::new(p, s).unwrap())
        .collect()
    }

    /// The bound is √(Q·Σ K_l·2^(−2·s_l)), recomputed here by hand.
    #[test]
    fn figures_follow_the_l2_bound() {
        let plans = plans();
        let h = WeightHiding::new(&plans);
        let k: usize = plans.iter().map(|p| p.sent_coefficients()).sum();
        assert_eq!(h.coefficients(), k as u64);
        assert_eq!(k, 32 * 16 * 16 + 10);
        let sum: f64 = plans
            .iter()
            .map(|p| p.sent_coefficients() as f64 * (-2.0 * p.hiding_bits() as f64).exp2())
            .sum();
        assert!((h.inference_bits() + 0.5 * sum.log2()).abs() < 1e-9);
        let min = plans.iter().map(|p| p.hiding_bits()).min().unwrap();
        assert_eq!(h.min_coefficient_bits(), min);
        // At least s_min − ½·log2 K, at most s_max − ½·log2 K.
        assert!(h.inference_bits() >= min as f64 - 0.5 * (k as f64).log2() - 1e-9);
        // Q inferences cost ½·log2 Q bits.
        assert!((h.inference_bits() - h.lifetime_bits(1 << 30) - 15.0).abs() < 1e-9);
        assert!((h.lifetime_bits(1) - h.inference_bits()).abs() < 1e-12);
        // Decryption failure: 2·K·2^-71.
        assert!((h.decryption_failure_log2() - ((2 * k) as f64).log2() + 71.0).abs() < 1e-9);
    }

    #[test]
    fn lifetime_check_refuses_too_many_inferences() {
        let h = WeightHiding::new(&plans());
        assert!(h.check_lifetime(DEFAULT_LIFETIME_INFERENCES).is_ok());
        assert!(h.check_lifetime(1).is_ok());
        assert!(h.check_lifetime(0).is_err());
        // 50 bits per inference: 2^20 inferences keep 40 bits, 2^21 do not.
        let h = WeightHiding {
            sum_sq: 2f64.powi(-100),
            coefficients: 1 << 20,
            min_bits: 60,
        };
        assert!((h.inference_bits() - 50.0).abs() < 1e-12);
        assert!((h.max_inferences_log2(STATISTICAL_SECURITY_BITS) - 20.0).abs() < 1e-12);
        assert!(h.check_lifetime(1 << 20).is_ok());
        let err = h.check_lifetime(1 << 21);
        assert!(matches!(err, Err(Error::BadInput(_))), "{err:?}");
        // A network without linear layers hides nothing, so is always fine.
        assert!(WeightHiding::new(&[]).check_lifetime(u64::MAX).is_ok());
    }

    #[test]
    fn inference_counts_parse() {
        assert_eq!(parse_inferences("2^30").unwrap(), 1 << 30);
        assert_eq!(parse_inferences("1000").unwrap(), 1000);
        assert_eq!(parse_inferences("2^63").unwrap(), 1 << 63);
        for bad in ["0", "2^64", "-1", "2^", "1e9", "", "2^-3"] {
            assert!(parse_inferences(bad).is_err(), "{bad}");
        }
    }
}
