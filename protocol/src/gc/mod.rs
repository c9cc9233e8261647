//! Garbled circuits for the activations: half-gates garbling of ReLU with
//! exact truncation, and of truncation alone, a whole layer at a time.
//!
//! Scheme: half-gates (Zahur, Rosulek and Evans, "Two halves make a whole",
//! EUROCRYPT 2015) with free-XOR (Kolesnikov and Schneider, ICALP 2008) and
//! point-and-permute, hashing with fixed-key AES through the tweakable
//! circular correlation-robust hash of Guo, Katz, Wang and Yu (IEEE S&P 2020)
//! with a tweak unique to every (layer, instance, hash) triple.
//!
//! - [`circuit`]: the circuits, their gate counts and sizes, and the cleartext
//!   twin ([`Circuit::eval_clear`]) checked against the formula [`reference()`].
//! - [`garble`]: the [`Garbler`] (server, offline) and what it produces for
//!   one layer: [`GarbledLayer`].
//! - [`eval`]: the [`Evaluator`] (client).
//! - [`labels`]: the messages and their byte encodings, checked against the
//!   expected shape on decode.
//!
//! Flow for one layer of n activations (DESIGN.md section 3.3): offline the
//! server garbles ([`Garbler::garble_layer`]) and streams
//! [`GarbledTables`] to the client; the client's input labels go through
//! correlated OT ([`ClientInputLabels`] holds the Δ-correlated zero labels);
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
//! let GarbledLayer { tables, client_inputs, server_inputs } = Garbler::new().garble_layer(&circuit, 0, &p)?;
//! // What a correlated OT delivers to the client: zero label ^ b_ij * Δ.
//! let (zero, delta) = (client_inputs.zero_labels(), client_inputs.delta().block());
//! let l = params.l() as usize;
//! let picked = zero.iter().enumerate().map(|(k, z)| *z ^ delta.select((b[k / l] >> (k % l)) & 1 == 1)).collect();
//! let client = ClientLabels::from_blocks(params, 2, picked)?;
//! // Server, online: labels of its shares. Client: evaluate.
//! let server = server_inputs.encode_share(&a)?;
//! let out = Evaluator::new().evaluate_layer(&circuit, tables, client, server)?;
//! assert_eq!(out[0], (105 + 42) & params.mask()); // ReLU(trunc(105 * 2^12)) + 42
//! assert_eq!(out[1], 43); // a + b is negative: ReLU gives 0, plus the pad
//! # Ok(())
//! # }
//! ```
//!
//! Offline material is used once; reuse does not compile:
//! ```compile_fail
//! # use pi_protocol::gc::*;
//! # fn f(s: ServerInputLabels, a: &[u64]) {
//! let first = s.encode_share(a);
//! let again = s.encode_share(a); // use of moved value
//! # }
//! ```
//! ```compile_fail
//! # use pi_protocol::gc::*;
//! # fn f(e: &mut Evaluator, c: &Circuit, t: GarbledTables, l1: ClientLabels, s1: ServerLabels, l2: ClientLabels, s2: ServerLabels) {
//! let first = e.evaluate_layer(c, t, l1, s1);
//! let again = e.evaluate_layer(c, t, l2, s2); // use of moved value
//! # }
//! ```

pub mod circuit;
pub mod eval;
pub mod garble;
pub mod labels;

#[cfg(test)]
mod tests;

pub use circuit::{ActivationKind, Circuit, reference};
pub use eval::Evaluator;
pub use garble::{Delta, GarbledInputs, GarbledLayer, Garbler};
pub use labels::{ClientInputLabels, ClientLabels, GarbledTables, ServerInputLabels, ServerLabels, TablesAssembler};

use crate::crypto::Block;
use crate::{Error, Result};

/// Instances garbled together gate by gate. Part of the table layout: the
/// tables of chunk c are contiguous and hold, gate by gate, the ciphertexts
/// of its instances, followed by their decoding bytes.
pub const CHUNK: usize = 256;

/// Ring parameters of an activation circuit: l value bits, f fractional bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActivationParams {
    l: u32,
    f: u32,
}

impl ActivationParams {
    /// The project default: l = 37, f = 12 (DESIGN.md section 1).
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

/// Tweak domain bit: every garbling tweak has bit 127 set, so that other users
/// of the TCCR hash under the same Δ (a correlated OT whose correlation is
/// the garbling Δ) stay apart by keeping bit 127 clear.
pub const TWEAK_DOMAIN_GC: u128 = 1 << 127;

/// Tweak of hash 0 of instance `instance` in layer `layer`; hash `h` adds `h`.
/// Layout: domain bit 127, layer in bits 96..127, instance in bits 32..96,
/// hash index in bits 0..32. Unique per hash call over everything garbled
/// under one Δ as long as layer indices do not repeat (enforced by
/// [`Garbler`] for a shared Δ).
#[inline(always)]
pub(crate) fn tweak_base(layer: u32, instance: u64) -> u128 {
    debug_assert!(layer <= MAX_LAYER);
    TWEAK_DOMAIN_GC | ((layer as u128) << 96) | ((instance as u128) << 32)
}

/// Mask of the low `bits` bits of a u64 (`bits <= 64`).
#[inline(always)]
pub(crate) fn low_mask(bits: usize) -> u64 {
    if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 }
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
