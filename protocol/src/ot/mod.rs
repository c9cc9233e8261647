//! Oblivious transfer: base OT on ristretto255, IKNP extension and silent
//! (LPN-based) correlated OT, the bulk of every session's OTs.
//!
//! - [`base`]: Chou-Orlandi "simplest OT" (LATINCRYPT 2015), κ = 128 random
//!   OTs in one round trip, points validated on decoding.
//! - [`iknp`]: OT extension of Ishai, Kilian, Nissim and Petrank (CRYPTO
//!   2003) with the optimisations of Asharov et al. (CCS 2013), giving
//!   correlated (global Δ), random and chosen-message OT. Sans-IO state
//!   machines with typed messages whose decoders check the batch size. Hash
//!   tweaks carry a session nonce both parties derive from the base OT
//!   messages ([`Sender::session_nonce`]). The same base OTs also give
//!   SoftSpoken batches (Roy, CRYPTO 2022; 2 B per OT instead of 16,
//!   [`iknp::SoftMsg`]), which bootstrap silent OT.
//! - [`driver`]: the same over a [`crate::transport::Channel`], chunked.
//! - [`silent`]: LPN-based ("silent") correlated OT in the style of Ferret,
//!   bootstrapped by SoftSpoken: a fraction of a byte per OT, for all bulk OT.
//! - [`bulk`]: the session's bulk OT, [`BulkSender`] and [`BulkReceiver`]
//!   in front of either extension ([`Extension`]: silent by default, IKNP
//!   for comparison), so the phases never branch on it.
//!
//! Roles are types: [`iknp::Sender`] (the garbler/server side for
//! garbled-circuit input labels) and [`iknp::Receiver`] (the evaluator/client
//! side). Setup runs once per session; every extension consumes fresh OT
//! indices and PRG blocks, and each batch converts into one kind of OT by
//! value, so no output can be derived twice. Security: semi-honest,
//! 128-bit computational (docs/ARCHITECTURE.md §4).
//!
//! ```
//! # use pi_protocol::{crypto::Block, ot::driver, transport::memory_pair};
//! # use rand_chacha::ChaCha20Rng; use rand_core::SeedableRng;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (mut server_ch, mut client_ch) = memory_pair();
//! let (mut rs, mut rc) = (ChaCha20Rng::from_os_rng(), ChaCha20Rng::from_os_rng());
//! let delta = Block(0x1234_5678 | 1); // the garbler's free-XOR offset
//! let (sender, receiver) = tokio::join!(
//!     driver::setup_sender(&mut server_ch, &mut rs, Some(delta)),
//!     driver::setup_receiver(&mut client_ch, &mut rc),
//! );
//! let (mut sender, mut receiver) = (sender?, receiver?);
//! let bits = [true, false, true];
//! let (zero_labels, my_labels) = tokio::join!(
//!     driver::send_correlated(&mut server_ch, &mut sender, bits.len()),
//!     driver::receive_correlated(&mut client_ch, &mut receiver, &bits),
//! );
//! let (zero_labels, my_labels) = (zero_labels?, my_labels?);
//! let zero_labels = zero_labels.as_slice();
//! assert_eq!(my_labels[0], zero_labels[0] ^ delta);
//! assert_eq!(my_labels[1], zero_labels[1]);
//! # Ok::<(), pi_protocol::Error>(())
//! # }).unwrap();
//! ```

pub mod base;
pub mod bulk;
pub mod driver;
pub mod iknp;
pub mod silent;
mod transpose;

pub use bulk::{BulkReceiver, BulkSender, Extension, SessionOts};
pub use iknp::{CorrelatedZeros, KAPPA, Receiver, ReceiverSetup, Sender};
