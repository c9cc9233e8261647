//! Silent correlated OT: LPN-based COT extension in the style of Ferret
//! (Yang, Weng, Lan, Zhang and Wang, CCS 2020), with the half-tree GGM
//! expansion of Guo et al. (EUROCRYPT 2023). Semi-honest: there is no
//! consistency check, which matches the project's threat model
//! (docs/ARCHITECTURE.md §5); a malicious sender could make outputs inconsistent
//! (never learn choices), a malicious receiver learns nothing more.
//!
//! # What one round does
//! A round with parameters (k, t, depth) ([`params`]) consumes k + t·depth
//! COTs under the sender's Δ (its *base*) and makes n = t·2^depth new ones:
//! - t single-point COTs (module `tree`): for tree j the receiver's random
//!   choice bits of depth base COTs are its punctured path, so it gets every
//!   leaf of the sender's tree but one, at a uniform α_j; there the two
//!   differ by Δ. The sender sends one correction block per tree level
//!   ([`RoundMsg`]), the receiver sends nothing;
//! - the local linear code (module `lpn`) applied by both to the other k base
//!   COTs, added to the leaves: output i is a COT whose choice bit is
//!   u_i = e_i ⊕ ⟨a_i, x⟩ (e the regular noise, x the receiver's choice
//!   bits of the secret part), pseudorandom under primal LPN.
//!
//! # Bootstrapping and iteration
//! The first round of a session ([`SETUP`] parameters) runs on correlated
//! OTs from one SoftSpoken batch over the session's IKNP base OTs
//! ([`crate::ot::iknp::SoftMsg`], random choices, 2 B per OT) and keeps the last
//! [`MAIN`]`.base_cots()` of its outputs as the *reserve*. Every later round
//! takes its base from the front of the reserve and puts back as many of
//! its own last outputs, so after setup the receiver sends nothing. A later
//! round is a [`MAIN`] round (the sender sends 274 KB per 10.2 M handed-out
//! COTs) unless one small round, with the [`SETUP`] parameters, covers what
//! the parties announced they will take ([`Sender::plan`], the drivers
//! announce each batch, the phases a whole inference): 321 KB per 602 K
//! COTs for 1/17 of a main round's work and memory, for a direction that
//! needs few OTs. Outputs are handed out in order, each exactly once
//! ([`Sender::take`]); a handed-out batch is a value converted into one kind
//! of OT by value.
//!
//! # Conventions
//! Δ has lsb 1 (as a free-XOR Δ does) and every sender output has lsb 0, so
//! the lsb of a receiver output is its choice bit: no separate choice
//! vector. Chosen choices cost one bit per OT ([`ChoiceMsg`], Beaver's
//! derandomisation as in IKNP-based correlated OT). Random OT hashes the
//! COT outputs with the TCCR hash of Guo, Katz, Wang and Yu (S&P 2020)
//! under a tweak unique in the session: a silent-OT domain tag, the session
//! nonce (IKNP's, from the base OTs) and the output's index.
//!
//! # Security
//! Semi-honest, 128-bit computational: the LPN parameters ([`params`])
//! are those published for 128 bits; the tree hash is a circular
//! correlation-robust hash under a fresh public AES key per tree and round;
//! SoftSpoken, IKNP and base OT as in [`crate::ot`]. Secrets (Δ, bases, pools, tree
//! seeds, outputs) are wiped on drop.
//!
//! ```
//! # use pi_protocol::{ot::silent::driver, transport::memory_pair};
//! # use rand_chacha::ChaCha20Rng; use rand_core::SeedableRng;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (mut server_ch, mut client_ch) = memory_pair();
//! let (mut rs, mut rc) = (ChaCha20Rng::from_os_rng(), ChaCha20Rng::from_os_rng());
//! let (sender, receiver) = tokio::join!(
//!     driver::setup_sender(&mut server_ch, &mut rs, None),
//!     driver::setup_receiver(&mut client_ch, &mut rc),
//! );
//! let (mut sender, mut receiver) = (sender?, receiver?);
//! let (q, t) = tokio::join!(
//!     driver::send_cots(&mut server_ch, &mut sender, 1000),
//!     driver::receive_cots(&mut client_ch, &mut receiver, 1000),
//! );
//! let (q, t) = (q?, t?);
//! let delta = sender.delta();
//! for j in 0..1000 {
//!     // t_j = q_j ⊕ b_j·Δ, b_j the receiver's random choice (t_j's lsb).
//!     assert_eq!(t.as_slice()[j], q.as_slice()[j] ^ delta.select(t.choice(j)));
//! }
//! # Ok::<(), pi_protocol::Error>(())
//! # }).unwrap();
//! ```

mod cot;
pub mod driver;
mod lpn;
pub mod params;
mod tree;

pub use cot::{
    ChoiceMsg, MAX_BATCH, Receiver, ReceiverChosen, ReceiverCots, ReceiverRound, RoundMsg,
    RoundOutput, SMALL_YIELD, Sender, SenderCots, SenderExpanded, SenderRound, rounds_for,
};
pub use params::{CODE_WEIGHT, LpnParams, MAIN, SETUP};
