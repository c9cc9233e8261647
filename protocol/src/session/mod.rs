//! Sessions: the handshake that fixes the public architecture and the
//! parameters, and the per-inference requests.
//!
//! # Handshake (once per connection)
//! 1. Server → client: [`Architecture`] as JSON: protocol version, the
//!    network description (spec and ReLU masks, never weights), ring l and f,
//!    the HE parameter digest, and the input normalisation.
//! 2. Client: checks the version, the ring, that the digest is the one it
//!    computes for those parameters, that one inference's material and peak
//!    memory fit its budgets ([`crate::footprint`]) and (optionally) that
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
//! Preprocessed material is a value that the online phase consumes
//! (docs/ARCHITECTURE.md §4), tagged with its inference number, which the client repeats
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

use pi_models::{Model, RingParams};
use rand_chacha::ChaCha20Rng;

use crate::framing::{Request, recv_request, send_close};
use crate::freshness::DigestTap;
use crate::he::{HeClient, HeServer};
use crate::offline::{ClientPreprocessed, ServerPreprocessed};
use crate::ot::SessionOts;
use crate::plan::SessionPlan;
use crate::report::{ClientReport, Recorder, ServerReport};
use crate::transport::Channel;
use crate::{Error, Misbehavior, Result};

mod handshake;
pub(crate) mod memory;
mod model;

pub use crate::mode::ReluMode;
pub use crate::plan::layer_shape;
#[cfg(test)]
pub(crate) use handshake::TAG_REFUSE;
pub use handshake::{Architecture, MAX_HELLO_BYTES, PROTOCOL_VERSION};
pub use memory::PendingBudget;
pub use model::{ClientConfig, DEFAULT_MAX_PENDING, NormalizationMsg, ServerLimits, ServerModel};

/// The server's side of an established session.
pub struct ServerSession {
    model: ServerModel,
    he: Arc<HeServer>,
    rng: ChaCha20Rng,
    next_id: u64,
    relu_mode: ReluMode,
    max_pending: usize,
    /// The server-wide byte budget each offline phase reserves its material in.
    budget: Option<PendingBudget>,
    /// Preprocessed inferences waiting for their online phase, by number.
    pending: BTreeMap<u64, ServerPreprocessed>,
    /// The session's bulk OT (set up by the first offline phase).
    ots: SessionOts,
    /// Digests of offline material, recorded only in tests.
    tap: DigestTap,
}

/// The client's side of an established session.
pub struct ClientSession {
    plan: Arc<SessionPlan>,
    arch: Architecture,
    model: Model,
    he: Arc<HeClient>,
    rng: ChaCha20Rng,
    next_id: u64,
    relu_mode: ReluMode,
    /// [`crate::plan::client_storage_bytes`] in the session's mode.
    storage_per_inference: u64,
    /// Storage and estimated peak memory of one inference (checked against
    /// the client's budgets in the handshake).
    footprint: crate::footprint::ClientFootprint,
    /// Where preprocessed material waits (memory when `None`).
    store: Option<crate::store::MaterialDir>,
    /// The budgets the handshake checked the footprint against.
    budget: crate::footprint::ClientBudget,
    /// Online phases started (each consumes one preprocessed inference).
    consumed: AtomicU64,
    /// The session's bulk OT (set up by the first offline phase).
    ots: SessionOts,
    /// Digests of offline material, recorded only in tests.
    tap: DigestTap,
}

