//! The AND of one gate over a run of instances, the hot loop of garbling
//! and evaluation: the half-gates version written against [`FixedKeyAes`]
//! (three-halves: `three_halves.rs`), and a dispatcher that hands the bulk
//! of each run to the SIMD kernels of `crypto/simd.rs` when the CPU has them
//! (detected at run time) and the rest to the portable twin. Both compute
//! the same bytes; the tests below check this on random inputs.
//!
//! Tweaks (GKWY20 TCCR, see [`super::tweak_base`]): instance `i` of a run
//! whose first instance has tweak `tw` hashes its half-gates garbler half
//! under `tw + (i << INSTANCE_SHIFT)` and its evaluator half under that plus
//! one; three-halves hashes under that plus 0, 1 and 2.

use super::{INSTANCE_SHIFT, three_halves};
use crate::crypto::{Block, FixedKeyAes, from_aes, to_aes};

/// Garbler side of `n` two-input AND gates (ZRE15, figure 2). `x`, `y`: the
/// zero labels of the inputs; writes the output zero labels to `out` and the
/// two ciphertexts of each instance (`T_G`, then `T_E`, 32 bytes) to
/// `table`. `hin` and `hout` are scratch space of at least `4 * n` blocks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn garble_and_portable(
    aes: &FixedKeyAes,
    hin: &mut [aes::Block],
    hout: &mut [aes::Block],
    d: u128,
    x: &[Block],
    y: &[Block],
    tw: u128,
    out: &mut [Block],
    table: &mut [u8],
) {
    let n = x.len();
    let hin = &mut hin[..4 * n];
    let hout = &mut hout[..4 * n];
    for ((hb, a0), b0) in hin.chunks_exact_mut(4).zip(x).zip(y) {
        hb[0] = to_aes(a0.0);
        hb[1] = to_aes(a0.0 ^ d);
        hb[2] = to_aes(b0.0);
        hb[3] = to_aes(b0.0 ^ d);
    }
    aes.tccr_blocks_with(hin, hout, |j| {
        tw + (((j >> 2) as u128) << INSTANCE_SHIFT) + ((j as u128 >> 1) & 1)
    });
    for ((((hb, o), a0), b0), tb) in hout
        .chunks_exact(4)
        .zip(out.iter_mut())
        .zip(x)
        .zip(y)
        .zip(table.chunks_exact_mut(32))
    {
        let (ha0, ha1, hb0, hb1) = (
            from_aes(&hb[0]),
            from_aes(&hb[1]),
            from_aes(&hb[2]),
            from_aes(&hb[3]),
        );
        let ma = (a0.0 & 1).wrapping_neg();
        let mb = (b0.0 & 1).wrapping_neg();
        // Garbler half: a & pb. Evaluator half: a & (b ^ pb).
        let tg = ha0 ^ ha1 ^ (d & mb);
        let wg0 = ha0 ^ (tg & ma);
        let te = hb0 ^ hb1 ^ a0.0;
        let we0 = hb0 ^ ((hb0 ^ hb1) & mb);
        *o = Block(wg0 ^ we0);
        tb[..16].copy_from_slice(&tg.to_le_bytes());
        tb[16..].copy_from_slice(&te.to_le_bytes());
    }
}

/// Evaluator side of [`garble_and_portable`]: from the active labels `x`,
/// `y` and the 32-byte tables, the active output labels. `hin`, `hout`:
/// scratch of at least `2 * n` blocks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn eval_and_portable(
    aes: &FixedKeyAes,
    hin: &mut [aes::Block],
    hout: &mut [aes::Block],
    x: &[Block],
    y: &[Block],
    tw: u128,
    table: &[u8],
    out: &mut [Block],
) {
    let n = x.len();
    let hin = &mut hin[..2 * n];
    let hout = &mut hout[..2 * n];
    for ((hb, a), b) in hin.chunks_exact_mut(2).zip(x).zip(y) {
        hb[0] = to_aes(a.0);
        hb[1] = to_aes(b.0);
    }
    aes.tccr_blocks_with(hin, hout, |j| {
        tw + (((j >> 1) as u128) << INSTANCE_SHIFT) + (j as u128 & 1)
    });
    for ((((hb, o), a), b), tb) in hout
        .chunks_exact(2)
        .zip(out.iter_mut())
        .zip(x)
        .zip(y)
        .zip(table.chunks_exact(32))
    {
        let (tg, te) = (get(tb), get(&tb[16..]));
        let wg = from_aes(&hb[0]) ^ (tg & (a.0 & 1).wrapping_neg());
        let we = from_aes(&hb[1]) ^ ((te ^ a.0) & (b.0 & 1).wrapping_neg());
        *o = Block(wg ^ we);
    }
}

