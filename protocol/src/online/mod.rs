//! The online phase of one inference: consumes the offline material.
//!
//! (docs/ARCHITECTURE.md §3; Delphi, Mishra et al. 2020, section 4.) The client
//! sends its input minus its offline mask r_0, which is the server's share.
//! The server then walks the network on its shares alone:
//! - linear layer: W·x_s + b + s (s its offline mask), since the client's
//!   share W·r − s is already fixed;
//! - residual add: local;
//! - activation: it sends the labels of its share (ReLU and truncation
//!   sub-layers); the client evaluates the garbled circuits, learns
//!   act(z) + p per position and returns act(z) + p − r' (r' its offline
//!   mask for the activation output); the server subtracts p, so its share
//!   is act(z) − r' and the client's stays r'.
//!
//! In OT mode ([`crate::mode::ReluMode::Ot`]) an activation layer is
//! instead the exchange of [`crate::relu_ot`] (leaf tables, one round trip
//! per AND-tree level, the final conversion); it ends with the same sharing:
//! the server holds act(z) − r', the client r'.
//!
//! Finally the server sends its share of the logits (scale 2f) and the
//! client adds its own. Traffic is labelled `online/input`,
//! `online/<step name>` and `online/output`.
//!
//! Files: [`server`] and [`client`] walk the network for each party; the
//! activations of each ReLU mode live in `gc.rs` and `ot.rs`, both parties
//! side by side.
//!
//! Preprocessed material is consumed by value, so it cannot be used twice:
//! ```compile_fail,E0382
//! # use pi_protocol::{offline::ClientPreprocessed, session::ClientSession, transport::Channel};
//! # async fn f<C: Channel>(ch: &mut C, s: &ClientSession, pre: ClientPreprocessed, x: &[u64]) {
//! let first = s.online(ch, pre, x).await;
//! let again = s.online(ch, pre, x).await; // use of moved value
//! # }
//! ```
//! ```compile_fail,E0382
//! # use pi_protocol::{offline::ServerPreprocessed, session::ServerSession, transport::Channel};
//! # async fn f<C: Channel>(ch: &mut C, s: &ServerSession, pre: ServerPreprocessed) {
//! let first = s.online(ch, pre).await;
//! let again = s.online(ch, pre).await; // use of moved value
//! # }
//! ```
//! Used once, the same code compiles, so the failures above come from the
//! reuse alone (stable rustdoc does not check the error codes):
//! ```
//! # use pi_protocol::{offline::ClientPreprocessed, session::ClientSession, transport::Channel};
//! # async fn f<C: Channel>(ch: &mut C, s: &ClientSession, pre: ClientPreprocessed, x: &[u64]) {
//! let first = s.online(ch, pre, x).await;
//! # }
//! ```
//! ```
//! # use pi_protocol::{offline::ServerPreprocessed, session::ServerSession, transport::Channel};
//! # async fn f<C: Channel>(ch: &mut C, s: &ServerSession, pre: ServerPreprocessed) {
//! let first = s.online(ch, pre).await;
//! # }
//! ```

use crate::mode::ReluMode;
use crate::plan::SessionPlan;
use crate::ring;
use crate::{Error, Result};

pub(crate) mod client;
mod gc;
mod ot;
pub(crate) mod server;

/// Online round trips of one inference (see [`crate::report::ClientReport::online_round_trips`]).
fn round_trips(plan: &SessionPlan, mode: ReluMode) -> u64 {
    let per_layer = match (mode, &plan.ot) {
        (ReluMode::Ot, Some(s)) => s.round_trips() as u64,
        _ => 1,
    };
    1 + per_layer * plan.splits.len() as u64
}

/// Bytes of `n` packed ring elements.
fn packed(n: usize, ring: pi_models::RingParams) -> Result<usize> {
    ring::packed_len(n, ring).ok_or_else(|| Error::BadInput(format!("{n} values overflow")))
}
