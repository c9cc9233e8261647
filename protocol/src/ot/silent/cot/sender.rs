//! The silent COT sender: its rounds (base COTs to GGM trees and the
//! round message) and the pool of outputs it hands out.

use super::*;

/// The silent COT sender. Its Δ (lsb 1) is the correlation of every output.
pub struct Sender {
    pub(super) delta: Block,
    pub(super) nonce: u64,
    pub(super) round: u64,
    /// The reserve the next round's base comes from (sender's q, lsb
    /// clear): the setup round's base, later [`MAIN`]`.base_cots()` COTs;
    /// `None` while a round is running.
    pub(super) base: Option<Vec<Block>>,
    pub(super) pool: Pool,
    pub(super) next_index: u64,
    /// Outputs announced ([`Self::plan`]) and not yet handed out.
    pub(super) planned: usize,
    /// Draws the tree seeds of every round.
    pub(super) rng: WipingRng,
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
    /// Starts from [`SETUP`]`.base_cots()` correlated OTs (SoftSpoken's) under `delta`
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
        let first = self
            .pool
            .hand_out(&mut self.planned, &mut self.next_index, n)?;
        Ok(SenderCots {
            delta: self.delta,
            nonce: self.nonce,
            first,
            blocks: self.pool.take(n),
        })
    }

    /// Hands out the next `n` pooled outputs appended to `cots`, the batch
    /// handed out last: [`Self::take`] and [`SenderCots::append`] without a
    /// buffer of its own.
    ///
    /// # Errors
    /// As [`Self::take`]; [`Error::BadInput`] if `cots` is not the batch
    /// handed out last.
    pub fn take_more(&mut self, cots: &mut SenderCots, n: usize) -> Result<()> {
        if cots.first + cots.len() as u64 != self.next_index || cots.delta != self.delta {
            return Err(Error::BadInput(
                "silent OT outputs appended to a batch that was not handed out last".into(),
            ));
        }
        self.pool
            .hand_out(&mut self.planned, &mut self.next_index, n)?;
        self.pool.append_to(n, &mut cots.blocks);
        Ok(())
    }
}

/// The sender's work of one round (`Send + 'static`): the base, the tree
/// seeds and Δ. [`Self::expand`] builds the trees and the message.
pub struct SenderRound {
    pub(super) delta: Block,
    pub(super) nonce: u64,
    pub(super) round: u64,
    pub(super) params: LpnParams,
    pub(super) base: Vec<Block>,
    pub(super) seeds: Vec<Block>,
    /// Memory for the outputs (empty or wiped).
    pub(super) out: Vec<Block>,
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
    pub(super) nonce: u64,
    pub(super) round: u64,
    pub(super) params: LpnParams,
    pub(super) base: Vec<Block>,
    pub(super) out: Vec<Block>,
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
