//! The offline phase of one inference: everything that does not depend on
//! the client's input (DESIGN.md section 3; Mishra et al., "Delphi",
//! USENIX Security 2020, section 4, with Cheetah-style HE and ring GCs).
//!
//! Walking the network in order:
//! - The client samples its share of the input and of every activation
//!   output (uniform over Z_2^l, fresh per inference).
//! - Linear layer: the client uploads its encrypted share of the layer's
//!   input, the server returns W·c − s for a fresh mask s ([`crate::he`]);
//!   the client's share of the output is that, the server keeps s.
//! - Residual add: the client adds its shares locally (an identity
//!   shortcut's share times 2^f).
//! - Activation: the client now knows its share b of the input. Its positions
//!   split into a ReLU sub-layer and a truncation-only sub-layer (masked-off
//!   ReLUs). For each non-empty sub-layer the client obtains the labels of
//!   the bits of b by correlated OT (IKNP, the garbler's Δ as the
//!   correlation, so the OT outputs are the input labels, nothing else
//!   is sent), and the server garbles the sub-layer with those zero labels
//!   and fresh pads p, streaming the tables chunk by chunk as they are made.
//!
//! In OT mode ([`crate::session::ReluMode::Ot`]) an activation instead
//! runs the offline part of [`crate::relu_ot`]: random OTs (IKNP, server
//! sender) whose leaf choices are the bits the client derives from b, random
//! OTs with uniform choices for the AND tree and the final conversion, and
//! per ReLU position one random OT in the other direction (a second IKNP
//! instance with the client as sender); both sides then hash the OT
//! outputs into compact pads.
//!
//! Nothing is reused across inferences: base OTs, Δ, masks, pads and labels
//! are fresh; only the HE keys belong to the session. The result is a value
//! ([`ServerPreprocessed`], [`ClientPreprocessed`]) that
//! [`crate::online`] consumes.
//!
//! Traffic is labelled `offline/setup` (request, base OTs) and
//! `offline/<step name>`.

use std::sync::Arc;

use pi_models::fixed::residual_add_ring;
use pi_models::network::Step;
use rand_core::RngCore;
use tokio::sync::mpsc;
use zeroize::Zeroize;

use crate::gc::{
    ClientLabels, Delta, GarbledTables, Garbler, GcNonce, ServerInputLabels, TablesAssembler,
};
use crate::he::{ClientUpload, ServerReply, UniformShare};
use crate::ot::driver as ot;
use crate::relu_ot::{ClientMaterial, ServerMaterial};
use crate::report::{LayerReport, PhaseReport, Recorder};
use crate::ring;
use crate::session::{
    ClientSession, ReluMode, Request, ServerSession, SessionPlan, TAG_OFFLINE, fork_rng,
    off_executor, recv_bulk, recv_request, send_bulk, send_request,
};
use crate::transport::Channel;
use crate::{Error, Misbehavior, Result};

/// Bytes of garbled tables per frame while streaming (every frame but a
/// sub-layer's last has exactly this size).
const TABLE_FRAME: usize = 1 << 20;
/// Table frames the garbling worker may run ahead of the channel.
const TABLE_FRAMES_QUEUED: usize = 4;

/// The server's material for one inference: masks s per linear layer, pads p
/// and its own input labels per activation. Consumed by
/// [`crate::online::server`]; masks and pads are zeroized on drop.
pub struct ServerPreprocessed {
    pub(crate) id: u64,
    pub(crate) masks: Vec<Vec<u64>>,
    pub(crate) acts: Vec<ServerActivation>,
    pub(crate) layers: Vec<LayerReport>,
    pub(crate) phase: PhaseReport,
    pub(crate) storage: u64,
}

pub(crate) struct ServerActivation {
    pub pads: Vec<u64>,
    pub relu: Option<ServerInputLabels>,
    pub trunc: Option<ServerInputLabels>,
    /// OT mode: the whole layer's material.
    pub ot: Option<crate::relu_ot::ServerMaterial>,
}

