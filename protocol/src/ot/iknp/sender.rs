//! The IKNP sender: base OT receiver at setup, then extensions whose
//! work items run off the executor.

use super::*;

/// Sender secrets fixed at setup: Δ = s and the PRG keyed by k_i^{s_i};
/// and the public session nonce.
pub(super) struct SenderKeys {
    pub(super) delta: Block,
    pub(super) prgs: Vec<FixedKeyAes>,
    pub(super) nonce: u64,
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
    pub(super) keys: Arc<SenderKeys>,
    pub(super) next_block: u64,
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
    pub(super) keys: Arc<SenderKeys>,
    pub(super) first_block: u64,
    pub(super) n: usize,
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
    pub(super) delta: Block,
    pub(super) nonce: u64,
    pub(super) first_index: u64,
    pub(super) rows: Vec<Block>,
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

    pub(super) fn take_rows(&mut self) -> Vec<Block> {
        let mut rows = std::mem::take(&mut self.rows);
        rows.zeroize();
        rows.clear();
        rows
    }
}
