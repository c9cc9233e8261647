//! ReLU with exact truncation by OT-based comparison: the second activation
//! mode (`ReluMode::Ot`), in the style of CrypTFlow2 (Rathee et al., CCS
//! 2020, sections 3-4: millionaires' protocol with 1-out-of-2^m OT leaves
//! and an AND tree, then an OT-based multiplexer) with the exact
//! ("faithful") truncation of SIRNN/CrypTFlow2 computed from two carries.
//!
//! # What is computed
//! The activation input z (scale 2f) is shared as z = a + b mod 2^l, a the
//! server's share (known online), b the client's (known offline). The output
//! is act(z) = ReLU(trunc(z)) or trunc(z) (identity positions of a ReLU
//! mask), trunc(z) = signed(z) >> f, exactly as
//! [`pi_models::fixed::trunc_relu`]. The client's share of the output is its
//! offline mask r; the server ends with act(z) − r (docs/ARCHITECTURE.md §3).
//!
//! With a' = a + 2^(l−1) (the server's share of z' = z + 2^(l−1), which makes
//! the signed shift a logical one) and X = a' >> f, b' = b >> f:
//! - c = carry of the low f bits of a' + b,
//! - e = carry into bit l − 1, w = carry out of bit l − 1 = maj(A', B, e)
//!   with A', B the top bits of a', b,
//! - trunc(z) = X + b' + c − w·2^(l−f) − 2^(l−1−f) (mod 2^l),
//! - ReLU(trunc(z)) = D·trunc(z) with D = msb(z') = A' ⊕ B ⊕ e.
//!
//! Both carries are comparisons x > y with x the low bits of a' (server) and
//! y = 2^k − 1 − (low bits of b) (client). The low f bits are a sub-tree of
//! the (l − 1)-bit comparison, so one millionaires' run gives both c and e.
//!
//! # Offline (everything input-independent)
//! Since b is fixed offline, every OT in which the client is the receiver
//! has its choice either known offline (the leaves: the bits of y) or
//! random and corrected online (Beaver, "Precomputing oblivious transfer",
//! CRYPTO 1995). Offline, per position, from the session's bulk OT
//! ([`crate::ot::bulk`]: silent COT by default) with the server as sender,
//! [`Schedule::rots_per_position`] random OTs (49 at l = 37, f = 12,
//! m = 4), in two batches per layer: the leaves' with the client's chosen
//! choices ([`Schedule::leaf_rots_per_position`], 36), then the others
//! with random choices ([`Schedule::random_rots_per_position`], 13), which
//! silent OT delivers without a byte of its own:
//! - leaves: one 1-out-of-2^m OT per m-bit chunk, built from m random
//!   1-out-of-2 OTs (Naor-Pinkas style: the pad of entry i is the XOR
//!   over t of entry i's 4-bit slot of H(K_t^(i_t), tweak(t)), H the TCCR
//!   hash of fixed-key AES; each entry other than the receiver's has a slot
//!   of its own under a key the receiver lacks, see `leaf_pad_bits`).
//!   The client's choice is its chunk of y, so
//!   these OTs are fully done offline; online only the server's table moves.
//!   We chose log N 1-of-2 OTs over KK13 to reuse the 1-of-2 OT extension:
//!   with silent OT each costs its choice bit, (l − 1) bits per position
//!   (with IKNP m·κ bits per leaf instead of KK13's 2κ).
//! - AND tree: per AND gate two random OTs (one per cross term; the gates
//!   of one node that share an operand share one OT), choice random. The
//!   first level is free: its operands are leaves, so each cross term is a
//!   function of one chunk of y times a bit the server knows, and the server
//!   puts it into that chunk's table (4 bits per entry instead of 2). At
//!   l = 37 this saves 12 of 22 tree OTs and a round trip.
//! - final: one 1-out-of-8 OT (3 random OTs) for the output conversion.
//! - one random OT in the other direction (client sender, the server's
//!   choice random) per ReLU position for the multiplexer's client-side
//!   term, from the session's second bulk OT instance.
//!
//! The server's own shares of every tree node never depend on a: they are
//! its random bits and products of them, so it draws them from a seed fixed
//! offline.
//!
//! # Online (what had to stay: everything that depends on a)
//! 1. S → C: the leaf tables (2^m entries × 2 bits per chunk, masked with
//!    the leaf pads) and, per ReLU position, the server's correction bit for
//!    the reverse OT (its choice A' ⊕ e_s needs A', a bit of a).
//! 2. Per tree level after the first: C → S the correction bits of that level's OTs (the
//!    choices are the client's shares, which depend on a through the
//!    leaves), S → C the two masked messages of each OT.
//! 3. C → S the 3-bit correction of the final 1-of-8 OT (choice (e_c, c_c,
//!    B)); S → C eight l-bit messages D·(X + c − w·2^(l−f) − 2^(l−1−f)) − ρ.
//! 4. C → S its output share minus r: one l-bit value for an identity
//!    position; for a ReLU position the two masked messages of the reverse
//!    OT that add D·b' (the only term that needs the client's b' and the
//!    server's A' together). The server keeps value + ρ = act(z) − r.
//!
//! Round trips per activation layer: levels + 2 (levels = 3 at l = 37,
//! f = 12, m = 4), against 1 for a garbled-circuit layer.
//!
//! Traffic per ReLU position at l = 37, f = 12: offline the 36 leaf choice
//! bits (4.5 B) and the silent rounds' share of 49 + 1 OTs (0.027 B each,
//! 1.3 B), about 6 B (with IKNP: 50 random OTs at 16 B = 800 B); online
//! 68 B of tables, about 6 B of tree messages, 37 B of final messages, 9 B
//! back: about 0.13 KB in all (CrypTFlow2 on Ferret about 0.16 KB at
//! l = 32, SecONNds' figure).
//!
//! # Identity positions
//! They need the same two carries (the exact truncation needs e), so they
//! run the same comparison, but no multiplexer: D = 1, no reverse OT, and
//! their final message is one value.
//!
//! Security: semi-honest, 128-bit computational (silent OT under LPN, IKNP,
//! TCCR); every
//! message the client sees is masked by a one-time pad (an OT pad or a
//! fresh server share), every bit the server sees is a choice corrected by a
//! uniform secret choice or a value masked by r. All material is fresh per
//! inference and consumed by value: the bulk OT instances live as long as
//! the session but hand out each OT once, and the random OTs are hashed
//! under their session-wide index.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroize;

