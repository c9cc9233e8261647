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
/// are pooled: the first round ([`SETUP`]) runs on IKNP outputs; later a
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
    let h = FixedKeyAes::new();
    let mut p = [Block::ZERO; AES_BATCH];
    for (c, chunk) in xs.chunks_mut(AES_BATCH).enumerate() {
        let p = &mut p[..chunk.len()];
        p.copy_from_slice(chunk);
        h.permute_many(p);
        let base = first + (c * AES_BATCH) as u64;
        for (j, (x, pj)) in chunk.iter_mut().zip(p.iter()).enumerate() {
            *x = *pj ^ tweak(nonce, base + j as u64);
        }
        h.permute_many(chunk);
        for (x, pj) in chunk.iter_mut().zip(p.iter()) {
            *x ^= *pj;
        }
    }
    p.zeroize();
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

    /// Moves the next `n` outputs (n ≤ len) into a new vector.
    fn take(&mut self, n: usize) -> Vec<Block> {
        debug_assert!(n <= self.len);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let (buf, pos) = self.bufs.front_mut().expect("pool holds n outputs");
            let m = (n - out.len()).min(buf.len() - *pos);
            out.extend_from_slice(&buf[*pos..*pos + m]);
            *pos += m;
            if *pos == buf.len() {
                let (mut done, _) = self.bufs.pop_front().expect("front exists");
                done.zeroize();
                done.clear();
                if done.capacity() > self.spare.capacity() {
                    self.spare = done;
                }
            }
        }
        self.len -= n;
        out
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (b, _) in self.bufs.iter_mut() {
            b.zeroize();
        }
    }
}

/// A buffer of `n` zero blocks, reusing `buf`'s memory (which must hold no
/// secret: it is empty or wiped).
fn zeroed(mut buf: Vec<Block>, n: usize) -> Vec<Block> {
    buf.clear();
    buf.resize(n, Block::ZERO);
    buf
}

/// The silent COT sender. Its Δ (lsb 1) is the correlation of every output.
pub struct Sender {
    delta: Block,
    nonce: u64,
    round: u64,
    /// The reserve the next round's base comes from (sender's q, lsb
    /// clear): the setup round's base, later [`MAIN`]`.base_cots()` COTs;
    /// `None` while a round is running.
    base: Option<Vec<Block>>,
    pool: Pool,
    next_index: u64,
    /// Outputs announced ([`Self::plan`]) and not yet handed out.
    planned: usize,
    /// Draws the tree seeds of every round.
    rng: WipingRng,
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.delta.zeroize();
        if let Some(b) = self.base.as_mut() {
            b.zeroize();
        }
    }
}

impl Sender {
    /// Starts from [`SETUP`]`.base_cots()` IKNP correlated OTs under `delta`
    /// (their zero messages), in the session with public nonce `nonce`;
    /// `rng` draws the tree seeds of every round.
    ///
    /// # Errors
    /// [`Error::BadInput`] if Δ's lsb is 0 (the receiver's lsb would no
    /// longer carry its choice) or the batch has the wrong size.
    pub fn bootstrap(
        delta: Block,
        nonce: u64,
        mut zeros: CorrelatedZeros,
        rng: WipingRng,
    ) -> Result<Self> {
        if !delta.lsb() {
            return Err(Error::BadInput("silent OT needs Δ with lsb 1".into()));
        }
        if zeros.len() != SETUP.base_cots() {
            return Err(Error::BadInput(format!(
                "silent OT bootstrap: {} COTs, needs {}",
                zeros.len(),
                SETUP.base_cots()
            )));
        }
        let mut base = zeros.take_blocks();
        for q in base.iter_mut() {
            q.0 &= !1;
        }
        Ok(Self {
            delta,
            nonce,
            round: 0,
            base: Some(base),
            pool: Pool::default(),
            next_index: 0,
            planned: 0,
            rng,
        })
    }

    /// The correlation Δ.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// The public session nonce (from IKNP's base OTs).
    pub fn session_nonce(&self) -> u64 {
        self.nonce
    }

    /// Rounds finished so far (the first is the setup round).
    pub fn rounds(&self) -> u64 {
        self.round
    }

    /// Outputs ready to hand out without another round.
    pub fn available(&self) -> usize {
        self.pool.len
    }

    /// Frees the memory kept for the next round's outputs (wiped already):
    /// between bursts of use, an idle instance then holds only its base and
    /// the outputs not yet handed out.
    pub fn release_spare(&mut self) {
        self.pool.spare = Vec::new();
    }

    /// Bytes of memory the instance holds (base, pooled outputs, spare).
    pub fn held_bytes(&self) -> usize {
        16 * self.base.as_ref().map_or(0, |b| b.capacity()) + self.pool.held_bytes()
    }

