//! Garbled circuits for the activations: garbling of ReLU with exact
//! truncation, and of truncation alone, a whole layer at a time.
//!
//! Schemes ([`Scheme`], fixed per [`Circuit`]): three-halves (Rosulek and
//! Roy, "Three Halves Make a Whole?", CRYPTO 2021; the default: 24 bytes and
//! 5 control bits per AND gate, see `three_halves.rs` for the construction,
//! its hash and tweaks and the security argument) or half-gates (Zahur,
//! Rosulek and Evans, "Two halves make a whole", EUROCRYPT 2015: 32 bytes per
//! AND gate), both with free-XOR (Kolesnikov and Schneider, ICALP 2008) and
//! point-and-permute, hashing with fixed-key AES through the tweakable
//! circular correlation-robust hash of Guo, Katz, Wang and Yu (IEEE S&P 2020)
//! with a tweak unique to every (garbler nonce, layer, instance, hash) under
//! one Δ (see [`GcNonce`], the layer-index rule of [`Garbler::with_delta`]
//! and *One Δ per session* below).
//! Garbler-known pad bits cost a free XOR or one garbler half-gate (16 bytes)
//! in both schemes, and the top output bits come from a two-row table.
//!
//! - [`circuit`]: the circuits, their gate counts and sizes, and the cleartext
//!   twin ([`Circuit::eval_clear`]) checked against the formula [`reference()`].
//! - [`garble`]: the [`Garbler`] (server, offline) and what it produces for
//!   one layer: [`GarbledLayer`].
//! - [`eval`]: the [`Evaluator`] (client).
//! - [`labels`]: the messages and their byte encodings, checked against the
//!   expected shape on decode.
//! - `kernels.rs`, `three_halves.rs`: the AND gate over a run of instances
//!   for each scheme, portable, dispatching to the AVX-512 + VAES kernels of
//!   `crypto/simd.rs` when the CPU has them.
//!
//! Flow for one layer of n activations (docs/ARCHITECTURE.md §3): offline the
//! server garbles ([`Garbler::garble_layer`]) and streams
//! [`GarbledTables`] to the client; the client's input labels go through
//! correlated OT (the OT's output [`crate::ot::CorrelatedZeros`] goes into
//! [`Garbler::garble_layer_streaming_with_client_labels`]; otherwise
//! [`ClientInputLabels`] holds the Δ-correlated zero labels and is consumed
//! by [`ClientInputLabels::into_ot_pairs`] or [`ClientInputLabels::into_parts`]);
//! the evaluator uses the garbler's public nonce ([`Garbler::nonce`]);
//! online the server turns its share into labels
//! ([`ServerInputLabels::encode_share`], consuming the offline material) and
//! the client evaluates ([`Evaluator::evaluate_layer`], consuming tables and
//! labels), learning `act(x) + p` for each position.
//!
//! Layer-wise processing: instances are handled in chunks of [`CHUNK`], and
//! within a chunk gate by gate, so the `CHUNK` copies of a gate are hashed in
//! one batched AES call while the working labels stay in the L2 cache. The
//! chunking is part of the table layout.
//!
//! # Example
//! ```
//! use pi_protocol::gc::*;
//! # fn main() -> pi_protocol::Result<()> {
//! let params = ActivationParams::DEFAULT;
//! let circuit = Circuit::relu(params); // built once, reused for every layer
//! let (a, b, p) = ([100u64 << 12, 7], [5u64 << 12, params.mask() - 100], [42u64, 43]); // z = 105 * 2^12, -94
//! // Server, offline.
//! let mut garbler = Garbler::new();
//! let nonce = garbler.nonce(); // public: sent to the client with the tables
//! let GarbledLayer { tables, client_inputs, server_inputs } = garbler.garble_layer(&circuit, 0, &p)?;
//! // What a correlated OT delivers to the client: zero label ^ b_ij * Δ.
//! let (zero, delta) = client_inputs.into_parts();
//! let delta = delta.block();
//! let l = params.l() as usize;
//! let picked = zero.iter().enumerate().map(|(k, z)| *z ^ delta.select((b[k / l] >> (k % l)) & 1 == 1)).collect();
//! let client = ClientLabels::from_blocks(params, 2, picked)?;
//! // Server, online: labels of its shares. Client: evaluate.
//! let server = server_inputs.encode_share(&a)?;
//! let out = Evaluator::new(nonce).evaluate_layer(&circuit, tables, client, server)?;
//! assert_eq!(out[0], (105 + 42) & params.mask()); // ReLU(trunc(105 * 2^12)) + 42
//! assert_eq!(out[1], 43); // a + b is negative: ReLU gives 0, plus the pad
//! # Ok(())
//! # }
//! ```
//!
//! # One Δ per session
//! A session draws one Δ (lsb 1) as the correlation of its silent COT
//! instance ([`crate::ot::bulk`]), whose outputs are the client's input
//! labels, so the garbled layers of all the session's inferences share that
//! Δ: together they are one large circuit garbled with free XOR. That is as
//! secure as garbling one circuit (Zahur, Rosulek and Evans for half-gates;
//! Rosulek and Roy for three-halves) provided the hash, the TCCR of Guo,
//! Katz, Wang and Yu, never sees the same tweak twice under that Δ
//! (their security game allows any number of queries with distinct
//! tweaks). Every tweak ([`tweak_base`]) is (domain bit, layer index,
//! garbler nonce, instance, hash index), and in a session:
//! - inference i garbles with its own garbler, whose nonce *is* i
//!   ([`GcNonce::new`]): the server checks that inference numbers count up
//!   from 0, so no two inferences of the session share a nonce;
//! - within one garbler each garbled sub-layer takes its own layer index,
//!   strictly increasing ([`Garbler::with_delta`] refuses anything else), and
//!   within a layer instances and hash indices are distinct.
//!
//! So no two hash calls under the session's Δ share a tweak. Nothing else
//! hashes under Δ with the garbling hash: the silent COT's tree expansion
//! uses AES under its own public keys (one per round and tree), its IKNP
//! bootstrap only correlated OTs, and its random-OT hash (tweaks with bit 127
//! clear) is not used in a GC session. Sessions draw independent Δs, so
//! tweaks may repeat across sessions. Other inputs of the proofs hold as
//! before: the evaluator sees one label per wire; the colour (lsb) of the
//! client's own input labels tells it nothing new (it knows its bits, as
//! under any OT), and every other wire's colour is uniform to it (the
//! server's input labels are drawn per layer, AND outputs are hashes).
//! Preprocessed inferences may be evaluated in any order: each keeps its
//! tables, labels and nonce. A session's Δ lives as long as the session; a
//! new session draws a new one.
//!
//! Offline material is used once; reuse does not compile:
//! ```compile_fail,E0382
//! # use pi_protocol::gc::*;
//! # fn f(s: ServerInputLabels, a: &[u64]) {
//! let first = s.encode_share(a);
//! let again = s.encode_share(a); // use of moved value
//! # }
//! ```
//! ```compile_fail,E0382
//! # use pi_protocol::gc::*;
//! # fn f(c: ClientInputLabels) {
//! let pairs = c.into_ot_pairs();
//! let again = c.into_ot_pairs(); // use of moved value: one OT per label set
//! # }
//! ```
//! ```compile_fail,E0599
//! # use pi_protocol::gc::*;
//! # fn f(d: Delta) { let copy = d.clone(); } // Δ is not Clone
//! ```
//! ```compile_fail,E0382
//! # use pi_protocol::gc::*;
//! # fn f(e: &mut Evaluator, c: &Circuit, t: GarbledTables, l1: ClientLabels, s1: ServerLabels, l2: ClientLabels, s2: ServerLabels) {
//! let first = e.evaluate_layer(c, t, l1, s1);
//! let again = e.evaluate_layer(c, t, l2, s2); // use of moved value
//! # }
//! ```
//! Used once each, the same code compiles, so the failures above come from
//! the reuse alone (stable rustdoc does not check the error codes):
//! ```
//! # use pi_protocol::gc::*;
//! # fn f(s: ServerInputLabels, a: &[u64], c: ClientInputLabels, d: Delta) {
//! let first = s.encode_share(a);
//! let pairs = c.into_ot_pairs();
//! let moved = d;
//! # }
//! # fn g(e: &mut Evaluator, c: &Circuit, t: GarbledTables, l1: ClientLabels, s1: ServerLabels) {
//! let first = e.evaluate_layer(c, t, l1, s1);
//! # }
//! ```