impl Drop for ServerPreprocessed {
    fn drop(&mut self) {
        self.masks.iter_mut().for_each(|m| m.zeroize());
        self.acts.iter_mut().for_each(|a| a.pads.zeroize());
    }
}

impl std::fmt::Debug for ServerPreprocessed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPreprocessed")
            .field("inference", &self.id)
            .finish_non_exhaustive()
    }
}

impl ServerPreprocessed {
    /// The inference number this material belongs to.
    pub fn inference(&self) -> u64 {
        self.id
    }
    /// The offline phase as the server saw it.
    pub fn offline_report(&self) -> &PhaseReport {
        &self.phase
    }
}

/// The client's material for one inference: garbled tables and its own
/// input labels per activation, its input mask and activation-output masks,
/// and its share of the logits. Consumed by [`crate::online::client`].
pub struct ClientPreprocessed {
    pub(crate) id: u64,
    /// The garbler's public nonce for this inference's tables (GC mode).
    pub(crate) gc_nonce: Option<GcNonce>,
    pub(crate) input_mask: Vec<u64>,
    pub(crate) acts: Vec<ClientActivation>,
    pub(crate) logits_share: Vec<u64>,
    pub(crate) layers: Vec<LayerReport>,
    pub(crate) phase: PhaseReport,
    pub(crate) storage: u64,
    pub(crate) table_bytes: u64,
}

pub(crate) struct ClientActivation {
    pub out_mask: Vec<u64>,
    pub relu: Option<(GarbledTables, ClientLabels)>,
    pub trunc: Option<(GarbledTables, ClientLabels)>,
    /// OT mode: the whole layer's material.
    pub ot: Option<crate::relu_ot::ClientMaterial>,
}

impl Drop for ClientPreprocessed {
    fn drop(&mut self) {
        self.input_mask.zeroize();
        self.logits_share.zeroize();
        self.acts.iter_mut().for_each(|a| a.out_mask.zeroize());
    }
}

impl std::fmt::Debug for ClientPreprocessed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPreprocessed")
            .field("inference", &self.id)
            .field("storage_bytes", &self.storage)
            .finish_non_exhaustive()
    }
}

impl ClientPreprocessed {
    /// The inference number this material belongs to.
    pub fn inference(&self) -> u64 {
        self.id
    }
    /// Bytes held until the online phase (tables, labels, masks, logits share).
    pub fn storage_bytes(&self) -> u64 {
        self.storage
    }
    /// The offline phase as the client saw it.
    pub fn offline_report(&self) -> &PhaseReport {
        &self.phase
    }
}

/// Server side of the offline phase: waits for the client's request, then
/// preprocesses one inference.
///
/// # Errors
/// [`Error::Closed`] if the client closed the session instead of asking for
/// an inference or disconnected; [`Error::PeerMisbehaved`] for a malformed
/// message.
pub async fn server<C: Channel>(
    ch: &mut C,
    session: &mut ServerSession,
) -> Result<ServerPreprocessed> {
    let rec = Recorder::new("offline", ch.meter());
    match recv_request(ch).await? {
        Request::Offline(id) => server_after_request(ch, session, id, rec).await,
        Request::Online(id) => Err(Misbehavior::UnexpectedRequest {
            got: format!("an online request for inference {id}"),
            expected: "an offline request",
        }
        .into()),
        Request::Close => Err(Error::Closed),
    }
}

