//! Where the client's activation material waits between the phases: in
//! memory, or on disk ([`crate::store`]) written as the offline phase makes
//! it and read back online while the material before it is used, so that
//! the client holds a few parts of a layer's material, not the network's.
//!
//! On disk, each activation layer is a *head* record — the client's output
//! mask r' (8 bytes per position), and in OT mode the layer's
//! [`crate::relu_ot::ClientMaterial`] — and in GC mode, per non-empty
//! sub-layer (ReLU, then truncation only), *part* records of about
//! [`PART_BYTES`] each: the garbled tables and client input labels of a
//! range of instances that starts a chunk of [`crate::gc::CHUNK`]. Online
//! the client evaluates part j while part j + 1 is read and decrypted on
//! the other core (the server waits for the client then), each part read
//! into the buffers of parts already evaluated.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use super::{ClientActMaterial, ClientActivation};
use crate::crypto::Block;
use crate::exec::{join, off_executor};
use crate::gc::CHUNK;
use crate::mode::ReluMode;
use crate::plan::{SessionPlan, Sub, no_ot};
use crate::relu_ot::ClientMaterial;
use crate::store::{MaterialDir, MaterialReader, MaterialWriter, RecordIn, RecordOut};
use crate::{Error, Result};

/// Labels converted per IO step.
const LABEL_CHUNK: usize = 1 << 14;

/// Bytes of garbled tables and labels per part record (small in tests, so
/// that their small networks have several parts per sub-layer).
pub(crate) const PART_BYTES: usize = if cfg!(test) { 48 << 10 } else { 64 << 20 };

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

/// What a record on disk holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Activation `k`'s head: its output mask (and OT material).
    Head(usize),
    /// Instances `first..first + count` of sub-layer `which` of
    /// activation `k` (GC mode).
    Part {
        k: usize,
        which: Sub,
        first: usize,
        count: usize,
    },
}

/// The records of one preprocessed inference, in file order.
fn slots(plan: &SessionPlan, mode: ReluMode) -> Vec<Slot> {
    let mut out = Vec::new();
    for k in 0..plan.splits.len() {
        out.push(Slot::Head(k));
        if mode != ReluMode::Gc {
            continue;
        }
        for which in [Sub::Relu, Sub::Trunc] {
            let m = which.positions(plan, k).len();
            let per = which.circuit(plan).table_bytes() + 16 * plan.ring.bits() as usize;
            let step = (PART_BYTES / per / CHUNK).max(1) * CHUNK;
            let mut first = 0;
            while first < m {
                let count = step.min(m - first);
                out.push(Slot::Part {
                    k,
                    which,
                    first,
                    count,
                });
                first += count;
            }
        }
    }
    out
}

/// A range of a garbled sub-layer's material read back from disk.
pub(crate) struct Part {
    /// First instance (starts a chunk).
    pub(crate) first: usize,
    /// Its garbled tables.
    pub(crate) tables: Vec<u8>,
    /// Its client input labels (wiped when dropped).
    pub(crate) labels: Zeroizing<Vec<Block>>,
}

impl Part {
    /// Instances in the part.
    pub(crate) fn len(&self, plan: &SessionPlan) -> usize {
        self.labels.len() / plan.ring.bits() as usize
    }
}

/// What the reading task hands back.
enum Loaded {
    Head(ClientActivation),
    Part(Part),
}

type Ahead = JoinHandle<Result<(MaterialReader, Loaded, Spares)>>;

/// Material on disk: the file's writer during the offline phase, its
/// reader (or the task reading the next record) online.
pub(crate) struct DiskMaterial {
    plan: Arc<SessionPlan>,
    mode: ReluMode,
    writer: Option<MaterialWriter>,
    reader: Option<MaterialReader>,
    ahead: Option<(Slot, Ahead)>,
    /// Records of the file, in order.
    slots: Vec<Slot>,
    /// Buffers of evaluated parts, for the next parts to be read into.
    spares: Spares,
    /// Next activation to write (offline); next slot to read (online).
    next: usize,
}