    /// Announces that `n` outputs will be handed out soon (counted from
    /// now, taking the larger of this and what was announced before), so
    /// that rounds are sized for the whole demand: a [`MAIN`] round unless
    /// one small round covers it. The receiver must make the same calls.
    pub fn plan(&mut self, n: usize) {
        self.planned = self.planned.max(n);
    }

    /// True if the announced demand exceeds the pool (a round is due).
    pub fn wants_round(&self) -> bool {
        self.planned > self.pool.len
    }

    /// Rounds to run before `n` outputs are available (the receiver
    /// computes the same number).
    pub fn rounds_needed(&self, n: usize) -> u64 {
        rounds_needed(self.round, self.pool.len, self.planned, n)
    }

    /// Starts the next round: takes its base and draws its tree seeds.
    ///
    /// # Errors
    /// [`Error::BadInput`] if a round is running (or one failed: the base
    /// is gone with it and the instance is spent).
    pub fn begin_round(&mut self) -> Result<SenderRound> {
        let params = round_params(self.round, self.planned.saturating_sub(self.pool.len));
        check_base(self.base.as_deref().ok_or_else(round_running)?, params)?;
        let base = self.base.take().ok_or_else(round_running)?;
        let seeds = (0..params.t)
            .map(|_| Block::random(&mut self.rng))
            .collect();
        Ok(SenderRound {
            delta: self.delta,
            nonce: self.nonce,
            round: self.round,
            params,
            base,
            seeds,
            out: std::mem::take(&mut self.pool.spare),
        })
    }

    /// Ends the round whose output this is: refills the reserve from its
    /// last outputs (all of it after the first round, the part it used
    /// after a later one) and pools the rest.
    ///
    /// # Errors
    /// [`Error::BadInput`] for the output of another round.
    pub fn finish_round(&mut self, mut out: RoundOutput) -> Result<()> {
        if self.base.is_some() || out.round != self.round {
            return Err(Error::BadInput(format!(
                "silent OT round {} finished while round {} runs",
                out.round, self.round
            )));
        }
        let (pool, base) = split_round(&mut out);
        self.base = Some(base);
        self.pool.push(pool);
        self.round += 1;
        Ok(())
    }

    /// Hands out the next `n` outputs (they must be [`Self::available`]).
    ///
    /// # Errors
    /// [`Error::BadInput`] if fewer are available or `n` is too large.
    pub fn take(&mut self, n: usize) -> Result<SenderCots> {
        check_batch(n)?;
        if n > self.pool.len {
            return Err(not_available(n, self.pool.len));
        }
        self.planned = self.planned.saturating_sub(n);
        let first = self.next_index;
        self.next_index += n as u64;
        Ok(SenderCots {
            delta: self.delta,
            nonce: self.nonce,
            first,
            blocks: self.pool.take(n),
        })
    }
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

/// The sender's work of one round (`Send + 'static`): the base, the tree
/// seeds and Δ. [`Self::expand`] builds the trees and the message.
pub struct SenderRound {
    delta: Block,
    nonce: u64,
    round: u64,
    params: LpnParams,
    base: Vec<Block>,
    seeds: Vec<Block>,
    /// Memory for the outputs (empty or wiped).
    out: Vec<Block>,
}

impl Drop for SenderRound {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.base.zeroize();
        self.seeds.zeroize();
    }
}

impl SenderRound {
    /// Expands the t trees (the noise part of the outputs) and returns the
    /// corrections for the receiver.
    pub fn expand(mut self) -> (SenderExpanded, RoundMsg) {
        let p = self.params;
        let depth = p.depth as usize;
        let mut out = zeroed(std::mem::take(&mut self.out), p.n());
        let mut corr = vec![Block::ZERO; p.msg_blocks()];
        let (delta, nonce, round) = (self.delta, self.nonce, self.round);
        let (trees, _) = self.base.split_at(p.msg_blocks());
        out.par_chunks_mut(p.leaves())
            .zip(corr.par_chunks_mut(depth))
            .zip(trees.par_chunks(depth))
            .zip(self.seeds.par_iter())
            .enumerate()
            .for_each(|(j, (((leaves, c), q), &s))| {
                let h = FixedKeyAes::with_key(public_key(0, nonce, round, j as u64));
                tree::expand_sender(&h, s, delta, leaves, c);
                for (c, q) in c.iter_mut().zip(q) {
                    *c ^= *q;
                }
                tree::finish_sender(leaves);
            });
        self.seeds.zeroize();
        let mut bytes = vec![0u8; RoundMsg::byte_len(&p)];
        Block::write_slice(&corr, &mut bytes);
        let msg = RoundMsg { params: p, bytes };
        let base = std::mem::take(&mut self.base);
        (
            SenderExpanded {
                nonce,
                round,
                params: p,
                base,
                out,
            },
            msg,
        )
    }
}

