//! The data of a network: numbered tensors and the ordered steps over them
//! (linear layers, residual adds, activations). The operations live beside
//! it: masks in `masks`, counting in `stats`, the peer description in
//! `description`, and construction per network family in [`super::zoo`].

use super::geometry::{ConvGeom, FcGeom, Shape};
use crate::spec::NetSpec;
use serde::Serialize;

/// Index of a tensor in [`Network::tensors`].
pub type TensorId = usize;

/// Fixed-point scale of a tensor: 2^f (activations, inputs) or 2^(2f) (linear outputs, logits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Scale 2^f: the input and every activation output.
    F,
    /// Scale 2^(2f): every linear output, residual sum and the logits.
    TwoF,
}

/// A tensor of the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    /// (C, H, W).
    pub shape: Shape,
    /// Fixed-point scale of its values.
    pub scale: Scale,
}

/// Which linear operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinearKind {
    /// A convolution (stem, block convs, 1x1 projection shortcuts).
    Conv(ConvGeom),
    /// The final FC with the global average pool folded in.
    Fc(FcGeom),
}

/// A conv or FC layer with BN folded in; bias always present after folding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinearStep {
    /// PyTorch module name: `conv1`, `layer2.0.conv1`, `layer2.0.shortcut`, `linear`.
    pub name: String,
    /// Position in [`Network::linears`] and in the weight lists.
    pub index: usize,
    /// Convolution or FC, with its geometry.
    pub kind: LinearKind,
    /// Input tensor (scale f).
    pub input: TensorId,
    /// Output tensor (scale 2f, bias included).
    pub output: TensorId,
    /// Stage 1..=4, or 5 for the head (FC).
    pub stage: usize,
}

/// Residual add at scale 2f: `output = lhs + rhs * (2^f if rhs_upscale else 1)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddStep {
    /// `layer{s}.{b}.add`.
    pub name: String,
    /// conv2's output (scale 2f).
    pub lhs: TensorId,
    /// Shortcut: a conv output (scale 2f) or the block input (scale f, `rhs_upscale`).
    pub rhs: TensorId,
    /// Whether `rhs` is at scale f and is multiplied by 2^f before the add.
    pub rhs_upscale: bool,
    /// The sum (scale 2f).
    pub output: TensorId,
    /// Stage 1..=4.
    pub stage: usize,
}

/// Which positions of an activation keep their ReLU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "keep")]
pub enum ReluMask {
    /// Every position is a ReLU.
    All,
    /// No position is a ReLU (identity, still truncated).
    None,
    /// `keep[c]`: channel c keeps its ReLU.
    Channels(Vec<bool>),
    /// `keep[index(c, y, x)]`: that position keeps its ReLU.
    Pixels(Vec<bool>),
}

/// Truncation by f then ReLU (kept positions) or identity (others).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActivationStep {
    /// `relu`, `layer{s}.{b}.relu1`, `layer{s}.{b}.relu2`.
    pub name: String,
    /// Input tensor (scale 2f).
    pub input: TensorId,
    /// Output tensor (scale f).
    pub output: TensorId,
    /// Shape of both.
    pub shape: Shape,
    /// Positions that keep their ReLU.
    pub mask: ReluMask,
    /// Stage 1..=4 (the stem's `relu` counts in stage 1).
    pub stage: usize,
}

/// One step of the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "op")]
pub enum Step {
    /// A conv or FC layer.
    Linear(LinearStep),
    /// A residual add.
    Add(AddStep),
    /// Truncation then ReLU / identity.
    Activation(ActivationStep),
}

impl Step {
    /// The step's name (PyTorch module name for linear layers).
    pub fn name(&self) -> &str {
        match self {
            Step::Linear(l) => &l.name,
            Step::Add(a) => &a.name,
            Step::Activation(a) => &a.name,
        }
    }
    /// The step's stage: 1..=4, or 5 for the head.
    pub fn stage(&self) -> usize {
        match self {
            Step::Linear(l) => l.stage,
            Step::Add(a) => a.stage,
            Step::Activation(a) => a.stage,
        }
    }
}

/// A whole network: spec, tensors and steps in execution order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Network {
    /// The spec it was built from.
    pub spec: NetSpec,
    /// Every tensor, indexed by [`TensorId`].
    pub tensors: Vec<TensorInfo>,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// The input tensor (scale f), always 0.
    pub input: TensorId,
    /// The logits tensor (scale 2f).
    pub output: TensorId,
}

impl Network {
    /// Linear steps in order (their `index` is their position here).
    pub fn linears(&self) -> impl Iterator<Item = &LinearStep> {
        self.steps.iter().filter_map(|s| {
            if let Step::Linear(l) = s {
                Some(l)
            } else {
                None
            }
        })
    }

    /// Activation steps in order.
    pub fn activations(&self) -> impl Iterator<Item = &ActivationStep> {
        self.steps.iter().filter_map(|s| {
            if let Step::Activation(a) = s {
                Some(a)
            } else {
                None
            }
        })
    }
}