/// The little-endian u128 in the first 16 bytes of `bytes`.
#[inline(always)]
pub(crate) fn get(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes[..16]);
    u128::from_le_bytes(b)
}

/// The AND kernels: the portable twin, plus the SIMD kernels when the CPU
/// has them. Made once per garbler or evaluator.
#[derive(Clone)]
pub(crate) struct AndKernels {
    aes: FixedKeyAes,
    #[cfg(target_arch = "x86_64")]
    simd: Option<crate::crypto::simd::Vaes512>,
}

impl AndKernels {
    /// SIMD kernels if the CPU has them (AVX-512F and VAES), else portable.
    pub(crate) fn detect() -> Self {
        Self {
            aes: FixedKeyAes::new(),
            #[cfg(target_arch = "x86_64")]
            simd: crate::crypto::simd::Vaes512::new(crate::crypto::FIXED_KEY),
        }
    }

    /// The portable twin only (tests compare the two).
    #[cfg(test)]
    pub(crate) fn portable() -> Self {
        Self {
            aes: FixedKeyAes::new(),
            #[cfg(target_arch = "x86_64")]
            simd: None,
        }
    }

    /// Whether the SIMD kernels are in use.
    #[cfg(test)]
    pub(crate) fn has_simd(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self.simd.is_some();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// The fixed-key permutation the portable twin hashes with.
    pub(crate) fn aes(&self) -> &FixedKeyAes {
        &self.aes
    }

    /// [`garble_and_portable`], the bulk of the run on SIMD when available.
    ///
    /// # Panics
    /// If the slices disagree in length (a programming error).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn garble_and(
        &self,
        hin: &mut [aes::Block],
        hout: &mut [aes::Block],
        d: u128,
        x: &[Block],
        y: &[Block],
        tw: u128,
        out: &mut [Block],
        table: &mut [u8],
    ) {
        let n = x.len();
        assert!(
            y.len() == n && out.len() == n && table.len() == 32 * n,
            "garble_and: length mismatch"
        );
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = &self.simd
            && tweaks_fit(tw, n, 1)
        {
            done = simd.garble_and(d, x, y, tw, out, table);
        }
        if done < n {
            garble_and_portable(
                &self.aes,
                hin,
                hout,
                d,
                &x[done..],
                &y[done..],
                tw + ((done as u128) << INSTANCE_SHIFT),
                &mut out[done..],
                &mut table[32 * done..],
            );
        }
    }

    /// [`eval_and_portable`], the bulk of the run on SIMD when available.
    ///
    /// # Panics
    /// If the slices disagree in length (a programming error).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn eval_and(
        &self,
        hin: &mut [aes::Block],
        hout: &mut [aes::Block],
        x: &[Block],
        y: &[Block],
        tw: u128,
        table: &[u8],
        out: &mut [Block],
    ) {
        let n = x.len();
        assert!(
            y.len() == n && out.len() == n && table.len() == 32 * n,
            "eval_and: length mismatch"
        );
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = &self.simd
            && tweaks_fit(tw, n, 1)
        {
            done = simd.eval_and(x, y, tw, table, out);
        }
        if done < n {
            eval_and_portable(
                &self.aes,
                hin,
                hout,
                &x[done..],
                &y[done..],
                tw + ((done as u128) << INSTANCE_SHIFT),
                &table[32 * done..],
                &mut out[done..],
            );
        }
    }
}