/// The sender's round after the trees: [`Self::encode`] applies the code.
pub struct SenderExpanded {
    nonce: u64,
    round: u64,
    params: LpnParams,
    base: Vec<Block>,
    out: Vec<Block>,
}

impl Drop for SenderExpanded {
    fn drop(&mut self) {
        self.base.zeroize();
        self.out.zeroize();
    }
}

impl SenderExpanded {
    /// Adds the code applied to the secret part of the base: the round's
    /// outputs, for [`Sender::finish_round`].
    pub fn encode(mut self) -> RoundOutput {
        let p = self.params;
        let secret = &self.base[p.msg_blocks()..p.base_cots()];
        encode(self.nonce, self.round, p, secret, &mut self.out);
        RoundOutput {
            round: self.round,
            params: p,
            blocks: std::mem::take(&mut self.out),
            old_base: wipe_used(std::mem::take(&mut self.base), p),
        }
    }
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

/// The silent COT receiver. The lsb of each of its outputs is that OT's
/// (random) choice bit.
pub struct Receiver {
    nonce: u64,
    round: u64,
    /// The reserve (see [`Sender`]); `None` while a round is running.
    base: Option<Vec<Block>>,
    pool: Pool,
    next_index: u64,
    /// Outputs announced ([`Self::plan`]) and not yet handed out.
    planned: usize,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(b) = self.base.as_mut() {
            b.zeroize();
        }
    }
}

impl Receiver {
    /// Starts from [`SETUP`]`.base_cots()` IKNP correlated OTs: the
    /// receiver's messages `blocks` for the uniformly random `choices`.
    ///
    /// # Errors
    /// [`Error::BadInput`] if the sizes are wrong.
    pub fn bootstrap(nonce: u64, choices: &[bool], mut blocks: Vec<Block>) -> Result<Self> {
        if blocks.len() != SETUP.base_cots() || choices.len() != blocks.len() {
            blocks.zeroize();
            return Err(Error::BadInput(format!(
                "silent OT bootstrap: {} COTs and {} choices, needs {}",
                blocks.len(),
                choices.len(),
                SETUP.base_cots()
            )));
        }
        // t = q ⊕ r·Δ with lsb(Δ) = 1: replacing the lsb by r matches the
        // sender's clearing it.
        for (t, &r) in blocks.iter_mut().zip(choices) {
            t.0 = (t.0 & !1) | r as u128;
        }
        Ok(Self {
            nonce,
            round: 0,
            base: Some(blocks),
            pool: Pool::default(),
            next_index: 0,
            planned: 0,
        })
    }

    /// The public session nonce.
    pub fn session_nonce(&self) -> u64 {
        self.nonce
    }

    /// Rounds finished so far.
    pub fn rounds(&self) -> u64 {
        self.round
    }

    /// Outputs ready to hand out without another round.
    pub fn available(&self) -> usize {
        self.pool.len
    }

    /// Frees the memory kept for the next round's outputs (see
    /// [`Sender::release_spare`]).
    pub fn release_spare(&mut self) {
        self.pool.spare = Vec::new();
    }

    /// Bytes of memory the instance holds (base, pooled outputs, spare).
    pub fn held_bytes(&self) -> usize {
        16 * self.base.as_ref().map_or(0, |b| b.capacity()) + self.pool.held_bytes()
    }

    /// Announces `n` outputs to be handed out soon (see [`Sender::plan`]).
    pub fn plan(&mut self, n: usize) {
        self.planned = self.planned.max(n);
    }

    /// True if the announced demand exceeds the pool (a round is due).
    pub fn wants_round(&self) -> bool {
        self.planned > self.pool.len
    }

    /// Rounds to run before `n` outputs are available.
    pub fn rounds_needed(&self, n: usize) -> u64 {
        rounds_needed(self.round, self.pool.len, self.planned, n)
    }

    /// Parameters of the next round (the size of its message).
    pub fn next_params(&self) -> LpnParams {
        round_params(self.round, self.planned.saturating_sub(self.pool.len))
    }

    /// Starts the next round.
    ///
    /// # Errors
    /// [`Error::BadInput`] if a round is already running.
    pub fn begin_round(&mut self) -> Result<ReceiverRound> {
        let params = self.next_params();
        let base = self.base.take().ok_or_else(round_running)?;
        Ok(ReceiverRound {
            nonce: self.nonce,
            round: self.round,
            params,
            base,
            out: std::mem::take(&mut self.pool.spare),
        })
    }

