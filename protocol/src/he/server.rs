//! The server's side: ciphertext x plaintext products in the NTT domain, the
//! mask, and circuit privacy (flooding, fresh encryption of zero, modulus
//! switch, dropped low bits).

use rand::{CryptoRng, RngCore};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use super::arith::{
    add_mod, expand_a, inv_mod, lift_small, mul_shoup, ntt, reduce_i128, sample_cbd,
    sample_ternary, shoup, small_to_ntt, sub_mod,
};
use super::client::PK_STREAM;
use super::layout::LayerPlan;
use super::params::{
    C0_DROP_BITS, C1_DROP_BITS, CIPHERTEXT_PRIMES, HeParams, KEEP, POLY_DEGREE, PRIMES,
    WEIGHT_BITS, dropped_modulus,
};
use super::wire::{ClientUpload, PublicKeyMsg, ServerReply};
use crate::{Error, Result};

const N: usize = POLY_DEGREE;

/// The server's HE context for one session: the client's public key in
/// normalised NTT form.
pub struct HeServer {
    params: HeParams,
    /// pk_ntt[component][prime], multiplied by N^−1.
    pk_ntt: [[Vec<u64>; PRIMES]; 2],
}

/// Modulus switch q → p0 of one value given by its three residues, then
/// rounding away `drop` low bits: with r the remainder of v modulo p1·p2,
/// centred, (v − r)/(p1·p2) = round(v·p0/q) (Brakerski, Gentry and
/// Vaikuntanathan's modulus switching). r is rebuilt by CRT from the p1 and
/// p2 residues, r = v1 + p1·((v2 − v1)·p1^−1 mod p2) < p1·p2, and only its
/// residue modulo p0 and its comparison with p1·p2/2 are needed, so no
/// 150-bit integer is formed.
#[derive(Clone, Copy)]
pub(crate) struct Switch {
    /// p1^−1 mod p2 and its Shoup constant.
    inv_p1: (u64, u64),
    /// p1 mod p0 and its Shoup constant.
    p1_mod_keep: (u64, u64),
    /// p1·p2 mod p0.
    p12_mod_keep: u64,
    /// (p1·p2)^−1 mod p0 and its Shoup constant.
    inv_p12: (u64, u64),
}

impl Switch {
    pub(crate) fn new() -> Self {
        let [p0, p1, p2] = CIPHERTEXT_PRIMES;
        let with_shoup = |w: u64, p: u64| (w, shoup(w, p));
        let p12_mod_keep = (dropped_modulus() % p0 as u128) as u64;
        Self {
            inv_p1: with_shoup(inv_mod(p1 % p2, p2), p2),
            p1_mod_keep: with_shoup(p1 % p0, p0),
            p12_mod_keep,
            inv_p12: with_shoup(inv_mod(p12_mod_keep, p0), p0),
        }
    }

    /// Switched and rounded: [`Self::exact`], then `drop` ≥ 1 low bits
    /// rounded away.
    #[inline]
    pub(crate) fn apply(&self, v: [u64; PRIMES], drop: u32) -> u64 {
        (self.exact(v) + (1u64 << (drop - 1))) >> drop
    }

    /// round(v·p0/q) mod p0 for v given by its residues.
    #[inline]
    pub(crate) fn exact(&self, v: [u64; PRIMES]) -> u64 {
        const _: () = assert!(KEEP == 0 && PRIMES == 3);
        let [p0, p1, p2] = CIPHERTEXT_PRIMES;
        // v1 < p1 < 2·p2 (tested), so one subtraction reduces it mod p2.
        let v1_mod_p2 = if v[1] >= p2 { v[1] - p2 } else { v[1] };
        let k = mul_shoup(
            sub_mod(v[2], v1_mod_p2, p2),
            self.inv_p1.0,
            self.inv_p1.1,
            p2,
        );
        // r = v1 + p1·k < p1·p2; its residue mod p0 (v1 < p1 < p0).
        let mut r0 = add_mod(
            v[1],
            mul_shoup(k, self.p1_mod_keep.0, self.p1_mod_keep.1, p0),
            p0,
        );
        // Centred: r > p1·p2/2 stands for r − p1·p2 (p1·p2 is odd, no tie).
        if v[1] as u128 + p1 as u128 * k as u128 > dropped_modulus() / 2 {
            r0 = sub_mod(r0, self.p12_mod_keep, p0);
        }
        let diff = sub_mod(v[0], r0, p0);
        mul_shoup(diff, self.inv_p12.0, self.inv_p12.1, p0)
    }
}

