//! Fixed-point arithmetic over Z_2^l and the plaintext fixed-point oracle.
//!
//! The semantics (shared by the whole project; the private protocol must match
//! them bit for bit):
//! - A ring element is a `u64` holding the low l bits; its signed view is
//!   v - 2^l when v >= 2^(l-1).
//! - Inputs and BN-folded weights are quantised at scale f:
//!   q = round(x * 2^f) in f64, rounding half away from zero, then mod 2^l.
//!   Biases are quantised at scale 2f. A value whose quantisation does not fit
//!   in the signed range [-2^(l-1), 2^(l-1)) is rejected rather than wrapped.
//! - A conv / FC output is sum(w*x) + b at scale 2f, mod 2^l.
//! - Residual add at scale 2f: conv2 output + shortcut, where an identity
//!   shortcut's scale-f input is multiplied by 2^f first.
//! - Each activation: trunc(z) = (signed(z) >> f) mod 2^l (arithmetic shift,
//!   i.e. floor division), then ReLU at kept positions, identity elsewhere.
//! - Average pooling is folded into the FC: weight w / (H*W) at every position
//!   of the final map, quantised at scale f; FC bias at scale 2f. Logits stay
//!   at scale 2f (no truncation).
//!
//! The `*_ring` functions are the local linear building blocks the protocol
//! applies to additive shares: they take no bias (one party adds it with
//! [`add_bias_ring`]) and are linear over Z_2^l.

use crate::error::{Error, Result};
use crate::kernels::{conv2d_accumulate, fc_accumulate};
use crate::network::{ConvGeom, FcGeom, LinearKind, Network, Step};
use crate::weights::FoldedModel;

/// Ring size l and fractional bits f, validated: 1 <= f, 2f < l <= 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RingParams {
    bits: u32,
    frac: u32,
}

impl Default for RingParams {
    /// l = 37, f = 12: 2f = 24 bits of scale leave 2^12 of headroom for logits at scale 2f.
    fn default() -> Self {
        RingParams { bits: 37, frac: 12 }
    }
}

impl RingParams {
    /// Default ring bits l.
    pub const DEFAULT_BITS: u32 = 37;
    /// Default fractional bits f.
    pub const DEFAULT_FRAC: u32 = 12;

    /// Checks 1 <= f and 2f < l <= 64 (a product of two scale-f values must fit).
    pub fn new(bits: u32, frac: u32) -> Result<Self> {
        if !(2..=64).contains(&bits) {
            return Err(Error::Params(format!(
                "ring bits l = {bits}: must be between 2 and 64"
            )));
        }
        if frac == 0 || 2 * frac >= bits {
            return Err(Error::Params(format!(
                "fractional bits f = {frac}: need 1 <= f and 2f < l = {bits}"
            )));
        }
        Ok(RingParams { bits, frac })
    }
    /// l.
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// f.
    pub fn frac(&self) -> u32 {
        self.frac
    }
    /// 2^l - 1.
    #[inline(always)]
    pub fn mask(&self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }
    /// Reduces mod 2^l.
    #[inline(always)]
    pub fn reduce(&self, v: u64) -> u64 {
        v & self.mask()
    }
    /// Signed view of a ring element.
    #[inline(always)]
    pub fn to_signed(&self, v: u64) -> i64 {
        let sh = 64 - self.bits;
        ((v << sh) as i64) >> sh
    }
    /// Ring element of a signed integer.
    #[inline(always)]
    pub fn from_signed(&self, v: i64) -> u64 {
        (v as u64) & self.mask()
    }
    /// round(x * 2^scale_bits), half away from zero, as a ring element, or
    /// `None` if x is not finite or the result is outside [-2^(l-1), 2^(l-1)).
    pub fn quantize(&self, x: f64, scale_bits: u32) -> Option<u64> {
        let q = (x * (scale_bits as f64).exp2()).round();
        let half = ((self.bits - 1) as f64).exp2();
        if !q.is_finite() || q < -half || q >= half {
            return None;
        }
        Some(self.from_signed(q as i64))
    }
    /// Signed value divided by 2^scale_bits.
    pub fn to_f64(&self, v: u64, scale_bits: u32) -> f64 {
        self.to_signed(v) as f64 / (scale_bits as f64).exp2()
    }
    /// trunc(z) = (signed(z) >> f) mod 2^l.
    #[inline(always)]
    pub fn trunc(&self, z: u64) -> u64 {
        self.from_signed(self.to_signed(z) >> self.frac)
    }
    /// The activation: trunc(z), then ReLU if `keep` (the truncation happens either way).
    #[inline(always)]
    pub fn trunc_relu(&self, z: u64, keep: bool) -> u64 {
        let t = self.to_signed(z) >> self.frac;
        self.from_signed(if keep { t.max(0) } else { t })
    }
}

