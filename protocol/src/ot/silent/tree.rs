//! Single-point COT from a correlated GGM tree: the "half-tree" of Guo,
//! Yang, Wang, Zhang, Xie, Liu and Zhao (EUROCRYPT 2023, section 3,
//! Figure 4 for COT), semi-honest.
//!
//! The sender's tree under Δ: level 1 is (s, s ⊕ Δ) for a random s; a node
//! x has children (H(x), H(x) ⊕ x), so the two children of a node sum to
//! it and *every* level sums to Δ. With H a circular correlation-robust
//! hash this needs one hash per node and one correction block per level,
//! against two of each for the classic GGM tree.
//!
//! Level i (1-based) has the sums K_0^i (even positions) and K_1^i = K_0^i
//! ⊕ Δ (odd positions). With a COT (q_i, t_i = q_i ⊕ b_i·Δ) the sender
//! sends c_i = K_0^i ⊕ q_i and the receiver gets c_i ⊕ t_i = K_{b_i}^i:
//! the sum of the b_i-side of the level. It knows every node of level i
//! but the two children of its punctured parent, so it recovers the child
//! on the b_i side, and the punctured path continues on the other side.
//! The receiver's choice bits thus *are* the path: the leaf it misses is
//! α = Σ_i (1 − b_i)·2^(depth−i), uniform when the choices are.
//!
//! H(x) = π_j(σ(x)) ⊕ σ(x) with σ doubling in GF(2^128) and π_j AES-128
//! under a public key of its own for every tree (see `tree_key` in the
//! parent module): the ccr hash of Guo, Katz, Wang and Yu (S&P 2020), and
//! fresh keys keep guesses of Δ from being tested against all trees of a
//! session at once.

use crate::crypto::{AES_BATCH, Block, FixedKeyAes};

/// Expands level `i − 1` (the first `parents` blocks of `buf`) into level
/// `i` (the first `2·parents`), in place: children (H(x), H(x) ⊕ x).
/// Returns the sums of the even (left) and odd (right) children.
fn expand_level(h: &FixedKeyAes, buf: &mut [Block], parents: usize) -> (Block, Block) {
    let (mut left_sum, mut right_sum) = (Block::ZERO, Block::ZERO);
    let mut par = [Block::ZERO; AES_BATCH];
    let mut hashed = [Block::ZERO; AES_BATCH];
    // Backwards, so children (at 2p, 2p + 1 ≥ p) never overwrite a parent
    // not yet read; each chunk is copied out before its children land.
    let mut end = parents;
    while end > 0 {
        let start = end.saturating_sub(AES_BATCH);
        let len = end - start;
        par[..len].copy_from_slice(&buf[start..end]);
        hashed[..len].copy_from_slice(&buf[start..end]);
        h.cr_many(&mut hashed[..len]);
        for (k, (&x, &l)) in par[..len].iter().zip(&hashed[..len]).enumerate() {
            let r = l ^ x;
            buf[2 * (start + k)] = l;
            buf[2 * (start + k) + 1] = r;
            left_sum ^= l;
            right_sum ^= r;
        }
        end = start;
    }
    zeroize::Zeroize::zeroize(&mut par);
    zeroize::Zeroize::zeroize(&mut hashed);
    (left_sum, right_sum)
}

/// The sender's tree: fills `leaves` (2^depth blocks, raw) from the level-1
/// seed `s` under `delta`, and `k0[i − 1]` = K_0^i for every level i.
pub(super) fn expand_sender(
    h: &FixedKeyAes,
    s: Block,
    delta: Block,
    leaves: &mut [Block],
    k0: &mut [Block],
) {
    let depth = k0.len();
    debug_assert_eq!(leaves.len(), 1 << depth);
    leaves[0] = s;
    leaves[1] = s ^ delta;
    k0[0] = s;
    for (i, k) in k0.iter_mut().enumerate().skip(1) {
        let (left, _) = expand_level(h, leaves, 1 << i);
        *k = left;
    }
}

