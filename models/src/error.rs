//! The crate's error type. Everything `pi-models` reads comes from the local
//! user (a spec string, a model file, a weight file, an input tensor), so the
//! branches say *which* input is wrong and where, rather than whose fault it is.

use std::path::PathBuf;

/// Errors from parsing specs and model files, loading weights and running inference.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed network spec string (`resnet18(m=16)`, `5x5x3x(...)`).
    #[error("bad network spec `{spec}`: {reason}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A malformed or inconsistent model file (TOML).
    #[error("bad model file {}: {reason}", path.display())]
    ModelFile {
        /// The file (`<model>` for text parsed without a file).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A bad ReLU mask (unknown activation, index out of range, ...).
    #[error("bad ReLU mask for `{activation}`: {reason}")]
    Mask {
        /// The activation's name.
        activation: String,
        /// What is wrong with the mask.
        reason: String,
    },

    /// A weight file that does not match the network or is not a valid safetensors file.
    /// `tensor` names the offending tensor, or is empty for whole-file problems.
    #[error("bad weights{}: {reason}", if tensor.is_empty() { String::new() } else { format!(" (tensor `{tensor}`)") })]
    Weights {
        /// The tensor's name, or empty.
        tensor: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A bad input tensor (wrong shape, non-finite values, out of the fixed-point range).
    #[error("bad input: {0}")]
    Input(String),

    /// A bad `reshape` request: malformed criticality order, out-of-range
    /// multiplier bounds, or a ReLU budget no variant can meet.
    #[error("reshape: {0}")]
    Reshape(String),

    /// Invalid ring / fixed-point parameters.
    #[error("bad fixed-point parameters: {0}")]
    Params(String),

    /// A file holds more bytes than the cap for its kind (counted while
    /// reading, so devices and pipes are caught too).
    #[error("{what} {} is larger than the {limit}-byte limit", path.display())]
    TooLarge {
        /// What the file was read as (`weight file`, `input`, `model file`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cap in bytes.
        limit: u64,
    },

    /// A network whose weights would not fit in memory, refused before
    /// anything is allocated.
    #[error(
        "network {spec} has {params} weight parameters ({} bytes as f64), more than the limit of {limit} parameters (pi_models::weights::MAX_PARAMS); use a smaller width m or smaller multipliers",
        params.saturating_mul(8)
    )]
    NetworkTooLarge {
        /// Canonical spec.
        spec: String,
        /// Its parameter count ([`crate::Network::params`]).
        params: u64,
        /// The cap.
        limit: u64,
    },

    /// Reading or writing a file failed.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn spec(spec: &str, reason: impl Into<String>) -> Self {
        Error::Spec {
            spec: spec.to_string(),
            reason: reason.into(),
        }
    }
    pub(crate) fn weights(tensor: &str, reason: impl Into<String>) -> Self {
        Error::Weights {
            tensor: tensor.to_string(),
            reason: reason.into(),
        }
    }
    pub(crate) fn reshape(reason: impl Into<String>) -> Self {
        Error::Reshape(reason.into())
    }
    pub(crate) fn mask(activation: &str, reason: impl Into<String>) -> Self {
        Error::Mask {
            activation: activation.to_string(),
            reason: reason.into(),
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
