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

/// In place: `xs[j] = TCCR(xs[j], tweak(first + j))` (Guo et al. 2020),
/// hashing a few hundred blocks per AES call without heap temporaries.
fn tccr_in_place(h: &FixedKeyAes, nonce: u64, first: u64, xs: &mut [Block]) {
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

/// Sender secrets fixed at setup: Δ = s and the PRG keyed by k_i^{s_i};
/// and the public session nonce.
struct SenderKeys {
    delta: Block,
    prgs: Vec<FixedKeyAes>,
    nonce: u64,
}

impl Drop for SenderKeys {
    fn drop(&mut self) {
        // The AES round keys zeroize themselves (`aes` feature `zeroize`).
        self.delta.zeroize();
    }
}

/// The IKNP sender after setup. Its Δ is the correlation of every
/// correlated OT it produces.
pub struct Sender {
    keys: Arc<SenderKeys>,
    next_block: u64,
}

impl Sender {
    /// Setup with a uniformly random Δ: answers the receiver's base OT
    /// message (see [`ReceiverSetup::new`]) and is ready to extend.
    pub fn new<R: CryptoRng + ?Sized>(
        rng: &mut R,
        msg: &base::SenderMsg,
    ) -> Result<(Self, base::ReceiverMsg)> {
        let delta = Block::random(rng);
        Self::with_delta(rng, delta, msg)
    }

    /// Setup with a given Δ, for instance the garbler's free-XOR offset
    /// (whose least significant bit is 1 for point-and-permute: IKNP then
    /// rests on the 127 secret bits of Δ, the same as free-XOR itself).
    pub fn with_delta<R: CryptoRng + ?Sized>(
        rng: &mut R,
        delta: Block,
        msg: &base::SenderMsg,
    ) -> Result<(Self, base::ReceiverMsg)> {
        if delta == Block::ZERO {
            return Err(Error::BadInput(
                "Δ = 0 would give the receiver both messages".into(),
            ));
        }
        let mut choices: Vec<bool> = (0..KAPPA).map(|i| (delta.0 >> i) & 1 == 1).collect();
        let (mut seeds, reply) = base::Receiver::receive(rng, &choices, msg)?;
        choices.zeroize();
        // `with_key` wipes the key copy it is given.
        let prgs = seeds
            .iter()
            .map(|k| FixedKeyAes::with_key(k.to_bytes()))
            .collect();
        seeds.zeroize();
        let nonce = session_nonce(&msg.to_bytes(), &reply.to_bytes());
        Ok((
            Self {
                keys: Arc::new(SenderKeys { delta, prgs, nonce }),
                next_block: 0,
            },
            reply,
        ))
    }

    /// The public 48-bit session nonce, equal to the receiver's
    /// [`Receiver::session_nonce`]: part of every OT hash tweak.
    pub fn session_nonce(&self) -> u64 {
        self.keys.nonce
    }

    /// The global correlation Δ of correlated OTs.
    pub fn delta(&self) -> Block {
        self.keys.delta
    }

    /// Reserves the next `n` OTs (indices and PRG blocks) and returns the
    /// work item that processes the receiver's message for them.
    pub fn begin(&mut self, n: usize) -> Result<SenderExtension> {
        check_batch(n)?;
        let first_block = self.next_block;
        self.next_block += blocks_for(n) as u64;
        Ok(SenderExtension {
            keys: Arc::clone(&self.keys),
            first_block,
            n,
        })
    }

    /// [`Self::begin`] and [`SenderExtension::finish`] in one step.
    pub fn extend(&mut self, msg: &ExtendMsg) -> Result<SenderBatch> {
        self.begin(msg.n())?.finish(msg)
    }
}

/// The sender's share of one extension, independent of the session state
/// (`Send + 'static`, so it can run on a worker thread).
pub struct SenderExtension {
    keys: Arc<SenderKeys>,
    first_block: u64,
    n: usize,
}

impl SenderExtension {
    /// Number of OTs.
    pub fn n(&self) -> usize {
        self.n
    }

    /// q^i = G(k_i^{s_i}) ⊕ s_i·u^i, transposed into the rows q_j.
    pub fn finish(self, msg: &ExtendMsg) -> Result<SenderBatch> {
        self.finish_with(msg, Vec::new())
    }

    /// [`Self::finish`], reusing the memory of `rows` for the batch.
    pub fn finish_with(self, msg: &ExtendMsg, mut rows: Vec<Block>) -> Result<SenderBatch> {
        if msg.n != self.n {
            return Err(Error::BadInput(format!(
                "extension reserved for {} OTs, message decoded for {}",
                self.n, msg.n
            )));
        }
        let nblk = blocks_for(self.n);
        rows.zeroize();
        rows.clear();
        with_columns(KAPPA * nblk, |q| {
            for (i, (col, u)) in q
                .chunks_exact_mut(nblk)
                .zip(msg.bytes.chunks_exact(16 * nblk))
                .enumerate()
            {
                expand(&self.keys.prgs[i], self.first_block, col);
                let s_i = mask((self.keys.delta.0 >> i) & 1 == 1);
                for (c, u) in col.iter_mut().zip(u.chunks_exact(16)) {
                    *c ^= read_block(u) & s_i;
                }
            }
            transpose(q, nblk, &mut rows);
        });
        rows.truncate(self.n);
        Ok(SenderBatch {
            delta: self.keys.delta,
            nonce: self.keys.nonce,
            first_index: self.first_block * TILE as u64,
            rows,
        })
    }
}

/// The sender's rows q_j of one extension, to be turned into exactly one
/// kind of OT (each conversion consumes the batch).
pub struct SenderBatch {
    delta: Block,
    nonce: u64,
    first_index: u64,
    rows: Vec<Block>,
}

impl Drop for SenderBatch {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.rows.zeroize();
    }
}

