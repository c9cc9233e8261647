//! The comparison's schedule: which tree nodes combine at which level, and
//! how many random OTs each position needs.

use super::*;

/// Bits per millionaires' leaf (CrypTFlow2's m): 2^m-entry tables online,
/// m random OTs offline per leaf.
pub const CHUNK_BITS: u32 = 4;

/// One combination of two nodes (hi more significant than lo):
/// gt = gt_hi ⊕ eq_hi·gt_lo and, if `eq`, eq = eq_hi·eq_lo.
#[derive(Clone, Copy, Debug)]
pub(super) struct Op {
    pub(super) hi: usize,
    pub(super) lo: usize,
    pub(super) eq: bool,
    pub(super) out: usize,
    /// Offset of this op's OTs within its level, per position.
    pub(super) rot: usize,
}

impl Op {
    pub(super) fn rots(&self) -> usize {
        2 + usize::from(self.eq)
    }
}

/// The public shape of the protocol for ring parameters (l, f): chunks,
/// the AND tree level by level, and the layout of the random OTs.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub(super) ring: RingParams,
    /// (lowest bit, width) per leaf; node id = index.
    pub(super) chunks: Vec<(u32, u32)>,
    /// The tree's first level, whose operands are all leaves: computed from
    /// the leaf tables without OTs of its own (see [`Schedule::new`]).
    pub(super) free: Vec<Op>,
    /// The levels that need OTs and a round trip each.
    pub(super) levels: Vec<Vec<Op>>,
    /// Per chunk: its free op and whether it is that op's high side.
    pub(super) role: Vec<Option<(usize, bool)>>,
    /// Per chunk: bits per table entry (2, or 4 with a free op's cross terms).
    pub(super) entry_bits: Vec<usize>,
    /// Table bits per position.
    pub(super) table_bits: usize,
    pub(super) n_nodes: usize,
    pub(super) low_root: usize,
    pub(super) e_node: usize,
    /// Σ 2^width over chunks.
    pub(super) leaf_entries: usize,
    /// Offset of each chunk's entries in a position's table.
    pub(super) entry_off: Vec<usize>,
    pub(super) leaf_rots: usize,
    /// Random OTs per position of each level.
    pub(super) level_rots: Vec<usize>,
    pub(super) tree_rots: usize,
}

/// Random OTs of the final 1-of-8 OT.
pub(super) const FINAL_ROTS: usize = 3;