use crate::crypto::{Block, FixedKeyAes};
use crate::ring;
use crate::{Error, Result};
use pi_models::RingParams;

mod stored;
#[cfg(test)]
mod tests;

/// Bits per millionaires' leaf (CrypTFlow2's m): 2^m-entry tables online,
/// m random OTs offline per leaf.
pub const CHUNK_BITS: u32 = 4;

/// One combination of two nodes (hi more significant than lo):
/// gt = gt_hi ⊕ eq_hi·gt_lo and, if `eq`, eq = eq_hi·eq_lo.
#[derive(Clone, Copy, Debug)]
struct Op {
    hi: usize,
    lo: usize,
    eq: bool,
    out: usize,
    /// Offset of this op's OTs within its level, per position.
    rot: usize,
}

impl Op {
    fn rots(&self) -> usize {
        2 + usize::from(self.eq)
    }
}

/// The public shape of the protocol for ring parameters (l, f): chunks,
/// the AND tree level by level, and the layout of the random OTs.
#[derive(Clone, Debug)]
pub struct Schedule {
    ring: RingParams,
    /// (lowest bit, width) per leaf; node id = index.
    chunks: Vec<(u32, u32)>,
    /// The tree's first level, whose operands are all leaves: computed from
    /// the leaf tables without OTs of its own (see [`Schedule::new`]).
    free: Vec<Op>,
    /// The levels that need OTs and a round trip each.
    levels: Vec<Vec<Op>>,
    /// Per chunk: its free op and whether it is that op's high side.
    role: Vec<Option<(usize, bool)>>,
    /// Per chunk: bits per table entry (2, or 4 with a free op's cross terms).
    entry_bits: Vec<usize>,
    /// Table bits per position.
    table_bits: usize,
    n_nodes: usize,
    low_root: usize,
    e_node: usize,
    /// Σ 2^width over chunks.
    leaf_entries: usize,
    /// Offset of each chunk's entries in a position's table.
    entry_off: Vec<usize>,
    leaf_rots: usize,
    /// Random OTs per position of each level.
    level_rots: Vec<usize>,
    tree_rots: usize,
}

/// Random OTs of the final 1-of-8 OT.
const FINAL_ROTS: usize = 3;

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

    fn tree_off(&self, level: usize) -> usize {
        self.leaf_rots + self.level_rots[..level].iter().sum::<usize>()
    }

    fn final_off(&self) -> usize {
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
    fn y(&self, b: u64) -> u64 {
        !b & ((1u64 << (self.ring.bits() - 1)) - 1)
    }

    fn table_bytes(&self, n: usize) -> usize {
        (n * self.table_bits).div_ceil(8)
    }
}

/// Uniform bits drawn 64 at a time.
#[derive(Default)]
struct RandBits {
    word: u64,
    left: u32,
}

impl RandBits {
    fn next<R: RngCore + ?Sized>(&mut self, rng: &mut R) -> u8 {
        if self.left == 0 {
            self.word = rng.next_u64();
            self.left = 64;
        }
        let b = (self.word & 1) as u8;
        self.word >>= 1;
        self.left -= 1;
        b
    }
}

impl Drop for RandBits {
    fn drop(&mut self) {
        self.word.zeroize();
    }
}

/// Little-endian bit packing.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    fn with_bits(n: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(n.div_ceil(8)),
            bits: 0,
        }
    }
    fn push(&mut self, v: u8, width: usize) {
        for k in 0..width {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let last = self.bytes.len() - 1;
            self.bytes[last] |= ((v >> k) & 1) << (self.bits % 8);
            self.bits += 1;
        }
    }
    fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    /// A reader over exactly `bits` bits: the length must be ⌈bits/8⌉ and the
    /// padding bits zero.
    fn new(bytes: &'a [u8], bits: usize, what: &str) -> Result<Self> {
        if bytes.len() != bits.div_ceil(8) {
            return Err(Error::malformed(format!(
                "{what}: {} bytes, expected {}",
                bytes.len(),
                bits.div_ceil(8)
            )));
        }
        if !bits.is_multiple_of(8) && bytes[bytes.len() - 1] >> (bits % 8) != 0 {
            return Err(Error::malformed(format!("{what}: padding bits set")));
        }
        Ok(Self { bytes, bit: 0 })
    }
    fn read(&mut self, width: usize) -> u8 {
        let mut v = 0;
        for k in 0..width {
            v |= ((self.bytes[self.bit / 8] >> (self.bit % 8)) & 1) << k;
            self.bit += 1;
        }
        v
    }
}

/// Hashes (key, tweak) pairs in batches: the pads of 1-of-2^w OTs built
/// from w random OTs.
struct PadHasher {
    aes: FixedKeyAes,
    xs: Vec<Block>,
    tweaks: Vec<Block>,
    out: Vec<Block>,
}

impl PadHasher {
    fn new() -> Self {
        Self {
            aes: FixedKeyAes::new(),
            xs: Vec::new(),
            tweaks: Vec::new(),
            out: Vec::new(),
        }
    }
    /// The tweak of entry `entry` under random OT number `rot` of the batch.
    fn tweak(rot: usize, entry: usize) -> Block {
        Block(((rot as u128) << 16) | entry as u128 | crate::crypto::tweak::RELU_OT)
    }
    fn push(&mut self, key: Block, rot: usize, entry: usize) {
        self.xs.push(key);
        self.tweaks.push(Self::tweak(rot, entry));
    }
    /// Hashes everything pushed; returns the outputs in push order.
    fn run(&mut self) -> &[Block] {
        self.out.clear();
        self.out.resize(self.xs.len(), Block::ZERO);
        self.aes.tccr_many(&self.xs, &self.tweaks, &mut self.out);
        self.xs.zeroize();
        self.xs.clear();
        self.tweaks.clear();
        &self.out
    }
}

