//! The server's side: ciphertext x plaintext products in the NTT domain, the
//! mask, and circuit privacy (flooding, fresh encryption of zero, modulus
//! switch, dropped low bits).

use rand::{CryptoRng, RngCore};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rayon::prelude::*;
use zeroize::Zeroize;

use super::arith::{
    add_mod, expand_a, inv_mod, lift_small, mul_shoup, ntt, reduce_i128, sample_cbd,
    sample_ternary, shoup, small_to_ntt, sub_mod,
};
use super::client::PK_STREAM;
use super::layout::LayerPlan;
use super::params::{
    C0_DROP_BITS, C1_DROP_BITS, CIPHERTEXT_PRIMES, DROP, HeParams, KEEP, POLY_DEGREE, WEIGHT_BITS,
};
use super::wire::{ClientUpload, PublicKeyMsg, ServerReply};
use crate::{Error, Result};

const N: usize = POLY_DEGREE;

/// The server's HE context for one session: the client's public key in
/// normalised NTT form.
pub struct HeServer {
    params: HeParams,
    /// pk_ntt[component][prime], multiplied by N^−1.
    pk_ntt: [[Vec<u64>; 2]; 2],
}

/// Modulus switch q → p0 of one value given by its residues (centred
/// remainder modulo p1 subtracted, then divided by p1), then rounding away
/// `drop` low bits.
#[derive(Clone, Copy)]
struct Switch {
    inv_drop: u64,
    inv_drop_shoup: u64,
}

impl Switch {
    fn new() -> Self {
        let inv = inv_mod(
            CIPHERTEXT_PRIMES[DROP] % CIPHERTEXT_PRIMES[KEEP],
            CIPHERTEXT_PRIMES[KEEP],
        );
        Self {
            inv_drop: inv,
            inv_drop_shoup: shoup(inv, CIPHERTEXT_PRIMES[KEEP]),
        }
    }

    #[inline]
    fn apply(&self, v_keep: u64, v_drop: u64, drop: u32) -> u64 {
        let (pk, pd) = (CIPHERTEXT_PRIMES[KEEP], CIPHERTEXT_PRIMES[DROP]);
        // r = [v]_{p1} centred in (−p1/2, p1/2]; |r| < p0 since p1 < p0.
        let r_mod_keep = if v_drop > pd / 2 {
            pk - (pd - v_drop)
        } else {
            v_drop
        };
        let diff = sub_mod(v_keep, r_mod_keep, pk);
        let v = mul_shoup(diff, self.inv_drop, self.inv_drop_shoup, pk);
        (v + (1u64 << (drop - 1))) >> drop
    }
}

impl HeServer {
    /// Accepts the client's public key.
    pub fn new(params: HeParams, pk: &PublicKeyMsg) -> Result<Self> {
        if pk.b.len() != 2 * N
            || pk
                .b
                .chunks(N)
                .zip(CIPHERTEXT_PRIMES)
                .any(|(c, p)| c.iter().any(|&v| v >= p))
        {
            return Err(Error::malformed("malformed HE public key"));
        }
        let ntt = ntt();
        let mut a = [Vec::new(), Vec::new()];
        expand_a(&pk.seed, PK_STREAM, &mut a);
        let mut b = [pk.b[..N].to_vec(), pk.b[N..].to_vec()];
        for i in 0..2 {
            for poly in [&mut a[i], &mut b[i]] {
                ntt.plans[i].fwd(poly);
                ntt.plans[i].normalize(poly);
            }
        }
        Ok(Self {
            params,
            pk_ntt: [b, a],
        })
    }

