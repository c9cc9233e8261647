//! Network specs, weights, counting and the plaintext oracle: everything about
//! a model that needs no cryptography. The private protocol takes its network
//! description and its fixed-point reference from here.
//!
//! - [`spec`]: the ResNet18 family and HybReNets in `αxβxγx(m=..,phi=..)` notation.
//! - [`network`]: the flat, ordered list of steps (linear layers, residual adds,
//!   activations with ReLU masks) that both the oracle and the protocol walk,
//!   ReLU / MAC / parameter counting, a checked [`network::Description`] for
//!   peers, and [`network::zoo`], one file per network family.
//! - [`model`]: model files (TOML) carrying a spec, weights, normalisation and masks.
//! - [`weights`]: safetensors loading with BN folding (accepted tensor names are
//!   listed there), seeded random weights, and the size cap on networks.
//! - [`files`]: size-capped file reading (bytes actually read are counted) and
//!   the `.npy` reader.
//! - [`fixed`]: the fixed-point oracle and the ring building blocks the protocol
//!   applies to additive shares; [`float`]: the f64 reference; [`predict`]:
//!   one inference as `pi-models infer` reports it.
//! - [`kernels`]: the conv / dense loops shared by both.
//! - [`reshape`]: DeepReShape's ReLU equalization (HybReNet multipliers from a stage
//!   criticality order) and coarse ReLU-budget variants (culling / thinning).
//!
//! # ReLU equalization in one paragraph (details and proofs of each step in [`reshape`])
//! One activation layer of stage i holds w_i·s_i² ReLUs: with widths m, αm, αβm, αβγm
//! and sides H, H/2, H/4, H/8 that is m·H²·(1, α/4, αβ/16, αβγ/64), and stage i has
//! 2φ_i such layers (the stem is left out of the order). So the stages' ReLU counts are
//! in the ratio 64φ1 : 16αφ2 : 4αβφ3 : αβγφ4 (H = 32). "Sa more critical than Sb" asks
//! R_a > R_b strictly; cancelling the common factors leaves the product of the
//! multipliers between the two stages against a power of 4 (times the φ's): with
//! φ = 2-2-2-2, `S3>S2>S4>S1` means β > 4, β·γ < 16, α·β·γ > 64, whose smallest-α
//! integer solutions with 2 <= α, β, γ <= 8 are the paper's 7x5x2x, 5x5x3x, 6x6x2x, 5x7x2x.
//!
//! # Fixed-point semantics (the contract the private protocol must match bit for bit)
//! - Ring Z_2^l (default l = 37), f fractional bits (default 12), 2f < l <= 64. A ring
//!   element is a `u64` holding the low l bits; signed view v - 2^l when v >= 2^(l-1).
//! - Quantisation: inputs (after the model file's normalisation) and BN-folded weights
//!   at scale f, q = round(x * 2^f) in f64 with ties away from zero, then mod 2^l;
//!   biases at scale 2f. Values outside the signed range are an error, never wrapped.
//! - BN folding in f64, eps = 1e-5: w' = w γ / sqrt(var + eps), b' = β − mean γ / sqrt(var + eps).
//! - Linear layer: sum(w x) + b mod 2^l, at scale 2f (no truncation inside the layer).
//! - Residual add at scale 2f before the block's second activation: conv2 output plus
//!   the shortcut, which is a projection conv output (scale 2f) or the block input
//!   (scale f) multiplied by 2^f.
//! - Every linear output (after the add, for a block's second conv) goes through exactly
//!   one activation: trunc(z) = (signed(z) >> f) mod 2^l (floor), then ReLU where the mask
//!   keeps the position, identity where it does not. Activation outputs are at scale f.
//! - Global average pooling is folded into the FC: weight w / (H*W) at each of the H*W
//!   positions of the last feature map (input length C*H*W), quantised at scale f, bias
//!   at scale 2f. Logits stay at scale 2f: divide the signed value by 2^(2f).
//!
//! The float reference runs the same graph in f64 with a real average pool.
//! MAC counts follow the literature (FC on pooled features, C*K); the folded
//! FC executes C*H*W*K ring MACs ([`network::FcGeom::folded_macs`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod files;
pub mod fixed;
pub mod float;
pub mod kernels;
pub mod model;
pub mod network;
pub mod predict;
pub mod reshape;
pub mod spec;
pub mod weights;

pub use error::{Error, Result};
pub use fixed::{QuantModel, RingParams};
pub use model::Model;
pub use network::{Network, Step};
pub use spec::NetSpec;
pub use weights::FoldedModel;