pub mod circuit;
pub mod eval;
pub mod garble;
mod kernels;
pub mod labels;
pub(crate) mod three_halves;

#[cfg(test)]
mod tests;

pub use circuit::{ActivationKind, Circuit, reference};
// `Scheme` is defined below.
pub use eval::Evaluator;
pub use garble::{Delta, GarbledInputs, GarbledLayer, Garbler};
// `GcNonce`, `MAX_LAYER`, `MAX_INSTANCES` are defined below.
pub use labels::{
    ClientInputLabels, ClientLabels, GarbledTables, ServerInputLabels, ServerLabels,
    TablesAssembler,
};

use crate::crypto::Block;
use crate::{Error, Result};

/// Instances garbled together gate by gate. Part of the table layout: the
/// tables of chunk c are contiguous and hold, gate by gate, the ciphertexts
/// of its instances, then (three-halves) their control bits, then their
/// decoding bytes.
pub const CHUNK: usize = 256;

/// How AND gates with two secret inputs are garbled. Both schemes share
/// labels, free XOR, the garbler half-gate for garbler-known bits, the hash
/// and its tweak layout, and the decoding table; they differ in the bytes and
/// hashes per AND gate. Part of the wire format: a circuit fixes its scheme
/// ([`Circuit::with_scheme`]) and tables decode only for that circuit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Half-gates (Zahur, Rosulek and Evans, EUROCRYPT 2015): two ciphertexts
    /// (32 bytes) per AND gate; 4 hashes to garble, 2 to evaluate.
    HalfGates,
    /// Three-halves (Rosulek and Roy, CRYPTO 2021; see `gc/three_halves.rs`):
    /// three half-ciphertexts and 5 control bits (24.625 bytes) per AND
    /// gate; 6 hashes to garble, 3 to evaluate. The default.
    #[default]
    ThreeHalves,
}