    /// Computes the reply for one layer and draws the server's mask for it:
    /// per output ciphertext Σ_blocks ct·W − Δ·s + flood + Enc_pk(0),
    /// switched to p0, low bits dropped. The client decrypts W·c − s; the
    /// server keeps the returned [`ServerMask`] s for the online phase.
    ///
    /// The mask is drawn here, uniform on Z_2^l from `rng` (a CSPRNG), so that
    /// it can be neither biased nor reused: a known or repeated s would reveal
    /// W·c to the client (DESIGN.md §3.2, §3.5).
    ///
    /// `weights` are signed, |w| < 2^WEIGHT_BITS, in PyTorch layout.
    pub fn evaluate<R: RngCore + CryptoRng>(
        &self,
        plan: &LayerPlan,
        weights: &[i64],
        upload: &ClientUpload,
        rng: &mut R,
    ) -> Result<(ServerReply, ServerMask)> {
        let m = self.params.ring_mask();
        let mask = ServerMask(
            (0..plan.shape.output_len())
                .map(|_| rng.next_u64() & m)
                .collect(),
        );
        let reply = self.evaluate_with_mask(plan, weights, mask.as_slice(), upload, rng)?;
        Ok((reply, mask))
    }

    /// [`Self::evaluate`] with a caller-chosen mask (tests of extreme masks only).
    pub(crate) fn evaluate_with_mask<R: RngCore + CryptoRng>(
        &self,
        plan: &LayerPlan,
        weights: &[i64],
        mask: &[u64],
        upload: &ClientUpload,
        rng: &mut R,
    ) -> Result<ServerReply> {
        if plan.params != self.params {
            return Err(Error::BadInput(
                "layer plan made for other HE parameters".into(),
            ));
        }
        if weights.len() != plan.shape.weight_len() {
            return Err(Error::BadInput(format!(
                "{} weights given, layer has {}",
                weights.len(),
                plan.shape.weight_len()
            )));
        }
        let wmax = 1u64 << WEIGHT_BITS;
        if weights.iter().any(|w| w.unsigned_abs() >= wmax) {
            return Err(Error::BadInput(format!(
                "weight magnitude reaches 2^{WEIGHT_BITS}"
            )));
        }
        if mask.len() != plan.shape.output_len()
            || mask.iter().any(|&v| v > self.params.ring_mask())
        {
            return Err(Error::BadInput(
                "mask has the wrong length or leaves Z_2^l".into(),
            ));
        }
        if upload.plan_digest != plan.digest || upload.b.len() != plan.upload_cts() * 2 * N {
            return Err(Error::malformed("HE upload does not match the layer plan"));
        }
        let ntt = ntt();
        // NTT form of every uploaded ciphertext, [b0, b1, a0, a1], multiplied
        // by N^−1 here once so that kernel polynomials need no normalisation.
        let cts: Vec<[Vec<u64>; 4]> = (0..plan.upload_cts())
            .into_par_iter()
            .map(|idx| {
                let mut a = [Vec::new(), Vec::new()];
                expand_a(&upload.seed, idx as u64, &mut a);
                let base = idx * 2 * N;
                let mut b0 = upload.b[base..base + N].to_vec();
                let mut b1 = upload.b[base + N..base + 2 * N].to_vec();
                ntt.plans[0].fwd(&mut b0);
                ntt.plans[1].fwd(&mut b1);
                let [mut a0, mut a1] = a;
                ntt.plans[0].fwd(&mut a0);
                ntt.plans[1].fwd(&mut a1);
                for (k, poly) in [&mut b0, &mut b1, &mut a0, &mut a1].into_iter().enumerate() {
                    ntt.plans[k % 2].normalize(poly);
                }
                [b0, b1, a0, a1]
            })
            .collect();

        let mut master = [0u8; 32];
        rng.fill_bytes(&mut master);
        let switch = Switch::new();
        let tiles = plan.tiles();
        // One task per output group: kernel polynomials are built once and
        // reused across tiles; accumulators live in the task.
        let per_group: Vec<Vec<(Vec<u64>, Vec<u64>)>> = (0..plan.o_groups)
            .into_par_iter()
            .map_init(
                // Per-worker buffers, reused across output groups (fresh
                // zeroed pages per group cost several percent of the layer).
                || {
                    let acc: Vec<[Vec<u64>; 4]> = (0..tiles)
                        .map(|_| std::array::from_fn(|_| vec![0u64; N]))
                        .collect();
                    (
                        acc,
                        vec![0i64; N],
                        [Vec::with_capacity(N), Vec::with_capacity(N)],
                        Vec::new(),
                    )
                },
                |(acc, kpoly, k_ntt, wanted), og| {
                    let mut task_rng = ChaCha20Rng::from_seed(master);
                    task_rng.set_stream(og as u64);
                    for a in acc.iter_mut() {
                        for v in a.iter_mut() {
                            v.fill(0);
                        }
                    }
                    for cb in 0..plan.c_blocks {
                        // Every (group, block) pair holds at least one
                        // weight slot (tap (0, 0) of each phase is in the
                        // kernel), so no block is skipped: skipping blocks
                        // whose weights happen to be zero would reveal
                        // sparsity through timing.
                        plan.kernel_poly(weights, og, cb, kpoly);
                        small_to_ntt(kpoly, k_ntt);
                        for (tile, acc) in acc.iter_mut().enumerate() {
                            let ct = &cts[tile * plan.c_blocks + cb];
                            for i in 0..2 {
                                ntt.plans[i].mul_accumulate(&mut acc[i], &ct[i], &k_ntt[i]);
                                ntt.plans[i].mul_accumulate(&mut acc[2 + i], &ct[2 + i], &k_ntt[i]);
                            }
                        }
                    }
                    kpoly.as_mut_slice().zeroize();
                    k_ntt[0].zeroize();
                    k_ntt[1].zeroize();
                    acc.iter_mut()
                        .enumerate()
                        .map(|(tile, acc)| {
                            plan.wanted(tile, og, wanted);
                            self.finish(plan, acc, wanted, mask, &switch, &mut task_rng)
                        })
                        .collect()
                },
            )
            .collect();

        let mut c1 = Vec::with_capacity(plan.reply_cts() * N);
        let mut c0 = Vec::with_capacity(plan.total_wanted());
        for tile in 0..tiles {
            for group in &per_group {
                let (a, b) = &group[tile];
                c1.extend_from_slice(a);
                c0.extend_from_slice(b);
            }
        }
        Ok(ServerReply {
            plan_digest: plan.digest,
            c1,
            c0,
        })
    }

