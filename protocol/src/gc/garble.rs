//! The garbler (server side, offline): garbling of a whole layer with the
//! circuit's scheme (half-gates or three-halves).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::circuit::Op;
use super::kernels::AndKernels;
use super::labels::{ClientInputLabels, GarbledTables, LabelKey, ServerInputLabels, ZeroLabels};
use super::{
    CHUNK, Circuit, GcNonce, INSTANCE_SHIFT, Scheme, check_layer_shape, low_mask, split3,
    three_halves, tweak_base,
};
use crate::crypto::{Block, from_aes, to_aes, wipe_aes_blocks, wipe_chacha};
use crate::ot::CorrelatedZeros;
use crate::{Error, Result};

/// The global free-XOR offset Δ: the one label of every wire is the zero label
/// XOR Δ. Its lsb is 1, so the two labels of a wire have different
/// point-and-permute bits. Secret; zeroized on drop.
///
/// Not `Clone`: a Δ value moves into one [`Garbler`] (or one layer's input
/// labels), so copies do not spread by accident. [`Self::block`] and
/// [`Self::from_block`] still let a caller rebuild one on purpose (to key
/// the correlated OT with it); tweaks stay distinct across garblers sharing a
/// Δ thanks to each garbler's [`GcNonce`] (random, or the inference number
/// of a session: [`Garbler::with_delta_and_nonce`]).
#[derive(Zeroize, ZeroizeOnDrop)]
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

    /// A second owner of the same Δ, for the input labels of a layer.
    pub(crate) fn duplicate(&self) -> Self {
        Self(self.0)
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
    kernels: AndKernels,
    rng: ChaCha20Rng,
    nonce: GcNonce,
    shared_delta: Option<Delta>,
    /// Last layer index garbled under the shared Δ (tweak uniqueness).
    last_layer: Option<u32>,
    scratch: Scratch,
    /// Tables of one chunk (public once sent, so not wiped).
    chunk_bytes: Vec<u8>,
}

/// Working buffers reused across chunks and layers; wiped after each layer
/// and on drop.
#[derive(Default)]
struct Scratch {
    labels: Vec<Block>,
    hin: Vec<aes::Block>,
    hscratch: Vec<aes::Block>,
    known: Vec<u64>,
    packed: Vec<u128>,
    /// Three-halves: 2 random bits per instance of one gate (secret).
    ubits: Vec<u8>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Drop for Garbler {
    fn drop(&mut self) {
        // The generator's state determines every future Δ and label key.
        wipe_chacha(&mut self.rng);
    }
}

impl Scratch {
    /// Clears label material (hash inputs include zero labels and Δ; the
    /// known bits hold pads; packed holds permute bits of zero labels).
    fn wipe(&mut self) {
        self.labels.zeroize();
        self.known.zeroize();
        self.packed.zeroize();
        self.ubits.zeroize();
        wipe_aes_blocks(&mut self.hin);
        wipe_aes_blocks(&mut self.hscratch);
    }