impl Scheme {
    /// The scheme sessions use.
    pub const DEFAULT: Self = Self::ThreeHalves;

    /// Both schemes.
    pub const ALL: [Self; 2] = [Self::HalfGates, Self::ThreeHalves];

    /// The name on the command line and in reports: `half-gates` or `three-halves`.
    pub fn name(self) -> &'static str {
        match self {
            Self::HalfGates => "half-gates",
            Self::ThreeHalves => "three-halves",
        }
    }

    /// Hash indices (tweaks) one AND gate instance uses.
    pub(crate) fn hashes_per_and(self) -> u32 {
        match self {
            Self::HalfGates => 2,
            Self::ThreeHalves => 3,
        }
    }

    /// Table bytes of one AND gate instance, control bits excluded.
    pub(crate) fn and_bytes(self) -> usize {
        match self {
            Self::HalfGates => 32,
            Self::ThreeHalves => three_halves::AND_BYTES,
        }
    }

    /// Control bits of one AND gate instance (packed after the gates).
    pub(crate) fn control_bits_per_and(self) -> usize {
        match self {
            Self::HalfGates => 0,
            Self::ThreeHalves => three_halves::CONTROL_BITS,
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Scheme {
    type Err = Error;

    /// Parses [`Scheme::name`].
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "garbling scheme {s:?}: expected half-gates or three-halves"
                ))
            })
    }
}

/// Ring parameters of an activation circuit: l value bits, f fractional bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActivationParams {
    l: u32,
    f: u32,
}

impl ActivationParams {
    /// The project default: l = 37, f = 12 (docs/ARCHITECTURE.md §1).
    pub const DEFAULT: Self = Self { l: 37, f: 12 };

    /// Checks `2 <= l <= 64` and `1 <= f <= l - 2` (ReLU needs one value bit
    /// below the sign after truncation).
    pub fn new(l: u32, f: u32) -> Result<Self> {
        if !(2..=64).contains(&l) || f == 0 || f + 2 > l {
            return Err(Error::BadInput(format!(
                "activation parameters l = {l}, f = {f}: need 2 <= l <= 64 and 1 <= f <= l - 2"
            )));
        }
        Ok(Self { l, f })
    }

    /// Ring bits.
    pub fn l(self) -> u32 {
        self.l
    }

    /// Fractional bits removed by the truncation.
    pub fn f(self) -> u32 {
        self.f
    }

    /// `2^l - 1`.
    pub fn mask(self) -> u64 {
        u64::MAX >> (64 - self.l)
    }
}

impl Default for ActivationParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Largest layer index: bit 31 of the layer field is the domain bit.
pub const MAX_LAYER: u32 = (1 << 31) - 1;

/// Most instances in one layer: the instance field of the tweak has 32 bits.
pub const MAX_INSTANCES: u64 = 1 << 32;

/// Hash indices available to one instance: the hash field has 16 bits.
pub(crate) const HASHES_PER_INSTANCE: u32 = 1 << 16;

/// Bits of a garbler nonce.
const NONCE_BITS: u32 = 48;

/// A garbler's public tweak nonce (48 bits), part of every tweak it uses,
/// so that garblers under the same Δ repeat no tweak: either drawn at
/// random when the [`Garbler`] is made (two garblers then collide with
/// probability about k²/2^49 for k garblers), or given, distinct by
/// construction, as the inference number of a session whose inferences
/// share one Δ ([`GcNonce::new`], [`Garbler::with_delta_and_nonce`]; see
/// *One Δ per session* in the module docs). Within one garbler the
/// layer-index rule keeps tweaks distinct. The evaluator needs the same
/// value ([`Evaluator::new`]); it is not secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GcNonce(u64);

