//! SoftSpoken OT extension (Roy, CRYPTO 2022), semi-honest, with K = 8:
//! the same correlated OTs as IKNP from the same base OTs, for 2 bytes of
//! traffic per OT instead of 16. It extends the batch that bootstraps
//! silent OT ([`crate::ot::silent`]).
//!
//! IKNP gets each of its κ columns from one 1-of-2 base OT. SoftSpoken
//! groups the κ bits of Δ into κ/K chunks and gets K columns per chunk
//! from one *small-field VOLE*:
//! - a (2^K − 1)-of-2^K OT: the receiver (of the extension) draws a GGM
//!   tree of 2^K leaves L_x per chunk and, for each level ℓ, sends both
//!   sums of that level's nodes (branch 0, branch 1), each masked by a pad
//!   from the base OT of column 8c + ℓ on the *other* branch. The sender
//!   holds the pad of branch Δ_(8c+ℓ) only, so it learns the sums of the
//!   branches off the path δ (the chunk's bits of Δ) and with them every
//!   leaf but L_δ (a punctured PRF);
//! - with g_x = G(L_x) the leaf's PRG stream over the batch: the receiver
//!   has u = ⊕_x g_x and, for bit b of the chunk, v_b = ⊕_{x_b = 1} g_x;
//!   it sends u ⊕ r (r its choice bits) and keeps t^(8c+b) = v_b. The
//!   sender has w_b = ⊕_{(x ⊕ δ)_b = 1} g_x, which never needs L_δ, and
//!   w_b = v_b ⊕ δ_b·u; so q^(8c+b) = w_b ⊕ δ_b·(u ⊕ r) = t^(8c+b) ⊕ Δ_(8c+b)·r,
//!   IKNP's column relation. The rest (transposition, rows q_j = t_j ⊕
//!   r_j·Δ, the OT index space and hash tweaks) is IKNP's, so a batch is a
//!   [`SenderBatch`] / [`ReceiverBatch`] like any other.
//!
//! Security (semi-honest, as IKNP here): the sender sees u ⊕ r, one-time
//! padded by g_δ, a PRG stream under a leaf it does not know; the receiver
//! receives nothing. Each batch draws fresh trees, and its pads come from a
//! PRG block of every base OT reserved from the session's counter, so no
//! pad, leaf or PRG block serves two batches. The GGM tree uses the
//! correlation-robust hash of [`FixedKeyAes::cr_many`] under two public
//! keys as its length-doubling PRG (ideal-permutation model).
//!
//! Cost per batch of n OTs: one message of 4 KiB (the trees) plus 2 bytes
//! per OT (κ/K = 16 columns of n bits); 2^K PRG streams of n bits per chunk
//! for each party, κ·2^K/K = 4,096 in all, against IKNP's 128 and 256.

use super::receiver::ReceiverKeys;
use super::sender::SenderKeys;
use super::*;

/// Bits of Δ per small-field VOLE (SoftSpoken's k): a tree of 2^K leaves.
pub const K: usize = 8;

/// Chunks of Δ, each with its own tree and message column.
const CHUNKS: usize = KAPPA / K;

/// Leaves of one tree.
const LEAVES: usize = 1 << K;

/// Bytes of the trees' part of a message: both level sums, every level.
const TREE_BYTES: usize = CHUNKS * K * 2 * 16;

/// Public keys of the tree PRG, one per branch: the first 16 bytes of
/// SHA-256("pi-runtime softspoken left") and ("... right"). Any fixed,
/// distinct public keys work in the ideal-permutation model.
const GGM_KEYS: [[u8; 16]; 2] = [
    [
        0x5c, 0x0e, 0x8f, 0x3a, 0x91, 0x27, 0x64, 0xd2, 0x1b, 0x4f, 0xa8, 0x76, 0x3d, 0xc5, 0x02,
        0x9e,
    ],
    [
        0xe3, 0x49, 0x71, 0x0c, 0xb6, 0x58, 0x2a, 0x9f, 0x64, 0x17, 0xd3, 0x8b, 0x40, 0xfe, 0x25,
        0x6a,
    ],
];

/// The receiver's message of one SoftSpoken batch: the masked level sums of
/// every tree, then the κ/K columns u ⊕ r.
pub struct SoftMsg {
    n: usize,
    bytes: Vec<u8>,
}

impl SoftMsg {
    /// Wire size of the message for `n` OTs.
    pub fn byte_len(n: usize) -> usize {
        TREE_BYTES + CHUNKS * blocks_for(n) * 16
    }

