//! AVX-512 + VAES kernels: batches of AES-128 under any key (twin:
//! [`super::FixedKeyAes::permute_many`] through the `aes` crate), the
//! half-gates AND over a run of instances (twins in `gc/kernels.rs`:
//! `garble_and_portable`, `eval_and_portable`) and the three-halves AND
//! (twins in `gc/three_halves.rs`, same names). The crate's one `unsafe`
//! module (docs/ARCHITECTURE.md §2); tests compare every kernel with its twin.
//!
//! Why: the hash is the GKWY20 TCCR `π(π(x) ⊕ t) ⊕ π(x)` (four per garbled
//! half-gates AND and two per evaluated one; six and three for
//! three-halves). Through the `aes` crate every hash pass
//! goes through memory buffers and conversions; here four instances share a
//! 512-bit register (one 128-bit lane each), both AES passes, the tweaks and
//! the half-gate algebra stay in registers, and each gate reads its input
//! labels and writes its output label and table once. Same hash, same
//! tweaks, same bytes as the portable code.
//!
//! Soundness: a [`Vaes512`] exists only if the CPU reported `avx512f`,
//! `vaes` and `aes` at run time; every load and store is within slices
//! whose lengths are asserted first. Secret labels pass through registers
//! and, if the compiler spills them, the stack (not wiped, like any local).
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use zeroize::Zeroize;

use super::Block;
use super::bits::{get_bits, or_bits};
use super::tweak::GC_INSTANCE_SHIFT as INSTANCE_SHIFT;

mod half_gates;
mod three_halves;

use half_gates::{eval_and_impl, garble_and_impl};
use three_halves::{eval_and3_impl, garble_and3_impl};

/// AES-128 round keys for the 512-bit kernels. Made only when the CPU has
/// AVX-512F, VAES and AES-NI. Wiped on drop (the key may be secret, as for
/// a PRG).
#[derive(Clone)]
pub(crate) struct Vaes512 {
    rk: [u128; 11],
}

impl Drop for Vaes512 {
    fn drop(&mut self) {
        self.rk.zeroize();
    }
}

/// Blocks per iteration of [`Vaes512::permute`] (four registers).
const PERMUTE_STEP: usize = 16;

/// Instances per 512-bit register.
const LANES: usize = 4;
/// Registers of four instances per loop iteration (latency hiding).
const GARBLE_GROUPS: usize = 2;
const EVAL_GROUPS: usize = 4;
/// The same for the three-halves kernels (six and three hashes per instance).
const GARBLE3_GROUPS: usize = 2;
const EVAL3_GROUPS: usize = 4;
/// Table bytes per three-halves AND instance and control bits (as in
/// `gc::three_halves`).
const AND3_BYTES: usize = 24;
const CONTROL_BITS: usize = 5;

impl Vaes512 {
    /// The kernels under `key`, if the CPU supports them.
    pub(crate) fn new(key: [u8; 16]) -> Option<Self> {
        if !(is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("vaes")
            && is_x86_feature_detected!("aes"))
        {
            return None;
        }
        // SAFETY: AES-NI was detected just above.
        let rk = unsafe { expand_key(key) };
        Some(Self { rk })
    }

    /// In place `xs[i] = AES_k(xs[i])` over the longest prefix whose length
    /// is a multiple of 16; returns that length (the caller does the rest).
    pub(crate) fn permute(&self, xs: &mut [Block]) -> usize {
        // SAFETY: the constructor checked the CPU features; the kernel stays
        // within xs.
        unsafe { permute_impl(&self.rk, xs) }
    }

    /// The garbler's AND over the longest prefix of the run that fills whole
    /// loop iterations; returns its length (the caller does the rest with
    /// the portable twin). Same contract as
    /// `gc::kernels::garble_and_portable`; the caller checks that no
    /// tweak of the run carries out of its low 64 bits.
    ///
    /// # Panics
    /// If the slices disagree in length.
    pub(crate) fn garble_and(
        &self,
        d: u128,
        x: &[Block],
        y: &[Block],
        tw: u128,
        out: &mut [Block],
        table: &mut [u8],
    ) -> usize {
        let n = x.len();
        assert!(
            y.len() == n && out.len() == n && table.len() == 32 * n,
            "garble_and: length mismatch"
        );
        // SAFETY: the constructor checked the CPU features; lengths checked above.
        unsafe { garble_and_impl(&self.rk, d, x, y, tw, out, table) }
    }

