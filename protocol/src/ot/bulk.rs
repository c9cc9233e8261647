//! The bulk OT of a session: one sender and one receiver type in front of
//! the two OT extensions, so that the phases ask for OTs without knowing
//! which extension makes them.
//!
//! - [`Extension::Silent`] (the default): LPN-based silent COT
//!   ([`super::silent`]), bootstrapped by IKNP. After its setup it costs the
//!   round messages (0.027 B per OT) plus one bit per OT whose choice the
//!   receiver fixes; OTs with random choices cost nothing more.
//! - [`Extension::Iknp`]: IKNP alone ([`super::iknp`], 16 B per OT), for
//!   comparison.
//!
//! An instance lives as long as its session (one per direction the session
//! needs) and hands out every OT once: each call consumes fresh outputs,
//! which it converts into one kind of OT by value. Random OT hashes each
//! output under a tweak with its session-wide index, so no two calls (two
//! layers, two inferences) ever share a pad. The correlation Δ
//! ([`BulkSender::delta`], lsb 1) is fixed for the instance's lifetime: the
//! session's garbler uses it as its free-XOR Δ (see the `gc` module docs,
//! *One Δ per session*, for why that is safe).
//!
//! Each call is one party's side; the peer calls its counterpart with the
//! same size, in the same order:
//!
//! | sender | receiver | choices | bytes besides rounds (silent) |
//! |---|---|---|---|
//! | [`BulkSender::send_correlated`] | [`BulkReceiver::receive_correlated`] | the receiver's | 1 bit per OT |
//! | [`BulkSender::send_random`] | [`BulkReceiver::receive_random`] | the receiver's | 1 bit per OT |
//! | [`BulkSender::send_rot`] | [`BulkReceiver::receive_rot`] | random | none |

use rand_core::CryptoRng;
use zeroize::Zeroize;

use super::{CorrelatedZeros, driver as iknp_driver, iknp, silent};
use crate::crypto::Block;
use crate::transport::Channel;
use crate::{Error, Result};

/// Which OT extension makes a session's bulk OTs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Extension {
    /// IKNP (Ishai et al., CRYPTO 2003): 16 B per OT on the wire.
    Iknp,
    /// Ferret-style silent COT bootstrapped by IKNP ([`super::silent`]).
    #[default]
    Silent,
}

impl Extension {
    /// `iknp` or `silent`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Iknp => "iknp",
            Self::Silent => "silent",
        }
    }
}

impl std::fmt::Display for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Extension {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "iknp" => Ok(Self::Iknp),
            "silent" => Ok(Self::Silent),
            _ => Err(Error::BadInput(format!(
                "OT extension {s:?}: expected iknp or silent"
            ))),
        }
    }
}

/// The sending side of a session's bulk OT.
pub enum BulkSender {
    /// IKNP alone.
    Iknp(iknp::Sender),
    /// Silent COT (boxed: its state is larger than IKNP's).
    Silent(Box<silent::driver::DrivenSender>),
}

/// The receiving side of a session's bulk OT.
pub enum BulkReceiver {
    /// IKNP alone.
    Iknp(iknp::Receiver),
    /// Silent COT.
    Silent(Box<silent::driver::DrivenReceiver>),
}

impl BulkSender {
    /// Sets up the sender (the receiver runs [`BulkReceiver::setup`] with
    /// the same extension). `delta` (lsb 1) fixes the correlation; `None`
    /// draws it.
    ///
    /// # Errors
    /// [`Error::BadInput`] for a Δ with lsb 0 in silent mode; channel and
    /// peer errors.
    pub async fn setup<C: Channel, R: CryptoRng + Send + ?Sized>(
        ch: &mut C,
        rng: &mut R,
        extension: Extension,
        delta: Option<Block>,
    ) -> Result<Self> {
        Ok(match extension {
            Extension::Iknp => Self::Iknp(iknp_driver::setup_sender(ch, rng, delta).await?),
            Extension::Silent => Self::Silent(Box::new(
                silent::driver::setup_sender(ch, rng, delta).await?,
            )),
        })
    }

    /// The extension behind this sender.
    pub fn extension(&self) -> Extension {
        match self {
            Self::Iknp(_) => Extension::Iknp,
            Self::Silent(_) => Extension::Silent,
        }
    }

    /// The correlation Δ of every correlated OT.
    pub fn delta(&self) -> Block {
        match self {
            Self::Iknp(s) => s.delta(),
            Self::Silent(s) => s.delta(),
        }
    }