    /// Number of OTs.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The wire encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes the message of a batch of `n` OTs; any other length is the
    /// peer's fault.
    pub fn from_vec(bytes: Vec<u8>, n: usize) -> Result<Self> {
        check_batch(n)?;
        if bytes.len() != Self::byte_len(n) {
            return Err(Error::malformed(format!(
                "SoftSpoken message: expected {} bytes for {n} OTs, got {}",
                Self::byte_len(n),
                bytes.len()
            )));
        }
        Ok(Self { n, bytes })
    }
}

/// The two children of every node of `nodes[..parents]`, in place: node y
/// becomes its branch-0 child and y + parents its branch-1 child. Returns
/// the sums of the branch-0 and the branch-1 children.
fn expand_level(prg: &[FixedKeyAes; 2], nodes: &mut [Block], parents: usize) -> [Block; 2] {
    let (low, high) = nodes[..2 * parents].split_at_mut(parents);
    high.copy_from_slice(low);
    prg[0].cr_many(low);
    prg[1].cr_many(high);
    let sum = |xs: &[Block]| xs.iter().fold(Block::ZERO, |a, &x| a ^ x);
    [sum(low), sum(high)]
}

fn tree_prg() -> [FixedKeyAes; 2] {
    GGM_KEYS.map(FixedKeyAes::with_key)
}

/// `acc[b] ^= g` for every bit b of `x` (acc: K columns of `g.len()` blocks).
fn add_to_columns(acc: &mut [Block], x: usize, g: &[Block]) {
    for (b, col) in acc.chunks_exact_mut(g.len()).enumerate() {
        if (x >> b) & 1 == 1 {
            for (a, &v) in col.iter_mut().zip(g) {
                *a ^= v;
            }
        }
    }
}

/// g = G(leaf) over `g.len()` blocks: AES under the leaf in counter mode.
fn leaf_stream(leaf: Block, g: &mut [Block]) {
    expand(&FixedKeyAes::with_key(leaf.to_bytes()), 0, g);
}

impl Receiver {
    /// Reserves a SoftSpoken batch of `n` OTs: one PRG block of every base
    /// OT for the pads, and `n` OT indices, all from the session's counter.
    pub fn begin_soft(&mut self, n: usize) -> Result<SoftReceiverExtension> {
        check_batch(n)?;
        let first_block = self.next_block;
        self.next_block += 1 + blocks_for(n) as u64;
        Ok(SoftReceiverExtension {
            keys: Arc::clone(&self.keys),
            first_block,
            n,
        })
    }
}

/// The receiver's share of one SoftSpoken batch (`Send + 'static`).
pub struct SoftReceiverExtension {
    keys: Arc<ReceiverKeys>,
    first_block: u64,
    n: usize,
}

impl SoftReceiverExtension {
    /// Draws the trees, builds the message for the choice bits and keeps
    /// the rows t_j.
    pub fn run<R: CryptoRng + ?Sized>(
        self,
        choices: &[bool],
        rng: &mut R,
    ) -> Result<(ReceiverBatch, SoftMsg)> {
        if choices.len() != self.n {
            return Err(Error::BadInput(format!(
                "{} choice bits for a SoftSpoken batch of {} OTs",
                choices.len(),
                self.n
            )));
        }
        let nblk = blocks_for(self.n);
        let r = pack_choices(choices, nblk);
        let prg = tree_prg();
        let mut bytes = Vec::with_capacity(SoftMsg::byte_len(self.n));
        let mut leaves = vec![Block::ZERO; CHUNKS * LEAVES];
        let mut pad = [Block::ZERO; 2];
        for (c, tree) in leaves.chunks_exact_mut(LEAVES).enumerate() {
            tree[0] = Block::random(rng);
            for level in 0..K {
                let i = c * K + level;
                expand(&self.keys.prg0[i], self.first_block, &mut pad[..1]);
                expand(&self.keys.prg1[i], self.first_block, &mut pad[1..]);
                let sums = expand_level(&prg, tree, 1 << level);
                // Branch b's sum under the pad of the other branch.
                bytes.extend_from_slice(&(sums[0] ^ pad[1]).to_bytes());
                bytes.extend_from_slice(&(sums[1] ^ pad[0]).to_bytes());
            }
        }
        pad.zeroize();
        let mut rows = Vec::new();
        with_columns(KAPPA * nblk + 2 * nblk, |scratch| {
            let (t, rest) = scratch.split_at_mut(KAPPA * nblk);
            let (u, g) = rest.split_at_mut(nblk);
            for (tree, v) in leaves
                .chunks_exact(LEAVES)
                .zip(t.chunks_exact_mut(K * nblk))
            {
                u.fill(Block::ZERO);
                for (x, &leaf) in tree.iter().enumerate() {
                    leaf_stream(leaf, g);
                    for (a, &b) in u.iter_mut().zip(g.iter()) {
                        *a ^= b;
                    }
                    add_to_columns(v, x, g);
                }
                for (a, b) in u.iter().zip(&r) {
                    bytes.extend_from_slice(&(*a ^ *b).to_bytes());
                }
            }
            transpose(t, nblk, &mut rows);
        });
        leaves.zeroize();
        rows.truncate(self.n);
        let batch = ReceiverBatch {
            nonce: self.keys.nonce,
            first_index: (self.first_block + 1) * TILE as u64,
            choices: r,
            rows,
        };
        Ok((batch, SoftMsg { n: self.n, bytes }))
    }
}

