//! Coefficient packing of conv and FC layers (Cheetah, Huang et al., USENIX
//! Security 2022, §4): a layer becomes a set of polynomial products with no
//! rotations.
//!
//! Every layer is first rewritten as a *valid, stride-1 correlation*:
//! input (C', Hq, Wq), kernel (O, C', kh', kw'), output (O, Ho, Wo).
//! - zero padding is applied by the client to its share;
//! - a stride s > 1 is removed by polyphase decomposition: phase (a, b) of
//!   the padded input, x[c, s·i + a, s·j + b], becomes its own channel and
//!   the kernel splits the same way into ceil(k/s)-sized taps (phases whose
//!   taps are all zero are dropped, so a 1x1 stride-2 conv is a plain
//!   subsampling). Only the strided outputs are ever computed;
//! - an FC layer is a 1x1 correlation on a 1x1 image with C' = inputs.
//!
//! The correlation is tiled: output tiles of th x tw positions need input
//! tiles of Hb x Wb = (th + kh' − 1) x (tw + kw' − 1) (the halo); Cb input
//! channels of one tile fill one input polynomial, and G output channels
//! share one product, subject to G·Cb·Hb·Wb ≤ N.
//!
//! Input polynomial of (tile, channel block): coefficient c·HbWb + r·Wb + x
//! holds input (c, r, x) of the tile. Kernel polynomial of (output group,
//! channel block): coefficient g·S + O − c·HbWb − u·Wb − v holds w[g, c, u, v],
//! with S = Cb·HbWb and O = (Cb − 1)·HbWb + (kh' − 1)·Wb + (kw' − 1). The
//! product's coefficient g·S + O + i·Wb + j is then exactly output (g, i, j):
//! other (c, c') pairs would need a spatial offset of at least HbWb, other
//! groups land below g·S + O or at or above (g + 1)·S, and the negacyclic
//! wrap-around only reaches degrees below G·S + O − N ≤ O.

use sha2::{Digest, Sha256};

use super::params::{
    C0_DROP_BITS, C1_DROP_BITS, CIPHERTEXT_PRIMES, HeParams, KEEP, POLY_DEGREE, PRIMES,
    TARGET_HIDING_BITS,
};
use crate::{Error, Result};

/// A 2-D convolution: square kernel, zero padding, PyTorch weight layout
/// (O, I, kh, kw), input (C, H, W).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

/// A fully connected layer, weight layout (out, in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FcShape {
    /// Input dimension (for example C·H·W of the last feature map).
    pub inputs: usize,
    /// Output dimension.
    pub outputs: usize,
}

/// A linear layer whose client share the offline HE step computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerShape {
    /// Convolution.
    Conv(ConvShape),
    /// Fully connected.
    Fc(FcShape),
}

impl ConvShape {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.kernel) / self.stride + 1,
            (self.w + 2 * self.pad - self.kernel) / self.stride + 1,
        )
    }
}

impl LayerShape {
    /// Number of input ring elements.
    pub fn input_len(&self) -> usize {
        match self {
            LayerShape::Conv(c) => c.c_in * c.h * c.w,
            LayerShape::Fc(f) => f.inputs,
        }
    }

    /// Number of output ring elements, (O, Ho, Wo) or (outputs).
    pub fn output_len(&self) -> usize {
        match self {
            LayerShape::Conv(c) => {
                let (ho, wo) = c.out_hw();
                c.c_out * ho * wo
            }
            LayerShape::Fc(f) => f.outputs,
        }
    }

    /// Number of weights.
    pub fn weight_len(&self) -> usize {
        match self {
            LayerShape::Conv(c) => c.c_out * c.c_in * c.kernel * c.kernel,
            LayerShape::Fc(f) => f.outputs * f.inputs,
        }
    }