    /// Announces that `n` OTs will be asked for soon (the receiver makes
    /// the same call at the same point), so that silent OT sizes its rounds
    /// for all of them (a main round for a large demand, a small one for a
    /// few: [`silent::Sender::plan`]) and starts the first one now, to
    /// finish in the background while the caller does other work. IKNP
    /// ignores it.
    pub async fn plan<C: Channel>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        match self {
            Self::Iknp(_) => Ok(()),
            Self::Silent(s) => s.plan(ch, n).await,
        }
    }

    /// Correlated OT with the receiver's choices c: the zero messages m0_j
    /// (the receiver gets m0_j ⊕ c_j·Δ).
    pub async fn send_correlated<C: Channel>(
        &mut self,
        ch: &mut C,
        n: usize,
    ) -> Result<CorrelatedZeros> {
        match self {
            Self::Iknp(s) => iknp_driver::send_correlated(ch, s, n).await,
            Self::Silent(s) => silent::driver::send_correlated(ch, s, n).await,
        }
    }

    /// Random OT with the receiver's choices: n random pairs.
    pub async fn send_random<C: Channel>(
        &mut self,
        ch: &mut C,
        n: usize,
    ) -> Result<Vec<[Block; 2]>> {
        match self {
            Self::Iknp(s) => iknp_driver::send_random(ch, s, n).await,
            Self::Silent(s) => silent::driver::send_random(ch, s, n).await,
        }
    }

    /// Random OT with random choices (the receiver learns them): n random
    /// pairs.
    pub async fn send_rot<C: Channel>(&mut self, ch: &mut C, n: usize) -> Result<Vec<[Block; 2]>> {
        match self {
            Self::Iknp(s) => iknp_driver::send_random(ch, s, n).await,
            Self::Silent(s) => silent::driver::send_rot(ch, s, n).await,
        }
    }

    /// Frees working memory kept between calls (call it when a burst of
    /// OTs ends, for example after an offline phase).
    pub fn release_spare(&mut self) {
        if let Self::Silent(s) = self {
            s.release_spare();
        }
    }

    /// Bytes of memory the instance holds between calls.
    pub fn held_bytes(&self) -> usize {
        match self {
            Self::Iknp(_) => 0,
            Self::Silent(s) => s.held_bytes(),
        }
    }
}

impl BulkReceiver {
    /// Sets up the receiver.
    pub async fn setup<C: Channel, R: CryptoRng + Send + ?Sized>(
        ch: &mut C,
        rng: &mut R,
        extension: Extension,
    ) -> Result<Self> {
        Ok(match extension {
            Extension::Iknp => Self::Iknp(iknp_driver::setup_receiver(ch, rng).await?),
            Extension::Silent => {
                Self::Silent(Box::new(silent::driver::setup_receiver(ch, rng).await?))
            }
        })
    }

    /// The extension behind this receiver.
    pub fn extension(&self) -> Extension {
        match self {
            Self::Iknp(_) => Extension::Iknp,
            Self::Silent(_) => Extension::Silent,
        }
    }

    /// Announces `n` OTs to come (see [`BulkSender::plan`]).
    pub async fn plan<C: Channel>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        match self {
            Self::Iknp(_) => Ok(()),
            Self::Silent(r) => r.plan(ch, n).await,
        }
    }

    /// Correlated OT with choices c: m0_j ⊕ c_j·Δ.
    pub async fn receive_correlated<C: Channel>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
    ) -> Result<Vec<Block>> {
        match self {
            Self::Iknp(r) => iknp_driver::receive_correlated(ch, r, choices).await,
            Self::Silent(r) => silent::driver::receive_correlated(ch, r, choices).await,
        }
    }

    /// Random OT with choices c: message number c_j of pair j.
    pub async fn receive_random<C: Channel>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
    ) -> Result<Vec<Block>> {
        match self {
            Self::Iknp(r) => iknp_driver::receive_random(ch, r, choices).await,
            Self::Silent(r) => silent::driver::receive_random(ch, r, choices).await,
        }
    }

    /// Random OT with uniformly random choices b: (b, message number b_j of
    /// pair j). Silent OT takes the choices from its outputs; IKNP draws
    /// them from `rng`.
    pub async fn receive_rot<C: Channel, R: CryptoRng + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
        rng: &mut R,
    ) -> Result<(Vec<bool>, Vec<Block>)> {
        match self {
            Self::Iknp(r) => {
                let mut choices: Vec<bool> = (0..n).map(|_| rng.next_u32() & 1 == 1).collect();
                match iknp_driver::receive_random(ch, r, &choices).await {
                    Ok(got) => Ok((choices, got)),
                    Err(e) => {
                        choices.zeroize();
                        Err(e)
                    }
                }
            }
            Self::Silent(r) => silent::driver::receive_rot(ch, r, n).await,
        }
    }

    /// Frees working memory kept between calls.
    pub fn release_spare(&mut self) {
        if let Self::Silent(r) = self {
            r.release_spare();
        }
    }

    /// Bytes of memory the instance holds between calls.
    pub fn held_bytes(&self) -> usize {
        match self {
            Self::Iknp(_) => 0,
            Self::Silent(r) => r.held_bytes(),
        }
    }
}