/// Buffers of material that has been used, kept for the next parts:
/// reading a part into fresh memory costs a page fault per 4 KiB page,
/// reading it into a used buffer nothing more. Only their capacity
/// matters: every byte handed out is overwritten first.
#[derive(Default)]
struct Spares {
    tables: Vec<Vec<u8>>,
    labels: Vec<Zeroizing<Vec<Block>>>,
}

/// Spare buffers kept of each kind: the part being read and the one being
/// evaluated, and one more.
const SPARES: usize = 3;

impl Spares {
    fn keep(&mut self, part: Part) {
        self.tables.push(part.tables);
        self.labels.push(part.labels);
        self.trim();
    }

    /// Adds `other`'s buffers (kept while a read had taken these).
    fn merge(&mut self, other: Spares) {
        self.tables.extend(other.tables);
        self.labels.extend(other.labels);
        self.trim();
    }

    /// Keeps the largest [`SPARES`] of each kind, sorted by capacity.
    fn trim(&mut self) {
        self.tables.sort_by_key(Vec::capacity);
        self.labels.sort_by_key(|v| v.capacity());
        let extra = self.tables.len().saturating_sub(SPARES);
        self.tables.drain(..extra);
        let extra = self.labels.len().saturating_sub(SPARES);
        self.labels.drain(..extra);
    }

    /// Index of the smallest buffer of capacity at least `want`, else of
    /// the largest (sorted by capacity).
    fn pick(mut caps: impl ExactSizeIterator<Item = usize>, want: usize) -> Option<usize> {
        let n = caps.len();
        caps.position(|c| c >= want).or(n.checked_sub(1))
    }

