//! The leaf pads: 1-out-of-2^m OT pads hashed from m random 1-of-2 OTs.

use super::*;

/// Hashes (key, tweak) pairs in batches: the pads of 1-of-2^w OTs built
/// from w random OTs.
pub(super) struct PadHasher {
    pub(super) aes: FixedKeyAes,
    pub(super) xs: Vec<Block>,
    pub(super) tweaks: Vec<Block>,
    pub(super) out: Vec<Block>,
}

impl PadHasher {
    pub(super) fn new() -> Self {
        Self {
            aes: FixedKeyAes::new(),
            xs: Vec::new(),
            tweaks: Vec::new(),
            out: Vec::new(),
        }
    }
    /// The tweak of entry `entry` under random OT number `rot` of the batch.
    pub(super) fn tweak(rot: usize, entry: usize) -> Block {
        Block(((rot as u128) << 16) | entry as u128 | crate::crypto::tweak::RELU_OT)
    }
    pub(super) fn push(&mut self, key: Block, rot: usize, entry: usize) {
        self.xs.push(key);
        self.tweaks.push(Self::tweak(rot, entry));
    }
    /// Hashes everything pushed; returns the outputs in push order.
    pub(super) fn run(&mut self) -> &[Block] {
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
pub(super) fn leaf_pad_bits(h: Block, i: usize, t: usize) -> u8 {
    let slot = (i & ((1 << t) - 1)) | ((i >> (t + 1)) << t);
    ((h.0 >> (4 * slot)) & 15) as u8
}

const _: () = assert!(
    CHUNK_BITS <= 6,
    "4-bit slots of 2^(m-1) entries must fit a block"
);

/// Positions hashed per batch while deriving pads.
pub(super) const PAD_BATCH: usize = 256;