impl GcNonce {
    /// Wire size.
    pub const BYTES: usize = 8;

    /// A uniformly random nonce.
    pub fn random<R: rand::RngCore + ?Sized>(rng: &mut R) -> Self {
        Self(rng.next_u64() >> (64 - NONCE_BITS))
    }

    /// The nonce `value`, for example an inference number.
    ///
    /// # Errors
    /// [`Error::BadInput`] unless `value` < 2^48.
    pub fn new(value: u64) -> Result<Self> {
        if value >> NONCE_BITS != 0 {
            return Err(Error::BadInput(format!(
                "garbler nonce {value}: at most 2^48 - 1"
            )));
        }
        Ok(Self(value))
    }

    /// The value (< 2^48).
    pub fn get(self) -> u64 {
        self.0
    }

    /// Little-endian encoding, 8 bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }

    /// Decodes a nonce received from the garbler.
    ///
    /// # Errors
    /// [`Error::PeerMisbehaved`] unless `bytes` is 8 bytes holding a value below 2^48.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let b: [u8; 8] = bytes.try_into().map_err(|_| {
            Error::malformed(format!("garbler nonce: {} bytes, expected 8", bytes.len()))
        })?;
        let v = u64::from_le_bytes(b);
        if v >> NONCE_BITS != 0 {
            return Err(Error::malformed("garbler nonce above 2^48"));
        }
        Ok(Self(v))
    }
}

/// Checks a layer index and a number of instances against the tweak fields.
pub(crate) fn check_layer_shape(layer: u32, n: usize) -> Result<()> {
    if layer > MAX_LAYER {
        return Err(Error::BadInput(format!(
            "layer index {layer} exceeds {MAX_LAYER}"
        )));
    }
    if n as u64 > MAX_INSTANCES {
        return Err(Error::BadInput(format!(
            "layer of {n} activations exceeds {MAX_INSTANCES}"
        )));
    }
    Ok(())
}

/// Tweak domain bit: every garbling tweak has bit 127 set, so that other users
/// of the TCCR hash under the same Δ (a correlated OT whose correlation is
/// the garbling Δ) stay apart by keeping bit 127 clear
/// ([`crate::crypto::tweak`]).
pub const TWEAK_DOMAIN_GC: u128 = crate::crypto::tweak::GC;

/// Shift of the instance field: instance `i` of a chunk adds `i << INSTANCE_SHIFT`.
pub(crate) const INSTANCE_SHIFT: u32 = crate::crypto::tweak::GC_INSTANCE_SHIFT;

/// Tweak of hash 0 of instance `instance` in layer `layer` of the garbler
/// with nonce `nonce`; hash `h` adds `h`. Layout: domain bit 127, layer in
/// bits 96..127, nonce in bits 48..96, instance in bits 16..48, hash index
/// in bits 0..16. Unique per hash call over everything garbled under one Δ
/// by one garbler as long as layer indices do not repeat (enforced by
/// [`Garbler`] for a shared Δ), and across garblers by the random nonce.
/// Callers check the field ranges ([`check_layer_shape`]).
#[inline(always)]
pub(crate) fn tweak_base(nonce: GcNonce, layer: u32, instance: u64) -> u128 {
    debug_assert!(layer <= MAX_LAYER && instance < MAX_INSTANCES && nonce.0 >> NONCE_BITS == 0);
    TWEAK_DOMAIN_GC
        | ((layer as u128) << 96)
        | ((nonce.0 as u128) << 48)
        | ((instance as u128) << INSTANCE_SHIFT)
}

/// Mask of the low `bits` bits of a u64 (`bits <= 64`).
#[inline(always)]
pub(crate) fn low_mask(bits: usize) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// `(x, y, out)` slot slices of length `len` from a buffer of slots of `stride`
/// blocks; `out` differs from `x` and `y` by construction of the circuit.
#[inline(always)]
pub(crate) fn split3(
    buf: &mut [Block],
    stride: usize,
    x: u32,
    y: u32,
    out: u32,
    len: usize,
) -> (&[Block], &[Block], &mut [Block]) {
    let (x, y, out) = (x as usize, y as usize, out as usize);
    debug_assert!(x != out && y != out);
    let (lo, rest) = buf.split_at_mut(out * stride);
    let (o, hi) = rest.split_at_mut(stride);
    let (lo, hi) = (&*lo, &*hi);
    let get = |s: usize| -> &[Block] {
        if s < out {
            &lo[s * stride..s * stride + len]
        } else {
            &hi[(s - out - 1) * stride..(s - out - 1) * stride + len]
        }
    };
    (get(x), get(y), &mut o[..len])
}
