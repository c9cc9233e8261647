//! The three-halves AND kernels (Rosulek and Roy, CRYPTO 2021; twins of the
//! same names in `gc/three_halves.rs`).
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::*;

/// `(A_L ⊕ A_R ⊕ B_L, A_L ⊕ B_R)` per lane: RR21's `S1·(A, B)`.
#[inline]
#[target_feature(enable = "avx512f")]
fn s1(a: __m512i, b: __m512i) -> __m512i {
    let z = _mm512_setzero_si512();
    // (A_L, A_L) ⊕ (B_L, B_R) ⊕ (A_R, 0).
    _mm512_ternarylogic_epi64::<0x96>(_mm512_unpacklo_epi64(a, a), b, _mm512_unpackhi_epi64(a, z))
}

/// `(A_L ⊕ B_R, A_R ⊕ B_L ⊕ B_R)` per lane: RR21's `S2·(A, B)`.
#[inline]
#[target_feature(enable = "avx512f")]
fn s2(a: __m512i, b: __m512i) -> __m512i {
    let z = _mm512_setzero_si512();
    // (A_L, A_R) ⊕ (B_R, B_L) ⊕ (0, B_R).
    _mm512_ternarylogic_epi64::<0x96>(
        a,
        _mm512_shuffle_epi32::<0x4e>(b),
        _mm512_unpackhi_epi64(z, b),
    )
}

/// `(m & v) ⊕ acc` in one instruction.
#[inline]
#[target_feature(enable = "avx512f")]
fn and_xor(m: __m512i, v: __m512i, acc: __m512i) -> __m512i {
    _mm512_ternarylogic_epi64::<0x6a>(m, v, acc)
}

/// `(¬m & v) ⊕ acc` in one instruction.
#[inline]
#[target_feature(enable = "avx512f")]
fn andn_xor(m: __m512i, v: __m512i, acc: __m512i) -> __m512i {
    _mm512_ternarylogic_epi64::<0xa6>(m, v, acc)
}

/// All-ones in the lanes whose qword `Q` (0 or 1) has bit 0 set.
#[inline]
#[target_feature(enable = "avx512f")]
fn bit0_mask<const Q: i32>(v: __m512i) -> __m512i {
    let m = _mm512_srai_epi64::<63>(_mm512_slli_epi64::<63>(v));
    if Q == 0 {
        _mm512_unpacklo_epi64(m, m)
    } else {
        _mm512_unpackhi_epi64(m, m)
    }
}

/// Shift counts `(5 m + lo, 5 m + hi)` for lane m: picks control bits of
/// instance m out of a broadcast 20-bit group.
#[inline]
#[target_feature(enable = "avx512f")]
fn field_shifts(lo: i64, hi: i64) -> __m512i {
    let f = CONTROL_BITS as i64;
    _mm512_set_epi64(
        3 * f + hi,
        3 * f + lo,
        2 * f + hi,
        2 * f + lo,
        f + hi,
        f + lo,
        hi,
        lo,
    )
}

