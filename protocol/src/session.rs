//! Sessions: the handshake that fixes the public architecture and the
//! parameters, and the per-inference requests.
//!
//! # Handshake (once per connection)
//! 1. Server → client: [`Architecture`] as JSON: protocol version, the
//!    network description (spec and ReLU masks, never weights), ring l and f,
//!    the HE parameter digest, and the input normalisation.
//! 2. Client: checks the version, the ring, that the digest is the one it
//!    computes for those parameters, its size limits and (optionally) that
//!    the network is the one it expects; builds every HE layer plan. Then
//!    either refuses (a reason, and [`Error::Incompatible`] on both sides) or
//!    accepts with its RLWE public key (HE keys live as long as the session).
//!
//! # ReLU mode
//! The server announces the activation protocols it allows
//! ([`Architecture::relu_modes`], from [`ServerModel::with_relu_modes`];
//! garbled circuits only by default). The client asks for one
//! ([`ClientConfig::relu`]) in its accept message; if the server does not
//! allow it, the client refuses the session with a reason naming the modes
//! the server allows ([`Error::Incompatible`]). A client that asks for a
//! mode the server did not announce is [`Error::PeerMisbehaved`]. The mode
//! holds for the whole session and is shown in every report.
//!
//! # Inferences
//! Each inference is an offline phase ([`crate::offline`]) then an online
//! phase ([`crate::online`]). The client opens each offline phase with a
//! request carrying the inference number; the server checks it counts up.
//! Preprocessed material is a value that the online phase consumes (DESIGN.md
//! section 3.5), tagged with its inference number, which the client repeats
//! when it sends its masked input so both sides pair the same material.
//! The client ends a session with [`ClientSession::close`].
//!
//! # Precomputed inferences
//! The two phases need not alternate: the client may run several offline
//! phases ahead ([`ClientSession::preprocess`]) and later spend the material
//! in any order ([`ClientSession::online`]), so that requests find their
//! offline work done (a client-side pool; Garimella et al., "Characterizing
//! and Optimizing End-to-End Systems for Private Inference", ASPLOS 2023,
//! study what happens when such a pool runs dry). The server keeps its half
//! of each pending inference in a map keyed by inference number, bounded by
//! [`ServerLimits::max_pending`] (announced to the client in the
//! [`Architecture`]); an online request takes its entry out of the map by
//! value, so a second request for the same number finds nothing and is
//! [`Error::PeerMisbehaved`]. One connection carries everything, so an online
//! request sent while an offline phase runs waits for that phase to end.
//! Request frames (offline, online, close) are metered under
//! `session/request`, outside both phases.
//!
//! # Example
//! Both parties over the in-memory duplex (a binary uses a TCP+TLS channel
//! and runs each party in its own process):
//! ```
//! use pi_models::{NetSpec, Network, QuantModel, RingParams, weights};
//! use pi_protocol::session::{ClientConfig, ClientSession, ServerModel, ServerSession};
//! use pi_protocol::transport::memory_pair;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // Server: a network with (here random) weights, quantised.
//! let net = Network::new(&NetSpec::parse("resnet18(m=2,phi=1-1-1-1,input=8,classes=3)").unwrap());
//! let folded = weights::weights_from_bytes(&weights::init_weights(&net, 7).unwrap(), &net).unwrap();
//! let quant = QuantModel::quantize(&net, &folded, RingParams::default()).unwrap();
//! let model = ServerModel::new(net, quant.clone(), None)?;
//! let x = vec![1u64 << 12; 3 * 8 * 8]; // the client's input, quantised at scale f
//!
//! let (mut server_ch, mut client_ch) = memory_pair();
//! let (served, report) = tokio::join!(
//!     async {
//!         let mut session = ServerSession::handshake(&mut server_ch, &model).await?;
//!         while let Some(_report) = session.serve_one(&mut server_ch).await? {}
//!         Ok::<_, pi_protocol::Error>(())
//!     },
//!     async {
//!         let mut session = ClientSession::handshake(&mut client_ch, &ClientConfig::default()).await?;
//!         let report = session.infer(&mut client_ch, &x).await?;
//!         session.close(&mut client_ch).await?;
//!         Ok::<_, pi_protocol::Error>(report)
//!     }
//! );
//! served?;
//! let report = report?;
//! let oracle = pi_models::fixed::forward_fixed(model.network(), &quant, &x);
//! let ring = RingParams::default();
//! assert_eq!(report.logits_fixed, oracle.iter().map(|&v| ring.to_signed(v)).collect::<Vec<_>>());
//! # Ok::<(), pi_protocol::Error>(())
//! # }).unwrap();
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pi_models::network::{Description, LinearKind, Network, Step};
use pi_models::{Model, QuantModel, RingParams};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::gc::{ActivationParams, Circuit};
use crate::he::{
    self, ConvShape, FcShape, HeClient, HeParams, HeServer, LayerPlan, LayerShape, PublicKeyMsg,
};
use crate::report::{ActivationCounts, LayerReport, PhaseReport};
use crate::transport::Channel;
use crate::{Error, Misbehavior, Result};