impl Drop for PadHasher {
    fn drop(&mut self) {
        self.xs.zeroize();
        self.out.zeroize();
    }
}

/// The 4 pad bits that key t of a leaf contributes to entry i: one hash per
/// key, H(K_t^b, tweak(t)), cut into 4-bit slots, one per entry with bit t
/// equal to b (slot = i with bit t removed, at most 2^(m−1)·4 ≤ 128 bits).
/// An entry j other than the receiver's y differs from y in some bit t, and
/// its slot of the hash under the key K_t^(1−y_t) it lacks belongs to j
/// alone, so the pads of all entries but y are jointly uniform. This costs
/// 2m hashes per leaf for the sender and m for the receiver instead of
/// m·2^m and m with per-entry tweaks.
fn leaf_pad_bits(h: Block, i: usize, t: usize) -> u8 {
    let slot = (i & ((1 << t) - 1)) | ((i >> (t + 1)) << t);
    ((h.0 >> (4 * slot)) & 15) as u8
}

const _: () = assert!(
    CHUNK_BITS <= 6,
    "4-bit slots of 2^(m-1) entries must fit a block"
);

/// Positions hashed per batch while deriving pads.
const PAD_BATCH: usize = 256;

/// The server's offline material for one activation layer. Consumed by
/// [`ServerRun::start`]; secrets are wiped on drop.
pub struct ServerMaterial {
    relu: Vec<bool>,
    /// Per position and leaf entry: the 4-bit pad.
    leaf_pads: Vec<u8>,
    /// Per position and tree OT: R0 | R1 << 2.
    tree_pads: Vec<u8>,
    /// Per position: the 8 pads of the final 1-of-8 OT.
    final_pads: Vec<u64>,
    /// Per ReLU position: the server's random choice and pad in the reverse OT.
    rev_choice: Vec<u8>,
    rev_pad: Vec<u64>,
    seed: [u8; 32],
}

impl Drop for ServerMaterial {
    fn drop(&mut self) {
        self.leaf_pads.zeroize();
        self.tree_pads.zeroize();
        self.final_pads.zeroize();
        self.rev_choice.zeroize();
        self.rev_pad.zeroize();
        self.seed.zeroize();
    }
}