#[target_feature(enable = "avx512f,vaes,aes")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn garble_and3_impl(
    rk: &[u128; 11],
    d: u128,
    x: &[Block],
    y: &[Block],
    tw: u128,
    u: &[u8],
    out: &mut [Block],
    table: &mut [u8],
    ctrl: &mut [u8],
    bit0: usize,
) -> usize {
    const STEP: usize = LANES * GARBLE3_GROUPS;
    let n = x.len() / STEP * STEP;
    let k = keys(rk);
    let dz = splat(d);
    let (dl, dr) = (d as u64, (d >> 64) as u64);
    // S1·(Δ, 0) = (Δ_L ⊕ Δ_R, Δ_L) and S2·(0, Δ) = (Δ_R, Δ_L ⊕ Δ_R).
    let s1d = splat((dl ^ dr) as u128 | (dl as u128) << 64);
    let s2d = splat(dr as u128 | ((dl ^ dr) as u128) << 64);
    let step = low_add((LANES as u64) << INSTANCE_SHIFT);
    let one = low_add(1);
    let two = low_add(2);
    let bit = _mm512_set1_epi64(1);
    // The 2 random bits of instance m in bit 0 of lane m's qwords 0 and 1.
    let u_shifts = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    // Table records K0, K1, K2 of four instances from P = (K0, K1) and
    // Q = (K1, K2) (qword 8 and above pick from Q).
    let rec_lo = _mm512_set_epi64(5, 4, 11, 3, 2, 9, 1, 0);
    let rec_hi = _mm512_set_epi64(0, 0, 0, 0, 15, 7, 6, 13);
    let mut t = first_tweaks(tw);
    let (xp, yp) = (x.as_ptr().cast::<__m512i>(), y.as_ptr().cast::<__m512i>());
    let op = out.as_mut_ptr().cast::<__m512i>();
    let tp = table.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let zero = _mm512_setzero_si512();
        let mut a = [zero; GARBLE3_GROUPS];
        let mut b = [zero; GARBLE3_GROUPS];
        let (mut pa, mut pb) = ([zero; GARBLE3_GROUPS], [zero; GARBLE3_GROUPS]);
        let mut ta = [zero; GARBLE3_GROUPS];
        let mut p = [zero; 6 * GARBLE3_GROUPS];
        for g in 0..GARBLE3_GROUPS {
            // SAFETY: i + 4g + 4 <= n <= x.len() = y.len() blocks of 16 bytes.
            let (a0, b0) = unsafe {
                (
                    _mm512_loadu_si512(xp.add(i / LANES + g)),
                    _mm512_loadu_si512(yp.add(i / LANES + g)),
                )
            };
            // The color-0 labels A* = A0 ⊕ pa Δ, B* = B0 ⊕ pb Δ (pa, pb:
            // colors of the zero labels).
            (pa[g], pb[g]) = lsb_masks(a0, b0);
            a[g] = and_xor(pa[g], dz, a0);
            b[g] = and_xor(pb[g], dz, b0);
            let xab = _mm512_xor_si512(a[g], b[g]);
            p[6 * g] = a[g];
            p[6 * g + 1] = _mm512_xor_si512(a[g], dz);
            p[6 * g + 2] = b[g];
            p[6 * g + 3] = _mm512_xor_si512(b[g], dz);
            p[6 * g + 4] = xab;
            p[6 * g + 5] = _mm512_xor_si512(xab, dz);
            ta[g] = t;
            t = _mm512_add_epi64(t, step);
        }
        encrypt(&k, &mut p);
        let mut q = p;
        for g in 0..GARBLE3_GROUPS {
            let tb = _mm512_add_epi64(ta[g], one);
            let tc = _mm512_add_epi64(ta[g], two);
            for (h, tweak) in [ta[g], ta[g], tb, tb, tc, tc].into_iter().enumerate() {
                q[6 * g + h] = _mm512_xor_si512(q[6 * g + h], tweak);
            }
        }
        encrypt(&k, &mut q);
        // Control bits of the 8 instances of this iteration (40 bits); the
        // random bits of a group of four are one byte of u.
        let mut fields = 0u64;
        for g in 0..GARBLE3_GROUPS {
            let h: [__m512i; 6] =
                core::array::from_fn(|j| _mm512_xor_si512(q[6 * g + j], p[6 * g + j]));
            let (a, b) = (a[g], b[g]);
            let uv = _mm512_and_si512(
                _mm512_srlv_epi64(_mm512_set1_epi64(u[i / 4 + g] as i64), u_shifts),
                bit,
            );
            let um = _mm512_srai_epi64::<63>(_mm512_slli_epi64::<63>(uv));
            let (u0, u1) = (_mm512_unpacklo_epi64(um, um), _mm512_unpackhi_epi64(um, um));
            let (pa, pb) = (pa[g], pb[g]);
            let pab = _mm512_xor_si512(pa, pb);
            let ua = _mm512_xor_si512(h[0], h[4]);
            let ub = _mm512_xor_si512(h[2], h[4]);
            let da = _mm512_xor_si512(h[0], h[1]);
            let db = _mm512_xor_si512(h[2], h[3]);
            let dx = _mm512_xor_si512(h[4], h[5]);
            let pl = _mm512_xor_si512(da, dx);
            let qr = _mm512_xor_si512(db, dx);
            let (s1v, s2v) = (s1(a, b), s2(a, b));
            // C0 = (U_L, W_L) ⊕ (B*_L, A*_R) ⊕ u0 S1 ⊕ u1 S2 ⊕ pa pb Δ.
            let mut c0 = _mm512_xor_si512(
                _mm512_unpacklo_epi64(ua, ub),
                _mm512_mask_blend_epi64(0xaa, b, a),
            );
            c0 = and_xor(u0, s1v, c0);
            c0 = and_xor(u1, s2v, c0);
            c0 = and_xor(_mm512_and_si512(pa, pb), dz, c0);
            // P = (dA ⊕ dX, dX)_L ⊕ (B*_L, Δ_R) ⊕ ¬pb S1 ⊕ (pa ⊕ pb) S2
            //     ⊕ (u1 ⊕ pa) Δ ⊕ (u0 ⊕ ¬pb) S1(Δ, 0).
            let mut pv = _mm512_xor_si512(
                _mm512_unpacklo_epi64(pl, dx),
                _mm512_mask_blend_epi64(0xaa, b, dz),
            );
            pv = andn_xor(pb, s1v, pv);
            pv = and_xor(pab, s2v, pv);
            pv = and_xor(_mm512_xor_si512(u1, pa), dz, pv);
            pv = andn_xor(_mm512_xor_si512(u0, pb), s1d, pv);
            // Q = (dX, dB ⊕ dX)_L ⊕ (Δ_L, A*_R) ⊕ (pa ⊕ pb) S1 ⊕ ¬pa S2
            //     ⊕ (u0 ⊕ pb) Δ ⊕ (u1 ⊕ ¬pa) S2(0, Δ).
            let mut qv = _mm512_xor_si512(
                _mm512_unpacklo_epi64(dx, qr),
                _mm512_mask_blend_epi64(0xaa, dz, a),
            );
            qv = and_xor(pab, s1v, qv);
            qv = andn_xor(pa, s2v, qv);
            qv = and_xor(_mm512_xor_si512(u0, pb), dz, qv);
            qv = andn_xor(_mm512_xor_si512(u1, pa), s2d, qv);
            // Control bits, bit 2m (qword 0) and 2m + 1 (qword 1) of lane m
            // of the test masks: (y0, y1) = c(U, W) ⊕ u, (y2, y3) =
            // c(dA ⊕ dX, dX) ⊕ (¬pb, pa ⊕ pb), y4 = c(dB ⊕ dX) ⊕ ¬pa at 2m + 1.
            let y01 =
                _mm512_test_epi64_mask(_mm512_xor_si512(_mm512_unpackhi_epi64(ua, ub), uv), bit);
            let y23 = _mm512_test_epi64_mask(
                _mm512_xor_si512(
                    _mm512_unpackhi_epi64(pl, dx),
                    _mm512_mask_blend_epi64(0xaa, pb, pab),
                ),
                bit,
            ) ^ 0x55;
            let y4 =
                !_mm512_test_epi64_mask(_mm512_xor_si512(_mm512_unpackhi_epi64(dx, qr), pa), bit);
            let (y01, y23, y4) = (y01 as u64, y23 as u64, y4 as u64);
            for m in 0..LANES {
                let f = ((y01 >> (2 * m)) & 3)
                    | ((y23 >> (2 * m)) & 3) << 2
                    | ((y4 >> (2 * m + 1)) & 1) << 4;
                fields |= f << (CONTROL_BITS * (LANES * g + m));
            }
            let lo = _mm512_permutex2var_epi64(pv, rec_lo, qv);
            let hi = _mm512_permutex2var_epi64(pv, rec_hi, qv);
            // SAFETY: instances i + 4g .. i + 4g + 4 are within out (n blocks)
            // and their 96 table bytes within table (24 n bytes); the masked
            // store writes only its first 32 bytes.
            unsafe {
                _mm512_storeu_si512(op.add(i / LANES + g), c0);
                let at = tp.add(AND3_BYTES * (i + LANES * g));
                _mm512_storeu_si512(at.cast(), lo);
                _mm512_mask_storeu_epi64(at.add(64).cast(), 0x0f, hi);
            }
        }
        or_bits(ctrl, bit0 + CONTROL_BITS * i, fields, CONTROL_BITS * STEP);
        i += STEP;
    }
    n
}