/// Version of the wire protocol; both parties must run the same.
/// 2: garbled tables with three-halves AND gates ([`crate::gc::Scheme`]).
pub const PROTOCOL_VERSION: u32 = 2;
/// Default of [`ServerLimits::max_pending`].
pub const DEFAULT_MAX_PENDING: u32 = 4;
/// Largest architecture message accepted (pixel masks of large networks).
pub const MAX_HELLO_BYTES: usize = 32 << 20;
/// Payload bytes per frame for bulk data (labels, packed shares, tables).
pub(crate) const BULK_FRAME: usize = 4 << 20;

const TAG_ACCEPT: u8 = 1;
/// Accept, asking for [`ReluMode::Ot`] (`TAG_ACCEPT` asks for [`ReluMode::Gc`]).
const TAG_ACCEPT_OT: u8 = 3;
pub(crate) const TAG_REFUSE: u8 = 2;
pub(crate) const TAG_OFFLINE: u8 = 0x10;
pub(crate) const TAG_CLOSE: u8 = 0x11;
pub(crate) const TAG_ONLINE: u8 = 0x12;
const MAX_REASON: usize = 1024;

/// How activations (ReLU with the truncation before it) are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReluMode {
    /// Garbled circuits ([`crate::gc`]): one online round trip per layer,
    /// about 3.3 KB of client storage per ReLU.
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

fn default_relu_modes() -> Vec<ReluMode> {
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

/// The public description of the server's model and parameters, sent in the
/// handshake. Contains no weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Spec and ReLU masks.
    pub network: Description,
    /// Ring bits l.
    pub ring_bits: u32,
    /// Fractional bits f.
    pub frac_bits: u32,
    /// Hex of [`HeParams::digest`].
    pub he_digest: String,
    /// Normalisation the client applies to its input before quantising.
    pub normalization: Option<NormalizationMsg>,
    /// Activation protocols the server allows (absent: garbled circuits only).
    #[serde(default = "default_relu_modes")]
    pub relu_modes: Vec<ReluMode>,
    /// Most preprocessed inferences the server holds for this session at
    /// once ([`ServerLimits::max_pending`]); at least 1.
    pub max_pending: u32,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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

/// The server's model: public network, quantised weights (secret), normalisation.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct ServerModel {
    pub(crate) inner: Arc<ModelInner>,
    pub(crate) relu_modes: Vec<ReluMode>,
    /// Inferences this weight set may serve over its lifetime (all
    /// sessions, all clients): the budget the weights' hiding is checked for.
    pub(crate) lifetime_inferences: u64,
}

pub(crate) struct ModelInner {
    pub plan: Arc<SessionPlan>,
    pub quant: QuantModel,
    /// Signed weights per linear layer, for the HE step.
    pub signed: Vec<Vec<i64>>,
    pub normalization: Option<NormalizationMsg>,
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
            inner: Arc::new(ModelInner {
                plan,
                quant,
                signed,
                normalization,
            }),
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

    /// The public architecture sent in the handshake (with the default
    /// [`ServerLimits`]).
    pub fn architecture(&self) -> Architecture {
        self.architecture_with(&ServerLimits::default())
    }

