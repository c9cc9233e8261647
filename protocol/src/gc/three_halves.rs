//! Three-halves garbling of an AND gate over a run of instances (Rosulek and
//! Roy, "Three Halves Make a Whole? Beating the Half-Gates Lower Bound for
//! Garbled Circuits", CRYPTO 2021, ePrint 2021/749; "RR21" below): 1.5
//! ciphertexts and 5 control bits per AND gate instead of the two ciphertexts
//! of half-gates, with free-XOR and point-and-permute unchanged, so the rest
//! of `gc` (free XOR and NOT, garbler-known bits, the garbler half-gate for
//! `x & K`, the decoding table) works on the same labels. The portable twin
//! lives here; `crypto/simd.rs` holds the AVX-512 + VAES kernels that must
//! produce the same bytes (tested below).
//!
//! # Slicing
//! A label `X` is read as two 64-bit halves `(X_L, X_R)` (low, high), `Δ`
//! likewise; the color bit is `lsb(X_L)`, and `lsb(Δ) = 1`. For an AND gate
//! with inputs `A`, `B` of colors `i`, `j` the evaluator computes three hashes
//! and
//!
//! ```text
//! C = (H_A ⊕ H_X, H_B ⊕ H_X)_low  ⊕  i·P ⊕ j·Q  ⊕  R_ij·(A_L, A_R, B_L, B_R)
//! H_A = H(A, h), H_B = H(B, h + 1), H_X = H(A ⊕ B, h + 2)
//! ```
//!
//! where `(U, W)_low` is the label with halves `(U_L, W_L)`, `P = (K0, K1)`
//! and `Q = (K1, K2)` are the gate's three table halves (24 bytes; RR21's
//! `V_ij·G` with `G = (K0 ⊕ K1, K1 ⊕ K2, K1)`), and `R_ij` is a 2 x 4 matrix
//! over GF(2) mixing the halves of the input labels (RR21 section 5):
//!
//! ```text
//! R_ij = ¬i·E(L, B_L) ⊕ ¬j·E(R, A_R) ⊕ r0·S1 ⊕ r1·S2
//! S1·(A, B) = (A_L ⊕ A_R ⊕ B_L, A_L ⊕ B_R),  S2·(A, B) = (A_L ⊕ B_R, A_R ⊕ B_L ⊕ B_R)
//! ```
//!
//! (`E(L, B_L)` puts `B_L` into the left half). The two control bits
//! `(r0, r1)` of the evaluator's row are decrypted with the same linear trick
//! from the 5 control bits `y` of the table and bit 64 of the hashes:
//! `(r0, r1) = (c(H_A ⊕ H_X), c(H_B ⊕ H_X)) ⊕ (y0, y1) ⊕ i·(y2, y3) ⊕ j·(y3, y4)`.
//!
//! The garbler knows the color-0 labels `A* = A0 ⊕ pa·Δ`, `B* = B0 ⊕ pb·Δ`
//! (`pa`, `pb` the colors of the zero labels) and hashes `A*`, `A* ⊕ Δ` under
//! `h`, `B*`, `B* ⊕ Δ` under `h + 1` and `A* ⊕ B*`, `A* ⊕ B* ⊕ Δ` under
//! `h + 2`. Row (i, j) must yield `C0 ⊕ ((i ⊕ pa)(j ⊕ pb))·Δ`; the eight
//! half-equations of the four rows fix `C0` and `K0..K2` once the matrices
//! satisfy three linear consistency constraints (the four rows' `V_ij·G`
//! span only three of the eight half-dimensions). The garbler draws `u` (2 bits, fresh per gate and
//! instance from its CSPRNG) and sets `(r0, r1) = u` in row (0, 0) and
//! `u ⊕ o_ij(pa, pb)` in the others: for every (pa, pb) these are exactly the
//! four consistent choices, and each row's control bits are uniform whatever
//! the truth table (RR21's randomised control bits; `control_bits_are_the_
//! paper_solutions_with_uniform_rows` below enumerates the constraints). With
//! `dA = H(A*) ⊕ H(A* ⊕ Δ)` (similarly `dB`, `dX`) the closed forms are
//!
//! ```text
//! C0 = (H(A*) ⊕ H(X*), H(B*) ⊕ H(X*))_low ⊕ (B*_L, A*_R) ⊕ u0·S1(A*, B*) ⊕ u1·S2(A*, B*) ⊕ pa·pb·Δ
//! P  = (dA ⊕ dX, dX)_low ⊕ (B*_L, Δ_R) ⊕ ¬pb·S1(A*, B*) ⊕ (pa ⊕ pb)·S2(A*, B*) ⊕ (u1 ⊕ pa)·Δ ⊕ (u0 ⊕ ¬pb)·S1(Δ, 0)
//! Q  = (dX, dB ⊕ dX)_low ⊕ (Δ_L, A*_R) ⊕ (pa ⊕ pb)·S1(A*, B*) ⊕ ¬pa·S2(A*, B*) ⊕ (u0 ⊕ pb)·Δ ⊕ (u1 ⊕ ¬pa)·S2(0, Δ)
//! y  = (u0 ⊕ c(H(A*) ⊕ H(X*)), u1 ⊕ c(H(B*) ⊕ H(X*)), ¬pb ⊕ c(dA ⊕ dX), pa ⊕ pb ⊕ c(dX), ¬pa ⊕ c(dB ⊕ dX))
//! ```
//!
//! (`P_R = Q_L = K1` by the constraints). The test module checks them against
//! the paper's row-by-row form.
//!
//! # Hash and tweaks
//! `H(X, t)` is the project's tweakable circular correlation-robust hash
//! (Guo, Katz, Wang and Yu, IEEE S&P 2020) `π(π(X) ⊕ t) ⊕ π(X)` on fixed-key
//! AES, the one half-gates uses; its low 64 bits mask label halves and bit 64
//! masks control bits (the scheme needs κ/2 output bits per hash for the
//! halves and one more for the control bits). An AND gate
//! with hash index `h` uses `h`, `h + 1`, `h + 2` (the circuit builder
//! reserves three indices per AND gate for this scheme), and instance `i` of
//! a run adds `i << INSTANCE_SHIFT`, so every (garbler nonce, layer,
//! instance, gate, hash position) has its own tweak under one Δ, as for
//! half-gates (see [`super::tweak_base`]). 6 hashes (12 AES calls) per
//! garbled gate, 3 (6 AES calls) per evaluated gate.
//!
//! # Security
//! RR21 prove the scheme secure (privacy and obliviousness against a
//! semi-honest evaluator) when `H` is a tweakable circular correlation-robust
//! hash in the form slicing needs: outputs `H(X ⊕ Δ, t)` may be XORed with
//! GF(2)-linear functions of the halves of Δ (such as `Δ_R` or `Δ_L ⊕ Δ_R`
//! in `K0..K2`) instead of Δ itself. In the ideal-permutation model the
//! GKWY20 argument for the
//! TCCR carries over unchanged: its hybrid needs only that π is never
//! queried at a point `X ⊕ Δ` and that the inner inputs `π(X ⊕ Δ) ⊕ t`
//! never collide, whatever function of Δ the output is then XORed with, so
//! the bound is the one of the project's half-gates garbling with 1.5 times
//! as many hash calls per gate. In the evaluator's row the three hashes it
//! cannot compute (of `A ⊕ Δ`, `B ⊕ Δ`, `A ⊕ B ⊕ Δ`) mask `K0..K2` and
//! `y2..y4` through an invertible map, the output label for the other value
//! is `C ⊕ Δ`, and its control bits are uniform and independent of the truth
//! table; so the evaluator sees uniformly random bytes and one label per
//! wire. Labels keep their full 128 bits (no bit is reserved for control
//! bits, unlike implementations that steal one bit per half).
//!
//! # Table layout
//! Per AND gate and chunk: `24 n` bytes, instance by instance `K0, K1, K2`
//! (little-endian u64). The control bits of a chunk follow all its gates:
//! gate `g` (the g-th two-input AND of the circuit) of instance `i` owns
//! bits `5 (g n + i) .. 5 (g n + i) + 5` (LSB first) of a
//! `n * ceil(5 a / 8)`-byte area for `a` AND gates; unused bits are zero.

