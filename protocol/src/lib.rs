//! Two-party private inference protocol (Delphi-style offline/online hybrid).
//!
//! The crate follows `DESIGN.md`: every tensor is additively shared over the
//! ring Z_2^l; linear layers are local for the server and precomputed for the
//! client with lattice HE offline; ReLUs (with the exact truncation of the
//! linear layer before them) run as garbled circuits.
//!
//! Module map (one concept per module):
//! - [`crypto`]: the 128-bit [`crypto::Block`] and fixed-key AES hashing.
//! - [`error`]: the crate's error type, split by whose fault it is.
//! - [`ot`]: oblivious transfer, base OT on ristretto255 and IKNP extension.
//! - [`gc`]: half-gates garbled circuits for ReLU with exact truncation.
//! - [`he`]: offline linear correlations with RLWE in coefficient encoding
//!   (Cheetah-style conv/FC packing, circuit-private replies).
//! - [`transport`]: the [`transport::Channel`] abstraction, an in-memory
//!   duplex for tests and byte metering per label.
//!
//! Cryptographic cores are sans-IO state machines; only drivers touch a
//! [`transport::Channel`].

pub mod crypto;
pub mod error;
pub mod ot;
pub mod gc;
pub mod he;
pub mod transport;

pub use error::{Error, Result};
