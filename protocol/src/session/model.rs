//! The server's model as its sessions see it, and what each party grants
//! or accepts in a handshake.

use std::sync::Arc;

use pi_models::network::{Description, LinearKind, Network};
use pi_models::{Model, QuantModel};
use serde::{Deserialize, Serialize};

use crate::footprint::ClientBudget;
use crate::he;
use crate::mode::ReluMode;
use crate::plan::{SecretModel, SessionPlan};
use crate::session::PendingBudget;
use crate::store::MaterialDir;
use crate::{Error, Result};

/// Default of [`ServerLimits::max_pending`].
pub const DEFAULT_MAX_PENDING: u32 = 4;

/// Activation protocols a server allows unless told otherwise.
pub(crate) fn default_relu_modes() -> Vec<ReluMode> {
    vec![ReluMode::Gc]
}

/// Input normalisation as sent to the client: x' = (x − mean[c]) / std[c].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormalizationMsg {
    /// One entry per input channel, or one for all.
    pub mean: Vec<f64>,
    /// One entry per input channel, or one for all.
    pub std: Vec<f64>,
}

/// The server's model: public network, quantised weights (secret), normalisation.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct ServerModel {
    pub(crate) inner: Arc<SecretModel>,
    pub(crate) normalization: Option<NormalizationMsg>,
    pub(crate) relu_modes: Vec<ReluMode>,
    /// Inferences this weight set may serve over its lifetime (all
    /// sessions, all clients): the budget the weights' hiding is checked for.
    pub(crate) lifetime_inferences: u64,
}

impl std::fmt::Debug for ServerModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerModel")
            .field("spec", &self.inner.plan.network.spec.canonical())
            .finish_non_exhaustive()
    }
}

impl ServerModel {
    /// Checks that `quant` fits `network` and the HE layer (weights below
    /// 2^[`he::params::WEIGHT_BITS`] in magnitude, l ≤ 37), plans every
    /// layer, and checks that the plans hide the weights to 2^−40 over the
    /// default lifetime budget ([`he::DEFAULT_LIFETIME_INFERENCES`]; see
    /// [`Self::with_lifetime_inferences`]).
    ///
    /// # Errors
    /// [`Error::BadInput`] naming the layer or parameter that does not fit.
    pub fn new(
        network: Network,
        quant: QuantModel,
        normalization: Option<NormalizationMsg>,
    ) -> Result<Self> {
        let ring = quant.ring;
        if Network::from_description(&network.describe()).ok().as_ref() != Some(&network) {
            return Err(Error::BadInput(
                "network does not round-trip through its description".into(),
            ));
        }
        if quant.layers.len() != network.linears().count() {
            return Err(Error::BadInput(format!(
                "{} quantised layers for {} linear layers",
                quant.layers.len(),
                network.linears().count()
            )));
        }
        let bound = 1i64 << he::params::WEIGHT_BITS;
        let mut signed = Vec::new();
        for (l, q) in network.linears().zip(&quant.layers) {
            let (w, b) = match l.kind {
                LinearKind::Conv(g) => (g.weight_len(), g.cout),
                LinearKind::Fc(g) => (g.out * g.in_features(), g.out),
            };
            if q.weight.len() != w || q.bias.len() != b {
                return Err(Error::BadInput(format!(
                    "layer {}: weights do not match its shape",
                    l.name
                )));
            }
            let s = q.signed_weights(ring);
            if let Some(v) = s.iter().find(|v| v.abs() >= bound) {
                return Err(Error::BadInput(format!(
                    "layer {}: quantised weight {v} exceeds the HE weight bound 2^{}",
                    l.name,
                    he::params::WEIGHT_BITS
                )));
            }
            signed.push(s);
        }
        if let Some(n) = &normalization {
            let c = network.spec.channels;
            let ok =
                |v: &Vec<f64>| (v.len() == c || v.len() == 1) && v.iter().all(|x| x.is_finite());
            if !ok(&n.mean) || !ok(&n.std) || n.std.iter().any(|&s| s <= 0.0) {
                return Err(Error::BadInput(
                    "normalisation does not fit the input channels".into(),
                ));
            }
        }
        let plan = Arc::new(SessionPlan::new(network, ring)?);
        Self {
            inner: Arc::new(SecretModel {
                plan,
                quant,
                signed,
            }),
            normalization,
            relu_modes: default_relu_modes(),
            lifetime_inferences: he::DEFAULT_LIFETIME_INFERENCES,
        }
        .with_lifetime_inferences(he::DEFAULT_LIFETIME_INFERENCES)
    }