    /// Ends the round whose output this is (see [`Sender::finish_round`]).
    ///
    /// # Errors
    /// [`Error::BadInput`] for the output of another round.
    pub fn finish_round(&mut self, mut out: RoundOutput) -> Result<()> {
        if self.base.is_some() || out.round != self.round {
            return Err(Error::BadInput(format!(
                "silent OT round {} finished while round {} runs",
                out.round, self.round
            )));
        }
        let (pool, base) = split_round(&mut out);
        self.base = Some(base);
        self.pool.push(pool);
        self.round += 1;
        Ok(())
    }

    /// Hands out the next `n` outputs (they must be [`Self::available`]).
    ///
    /// # Errors
    /// [`Error::BadInput`] if fewer are available or `n` is too large.
    pub fn take(&mut self, n: usize) -> Result<ReceiverCots> {
        check_batch(n)?;
        if n > self.pool.len {
            return Err(not_available(n, self.pool.len));
        }
        self.planned = self.planned.saturating_sub(n);
        let first = self.next_index;
        self.next_index += n as u64;
        Ok(ReceiverCots {
            nonce: self.nonce,
            first,
            blocks: self.pool.take(n),
        })
    }
}

/// The receiver's work of one round (`Send + 'static`).
pub struct ReceiverRound {
    nonce: u64,
    round: u64,
    params: LpnParams,
    base: Vec<Block>,
    /// Memory for the outputs (empty or wiped).
    out: Vec<Block>,
}

impl Drop for ReceiverRound {
    fn drop(&mut self) {
        self.base.zeroize();
    }
}

impl ReceiverRound {
    /// Parameters of this round.
    pub fn params(&self) -> LpnParams {
        self.params
    }

    /// Rebuilds the punctured trees from the sender's corrections and
    /// applies the code: the round's outputs, for
    /// [`Receiver::finish_round`].
    ///
    /// # Errors
    /// [`Error::BadInput`] if the message was decoded for another round's
    /// parameters.
    pub fn run(mut self, msg: &RoundMsg) -> Result<RoundOutput> {
        let p = self.params;
        if msg.params != p {
            return Err(Error::BadInput(
                "silent OT round message decoded for other parameters".into(),
            ));
        }
        check_base(&self.base, p)?;
        let depth = p.depth as usize;
        let mut out = zeroed(std::mem::take(&mut self.out), p.n());
        let (trees, secret) = self.base[..p.base_cots()].split_at(p.msg_blocks());
        let (nonce, round) = (self.nonce, self.round);
        out.par_chunks_mut(p.leaves())
            .zip(trees.par_chunks(depth))
            .enumerate()
            .for_each(|(j, (leaves, t))| {
                let h = FixedKeyAes::with_key(public_key(0, nonce, round, j as u64));
                let mut kb = [Block::ZERO; 32];
                let mut bits = [false; 32];
                for (i, t) in t.iter().enumerate() {
                    bits[i] = t.lsb();
                    kb[i] = msg.block(j * depth + i) ^ *t;
                }
                let alpha = tree::expand_receiver(&h, &kb[..depth], &bits[..depth], leaves);
                tree::finish_receiver(leaves, alpha);
                kb.zeroize();
                bits.zeroize();
            });
        encode(nonce, round, p, secret, &mut out);
        Ok(RoundOutput {
            round: self.round,
            params: p,
            blocks: out,
            old_base: wipe_used(std::mem::take(&mut self.base), p),
        })
    }
}

/// The sender's side of a batch of random-choice COTs: q_j, so that the
/// receiver holds q_j ⊕ b_j·Δ for its random b_j. Consumed by exactly one
/// conversion; wiped on drop.
pub struct SenderCots {
    delta: Block,
    nonce: u64,
    first: u64,
    blocks: Vec<Block>,
}

impl Drop for SenderCots {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.blocks.zeroize();
    }
}

impl SenderCots {
    /// Number of OTs.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The zero messages q_j, read-only (for checks).
    pub fn as_slice(&self) -> &[Block] {
        &self.blocks
    }

    /// Switches to the receiver's chosen choices c_j: with d_j = b_j ⊕ c_j
    /// from the receiver, q_j becomes q_j ⊕ d_j·Δ.
    ///
    /// # Errors
    /// [`Error::BadInput`] if the message was decoded for another size.
    pub fn apply_choices(mut self, msg: &ChoiceMsg) -> Result<SenderCots> {
        if msg.n() != self.len() {
            return Err(Error::BadInput(format!(
                "choice corrections for {} OTs, batch has {}",
                msg.n(),
                self.len()
            )));
        }
        let delta = self.delta;
        for (j, q) in self.blocks.iter_mut().enumerate() {
            *q ^= delta.select(msg.bit(j));
        }
        Ok(self)
    }

    /// Correlated OT: m0_j = q_j (m1_j = q_j ⊕ Δ), move-only.
    pub fn into_correlated(mut self) -> CorrelatedZeros {
        CorrelatedZeros {
            blocks: std::mem::take(&mut self.blocks),
        }
    }

