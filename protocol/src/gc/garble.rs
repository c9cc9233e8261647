//! The garbler (server side, offline): half-gates garbling of a whole layer.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::circuit::Op;
use super::labels::{ClientInputLabels, GarbledTables, ServerInputLabels};
use super::{CHUNK, Circuit, low_mask, split3, tweak_base};
use crate::crypto::{Block, FixedKeyAes};
use crate::{Error, Result};

/// The global free-XOR offset Δ: the one label of every wire is the zero label
/// XOR Δ. Its lsb is 1, so the two labels of a wire have different
/// point-and-permute bits. Secret; zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Delta(Block);

impl Delta {
    /// A fresh uniformly random Δ with lsb 1.
    pub fn random<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        Self(Block(Block::random(rng).0 | 1))
    }

    /// Δ from a block, for example the correlation of a correlated OT, so
    /// that the OT delivers the client's input labels directly.
    ///
    /// # Errors
    /// [`Error::BadInput`] if the lsb is 0 (point-and-permute needs it set).
    pub fn from_block(b: Block) -> Result<Self> {
        if !b.lsb() {
            return Err(Error::BadInput("Δ must have lsb 1".into()));
        }
        Ok(Self(b))
    }

    /// The block value.
    pub fn block(&self) -> Block {
        self.0
    }
}

impl std::fmt::Debug for Delta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Delta(..)")
    }
}

/// Everything the garbler produces for one layer of n activations.
///
/// `tables` go to the client offline; `client_inputs` feed the correlated OT
/// for the client's shares; `server_inputs` stay with the server until its
/// shares are known online.
pub struct GarbledLayer {
    /// Garbled tables and decoding information, for the client.
    pub tables: GarbledTables,
    /// The client's input zero labels and Δ, for the OT sender.
    pub client_inputs: ClientInputLabels,
    /// The server's input zero labels and Δ, consumed online.
    pub server_inputs: ServerInputLabels,
}

/// The garbler. Holds reusable scratch buffers; a Δ is fresh per layer unless
/// one is fixed with [`Garbler::with_delta`].
pub struct Garbler {
    aes: FixedKeyAes,
    rng: ChaCha20Rng,
    shared_delta: Option<Delta>,
    /// Last layer index garbled under the shared Δ (tweak uniqueness).
    last_layer: Option<u32>,
    scratch: Scratch,
}

/// Working buffers reused across chunks and layers.
#[derive(Default, Zeroize, ZeroizeOnDrop)]
struct Scratch {
    labels: Vec<Block>,
    hin: Vec<Block>,
    tweaks: Vec<Block>,
    hout: Vec<Block>,
    known: Vec<u64>,
}

impl Scratch {
    fn ensure(&mut self, slots: usize) {
        self.labels.resize(slots * CHUNK, Block::ZERO);
        self.hin.resize(4 * CHUNK, Block::ZERO);
        self.tweaks.resize(4 * CHUNK, Block::ZERO);
        self.hout.resize(4 * CHUNK, Block::ZERO);
        self.known.resize(CHUNK, 0);
    }
}

/// Label generator: AES-128 in counter mode under a fresh secret key.
struct LabelPrg {
    aes: FixedKeyAes,
    counter: u128,
}

impl LabelPrg {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        let mut key = [0u8; 16];
        rng.fill_bytes(&mut key);
        let aes = FixedKeyAes::with_key(key);
        key.zeroize();
        Self { aes, counter: 0 }
    }

    fn fill(&mut self, out: &mut [Block]) {
        for o in out.iter_mut() {
            *o = Block(self.counter);
            self.counter += 1;
        }
        self.aes.permute_many(out);
    }
}

impl Default for Garbler {
    fn default() -> Self {
        Self::new()
    }
}

impl Garbler {
    /// A garbler seeded from the operating system, fresh Δ per layer.
    pub fn new() -> Self {
        Self::from_rng(ChaCha20Rng::from_os_rng())
    }

    /// A garbler drawing Δ and label keys from `rng` (seeded in tests).
    pub fn from_rng(rng: ChaCha20Rng) -> Self {
        Self { aes: FixedKeyAes::new(), rng, shared_delta: None, last_layer: None, scratch: Scratch::default() }
    }

    /// A garbler that uses `delta` for every layer (for example the
    /// correlation of the session's correlated OT). Layer indices must then
    /// strictly increase, so that no TCCR tweak repeats under one Δ.
    pub fn with_delta(delta: Delta, rng: ChaCha20Rng) -> Self {
        Self { shared_delta: Some(delta), ..Self::from_rng(rng) }
    }