impl AndKernels {
    /// [`three_halves::garble_and_portable`], the bulk of the run on SIMD
    /// when available. `u`: 2 random bits per instance, packed; control bits
    /// go to `ctrl` from bit `bit0` on (zero there before).
    ///
    /// # Panics
    /// If the slices disagree in length (a programming error).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn garble_and3(
        &self,
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
        assert!(
            y.len() == n
                && out.len() == n
                && table.len() == three_halves::AND_BYTES * n
                && 4 * u.len() >= n
                && 8 * ctrl.len() >= bit0 + three_halves::CONTROL_BITS * n,
            "garble_and3: length mismatch"
        );
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = &self.simd
            && tweaks_fit(tw, n, 2)
        {
            done = simd.garble_and3(d, x, y, tw, u, out, table, ctrl, bit0);
        }
        if done < n {
            // SIMD runs are whole multiples of 8 instances: 2 bytes of u.
            debug_assert!(done % 4 == 0);
            three_halves::garble_and_portable(
                &self.aes,
                hin,
                hout,
                d,
                &x[done..],
                &y[done..],
                tw + ((done as u128) << INSTANCE_SHIFT),
                &u[done / 4..],
                &mut out[done..],
                &mut table[three_halves::AND_BYTES * done..],
                ctrl,
                bit0 + three_halves::CONTROL_BITS * done,
            );
        }
    }

    /// [`three_halves::eval_and_portable`], the bulk of the run on SIMD when
    /// available.
    ///
    /// # Panics
    /// If the slices disagree in length (a programming error).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn eval_and3(
        &self,
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
        assert!(
            y.len() == n
                && out.len() == n
                && table.len() == three_halves::AND_BYTES * n
                && 8 * ctrl.len() >= bit0 + three_halves::CONTROL_BITS * n,
            "eval_and3: length mismatch"
        );
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = &self.simd
            && tweaks_fit(tw, n, 2)
        {
            done = simd.eval_and3(x, y, tw, table, ctrl, bit0, out);
        }
        if done < n {
            three_halves::eval_and_portable(
                &self.aes,
                hin,
                hout,
                &x[done..],
                &y[done..],
                tw + ((done as u128) << INSTANCE_SHIFT),
                &table[three_halves::AND_BYTES * done..],
                ctrl,
                bit0 + three_halves::CONTROL_BITS * done,
                &mut out[done..],
            );
        }
    }
}