use super::INSTANCE_SHIFT;
use crate::crypto::bits::{get_bits, or_bits};
use crate::crypto::{Block, FixedKeyAes, from_aes, to_aes};

/// Control bits per AND gate instance.
pub(crate) const CONTROL_BITS: usize = 5;

/// Table bytes per AND gate instance: three 64-bit halves.
pub(crate) const AND_BYTES: usize = 24;

/// All-ones if `bit` (0 or 1) is 1.
#[inline(always)]
fn m(bit: u64) -> u128 {
    (bit as u128).wrapping_neg()
}

#[inline(always)]
fn lo(x: u128) -> u64 {
    x as u64
}

#[inline(always)]
fn hi(x: u128) -> u64 {
    (x >> 64) as u64
}

/// The label with halves `(l, r)`.
#[inline(always)]
fn join(l: u64, r: u64) -> u128 {
    l as u128 | (r as u128) << 64
}

/// Bit 64 of a hash: the control-bit mask.
#[inline(always)]
fn c(x: u128) -> u64 {
    (x >> 64) as u64 & 1
}

/// `S1·(A, B) = (A_L ⊕ A_R ⊕ B_L, A_L ⊕ B_R)`.
#[inline(always)]
pub(crate) fn s1(a: u128, b: u128) -> u128 {
    join(lo(a) ^ hi(a) ^ lo(b), lo(a) ^ hi(b))
}

