//! The server's online run of one activation layer (sans-IO): each step
//! consumes a client message and answers it.

use super::*;

/// What the server does after a client message.
pub enum ServerStep {
    /// Send these bytes and wait for the next client message.
    Reply(Vec<u8>),
    /// The server's output shares act(z) − r, one per position.
    Done(Vec<u64>),
}

/// The server's side of one activation layer online (sans-IO).
pub struct ServerRun {
    pub(super) sched: std::sync::Arc<Schedule>,
    pub(super) mat: ServerMaterial,
    pub(super) n: usize,
    pub(super) n_relu: usize,
    pub(super) shares: NodeShares,
    /// Per position and tree OT: the server's random output bits.
    pub(super) rho: Vec<u8>,
    pub(super) a_top: Vec<u8>,
    pub(super) x_hi: Vec<u64>,
    pub(super) rho_out: Vec<u64>,
    pub(super) stage: Stage,
}

impl Drop for ServerRun {
    fn drop(&mut self) {
        self.rho.zeroize();
        self.a_top.zeroize();
        self.x_hi.zeroize();
        self.rho_out.zeroize();
    }
}

pub(super) fn level_cross(op: &Op, k: usize, s: &NodeShares, p: usize) -> (u8, u8) {
    // (the server's bits multiplied by the client's choice, for message 1):
    // OT A: choice eq_hi^c, message bits (gt_lo^s, eq_lo^s);
    // OT B: choice gt_lo^c, message eq_hi^s; OT C: choice eq_lo^c, message eq_hi^s.
    match k {
        0 => (s.gt(op.lo, p), if op.eq { s.eq(op.lo, p) } else { 0 }),
        _ => (s.eq(op.hi, p), 0),
    }
}

