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

use zeroize::Zeroize;

use crate::crypto::Block;

/// Side of a tile: the number of base OTs (κ) and of OTs per tile.
pub const TILE: usize = 128;

/// One level of the block swap inside 64-bit words: in every group of `2W`
/// rows, the high `W` bits of each 2W-bit group in the top `W` rows trade
/// places with the low `W` bits in the bottom `W` rows. `mask` selects the
/// bits whose index has bit `W` clear.
#[inline(always)]
fn level<const W: usize>(half: &mut [u64; TILE], mask: u64) {
    for group in half.chunks_exact_mut(2 * W) {
        let (top, bottom) = group.split_at_mut(W);
        for (a, b) in top.iter_mut().zip(bottom.iter_mut()) {
            let t = ((*a >> W) ^ *b) & mask;
            *b ^= t;
            *a ^= t << W;
        }
    }
}

/// Levels 32..1 of one 64-bit half of a tile.
fn transpose_half(half: &mut [u64; TILE]) {
    level::<32>(half, 0x0000_0000_ffff_ffff);
    level::<16>(half, 0x0000_ffff_0000_ffff);
    level::<8>(half, 0x00ff_00ff_00ff_00ff);
    level::<4>(half, 0x0f0f_0f0f_0f0f_0f0f);
    level::<2>(half, 0x3333_3333_3333_3333);
    level::<1>(half, 0x5555_5555_5555_5555);
}

/// Transposes one 128 x 128 bit tile in place. Row `i` is `(lo[i], hi[i])`,
/// bit `j` of the row is bit `j` of the 128-bit value `hi:lo`.
fn transpose_tile(lo: &mut [u64; TILE], hi: &mut [u64; TILE]) {
    // Level 64: the top-right 64 x 64 block (hi of rows 0..64) swaps with the
    // bottom-left one (lo of rows 64..128).
    let (lo_top, lo_bottom) = lo.split_at_mut(64);
    hi[..64].swap_with_slice(lo_bottom);
    let _ = lo_top;
    // Levels 32..1 act inside each 64-bit half independently.
    transpose_half(lo);
    transpose_half(hi);
}

/// Tiles gathered per pass: 8 blocks of each column are 128 contiguous
/// bytes (two cache lines), so a pass touches each column's page once
/// instead of once per tile.
const GROUP: usize = 8;

/// Transposes a column-major bit matrix, appending the rows to `rows`.
///
/// `cols` holds 128 columns of `nblk` blocks each (column `i` is
/// `cols[i * nblk..(i + 1) * nblk]`, bit `b` of block `k` is row
/// `128 k + b`). Appends `128 * nblk` rows; row `j` has bit `i` equal to
/// bit `j` of column `i`.
///
/// # Panics
/// If `cols.len() != 128 * nblk` (a programming error).
pub fn transpose(cols: &[Block], nblk: usize, rows: &mut Vec<Block>) {
    assert_eq!(cols.len(), TILE * nblk, "transpose: column matrix size");
    rows.reserve(TILE * nblk);
    let mut lo = [[0u64; TILE]; GROUP];
    let mut hi = [[0u64; TILE]; GROUP];
    let mut k = 0;
    while k < nblk {
        let g = GROUP.min(nblk - k);
        for (i, col) in cols.chunks_exact(nblk).enumerate() {
            for (t, v) in col[k..k + g].iter().enumerate() {
                lo[t][i] = v.0 as u64;
                hi[t][i] = (v.0 >> 64) as u64;
            }
        }
        for t in 0..g {
            transpose_tile(&mut lo[t], &mut hi[t]);
            rows.extend(
                lo[t]
                    .iter()
                    .zip(hi[t].iter())
                    .map(|(&l, &h)| Block(((h as u128) << 64) | l as u128)),
            );
        }
        k += g;
    }
    lo.zeroize();
    hi.zeroize();
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
        for nblk in [1, 2, 5, 8, 9, 17] {
            let cols: Vec<Block> = (0..TILE * nblk).map(|_| Block::random(&mut rng)).collect();
            let mut rows = vec![Block::ONES];
            transpose(&cols, nblk, &mut rows);
            assert_eq!(rows[0], Block::ONES, "appends");
            assert_eq!(rows[1..], transpose_naive(&cols, nblk), "nblk = {nblk}");
        }
    }

    #[test]
    fn single_bits_land_where_expected() {
        // One set bit at (column i, row j) must become bit i of row j.
        for (i, j) in [(0, 0), (127, 0), (0, 127), (5, 64), (64, 5), (100, 200)] {
            let nblk = 2;
            let mut cols = vec![Block::ZERO; TILE * nblk];
            cols[i * nblk + j / TILE] = Block(1u128 << (j % TILE));
            let mut rows = Vec::new();
            transpose(&cols, nblk, &mut rows);
            for (r, row) in rows.iter().enumerate() {
                let expect = if r == j {
                    Block(1u128 << i)
                } else {
                    Block::ZERO
                };
                assert_eq!(*row, expect, "bit ({i}, {j}), row {r}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn transpose_is_an_involution_on_tiles(seed in 0u64..u64::MAX, nblk in 1usize..20) {
            // Transposing a single tile twice gives it back; for wider
            // matrices the result equals the naive transposition.
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let cols: Vec<Block> = (0..TILE * nblk).map(|_| Block::random(&mut rng)).collect();
            let mut rows = Vec::new();
            transpose(&cols, nblk, &mut rows);
            proptest::prop_assert_eq!(&rows, &transpose_naive(&cols, nblk));
            let tile: Vec<Block> = cols.chunks_exact(nblk).map(|c| c[0]).collect();
            let mut once = Vec::new();
            transpose(&tile, 1, &mut once);
            let mut twice = Vec::new();
            transpose(&once, 1, &mut twice);
            proptest::prop_assert_eq!(twice, tile);
        }
    }
}