    fn architecture_with(&self, limits: &ServerLimits) -> Architecture {
        let plan = &self.inner.plan;
        Architecture {
            version: PROTOCOL_VERSION,
            network: plan.network.describe(),
            ring_bits: plan.ring.bits(),
            frac_bits: plan.ring.frac(),
            he_digest: hex(&plan.he.digest()),
            normalization: self.inner.normalization.clone(),
            relu_modes: self.relu_modes.clone(),
            max_pending: limits.max_pending,
        }
    }
}

/// What the server grants one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most preprocessed inferences held for the session at once (offline
    /// done, online not yet). Each costs server memory of roughly 600 B per
    /// activation (masks, pads and the server's input labels); an offline
    /// request beyond it is [`Error::PeerMisbehaved`].
    pub max_pending: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

/// What the client accepts in a handshake.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Refuse networks with more activation positions (each costs a garbled
    /// circuit of a few KB of client storage).
    pub max_activations: u64,
    /// Refuse networks with more multiply-accumulates (ring MACs, folded FC).
    pub max_macs: u64,
    /// If set, refuse any other network (pinning the model).
    pub expect: Option<Description>,
    /// The activation protocol to ask for; the session is refused if the
    /// server does not allow it.
    pub relu: ReluMode,
}

impl Default for ClientConfig {
    fn default() -> Self {
        // ResNet18 at m = 64 has 557 056 activations (about 1.8 GB of client
        // storage at ~3.3 KB each) and 0.56 G ring MACs; these allow about 4x that.
        Self {
            max_activations: 1 << 21,
            max_macs: 1 << 32,
            expect: None,
            relu: ReluMode::Gc,
        }
    }
}

/// The server's side of an established session.
pub struct ServerSession {
    pub(crate) model: ServerModel,
    pub(crate) he: Arc<HeServer>,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) next_id: u64,
    pub(crate) relu_mode: ReluMode,
    pub(crate) max_pending: usize,
    /// Preprocessed inferences waiting for their online phase, by number.
    pub(crate) pending: BTreeMap<u64, crate::offline::ServerPreprocessed>,
}

/// The client's side of an established session.
pub struct ClientSession {
    pub(crate) plan: Arc<SessionPlan>,
    pub(crate) arch: Architecture,
    pub(crate) model: Model,
    pub(crate) he: Arc<HeClient>,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) next_id: u64,
    pub(crate) relu_mode: ReluMode,
    /// Online phases started (each consumes one preprocessed inference).
    pub(crate) consumed: AtomicU64,
}

impl ServerSession {
    /// Runs the handshake with a CSPRNG seeded from the operating system.
    pub async fn handshake<C: Channel>(ch: &mut C, model: &ServerModel) -> Result<Self> {
        Self::handshake_with_rng(ch, model, ChaCha20Rng::from_os_rng()).await
    }

    /// Runs the handshake drawing every secret of the session from `rng`
    /// (seeded in tests).
    pub async fn handshake_with_rng<C: Channel>(
        ch: &mut C,
        model: &ServerModel,
        rng: ChaCha20Rng,
    ) -> Result<Self> {
        Self::handshake_with(ch, model, &ServerLimits::default(), rng).await
    }

    /// Runs the handshake granting the client `limits`, with a CSPRNG
    /// seeded from the operating system.
    pub async fn handshake_limited<C: Channel>(
        ch: &mut C,
        model: &ServerModel,
        limits: &ServerLimits,
    ) -> Result<Self> {
        Self::handshake_with(ch, model, limits, ChaCha20Rng::from_os_rng()).await
    }

