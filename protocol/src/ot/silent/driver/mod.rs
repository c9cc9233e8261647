//! Async drivers: the silent COT state machines over a [`Channel`].
//!
//! [`Driven`] wraps a [`Sender`] or [`Receiver`] with at most one round
//! computing ahead. Each function is one party's side; the other party
//! calls its counterpart with the same size (`send_x` ↔ `receive_x`).
//! Batches are handed out in pieces of [`PIECE`] OTs; the crypto runs on
//! tokio's blocking pool (and inside it on rayon), off the async executor.
//!
//! # Rounds ahead
//! A round starts as soon as the demand announced ([`Driven::plan`]: a
//! phase announces a whole inference, each batch call its own size)
//! exceeds what the pool holds and none is running, at the same point of
//! the message stream for both parties: at the announcement or right after
//! a piece is handed out. The sender builds its trees and sends the
//! corrections there, then both parties finish the round in the background
//! while the caller goes on (with other OTs from the pool, or, in a phase,
//! with the layers before the next activation); it is awaited only when
//! the pool runs short. Which rounds run (their number and parameters) is
//! the same as without running ahead.
//!
//! Messages, in order:
//! - setup: IKNP's base OTs (receiver → sender 32 B, sender → receiver
//!   4 KiB), one SoftSpoken batch for the [`SETUP`] base (receiver →
//!   sender, 4 KiB and 2 B per OT: 84 KB), then the setup round;
//! - per round: sender → receiver the corrections ([`RoundMsg`], 16 B per
//!   tree level: 321 KB for the setup round and a small one, 274 KB for a
//!   main round);
//! - per piece with chosen choices: receiver → sender one bit per OT
//!   ([`ChoiceMsg`]), sent without waiting for a reply.

use std::ops::{Deref, DerefMut};

use rand_core::CryptoRng;
use tokio::task::JoinHandle;
use zeroize::Zeroize;

use super::cot::{
    ChoiceMsg, Receiver, ReceiverChosen, ReceiverCots, RoundMsg, RoundOutput, Sender, SenderCots,
};
use super::params::SETUP;
use crate::crypto::{Block, WipingRng};
use crate::exec::{join, off_executor};
use crate::ot::driver as iknp_driver;
use crate::ot::{CorrelatedZeros, iknp};
use crate::transport::Channel;
use crate::{Error, Result};

#[cfg(test)]
mod tests;

/// A silent COT party ([`Sender`] or [`Receiver`]) with at most one round
/// computing in the background (see *Rounds ahead*). Reads through to the
/// state machine ([`Deref`]).
pub struct Driven<T> {
    core: T,
    ahead: Option<JoinHandle<Result<RoundOutput>>>,
}

/// The sender with its driver.
pub type DrivenSender = Driven<Sender>;
/// The receiver with its driver.
pub type DrivenReceiver = Driven<Receiver>;

impl<T> Driven<T> {
    /// Wraps a state machine with no round running.
    pub fn new(core: T) -> Self {
        Self { core, ahead: None }
    }

    /// True while a round computes in the background.
    pub fn round_running(&self) -> bool {
        self.ahead.is_some()
    }
}

impl<T> Deref for Driven<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.core
    }
}

impl<T> DerefMut for Driven<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.core
    }
}

/// What [`Driven`] needs of a silent COT party: its pool, its rounds and
/// how the party starts one on the channel (the only step where sender and
/// receiver differ).
pub trait RoundParty: Send + Sized + 'static {
    /// A piece of outputs ([`SenderCots`] or [`ReceiverCots`]).
    type Cots;
    /// Outputs pooled and not handed out.
    fn available(&self) -> usize;
    /// Announces `n` outputs to be handed out soon.
    fn plan(&mut self, n: usize);
    /// Whether the announced demand exceeds the pool.
    fn wants_round(&self) -> bool;
    /// Pools the outputs of a finished round.
    fn finish_round(&mut self, out: RoundOutput) -> Result<()>;
    /// Hands out the next `n` pooled outputs.
    fn take(&mut self, n: usize) -> Result<Self::Cots>;
    /// Hands out the next `n` pooled outputs appended to the batch handed
    /// out last.
    fn take_more(&mut self, cots: &mut Self::Cots, n: usize) -> Result<()>;
    /// Starts the next round: its message now, the rest in the background.
    fn start<C: Channel>(
        d: &mut Driven<Self>,
        ch: &mut C,
    ) -> impl std::future::Future<Output = Result<()>> + Send;
}

