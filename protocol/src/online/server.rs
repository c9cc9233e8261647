//! The server's online phase: linear layers on its shares with its offline
//! masks, residual adds, and the activations of its ReLU mode.

use std::sync::Arc;

use pi_models::fixed::{add_bias_ring, residual_add_ring};
use pi_models::network::Step;
use zeroize::Zeroize;

use super::{packed, round_trips};
use crate::exec::off_executor;
use crate::framing::{recv_bulk, send_bulk};
use crate::mode::ReluMode;
use crate::offline::{ServerActivation, ServerPreprocessed};
use crate::plan::SecretModel;
use crate::report::{Recorder, ServerReport};
use crate::ring;
use crate::shares::Shares;
use crate::transport::Channel;
use crate::{Error, Result};

/// Runs the online phase of `pre` (the client's request for it already read).
pub(crate) async fn run<C: Channel>(
    ch: &mut C,
    model: &Arc<SecretModel>,
    mode: ReluMode,
    mut pre: ServerPreprocessed,
    mut rec: Recorder,
) -> Result<ServerReport> {
    let plan = model.plan.clone();
    let net = &plan.network;
    let ring = plan.ring;
    let mut layers = std::mem::take(&mut pre.layers);
    let mut acts = std::mem::take(&mut pre.acts).into_iter();
    ch.set_label("online/input");
    // Time from the client's request on, not the wait for it.
    rec.restart_clock();
    let n0 = net.tensors[net.input].shape.numel();
    let bytes = recv_bulk(ch, packed(n0, ring)?).await?;
    let mut shares = Shares::new(&plan);
    shares.set(net.input, ring::unpack(&bytes, n0, ring, "masked input")?);
    let mut k = 0;
    for (i, step) in net.steps.iter().enumerate() {
        rec.step();
        ch.set_label(&rec.label(step.name()));
        let reads = match step {
            Step::Linear(lin) => {
                let input = shares.get(lin.input)?.to_vec();
                let mask = std::mem::take(&mut pre.masks[lin.index]);
                let (model2, kind, idx) = (model.clone(), lin.kind, lin.index);
                let out = off_executor(move || {
                    let q = &model2.quant.layers[idx];
                    let mut out = ring::linear_par(&kind, &q.weight, &input, ring);
                    add_bias_ring(&mut out, &q.bias, ring);
                    ring::add_assign(&mut out, &mask, ring);
                    let mut input = input;
                    input.zeroize();
                    Ok(out)
                })
                .await?;
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
                let z = shares.get(a.input)?;
                let out = match acts.next() {
                    Some(ServerActivation::Ot(mat)) => super::ot::server(ch, &plan, mat, z).await?,
                    Some(ServerActivation::Gc(mat)) => {
                        super::gc::server(ch, &plan, k, *mat, z).await?
                    }
                    None => return Err(Error::Internal("activation material is missing")),
                };
                shares.set(a.output, out);
                k += 1;
                vec![a.input]
            }
        };
        shares.release(&plan, i, &reads);
        layers[i].online = rec.finish_step(ch.meter(), step.name());
    }
    ch.set_label("online/output");
    let mut logits = shares.take(net.output)?;
    send_bulk(ch, &ring::pack(&logits, ring)).await?;
    ch.flush().await?;
    logits.zeroize();
    Ok(ServerReport {
        inference: pre.id,
        offline: pre.phase.clone(),
        online: rec.finish(ch.meter()),
        server_storage_bytes: pre.storage,
        activations: plan.counts,
        relu_mode: mode,
        online_round_trips: round_trips(&plan, mode),
        layers,
    })
}