    /// Multiply-accumulates of the layer in the clear.
    pub fn macs(&self) -> usize {
        match self {
            LayerShape::Conv(c) => self.output_len() * c.c_in * c.kernel * c.kernel,
            LayerShape::Fc(f) => f.inputs * f.outputs,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::BadInput(m));
        match *self {
            LayerShape::Conv(c) => {
                if c.c_in == 0
                    || c.c_out == 0
                    || c.h == 0
                    || c.w == 0
                    || c.kernel == 0
                    || c.stride == 0
                {
                    return bad(format!("degenerate conv shape {c:?}"));
                }
                if c.h + 2 * c.pad < c.kernel || c.w + 2 * c.pad < c.kernel || c.pad >= c.kernel {
                    return bad(format!(
                        "conv shape {c:?}: kernel larger than padded input or pad ≥ kernel"
                    ));
                }
                if c.c_in.max(c.c_out).max(c.h).max(c.w) > 1 << 16 || c.kernel > 16 || c.stride > 16
                {
                    return bad(format!("conv shape {c:?} too large"));
                }
            }
            LayerShape::Fc(f) => {
                if f.inputs == 0 || f.outputs == 0 || f.inputs.max(f.outputs) > 1 << 24 {
                    return bad(format!("bad FC shape {f:?}"));
                }
            }
        }
        Ok(())
    }
}

/// How one layer is cut into polynomials. Both parties derive the same plan
/// from the public shape; its digest travels in every message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerPlan {
    pub(crate) params: HeParams,
    pub(crate) shape: LayerShape,
    /// Stride, padding and original kernel (1, 0, 1 for FC).
    pub(crate) stride: usize,
    pub(crate) pad: usize,
    pub(crate) k: usize,
    /// Input dims (C, H, W) before the transform.
    pub(crate) c_in: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    /// Polyphase phases per axis kept (min(stride, kernel)).
    pub(crate) phases: usize,
    /// Correlation geometry: C' channels, Hq x Wq input, kq x kq kernel, O x Ho x Wo output.
    pub(crate) cq: usize,
    pub(crate) hq: usize,
    pub(crate) wq: usize,
    pub(crate) kq: usize,
    pub(crate) o: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
    /// Tiling.
    pub(crate) th: usize,
    pub(crate) tw: usize,
    pub(crate) hb: usize,
    pub(crate) wb: usize,
    pub(crate) cb: usize,
    pub(crate) g: usize,
    pub(crate) row_tiles: usize,
    pub(crate) col_tiles: usize,
    pub(crate) c_blocks: usize,
    pub(crate) o_groups: usize,
    /// Per-coefficient hiding of the flood, in bits (at least
    /// params::TARGET_HIDING_BITS).
    pub(crate) hiding_bits: u32,
    /// Width M of the triangular flood for this layer (public shape only).
    pub(crate) flood_bound: u128,
    pub(crate) digest: [u8; 16],
}

/// Rough cost model used to choose the tiling, in "bytes": wire bytes plus
/// server time priced at 125 bytes per microsecond (1 Gbit/s). Integers, so
/// that both parties choose the same plan on every platform (times in
/// nanoseconds, bytes in bits).
mod cost {
    use super::{C0_DROP_BITS, C1_DROP_BITS, CIPHERTEXT_PRIMES, KEEP, POLY_DEGREE, PRIMES};
    const RESIDUE_BITS: u128 = (64 - (CIPHERTEXT_PRIMES[KEEP] - 1).leading_zeros()) as u128;
    pub const UP_CT_BITS: u128 = PRIMES as u128 * POLY_DEGREE as u128 * RESIDUE_BITS;
    pub const C1_BITS: u128 = POLY_DEGREE as u128 * (RESIDUE_BITS - C1_DROP_BITS as u128);
    pub const C0_BITS_PER_COEFF: u128 = RESIDUE_BITS - C0_DROP_BITS as u128;
    /// 125 bytes per µs = 1 bit per ns.
    pub const BITS_PER_NS: u128 = 1;
    /// An upload ciphertext (expanding `a`, 6 NTTs), a kernel polynomial
    /// (3 NTTs), a multiply-accumulate (6 pointwise), an output (9 NTTs,
    /// sampling, the switch) at N = 8192 with three sub-2^50 primes: the
    /// ratios measured on the 2-core machine (17 : 3.1 : 1 : 24), scaled
    /// to an estimated 15 µs per multiply-accumulate on an idle core.
    pub const UP_NS: u128 = 260_000;
    pub const KERNEL_NS: u128 = 47_000;
    pub const MAC_NS: u128 = 15_000;
    pub const OUT_NS: u128 = 360_000;
}