impl SenderBatch {
    /// Number of OTs.
    pub fn n(&self) -> usize {
        self.rows.len()
    }

    /// Correlated OT: m0_j (and m1_j = m0_j ⊕ Δ), as a move-only value
    /// (for instance the client's input zero labels of a garbled layer).
    pub fn into_correlated(mut self) -> CorrelatedZeros {
        CorrelatedZeros {
            blocks: std::mem::take(&mut self.rows),
        }
    }

    /// Random OT: (H(j, q_j), H(j, q_j ⊕ Δ)).
    pub fn into_random(self) -> Vec<[Block; 2]> {
        let mut out = Vec::with_capacity(self.n());
        self.random_into(&mut out);
        out
    }

    /// [`Self::into_random`], appending to `out`; returns the batch's row
    /// buffer, zeroed and empty, for reuse.
    pub fn random_into(mut self, out: &mut Vec<[Block; 2]>) -> Vec<Block> {
        out.reserve(self.n());
        tccr_both(
            &FixedKeyAes::new(),
            self.nonce,
            self.first_index,
            self.delta,
            &self.rows,
            |_, a, b| out.push([a, b]),
        );
        self.take_rows()
    }

    /// Chosen-message OT: masks each pair `msgs[j]` for the receiver.
    pub fn into_chosen(self, msgs: &[[Block; 2]]) -> Result<ChosenMsg> {
        Ok(self.chosen_with(msgs, Vec::new())?.0)
    }

    /// [`Self::into_chosen`] writing into the memory of `buf`; also returns
    /// the batch's row buffer, zeroed and empty, for reuse.
    pub fn chosen_with(
        mut self,
        msgs: &[[Block; 2]],
        mut buf: Vec<u8>,
    ) -> Result<(ChosenMsg, Vec<Block>)> {
        let n = self.n();
        if msgs.len() != n {
            return Err(Error::BadInput(format!(
                "{} message pairs for a batch of {n} OTs",
                msgs.len()
            )));
        }
        buf.clear();
        buf.reserve(ChosenMsg::byte_len(n));
        tccr_both(
            &FixedKeyAes::new(),
            self.nonce,
            self.first_index,
            self.delta,
            &self.rows,
            |j, a, b| {
                buf.extend_from_slice(&(msgs[j][0] ^ a).to_bytes());
                buf.extend_from_slice(&(msgs[j][1] ^ b).to_bytes());
            },
        );
        Ok((ChosenMsg { n, bytes: buf }, self.take_rows()))
    }