impl RoundParty for Sender {
    type Cots = SenderCots;
    fn available(&self) -> usize {
        Sender::available(self)
    }
    fn plan(&mut self, n: usize) {
        Sender::plan(self, n)
    }
    fn wants_round(&self) -> bool {
        Sender::wants_round(self)
    }
    fn finish_round(&mut self, out: RoundOutput) -> Result<()> {
        Sender::finish_round(self, out)
    }
    fn take(&mut self, n: usize) -> Result<SenderCots> {
        Sender::take(self, n)
    }
    fn take_more(&mut self, cots: &mut SenderCots, n: usize) -> Result<()> {
        Sender::take_more(self, cots, n)
    }
    /// The trees and their corrections now (sent), the code in the background.
    async fn start<C: Channel>(d: &mut Driven<Self>, ch: &mut C) -> Result<()> {
        let job = d.core.begin_round()?;
        let (expanded, msg) = off_executor(move || Ok(job.expand())).await?;
        ch.send(msg.as_bytes()).await?;
        ch.flush().await?;
        d.ahead = Some(tokio::task::spawn_blocking(move || Ok(expanded.encode())));
        Ok(())
    }
}

impl RoundParty for Receiver {
    type Cots = ReceiverCots;
    fn available(&self) -> usize {
        Receiver::available(self)
    }
    fn plan(&mut self, n: usize) {
        Receiver::plan(self, n)
    }
    fn wants_round(&self) -> bool {
        Receiver::wants_round(self)
    }
    fn finish_round(&mut self, out: RoundOutput) -> Result<()> {
        Receiver::finish_round(self, out)
    }
    fn take(&mut self, n: usize) -> Result<ReceiverCots> {
        Receiver::take(self, n)
    }
    fn take_more(&mut self, cots: &mut ReceiverCots, n: usize) -> Result<()> {
        Receiver::take_more(self, cots, n)
    }
    /// Receives the corrections now, rebuilds the trees and applies the
    /// code in the background.
    async fn start<C: Channel>(d: &mut Driven<Self>, ch: &mut C) -> Result<()> {
        let job = d.core.begin_round()?;
        let p = job.params();
        let mut bytes = vec![0u8; RoundMsg::byte_len(&p)];
        ch.recv_into(&mut bytes).await?;
        d.ahead = Some(tokio::task::spawn_blocking(move || {
            job.run(&RoundMsg::from_vec(bytes, p)?)
        }));
        Ok(())
    }
}

impl<T: RoundParty> Driven<T> {
    /// Announces `n` outputs to be handed out soon ([`Sender::plan`],
    /// [`Receiver::plan`]) and starts a round if they exceed the pool; the
    /// other party makes the same call at the same point.
    pub async fn plan<C: Channel>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        self.core.plan(n);
        self.start_if_wanted(ch).await
    }

    async fn start_if_wanted<C: Channel>(&mut self, ch: &mut C) -> Result<()> {
        if self.ahead.is_none() && self.core.wants_round() {
            T::start(self, ch).await?;
        }
        Ok(())
    }

    /// Waits for the running round and pools its outputs.
    async fn finish(&mut self) -> Result<()> {
        if let Some(job) = self.ahead.take() {
            let out = join(job).await?;
            self.core.finish_round(out)?;
        }
        Ok(())
    }

    /// Runs the setup round (the first) to its end.
    async fn run_round<C: Channel>(&mut self, ch: &mut C) -> Result<()> {
        T::start(self, ch).await?;
        self.finish().await
    }

    /// The next `len` (≤ [`PIECE`]) outputs, after the rounds that makes
    /// necessary; then starts the next round if the announced demand
    /// exceeds the pool.
    async fn take<C: Channel>(&mut self, ch: &mut C, len: usize) -> Result<T::Cots> {
        self.make_available(ch, len).await?;
        let out = self.core.take(len)?;
        self.start_if_wanted(ch).await?;
        Ok(out)
    }

    /// [`Self::take`], appending to `out`, the batch handed out last.
    async fn take_more<C: Channel>(
        &mut self,
        ch: &mut C,
        out: &mut T::Cots,
        len: usize,
    ) -> Result<()> {
        self.make_available(ch, len).await?;
        self.core.take_more(out, len)?;
        self.start_if_wanted(ch).await
    }

    /// Runs rounds until the pool holds `len` outputs.
    async fn make_available<C: Channel>(&mut self, ch: &mut C, len: usize) -> Result<()> {
        while self.core.available() < len {
            if self.ahead.is_none() {
                T::start(self, ch).await?;
            }
            self.finish().await?;
        }
        Ok(())
    }
}

