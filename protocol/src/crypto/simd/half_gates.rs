//! The half-gates AND kernels (twins: `garble_and_portable`,
//! `eval_and_portable` in `gc/kernels.rs`).
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::*;

#[target_feature(enable = "avx512f,vaes,aes")]
pub(super) unsafe fn garble_and_impl(
    rk: &[u128; 11],
    d: u128,
    x: &[Block],
    y: &[Block],
    tw: u128,
    out: &mut [Block],
    table: &mut [u8],
) -> usize {
    const STEP: usize = LANES * GARBLE_GROUPS;
    let n = x.len() / STEP * STEP;
    let k = keys(rk);
    let dz = splat(d);
    let step = low_add((LANES as u64) << INSTANCE_SHIFT);
    let one = low_add(1);
    // (T_G, T_E) of instances i, i + 1 and of i + 2, i + 3 (qword indices;
    // 8 and above pick from T_E).
    let idx_lo = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    let idx_hi = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    let mut t = first_tweaks(tw);
    let (xp, yp) = (x.as_ptr().cast::<__m512i>(), y.as_ptr().cast::<__m512i>());
    let op = out.as_mut_ptr().cast::<__m512i>();
    let tp = table.as_mut_ptr().cast::<__m512i>();
    let mut i = 0;
    while i < n {
        let zero = _mm512_setzero_si512();
        let mut a0 = [zero; GARBLE_GROUPS];
        let mut b0 = [zero; GARBLE_GROUPS];
        let mut ta = [zero; GARBLE_GROUPS];
        let mut p = [zero; 4 * GARBLE_GROUPS];
        for g in 0..GARBLE_GROUPS {
            // SAFETY: i + 4g + 4 <= n <= x.len() = y.len() blocks of 16 bytes.
            unsafe {
                a0[g] = _mm512_loadu_si512(xp.add(i / LANES + g));
                b0[g] = _mm512_loadu_si512(yp.add(i / LANES + g));
            }
            p[4 * g] = a0[g];
            p[4 * g + 1] = _mm512_xor_si512(a0[g], dz);
            p[4 * g + 2] = b0[g];
            p[4 * g + 3] = _mm512_xor_si512(b0[g], dz);
            ta[g] = t;
            t = _mm512_add_epi64(t, step);
        }
        encrypt(&k, &mut p);
        let mut q = p;
        for g in 0..GARBLE_GROUPS {
            let tb = _mm512_add_epi64(ta[g], one);
            q[4 * g] = _mm512_xor_si512(q[4 * g], ta[g]);
            q[4 * g + 1] = _mm512_xor_si512(q[4 * g + 1], ta[g]);
            q[4 * g + 2] = _mm512_xor_si512(q[4 * g + 2], tb);
            q[4 * g + 3] = _mm512_xor_si512(q[4 * g + 3], tb);
        }
        encrypt(&k, &mut q);
        for g in 0..GARBLE_GROUPS {
            let ha0 = _mm512_xor_si512(q[4 * g], p[4 * g]);
            let ha1 = _mm512_xor_si512(q[4 * g + 1], p[4 * g + 1]);
            let hb0 = _mm512_xor_si512(q[4 * g + 2], p[4 * g + 2]);
            let hb1 = _mm512_xor_si512(q[4 * g + 3], p[4 * g + 3]);
            let ma = lsb_mask(a0[g]);
            let mb = lsb_mask(b0[g]);
            // Garbler half: a & pb. Evaluator half: a & (b ^ pb).
            let tg = _mm512_xor_si512(_mm512_xor_si512(ha0, ha1), _mm512_and_si512(dz, mb));
            let wg0 = _mm512_xor_si512(ha0, _mm512_and_si512(tg, ma));
            let hb = _mm512_xor_si512(hb0, hb1);
            let te = _mm512_xor_si512(hb, a0[g]);
            let we0 = _mm512_xor_si512(hb0, _mm512_and_si512(hb, mb));
            let lo = _mm512_permutex2var_epi64(tg, idx_lo, te);
            let hi = _mm512_permutex2var_epi64(tg, idx_hi, te);
            // SAFETY: instances i + 4g .. i + 4g + 4 are within out (n blocks)
            // and their 128 table bytes within table (32 n bytes).
            unsafe {
                _mm512_storeu_si512(op.add(i / LANES + g), _mm512_xor_si512(wg0, we0));
                _mm512_storeu_si512(tp.add(2 * (i / LANES + g)), lo);
                _mm512_storeu_si512(tp.add(2 * (i / LANES + g) + 1), hi);
            }
        }
        i += STEP;
    }
    n
}