/// `S2·(A, B) = (A_L ⊕ B_R, A_R ⊕ B_L ⊕ B_R)`.
#[inline(always)]
pub(crate) fn s2(a: u128, b: u128) -> u128 {
    join(lo(a) ^ hi(b), hi(a) ^ lo(b) ^ hi(b))
}

/// The 2 random control bits of instance `k` in a packed buffer (2 bits per
/// instance, LSB first).
#[inline(always)]
fn u_bits(u: &[u8], k: usize) -> (u64, u64) {
    let v = (u[k / 4] >> (2 * (k % 4))) as u64;
    (v & 1, (v >> 1) & 1)
}

/// Garbler side of `n` AND gates. `x`, `y`: the zero labels of the inputs;
/// `u`: 2 random bits per instance (packed, see [`u_bits`]). Writes the
/// output zero labels to `out`, `K0, K1, K2` of each instance (24 bytes) to
/// `table` and ORs its 5 control bits into `ctrl` at bit `bit0 + 5 k` for
/// instance `k` (those bits must be zero). `hin`, `hout`: scratch of at
/// least `6 n` blocks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn garble_and_portable(
    aes: &FixedKeyAes,
    hin: &mut [aes::Block],
    hout: &mut [aes::Block],
    d: u128,
    x: &[Block],
    y: &[Block],
    tw: u128,
    u: &[u8],
    out: &mut [Block],
    table: &mut [u8],
    ctrl: &mut [u8],
    bit0: usize,
) {
    let n = x.len();
    let hin = &mut hin[..6 * n];
    let hout = &mut hout[..6 * n];
    for ((hb, a0), b0) in hin.chunks_exact_mut(6).zip(x).zip(y) {
        let a = a0.0 ^ (d & m(lo(a0.0) & 1));
        let b = b0.0 ^ (d & m(lo(b0.0) & 1));
        hb[0] = to_aes(a);
        hb[1] = to_aes(a ^ d);
        hb[2] = to_aes(b);
        hb[3] = to_aes(b ^ d);
        hb[4] = to_aes(a ^ b);
        hb[5] = to_aes(a ^ b ^ d);
    }
    // Hash j of instance k = j / 6 uses tweak tw + (k << INSTANCE_SHIFT) + (j % 6) / 2.
    aes.tccr_blocks_with(hin, hout, |j| {
        tw + (((j / 6) as u128) << INSTANCE_SHIFT) + ((j % 6) / 2) as u128
    });
    let s1d = s1(d, 0);
    let s2d = s2(0, d);
    for (k, ((((hb, o), a0), b0), tb)) in hout
        .chunks_exact(6)
        .zip(out.iter_mut())
        .zip(x)
        .zip(y)
        .zip(table.chunks_exact_mut(AND_BYTES))
        .enumerate()
    {
        let h: [u128; 6] = core::array::from_fn(|j| from_aes(&hb[j]));
        let (pa, pb) = (lo(a0.0) & 1, lo(b0.0) & 1);
        let (npa, npb) = (pa ^ 1, pb ^ 1);
        let (u0, u1) = u_bits(u, k);
        let a = a0.0 ^ (d & m(pa));
        let b = b0.0 ^ (d & m(pb));
        let (s1v, s2v) = (s1(a, b), s2(a, b));
        let (ua, ub) = (h[0] ^ h[4], h[2] ^ h[4]);
        let (da, db, dx) = (h[0] ^ h[1], h[2] ^ h[3], h[4] ^ h[5]);
        let (pl, qr) = (da ^ dx, db ^ dx);
        *o = Block(
            join(lo(ua), lo(ub))
                ^ join(lo(b), hi(a))
                ^ (m(u0) & s1v)
                ^ (m(u1) & s2v)
                ^ (m(pa & pb) & d),
        );
        let p = join(lo(pl), lo(dx))
            ^ join(lo(b), hi(d))
            ^ (m(npb) & s1v)
            ^ (m(pa ^ pb) & s2v)
            ^ (m(u1 ^ pa) & d)
            ^ (m(u0 ^ npb) & s1d);
        let q = join(lo(dx), lo(qr))
            ^ join(lo(d), hi(a))
            ^ (m(pa ^ pb) & s1v)
            ^ (m(npa) & s2v)
            ^ (m(u0 ^ pb) & d)
            ^ (m(u1 ^ npa) & s2d);
        debug_assert_eq!(hi(p), lo(q), "K1 of P and Q");
        tb[..8].copy_from_slice(&lo(p).to_le_bytes());
        tb[8..16].copy_from_slice(&hi(p).to_le_bytes());
        tb[16..].copy_from_slice(&hi(q).to_le_bytes());
        let z = (u0 ^ c(ua))
            | (u1 ^ c(ub)) << 1
            | (npb ^ c(pl)) << 2
            | (pa ^ pb ^ c(dx)) << 3
            | (npa ^ c(qr)) << 4;
        or_bits(ctrl, bit0 + CONTROL_BITS * k, z, CONTROL_BITS);
    }
}

