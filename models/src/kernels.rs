//! Linear kernels written once for any element type with a multiply-accumulate:
//! `u64` with wrapping arithmetic (the ring Z_2^64, reduced to Z_2^l by the
//! caller's mask, which is exact since 2^l divides 2^64) and `f64` (the float
//! reference). They accumulate into an output buffer the caller initialises
//! (zero for a share, the bias for the plaintext), allocate nothing per
//! element (only a patch matrix and a packed copy per call), and keep 4x4
//! output tiles in registers over the reduction loop.

use crate::network::{ConvGeom, FcGeom};

/// An element with a zero and a multiply-accumulate.
pub trait Mac: Copy + Send + Sync + 'static {
    /// The additive identity.
    const ZERO: Self;
    /// `acc + w * x` (wrapping for integers).
    fn mac(acc: Self, w: Self, x: Self) -> Self;
}

impl Mac for u64 {
    const ZERO: Self = 0;
    #[inline(always)]
    fn mac(acc: u64, w: u64, x: u64) -> u64 {
        acc.wrapping_add(w.wrapping_mul(x))
    }
}

impl Mac for f64 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn mac(acc: f64, w: f64, x: f64) -> f64 {
        acc + w * x
    }
}

/// `out += conv(weights, input)`; weights (cout, cin, k, k), input (cin, in_h, in_w),
/// out (cout, out_h, out_w), zero padding. Panics only if slice lengths do not
/// match the geometry (a programming error, checked up front).
///
/// Lowered to a matrix product out (cout, P) += W (cout, cin*k*k) · cols (cin*k*k, P)
/// with P = out_h*out_w: the patch matrix is built once (skipped for 1x1
/// stride-1 convs) and multiplied by [`gemm_accumulate`].
pub fn conv2d_accumulate<T: Mac>(g: &ConvGeom, weights: &[T], input: &[T], out: &mut [T]) {
    assert_eq!(weights.len(), g.weight_len(), "conv weight length");
    assert_eq!(input.len(), g.cin * g.in_h * g.in_w, "conv input length");
    assert_eq!(out.len(), g.cout * g.out_h * g.out_w, "conv output length");
    let kk = g.cin * g.kernel * g.kernel;
    let p = g.out_h * g.out_w;
    if g.kernel == 1 && g.stride == 1 && g.pad == 0 {
        gemm_accumulate(g.cout, kk, p, weights, input, out);
    } else {
        let cols = im2col(g, input);
        gemm_accumulate(g.cout, kk, p, weights, &cols, out);
    }
}

/// Patch matrix (cin*k*k, out_h*out_w) of a zero-padded convolution.
fn im2col<T: Mac>(g: &ConvGeom, input: &[T]) -> Vec<T> {
    let (k, s, pad) = (g.kernel, g.stride, g.pad);
    let p = g.out_h * g.out_w;
    let mut cols = vec![T::ZERO; g.cin * k * k * p];
    let in_plane = g.in_h * g.in_w;
    for ci in 0..g.cin {
        let in_c = &input[ci * in_plane..(ci + 1) * in_plane];
        for ky in 0..k {
            let (oy0, oy1) = valid_range(ky, s, pad, g.in_h, g.out_h);
            for kx in 0..k {
                let (ox0, ox1) = valid_range(kx, s, pad, g.in_w, g.out_w);
                let row = &mut cols[((ci * k + ky) * k + kx) * p..][..p];
                if ox0 >= ox1 {
                    continue;
                }
                for oy in oy0..oy1 {
                    let iy = oy * s + ky - pad;
                    let in_row = &in_c[iy * g.in_w..(iy + 1) * g.in_w];
                    let dst = &mut row[oy * g.out_w + ox0..oy * g.out_w + ox1];
                    let ix0 = ox0 * s + kx - pad;
                    if s == 1 {
                        dst.copy_from_slice(&in_row[ix0..ix0 + (ox1 - ox0)]);
                    } else {
                        for (j, d) in dst.iter_mut().enumerate() {
                            *d = in_row[ix0 + j * s];
                        }
                    }
                }
            }
        }
    }
    cols
}