    /// Turns one accumulated product (NTT form, [b0, b1, a0, a1]) into a
    /// reply ciphertext: + Enc_pk(0), − Δ·s, + flood on c0, switch, drop bits.
    fn finish(
        &self,
        plan: &LayerPlan,
        acc: &mut [Vec<u64>; 4],
        wanted: &[(usize, usize)],
        mask: &[u64],
        switch: &Switch,
        rng: &mut ChaCha20Rng,
    ) -> (Vec<u64>, Vec<u64>) {
        let ntt = ntt();
        // Fresh public-key encryption of zero: (u·pk_b + e0, u·pk_a + e1).
        let mut u = vec![0i64; N];
        sample_ternary(rng, &mut u);
        let mut u_ntt = [Vec::with_capacity(N), Vec::with_capacity(N)];
        small_to_ntt(&u, &mut u_ntt);
        for i in 0..2 {
            ntt.plans[i].mul_accumulate(&mut acc[i], &u_ntt[i], &self.pk_ntt[0][i]);
            ntt.plans[i].mul_accumulate(&mut acc[2 + i], &u_ntt[i], &self.pk_ntt[1][i]);
        }
        u.zeroize();
        for (k, poly) in acc.iter_mut().enumerate() {
            ntt.plans[k % 2].inv(poly);
        }
        let mut e = vec![0i64; N];
        sample_cbd(rng, &mut e);
        let (p0, p1) = (CIPHERTEXT_PRIMES[0], CIPHERTEXT_PRIMES[1]);
        let c1: Vec<u64> = (0..N)
            .map(|j| {
                let v0 = add_mod(acc[2][j], lift_small(e[j], p0), p0);
                let v1 = add_mod(acc[3][j], lift_small(e[j], p1), p1);
                switch.apply_pair(v0, v1, C1_DROP_BITS)
            })
            .collect();
        sample_cbd(rng, &mut e);
        let delta: [(u64, u64); 2] = std::array::from_fn(|i| {
            let d = self.params.delta_mod(i);
            (d, shoup(d, CIPHERTEXT_PRIMES[i]))
        });
        // Triangular flood X = U1 − U2, U_i uniform on [0, M) by rejection
        // sampling: |X| < M, hiding per the module docs (*Noise flooding*).
        let width = plan.flood_bound;
        let width_mask = u128::MAX >> width.leading_zeros();
        let mut uniform = || loop {
            let x = (((rng.next_u64() as u128) << 64) | rng.next_u64() as u128) & width_mask;
            if x < width {
                break x;
            }
        };
        let c0: Vec<u64> = wanted
            .iter()
            .map(|&(coeff, idx)| {
                let flood = uniform() as i128 - uniform() as i128;
                let mut v = [0u64; 2];
                for i in 0..2 {
                    let p = CIPHERTEXT_PRIMES[i];
                    let ds = mul_shoup(mask[idx], delta[i].0, delta[i].1, p);
                    let x = add_mod(acc[i][coeff], lift_small(e[coeff], p), p);
                    v[i] = add_mod(sub_mod(x, ds, p), reduce_i128(flood, p), p);
                }
                switch.apply_pair(v[0], v[1], C0_DROP_BITS)
            })
            .collect();
        e.zeroize();
        (c1, c0)
    }
}