    fn take_rows(&mut self) -> Vec<Block> {
        let mut rows = std::mem::take(&mut self.rows);
        rows.zeroize();
        rows.clear();
        rows
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

/// The IKNP receiver before setup: it plays the base OT *sender*.
pub struct ReceiverSetup {
    base: base::Sender,
    /// Encoding of the base OT message A (public), for the session nonce.
    a: Vec<u8>,
}

impl ReceiverSetup {
    /// Starts setup; the message goes to the sender ([`Sender::new`]).
    pub fn new<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<(Self, base::SenderMsg)> {
        let (base, msg) = base::Sender::new(rng, KAPPA)?;
        Ok((
            Self {
                base,
                a: msg.to_bytes(),
            },
            msg,
        ))
    }

    /// Finishes setup with the sender's base OT reply.
    pub fn finish(self, msg: &base::ReceiverMsg) -> Result<Receiver> {
        let mut seeds = self.base.finish(msg)?;
        // `with_key` wipes the key copy it is given.
        let prg0 = seeds
            .iter()
            .map(|k| FixedKeyAes::with_key(k[0].to_bytes()))
            .collect();
        let prg1 = seeds
            .iter()
            .map(|k| FixedKeyAes::with_key(k[1].to_bytes()))
            .collect();
        seeds.zeroize();
        let nonce = session_nonce(&self.a, &msg.to_bytes());
        Ok(Receiver {
            keys: Arc::new(ReceiverKeys { prg0, prg1, nonce }),
            next_block: 0,
        })
    }
}

/// Both PRGs of every column (their AES round keys zeroize on drop), and the
/// public session nonce.
struct ReceiverKeys {
    prg0: Vec<FixedKeyAes>,
    prg1: Vec<FixedKeyAes>,
    nonce: u64,
}

/// The IKNP receiver after setup.
pub struct Receiver {
    keys: Arc<ReceiverKeys>,
    next_block: u64,
}

impl Receiver {
    /// The public 48-bit session nonce, equal to the sender's
    /// [`Sender::session_nonce`].
    pub fn session_nonce(&self) -> u64 {
        self.keys.nonce
    }

    /// Reserves the next `n` OTs and returns the work item that builds U.
    pub fn begin(&mut self, n: usize) -> Result<ReceiverExtension> {
        check_batch(n)?;
        let first_block = self.next_block;
        self.next_block += blocks_for(n) as u64;
        Ok(ReceiverExtension {
            keys: Arc::clone(&self.keys),
            first_block,
            n,
        })
    }

    /// [`Self::begin`] and [`ReceiverExtension::run`] in one step.
    pub fn extend(&mut self, choices: &[bool]) -> Result<(ReceiverBatch, ExtendMsg)> {
        self.begin(choices.len())?.run(choices)
    }
}

/// The receiver's share of one extension, independent of the session state
/// (`Send + 'static`, so it can run on a worker thread).
pub struct ReceiverExtension {
    keys: Arc<ReceiverKeys>,
    first_block: u64,
    n: usize,
}

impl ReceiverExtension {
    /// Number of OTs.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Builds U for the choice bits and keeps the rows t_j.
    pub fn run(self, choices: &[bool]) -> Result<(ReceiverBatch, ExtendMsg)> {
        self.run_with(choices, Vec::new(), Vec::new())
    }

    /// [`Self::run`], reusing the memory of `rows` (for the t_j) and `buf`
    /// (for U).
    pub fn run_with(
        self,
        choices: &[bool],
        mut rows: Vec<Block>,
        mut buf: Vec<u8>,
    ) -> Result<(ReceiverBatch, ExtendMsg)> {
        if choices.len() != self.n {
            return Err(Error::BadInput(format!(
                "{} choice bits for an extension of {} OTs",
                choices.len(),
                self.n
            )));
        }
        let nblk = blocks_for(self.n);
        // r packed 128 choices per block; the padding bits are zero.
        let mut r = vec![Block::ZERO; nblk];
        for (blk, bits) in r.iter_mut().zip(choices.chunks(TILE)) {
            blk.0 = bits
                .iter()
                .rev()
                .fold(0u128, |acc, &b| (acc << 1) | b as u128);
        }
        buf.clear();
        buf.reserve(ExtendMsg::byte_len(self.n));
        rows.zeroize();
        rows.clear();
        // Scratch: the κ columns t^i, then one column of G(k_i^1).
        with_columns((KAPPA + 1) * nblk, |scratch| {
            let (t, g1) = scratch.split_at_mut(KAPPA * nblk);
            for (i, tc) in t.chunks_exact_mut(nblk).enumerate() {
                expand(&self.keys.prg0[i], self.first_block, tc);
                expand(&self.keys.prg1[i], self.first_block, g1);
                for ((t, g), r) in tc.iter().zip(g1.iter()).zip(&r) {
                    buf.extend_from_slice(&(*t ^ *g ^ *r).to_bytes());
                }
            }
            transpose(t, nblk, &mut rows);
        });
        rows.truncate(self.n);
        let batch = ReceiverBatch {
            nonce: self.keys.nonce,
            first_index: self.first_block * TILE as u64,
            choices: r,
            rows,
        };
        Ok((
            batch,
            ExtendMsg {
                n: self.n,
                bytes: buf,
            },
        ))
    }
}

/// The receiver's rows t_j and choice bits of one extension, to be turned
/// into exactly one kind of OT. Each conversion works in place and hands
/// the buffer over as its output.
pub struct ReceiverBatch {
    nonce: u64,
    first_index: u64,
    choices: Vec<Block>,
    rows: Vec<Block>,
}

impl Drop for ReceiverBatch {
    fn drop(&mut self) {
        self.choices.zeroize();
        self.rows.zeroize();
    }
}

impl ReceiverBatch {
    /// Number of OTs.
    pub fn n(&self) -> usize {
        self.rows.len()
    }

    fn choice(&self, j: usize) -> bool {
        (self.choices[j / TILE].0 >> (j % TILE)) & 1 == 1
    }

    /// Correlated OT: m_{r_j} = t_j.
    pub fn into_correlated(mut self) -> Vec<Block> {
        std::mem::take(&mut self.rows)
    }

    /// Random OT: H(j, t_j), the sender's message number r_j.
    pub fn into_random(mut self) -> Vec<Block> {
        let mut rows = std::mem::take(&mut self.rows);
        tccr_in_place(&FixedKeyAes::new(), self.nonce, self.first_index, &mut rows);
        rows
    }

    /// Chosen-message OT: unmasks y_j^{r_j}.
    pub fn into_chosen(mut self, msg: &ChosenMsg) -> Result<Vec<Block>> {
        if msg.n() != self.n() {
            return Err(Error::BadInput(format!(
                "chosen OT message decoded for {} OTs, batch has {}",
                msg.n(),
                self.n()
            )));
        }
        let mut rows = std::mem::take(&mut self.rows);
        tccr_in_place(&FixedKeyAes::new(), self.nonce, self.first_index, &mut rows);
        for (j, (o, y)) in rows.iter_mut().zip(msg.bytes.chunks_exact(32)).enumerate() {
            let (y0, y1) = (read_block(&y[..16]), read_block(&y[16..]));
            // y^{r_j} without branching on the choice bit.
            *o ^= y0 ^ ((y0 ^ y1) & mask(self.choice(j)));
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    fn setup(seed: u64, delta: Option<Block>) -> (Sender, Receiver, ChaCha20Rng) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (rs, a) = ReceiverSetup::new(&mut rng).unwrap();
        let a = base::SenderMsg::from_bytes(&a.to_bytes()).unwrap();
        let (sender, b) = match delta {
            Some(d) => Sender::with_delta(&mut rng, d, &a).unwrap(),
            None => Sender::new(&mut rng, &a).unwrap(),
        };
        let b = base::ReceiverMsg::from_bytes(&b.to_bytes(), KAPPA).unwrap();
        let receiver = rs.finish(&b).unwrap();
        (sender, receiver, rng)
    }

    fn random_choices(rng: &mut ChaCha20Rng, n: usize) -> Vec<bool> {
        (0..n).map(|_| rng.next_u32() & 1 == 1).collect()
    }

    /// One extension through the wire encoding.
    fn extend(s: &mut Sender, r: &mut Receiver, choices: &[bool]) -> (SenderBatch, ReceiverBatch) {
        let (rb, msg) = r.extend(choices).unwrap();
        let msg = ExtendMsg::from_bytes(msg.as_bytes(), choices.len()).unwrap();
        (s.extend(&msg).unwrap(), rb)
    }

    const SIZES: [usize; 6] = [1, 127, 128, 129, 1000, 70_000];

    #[test]
    fn correlated_ot_every_value() {
        let delta = Block(0x0123_4567_89ab_cdef_0f1e_2d3c_4b5a_6979 | 1);
        let (mut s, mut r, mut rng) = setup(10, Some(delta));
        assert_eq!(s.delta(), delta);
        for n in SIZES {
            let choices = random_choices(&mut rng, n);
            let (sb, rb) = extend(&mut s, &mut r, &choices);
            let m0 = sb.into_correlated();
            let m0 = m0.as_slice();
            let got = rb.into_correlated();
            assert_eq!((m0.len(), got.len()), (n, n));
            for j in 0..n {
                let expect = if choices[j] { m0[j] ^ delta } else { m0[j] };
                assert_eq!(got[j], expect, "n = {n}, j = {j}");
                assert_ne!(got[j], expect ^ delta);
            }
        }
    }

    #[test]
    fn random_ot_every_value() {
        let (mut s, mut r, mut rng) = setup(11, None);
        for n in SIZES {
            let choices = random_choices(&mut rng, n);
            let (sb, rb) = extend(&mut s, &mut r, &choices);
            let pairs = sb.into_random();
            let got = rb.into_random();
            assert_eq!((pairs.len(), got.len()), (n, n));
            for j in 0..n {
                let c = choices[j] as usize;
                assert_eq!(got[j], pairs[j][c], "n = {n}, j = {j}");
                assert_ne!(got[j], pairs[j][1 - c]);
                // Hashing breaks the Δ correlation.
                assert_ne!(pairs[j][0] ^ pairs[j][1], s.delta());
            }
        }
    }

    #[test]
    fn chosen_ot_every_value() {
        let (mut s, mut r, mut rng) = setup(12, None);
        for n in SIZES {
            let choices = random_choices(&mut rng, n);
            let msgs: Vec<[Block; 2]> = (0..n)
                .map(|_| [Block::random(&mut rng), Block::random(&mut rng)])
                .collect();
            let (sb, rb) = extend(&mut s, &mut r, &choices);
            let y = sb.into_chosen(&msgs).unwrap();
            let y = ChosenMsg::from_bytes(y.as_bytes(), n).unwrap();
            let got = rb.into_chosen(&y).unwrap();
            for j in 0..n {
                let c = choices[j] as usize;
                assert_eq!(got[j], msgs[j][c], "n = {n}, j = {j}");
                assert_ne!(got[j], msgs[j][1 - c]);
            }
        }
    }

    #[test]
    fn consecutive_extensions_use_fresh_indices() {
        // The same choices twice must give unrelated outputs.
        let (mut s, mut r, _) = setup(13, None);
        let choices = vec![true; 200];
        let (sa, ra) = extend(&mut s, &mut r, &choices);
        let (sb, rb) = extend(&mut s, &mut r, &choices);
        let (a, b) = (ra.into_random(), rb.into_random());
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
        let (pa, pb) = (sa.into_random(), sb.into_random());
        assert!(pa.iter().zip(&pb).all(|(x, y)| x[1] != y[1]));
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        let (mut s, mut r, mut rng) = setup(14, None);
        let choices = random_choices(&mut rng, 300);
        let (rb, msg) = r.extend(&choices).unwrap();
        let bytes = msg.as_bytes().to_vec();
        assert_eq!(bytes.len(), ExtendMsg::byte_len(300));
        assert!(matches!(
            ExtendMsg::from_bytes(&bytes[..bytes.len() - 16], 300),
            Err(Error::PeerMisbehaved(_))
        ));
        assert!(matches!(
            ExtendMsg::from_bytes(&bytes, 500),
            Err(Error::PeerMisbehaved(_))
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            ExtendMsg::from_bytes(&long, 300),
            Err(Error::PeerMisbehaved(_))
        ));
        assert!(matches!(
            ExtendMsg::from_bytes(&bytes, 0),
            Err(Error::BadInput(_))
        ));
        assert!(matches!(
            ExtendMsg::from_bytes(&bytes, MAX_BATCH + 1),
            Err(Error::BadInput(_))
        ));
        // 300 OTs and 257 OTs have the same padded size: the sender still
        // decodes only what it expects, and a mismatched batch is refused.
        let sb = s
            .extend(&ExtendMsg::from_bytes(&bytes, 300).unwrap())
            .unwrap();
        assert!(matches!(
            sb.into_chosen(&[[Block::ZERO; 2]; 3]),
            Err(Error::BadInput(_))
        ));
        let y = ChosenMsg {
            n: 299,
            bytes: vec![0; 32 * 299],
        };
        assert!(matches!(rb.into_chosen(&y), Err(Error::BadInput(_))));
        assert!(matches!(
            ChosenMsg::from_bytes(&[0u8; 32 * 10 - 1], 10),
            Err(Error::PeerMisbehaved(_))
        ));
        assert!(matches!(r.extend(&[]), Err(Error::BadInput(_))));
        assert!(matches!(s.begin(MAX_BATCH + 1), Err(Error::BadInput(_))));
    }

    #[test]
    fn batched_hashes_match_tccr() {
        let h = FixedKeyAes::new();
        let delta = Block(0xabcdef);
        let xs: Vec<Block> = (0..600u128)
            .map(|i| Block(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
            .collect();
        let mut inplace = xs.clone();
        let nonce = 0xabc_def0_1234;
        tccr_in_place(&h, nonce, 1000, &mut inplace);
        let mut seen = 0;
        tccr_both(&h, nonce, 1000, delta, &xs, |j, a, b| {
            assert_eq!(j, seen);
            seen += 1;
            assert_eq!(a, h.tccr(xs[j], tweak(nonce, 1000 + j as u64)));
            assert_eq!(b, h.tccr(xs[j] ^ delta, tweak(nonce, 1000 + j as u64)));
            assert_eq!(a, inplace[j]);
        });
        assert_eq!(seen, xs.len());
        // Another session nonce gives other hashes of the same rows.
        let mut other = xs.clone();
        tccr_in_place(&h, nonce ^ 1, 1000, &mut other);
        assert!(other.iter().zip(&inplace).all(|(a, b)| a != b));
        // Tweak layout: domain (bit 127 clear), nonce, index.
        assert_eq!(
            tweak(nonce, 7).0,
            (0x4f54u128 << 112) | ((nonce as u128) << 64) | 7
        );
        assert_eq!(tweak(nonce, 7).0 >> 127, 0);
    }

    #[test]
    fn both_parties_derive_the_same_fresh_session_nonce() {
        let (s1, r1, _) = setup(21, None);
        let (s2, r2, _) = setup(22, None);
        assert_eq!(s1.session_nonce(), r1.session_nonce());
        assert_eq!(s2.session_nonce(), r2.session_nonce());
        assert_ne!(s1.session_nonce(), s2.session_nonce());
        assert!(s1.session_nonce() < 1 << NONCE_BITS);
    }

    #[test]
    fn tampered_extension_breaks_only_the_touched_ots() {
        // Flipping a bit of u^i flips bit i of q_j for the sender, so OT j
        // is no longer consistent, but no panic and other OTs are unaffected
        // (semi-honest protocol: tampering is not detected, only contained).
        let delta = Block::ONES;
        let (mut s, mut r, mut rng) = setup(15, Some(delta));
        let choices = random_choices(&mut rng, 256);
        let (rb, msg) = r.extend(&choices).unwrap();
        let mut bytes = msg.as_bytes().to_vec();
        bytes[0] ^= 1; // column 0, OT 0
        let sb = s
            .extend(&ExtendMsg::from_bytes(&bytes, 256).unwrap())
            .unwrap();
        let (m0, got) = (sb.into_correlated(), rb.into_correlated());
        let m0 = m0.as_slice();
        let ok = |j: usize| got[j] == if choices[j] { m0[j] ^ delta } else { m0[j] };
        assert!(!ok(0));
        assert!((1..256).all(ok));
    }

    #[test]
    fn zero_delta_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(16);
        let (_, a) = ReceiverSetup::new(&mut rng).unwrap();
        assert!(matches!(
            Sender::with_delta(&mut rng, Block::ZERO, &a),
            Err(Error::BadInput(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        /// Chosen-message OT of any size delivers exactly the chosen messages,
        /// also after an earlier extension of another size.
        #[test]
        fn chosen_ot_any_size(seed in 0u64..1 << 32, first in 1usize..600, n in 1usize..3000) {
            let (mut s, mut r, mut rng) = setup(seed, None);
            let warm = random_choices(&mut rng, first);
            let _ = extend(&mut s, &mut r, &warm);
            let choices = random_choices(&mut rng, n);
            let msgs: Vec<[Block; 2]> = (0..n).map(|_| [Block::random(&mut rng), Block::random(&mut rng)]).collect();
            let (sb, rb) = extend(&mut s, &mut r, &choices);
            let y = sb.into_chosen(&msgs).unwrap();
            let got = rb.into_chosen(&ChosenMsg::from_bytes(y.as_bytes(), n).unwrap()).unwrap();
            for j in 0..n {
                proptest::prop_assert_eq!(got[j], msgs[j][choices[j] as usize]);
            }
        }
    }
}