    /// Appends the batch that follows this one (the next outputs handed out).
    ///
    /// # Errors
    /// [`Error::BadInput`] if `next` does not follow on.
    pub fn append(&mut self, mut next: SenderCots) -> Result<()> {
        if next.first != self.first + self.len() as u64 || next.delta != self.delta {
            return Err(Error::BadInput(
                "silent OT batches appended out of order".into(),
            ));
        }
        self.blocks.extend_from_slice(&next.blocks);
        next.blocks.zeroize();
        Ok(())
    }

    /// Random OT: (H(j, q_j), H(j, q_j ⊕ Δ)) with the session-wide index j.
    pub fn into_random(self) -> Vec<[Block; 2]> {
        let mut out = Vec::with_capacity(self.len());
        self.random_into(&mut out);
        out
    }

    /// [`Self::into_random`], appending to `out`.
    pub fn random_into(self, out: &mut Vec<[Block; 2]>) {
        // Both messages of 128 OTs per AES call, straight into the output
        // (no second n-block temporary).
        const HALF: usize = AES_BATCH / 2;
        let h = FixedKeyAes::new();
        out.reserve(self.len());
        let mut p = [Block::ZERO; AES_BATCH];
        let mut x = [Block::ZERO; AES_BATCH];
        for (c, chunk) in self.blocks.chunks(HALF).enumerate() {
            let m = chunk.len();
            let (p, x) = (&mut p[..2 * m], &mut x[..2 * m]);
            for (k, &q) in chunk.iter().enumerate() {
                p[k] = q;
                p[m + k] = q ^ self.delta;
            }
            h.permute_many(p);
            let first = self.first + (c * HALF) as u64;
            for k in 0..m {
                let t = tweak(self.nonce, first + k as u64);
                x[k] = p[k] ^ t;
                x[m + k] = p[m + k] ^ t;
            }
            h.permute_many(x);
            out.extend((0..m).map(|k| [x[k] ^ p[k], x[m + k] ^ p[m + k]]));
        }
        p.zeroize();
        x.zeroize();
    }
}

/// The receiver's side of a batch of random-choice COTs: t_j = q_j ⊕
/// b_j·Δ, with b_j the lsb of t_j. Consumed by exactly one conversion.
pub struct ReceiverCots {
    nonce: u64,
    first: u64,
    blocks: Vec<Block>,
}

impl Drop for ReceiverCots {
    fn drop(&mut self) {
        self.blocks.zeroize();
    }
}

impl ReceiverCots {
    /// Number of OTs.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The random choice bit of OT `j`.
    pub fn choice(&self, j: usize) -> bool {
        self.blocks[j].lsb()
    }

    /// All random choice bits.
    pub fn choices(&self) -> Vec<bool> {
        self.blocks.iter().map(|t| t.lsb()).collect()
    }

    /// The messages t_j, read-only (for checks).
    pub fn as_slice(&self) -> &[Block] {
        &self.blocks
    }

    /// Appends the batch that follows this one.
    ///
    /// # Errors
    /// [`Error::BadInput`] if `next` does not follow on.
    pub fn append(&mut self, mut next: ReceiverCots) -> Result<()> {
        if next.first != self.first + self.len() as u64 {
            return Err(Error::BadInput(
                "silent OT batches appended out of order".into(),
            ));
        }
        self.blocks.extend_from_slice(&next.blocks);
        next.blocks.zeroize();
        Ok(())
    }

    /// Correlated OT with the random choices: t_j = m_{b_j}.
    pub fn into_correlated(mut self) -> Vec<Block> {
        std::mem::take(&mut self.blocks)
    }

    /// Random OT with the random choices: (b_j, H(j, t_j)).
    pub fn into_random(mut self) -> (Vec<bool>, Vec<Block>) {
        let choices = self.choices();
        let mut t = std::mem::take(&mut self.blocks);
        hash_in_place(self.nonce, self.first, &mut t);
        (choices, t)
    }

    /// Chooses c_j = `choices[j]`: returns the batch under the new choices
    /// and the corrections d_j = b_j ⊕ c_j for the sender
    /// ([`SenderCots::apply_choices`]).
    ///
    /// # Errors
    /// [`Error::BadInput`] for the wrong number of choices.
    pub fn choose(mut self, choices: &[bool]) -> Result<(ReceiverChosen, ChoiceMsg)> {
        let n = self.len();
        if choices.len() != n {
            return Err(Error::BadInput(format!(
                "{} choices for a batch of {n} OTs",
                choices.len()
            )));
        }
        let mut bytes = vec![0u8; ChoiceMsg::byte_len(n)];
        for (j, (t, &c)) in self.blocks.iter().zip(choices).enumerate() {
            bytes[j / 8] |= ((t.lsb() ^ c) as u8) << (j % 8);
        }
        let chosen = ReceiverChosen {
            nonce: self.nonce,
            first: self.first,
            blocks: std::mem::take(&mut self.blocks),
        };
        Ok((chosen, ChoiceMsg { n, bytes }))
    }
}

