//! Transposition of the 128 x m bit matrices of IKNP.
//!
//! IKNP produces 128 *columns* of m bits (one per base OT) and needs m *rows*
//! of 128 bits (one per extended OT). The matrix is cut into 128 x 128 tiles;
//! each tile is transposed with the classic log-step block swap (Eklundh's
//! algorithm, also in Warren, "Hacker's Delight", section 7-3): at level w the
//! off-diagonal w x w sub-blocks of every 2w x 2w block trade places, which
//! takes 7 levels of shifts and masks over whole 64-bit words. No per-bit
//! loop, no unsafe code; the inner loops run over contiguous arrays so the
//! compiler vectorises them.

use crate::crypto::Block;

/// Side of a tile: the number of base OTs (κ) and of OTs per tile.
pub const TILE: usize = 128;

/// Masks for the levels w = 32, 16, ..., 1 inside a 64-bit word: the bits
/// whose index has bit w clear (the low half of each 2w-bit group).
const MASKS: [(u32, u64); 6] = [
    (32, 0x0000_0000_ffff_ffff),
    (16, 0x0000_ffff_0000_ffff),
    (8, 0x00ff_00ff_00ff_00ff),
    (4, 0x0f0f_0f0f_0f0f_0f0f),
    (2, 0x3333_3333_3333_3333),
    (1, 0x5555_5555_5555_5555),
];

/// Transposes one 128 x 128 bit tile in place. Row `i` is `(lo[i], hi[i])`,
/// bit `j` of the row is bit `j` of the 128-bit value `hi:lo`.
fn transpose_tile(lo: &mut [u64; TILE], hi: &mut [u64; TILE]) {
    // Level 64: the top-right 64 x 64 block (hi of rows 0..64) swaps with the
    // bottom-left one (lo of rows 64..128).
    for i in 0..64 {
        std::mem::swap(&mut hi[i], &mut lo[i + 64]);
    }
    // Levels 32..1 act inside each 64-bit half independently.
    for half in [lo, hi] {
        for &(w, mask) in &MASKS {
            let w_us = w as usize;
            let mut base = 0;
            while base < TILE {
                let (top, bottom) = half[base..base + 2 * w_us].split_at_mut(w_us);
                for (a, b) in top.iter_mut().zip(bottom.iter_mut()) {
                    let t = ((*a >> w) ^ *b) & mask;
                    *b ^= t;
                    *a ^= t << w;
                }
                base += 2 * w_us;
            }
        }
    }
}

/// Transposes a column-major bit matrix into rows.
///
/// `cols` holds 128 columns of `nblk` blocks each (column `i` is
/// `cols[i * nblk..(i + 1) * nblk]`, bit `b` of block `k` is row
/// `128 k + b`). On return `rows[j]` has bit `i` equal to bit `j` of column
/// `i`, for `j < 128 * nblk`.
///
/// # Panics
/// If `cols.len() != 128 * nblk` or `rows.len() != 128 * nblk`.
pub fn transpose(cols: &[Block], nblk: usize, rows: &mut [Block]) {
    assert_eq!(cols.len(), TILE * nblk, "transpose: column matrix size");
    assert_eq!(rows.len(), TILE * nblk, "transpose: row matrix size");
    let mut lo = [0u64; TILE];
    let mut hi = [0u64; TILE];
    for (k, out) in rows.chunks_exact_mut(TILE).enumerate() {
        for i in 0..TILE {
            let v = cols[i * nblk + k].0;
            lo[i] = v as u64;
            hi[i] = (v >> 64) as u64;
        }
        transpose_tile(&mut lo, &mut hi);
        for (o, (&l, &h)) in out.iter_mut().zip(lo.iter().zip(hi.iter())) {
            *o = Block(((h as u128) << 64) | l as u128);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn bit(b: Block, i: usize) -> bool {
        (b.0 >> i) & 1 == 1
    }

    /// The obvious per-bit transposition, as the oracle.
    fn transpose_naive(cols: &[Block], nblk: usize) -> Vec<Block> {
        let mut rows = vec![Block::ZERO; TILE * nblk];
        for (j, row) in rows.iter_mut().enumerate() {
            for i in 0..TILE {
                if bit(cols[i * nblk + j / TILE], j % TILE) {
                    row.0 |= 1u128 << i;
                }
            }
        }
        rows
    }

    #[test]
    fn matches_naive_transpose() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for nblk in [1, 2, 5] {
            let cols: Vec<Block> = (0..TILE * nblk).map(|_| Block::random(&mut rng)).collect();
            let mut rows = vec![Block::ZERO; TILE * nblk];
            transpose(&cols, nblk, &mut rows);
            assert_eq!(rows, transpose_naive(&cols, nblk), "nblk = {nblk}");
        }
    }

    #[test]
    fn single_bits_land_where_expected() {
        // One set bit at (column i, row j) must become bit i of row j.
        for (i, j) in [(0, 0), (127, 0), (0, 127), (5, 64), (64, 5), (100, 200)] {
            let nblk = 2;
            let mut cols = vec![Block::ZERO; TILE * nblk];
            cols[i * nblk + j / TILE] = Block(1u128 << (j % TILE));
            let mut rows = vec![Block::ZERO; TILE * nblk];
            transpose(&cols, nblk, &mut rows);
            for (r, row) in rows.iter().enumerate() {
                let expect = if r == j { Block(1u128 << i) } else { Block::ZERO };
                assert_eq!(*row, expect, "bit ({i}, {j}), row {r}");
            }
        }
    }
}