impl ServerSession {
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
    pub async fn serve_one<C: Channel>(&mut self, ch: &mut C) -> Result<Option<ServerReport>> {
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
                    let rec = Recorder::new("offline", ch.meter());
                    let pre = self.offline_after_request(ch, id, rec).await?;
                    self.pending.insert(pre.id, pre);
                }
                Request::Online(id) => {
                    let pre = self
                        .pending
                        .remove(&id)
                        .ok_or(Misbehavior::NotPending(id))?;
                    let rec = Recorder::new("online", ch.meter());
                    return crate::online::server::run(
                        ch,
                        &self.model.inner,
                        self.relu_mode,
                        pre,
                        rec,
                    )
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

    /// Tests: records the digest of every piece of offline material from
    /// now on ([`crate::freshness`]).
    #[cfg(test)]
    pub(crate) fn record_digests(
        &mut self,
    ) -> std::sync::Arc<std::sync::Mutex<Vec<crate::freshness::Noted>>> {
        let (tap, sink) = DigestTap::recording();
        self.tap = tap;
        sink
    }

    /// Waits for the client's offline request and preprocesses that inference
    /// ([`crate::offline`]); the caller keeps the material for
    /// [`Self::online`] (for a session that holds it itself, see
    /// [`Self::serve_one`]).
    ///
    /// # Errors
    /// [`Error::Closed`] if the client closed the session instead of asking
    /// for an inference or disconnected; [`Error::PeerMisbehaved`] for an
    /// online request or a malformed message.
    pub async fn preprocess<C: Channel>(&mut self, ch: &mut C) -> Result<ServerPreprocessed> {
        let rec = Recorder::new("offline", ch.meter());
        match recv_request(ch).await? {
            Request::Offline(id) => self.offline_after_request(ch, id, rec).await,
            Request::Online(id) => Err(Misbehavior::UnexpectedRequest {
                got: format!("an online request for inference {id}"),
                expected: "an offline request",
            }
            .into()),
            Request::Close => Err(Error::Closed),
        }
    }

    /// Waits for the client's online request for `pre` and runs its online
    /// phase ([`crate::online`]), consuming `pre`.
    ///
    /// # Errors
    /// [`Error::PeerMisbehaved`] if the client's messages are malformed or
    /// name another inference, [`Error::Closed`] if it disconnects.
    pub async fn online<C: Channel>(
        &self,
        ch: &mut C,
        pre: ServerPreprocessed,
    ) -> Result<ServerReport> {
        let rec = Recorder::new("online", ch.meter());
        match recv_request(ch).await? {
            Request::Online(id) if id == pre.id => {}
            Request::Online(id) => {
                return Err(Misbehavior::WrongInference {
                    got: id,
                    expected: pre.id,
                }
                .into());
            }
            Request::Offline(id) => {
                return Err(Misbehavior::UnexpectedRequest {
                    got: format!("an offline request for inference {id}"),
                    expected: "an online request",
                }
                .into());
            }
            Request::Close => return Err(Error::Closed),
        }
        crate::online::server::run(ch, &self.model.inner, self.relu_mode, pre, rec).await
    }

    /// The offline phase of inference `id`, its request read.
    async fn offline_after_request<C: Channel>(
        &mut self,
        ch: &mut C,
        id: u64,
        rec: Recorder,
    ) -> Result<ServerPreprocessed> {
        let id = self.take_id(id)?;
        let reservation = match &self.budget {
            Some(budget) => Some(budget.reserve(crate::plan::server_storage_bytes(
                &self.model.inner.plan,
                self.relu_mode,
            )?)?),
            None => None,
        };
        let party = crate::offline::server::ServerParty {
            model: &self.model.inner,
            he: &self.he,
            rng: &mut self.rng,
            mode: self.relu_mode,
            ots: &mut self.ots,
            tap: &self.tap,
        };
        let mut pre = crate::offline::server::run(ch, party, id, rec).await?;
        pre.reservation = reservation;
        Ok(pre)
    }

    /// The correlation Δ of the session's bulk OT (server → client), once
    /// the first offline phase has set it up.
    #[cfg(test)]
    pub(crate) fn ot_delta(&self) -> Option<crate::crypto::Block> {
        self.ots.delta()
    }

    /// Checks the requested inference number and counts it.
    fn take_id(&mut self, id: u64) -> Result<u64> {
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

impl ClientSession {
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

    /// Runs one offline phase ahead of time ([`crate::offline`]):
    /// the material waits, on both sides, for [`Self::online`].
    ///
    /// # Errors
    /// [`Error::BadInput`] if the server already holds its limit of pending
    /// inferences for this session ([`Self::max_pending`]).
    pub async fn preprocess<C: Channel>(&mut self, ch: &mut C) -> Result<ClientPreprocessed> {
        let id = self.take_id()?;
        let party = crate::offline::client::ClientParty {
            plan: &self.plan,
            he: &self.he,
            rng: &mut self.rng,
            mode: self.relu_mode,
            ots: &mut self.ots,
            store: self.store.as_ref(),
            tap: &self.tap,
        };
        crate::offline::client::run(ch, party, id).await
    }

    /// Runs the online phase on `input`, consuming preprocessed material
    /// from [`Self::preprocess`] on this session ([`crate::online`]).
    ///
    /// # Errors
    /// [`Error::BadInput`] for an input of the wrong shape or unreduced
    /// values; [`Error::PeerMisbehaved`] for malformed server messages;
    /// [`Error::Closed`] if the server disconnects.
    pub async fn online<C: Channel>(
        &self,
        ch: &mut C,
        pre: ClientPreprocessed,
        input: &[u64],
    ) -> Result<ClientReport> {
        self.check_input(input)?;
        self.note_consumed();
        crate::online::client::run(ch, &self.plan, self.relu_mode, pre, input).await
    }

    /// Tests: records the digest of every piece of offline material from
    /// now on ([`crate::freshness`]).
    #[cfg(test)]
    pub(crate) fn record_digests(
        &mut self,
    ) -> std::sync::Arc<std::sync::Mutex<Vec<crate::freshness::Noted>>> {
        let (tap, sink) = DigestTap::recording();
        self.tap = tap;
        sink
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

    /// Bytes the client stores per preprocessed inference in the session's
    /// ReLU mode ([`ClientPreprocessed::storage_bytes`]), from the plan.
    pub fn storage_per_inference(&self) -> u64 {
        self.storage_per_inference
    }

    /// Storage and estimated peak memory of one preprocessed inference in
    /// the session's mode, from the plan ([`crate::footprint`]).
    pub fn footprint(&self) -> crate::footprint::ClientFootprint {
        self.footprint
    }

    /// Whether preprocessed material waits on disk ([`crate::store`]).
    pub fn material_on_disk(&self) -> bool {
        self.store.is_some()
    }

    /// Bytes of preprocessed material this session may hold at once (a
    /// pool's byte budget, [`Self::storage_per_inference`] per entry): the
    /// storage budget with material on disk; with material in memory, the
    /// least of the storage budget and the memory budget less the working
    /// set of an inference.
    pub fn material_budget(&self) -> u64 {
        let b = &self.budget;
        if self.store.is_some() {
            b.max_storage
        } else {
            b.max_storage
                .min(b.max_memory.saturating_sub(self.footprint.memory_on_disk))
        }
    }

    /// The client's estimated peak memory for one inference, with the
    /// material where this session keeps it.
    pub fn memory_estimate(&self) -> u64 {
        self.footprint.memory(self.store.is_some())
    }

    /// One whole inference: offline, then online on `input` (quantised at
    /// scale f, (C, H, W) order).
    pub async fn infer<C: Channel>(&mut self, ch: &mut C, input: &[u64]) -> Result<ClientReport> {
        self.check_input(input)?;
        let pre = self.preprocess(ch).await?;
        self.online(ch, pre, input).await
    }

    /// Ends the session politely.
    pub async fn close<C: Channel>(self, ch: &mut C) -> Result<()> {
        send_close(ch).await
    }

    fn check_input(&self, input: &[u64]) -> Result<()> {
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
    fn take_id(&mut self) -> Result<u64> {
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
    fn note_consumed(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Handshake and one inference, server side (for a connection that serves one request).
pub async fn serve_one<C: Channel>(ch: &mut C, model: &ServerModel) -> Result<ServerReport> {
    let mut s = ServerSession::handshake(ch, model).await?;
    s.serve_one(ch).await?.ok_or(Error::Closed)
}

/// Handshake, one inference on a quantised input, and close, client side.
pub async fn infer_one<C: Channel>(
    ch: &mut C,
    config: &ClientConfig,
    input: &[u64],
) -> Result<ClientReport> {
    let mut s = ClientSession::handshake(ch, config).await?;
    let report = s.infer(ch, input).await?;
    // Best effort: a server that serves one request may already have hung up.
    let _ = s.close(ch).await;
    Ok(report)
}
