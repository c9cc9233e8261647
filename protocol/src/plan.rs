//! Everything both parties derive from the public architecture: the
//! network, ring and activation parameters, every HE layer plan, the split
//! of each activation into ReLU and truncation-only positions, the circuits,
//! the OT-mode schedule and when each tensor is last read. The server also
//! holds its secret weights beside the plan ([`SecretModel`]).

use std::sync::Arc;

use pi_models::network::{LinearKind, Network, Step};
use pi_models::{QuantModel, RingParams};

use crate::gc::{ActivationParams, Circuit};
use crate::he::{self, ConvShape, FcShape, HeParams, LayerPlan, LayerShape};
use crate::mode::ReluMode;
use crate::relu_ot::ClientMaterial;
use crate::report::{ActivationCounts, LayerReport, PhaseReport};
use crate::{Error, Result};

/// Which activation positions use which circuit.
#[derive(Clone, Debug)]
pub(crate) struct ActSplit {
    /// Flat positions kept as ReLU, increasing.
    pub relu: Vec<usize>,
    /// Flat positions that are identity (truncation only), increasing.
    pub trunc: Vec<usize>,
}

/// Everything both parties derive from the public architecture.
#[derive(Debug)]
pub(crate) struct SessionPlan {
    pub network: Network,
    pub ring: RingParams,
    pub act: ActivationParams,
    pub he: HeParams,
    /// One per linear step, by [`pi_models::network::LinearStep::index`].
    pub he_plans: Vec<LayerPlan>,
    /// How well one inference's HE replies hide the weights.
    pub hiding: he::WeightHiding,
    /// One per activation, in order.
    pub splits: Vec<ActSplit>,
    pub relu: Circuit,
    pub trunc: Circuit,
    /// The OT-mode protocol shape, if the ring parameters allow it.
    pub ot: Option<Arc<crate::relu_ot::Schedule>>,
    /// For each tensor, the last step index that reads it.
    pub last_use: Vec<usize>,
    pub template: Vec<LayerReport>,
    pub counts: ActivationCounts,
}

impl SessionPlan {
    pub(crate) fn new(network: Network, ring: RingParams) -> Result<Self> {
        let act = ActivationParams::new(ring.bits(), ring.frac())?;
        let he = HeParams::new(ring.bits())?;
        let mut he_plans = Vec::new();
        let mut splits = Vec::new();
        let mut last_use = vec![0usize; network.tensors.len()];
        let mut template = Vec::new();
        let mut counts = ActivationCounts::default();
        for (i, step) in network.steps.iter().enumerate() {
            let (kind, relus, identity) = match step {
                Step::Linear(l) => {
                    last_use[l.input] = i;
                    let shape = layer_shape(&l.kind);
                    he_plans.push(
                        LayerPlan::new(he, shape)
                            .map_err(|e| Error::BadInput(format!("layer {}: {e}", l.name)))?,
                    );
                    (
                        if matches!(l.kind, LinearKind::Conv(_)) {
                            "conv"
                        } else {
                            "fc"
                        },
                        0,
                        0,
                    )
                }
                Step::Add(a) => {
                    last_use[a.lhs] = i;
                    last_use[a.rhs] = i;
                    ("add", 0, 0)
                }
                Step::Activation(a) => {
                    last_use[a.input] = i;
                    let (mut relu, mut trunc) = (Vec::new(), Vec::new());
                    for p in 0..a.shape.numel() {
                        if a.keeps(p) {
                            relu.push(p)
                        } else {
                            trunc.push(p)
                        }
                    }
                    counts.relus += relu.len() as u64;
                    counts.identity += trunc.len() as u64;
                    counts.relu_layers += usize::from(!relu.is_empty());
                    counts.identity_layers += usize::from(!trunc.is_empty());
                    let r = (relu.len() as u64, trunc.len() as u64);
                    splits.push(ActSplit { relu, trunc });
                    ("relu", r.0, r.1)
                }
            };
            template.push(LayerReport {
                name: step.name().to_string(),
                kind,
                relus,
                identity,
                offline: PhaseReport::default(),
                online: PhaseReport::default(),
            });
        }
        last_use[network.output] = network.steps.len();
        let hiding = he::WeightHiding::new(&he_plans);
        Ok(Self {
            ot: crate::relu_ot::Schedule::new(ring).ok().map(Arc::new),
            relu: Circuit::relu(act),
            trunc: Circuit::truncate(act),
            network,
            ring,
            act,
            he,
            he_plans,
            hiding,
            splits,
            last_use,
            template,
            counts,
        })
    }
}

/// The server's plan and its secret weights. Shared by all its sessions.
pub(crate) struct SecretModel {
    pub plan: Arc<SessionPlan>,
    pub quant: QuantModel,
    /// Signed weights per linear layer, for the HE step.
    pub signed: Vec<Vec<i64>>,
}

/// The error of a session whose ring parameters OT mode cannot serve.
pub(crate) fn no_ot() -> Error {
    Error::Incompatible("OT ReLU mode does not support these ring parameters".into())
}

/// The two garbled sub-layers of an activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sub {
    Relu,
    Trunc,
}