impl ServerMaterial {
    /// Builds the material from the random OTs (this side as sender):
    /// `leaves` with the client's chosen choices
    /// ([`Schedule::leaf_rots_per_position`] per position), `random` with
    /// random choices ([`Schedule::random_rots_per_position`] per
    /// position), and per ReLU position the reverse OT's random choice and
    /// received message.
    ///
    /// # Errors
    /// [`Error::BadInput`] if the lengths do not fit the schedule.
    pub fn new<R: RngCore + ?Sized>(
        sched: &Schedule,
        relu: Vec<bool>,
        leaves: &[[Block; 2]],
        random: &[[Block; 2]],
        rev_choice: &[bool],
        rev_got: &[Block],
        rng: &mut R,
    ) -> Result<Self> {
        let n = relu.len();
        let per = sched.rots_per_position();
        let (nl, nr) = (sched.leaf_rots, sched.random_rots_per_position());
        let n_relu = relu.iter().filter(|&&r| r).count();
        if leaves.len() != n * nl
            || random.len() != n * nr
            || rev_choice.len() != n_relu
            || rev_got.len() != n_relu
        {
            return Err(Error::BadInput(
                "OT ReLU: random OTs do not fit the layer".into(),
            ));
        }
        let mask = sched.ring.mask();
        let mut leaf_pads = vec![0u8; n * sched.leaf_entries];
        let mut final_pads = vec![0u64; n * 8];
        let mut h = PadHasher::new();
        for start in (0..n).step_by(PAD_BATCH) {
            let end = (start + PAD_BATCH).min(n);
            // Tweaks number the OTs position-major, leaves then tree then
            // final, as if all came in one batch.
            for p in start..end {
                let base = p * per;
                for &(lo, w) in &sched.chunks {
                    let (g, k) = (base + lo as usize, p * nl + lo as usize);
                    for t in 0..w as usize {
                        h.push(leaves[k + t][0], g + t, 0);
                        h.push(leaves[k + t][1], g + t, 0);
                    }
                }
                let (g, k) = (base + sched.final_off(), p * nr + sched.tree_rots);
                for s in 0..8 {
                    for t in 0..FINAL_ROTS {
                        h.push(random[k + t][(s >> t) & 1], g + t, s);
                    }
                }
            }
            let out = h.run();
            let mut k = 0;
            for p in start..end {
                for (j, &(_, w)) in sched.chunks.iter().enumerate() {
                    let w = w as usize;
                    for i in 0..1usize << w {
                        let mut v = 0u8;
                        for t in 0..w {
                            v ^= leaf_pad_bits(out[k + 2 * t + ((i >> t) & 1)], i, t);
                        }
                        leaf_pads[p * sched.leaf_entries + sched.entry_off[j] + i] = v;
                    }
                    k += 2 * w;
                }
                for s in 0..8 {
                    let mut v = 0u64;
                    for _ in 0..FINAL_ROTS {
                        v ^= out[k].0 as u64;
                        k += 1;
                    }
                    final_pads[p * 8 + s] = v & mask;
                }
            }
        }
        let mut tree_pads = Vec::with_capacity(n * sched.tree_rots);
        for p in 0..n {
            let g = p * nr;
            for pair in &random[g..g + sched.tree_rots] {
                tree_pads.push((pair[0].0 & 3) as u8 | (((pair[1].0 & 3) as u8) << 2));
            }
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Ok(Self {
            relu,
            leaf_pads,
            tree_pads,
            final_pads,
            rev_choice: rev_choice.iter().map(|&c| c as u8).collect(),
            rev_pad: rev_got.iter().map(|b| b.0 as u64 & mask).collect(),
            seed,
        })
    }

    /// What [`Self::storage_bytes`] will count for a layer of `positions`
    /// positions of which `relus` keep their ReLU, from the schedule alone
    /// (the server reserves it in its memory budget before an offline
    /// phase): per position its ReLU flag, its leaf pads, one byte per tree
    /// OT and the 8 pads of the final OT; per ReLU position the reverse
    /// OT's choice and pad; the layer's seed.
    pub fn planned_storage_bytes(sched: &Schedule, positions: usize, relus: usize) -> u64 {
        let per_position = 1 + sched.leaf_entries + sched.tree_rots + 8 * 8;
        (positions * per_position + 9 * relus + 32) as u64
    }

    /// Bytes held until the online phase.
    pub fn storage_bytes(&self) -> u64 {
        (self.relu.len()
            + self.leaf_pads.len()
            + self.tree_pads.len()
            + 8 * self.final_pads.len()
            + self.rev_choice.len()
            + 8 * self.rev_pad.len()
            + self.seed.len()) as u64
    }
}

/// The client's offline material for one activation layer: its share b,
/// the pads of its chosen OT entries and its random choices. Consumed by
/// [`ClientRun::new`]; secrets are wiped on drop.
pub struct ClientMaterial {
    relu: Vec<bool>,
    b: Vec<u64>,
    /// Per position and chunk: the 4-bit pad of entry y_j.
    leaf_pads: Vec<u8>,
    /// Per position and tree OT: pad R_κ | κ << 2.
    tree: Vec<u8>,
    /// Per position: random choice κ (3 bits) and pad of the final OT.
    final_choice: Vec<u8>,
    final_pad: Vec<u64>,
    /// Per ReLU position: the two pads of the reverse OT (client sender).
    rev_pads: Vec<[u64; 2]>,
}

impl Drop for ClientMaterial {
    fn drop(&mut self) {
        self.b.zeroize();
        self.leaf_pads.zeroize();
        self.tree.zeroize();
        self.final_choice.zeroize();
        self.final_pad.zeroize();
        for p in &mut self.rev_pads {
            p.zeroize();
        }
    }
}

impl ClientMaterial {
    /// Builds the material from the random OTs (this side as receiver):
    /// `leaves`, the messages chosen by [`Schedule::client_leaf_choices`] on
    /// `b`; `choices` and `random`, the random choices and messages of the
    /// other OTs; and per ReLU position the pairs of the reverse OT (this
    /// side as sender).
    ///
    /// # Errors
    /// [`Error::BadInput`] if the lengths do not fit the schedule.
    pub fn new(
        sched: &Schedule,
        relu: Vec<bool>,
        b: Vec<u64>,
        leaves: &[Block],
        choices: &[bool],
        random: &[Block],
        rev_pairs: &[[Block; 2]],
    ) -> Result<Self> {
        let n = relu.len();
        let per = sched.rots_per_position();
        let (nl, nr) = (sched.leaf_rots, sched.random_rots_per_position());
        let n_relu = relu.iter().filter(|&&r| r).count();
        if b.len() != n
            || leaves.len() != n * nl
            || choices.len() != n * nr
            || random.len() != n * nr
            || rev_pairs.len() != n_relu
        {
            return Err(Error::BadInput(
                "OT ReLU: random OTs do not fit the layer".into(),
            ));
        }
        let mask = sched.ring.mask();
        let q = sched.chunks.len();
        let mut leaf_pads = vec![0u8; n * q];
        let mut final_choice = vec![0u8; n];
        let mut final_pad = vec![0u64; n];
        let mut h = PadHasher::new();
        for start in (0..n).step_by(PAD_BATCH) {
            let end = (start + PAD_BATCH).min(n);
            for (p, fc) in final_choice.iter_mut().enumerate().take(end).skip(start) {
                let base = p * per;
                for &(lo, w) in &sched.chunks {
                    let (g, k) = (base + lo as usize, p * nl + lo as usize);
                    for t in 0..w as usize {
                        h.push(leaves[k + t], g + t, 0);
                    }
                }
                let (g, k) = (base + sched.final_off(), p * nr + sched.tree_rots);
                let s = (0..FINAL_ROTS).fold(0usize, |s, t| s | (usize::from(choices[k + t]) << t));
                *fc = s as u8;
                for t in 0..FINAL_ROTS {
                    h.push(random[k + t], g + t, s);
                }
            }
            let out = h.run();
            let mut k = 0;
            for p in start..end {
                let y = sched.y(b[p]);
                for (j, &(lo, w)) in sched.chunks.iter().enumerate() {
                    let i = ((y >> lo) & ((1 << w) - 1)) as usize;
                    let mut v = 0u8;
                    for t in 0..w as usize {
                        v ^= leaf_pad_bits(out[k], i, t);
                        k += 1;
                    }
                    leaf_pads[p * q + j] = v;
                }
                let mut v = 0u64;
                for _ in 0..FINAL_ROTS {
                    v ^= out[k].0 as u64;
                    k += 1;
                }
                final_pad[p] = v & mask;
            }
        }
        let mut tree = Vec::with_capacity(n * sched.tree_rots);
        for p in 0..n {
            let g = p * nr;
            for j in g..g + sched.tree_rots {
                tree.push((random[j].0 & 3) as u8 | (u8::from(choices[j]) << 2));
            }
        }
        Ok(Self {
            relu,
            b,
            leaf_pads,
            tree,
            final_choice,
            final_pad,
            rev_pads: rev_pairs
                .iter()
                .map(|p| [p[0].0 as u64 & mask, p[1].0 as u64 & mask])
                .collect(),
        })
    }