impl LayerPlan {
    /// Plans `shape` under `params`: the tiling that minimises the cost model
    /// while keeping the layer's noise within budget.
    pub fn new(params: HeParams, shape: LayerShape) -> Result<Self> {
        shape.validate()?;
        let (stride, pad, k, c_in, h, w, o) = match shape {
            LayerShape::Conv(c) => (c.stride, c.pad, c.kernel, c.c_in, c.h, c.w, c.c_out),
            LayerShape::Fc(f) => (1, 0, 1, f.inputs, 1, 1, f.outputs),
        };
        let (ho, wo) = (
            (h + 2 * pad - k) / stride + 1,
            (w + 2 * pad - k) / stride + 1,
        );
        let phases = stride.min(k);
        let kq = k.div_ceil(stride);
        let (cq, hq, wq) = (phases * phases * c_in, ho + kq - 1, wo + kq - 1);
        let n = POLY_DEGREE;
        // Weights summed into one output coefficient per output channel.
        let terms_per_out = c_in * k * k;
        // Outputs per ciphertext the noise budget allows at the target
        // hiding (a layer too wide for even one is refused). Noise grows
        // with g, so a binary search finds the largest g that fits (no
        // more than N outputs share a polynomial anyway).
        let g_noise = {
            let (mut lo, mut hi) = (0usize, o.min(n));
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if params.fits(mid * terms_per_out, TARGET_HIDING_BITS) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            lo
        };
        if g_noise == 0 {
            return Err(Error::BadInput(format!(
                "layer {shape:?} sums {terms_per_out} weights per output: beyond the HE noise budget"
            )));
        }
        let candidates = |len: usize| {
            let mut v: Vec<usize> = (1..=len).map(|parts| len.div_ceil(parts)).collect();
            v.dedup();
            v
        };
        let mut best: Option<(u128, [usize; 4])> = None;
        for &th in &candidates(ho) {
            for &tw in &candidates(wo) {
                let (hb, wb) = (th + kq - 1, tw + kq - 1);
                if hb * wb > n {
                    continue;
                }
                let tiles = (ho.div_ceil(th) * wo.div_ceil(tw)) as u128;
                for cb in 1..=cq.min(n / (hb * wb)) {
                    let g = (n / (cb * hb * wb)).min(o).min(g_noise);
                    if g == 0 {
                        continue;
                    }
                    let c_blocks = cq.div_ceil(cb) as u128;
                    let o_groups = o.div_ceil(g) as u128;
                    let ups = tiles * c_blocks;
                    let outs = tiles * o_groups;
                    let wanted = (o * ho * wo) as u128;
                    let bits = ups * cost::UP_CT_BITS
                        + outs * cost::C1_BITS
                        + wanted * cost::C0_BITS_PER_COEFF;
                    let ns = ups * cost::UP_NS
                        + c_blocks * o_groups * cost::KERNEL_NS
                        + ups * o_groups * cost::MAC_NS
                        + outs * cost::OUT_NS;
                    let total = bits + ns * cost::BITS_PER_NS;
                    if best.is_none_or(|(b, _)| total < b) {
                        best = Some((total, [th, tw, cb, g]));
                    }
                }
            }
        }
        let [th, tw, cb, g] = match best {
            Some((_, t)) => t,
            None => {
                return Err(Error::BadInput(format!(
                    "layer {shape:?}: kernel halo does not fit a polynomial of degree {n}"
                )));
            }
        };
        let (hb, wb) = (th + kq - 1, tw + kq - 1);
        // Raise the hiding as far as the chosen packing leaves budget
        // (g ≤ g_noise, so this is at least the target).
        let beyond = || Error::BadInput(format!("layer {shape:?}: beyond the HE noise budget"));
        let hiding_bits = params
            .max_hiding_bits(g * terms_per_out)
            .ok_or_else(beyond)?;
        let flood_bound = params
            .flood_bound(g * terms_per_out, hiding_bits)
            .ok_or_else(beyond)?;
        let mut plan = Self {
            params,
            shape,
            stride,
            pad,
            k,
            c_in,
            h,
            w,
            phases,
            cq,
            hq,
            wq,
            kq,
            o,
            ho,
            wo,
            th,
            tw,
            hb,
            wb,
            cb,
            g,
            row_tiles: ho.div_ceil(th),
            col_tiles: wo.div_ceil(tw),
            c_blocks: cq.div_ceil(cb),
            o_groups: o.div_ceil(g),
            hiding_bits,
            flood_bound,
            digest: [0; 16],
        };
        plan.digest = plan.compute_digest();
        Ok(plan)
    }