    /// The evaluator's AND, as [`Self::garble_and`]; returns the length done.
    ///
    /// # Panics
    /// If the slices disagree in length.
    pub(crate) fn eval_and(
        &self,
        x: &[Block],
        y: &[Block],
        tw: u128,
        table: &[u8],
        out: &mut [Block],
    ) -> usize {
        let n = x.len();
        assert!(
            y.len() == n && out.len() == n && table.len() == 32 * n,
            "eval_and: length mismatch"
        );
        // SAFETY: the constructor checked the CPU features; lengths checked above.
        unsafe { eval_and_impl(&self.rk, x, y, tw, table, out) }
    }

    /// The garbler's three-halves AND over the longest prefix of the run
    /// that fills whole loop iterations (a multiple of 8 instances); returns
    /// its length. Same contract as `gc::three_halves::garble_and_portable`
    /// (`u`: 2 random bits per instance, packed; control bits ORed into
    /// `ctrl` from bit `bit0`); the caller checks that no tweak of the run
    /// carries out of its low 64 bits.
    ///
    /// # Panics
    /// If the slices disagree in length or the control bits do not fit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn garble_and3(
        &self,
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
        let n = x.len();
        assert!(
            y.len() == n
                && out.len() == n
                && table.len() == AND3_BYTES * n
                && 4 * u.len() >= n
                && 8 * ctrl.len() >= bit0 + CONTROL_BITS * n,
            "garble_and3: length mismatch"
        );
        // SAFETY: the constructor checked the CPU features; lengths checked above.
        unsafe { garble_and3_impl(&self.rk, d, x, y, tw, u, out, table, ctrl, bit0) }
    }

    /// The evaluator's three-halves AND, as [`Self::garble_and3`]; returns
    /// the length done (a multiple of 16 instances).
    ///
    /// # Panics
    /// If the slices disagree in length or the control bits do not fit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn eval_and3(
        &self,
        x: &[Block],
        y: &[Block],
        tw: u128,
        table: &[u8],
        ctrl: &[u8],
        bit0: usize,
        out: &mut [Block],
    ) -> usize {
        let n = x.len();
        assert!(
            y.len() == n
                && out.len() == n
                && table.len() == AND3_BYTES * n
                && 8 * ctrl.len() >= bit0 + CONTROL_BITS * n,
            "eval_and3: length mismatch"
        );
        // SAFETY: the constructor checked the CPU features; lengths checked above.
        unsafe { eval_and3_impl(&self.rk, x, y, tw, table, ctrl, bit0, out) }
    }
}

/// The AES-128 key schedule (FIPS-197 section 5.2) with AESKEYGENASSIST.
#[target_feature(enable = "aes")]
unsafe fn expand_key(key: [u8; 16]) -> [u128; 11] {
    #[inline]
    #[target_feature(enable = "aes")]
    fn next<const RCON: i32>(k: __m128i) -> __m128i {
        let t = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<RCON>(k));
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, t)
    }
    let mut k = _mm_set_epi64x(
        i64::from_le_bytes(key[8..].try_into().expect("8 bytes")),
        i64::from_le_bytes(key[..8].try_into().expect("8 bytes")),
    );
    let mut rk = [0u128; 11];
    #[inline]
    #[target_feature(enable = "sse2")]
    fn as_u128(k: __m128i) -> u128 {
        let (lo, hi) = (
            _mm_cvtsi128_si64(k) as u64,
            _mm_cvtsi128_si64(_mm_unpackhi_epi64(k, k)) as u64,
        );
        (hi as u128) << 64 | lo as u128
    }
    rk[0] = as_u128(k);
    macro_rules! rounds {
        ($($i:literal => $rcon:literal),*) => {$(
            k = next::<$rcon>(k);
            rk[$i] = as_u128(k);
        )*};
    }
    rounds!(1 => 0x01, 2 => 0x02, 3 => 0x04, 4 => 0x08, 5 => 0x10);
    rounds!(6 => 0x20, 7 => 0x40, 8 => 0x80, 9 => 0x1b, 10 => 0x36);
    // Best effort: the copy of the key and the last round key in a register.
    let mut key = key;
    key.zeroize();
    k = _mm_setzero_si128();
    std::hint::black_box(k);
    rk
}

