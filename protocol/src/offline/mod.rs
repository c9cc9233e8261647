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
//!   the bits of b by correlated OT (the session's silent OT, whose Δ is the
//!   garbler's, so the OT outputs are the input labels and only one choice
//!   bit per label is sent), and the server garbles the sub-layer with those
//!   zero labels and fresh pads p, streaming the tables chunk by chunk as
//!   they are made. The garbler's nonce is the inference number.
//!
//! In OT mode ([`crate::mode::ReluMode::Ot`]) an activation instead
//! runs the offline part of [`crate::relu_ot`]: random OTs (server sender)
//! whose leaf choices are the bits the client derives from b, random OTs
//! with random choices for the AND tree and the final conversion, and per
//! ReLU position one random OT with random choice in the other direction
//! (the session's second OT instance, client sender); both sides then hash
//! the OT outputs into compact pads.
//!
//! The bulk OT ([`crate::ot::bulk`], silent COT bootstrapped by IKNP) and,
//! in GC mode, its Δ belong to the session, like the HE keys: the first
//! offline phase sets them up (IKNP base OTs, the silent setup round), and
//! every phase starts by announcing the OTs it will take ([`ot_demand`]),
//! which starts a silent round that finishes in the background while the
//! first layers run, and then consumes fresh OTs. Between phases each
//! instance keeps its reserve (9.7 MB) and the outputs not yet handed out
//! (at most one main round's, 163 MB). Every per-inference value (OTs,
//! masks, pads, labels, garbler nonce) is fresh. The result is a value
//! ([`ServerPreprocessed`], [`ClientPreprocessed`]) that [`crate::online`]
//! consumes.
//!
//! Traffic is labelled `offline/setup` (the bulk OT's setup in the
//! session's first phase and the rounds started there) and
//! `offline/<step name>` (including the silent rounds that step starts).
//!
//! Files: [`server`] and [`client`] walk the network for each party (HE for
//! linear layers, shares for residual adds); the activations of each ReLU
//! mode live in `gc.rs` and `ot.rs`, both parties side by side, so that the
//! two ends of every message are read together.

use rand_chacha::ChaCha20Rng;
use zeroize::Zeroizing;

use crate::Result;
use crate::gc::GcNonce;
use crate::mode::ReluMode;
use crate::ot::{Extension, SessionOts};
use crate::plan::SessionPlan;
use crate::report::{LayerReport, PhaseReport};
use crate::transport::Channel;

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

/// OTs one inference takes from the session's bulk OT: server → client
/// (GC mode: l labels per position; OT mode: the schedule's random OTs per
/// position) and client → server (OT mode: one per ReLU).
fn ot_demand(plan: &SessionPlan, mode: ReluMode) -> (usize, usize) {
    let positions = (plan.counts.relus + plan.counts.identity) as usize;
    match mode {
        ReluMode::Ot => {
            let per = plan.ot.as_ref().map_or(0, |s| s.rots_per_position());
            (positions * per, plan.counts.relus as usize)
        }
        ReluMode::Gc => (positions * plan.ring.bits() as usize, 0),
    }
}

/// The server's side of the session's bulk OT at the start of a phase: the
/// instances set up if this is the session's first phase (server → client,
/// and client → server if the mode needs OTs that way), then the phase's
/// demand announced, which starts the first round it needs. The client
/// runs [`client_ots`] at the same point.
async fn server_ots<C: Channel>(
    ch: &mut C,
    ots: &mut SessionOts,
    plan: &SessionPlan,
    mode: ReluMode,
    rng: &mut ChaCha20Rng,
) -> Result<()> {
    let ext = Extension::default();
    let (forward, reverse) = ot_demand(plan, mode);
    ots.ensure_sender(ch, rng, ext).await?;
    if reverse > 0 {
        ots.ensure_receiver(ch, rng, ext).await?;
    }
    ots.sender()?.plan(ch, forward).await?;
    if reverse > 0 {
        ots.receiver()?.plan(ch, reverse).await?;
    }
    Ok(())
}

/// The client's counterpart of [`server_ots`].
async fn client_ots<C: Channel>(
    ch: &mut C,
    ots: &mut SessionOts,
    plan: &SessionPlan,
    mode: ReluMode,
    rng: &mut ChaCha20Rng,
) -> Result<()> {
    let ext = Extension::default();
    let (forward, reverse) = ot_demand(plan, mode);
    ots.ensure_receiver(ch, rng, ext).await?;
    if reverse > 0 {
        ots.ensure_sender(ch, rng, ext).await?;
    }
    ots.receiver()?.plan(ch, forward).await?;
    if reverse > 0 {
        ots.sender()?.plan(ch, reverse).await?;
    }
    Ok(())
}

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
    /// Garbled circuits whose tables and labels wait on disk, read part by
    /// part as they are evaluated ([`MaterialStore::next_part`]).
    GcOnDisk,
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