    fn compute_digest(&self) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(b"pi-he-plan-v2");
        h.update(self.params.digest());
        let fields = [
            matches!(self.shape, LayerShape::Fc(_)) as usize,
            self.stride,
            self.pad,
            self.k,
            self.c_in,
            self.h,
            self.w,
            self.o,
            self.th,
            self.tw,
            self.cb,
            self.g,
        ];
        for f in fields {
            h.update((f as u64).to_le_bytes());
        }
        h.update(self.hiding_bits.to_le_bytes());
        h.update(self.flood_bound.to_le_bytes());
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    }

    /// The layer shape.
    pub fn shape(&self) -> LayerShape {
        self.shape
    }

    /// The HE parameters.
    pub fn params(&self) -> HeParams {
        self.params
    }

    /// Digest of the plan, carried by upload and reply.
    pub fn digest(&self) -> [u8; 16] {
        self.digest
    }

    /// Ciphertexts the client uploads.
    pub fn upload_cts(&self) -> usize {
        self.tiles() * self.c_blocks
    }

    /// Ciphertexts the server returns.
    pub fn reply_cts(&self) -> usize {
        self.tiles() * self.o_groups
    }

    /// Ciphertext x plaintext products the server computes.
    pub fn products(&self) -> usize {
        self.tiles() * self.c_blocks * self.o_groups
    }

    /// Margin in bits between the decryption bound and this layer's noise bound.
    pub fn noise_margin_bits(&self) -> f64 {
        let terms = match self.shape {
            LayerShape::Conv(c) => c.c_in * c.kernel * c.kernel,
            LayerShape::Fc(f) => f.inputs,
        };
        self.params
            .noise_margin_bits(self.g * terms, self.hiding_bits)
    }

    /// Per-coefficient hiding of this layer's flood, in bits: every sent
    /// coefficient has D·E[v²] ≤ 2^(−2·hiding) (module docs, *Noise flooding*).
    pub fn hiding_bits(&self) -> u32 {
        self.hiding_bits
    }

    /// Coefficients of c0 sent to the client (one per output element).
    pub fn sent_coefficients(&self) -> usize {
        self.total_wanted()
    }

    /// Input channels per polynomial, output channels per product, tile size.
    pub fn tiling(&self) -> (usize, usize, usize, usize) {
        (self.cb, self.g, self.th, self.tw)
    }

    pub(crate) fn tiles(&self) -> usize {
        self.row_tiles * self.col_tiles
    }

    /// Offset O of the kernel polynomial.
    fn kernel_offset(&self) -> usize {
        (self.cb - 1) * self.hb * self.wb + (self.kq - 1) * self.wb + (self.kq - 1)
    }

    /// Client: the input polynomial of (tile, channel block) as ring elements
    /// in [0, t), written into `out` (length N).
    pub(crate) fn input_poly(&self, share: &[u64], tile: usize, cblk: usize, out: &mut [u64]) {
        out.fill(0);
        let (rt, ct) = (tile / self.col_tiles, tile % self.col_tiles);
        let hbwb = self.hb * self.wb;
        let plane = self.phases * self.phases;
        for c in 0..self.cb {
            let cq = cblk * self.cb + c;
            if cq >= self.cq {
                break;
            }
            let (phase, ch) = (cq / self.c_in, cq % self.c_in);
            debug_assert!(phase < plane);
            let (a, b) = (phase / self.phases, phase % self.phases);
            for r in 0..self.hb {
                let y = rt * self.th + r;
                if y >= self.hq {
                    break;
                }
                // Row in the unpadded input.
                let row = (self.stride * y + a) as isize - self.pad as isize;
                if row < 0 || row >= self.h as isize {
                    continue;
                }
                for x in 0..self.wb {
                    let xq = ct * self.tw + x;
                    if xq >= self.wq {
                        break;
                    }
                    let col = (self.stride * xq + b) as isize - self.pad as isize;
                    if col < 0 || col >= self.w as isize {
                        continue;
                    }
                    out[c * hbwb + r * self.wb + x] =
                        share[(ch * self.h + row as usize) * self.w + col as usize];
                }
            }
        }
    }

    /// Server: the kernel polynomial of (output group, channel block), signed,
    /// written into `out` (length N).
    pub(crate) fn kernel_poly(&self, weights: &[i64], ogrp: usize, cblk: usize, out: &mut [i64]) {
        out.fill(0);
        let hbwb = self.hb * self.wb;
        let s = self.cb * hbwb;
        let off = self.kernel_offset();
        for gi in 0..self.g {
            let oc = ogrp * self.g + gi;
            if oc >= self.o {
                break;
            }
            for c in 0..self.cb {
                let cq = cblk * self.cb + c;
                if cq >= self.cq {
                    break;
                }
                let (phase, ch) = (cq / self.c_in, cq % self.c_in);
                let (a, b) = (phase / self.phases, phase % self.phases);
                for u in 0..self.kq {
                    let ku = self.stride * u + a;
                    if ku >= self.k {
                        continue;
                    }
                    for v in 0..self.kq {
                        let kv = self.stride * v + b;
                        if kv >= self.k {
                            continue;
                        }
                        let wv = weights[((oc * self.c_in + ch) * self.k + ku) * self.k + kv];
                        out[gi * s + off - c * hbwb - u * self.wb - v] = wv;
                    }
                }
            }
        }
    }

    /// Both: the useful coefficients of output ciphertext (tile, output
    /// group), as (coefficient index, index into the (O, Ho, Wo) output), in
    /// increasing coefficient order.
    pub(crate) fn wanted(&self, tile: usize, ogrp: usize, out: &mut Vec<(usize, usize)>) {
        out.clear();
        let (rt, ct) = (tile / self.col_tiles, tile % self.col_tiles);
        let s = self.cb * self.hb * self.wb;
        let off = self.kernel_offset();
        for gi in 0..self.g {
            let oc = ogrp * self.g + gi;
            if oc >= self.o {
                break;
            }
            for i in 0..self.th {
                let y = rt * self.th + i;
                if y >= self.ho {
                    break;
                }
                for j in 0..self.tw {
                    let x = ct * self.tw + j;
                    if x >= self.wo {
                        break;
                    }
                    out.push((
                        gi * s + off + i * self.wb + j,
                        (oc * self.ho + y) * self.wo + x,
                    ));
                }
            }
        }
    }

    /// Useful coefficients over all returned ciphertexts (= output length).
    pub(crate) fn total_wanted(&self) -> usize {
        self.o * self.ho * self.wo
    }
}