/// Sender setup: IKNP's base OTs, the [`SETUP`] base under Δ by
/// SoftSpoken, and the setup round. `delta` (lsb 1, for instance the garbler's free-XOR Δ)
/// fixes the correlation; `None` draws it.
///
/// # Errors
/// [`Error::BadInput`] for a Δ with lsb 0; channel and peer errors.
pub async fn setup_sender<C: Channel, R: CryptoRng + Send + ?Sized>(
    ch: &mut C,
    rng: &mut R,
    delta: Option<Block>,
) -> Result<DrivenSender> {
    let delta = delta.unwrap_or_else(|| Block(Block::random(rng).0 | 1));
    if !delta.lsb() {
        return Err(Error::BadInput("silent OT needs Δ with lsb 1".into()));
    }
    let mut iknp = iknp_driver::setup_sender(ch, rng, Some(delta)).await?;
    bootstrap_sender(ch, &mut iknp, rng).await
}

/// Receiver setup: IKNP's base OTs, SoftSpoken and the setup round.
pub async fn setup_receiver<C: Channel, R: CryptoRng + Send + ?Sized>(
    ch: &mut C,
    rng: &mut R,
) -> Result<DrivenReceiver> {
    let mut iknp = iknp_driver::setup_receiver(ch, rng).await?;
    bootstrap_receiver(ch, &mut iknp, rng).await
}

/// Sender setup on an IKNP session already set up (its Δ, lsb 1, becomes
/// the silent Δ): the [`SETUP`] base by SoftSpoken over its base OTs,
/// then the setup round.
pub async fn bootstrap_sender<C: Channel, R: CryptoRng + Send + ?Sized>(
    ch: &mut C,
    iknp: &mut iknp::Sender,
    rng: &mut R,
) -> Result<DrivenSender> {
    if !iknp.delta().lsb() {
        return Err(Error::BadInput("silent OT needs Δ with lsb 1".into()));
    }
    let zeros = iknp_driver::send_correlated_soft(ch, iknp, SETUP.base_cots()).await?;
    let s = Sender::bootstrap(
        iknp.delta(),
        iknp.session_nonce(),
        zeros,
        WipingRng::fork(rng),
    )?;
    let mut s = Driven::new(s);
    s.run_round(ch).await?;
    Ok(s)
}

/// Receiver setup on an IKNP session already set up.
pub async fn bootstrap_receiver<C: Channel, R: CryptoRng + Send + ?Sized>(
    ch: &mut C,
    iknp: &mut iknp::Receiver,
    rng: &mut R,
) -> Result<DrivenReceiver> {
    let mut choices: Vec<bool> = (0..SETUP.base_cots())
        .map(|_| rng.next_u32() & 1 == 1)
        .collect();
    let got = iknp_driver::receive_correlated_soft(ch, iknp, &choices, rng).await;
    let r = got.and_then(|t| Receiver::bootstrap(iknp.session_nonce(), &choices, t));
    choices.zeroize();
    let mut r = Driven::new(r?);
    r.run_round(ch).await?;
    Ok(r)
}

/// OTs per piece: a batch is handed out and converted piece by piece, with
/// rounds run as the pool empties, so at most two rounds' outputs (the
/// pool's and the one running ahead) wait whatever the batch size.
pub const PIECE: usize = 1 << 20;

/// `(start, len)` of each piece of a batch of `n`.
fn pieces(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).step_by(PIECE).map(move |s| (s, PIECE.min(n - s)))
}

/// `n` random-choice COTs, sender side: q_j (the receiver holds
/// q_j ⊕ b_j·Δ for its random b_j).
pub async fn send_cots<C: Channel>(
    ch: &mut C,
    s: &mut DrivenSender,
    n: usize,
) -> Result<SenderCots> {
    s.plan(ch, n).await?;
    let mut out = s.take(ch, n.min(PIECE)).await?;
    out.reserve(n - out.len());
    for (_, len) in pieces(n).skip(1) {
        s.take_more(ch, &mut out, len).await?;
    }
    Ok(out)
}

/// `n` random-choice COTs, receiver side.
pub async fn receive_cots<C: Channel>(
    ch: &mut C,
    r: &mut DrivenReceiver,
    n: usize,
) -> Result<ReceiverCots> {
    r.plan(ch, n).await?;
    let mut out = r.take(ch, n.min(PIECE)).await?;
    out.reserve(n - out.len());
    for (_, len) in pieces(n).skip(1) {
        r.take_more(ch, &mut out, len).await?;
    }
    Ok(out)
}

/// The next piece of `len` COTs with the receiver's choices, sender side:
/// q_j ⊕ d_j·Δ after its corrections.
async fn sender_chosen_piece<C: Channel>(
    ch: &mut C,
    s: &mut DrivenSender,
    len: usize,
) -> Result<SenderCots> {
    let cots = s.take(ch, len).await?;
    let mut bytes = vec![0u8; ChoiceMsg::byte_len(len)];
    ch.recv_into(&mut bytes).await?;
    cots.apply_choices(&ChoiceMsg::from_vec(bytes, len)?)
}

