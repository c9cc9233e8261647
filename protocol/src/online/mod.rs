//! The online phase of one inference: consumes the offline material.
//!
//! (DESIGN.md section 3; Delphi, Mishra et al. 2020, section 4.) The client
//! sends its input minus its offline mask r_0, which is the server's share.
//! The server then walks the network on its shares alone:
//! - linear layer: W·x_s + b + s (s its offline mask), since the client's
//!   share W·r − s is already fixed;
//! - residual add: local;
//! - activation: it sends the labels of its share (ReLU and truncation
//!   sub-layers); the client evaluates the garbled circuits, learns
//!   act(z) + p per position and returns act(z) + p − r' (r' its offline
//!   mask for the activation output); the server subtracts p, so its share
//!   is act(z) − r' and the client's stays r'.
//!
//! In OT mode ([`crate::session::ReluMode::Ot`]) an activation layer is
//! instead the exchange of [`crate::relu_ot`] (leaf tables, one round trip
//! per AND-tree level, the final conversion); it ends with the same sharing:
//! the server holds act(z) − r', the client r'.
//!
//! Finally the server sends its share of the logits (scale 2f) and the
//! client adds its own. Traffic is labelled `online/input`,
//! `online/<step name>` and `online/output`.
//!
//! Preprocessed material is consumed by value, so it cannot be used twice:
//! ```compile_fail
//! # use pi_protocol::{offline::ClientPreprocessed, session::ClientSession, transport::Channel};
//! # async fn f<C: Channel>(ch: &mut C, s: &ClientSession, pre: ClientPreprocessed, x: &[u64]) {
//! let first = pi_protocol::online::client(ch, s, pre, x).await;
//! let again = pi_protocol::online::client(ch, s, pre, x).await; // use of moved value
//! # }
//! ```
//! ```compile_fail
//! # use pi_protocol::{offline::ServerPreprocessed, session::ServerSession, transport::Channel};
//! # async fn f<C: Channel>(ch: &mut C, s: &ServerSession, pre: ServerPreprocessed) {
//! let first = pi_protocol::online::server(ch, s, pre).await;
//! let again = pi_protocol::online::server(ch, s, pre).await; // use of moved value
//! # }
//! ```
//! Used once, it compiles:
//! ```
//! # use pi_protocol::{offline::ClientPreprocessed, session::ClientSession, transport::Channel};
//! # async fn f<C: Channel>(ch: &mut C, s: &ClientSession, pre: ClientPreprocessed, x: &[u64]) {
//! let first = pi_protocol::online::client(ch, s, pre, x).await;
//! # }
//! ```

use pi_models::fixed::{add_bias_ring, residual_add_ring};
use pi_models::network::Step;
use zeroize::Zeroize;

use crate::gc::{Evaluator, ServerLabels};
use crate::offline::{ClientPreprocessed, ServerPreprocessed, Sub};
use crate::relu_ot::{ClientRun, ClientStep, ServerRun, ServerStep};
use crate::report::{ClientReport, Recorder, ServerReport};
use crate::ring;
use crate::session::{
    ClientSession, ReluMode, Request, ServerSession, SessionPlan, TAG_ONLINE, off_executor,
    recv_bulk, recv_request, send_bulk, send_request,
};
use crate::transport::Channel;
use crate::{Error, Misbehavior, Result};

/// Online round trips of one inference (see [`crate::report::ClientReport::online_round_trips`]).
fn round_trips(plan: &SessionPlan, mode: ReluMode) -> u64 {
    let per_layer = match (mode, &plan.ot) {
        (ReluMode::Ot, Some(s)) => s.round_trips() as u64,
        _ => 1,
    };
    1 + per_layer * plan.splits.len() as u64
}

fn no_ot() -> Error {
    Error::Incompatible("OT ReLU mode does not support these ring parameters".into())
}

fn packed(n: usize, ring: pi_models::RingParams) -> Result<usize> {
    ring::packed_len(n, ring).ok_or_else(|| Error::BadInput(format!("{n} values overflow")))
}

/// Server side: consumes `pre` (from [`crate::offline::server`] on this session).
///
/// # Errors
/// [`Error::PeerMisbehaved`] if the client's messages are malformed or name
/// another inference, [`Error::Closed`] if it disconnects.
pub async fn server<C: Channel>(
    ch: &mut C,
    session: &ServerSession,
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
    server_after_request(ch, session, pre, rec).await
}