/// Free-function form of [`RingParams::trunc_relu`], the plaintext twin of the ReLU and truncation circuits.
#[inline(always)]
pub fn trunc_relu(z: u64, keep: bool, ring: RingParams) -> u64 {
    ring.trunc_relu(z, keep)
}

/// conv(weights, input) mod 2^l without bias. Linear over Z_2^l, so it applies to additive shares.
pub fn conv2d_ring(g: &ConvGeom, weights: &[u64], input: &[u64], ring: RingParams) -> Vec<u64> {
    let mut out = vec![0u64; g.cout * g.out_h * g.out_w];
    conv2d_accumulate(g, weights, input, &mut out);
    out.iter_mut().for_each(|v| *v &= ring.mask());
    out
}

/// Folded FC (pool included) mod 2^l without bias.
pub fn fc_ring(g: &FcGeom, weights: &[u64], input: &[u64], ring: RingParams) -> Vec<u64> {
    let mut out = vec![0u64; g.out];
    fc_accumulate(g, weights, input, &mut out);
    out.iter_mut().for_each(|v| *v &= ring.mask());
    out
}

/// Either linear kind, without bias.
pub fn linear_ring(
    kind: &LinearKind,
    weights: &[u64],
    input: &[u64],
    ring: RingParams,
) -> Vec<u64> {
    match kind {
        LinearKind::Conv(g) => conv2d_ring(g, weights, input, ring),
        LinearKind::Fc(g) => fc_ring(g, weights, input, ring),
    }
}

/// Adds a per-output-channel bias (each bias covers `out.len() / bias.len()` consecutive positions).
pub fn add_bias_ring(out: &mut [u64], bias: &[u64], ring: RingParams) {
    assert!(
        !bias.is_empty() && out.len().is_multiple_of(bias.len()),
        "bias length must divide output length"
    );
    let per = out.len() / bias.len();
    for (chunk, &b) in out.chunks_exact_mut(per).zip(bias) {
        chunk
            .iter_mut()
            .for_each(|v| *v = ring.reduce(v.wrapping_add(b)));
    }
}

/// Residual add at scale 2f: `lhs + rhs * 2^f` if `rhs_upscale`, else `lhs + rhs`, mod 2^l.
pub fn residual_add_ring(
    lhs: &[u64],
    rhs: &[u64],
    rhs_upscale: bool,
    ring: RingParams,
) -> Vec<u64> {
    assert_eq!(lhs.len(), rhs.len(), "residual operands differ in length");
    let sh = if rhs_upscale { ring.frac } else { 0 };
    lhs.iter()
        .zip(rhs)
        .map(|(&a, &b)| ring.reduce(a.wrapping_add(b << sh)))
        .collect()
}

/// Quantised weights of one linear layer: weight at scale f, bias at scale 2f.
/// The FC weight is the folded (out, C*H*W) matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantLinear {
    /// Weights at scale f, laid out as the step's geometry says.
    pub weight: Vec<u64>,
    /// One bias per output channel at scale 2f.
    pub bias: Vec<u64>,
}

impl QuantLinear {
    /// The weights in the signed view (what an HE encoder takes).
    pub fn signed_weights(&self, ring: RingParams) -> Vec<i64> {
        self.weight.iter().map(|&w| ring.to_signed(w)).collect()
    }
}