/// The SIMD kernels add instance offsets and hash offsets up to `last` in
/// 64-bit lanes: true if no tweak of the run carries out of the low 64 bits
/// (always the case for tweaks from [`super::tweak_base`], whose instance
/// and hash fields sit well below bit 64).
#[cfg(target_arch = "x86_64")]
fn tweaks_fit(tw: u128, n: usize, last: u64) -> bool {
    (n as u64)
        .checked_shl(INSTANCE_SHIFT)
        .and_then(|span| (tw as u64).checked_add(span))
        .and_then(|t| t.checked_add(last))
        .is_some()
        && (n as u64) >> (64 - INSTANCE_SHIFT) == 0
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::*;

    /// The active labels of inputs with bits `(a, b)` per instance, from the
    /// zero labels `x`, `y` under Δ = `d`.
    fn active_labels(
        x: &[Block],
        y: &[Block],
        bits: &[(bool, bool)],
        d: u128,
    ) -> (Vec<Block>, Vec<Block>) {
        let xa = x
            .iter()
            .zip(bits)
            .map(|(z, (a, _))| *z ^ Block(d).select(*a));
        let ya = y
            .iter()
            .zip(bits)
            .map(|(z, (_, b))| *z ^ Block(d).select(*b));
        (xa.collect(), ya.collect())
    }

    fn random_blocks(rng: &mut ChaCha20Rng, n: usize) -> Vec<Block> {
        (0..n).map(|_| Block(rng.random())).collect()
    }

    /// The dispatching kernels (SIMD on a capable CPU) agree with the
    /// portable twin byte for byte, for run lengths around the SIMD group
    /// sizes, and evaluation recovers the right output label.
    #[test]
    fn simd_and_portable_kernels_agree() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let fast = AndKernels::detect();
        let slow = AndKernels::portable();
        crate::crypto::check_simd_taken("half-gates AND kernels", fast.has_simd());
        let mut hin = vec![aes::Block::default(); 4 * 300];
        let mut hout = hin.clone();
        for n in [
            0usize, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 255, 256, 300,
        ] {
            let d = rng.random::<u128>() | 1;
            let x = random_blocks(&mut rng, n);
            let y = random_blocks(&mut rng, n);
            let tw =
                super::super::tweak_base(super::super::GcNonce(rng.random::<u64>() >> 16), 9, 1000)
                    + 40;
            let (mut o1, mut o2) = (vec![Block::ZERO; n], vec![Block::ZERO; n]);
            let (mut t1, mut t2) = (vec![0u8; 32 * n], vec![0u8; 32 * n]);
            fast.garble_and(&mut hin, &mut hout, d, &x, &y, tw, &mut o1, &mut t1);
            slow.garble_and(&mut hin, &mut hout, d, &x, &y, tw, &mut o2, &mut t2);
            assert_eq!(o1, o2, "garbled output labels, n = {n}");
            assert_eq!(t1, t2, "tables, n = {n}");
            // Evaluate on random active labels: the output is the zero label
            // XOR (a & b) Δ, for both kernels.
            let bits: Vec<(bool, bool)> = (0..n).map(|_| (rng.random(), rng.random())).collect();
            let (xa, ya) = active_labels(&x, &y, &bits, d);
            let (mut e1, mut e2) = (vec![Block::ZERO; n], vec![Block::ZERO; n]);
            fast.eval_and(&mut hin, &mut hout, &xa, &ya, tw, &t1, &mut e1);
            slow.eval_and(&mut hin, &mut hout, &xa, &ya, tw, &t1, &mut e2);
            assert_eq!(e1, e2, "evaluated labels, n = {n}");
            for i in 0..n {
                assert_eq!(
                    e1[i],
                    o1[i] ^ Block(d).select(bits[i].0 & bits[i].1),
                    "n = {n}, i = {i}"
                );
            }
            // Another tweak gives other tables.
            if n > 0 {
                fast.garble_and(&mut hin, &mut hout, d, &x, &y, tw + 2, &mut o2, &mut t2);
                assert_ne!(t1, t2);
            }
        }
    }

    /// The three-halves kernels: SIMD (on a capable CPU) and portable twin
    /// agree byte for byte on output labels, tables and control bits, for
    /// run lengths around the SIMD group sizes (8 to garble, 16 to evaluate)
    /// and control areas starting at odd bit offsets; evaluation recovers
    /// the right output label from either party's bytes.
    #[test]
    fn simd_and_portable_three_halves_kernels_agree() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let fast = AndKernels::detect();
        let slow = AndKernels::portable();
        crate::crypto::check_simd_taken("three-halves AND kernels", fast.has_simd());
        let mut hin = vec![aes::Block::default(); 6 * 300];
        let mut hout = hin.clone();
        for n in [
            0usize, 1, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 64, 255, 256, 300,
        ] {
            let d = rng.random::<u128>() | 1;
            let x = random_blocks(&mut rng, n);
            let y = random_blocks(&mut rng, n);
            let u: Vec<u8> = (0..n.div_ceil(4)).map(|_| rng.random()).collect();
            let tw =
                super::super::tweak_base(super::super::GcNonce(rng.random::<u64>() >> 16), 9, 1000)
                    + 40;
            let bit0 = 3 + n % 5;
            let ctrl_len = (bit0 + 5 * n).div_ceil(8) + 2;
            let (mut o1, mut o2) = (vec![Block::ZERO; n], vec![Block::ZERO; n]);
            let (mut t1, mut t2) = (vec![0u8; 24 * n], vec![0u8; 24 * n]);
            let (mut c1, mut c2) = (vec![0u8; ctrl_len], vec![0u8; ctrl_len]);
            fast.garble_and3(
                &mut hin, &mut hout, d, &x, &y, tw, &u, &mut o1, &mut t1, &mut c1, bit0,
            );
            slow.garble_and3(
                &mut hin, &mut hout, d, &x, &y, tw, &u, &mut o2, &mut t2, &mut c2, bit0,
            );
            assert_eq!(o1, o2, "garbled output labels, n = {n}");
            assert_eq!(t1, t2, "tables, n = {n}");
            assert_eq!(c1, c2, "control bits, n = {n}");
            // Nothing outside the run's control bits is touched.
            assert_eq!(crate::crypto::bits::get_bits(&c1, 0, bit0), 0);
            assert!(c1[(bit0 + 5 * n).div_ceil(8)..].iter().all(|b| *b == 0));
            let bits: Vec<(bool, bool)> = (0..n).map(|_| (rng.random(), rng.random())).collect();
            let (xa, ya) = active_labels(&x, &y, &bits, d);
            let (mut e1, mut e2) = (vec![Block::ZERO; n], vec![Block::ZERO; n]);
            fast.eval_and3(&mut hin, &mut hout, &xa, &ya, tw, &t1, &c1, bit0, &mut e1);
            slow.eval_and3(&mut hin, &mut hout, &xa, &ya, tw, &t1, &c1, bit0, &mut e2);
            assert_eq!(e1, e2, "evaluated labels, n = {n}");
            for i in 0..n {
                assert_eq!(
                    e1[i],
                    o1[i] ^ Block(d).select(bits[i].0 & bits[i].1),
                    "n = {n}, i = {i}"
                );
            }
            // Other random bits give other output labels; another tweak
            // other tables.
            if n > 0 {
                let u2: Vec<u8> = u.iter().map(|b| !b).collect();
                let mut c3 = vec![0u8; ctrl_len];
                fast.garble_and3(
                    &mut hin, &mut hout, d, &x, &y, tw, &u2, &mut o2, &mut t2, &mut c3, bit0,
                );
                assert!(o1.iter().zip(&o2).all(|(a, b)| a != b));
                c3.fill(0);
                fast.garble_and3(
                    &mut hin,
                    &mut hout,
                    d,
                    &x,
                    &y,
                    tw + 3,
                    &u,
                    &mut o2,
                    &mut t2,
                    &mut c3,
                    bit0,
                );
                assert_ne!(t1, t2);
            }
        }
    }
}
