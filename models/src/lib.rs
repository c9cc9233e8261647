//! Network specs, weights, counting and the plaintext oracle (DESIGN.md section 4).
//!
//! - [`spec`]: the ResNet18 family and HybReNets in `αxβxγx(m=..,phi=..)` notation.
//! - [`network`]: the flat, ordered list of steps (linear layers, residual adds,
//!   activations with ReLU masks) that both the oracle and the protocol walk,
//!   plus ReLU / MAC counting.
//! - [`model`]: model files (TOML) carrying a spec, weights, normalisation and masks.
//! - [`weights`]: safetensors loading with BN folding, and seeded random weights.
//! - [`fixed`]: fixed-point semantics over Z_2^l (documented there), ring building
//!   blocks for shares, and the fixed-point oracle; [`float`]: the f64 reference.
//! - [`kernels`]: the conv / dense loops shared by both.

#![forbid(unsafe_code)]

pub mod error;
pub mod fixed;
pub mod float;
pub mod kernels;
pub mod model;
pub mod network;
pub mod spec;
pub mod weights;

pub use error::{Error, Result};
pub use fixed::{QuantModel, RingParams};
pub use model::Model;
pub use network::{Network, Step};
pub use spec::NetSpec;
pub use weights::FoldedModel;