#[target_feature(enable = "avx512f,vaes,aes")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn eval_and3_impl(
    rk: &[u128; 11],
    x: &[Block],
    y: &[Block],
    tw: u128,
    table: &[u8],
    ctrl: &[u8],
    bit0: usize,
    out: &mut [Block],
) -> usize {
    const STEP: usize = LANES * EVAL3_GROUPS;
    let n = x.len() / STEP * STEP;
    let k = keys(rk);
    let step = low_add((LANES as u64) << INSTANCE_SHIFT);
    let one = low_add(1);
    let two = low_add(2);
    // P = (K0, K1) and Q = (K1, K2) of four instances from their 96 table bytes.
    let idx_p = _mm512_set_epi64(10, 9, 7, 6, 4, 3, 1, 0);
    let idx_q = _mm512_set_epi64(11, 10, 8, 7, 5, 4, 2, 1);
    let (sh01, sh23, sh34) = (field_shifts(0, 1), field_shifts(2, 3), field_shifts(3, 4));
    let mut t = first_tweaks(tw);
    let (xp, yp) = (x.as_ptr().cast::<__m512i>(), y.as_ptr().cast::<__m512i>());
    let op = out.as_mut_ptr().cast::<__m512i>();
    let tp = table.as_ptr();
    let mut i = 0;
    while i < n {
        let zero = _mm512_setzero_si512();
        let mut ta = [zero; EVAL3_GROUPS];
        let mut ab = [zero; 2 * EVAL3_GROUPS];
        let mut p = [zero; 3 * EVAL3_GROUPS];
        for g in 0..EVAL3_GROUPS {
            // SAFETY: i + 4g + 4 <= n <= x.len() = y.len().
            let (a, b) = unsafe {
                (
                    _mm512_loadu_si512(xp.add(i / LANES + g)),
                    _mm512_loadu_si512(yp.add(i / LANES + g)),
                )
            };
            (ab[2 * g], ab[2 * g + 1]) = (a, b);
            p[3 * g] = a;
            p[3 * g + 1] = b;
            p[3 * g + 2] = _mm512_xor_si512(a, b);
            ta[g] = t;
            t = _mm512_add_epi64(t, step);
        }
        encrypt(&k, &mut p);
        let mut q = p;
        for g in 0..EVAL3_GROUPS {
            q[3 * g] = _mm512_xor_si512(q[3 * g], ta[g]);
            q[3 * g + 1] = _mm512_xor_si512(q[3 * g + 1], _mm512_add_epi64(ta[g], one));
            q[3 * g + 2] = _mm512_xor_si512(q[3 * g + 2], _mm512_add_epi64(ta[g], two));
        }
        encrypt(&k, &mut q);
        // The 5-bit fields of the 16 instances of this iteration (80 bits).
        let half = CONTROL_BITS * STEP / 2;
        let fields = get_bits(ctrl, bit0 + CONTROL_BITS * i, half) as u128
            | (get_bits(ctrl, bit0 + CONTROL_BITS * i + half, half) as u128) << half;
        for g in 0..EVAL3_GROUPS {
            let (a, b) = (ab[2 * g], ab[2 * g + 1]);
            let ha = _mm512_xor_si512(q[3 * g], p[3 * g]);
            let hb = _mm512_xor_si512(q[3 * g + 1], p[3 * g + 1]);
            let hx = _mm512_xor_si512(q[3 * g + 2], p[3 * g + 2]);
            let (ua, ub) = (_mm512_xor_si512(ha, hx), _mm512_xor_si512(hb, hx));
            let at = tp.wrapping_add(AND3_BYTES * (i + LANES * g));
            // SAFETY: the 96 table bytes of instances i + 4g .. i + 4g + 4 lie
            // within table (24 n bytes); the masked load reads only the 32
            // bytes after the first 64.
            let (l0, l1) = unsafe {
                (
                    _mm512_loadu_si512(at.cast()),
                    _mm512_maskz_loadu_epi64(0x0f, at.wrapping_add(64).cast()),
                )
            };
            let (pv, qv) = (
                _mm512_permutex2var_epi64(l0, idx_p, l1),
                _mm512_permutex2var_epi64(l0, idx_q, l1),
            );
            let (ci, cj) = lsb_masks(a, b);
            let mut c = _mm512_unpacklo_epi64(ua, ub);
            c = and_xor(ci, pv, c);
            c = and_xor(cj, qv, c);
            // Control bits (r0, r1) in bit 0 of qwords 0 and 1.
            let z = _mm512_set1_epi64((fields >> (4 * CONTROL_BITS * g)) as i64);
            let mut r = _mm512_xor_si512(_mm512_unpackhi_epi64(ua, ub), _mm512_srlv_epi64(z, sh01));
            r = and_xor(ci, _mm512_srlv_epi64(z, sh23), r);
            r = and_xor(cj, _mm512_srlv_epi64(z, sh34), r);
            let (r0, r1) = (bit0_mask::<0>(r), bit0_mask::<1>(r));
            // R_ij (A, B) = ¬i (B_L, 0) ⊕ ¬j (0, A_R) ⊕ r0 S1 ⊕ r1 S2.
            c = andn_xor(ci, _mm512_unpacklo_epi64(b, zero), c);
            c = andn_xor(cj, _mm512_unpackhi_epi64(zero, a), c);
            c = and_xor(r0, s1(a, b), c);
            c = and_xor(r1, s2(a, b), c);
            // SAFETY: instances i + 4g .. i + 4g + 4 are within out.
            unsafe { _mm512_storeu_si512(op.add(i / LANES + g), c) };
        }
        i += STEP;
    }
    n
}