/// The receiver's side after [`ReceiverCots::choose`]: t_j = m_{c_j}.
pub struct ReceiverChosen {
    nonce: u64,
    first: u64,
    blocks: Vec<Block>,
}

impl Drop for ReceiverChosen {
    fn drop(&mut self) {
        self.blocks.zeroize();
    }
}

impl ReceiverChosen {
    /// Number of OTs.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Correlated OT: t_j = q_j ⊕ c_j·Δ, the chosen message.
    pub fn into_correlated(mut self) -> Vec<Block> {
        std::mem::take(&mut self.blocks)
    }

    /// Random OT: H(j, t_j), the sender's message number c_j.
    pub fn into_random(mut self) -> Vec<Block> {
        let mut t = std::mem::take(&mut self.blocks);
        hash_in_place(self.nonce, self.first, &mut t);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    const NONCE: u64 = 0x1234_5678_9abc;

    /// A sender and receiver bootstrapped from ideal COTs (the IKNP path is
    /// tested in the driver): q uniform, t = q ⊕ r·Δ for uniform r.
    fn pair(seed: u64) -> (Sender, Receiver) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let delta = Block(Block::random(&mut rng).0 | 1);
        let m = SETUP.base_cots();
        let q: Vec<Block> = (0..m).map(|_| Block::random(&mut rng)).collect();
        let r: Vec<bool> = (0..m).map(|_| rng.next_u32() & 1 == 1).collect();
        let t = q
            .iter()
            .zip(&r)
            .map(|(&q, &r)| q ^ delta.select(r))
            .collect();
        let s = Sender::bootstrap(
            delta,
            NONCE,
            CorrelatedZeros { blocks: q },
            WipingRng::fork(&mut rng),
        )
        .unwrap();
        (s, Receiver::bootstrap(NONCE, &r, t).unwrap())
    }

    /// One round through the wire encoding.
    fn round(s: &mut Sender, r: &mut Receiver) {
        let (expanded, msg) = s.begin_round().unwrap().expand();
        let job = r.begin_round().unwrap();
        let msg = RoundMsg::from_vec(msg.as_bytes().to_vec(), job.params()).unwrap();
        let out_r = job.run(&msg).unwrap();
        s.finish_round(expanded.encode()).unwrap();
        r.finish_round(out_r).unwrap();
    }

    /// Checks q_j ⊕ t_j = b_j·Δ with b_j = lsb(t_j) and lsb(q_j) = 0 for
    /// every output; returns the number of ones among the choices.
    fn check_cots(delta: Block, q: &SenderCots, t: &ReceiverCots) -> usize {
        assert_eq!(q.len(), t.len());
        let mut ones = 0;
        for (j, (&a, &b)) in q.as_slice().iter().zip(t.as_slice()).enumerate() {
            assert!(!a.lsb(), "sender lsb at {j}");
            assert_eq!(a ^ b, delta.select(b.lsb()), "output {j}");
            ones += b.lsb() as usize;
        }
        ones
    }

    /// The plaintext check of the correlation for every output of the setup
    /// round and of two main rounds bootstrapped from it, taken in batches
    /// that straddle round boundaries.
    #[test]
    fn every_output_over_three_rounds_is_a_cot() {
        let (mut s, mut r) = pair(1);
        let delta = s.delta();
        assert_eq!((s.available(), s.rounds_needed(1)), (0, 1));
        round(&mut s, &mut r);
        let setup_yield = SETUP.n() - MAIN.base_cots();
        assert_eq!((s.available(), r.available()), (setup_yield, setup_yield));
        let main_yield = MAIN.n() - MAIN.base_cots();
        // Everything the setup round and two main rounds yield, in batches
        // of 3 M (not aligned with the rounds).
        let total = setup_yield + 2 * main_yield;
        s.plan(total);
        r.plan(total);
        let (mut taken, mut ones) = (0, 0);
        while taken < total {
            let n = (3 << 20).min(total - taken);
            let need = s.rounds_needed(n);
            assert_eq!(need, r.rounds_needed(n));
            for _ in 0..need {
                round(&mut s, &mut r);
            }
            let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
            ones += check_cots(delta, &q, &t);
            taken += n;
        }
        assert_eq!((s.rounds(), r.rounds()), (3, 3));
        assert_eq!((s.available(), r.available()), (0, 0));
        // The choice bits are balanced (LPN outputs look uniform): within
        // 10 standard deviations of total / 2.
        let dev = (ones as f64 - total as f64 / 2.0).abs();
        assert!(
            dev < 10.0 * (total as f64 / 4.0).sqrt(),
            "{ones} of {total}"
        );
    }

