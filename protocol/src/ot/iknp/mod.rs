//! IKNP OT extension (Ishai, Kilian, Nissim and Petrank, CRYPTO 2003) with
//! the optimisations of Asharov, Lindell, Schneider and Zohner (CCS 2013):
//! the base OTs are *random* OTs that seed a PRG, and the receiver sends only
//! the matrix U (κ·m bits for m OTs), not two matrices.
//!
//! Roles are reversed in the base phase: the extension receiver is the base
//! OT sender (it holds both seeds k_i^0, k_i^1 of every column i < κ) and
//! the extension sender is the base OT receiver with choice bits s = Δ.
//!
//! One extension of m OTs with receiver choices r ∈ {0,1}^m:
//! - receiver: t^i = G(k_i^0), u^i = t^i ⊕ G(k_i^1) ⊕ r for every column
//!   i, sends U = (u^0..u^127);
//! - sender: q^i = G(k_i^{s_i}) ⊕ s_i·u^i = t^i ⊕ s_i·r;
//! - both transpose: row j gives q_j = t_j ⊕ r_j·Δ.
//!
//! From there (index j is global, never reused within a session):
//! - *correlated OT* (the output of the extension itself): the sender gets
//!   m0_j = q_j and m1_j = q_j ⊕ Δ, the receiver t_j = m_{r_j}. With Δ set
//!   to the garbler's free-XOR offset these are garbled-circuit input labels
//!   at no extra cost (as in the COT functionality of Ferret/KOS);
//! - *random OT*: sender (H(j, q_j), H(j, q_j ⊕ Δ)), receiver H(j, t_j);
//! - *chosen-message OT*: the sender also sends y_j^b = x_j^b ⊕ H(j, q_j ⊕ bΔ)
//!   and the receiver unmasks y_j^{r_j} with H(j, t_j).
//!
//! G is AES-128 in counter mode keyed by the base OT seed; the counter runs
//! on across extensions so no PRG block is used twice. H is the tweakable
//! circular correlation-robust hash TCCR of Guo, Katz, Wang and Yu (IEEE S&P
//! 2020) with the OT index as tweak, which gives multi-instance security
//! without a per-OT key schedule. The tweak also carries a 48-bit session
//! nonce (see [`Sender::session_nonce`]) so that tweaks differ across
//! sessions too, and an OT-only domain tag in its top bits.
//!
//! The state machines do no IO. Extensions are split into a cheap
//! bookkeeping step on `&mut self` ([`Sender::begin`], [`Receiver::begin`])
//! and an owned, `Send + 'static` work item that can run on another thread.

use std::cell::RefCell;
use std::sync::Arc;

use rand_core::CryptoRng;
use zeroize::Zeroize;

use super::base;
use super::transpose::{TILE, transpose};
use crate::crypto::{AES_BATCH, Block, FixedKeyAes};
use crate::{Error, Result};

mod receiver;
mod sender;
mod softspoken;
#[cfg(test)]
mod tests;

pub use receiver::{Receiver, ReceiverBatch, ReceiverExtension, ReceiverSetup};
pub use sender::{Sender, SenderBatch, SenderExtension};
pub use softspoken::{SoftMsg, SoftReceiverExtension, SoftSenderExtension};

/// Computational security parameter κ: the number of base OTs and the width
/// of the IKNP matrix (128-bit security, docs/ARCHITECTURE.md §4).
pub const KAPPA: usize = 128;

/// Largest number of OTs in one extension message (U is 16 bytes per OT, so
/// at most 16 MiB). Drivers split larger batches into
/// [`super::driver::CHUNK`]-sized extensions.
pub const MAX_BATCH: usize = 1 << 20;

/// Domain tag in the top 16 bits of every OT hash tweak ("OT"). Its bit 127
/// is clear, so OT hashes never share a tweak with garbled-gate hashes under
/// the same Δ: those set bit 127 ([`crate::crypto::tweak`]).
const TWEAK_DOMAIN: u128 = crate::crypto::tweak::IKNP;

/// Bits of the session nonce, held in tweak bits 64..112.
const NONCE_BITS: u32 = 48;