impl ServerRun {
    /// Starts the layer on the server's shares `a` of the activation input:
    /// returns the state and the first message (leaf tables and reverse OT
    /// corrections).
    ///
    /// # Errors
    /// [`Error::BadInput`] if `a` does not fit the material.
    pub fn start(
        sched: std::sync::Arc<Schedule>,
        mat: ServerMaterial,
        a: &[u64],
    ) -> Result<(Self, Vec<u8>)> {
        let n = mat.relu.len();
        if a.len() != n {
            return Err(Error::BadInput(format!(
                "OT ReLU: {} shares for {n} positions",
                a.len()
            )));
        }
        let ring = sched.ring;
        let (l, f) = (ring.bits(), ring.frac());
        let mask = ring.mask();
        let half = 1u64 << (l - 1);
        let mut rng = crate::crypto::WipingRng::new(ChaCha20Rng::from_seed(mat.seed));
        let mut bits = RandBits::default();
        let mut shares = NodeShares::new(sched.n_nodes, n);
        let q = sched.chunks.len();
        for j in 0..q {
            for p in 0..n {
                let (g, e) = (bits.next(&mut rng), bits.next(&mut rng));
                shares.set(j, p, g, e);
            }
        }
        // The free level: random bits ρA (2), ρB, ρC per op and position,
        // and the server's shares of its outputs.
        let mut free_rho = vec![0u8; sched.free.len() * n];
        for (i, op) in sched.free.iter().enumerate() {
            for p in 0..n {
                let r = (0..4).fold(0u8, |r, k| r | (bits.next(&mut rng) << k));
                free_rho[i * n + p] = r;
                let gt = shares.gt(op.hi, p)
                    ^ (shares.eq(op.hi, p) & shares.gt(op.lo, p))
                    ^ (r & 1)
                    ^ ((r >> 2) & 1);
                let eq = if op.eq {
                    (shares.eq(op.hi, p) & shares.eq(op.lo, p)) ^ ((r >> 1) & 1) ^ (r >> 3)
                } else {
                    0
                };
                shares.set(op.out, p, gt, eq);
            }
        }
        let mut a_top = Vec::with_capacity(n);
        let mut x_hi = Vec::with_capacity(n);
        let mut table = BitWriter::with_bits(n * sched.table_bits);
        for p in 0..n {
            let a1 = a[p].wrapping_add(half) & mask;
            a_top.push((a1 >> (l - 1)) as u8);
            x_hi.push(a1 >> f);
            for (j, &(lo, w)) in sched.chunks.iter().enumerate() {
                let xj = (a1 >> lo) & ((1 << w) - 1);
                let (tg, te) = (shares.gt(j, p), shares.eq(j, p));
                let pads = &mat.leaf_pads[p * sched.leaf_entries + sched.entry_off[j]..];
                for i in 0..1u64 << w {
                    let (gc, ec) = (u8::from(xj > i) ^ tg, u8::from(xj == i) ^ te);
                    let mut v = gc | (ec << 1);
                    // The free op's cross terms: the client's share of this
                    // chunk (a function of its entry) times the server's
                    // share of the other operand, masked by ρ.
                    if let Some((k, hi)) = sched.role[j] {
                        let (op, r) = (&sched.free[k], free_rho[k * n + p]);
                        v |= if hi {
                            let (g, e) = (shares.gt(op.lo, p), shares.eq(op.lo, p));
                            (((ec & g) ^ r) & 1) | ((((ec & e) ^ (r >> 1)) & 1) << 1)
                        } else {
                            let e = shares.eq(op.hi, p);
                            (((gc & e) ^ (r >> 2)) & 1) | ((((ec & e) ^ (r >> 3)) & 1) << 1)
                        } << 2;
                    }
                    table.push(v ^ pads[i as usize], sched.entry_bits[j]);
                }
            }
        }
        free_rho.zeroize();
        // The server's shares of every node and its random output bits.
        let mut rho = vec![0u8; n * sched.tree_rots];
        for (t, ops) in sched.levels.iter().enumerate() {
            let off = sched.tree_off(t) - sched.leaf_rots;
            for op in ops {
                for p in 0..n {
                    let r = &mut rho[p * sched.tree_rots + off + op.rot..];
                    let (ra_gt, ra_eq) = (bits.next(&mut rng), bits.next(&mut rng));
                    let rb = bits.next(&mut rng);
                    r[0] = ra_gt | (ra_eq << 1);
                    r[1] = rb;
                    let gt = shares.gt(op.hi, p)
                        ^ (shares.eq(op.hi, p) & shares.gt(op.lo, p))
                        ^ ra_gt
                        ^ rb;
                    let mut eq = 0;
                    if op.eq {
                        let rc = bits.next(&mut rng);
                        r[2] = rc;
                        eq = (shares.eq(op.hi, p) & shares.eq(op.lo, p)) ^ ra_eq ^ rc;
                    }
                    shares.set(op.out, p, gt, eq);
                }
            }
        }
        let n_relu = mat.relu.iter().filter(|&&r| r).count();
        let mut rev = BitWriter::with_bits(n_relu);
        let mut k = 0;
        for (p, &top) in a_top.iter().enumerate() {
            if mat.relu[p] {
                let sigma = top ^ shares.gt(sched.e_node, p);
                rev.push(sigma ^ mat.rev_choice[k], 1);
                k += 1;
            }
        }
        let rho_out = (0..n).map(|_| rng.next_u64() & mask).collect();
        let mut msg = table.finish();
        msg.extend_from_slice(&rev.finish());
        let sched_levels_empty = sched.levels.is_empty();
        Ok((
            Self {
                sched,
                mat,
                n,
                n_relu,
                shares,
                rho,
                a_top,
                x_hi,
                rho_out,
                stage: if sched_levels_empty {
                    Stage::Final
                } else {
                    Stage::Level(0)
                },
            },
            msg,
        ))
    }

    /// Bytes of the client message expected next (0 once done).
    pub fn incoming_len(&self) -> usize {
        let ring = self.sched.ring;
        match self.stage {
            Stage::Level(t) => (self.n * self.sched.level_rots[t]).div_ceil(8),
            Stage::Final => (self.n * FINAL_ROTS).div_ceil(8),
            Stage::Output => ring::packed_len(self.n + self.n_relu, ring).unwrap_or(usize::MAX),
            Stage::Done => 0,
        }
    }