/// Server side after the client's online request for `pre` arrived.
pub(crate) async fn server_after_request<C: Channel>(
    ch: &mut C,
    session: &ServerSession,
    mut pre: ServerPreprocessed,
    mut rec: Recorder,
) -> Result<ServerReport> {
    let inner = session.model.inner.clone();
    let plan = inner.plan.clone();
    let net = &plan.network;
    let ring = plan.ring;
    let mut layers = std::mem::take(&mut pre.layers);
    ch.set_label("online/input");
    // Time from the client's request on, not the wait for it.
    rec.restart_clock();
    let n0 = net.tensors[net.input].shape.numel();
    let bytes = recv_bulk(ch, packed(n0, ring)?).await?;
    let mut shares: Vec<Option<Vec<u64>>> = vec![None; net.tensors.len()];
    shares[net.input] = Some(ring::unpack(&bytes, n0, ring, "masked input")?);
    let missing = || Error::Internal("a tensor share is missing");
    let mut k = 0;
    for (i, step) in net.steps.iter().enumerate() {
        rec.step();
        ch.set_label(&rec.label(step.name()));
        let reads = match step {
            Step::Linear(lin) => {
                let input = shares[lin.input].clone().ok_or_else(missing)?;
                let mask = std::mem::take(&mut pre.masks[lin.index]);
                let (inner2, kind, idx) = (inner.clone(), lin.kind, lin.index);
                let out = off_executor(move || {
                    let q = &inner2.quant.layers[idx];
                    let mut out = ring::linear_par(&kind, &q.weight, &input, ring);
                    add_bias_ring(&mut out, &q.bias, ring);
                    ring::add_assign(&mut out, &mask, ring);
                    let mut mask = mask;
                    mask.zeroize();
                    Ok(out)
                })
                .await?;
                shares[lin.output] = Some(out);
                vec![lin.input]
            }
            Step::Add(a) => {
                let lhs = shares[a.lhs].as_ref().ok_or_else(missing)?;
                let rhs = shares[a.rhs].as_ref().ok_or_else(missing)?;
                shares[a.output] = Some(residual_add_ring(lhs, rhs, a.rhs_upscale, ring));
                vec![a.lhs, a.rhs]
            }
            Step::Activation(a) => {
                let z = shares[a.input].as_ref().ok_or_else(missing)?;
                let act = &mut pre.acts[k];
                if let Some(mat) = act.ot.take() {
                    let (sched, z) = (plan.ot.clone().ok_or_else(no_ot)?, z.clone());
                    let (mut run, mut msg) =
                        off_executor(move || ServerRun::start(sched, mat, &z)).await?;
                    let out = loop {
                        send_bulk(ch, &msg).await?;
                        ch.flush().await?;
                        let incoming = recv_bulk(ch, run.incoming_len()).await?;
                        let (r, step) =
                            off_executor(move || run.step(&incoming).map(|s| (run, s))).await?;
                        run = r;
                        match step {
                            ServerStep::Reply(m) => msg = m,
                            ServerStep::Done(out) => break out,
                        }
                    };
                    shares[a.output] = Some(out);
                    k += 1;
                    layers[i].online = rec.finish_step(ch.meter(), step.name());
                    if plan.last_use[a.input] == i
                        && let Some(mut s) = shares[a.input].take()
                    {
                        s.zeroize();
                    }
                    continue;
                }
                for which in [Sub::Relu, Sub::Trunc] {
                    let labels = match which {
                        Sub::Relu => act.relu.take(),
                        Sub::Trunc => act.trunc.take(),
                    };
                    if let Some(labels) = labels {
                        let sub: Vec<u64> =
                            which.positions(&plan, k).iter().map(|&p| z[p]).collect();
                        let encoded = labels.encode_share(&sub)?;
                        send_bulk(ch, &encoded.to_bytes()).await?;
                    }
                }
                ch.flush().await?;
                let n = a.shape.numel();
                let bytes = recv_bulk(ch, packed(n, ring)?).await?;
                let y = ring::unpack(&bytes, n, ring, "masked activation output")?;
                shares[a.output] = Some(ring::sub(&y, &act.pads, ring));
                k += 1;
                vec![a.input]
            }
        };
        for t in reads {
            if plan.last_use[t] == i
                && let Some(mut s) = shares[t].take()
            {
                s.zeroize();
            }
        }
        layers[i].online = rec.finish_step(ch.meter(), step.name());
    }
    ch.set_label("online/output");
    let mut logits = shares[net.output].take().ok_or_else(missing)?;
    send_bulk(ch, &ring::pack(&logits, ring)).await?;
    ch.flush().await?;
    logits.zeroize();
    for s in shares.iter_mut().flatten() {
        s.zeroize();
    }
    Ok(ServerReport {
        inference: pre.id,
        offline: pre.phase.clone(),
        online: rec.finish(ch.meter()),
        server_storage_bytes: pre.storage,
        activations: plan.counts,
        relu_mode: session.relu_mode,
        online_round_trips: round_trips(&plan, session.relu_mode),
        layers,
    })
}