/// One party's bulk OT instances in a session: `send` for the direction
/// in which it is the sender, `recv` for the other. Each is set up by the
/// first offline phase that needs it (both parties decide alike, from the
/// public plan) and then serves every later phase of the session.
#[derive(Default)]
pub struct SessionOts {
    send: Option<BulkSender>,
    recv: Option<BulkReceiver>,
}

impl SessionOts {
    /// Sets up the sending instance unless it exists (the peer calls
    /// [`Self::ensure_receiver`] at the same point).
    pub async fn ensure_sender<C: Channel, R: CryptoRng + Send + ?Sized>(
        &mut self,
        ch: &mut C,
        rng: &mut R,
        extension: Extension,
    ) -> Result<()> {
        if self.send.is_none() {
            self.send = Some(BulkSender::setup(ch, rng, extension, None).await?);
        }
        Ok(())
    }

    /// Sets up the receiving instance unless it exists.
    pub async fn ensure_receiver<C: Channel, R: CryptoRng + Send + ?Sized>(
        &mut self,
        ch: &mut C,
        rng: &mut R,
        extension: Extension,
    ) -> Result<()> {
        if self.recv.is_none() {
            self.recv = Some(BulkReceiver::setup(ch, rng, extension).await?);
        }
        Ok(())
    }

    /// The sending instance.
    ///
    /// # Errors
    /// [`Error::Internal`] before [`Self::ensure_sender`].
    pub fn sender(&mut self) -> Result<&mut BulkSender> {
        self.send
            .as_mut()
            .ok_or(Error::Internal("bulk OT sender used before its setup"))
    }

    /// The receiving instance.
    ///
    /// # Errors
    /// [`Error::Internal`] before [`Self::ensure_receiver`].
    pub fn receiver(&mut self) -> Result<&mut BulkReceiver> {
        self.recv
            .as_mut()
            .ok_or(Error::Internal("bulk OT receiver used before its setup"))
    }

    /// The correlation Δ of the sending instance, once set up.
    pub fn delta(&self) -> Option<Block> {
        self.send.as_ref().map(BulkSender::delta)
    }

    /// Frees both instances' spare memory (after an offline phase).
    pub fn release_spare(&mut self) {
        if let Some(s) = self.send.as_mut() {
            s.release_spare();
        }
        if let Some(r) = self.recv.as_mut() {
            r.release_spare();
        }
    }

    /// Bytes of memory both instances hold between phases.
    pub fn held_bytes(&self) -> usize {
        self.send.as_ref().map_or(0, BulkSender::held_bytes)
            + self.recv.as_ref().map_or(0, BulkReceiver::held_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ot::silent::{MAIN, SETUP};
    use crate::transport::memory_pair;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    fn bits(seed: u64, n: usize) -> Vec<bool> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.next_u32() & 1 == 1).collect()
    }