/// Tweak of OT `index` in the session with nonce `nonce` (< 2^48): domain
/// in bits 112..128, nonce in bits 64..112, index in bits 0..64.
fn tweak(nonce: u64, index: u64) -> Block {
    debug_assert!(nonce >> NONCE_BITS == 0);
    Block(TWEAK_DOMAIN | ((nonce as u128) << 64) | index as u128)
}

/// The session nonce from the two base OT messages: 24 bits from the
/// receiver's point A and 24 from the sender's first point B_0 (bytes 1..4
/// of each encoding, skipping the canonical-encoding bit 0 of byte 0), so
/// it is fresh if either party is honest. Public; both parties know it
/// after setup without another message.
fn session_nonce(a: &[u8], b: &[u8]) -> u64 {
    let take = |x: &[u8]| {
        x[1..4]
            .iter()
            .rev()
            .fold(0u64, |acc, &v| (acc << 8) | v as u64)
    };
    (take(a) << 24) | take(b)
}

fn check_batch(n: usize) -> Result<()> {
    if n == 0 || n > MAX_BATCH {
        return Err(Error::BadInput(format!(
            "OT extension of {n} OTs: must be in 1..={MAX_BATCH}"
        )));
    }
    Ok(())
}

/// 128-bit blocks per column for `n` OTs (rows are padded to a multiple of 128).
fn blocks_for(n: usize) -> usize {
    n.div_ceil(TILE)
}

/// G(k) from PRG block `first`: `out[k] = AES_seed(first + k)`.
fn expand(prg: &FixedKeyAes, first: u64, out: &mut [Block]) {
    for (k, o) in out.iter_mut().enumerate() {
        *o = Block((first + k as u64) as u128);
    }
    prg.permute_many(out);
}

/// Choice bits packed 128 per block, bit j of block j / 128 (padding bits
/// zero): r of one extension.
fn pack_choices(choices: &[bool], nblk: usize) -> Vec<Block> {
    let mut r = vec![Block::ZERO; nblk];
    for (blk, bits) in r.iter_mut().zip(choices.chunks(TILE)) {
        blk.0 = bits
            .iter()
            .rev()
            .fold(0u128, |acc, &b| (acc << 1) | b as u128);
    }
    r
}

/// An all-ones block if `bit`, else zero.
fn mask(bit: bool) -> Block {
    Block((bit as u128).wrapping_neg())
}

fn read_block(bytes: &[u8]) -> Block {
    Block::from_bytes(bytes.try_into().expect("16-byte chunk"))
}

thread_local! {
    /// Per-thread scratch for the κ columns of one extension. Reusing it
    /// avoids fresh page-faulting allocations per chunk; it is cleared after
    /// every use, so no secret column outlives its extension.
    static COLUMNS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a zeroed scratch of `len` blocks, then zeroes it again (so
/// the next use finds it zeroed without another pass).
fn with_columns<T>(len: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    COLUMNS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < len {
            c.resize(len, Block::ZERO);
        }
        let out = f(&mut c[..len]);
        c[..len].fill(Block::ZERO);
        out
    })
}

/// In place: `xs[j] = TCCR(xs[j], tweak(first + j))` (Guo et al. 2020).
fn tccr_in_place(h: &FixedKeyAes, nonce: u64, first: u64, xs: &mut [Block]) {
    h.tccr_in_place_with(xs, |j| tweak(nonce, first + j as u64));
}

/// Calls `f(j, H(j, q_j), H(j, q_j ⊕ Δ))` for every row, hashing both
/// messages of 128 OTs per AES call.
fn tccr_both(
    h: &FixedKeyAes,
    nonce: u64,
    first: u64,
    delta: Block,
    rows: &[Block],
    mut f: impl FnMut(usize, Block, Block),
) {
    const HALF: usize = AES_BATCH / 2;
    let mut x = [Block::ZERO; AES_BATCH];
    let mut p = [Block::ZERO; AES_BATCH];
    for (c, chunk) in rows.chunks(HALF).enumerate() {
        let m = chunk.len();
        let (p, x) = (&mut p[..2 * m], &mut x[..2 * m]);
        for (k, q) in chunk.iter().enumerate() {
            p[k] = *q;
            p[m + k] = *q ^ delta;
        }
        h.permute_many(p);
        let base = first + (c * HALF) as u64;
        for k in 0..m {
            let t = tweak(nonce, base + k as u64);
            x[k] = p[k] ^ t;
            x[m + k] = p[m + k] ^ t;
        }
        h.permute_many(x);
        for k in 0..m {
            f(c * HALF + k, x[k] ^ p[k], x[m + k] ^ p[m + k]);
        }
    }
    x.zeroize();
    p.zeroize();
}

