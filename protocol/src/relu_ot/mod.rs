//! ReLU with exact truncation by OT-based comparison: the second activation
//! mode (`ReluMode::Ot`), in the style of CrypTFlow2 (Rathee et al., CCS
//! 2020, sections 3-4: millionaires' protocol with 1-out-of-2^m OT leaves
//! and an AND tree, then an OT-based multiplexer) with the exact
//! ("faithful") truncation of SIRNN/CrypTFlow2 computed from two carries.
//!
//! # What is computed
//! The activation input z (scale 2f) is shared as z = a + b mod 2^l, a the
//! server's share (known online), b the client's (known offline). The output
//! is act(z) = ReLU(trunc(z)) or trunc(z) (identity positions of a ReLU
//! mask), trunc(z) = signed(z) >> f, exactly as
//! [`pi_models::fixed::trunc_relu`]. The client's share of the output is its
//! offline mask r; the server ends with act(z) − r (docs/ARCHITECTURE.md §3).
//!
//! With a' = a + 2^(l−1) (the server's share of z' = z + 2^(l−1), which makes
//! the signed shift a logical one) and X = a' >> f, b' = b >> f:
//! - c = carry of the low f bits of a' + b,
//! - e = carry into bit l − 1, w = carry out of bit l − 1 = maj(A', B, e)
//!   with A', B the top bits of a', b,
//! - trunc(z) = X + b' + c − w·2^(l−f) − 2^(l−1−f) (mod 2^l),
//! - ReLU(trunc(z)) = D·trunc(z) with D = msb(z') = A' ⊕ B ⊕ e.
//!
//! Both carries are comparisons x > y with x the low bits of a' (server) and
//! y = 2^k − 1 − (low bits of b) (client). The low f bits are a sub-tree of
//! the (l − 1)-bit comparison, so one millionaires' run gives both c and e.
//!
//! # Offline (everything input-independent)
//! Since b is fixed offline, every OT in which the client is the receiver
//! has its choice either known offline (the leaves: the bits of y) or
//! random and corrected online (Beaver, "Precomputing oblivious transfer",
//! CRYPTO 1995). Offline, per position, from the session's bulk OT
//! ([`crate::ot::bulk`]: silent COT by default) with the server as sender,
//! [`Schedule::rots_per_position`] random OTs (49 at l = 37, f = 12,
//! m = 4), in two batches per layer: the leaves' with the client's chosen
//! choices ([`Schedule::leaf_rots_per_position`], 36), then the others
//! with random choices ([`Schedule::random_rots_per_position`], 13), which
//! silent OT delivers without a byte of its own:
//! - leaves: one 1-out-of-2^m OT per m-bit chunk, built from m random
//!   1-out-of-2 OTs (Naor-Pinkas style: the pad of entry i is the XOR
//!   over t of entry i's 4-bit slot of H(K_t^(i_t), tweak(t)), H the TCCR
//!   hash of fixed-key AES; each entry other than the receiver's has a slot
//!   of its own under a key the receiver lacks, see `leaf_pad_bits`).
//!   The client's choice is its chunk of y, so
//!   these OTs are fully done offline; online only the server's table moves.
//!   We chose log N 1-of-2 OTs over KK13 to reuse the 1-of-2 OT extension:
//!   with silent OT each costs its choice bit, (l − 1) bits per position
//!   (with IKNP m·κ bits per leaf instead of KK13's 2κ).
//! - AND tree: per AND gate two random OTs (one per cross term; the gates
//!   of one node that share an operand share one OT), choice random. The
//!   first level is free: its operands are leaves, so each cross term is a
//!   function of one chunk of y times a bit the server knows, and the server
//!   puts it into that chunk's table (4 bits per entry instead of 2). At
//!   l = 37 this saves 12 of 22 tree OTs and a round trip.
//! - final: one 1-out-of-8 OT (3 random OTs) for the output conversion.
//! - one random OT in the other direction (client sender, the server's
//!   choice random) per ReLU position for the multiplexer's client-side
//!   term, from the session's second bulk OT instance.
//!
//! The server's own shares of every tree node never depend on a: they are
//! its random bits and products of them, so it draws them from a seed fixed
//! offline.
//!
//! # Online (what had to stay: everything that depends on a)
//! 1. S → C: the leaf tables (2^m entries × 2 bits per chunk, masked with
//!    the leaf pads) and, per ReLU position, the server's correction bit for
//!    the reverse OT (its choice A' ⊕ e_s needs A', a bit of a).
//! 2. Per tree level after the first: C → S the correction bits of that level's OTs (the
//!    choices are the client's shares, which depend on a through the
//!    leaves), S → C the two masked messages of each OT.
//! 3. C → S the 3-bit correction of the final 1-of-8 OT (choice (e_c, c_c,
//!    B)); S → C eight l-bit messages D·(X + c − w·2^(l−f) − 2^(l−1−f)) − ρ.
//! 4. C → S its output share minus r: one l-bit value for an identity
//!    position; for a ReLU position the two masked messages of the reverse
//!    OT that add D·b' (the only term that needs the client's b' and the
//!    server's A' together). The server keeps value + ρ = act(z) − r.
//!
//! Round trips per activation layer: levels + 2 (levels = 3 at l = 37,
//! f = 12, m = 4), against 1 for a garbled-circuit layer.
//!
//! Traffic per ReLU position at l = 37, f = 12: offline the 36 leaf choice
//! bits (4.5 B) and the silent rounds' share of 49 + 1 OTs (0.027 B each,
//! 1.3 B), about 6 B (with IKNP: 50 random OTs at 16 B = 800 B); online
//! 68 B of tables, about 6 B of tree messages, 37 B of final messages, 9 B
//! back: about 0.13 KB in all (CrypTFlow2 on Ferret about 0.16 KB at
//! l = 32, SecONNds' figure).
//!
//! # Identity positions
//! They need the same two carries (the exact truncation needs e), so they
//! run the same comparison, but no multiplexer: D = 1, no reverse OT, and
//! their final message is one value.
//!
//! Security: semi-honest, 128-bit computational (silent OT under LPN, IKNP,
//! TCCR); every
//! message the client sees is masked by a one-time pad (an OT pad or a
//! fresh server share), every bit the server sees is a choice corrected by a
//! uniform secret choice or a value masked by r. All material is fresh per
//! inference and consumed by value: the bulk OT instances live as long as
//! the session but hand out each OT once, and the random OTs are hashed
//! under their session-wide index.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroize;

use crate::crypto::{Block, FixedKeyAes};
use crate::ring;
use crate::{Error, Result};
use pi_models::RingParams;

mod bits;
mod client;
mod material;
mod nodes;
mod pads;
mod schedule;
mod server;
mod stored;
#[cfg(test)]
mod tests;

pub use client::{ClientRun, ClientStep};
pub use material::{ClientMaterial, ServerMaterial};
pub use schedule::{CHUNK_BITS, Schedule};
pub use server::{ServerRun, ServerStep};

use bits::*;
use nodes::*;
use pads::*;
use schedule::*;