    /// What [`Self::storage_bytes`] will count for a layer of `positions`
    /// positions of which `relus` keep their ReLU, from the schedule alone
    /// (a client budgets its pool with it before any offline phase): per
    /// position its ReLU flag, its share b, one leaf pad per chunk, one byte
    /// per tree OT, the final choice and pad; per ReLU position the two
    /// pads of the reverse OT.
    pub fn planned_storage_bytes(sched: &Schedule, positions: usize, relus: usize) -> u64 {
        let per_position = 1 + 8 + sched.chunks.len() + sched.tree_rots + 1 + 8;
        (positions * per_position + 16 * relus) as u64
    }

    /// Bytes held until the online phase.
    pub fn storage_bytes(&self) -> u64 {
        (self.relu.len()
            + 8 * self.b.len()
            + self.leaf_pads.len()
            + self.tree.len()
            + self.final_choice.len()
            + 8 * self.final_pad.len()
            + 16 * self.rev_pads.len()) as u64
    }
}

/// Shares of every tree node, node-major: bit of node v at position p is at
/// v·n + p.
struct NodeShares {
    gt: Vec<u8>,
    eq: Vec<u8>,
    n: usize,
}

impl NodeShares {
    fn new(nodes: usize, n: usize) -> Self {
        Self {
            gt: vec![0; nodes * n],
            eq: vec![0; nodes * n],
            n,
        }
    }
    fn gt(&self, v: usize, p: usize) -> u8 {
        self.gt[v * self.n + p]
    }
    fn eq(&self, v: usize, p: usize) -> u8 {
        self.eq[v * self.n + p]
    }
    fn set(&mut self, v: usize, p: usize, gt: u8, eq: u8) {
        self.gt[v * self.n + p] = gt;
        self.eq[v * self.n + p] = eq;
    }
}

impl Drop for NodeShares {
    fn drop(&mut self) {
        self.gt.zeroize();
        self.eq.zeroize();
    }
}

/// Where a party is in the online exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Level(usize),
    Final,
    Output,
    Done,
}

/// What the server does after a client message.
pub enum ServerStep {
    /// Send these bytes and wait for the next client message.
    Reply(Vec<u8>),
    /// The server's output shares act(z) − r, one per position.
    Done(Vec<u64>),
}

/// What the client does after a server message.
pub enum ClientStep {
    /// Send these bytes and wait for the next server message.
    Reply(Vec<u8>),
    /// Send these bytes; the client's part is over (its share is r).
    Last(Vec<u8>),
}

/// The server's side of one activation layer online (sans-IO).
pub struct ServerRun {
    sched: std::sync::Arc<Schedule>,
    mat: ServerMaterial,
    n: usize,
    n_relu: usize,
    shares: NodeShares,
    /// Per position and tree OT: the server's random output bits.
    rho: Vec<u8>,
    a_top: Vec<u8>,
    x_hi: Vec<u64>,
    rho_out: Vec<u64>,
    stage: Stage,
}

impl Drop for ServerRun {
    fn drop(&mut self) {
        self.rho.zeroize();
        self.a_top.zeroize();
        self.x_hi.zeroize();
        self.rho_out.zeroize();
    }
}

fn level_cross(op: &Op, k: usize, s: &NodeShares, p: usize) -> (u8, u8) {
    // (the server's bits multiplied by the client's choice, for message 1):
    // OT A: choice eq_hi^c, message bits (gt_lo^s, eq_lo^s);
    // OT B: choice gt_lo^c, message eq_hi^s; OT C: choice eq_lo^c, message eq_hi^s.
    match k {
        0 => (s.gt(op.lo, p), if op.eq { s.eq(op.lo, p) } else { 0 }),
        _ => (s.eq(op.hi, p), 0),
    }
}

