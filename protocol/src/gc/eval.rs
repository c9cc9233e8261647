//! The evaluator (client side, online): evaluates a whole garbled layer.

use zeroize::Zeroize;

use super::circuit::Op;
use super::kernels::{AndKernels, get};
use super::labels::{ClientLabels, GarbledTables, ServerLabels};
use super::{
    CHUNK, Circuit, GcNonce, INSTANCE_SHIFT, Scheme, low_mask, split3, three_halves, tweak_base,
};
use crate::crypto::{Block, from_aes, to_aes, wipe_aes_blocks};
use crate::{Error, Result};

/// The evaluator of one garbler's layers. Holds that garbler's public
/// nonce and reusable scratch buffers.
pub struct Evaluator {
    kernels: AndKernels,
    nonce: GcNonce,
    scratch: Scratch,
}

/// Working buffers reused across chunks and layers; wiped after each layer
/// and on drop.
#[derive(Default)]
struct Scratch {
    labels: Vec<Block>,
    hin: Vec<aes::Block>,
    hscratch: Vec<aes::Block>,
    packed: Vec<u128>,
}

impl Scratch {
    fn wipe(&mut self) {
        self.labels.zeroize();
        self.packed.zeroize();
        wipe_aes_blocks(&mut self.hin);
        wipe_aes_blocks(&mut self.hscratch);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Evaluator {
    /// An evaluator for the layers of the garbler whose nonce is `nonce`
    /// ([`super::Garbler::nonce`], received from the server). With another
    /// nonce every output is garbage.
    pub fn new(nonce: GcNonce) -> Self {
        Self {
            kernels: AndKernels::detect(),
            nonce,
            scratch: Scratch::default(),
        }
    }

    /// The garbler nonce this evaluator uses.
    pub fn nonce(&self) -> GcNonce {
        self.nonce
    }

    /// Evaluates a layer: returns `act(a_i + b_i) + p_i mod 2^l` for every
    /// instance. Consumes the tables and both label batches: garbled material
    /// is used once.
    ///
    /// # Errors
    /// [`Error::BadInput`] if the tables, labels and circuit disagree in kind,
    /// parameters or number of instances (all were checked against the
    /// session's expectations when decoded).
    pub fn evaluate_layer(
        &mut self,
        circuit: &Circuit,
        tables: GarbledTables,
        client: ClientLabels,
        server: ServerLabels,
    ) -> Result<Vec<u64>> {
        let params = circuit.params();
        let n = tables.n;
        if tables.kind != circuit.kind()
            || tables.params != params
            || tables.scheme != circuit.scheme()
        {
            return Err(Error::BadInput(
                "garbled tables were made for another circuit".into(),
            ));
        }
        if client.n != n || server.n != n || client.params != params || server.params != params {
            return Err(Error::BadInput(format!(
                "layer of {n} activations with {} client and {} server label sets",
                client.n, server.n
            )));
        }
        let mut out = vec![0u64; n];
        self.evaluate_part(
            circuit,
            tables.layer,
            0,
            &tables.bytes,
            &client.labels,
            &server.labels,
            &mut out,
        )?;
        Ok(out)
    }

    /// Evaluates the instances `first..first + out.len()` of a layer, from
    /// that range's tables and labels (a whole layer for
    /// [`Self::evaluate_layer`]; a part read back from the client's own
    /// authenticated files, whose tables were checked when they arrived):
    /// writes `act(a_i + b_i) + p_i` to `out`. `first`
    /// must start a chunk of [`CHUNK`] instances, as the tables are laid out
    /// chunk by chunk.
    ///
    /// # Errors
    /// [`Error::Internal`] if the range is not chunk-aligned or the slices'
    /// lengths do not fit `out.len()` instances of `circuit`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn evaluate_part(
        &mut self,
        circuit: &Circuit,
        layer: u32,
        first: usize,
        tables: &[u8],
        client: &[Block],
        server: &[Block],
        out: &mut [u64],
    ) -> Result<()> {
        let n = out.len();
        let l = circuit.params().l() as usize;
        if !first.is_multiple_of(CHUNK)
            || tables.len() != n * circuit.table_bytes()
            || client.len() != n * l
            || server.len() != n * l
        {
            return Err(Error::Internal(
                "a part of garbled material does not fit its range",
            ));
        }
        let per = circuit.table_bytes();
        let s = &mut self.scratch;
        s.labels.resize(circuit.slots * CHUNK, Block::ZERO);
        s.hin.resize(3 * CHUNK, aes::Block::default());
        s.hscratch.resize(3 * CHUNK, aes::Block::default());
        s.packed.resize(CHUNK, 0);
        let mut start = 0;
        while start < n {
            let cn = CHUNK.min(n - start);
            eval_chunk(
                &self.kernels,
                s,
                circuit,
                self.nonce,
                layer,
                first + start,
                &tables[start * per..(start + cn) * per],
                &client[start * l..(start + cn) * l],
                &server[start * l..(start + cn) * l],
                &mut out[start..start + cn],
            );
            start += cn;
        }
        s.wipe();
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_chunk(
    kernels: &AndKernels,
    s: &mut Scratch,
    c: &Circuit,
    nonce: GcNonce,
    layer: u32,
    start: usize,
    table: &[u8],
    client: &[Block],
    server: &[Block],
    out: &mut [u64],
) {
    let cn = out.len();
    let l = c.params().l() as usize;
    let aes = kernels.aes();
    let Scratch {
        labels,
        hin,
        hscratch,
        packed,
    } = s;
    let tw0 = tweak_base(nonce, layer, start as u64);
    let slot = |s: u32| s as usize * CHUNK;
    let scheme = c.scheme();
    let and_bytes = scheme.and_bytes();
    let (gates, rest) = table.split_at(c.gate_bytes() * cn);
    let (ctrl, dtable) = rest.split_at(c.control_bytes() * cn);
    let mut ct = 0usize;
    let mut and_index = 0usize;
    for op in &c.ops {
        match *op {
            Op::InGarbler { bit, out } => {
                for (o, z) in labels[slot(out)..slot(out) + cn]
                    .iter_mut()
                    .zip(server.chunks_exact(l))
                {
                    *o = z[bit as usize];
                }
            }
            Op::InEvaluator { bit, out } => {
                for (o, z) in labels[slot(out)..slot(out) + cn]
                    .iter_mut()
                    .zip(client.chunks_exact(l))
                {
                    *o = z[bit as usize];
                }
            }
            Op::Xor { x, y, out } => {
                let (x, y, o) = split3(labels, CHUNK, x, y, out, cn);
                for ((o, x), y) in o.iter_mut().zip(x).zip(y) {
                    *o = *x ^ *y;
                }
            }
            Op::Not { x, out } | Op::XorKnown { x, out, .. } => {
                let (x, _, o) = split3(labels, CHUNK, x, x, out, cn);
                o.copy_from_slice(x);
            }
            Op::And { x, y, out, h } => {
                let (x, y, o) = split3(labels, CHUNK, x, y, out, cn);
                let table = &gates[ct..ct + and_bytes * cn];
                let tw = tw0 + h as u128;
                match scheme {
                    Scheme::HalfGates => kernels.eval_and(hin, hscratch, x, y, tw, table, o),
                    Scheme::ThreeHalves => {
                        let bit0 = three_halves::CONTROL_BITS * and_index * cn;
                        kernels.eval_and3(hin, hscratch, x, y, tw, table, ctrl, bit0, o);
                    }
                }
                ct += and_bytes * cn;
                and_index += 1;
            }
            Op::AndKnown { x, out, h, .. } => {
                let (x, _, o) = split3(labels, CHUNK, x, x, out, cn);
                let hin = &mut hin[..cn];
                for (hb, a) in hin.iter_mut().zip(x) {
                    *hb = to_aes(a.0);
                }
                let h = h as u128;
                aes.tccr_blocks_with(hin, &mut hscratch[..cn], |j| {
                    tw0 + ((j as u128) << INSTANCE_SHIFT) + h
                });
                let table = &gates[ct..ct + 16 * cn];
                for (((hb, o), a), tb) in hscratch[..cn]
                    .iter()
                    .zip(o.iter_mut())
                    .zip(x)
                    .zip(table.chunks_exact(16))
                {
                    *o = Block(from_aes(hb) ^ (get(tb) & (a.0 & 1).wrapping_neg()));
                }
                ct += 16 * cn;
            }
        }
    }
    let low = c.low_bits();
    let top = c.top_bits();
    let dec = c.decode_bytes();
    let carry = &labels[slot(c.top_carry)..slot(c.top_carry) + cn];
    let hin = &mut hin[..cn];
    for (hb, c0) in hin.iter_mut().zip(carry) {
        *hb = to_aes(c0.0);
    }
    let h = c.top_h as u128;
    aes.tccr_blocks_with(hin, &mut hscratch[..cn], |j| {
        tw0 + ((j as u128) << INSTANCE_SHIFT) + h
    });
    let top_mask = low_mask(top);
    debug_assert_eq!((ct, dtable.len()), (gates.len(), dec * cn));
    // Low output lsbs, gathered output by output (contiguous per slot).
    let lsbs = &mut packed[..cn];
    lsbs.fill(0);
    for (j, s) in c.low_out.iter().enumerate() {
        for (b, w) in lsbs.iter_mut().zip(&labels[slot(*s)..slot(*s) + cn]) {
            *b |= (w.0 & 1) << j;
        }
    }
    let low_mask_bits = low_mask(low) as u128;
    for i in 0..cn {
        let mut buf = [0u8; 16];
        buf[..dec].copy_from_slice(&dtable[i * dec..(i + 1) * dec]);
        let bits = u128::from_le_bytes(buf);
        let v = ((lsbs[i] ^ bits) & low_mask_bits) as u64;
        let row_shift = low + if carry[i].lsb() { top } else { 0 };
        let row = (bits >> row_shift) as u64 & top_mask;
        let hi = (row ^ from_aes(&hscratch[i]) as u64) & top_mask;
        out[i] = v | (hi << low);
    }
}
