//! The client's online phase: its masked input, the activations of its ReLU
//! mode, and the logits from the server's share and its own.

use std::sync::Arc;

use pi_models::network::Step;

use super::{packed, round_trips};
use crate::Result;
use crate::framing::{TAG_ONLINE, recv_bulk, send_bulk, send_request};
use crate::gc::Evaluator;
use crate::mode::ReluMode;
use crate::offline::{ClientActMaterial, ClientPreprocessed};
use crate::plan::SessionPlan;
use crate::report::{ClientReport, Recorder};
use crate::ring;
use crate::transport::Channel;

/// Runs the online phase of `pre` on `input` (checked by the caller).
pub(crate) async fn run<C: Channel>(
    ch: &mut C,
    plan: &Arc<SessionPlan>,
    mode: ReluMode,
    mut pre: ClientPreprocessed,
    input: &[u64],
) -> Result<ClientReport> {
    let net = &plan.network;
    let ring = plan.ring;
    let mut rec = Recorder::new("online", ch.meter());
    let mut layers = std::mem::take(&mut pre.layers);
    let mut acts = std::mem::take(&mut pre.acts);
    // From disk: the first layer's material is read while the input goes out.
    acts.read_ahead();

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
        if let Step::Activation(_) = step {
            let act = acts.next(k).await?;
            match act.material {
                ClientActMaterial::Ot(mat) => {
                    super::ot::client(ch, plan, mat, &act.out_mask).await?
                }
                ClientActMaterial::Gc(mat) => {
                    super::gc::client(ch, plan, k, mat, &act.out_mask, &mut evaluator).await?
                }
                ClientActMaterial::GcOnDisk => {
                    super::gc::client_from_disk(
                        ch,
                        plan,
                        k,
                        &mut acts,
                        &act.out_mask,
                        &mut evaluator,
                    )
                    .await?
                }
            }
            k += 1;
            // The next layer's material is read while the server computes
            // the linear layers before it.
            acts.read_ahead();
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
        relu_mode: mode,
        online_round_trips: round_trips(plan, mode),
        layers,
    })
}