    /// Sets the lifetime budget: how many inferences these weights may serve
    /// over all sessions and clients (flooding bounds compose over all of
    /// them, [`he::hiding`]).
    ///
    /// # Errors
    /// [`Error::BadInput`] if the plans hide the weights to less than
    /// 2^−[`he::STATISTICAL_SECURITY_BITS`] over `inferences`.
    pub fn with_lifetime_inferences(mut self, inferences: u64) -> Result<Self> {
        self.inner.plan.hiding.check_lifetime(inferences)?;
        self.lifetime_inferences = inferences;
        Ok(self)
    }

    /// The lifetime budget ([`Self::with_lifetime_inferences`]).
    pub fn lifetime_inferences(&self) -> u64 {
        self.lifetime_inferences
    }

    /// How well one inference hides the weights; with
    /// [`Self::lifetime_inferences`] it gives the lifetime figure.
    pub fn weight_hiding(&self) -> he::WeightHiding {
        self.inner.plan.hiding
    }

    /// From a resolved model file and its quantised weights.
    pub fn from_model(model: &Model, quant: QuantModel) -> Result<Self> {
        let norm = model.normalization.as_ref().map(|n| NormalizationMsg {
            mean: n.mean.clone(),
            std: n.std.clone(),
        });
        Self::new(model.network.clone(), quant, norm)
    }

    /// Allows these activation protocols (the client picks one); garbled
    /// circuits only by default.
    ///
    /// # Errors
    /// [`Error::BadInput`] for an empty list, or OT mode under ring
    /// parameters it does not support.
    pub fn with_relu_modes(mut self, modes: &[ReluMode]) -> Result<Self> {
        if modes.is_empty() {
            return Err(Error::BadInput("no ReLU mode allowed".into()));
        }
        if modes.contains(&ReluMode::Ot) && self.inner.plan.ot.is_none() {
            return Err(Error::BadInput(
                "OT ReLU mode does not support these ring parameters".into(),
            ));
        }
        let mut m = modes.to_vec();
        m.dedup();
        self.relu_modes = m;
        Ok(self)
    }

    /// The activation protocols allowed.
    pub fn relu_modes(&self) -> &[ReluMode] {
        &self.relu_modes
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.inner.plan.network
    }

    /// Bytes of server memory one preprocessed inference holds until its
    /// online phase in `mode`, from the plan: the mask s of every linear
    /// layer's output (8 B per value) and per activation position, in GC
    /// mode its pad (8 B; its input labels are derived from one AES key per
    /// garbled sub-layer), in OT mode its OT-derived pads ([`crate::relu_ot::ServerMaterial::planned_storage_bytes`]).
    /// This is what [`ServerLimits::pending_bytes`] reserves per offline phase.
    ///
    /// # Errors
    /// [`Error::Incompatible`] for OT mode under a ring it does not support.
    pub fn pending_bytes_per_inference(&self, mode: ReluMode) -> Result<u64> {
        crate::plan::server_storage_bytes(&self.inner.plan, mode)
    }
}

/// What the server grants one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most preprocessed inferences held for the session at once (offline
    /// done, online not yet); an offline request beyond it is
    /// [`Error::PeerMisbehaved`]. Each costs the server
    /// [`ServerModel::pending_bytes_per_inference`] of memory.
    pub max_pending: u32,
    /// A byte budget for the preprocessed material of every session that
    /// shares it (clone one budget into each session's limits): an offline
    /// request whose material does not fit is refused with [`Error::Busy`].
    /// `None`: only `max_pending` bounds it.
    pub pending_bytes: Option<PendingBudget>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_pending: DEFAULT_MAX_PENDING,
            pending_bytes: None,
        }
    }
}

/// What the client accepts in a handshake.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Refuse a network whose preprocessed material (one inference, in the
    /// mode asked for) does not fit this storage budget, or whose
    /// estimated peak memory does not fit this memory budget
    /// ([`crate::footprint`]). Defaults derived from the machine.
    pub budget: ClientBudget,
    /// Keep preprocessed material in this directory instead of memory
    /// ([`crate::store`]): the client then holds one layer's material at a
    /// time.
    pub store: Option<MaterialDir>,
    /// If set, refuse any other network (pinning the model).
    pub expect: Option<Description>,
    /// The activation protocol to ask for; the session is refused if the
    /// server does not allow it.
    pub relu: ReluMode,
}

impl Default for ClientConfig {
    /// Material in memory; budgets from this machine: the free disk space of
    /// the temporary directory and the physical memory.
    fn default() -> Self {
        Self {
            budget: ClientBudget::from_machine(None),
            store: None,
            expect: None,
            relu: ReluMode::Gc,
        }
    }
}
