//! Offline activations in GC mode, both parties.
//!
//! The session's Δ, the correlation of its bulk OT (server → client), is the
//! free-XOR offset of every garbled sub-layer of every inference of the
//! session; inference i garbles with its own garbler whose nonce is i, so
//! no hash tweak repeats under Δ (the `gc` module docs, *One Δ per session*,
//! give the argument). For each non-empty sub-layer (ReLU, truncation only)
//! the client obtains the labels of the bits of its share b by correlated OT
//! (the OT outputs are the input labels; one choice bit per label is sent),
//! and the server garbles the sub-layer with those zero labels and fresh
//! pads p, streaming the tables chunk by chunk as they are made.

use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use tokio::sync::mpsc;
use zeroize::{Zeroize, Zeroizing};

use super::TABLE_FRAME;
use crate::crypto::fork_chacha;
use crate::exec::join;
use crate::freshness::DigestTap;
use crate::gc::{
    ClientLabels, Delta, GarbledTables, Garbler, GcNonce, ServerInputLabels, TablesAssembler,
};
use crate::ot::{CorrelatedZeros, SessionOts};
use crate::plan::{SessionPlan, Sub};
use crate::ring;
use crate::transport::Channel;
use crate::{Error, Result};

/// Table frames the garbling worker may run ahead of the channel.
const TABLE_FRAMES_QUEUED: usize = 4;

/// The server's GC material for one activation: pads p (zeroized on drop)
/// and its own input labels per non-empty sub-layer.
pub(crate) struct ServerGcActivation {
    pub pads: Zeroizing<Vec<u64>>,
    pub relu: Option<ServerInputLabels>,
    pub trunc: Option<ServerInputLabels>,
}

impl ServerGcActivation {
    /// The labels of sub-layer `which`, taken out.
    pub(crate) fn take(&mut self, which: Sub) -> Option<ServerInputLabels> {
        match which {
            Sub::Relu => self.relu.take(),
            Sub::Trunc => self.trunc.take(),
        }
    }
}

/// The client's GC material for one activation: garbled tables and its own
/// input labels per non-empty sub-layer.
pub(crate) struct ClientGcActivation {
    pub relu: Option<(GarbledTables, ClientLabels)>,
    pub trunc: Option<(GarbledTables, ClientLabels)>,
}

impl ClientGcActivation {
    /// Tables and labels of sub-layer `which`, taken out.
    pub(crate) fn take(&mut self, which: Sub) -> Option<(GarbledTables, ClientLabels)> {
        match which {
            Sub::Relu => self.relu.take(),
            Sub::Trunc => self.trunc.take(),
        }
    }
}

/// The server's GC state through one offline phase.
pub(super) struct ServerGc {
    /// Returned by the garbling worker after every sub-layer.
    garbler: Option<Garbler>,
    /// Notes each activation's material (tests only).
    tap: DigestTap,
}

impl ServerGc {
    /// The garbler of inference `id`: the session's Δ (the bulk OT's
    /// correlation, set up before) and nonce `id`. Nothing is sent: the
    /// client knows the nonce.
    pub(super) fn new(
        ots: &SessionOts,
        id: u64,
        rng: &mut ChaCha20Rng,
        tap: &DigestTap,
    ) -> Result<Self> {
        let delta = ots
            .delta()
            .ok_or(Error::Internal("GC offline phase before the bulk OT setup"))?;
        if id == 0 {
            // Δ belongs to the session: noted with its first inference.
            tap.blocks("server/gc delta", &[delta]);
        }
        let g = Garbler::with_delta_and_nonce(
            Delta::from_block(delta)?,
            GcNonce::new(id)?,
            fork_chacha(rng),
        );
        Ok(Self {
            garbler: Some(g),
            tap: tap.clone(),
        })
    }

