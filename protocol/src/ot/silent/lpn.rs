//! The local linear code of primal LPN (Ferret section 5): output i of a
//! round is e_i ⊕ Σ_{j < d} x[a_{i,j}], for the round's secret x (k base
//! COTs) and d = [`CODE_WEIGHT`] positions a_{i,j} per row.
//!
//! The positions are public and pseudorandom: row i reads the 64-bit words
//! of AES_key(5i), ..., AES_key(5i + 4) (ten words for ten positions,
//! counter mode under a public per-round key) and maps each word w to
//! ⌊w·k / 2^64⌋, which is uniform on [0, k) up to a relative bias below
//! k / 2^64 < 2^-44. Every row depends on its index only, so any range of
//! rows can be encoded on its own (and on any thread).

use super::params::CODE_WEIGHT;
use crate::crypto::{Block, FixedKeyAes};

/// AES blocks of randomness per row (two 64-bit positions per block).
const BLOCKS_PER_ROW: usize = CODE_WEIGHT / 2;
/// Rows whose positions are drawn with one AES call.
const ROWS_PER_BATCH: usize = 32;

const _: () = assert!(CODE_WEIGHT.is_multiple_of(2));

/// The code of one round: its public key and the secret length k.
pub(super) struct Code {
    aes: FixedKeyAes,
    k: usize,
}

impl Code {
    /// The code with public key `key` over a secret of `k` blocks.
    pub(super) fn new(key: [u8; 16], k: usize) -> Self {
        debug_assert!(k > 0);
        Self {
            aes: FixedKeyAes::with_key(key),
            k,
        }
    }

    /// The positions of row `row` (plaintext twin of [`Self::encode`]).
    #[cfg(test)]
    pub(super) fn row(&self, row: usize) -> [usize; CODE_WEIGHT] {
        let mut b: [Block; BLOCKS_PER_ROW] =
            core::array::from_fn(|c| Block((row * BLOCKS_PER_ROW + c) as u128));
        self.aes.permute_many(&mut b);
        core::array::from_fn(|j| self.position(word(&b, j)))
    }

    #[inline(always)]
    fn position(&self, w: u64) -> usize {
        ((w as u128 * self.k as u128) >> 64) as usize
    }

    /// `out[r] ^= Σ_j x[a_{first_row + r, j}]` for every r: the code applied
    /// to the secret `x` (length k), added to the noise already in `out`.
    pub(super) fn encode(&self, first_row: usize, x: &[Block], out: &mut [Block]) {
        assert_eq!(x.len(), self.k, "LPN secret of the wrong length");
        let mut rand = [Block::ZERO; ROWS_PER_BATCH * BLOCKS_PER_ROW];
        let mut pos = [0usize; ROWS_PER_BATCH * CODE_WEIGHT];
        for (c, rows) in out.chunks_mut(ROWS_PER_BATCH).enumerate() {
            let row0 = first_row + c * ROWS_PER_BATCH;
            let rand = &mut rand[..rows.len() * BLOCKS_PER_ROW];
            for (i, r) in rand.iter_mut().enumerate() {
                *r = Block((row0 * BLOCKS_PER_ROW + i) as u128);
            }
            self.aes.permute_many(rand);
            for (r, p) in rand.iter().zip(pos.chunks_exact_mut(2)) {
                p[0] = self.position(r.0 as u64);
                p[1] = self.position((r.0 >> 64) as u64);
            }
            for (o, p) in rows.iter_mut().zip(pos.chunks_exact(CODE_WEIGHT)) {
                let mut acc = *o;
                for &a in p {
                    acc ^= x[a];
                }
                *o = acc;
            }
        }
    }
}

/// The `j`-th 64-bit word of a run of blocks (low half first).
#[cfg(test)]
fn word(blocks: &[Block], j: usize) -> u64 {
    (blocks[j / 2].0 >> (64 * (j % 2))) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_matches_the_plaintext_rows() {
        let k = 1000;
        let code = Code::new([9; 16], k);
        let x: Vec<Block> = (0..k as u128)
            .map(|i| Block(i * 0x1_0000_0001 + 5))
            .collect();
        let n = 3 * ROWS_PER_BATCH + 7;
        let noise: Vec<Block> = (0..n as u128).map(|i| Block(i << 100)).collect();
        for first in [0usize, 1, 1000] {
            let mut out = noise.clone();
            code.encode(first, &x, &mut out);
            for (r, o) in out.iter().enumerate() {
                let pos = code.row(first + r);
                assert!(pos.iter().all(|&p| p < k));
                let want = pos.iter().fold(noise[r], |a, &p| a ^ x[p]);
                assert_eq!(*o, want, "row {r} from {first}");
            }
        }
        // Another key gives another code.
        assert_ne!(Code::new([8; 16], k).row(0), code.row(0));
    }

    #[test]
    fn positions_cover_the_secret_evenly() {
        // 10 positions per row over 2000 rows into 64 bins: each bin near
        // 312.5 (a loose check against a broken mapping, not a proof).
        let code = Code::new([1; 16], 64);
        let mut hist = [0usize; 64];
        for r in 0..2000 {
            for p in code.row(r) {
                hist[p] += 1;
            }
        }
        assert!(hist.iter().all(|&h| (200..430).contains(&h)), "{hist:?}");
    }
}