    /// Garbles `pads.len()` instances of `circuit` for layer `layer`; `pads[i]`
    /// is the server's pad p of instance i (reduced mod 2^l), hard-wired as
    /// garbler-known bits.
    ///
    /// # Errors
    /// [`Error::BadInput`] for an unreduced pad, or a layer index that does
    /// not increase under a shared Δ.
    pub fn garble_layer(&mut self, circuit: &Circuit, layer: u32, pads: &[u64]) -> Result<GarbledLayer> {
        let params = circuit.params();
        let l = params.l() as usize;
        let n = pads.len();
        if let Some(p) = pads.iter().find(|p| **p & !params.mask() != 0) {
            return Err(Error::BadInput(format!("pad {p:#x} is not reduced mod 2^{l}")));
        }
        let delta = match &self.shared_delta {
            Some(d) => {
                if self.last_layer.is_some_and(|last| layer <= last) {
                    return Err(Error::BadInput(format!(
                        "layer index {layer} does not increase under a shared Δ (tweaks would repeat)"
                    )));
                }
                self.last_layer = Some(layer);
                d.clone()
            }
            None => Delta::random(&mut self.rng),
        };
        let per = circuit.table_bytes();
        let total = n.checked_mul(per).ok_or_else(|| Error::BadInput(format!("layer of {n} activations is too large")))?;
        let mut bytes = vec![0u8; total];
        let mut server_zero = vec![Block::ZERO; n * l];
        let mut client_zero = vec![Block::ZERO; n * l];
        let mut prg = LabelPrg::new(&mut self.rng);
        self.scratch.ensure(circuit.slots);
        let mut start = 0;
        while start < n {
            let cn = CHUNK.min(n - start);
            garble_chunk(
                &self.aes,
                &mut self.scratch,
                &mut prg,
                circuit,
                delta.block(),
                layer,
                start,
                &pads[start..start + cn],
                &mut bytes[start * per..(start + cn) * per],
                &mut server_zero[start * l..(start + cn) * l],
                &mut client_zero[start * l..(start + cn) * l],
            );
            start += cn;
        }
        self.scratch.labels.zeroize();
        self.scratch.hin.zeroize();
        self.scratch.hout.zeroize();
        Ok(GarbledLayer {
            tables: GarbledTables { kind: circuit.kind(), params, layer, n, bytes },
            client_inputs: ClientInputLabels { params, n, zero: client_zero, delta: delta.clone() },
            server_inputs: ServerInputLabels { params, layer, n, zero: server_zero, delta },
        })
    }
}

#[inline(always)]
fn put(table: &mut [u8], off: usize, b: Block) {
    table[off..off + 16].copy_from_slice(&b.to_bytes());
}