pub(crate) async fn server_after_request<C: Channel>(
    ch: &mut C,
    session: &mut ServerSession,
    id: u64,
    mut rec: Recorder,
) -> Result<ServerPreprocessed> {
    rec.restart_clock();
    let id = session.take_id(id)?;
    let inner = session.model.inner.clone();
    let plan = inner.plan.clone();
    let ring = plan.ring;
    let l = ring.bits() as usize;
    let mut layers = plan.template.clone();

    ch.set_label("offline/setup");
    let ot_mode = session.relu_mode == ReluMode::Ot;
    let (mut sender, mut garbler, mut reverse) = if ot_mode {
        // Fresh base OTs per inference, in both directions (the reverse one
        // only if some position keeps its ReLU: it serves the multiplexer).
        let sender = ot::setup_sender(ch, &mut session.rng, None).await?;
        let reverse = if plan.counts.relus > 0 {
            Some(ot::setup_receiver(ch, &mut session.rng).await?)
        } else {
            None
        };
        (sender, None, reverse)
    } else {
        // Fresh Δ and base OTs per inference; Δ is the IKNP correlation and the
        // free-XOR offset of every garbled sub-layer of this inference.
        let delta = Delta::random(&mut session.rng);
        let sender = ot::setup_sender(ch, &mut session.rng, Some(delta.block())).await?;
        let g = Garbler::with_delta(delta, fork_rng(&mut session.rng));
        // The garbler's public random nonce separates its hash tweaks from those
        // of every other garbler under any Δ; the evaluator needs it online.
        ch.send(&g.nonce().to_bytes()).await?;
        (sender, Some(g), None)
    };

    let mut masks = vec![Vec::new(); plan.he_plans.len()];
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
                let (he, inner2, mut rng2) = (
                    session.he.clone(),
                    inner.clone(),
                    fork_rng(&mut session.rng),
                );
                let (reply, mask) = off_executor(move || {
                    let hp = &inner2.plan.he_plans[idx];
                    let up = ClientUpload::decode(&upload, hp)?;
                    // The HE server draws the mask s itself (uniform, fresh per layer).
                    let (reply, mask) = he.evaluate(hp, &inner2.signed[idx], &up, &mut rng2)?;
                    Ok((reply.encode(hp), mask.into_vec()))
                })
                .await?;
                send_bulk(ch, &reply).await?;
                ch.flush().await?;
                storage += 8 * mask.len() as u64;
                masks[idx] = mask;
            }
            Step::Add(_) => {}
            Step::Activation(a) if ot_mode => {
                let sched = plan.ot.clone().ok_or_else(no_ot)?;
                let relu: Vec<bool> = (0..a.shape.numel()).map(|p| a.keeps(p)).collect();
                let n_relu = relu.iter().filter(|&&r| r).count();
                let mut pairs =
                    ot::send_random(ch, &mut sender, relu.len() * sched.rots_per_position())
                        .await?;
                let mut rev_choice: Vec<bool> = (0..n_relu)
                    .map(|_| session.rng.next_u32() & 1 == 1)
                    .collect();
                let mut rev_got = match reverse.as_mut() {
                    Some(r) if n_relu > 0 => ot::receive_random(ch, r, &rev_choice).await?,
                    _ => Vec::new(),
                };
                let mut rng2 = fork_rng(&mut session.rng);
                let mat = off_executor(move || {
                    let m =
                        ServerMaterial::new(&sched, relu, &pairs, &rev_choice, &rev_got, &mut rng2);
                    pairs.zeroize();
                    rev_choice.zeroize();
                    rev_got.zeroize();
                    m
                })
                .await?;
                ch.flush().await?;
                storage += mat.storage_bytes();
                acts.push(ServerActivation {
                    pads: Vec::new(),
                    relu: None,
                    trunc: None,
                    ot: Some(mat),
                });
            }
            Step::Activation(a) => {
                let k = acts.len();
                let pads = ring::sample(&mut session.rng, a.shape.numel(), ring);
                let mut act = ServerActivation {
                    pads,
                    relu: None,
                    trunc: None,
                    ot: None,
                };
                for which in [Sub::Relu, Sub::Trunc] {
                    let idx = which.positions(&plan, k);
                    if idx.is_empty() {
                        continue;
                    }
                    let zero = ot::send_correlated(ch, &mut sender, idx.len() * l).await?;
                    let sub_pads: Vec<u64> = idx.iter().map(|&p| act.pads[p]).collect();
                    let g = garbler
                        .take()
                        .expect("the garbler returns after every sub-layer");
                    let (g, labels) = garble_streaming(
                        ch,
                        g,
                        plan.clone(),
                        which,
                        which.layer(k),
                        sub_pads,
                        zero,
                    )
                    .await?;
                    garbler = Some(g);
                    storage += 16 * (labels.len() * l) as u64;
                    match which {
                        Sub::Relu => act.relu = Some(labels),
                        Sub::Trunc => act.trunc = Some(labels),
                    }
                }
                ch.flush().await?;
                storage += 8 * act.pads.len() as u64;
                acts.push(act);
            }
        }
        layers[i].offline = rec.finish_step(ch.meter(), step.name());
    }
    ch.flush().await?;
    let phase = rec.finish(ch.meter());
    Ok(ServerPreprocessed {
        id,
        masks,
        acts,
        layers,
        phase,
        storage,
    })
}