    /// Runs the handshake granting the client `limits`, drawing every secret
    /// of the session from `rng`.
    ///
    /// # Errors
    /// [`Error::BadInput`] if `limits.max_pending` is 0.
    pub async fn handshake_with<C: Channel>(
        ch: &mut C,
        model: &ServerModel,
        limits: &ServerLimits,
        rng: ChaCha20Rng,
    ) -> Result<Self> {
        if limits.max_pending == 0 {
            return Err(Error::BadInput(
                "the server must hold at least one preprocessed inference".into(),
            ));
        }
        ch.set_label("session/handshake");
        let hello = serde_json::to_vec(&model.architecture_with(limits))
            .map_err(|e| Error::BadInput(format!("cannot encode the architecture: {e}")))?;
        ch.send(&hello).await?;
        ch.flush().await?;
        let reply = ch
            .recv(1 + PublicKeyMsg::encoded_len().max(MAX_REASON))
            .await?;
        let he_params = model.inner.plan.he;
        match reply.split_first() {
            Some((&tag @ (TAG_ACCEPT | TAG_ACCEPT_OT), pk)) => {
                let relu_mode = if tag == TAG_ACCEPT_OT {
                    ReluMode::Ot
                } else {
                    ReluMode::Gc
                };
                if !model.relu_modes.contains(&relu_mode) {
                    return Err(Misbehavior::ModeNotOffered(relu_mode.as_str()).into());
                }
                let pk = PublicKeyMsg::decode(pk, &he_params)?;
                let he = Arc::new(HeServer::new(he_params, &pk)?);
                Ok(Self {
                    model: model.clone(),
                    he,
                    rng,
                    next_id: 0,
                    relu_mode,
                    max_pending: limits.max_pending as usize,
                    pending: BTreeMap::new(),
                })
            }
            Some((&TAG_REFUSE, reason)) => Err(Error::Incompatible(format!(
                "the client refused: {}",
                String::from_utf8_lossy(&reason[..reason.len().min(MAX_REASON)])
            ))),
            _ => Err(Error::malformed("malformed handshake reply")),
        }
    }

    /// The model served.
    pub fn model(&self) -> &ServerModel {
        &self.model
    }

    /// The activation protocol the client chose.
    pub fn relu_mode(&self) -> ReluMode {
        self.relu_mode
    }

    /// Serves the client's requests until one inference is complete:
    /// `Ok(None)` when the client closed the session (politely or by
    /// disconnecting between requests), otherwise the report of the
    /// inference whose online phase just ran. Offline requests before it are
    /// served and their material kept (at most
    /// [`ServerLimits::max_pending`]) until the client asks for it online.
    pub async fn serve_one<C: Channel>(
        &mut self,
        ch: &mut C,
    ) -> Result<Option<crate::report::ServerReport>> {
        loop {
            let request = match recv_request(ch).await {
                Ok(r) => r,
                Err(Error::Closed) => return Ok(None),
                Err(e) => return Err(e),
            };
            match request {
                Request::Close => return Ok(None),
                Request::Offline(id) => {
                    if self.pending.len() >= self.max_pending {
                        return Err(Misbehavior::PendingLimit {
                            id,
                            pending: self.pending.len(),
                            limit: self.max_pending,
                        }
                        .into());
                    }
                    let rec = crate::report::Recorder::new("offline", ch.meter());
                    let pre = crate::offline::server_after_request(ch, self, id, rec).await?;
                    self.pending.insert(pre.id, pre);
                }
                Request::Online(id) => {
                    let pre = self
                        .pending
                        .remove(&id)
                        .ok_or(Misbehavior::NotPending(id))?;
                    let rec = crate::report::Recorder::new("online", ch.meter());
                    return crate::online::server_after_request(ch, self, pre, rec)
                        .await
                        .map(Some);
                }
            }
        }
    }

    /// Preprocessed inferences held for this session, waiting for their online phase.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Checks the requested inference number and counts it.
    pub(crate) fn take_id(&mut self, id: u64) -> Result<u64> {
        if id != self.next_id {
            return Err(Misbehavior::OutOfSequence {
                got: id,
                expected: self.next_id,
            }
            .into());
        }
        self.next_id += 1;
        Ok(id)
    }
}

/// A client's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Run the offline phase of inference `id`.
    Offline(u64),
    /// Run the online phase of (preprocessed) inference `id`.
    Online(u64),
    /// End the session.
    Close,
}

/// Label of request frames (outside both phases).
pub(crate) const REQUEST_LABEL: &str = "session/request";