/// A quantised network: one [`QuantLinear`] per [`Network::linears`] entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantModel {
    /// The ring the values live in.
    pub ring: RingParams,
    /// One entry per linear step, in order.
    pub layers: Vec<QuantLinear>,
}

impl QuantModel {
    /// Quantises BN-folded weights; errors name the layer whose value does not fit the ring.
    pub fn quantize(net: &Network, folded: &FoldedModel, ring: RingParams) -> Result<QuantModel> {
        let f = ring.frac;
        if folded.layers.len() != net.linears().count() {
            return Err(Error::weights(
                "",
                format!(
                    "{} folded layers for {} linear layers",
                    folded.layers.len(),
                    net.linears().count()
                ),
            ));
        }
        let mut layers = Vec::with_capacity(folded.layers.len());
        for (l, fl) in net.linears().zip(&folded.layers) {
            let (want_w, want_b) = match l.kind {
                LinearKind::Conv(g) => (g.weight_len(), g.cout),
                LinearKind::Fc(g) => (g.out * g.input.c, g.out),
            };
            if fl.weight.len() != want_w || fl.bias.len() != want_b {
                return Err(Error::weights(
                    &l.name,
                    "folded weights do not match the layer's shape",
                ));
            }
            let q = |x: f64, s: u32, what: &str| {
                ring.quantize(x, s).ok_or_else(|| {
                    Error::weights(
                        &l.name,
                        format!(
                            "{what} value {x} does not fit the ring (l = {}, scale 2^{s})",
                            ring.bits
                        ),
                    )
                })
            };
            let weight = match l.kind {
                LinearKind::Conv(_) => fl
                    .weight
                    .iter()
                    .map(|&w| q(w, f, "weight"))
                    .collect::<Result<Vec<_>>>()?,
                LinearKind::Fc(g) => {
                    let area = g.pool_area();
                    let mut out = Vec::with_capacity(g.out * g.in_features());
                    for &w in &fl.weight {
                        let v = q(w / area as f64, f, "weight")?;
                        out.extend(std::iter::repeat_n(v, area));
                    }
                    out
                }
            };
            let bias = fl
                .bias
                .iter()
                .map(|&b| q(b, 2 * f, "bias"))
                .collect::<Result<Vec<_>>>()?;
            layers.push(QuantLinear { weight, bias });
        }
        Ok(QuantModel { ring, layers })
    }
}

/// Quantises an input tensor at scale f.
pub fn quantize_input(x: &[f32], ring: RingParams) -> Result<Vec<u64>> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            ring.quantize(v as f64, ring.frac).ok_or_else(|| {
                Error::Input(format!(
                    "element {i} = {v} is not finite or too large for the ring"
                ))
            })
        })
        .collect()
}

/// Runs the fixed-point oracle and returns every tensor of the network,
/// indexed by [`crate::network::TensorId`]; the logits are `trace[net.output]`.
pub fn forward_fixed_trace(net: &Network, model: &QuantModel, input: &[u64]) -> Vec<Vec<u64>> {
    let ring = model.ring;
    assert_eq!(
        input.len(),
        net.tensors[net.input].shape.numel(),
        "input length"
    );
    assert_eq!(
        model.layers.len(),
        net.linears().count(),
        "one quantised layer per linear step"
    );
    let mut t: Vec<Vec<u64>> = vec![Vec::new(); net.tensors.len()];
    t[net.input] = input.iter().map(|&v| ring.reduce(v)).collect();
    for step in &net.steps {
        match step {
            Step::Linear(l) => {
                let q = &model.layers[l.index];
                let mut out = linear_ring(&l.kind, &q.weight, &t[l.input], ring);
                add_bias_ring(&mut out, &q.bias, ring);
                t[l.output] = out;
            }
            Step::Add(a) => {
                t[a.output] = residual_add_ring(&t[a.lhs], &t[a.rhs], a.rhs_upscale, ring)
            }
            Step::Activation(a) => {
                let out = t[a.input]
                    .iter()
                    .enumerate()
                    .map(|(i, &z)| ring.trunc_relu(z, a.keeps(i)))
                    .collect();
                t[a.output] = out;
            }
        }
    }
    t
}

