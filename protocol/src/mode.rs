//! The activation protocol a session runs ([`ReluMode`]), negotiated in the
//! handshake ([`crate::session`]) and shown in every report.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How activations (ReLU with the truncation before it) are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReluMode {
    /// Garbled circuits ([`crate::gc`]): one online round trip per layer,
    /// about 2.7 KB of client storage per ReLU.
    #[default]
    Gc,
    /// OT-based comparison and multiplexer ([`crate::relu_ot`]): a few
    /// online round trips per layer, far less traffic and client storage.
    Ot,
}

impl ReluMode {
    /// `gc` or `ot`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReluMode::Gc => "gc",
            ReluMode::Ot => "ot",
        }
    }
}

impl std::fmt::Display for ReluMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ReluMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gc" => Ok(ReluMode::Gc),
            "ot" => Ok(ReluMode::Ot),
            _ => Err(Error::BadInput(format!(
                "ReLU mode {s:?}: expected gc or ot"
            ))),
        }
    }
}