/// Receives the client's next request.
pub(crate) async fn recv_request<C: Channel>(ch: &mut C) -> Result<Request> {
    ch.set_label(REQUEST_LABEL);
    let frame = ch.recv(9).await?;
    let id = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    match frame.split_first() {
        Some((&TAG_OFFLINE, b)) if b.len() == 8 => Ok(Request::Offline(id(b))),
        Some((&TAG_ONLINE, b)) if b.len() == 8 => Ok(Request::Online(id(b))),
        Some((&TAG_CLOSE, [])) => Ok(Request::Close),
        _ => Err(Error::malformed("malformed inference request")),
    }
}

/// Sends a request frame (tag and inference number).
pub(crate) async fn send_request<C: Channel>(ch: &mut C, tag: u8, id: u64) -> Result<()> {
    ch.set_label(REQUEST_LABEL);
    let mut req = vec![tag];
    req.extend_from_slice(&id.to_le_bytes());
    ch.send(&req).await
}

impl ClientSession {
    /// Runs the handshake with a CSPRNG seeded from the operating system.
    pub async fn handshake<C: Channel>(ch: &mut C, config: &ClientConfig) -> Result<Self> {
        Self::handshake_with_rng(ch, config, ChaCha20Rng::from_os_rng()).await
    }

    /// Runs the handshake drawing every secret of the session from `rng`.
    pub async fn handshake_with_rng<C: Channel>(
        ch: &mut C,
        config: &ClientConfig,
        mut rng: ChaCha20Rng,
    ) -> Result<Self> {
        ch.set_label("session/handshake");
        let hello = ch.recv(MAX_HELLO_BYTES).await?;
        let checked = check_architecture(&hello, config);
        let (arch, plan) = match checked {
            Ok(v) => v,
            Err(e) => {
                let reason = e.to_string();
                let mut msg = vec![TAG_REFUSE];
                msg.extend_from_slice(&reason.as_bytes()[..reason.len().min(MAX_REASON)]);
                // Best effort: the peer may already be gone.
                if ch.send(&msg).await.is_ok() {
                    let _ = ch.flush().await;
                }
                return Err(e);
            }
        };
        let he = HeClient::new(plan.he, &mut rng);
        let mut msg = vec![match config.relu {
            ReluMode::Gc => TAG_ACCEPT,
            ReluMode::Ot => TAG_ACCEPT_OT,
        }];
        msg.extend_from_slice(&he.public_key(&mut rng).encode(&plan.he));
        ch.send(&msg).await?;
        ch.flush().await?;
        let normalization = arch
            .normalization
            .as_ref()
            .map(|n| pi_models::model::Normalization {
                mean: n.mean.clone(),
                std: n.std.clone(),
            });
        let model = Model {
            network: plan.network.clone(),
            normalization,
            weights: None,
        };
        Ok(Self {
            plan: Arc::new(plan),
            arch,
            model,
            he: Arc::new(he),
            rng,
            next_id: 0,
            relu_mode: config.relu,
            consumed: AtomicU64::new(0),
        })
    }

    /// The activation protocol of this session.
    pub fn relu_mode(&self) -> ReluMode {
        self.relu_mode
    }

    /// The architecture the server announced.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The public model (network and normalisation, no weights): use
    /// [`Model::load_input`] or [`Model::prepare_input`] to read an input.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Ring parameters of the session.
    pub fn ring(&self) -> RingParams {
        self.plan.ring
    }

    /// Quantises a prepared (normalised) input at scale f.
    pub fn quantize_input(&self, x: &[f32]) -> Result<Vec<u64>> {
        pi_models::fixed::quantize_input(x, self.plan.ring)
            .map_err(|e| Error::BadInput(e.to_string()))
    }

    /// Runs one offline phase ahead of time ([`crate::offline::client`]):
    /// the material waits, on both sides, for [`Self::online`].
    ///
    /// # Errors
    /// [`Error::BadInput`] if the server already holds its limit of pending
    /// inferences for this session ([`Self::max_pending`]).
    pub async fn preprocess<C: Channel>(
        &mut self,
        ch: &mut C,
    ) -> Result<crate::offline::ClientPreprocessed> {
        crate::offline::client(ch, self).await
    }

