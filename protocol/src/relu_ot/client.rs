//! The client's online run of one activation layer (sans-IO): each step
//! consumes a server message and answers it.

use super::*;

/// What the client does after a server message.
pub enum ClientStep {
    /// Send these bytes and wait for the next server message.
    Reply(Vec<u8>),
    /// Send these bytes; the client's part is over (its share is r).
    Last(Vec<u8>),
}

/// The client's side of one activation layer online (sans-IO).
pub struct ClientRun {
    pub(super) sched: std::sync::Arc<Schedule>,
    pub(super) mat: ClientMaterial,
    pub(super) r: Vec<u64>,
    pub(super) n: usize,
    pub(super) n_relu: usize,
    pub(super) shares: NodeShares,
    pub(super) rev_corr: Vec<u8>,
    /// The true choice of the final OT per position.
    pub(super) sigma: Vec<u8>,
    pub(super) stage: Stage,
    pub(super) started: bool,
}

impl Drop for ClientRun {
    fn drop(&mut self) {
        self.r.zeroize();
        self.sigma.zeroize();
    }
}

impl ClientRun {
    /// Prepares the layer; `r` is the client's offline mask of the output
    /// (its final share).
    ///
    /// # Errors
    /// [`Error::BadInput`] if `r` does not fit the material.
    pub fn new(sched: std::sync::Arc<Schedule>, mat: ClientMaterial, r: Vec<u64>) -> Result<Self> {
        let n = mat.relu.len();
        if r.len() != n {
            return Err(Error::BadInput(format!(
                "OT ReLU: {} masks for {n} positions",
                r.len()
            )));
        }
        let n_relu = mat.relu.iter().filter(|&&x| x).count();
        let shares = NodeShares::new(sched.n_nodes, n);
        Ok(Self {
            sched,
            mat,
            r,
            n,
            n_relu,
            shares,
            rev_corr: Vec::new(),
            sigma: Vec::new(),
            stage: Stage::Level(0),
            started: false,
        })
    }

    /// Bytes of the server message expected next (0 once done).
    pub fn incoming_len(&self) -> usize {
        let n = self.n;
        if !self.started {
            return self.sched.table_bytes(n) + self.n_relu.div_ceil(8);
        }
        match self.stage {
            Stage::Level(t) => (n * self.sched.level_rots[t] * 4).div_ceil(8),
            Stage::Final => ring::packed_len(8 * n, self.sched.ring).unwrap_or(usize::MAX),
            Stage::Output | Stage::Done => 0,
        }
    }

    /// The correction bits of level `t`'s OTs.
    pub(super) fn corrections(&self, t: usize) -> Vec<u8> {
        let sched = &self.sched;
        let mut out = BitWriter::with_bits(self.n * sched.level_rots[t]);
        let off = sched.tree_off(t) - sched.leaf_rots;
        for p in 0..self.n {
            for op in &sched.levels[t] {
                for k in 0..op.rots() {
                    let kappa = self.mat.tree[p * sched.tree_rots + off + op.rot + k] >> 2;
                    out.push(self.choice(op, k, p) ^ kappa, 1);
                }
            }
        }
        out.finish()
    }

    /// The correction of the final 1-of-8 OT: true choice (e_c, c_c, B).
    pub(super) fn final_choice_msg(&mut self) -> Vec<u8> {
        let (sched, n) = (&self.sched, self.n);
        let l = sched.ring.bits();
        let mut out = BitWriter::with_bits(n * FINAL_ROTS);
        self.sigma = Vec::with_capacity(n);
        for p in 0..n {
            let s = self.shares.gt(sched.e_node, p)
                | (self.shares.gt(sched.low_root, p) << 1)
                | (((self.mat.b[p] >> (l - 1)) as u8 & 1) << 2);
            self.sigma.push(s);
            out.push(s ^ self.mat.final_choice[p], FINAL_ROTS);
        }
        out.finish()
    }

    pub(super) fn choice(&self, op: &Op, k: usize, p: usize) -> u8 {
        match k {
            0 => self.shares.eq(op.hi, p),
            1 => self.shares.gt(op.lo, p),
            _ => self.shares.eq(op.lo, p),
        }
    }