    fn ensure(&mut self, slots: usize) {
        self.labels.resize(slots * CHUNK, Block::ZERO);
        self.hin.resize(6 * CHUNK, aes::Block::default());
        self.hscratch.resize(6 * CHUNK, aes::Block::default());
        self.known.resize(CHUNK, 0);
        self.packed.resize(CHUNK, 0);
        self.ubits.resize(CHUNK.div_ceil(4), 0);
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

    /// A garbler drawing its nonce, Δ and label keys from `rng` (seeded in tests).
    pub fn from_rng(rng: ChaCha20Rng) -> Self {
        Self::make(None, None, rng)
    }

    /// A garbler that uses `delta` for every layer (for example the
    /// correlation of the session's correlated OT).
    ///
    /// Tweak rule under a shared Δ: every garbled layer needs its own layer
    /// index, and indices must strictly increase across calls (checked:
    /// [`Error::BadInput`] otherwise). In particular the ReLU and the
    /// truncation-only sub-layers of one network layer are two garbled
    /// layers and take two distinct indices (for example 2k and 2k + 1 for
    /// activation layer k). Garblers made twice with the same Δ are kept
    /// apart by their random [`GcNonce`]s.
    pub fn with_delta(delta: Delta, rng: ChaCha20Rng) -> Self {
        Self::make(Some(delta), None, rng)
    }

    /// As [`Self::with_delta`], with the given public nonce instead of a
    /// random one: the caller keeps the nonces of all garblers under `delta`
    /// distinct (a session uses the inference number; see *One Δ per
    /// session* in the module docs).
    pub fn with_delta_and_nonce(delta: Delta, nonce: GcNonce, rng: ChaCha20Rng) -> Self {
        Self::make(Some(delta), Some(nonce), rng)
    }

    fn make(shared_delta: Option<Delta>, nonce: Option<GcNonce>, mut rng: ChaCha20Rng) -> Self {
        let nonce = nonce.unwrap_or_else(|| GcNonce::random(&mut rng));
        Self {
            kernels: AndKernels::detect(),
            rng,
            nonce,
            shared_delta,
            last_layer: None,
            scratch: Scratch::default(),
            chunk_bytes: Vec::new(),
        }
    }

    /// The public nonce in every tweak of this garbler: the evaluator needs
    /// it ([`super::Evaluator::new`]); send it once per garbler.
    pub fn nonce(&self) -> GcNonce {
        self.nonce
    }

    /// Garbles `pads.len()` instances of `circuit` for layer `layer`; `pads[i]`
    /// is the server's pad p of instance i (reduced mod 2^l), hard-wired as
    /// garbler-known bits. Collects the whole layer's tables in memory; see
    /// [`Self::garble_layer_streaming`] to send them chunk by chunk instead.
    ///
    /// # Errors
    /// [`Error::BadInput`] for an unreduced pad, a layer index above
    /// [`super::MAX_LAYER`] or one that does not increase under a shared Δ,
    /// or more than [`super::MAX_INSTANCES`] pads.
    pub fn garble_layer(
        &mut self,
        circuit: &Circuit,
        layer: u32,
        pads: &[u64],
    ) -> Result<GarbledLayer> {
        let total = pads
            .len()
            .checked_mul(circuit.table_bytes())
            .ok_or_else(|| {
                Error::BadInput(format!("layer of {} activations is too large", pads.len()))
            })?;
        let mut bytes = Vec::with_capacity(total);
        let inputs = self
            .garble_layer_streaming(circuit, layer, pads, |chunk| bytes.extend_from_slice(chunk))?;
        let (client_inputs, server_inputs) = inputs.into_parts();
        Ok(GarbledLayer {
            tables: GarbledTables {
                kind: circuit.kind(),
                params: circuit.params(),
                scheme: circuit.scheme(),
                layer,
                n: pads.len(),
                bytes,
            },
            client_inputs,
            server_inputs,
        })
    }

    /// As [`Self::garble_layer`], but hands the tables to `sink` chunk by
    /// chunk (at most [`CHUNK`] instances, `circuit.table_bytes()` each, in
    /// order) from one reused buffer, so a layer's tables never need to sit
    /// in memory at once. The concatenation of all chunks is the encoding
    /// [`GarbledTables::from_bytes`] expects.
    ///
    /// # Errors
    /// As [`Self::garble_layer`]; nothing is handed to `sink` on error.
    pub fn garble_layer_streaming(
        &mut self,
        circuit: &Circuit,
        layer: u32,
        pads: &[u64],
        sink: impl FnMut(&[u8]),
    ) -> Result<GarbledInputs> {
        self.garble_inner(circuit, layer, pads, None, sink)
    }

    /// As [`Self::garble_layer_streaming`], but the client's input zero labels
    /// are given (`n * l` blocks, instance-major) instead of drawn: the sender
    /// outputs of a random correlated OT with the client's shares as choice
    /// bits and the garbler's Δ as correlation, so the client already holds
    /// its labels and no OT correction is sent. Needs a garbler made with
    /// [`Self::with_delta`] (Δ = the OT's correlation). The OT output is
    /// consumed (moved into the returned client input labels, wiped on drop).
    ///
    /// # Errors
    /// As [`Self::garble_layer`], and [`Error::BadInput`] without a shared Δ
    /// or for a wrong number of labels.
    pub fn garble_layer_streaming_with_client_labels(
        &mut self,
        circuit: &Circuit,
        layer: u32,
        pads: &[u64],
        mut client_zero: CorrelatedZeros,
        sink: impl FnMut(&[u8]),
    ) -> Result<GarbledInputs> {
        if self.shared_delta.is_none() {
            return Err(Error::BadInput(
                "client labels from a correlated OT need the OT's Δ (Garbler::with_delta)".into(),
            ));
        }
        if Some(client_zero.len()) != pads.len().checked_mul(circuit.params().l() as usize) {
            return Err(Error::BadInput(format!(
                "{} client zero labels for {} activations of {} bits",
                client_zero.len(),
                pads.len(),
                circuit.params().l()
            )));
        }
        self.garble_inner(circuit, layer, pads, Some(client_zero.take_blocks()), sink)
    }

    fn garble_inner(
        &mut self,
        circuit: &Circuit,
        layer: u32,
        pads: &[u64],
        given_client_zero: Option<Vec<Block>>,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<GarbledInputs> {
        let params = circuit.params();
        let l = params.l() as usize;
        let n = pads.len();
        let mut given_client_zero = given_client_zero;
        let wipe_given = |g: &mut Option<Vec<Block>>| {
            if let Some(v) = g.as_mut() {
                v.zeroize();
            }
        };
        // Errors name the position only: pads are secret.
        if let Some(i) = pads.iter().position(|p| *p & !params.mask() != 0) {
            wipe_given(&mut given_client_zero);
            return Err(Error::BadInput(format!("pad {i} is not reduced mod 2^{l}")));
        }
        if let Err(e) = check_layer_shape(layer, n) {
            wipe_given(&mut given_client_zero);
            return Err(e);
        }
        let delta = match &self.shared_delta {
            Some(d) => {
                if self.last_layer.is_some_and(|last| layer <= last) {
                    wipe_given(&mut given_client_zero);
                    return Err(Error::BadInput(format!(
                        "layer index {layer} does not increase under a shared Δ (tweaks would repeat)"
                    )));
                }
                self.last_layer = Some(layer);
                d.duplicate()
            }
            None => Delta::random(&mut self.rng),
        };
        let per = circuit.table_bytes();
        // Zero labels the garbler draws are derived from fresh keys when
        // needed (here, and later for the online share or the OT), never
        // stored as arrays.
        let server_key = LabelKey::random(&mut self.rng);
        let client_zero = match given_client_zero {
            Some(v) => ZeroLabels::Stored(v),
            None => ZeroLabels::Derived(Box::new(LabelKey::random(&mut self.rng)), n * l),
        };
        self.scratch.ensure(circuit.slots);
        self.chunk_bytes.resize(CHUNK * per, 0);
        let mut start = 0;
        while start < n {
            let cn = CHUNK.min(n - start);
            let bytes = &mut self.chunk_bytes[..cn * per];
            garble_chunk(
                &self.kernels,
                &mut self.rng,
                &mut self.scratch,
                &server_key,
                circuit,
                delta.block(),
                self.nonce,
                layer,
                start,
                &pads[start..start + cn],
                bytes,
                &client_zero,
            );
            sink(bytes);
            start += cn;
        }
        self.scratch.wipe();
        Ok(GarbledInputs {
            client_inputs: ClientInputLabels {
                params,
                n,
                zero: client_zero,
                delta: delta.duplicate(),
            },
            server_inputs: ServerInputLabels {
                params,
                layer,
                n,
                key: server_key,
                delta,
            },
        })
    }
}

/// The input labels of a layer garbled with [`Garbler::garble_layer_streaming`].
pub struct GarbledInputs {
    /// The client's input zero labels and Δ, for the OT sender.
    pub client_inputs: ClientInputLabels,
    /// The server's input zero labels and Δ, consumed online.
    pub server_inputs: ServerInputLabels,
}

impl GarbledInputs {
    /// Both parts, by value.
    pub fn into_parts(self) -> (ClientInputLabels, ServerInputLabels) {
        (self.client_inputs, self.server_inputs)
    }
}

/// Garbles instances `start..start + pads.len()` (one chunk), gate by gate.
#[allow(clippy::too_many_arguments)]
fn garble_chunk(
    kernels: &AndKernels,
    rng: &mut ChaCha20Rng,
    s: &mut Scratch,
    server_key: &LabelKey,
    c: &Circuit,
    delta: Block,
    nonce: GcNonce,
    layer: u32,
    start: usize,
    pads: &[u64],
    table: &mut [u8],
    client_zero: &ZeroLabels,
) {
    let cn = pads.len();
    let l = c.params().l() as usize;
    let d = delta.0;
    let aes = kernels.aes();
    let Scratch {
        labels,
        hin,
        hscratch,
        known,
        packed,
        ubits,
    } = s;
    for (k, p) in known.iter_mut().zip(pads) {
        *k = c.known(*p);
    }
    // Tweak of hash h of instance start + i: tw0 + (i << INSTANCE_SHIFT) + h.
    let tw0 = tweak_base(nonce, layer, start as u64);
    let slot = |s: u32| s as usize * CHUNK;
    let scheme = c.scheme();
    let and_bytes = scheme.and_bytes();
    // Gates, then the control bits (zeroed: the kernels OR them in), then
    // the decoding information.
    let (gates, rest) = table.split_at_mut(c.gate_bytes() * cn);
    let (ctrl, dtable) = rest.split_at_mut(c.control_bytes() * cn);
    ctrl.fill(0);
    let mut ct = 0usize; // offset of the next gate's ciphertexts
    let mut and_index = 0usize; // two-input AND gates so far (control bits)
    for op in &c.ops {
        match *op {
            Op::InGarbler { bit, out } => {
                let o = &mut labels[slot(out)..slot(out) + cn];
                server_key.fill((start * l) as u64 + bit as u64, l as u64, o);
            }
            Op::InEvaluator { bit, out } => {
                let o = &mut labels[slot(out)..slot(out) + cn];
                match client_zero {
                    ZeroLabels::Derived(key, _) => {
                        key.fill((start * l) as u64 + bit as u64, l as u64, o)
                    }
                    ZeroLabels::Stored(v) => {
                        for (o, z) in o.iter_mut().zip(v[start * l..].chunks_exact(l)) {
                            *o = z[bit as usize];
                        }
                    }
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
                let table = &mut gates[ct..ct + and_bytes * cn];
                let tw = tw0 + h as u128;
                match scheme {
                    // Half-gates (ZRE15, figure 2): hashes of A0, A1 under
                    // tweak h and of B0, B1 under tweak h + 1, all instances
                    // in one run.
                    Scheme::HalfGates => kernels.garble_and(hin, hscratch, d, x, y, tw, o, table),
                    // Three-halves (RR21, see three_halves.rs): fresh random
                    // control-bit choices per instance.
                    Scheme::ThreeHalves => {
                        let u = &mut ubits[..cn.div_ceil(4)];
                        rng.fill_bytes(u);
                        let bit0 = three_halves::CONTROL_BITS * and_index * cn;
                        kernels.garble_and3(hin, hscratch, d, x, y, tw, u, o, table, ctrl, bit0);
                    }
                }
                ct += and_bytes * cn;
                and_index += 1;
            }
            Op::AndKnown { x, bit, out, h } => {
                // Garbler half-gate for x & K[bit] (ZRE15, section 3.1).
                let (x, _, o) = split3(labels, CHUNK, x, x, out, cn);
                let hin = &mut hin[..2 * cn];
                for (hb, a0) in hin.chunks_exact_mut(2).zip(x) {
                    hb[0] = to_aes(a0.0);
                    hb[1] = to_aes(a0.0 ^ d);
                }
                let h = h as u128;
                aes.tccr_blocks_with(hin, &mut hscratch[..2 * cn], |j| {
                    tw0 + (((j >> 1) as u128) << INSTANCE_SHIFT) + h
                });
                let table = &mut gates[ct..ct + 16 * cn];
                for ((((hb, o), a0), k), tb) in hscratch[..2 * cn]
                    .chunks_exact(2)
                    .zip(o.iter_mut())
                    .zip(x)
                    .zip(known.iter())
                    .zip(table.chunks_exact_mut(16))
                {
                    let (h0, h1) = (from_aes(&hb[0]), from_aes(&hb[1]));
                    let mk = ((*k >> bit) as u128 & 1).wrapping_neg();
                    let tg = h0 ^ h1 ^ (d & mk);
                    *o = Block(h0 ^ (tg & (a0.0 & 1).wrapping_neg()));
                    tb.copy_from_slice(&tg.to_le_bytes());
                }
                ct += 16 * cn;
            }
        }
    }
    // Decoding information: lsb of each low output's zero label, then the two
    // rows of the high-bits table, row lsb(D_v) holding (K >> low) + v masked by
    // the hash of D_v (a one-wire garbled table with point-and-permute).
    let low = c.low_bits();
    let top = c.top_bits();
    let dec = c.decode_bytes();
    let carry = &labels[slot(c.top_carry)..slot(c.top_carry) + cn];
    let hin = &mut hin[..2 * cn];
    for (hb, c0) in hin.chunks_exact_mut(2).zip(carry) {
        hb[0] = to_aes(c0.0);
        hb[1] = to_aes(c0.0 ^ d);
    }
    let h = c.top_h as u128;
    aes.tccr_blocks_with(hin, &mut hscratch[..2 * cn], |j| {
        tw0 + (((j >> 1) as u128) << INSTANCE_SHIFT) + h
    });
    let top_mask = low_mask(top);
    debug_assert_eq!((ct, dtable.len()), (gates.len(), dec * cn));
    // Low output lsbs, gathered output by output (contiguous per slot).
    let bits = &mut packed[..cn];
    bits.fill(0);
    for (j, s) in c.low_out.iter().enumerate() {
        for (b, w) in bits.iter_mut().zip(&labels[slot(*s)..slot(*s) + cn]) {
            *b |= (w.0 & 1) << j;
        }
    }
    for i in 0..cn {
        let mut bits = bits[i];
        let hi = known[i] >> low;
        let p0 = carry[i].lsb() as usize;
        let mut rows = [0u64; 2];
        for v in 0..2usize {
            rows[p0 ^ v] =
                (hi.wrapping_add(v as u64) ^ from_aes(&hscratch[2 * i + v]) as u64) & top_mask;
        }
        bits |= (rows[0] as u128) << low;
        bits |= (rows[1] as u128) << (low + top);
        dtable[i * dec..(i + 1) * dec].copy_from_slice(&bits.to_le_bytes()[..dec]);
    }
}
