//! Offline linear correlations with RLWE in coefficient encoding.
//!
//! For every linear layer the client holds an input-independent share c and
//! the server holds the weights W and a random mask s. This module gives the
//! client W·c − s mod 2^l and nothing else about W; the server learns nothing
//! about c (DESIGN.md §3.2). It follows Cheetah (Huang, Lu, Hong, Liu,
//! USENIX Security 2022): convolutions and FC layers are polynomial products
//! with no rotations and no relinearisation ([`layout`] explains the packing).
//!
//! # Protocol (sans-IO)
//! 1. Once per session the client sends [`PublicKeyMsg`] ([`HeClient::public_key`]).
//! 2. Per layer both parties build the same [`LayerPlan`] from the public shape.
//!    The client sends [`ClientUpload`] ([`HeClient::encrypt`]): symmetric
//!    encryptions b = −a·s + e + Δ·c of its share, `a` replaced by a seed.
//! 3. The server answers [`ServerReply`] ([`HeServer::evaluate`]): for each
//!    output ciphertext Σ ct·W − Δ·s_mask, plus flooding noise, plus a fresh
//!    public-key encryption of zero, switched from q to p0, low bits dropped,
//!    and only the useful coefficients of c0 are sent.
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
//! # Noise analysis
//! Let n be the number of weights summed into one output coefficient
//! (G·C_in·k² for G output channels per ciphertext: every coefficient of every
//! kernel polynomial of the group meets the noise) and w̄ = 2^16 the public
//! weight bound ([`params::WEIGHT_BITS`]). "w.p." bounds fail with probability
//! below 2^−71 per coefficient (sub-Gaussian tail at 10σ).
//! 1. *Encryption*: b + a·s = Δ·c + e, |e_j| ≤ 21, Var = 10.5.
//! 2. *Product with weights*: Σ (b·W) + (a·W)·s = Δ·(W·c) + e·W. With c
//!    lifted centred, W·c = [W·c]_t + t·k over Z, and Δ·t = q − 1 ≡ −1, so
//!    the plaintext product adds −k. For arbitrary c, |k| ≤ ‖W‖₁/2 ≤ n·w̄/2;
//!    for the protocol's uniform shares ([`ShareDistribution`], default)
//!    Hoeffding gives w.p. |k| ≤ 10·‖W‖₂/2 + 1 ≤ 5·√n·w̄ + 1.
//!    e·W is sub-Gaussian with proxy 10.5·‖W‖₂² ≤ 10.5·n·w̄²: w.p.
//!    |e·W| ≤ 10·√10.5·√n·w̄. Together B(n) ≈ 37.4·√n·w̄ (uniform shares) or
//!    32.4·√n·w̄ + n·w̄/2 (arbitrary shares).
//! 3. *Mask*: −Δ·s_mask is exact.
//! 4. *Flooding*: uniform on [−F, F] with F = ⌈2^40·B(n)⌉ (smudging: the
//!    statistical distance from a weight-independent distribution is at most
//!    B(n)/F ≤ 2^−40), added at the full modulus to the sent c0
//!    coefficients. F depends on the public shape and weight bound only.
//! 5. *Fresh encryption of zero*: u·pk_b + e0 + (u·pk_a + e1)·s adds
//!    u·e_pk + e0 + e1·s, at most 2·21·N + 21 < 2^18 (worst case); it makes
//!    (c0, c1) pseudorandom given the client's seeded a (RLWE with secret u),
//!    so c1 no longer reveals a·W.
//! 6. *Modulus switch to p0*: c' = round(c·p0/q) computed in RNS; the noise
//!    is divided by p1 and gains r0 + r1·s, |r| ≤ 1/2: w.p. ≤ 0.5 + 10·√N/2.
//!    Δ·m becomes Δ'·m + m(1 − p0/q)/t with Δ' = (p0 − 1)/t: error < 1.
//! 7. *Dropped bits*: c0 loses 14 bits (≤ 2^13), c1 loses 6 bits, times s:
//!    w.p. ≤ 10·√N·2^5.
//! 8. *Decryption* round(t·x/p0) is exact while the total is below Δ'/2
//!    (92 679 for l = 37). Under the worst-case analysis, for n = 4·512·9 (a
//!    512-channel 3x3 conv, 4 outputs per ciphertext) B ≈ 2^29.7 and the
//!    terms are F/p1 ≈ 38 500, 320, 8 192 and 20 480: 67 500 < 92 679, a
//!    margin of 0.46 bit on top of the 2^−71 tails and worst-case terms. The
//!    planner only picks G (outputs per ciphertext) that keep at least
//!    [`params::MIN_MARGIN_BITS`]; a layer whose single output sums too many
//!    weights (n > ~24 000 worst case, ~190 000 uniform) is refused. The
//!    test `reply_noise_does_not_depend_on_weights` checks the measured noise
//!    variance against terms 4 and 7 (the dominant ones).
//!
//! # Cost (indicative, 2-core machine shared with other builds)
//! ResNet18 (m = 64, 32x32, 100 classes), all 21 linear layers, one thread,
//! both parties, verified bit for bit: 2.5-5.5 s (load-dependent), 38.0 MB up, 33.1 MB down,
//! 32 502 ct x pt products (`cargo run --release -p pi-bench --example
//! he_resnet18 -- 64 verify`).
//!
//! Other garbage coefficients of a product (partial sums that would reveal
//! W) are never sent: c0 travels only at the wanted positions, and without
//! c0 a coefficient of c1 is a uniformly looking RLWE value.

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
