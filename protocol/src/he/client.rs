//! The client's side: key generation, encryption of its share, decryption of
//! the server's reply into its share of W·c − s.

use rand::{CryptoRng, RngCore};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use super::arith::{
    add_mod, expand_a, lift_small, mul_shoup, ntt, sample_cbd, sample_ternary, shoup, sub_mod,
};
use super::layout::LayerPlan;
use super::params::{
    C0_DROP_BITS, C1_DROP_BITS, CIPHERTEXT_PRIMES, HeParams, KEEP, POLY_DEGREE, PRIMES,
    ShareDistribution,
};
use super::wire::{ClientUpload, PublicKeyMsg, ServerReply};
use crate::{Error, Result};

/// Stream index of the public key's `a` (uploads use 0, 1, 2, ...).
pub(crate) const PK_STREAM: u64 = u64::MAX;

/// The client's share c of one layer's input, uniform on Z_2^l: it can only
/// be drawn from a CSPRNG ([`UniformShare::random`]), so the uniform-share
/// noise analysis cannot be fed a chosen value. In the protocol it is the
/// client's input-independent share of that layer's input (its mask r of
/// the previous activation, or of the image). Zeroized on drop; not `Clone`.
pub struct UniformShare {
    ring_bits: u32,
    values: Vec<u64>,
}

impl UniformShare {
    /// Draws `len` uniform elements of Z_2^l (l from `params`).
    pub fn random<R: RngCore + CryptoRng>(params: HeParams, len: usize, rng: &mut R) -> Self {
        let m = params.ring_mask();
        Self {
            ring_bits: params.ring_bits(),
            values: (0..len).map(|_| rng.next_u64() & m).collect(),
        }
    }

    /// The share (ring elements).
    pub fn as_slice(&self) -> &[u64] {
        &self.values
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the share is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Moves the values out (the caller then owns zeroizing them).
    pub fn into_vec(mut self) -> Vec<u64> {
        std::mem::take(&mut self.values)
    }
}

impl std::fmt::Debug for UniformShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UniformShare({} elements)", self.values.len())
    }
}

impl Drop for UniformShare {
    fn drop(&mut self) {
        self.values.zeroize();
    }
}

/// The client's RLWE secret: ternary s, also kept in NTT form for every
/// prime. Zeroized on drop.
pub struct HeClient {
    params: HeParams,
    s: Vec<i64>,
    s_ntt: [Vec<u64>; PRIMES],
}

impl Drop for HeClient {
    fn drop(&mut self) {
        self.s.zeroize();
        for v in &mut self.s_ntt {
            v.zeroize();
        }
    }
}

impl HeClient {
    /// Samples a fresh secret key.
    pub fn new<R: RngCore + CryptoRng>(params: HeParams, rng: &mut R) -> Self {
        let mut s = vec![0i64; POLY_DEGREE];
        sample_ternary(rng, &mut s);
        let mut s_ntt = Default::default();
        super::arith::small_to_ntt(&s, &mut s_ntt);
        Self { params, s, s_ntt }
    }

    /// The parameters this key was made for.
    pub fn params(&self) -> HeParams {
        self.params
    }

    /// −a·s mod p_i for every prime, with `a` given in coefficient form
    /// (overwritten).
    fn minus_a_s(&self, a: &mut [Vec<u64>; PRIMES]) {
        let ntt = ntt();
        for i in 0..PRIMES {
            let p = CIPHERTEXT_PRIMES[i];
            ntt.plans[i].fwd(&mut a[i]);
            ntt.plans[i].mul_assign_normalize(&mut a[i], &self.s_ntt[i]);
            ntt.plans[i].inv(&mut a[i]);
            for v in a[i].iter_mut() {
                *v = if *v == 0 { 0 } else { p - *v };
            }
        }
    }

