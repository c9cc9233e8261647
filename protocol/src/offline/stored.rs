//! Where the client's activation material waits between the phases: in
//! memory, or on disk ([`crate::store`]) written layer by layer as the
//! offline phase makes it and read back layer by layer online (the next
//! layer's record is read while the server computes the linear layers
//! before it), so that the client holds one layer's material, not the
//! network's.
//!
//! One record per activation layer, its length fixed by the plan: the
//! client's output mask r' (8 bytes per position), then in GC mode the
//! garbled tables and the client's input labels of each non-empty sub-layer
//! (ReLU, then truncation only), in OT mode the layer's
//! [`crate::relu_ot::ClientMaterial`].

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use super::{ClientActMaterial, ClientActivation, ClientGcActivation};
use crate::crypto::Block;
use crate::exec::{join, off_executor};
use crate::gc::{ClientLabels, GarbledTables};
use crate::mode::ReluMode;
use crate::plan::{SessionPlan, Sub, client_activation_bytes, no_ot};
use crate::relu_ot::ClientMaterial;
use crate::store::{MaterialDir, MaterialReader, MaterialWriter, RecordIn, RecordOut};
use crate::{Error, Result};

/// Labels converted per IO step.
const LABEL_CHUNK: usize = 1 << 14;

/// The activation material of one preprocessed inference, in order.
pub(crate) enum MaterialStore {
    /// Held in memory.
    Memory(VecDeque<ClientActivation>),
    /// In one file of a [`MaterialDir`].
    Disk(Box<DiskMaterial>),
}

impl Default for MaterialStore {
    fn default() -> Self {
        Self::Memory(VecDeque::new())
    }
}

/// Material on disk: the file's writer during the offline phase, its
/// reader (or the task reading the next record) online.
pub(crate) struct DiskMaterial {
    plan: Arc<SessionPlan>,
    mode: ReluMode,
    writer: Option<MaterialWriter>,
    reader: Option<MaterialReader>,
    ahead: Option<JoinHandle<Result<(MaterialReader, ClientActivation)>>>,
    /// Next activation to write (offline) or read (online).
    next: usize,
}

impl MaterialStore {
    /// An empty store: in a new file of `dir`, or in memory.
    pub(crate) fn new(
        dir: Option<&MaterialDir>,
        plan: &Arc<SessionPlan>,
        mode: ReluMode,
    ) -> Result<Self> {
        Ok(match dir {
            None => Self::Memory(VecDeque::with_capacity(plan.splits.len())),
            Some(d) => Self::Disk(Box::new(DiskMaterial {
                plan: plan.clone(),
                mode,
                writer: Some(d.create()?),
                reader: None,
                ahead: None,
                next: 0,
            })),
        })
    }

    /// Whether the material lives on disk.
    pub(crate) fn on_disk(&self) -> bool {
        matches!(self, Self::Disk(_))
    }

    /// Appends the next activation's material (offline, in order).
    pub(crate) async fn push(&mut self, act: ClientActivation) -> Result<()> {
        match self {
            Self::Memory(q) => q.push_back(act),
            Self::Disk(d) => {
                let mut w = d
                    .writer
                    .take()
                    .ok_or(Error::Internal("material written after it was sealed"))?;
                let (plan, mode, k) = (d.plan.clone(), d.mode, d.next);
                let w = off_executor(move || {
                    write_activation(&mut w, &plan, mode, k, act)?;
                    Ok(w)
                })
                .await?;
                d.writer = Some(w);
                d.next += 1;
            }
        }
        Ok(())
    }

    /// Ends the offline phase: the file is flushed and reopened for reading.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if let Self::Disk(d) = self {
            let w = d
                .writer
                .take()
                .ok_or(Error::Internal("material sealed twice"))?;
            d.reader = Some(w.into_reader()?);
            d.next = 0;
        }
        Ok(())
    }

    /// Starts reading the next activation's record in the background (no
    /// effect in memory, after the last record, or if already reading).
    pub(crate) fn read_ahead(&mut self) {
        let Self::Disk(d) = self else { return };
        if d.ahead.is_some() {
            return;
        }
        let Some(mut r) = d.reader.take() else { return };
        if r.remaining() == 0 {
            d.reader = Some(r);
            return;
        }
        let (plan, mode, k) = (d.plan.clone(), d.mode, d.next);
        d.ahead = Some(tokio::task::spawn_blocking(move || {
            let act = read_activation(&mut r, &plan, mode, k)?;
            Ok((r, act))
        }));
    }

    /// The next activation's material (online, in order).
    pub(crate) async fn next(&mut self) -> Result<ClientActivation> {
        match self {
            Self::Memory(q) => q
                .pop_front()
                .ok_or(Error::Internal("activation material is missing")),
            Self::Disk(_) => {
                self.read_ahead();
                let Self::Disk(d) = self else {
                    return Err(Error::Internal("material store changed kind"));
                };
                let handle = d
                    .ahead
                    .take()
                    .ok_or(Error::Internal("activation material is missing"))?;
                let (r, act) = join(handle).await?;
                d.reader = Some(r);
                d.next += 1;
                Ok(act)
            }
        }
    }
}

