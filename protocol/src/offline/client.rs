//! The client's offline phase: its input and activation-output masks, HE
//! uploads for the linear layers, its shares through residual adds, then the
//! activations of its ReLU mode ([`super::gc`], [`super::ot`]).

use std::sync::Arc;

use pi_models::fixed::residual_add_ring;
use pi_models::network::Step;
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroizing;

use super::gc::ClientGc;
use super::ot;
use super::{ClientActMaterial, ClientActivation, ClientPreprocessed, MaterialStore};
use crate::crypto::WipingRng;
use crate::exec::off_executor;
use crate::framing::{TAG_OFFLINE, recv_bulk, send_bulk, send_request};
use crate::freshness::DigestTap;
use crate::he::{HeClient, ServerReply, UniformShare};
use crate::mode::ReluMode;
use crate::ot::SessionOts;
use crate::plan::SessionPlan;
use crate::report::Recorder;
use crate::shares::Shares;
use crate::transport::Channel;
use crate::{Error, Result};

/// What the client's offline phase needs of its session.
pub(crate) struct ClientParty<'a> {
    pub plan: &'a Arc<SessionPlan>,
    pub he: &'a Arc<HeClient>,
    pub rng: &'a mut ChaCha20Rng,
    pub mode: ReluMode,
    /// The session's bulk OT.
    pub ots: &'a mut SessionOts,
    /// Where the activation material goes (memory when `None`).
    pub store: Option<&'a crate::store::MaterialDir>,
    /// Digests of the material, recorded only in tests.
    pub tap: &'a DigestTap,
}

/// The client's activation protocol for one offline phase.
enum Relu {
    Gc(ClientGc),
    Ot,
}

/// Requests and preprocesses inference `id`.
pub(crate) async fn run<C: Channel>(
    ch: &mut C,
    party: ClientParty<'_>,
    id: u64,
) -> Result<ClientPreprocessed> {
    let ClientParty {
        plan,
        he,
        rng,
        mode,
        ots,
        store,
        tap,
    } = party;
    let ring = plan.ring;
    let net = &plan.network;
    let mut rec = Recorder::new("offline", ch.meter());
    let mut layers = plan.template.clone();

    send_request(ch, TAG_OFFLINE, id).await?;
    ch.set_label("offline/setup");
    ch.flush().await?;
    super::client_ots(ch, ots, plan, mode, rng).await?;
    let mut relu = match mode {
        ReluMode::Ot => Relu::Ot,
        ReluMode::Gc => Relu::Gc(ClientGc::new(id)?),
    };

    let mut shares = Shares::new(plan);
    // Every linear layer reads the network input or an activation output, and
    // the client's shares of those are fresh uniform masks: drawn as
    // `UniformShare`s so the HE layer's noise analysis holds by construction.
    let he_params = he.params();
    let mut uniform: Vec<Option<Arc<UniformShare>>> = vec![None; net.tensors.len()];
    let input_share = UniformShare::random(he_params, net.tensors[net.input].shape.numel(), rng);
    let input_mask = Zeroizing::new(input_share.as_slice().to_vec());
    tap.u64s("client/input mask", &input_mask);
    shares.set(net.input, input_mask.to_vec());
    uniform[net.input] = Some(Arc::new(input_share));
    let mut acts = MaterialStore::new(store, plan, mode)?;
    let (mut storage, mut table_bytes) = (0u64, 0u64);
    let mut remaining_acts = plan.splits.len();
    for (i, step) in net.steps.iter().enumerate() {
        rec.step();
        ch.set_label(&rec.label(step.name()));
        let reads: Vec<usize> = match step {
            Step::Linear(lin) => {
                let idx = lin.index;
                let hp = &plan.he_plans[idx];
                let share = uniform[lin.input]
                    .clone()
                    .ok_or(Error::Internal("a uniform share is missing"))?;
                let (he2, plan2, mut rng2) = (he.clone(), plan.clone(), WipingRng::fork(rng));
                let upload = off_executor(move || {
                    let hp = &plan2.he_plans[idx];
                    he2.encrypt(hp, &share, &mut rng2).map(|u| u.encode(hp))
                })
                .await?;
                tap.bytes("client/he upload", &upload);
                send_bulk(ch, &upload).await?;
                ch.flush().await?;
                let reply = recv_bulk(ch, ServerReply::encoded_len(hp)).await?;
                let (he2, plan2) = (he.clone(), plan.clone());
                let out = off_executor(move || {
                    let hp = &plan2.he_plans[idx];
                    he2.decrypt(hp, &ServerReply::decode(&reply, hp)?)
                })
                .await?;
                tap.u64s("client/he share", &out);
                shares.set(lin.output, out);
                vec![lin.input]
            }
            Step::Add(a) => {
                let sum =
                    residual_add_ring(shares.get(a.lhs)?, shares.get(a.rhs)?, a.rhs_upscale, ring);
                shares.set(a.output, sum);
                vec![a.lhs, a.rhs]
            }
            Step::Activation(a) => {
                let k = plan.splits.len() - remaining_acts;
                remaining_acts -= 1;
                let out_share = UniformShare::random(he_params, a.shape.numel(), rng);
                let out_mask = Zeroizing::new(out_share.as_slice().to_vec());
                tap.u64s("client/activation mask r", &out_mask);
                uniform[a.output] = Some(Arc::new(out_share));
                let b = shares.get(a.input)?;
                let material = match &mut relu {
                    Relu::Ot => {
                        let mat = ot::client_activation(ch, ots, plan, a, b, rng, tap).await?;
                        storage += mat.storage_bytes();
                        ClientActMaterial::Ot(mat)
                    }
                    Relu::Gc(g) => {
                        let (mat, bytes, tables) = g.activation(ch, ots, plan, k, b, tap).await?;
                        storage += bytes;
                        table_bytes += tables;
                        ClientActMaterial::Gc(mat)
                    }
                };
                shares.set(a.output, out_mask.to_vec());
                storage += 8 * out_mask.len() as u64;
                acts.push(ClientActivation { out_mask, material }).await?;
                vec![a.input]
            }
        };
        shares.release(plan, i, &reads);
        layers[i].offline = rec.finish_step(ch.meter(), step.name());
    }
    ots.release_spare();
    let logits_share = Zeroizing::new(shares.take(net.output)?);
    acts.seal()?;
    storage += 8 * (input_mask.len() + logits_share.len()) as u64;
    let phase = rec.finish(ch.meter());
    let gc_nonce = match relu {
        Relu::Gc(g) => Some(g.nonce),
        Relu::Ot => None,
    };
    Ok(ClientPreprocessed {
        id,
        gc_nonce,
        input_mask,
        acts,
        logits_share,
        layers,
        phase,
        storage,
        table_bytes,
    })
}