impl Schedule {
    /// The schedule for ring parameters `ring` (1 ≤ f ≤ l − 2).
    ///
    /// # Errors
    /// [`Error::BadInput`] if f or l is out of range.
    pub fn new(ring: RingParams) -> Result<Self> {
        let (l, f) = (ring.bits(), ring.frac());
        if f == 0 || f + 2 > l || l > 62 {
            return Err(Error::BadInput(format!(
                "OT ReLU needs 1 <= f <= l - 2 and l <= 62 (l = {l}, f = {f})"
            )));
        }
        let mut chunks = Vec::new();
        // Node lists, most significant first.
        let group = |from: u32, to: u32, chunks: &mut Vec<(u32, u32)>| {
            let mut ids = Vec::new();
            let mut lo = from;
            while lo < to {
                let w = CHUNK_BITS.min(to - lo);
                ids.push(chunks.len());
                chunks.push((lo, w));
                lo += w;
            }
            ids.reverse();
            ids
        };
        let mut low = group(0, f, &mut chunks);
        let mut high = group(f, l - 1, &mut chunks);
        let mut n_nodes = chunks.len();
        let mut levels: Vec<Vec<Op>> = Vec::new();
        let reduce = |list: &[usize], root_eq: bool, ops: &mut Vec<Op>, n_nodes: &mut usize| {
            if list.len() < 2 {
                return list.to_vec();
            }
            let mut next = Vec::new();
            let mut i = 0;
            while i < list.len() {
                if i + 1 < list.len() {
                    let last = i + 2 >= list.len();
                    ops.push(Op {
                        hi: list[i],
                        lo: list[i + 1],
                        eq: root_eq || !last,
                        out: *n_nodes,
                        rot: 0,
                    });
                    next.push(*n_nodes);
                    *n_nodes += 1;
                } else {
                    next.push(list[i]);
                }
                i += 2;
            }
            next
        };
        while low.len() > 1 || high.len() > 1 {
            let mut ops = Vec::new();
            low = reduce(&low, false, &mut ops, &mut n_nodes);
            high = reduce(&high, true, &mut ops, &mut n_nodes);
            levels.push(ops);
        }
        let (low_root, high_root) = (low[0], high[0]);
        let e_node = n_nodes;
        n_nodes += 1;
        levels.push(vec![Op {
            hi: high_root,
            lo: low_root,
            eq: false,
            out: e_node,
            rot: 0,
        }]);
        // The first level combines leaves only, each leaf at most once. Its
        // AND gates' cross terms are a function of one chunk of y times a bit
        // of the server: the server puts them in that chunk's table, so the
        // level costs no OT and no round trip (2 more bits per entry).
        let free = levels.remove(0);
        let mut role = vec![None; chunks.len()];
        for (i, op) in free.iter().enumerate() {
            role[op.hi] = Some((i, true));
            role[op.lo] = Some((i, false));
        }
        let entry_bits: Vec<usize> = role
            .iter()
            .map(|r| if r.is_some() { 4 } else { 2 })
            .collect();
        let table_bits = chunks
            .iter()
            .zip(&entry_bits)
            .map(|(&(_, w), &b)| b << w)
            .sum();
        let mut level_rots = Vec::new();
        for ops in &mut levels {
            let mut off = 0;
            for op in ops.iter_mut() {
                op.rot = off;
                off += op.rots();
            }
            level_rots.push(off);
        }
        let mut entry_off = Vec::new();
        let mut leaf_entries = 0;
        for &(_, w) in &chunks {
            entry_off.push(leaf_entries);
            leaf_entries += 1usize << w;
        }
        Ok(Self {
            ring,
            leaf_rots: (l - 1) as usize,
            tree_rots: level_rots.iter().sum(),
            chunks,
            free,
            levels,
            role,
            entry_bits,
            table_bits,
            n_nodes,
            low_root,
            e_node,
            leaf_entries,
            entry_off,
            level_rots,
        })
    }

    /// Ring parameters.
    pub fn ring(&self) -> RingParams {
        self.ring
    }

    /// Random OTs (server sender, client receiver) per position: the
    /// leaves' ([`Self::leaf_rots_per_position`]) and the others
    /// ([`Self::random_rots_per_position`]).
    pub fn rots_per_position(&self) -> usize {
        self.leaf_rots + self.tree_rots + FINAL_ROTS
    }

    /// Random OTs per position whose choices the client fixes offline (the
    /// bits of y: l − 1).
    pub fn leaf_rots_per_position(&self) -> usize {
        self.leaf_rots
    }

    /// Random OTs per position with uniformly random choices (the AND tree's
    /// and the final 1-of-8 OT's).
    pub fn random_rots_per_position(&self) -> usize {
        self.tree_rots + FINAL_ROTS
    }

    /// Levels of the AND tree (online round trips per layer are this + 2).
    pub fn levels(&self) -> usize {
        self.levels.len()
    }

    /// Online round trips of one activation layer.
    pub fn round_trips(&self) -> usize {
        self.levels() + 2
    }

    pub(super) fn tree_off(&self, level: usize) -> usize {
        self.leaf_rots + self.level_rots[..level].iter().sum::<usize>()
    }

    pub(super) fn final_off(&self) -> usize {
        self.leaf_rots + self.tree_rots
    }

    /// The client's choice bits for the leaf OTs of its positions with
    /// shares `b`: the bits of y, [`Self::leaf_rots_per_position`] per
    /// position (the other OTs take random choices).
    pub fn client_leaf_choices(&self, b: &[u64]) -> Vec<bool> {
        let mut out = Vec::with_capacity(b.len() * self.leaf_rots);
        for &bv in b {
            let y = self.y(bv);
            for &(lo, w) in &self.chunks {
                out.extend((0..w).map(|t| (y >> (lo + t)) & 1 == 1));
            }
        }
        out
    }

    /// y = 2^(l−1) − 1 − (b mod 2^(l−1)): a' + b carries into bit k iff
    /// (a' mod 2^k) > (y mod 2^k).
    pub(super) fn y(&self, b: u64) -> u64 {
        !b & ((1u64 << (self.ring.bits() - 1)) - 1)
    }

    pub(super) fn table_bytes(&self, n: usize) -> usize {
        (n * self.table_bits).div_ceil(8)
    }
}