fn no_ot() -> Error {
    Error::Incompatible("OT ReLU mode does not support these ring parameters".into())
}

/// The two garbled sub-layers of an activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sub {
    Relu,
    Trunc,
}

impl Sub {
    /// Positions of activation `k` in this sub-layer.
    pub(crate) fn positions(self, plan: &SessionPlan, k: usize) -> &[usize] {
        match self {
            Sub::Relu => &plan.splits[k].relu,
            Sub::Trunc => &plan.splits[k].trunc,
        }
    }
    /// The circuit.
    pub(crate) fn circuit(self, plan: &SessionPlan) -> &crate::gc::Circuit {
        match self {
            Sub::Relu => &plan.relu,
            Sub::Trunc => &plan.trunc,
        }
    }
    /// Garbling layer index (tweak domain): strictly increasing through the
    /// inference, as required under one Δ.
    pub(crate) fn layer(self, k: usize) -> u32 {
        (2 * k + usize::from(self == Sub::Trunc)) as u32
    }
}

/// Garbles one sub-layer on the blocking pool and sends its tables as they
/// are produced: at most [`TABLE_FRAMES_QUEUED`] frames wait in memory besides the one being
/// filled, so the server never holds a layer's (let alone the network's) tables.
async fn garble_streaming<C: Channel>(
    ch: &mut C,
    mut garbler: Garbler,
    plan: Arc<SessionPlan>,
    which: Sub,
    layer: u32,
    pads: Vec<u64>,
    zero: crate::ot::CorrelatedZeros,
) -> Result<(Garbler, ServerInputLabels)> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(TABLE_FRAMES_QUEUED);
    let worker = tokio::task::spawn_blocking(move || {
        let circuit = which.circuit(&plan);
        let mut buf = Vec::with_capacity(TABLE_FRAME + circuit.table_bytes() * crate::gc::CHUNK);
        let r = garbler.garble_layer_streaming_with_client_labels(
            circuit,
            layer,
            &pads,
            zero,
            |chunk| {
                buf.extend_from_slice(chunk);
                // Frames of exactly TABLE_FRAME bytes (the last one shorter), so
                // the client can demand exact sizes.
                while buf.len() >= TABLE_FRAME {
                    let rest = buf.split_off(TABLE_FRAME);
                    let full = std::mem::replace(&mut buf, rest);
                    // A send error means the driver gave up; finish quietly.
                    let _ = tx.blocking_send(full);
                }
            },
        );
        if !buf.is_empty() {
            let _ = tx.blocking_send(buf);
        }
        r.map(|inputs| (garbler, inputs.into_parts().1))
    });
    while let Some(frame) = rx.recv().await {
        ch.send(&frame).await?;
    }
    match worker.await {
        Ok(r) => r,
        Err(e) => match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            Err(e) => Err(Error::Io(std::io::Error::other(format!(
                "garbling worker cancelled: {e}"
            )))),
        },
    }
}

