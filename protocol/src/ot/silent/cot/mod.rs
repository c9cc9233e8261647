//! The silent COT state machines: [`Sender`] and [`Receiver`], their one
//! round message [`RoundMsg`], the output batches and the choice
//! correction [`ChoiceMsg`]. No IO: the drivers in [`super::driver`] move
//! the messages.

use std::collections::VecDeque;

use rayon::prelude::*;
use zeroize::Zeroize;

use super::lpn::Code;
use super::params::{LpnParams, MAIN, SETUP};
use super::tree;
use crate::crypto::{AES_BATCH, Block, FixedKeyAes, WipingRng};
use crate::ot::CorrelatedZeros;
use crate::{Error, Result};

mod outputs;
mod receiver;
mod sender;
#[cfg(test)]
mod tests;

pub use outputs::{ReceiverChosen, ReceiverCots, SenderCots};
pub use receiver::{Receiver, ReceiverRound};
pub use sender::{Sender, SenderExpanded, SenderRound};

/// Largest batch one call hands out or corrects (2^28 OTs, 4 GiB of
/// blocks): a bound on what a peer's sizes can make us allocate.
pub const MAX_BATCH: usize = 1 << 28;

/// Domain tag in the top 16 bits of the random-OT hash tweaks ("SO"). Bit
/// 127 is clear, so these tweaks never meet a garbled gate's
/// ([`crate::crypto::tweak`]), and the tag differs from IKNP's.
const TWEAK_DOMAIN: u128 = crate::crypto::tweak::SILENT_OT;

/// Rows per parallel task of the code (2 MiB of outputs).
const ENCODE_CHUNK: usize = 1 << 17;

/// Tweak of output `index` of the session with nonce `nonce` (< 2^48):
/// domain in bits 112..128, nonce in 64..112, index in 0..64.
fn tweak(nonce: u64, index: u64) -> Block {
    Block(TWEAK_DOMAIN | ((nonce as u128) << 64) | index as u128)
}

/// The public AES key of tree `tree` (purpose 0) or of the code (purpose
/// 1) in round `round` of session `nonce`: distinct for every such tuple.
fn public_key(purpose: u8, nonce: u64, round: u64, tree: u64) -> [u8; 16] {
    let mut material = [0u8; 25];
    material[0] = purpose;
    material[1..9].copy_from_slice(&nonce.to_le_bytes());
    material[9..17].copy_from_slice(&round.to_le_bytes());
    material[17..25].copy_from_slice(&tree.to_le_bytes());
    let full = blake3::derive_key("pi-protocol 2025 silent OT public AES key", &material);
    full[..16].try_into().expect("16 of 32 bytes")
}

/// Outputs a small round hands out: a [`SETUP`]-size round after the
/// first, which refills the part of the reserve it used.
pub const SMALL_YIELD: usize = SETUP.n() - SETUP.base_cots();

/// Parameters of round `round` when `need` more outputs are planned than
/// are pooled: the first round ([`SETUP`]) runs on SoftSpoken outputs; later a
/// [`MAIN`] round, unless one small round ([`SETUP`] again, 1/17 of the
/// work) covers the need.
fn round_params(round: u64, need: usize) -> LpnParams {
    if round == 0 || need <= SMALL_YIELD {
        SETUP
    } else {
        MAIN
    }
}

/// Outputs round `round` with parameters `p` hands out: the first keeps
/// [`MAIN`]`.base_cots()` of its outputs as the reserve, every later one
/// refills the `p.base_cots()` it used.
fn round_yield(round: u64, p: LpnParams) -> usize {
    if round == 0 {
        p.n() - MAIN.base_cots()
    } else {
        p.n() - p.base_cots()
    }
}

fn check_batch(n: usize) -> Result<()> {
    if n > MAX_BATCH {
        return Err(Error::BadInput(format!(
            "silent OT batch of {n}: at most {MAX_BATCH}"
        )));
    }
    Ok(())
}

/// In place: `xs[j] = TCCR(xs[j], tweak(first + j))` (Guo et al. 2020).
fn hash_in_place(nonce: u64, first: u64, xs: &mut [Block]) {
    FixedKeyAes::new().tccr_in_place_with(xs, |j| tweak(nonce, first + j as u64));
}

/// The sender's round message: the correction c = K_0 ⊕ q of every level
/// of every tree (tree-major), 16 bytes each.
pub struct RoundMsg {
    params: LpnParams,
    bytes: Vec<u8>,
}