/// The server's mask s of one layer's output ((O, Ho, Wo) or (outputs)
/// layout), uniform on Z_2^l, drawn by [`HeServer::evaluate`]. Deliberately
/// not `Clone`: one mask serves one layer of one inference. Zeroized on drop.
pub struct ServerMask(Vec<u64>);

impl ServerMask {
    /// The mask values (ring elements).
    pub fn as_slice(&self) -> &[u64] {
        &self.0
    }

    /// Moves the values out (the caller then owns zeroizing them).
    pub fn into_vec(mut self) -> Vec<u64> {
        std::mem::take(&mut self.0)
    }
}

impl std::fmt::Debug for ServerMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerMask({} elements)", self.0.len())
    }
}

impl Drop for ServerMask {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Switch {
    #[inline]
    fn apply_pair(&self, v0: u64, v1: u64, drop: u32) -> u64 {
        // KEEP = 0, DROP = 1.
        const _: () = assert!(KEEP == 0 && DROP == 1);
        self.apply(v0, v1, drop)
    }
}

/// One ciphertext x plaintext product at N = 4096 in isolation, as the server
/// runs it inside [`HeServer::evaluate`]: NTT of a signed kernel polynomial
/// into both primes and the multiply-accumulate of both ciphertext halves
/// (already in normalised NTT form). For micro-benchmarks.
pub struct CtPtKernel {
    ct: [Vec<u64>; 4],
    acc: [Vec<u64>; 4],
    kernel: Vec<i64>,
    k_ntt: [Vec<u64>; 2],
}

impl CtPtKernel {
    /// A random ciphertext (NTT form) and a dense random kernel with |w| < 2^12.
    pub fn new<R: RngCore>(rng: &mut R) -> Self {
        let ntt = ntt();
        let ct = std::array::from_fn(|k| {
            let mut v = vec![0u64; N];
            super::arith::sample_uniform_mod(rng, CIPHERTEXT_PRIMES[k % 2], &mut v);
            ntt.plans[k % 2].fwd(&mut v);
            v
        });
        let kernel = (0..N)
            .map(|_| (rng.next_u32() % 8191) as i64 - 4095)
            .collect();
        Self {
            ct,
            acc: std::array::from_fn(|_| vec![0u64; N]),
            kernel,
            k_ntt: [Vec::new(), Vec::new()],
        }
    }

    /// Runs one product and accumulates it.
    pub fn run(&mut self) {
        let ntt = ntt();
        small_to_ntt(&self.kernel, &mut self.k_ntt);
        for i in 0..2 {
            ntt.plans[i].mul_accumulate(&mut self.acc[i], &self.ct[i], &self.k_ntt[i]);
            ntt.plans[i].mul_accumulate(&mut self.acc[2 + i], &self.ct[2 + i], &self.k_ntt[i]);
        }
    }

    /// First accumulator coefficient (keeps the work observable).
    pub fn probe(&self) -> u64 {
        self.acc[0][0] ^ self.acc[3][N - 1]
    }
}