impl ServerRun {
    /// Starts the layer on the server's shares `a` of the activation input:
    /// returns the state and the first message (leaf tables and reverse OT
    /// corrections).
    ///
    /// # Errors
    /// [`Error::BadInput`] if `a` does not fit the material.
    pub fn start(
        sched: std::sync::Arc<Schedule>,
        mat: ServerMaterial,
        a: &[u64],
    ) -> Result<(Self, Vec<u8>)> {
        let n = mat.relu.len();
        if a.len() != n {
            return Err(Error::BadInput(format!(
                "OT ReLU: {} shares for {n} positions",
                a.len()
            )));
        }
        let ring = sched.ring;
        let (l, f) = (ring.bits(), ring.frac());
        let mask = ring.mask();
        let half = 1u64 << (l - 1);
        let mut rng = crate::crypto::WipingRng::new(ChaCha20Rng::from_seed(mat.seed));
        let mut bits = RandBits::default();
        let mut shares = NodeShares::new(sched.n_nodes, n);
        let q = sched.chunks.len();
        for j in 0..q {
            for p in 0..n {
                let (g, e) = (bits.next(&mut rng), bits.next(&mut rng));
                shares.set(j, p, g, e);
            }
        }
        // The free level: random bits ρA (2), ρB, ρC per op and position,
        // and the server's shares of its outputs.
        let mut free_rho = vec![0u8; sched.free.len() * n];
        for (i, op) in sched.free.iter().enumerate() {
            for p in 0..n {
                let r = (0..4).fold(0u8, |r, k| r | (bits.next(&mut rng) << k));
                free_rho[i * n + p] = r;
                let gt = shares.gt(op.hi, p)
                    ^ (shares.eq(op.hi, p) & shares.gt(op.lo, p))
                    ^ (r & 1)
                    ^ ((r >> 2) & 1);
                let eq = if op.eq {
                    (shares.eq(op.hi, p) & shares.eq(op.lo, p)) ^ ((r >> 1) & 1) ^ (r >> 3)
                } else {
                    0
                };
                shares.set(op.out, p, gt, eq);
            }
        }
        let mut a_top = Vec::with_capacity(n);
        let mut x_hi = Vec::with_capacity(n);
        let mut table = BitWriter::with_bits(n * sched.table_bits);
        for p in 0..n {
            let a1 = a[p].wrapping_add(half) & mask;
            a_top.push((a1 >> (l - 1)) as u8);
            x_hi.push(a1 >> f);
            for (j, &(lo, w)) in sched.chunks.iter().enumerate() {
                let xj = (a1 >> lo) & ((1 << w) - 1);
                let (tg, te) = (shares.gt(j, p), shares.eq(j, p));
                let pads = &mat.leaf_pads[p * sched.leaf_entries + sched.entry_off[j]..];
                for i in 0..1u64 << w {
                    let (gc, ec) = (u8::from(xj > i) ^ tg, u8::from(xj == i) ^ te);
                    let mut v = gc | (ec << 1);
                    // The free op's cross terms: the client's share of this
                    // chunk (a function of its entry) times the server's
                    // share of the other operand, masked by ρ.
                    if let Some((k, hi)) = sched.role[j] {
                        let (op, r) = (&sched.free[k], free_rho[k * n + p]);
                        v |= if hi {
                            let (g, e) = (shares.gt(op.lo, p), shares.eq(op.lo, p));
                            (((ec & g) ^ r) & 1) | ((((ec & e) ^ (r >> 1)) & 1) << 1)
                        } else {
                            let e = shares.eq(op.hi, p);
                            (((gc & e) ^ (r >> 2)) & 1) | ((((ec & e) ^ (r >> 3)) & 1) << 1)
                        } << 2;
                    }
                    table.push(v ^ pads[i as usize], sched.entry_bits[j]);
                }
            }
        }
        free_rho.zeroize();
        // The server's shares of every node and its random output bits.
        let mut rho = vec![0u8; n * sched.tree_rots];
        for (t, ops) in sched.levels.iter().enumerate() {
            let off = sched.tree_off(t) - sched.leaf_rots;
            for op in ops {
                for p in 0..n {
                    let r = &mut rho[p * sched.tree_rots + off + op.rot..];
                    let (ra_gt, ra_eq) = (bits.next(&mut rng), bits.next(&mut rng));
                    let rb = bits.next(&mut rng);
                    r[0] = ra_gt | (ra_eq << 1);
                    r[1] = rb;
                    let gt = shares.gt(op.hi, p)
                        ^ (shares.eq(op.hi, p) & shares.gt(op.lo, p))
                        ^ ra_gt
                        ^ rb;
                    let mut eq = 0;
                    if op.eq {
                        let rc = bits.next(&mut rng);
                        r[2] = rc;
                        eq = (shares.eq(op.hi, p) & shares.eq(op.lo, p)) ^ ra_eq ^ rc;
                    }
                    shares.set(op.out, p, gt, eq);
                }
            }
        }
        let n_relu = mat.relu.iter().filter(|&&r| r).count();
        let mut rev = BitWriter::with_bits(n_relu);
        let mut k = 0;
        for (p, &top) in a_top.iter().enumerate() {
            if mat.relu[p] {
                let sigma = top ^ shares.gt(sched.e_node, p);
                rev.push(sigma ^ mat.rev_choice[k], 1);
                k += 1;
            }
        }
        let rho_out = (0..n).map(|_| rng.next_u64() & mask).collect();
        let mut msg = table.finish();
        msg.extend_from_slice(&rev.finish());
        let sched_levels_empty = sched.levels.is_empty();
        Ok((
            Self {
                sched,
                mat,
                n,
                n_relu,
                shares,
                rho,
                a_top,
                x_hi,
                rho_out,
                stage: if sched_levels_empty {
                    Stage::Final
                } else {
                    Stage::Level(0)
                },
            },
            msg,
        ))
    }

    /// Bytes of the client message expected next (0 once done).
    pub fn incoming_len(&self) -> usize {
        let ring = self.sched.ring;
        match self.stage {
            Stage::Level(t) => (self.n * self.sched.level_rots[t]).div_ceil(8),
            Stage::Final => (self.n * FINAL_ROTS).div_ceil(8),
            Stage::Output => ring::packed_len(self.n + self.n_relu, ring).unwrap_or(usize::MAX),
            Stage::Done => 0,
        }
    }

