//! The flat description of a network: an ordered list of steps over numbered
//! tensors that both the plaintext oracle and the private protocol walk.
//!
//! Every linear step (conv or FC) outputs a tensor at scale 2f with its bias
//! included; a residual [`AddStep`] combines two scale-2f tensors (an identity
//! shortcut's scale-f input is multiplied by 2^f first); every
//! [`ActivationStep`] truncates by f and applies ReLU where its mask keeps a
//! position (identity elsewhere), giving a scale-f tensor. Logits are the
//! output of the final FC, at scale 2f.
//!
//! One file per responsibility, each importing only the ones above it:
//! - `geometry`: [`Shape`], [`ConvGeom`], [`FcGeom`] and their MAC counts;
//! - `graph`: the data ([`Network`], [`Step`] and the step types, [`ReluMask`]);
//! - `masks`: culling, thinning, per-channel and per-pixel ReLU masks;
//! - `description`: the checked [`Description`] sent to a peer;
//! - `stats`: ReLU / MAC / parameter counts ([`Stats`]) and their table;
//! - [`zoo`]: one file per network family; [`zoo::resnet`] builds the ResNet18
//!   family and HybReNets ([`Network::new`]).

mod description;
mod geometry;
mod graph;
mod masks;
mod stats;
pub mod zoo;

pub use description::Description;
pub use geometry::{ConvGeom, FcGeom, Shape};
pub use graph::{
    ActivationStep, AddStep, LinearKind, LinearStep, Network, ReluMask, Scale, Step, TensorId,
    TensorInfo,
};
pub use stats::{LayerStats, Stats};