/// Rows of `out` per register tile.
const MR: usize = 4;
/// Columns of `out` per register tile.
const NR: usize = 4;

/// out (m, n) += a (m, k) · b (k, n), all row-major.
///
/// Full MR x NR tiles of `out` are held in registers across the whole k loop
/// (16 independent multiply-accumulates per 8 loads, no stores), the edges
/// fall back to row-by-row loops.
pub fn gemm_accumulate<T: Mac>(m: usize, k: usize, n: usize, a: &[T], b: &[T], out: &mut [T]) {
    assert_eq!(a.len(), m * k, "gemm lhs length");
    assert_eq!(b.len(), k * n, "gemm rhs length");
    assert_eq!(out.len(), m * n, "gemm output length");
    if n == 0 || m == 0 {
        return;
    }
    let n_full = n - n % NR;
    // B's full column panels, each stored (k, NR) contiguously so the k loop streams through memory.
    let mut packed = vec![T::ZERO; k * n_full];
    for (p, panel) in packed.chunks_exact_mut(k * NR.max(1)).enumerate() {
        for (j, dst) in panel.chunks_exact_mut(NR).enumerate() {
            dst.copy_from_slice(&b[j * n + p * NR..j * n + p * NR + NR]);
        }
    }
    let mut r0 = 0;
    while r0 + MR <= m {
        let a_rows: [&[T]; MR] = std::array::from_fn(|r| &a[(r0 + r) * k..(r0 + r + 1) * k]);
        for (p, panel) in packed.chunks_exact(k * NR).enumerate() {
            let c0 = p * NR;
            let mut acc = [[T::ZERO; NR]; MR];
            for (r, row) in acc.iter_mut().enumerate() {
                row.copy_from_slice(&out[(r0 + r) * n + c0..(r0 + r) * n + c0 + NR]);
            }
            for ((((bt, &w0), &w1), &w2), &w3) in panel
                .chunks_exact(NR)
                .zip(a_rows[0])
                .zip(a_rows[1])
                .zip(a_rows[2])
                .zip(a_rows[3])
            {
                let bt: &[T; NR] = bt.try_into().expect("tile");
                for c in 0..NR {
                    acc[0][c] = T::mac(acc[0][c], w0, bt[c]);
                    acc[1][c] = T::mac(acc[1][c], w1, bt[c]);
                    acc[2][c] = T::mac(acc[2][c], w2, bt[c]);
                    acc[3][c] = T::mac(acc[3][c], w3, bt[c]);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                out[(r0 + r) * n + c0..(r0 + r) * n + c0 + NR].copy_from_slice(row);
            }
        }
        if n_full < n {
            for (r, a_row) in a_rows.iter().enumerate() {
                row_tail(
                    a_row,
                    b,
                    n,
                    n_full,
                    &mut out[(r0 + r) * n..(r0 + r + 1) * n],
                );
            }
        }
        r0 += MR;
    }
    for r in r0..m {
        row_tail(
            &a[r * k..(r + 1) * k],
            b,
            n,
            0,
            &mut out[r * n..(r + 1) * n],
        );
    }
}

/// out_row[from..] += a_row · b[.., from..].
fn row_tail<T: Mac>(a_row: &[T], b: &[T], n: usize, from: usize, out_row: &mut [T]) {
    for (&w, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
        for (y, &x) in out_row[from..].iter_mut().zip(&b_row[from..]) {
            *y = T::mac(*y, w, x);
        }
    }
}

/// Output indices `o` in `[lo, hi)` with `0 <= o*s + kk - p < in_len`.
fn valid_range(kk: usize, s: usize, p: usize, in_len: usize, out_len: usize) -> (usize, usize) {
    // o*s + kk >= p  <=>  o >= ceil((p - kk) / s)
    let lo = if p > kk { (p - kk).div_ceil(s) } else { 0 };
    // o*s + kk - p <= in_len - 1  <=>  o <= (in_len - 1 + p - kk) / s
    let hi = if in_len + p > kk {
        ((in_len - 1 + p - kk) / s + 1).min(out_len)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// `out += W x` for a dense (out, in) row-major matrix.
pub fn dense_accumulate<T: Mac>(
    rows: usize,
    cols: usize,
    weights: &[T],
    input: &[T],
    out: &mut [T],
) {
    assert_eq!(weights.len(), rows * cols, "dense weight length");
    assert_eq!(input.len(), cols, "dense input length");
    assert_eq!(out.len(), rows, "dense output length");
    for (o, row) in out.iter_mut().zip(weights.chunks_exact(cols)) {
        let mut acc = *o;
        for (&w, &x) in row.iter().zip(input) {
            acc = T::mac(acc, w, x);
        }
        *o = acc;
    }
}

/// FC with pooling folded in: `out += W x` with W of shape (out, C*H*W).
pub fn fc_accumulate<T: Mac>(g: &FcGeom, weights: &[T], input: &[T], out: &mut [T]) {
    dense_accumulate(g.out, g.in_features(), weights, input, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of a zero-padded convolution, for comparison.
    fn naive(g: &ConvGeom, w: &[f64], x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; g.cout * g.out_h * g.out_w];
        for co in 0..g.cout {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut acc = 0.0;
                    for ci in 0..g.cin {
                        for ky in 0..g.kernel {
                            for kx in 0..g.kernel {
                                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= g.in_h as isize
                                    || ix >= g.in_w as isize
                                {
                                    continue;
                                }
                                acc += w[((co * g.cin + ci) * g.kernel + ky) * g.kernel + kx]
                                    * x[(ci * g.in_h + iy as usize) * g.in_w + ix as usize];
                            }
                        }
                    }
                    out[(co * g.out_h + oy) * g.out_w + ox] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn conv_matches_naive_definition() {
        let mut seed = 1u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % 17) as f64 - 8.0
        };
        for &(k, s, side) in &[
            (3, 1, 5),
            (3, 2, 5),
            (3, 2, 6),
            (1, 2, 7),
            (1, 1, 4),
            (3, 1, 1),
            (3, 2, 2),
        ] {
            let p = k / 2;
            let out = crate::spec::conv_out(side, k, s, p);
            let g = ConvGeom {
                cin: 2,
                cout: 3,
                kernel: k,
                stride: s,
                pad: p,
                in_h: side,
                in_w: side,
                out_h: out,
                out_w: out,
            };
            let w: Vec<f64> = (0..g.weight_len()).map(|_| next()).collect();
            let x: Vec<f64> = (0..2 * side * side).map(|_| next()).collect();
            let mut got = vec![0.0; 3 * out * out];
            conv2d_accumulate(&g, &w, &x, &mut got);
            assert_eq!(got, naive(&g, &w, &x), "k={k} s={s} side={side}");
            // The ring kernel agrees with the float one on small integers.
            let wr: Vec<u64> = w.iter().map(|&v| v as i64 as u64).collect();
            let xr: Vec<u64> = x.iter().map(|&v| v as i64 as u64).collect();
            let mut gr = vec![0u64; got.len()];
            conv2d_accumulate(&g, &wr, &xr, &mut gr);
            assert!(gr.iter().zip(&got).all(|(&a, &b)| a as i64 as f64 == b));
        }
    }

    proptest::proptest! {
        /// The tiled product equals the textbook triple loop (wrapping u64) for every shape,
        /// including partial tiles in both dimensions, and accumulates into `out`.
        #[test]
        fn gemm_matches_triple_loop(m in 1usize..10, k in 1usize..7, n in 1usize..11, seed: u64) {
            let mut x = seed | 1;
            let mut next = move || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
            let a: Vec<u64> = (0..m * k).map(|_| next()).collect();
            let b: Vec<u64> = (0..k * n).map(|_| next()).collect();
            let init: Vec<u64> = (0..m * n).map(|_| next()).collect();
            let mut got = init.clone();
            gemm_accumulate(m, k, n, &a, &b, &mut got);
            for i in 0..m {
                for j in 0..n {
                    let want = (0..k).fold(init[i * n + j], |acc, t| acc.wrapping_add(a[i * k + t].wrapping_mul(b[t * n + j])));
                    proptest::prop_assert_eq!(got[i * n + j], want);
                }
            }
        }
    }
}
