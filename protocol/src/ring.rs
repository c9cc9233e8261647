//! Ring vectors over Z_2^l: sampling, wire encoding packed to l bits, and
//! the server's local linear layers on its share, parallel over output channels.
//!
//! The fixed-point contract lives in `pi_models` (crate docs of `pi-models`);
//! this module only moves and combines shares. Every operation is linear over
//! Z_2^l and uses wrapping arithmetic reduced by the ring mask.

use pi_models::RingParams;
use pi_models::kernels::gemm_accumulate;
use pi_models::network::{ConvGeom, FcGeom, LinearKind};
use rand_core::RngCore;
use rayon::prelude::*;

use crate::{Error, Result};

/// `n` uniform ring elements (a fresh mask or share).
pub fn sample<R: RngCore + ?Sized>(rng: &mut R, n: usize, ring: RingParams) -> Vec<u64> {
    (0..n).map(|_| rng.next_u64() & ring.mask()).collect()
}

/// `a - b` element-wise, mod 2^l.
pub fn sub(a: &[u64], b: &[u64], ring: RingParams) -> Vec<u64> {
    debug_assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ring.reduce(x.wrapping_sub(y)))
        .collect()
}

/// `a += b` element-wise, mod 2^l.
pub fn add_assign(a: &mut [u64], b: &[u64], ring: RingParams) {
    debug_assert_eq!(a.len(), b.len());
    a.iter_mut()
        .zip(b)
        .for_each(|(x, &y)| *x = ring.reduce(x.wrapping_add(y)));
}

/// Bytes of `n` ring elements packed to l bits each.
pub fn packed_len(n: usize, ring: RingParams) -> Option<usize> {
    n.checked_mul(ring.bits() as usize).map(|b| b.div_ceil(8))
}

/// Packs ring elements (already reduced) to l bits each, little-endian bit order.
pub fn pack(values: &[u64], ring: RingParams) -> Vec<u8> {
    let l = ring.bits() as usize;
    let mut out = vec![0u8; values.len() * l / 8 + 9];
    let mut bit = 0usize;
    for &v in values {
        let v = ring.reduce(v) as u128;
        let (byte, shift) = (bit / 8, bit % 8);
        let w = v << shift;
        // l + 7 <= 71 bits: nine bytes cover the shifted value.
        for k in 0..9 {
            out[byte + k] |= (w >> (8 * k)) as u8;
        }
        bit += l;
    }
    out.truncate(bit.div_ceil(8));
    out
}

/// Decodes `n` packed ring elements.
///
/// # Errors
/// [`Error::PeerMisbehaved`] on a wrong length or a set padding bit.
pub fn unpack(bytes: &[u8], n: usize, ring: RingParams, what: &str) -> Result<Vec<u64>> {
    let l = ring.bits() as usize;
    let want = packed_len(n, ring)
        .ok_or_else(|| Error::BadInput(format!("{what}: {n} elements overflow")))?;
    if bytes.len() != want {
        return Err(Error::malformed(format!(
            "{what}: {} bytes, expected {want} for {n} values",
            bytes.len()
        )));
    }
    let used = n * l;
    if !used.is_multiple_of(8) && bytes[want - 1] >> (used % 8) != 0 {
        return Err(Error::malformed(format!("{what}: non-zero padding bits")));
    }
    let mut out = Vec::with_capacity(n);
    let mut bit = 0usize;
    for _ in 0..n {
        let (byte, shift) = (bit / 8, bit % 8);
        let mut w = 0u128;
        for k in 0..9.min(bytes.len() - byte) {
            w |= (bytes[byte + k] as u128) << (8 * k);
        }
        out.push(((w >> shift) as u64) & ring.mask());
        bit += l;
    }
    Ok(out)
}

/// Patch matrix (cin*k*k, out_h*out_w) of a zero-padded convolution.
fn im2col(g: &ConvGeom, input: &[u64]) -> Vec<u64> {
    let (k, s, pad) = (g.kernel, g.stride, g.pad);
    let p = g.out_h * g.out_w;
    let mut cols = vec![0u64; g.cin * k * k * p];
    cols.par_chunks_mut(k * k * p)
        .enumerate()
        .for_each(|(ci, rows)| {
            let plane = &input[ci * g.in_h * g.in_w..(ci + 1) * g.in_h * g.in_w];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut rows[(ky * k + kx) * p..][..p];
                    for oy in 0..g.out_h {
                        let iy = (oy * s + ky) as isize - pad as isize;
                        if iy < 0 || iy >= g.in_h as isize {
                            continue;
                        }
                        let src = &plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
                        for ox in 0..g.out_w {
                            let ix = (ox * s + kx) as isize - pad as isize;
                            if ix >= 0 && ix < g.in_w as isize {
                                row[oy * g.out_w + ox] = src[ix as usize];
                            }
                        }
                    }
                }
            }
        });
    cols
}