impl RoundMsg {
    /// Wire size of the message of a round with parameters `p`.
    pub fn byte_len(p: &LpnParams) -> usize {
        16 * p.msg_blocks()
    }

    /// The wire encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The wire encoding, giving up the message.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Decodes the message of a round with parameters `p`; any other
    /// length is the peer's fault.
    pub fn from_vec(bytes: Vec<u8>, p: LpnParams) -> Result<Self> {
        if bytes.len() != Self::byte_len(&p) {
            return Err(Error::malformed(format!(
                "silent OT round message: expected {} bytes, got {}",
                Self::byte_len(&p),
                bytes.len()
            )));
        }
        Ok(Self { params: p, bytes })
    }

    fn block(&self, i: usize) -> Block {
        Block::from_bytes(
            self.bytes[16 * i..16 * i + 16]
                .try_into()
                .expect("16-byte block"),
        )
    }
}

/// The receiver's choice corrections d_j = b_j ⊕ c_j (random choice b_j,
/// wanted choice c_j), one bit per OT, least significant bit first.
pub struct ChoiceMsg {
    n: usize,
    bytes: Vec<u8>,
}

impl ChoiceMsg {
    /// Wire size for `n` OTs: ⌈n / 8⌉ bytes.
    pub fn byte_len(n: usize) -> usize {
        n.div_ceil(8)
    }

    /// Number of OTs.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The wire encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes the corrections of `n` OTs: exactly [`Self::byte_len`] bytes
    /// whose padding bits are zero, else the peer's fault.
    pub fn from_vec(bytes: Vec<u8>, n: usize) -> Result<Self> {
        check_batch(n)?;
        if bytes.len() != Self::byte_len(n) {
            return Err(Error::malformed(format!(
                "choice corrections: expected {} bytes for {n} OTs, got {}",
                Self::byte_len(n),
                bytes.len()
            )));
        }
        if !n.is_multiple_of(8) && bytes[n / 8] >> (n % 8) != 0 {
            return Err(Error::malformed("choice corrections: padding bits set"));
        }
        Ok(Self { n, bytes })
    }

    fn bit(&self, j: usize) -> bool {
        (self.bytes[j / 8] >> (j % 8)) & 1 == 1
    }
}

/// Outputs ready to hand out, oldest first: whole round buffers with a read
/// position. Wiped when used up or dropped; the last buffer used up is kept
/// (wiped) for the next round, so rounds do not page-fault fresh memory.
#[derive(Default)]
struct Pool {
    bufs: VecDeque<(Vec<Block>, usize)>,
    len: usize,
    spare: Vec<Block>,
}

impl Pool {
    /// Bytes of memory held: round buffers and the spare.
    fn held_bytes(&self) -> usize {
        let bufs: usize = self.bufs.iter().map(|(b, _)| b.capacity()).sum();
        16 * (bufs + self.spare.capacity())
    }

    fn push(&mut self, buf: Vec<Block>) {
        self.len += buf.len();
        self.bufs.push_back((buf, 0));
    }

    /// The bookkeeping of handing out the next `n` outputs: checks that
    /// they are pooled, counts them off the announced demand `planned` and
    /// returns the session index of the first (`next_index` moves on).
    fn hand_out(&self, planned: &mut usize, next_index: &mut u64, n: usize) -> Result<u64> {
        check_batch(n)?;
        if n > self.len {
            return Err(not_available(n, self.len));
        }
        *planned = planned.saturating_sub(n);
        let first = *next_index;
        *next_index += n as u64;
        Ok(first)
    }

    /// Moves the next `n` outputs (n ≤ len) onto the end of `out`, which
    /// grows (wiping its old buffer) if it has no room.
    fn append_to(&mut self, n: usize, out: &mut Vec<Block>) {
        outputs::reserve_wiping(out, n);
        self.take_into(n, out);
    }

    /// Moves the next `n` outputs (n ≤ len) into a new vector.
    fn take(&mut self, n: usize) -> Vec<Block> {
        let mut out = Vec::with_capacity(n);
        self.take_into(n, &mut out);
        out
    }

