//! The IKNP receiver: base OT sender at setup, then extensions whose
//! work items run off the executor.

use super::*;

/// The IKNP receiver before setup: it plays the base OT *sender*.
pub struct ReceiverSetup {
    pub(super) base: base::Sender,
    /// Encoding of the base OT message A (public), for the session nonce.
    pub(super) a: Vec<u8>,
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
pub(super) struct ReceiverKeys {
    pub(super) prg0: Vec<FixedKeyAes>,
    pub(super) prg1: Vec<FixedKeyAes>,
    pub(super) nonce: u64,
}

/// The IKNP receiver after setup.
pub struct Receiver {
    pub(super) keys: Arc<ReceiverKeys>,
    pub(super) next_block: u64,
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
    pub(super) keys: Arc<ReceiverKeys>,
    pub(super) first_block: u64,
    pub(super) n: usize,
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
        let r = pack_choices(choices, nblk);
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
    pub(super) nonce: u64,
    pub(super) first_index: u64,
    pub(super) choices: Vec<Block>,
    pub(super) rows: Vec<Block>,
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

    pub(super) fn choice(&self, j: usize) -> bool {
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