#[target_feature(enable = "avx512f,vaes,aes")]
pub(super) unsafe fn eval_and_impl(
    rk: &[u128; 11],
    x: &[Block],
    y: &[Block],
    tw: u128,
    table: &[u8],
    out: &mut [Block],
) -> usize {
    const STEP: usize = LANES * EVAL_GROUPS;
    let n = x.len() / STEP * STEP;
    let k = keys(rk);
    let step = low_add((LANES as u64) << INSTANCE_SHIFT);
    let one = low_add(1);
    // T_G and T_E of four instances from their interleaved 128 table bytes.
    let idx_g = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0);
    let idx_e = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
    let mut t = first_tweaks(tw);
    let (xp, yp) = (x.as_ptr().cast::<__m512i>(), y.as_ptr().cast::<__m512i>());
    let op = out.as_mut_ptr().cast::<__m512i>();
    let tp = table.as_ptr().cast::<__m512i>();
    let mut i = 0;
    while i < n {
        let zero = _mm512_setzero_si512();
        let mut ta = [zero; EVAL_GROUPS];
        let mut p = [zero; 2 * EVAL_GROUPS];
        for g in 0..EVAL_GROUPS {
            // SAFETY: i + 4g + 4 <= n <= x.len() = y.len().
            unsafe {
                p[2 * g] = _mm512_loadu_si512(xp.add(i / LANES + g));
                p[2 * g + 1] = _mm512_loadu_si512(yp.add(i / LANES + g));
            }
            ta[g] = t;
            t = _mm512_add_epi64(t, step);
        }
        let ab = p;
        encrypt(&k, &mut p);
        let mut q = p;
        for g in 0..EVAL_GROUPS {
            q[2 * g] = _mm512_xor_si512(q[2 * g], ta[g]);
            q[2 * g + 1] = _mm512_xor_si512(q[2 * g + 1], _mm512_add_epi64(ta[g], one));
        }
        encrypt(&k, &mut q);
        for g in 0..EVAL_GROUPS {
            let (a, b) = (ab[2 * g], ab[2 * g + 1]);
            let ha = _mm512_xor_si512(q[2 * g], p[2 * g]);
            let hb = _mm512_xor_si512(q[2 * g + 1], p[2 * g + 1]);
            let at = tp.wrapping_add(2 * (i / LANES + g));
            // SAFETY: the 128 table bytes of instances i + 4g .. i + 4g + 4
            // lie within table (32 n bytes).
            let (l0, l1) = unsafe {
                (
                    _mm512_loadu_si512(at),
                    _mm512_loadu_si512(at.wrapping_add(1)),
                )
            };
            let tg = _mm512_permutex2var_epi64(l0, idx_g, l1);
            let te = _mm512_permutex2var_epi64(l0, idx_e, l1);
            let wg = _mm512_xor_si512(ha, _mm512_and_si512(tg, lsb_mask(a)));
            let we = _mm512_xor_si512(hb, _mm512_and_si512(_mm512_xor_si512(te, a), lsb_mask(b)));
            // SAFETY: instances i + 4g .. i + 4g + 4 are within out.
            unsafe { _mm512_storeu_si512(op.add(i / LANES + g), _mm512_xor_si512(wg, we)) };
        }
        i += STEP;
    }
    n
}