impl Sender {
    /// Reserves a SoftSpoken batch of `n` OTs (see [`Receiver::begin_soft`];
    /// both parties reserve the same blocks).
    pub fn begin_soft(&mut self, n: usize) -> Result<SoftSenderExtension> {
        check_batch(n)?;
        let first_block = self.next_block;
        self.next_block += 1 + blocks_for(n) as u64;
        Ok(SoftSenderExtension {
            keys: Arc::clone(&self.keys),
            first_block,
            n,
        })
    }
}

/// The sender's share of one SoftSpoken batch (`Send + 'static`).
pub struct SoftSenderExtension {
    keys: Arc<SenderKeys>,
    first_block: u64,
    n: usize,
}

impl SoftSenderExtension {
    /// Punctures the trees at Δ and builds the rows q_j from the message.
    pub fn finish(self, msg: &SoftMsg) -> Result<SenderBatch> {
        if msg.n != self.n {
            return Err(Error::BadInput(format!(
                "SoftSpoken batch reserved for {} OTs, message decoded for {}",
                self.n, msg.n
            )));
        }
        let nblk = blocks_for(self.n);
        let delta = self.keys.delta;
        let (tree_msg, columns) = msg.bytes.split_at(TREE_BYTES);
        let prg = tree_prg();
        let mut leaves = vec![Block::ZERO; CHUNKS * LEAVES];
        let mut pad = [Block::ZERO; 1];
        for (c, (tree, sums)) in leaves
            .chunks_exact_mut(LEAVES)
            .zip(tree_msg.chunks_exact(K * 32))
            .enumerate()
        {
            let chunk_delta = (delta.0 >> (c * K)) as usize & (LEAVES - 1);
            for level in 0..K {
                let i = c * K + level;
                expand(&self.keys.prgs[i], self.first_block, &mut pad);
                // The path node p of this level, zero (unknown) so far.
                let p = chunk_delta & ((1 << level) - 1);
                let known = expand_level(&prg, tree, 1 << level);
                let on_path = (chunk_delta >> level) & 1;
                let off = 1 - on_path;
                // The children of p are not known: remove their garbage.
                let (pc_on, pc_off) = (p + (on_path << level), p + (off << level));
                let garbage_off = tree[pc_off];
                tree[pc_on] = Block::ZERO;
                let sent = read_block(&sums[level * 32 + off * 16..][..16]);
                tree[pc_off] = sent ^ pad[0] ^ known[off] ^ garbage_off;
            }
        }
        pad.zeroize();
        let mut rows = Vec::new();
        with_columns(KAPPA * nblk + nblk, |scratch| {
            let (q, g) = scratch.split_at_mut(KAPPA * nblk);
            for (c, ((tree, w), col)) in leaves
                .chunks_exact(LEAVES)
                .zip(q.chunks_exact_mut(K * nblk))
                .zip(columns.chunks_exact(16 * nblk))
                .enumerate()
            {
                let chunk_delta = (delta.0 >> (c * K)) as usize & (LEAVES - 1);
                for (x, &leaf) in tree.iter().enumerate() {
                    if x != chunk_delta {
                        leaf_stream(leaf, g);
                        add_to_columns(w, x ^ chunk_delta, g);
                    }
                }
                for (b, wb) in w.chunks_exact_mut(nblk).enumerate() {
                    let s = mask((chunk_delta >> b) & 1 == 1);
                    for (a, u) in wb.iter_mut().zip(col.chunks_exact(16)) {
                        *a ^= read_block(u) & s;
                    }
                }
            }
            transpose(q, nblk, &mut rows);
        });
        leaves.zeroize();
        rows.truncate(self.n);
        Ok(SenderBatch {
            delta,
            nonce: self.keys.nonce,
            first_index: (self.first_block + 1) * TILE as u64,
            rows,
        })
    }
}
