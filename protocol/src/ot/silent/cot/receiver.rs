//! The silent COT receiver: its rounds (punctured trees from the round
//! message) and the pool of outputs it hands out.

use super::*;

/// The silent COT receiver. The lsb of each of its outputs is that OT's
/// (random) choice bit.
pub struct Receiver {
    pub(super) nonce: u64,
    pub(super) round: u64,
    /// The reserve (see [`Sender`]); `None` while a round is running.
    pub(super) base: Option<Vec<Block>>,
    pub(super) pool: Pool,
    pub(super) next_index: u64,
    /// Outputs announced ([`Self::plan`]) and not yet handed out.
    pub(super) planned: usize,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(b) = self.base.as_mut() {
            b.zeroize();
        }
    }
}

impl Receiver {
    /// Starts from [`SETUP`]`.base_cots()` correlated OTs (SoftSpoken's): the
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
        let first = self
            .pool
            .hand_out(&mut self.planned, &mut self.next_index, n)?;
        Ok(ReceiverCots {
            nonce: self.nonce,
            first,
            blocks: self.pool.take(n),
        })
    }

    /// Hands out the next `n` pooled outputs appended to `cots`, the batch
    /// handed out last: [`Self::take`] and [`ReceiverCots::append`] without a
    /// buffer of its own.
    ///
    /// # Errors
    /// As [`Self::take`]; [`Error::BadInput`] if `cots` is not the batch
    /// handed out last.
    pub fn take_more(&mut self, cots: &mut ReceiverCots, n: usize) -> Result<()> {
        if cots.first + cots.len() as u64 != self.next_index {
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

/// The receiver's work of one round (`Send + 'static`).
pub struct ReceiverRound {
    pub(super) nonce: u64,
    pub(super) round: u64,
    pub(super) params: LpnParams,
    pub(super) base: Vec<Block>,
    /// Memory for the outputs (empty or wiped).
    pub(super) out: Vec<Block>,
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
