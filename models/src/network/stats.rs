//! Counting: ReLUs, identity (truncation-only) positions, MACs and weight
//! parameters, per layer, per stage and in total, and the `pi-models stats`
//! table ([`Stats`]'s `Display`).
//!
//! Conventions: the stem ReLU counts in stage 1; MACs count convs (with
//! shortcuts) and the FC on pooled features (C*K, as in the literature); BN
//! is folded and costs nothing.

use super::geometry::Shape;
use super::graph::{LinearKind, Network, Step};
use serde::Serialize;

/// Per-layer counts.
#[derive(Clone, Debug, Serialize)]
pub struct LayerStats {
    /// The step's name.
    pub name: String,
    /// `conv`, `fc`, `add` or `relu`.
    pub kind: &'static str,
    /// 1..=4, 5 for the head.
    pub stage: usize,
    /// Input shapes (two for a residual add).
    pub input: Vec<Shape>,
    /// Output shape.
    pub output: Shape,
    /// Positions that keep their ReLU (activations only).
    pub relus: u64,
    /// Identity positions, truncation only (activations only).
    pub identity: u64,
    /// Multiply-accumulates (linear layers only).
    pub macs: u64,
}

/// Whole-network counts. MACs count convs (with shortcuts) and the FC on
/// pooled features (C*K, the literature's convention); BN is folded and costs nothing.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    /// Canonical spec.
    pub spec: String,
    /// ReLUs in total.
    pub relus: u64,
    /// Identity positions in total.
    pub identity: u64,
    /// MACs in total (stages and head).
    pub macs: u64,
    /// Weight parameters after BN folding (weights and biases), [`Network::params`].
    pub params: u64,
    /// ReLUs per stage, the stem in stage 1.
    pub stage_relus: [u64; 4],
    /// Identity positions per stage.
    pub stage_identity: [u64; 4],
    /// MACs per stage.
    pub stage_macs: [u64; 4],
    /// MACs of the FC head.
    pub head_macs: u64,
    /// One entry per step, in order.
    pub layers: Vec<LayerStats>,
}

impl Network {
    /// Number of weight parameters after BN folding: every conv's weights and
    /// bias, and the FC's (K, C) weights and bias. Computed from the geometry
    /// alone, so it can be checked before anything is allocated.
    pub fn params(&self) -> u64 {
        self.linears()
            .map(|l| match l.kind {
                LinearKind::Conv(g) => (g.weight_len() + g.cout) as u64,
                LinearKind::Fc(g) => ((g.input.c + 1) * g.out) as u64,
            })
            .sum()
    }

    /// Counts ReLUs, identities and MACs per layer and per stage, and the parameters.
    pub fn stats(&self) -> Stats {
        let mut layers = Vec::new();
        let mut st = Stats {
            spec: self.spec.canonical(),
            relus: 0,
            identity: 0,
            macs: 0,
            params: self.params(),
            stage_relus: [0; 4],
            stage_identity: [0; 4],
            stage_macs: [0; 4],
            head_macs: 0,
            layers: Vec::new(),
        };
        for step in &self.steps {
            let (kind, input, output, relus, identity, macs) = match step {
                Step::Linear(l) => {
                    let (kind, macs) = match l.kind {
                        LinearKind::Conv(g) => ("conv", g.macs()),
                        LinearKind::Fc(g) => ("fc", g.macs()),
                    };
                    (
                        kind,
                        vec![self.tensors[l.input].shape],
                        self.tensors[l.output].shape,
                        0,
                        0,
                        macs,
                    )
                }
                Step::Add(a) => (
                    "add",
                    vec![self.tensors[a.lhs].shape, self.tensors[a.rhs].shape],
                    self.tensors[a.output].shape,
                    0,
                    0,
                    0,
                ),
                Step::Activation(a) => ("relu", vec![a.shape], a.shape, a.relus(), a.identity(), 0),
            };
            let stage = step.stage();
            st.relus += relus;
            st.identity += identity;
            st.macs += macs;
            if stage <= 4 {
                st.stage_relus[stage - 1] += relus;
                st.stage_identity[stage - 1] += identity;
                st.stage_macs[stage - 1] += macs;
            } else {
                st.head_macs += macs;
            }
            layers.push(LayerStats {
                name: step.name().to_string(),
                kind,
                stage,
                input,
                output,
                relus,
                identity,
                macs,
            });
        }
        st.layers = layers;
        st
    }
}

impl std::fmt::Display for Stats {
    /// The `pi-models stats` table: one row per step, then per stage and totals.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "network {}", self.spec)?;
        writeln!(
            f,
            "{:<22} {:<5} {:<16} {:<14} {:>12} {:>10} {:>14}",
            "layer", "kind", "input", "output", "relus", "identity", "macs"
        )?;
        for l in &self.layers {
            let input: Vec<String> = l.input.iter().map(|x| x.to_string()).collect();
            writeln!(
                f,
                "{:<22} {:<5} {:<16} {:<14} {:>12} {:>10} {:>14}",
                l.name,
                l.kind,
                input.join("+"),
                l.output.to_string(),
                l.relus,
                l.identity,
                l.macs
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<8} {:>12} {:>10} {:>14}",
            "stage", "relus", "identity", "macs"
        )?;
        for i in 0..4 {
            writeln!(
                f,
                "{:<8} {:>12} {:>10} {:>14}",
                i + 1,
                self.stage_relus[i],
                self.stage_identity[i],
                self.stage_macs[i]
            )?;
        }
        writeln!(
            f,
            "{:<8} {:>12} {:>10} {:>14}",
            "head", 0, 0, self.head_macs
        )?;
        writeln!(
            f,
            "{:<8} {:>12} {:>10} {:>14}",
            "total", self.relus, self.identity, self.macs
        )?;
        writeln!(
            f,
            "\nReLUs {} ({} identity positions), MACs {} ({:.1}M)",
            self.relus,
            self.identity,
            self.macs,
            self.macs as f64 / 1e6
        )?;
        writeln!(
            f,
            "parameters {} ({:.1}M, {} bytes as f32)",
            self.params,
            self.params as f64 / 1e6,
            self.params.saturating_mul(4)
        )
    }
}