    /// Small rounds: a demand that one small round covers runs the
    /// [`SETUP`] parameters on the reserve's front and refills it, whatever
    /// came before; a larger one runs a main round on the whole reserve.
    /// Every output is a COT, and both parties pick the same parameters.
    #[test]
    fn small_and_main_rounds_mix_on_one_reserve() {
        let (mut s, mut r) = pair(13);
        let delta = s.delta();
        round(&mut s, &mut r);
        // Announced beyond the pool → parameters of the round that follows,
        // then outputs taken: small, small, main (over one small round's
        // yield), small again on the refilled reserve.
        for (beyond, kind) in [
            (1000, SETUP),
            (SMALL_YIELD, SETUP),
            (SMALL_YIELD + 1, MAIN),
            (10, SETUP),
        ] {
            let want = s.available() + beyond;
            s.plan(want);
            r.plan(want);
            assert_eq!(r.next_params(), kind);
            assert_eq!((s.rounds_needed(want), r.rounds_needed(want)), (1, 1));
            round(&mut s, &mut r);
            let (q, t) = (s.take(want).unwrap(), r.take(want).unwrap());
            check_cots(delta, &q, &t);
        }
        assert_eq!((s.rounds(), r.rounds()), (5, 5));
        assert_eq!(
            (s.available(), r.available()),
            (SMALL_YIELD - 10, SMALL_YIELD - 10)
        );
    }

    #[test]
    fn chosen_choices_and_random_ot() {
        let (mut s, mut r) = pair(2);
        let delta = s.delta();
        round(&mut s, &mut r);
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for n in [1usize, 7, 8, 9, 1000] {
            let c: Vec<bool> = (0..n).map(|_| rng.next_u32() & 1 == 1).collect();
            // Correlated OT with chosen choices.
            let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
            let (chosen, msg) = t.choose(&c).unwrap();
            assert_eq!(msg.as_bytes().len(), n.div_ceil(8));
            let msg = ChoiceMsg::from_vec(msg.as_bytes().to_vec(), n).unwrap();
            let zeros = q.apply_choices(&msg).unwrap().into_correlated();
            let got = chosen.into_correlated();
            for j in 0..n {
                assert_eq!(got[j], zeros.as_slice()[j] ^ delta.select(c[j]));
            }
            // Random OT with chosen choices.
            let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
            let (chosen, msg) = t.choose(&c).unwrap();
            let pairs = q.apply_choices(&msg).unwrap().into_random();
            let got = chosen.into_random();
            for j in 0..n {
                assert_eq!(got[j], pairs[j][c[j] as usize]);
                assert_ne!(got[j], pairs[j][1 - c[j] as usize]);
                assert_ne!(pairs[j][0] ^ pairs[j][1], delta);
            }
            // Random OT with the random choices.
            let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
            let pairs = q.into_random();
            let (b, got) = t.into_random();
            for j in 0..n {
                assert_eq!(got[j], pairs[j][b[j] as usize]);
            }
        }
    }

    #[test]
    fn outputs_are_handed_out_once_with_fresh_indices() {
        let (mut s, mut r) = pair(4);
        round(&mut s, &mut r);
        let (q1, _t1) = (s.take(100).unwrap(), r.take(100).unwrap());
        let (q2, _t2) = (s.take(100).unwrap(), r.take(100).unwrap());
        assert!(q1.as_slice().iter().zip(q2.as_slice()).all(|(a, b)| a != b));
        // The same block hashed at other indices gives other random OTs.
        let mut a = vec![Block(5); 4];
        let mut b = vec![Block(5); 4];
        hash_in_place(NONCE, 0, &mut a);
        hash_in_place(NONCE, 4, &mut b);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
        assert!(a.windows(2).all(|w| w[0] != w[1]));
        let mut c = vec![Block(5); 4];
        hash_in_place(NONCE + 1, 0, &mut c);
        assert!(a.iter().zip(&c).all(|(x, y)| x != y));
    }