/// Fixed-point logits (ring elements at scale 2f).
pub fn forward_fixed(net: &Network, model: &QuantModel, input: &[u64]) -> Vec<u64> {
    let mut t = forward_fixed_trace(net, model, input);
    std::mem::take(&mut t[net.output])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn params() {
        assert!(RingParams::new(37, 12).is_ok());
        assert!(RingParams::new(24, 12).is_err());
        assert!(RingParams::new(65, 12).is_err());
        assert!(RingParams::new(37, 0).is_err());
        assert_eq!(RingParams::new(64, 20).unwrap().mask(), u64::MAX);
    }

    #[test]
    fn quantize_rounds_half_away_from_zero() {
        let r = RingParams::new(16, 2).unwrap();
        assert_eq!(r.quantize(0.125, 2).map(|v| r.to_signed(v)), Some(1)); // 0.5 -> 1
        assert_eq!(r.quantize(-0.125, 2).map(|v| r.to_signed(v)), Some(-1)); // -0.5 -> -1
        assert_eq!(r.quantize(0.3, 2).map(|v| r.to_signed(v)), Some(1)); // 1.2 -> 1
        assert_eq!(r.quantize(-1.0, 2), Some(0xffff - 3));
        assert_eq!(r.quantize(8191.75, 2).map(|v| r.to_signed(v)), Some(32767));
        assert_eq!(r.quantize(8192.0, 2), None);
        assert_eq!(r.quantize(-8192.0, 2).map(|v| r.to_signed(v)), Some(-32768));
        assert_eq!(r.quantize(f64::NAN, 2), None);
    }

    #[test]
    fn trunc_is_floor() {
        let r = RingParams::default();
        let z = r.from_signed(-1); // -1 / 4096 floors to -1
        assert_eq!(r.to_signed(r.trunc(z)), -1);
        assert_eq!(r.trunc_relu(z, true), 0);
        assert_eq!(r.to_signed(r.trunc_relu(z, false)), -1);
        assert_eq!(r.trunc(r.from_signed(8191)), 1);
        assert_eq!(r.to_signed(r.trunc(r.from_signed(-8193))), -3);
    }

    proptest! {
        #[test]
        fn trunc_matches_floor_division(v in -(1i64 << 36)..(1i64 << 36), keep: bool) {
            let r = RingParams::default();
            let t = v.div_euclid(1 << 12);
            prop_assert_eq!(r.to_signed(r.trunc_relu(r.from_signed(v), keep)), if keep { t.max(0) } else { t });
        }

        /// The ring conv is linear: conv(a) + conv(b) = conv(a + b) mod 2^l (shares reconstruct).
        #[test]
        fn conv_ring_is_linear_on_shares(seed: u64) {
            use rand_chacha::ChaCha8Rng;
            use rand_core::{RngCore, SeedableRng};
            let r = RingParams::default();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let g = ConvGeom { cin: 3, cout: 4, kernel: 3, stride: 2, pad: 1, in_h: 7, in_w: 7, out_h: 4, out_w: 4 };
            let w: Vec<u64> = (0..g.weight_len()).map(|_| r.reduce(rng.next_u64())).collect();
            let a: Vec<u64> = (0..3 * 49).map(|_| r.reduce(rng.next_u64())).collect();
            let b: Vec<u64> = (0..3 * 49).map(|_| r.reduce(rng.next_u64())).collect();
            let sum: Vec<u64> = a.iter().zip(&b).map(|(x, y)| r.reduce(x.wrapping_add(*y))).collect();
            let ca = conv2d_ring(&g, &w, &a, r);
            let cb = conv2d_ring(&g, &w, &b, r);
            let cs = conv2d_ring(&g, &w, &sum, r);
            for i in 0..cs.len() {
                prop_assert_eq!(r.reduce(ca[i].wrapping_add(cb[i])), cs[i]);
            }
        }
    }
}