/// Client side of the offline phase: requests and preprocesses one inference.
///
/// # Errors
/// [`Error::PeerMisbehaved`] for a malformed message (an HE reply, garbled
/// tables of the wrong size, ...), [`Error::Closed`] if the server disconnects.
pub async fn client<C: Channel>(
    ch: &mut C,
    session: &mut ClientSession,
) -> Result<ClientPreprocessed> {
    let plan = session.plan.clone();
    let ring = plan.ring;
    let l = ring.bits() as usize;
    let net = &plan.network;
    let mut rec = Recorder::new("offline", ch.meter());
    let mut layers = plan.template.clone();
    let id = session.take_id()?;

    send_request(ch, TAG_OFFLINE, id).await?;
    ch.set_label("offline/setup");
    ch.flush().await?;
    let ot_mode = session.relu_mode == ReluMode::Ot;
    let mut receiver = ot::setup_receiver(ch, &mut session.rng).await?;
    let (gc_nonce, mut reverse) = if ot_mode {
        let reverse = if plan.counts.relus > 0 {
            Some(ot::setup_sender(ch, &mut session.rng, None).await?)
        } else {
            None
        };
        (None, reverse)
    } else {
        (
            Some(GcNonce::from_bytes(&ch.recv(GcNonce::BYTES).await?)?),
            None,
        )
    };

    let mut shares: Vec<Option<Vec<u64>>> = vec![None; net.tensors.len()];
    // Every linear layer reads the network input or an activation output, and
    // the client's shares of those are fresh uniform masks: drawn as
    // `UniformShare`s so the HE layer's noise analysis holds by construction.
    let he_params = session.he.params();
    let mut uniform: Vec<Option<Arc<UniformShare>>> = vec![None; net.tensors.len()];
    let input_share = UniformShare::random(
        he_params,
        net.tensors[net.input].shape.numel(),
        &mut session.rng,
    );
    let input_mask = input_share.as_slice().to_vec();
    shares[net.input] = Some(input_mask.clone());
    uniform[net.input] = Some(Arc::new(input_share));
    let mut acts: Vec<ClientActivation> = Vec::with_capacity(plan.splits.len());
    let (mut storage, mut table_bytes) = (0u64, 0u64);
    let missing = || Error::Internal("a tensor share is missing");
    for (i, step) in net.steps.iter().enumerate() {
        rec.step();
        ch.set_label(&rec.label(step.name()));
        let reads: Vec<usize> = match step {
            Step::Linear(lin) => {
                let idx = lin.index;
                let hp = &plan.he_plans[idx];
                let share = uniform[lin.input].clone().ok_or_else(missing)?;
                let (he, plan2, mut rng2) =
                    (session.he.clone(), plan.clone(), fork_rng(&mut session.rng));
                let upload = off_executor(move || {
                    let hp = &plan2.he_plans[idx];
                    he.encrypt(hp, &share, &mut rng2).map(|u| u.encode(hp))
                })
                .await?;
                send_bulk(ch, &upload).await?;
                ch.flush().await?;
                let reply = recv_bulk(ch, ServerReply::encoded_len(hp)).await?;
                let (he, plan2) = (session.he.clone(), plan.clone());
                let out = off_executor(move || {
                    let hp = &plan2.he_plans[idx];
                    he.decrypt(hp, &ServerReply::decode(&reply, hp)?)
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
                let k = acts.len();
                let out_share = UniformShare::random(he_params, a.shape.numel(), &mut session.rng);
                let out_mask = out_share.as_slice().to_vec();
                uniform[a.output] = Some(Arc::new(out_share));
                let mut act = ClientActivation {
                    out_mask,
                    relu: None,
                    trunc: None,
                    ot: None,
                };
                let b = shares[a.input].as_ref().ok_or_else(missing)?;
                if ot_mode {
                    let sched = plan.ot.clone().ok_or_else(no_ot)?;
                    let relu: Vec<bool> = (0..a.shape.numel()).map(|p| a.keeps(p)).collect();
                    let n_relu = relu.iter().filter(|&&r| r).count();
                    let b = b.clone();
                    let mut choices = sched.client_choices(&b, &mut session.rng);
                    let got = ot::receive_random(ch, &mut receiver, &choices).await;
                    let got = match got {
                        Ok(g) => g,
                        Err(e) => {
                            choices.zeroize();
                            return Err(e);
                        }
                    };
                    let rev_pairs = match reverse.as_mut() {
                        Some(s) if n_relu > 0 => ot::send_random(ch, s, n_relu).await?,
                        _ => Vec::new(),
                    };
                    let mat = off_executor(move || {
                        let (mut choices, mut got, mut rev_pairs) = (choices, got, rev_pairs);
                        let m = ClientMaterial::new(&sched, relu, b, &choices, &got, &rev_pairs);
                        choices.zeroize();
                        got.zeroize();
                        rev_pairs.zeroize();
                        m
                    })
                    .await?;
                    storage += mat.storage_bytes();
                    act.ot = Some(mat);
                }
                for which in [Sub::Relu, Sub::Trunc] {
                    if ot_mode {
                        break;
                    }
                    let idx = which.positions(&plan, k);
                    if idx.is_empty() {
                        continue;
                    }
                    let n = idx.len();
                    let mut bits = Vec::with_capacity(n * l);
                    for &p in idx {
                        bits.extend((0..l).map(|j| (b[p] >> j) & 1 == 1));
                    }
                    let got = ot::receive_correlated(ch, &mut receiver, &bits).await;
                    bits.zeroize();
                    let labels = ClientLabels::from_blocks(plan.act, n, got?)?;
                    let mut asm = TablesAssembler::new(which.circuit(&plan), which.layer(k), n)?;
                    let mut piece = Vec::new();
                    while asm.remaining() > 0 {
                        piece.resize(asm.remaining().min(TABLE_FRAME), 0);
                        ch.recv_into(&mut piece).await?;
                        asm.push(&piece)?;
                    }
                    let tables = asm.finish()?;
                    table_bytes += tables.as_bytes().len() as u64;
                    storage += (tables.as_bytes().len() + labels.encoded_len()) as u64;
                    match which {
                        Sub::Relu => act.relu = Some((tables, labels)),
                        Sub::Trunc => act.trunc = Some((tables, labels)),
                    }
                }
                shares[a.output] = Some(act.out_mask.clone());
                storage += 8 * act.out_mask.len() as u64;
                acts.push(act);
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
        layers[i].offline = rec.finish_step(ch.meter(), step.name());
    }
    let logits_share = shares[net.output].take().ok_or_else(missing)?;
    storage += 8 * (input_mask.len() + logits_share.len()) as u64;
    for s in shares.iter_mut().flatten() {
        s.zeroize();
    }
    let phase = rec.finish(ch.meter());
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

/// Bytes the client stores per preprocessed inference, as
/// [`ClientPreprocessed::storage_bytes`] will count them: garbled tables and
/// the client's own input labels (l per position) of every non-empty
/// sub-layer, the activation-output masks, the input mask and the logits
/// share. Lets a client budget its pool before the first offline phase.
pub(crate) fn client_storage_bytes(plan: &SessionPlan) -> u64 {
    let net = &plan.network;
    let l = plan.ring.bits() as u64;
    let mut storage =
        8 * (net.tensors[net.input].shape.numel() + net.tensors[net.output].shape.numel()) as u64;
    for (k, split) in plan.splits.iter().enumerate() {
        for which in [Sub::Relu, Sub::Trunc] {
            let n = which.positions(plan, k).len() as u64;
            if n > 0 {
                storage += n * which.circuit(plan).table_bytes() as u64 + 16 * n * l;
            }
        }
        storage += 8 * (split.relu.len() + split.trunc.len()) as u64;
    }
    storage
}