    /// Consumes the server's next message.
    ///
    /// # Errors
    /// [`Error::PeerMisbehaved`] for a message of the wrong size or with
    /// padding bits set; [`Error::BadInput`] if called after the end.
    pub fn step(&mut self, msg: &[u8]) -> Result<ClientStep> {
        let sched = self.sched.clone();
        let n = self.n;
        if !self.started {
            let tb = sched.table_bytes(n);
            if msg.len() != tb + self.n_relu.div_ceil(8) {
                return Err(Error::malformed("OT ReLU: leaf message of the wrong size"));
            }
            let mut rd = BitReader::new(&msg[..tb], n * sched.table_bits, "OT ReLU leaves")?;
            let mut rev = BitReader::new(&msg[tb..], self.n_relu, "OT ReLU reverse corrections")?;
            let q = sched.chunks.len();
            let mut entry = vec![0u8; sched.leaf_entries];
            let mut extra = vec![0u8; q];
            for p in 0..n {
                for (j, &(_, w)) in sched.chunks.iter().enumerate() {
                    for e in &mut entry[sched.entry_off[j]..sched.entry_off[j] + (1 << w)] {
                        *e = rd.read(sched.entry_bits[j]);
                    }
                }
                let y = sched.y(self.mat.b[p]);
                for (j, &(lo, w)) in sched.chunks.iter().enumerate() {
                    let i = ((y >> lo) & ((1 << w) - 1)) as usize;
                    let v = entry[sched.entry_off[j] + i] ^ self.mat.leaf_pads[p * q + j];
                    self.shares.set(j, p, v & 1, (v >> 1) & 1);
                    extra[j] = (v >> 2) & 3;
                }
                for op in &sched.free {
                    let (s, (hi, lo)) = (&self.shares, (op.hi, op.lo));
                    let gt = s.gt(hi, p)
                        ^ (s.eq(hi, p) & s.gt(lo, p))
                        ^ (extra[hi] & 1)
                        ^ (extra[lo] & 1);
                    let eq = if op.eq {
                        (s.eq(hi, p) & s.eq(lo, p)) ^ (extra[hi] >> 1) ^ (extra[lo] >> 1)
                    } else {
                        0
                    };
                    self.shares.set(op.out, p, gt, eq);
                }
                if self.mat.relu[p] {
                    self.rev_corr.push(rev.read(1));
                }
            }
            entry.zeroize();
            extra.zeroize();
            self.started = true;
            if sched.levels.is_empty() {
                self.stage = Stage::Final;
                return Ok(ClientStep::Reply(self.final_choice_msg()));
            }
            return Ok(ClientStep::Reply(self.corrections(0)));
        }
        match self.stage {
            Stage::Level(t) => {
                let rots = sched.level_rots[t];
                let mut rd = BitReader::new(msg, n * rots * 4, "OT ReLU tree messages")?;
                let off = sched.tree_off(t) - sched.leaf_rots;
                let mut got = [0u8; 3];
                for p in 0..n {
                    for op in &sched.levels[t] {
                        for (k, g) in got.iter_mut().enumerate().take(op.rots()) {
                            let e = [rd.read(2), rd.read(2)];
                            let c = self.choice(op, k, p);
                            let pad = self.mat.tree[p * sched.tree_rots + off + op.rot + k] & 3;
                            *g = e[c as usize] ^ pad;
                        }
                        let (s, (hi, lo)) = (&self.shares, (op.hi, op.lo));
                        let gt =
                            s.gt(hi, p) ^ (s.eq(hi, p) & s.gt(lo, p)) ^ (got[0] & 1) ^ (got[1] & 1);
                        let eq = if op.eq {
                            (s.eq(hi, p) & s.eq(lo, p)) ^ (got[0] >> 1) ^ (got[2] & 1)
                        } else {
                            0
                        };
                        self.shares.set(op.out, p, gt, eq);
                    }
                }
                got.zeroize();
                if t + 1 < sched.levels.len() {
                    self.stage = Stage::Level(t + 1);
                    return Ok(ClientStep::Reply(self.corrections(t + 1)));
                }
                self.stage = Stage::Final;
                Ok(ClientStep::Reply(self.final_choice_msg()))
            }
            Stage::Final => {
                let ring = sched.ring;
                let (l, f, mask) = (ring.bits(), ring.frac(), ring.mask());
                let mut vals = ring::unpack(msg, 8 * n, ring, "OT ReLU final messages")?;
                let mut out = Vec::with_capacity(n + self.n_relu);
                let mut k = 0;
                for p in 0..n {
                    let s = self.sigma[p] as usize;
                    let v = vals[8 * p + s] ^ self.mat.final_pad[p];
                    let b = self.mat.b[p];
                    let bhi = b >> f;
                    if self.mat.relu[p] {
                        let sigma_c = ((b >> (l - 1)) & 1) as u8 ^ (s & 1) as u8;
                        let d = self.rev_corr[k];
                        for j in 0..2u8 {
                            let nj = u64::from(j ^ sigma_c)
                                .wrapping_mul(bhi)
                                .wrapping_add(v)
                                .wrapping_sub(self.r[p])
                                & mask;
                            out.push(nj ^ self.mat.rev_pads[k][(j ^ d) as usize]);
                        }
                        k += 1;
                    } else {
                        out.push(bhi.wrapping_add(v).wrapping_sub(self.r[p]) & mask);
                    }
                }
                vals.zeroize();
                let msg = ring::pack(&out, ring);
                out.zeroize();
                self.stage = Stage::Done;
                Ok(ClientStep::Last(msg))
            }
            Stage::Output | Stage::Done => {
                Err(Error::BadInput("OT ReLU: the layer is already done".into()))
            }
        }
    }
}