/// A 128-bit value in every lane.
#[inline]
#[target_feature(enable = "avx512f")]
fn splat(v: u128) -> __m512i {
    let (lo, hi) = (v as u64 as i64, (v >> 64) as u64 as i64);
    _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn keys(rk: &[u128; 11]) -> [__m512i; 11] {
    rk.map(|k| splat(k))
}

/// π applied to every lane of every register.
#[inline]
#[target_feature(enable = "avx512f,vaes")]
fn encrypt<const N: usize>(k: &[__m512i; 11], v: &mut [__m512i; N]) {
    for b in v.iter_mut() {
        *b = _mm512_xor_si512(*b, k[0]);
    }
    for key in &k[1..10] {
        for b in v.iter_mut() {
            *b = _mm512_aesenc_epi128(*b, *key);
        }
    }
    for b in v.iter_mut() {
        *b = _mm512_aesenclast_epi128(*b, k[10]);
    }
}

/// Masks of the colors of two runs of labels, lane by lane: all-ones in
/// lane m where the label of `a` (first) or `b` (second) has lsb 1.
#[inline]
#[target_feature(enable = "avx512f")]
fn lsb_masks(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
    let m = _mm512_srai_epi64::<63>(_mm512_slli_epi64::<63>(_mm512_unpacklo_epi64(a, b)));
    (_mm512_unpacklo_epi64(m, m), _mm512_unpackhi_epi64(m, m))
}

/// All-ones in the lanes whose label has lsb 1 (the point-and-permute bit).
#[inline]
#[target_feature(enable = "avx512f")]
fn lsb_mask(v: __m512i) -> __m512i {
    let m = _mm512_srai_epi64::<63>(_mm512_slli_epi64::<63>(v));
    _mm512_unpacklo_epi64(m, m)
}

/// Tweaks of instances 0..4 of a run starting at tweak `tw`:
/// lane i holds `tw + (i << INSTANCE_SHIFT)` (no carry out of 64 bits).
#[inline]
#[target_feature(enable = "avx512f")]
fn first_tweaks(tw: u128) -> __m512i {
    let (lo, hi) = (tw as u64, (tw >> 64) as u64 as i64);
    let lane = |i: u64| lo.wrapping_add(i << INSTANCE_SHIFT) as i64;
    _mm512_set_epi64(hi, lane(3), hi, lane(2), hi, lane(1), hi, lane(0))
}

/// `(lo, 0)` in every lane, to add to the low halves of the tweaks.
#[inline]
#[target_feature(enable = "avx512f")]
fn low_add(lo: u64) -> __m512i {
    _mm512_set_epi64(0, lo as i64, 0, lo as i64, 0, lo as i64, 0, lo as i64)
}

#[target_feature(enable = "avx512f,vaes,aes")]
unsafe fn permute_impl(rk: &[u128; 11], xs: &mut [Block]) -> usize {
    let n = xs.len() / PERMUTE_STEP * PERMUTE_STEP;
    let k = keys(rk);
    let p = xs.as_mut_ptr().cast::<__m512i>();
    let mut i = 0;
    while i < n / LANES {
        let mut v = [_mm512_setzero_si512(); PERMUTE_STEP / LANES];
        for (j, v) in v.iter_mut().enumerate() {
            // SAFETY: register i + j holds blocks 4(i + j) .. 4(i + j) + 4 < n.
            *v = unsafe { _mm512_loadu_si512(p.add(i + j)) };
        }
        encrypt(&k, &mut v);
        for (j, v) in v.iter().enumerate() {
            // SAFETY: as for the load.
            unsafe { _mm512_storeu_si512(p.add(i + j), *v) };
        }
        i += PERMUTE_STEP / LANES;
    }
    n
}
