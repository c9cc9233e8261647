//! The handshake, once per connection (see the [module docs](super)): the
//! server announces the [`Architecture`]; the client checks it against what
//! it supports and either refuses with a reason or accepts with its RLWE
//! public key and the ReLU mode it asks for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use pi_models::network::{Description, Network};
use pi_models::{Model, RingParams};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use super::model::default_relu_modes;
use super::{
    ClientConfig, ClientSession, NormalizationMsg, ServerLimits, ServerModel, ServerSession,
};
use crate::footprint::ClientFootprint;
use crate::freshness::DigestTap;
use crate::gc::ActivationParams;
use crate::he::{HeClient, HeParams, HeServer, PublicKeyMsg};
use crate::mode::ReluMode;
use crate::plan::SessionPlan;
use crate::transport::Channel;
use crate::{Error, Misbehavior, Result};

/// Version of the wire protocol; both parties must run the same.
/// 2: garbled tables with three-halves AND gates ([`crate::gc::Scheme`]).
/// 3: silent OT for all bulk OT, set up once per session
/// ([`crate::ot::bulk`]); GC mode under one Δ per session, no garbler nonce
/// on the wire.
/// 4: silent OT bootstrapped by SoftSpoken instead of IKNP
/// ([`crate::ot::iknp::SoftMsg`]).
pub const PROTOCOL_VERSION: u32 = 4;
/// Largest architecture message accepted (pixel masks of large networks).
pub const MAX_HELLO_BYTES: usize = 32 << 20;

/// Accept, asking for [`ReluMode::Gc`].
const TAG_ACCEPT: u8 = 1;
/// Accept, asking for [`ReluMode::Ot`].
const TAG_ACCEPT_OT: u8 = 3;
/// Refuse, with a reason.
pub(crate) const TAG_REFUSE: u8 = 2;
/// Longest refusal reason sent or shown.
const MAX_REASON: usize = 1024;

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

impl ServerModel {
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
            normalization: self.normalization.clone(),
            relu_modes: self.relu_modes.clone(),
            max_pending: limits.max_pending,
        }
    }
}

impl ServerSession {
    /// Runs the handshake with a CSPRNG seeded from the operating system.
    pub async fn handshake<C: Channel>(ch: &mut C, model: &ServerModel) -> Result<Self> {
        Self::establish(
            ch,
            model,
            &ServerLimits::default(),
            ChaCha20Rng::from_os_rng(),
        )
        .await
    }

    /// Runs the handshake granting the client `limits`, with a CSPRNG
    /// seeded from the operating system.
    ///
    /// # Errors
    /// [`Error::BadInput`] if `limits.max_pending` is 0.
    pub async fn handshake_limited<C: Channel>(
        ch: &mut C,
        model: &ServerModel,
        limits: &ServerLimits,
    ) -> Result<Self> {
        Self::establish(ch, model, limits, ChaCha20Rng::from_os_rng()).await
    }

    /// Tests: the handshake drawing every secret of the session from `rng`
    /// (a seed replays a failure). Outside this crate's tests a session is
    /// always seeded from the operating system.
    #[cfg(test)]
    pub(crate) async fn handshake_with_rng<C: Channel>(
        ch: &mut C,
        model: &ServerModel,
        rng: ChaCha20Rng,
    ) -> Result<Self> {
        Self::establish(ch, model, &ServerLimits::default(), rng).await
    }

    /// Tests: [`Self::handshake_limited`] drawing every secret from `rng`.
    #[cfg(test)]
    pub(crate) async fn handshake_with<C: Channel>(
        ch: &mut C,
        model: &ServerModel,
        limits: &ServerLimits,
        rng: ChaCha20Rng,
    ) -> Result<Self> {
        Self::establish(ch, model, limits, rng).await
    }

    /// The handshake granting `limits`, every secret of the session drawn
    /// from `rng`.
    async fn establish<C: Channel>(
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
                    budget: limits.pending_bytes.clone(),
                    pending: BTreeMap::new(),
                    ots: Default::default(),
                    tap: DigestTap::default(),
                })
            }
            Some((&TAG_REFUSE, reason)) => Err(Error::Incompatible(format!(
                "the client refused: {}",
                String::from_utf8_lossy(&reason[..reason.len().min(MAX_REASON)])
            ))),
            _ => Err(Error::malformed("malformed handshake reply")),
        }
    }
}

impl ClientSession {
    /// Runs the handshake with a CSPRNG seeded from the operating system.
    pub async fn handshake<C: Channel>(ch: &mut C, config: &ClientConfig) -> Result<Self> {
        Self::establish(ch, config, ChaCha20Rng::from_os_rng()).await
    }

    /// Tests: the handshake drawing every secret of the session from `rng`
    /// (a seed replays a failure). Outside this crate's tests a session is
    /// always seeded from the operating system.
    #[cfg(test)]
    pub(crate) async fn handshake_with_rng<C: Channel>(
        ch: &mut C,
        config: &ClientConfig,
        rng: ChaCha20Rng,
    ) -> Result<Self> {
        Self::establish(ch, config, rng).await
    }

    /// The handshake, every secret of the session drawn from `rng`.
    async fn establish<C: Channel>(
        ch: &mut C,
        config: &ClientConfig,
        mut rng: ChaCha20Rng,
    ) -> Result<Self> {
        ch.set_label("session/handshake");
        let hello = ch.recv(MAX_HELLO_BYTES).await?;
        let checked = check_architecture(&hello, config);
        let (arch, plan, footprint) = match checked {
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
            storage_per_inference: footprint.storage,
            footprint,
            store: config.store.clone(),
            budget: config.budget,
            consumed: AtomicU64::new(0),
            ots: Default::default(),
            tap: DigestTap::default(),
        })
    }
}

/// Decodes and checks the server's architecture against what this client supports.
/// Also returns the client's storage per preprocessed inference in the
/// mode it asks for.
fn check_architecture(
    bytes: &[u8],
    config: &ClientConfig,
) -> Result<(Architecture, SessionPlan, ClientFootprint)> {
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
    // Before the plan (per-position tables) is built for a network the peer
    // announced: the activation count alone must fit the budgets.
    let stats = network.stats();
    let floor = crate::footprint::storage_lower_bound(stats.relus + stats.identity);
    if floor > config.budget.max_storage || floor > config.budget.max_memory {
        let (resource, allows) = if floor > config.budget.max_storage {
            (
                crate::footprint::Resource::Storage,
                config.budget.max_storage,
            )
        } else {
            (crate::footprint::Resource::Memory, config.budget.max_memory)
        };
        return Err(Error::OverBudget(Box::new(crate::footprint::OverBudget {
            resource,
            network: arch.network.spec.clone(),
            mode: config.relu,
            needs: floor,
            allows,
        })));
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
    let footprint = crate::footprint::client_footprint(&plan, config.relu)?;
    footprint.check(
        &config.budget,
        config.store.is_some(),
        &arch.network.spec,
        config.relu,
    )?;
    Ok((arch, plan, footprint))
}