    /// Appends the next `n` outputs (n ≤ len) to `out`, which has room for
    /// them (so it does not reallocate and leave unwiped copies).
    fn take_into(&mut self, n: usize, out: &mut Vec<Block>) {
        debug_assert!(n <= self.len && out.capacity() - out.len() >= n);
        let end = out.len() + n;
        while out.len() < end {
            let (buf, pos) = self.bufs.front_mut().expect("pool holds n outputs");
            let m = (end - out.len()).min(buf.len() - *pos);
            out.extend_from_slice(&buf[*pos..*pos + m]);
            *pos += m;
            if *pos == buf.len() {
                let (mut done, _) = self.bufs.pop_front().expect("front exists");
                // Wiped in place with its length kept (past that length it
                // was wiped when the round's reserve was split off), so the
                // next round's [`zeroed`] writes only the blocks past the
                // length instead of the whole buffer again.
                done.as_mut_slice().zeroize();
                if done.capacity() > self.spare.capacity() {
                    self.spare = done;
                }
            }
        }
        self.len -= n;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (b, _) in self.bufs.iter_mut() {
            b.zeroize();
        }
    }
}

/// A buffer of `n` zero blocks, reusing `buf`'s memory, which must be all
/// zero (empty, or wiped as [`Pool::take_into`] leaves the spare): only
/// blocks past its length are written.
fn zeroed(mut buf: Vec<Block>, n: usize) -> Vec<Block> {
    debug_assert!(
        buf.iter().all(|&b| b == Block::ZERO),
        "round buffer not wiped"
    );
    buf.truncate(n);
    buf.resize(n, Block::ZERO);
    buf
}

fn round_running() -> Error {
    Error::BadInput("no silent OT round base: a round is running or failed".into())
}

fn not_available(n: usize, have: usize) -> Error {
    Error::BadInput(format!(
        "{n} silent OTs asked, {have} available: run rounds first"
    ))
}

fn rounds_needed(mut round: u64, mut have: usize, planned: usize, n: usize) -> u64 {
    let planned = planned.max(n);
    let mut rounds = 0;
    while have < n {
        have += round_yield(round, round_params(round, planned - have));
        round += 1;
        rounds += 1;
    }
    rounds
}

/// The parameters of the rounds an instance runs when, after `rounds`
/// rounds and with `available` outputs pooled, `demand` outputs are
/// announced and then taken: what both parties will run, for estimates of
/// traffic and work.
pub fn rounds_for(rounds: u64, available: usize, demand: usize) -> Vec<LpnParams> {
    let (mut round, mut have, mut out) = (rounds, available, Vec::new());
    while have < demand {
        let p = round_params(round, demand - have);
        have += round_yield(round, p);
        out.push(p);
        round += 1;
    }
    out
}

/// Splits a round's outputs into the pooled part and the next reserve:
/// after the first round the last [`MAIN`]`.base_cots()` outputs (copied
/// into the used base's memory); after a later one the reserve with the
/// `p.base_cots()` COTs the round used replaced by its last outputs.
fn split_round(out: &mut RoundOutput) -> (Vec<Block>, Vec<Block>) {
    let mut blocks = std::mem::take(&mut out.blocks);
    let mut base = std::mem::take(&mut out.old_base);
    let keep = if out.round == 0 {
        let keep = blocks.len() - MAIN.base_cots();
        base.clear();
        base.extend_from_slice(&blocks[keep..]);
        keep
    } else {
        let used = out.params.base_cots();
        let keep = blocks.len() - used;
        base[..used].copy_from_slice(&blocks[keep..]);
        keep
    };
    blocks[keep..].zeroize();
    blocks.truncate(keep);
    (blocks, base)
}

/// The used head of a round's base wiped, the unused rest of the reserve
/// kept (`buf` is the whole reserve the round took).
fn wipe_used(mut buf: Vec<Block>, p: LpnParams) -> Vec<Block> {
    buf[..p.base_cots()].zeroize();
    buf
}

/// Checks that a reserve holds a round's base.
fn check_base(base: &[Block], p: LpnParams) -> Result<()> {
    if base.len() < p.base_cots() {
        return Err(Error::Internal(
            "silent OT reserve shorter than a round's base",
        ));
    }
    Ok(())
}

/// Applies round `round`'s code to `secret` on top of the noise in `out`.
fn encode(nonce: u64, round: u64, p: LpnParams, secret: &[Block], out: &mut [Block]) {
    let code = Code::new(public_key(1, nonce, round, 0), p.k);
    out.par_chunks_mut(ENCODE_CHUNK)
        .enumerate()
        .for_each(|(c, rows)| code.encode(c * ENCODE_CHUNK, secret, rows));
}

/// One round's outputs, for `finish_round` of the party that made them
/// (with the memory of the base it used up, wiped, for the next one).
pub struct RoundOutput {
    round: u64,
    params: LpnParams,
    blocks: Vec<Block>,
    old_base: Vec<Block>,
}

impl Drop for RoundOutput {
    fn drop(&mut self) {
        self.blocks.zeroize();
        self.old_base.zeroize();
    }
}
