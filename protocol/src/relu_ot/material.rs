//! Offline material of one activation layer, per party: drawn from the
//! session's bulk OT, consumed by value online.

use super::*;

/// The server's offline material for one activation layer. Consumed by
/// [`ServerRun::start`]; secrets are wiped on drop.
pub struct ServerMaterial {
    pub(super) relu: Vec<bool>,
    /// Per position and leaf entry: the 4-bit pad.
    pub(super) leaf_pads: Vec<u8>,
    /// Per position and tree OT: R0 | R1 << 2.
    pub(super) tree_pads: Vec<u8>,
    /// Per position: the 8 pads of the final 1-of-8 OT.
    pub(super) final_pads: Vec<u64>,
    /// Per ReLU position: the server's random choice and pad in the reverse OT.
    pub(super) rev_choice: Vec<u8>,
    pub(super) rev_pad: Vec<u64>,
    pub(super) seed: [u8; 32],
}

impl Drop for ServerMaterial {
    fn drop(&mut self) {
        self.leaf_pads.zeroize();
        self.tree_pads.zeroize();
        self.final_pads.zeroize();
        self.rev_choice.zeroize();
        self.rev_pad.zeroize();
        self.seed.zeroize();
    }
}

impl ServerMaterial {
    /// Builds the material from the random OTs (this side as sender):
    /// `leaves` with the client's chosen choices
    /// ([`Schedule::leaf_rots_per_position`] per position), `random` with
    /// random choices ([`Schedule::random_rots_per_position`] per
    /// position), and per ReLU position the reverse OT's random choice and
    /// received message.
    ///
    /// # Errors
    /// [`Error::BadInput`] if the lengths do not fit the schedule.
    pub fn new<R: RngCore + ?Sized>(
        sched: &Schedule,
        relu: Vec<bool>,
        leaves: &[[Block; 2]],
        random: &[[Block; 2]],
        rev_choice: &[bool],
        rev_got: &[Block],
        rng: &mut R,
    ) -> Result<Self> {
        let n = relu.len();
        let per = sched.rots_per_position();
        let (nl, nr) = (sched.leaf_rots, sched.random_rots_per_position());
        let n_relu = relu.iter().filter(|&&r| r).count();
        if leaves.len() != n * nl
            || random.len() != n * nr
            || rev_choice.len() != n_relu
            || rev_got.len() != n_relu
        {
            return Err(Error::BadInput(
                "OT ReLU: random OTs do not fit the layer".into(),
            ));
        }
        let mask = sched.ring.mask();
        let mut leaf_pads = vec![0u8; n * sched.leaf_entries];
        let mut final_pads = vec![0u64; n * 8];
        let mut h = PadHasher::new();
        for start in (0..n).step_by(PAD_BATCH) {
            let end = (start + PAD_BATCH).min(n);
            // Tweaks number the OTs position-major, leaves then tree then
            // final, as if all came in one batch.
            for p in start..end {
                let base = p * per;
                for &(lo, w) in &sched.chunks {
                    let (g, k) = (base + lo as usize, p * nl + lo as usize);
                    for t in 0..w as usize {
                        h.push(leaves[k + t][0], g + t, 0);
                        h.push(leaves[k + t][1], g + t, 0);
                    }
                }
                let (g, k) = (base + sched.final_off(), p * nr + sched.tree_rots);
                for s in 0..8 {
                    for t in 0..FINAL_ROTS {
                        h.push(random[k + t][(s >> t) & 1], g + t, s);
                    }
                }
            }
            let out = h.run();
            let mut k = 0;
            for p in start..end {
                for (j, &(_, w)) in sched.chunks.iter().enumerate() {
                    let w = w as usize;
                    for i in 0..1usize << w {
                        let mut v = 0u8;
                        for t in 0..w {
                            v ^= leaf_pad_bits(out[k + 2 * t + ((i >> t) & 1)], i, t);
                        }
                        leaf_pads[p * sched.leaf_entries + sched.entry_off[j] + i] = v;
                    }
                    k += 2 * w;
                }
                for s in 0..8 {
                    let mut v = 0u64;
                    for _ in 0..FINAL_ROTS {
                        v ^= out[k].0 as u64;
                        k += 1;
                    }
                    final_pads[p * 8 + s] = v & mask;
                }
            }
        }
        let mut tree_pads = Vec::with_capacity(n * sched.tree_rots);
        for p in 0..n {
            let g = p * nr;
            for pair in &random[g..g + sched.tree_rots] {
                tree_pads.push((pair[0].0 & 3) as u8 | (((pair[1].0 & 3) as u8) << 2));
            }
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Ok(Self {
            relu,
            leaf_pads,
            tree_pads,
            final_pads,
            rev_choice: rev_choice.iter().map(|&c| c as u8).collect(),
            rev_pad: rev_got.iter().map(|b| b.0 as u64 & mask).collect(),
            seed,
        })
    }

    /// What [`Self::storage_bytes`] will count for a layer of `positions`
    /// positions of which `relus` keep their ReLU, from the schedule alone
    /// (the server reserves it in its memory budget before an offline
    /// phase): per position its ReLU flag, its leaf pads, one byte per tree
    /// OT and the 8 pads of the final OT; per ReLU position the reverse
    /// OT's choice and pad; the layer's seed.
    pub fn planned_storage_bytes(sched: &Schedule, positions: usize, relus: usize) -> u64 {
        let per_position = 1 + sched.leaf_entries + sched.tree_rots + 8 * 8;
        (positions * per_position + 9 * relus + 32) as u64
    }

    /// Bytes held until the online phase.
    pub fn storage_bytes(&self) -> u64 {
        (self.relu.len()
            + self.leaf_pads.len()
            + self.tree_pads.len()
            + 8 * self.final_pads.len()
            + self.rev_choice.len()
            + 8 * self.rev_pad.len()
            + self.seed.len()) as u64
    }
}

/// The client's offline material for one activation layer: its share b,
/// the pads of its chosen OT entries and its random choices. Consumed by
/// [`ClientRun::new`]; secrets are wiped on drop.
pub struct ClientMaterial {
    pub(super) relu: Vec<bool>,
    pub(super) b: Vec<u64>,
    /// Per position and chunk: the 4-bit pad of entry y_j.
    pub(super) leaf_pads: Vec<u8>,
    /// Per position and tree OT: pad R_κ | κ << 2.
    pub(super) tree: Vec<u8>,
    /// Per position: random choice κ (3 bits) and pad of the final OT.
    pub(super) final_choice: Vec<u8>,
    pub(super) final_pad: Vec<u64>,
    /// Per ReLU position: the two pads of the reverse OT (client sender).
    pub(super) rev_pads: Vec<[u64; 2]>,
}

impl Drop for ClientMaterial {
    fn drop(&mut self) {
        self.b.zeroize();
        self.leaf_pads.zeroize();
        self.tree.zeroize();
        self.final_choice.zeroize();
        self.final_pad.zeroize();
        for p in &mut self.rev_pads {
            p.zeroize();
        }
    }
}

impl ClientMaterial {
    /// Builds the material from the random OTs (this side as receiver):
    /// `leaves`, the messages chosen by [`Schedule::client_leaf_choices`] on
    /// `b`; `choices` and `random`, the random choices and messages of the
    /// other OTs; and per ReLU position the pairs of the reverse OT (this
    /// side as sender).
    ///
    /// # Errors
    /// [`Error::BadInput`] if the lengths do not fit the schedule.
    pub fn new(
        sched: &Schedule,
        relu: Vec<bool>,
        b: Vec<u64>,
        leaves: &[Block],
        choices: &[bool],
        random: &[Block],
        rev_pairs: &[[Block; 2]],
    ) -> Result<Self> {
        let n = relu.len();
        let per = sched.rots_per_position();
        let (nl, nr) = (sched.leaf_rots, sched.random_rots_per_position());
        let n_relu = relu.iter().filter(|&&r| r).count();
        if b.len() != n
            || leaves.len() != n * nl
            || choices.len() != n * nr
            || random.len() != n * nr
            || rev_pairs.len() != n_relu
        {
            return Err(Error::BadInput(
                "OT ReLU: random OTs do not fit the layer".into(),
            ));
        }
        let mask = sched.ring.mask();
        let q = sched.chunks.len();
        let mut leaf_pads = vec![0u8; n * q];
        let mut final_choice = vec![0u8; n];
        let mut final_pad = vec![0u64; n];
        let mut h = PadHasher::new();
        for start in (0..n).step_by(PAD_BATCH) {
            let end = (start + PAD_BATCH).min(n);
            for (p, fc) in final_choice.iter_mut().enumerate().take(end).skip(start) {
                let base = p * per;
                for &(lo, w) in &sched.chunks {
                    let (g, k) = (base + lo as usize, p * nl + lo as usize);
                    for t in 0..w as usize {
                        h.push(leaves[k + t], g + t, 0);
                    }
                }
                let (g, k) = (base + sched.final_off(), p * nr + sched.tree_rots);
                let s = (0..FINAL_ROTS).fold(0usize, |s, t| s | (usize::from(choices[k + t]) << t));
                *fc = s as u8;
                for t in 0..FINAL_ROTS {
                    h.push(random[k + t], g + t, s);
                }
            }
            let out = h.run();
            let mut k = 0;
            for p in start..end {
                let y = sched.y(b[p]);
                for (j, &(lo, w)) in sched.chunks.iter().enumerate() {
                    let i = ((y >> lo) & ((1 << w) - 1)) as usize;
                    let mut v = 0u8;
                    for t in 0..w as usize {
                        v ^= leaf_pad_bits(out[k], i, t);
                        k += 1;
                    }
                    leaf_pads[p * q + j] = v;
                }
                let mut v = 0u64;
                for _ in 0..FINAL_ROTS {
                    v ^= out[k].0 as u64;
                    k += 1;
                }
                final_pad[p] = v & mask;
            }
        }
        let mut tree = Vec::with_capacity(n * sched.tree_rots);
        for p in 0..n {
            let g = p * nr;
            for j in g..g + sched.tree_rots {
                tree.push((random[j].0 & 3) as u8 | (u8::from(choices[j]) << 2));
            }
        }
        Ok(Self {
            relu,
            b,
            leaf_pads,
            tree,
            final_choice,
            final_pad,
            rev_pads: rev_pairs
                .iter()
                .map(|p| [p[0].0 as u64 & mask, p[1].0 as u64 & mask])
                .collect(),
        })
    }

    /// What [`Self::storage_bytes`] will count for a layer of `positions`
    /// positions of which `relus` keep their ReLU, from the schedule alone
    /// (a client budgets its pool with it before any offline phase): per
    /// position its ReLU flag, its share b, one leaf pad per chunk, one byte
    /// per tree OT, the final choice and pad; per ReLU position the two
    /// pads of the reverse OT.
    pub fn planned_storage_bytes(sched: &Schedule, positions: usize, relus: usize) -> u64 {
        let per_position = 1 + 8 + sched.chunks.len() + sched.tree_rots + 1 + 8;
        (positions * per_position + 16 * relus) as u64
    }

    /// Bytes held until the online phase.
    pub fn storage_bytes(&self) -> u64 {
        (self.relu.len()
            + 8 * self.b.len()
            + self.leaf_pads.len()
            + self.tree.len()
            + self.final_choice.len()
            + 8 * self.final_pad.len()
            + 16 * self.rev_pads.len()) as u64
    }
}