    /// Runs the online phase on `input`, consuming preprocessed material
    /// from [`Self::preprocess`] on this session ([`crate::online::client`]).
    pub async fn online<C: Channel>(
        &self,
        ch: &mut C,
        pre: crate::offline::ClientPreprocessed,
        input: &[u64],
    ) -> Result<crate::report::ClientReport> {
        crate::online::client(ch, self, pre, input).await
    }

    /// Most preprocessed inferences the server holds for this session.
    pub fn max_pending(&self) -> usize {
        self.arch.max_pending as usize
    }

    /// Preprocessed inferences the server holds for this session: offline
    /// phases run minus online phases started (material dropped unused by
    /// the client stays pending on the server until the session ends).
    pub fn pending(&self) -> usize {
        (self.next_id - self.consumed.load(Ordering::Relaxed)) as usize
    }

    /// Bytes the client stores per preprocessed inference
    /// ([`crate::offline::ClientPreprocessed::storage_bytes`]), from the plan.
    pub fn storage_per_inference(&self) -> u64 {
        crate::offline::client_storage_bytes(&self.plan)
    }

    /// One whole inference: offline, then online on `input` (quantised at
    /// scale f, (C, H, W) order).
    pub async fn infer<C: Channel>(
        &mut self,
        ch: &mut C,
        input: &[u64],
    ) -> Result<crate::report::ClientReport> {
        self.check_input(input)?;
        let pre = crate::offline::client(ch, self).await?;
        crate::online::client(ch, self, pre, input).await
    }

    /// Ends the session politely.
    pub async fn close<C: Channel>(self, ch: &mut C) -> Result<()> {
        ch.set_label(REQUEST_LABEL);
        ch.send(&[TAG_CLOSE]).await?;
        ch.flush().await
    }

    pub(crate) fn check_input(&self, input: &[u64]) -> Result<()> {
        let net = &self.plan.network;
        let want = net.tensors[net.input].shape.numel();
        if input.len() != want {
            return Err(Error::BadInput(format!(
                "input of {} values, the network takes {want}",
                input.len()
            )));
        }
        if input.iter().any(|&v| v & !self.plan.ring.mask() != 0) {
            return Err(Error::BadInput(format!(
                "input value not reduced mod 2^{}",
                self.plan.ring.bits()
            )));
        }
        Ok(())
    }

    /// A fresh inference number, if the server can hold one more pending inference.
    pub(crate) fn take_id(&mut self) -> Result<u64> {
        if self.pending() >= self.max_pending() {
            return Err(Error::BadInput(format!(
                "the server holds at most {} preprocessed inferences for this session; \
                 run an online phase first",
                self.max_pending()
            )));
        }
        self.next_id += 1;
        Ok(self.next_id - 1)
    }

