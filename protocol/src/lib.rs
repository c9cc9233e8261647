//! Two-party private inference protocol (Delphi-style offline/online hybrid).
//!
//! The crate follows `docs/ARCHITECTURE.md`: every tensor is additively shared over the
//! ring Z_2^l; linear layers are local for the server and precomputed for the
//! client with lattice HE offline; ReLUs (with the exact truncation of the
//! linear layer before them) run as garbled circuits or, in the second mode
//! negotiated in the handshake ([`session::ReluMode`]), by OT-based
//! comparison ([`relu_ot`]).
//!
//! Module map (one concept per module):
//! - [`crypto`]: the 128-bit [`crypto::Block`] and fixed-key AES hashing.
//! - [`error`]: the crate's error type, split by whose fault it is.
//! - [`ot`]: oblivious transfer, base OT on ristretto255 and IKNP extension.
//! - [`gc`]: half-gates garbled circuits for ReLU with exact truncation.
//! - [`relu_ot`]: ReLU with exact truncation by the millionaires' protocol
//!   and an OT multiplexer (CrypTFlow2-style), OTs precomputed offline.
//! - [`he`]: offline linear correlations with RLWE in coefficient encoding
//!   (Cheetah-style conv/FC packing, circuit-private replies).
//! - [`transport`]: the [`transport::Channel`] abstraction, an in-memory
//!   duplex for tests and byte metering per label.
//! - [`ring`]: share vectors over Z_2^l, their packed wire encoding, and the
//!   server's parallel local linear layers.
//! - [`session`]: the handshake (public architecture, parameters, HE keys)
//!   and the per-inference requests; [`session::ServerSession::serve_one`]
//!   and [`session::ClientSession::infer`] run a whole inference.
//! - [`offline`] and [`online`]: the two phases of one inference; the
//!   preprocessed material is a value the online phase consumes.
//! - [`report`]: seconds, bytes and storage per phase and per layer.
//! - [`budget`]: expected traffic of one inference, for server deadlines.
//! - [`footprint`]: the client's storage and peak memory per inference,
//!   checked against its budgets in the handshake.
//! - [`store`]: the client's preprocessed material on disk (one file per
//!   inference, records sealed with AES-128-GCM), read back layer by layer.
//!
//! Cryptographic cores are sans-IO state machines; only drivers touch a
//! [`transport::Channel`].

pub mod budget;
pub mod crypto;
pub mod error;
mod exec;
pub mod footprint;
mod framing;
mod freshness;
pub mod gc;
pub mod he;
pub mod mode;
pub mod offline;
pub mod online;
pub mod ot;
mod plan;
pub mod relu_ot;
pub mod report;
pub mod ring;
pub mod session;
mod shares;
pub mod store;
pub mod transport;

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod pool_tests;
#[cfg(test)]
mod scale_tests;

pub use error::{Error, Misbehavior, Result};
pub use report::{ClientReport, ServerReport};
pub use session::{
    ClientConfig, ClientSession, ReluMode, ServerLimits, ServerModel, ServerSession, infer_one,
    serve_one,
};
