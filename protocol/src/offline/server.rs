//! The server's offline phase: HE replies for the linear layers, then the
//! activations of its ReLU mode ([`super::gc`], [`super::ot`]).

use std::sync::Arc;

use pi_models::network::Step;
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroizing;

use super::gc::ServerGc;
use super::ot;
use super::{ServerActivation, ServerPreprocessed};
use crate::Result;
use crate::crypto::WipingRng;
use crate::exec::off_executor;
use crate::framing::{recv_bulk, send_bulk};
use crate::freshness::DigestTap;
use crate::he::{ClientUpload, HeServer};
use crate::mode::ReluMode;
use crate::ot::SessionOts;
use crate::plan::SecretModel;
use crate::report::Recorder;
use crate::transport::Channel;

/// What the server's offline phase needs of its session.
pub(crate) struct ServerParty<'a> {
    pub model: &'a Arc<SecretModel>,
    pub he: &'a Arc<HeServer>,
    pub rng: &'a mut ChaCha20Rng,
    pub mode: ReluMode,
    /// The session's bulk OT.
    pub ots: &'a mut SessionOts,
    /// Digests of the material, recorded only in tests.
    pub tap: &'a DigestTap,
}

/// The server's activation protocol for one offline phase.
enum Relu {
    Gc(Box<ServerGc>),
    Ot,
}

/// Preprocesses inference `id` (its request already read and checked).
pub(crate) async fn run<C: Channel>(
    ch: &mut C,
    party: ServerParty<'_>,
    id: u64,
    mut rec: Recorder,
) -> Result<ServerPreprocessed> {
    rec.restart_clock();
    let ServerParty {
        model,
        he,
        rng,
        mode,
        ots,
        tap,
    } = party;
    let plan = model.plan.clone();
    let mut layers = plan.template.clone();

    ch.set_label("offline/setup");
    super::server_ots(ch, ots, &plan, mode, rng).await?;
    let mut relu = match mode {
        ReluMode::Ot => Relu::Ot,
        ReluMode::Gc => Relu::Gc(Box::new(ServerGc::new(ots, id, rng, tap)?)),
    };

    let mut masks = vec![Zeroizing::new(Vec::new()); plan.he_plans.len()];
    let mut acts: Vec<ServerActivation> = Vec::with_capacity(plan.splits.len());
    let mut storage = 0u64;
    for (i, step) in plan.network.steps.iter().enumerate() {
        rec.step();
        ch.set_label(&rec.label(step.name()));
        match step {
            Step::Linear(lin) => {
                let idx = lin.index;
                let hp = &plan.he_plans[idx];
                let upload = recv_bulk(ch, ClientUpload::encoded_len(hp)).await?;
                let (he, model2, mut rng2) = (he.clone(), model.clone(), WipingRng::fork(rng));
                let (reply, mask) = off_executor(move || {
                    let hp = &model2.plan.he_plans[idx];
                    let up = ClientUpload::decode(&upload, hp)?;
                    // The HE server draws the mask s itself (uniform, fresh per layer).
                    let (reply, mask) = he.evaluate(hp, &model2.signed[idx], &up, &mut rng2)?;
                    Ok((reply.encode(hp), mask.into_vec()))
                })
                .await?;
                tap.bytes("server/he reply", &reply);
                tap.u64s("server/he mask s", &mask);
                send_bulk(ch, &reply).await?;
                ch.flush().await?;
                storage += 8 * mask.len() as u64;
                masks[idx] = Zeroizing::new(mask);
            }
            Step::Add(_) => {}
            Step::Activation(a) => {
                let act = match &mut relu {
                    Relu::Ot => {
                        let mat = ot::server_activation(ch, ots, &plan, a, rng, tap).await?;
                        storage += mat.storage_bytes();
                        ServerActivation::Ot(mat)
                    }
                    Relu::Gc(g) => {
                        let k = acts.len();
                        let (mat, bytes) = g
                            .activation(ch, ots, &plan, k, a.shape.numel(), rng)
                            .await?;
                        storage += bytes;
                        ServerActivation::Gc(Box::new(mat))
                    }
                };
                ch.flush().await?;
                acts.push(act);
            }
        }
        layers[i].offline = rec.finish_step(ch.meter(), step.name());
    }
    ch.flush().await?;
    ots.release_spare();
    let phase = rec.finish(ch.meter());
    Ok(ServerPreprocessed {
        id,
        masks,
        acts,
        layers,
        phase,
        storage,
        reservation: None,
    })
}