    /// Consumes the client's next message.
    ///
    /// # Errors
    /// [`Error::PeerMisbehaved`] for a message of the wrong size or with
    /// padding bits set; [`Error::BadInput`] if called after the end.
    pub fn step(&mut self, msg: &[u8]) -> Result<ServerStep> {
        let sched = self.sched.clone();
        let n = self.n;
        match self.stage {
            Stage::Level(t) => {
                let rots = sched.level_rots[t];
                let mut rd = BitReader::new(msg, n * rots, "OT ReLU corrections")?;
                let mut out = BitWriter::with_bits(n * rots * 4);
                let off = sched.tree_off(t) - sched.leaf_rots;
                for p in 0..n {
                    for op in &sched.levels[t] {
                        for k in 0..op.rots() {
                            let idx = p * sched.tree_rots + off + op.rot + k;
                            let d = rd.read(1);
                            let r = self.rho[idx];
                            let (c1, c2) = level_cross(op, k, &self.shares, p);
                            let m0 = r;
                            let m1 = r ^ (c1 | (c2 << 1));
                            let pad = self.mat.tree_pads[idx];
                            let pads = [pad & 3, pad >> 2];
                            out.push(m0 ^ pads[d as usize], 2);
                            out.push(m1 ^ pads[(d ^ 1) as usize], 2);
                        }
                    }
                }
                self.stage = if t + 1 < sched.levels.len() {
                    Stage::Level(t + 1)
                } else {
                    Stage::Final
                };
                Ok(ServerStep::Reply(out.finish()))
            }
            Stage::Final => {
                let ring = sched.ring;
                let (l, f) = (ring.bits(), ring.frac());
                let mask = ring.mask();
                let wrap = 1u64 << (l - f);
                let bias = 1u64 << (l - 1 - f);
                let mut rd = BitReader::new(msg, n * FINAL_ROTS, "OT ReLU final correction")?;
                let mut vals = Vec::with_capacity(8 * n);
                for p in 0..n {
                    let d = rd.read(FINAL_ROTS) as usize;
                    let (e_s, c_s) = (
                        self.shares.gt(sched.e_node, p),
                        self.shares.gt(sched.low_root, p),
                    );
                    let at = self.a_top[p];
                    for s in 0..8usize {
                        let (e, c, bt) = (
                            e_s ^ (s & 1) as u8,
                            c_s ^ ((s >> 1) & 1) as u8,
                            (s >> 2) as u8,
                        );
                        let w = (at & bt) | (at & e) | (bt & e);
                        let t = self.x_hi[p]
                            .wrapping_add(u64::from(c))
                            .wrapping_sub(u64::from(w) * wrap)
                            .wrapping_sub(bias);
                        let dv = if self.mat.relu[p] {
                            u64::from(at ^ bt ^ e)
                        } else {
                            1
                        };
                        let m = dv.wrapping_mul(t).wrapping_sub(self.rho_out[p]) & mask;
                        vals.push(m ^ self.mat.final_pads[p * 8 + (s ^ d)]);
                    }
                }
                self.stage = Stage::Output;
                let out = ring::pack(&vals, ring);
                vals.zeroize();
                Ok(ServerStep::Reply(out))
            }
            Stage::Output => {
                let ring = sched.ring;
                let mut vals = ring::unpack(msg, n + self.n_relu, ring, "OT ReLU output")?;
                let mut out = Vec::with_capacity(n);
                let (mut i, mut k) = (0, 0);
                for p in 0..n {
                    let v = if self.mat.relu[p] {
                        let sigma = (self.a_top[p] ^ self.shares.gt(sched.e_node, p)) as usize;
                        let v = vals[i + sigma] ^ self.mat.rev_pad[k];
                        i += 2;
                        k += 1;
                        v
                    } else {
                        i += 1;
                        vals[i - 1]
                    };
                    out.push(v.wrapping_add(self.rho_out[p]) & ring.mask());
                }
                vals.zeroize();
                self.stage = Stage::Done;
                Ok(ServerStep::Done(out))
            }
            Stage::Done => Err(Error::BadInput("OT ReLU: the layer is already done".into())),
        }
    }
}
