//! Batches of COT outputs as handed out, each consumed by exactly one
//! conversion (random OT, chosen-choice OT, correlated zeros).

use super::*;

/// `dst.extend_from_slice(src)` for secret blocks: when `dst` must grow, the
/// new buffer (at least twice the old capacity) gets a copy and the old one
/// is wiped before it is freed, which a plain reallocation would not do.
fn extend_wiping(dst: &mut Vec<Block>, src: &[Block]) {
    if dst.capacity() - dst.len() < src.len() {
        reserve_wiping(dst, src.len().max(dst.capacity()));
    }
    dst.extend_from_slice(src);
}

/// Room for `additional` more blocks in `dst`, moving (and wiping) its
/// blocks into a buffer of exactly that size if it has to grow.
pub(super) fn reserve_wiping(dst: &mut Vec<Block>, additional: usize) {
    if dst.capacity() - dst.len() < additional {
        let mut grown = Vec::with_capacity(dst.len() + additional);
        grown.extend_from_slice(dst);
        dst.zeroize();
        *dst = grown;
    }
}

/// The sender's side of a batch of random-choice COTs: q_j, so that the
/// receiver holds q_j ⊕ b_j·Δ for its random b_j. Consumed by exactly one
/// conversion; wiped on drop.
pub struct SenderCots {
    pub(super) delta: Block,
    pub(super) nonce: u64,
    pub(super) first: u64,
    pub(super) blocks: Vec<Block>,
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
        extend_wiping(&mut self.blocks, &next.blocks);
        next.blocks.zeroize();
        Ok(())
    }

    /// Makes room for `additional` more outputs (appended batches then
    /// land without a reallocation); a move to a larger buffer wipes the
    /// old one.
    pub fn reserve(&mut self, additional: usize) {
        reserve_wiping(&mut self.blocks, additional);
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
    pub(super) nonce: u64,
    pub(super) first: u64,
    pub(super) blocks: Vec<Block>,
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
        extend_wiping(&mut self.blocks, &next.blocks);
        next.blocks.zeroize();
        Ok(())
    }

    /// Makes room for `additional` more outputs (appended batches then
    /// land without a reallocation); a move to a larger buffer wipes the
    /// old one.
    pub fn reserve(&mut self, additional: usize) {
        reserve_wiping(&mut self.blocks, additional);
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
    pub(super) nonce: u64,
    pub(super) first: u64,
    pub(super) blocks: Vec<Block>,
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