    /// A buffer of `len` bytes, whose content is to be overwritten.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        match Self::pick(self.tables.iter().map(Vec::capacity), len) {
            Some(i) => {
                let mut v = self.tables.remove(i);
                if v.len() >= len {
                    v.truncate(len);
                } else {
                    v.resize(len, 0);
                }
                v
            }
            None => vec![0u8; len],
        }
    }

    /// An empty buffer for `len` labels.
    fn blocks(&mut self, len: usize) -> Zeroizing<Vec<Block>> {
        match Self::pick(self.labels.iter().map(|v| v.capacity()), len) {
            Some(i) => {
                let mut v = self.labels.remove(i);
                v.clear();
                v.reserve(len);
                v
            }
            None => Zeroizing::new(Vec::with_capacity(len)),
        }
    }
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
                slots: slots(plan, mode),
                spares: Spares::default(),
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
                let parts: Vec<Slot> = d
                    .slots
                    .iter()
                    .copied()
                    .filter(|s| matches!(s, Slot::Part { k: pk, .. } if *pk == k))
                    .collect();
                let w = off_executor(move || {
                    write_activation(&mut w, &plan, mode, k, &parts, act)?;
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

    /// Starts reading the next record in the background (no effect in
    /// memory, after the last record, or if already reading).
    pub(crate) fn read_ahead(&mut self) {
        let Self::Disk(d) = self else { return };
        if d.ahead.is_some() {
            return;
        }
        let Some(&slot) = d.slots.get(d.next) else {
            return;
        };
        let Some(mut r) = d.reader.take() else { return };
        let (plan, mode) = (d.plan.clone(), d.mode);
        let mut spares = std::mem::take(&mut d.spares);
        let task = tokio::task::spawn_blocking(move || {
            let loaded = match slot {
                Slot::Head(k) => Loaded::Head(read_head(&mut r, &plan, mode, k)?),
                Slot::Part {
                    which,
                    first,
                    count,
                    ..
                } => Loaded::Part(read_part(&mut r, &plan, which, first, count, &mut spares)?),
            };
            Ok((r, loaded, spares))
        });
        d.ahead = Some((slot, task));
    }

    /// The next record from disk, which must be one `want` accepts; the
    /// record after it starts reading at once.
    async fn take(&mut self, want: impl Fn(Slot) -> bool) -> Result<Loaded> {
        self.read_ahead();
        let Self::Disk(d) = self else {
            return Err(Error::Internal("material in memory read as records"));
        };
        let (slot, handle) = d
            .ahead
            .take()
            .ok_or(Error::Internal("activation material is missing"))?;
        let (r, loaded, spares) = join(handle).await?;
        d.reader = Some(r);
        // Parts evaluated while this one was read went to `d.spares`.
        d.spares.merge(spares);
        if !want(slot) {
            return Err(Error::Internal("stored material read out of order"));
        }
        d.next += 1;
        self.read_ahead();
        Ok(loaded)
    }

    /// The next activation's material (online, in order). From disk in GC
    /// mode its sub-layers follow as parts ([`Self::next_part`]), the first
    /// of which starts reading now.
    pub(crate) async fn next(&mut self, k: usize) -> Result<ClientActivation> {
        if let Self::Memory(q) = self {
            return q
                .pop_front()
                .ok_or(Error::Internal("activation material is missing"));
        }
        match self.take(|s| s == Slot::Head(k)).await? {
            Loaded::Head(act) => Ok(act),
            Loaded::Part(_) => Err(Error::Internal("stored material read out of order")),
        }
    }

    /// The next part of sub-layer `which` of activation `k`, from disk,
    /// which must start at instance `first`; the record after it starts
    /// reading at once.
    pub(crate) async fn next_part(&mut self, k: usize, which: Sub, first: usize) -> Result<Part> {
        let want = |s| {
            matches!(s, Slot::Part { k: pk, which: pw, first: pf, .. }
                if pk == k && pw == which && pf == first)
        };
        match self.take(want).await? {
            Loaded::Part(p) => Ok(p),
            Loaded::Head(_) => Err(Error::Internal("stored material read out of order")),
        }
    }

    /// Takes back an evaluated part's buffers, for the parts still to come.
    pub(crate) fn recycle(&mut self, part: Part) {
        if let Self::Disk(d) = self {
            d.spares.keep(part);
        }
    }
}

/// Bytes of activation `k`'s head record: its output mask, and in OT mode
/// its material.
fn head_bytes(plan: &SessionPlan, mode: ReluMode, k: usize) -> Result<u64> {
    match mode {
        ReluMode::Ot => crate::plan::client_activation_bytes(plan, mode, k),
        ReluMode::Gc => {
            let split = &plan.splits[k];
            Ok(8 * (split.relu.len() + split.trunc.len()) as u64)
        }
    }
}

/// Writes activation `k`'s records (its head, then `parts`, its slots'
/// parts), consuming its material.
fn write_activation(
    w: &mut MaterialWriter,
    plan: &SessionPlan,
    mode: ReluMode,
    k: usize,
    parts: &[Slot],
    act: ClientActivation,
) -> Result<()> {
    let mut out = w.record(head_bytes(plan, mode, k)?)?;
    out.put_u64s(&act.out_mask)?;
    match (act.material, mode) {
        (ClientActMaterial::Ot(m), ReluMode::Ot) => {
            m.store(&mut out)?;
            out.finish()
        }
        (ClientActMaterial::Gc(mut g), ReluMode::Gc) => {
            out.finish()?;
            let l = plan.ring.bits() as usize;
            let mut parts = parts.iter().copied().peekable();
            for which in [Sub::Relu, Sub::Trunc] {
                let want = !which.positions(plan, k).is_empty();
                let (tables, labels) = match g.take(which) {
                    Some(m) if want => m,
                    None if !want => continue,
                    _ => return Err(Error::Internal("GC material does not fit the plan")),
                };
                let per = which.circuit(plan).table_bytes();
                let bytes = tables.as_bytes();
                while let Some(&Slot::Part {
                    which: pw,
                    first,
                    count,
                    ..
                }) = parts.peek()
                {
                    if pw != which {
                        break;
                    }
                    parts.next();
                    let t = bytes
                        .get(first * per..(first + count) * per)
                        .ok_or(Error::Internal("GC material does not fit the plan"))?;
                    let b = labels
                        .labels
                        .get(first * l..(first + count) * l)
                        .ok_or(Error::Internal("GC material does not fit the plan"))?;
                    let mut out = w.record((t.len() + 16 * b.len()) as u64)?;
                    out.put(t)?;
                    put_labels(&mut out, b)?;
                    out.finish()?;
                }
            }
            Ok(())
        }
        _ => Err(Error::Internal("material of another ReLU mode")),
    }
}

fn put_labels(out: &mut RecordOut<'_>, labels: &[Block]) -> Result<()> {
    let mut buf = Zeroizing::new(vec![0u8; 16 * LABEL_CHUNK.min(labels.len())]);
    for chunk in labels.chunks(LABEL_CHUNK) {
        let b = &mut buf[..16 * chunk.len()];
        Block::write_slice(chunk, b);
        out.put(b)?;
    }
    Ok(())
}

/// Reads activation `k`'s head record; its material is returned only once
/// the record checks. In GC mode its parts follow.
fn read_head(
    r: &mut MaterialReader,
    plan: &SessionPlan,
    mode: ReluMode,
    k: usize,
) -> Result<ClientActivation> {
    let split = &plan.splits[k];
    let n = split.relu.len() + split.trunc.len();
    let mut inp = r.record(head_bytes(plan, mode, k)?)?;
    let mut out_mask = Zeroizing::new(vec![0u64; n]);
    inp.get_u64s(&mut out_mask)?;
    let material = match mode {
        ReluMode::Gc => {
            inp.finish()?;
            ClientActMaterial::GcOnDisk
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
    Ok(ClientActivation { out_mask, material })
}

/// Reads a part record of `count` instances of sub-layer `which` into
/// spare buffers.
fn read_part(
    r: &mut MaterialReader,
    plan: &SessionPlan,
    which: Sub,
    first: usize,
    count: usize,
    spares: &mut Spares,
) -> Result<Part> {
    let l = plan.ring.bits() as usize;
    let table_len = count * which.circuit(plan).table_bytes();
    let mut inp = r.record((table_len + 16 * count * l) as u64)?;
    let mut tables = spares.bytes(table_len);
    inp.get(&mut tables)?;
    let mut labels = spares.blocks(count * l);
    get_labels(&mut inp, count * l, &mut labels)?;
    inp.finish()?;
    // The next part will be wanted soon.
    if r.remaining() > 0 {
        r.will_need(PART_BYTES as u64);
    }
    Ok(Part {
        first,
        tables,
        labels,
    })
}

/// Reads `total` labels into `blocks` (empty, with capacity).
fn get_labels(inp: &mut RecordIn<'_>, total: usize, blocks: &mut Vec<Block>) -> Result<()> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent(tables: usize, labels: usize) -> Part {
        Part {
            first: 0,
            tables: vec![7u8; tables],
            labels: Zeroizing::new(vec![Block::ZERO; labels]),
        }
    }

    #[test]
    fn spares_hand_out_exact_lengths_from_the_closest_capacity() {
        let mut s = Spares::default();
        for (t, l) in [(100, 50), (1000, 500), (10, 5), (1, 1)] {
            s.keep(spent(t, l));
        }
        // The three largest of each kind are kept.
        let caps: Vec<usize> = s.tables.iter().map(Vec::capacity).collect();
        assert_eq!(caps, [10, 100, 1000]);
        s.tables.remove(0);
        s.labels.remove(0);
        // The smallest that fits, cut to the length asked for.
        let b = s.bytes(90);
        assert_eq!((b.len(), b.capacity()), (90, 100));
        // None fits: the largest grows.
        let c = s.bytes(2000);
        assert_eq!(c.len(), 2000);
        assert!(s.tables.is_empty());
        assert_eq!(s.bytes(5).len(), 5);
        let l = s.blocks(400);
        assert!(l.is_empty() && l.capacity() >= 400);
        assert_eq!(s.labels.len(), 1);
        let l = s.blocks(3);
        assert!(l.is_empty() && l.capacity() >= 3);
        assert!(s.labels.is_empty());
        // Buffers kept while a read held the others are not lost.
        let mut held = Spares::default();
        held.keep(spent(40, 4));
        s.keep(spent(30, 3));
        s.merge(held);
        let caps: Vec<usize> = s.tables.iter().map(Vec::capacity).collect();
        assert_eq!(caps, [30, 40]);
    }
}