    /// Consumes the client's next message.
    ///
    /// # Errors
    /// [`Error::PeerMisbehaved`] for a message of the wrong size or with
    /// padding bits set; [`Error::BadInput`] if called after the end.
    pub fn step(&mut self, msg: &[u8]) -> Result<ServerStep> {
        let sched = self.sched.clone();
        let n = self.n;
        match self.stage {
            Stage::Level(t) => {
                let rots = sched.level_rots[t];
                let mut rd = BitReader::new(msg, n * rots, "OT ReLU corrections")?;
                let mut out = BitWriter::with_bits(n * rots * 4);
                let off = sched.tree_off(t) - sched.leaf_rots;
                for p in 0..n {
                    for op in &sched.levels[t] {
                        for k in 0..op.rots() {
                            let idx = p * sched.tree_rots + off + op.rot + k;
                            let d = rd.read(1);
                            let r = self.rho[idx];
                            let (c1, c2) = level_cross(op, k, &self.shares, p);
                            let m0 = r;
                            let m1 = r ^ (c1 | (c2 << 1));
                            let pad = self.mat.tree_pads[idx];
                            let pads = [pad & 3, pad >> 2];
                            out.push(m0 ^ pads[d as usize], 2);
                            out.push(m1 ^ pads[(d ^ 1) as usize], 2);
                        }
                    }
                }
                self.stage = if t + 1 < sched.levels.len() {
                    Stage::Level(t + 1)
                } else {
                    Stage::Final
                };
                Ok(ServerStep::Reply(out.finish()))
            }
            Stage::Final => {
                let ring = sched.ring;
                let (l, f) = (ring.bits(), ring.frac());
                let mask = ring.mask();
                let wrap = 1u64 << (l - f);
                let bias = 1u64 << (l - 1 - f);
                let mut rd = BitReader::new(msg, n * FINAL_ROTS, "OT ReLU final correction")?;
                let mut vals = Vec::with_capacity(8 * n);
                for p in 0..n {
                    let d = rd.read(FINAL_ROTS) as usize;
                    let (e_s, c_s) = (
                        self.shares.gt(sched.e_node, p),
                        self.shares.gt(sched.low_root, p),
                    );
                    let at = self.a_top[p];
                    for s in 0..8usize {
                        let (e, c, bt) = (
                            e_s ^ (s & 1) as u8,
                            c_s ^ ((s >> 1) & 1) as u8,
                            (s >> 2) as u8,
                        );
                        let w = (at & bt) | (at & e) | (bt & e);
                        let t = self.x_hi[p]
                            .wrapping_add(u64::from(c))
                            .wrapping_sub(u64::from(w) * wrap)
                            .wrapping_sub(bias);
                        let dv = if self.mat.relu[p] {
                            u64::from(at ^ bt ^ e)
                        } else {
                            1
                        };
                        let m = dv.wrapping_mul(t).wrapping_sub(self.rho_out[p]) & mask;
                        vals.push(m ^ self.mat.final_pads[p * 8 + (s ^ d)]);
                    }
                }
                self.stage = Stage::Output;
                let out = ring::pack(&vals, ring);
                vals.zeroize();
                Ok(ServerStep::Reply(out))
            }
            Stage::Output => {
                let ring = sched.ring;
                let mut vals = ring::unpack(msg, n + self.n_relu, ring, "OT ReLU output")?;
                let mut out = Vec::with_capacity(n);
                let (mut i, mut k) = (0, 0);
                for p in 0..n {
                    let v = if self.mat.relu[p] {
                        let sigma = (self.a_top[p] ^ self.shares.gt(sched.e_node, p)) as usize;
                        let v = vals[i + sigma] ^ self.mat.rev_pad[k];
                        i += 2;
                        k += 1;
                        v
                    } else {
                        i += 1;
                        vals[i - 1]
                    };
                    out.push(v.wrapping_add(self.rho_out[p]) & ring.mask());
                }
                vals.zeroize();
                self.stage = Stage::Done;
                Ok(ServerStep::Done(out))
            }
            Stage::Done => Err(Error::BadInput("OT ReLU: the layer is already done".into())),
        }
    }
}

/// The client's side of one activation layer online (sans-IO).
pub struct ClientRun {
    sched: std::sync::Arc<Schedule>,
    mat: ClientMaterial,
    r: Vec<u64>,
    n: usize,
    n_relu: usize,
    shares: NodeShares,
    rev_corr: Vec<u8>,
    /// The true choice of the final OT per position.
    sigma: Vec<u8>,
    stage: Stage,
    started: bool,
}

impl Drop for ClientRun {
    fn drop(&mut self) {
        self.r.zeroize();
        self.sigma.zeroize();
    }
}

impl ClientRun {
    /// Prepares the layer; `r` is the client's offline mask of the output
    /// (its final share).
    ///
    /// # Errors
    /// [`Error::BadInput`] if `r` does not fit the material.
    pub fn new(sched: std::sync::Arc<Schedule>, mat: ClientMaterial, r: Vec<u64>) -> Result<Self> {
        let n = mat.relu.len();
        if r.len() != n {
            return Err(Error::BadInput(format!(
                "OT ReLU: {} masks for {n} positions",
                r.len()
            )));
        }
        let n_relu = mat.relu.iter().filter(|&&x| x).count();
        let shares = NodeShares::new(sched.n_nodes, n);
        Ok(Self {
            sched,
            mat,
            r,
            n,
            n_relu,
            shares,
            rev_corr: Vec::new(),
            sigma: Vec::new(),
            stage: Stage::Level(0),
            started: false,
        })
    }

    /// Bytes of the server message expected next (0 once done).
    pub fn incoming_len(&self) -> usize {
        let n = self.n;
        if !self.started {
            return self.sched.table_bytes(n) + self.n_relu.div_ceil(8);
        }
        match self.stage {
            Stage::Level(t) => (n * self.sched.level_rots[t] * 4).div_ceil(8),
            Stage::Final => ring::packed_len(8 * n, self.sched.ring).unwrap_or(usize::MAX),
            Stage::Output | Stage::Done => 0,
        }
    }

    /// The correction bits of level `t`'s OTs.
    fn corrections(&self, t: usize) -> Vec<u8> {
        let sched = &self.sched;
        let mut out = BitWriter::with_bits(self.n * sched.level_rots[t]);
        let off = sched.tree_off(t) - sched.leaf_rots;
        for p in 0..self.n {
            for op in &sched.levels[t] {
                for k in 0..op.rots() {
                    let kappa = self.mat.tree[p * sched.tree_rots + off + op.rot + k] >> 2;
                    out.push(self.choice(op, k, p) ^ kappa, 1);
                }
            }
        }
        out.finish()
    }

    /// The correction of the final 1-of-8 OT: true choice (e_c, c_c, B).
    fn final_choice_msg(&mut self) -> Vec<u8> {
        let (sched, n) = (&self.sched, self.n);
        let l = sched.ring.bits();
        let mut out = BitWriter::with_bits(n * FINAL_ROTS);
        self.sigma = Vec::with_capacity(n);
        for p in 0..n {
            let s = self.shares.gt(sched.e_node, p)
                | (self.shares.gt(sched.low_root, p) << 1)
                | (((self.mat.b[p] >> (l - 1)) as u8 & 1) << 2);
            self.sigma.push(s);
            out.push(s ^ self.mat.final_choice[p], FINAL_ROTS);
        }
        out.finish()
    }

