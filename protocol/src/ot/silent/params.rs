//! LPN parameters of the silent COT generator: primal LPN over F_2 with
//! regular noise and a 10-local linear code, as in Ferret.
//!
//! One *round* with parameters (k, t, depth) turns k + t·depth correlated
//! OTs (the round's *base*) into n = t·2^depth new ones: t single-point
//! COTs of 2^depth leaves each (one punctured GGM tree per noise block, so
//! the noise is *regular*: exactly one 1 per block of 2^depth positions)
//! plus the local code applied to the k-OT secret.
//!
//! Provenance. Both sets are the 128-bit sets of Table 2 of Weng, Yang,
//! Katz and Wang, "Wolverine", IEEE S&P 2021 (ePrint 2020/925); Yang,
//! Weng, Lan, Zhang and Wang use the same main set for Ferret (CCS 2020,
//! ePrint 2020/924, section 6): (n, k, t) = (10,805,248, 589,760, 1,319)
//! with trees of 2^13 leaves, bootstrapped by (642,048, 19,870, 2,508) with
//! trees of 2^8 leaves. Their analysis covers Gaussian elimination,
//! information-set decoding and low-weight parity-check attacks, adapted to
//! regular noise, each at ≥ 128 bits.
//!
//! Later attacks. The hybrid attack on regular LPN (Liu, Wang, Yang and Yu,
//! EUROCRYPT 2024) postdates that table. When the emp-ot maintainers
//! re-tuned Ferret in 2026 with a regular-LPN estimator that includes it,
//! they reported 138.5 bits for k = 2^19, t = 1,280, n = t·2^13: the
//! noise rate of our main set (2^-13), with n 3% and k 11% smaller. In
//! their same table raising n by 17% at that k costs 3.9 bits, and a
//! larger k only makes the attacks harder, so the main set stays well above
//! 128 bits. The setup set was not part of that re-estimation as far as we
//! know. It runs first in every session, and also for small rounds (a
//! direction that needs at most [`super::SMALL_YIELD`] more OTs): that adds
//! no assumption, since every later output already depends on the first
//! round's security (its outputs are the reserve all later bases come
//! from); each small round is a fresh instance (fresh secret and noise,
//! public code keyed by the round number).
//!
//! Code locality d = 10 is the value of both papers (their analysis
//! assumes a uniformly random d-sparse row per output).

/// One LPN parameter set: secret length `k`, noise weight `t` (one noisy
/// position per block), and GGM tree depth `depth` (blocks of 2^depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpnParams {
    /// Dimension of the LPN secret (base COTs fed to the code).
    pub k: usize,
    /// Noise weight: number of blocks, one single-point COT each.
    pub t: usize,
    /// Depth of each GGM tree: a block has 2^depth positions.
    pub depth: u32,
}

impl LpnParams {
    /// Outputs of one round: n = t·2^depth.
    pub const fn n(&self) -> usize {
        self.t << self.depth
    }

    /// Leaves of one tree (the size of a noise block).
    pub const fn leaves(&self) -> usize {
        1 << self.depth
    }

    /// Base COTs one round consumes: t·depth for the trees, k for the code.
    pub const fn base_cots(&self) -> usize {
        self.t * self.depth as usize + self.k
    }

    /// Correction blocks the sender sends per round (one per tree level).
    pub const fn msg_blocks(&self) -> usize {
        self.t * self.depth as usize
    }
}

/// Nonzero entries per row of the local linear code (Ferret, Wolverine:
/// d = 10).
pub const CODE_WEIGHT: usize = 10;

/// The main iteration: Wolverine/Ferret Table 2, (n, k, t) =
/// (10,805,248, 589,760, 1,319), trees of 2^13 leaves. Each round reserves
/// [`LpnParams::base_cots`] = 606,907 of its outputs for the next round and
/// hands out the other 10,198,341.
pub const MAIN: LpnParams = LpnParams {
    k: 589_760,
    t: 1_319,
    depth: 13,
};

/// The bootstrapping round, run once per session on SoftSpoken outputs, and the
/// small rounds after it: Wolverine Table 2, (n, k, t) = (642,048, 19,870,
/// 2,508), trees of 2^8 leaves. Its n covers the base of the first [`MAIN`]
/// round.
pub const SETUP: LpnParams = LpnParams {
    k: 19_870,
    t: 2_508,
    depth: 8,
};

const _: () = assert!(MAIN.n() == 10_805_248 && SETUP.n() == 642_048);
const _: () = assert!(SETUP.n() >= MAIN.base_cots());
const _: () = assert!(MAIN.n() > MAIN.base_cots());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_from_the_table() {
        assert_eq!(MAIN.base_cots(), 589_760 + 1_319 * 13);
        assert_eq!(SETUP.base_cots(), 19_870 + 2_508 * 8);
        assert_eq!(MAIN.msg_blocks(), 17_147);
        assert_eq!(SETUP.leaves(), 256);
        // Noise rate 1/2^depth, code rate k/n as in the table.
        assert_eq!(MAIN.n() / MAIN.t, 8192);
    }
}
