//! The offline phase of one inference: everything that does not depend on
//! the client's input (docs/ARCHITECTURE.md §3; Mishra et al., "Delphi",
//! USENIX Security 2020, section 4, with Cheetah-style HE and ring GCs).
//!
//! Walking the network in order:
//! - The client samples its share of the input and of every activation
//!   output (uniform over Z_2^l, fresh per inference).
//! - Linear layer: the client uploads its encrypted share of the layer's
//!   input, the server returns W·c − s for a fresh mask s ([`crate::he`]);
//!   the client's share of the output is that, the server keeps s.
//! - Residual add: the client adds its shares locally (an identity
//!   shortcut's share times 2^f).
//! - Activation: the client now knows its share b of the input. Its positions
//!   split into a ReLU sub-layer and a truncation-only sub-layer (masked-off
//!   ReLUs). For each non-empty sub-layer the client obtains the labels of
//!   the bits of b by correlated OT (IKNP, the garbler's Δ as the
//!   correlation, so the OT outputs are the input labels, nothing else
//!   is sent), and the server garbles the sub-layer with those zero labels
//!   and fresh pads p, streaming the tables chunk by chunk as they are made.
//!
//! In OT mode ([`crate::mode::ReluMode::Ot`]) an activation instead
//! runs the offline part of [`crate::relu_ot`]: random OTs (IKNP, server
//! sender) whose leaf choices are the bits the client derives from b, random
//! OTs with uniform choices for the AND tree and the final conversion, and
//! per ReLU position one random OT in the other direction (a second IKNP
//! instance with the client as sender); both sides then hash the OT
//! outputs into compact pads.
//!
//! Nothing is reused across inferences: base OTs, Δ, masks, pads and labels
//! are fresh; only the HE keys belong to the session. The result is a value
//! ([`ServerPreprocessed`], [`ClientPreprocessed`]) that
//! [`crate::online`] consumes.
//!
//! Traffic is labelled `offline/setup` (request, base OTs) and
//! `offline/<step name>`.
//!
//! Files: [`server`] and [`client`] walk the network for each party (HE for
//! linear layers, shares for residual adds); the activations of each ReLU
//! mode live in `gc.rs` and `ot.rs`, both parties side by side, so that the
//! two ends of every message are read together.

use zeroize::Zeroizing;

use crate::gc::GcNonce;
use crate::report::{LayerReport, PhaseReport};

pub(crate) mod client;
mod gc;
mod ot;
pub(crate) mod server;
mod stored;

pub(crate) use gc::{ClientGcActivation, ServerGcActivation};
pub(crate) use stored::MaterialStore;

/// Bytes of garbled tables per frame while streaming (every frame but a
/// sub-layer's last has exactly this size).
pub(crate) const TABLE_FRAME: usize = 1 << 20;

/// The server's material for one inference: masks s per linear layer and
/// the material of every activation in the session's ReLU mode. Consumed by
/// the online phase; masks and pads are zeroized on drop.
pub struct ServerPreprocessed {
    pub(crate) id: u64,
    pub(crate) masks: Vec<Zeroizing<Vec<u64>>>,
    pub(crate) acts: Vec<ServerActivation>,
    pub(crate) layers: Vec<LayerReport>,
    pub(crate) phase: PhaseReport,
    pub(crate) storage: u64,
    /// Its bytes in the server's pending-material budget, released on drop.
    pub(crate) reservation: Option<crate::session::memory::Reservation>,
}

/// The server's material for one activation layer.
pub(crate) enum ServerActivation {
    /// Garbled circuits: pads and the server's input labels per sub-layer.
    Gc(Box<ServerGcActivation>),
    /// OT-based ReLU: the whole layer's material.
    Ot(crate::relu_ot::ServerMaterial),
}

impl std::fmt::Debug for ServerPreprocessed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPreprocessed")
            .field("inference", &self.id)
            .finish_non_exhaustive()
    }
}

impl ServerPreprocessed {
    /// The inference number this material belongs to.
    pub fn inference(&self) -> u64 {
        self.id
    }
    /// The offline phase as the server saw it.
    pub fn offline_report(&self) -> &PhaseReport {
        &self.phase
    }
    /// Bytes held until the online phase (masks, pads, labels), as
    /// [`crate::session::ServerModel::pending_bytes_per_inference`] plans them.
    pub fn storage_bytes(&self) -> u64 {
        self.storage
    }
}

/// The client's material for one inference: its input mask, the material of
/// every activation in the session's ReLU mode (with its activation-output
/// mask), and its share of the logits. Consumed by the online phase; masks
/// and shares are zeroized on drop.
pub struct ClientPreprocessed {
    pub(crate) id: u64,
    /// The garbler's public nonce for this inference's tables (GC mode).
    pub(crate) gc_nonce: Option<GcNonce>,
    pub(crate) input_mask: Zeroizing<Vec<u64>>,
    /// Per activation, in memory or on disk.
    pub(crate) acts: MaterialStore,
    pub(crate) logits_share: Zeroizing<Vec<u64>>,
    pub(crate) layers: Vec<LayerReport>,
    pub(crate) phase: PhaseReport,
    pub(crate) storage: u64,
    pub(crate) table_bytes: u64,
}

/// The client's material for one activation layer.
pub(crate) struct ClientActivation {
    /// r': the client's share of the activation's output.
    pub out_mask: Zeroizing<Vec<u64>>,
    pub material: ClientActMaterial,
}

/// The mode-specific part of [`ClientActivation`].
pub(crate) enum ClientActMaterial {
    /// Garbled circuits: tables and the client's input labels per sub-layer.
    Gc(ClientGcActivation),
    /// OT-based ReLU: the whole layer's material.
    Ot(crate::relu_ot::ClientMaterial),
}

impl std::fmt::Debug for ClientPreprocessed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPreprocessed")
            .field("inference", &self.id)
            .field("storage_bytes", &self.storage)
            .finish_non_exhaustive()
    }
}

impl ClientPreprocessed {
    /// The inference number this material belongs to.
    pub fn inference(&self) -> u64 {
        self.id
    }
    /// Bytes held until the online phase (tables, labels, masks, logits share).
    pub fn storage_bytes(&self) -> u64 {
        self.storage
    }
    /// Whether the activation material waits on disk
    /// ([`crate::store::MaterialDir`]) rather than in memory.
    pub fn on_disk(&self) -> bool {
        self.acts.on_disk()
    }
    /// The offline phase as the client saw it.
    pub fn offline_report(&self) -> &PhaseReport {
        &self.phase
    }
}