/// The receiver's tree: `kb[i − 1]` = K_{b_i}^i and `bits[i − 1]` = b_i
/// for every level i. Fills `leaves` with every leaf but the punctured one,
/// which is left zero, and returns its position α.
pub(super) fn expand_receiver(
    h: &FixedKeyAes,
    kb: &[Block],
    bits: &[bool],
    leaves: &mut [Block],
) -> usize {
    let depth = kb.len();
    debug_assert_eq!(bits.len(), depth);
    debug_assert_eq!(leaves.len(), 1 << depth);
    let b = bits[0] as usize;
    leaves[b] = kb[0];
    leaves[1 - b] = Block::ZERO;
    let mut path = 1 - b;
    for i in 1..depth {
        let (mut left, mut right) = expand_level(h, leaves, 1 << i);
        // The punctured parent's children are garbage: drop them from the
        // sums, then recover the one on the b side from K_b.
        let (l, r) = (2 * path, 2 * path + 1);
        left ^= leaves[l];
        right ^= leaves[r];
        let b = bits[i] as usize;
        let known = if b == 0 { left } else { right };
        leaves[2 * path + b] = kb[i] ^ known;
        leaves[2 * path + 1 - b] = Block::ZERO;
        path = 2 * path + 1 - b;
    }
    path
}

/// The sender's single-point COT output: the leaves with their lsb cleared
/// (so that the receiver's lsb carries its choice, see the parent module).
pub(super) fn finish_sender(leaves: &mut [Block]) {
    for x in leaves.iter_mut() {
        x.0 &= !1;
    }
}

/// The receiver's single-point COT output: the known leaves with their lsb
/// cleared and at α their sum plus 1, which is the sender's leaf ⊕ Δ (the
/// raw leaves sum to Δ, whose lsb is 1).
pub(super) fn finish_receiver(leaves: &mut [Block], alpha: usize) {
    let mut sum = Block::ZERO;
    for x in leaves.iter_mut() {
        x.0 &= !1;
        sum ^= *x;
    }
    // leaves[alpha] was zero, so `sum` is over the other leaves only.
    leaves[alpha] = Block(sum.0 ^ 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    /// Every leaf but α equal, and at α the two differ by exactly Δ, for
    /// every depth and many paths; the level sums behave as claimed.
    #[test]
    fn punctured_tree_gives_a_single_point_cot() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for depth in 1..=10usize {
            for _ in 0..6 {
                let h = FixedKeyAes::with_key(Block::random(&mut rng).to_bytes());
                let delta = Block(Block::random(&mut rng).0 | 1);
                let s = Block::random(&mut rng);
                let mut ls = vec![Block::ZERO; 1 << depth];
                let mut k0 = vec![Block::ZERO; depth];
                expand_sender(&h, s, delta, &mut ls, &mut k0);
                // The raw leaves sum to Δ.
                assert_eq!(ls.iter().fold(Block::ZERO, |a, &x| a ^ x), delta);
                let bits: Vec<bool> = (0..depth).map(|_| rng.next_u32() & 1 == 1).collect();
                let kb: Vec<Block> = k0
                    .iter()
                    .zip(&bits)
                    .map(|(&k, &b)| k ^ delta.select(b))
                    .collect();
                let mut lr = vec![Block(7); 1 << depth];
                let alpha = expand_receiver(&h, &kb, &bits, &mut lr);
                let want: usize = bits.iter().fold(0, |a, &b| (a << 1) | usize::from(!b));
                assert_eq!(alpha, want);
                for j in 0..ls.len() {
                    if j == alpha {
                        assert_eq!(lr[j], Block::ZERO);
                    } else {
                        assert_eq!(lr[j], ls[j], "depth {depth}, leaf {j}");
                    }
                }
                finish_sender(&mut ls);
                finish_receiver(&mut lr, alpha);
                for j in 0..ls.len() {
                    assert!(!ls[j].lsb());
                    let e = if j == alpha { delta } else { Block::ZERO };
                    assert_eq!(lr[j], ls[j] ^ e, "depth {depth}, leaf {j}");
                }
            }
        }
    }

    /// A receiver with the wrong K at some level misses leaves (the tree
    /// really depends on the corrections), without panicking.
    #[test]
    fn wrong_correction_changes_leaves() {
        let h = FixedKeyAes::with_key([3; 16]);
        let delta = Block(0x1234_5678_9abc_def1);
        let mut ls = vec![Block::ZERO; 256];
        let mut k0 = vec![Block::ZERO; 8];
        expand_sender(&h, Block(99), delta, &mut ls, &mut k0);
        let bits = [false; 8];
        let mut kb = k0.clone();
        kb[3] ^= Block(1 << 40);
        let mut lr = vec![Block::ZERO; 256];
        let alpha = expand_receiver(&h, &kb, &bits, &mut lr);
        assert_eq!(alpha, 255);
        let differ = (0..255).filter(|&j| lr[j] != ls[j]).count();
        assert!(differ > 0 && differ < 255);
    }
}
