//! The evaluator (client side, online): evaluates a whole garbled layer.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::circuit::Op;
use super::labels::{ClientLabels, GarbledTables, ServerLabels};
use super::{CHUNK, Circuit, low_mask, split3, tweak_base};
use crate::crypto::{Block, FixedKeyAes};
use crate::{Error, Result};

/// The evaluator. Holds reusable scratch buffers.
#[derive(Default)]
pub struct Evaluator {
    aes: FixedKeyAes,
    scratch: Scratch,
}

#[derive(Default, Zeroize, ZeroizeOnDrop)]
struct Scratch {
    labels: Vec<Block>,
    hin: Vec<Block>,
    tweaks: Vec<Block>,
    hout: Vec<Block>,
}

impl Evaluator {
    /// A new evaluator.
    pub fn new() -> Self {
        Self::default()
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
        if tables.kind != circuit.kind() || tables.params != params {
            return Err(Error::BadInput("garbled tables were made for another circuit".into()));
        }
        if client.n != n || server.n != n || client.params != params || server.params != params {
            return Err(Error::BadInput(format!(
                "layer of {n} activations with {} client and {} server label sets",
                client.n, server.n
            )));
        }
        let per = circuit.table_bytes();
        let l = params.l() as usize;
        let s = &mut self.scratch;
        s.labels.resize(circuit.slots * CHUNK, Block::ZERO);
        s.hin.resize(2 * CHUNK, Block::ZERO);
        s.tweaks.resize(2 * CHUNK, Block::ZERO);
        s.hout.resize(2 * CHUNK, Block::ZERO);
        let mut out = vec![0u64; n];
        let mut start = 0;
        while start < n {
            let cn = CHUNK.min(n - start);
            eval_chunk(
                &self.aes,
                s,
                circuit,
                tables.layer,
                start,
                &tables.bytes[start * per..(start + cn) * per],
                &client.labels[start * l..(start + cn) * l],
                &server.labels[start * l..(start + cn) * l],
                &mut out[start..start + cn],
            );
            start += cn;
        }
        s.labels.zeroize();
        s.hin.zeroize();
        s.hout.zeroize();
        Ok(out)
    }
}

#[inline(always)]
fn get(table: &[u8], off: usize) -> Block {
    let mut b = [0u8; 16];
    b.copy_from_slice(&table[off..off + 16]);
    Block::from_bytes(b)
}

#[allow(clippy::too_many_arguments)]
fn eval_chunk(
    aes: &FixedKeyAes,
    s: &mut Scratch,
    c: &Circuit,
    layer: u32,
    start: usize,
    table: &[u8],
    client: &[Block],
    server: &[Block],
    out: &mut [u64],
) {
    let cn = out.len();
    let l = c.params().l() as usize;
    let Scratch { labels, hin, tweaks, hout } = s;
    let base = |i: usize| tweak_base(layer, (start + i) as u64);
    let slot = |s: u32| s as usize * CHUNK;
    let mut ct = 0usize;
    for op in &c.ops {
        match *op {
            Op::InGarbler { bit, out } => {
                for (i, o) in labels[slot(out)..slot(out) + cn].iter_mut().enumerate() {
                    *o = server[i * l + bit as usize];
                }
            }
            Op::InEvaluator { bit, out } => {
                for (i, o) in labels[slot(out)..slot(out) + cn].iter_mut().enumerate() {
                    *o = client[i * l + bit as usize];
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
                let (hin, tw, hout) = (&mut hin[..2 * cn], &mut tweaks[..2 * cn], &mut hout[..2 * cn]);
                for i in 0..cn {
                    let t = base(i) | h as u128;
                    hin[2 * i..2 * i + 2].copy_from_slice(&[x[i], y[i]]);
                    tw[2 * i..2 * i + 2].copy_from_slice(&[Block(t), Block(t + 1)]);
                }
                aes.tccr_many(hin, tw, hout);
                let table = &table[ct..ct + 32 * cn];
                for i in 0..cn {
                    let (a, b) = (x[i], y[i]);
                    let tg = get(table, 32 * i);
                    let te = get(table, 32 * i + 16);
                    let wg = hout[2 * i] ^ tg.select(a.lsb());
                    let we = hout[2 * i + 1] ^ (te ^ a).select(b.lsb());
                    o[i] = wg ^ we;
                }
                ct += 32 * cn;
            }
            Op::AndKnown { x, out, h, .. } => {
                let (x, _, o) = split3(labels, CHUNK, x, x, out, cn);
                let (hin, tw, hout) = (&mut hin[..cn], &mut tweaks[..cn], &mut hout[..cn]);
                for i in 0..cn {
                    hin[i] = x[i];
                    tw[i] = Block(base(i) | h as u128);
                }
                aes.tccr_many(hin, tw, hout);
                let table = &table[ct..ct + 16 * cn];
                for i in 0..cn {
                    o[i] = hout[i] ^ get(table, 16 * i).select(x[i].lsb());
                }
                ct += 16 * cn;
            }
        }
    }
    let low = c.low_bits();
    let top = c.top_bits();
    let dec = c.decode_bytes();
    let carry = &labels[slot(c.top_carry)..slot(c.top_carry) + cn];
    let (hin, tw, hout) = (&mut hin[..cn], &mut tweaks[..cn], &mut hout[..cn]);
    for i in 0..cn {
        hin[i] = carry[i];
        tw[i] = Block(base(i) | c.top_h as u128);
    }
    aes.tccr_many(hin, tw, hout);
    let top_mask = low_mask(top);
    let dtable = &table[ct..ct + dec * cn];
    for i in 0..cn {
        let mut buf = [0u8; 16];
        buf[..dec].copy_from_slice(&dtable[i * dec..(i + 1) * dec]);
        let bits = u128::from_le_bytes(buf);
        let mut v = 0u64;
        for (j, s) in c.low_out.iter().enumerate() {
            v |= ((labels[slot(*s) + i].lsb() as u128 ^ (bits >> j)) as u64 & 1) << j;
        }
        let row_shift = low + if carry[i].lsb() { top } else { 0 };
        let row = (bits >> row_shift) as u64 & top_mask;
        let hi = (row ^ hout[i].0 as u64) & top_mask;
        out[i] = v | (hi << low);
    }
}