/// The receiver's extension message: the κ columns u^i of U, column after
/// column, 16 bytes per block.
pub struct ExtendMsg {
    n: usize,
    bytes: Vec<u8>,
}

impl ExtendMsg {
    /// Wire size of the message for `n` OTs.
    pub fn byte_len(n: usize) -> usize {
        KAPPA * blocks_for(n) * 16
    }

    /// Number of OTs the message extends.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The wire encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A copy of the wire encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The wire encoding, giving up the message (its buffer can be reused).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Decodes the message of an extension of `n` OTs; any other length is
    /// the peer's fault.
    pub fn from_bytes(bytes: &[u8], n: usize) -> Result<Self> {
        Self::check(bytes.len(), n)?;
        Ok(Self {
            n,
            bytes: bytes.to_vec(),
        })
    }

    /// [`Self::from_bytes`] without a copy.
    pub fn from_vec(bytes: Vec<u8>, n: usize) -> Result<Self> {
        Self::check(bytes.len(), n)?;
        Ok(Self { n, bytes })
    }

    fn check(len: usize, n: usize) -> Result<()> {
        check_batch(n)?;
        if len != Self::byte_len(n) {
            return Err(Error::malformed(format!(
                "OT extension message: expected {} bytes for {n} OTs, got {len}",
                Self::byte_len(n)
            )));
        }
        Ok(())
    }
}

/// The sender's masked messages of a chosen-message OT batch: y_j^0, y_j^1.
pub struct ChosenMsg {
    n: usize,
    bytes: Vec<u8>,
}

impl ChosenMsg {
    /// Wire size for `n` OTs (32 bytes per OT).
    pub fn byte_len(n: usize) -> usize {
        n * 32
    }

    /// Number of OTs.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The wire encoding: y_0^0, y_0^1, y_1^0, ...
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A copy of the wire encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The wire encoding, giving up the message.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Decodes the masked messages of `n` OTs; any other length is the peer's fault.
    pub fn from_bytes(bytes: &[u8], n: usize) -> Result<Self> {
        Self::from_vec(bytes.to_vec(), n)
    }

    /// [`Self::from_bytes`] without a copy.
    pub fn from_vec(bytes: Vec<u8>, n: usize) -> Result<Self> {
        check_batch(n)?;
        if bytes.len() != Self::byte_len(n) {
            return Err(Error::malformed(format!(
                "chosen OT message: expected {} bytes for {n} OTs, got {}",
                Self::byte_len(n),
                bytes.len()
            )));
        }
        Ok(Self { n, bytes })
    }
}

/// The sender's zero messages m0_j of a batch of correlated OTs (the one
/// messages are m0_j ⊕ Δ). Move-only and wiped on drop: as the client's
/// input zero labels it is consumed by
/// [`crate::gc::Garbler::garble_layer_streaming_with_client_labels`], so one
/// OT output cannot label two garbled layers.
pub struct CorrelatedZeros {
    pub(crate) blocks: Vec<Block>,
}

impl CorrelatedZeros {
    /// Number of OTs.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The zero messages, read-only (for checks).
    pub fn as_slice(&self) -> &[Block] {
        &self.blocks
    }

    /// Appends another batch (the driver joins its chunks); returns the
    /// other batch's buffer, wiped and empty, for reuse.
    pub(crate) fn append(&mut self, mut other: CorrelatedZeros) -> Vec<Block> {
        self.blocks.extend_from_slice(&other.blocks);
        let mut v = std::mem::take(&mut other.blocks);
        v.zeroize();
        v.clear();
        v
    }

    /// Takes the blocks out, leaving an empty batch.
    pub(crate) fn take_blocks(&mut self) -> Vec<Block> {
        std::mem::take(&mut self.blocks)
    }
}

impl Drop for CorrelatedZeros {
    fn drop(&mut self) {
        self.blocks.zeroize();
    }
}

impl std::fmt::Debug for CorrelatedZeros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CorrelatedZeros({} OTs)", self.blocks.len())
    }
}