/// Output channels per parallel task: a multiple of the 4-row register tile.
fn rows_per_task(rows: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    rows.div_ceil(threads).div_ceil(4).max(1) * 4
}

/// `conv(weights, input)` mod 2^l without bias, parallel over output channels.
pub fn conv2d_par(g: &ConvGeom, weights: &[u64], input: &[u64], ring: RingParams) -> Vec<u64> {
    assert_eq!(weights.len(), g.weight_len(), "conv weight length");
    assert_eq!(input.len(), g.cin * g.in_h * g.in_w, "conv input length");
    let kk = g.cin * g.kernel * g.kernel;
    let p = g.out_h * g.out_w;
    let cols;
    let b: &[u64] = if g.kernel == 1 && g.stride == 1 && g.pad == 0 {
        input
    } else {
        cols = im2col(g, input);
        &cols
    };
    let mut out = vec![0u64; g.cout * p];
    let rows = rows_per_task(g.cout);
    out.par_chunks_mut(rows * p)
        .zip(weights.par_chunks(rows * kk))
        .for_each(|(o, w)| {
            gemm_accumulate(o.len() / p.max(1), kk, p, w, b, o);
            o.iter_mut().for_each(|v| *v &= ring.mask());
        });
    out
}

/// Folded FC (pool included) mod 2^l without bias, parallel over outputs.
pub fn fc_par(g: &FcGeom, weights: &[u64], input: &[u64], ring: RingParams) -> Vec<u64> {
    let n = g.in_features();
    assert_eq!(weights.len(), g.out * n, "fc weight length");
    assert_eq!(input.len(), n, "fc input length");
    weights
        .par_chunks(n)
        .map(|row| {
            ring.reduce(
                row.iter()
                    .zip(input)
                    .fold(0u64, |acc, (&w, &x)| acc.wrapping_add(w.wrapping_mul(x))),
            )
        })
        .collect()
}

/// Either linear kind, without bias.
pub fn linear_par(kind: &LinearKind, weights: &[u64], input: &[u64], ring: RingParams) -> Vec<u64> {
    match kind {
        LinearKind::Conv(g) => conv2d_par(g, weights, input, ring),
        LinearKind::Fc(g) => fc_par(g, weights, input, ring),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pi_models::fixed::linear_ring;
    use pi_models::spec::conv_out;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    proptest! {
        #[test]
        fn pack_round_trip(values in proptest::collection::vec(any::<u64>(), 0..40), bits in 25u32..=64) {
            let ring = RingParams::new(bits, 12).unwrap();
            let v: Vec<u64> = values.iter().map(|&x| ring.reduce(x)).collect();
            let bytes = pack(&v, ring);
            prop_assert_eq!(Some(bytes.len()), packed_len(v.len(), ring));
            prop_assert_eq!(unpack(&bytes, v.len(), ring, "t").unwrap(), v);
        }
    }

    #[test]
    fn unpack_rejects_bad_lengths_and_padding() {
        let ring = RingParams::default();
        let bytes = pack(&[1, 2, 3], ring);
        assert!(matches!(
            unpack(&bytes[..bytes.len() - 1], 3, ring, "t"),
            Err(Error::PeerMisbehaved(_))
        ));
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() |= 0x80; // 111 bits used of 112
        assert!(matches!(
            unpack(&bad, 3, ring, "t"),
            Err(Error::PeerMisbehaved(_))
        ));
    }

    #[test]
    fn parallel_kernels_match_models() {
        let ring = RingParams::default();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        for &(cin, cout, k, s, side) in &[
            (3, 5, 3, 1, 6),
            (4, 9, 3, 2, 7),
            (2, 6, 1, 2, 8),
            (3, 4, 1, 1, 5),
            (1, 13, 3, 1, 3),
        ] {
            let pad = k / 2;
            let out = conv_out(side, k, s, pad);
            let g = ConvGeom {
                cin,
                cout,
                kernel: k,
                stride: s,
                pad,
                in_h: side,
                in_w: side,
                out_h: out,
                out_w: out,
            };
            let w = sample(&mut rng, g.weight_len(), ring);
            let x = sample(&mut rng, cin * side * side, ring);
            let kind = LinearKind::Conv(g);
            assert_eq!(
                linear_par(&kind, &w, &x, ring),
                linear_ring(&kind, &w, &x, ring)
            );
        }
        let g = FcGeom {
            input: pi_models::network::Shape { c: 3, h: 2, w: 2 },
            out: 7,
        };
        let w = sample(&mut rng, 7 * 12, ring);
        let x = sample(&mut rng, 12, ring);
        let kind = LinearKind::Fc(g);
        assert_eq!(
            linear_par(&kind, &w, &x, ring),
            linear_ring(&kind, &w, &x, ring)
        );
    }
}