/// Cleartext reference over Z_2^l: W·c − s for the layer (the test oracle
/// and a plaintext twin for callers).
pub fn linear_reference(
    params: HeParams,
    shape: &LayerShape,
    weights: &[i64],
    share: &[u64],
    mask: &[u64],
) -> Vec<u64> {
    let m = params.ring_mask();
    let mut out = vec![0u64; shape.output_len()];
    match *shape {
        LayerShape::Conv(c) => {
            let (ho, wo) = c.out_hw();
            for o in 0..c.c_out {
                for y in 0..ho {
                    for x in 0..wo {
                        let mut acc = 0u64;
                        for ch in 0..c.c_in {
                            for u in 0..c.kernel {
                                for v in 0..c.kernel {
                                    let row = (c.stride * y + u) as isize - c.pad as isize;
                                    let col = (c.stride * x + v) as isize - c.pad as isize;
                                    if row < 0
                                        || col < 0
                                        || row >= c.h as isize
                                        || col >= c.w as isize
                                    {
                                        continue;
                                    }
                                    let wv = weights
                                        [((o * c.c_in + ch) * c.kernel + u) * c.kernel + v]
                                        as u64;
                                    let xv = share[(ch * c.h + row as usize) * c.w + col as usize];
                                    acc = acc.wrapping_add(wv.wrapping_mul(xv));
                                }
                            }
                        }
                        let idx = (o * ho + y) * wo + x;
                        out[idx] = acc.wrapping_sub(mask[idx]) & m;
                    }
                }
            }
        }
        LayerShape::Fc(f) => {
            for o in 0..f.outputs {
                let mut acc = 0u64;
                for i in 0..f.inputs {
                    acc =
                        acc.wrapping_add((weights[o * f.inputs + i] as u64).wrapping_mul(share[i]));
                }
                out[o] = acc.wrapping_sub(mask[o]) & m;
            }
        }
    }
    out
}
