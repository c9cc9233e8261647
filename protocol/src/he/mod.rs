//! Offline linear correlations with RLWE in coefficient encoding.
//!
//! For every linear layer the client holds an input-independent share c and
//! the server holds the weights W and a random mask s. This module gives the
//! client W·c − s mod 2^l and nothing else about W; the server learns nothing
//! about c (DESIGN.md §3.2). It follows Cheetah (Huang, Lu, Hong, Liu,
//! USENIX Security 2022): convolutions and FC layers are polynomial products
//! with no rotations and no relinearisation ([`layout`] explains the packing).
//!
//! # Security scope
//! Semi-honest parties only (DESIGN.md §3.6): both follow the protocol and
//! try to learn more from what they see. A malicious client could upload
//! ill-formed ciphertexts (huge noise, a non-ternary key, a key that differs
//! from the public key) and learn more about W from the replies; a malicious
//! server could return a wrong share. Nothing here proves well-formedness or
//! checks results; hostile *bytes* are still rejected cleanly ([`wire`]).
//! What the API does enforce: the server's mask s is drawn inside
//! [`HeServer::evaluate`] and returned as a move-only [`ServerMask`], and the
//! client's share is a [`UniformShare`] drawn from a CSPRNG (a chosen share
//! needs [`ShareDistribution::Arbitrary`] and [`HeClient::encrypt_arbitrary`]).
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
//! N = 4096, q = p0·p1 with two 54.5-bit primes p ≡ 1 (mod 2^37), log q =
//! 108.9998, ternary secret, CBD(21) errors: see [`params`] for the sources.
//! t = 2^l with l ≤ 37; Δ = (q − 1)/t exactly because q ≡ 1 (mod t).
//!
//! # NTT backend
//! `tfhe-ntt` 0.7 (negacyclic prime NTT with run-time AVX-512/AVX2 dispatch).
//! DESIGN.md §6 measured fhe.rs 0.1.1 at 37–63 µs per ct x pt at N = 4096 and a
//! tfhe-ntt core at 10–14 µs; here one 54-bit NTT took 12.6 µs and a
//! pointwise multiply-accumulate 3.8 µs under load (the 0.6 series only has
//! the AVX-512 path on nightly, hence 0.7). A sub-2^50 prime would use the IFMA
//! path (6.8 µs per NTT), but then three primes are needed and no three
//! primes ≡ 1 (mod 2^37) fit in 109 bits, nor would a single prime be a
//! large enough switching target; kept as a possible later optimisation.
//! The test oracle for polynomial arithmetic is a schoolbook negacyclic
//! product (`arith::tests::schoolbook`).
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
//!    1/2, so w.p. |e·W − k| ≤ B(n) = τ·√(10.75·n)·w̄ + 1. For arbitrary
//!    shares |k| ≤ ‖W‖₁/2: B(n) = τ·√(10.5·n)·w̄ + n·w̄/2 + 1.
//! 3. *Mask*: −Δ·s_mask is exact.
//! 4. *Flooding*: triangular noise X = U1 − U2, U_i uniform on [0, M), so
//!    |X| < M, added at the full modulus to every sent c0 coefficient, with
//!    M = 6·2^s·(B(n) + ν) for the layer's hiding s (next section). M depends
//!    on the public shape and weight bound only.
//! 5. *Fresh encryption of zero*: (u·pk_b + e0, u·pk_a + e1) adds
//!    ν = u·e_pk + e0 + e1·s to the phase, |ν| ≤ 2·21·N + 21 < 2^18.
//! 6. *Modulus switch to p0*: c' = round(c·p0/q) computed in RNS; the noise
//!    is divided by p1 and gains r0 + r1·s, |r| ≤ 1/2: w.p. ≤ 0.5 + τ·√N/2.
//!    Δ·m becomes Δ'·m + m(1 − p0/q)/t with Δ' = (p0 − 1)/t: error < 1.
//! 7. *Dropped bits*: c0 loses 13 bits (≤ 2^12), c1 loses 4 bits, times s:
//!    w.p. ≤ τ·√N·2^3.
//! 8. *Decryption* round(t·x/p0) is exact while the total is below Δ'/2
//!    (92 679 for l = 37). For n = 3·512·9 (a 512-channel 3x3 conv, 3 outputs
//!    per ciphertext) at s = 40: B ≈ 2^27.9, M ≈ 2^70.5, and the terms are
//!    M/p1 ≈ 65 500, 321, 4 096 and 5 120: 75 000 < 92 679, a margin of 0.3
//!    bit on top of the 2^−71 tails. The planner only picks G (outputs per
//!    ciphertext) whose total times [`params::MARGIN_NUM`]/[`params::MARGIN_DEN`]
//!    (≥ 2^0.25) stays below Δ'/2. The test
//!    `reply_noise_does_not_depend_on_weights` checks the measured noise
//!    variance against terms 4 and 7 (the dominant ones).
//!
//! # Noise flooding (privacy of W against the client)
//! What the client sees of one reply ciphertext: all of c1 and the wanted
//! coefficients of c0. Before switching, its phase at a wanted coefficient is
//! c0 + c1·s = Δ·(W·c − s_mask) + v + X with v = e·W − k + ν: the client
//! knows e, c and s, so v is a function of W (and of the server's u, e0,
//! e1, which also sit in c1 = a·W + u·pk_a + e1).
//! - *Hybrid 1*: replace every sent c0 by Δ·(W·c − s_mask) + X − (c1·s),
//!   i.e. drop v. Given everything else the floods are independent, so by
//!   the lemma below the statistical distance is at most
//!   √(Σ_i v_i²·D) + (tail events), D the flood's Hellinger constant.
//! - *Hybrid 2*: u and e1 now occur only in c1 = a·W + (u·pk_a + e1), an RLWE
//!   sample with secret u under the same assumption as the key, so c1 is
//!   pseudorandom and can be replaced by uniform. This step needs hybrid 1
//!   first: ν is correlated with c1, which is why M covers ν too.
//! - What remains depends on W only through W·c − s_mask, which is uniform
//!   because s_mask is fresh and uniform ([`ServerMask`]). Modulus switching
//!   and dropping bits are deterministic post-processing and cannot increase
//!   the distance. Garbage coefficients of c0 (partial sums) are never sent.
//!
//! *Lemma* (standard properties of the Hellinger distance H² = ½Σ(√P − √Q)²,
//! e.g. Polyanskiy and Wu, *Information Theory: From Coding to Learning*,
//! 2024, ch. 7): (i) SD(P, Q) ≤ √2·H; (ii) for products 1 − H² =
//! Π(1 − H_i²), so H² ≤ Σ H_i²; (iii) for a pmf p on Z and an integer shift
//! v, Σ_x (√p(x) − √p(x − v))² ≤ v²·D with D = Σ_x (√p(x + 1) − √p(x))²
//! (telescope the difference in v unit steps, then Cauchy–Schwarz). Together
//! SD ≤ √(Σ_i v_i²·D_i). For the triangular pmf p(x) = (M − |x|)/M²,
//! D·M² = 2 + 2·Σ_{a<M} (√(a+1) − √a)² ≤ 2.5 + ln(M)/2 ≤ 36 for M ≤ 2^96
//! (test `triangular_hellinger_constant`). Uniform flooding on [−F, F]
//! instead has H² = |v|/(2F + 1), linear in v, so K coefficients would cost a
//! factor K; a smooth flood costs only √K.
//!
//! With |v_i| ≤ B(n) + ν (w.p. 1 − 2^−71 each) and M = 6·2^s·(B(n) + ν),
//! each sent coefficient contributes v_i²·D ≤ 2^−2s. **Per inference** (one
//! upload and one reply per linear layer, fresh client noise, fresh masks,
//! fresh floods) the client's view of all replies is within statistical
//! distance √(Σ_layers K_l·2^(−2·s_l)) + K·2^−71 of a weight-independent
//! simulation, K_l the layer's sent coefficients. Every layer gets s_l ≥
//! [`params::TARGET_HIDING_BITS`] = 40 (and more where its packing leaves
//! budget; wider layers fall back to one output per ciphertext and at least
//! [`params::MIN_HIDING_BITS`]); [`inference_hiding_bits`] evaluates the bound
//! for a list of plans. ResNet18 (m = 64, 32x32) sends K ≈ 2^19.2
//! coefficients and gets **2^−31.2 per inference**; Q inferences of one
//! session add up to √Q times that (2^−26.2 for Q = 1 024), since only the
//! weights are common to them.
//!
//! 40 bits per inference do not fit N = 4096, log q ≤ 109, l = 37, w̄ = 2^16:
//! s would have to be about 50 everywhere, but q/(2t) ≈ 2^71 caps the
//! flood, and a 512-channel 3x3 conv reaches s = 41 with one output per
//! ciphertext (a target of 42 gave 2^−31.8 per inference for 2.7x the reply
//! bytes). Each bit less of l or of w̄ would add one bit of s, a base-2^8
//! split of the weights about 7.5 bits for twice the products and replies;
//! N = 8192 (log q ≤ 218 by the same table) gives q/t ≥ 2^140 with three
//! or four primes, enough for s ≥ 50 at any packing, for roughly twice the
//! server time and 1.5-2x the upload bytes.
//!
//! # Cost (indicative, 2-core machine shared with other builds)
//! ResNet18 (m = 64, 32x32, 100 classes), all 21 linear layers, one thread,
//! both parties, every share verified: 33.6 MB up, 43.1 MB down, 32 388
//! ct x pt products, 2.7-5.0 s depending on load (the earlier
//! per-coefficient uniform flood: 38.0 MB up, 33.1 MB down, 2.2-5.1 s in
//! the same runs). hrn-5x5x3x (m = 16): 25.0 MB up, 124.3 MB down (was
//! 55.7 and 41.3): its 1 200-channel layers now return one output channel
//! per ciphertext. `cargo run --release -p pi-bench -- he resnet18
//! --threads 1 --verify`.

// Index loops over the two RNS primes read closer to the maths.
#![allow(clippy::needless_range_loop)]

mod arith;
mod client;
pub mod driver;
pub mod layout;
pub mod params;
mod server;
pub mod wire;

#[cfg(test)]
mod tests;

pub use client::{HeClient, UniformShare};
pub use layout::{
    ConvShape, FcShape, LayerPlan, LayerShape, inference_hiding_bits, linear_reference,
};
pub use params::{HeParams, ShareDistribution};
pub use server::{CtPtKernel, HeServer, ServerMask};
pub use wire::{ClientUpload, PublicKeyMsg, ServerReply};
