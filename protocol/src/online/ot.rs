//! Online activations in OT mode ([`crate::relu_ot`]), both parties: leaf
//! tables, one round trip per AND-tree level, the final conversion; it ends
//! with the same sharing as GC mode (server act(z) − r', client r').

use crate::Result;
use crate::exec::off_executor;
use crate::framing::{recv_bulk, send_bulk};
use crate::plan::{SessionPlan, no_ot};
use crate::relu_ot::{
    ClientMaterial, ClientRun, ClientStep, ServerMaterial, ServerRun, ServerStep,
};
use crate::transport::Channel;

/// Server side of one activation on its share `z`: returns its share of the
/// output, act(z) − r'.
pub(super) async fn server<C: Channel>(
    ch: &mut C,
    plan: &SessionPlan,
    mat: ServerMaterial,
    z: &[u64],
) -> Result<Vec<u64>> {
    let (sched, z) = (plan.ot.clone().ok_or_else(no_ot)?, z.to_vec());
    let (mut run, mut msg) = off_executor(move || ServerRun::start(sched, mat, &z)).await?;
    loop {
        send_bulk(ch, &msg).await?;
        ch.flush().await?;
        let incoming = recv_bulk(ch, run.incoming_len()).await?;
        let (r, step) = off_executor(move || run.step(&incoming).map(|s| (run, s))).await?;
        run = r;
        match step {
            ServerStep::Reply(m) => msg = m,
            ServerStep::Done(out) => return Ok(out),
        }
    }
}

/// Client side of one activation (`out_mask` is r', its share of the output).
pub(super) async fn client<C: Channel>(
    ch: &mut C,
    plan: &SessionPlan,
    mat: ClientMaterial,
    out_mask: &[u64],
) -> Result<()> {
    let sched = plan.ot.clone().ok_or_else(no_ot)?;
    let mut run = ClientRun::new(sched, mat, out_mask.to_vec())?;
    loop {
        let incoming = recv_bulk(ch, run.incoming_len()).await?;
        let (r, step) = off_executor(move || run.step(&incoming).map(|s| (run, s))).await?;
        run = r;
        match step {
            ClientStep::Reply(m) => {
                send_bulk(ch, &m).await?;
                ch.flush().await?;
            }
            ClientStep::Last(m) => {
                send_bulk(ch, &m).await?;
                return ch.flush().await;
            }
        }
    }
}