/// Garbles instances `start..start + pads.len()` (one chunk), gate by gate.
#[allow(clippy::too_many_arguments)]
fn garble_chunk(
    aes: &FixedKeyAes,
    s: &mut Scratch,
    prg: &mut LabelPrg,
    c: &Circuit,
    delta: Block,
    layer: u32,
    start: usize,
    pads: &[u64],
    table: &mut [u8],
    server_zero: &mut [Block],
    client_zero: &mut [Block],
) {
    let cn = pads.len();
    let l = c.params().l() as usize;
    let Scratch { labels, hin, tweaks, hout, known } = s;
    for (k, p) in known.iter_mut().zip(pads) {
        *k = c.known(*p);
    }
    let base = |i: usize| tweak_base(layer, (start + i) as u64);
    let slot = |s: u32| s as usize * CHUNK;
    let mut ct = 0usize; // table offset of the next gate's ciphertexts
    for op in &c.ops {
        match *op {
            Op::InGarbler { bit, out } => {
                let o = &mut labels[slot(out)..slot(out) + cn];
                prg.fill(o);
                for (i, v) in o.iter().enumerate() {
                    server_zero[i * l + bit as usize] = *v;
                }
            }
            Op::InEvaluator { bit, out } => {
                let o = &mut labels[slot(out)..slot(out) + cn];
                prg.fill(o);
                for (i, v) in o.iter().enumerate() {
                    client_zero[i * l + bit as usize] = *v;
                }
            }
            Op::Xor { x, y, out } => {
                let (x, y, o) = split3(labels, CHUNK, x, y, out, cn);
                for ((o, x), y) in o.iter_mut().zip(x).zip(y) {
                    *o = *x ^ *y;
                }
            }
            Op::Not { x, out } => {
                let (x, _, o) = split3(labels, CHUNK, x, x, out, cn);
                for (o, x) in o.iter_mut().zip(x) {
                    *o = *x ^ delta;
                }
            }
            Op::XorKnown { x, bit, out } => {
                let (x, _, o) = split3(labels, CHUNK, x, x, out, cn);
                for ((o, x), k) in o.iter_mut().zip(x).zip(known.iter()) {
                    *o = *x ^ delta.select((k >> bit) & 1 == 1);
                }
            }
            Op::And { x, y, out, h } => {
                let (x, y, o) = split3(labels, CHUNK, x, y, out, cn);
                let (hin, tw, hout) = (&mut hin[..4 * cn], &mut tweaks[..4 * cn], &mut hout[..4 * cn]);
                for i in 0..cn {
                    let (a0, b0) = (x[i], y[i]);
                    let t = base(i) | h as u128;
                    hin[4 * i..4 * i + 4].copy_from_slice(&[a0, a0 ^ delta, b0, b0 ^ delta]);
                    tw[4 * i..4 * i + 4].copy_from_slice(&[Block(t), Block(t), Block(t + 1), Block(t + 1)]);
                }
                aes.tccr_many(hin, tw, hout);
                let table = &mut table[ct..ct + 32 * cn];
                for i in 0..cn {
                    let (a0, b0) = (x[i], y[i]);
                    let (ha0, ha1, hb0, hb1) = (hout[4 * i], hout[4 * i + 1], hout[4 * i + 2], hout[4 * i + 3]);
                    let (pa, pb) = (a0.lsb(), b0.lsb());
                    // Garbler half: a & pb. Evaluator half: a & (b ^ pb).
                    let tg = ha0 ^ ha1 ^ delta.select(pb);
                    let wg0 = ha0 ^ tg.select(pa);
                    let te = hb0 ^ hb1 ^ a0;
                    let we0 = hb0 ^ (hb0 ^ hb1).select(pb);
                    o[i] = wg0 ^ we0;
                    put(table, 32 * i, tg);
                    put(table, 32 * i + 16, te);
                }
                ct += 32 * cn;
            }
            Op::AndKnown { x, bit, out, h } => {
                let (x, _, o) = split3(labels, CHUNK, x, x, out, cn);
                let (hin, tw, hout) = (&mut hin[..2 * cn], &mut tweaks[..2 * cn], &mut hout[..2 * cn]);
                for i in 0..cn {
                    let t = Block(base(i) | h as u128);
                    hin[2 * i..2 * i + 2].copy_from_slice(&[x[i], x[i] ^ delta]);
                    tw[2 * i..2 * i + 2].copy_from_slice(&[t, t]);
                }
                aes.tccr_many(hin, tw, hout);
                let table = &mut table[ct..ct + 16 * cn];
                for i in 0..cn {
                    let (h0, h1) = (hout[2 * i], hout[2 * i + 1]);
                    let k = (known[i] >> bit) & 1 == 1;
                    let tg = h0 ^ h1 ^ delta.select(k);
                    o[i] = h0 ^ tg.select(x[i].lsb());
                    put(table, 16 * i, tg);
                }
                ct += 16 * cn;
            }
        }
    }
    // Decoding information: lsb of each low output's zero label, then the two
    // rows of the high-bits table, row lsb(D_v) holding (K >> low) + v masked by
    // the hash of D_v (one-wire garbled table with point-and-permute).
    let low = c.low_bits();
    let top = c.top_bits();
    let dec = c.decode_bytes();
    let carry = &labels[slot(c.top_carry)..slot(c.top_carry) + cn];
    let (hin, tw, hout) = (&mut hin[..2 * cn], &mut tweaks[..2 * cn], &mut hout[..2 * cn]);
    for i in 0..cn {
        let t = Block(base(i) | c.top_h as u128);
        hin[2 * i..2 * i + 2].copy_from_slice(&[carry[i], carry[i] ^ delta]);
        tw[2 * i..2 * i + 2].copy_from_slice(&[t, t]);
    }
    aes.tccr_many(hin, tw, hout);
    let top_mask = low_mask(top);
    let dtable = &mut table[ct..ct + dec * cn];
    for i in 0..cn {
        let mut bits: u128 = 0;
        for (j, s) in c.low_out.iter().enumerate() {
            bits |= (labels[slot(*s) + i].lsb() as u128) << j;
        }
        let hi = known[i] >> low;
        let p0 = carry[i].lsb() as usize;
        let mut rows = [0u64; 2];
        for v in 0..2usize {
            rows[p0 ^ v] = (hi.wrapping_add(v as u64) ^ hout[2 * i + v].0 as u64) & top_mask;
        }
        bits |= (rows[0] as u128) << low;
        bits |= (rows[1] as u128) << (low + top);
        dtable[i * dec..(i + 1) * dec].copy_from_slice(&bits.to_le_bytes()[..dec]);
    }
}