    /// Counts an online phase (its material is consumed whatever the outcome).
    pub(crate) fn note_consumed(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Decodes and checks the server's architecture against what this client supports.
fn check_architecture(bytes: &[u8], config: &ClientConfig) -> Result<(Architecture, SessionPlan)> {
    let arch: Architecture = serde_json::from_slice(bytes)
        .map_err(|e| Error::malformed(format!("malformed architecture message: {e}")))?;
    if arch.version != PROTOCOL_VERSION {
        return Err(Error::Incompatible(format!(
            "protocol version {} (this client runs {PROTOCOL_VERSION})",
            arch.version
        )));
    }
    let ring = RingParams::new(arch.ring_bits, arch.frac_bits)
        .map_err(|e| Error::Incompatible(format!("ring parameters: {e}")))?;
    let he = HeParams::new(arch.ring_bits)
        .map_err(|e| Error::Incompatible(format!("HE parameters: {e}")))?;
    ActivationParams::new(arch.ring_bits, arch.frac_bits)
        .map_err(|e| Error::Incompatible(format!("activation parameters: {e}")))?;
    if arch.he_digest != hex(&he.digest()) {
        return Err(Error::Incompatible(
            "HE parameter digest differs from this client's".into(),
        ));
    }
    if arch.max_pending == 0 {
        return Err(Misbehavior::Architecture(
            "the server grants no preprocessed inference".into(),
        )
        .into());
    }
    if let Some(expect) = &config.expect
        && *expect != arch.network
    {
        return Err(Error::Incompatible(format!(
            "network {} is not the expected {}",
            arch.network.spec, expect.spec
        )));
    }
    let network = Network::from_description(&arch.network)
        .map_err(|e| Misbehavior::Architecture(format!("network description: {e}")))?;
    let stats = network.stats();
    let acts = stats.relus + stats.identity;
    let macs: u64 = network
        .linears()
        .map(|l| match l.kind {
            LinearKind::Conv(g) => g.macs(),
            LinearKind::Fc(g) => g.folded_macs(),
        })
        .sum();
    if acts > config.max_activations || macs > config.max_macs {
        return Err(Error::Incompatible(format!(
            "network {} has {acts} activations and {macs} MACs, above this client's limits",
            arch.network.spec
        )));
    }
    if let Some(n) = &arch.normalization {
        let c = network.spec.channels;
        let ok = |v: &Vec<f64>| (v.len() == c || v.len() == 1) && v.iter().all(|x| x.is_finite());
        if !ok(&n.mean) || !ok(&n.std) || n.std.iter().any(|&s| s <= 0.0) {
            return Err(Misbehavior::Architecture(
                "normalisation does not fit the input channels".into(),
            )
            .into());
        }
    }
    let plan = SessionPlan::new(network, ring).map_err(|e| Error::Incompatible(e.to_string()))?;
    if !arch.relu_modes.contains(&config.relu) {
        let offered: Vec<&str> = arch.relu_modes.iter().map(|m| m.as_str()).collect();
        return Err(Error::Incompatible(format!(
            "this client asks for ReLU mode {}, the server allows only [{}]",
            config.relu,
            offered.join(", ")
        )));
    }
    if config.relu == ReluMode::Ot && plan.ot.is_none() {
        return Err(Error::Incompatible(
            "OT ReLU mode does not support these ring parameters".into(),
        ));
    }
    Ok((arch, plan))
}

/// Sends `bytes` as frames of at most [`BULK_FRAME`] bytes (at least one frame).
pub(crate) async fn send_bulk<C: Channel>(ch: &mut C, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return ch.send(&[]).await;
    }
    for piece in bytes.chunks(BULK_FRAME) {
        ch.send(piece).await?;
    }
    Ok(())
}

/// Receives exactly `total` bytes sent by [`send_bulk`]: every frame must
/// have exactly the size [`send_bulk`] gives it, so a short or long frame is
/// [`Error::PeerMisbehaved`] at once (never a wait for bytes that will not come).
pub(crate) async fn recv_bulk<C: Channel>(ch: &mut C, total: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; total];
    if total == 0 {
        ch.recv_into(&mut out).await?;
        return Ok(out);
    }
    for piece in out.chunks_mut(BULK_FRAME) {
        ch.recv_into(piece).await?;
    }
    Ok(out)
}

/// A fresh ChaCha20 stream from `rng`, movable to a worker thread.
pub(crate) fn fork_rng(rng: &mut ChaCha20Rng) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let child = ChaCha20Rng::from_seed(seed);
    seed.zeroize();
    child
}

/// Runs CPU-heavy work on tokio's blocking pool, off the async executor.
pub(crate) async fn off_executor<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(Error::Io(std::io::Error::other(format!(
                "worker cancelled: {e}"
            )))),
        },
    }
}

/// Handshake and one inference, server side (for a connection that serves one request).
pub async fn serve_one<C: Channel>(
    ch: &mut C,
    model: &ServerModel,
) -> Result<crate::report::ServerReport> {
    let mut s = ServerSession::handshake(ch, model).await?;
    s.serve_one(ch).await?.ok_or(Error::Closed)
}

/// Handshake, one inference on a quantised input, and close, client side.
pub async fn infer_one<C: Channel>(
    ch: &mut C,
    config: &ClientConfig,
    input: &[u64],
) -> Result<crate::report::ClientReport> {
    let mut s = ClientSession::handshake(ch, config).await?;
    let report = s.infer(ch, input).await?;
    // Best effort: a server that serves one request may already have hung up.
    let _ = s.close(ch).await;
    Ok(report)
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