/// Writes activation `k`'s record, consuming its material.
fn write_activation(
    w: &mut MaterialWriter,
    plan: &SessionPlan,
    mode: ReluMode,
    k: usize,
    act: ClientActivation,
) -> Result<()> {
    let len = client_activation_bytes(plan, mode, k)?;
    let mut out = w.record(len)?;
    out.put_u64s(&act.out_mask)?;
    match (act.material, mode) {
        (ClientActMaterial::Gc(mut g), ReluMode::Gc) => {
            for which in [Sub::Relu, Sub::Trunc] {
                let want = !which.positions(plan, k).is_empty();
                match g.take(which) {
                    Some((tables, labels)) if want => {
                        out.put(tables.as_bytes())?;
                        put_labels(&mut out, &labels)?;
                    }
                    None if !want => {}
                    _ => return Err(Error::Internal("GC material does not fit the plan")),
                }
            }
        }
        (ClientActMaterial::Ot(m), ReluMode::Ot) => m.store(&mut out)?,
        _ => return Err(Error::Internal("material of another ReLU mode")),
    }
    out.finish()
}

fn put_labels(out: &mut RecordOut<'_>, labels: &ClientLabels) -> Result<()> {
    let mut buf = Zeroizing::new(vec![0u8; 16 * LABEL_CHUNK.min(labels.labels.len())]);
    for chunk in labels.labels.chunks(LABEL_CHUNK) {
        let b = &mut buf[..16 * chunk.len()];
        Block::write_slice(chunk, b);
        out.put(b)?;
    }
    Ok(())
}

/// Reads activation `k`'s record; its material is returned only once the
/// record's MAC checks.
fn read_activation(
    r: &mut MaterialReader,
    plan: &SessionPlan,
    mode: ReluMode,
    k: usize,
) -> Result<ClientActivation> {
    let len = client_activation_bytes(plan, mode, k)?;
    let mut inp = r.record(len)?;
    let split = &plan.splits[k];
    let n = split.relu.len() + split.trunc.len();
    let mut out_mask = Zeroizing::new(vec![0u64; n]);
    inp.get_u64s(&mut out_mask)?;
    let material = match mode {
        ReluMode::Gc => {
            let mut parts = Vec::with_capacity(2);
            for which in [Sub::Relu, Sub::Trunc] {
                let m = which.positions(plan, k).len();
                if m == 0 {
                    parts.push(None);
                    continue;
                }
                let mut tables = vec![0u8; m * which.circuit(plan).table_bytes()];
                inp.get(&mut tables)?;
                let labels = get_labels(&mut inp, plan, m)?;
                parts.push(Some((tables, labels)));
            }
            inp.finish()?;
            let mut g = ClientGcActivation {
                relu: None,
                trunc: None,
            };
            for (which, part) in [Sub::Relu, Sub::Trunc].into_iter().zip(parts) {
                if let Some((bytes, labels)) = part {
                    let m = labels.len();
                    let t =
                        GarbledTables::from_bytes(which.circuit(plan), which.layer(k), m, bytes)?;
                    match which {
                        Sub::Relu => g.relu = Some((t, labels)),
                        Sub::Trunc => g.trunc = Some((t, labels)),
                    }
                }
            }
            ClientActMaterial::Gc(g)
        }
        ReluMode::Ot => {
            let sched = plan.ot.as_deref().ok_or_else(no_ot)?;
            let mut relu = vec![false; n];
            for &p in &split.relu {
                relu[p] = true;
            }
            let m = ClientMaterial::load(sched, relu, &mut inp)?;
            inp.finish()?;
            ClientActMaterial::Ot(m)
        }
    };
    // The record after this one will be wanted soon.
    if r.remaining() > 0 {
        r.will_need(len.min(1 << 30));
    }
    Ok(ClientActivation { out_mask, material })
}

fn get_labels(inp: &mut RecordIn<'_>, plan: &SessionPlan, m: usize) -> Result<ClientLabels> {
    let total = m * plan.ring.bits() as usize;
    let mut blocks = Vec::with_capacity(total);
    let mut buf = Zeroizing::new(vec![0u8; 16 * LABEL_CHUNK.min(total)]);
    let mut left = total;
    while left > 0 {
        let c = LABEL_CHUNK.min(left);
        let b = &mut buf[..16 * c];
        inp.get(b)?;
        for c in b.chunks_exact(16) {
            let mut a = [0u8; 16];
            a.copy_from_slice(c);
            blocks.push(Block::from_bytes(a));
        }
        left -= c;
    }
    ClientLabels::from_blocks(plan.act, m, blocks)
}
