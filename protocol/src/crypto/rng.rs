//! A ChaCha20 generator whose state is overwritten on drop.

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use zeroize::Zeroize;

/// ChaCha20 whose key and buffered output are overwritten when dropped.
/// `rand_chacha` 0.9 has no `zeroize` support, so the drop replaces the state
/// by that of an all-zero seed behind an optimisation barrier (best effort).
pub struct WipingRng(ChaCha20Rng);

impl WipingRng {
    /// A fresh stream seeded from 32 bytes of `rng` (the seed copy is wiped).
    pub fn fork<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        Self(fork_chacha(rng))
    }

    /// Wraps a generator.
    pub fn new(rng: ChaCha20Rng) -> Self {
        Self(rng)
    }
}

/// A fresh ChaCha20 stream seeded from 32 bytes of `rng`, the seed copy
/// wiped; for an owner that wipes the state itself ([`wipe_chacha`]),
/// otherwise use [`WipingRng::fork`].
pub fn fork_chacha<R: RngCore + ?Sized>(rng: &mut R) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let child = ChaCha20Rng::from_seed(seed);
    seed.zeroize();
    child
}

/// Overwrites a ChaCha20 state in place (see [`WipingRng`]).
pub fn wipe_chacha(rng: &mut ChaCha20Rng) {
    *rng = ChaCha20Rng::from_seed([0u8; 32]);
    std::hint::black_box(&*rng);
}

impl Drop for WipingRng {
    fn drop(&mut self) {
        wipe_chacha(&mut self.0);
    }
}

impl RngCore for WipingRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl CryptoRng for WipingRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forks_are_deterministic_per_parent_and_wipe_resets_the_state() {
        let mut a = ChaCha20Rng::seed_from_u64(1);
        let mut b = ChaCha20Rng::seed_from_u64(1);
        let (mut x, mut y) = (WipingRng::fork(&mut a), WipingRng::fork(&mut b));
        assert_eq!(x.next_u64(), y.next_u64());
        assert_ne!(WipingRng::fork(&mut a).next_u64(), x.next_u64());
        let mut r = ChaCha20Rng::seed_from_u64(9);
        wipe_chacha(&mut r);
        assert_eq!(r.next_u64(), ChaCha20Rng::from_seed([0u8; 32]).next_u64());
    }
}