/// The evaluator's output label of one instance from its input labels `a`,
/// `b`, the three hashes, the table halves and the control bits; also
/// returns the decrypted control bits `(r0, r1)` (for the tests).
#[inline(always)]
fn eval_one(a: u128, b: u128, h: [u128; 3], k: [u64; 3], z: u64) -> (u128, u64, u64) {
    let (i, j) = (lo(a) & 1, lo(b) & 1);
    let (ua, ub) = (h[0] ^ h[2], h[1] ^ h[2]);
    let bit = |s: u32| (z >> s) & 1;
    let r0 = c(ua) ^ bit(0) ^ (i & bit(2)) ^ (j & bit(3));
    let r1 = c(ub) ^ bit(1) ^ (i & bit(3)) ^ (j & bit(4));
    let label = join(lo(ua), lo(ub))
        ^ (m(i) & join(k[0], k[1]))
        ^ (m(j) & join(k[1], k[2]))
        ^ (m(i ^ 1) & join(lo(b), 0))
        ^ (m(j ^ 1) & join(0, hi(a)))
        ^ (m(r0) & s1(a, b))
        ^ (m(r1) & s2(a, b));
    (label, r0, r1)
}

/// The three table halves of instance `k`.
#[inline(always)]
fn halves(table: &[u8], k: usize) -> [u64; 3] {
    let t = &table[AND_BYTES * k..AND_BYTES * (k + 1)];
    core::array::from_fn(|j| u64::from_le_bytes(t[8 * j..8 * j + 8].try_into().expect("8 bytes")))
}