impl Sub {
    /// Positions of activation `k` in this sub-layer.
    pub(crate) fn positions(self, plan: &SessionPlan, k: usize) -> &[usize] {
        match self {
            Sub::Relu => &plan.splits[k].relu,
            Sub::Trunc => &plan.splits[k].trunc,
        }
    }
    /// The circuit.
    pub(crate) fn circuit(self, plan: &SessionPlan) -> &crate::gc::Circuit {
        match self {
            Sub::Relu => &plan.relu,
            Sub::Trunc => &plan.trunc,
        }
    }
    /// Garbling layer index (tweak domain): strictly increasing through the
    /// inference, as required under one Δ.
    pub(crate) fn layer(self, k: usize) -> u32 {
        (2 * k + usize::from(self == Sub::Trunc)) as u32
    }
}

/// Bytes the client stores per preprocessed inference in `mode`, as
/// [`ClientPreprocessed::storage_bytes`] will count them, from the plan
/// alone: per activation the material of the mode (GC: garbled tables and
/// the client's own input labels, l per position, of every non-empty
/// sub-layer; OT: [`ClientMaterial::planned_storage_bytes`]) and the
/// activation-output mask; the input mask and the logits share. Lets a
/// client budget its pool before the first offline phase.
///
/// [`ClientPreprocessed::storage_bytes`]: crate::offline::ClientPreprocessed::storage_bytes
/// [`ClientMaterial::planned_storage_bytes`]: crate::relu_ot::ClientMaterial::planned_storage_bytes
///
/// # Errors
/// [`Error::Incompatible`] for OT mode under ring parameters it does not
/// support (a session in that mode cannot exist).
pub(crate) fn client_storage_bytes(plan: &SessionPlan, mode: ReluMode) -> Result<u64> {
    let net = &plan.network;
    let mut storage =
        8 * (net.tensors[net.input].shape.numel() + net.tensors[net.output].shape.numel()) as u64;
    for k in 0..plan.splits.len() {
        storage += client_activation_bytes(plan, mode, k)?;
    }
    Ok(storage)
}

/// Bytes of activation `k`'s client material in `mode`: its output mask r
/// and the mode's material (see [`client_storage_bytes`]); one record of an
/// inference stored on disk.
///
/// # Errors
/// As [`client_storage_bytes`].
pub(crate) fn client_activation_bytes(plan: &SessionPlan, mode: ReluMode, k: usize) -> Result<u64> {
    let split = &plan.splits[k];
    let positions = split.relu.len() + split.trunc.len();
    let material = match mode {
        ReluMode::Ot => ClientMaterial::planned_storage_bytes(
            plan.ot.as_deref().ok_or_else(no_ot)?,
            positions,
            split.relu.len(),
        ),
        ReluMode::Gc => {
            let l = plan.ring.bits() as u64;
            [Sub::Relu, Sub::Trunc]
                .iter()
                .map(|&which| {
                    let n = which.positions(plan, k).len() as u64;
                    n * (which.circuit(plan).table_bytes() as u64 + 16 * l)
                })
                .sum()
        }
    };
    Ok(8 * positions as u64 + material)
}

/// Bytes the server holds per preprocessed inference in `mode`, as
/// [`ServerPreprocessed::storage_bytes`] will count them, from the plan
/// alone: the mask s of every linear layer's output, and per activation
/// position in GC mode its pad (its input labels are derived from one key
/// per garbled sub-layer, [`crate::gc::ServerInputLabels`]), in OT mode
/// [`ServerMaterial::planned_storage_bytes`]. The server reserves
/// this in its pending-material budget before each offline phase.
///
/// [`ServerPreprocessed::storage_bytes`]: crate::offline::ServerPreprocessed::storage_bytes
/// [`ServerMaterial::planned_storage_bytes`]: crate::relu_ot::ServerMaterial::planned_storage_bytes
///
/// # Errors
/// [`Error::Incompatible`] for OT mode under ring parameters it does not
/// support.
pub(crate) fn server_storage_bytes(plan: &SessionPlan, mode: crate::mode::ReluMode) -> Result<u64> {
    let mut storage: u64 = plan
        .he_plans
        .iter()
        .map(|hp| 8 * hp.shape().output_len() as u64)
        .sum();
    let ot = match mode {
        crate::mode::ReluMode::Gc => None,
        crate::mode::ReluMode::Ot => Some(plan.ot.as_deref().ok_or_else(no_ot)?),
    };
    for split in &plan.splits {
        let positions = split.relu.len() + split.trunc.len();
        storage += match ot {
            Some(sched) => crate::relu_ot::ServerMaterial::planned_storage_bytes(
                sched,
                positions,
                split.relu.len(),
            ),
            None => {
                let subs = [&split.relu, &split.trunc]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .count();
                8 * positions as u64
                    + (subs * std::mem::size_of::<crate::gc::ServerInputLabels>()) as u64
            }
        };
    }
    Ok(storage)
}

/// The HE layer shape of one linear step of a `pi_models` network. Global
/// average pooling is folded into the FC (models crate docs), so the FC reads
/// the whole C·H·W feature map.
pub fn layer_shape(kind: &LinearKind) -> LayerShape {
    match *kind {
        LinearKind::Conv(g) => LayerShape::Conv(ConvShape {
            c_in: g.cin,
            c_out: g.cout,
            h: g.in_h,
            w: g.in_w,
            kernel: g.kernel,
            stride: g.stride,
            pad: g.pad,
        }),
        LinearKind::Fc(g) => LayerShape::Fc(FcShape {
            inputs: g.in_features(),
            outputs: g.out,
        }),
    }
}
