//! Online activations in GC mode, both parties: the server sends the labels
//! of its share per sub-layer; the client evaluates, learns act(z) + p per
//! position and returns act(z) + p − r'; the server subtracts p.

use std::sync::Arc;

use zeroize::Zeroize;

use super::packed;
use crate::exec::off_executor;
use crate::framing::{recv_bulk, send_bulk};
use crate::gc::{Evaluator, ServerLabels};
use crate::offline::{ClientGcActivation, MaterialStore, ServerGcActivation};
use crate::plan::{SessionPlan, Sub};
use crate::ring;
use crate::transport::Channel;
use crate::{Error, Result};

/// Server side of activation `k` on its share `z`: returns its share of
/// the output, act(z) − r'.
pub(super) async fn server<C: Channel>(
    ch: &mut C,
    plan: &SessionPlan,
    k: usize,
    mut mat: ServerGcActivation,
    z: &[u64],
) -> Result<Vec<u64>> {
    let ring = plan.ring;
    for which in [Sub::Relu, Sub::Trunc] {
        if let Some(labels) = mat.take(which) {
            let sub: Vec<u64> = which.positions(plan, k).iter().map(|&p| z[p]).collect();
            let encoded = labels.encode_share(&sub)?;
            send_bulk(ch, &encoded.to_bytes()).await?;
        }
    }
    ch.flush().await?;
    let n = z.len();
    let bytes = recv_bulk(ch, packed(n, ring)?).await?;
    let y = ring::unpack(&bytes, n, ring, "masked activation output")?;
    Ok(ring::sub(&y, &mat.pads, ring))
}

/// Client side of activation `k`: evaluates its sub-layers with the
/// evaluator of this inference and returns act(z) + p − r' (`out_mask` is r').
pub(super) async fn client<C: Channel>(
    ch: &mut C,
    plan: &Arc<SessionPlan>,
    k: usize,
    mut mat: ClientGcActivation,
    out_mask: &[u64],
    evaluator: &mut Option<Evaluator>,
) -> Result<()> {
    let ring = plan.ring;
    let l = ring.bits() as usize;
    let mut out = vec![0u64; out_mask.len()];
    for which in [Sub::Relu, Sub::Trunc] {
        let Some((tables, labels)) = mat.take(which) else {
            continue;
        };
        let n = labels.len();
        let bytes = recv_bulk(ch, 16 * n * l).await?;
        let mut ev = take_evaluator(evaluator)?;
        let plan2 = plan.clone();
        let (ev, vals) = off_executor(move || {
            let server = ServerLabels::from_bytes(plan2.act, n, &bytes)?;
            let vals = ev.evaluate_layer(which.circuit(&plan2), tables, labels, server)?;
            Ok((ev, vals))
        })
        .await?;
        *evaluator = Some(ev);
        scatter(&mut out, which.positions(plan, k), vals);
    }
    finish(ch, plan, out, out_mask).await
}

/// [`client`] with the sub-layers' tables and labels on disk: part j is
/// evaluated while part j + 1 is read (the server waits meanwhile, so the
/// reading has a core of its own on a shared machine).
pub(super) async fn client_from_disk<C: Channel>(
    ch: &mut C,
    plan: &Arc<SessionPlan>,
    k: usize,
    acts: &mut MaterialStore,
    out_mask: &[u64],
    evaluator: &mut Option<Evaluator>,
) -> Result<()> {
    let l = plan.ring.bits() as usize;
    let mut out = vec![0u64; out_mask.len()];
    for which in [Sub::Relu, Sub::Trunc] {
        let positions = which.positions(plan, k);
        let n = positions.len();
        if n == 0 {
            continue;
        }
        let bytes = recv_bulk(ch, 16 * n * l).await?;
        let plan2 = plan.clone();
        let mut server =
            off_executor(move || ServerLabels::from_bytes(plan2.act, n, &bytes)).await?;
        let mut vals = vec![0u64; n];
        let mut first = 0;
        while first < n {
            let part = acts.next_part(k, which, first).await?;
            let count = part.len(plan);
            if count == 0 || first + count > n {
                return Err(Error::Internal("a stored part does not fit its sub-layer"));
            }
            let mut ev = take_evaluator(evaluator)?;
            let plan2 = plan.clone();
            let (ev, part, s, v) = off_executor(move || {
                let mut vals = vals;
                let range = part.first..part.first + count;
                ev.evaluate_part(
                    which.circuit(&plan2),
                    which.layer(k),
                    part.first,
                    &part.tables,
                    &part.labels,
                    &server.labels[range.start * l..range.end * l],
                    &mut vals[range],
                )?;
                Ok((ev, part, server, vals))
            })
            .await?;
            *evaluator = Some(ev);
            acts.recycle(part);
            (server, vals) = (s, v);
            first += count;
        }
        scatter(&mut out, positions, vals);
    }
    finish(ch, plan, out, out_mask).await
}

/// The inference's evaluator, lent to one sub-layer (the caller puts it
/// back).
fn take_evaluator(evaluator: &mut Option<Evaluator>) -> Result<Evaluator> {
    evaluator
        .take()
        .ok_or(Error::Internal("garbled material without a garbler nonce"))
}

/// `out[positions[i]] = vals[i]`: a sub-layer's results in place.
fn scatter(out: &mut [u64], positions: &[usize], vals: Vec<u64>) {
    for (&p, v) in positions.iter().zip(vals) {
        out[p] = v;
    }
}

/// Sends act(z) + p − r' and wipes act(z) + p.
async fn finish<C: Channel>(
    ch: &mut C,
    plan: &SessionPlan,
    mut out: Vec<u64>,
    out_mask: &[u64],
) -> Result<()> {
    let ring = plan.ring;
    let y = ring::sub(&out, out_mask, ring);
    out.zeroize();
    send_bulk(ch, &ring::pack(&y, ring)).await?;
    ch.flush().await
}