/// Client side: consumes `pre` (from [`crate::offline::client`] on this
/// session) and runs the network on `input` (quantised at scale f, (C, H, W)).
///
/// # Errors
/// [`Error::BadInput`] for an input of the wrong shape or unreduced values;
/// [`Error::PeerMisbehaved`] for malformed server messages; [`Error::Closed`]
/// if the server disconnects.
pub async fn client<C: Channel>(
    ch: &mut C,
    session: &ClientSession,
    mut pre: ClientPreprocessed,
    input: &[u64],
) -> Result<ClientReport> {
    session.check_input(input)?;
    session.note_consumed();
    let plan = session.plan.clone();
    let net = &plan.network;
    let ring = plan.ring;
    let l = ring.bits() as usize;
    let mut rec = Recorder::new("online", ch.meter());
    let mut layers = std::mem::take(&mut pre.layers);

    send_request(ch, TAG_ONLINE, pre.id).await?;
    ch.set_label("online/input");
    send_bulk(
        ch,
        &ring::pack(&ring::sub(input, &pre.input_mask, ring), ring),
    )
    .await?;
    ch.flush().await?;

    let mut evaluator = pre.gc_nonce.map(Evaluator::new);
    let mut k = 0;
    for (i, step) in net.steps.iter().enumerate() {
        rec.step();
        ch.set_label(&rec.label(step.name()));
        if let Step::Activation(a) = step {
            let act = &mut pre.acts[k];
            if let Some(mat) = act.ot.take() {
                let sched = plan.ot.clone().ok_or_else(no_ot)?;
                let mut run = ClientRun::new(sched, mat, act.out_mask.clone())?;
                loop {
                    let incoming = recv_bulk(ch, run.incoming_len()).await?;
                    let (r, step) =
                        off_executor(move || run.step(&incoming).map(|s| (run, s))).await?;
                    run = r;
                    match step {
                        ClientStep::Reply(m) => {
                            send_bulk(ch, &m).await?;
                            ch.flush().await?;
                        }
                        ClientStep::Last(m) => {
                            send_bulk(ch, &m).await?;
                            ch.flush().await?;
                            break;
                        }
                    }
                }
                k += 1;
                layers[i].online = rec.finish_step(ch.meter(), step.name());
                continue;
            }
            let mut out = vec![0u64; a.shape.numel()];
            for which in [Sub::Relu, Sub::Trunc] {
                let material = match which {
                    Sub::Relu => act.relu.take(),
                    Sub::Trunc => act.trunc.take(),
                };
                let Some((tables, labels)) = material else {
                    continue;
                };
                let n = labels.len();
                let bytes = recv_bulk(ch, 16 * n * l).await?;
                let ev = evaluator
                    .take()
                    .ok_or(Error::Internal("garbled material without a garbler nonce"))?;
                let (plan2, mut ev) = (plan.clone(), ev);
                let (ev, vals) = off_executor(move || {
                    let server = ServerLabels::from_bytes(plan2.act, n, &bytes)?;
                    let vals = ev.evaluate_layer(which.circuit(&plan2), tables, labels, server)?;
                    Ok((ev, vals))
                })
                .await?;
                evaluator = Some(ev);
                for (&p, v) in which.positions(&plan, k).iter().zip(vals) {
                    out[p] = v;
                }
            }
            let y = ring::sub(&out, &act.out_mask, ring);
            out.zeroize();
            send_bulk(ch, &ring::pack(&y, ring)).await?;
            ch.flush().await?;
            k += 1;
        }
        layers[i].online = rec.finish_step(ch.meter(), step.name());
    }
    ch.set_label("online/output");
    let n = pre.logits_share.len();
    let bytes = recv_bulk(ch, packed(n, ring)?).await?;
    let mut logits = ring::unpack(&bytes, n, ring, "logits share")?;
    ring::add_assign(&mut logits, &pre.logits_share, ring);
    let online = rec.finish(ch.meter());
    let logits_fixed: Vec<i64> = logits.iter().map(|&v| ring.to_signed(v)).collect();
    let scale = (2.0 * ring.frac() as f64).exp2();
    let class = (0..logits_fixed.len()).fold(0, |b, j| {
        if logits_fixed[j] > logits_fixed[b] {
            j
        } else {
            b
        }
    });
    Ok(ClientReport {
        inference: pre.id,
        class,
        logits: logits_fixed.iter().map(|&v| v as f64 / scale).collect(),
        logits_fixed,
        offline: pre.phase.clone(),
        online,
        client_storage_bytes: pre.storage,
        garbled_table_bytes: pre.table_bytes,
        activations: plan.counts,
        relu_mode: session.relu_mode,
        online_round_trips: round_trips(&plan, session.relu_mode),
        layers,
    })
}