    /// Garbles activation `k` (of `numel` positions) and streams its tables.
    /// Returns the material and the bytes it keeps.
    pub(super) async fn activation<C: Channel>(
        &mut self,
        ch: &mut C,
        ots: &mut SessionOts,
        plan: &Arc<SessionPlan>,
        k: usize,
        numel: usize,
        rng: &mut ChaCha20Rng,
    ) -> Result<(ServerGcActivation, u64)> {
        let tap = self.tap.clone();
        let l = plan.ring.bits() as usize;
        let pads = Zeroizing::new(ring::sample(rng, numel, plan.ring));
        tap.u64s("server/gc pads p", &pads);
        let (mut relu, mut trunc, mut storage) = (None, None, 0u64);
        for which in [Sub::Relu, Sub::Trunc] {
            let idx = which.positions(plan, k);
            if idx.is_empty() {
                continue;
            }
            let zero = ots.sender()?.send_correlated(ch, idx.len() * l).await?;
            tap.blocks("server/gc zero labels (OT outputs)", zero.as_slice());
            let sub_pads: Vec<u64> = idx.iter().map(|&p| pads[p]).collect();
            let g = self
                .garbler
                .take()
                .ok_or(Error::Internal("the garbler returns after every sub-layer"))?;
            let (g, labels) =
                garble_streaming(ch, g, plan.clone(), which, which.layer(k), sub_pads, zero)
                    .await?;
            self.garbler = Some(g);
            // The labels are derived from a per-layer key: the struct is all it holds.
            storage += std::mem::size_of_val(&labels) as u64;
            match which {
                Sub::Relu => relu = Some(labels),
                Sub::Trunc => trunc = Some(labels),
            }
        }
        storage += 8 * pads.len() as u64;
        Ok((ServerGcActivation { pads, relu, trunc }, storage))
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
    mut pads: Vec<u64>,
    zero: CorrelatedZeros,
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
        pads.zeroize();
        if !buf.is_empty() {
            let _ = tx.blocking_send(buf);
        }
        r.map(|inputs| (garbler, inputs.into_parts().1))
    });
    while let Some(frame) = rx.recv().await {
        ch.send(&frame).await?;
    }
    join(worker).await
}

/// The client's GC state through one offline phase.
pub(super) struct ClientGc {
    /// The garbler's public nonce of this inference.
    pub(super) nonce: GcNonce,
}

impl ClientGc {
    /// The state of inference `id`: the garbler's nonce is `id`.
    pub(super) fn new(id: u64) -> Result<Self> {
        Ok(Self {
            nonce: GcNonce::new(id)?,
        })
    }

    /// Obtains the input labels of activation `k` for the client's share `b`
    /// and receives its garbled tables. Returns the material, the bytes it
    /// keeps and the bytes of tables among them.
    pub(super) async fn activation<C: Channel>(
        &mut self,
        ch: &mut C,
        ots: &mut SessionOts,
        plan: &SessionPlan,
        k: usize,
        b: &[u64],
        tap: &DigestTap,
    ) -> Result<(ClientGcActivation, u64, u64)> {
        let l = plan.ring.bits() as usize;
        let mut act = ClientGcActivation {
            relu: None,
            trunc: None,
        };
        let (mut storage, mut table_bytes) = (0u64, 0u64);
        for which in [Sub::Relu, Sub::Trunc] {
            let idx = which.positions(plan, k);
            if idx.is_empty() {
                continue;
            }
            let n = idx.len();
            let mut bits = Vec::with_capacity(n * l);
            for &p in idx {
                bits.extend((0..l).map(|j| (b[p] >> j) & 1 == 1));
            }
            let got = ots.receiver()?.receive_correlated(ch, &bits).await;
            bits.zeroize();
            let got = got?;
            tap.blocks("client/gc labels (OT outputs)", &got);
            let labels = ClientLabels::from_blocks(plan.act, n, got)?;
            let mut asm = TablesAssembler::new(which.circuit(plan), which.layer(k), n)?;
            let mut piece = Vec::new();
            while asm.remaining() > 0 {
                piece.resize(asm.remaining().min(TABLE_FRAME), 0);
                ch.recv_into(&mut piece).await?;
                asm.push(&piece)?;
            }
            let tables = asm.finish()?;
            tap.bytes("client/gc tables", tables.as_bytes());
            table_bytes += tables.as_bytes().len() as u64;
            storage += (tables.as_bytes().len() + labels.encoded_len()) as u64;
            match which {
                Sub::Relu => act.relu = Some((tables, labels)),
                Sub::Trunc => act.trunc = Some((tables, labels)),
            }
        }
        Ok((act, storage, table_bytes))
    }
}
