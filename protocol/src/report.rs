//! What one inference cost: seconds and bytes per phase and per layer, what
//! the client stores between the phases, ReLU and identity counts.
//!
//! Bytes come from the channel's [`Meter`]: the drivers label traffic
//! `offline/<layer>` and `online/<layer>` (plus `offline/setup`,
//! `online/input`, `online/output`), and a report is the difference of the
//! meter between the start and the end of the phase, so several inferences on
//! one channel are reported apart. Seconds are this party's wall clock.

use std::time::Instant;

use serde::Serialize;

use crate::mode::ReluMode;
use crate::transport::{Meter, Traffic};

/// Seconds and payload bytes of one phase (or of one layer in one phase).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PhaseReport {
    /// Wall-clock seconds on this party.
    pub seconds: f64,
    /// Payload bytes this party sent.
    pub bytes_sent: u64,
    /// Payload bytes this party received.
    pub bytes_received: u64,
}

/// One step of the network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerReport {
    /// The step's name (`conv1`, `layer2.0.relu1`, `linear`, ...).
    pub name: String,
    /// `conv`, `fc`, `add` or `relu` (an activation, whatever its mask).
    pub kind: &'static str,
    /// Positions evaluated with the ReLU circuit.
    pub relus: u64,
    /// Positions evaluated with the truncation-only circuit.
    pub identity: u64,
    /// Offline cost (HE for linear layers, OT and garbling for activations).
    pub offline: PhaseReport,
    /// Online cost (local linear algebra, label transfer and evaluation).
    pub online: PhaseReport,
}

/// Totals over activations: positions and garbled sub-layers by circuit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ActivationCounts {
    /// Positions that keep their ReLU.
    pub relus: u64,
    /// Positions that are identity (truncation only).
    pub identity: u64,
    /// Garbled sub-layers of ReLU circuits.
    pub relu_layers: usize,
    /// Garbled sub-layers of truncation-only circuits.
    pub identity_layers: usize,
}

/// The client's view of one inference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientReport {
    /// Inference number within the session.
    pub inference: u64,
    /// Arg-max of the logits (first maximum).
    pub class: usize,
    /// Logits as reals (scale 2f removed).
    pub logits: Vec<f64>,
    /// Logits as signed ring values at scale 2f (bit-exact with the oracle).
    pub logits_fixed: Vec<i64>,
    /// Offline phase.
    pub offline: PhaseReport,
    /// Online phase.
    pub online: PhaseReport,
    /// Everything held from the offline to the online phase: garbled tables
    /// and own input labels (GC mode) or OT pads and choices (OT mode), masks
    /// and the logits share.
    pub client_storage_bytes: u64,
    /// Of which garbled tables.
    pub garbled_table_bytes: u64,
    /// Activation counts.
    pub activations: ActivationCounts,
    /// How activations were computed (negotiated in the handshake).
    pub relu_mode: ReluMode,
    /// Online round trips (sending the input and returning the logits count
    /// as one; each activation layer adds 1 in GC mode, the AND-tree depth
    /// plus 2 in OT mode).
    pub online_round_trips: u64,
    /// Per step, in network order.
    pub layers: Vec<LayerReport>,
}

/// The server's view of one inference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerReport {
    /// Inference number within the session.
    pub inference: u64,
    /// Offline phase.
    pub offline: PhaseReport,
    /// Online phase.
    pub online: PhaseReport,
    /// What the server held between the phases: masks, pads, its input labels
    /// (GC mode) or OT pads (OT mode).
    pub server_storage_bytes: u64,
    /// Activation counts.
    pub activations: ActivationCounts,
    /// How activations were computed (negotiated in the handshake).
    pub relu_mode: ReluMode,
    /// Online round trips (sending the input and returning the logits count
    /// as one; each activation layer adds 1 in GC mode, the AND-tree depth
    /// plus 2 in OT mode).
    pub online_round_trips: u64,
    /// Per step, in network order.
    pub layers: Vec<LayerReport>,
}

fn minus(a: Traffic, b: Traffic) -> Traffic {
    Traffic {
        sent: a.sent.saturating_sub(b.sent),
        received: a.received.saturating_sub(b.received),
    }
}

/// Times a phase and its layers against a meter snapshot.
pub(crate) struct Recorder {
    phase: &'static str,
    before: Meter,
    start: Instant,
    step_start: Instant,
}

impl Recorder {
    pub(crate) fn new(phase: &'static str, meter: &Meter) -> Self {
        let now = Instant::now();
        Self {
            phase,
            before: meter.clone(),
            start: now,
            step_start: now,
        }
    }

    /// Restarts the phase clock (bytes still count from the snapshot): the
    /// server calls it once the client's request arrives, so that time spent
    /// waiting for the client to ask is not counted as work.
    pub(crate) fn restart_clock(&mut self) {
        self.start = Instant::now();
        self.step_start = self.start;
    }

    /// The channel label of `layer` in this phase.
    pub(crate) fn label(&self, layer: &str) -> String {
        format!("{}/{layer}", self.phase)
    }

    /// Marks the start of a step.
    pub(crate) fn step(&mut self) {
        self.step_start = Instant::now();
    }

    /// Seconds since [`Self::step`] and the traffic under `layer`'s label.
    pub(crate) fn finish_step(&self, meter: &Meter, layer: &str) -> PhaseReport {
        let label = self.label(layer);
        let get = |m: &Meter| m.by_label().get(&label).copied().unwrap_or_default();
        let t = minus(get(meter), get(&self.before));
        PhaseReport {
            seconds: self.step_start.elapsed().as_secs_f64(),
            bytes_sent: t.sent,
            bytes_received: t.received,
        }
    }

    /// The whole phase.
    pub(crate) fn finish(&self, meter: &Meter) -> PhaseReport {
        let prefix = format!("{}/", self.phase);
        let t = minus(meter.total(&prefix), self.before.total(&prefix));
        PhaseReport {
            seconds: self.start.elapsed().as_secs_f64(),
            bytes_sent: t.sent,
            bytes_received: t.received,
        }
    }
}
