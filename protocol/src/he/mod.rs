//! Offline linear correlations with RLWE in coefficient encoding.
//!
//! For every linear layer the client holds an input-independent share c and
//! the server holds the weights W and a random mask s. This module gives the
//! client W·c − s mod 2^l and nothing else about W; the server learns nothing
//! about c (docs/ARCHITECTURE.md §3). It follows Cheetah (Huang, Lu, Hong, Liu,
//! USENIX Security 2022): convolutions and FC layers are polynomial products
//! with no rotations and no relinearisation ([`layout`] explains the packing).
//!
//! # Security scope
//! Semi-honest parties only (docs/ARCHITECTURE.md §5): both follow the protocol and
//! try to learn more from what they see. A malicious client could upload
//! ill-formed ciphertexts (huge noise, a non-ternary key, a key that differs
//! from the public key) and learn more about W from the replies; a malicious
//! server could return a wrong share. Nothing here proves well-formedness or
//! checks results; hostile *bytes* are still rejected cleanly ([`wire`]).
//! What the API does enforce: the server's mask s is drawn inside
//! [`HeServer::evaluate`] and returned as a move-only [`ServerMask`], and the
//! client's share is a [`UniformShare`] drawn from a CSPRNG (a chosen share
//! needs [`ShareDistribution::Arbitrary`] and [`HeClient::encrypt_arbitrary`]).
//! The weights' statistical hiding is counted over the lifetime of a weight
//! set, across all sessions and clients ([`hiding`], *Noise flooding* below).
//!
//! # Protocol (sans-IO)
//! 1. Once per session the client sends [`PublicKeyMsg`] ([`HeClient::public_key`]).
//! 2. Per layer both parties build the same [`LayerPlan`] from the public shape.
//!    The client sends [`ClientUpload`] ([`HeClient::encrypt`]): symmetric
//!    encryptions b = −a·s + e + Δ·c of its share, `a` replaced by a seed.
//! 3. The server draws its mask s_mask and answers [`ServerReply`]
//!    ([`HeServer::evaluate`]): for each output ciphertext Σ ct·W − Δ·s_mask,
//!    plus flooding noise, plus a fresh public-key encryption of zero,
//!    switched from q to p0, low bits dropped, and only the useful
//!    coefficients of c0 are sent.
//! 4. The client decrypts ([`HeClient::decrypt`]).
//!
//! ```
//! use pi_protocol::he::*;
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! let params = HeParams::default();
//! let (mut client_rng, mut server_rng) = (ChaCha20Rng::from_os_rng(), ChaCha20Rng::from_os_rng());
//! // Client, once per session.
//! let client = HeClient::new(params, &mut client_rng);
//! let pk = client.public_key(&mut client_rng).encode(&params);
//! // Server.
//! let server = HeServer::new(params, &PublicKeyMsg::decode(&pk, &params)?)?;
//! // One layer: both sides plan it from the public shape.
//! let shape = LayerShape::Fc(FcShape { inputs: 3, outputs: 2 });
//! let plan = LayerPlan::new(params, shape)?;
//! // The client's share c: uniform, drawn from its CSPRNG.
//! let share = UniformShare::random(params, shape.input_len(), &mut client_rng);
//! let weights = [1, -2, 3, 4, 5, -6]; // the server's W
//! let up = client.encrypt(&plan, &share, &mut client_rng)?.encode(&plan);
//! // The server draws its mask s itself and keeps it.
//! let (reply, mask) =
//!     server.evaluate(&plan, &weights, &ClientUpload::decode(&up, &plan)?, &mut server_rng)?;
//! let out = client.decrypt(&plan, &ServerReply::decode(&reply.encode(&plan), &plan)?)?;
//! let want = linear_reference(params, &shape, &weights, share.as_slice(), mask.as_slice());
//! assert_eq!(out, want);
//! # Ok::<(), pi_protocol::Error>(())
//! ```
//!
//! # Parameters
//! N = 8192, q = p0·p1·p2 with three primes p ≡ 1 (mod 2^37) just below
//! 2^50, log q = 149.996 (the HE standard allows 218 bits at N = 8192 for
//! 128-bit security, and 152 for 192-bit), ternary secret, CBD(21) errors:
//! see [`params`] for the sources. t = 2^l with l ≤ 37; Δ = (q − 1)/t
//! exactly because q ≡ 1 (mod t). Replies are switched down to p0.
//!
//! # NTT backend
//! `tfhe-ntt` 0.7 (negacyclic prime NTT with run-time dispatch). Primes
//! below 2^50 take its AVX-512 IFMA kernels (52-bit multipliers), which
//! earlier measurements here put at about twice the speed of its 64-bit
//! AVX-512 path (6.8 against 12.6 µs per NTT at N = 4096, under load); without
//! IFMA the same primes run on the AVX-512, AVX2 or scalar path. The test
//! oracle for polynomial arithmetic is a schoolbook negacyclic product
//! (`arith::tests::schoolbook`).
//!
//! # Noise analysis (correctness)
//! Let n be the number of weights summed into one output coefficient
//! (G·C_in·k² for G output channels per ciphertext: every coefficient of every
//! kernel polynomial of the group meets the noise) and w̄ = 2^16 the public
//! weight bound ([`params::WEIGHT_BITS`]). "w.p." bounds fail with probability
//! below 2^−71 per coefficient (sub-Gaussian tail at τ = 10 standard
//! deviations). All bounds are evaluated in integer arithmetic, rounded up,
//! so both parties plan identically on every platform.
//! 1. *Encryption*: b + a·s = Δ·c + e, |e_j| ≤ 21, Var = 10.5.
//! 2. *Product with weights*: Σ (b·W) + (a·W)·s = Δ·(W·c) + e·W. With c
//!    lifted centred, W·c = [W·c]_t + t·k over Z, and Δ·t = q − 1 ≡ −1, so
//!    the plaintext product adds −k. For uniform shares ([`UniformShare`],
//!    the default analysis) e·W + W·c/t is sub-Gaussian with proxy
//!    (10.5 + 1/4)·‖W‖₂² (Hoeffding for the second term) and |k − W·c/t| ≤
//!    1, so w.p. |e·W − k| ≤ B(n) = τ·√(10.75·n)·w̄ + 1. For arbitrary
//!    shares |k| ≤ ‖W‖₁/2 + 1: B(n) = τ·√(10.5·n)·w̄ + n·w̄/2 + 1.
//! 3. *Mask*: −Δ·s_mask is exact.
//! 4. *Flooding*: triangular noise X = U1 − U2, U_i uniform on [0, M), so
//!    |X| < M, added at the full modulus to every sent c0 coefficient, with
//!    M = 7·2^s·V(n) for the layer's hiding s (next section). M depends on
//!    the public shape and weight bound only.
//! 5. *Fresh encryption of zero*: (u·pk_b + e0, u·pk_a + e1) adds
//!    ν = u·e_pk + e0 + e1·s to the phase, |ν| ≤ 2·21·N + 21 < 2^19.
//! 6. *Modulus switch to p0*: c' = round(c·p0/q) computed in RNS (CRT of the
//!    p1, p2 residues, no 150-bit integer); the noise is divided by p1·p2 ≈
//!    2^100 and gains the rounding r0 + r1·s, |r| ≤ 1/2. Δ·m becomes
//!    Δ'·m + m(1 − 1/(p1·p2))/t with Δ' = (p0 − 1)/t: error < 1.
//! 7. *Dropped bits*: c0 loses 10 bits, c1 loses 2 bits. With step 6, c0 is
//!    off by at most 2^9 + 1/2 and c1 by at most 2 + 1/2 per coefficient,
//!    which the ternary secret turns into w.p. ≤ τ·√N·2.5 (Hoeffding).
//! 8. *Decryption* round(t·x/p0) is exact while the total is below Δ'/2
//!    (4 095 for l = 37). The rounding terms take 906·2.5 + 513 + 2 =
//!    2 780; the planner only accepts a flood whose total times
//!    [`params::MARGIN_NUM`]/[`params::MARGIN_DEN`] (≥ 2^0.25) stays below
//!    Δ'/2, which leaves M/(p1·p2) ≤ 661, i.e. M ≤ 2^109.4. For a
//!    512-channel 3x3 conv with 9 outputs per ciphertext at s = 80 (ResNet18's
//!    last stage): V ≈ 2^25.4, M ≈ 2^108.2, M/(p1·p2) ≈ 300, total ≈ 3 080,
//!    a margin of 0.4 bit on top of the 2^−71 tails. Each returned
//!    coefficient relies on two τ-bounds (steps 2 and 7), so one inference
//!    returning K coefficients fails to decrypt with probability at most
//!    2·K·2^−71 (2^−50.8 for ResNet18, [`WeightHiding::decryption_failure_log2`]).
//!    The test `reply_noise_does_not_depend_on_weights` checks the measured
//!    noise variance against these terms.
//!
//! # Noise flooding (privacy of W against the client)
//! What the client sees of one reply ciphertext: all of c1 and the wanted
//! coefficients of c0. Before switching, its phase at a wanted coefficient is
//! c0 + c1·s = Δ·(W·c − s_mask) + v + X with v = e·W − k + ν: the client
//! knows e, c and s, so v is a function of W (and of the server's u, e0,
//! e1, which also sit in c1 = a·W + u·pk_a + e1).
//! - *Hybrid 1*: replace every sent c0 by Δ·(W·c − s_mask) + X − (c1·s),
//!   i.e. drop v. Conditioned on everything else (keys, shares, the
//!   client's noise, the server's u, e0, e1 and masks), the floods are
//!   independent, so by the lemma below the statistical distance is at most
//!   √(D·Σ_i v_i²), D the flood's Hellinger constant. Averaged over the
//!   conditioning, Jensen's inequality (√ is concave) gives √(D·Σ_i E[v_i²]).
//!   The lemma holds for every integer shift, so no tail event of v enters.
//! - *Hybrid 2*: u and e1 now occur only in c1 = a·W + (u·pk_a + e1), an RLWE
//!   sample with secret u under the same assumption as the key, so c1 is
//!   pseudorandom and can be replaced by uniform. This step needs hybrid 1
//!   first: ν is correlated with c1, which is why the flood covers ν too.
//! - What remains depends on W only through W·c − s_mask, which is uniform
//!   because s_mask is fresh and uniform ([`ServerMask`]). Modulus switching
//!   and dropping bits are deterministic post-processing and cannot increase
//!   the distance. Garbage coefficients of c0 (partial sums) are never sent.
//!
//! *Second moments* ([`params::HeParams::flood_rms_bound`]). The three terms
//! of v are uncorrelated (e and u are zero-mean and independent of c and of
//! each other), so E[v²] = E[(e·W)²] + E[k²] + E[ν²] with
//! E[(e·W)²] ≤ (η/2)·n·w̄², E[k²] ≤ (√E[y²] + 1)² for y = W·c/t (uniform
//! shares: E[y²] ≤ n·w̄²/4 + (n·w̄)²/(4t²); arbitrary: |y| ≤ n·w̄/2), and
//! E[ν²] = (2/3)·η·N + η/2. V(n) is the rounded-up square root of the sum.
//! The expectations are over the client's honestly drawn key, noise and
//! shares: the bound assumes a semi-honest client.
//!
//! *Lemma* (standard properties of the Hellinger distance H² = ½Σ(√P − √Q)²,
//! e.g. Polyanskiy and Wu, *Information Theory: From Coding to Learning*,
//! 2024, ch. 7): (i) SD(P, Q) ≤ √2·H; (ii) for products 1 − H² =
//! Π(1 − H_i²), so H² ≤ Σ H_i²; (iii) for a pmf p on Z and an integer shift
//! v, Σ_x (√p(x) − √p(x − v))² ≤ v²·D with D = Σ_x (√p(x + 1) − √p(x))²
//! (telescope the difference in v unit steps, then Cauchy–Schwarz). Together
//! SD ≤ √(Σ_i v_i²·D_i). For the triangular pmf p(x) = (M − |x|)/M²,
//! D·M² = 2 + 2·Σ_{a<M} (√(a+1) − √a)² ≤ 2.5 + ln(M)/2 ≤ 49 for M ≤ 2^126
//! (test `triangular_hellinger_constant`). Uniform flooding on [−F, F]
//! instead has H² = |v|/(2F + 1), linear in v, so K coefficients would cost a
//! factor K; a smooth flood costs only √K.
//!
//! With M = 7·2^s·V(n), each sent coefficient contributes D·E[v²] ≤ 2^−2s.
//! **Over the lifetime of a weight set.** Every inference uses fresh client
//! noise and shares, fresh masks and floods, and every session its own
//! keys, but the weights are common to all of them, whatever the session
//! or the client (clients may collude, and one client may open any number
//! of sessions). The hybrids above apply to all replies ever sent at once,
//! so Q inferences sending K_l coefficients for layer l are within
//! statistical distance √(Q·Σ_l K_l·2^(−2·s_l)) of a weight-independent
//! simulation: the bound grows as √Q over the model's whole lifetime, not
//! per session. [`WeightHiding`] evaluates it; `pi-server
//! --lifetime-inferences Q` (default 2^30) refuses to start unless it is at
//! most 2^−40 ([`hiding`]). Every layer gets s_l ≥
//! [`params::TARGET_HIDING_BITS`] = 72, raised up to
//! [`params::MAX_HIDING_BITS`] = 80 where its packing leaves budget.
//! ResNet18 (m = 64, 32x32) gets s = 80 in every layer and sends K ≈ 2^19.2
//! coefficients: **2^−70.4 per inference, 2^−55.4 over 2^30 inferences**,
//! and 2^−40 for up to 2^60.8 inferences.
//!
//! *Why N = 8192 and three primes.* 40 bits over 2^30 ResNet18 inferences
//! need s ≥ 40 + ½·log2(2^30·2^19.2) = 64.6, i.e. floods up to M ≈ 2^95
//! for the widest packings, while decryption needs M/(q/p0) well below
//! Δ'/2 ≈ 2^12 at p0 ≈ 2^50: q/p0 ≥ 2^86 or so. At N = 4096 the standard
//! allows log q ≤ 109, so q/p0 ≤ 2^72 (the previous two 54.5-bit primes
//! reached 2^−31 per inference, 2^−16 over 2^30); at N = 8192 it allows
//! 218, and three primes below 2^50 (for the IFMA NTT) give q/p0 ≈ 2^100
//! with 68 bits of the standard's budget to spare.
//!
//! # Cost (indicative, 2-core machine shared with other builds)
//! ResNet18 (m = 64, 32x32, 100 classes), all 21 linear layers, one thread,
//! both parties: 63.1 MB up, 40.8 MB down, 16 090 ct x pt products, 4.6 s
//! of CPU time under a load average of 6-9, where the previous N = 4096
//! parameters (2^−31 per inference; 2.1 s on an idle machine) took 4.9 s.
//! hrn-5x5x3x (m = 16): 81.9 MB up, 47.8 MB down, 7.2 s (was 25.0 and 124.3
//! MB, 10.2 s: its 1 200-channel layers no longer need one output channel
//! per reply ciphertext). `cargo run --release -p pi-bench -- he resnet18
//! --threads 1 --verify`.

// Index loops over the RNS primes read closer to the maths.
#![allow(clippy::needless_range_loop)]

mod arith;
mod client;
pub mod hiding;
pub mod layout;
mod modular;
pub mod params;
mod server;
pub mod wire;

#[cfg(test)]
mod tests;

pub use client::{HeClient, UniformShare};
pub use hiding::{DEFAULT_LIFETIME_INFERENCES, STATISTICAL_SECURITY_BITS, WeightHiding};
pub use layout::{ConvShape, FcShape, LayerPlan, LayerShape, linear_reference};
pub use params::{HeParams, ShareDistribution};
pub use server::{CtPtKernel, HeServer, ServerMask};
pub use wire::{ClientUpload, PublicKeyMsg, ServerReply};