impl HeServer {
    /// Accepts the client's public key.
    pub fn new(params: HeParams, pk: &PublicKeyMsg) -> Result<Self> {
        if pk.b.len() != PRIMES * N
            || pk
                .b
                .chunks(N)
                .zip(CIPHERTEXT_PRIMES)
                .any(|(c, p)| c.iter().any(|&v| v >= p))
        {
            return Err(Error::malformed("malformed HE public key"));
        }
        let ntt = ntt();
        let mut a = Default::default();
        expand_a(&pk.seed, PK_STREAM, &mut a);
        let mut b: [Vec<u64>; PRIMES] = std::array::from_fn(|i| pk.b[i * N..(i + 1) * N].to_vec());
        for i in 0..PRIMES {
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
    /// W·c to the client (docs/ARCHITECTURE.md §3, §4).
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
        if upload.plan_digest != plan.digest || upload.b.len() != plan.upload_cts() * PRIMES * N {
            return Err(Error::malformed("HE upload does not match the layer plan"));
        }
        let ntt = ntt();
        // NTT form of every uploaded ciphertext, [b_0..b_P, a_0..a_P] by
        // prime, multiplied by N^−1 here once so that kernel polynomials need
        // no normalisation.
        let cts: Vec<[Vec<u64>; 2 * PRIMES]> = (0..plan.upload_cts())
            .into_par_iter()
            .map(|idx| {
                let mut a: [Vec<u64>; PRIMES] = Default::default();
                expand_a(&upload.seed, idx as u64, &mut a);
                let base = idx * PRIMES * N;
                let mut out: [Vec<u64>; 2 * PRIMES] =
                    std::array::from_fn(|k| match k.checked_sub(PRIMES) {
                        None => upload.b[base + k * N..base + (k + 1) * N].to_vec(),
                        Some(i) => std::mem::take(&mut a[i]),
                    });
                for (k, poly) in out.iter_mut().enumerate() {
                    ntt.plans[k % PRIMES].fwd(poly);
                    ntt.plans[k % PRIMES].normalize(poly);
                }
                out
            })
            .collect();

        // The seed of every flood and mask of this layer: wiped on return.
        let mut master = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *master);
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
                    let acc: Vec<[Vec<u64>; 2 * PRIMES]> = (0..tiles)
                        .map(|_| std::array::from_fn(|_| vec![0u64; N]))
                        .collect();
                    let k_ntt: [Vec<u64>; PRIMES] = std::array::from_fn(|_| Vec::with_capacity(N));
                    (acc, vec![0i64; N], k_ntt, Vec::new())
                },
                |(acc, kpoly, k_ntt, wanted), og| {
                    let mut task_rng = ChaCha20Rng::from_seed(*master);
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
                            for (k, (acc, ct)) in acc.iter_mut().zip(ct).enumerate() {
                                ntt.plans[k % PRIMES].mul_accumulate(acc, ct, &k_ntt[k % PRIMES]);
                            }
                        }
                    }
                    kpoly.as_mut_slice().zeroize();
                    for v in k_ntt.iter_mut() {
                        v.zeroize();
                    }
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

    /// Turns one accumulated product (NTT form, [b_0..b_P, a_0..a_P]) into a
    /// reply ciphertext: + Enc_pk(0), − Δ·s, + flood on c0, switch, drop bits.
    fn finish(
        &self,
        plan: &LayerPlan,
        acc: &mut [Vec<u64>; 2 * PRIMES],
        wanted: &[(usize, usize)],
        mask: &[u64],
        switch: &Switch,
        rng: &mut ChaCha20Rng,
    ) -> (Vec<u64>, Vec<u64>) {
        let ntt = ntt();
        // Fresh public-key encryption of zero: (u·pk_b + e0, u·pk_a + e1).
        let mut u = vec![0i64; N];
        sample_ternary(rng, &mut u);
        let mut u_ntt: [Vec<u64>; PRIMES] = std::array::from_fn(|_| Vec::with_capacity(N));
        small_to_ntt(&u, &mut u_ntt);
        for i in 0..PRIMES {
            ntt.plans[i].mul_accumulate(&mut acc[i], &u_ntt[i], &self.pk_ntt[0][i]);
            ntt.plans[i].mul_accumulate(&mut acc[PRIMES + i], &u_ntt[i], &self.pk_ntt[1][i]);
        }
        u.zeroize();
        for v in u_ntt.iter_mut() {
            v.zeroize();
        }
        for (k, poly) in acc.iter_mut().enumerate() {
            ntt.plans[k % PRIMES].inv(poly);
        }
        let mut e = vec![0i64; N];
        sample_cbd(rng, &mut e);
        let c1: Vec<u64> = (0..N)
            .map(|j| {
                let v = std::array::from_fn(|i| {
                    let p = CIPHERTEXT_PRIMES[i];
                    add_mod(acc[PRIMES + i][j], lift_small(e[j], p), p)
                });
                switch.apply(v, C1_DROP_BITS)
            })
            .collect();
        sample_cbd(rng, &mut e);
        let delta: [(u64, u64); PRIMES] = std::array::from_fn(|i| {
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
                let v = std::array::from_fn(|i| {
                    let p = CIPHERTEXT_PRIMES[i];
                    let ds = mul_shoup(mask[idx], delta[i].0, delta[i].1, p);
                    let x = add_mod(acc[i][coeff], lift_small(e[coeff], p), p);
                    add_mod(sub_mod(x, ds, p), reduce_i128(flood, p), p)
                });
                switch.apply(v, C0_DROP_BITS)
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

/// One ciphertext x plaintext product at N = 8192 in isolation, as the server
/// runs it inside [`HeServer::evaluate`]: NTT of a signed kernel polynomial
/// into every prime and the multiply-accumulate of both ciphertext halves
/// (already in normalised NTT form). For micro-benchmarks.
pub struct CtPtKernel {
    ct: [Vec<u64>; 2 * PRIMES],
    acc: [Vec<u64>; 2 * PRIMES],
    kernel: Vec<i64>,
    k_ntt: [Vec<u64>; PRIMES],
}

impl CtPtKernel {
    /// A random ciphertext (NTT form) and a dense random kernel with |w| < 2^12.
    pub fn new<R: RngCore>(rng: &mut R) -> Self {
        let ntt = ntt();
        let ct = std::array::from_fn(|k| {
            let mut v = vec![0u64; N];
            super::arith::sample_uniform_mod(rng, CIPHERTEXT_PRIMES[k % PRIMES], &mut v);
            ntt.plans[k % PRIMES].fwd(&mut v);
            v
        });
        let kernel = (0..N)
            .map(|_| (rng.next_u32() % 8191) as i64 - 4095)
            .collect();
        Self {
            ct,
            acc: std::array::from_fn(|_| vec![0u64; N]),
            kernel,
            k_ntt: Default::default(),
        }
    }

    /// Runs one product and accumulates it.
    pub fn run(&mut self) {
        let ntt = ntt();
        small_to_ntt(&self.kernel, &mut self.k_ntt);
        for (k, (acc, ct)) in self.acc.iter_mut().zip(&self.ct).enumerate() {
            ntt.plans[k % PRIMES].mul_accumulate(acc, ct, &self.k_ntt[k % PRIMES]);
        }
    }

    /// First accumulator coefficient (keeps the work observable).
    pub fn probe(&self) -> u64 {
        self.acc[0][0] ^ self.acc[2 * PRIMES - 1][N - 1]
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::he::arith::mul_mod;

    /// The RNS switch against its definition: for v = X·p1·p2 + r (mod q)
    /// with |r| < p1·p2/2, round(v·p0/q) = round(v/(p1·p2)) = X. Residues
    /// are formed directly from X and r, so no 150-bit arithmetic is needed.
    #[test]
    fn switch_rounds_to_the_nearest_multiple() {
        let sw = Switch::new();
        let p12 = dropped_modulus();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let edges = [0i128, 1, -1, (p12 / 2) as i128, -((p12 / 2) as i128)];
        for trial in 0..20_000 {
            let x = rng.random_range(0..CIPHERTEXT_PRIMES[0]);
            let r: i128 = match edges.get(trial) {
                Some(&e) => e,
                None => rng.random_range(-((p12 / 2) as i128)..=(p12 / 2) as i128),
            };
            let v = std::array::from_fn(|i| {
                let p = CIPHERTEXT_PRIMES[i];
                let xp = mul_mod(x % p, (p12 % p as u128) as u64, p);
                add_mod(xp, reduce_i128(r, p), p)
            });
            assert_eq!(sw.exact(v), x, "x = {x}, r = {r}");
            assert_eq!(sw.apply(v, 3), (x + 4) >> 3);
        }
    }
}