    /// Every kind of OT through both extensions, checked output by output,
    /// and the wire cost of each: IKNP 16 B per OT from the receiver, silent
    /// one bit per chosen choice and nothing for random choices (no round
    /// runs here beyond the setup round).
    #[tokio::test]
    async fn both_extensions_deliver_every_kind_at_their_cost() {
        for ext in [Extension::Iknp, Extension::Silent] {
            let (mut cs, mut cr) = memory_pair();
            let mut rs = ChaCha20Rng::seed_from_u64(1);
            let mut rr = ChaCha20Rng::seed_from_u64(2);
            let delta = Block(0xfeed_f00d_0123_4567_89ab_cdef_0000_1111 | 1);
            let (s, r) = tokio::join!(
                BulkSender::setup(&mut cs, &mut rs, ext, Some(delta)),
                BulkReceiver::setup(&mut cr, &mut rr, ext)
            );
            let (mut s, mut r) = (s.unwrap(), r.unwrap());
            assert_eq!((s.extension(), r.extension(), s.delta()), (ext, ext, delta));
            let n = 3000;
            let c = bits(3, n);
            let before = cr.meter().total("").sent + cs.meter().total("").sent;

            let (zeros, got) = tokio::join!(
                s.send_correlated(&mut cs, n),
                r.receive_correlated(&mut cr, &c)
            );
            let (zeros, got) = (zeros.unwrap(), got.unwrap());
            assert!((0..n).all(|j| got[j] == zeros.as_slice()[j] ^ delta.select(c[j])));

            let (pairs, got) =
                tokio::join!(s.send_random(&mut cs, n), r.receive_random(&mut cr, &c));
            let (pairs, got) = (pairs.unwrap(), got.unwrap());
            assert!((0..n).all(|j| got[j] == pairs[j][c[j] as usize]));

            let mut rng = ChaCha20Rng::seed_from_u64(4);
            let (pairs, got) =
                tokio::join!(s.send_rot(&mut cs, n), r.receive_rot(&mut cr, n, &mut rng));
            let (pairs, (b, got)) = (pairs.unwrap(), got.unwrap());
            assert!((0..n).all(|j| got[j] == pairs[j][b[j] as usize]));
            assert!((0..n).all(|j| got[j] != pairs[j][1 - b[j] as usize]));

            let spent = cr.meter().total("").sent + cs.meter().total("").sent - before;
            let want = match ext {
                // Three batches of U, each padded to 128 OTs.
                Extension::Iknp => 3 * 16 * n.div_ceil(128) * 128,
                Extension::Silent => 2 * n.div_ceil(8),
            };
            assert_eq!(spent as usize, want, "{ext}");
        }
    }

    /// One silent instance per session direction: outputs never repeat
    /// across calls, and two instances (two sessions) have different Δ.
    #[tokio::test]
    async fn calls_get_fresh_outputs_and_sessions_fresh_deltas() {
        let mut deltas = Vec::new();
        for seed in [5, 6] {
            let (mut cs, mut cr) = memory_pair();
            let mut rs = ChaCha20Rng::seed_from_u64(seed);
            let mut rr = ChaCha20Rng::seed_from_u64(seed + 100);
            let (s, r) = tokio::join!(
                BulkSender::setup(&mut cs, &mut rs, Extension::Silent, None),
                BulkReceiver::setup(&mut cr, &mut rr, Extension::Silent)
            );
            let (mut s, mut r) = (s.unwrap(), r.unwrap());
            deltas.push(s.delta());
            let c = bits(seed, 1000);
            let mut seen = std::collections::HashSet::new();
            for _ in 0..3 {
                let (zeros, _) = tokio::join!(
                    s.send_correlated(&mut cs, 1000),
                    r.receive_correlated(&mut cr, &c)
                );
                for z in zeros.unwrap().as_slice() {
                    assert!(seen.insert(z.0), "an output was handed out twice");
                }
            }
        }
        assert_ne!(deltas[0], deltas[1]);
    }

    /// What a silent instance holds between bursts: once a round's
    /// outputs are used up its buffer waits as the next round's spare, and
    /// [`BulkSender::release_spare`] frees it, leaving the next base.
    #[tokio::test]
    async fn released_instances_hold_the_base_only() {
        let (mut cs, mut cr) = memory_pair();
        let mut rs = ChaCha20Rng::seed_from_u64(7);
        let mut rr = ChaCha20Rng::seed_from_u64(8);
        let (s, r) = tokio::join!(
            BulkSender::setup(&mut cs, &mut rs, Extension::Silent, None),
            BulkReceiver::setup(&mut cr, &mut rr, Extension::Silent)
        );
        let (mut s, mut r) = (s.unwrap(), r.unwrap());
        let n = SETUP.n() - MAIN.base_cots();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let (pairs, got) =
            tokio::join!(s.send_rot(&mut cs, n), r.receive_rot(&mut cr, n, &mut rng));
        let (_, _) = (pairs.unwrap(), got.unwrap());
        let base = 16 * MAIN.base_cots();
        assert!(s.held_bytes() >= base + 16 * n && r.held_bytes() >= base + 16 * n);
        s.release_spare();
        r.release_spare();
        for held in [s.held_bytes(), r.held_bytes()] {
            assert!(held >= base && held < base + base / 8, "{held}");
        }
    }
}