/// Evaluator side of [`garble_and_portable`]: from the active labels `x`,
/// `y`, the 24-byte tables and the control bits (instance `k` at bit
/// `bit0 + 5 k` of `ctrl`), the active output labels. `hin`, `hout`:
/// scratch of at least `3 n` blocks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn eval_and_portable(
    aes: &FixedKeyAes,
    hin: &mut [aes::Block],
    hout: &mut [aes::Block],
    x: &[Block],
    y: &[Block],
    tw: u128,
    table: &[u8],
    ctrl: &[u8],
    bit0: usize,
    out: &mut [Block],
) {
    let n = x.len();
    let hin = &mut hin[..3 * n];
    let hout = &mut hout[..3 * n];
    for ((hb, a), b) in hin.chunks_exact_mut(3).zip(x).zip(y) {
        hb[0] = to_aes(a.0);
        hb[1] = to_aes(b.0);
        hb[2] = to_aes(a.0 ^ b.0);
    }
    aes.tccr_blocks_with(hin, hout, |j| {
        tw + (((j / 3) as u128) << INSTANCE_SHIFT) + (j % 3) as u128
    });
    for (k, (((hb, o), a), b)) in hout
        .chunks_exact(3)
        .zip(out.iter_mut())
        .zip(x)
        .zip(y)
        .enumerate()
    {
        let h = [from_aes(&hb[0]), from_aes(&hb[1]), from_aes(&hb[2])];
        let z = get_bits(ctrl, bit0 + CONTROL_BITS * k, CONTROL_BITS);
        *o = Block(eval_one(a.0, b.0, h, halves(table, k), z).0);
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::*;

    /// A 2 x 4 matrix over GF(2) acting on `(A_L, A_R, B_L, B_R)`: row `r`,
    /// column `c` is bit `4 r + c`.
    type Mat = u8;

    /// RR21's fixed part `R_p,ij`: `B_L` into the left half unless `i`, `A_R`
    /// into the right half unless `j`.
    fn r_fixed(i: u64, j: u64) -> Mat {
        ((i ^ 1) as u8) << 2 | ((j ^ 1) as u8) << 5
    }

    /// RR21's `S1` and `S2` (see the module docs).
    const S1: Mat = 0b0111 | 0b1001 << 4;
    const S2: Mat = 0b1001 | 0b1110 << 4;

    /// `r0·S1 ⊕ r1·S2` for the 2-bit `r`.
    fn decode(r: u8) -> Mat {
        (if r & 1 == 1 { S1 } else { 0 }) ^ (if r & 2 == 2 { S2 } else { 0 })
    }

    /// Applies a matrix to labels.
    fn apply(mat: Mat, a: u128, b: u128) -> u128 {
        let v = [lo(a), hi(a), lo(b), hi(b)];
        let row = |r: usize| {
            (0..4)
                .filter(|c| (mat >> (4 * r + c)) & 1 == 1)
                .fold(0u64, |acc, c| acc ^ v[c])
        };
        join(row(0), row(1))
    }

    /// The `2 x 2` block of `mat` acting on `A` (`b = false`) or `B`, as a
    /// map of `(Δ_L, Δ_R)`: 4 bits, row-major.
    fn block(mat: Mat, b: bool) -> u8 {
        let off = if b { 2 } else { 0 };
        let bit = |r: usize, c: usize| (mat >> (4 * r + c + off)) & 1;
        bit(0, 0) | bit(0, 1) << 1 | bit(1, 0) << 2 | bit(1, 1) << 3
    }

    /// RR21's consistency constraints on the four rows' values `e[ij]`
    /// (index `2 i + j`), each a pair of vectors (left, right) in some
    /// GF(2) space encoded as bits: the rows sum to zero, and
    /// `(e00 ⊕ e01)_L ⊕ (e00 ⊕ e01)_R ⊕ (e00 ⊕ e11)_R = 0`, the two linear
    /// relations among `V_ij·G` over the four rows.
    fn consistent(e: [[u32; 2]; 4]) -> bool {
        let sum = e.iter().fold([0, 0], |s, r| [s[0] ^ r[0], s[1] ^ r[1]]);
        let c2 = e[0][0] ^ e[1][0] ^ e[0][1] ^ e[1][1] ^ e[0][1] ^ e[3][1];
        sum == [0, 0] && c2 == 0
    }

    /// The rows' matrices split into their rows (as 4-bit vectors of the
    /// label coefficients) and their Δ coefficient blocks (2-bit rows of
    /// `i·R_A ⊕ j·R_B ⊕ t_ij·I`): both must be consistent for the garbler
    /// to solve for `C0` and `K0..K2` whatever the hashes and labels.
    fn rows_consistent(r: [Mat; 4], pa: u64, pb: u64) -> bool {
        let labels = r.map(|m| [(m & 15) as u32, (m >> 4) as u32]);
        let deltas: [[u32; 2]; 4] = core::array::from_fn(|ij| {
            let (i, j) = ((ij >> 1) as u64, (ij & 1) as u64);
            let t = (i ^ pa) & (j ^ pb);
            let mut d = 0u8;
            if i == 1 {
                d ^= block(r[ij], false);
            }
            if j == 1 {
                d ^= block(r[ij], true);
            }
            if t == 1 {
                d ^= 0b1001;
            }
            [(d & 3) as u32, (d >> 2) as u32]
        });
        consistent(labels) && consistent(deltas)
    }

    /// `o_ij(pa, pb)`: row (i, j)'s control bits are `u ⊕ o_ij`, read off
    /// the closed forms (rows 01 and 10 from `y3, y4` and `y2, y3`; row 11
    /// as their sum).
    fn offset(pa: u64, pb: u64, i: u64, j: u64) -> u8 {
        let o01 = ((pa ^ pb) | (pa ^ 1) << 1) as u8;
        let o10 = ((pb ^ 1) | (pa ^ pb) << 1) as u8;
        [0, o01, o10, o01 ^ o10][(2 * i + j) as usize]
    }

    /// For every truth table (pa, pb), the control-bit assignments to the
    /// four rows that make the garbler's system solvable are exactly
    /// `u ⊕ o_ij(pa, pb)` for the four `u`, so each row's bits are uniform
    /// and independent of (pa, pb): the evaluator learns nothing from them.
    #[test]
    fn control_bits_are_the_paper_solutions_with_uniform_rows() {
        for (pa, pb) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let mut sols = Vec::new();
            for rs in 0u8..=255 {
                let r: [u8; 4] = core::array::from_fn(|k| (rs >> (2 * k)) & 3);
                let mats: [Mat; 4] = core::array::from_fn(|ij| {
                    r_fixed((ij >> 1) as u64, (ij & 1) as u64) ^ decode(r[ij])
                });
                if rows_consistent(mats, pa, pb) {
                    sols.push(r);
                }
            }
            let mut want: Vec<[u8; 4]> = (0..4u8)
                .map(|u| {
                    core::array::from_fn(|ij| u ^ offset(pa, pb, (ij >> 1) as u64, (ij & 1) as u64))
                })
                .collect();
            sols.sort();
            want.sort();
            assert_eq!(sols, want, "pa = {pa}, pb = {pb}");
            for ij in 0..4 {
                let mut seen: Vec<u8> = sols.iter().map(|s| s[ij]).collect();
                seen.sort();
                assert_eq!(seen, [0, 1, 2, 3], "row {ij} not uniform");
            }
        }
    }

    /// The paper's evaluator, row by row: `C = V_ij·G ⊕ (H_A ⊕ H_X, H_B ⊕
    /// H_X)_low ⊕ R_ij·(A, B)` with `R_ij = R_p,ij ⊕ decode(u ⊕ o_ij)`
    /// chosen by the garbler and `G` from the table. The closed forms of
    /// [`garble_and_portable`] and [`eval_and_portable`] agree with it on
    /// every input combination, the evaluator decrypts exactly `u ⊕ o_ij`,
    /// and the output is the zero label XOR `(a & b) Δ`.
    #[test]
    fn closed_forms_match_the_paper_row_by_row() {
        let aes = FixedKeyAes::new();
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let n = 64;
        let mut hin = vec![aes::Block::default(); 6 * n];
        let mut hout = hin.clone();
        let d = rng.random::<u128>() | 1;
        let x: Vec<Block> = (0..n).map(|_| Block(rng.random())).collect();
        let y: Vec<Block> = (0..n).map(|_| Block(rng.random())).collect();
        let u: Vec<u8> = (0..n / 4).map(|_| rng.random()).collect();
        let tw = 0x8000_0000_0000_0000_0000_0001_0000_0000u128 + 30;
        let mut out = vec![Block::ZERO; n];
        let mut table = vec![0u8; AND_BYTES * n];
        let mut ctrl = vec![0u8; (CONTROL_BITS * n).div_ceil(8) + 1];
        garble_and_portable(
            &aes, &mut hin, &mut hout, d, &x, &y, tw, &u, &mut out, &mut table, &mut ctrl, 3,
        );
        assert_eq!(ctrl[0] & 7, 0, "bits before bit0 untouched");
        for k in 0..n {
            let (pa, pb) = (lo(x[k].0) & 1, lo(y[k].0) & 1);
            let (u0, u1) = u_bits(&u, k);
            let kk = halves(&table, k);
            let g = [kk[0] ^ kk[1], kk[1] ^ kk[2], kk[1]];
            let z = get_bits(&ctrl, 3 + CONTROL_BITS * k, CONTROL_BITS);
            for (va, vb) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let a = x[k].0 ^ (d & m(va));
                let b = y[k].0 ^ (d & m(vb));
                let t = tw + ((k as u128) << INSTANCE_SHIFT);
                let h = [
                    aes.tccr(Block(a), Block(t)).0,
                    aes.tccr(Block(b), Block(t + 1)).0,
                    aes.tccr(Block(a ^ b), Block(t + 2)).0,
                ];
                let (label, r0, r1) = eval_one(a, b, h, kk, z);
                let (i, j) = (lo(a) & 1, lo(b) & 1);
                assert_eq!((i, j), (va ^ pa, vb ^ pb));
                let r = (u0 | u1 << 1) as u8 ^ offset(pa, pb, i, j);
                assert_eq!((r0 | r1 << 1) as u8, r, "control bits, k = {k}");
                // V_ij·G: row 00 none, 01 (G2, G1 ⊕ G2), 10 (G0 ⊕ G2, G2), 11 (G0, G1).
                let vg = match (i, j) {
                    (0, 0) => 0,
                    (0, 1) => join(g[2], g[1] ^ g[2]),
                    (1, 0) => join(g[0] ^ g[2], g[2]),
                    _ => join(g[0], g[1]),
                };
                let paper = vg
                    ^ join(lo(h[0] ^ h[2]), lo(h[1] ^ h[2]))
                    ^ apply(r_fixed(i, j) ^ decode(r), a, b);
                assert_eq!(label, paper, "k = {k}, a = {va}, b = {vb}");
                assert_eq!(label, out[k].0 ^ (d & m(va & vb)), "k = {k}");
            }
        }
        // The evaluator's portable path agrees with `eval_one`.
        let xa: Vec<Block> = x.iter().map(|v| Block(v.0 ^ d)).collect();
        let mut got = vec![Block::ZERO; n];
        eval_and_portable(
            &aes, &mut hin, &mut hout, &xa, &y, tw, &table, &ctrl, 3, &mut got,
        );
        for k in 0..n {
            assert_eq!(got[k], out[k], "a = 1, b = 0 gives the zero label, k = {k}");
        }
    }

    #[test]
    fn bit_packing_round_trips_at_any_offset() {
        let mut buf = vec![0u8; 16];
        let mut pos = 0;
        let vals: Vec<u64> = (0..20u64).map(|v| (v * 7 + 3) & 31).collect();
        for v in &vals {
            or_bits(&mut buf, pos, *v, 5);
            pos += 5;
        }
        for (k, v) in vals.iter().enumerate() {
            assert_eq!(get_bits(&buf, 5 * k, 5), *v);
        }
        assert_eq!(get_bits(&buf, 0, 40), {
            let mut w = 0u64;
            for (k, v) in vals.iter().take(8).enumerate() {
                w |= v << (5 * k);
            }
            w
        });
        // 100 bits used of 128: the rest stays zero.
        assert_eq!(get_bits(&buf, 100, 28), 0);
    }
}