    fn choice(&self, op: &Op, k: usize, p: usize) -> u8 {
        match k {
            0 => self.shares.eq(op.hi, p),
            1 => self.shares.gt(op.lo, p),
            _ => self.shares.eq(op.lo, p),
        }
    }

    /// Consumes the server's next message.
    ///
    /// # Errors
    /// [`Error::PeerMisbehaved`] for a message of the wrong size or with
    /// padding bits set; [`Error::BadInput`] if called after the end.
    pub fn step(&mut self, msg: &[u8]) -> Result<ClientStep> {
        let sched = self.sched.clone();
        let n = self.n;
        if !self.started {
            let tb = sched.table_bytes(n);
            if msg.len() != tb + self.n_relu.div_ceil(8) {
                return Err(Error::malformed("OT ReLU: leaf message of the wrong size"));
            }
            let mut rd = BitReader::new(&msg[..tb], n * sched.table_bits, "OT ReLU leaves")?;
            let mut rev = BitReader::new(&msg[tb..], self.n_relu, "OT ReLU reverse corrections")?;
            let q = sched.chunks.len();
            let mut entry = vec![0u8; sched.leaf_entries];
            let mut extra = vec![0u8; q];
            for p in 0..n {
                for (j, &(_, w)) in sched.chunks.iter().enumerate() {
                    for e in &mut entry[sched.entry_off[j]..sched.entry_off[j] + (1 << w)] {
                        *e = rd.read(sched.entry_bits[j]);
                    }
                }
                let y = sched.y(self.mat.b[p]);
                for (j, &(lo, w)) in sched.chunks.iter().enumerate() {
                    let i = ((y >> lo) & ((1 << w) - 1)) as usize;
                    let v = entry[sched.entry_off[j] + i] ^ self.mat.leaf_pads[p * q + j];
                    self.shares.set(j, p, v & 1, (v >> 1) & 1);
                    extra[j] = (v >> 2) & 3;
                }
                for op in &sched.free {
                    let (s, (hi, lo)) = (&self.shares, (op.hi, op.lo));
                    let gt = s.gt(hi, p)
                        ^ (s.eq(hi, p) & s.gt(lo, p))
                        ^ (extra[hi] & 1)
                        ^ (extra[lo] & 1);
                    let eq = if op.eq {
                        (s.eq(hi, p) & s.eq(lo, p)) ^ (extra[hi] >> 1) ^ (extra[lo] >> 1)
                    } else {
                        0
                    };
                    self.shares.set(op.out, p, gt, eq);
                }
                if self.mat.relu[p] {
                    self.rev_corr.push(rev.read(1));
                }
            }
            entry.zeroize();
            extra.zeroize();
            self.started = true;
            if sched.levels.is_empty() {
                self.stage = Stage::Final;
                return Ok(ClientStep::Reply(self.final_choice_msg()));
            }
            return Ok(ClientStep::Reply(self.corrections(0)));
        }
        match self.stage {
            Stage::Level(t) => {
                let rots = sched.level_rots[t];
                let mut rd = BitReader::new(msg, n * rots * 4, "OT ReLU tree messages")?;
                let off = sched.tree_off(t) - sched.leaf_rots;
                let mut got = [0u8; 3];
                for p in 0..n {
                    for op in &sched.levels[t] {
                        for (k, g) in got.iter_mut().enumerate().take(op.rots()) {
                            let e = [rd.read(2), rd.read(2)];
                            let c = self.choice(op, k, p);
                            let pad = self.mat.tree[p * sched.tree_rots + off + op.rot + k] & 3;
                            *g = e[c as usize] ^ pad;
                        }
                        let (s, (hi, lo)) = (&self.shares, (op.hi, op.lo));
                        let gt =
                            s.gt(hi, p) ^ (s.eq(hi, p) & s.gt(lo, p)) ^ (got[0] & 1) ^ (got[1] & 1);
                        let eq = if op.eq {
                            (s.eq(hi, p) & s.eq(lo, p)) ^ (got[0] >> 1) ^ (got[2] & 1)
                        } else {
                            0
                        };
                        self.shares.set(op.out, p, gt, eq);
                    }
                }
                got.zeroize();
                if t + 1 < sched.levels.len() {
                    self.stage = Stage::Level(t + 1);
                    return Ok(ClientStep::Reply(self.corrections(t + 1)));
                }
                self.stage = Stage::Final;
                Ok(ClientStep::Reply(self.final_choice_msg()))
            }
            Stage::Final => {
                let ring = sched.ring;
                let (l, f, mask) = (ring.bits(), ring.frac(), ring.mask());
                let mut vals = ring::unpack(msg, 8 * n, ring, "OT ReLU final messages")?;
                let mut out = Vec::with_capacity(n + self.n_relu);
                let mut k = 0;
                for p in 0..n {
                    let s = self.sigma[p] as usize;
                    let v = vals[8 * p + s] ^ self.mat.final_pad[p];
                    let b = self.mat.b[p];
                    let bhi = b >> f;
                    if self.mat.relu[p] {
                        let sigma_c = ((b >> (l - 1)) & 1) as u8 ^ (s & 1) as u8;
                        let d = self.rev_corr[k];
                        for j in 0..2u8 {
                            let nj = u64::from(j ^ sigma_c)
                                .wrapping_mul(bhi)
                                .wrapping_add(v)
                                .wrapping_sub(self.r[p])
                                & mask;
                            out.push(nj ^ self.mat.rev_pads[k][(j ^ d) as usize]);
                        }
                        k += 1;
                    } else {
                        out.push(bhi.wrapping_add(v).wrapping_sub(self.r[p]) & mask);
                    }
                }
                vals.zeroize();
                let msg = ring::pack(&out, ring);
                out.zeroize();
                self.stage = Stage::Done;
                Ok(ClientStep::Last(msg))
            }
            Stage::Output | Stage::Done => {
                Err(Error::BadInput("OT ReLU: the layer is already done".into()))
            }
        }
    }
}