/// The next piece with chosen choices, receiver side: sends the
/// corrections (no reply is awaited, so pieces cost no round trip).
async fn receiver_chosen_piece<C: Channel>(
    ch: &mut C,
    r: &mut DrivenReceiver,
    choices: &[bool],
) -> Result<ReceiverChosen> {
    let cots = r.take(ch, choices.len()).await?;
    let (chosen, msg) = cots.choose(choices)?;
    ch.send(msg.as_bytes()).await?;
    ch.flush().await?;
    Ok(chosen)
}

/// Correlated OT with chosen choices, sender side: the zero messages m0_j
/// (move-only; the receiver learns m0_j ⊕ c_j·Δ for its choices c).
pub async fn send_correlated<C: Channel>(
    ch: &mut C,
    s: &mut DrivenSender,
    n: usize,
) -> Result<CorrelatedZeros> {
    s.plan(ch, n).await?;
    let mut out = CorrelatedZeros {
        blocks: Vec::with_capacity(n),
    };
    for (_, len) in pieces(n) {
        let piece = sender_chosen_piece(ch, s, len).await?;
        out.append(piece.into_correlated());
    }
    Ok(out)
}

/// Correlated OT with chosen choices, receiver side: m0_j ⊕ c_j·Δ for the
/// choices c.
pub async fn receive_correlated<C: Channel>(
    ch: &mut C,
    r: &mut DrivenReceiver,
    choices: &[bool],
) -> Result<Vec<Block>> {
    r.plan(ch, choices.len()).await?;
    let mut out = Vec::with_capacity(choices.len());
    for (start, len) in pieces(choices.len()) {
        let piece = receiver_chosen_piece(ch, r, &choices[start..start + len]).await?;
        let mut blocks = piece.into_correlated();
        out.extend_from_slice(&blocks);
        blocks.zeroize();
    }
    Ok(out)
}

/// Random OT with chosen choices, sender side: n random pairs.
pub async fn send_random<C: Channel>(
    ch: &mut C,
    s: &mut DrivenSender,
    n: usize,
) -> Result<Vec<[Block; 2]>> {
    s.plan(ch, n).await?;
    let mut out = Vec::with_capacity(n);
    for (_, len) in pieces(n) {
        let piece = sender_chosen_piece(ch, s, len).await?;
        let mut acc = std::mem::take(&mut out);
        out = off_executor(move || {
            piece.random_into(&mut acc);
            Ok(acc)
        })
        .await?;
    }
    Ok(out)
}

/// Random OT with chosen choices, receiver side: message number c_j of
/// pair j for the choices c.
pub async fn receive_random<C: Channel>(
    ch: &mut C,
    r: &mut DrivenReceiver,
    choices: &[bool],
) -> Result<Vec<Block>> {
    r.plan(ch, choices.len()).await?;
    let mut out = Vec::with_capacity(choices.len());
    for (start, len) in pieces(choices.len()) {
        let piece = receiver_chosen_piece(ch, r, &choices[start..start + len]).await?;
        let mut hashed = off_executor(move || Ok(piece.into_random())).await?;
        out.extend_from_slice(&hashed);
        hashed.zeroize();
    }
    Ok(out)
}

/// Random OT with the receiver's random choices, sender side: n random
/// pairs and no message at all (the choices stay the COTs' own).
pub async fn send_rot<C: Channel>(
    ch: &mut C,
    s: &mut DrivenSender,
    n: usize,
) -> Result<Vec<[Block; 2]>> {
    s.plan(ch, n).await?;
    let mut out = Vec::with_capacity(n);
    for (_, len) in pieces(n) {
        let piece = s.take(ch, len).await?;
        let mut acc = std::mem::take(&mut out);
        out = off_executor(move || {
            piece.random_into(&mut acc);
            Ok(acc)
        })
        .await?;
    }
    Ok(out)
}

/// Random OT with random choices, receiver side: the choices b_j (each
/// uniform, from the COTs) and message number b_j of pair j.
pub async fn receive_rot<C: Channel>(
    ch: &mut C,
    r: &mut DrivenReceiver,
    n: usize,
) -> Result<(Vec<bool>, Vec<Block>)> {
    r.plan(ch, n).await?;
    let (mut choices, mut out) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (_, len) in pieces(n) {
        let piece = r.take(ch, len).await?;
        let (mut c, mut hashed) = off_executor(move || Ok(piece.into_random())).await?;
        choices.extend_from_slice(&c);
        out.extend_from_slice(&hashed);
        c.zeroize();
        hashed.zeroize();
    }
    Ok((choices, out))
}