    #[test]
    fn hostile_and_misused_messages_are_errors() {
        let (mut s, mut r) = pair(5);
        // Round message of the wrong length, either way.
        let (expanded, msg) = s.begin_round().unwrap().expand();
        let bytes = msg.into_bytes();
        assert_eq!(bytes.len(), 16 * SETUP.msg_blocks());
        for len in [0, bytes.len() - 1, bytes.len() + 16] {
            let mut b = bytes.clone();
            b.resize(len, 0);
            assert!(matches!(
                RoundMsg::from_vec(b, SETUP),
                Err(Error::PeerMisbehaved(_))
            ));
        }
        // A second round while one runs, and a message for other parameters.
        assert!(matches!(s.begin_round(), Err(Error::BadInput(_))));
        let job = r.begin_round().unwrap();
        assert!(matches!(r.begin_round(), Err(Error::BadInput(_))));
        let other = RoundMsg::from_vec(vec![0; 16 * MAIN.msg_blocks()], MAIN).unwrap();
        assert!(matches!(job.run(&other), Err(Error::BadInput(_))));
        // Nothing to hand out before a round finishes.
        assert!(matches!(s.take(1), Err(Error::BadInput(_))));
        assert!(matches!(s.take(MAX_BATCH + 1), Err(Error::BadInput(_))));
        // A tampered correction breaks the touched tree's outputs only, no
        // panic (semi-honest: contained, not detected). Corrections of tree
        // 3, level 5 affect leaves of block 3 only (before the code mixes
        // the secret in, which the tamper does not touch).
        let (mut s, mut r) = pair(6);
        let delta = s.delta();
        let (expanded2, msg) = s.begin_round().unwrap().expand();
        let mut b = msg.into_bytes();
        b[16 * (3 * SETUP.depth as usize + 5)] ^= 0x10;
        let job = r.begin_round().unwrap();
        let out_r = job.run(&RoundMsg::from_vec(b, SETUP).unwrap()).unwrap();
        s.finish_round(expanded2.encode()).unwrap();
        r.finish_round(out_r).unwrap();
        let n = s.available();
        let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
        let bad: Vec<usize> = (0..n)
            .filter(|&j| q.as_slice()[j] ^ t.as_slice()[j] != delta.select(t.as_slice()[j].lsb()))
            .collect();
        let leaves = SETUP.leaves();
        assert!(!bad.is_empty());
        assert!(bad.iter().all(|&j| j / leaves == 3), "{:?}", &bad[..4]);
        // The output of round 0 offered to an instance in round 1.
        drop(expanded);
        let (mut s, mut r) = pair(7);
        let (e, msg) = s.begin_round().unwrap().expand();
        let out_r = r.begin_round().unwrap().run(&msg).unwrap();
        let out_s = e.encode();
        let (mut s2, mut r2) = pair(8);
        round(&mut s2, &mut r2);
        let _running = s2.begin_round().unwrap();
        assert!(matches!(s2.finish_round(out_s), Err(Error::BadInput(_))));
        r.finish_round(out_r).unwrap();
        // A round whose output never came back leaves the instance spent.
        assert!(matches!(s.begin_round(), Err(Error::BadInput(_))));
        let (_, mut r) = pair(10);
        drop(r.begin_round().unwrap());
        assert!(matches!(r.begin_round(), Err(Error::BadInput(_))));
        let (mut s, mut r) = pair(12);
        round(&mut s, &mut r);
        // Choice corrections: wrong length, padding bits, wrong batch.
        assert!(matches!(
            ChoiceMsg::from_vec(vec![0; 2], 17),
            Err(Error::PeerMisbehaved(_))
        ));
        assert!(matches!(
            ChoiceMsg::from_vec(vec![0, 0, 0b10], 17),
            Err(Error::PeerMisbehaved(_))
        ));
        assert!(ChoiceMsg::from_vec(vec![0xff, 0xff, 0b1], 17).is_ok());
        assert!(matches!(
            ChoiceMsg::from_vec(vec![], MAX_BATCH + 1),
            Err(Error::BadInput(_))
        ));
        let t = r.take(5).unwrap();
        assert!(matches!(t.choose(&[true; 4]), Err(Error::BadInput(_))));
        // Batches appended out of order.
        let (mut q1, _) = (s.take(3).unwrap(), s.take(3).unwrap());
        assert!(matches!(
            q1.append(s.take(3).unwrap()),
            Err(Error::BadInput(_))
        ));
        let (mut t1, _) = (r.take(3).unwrap(), r.take(3).unwrap());
        assert!(matches!(
            t1.append(r.take(3).unwrap()),
            Err(Error::BadInput(_))
        ));
        assert!(t1.append(r.take(0).unwrap()).is_err());
        let q = s.take(5).unwrap();
        let eight = ChoiceMsg::from_vec(vec![0], 8).unwrap();
        assert!(matches!(q.apply_choices(&eight), Err(Error::BadInput(_))));
        // Δ with lsb 0 and a bootstrap of the wrong size are refused.
        let zeros = |n| CorrelatedZeros {
            blocks: vec![Block::ZERO; n],
        };
        let rng = || WipingRng::fork(&mut ChaCha20Rng::seed_from_u64(1));
        assert!(Sender::bootstrap(Block(2), 0, zeros(SETUP.base_cots()), rng()).is_err());
        assert!(Sender::bootstrap(Block(3), 0, zeros(5), rng()).is_err());
        assert!(Receiver::bootstrap(0, &[false; 5], vec![Block::ZERO; 5]).is_err());
    }
}