    /// A public key (−a·s + e, a) with a fresh seed: sent once per session.
    pub fn public_key<R: RngCore + CryptoRng>(&self, rng: &mut R) -> PublicKeyMsg {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut a = Default::default();
        expand_a(&seed, PK_STREAM, &mut a);
        self.minus_a_s(&mut a);
        let mut e = vec![0i64; POLY_DEGREE];
        sample_cbd(rng, &mut e);
        let mut b = Vec::with_capacity(PRIMES * POLY_DEGREE);
        for i in 0..PRIMES {
            let p = CIPHERTEXT_PRIMES[i];
            b.extend(
                a[i].iter()
                    .zip(&e)
                    .map(|(&x, &ei)| add_mod(x, lift_small(ei, p), p)),
            );
        }
        PublicKeyMsg { seed, b }
    }

    /// Encrypts the client's share `c` of the layer input ((C, H, W) layout)
    /// as the plan's input polynomials: b = −a·s + e + Δ·c with c lifted
    /// centred and Δ = (q − 1)/t. The share is a [`UniformShare`], which is
    /// what the default noise analysis ([`ShareDistribution::Uniform`])
    /// assumes and what the protocol uses (docs/ARCHITECTURE.md §5).
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        plan: &LayerPlan,
        share: &UniformShare,
        rng: &mut R,
    ) -> Result<ClientUpload> {
        if share.ring_bits != self.params.ring_bits() {
            return Err(Error::BadInput(
                "uniform share drawn for another ring width".into(),
            ));
        }
        self.encrypt_values(plan, &share.values, rng)
    }

    /// Encrypts an arbitrary share (any values in Z_2^l). Only allowed under
    /// [`ShareDistribution::Arbitrary`] parameters, whose noise analysis holds
    /// for every share; under the default parameters a non-uniform share
    /// could fail to decrypt and leak the high part of W·c.
    pub fn encrypt_arbitrary<R: RngCore + CryptoRng>(
        &self,
        plan: &LayerPlan,
        share: &[u64],
        rng: &mut R,
    ) -> Result<ClientUpload> {
        if self.params.shares() != ShareDistribution::Arbitrary {
            return Err(Error::BadInput(
                "arbitrary shares need HeParams::with_shares(ShareDistribution::Arbitrary)".into(),
            ));
        }
        self.encrypt_values(plan, share, rng)
    }

    fn encrypt_values<R: RngCore + CryptoRng>(
        &self,
        plan: &LayerPlan,
        share: &[u64],
        rng: &mut R,
    ) -> Result<ClientUpload> {
        if plan.params != self.params {
            return Err(Error::BadInput(
                "layer plan made for other HE parameters".into(),
            ));
        }
        if share.len() != plan.shape.input_len() {
            return Err(Error::BadInput(format!(
                "share has {} elements, layer input has {}",
                share.len(),
                plan.shape.input_len()
            )));
        }
        let mask = self.params.ring_mask();
        if share.iter().any(|&v| v > mask) {
            return Err(Error::BadInput("share element outside Z_2^l".into()));
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        // The seed of the encryption noise: wiped on return.
        let mut noise_seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *noise_seed);
        let t = 1i64 << self.params.ring_bits();
        let delta: [(u64, u64); PRIMES] = std::array::from_fn(|i| {
            let d = self.params.delta_mod(i);
            (d, shoup(d, CIPHERTEXT_PRIMES[i]))
        });
        let cblocks = plan.c_blocks;
        let mut b = vec![0u64; plan.upload_cts() * PRIMES * POLY_DEGREE];
        b.par_chunks_mut(PRIMES * POLY_DEGREE)
            .enumerate()
            .for_each(|(idx, out)| {
                let mut noise_rng = ChaCha20Rng::from_seed(*noise_seed);
                noise_rng.set_stream(idx as u64);
                let mut m = vec![0u64; POLY_DEGREE];
                plan.input_poly(share, idx / cblocks, idx % cblocks, &mut m);
                let mut a = Default::default();
                expand_a(&seed, idx as u64, &mut a);
                self.minus_a_s(&mut a);
                let mut e = vec![0i64; POLY_DEGREE];
                sample_cbd(&mut noise_rng, &mut e);
                for i in 0..PRIMES {
                    let p = CIPHERTEXT_PRIMES[i];
                    let (d, ds) = delta[i];
                    for (j, o) in out[i * POLY_DEGREE..(i + 1) * POLY_DEGREE]
                        .iter_mut()
                        .enumerate()
                    {
                        let mv = m[j] as i64;
                        let centred = if mv >= t / 2 { mv - t } else { mv };
                        let dm = mul_shoup(lift_small(centred, p), d, ds, p);
                        *o = add_mod(add_mod(a[i][j], lift_small(e[j], p), p), dm, p);
                    }
                }
                e.zeroize();
                m.zeroize();
            });
        Ok(ClientUpload {
            plan_digest: plan.digest,
            seed,
            b,
        })
    }

    /// Decrypts the reply: the client's share of W·c − s in (O, Ho, Wo) (or
    /// (outputs)) layout.
    pub fn decrypt(&self, plan: &LayerPlan, reply: &ServerReply) -> Result<Vec<u64>> {
        self.decrypt_raw(plan, reply).map(|(out, _)| out)
    }

    /// Decrypts and also returns the noise of every returned coefficient (in
    /// units of p0, centred): what a curious client can measure.
    pub(crate) fn decrypt_raw(
        &self,
        plan: &LayerPlan,
        reply: &ServerReply,
    ) -> Result<(Vec<u64>, Vec<i64>)> {
        if plan.params != self.params {
            return Err(Error::BadInput(
                "layer plan made for other HE parameters".into(),
            ));
        }
        if reply.plan_digest != plan.digest
            || reply.c1.len() != plan.reply_cts() * POLY_DEGREE
            || reply.c0.len() != plan.total_wanted()
        {
            return Err(Error::malformed("HE reply does not match the layer plan"));
        }
        let p = CIPHERTEXT_PRIMES[KEEP];
        let l = self.params.ring_bits();
        let mask = self.params.ring_mask();
        let dk = self.params.delta_keep();
        let plan_ref = plan;
        let per_ct: Vec<(Vec<(usize, usize)>, usize)> = {
            let mut offs = 0;
            let mut v = Vec::with_capacity(plan.reply_cts());
            for tile in 0..plan.tiles() {
                for og in 0..plan.o_groups {
                    let mut w = Vec::new();
                    plan_ref.wanted(tile, og, &mut w);
                    let n = w.len();
                    v.push((w, offs));
                    offs += n;
                }
            }
            v
        };
        let results: Vec<Vec<(usize, u64, i64)>> = per_ct
            .par_iter()
            .enumerate()
            .map(|(k, (wanted, off))| {
                let ntt = ntt();
                let mut c1: Vec<u64> = reply.c1[k * POLY_DEGREE..(k + 1) * POLY_DEGREE]
                    .iter()
                    .map(|&v| {
                        let x = v << C1_DROP_BITS;
                        if x >= p { x - p } else { x }
                    })
                    .collect();
                ntt.plans[KEEP].fwd(&mut c1);
                ntt.plans[KEEP].mul_assign_normalize(&mut c1, &self.s_ntt[KEEP]);
                ntt.plans[KEEP].inv(&mut c1);
                wanted
                    .iter()
                    .enumerate()
                    .map(|(j, &(coeff, idx))| {
                        let c0 = reply.c0[off + j] << C0_DROP_BITS;
                        let c0 = if c0 >= p { c0 - p } else { c0 };
                        let x = add_mod(c0, c1[coeff], p);
                        // m = round(t·x / p) mod t; noise = x − Δ'·m (centred).
                        let m = ((((x as u128) << l) + (p as u128 / 2)) / p as u128) as u64 & mask;
                        let noise = sub_mod(x, super::arith::mul_mod(dk, m, p), p);
                        let noise = if noise > p / 2 {
                            noise as i64 - p as i64
                        } else {
                            noise as i64
                        };
                        (idx, m, noise)
                    })
                    .collect()
            })
            .collect();
        let mut out = vec![0u64; plan.total_wanted()];
        let mut noise = Vec::with_capacity(plan.total_wanted());
        for r in results {
            for (idx, m, nz) in r {
                out[idx] = m;
                noise.push(nz);
            }
        }
        Ok((out, noise))
    }
}
