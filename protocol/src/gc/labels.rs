//! What the garbler produces for a layer, what crosses the wire, and the
//! byte encodings. Every decode takes the expected shape (circuit, layer, n)
//! from the caller's session state and rejects anything else as
//! [`Error::PeerMisbehaved`].

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{ActivationKind, ActivationParams, Circuit, Delta, Scheme, check_layer_shape};
use rand::RngCore;

use crate::crypto::{Block, FixedKeyAes};
use crate::{Error, Result};

/// Garbled tables of one layer: ciphertexts and decoding bits of n instances,
/// laid out chunk by chunk (see [`super::CHUNK`]), ready to stream.
///
/// Sent by the server offline; consumed by [`super::Evaluator::evaluate_layer`].
pub struct GarbledTables {
    pub(crate) kind: ActivationKind,
    pub(crate) params: ActivationParams,
    pub(crate) scheme: Scheme,
    pub(crate) layer: u32,
    pub(crate) n: usize,
    pub(crate) bytes: Vec<u8>,
}

impl GarbledTables {
    /// Number of activations.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True for an empty layer.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The layer index used in the tweaks.
    pub fn layer(&self) -> u32 {
        self.layer
    }

    /// The encoded tables: `n * circuit.table_bytes()` bytes. Stream them in
    /// slices of any size; the receiver reassembles and calls [`Self::from_bytes`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded tables, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Decodes tables received for `n` instances of `circuit` in layer `layer`.
    ///
    /// # Errors
    /// [`Error::BadInput`] if `layer` exceeds [`super::MAX_LAYER`] or `n`
    /// exceeds [`super::MAX_INSTANCES`] (both come from the caller's session
    /// state); [`Error::PeerMisbehaved`] if the length is not
    /// `n * circuit.table_bytes()` or a padding bit of the control bits or
    /// of the decoding information is set.
    pub fn from_bytes(circuit: &Circuit, layer: u32, n: usize, bytes: Vec<u8>) -> Result<Self> {
        check_layer_shape(layer, n)?;
        let per = circuit.table_bytes();
        let expected = n
            .checked_mul(per)
            .ok_or_else(|| Error::BadInput(format!("layer of {n} activations is too large")))?;
        if bytes.len() != expected {
            return Err(Error::malformed(format!(
                "garbled tables of layer {layer}: {} bytes, expected {expected} for {n} activations",
                bytes.len()
            )));
        }
        let dec = circuit.decode_bytes();
        let used = circuit.low_bits() + 2 * circuit.top_bits();
        let pad_mask: u8 = if used.is_multiple_of(8) {
            0
        } else {
            0xff << (used % 8)
        };
        let gates = circuit.gate_bytes();
        let ctrl = circuit.control_bytes();
        let ctrl_used = circuit.scheme().control_bits_per_and() * circuit.and_gates();
        let padding = |what: &str| {
            Error::malformed(format!(
                "garbled tables of layer {layer}: non-zero padding bits in the {what}"
            ))
        };
        let mut start = 0;
        while start < n {
            let cn = super::CHUNK.min(n - start);
            // Control bits of the chunk: the first ctrl_used * cn bits of
            // its ctrl * cn bytes; the rest must be zero.
            let base = start * per + gates * cn;
            let area = &bytes[base..base + ctrl * cn];
            let first = ctrl_used * cn;
            if first < 8 * area.len() {
                let byte = first / 8;
                if area[byte] >> (first % 8) != 0 || area[byte + 1..].iter().any(|b| *b != 0) {
                    return Err(padding("control bits"));
                }
            }
            let base = base + ctrl * cn;
            for i in 0..cn {
                let last = bytes[base + (i + 1) * dec - 1];
                if last & pad_mask != 0 {
                    return Err(padding("decoding information"));
                }
            }
            start += cn;
        }
        Ok(Self {
            kind: circuit.kind(),
            params: circuit.params(),
            scheme: circuit.scheme(),
            layer,
            n,
            bytes,
        })
    }
}

/// Reassembles a layer's tables from streamed pieces of any size, never
/// holding more than the expected `n * circuit.table_bytes()` bytes.
pub struct TablesAssembler<'c> {
    circuit: &'c Circuit,
    layer: u32,
    n: usize,
    expected: usize,
    bytes: Vec<u8>,
}

impl<'c> TablesAssembler<'c> {
    /// Expects the tables of `n` instances of `circuit` for layer `layer`.
    ///
    /// # Errors
    /// [`Error::BadInput`] if the expected size overflows, `layer` exceeds
    /// [`super::MAX_LAYER`] or `n` exceeds [`super::MAX_INSTANCES`].
    pub fn new(circuit: &'c Circuit, layer: u32, n: usize) -> Result<Self> {
        check_layer_shape(layer, n)?;
        let expected = n
            .checked_mul(circuit.table_bytes())
            .ok_or_else(|| Error::BadInput(format!("layer of {n} activations is too large")))?;
        Ok(Self {
            circuit,
            layer,
            n,
            expected,
            bytes: Vec::with_capacity(expected),
        })
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> usize {
        self.expected - self.bytes.len()
    }

    /// Appends a received piece.
    ///
    /// # Errors
    /// [`Error::PeerMisbehaved`] if the piece goes past the expected size.
    pub fn push(&mut self, piece: &[u8]) -> Result<()> {
        if piece.len() > self.remaining() {
            return Err(Error::malformed(format!(
                "garbled tables of layer {}: {} bytes more than the expected {}",
                self.layer,
                piece.len() - self.remaining(),
                self.expected
            )));
        }
        self.bytes.extend_from_slice(piece);
        Ok(())
    }

    /// The complete tables.
    ///
    /// # Errors
    /// [`Error::PeerMisbehaved`] if bytes are missing or malformed.
    pub fn finish(self) -> Result<GarbledTables> {
        GarbledTables::from_bytes(self.circuit, self.layer, self.n, self.bytes)
    }
}

/// The client's input labels as the garbler holds them: for instance i, bit j
/// the zero label `zero[i * l + j]`; the one label is `zero ^ Δ`. Exactly the
/// form a correlated OT with correlation Δ delivers. Zeroized on drop.
///
/// Only consuming conversions give the labels out ([`Self::into_ot_pairs`],
/// [`Self::into_parts`]): the label set feeds exactly one OT, since a second
/// OT with other choice bits would hand the client both labels of a wire,
/// hence Δ.
///
/// Labels the garbler drew itself are kept as their key ([`LabelKey`]) and
/// expanded by those conversions, so garbling writes no `n * l` array.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ClientInputLabels {
    #[zeroize(skip)]
    pub(crate) params: ActivationParams,
    #[zeroize(skip)]
    pub(crate) n: usize,
    pub(crate) zero: ZeroLabels,
    pub(crate) delta: Delta,
}

/// Input zero labels of a layer, instance-major: given (a correlated OT's
/// output) or derived from a key.
pub(crate) enum ZeroLabels {
    /// `n * l` blocks.
    Stored(Vec<Block>),
    /// Label of bit j of instance i: [`LabelKey::fill`] at counter `i l + j`.
    Derived(Box<LabelKey>, usize),
}

impl ZeroLabels {
    /// All `n * l` labels, by value (wipe after use).
    pub(crate) fn expand(&mut self) -> Vec<Block> {
        match self {
            Self::Stored(v) => std::mem::take(v),
            Self::Derived(key, len) => {
                let mut v = vec![Block::ZERO; *len];
                key.fill(0, 1, &mut v);
                v
            }
        }
    }
}

/// Stored labels are wiped; a key wipes itself on drop (the `aes` crate).
impl Zeroize for ZeroLabels {
    fn zeroize(&mut self) {
        if let Self::Stored(v) = self {
            v.zeroize();
        }
    }
}

impl ClientInputLabels {
    /// Ring parameters.
    pub fn params(&self) -> ActivationParams {
        self.params
    }

    /// The message pairs `(zero, zero ^ Δ)` of a chosen-message OT, one per
    /// client input bit, instance-major; wiped on drop.
    pub fn into_ot_pairs(mut self) -> Zeroizing<Vec<[Block; 2]>> {
        let d = self.delta.block();
        let zero = Zeroizing::new(self.zero.expand());
        let pairs = zero.iter().map(|z| [*z, *z ^ d]).collect();
        Zeroizing::new(pairs)
    }

    /// The zero labels (instance-major, `n * l` blocks, wiped on drop) and Δ.
    pub fn into_parts(mut self) -> (Zeroizing<Vec<Block>>, Delta) {
        let zero = Zeroizing::new(self.zero.expand());
        (zero, self.delta.duplicate())
    }

    /// Number of activations.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True for an empty layer.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The ideal OT functionality: the labels of the client's shares `b`.
    /// No security; for tests and benchmarks only.
    #[cfg(any(test, feature = "ideal"))]
    pub fn ideal_transfer(mut self, b: &[u64]) -> Result<ClientLabels> {
        let l = self.params.l() as usize;
        if b.len() != self.n {
            return Err(Error::BadInput(format!(
                "{} client shares for {} activations",
                b.len(),
                self.n
            )));
        }
        let d = self.delta.block();
        let zero = Zeroizing::new(self.zero.expand());
        let mut labels = Vec::with_capacity(self.n * l);
        for (i, v) in b.iter().enumerate() {
            for j in 0..l {
                labels.push(zero[i * l + j] ^ d.select((v >> j) & 1 == 1));
            }
        }
        Ok(ClientLabels {
            params: self.params,
            n: self.n,
            labels,
        })
    }
}

/// The server's input zero labels and Δ of one layer, kept until the online
/// phase. [`Self::encode_share`] consumes it: labels are sent once.
///
/// The labels are held as the secret key they are derived from
/// ([`LabelKey`]), not as `n * l` blocks: 16 bytes per layer instead of
/// 16 l bytes per activation.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ServerInputLabels {
    #[zeroize(skip)]
    pub(crate) params: ActivationParams,
    #[zeroize(skip)]
    pub(crate) layer: u32,
    #[zeroize(skip)]
    pub(crate) n: usize,
    /// Wiped on drop by the `aes` crate.
    #[zeroize(skip)]
    pub(crate) key: LabelKey,
    pub(crate) delta: Delta,
}

/// A fresh secret AES-128 key per garbled layer from which input zero
/// labels are derived: the zero label of bit j of instance i is
/// `AES_k(i l + j)` (AES as a PRF, one key per label set so counters never
/// repeat under a key). Wiped on drop (the `aes` crate zeroizes its key
/// schedule).
pub(crate) struct LabelKey(FixedKeyAes);

impl LabelKey {
    /// A key drawn from `rng`.
    pub(crate) fn random<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut key = [0u8; 16];
        rng.fill_bytes(&mut key);
        // `with_key` wipes the copy it is given.
        Self(FixedKeyAes::with_key(key))
    }

    /// `out[k] = AES_k(first + k stride)`: the labels of one bit position
    /// across consecutive instances (stride l), or of consecutive positions
    /// (stride 1).
    pub(crate) fn fill(&self, first: u64, stride: u64, out: &mut [Block]) {
        let mut c = first as u128;
        for o in out.iter_mut() {
            *o = Block(c);
            c += stride as u128;
        }
        self.0.permute_many(out);
    }
}

impl ServerInputLabels {
    /// Number of activations.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True for an empty layer.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The layer index.
    pub fn layer(&self) -> u32 {
        self.layer
    }

    /// Online: the labels of the server's shares `a` (ring elements < 2^l).
    ///
    /// # Errors
    /// [`Error::BadInput`] if `a` has the wrong length or a value of l bits or more.
    pub fn encode_share(self, a: &[u64]) -> Result<ServerLabels> {
        let l = self.params.l() as usize;
        if a.len() != self.n {
            return Err(Error::BadInput(format!(
                "{} server shares for {} activations",
                a.len(),
                self.n
            )));
        }
        // Name the position only: shares are secret.
        if let Some(i) = a.iter().position(|v| *v & !self.params.mask() != 0) {
            return Err(Error::BadInput(format!(
                "server share {i} is not reduced mod 2^{l}"
            )));
        }
        let d = self.delta.block();
        let mut labels = vec![Block::ZERO; self.n * l];
        self.key.fill(0, 1, &mut labels);
        for (zero, v) in labels.chunks_exact_mut(l).zip(a) {
            for (j, z) in zero.iter_mut().enumerate() {
                *z ^= d.select((v >> j) & 1 == 1);
            }
        }
        Ok(ServerLabels {
            params: self.params,
            n: self.n,
            labels,
        })
    }
}

/// Labels of the server's shares, sent online (`n * l` blocks).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ServerLabels {
    #[zeroize(skip)]
    pub(crate) params: ActivationParams,
    #[zeroize(skip)]
    pub(crate) n: usize,
    pub(crate) labels: Vec<Block>,
}

/// Labels of the client's own shares, obtained by OT (`n * l` blocks,
/// instance-major). Kept by the client from the offline to the online phase.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ClientLabels {
    #[zeroize(skip)]
    pub(crate) params: ActivationParams,
    #[zeroize(skip)]
    pub(crate) n: usize,
    pub(crate) labels: Vec<Block>,
}

macro_rules! label_batch_codec {
    ($ty:ident, $what:literal) => {
        impl $ty {
            /// Number of activations.
            pub fn len(&self) -> usize {
                self.n
            }

            /// True for an empty batch.
            pub fn is_empty(&self) -> bool {
                self.n == 0
            }

            /// Labels, instance-major.
            pub fn labels(&self) -> &[Block] {
                &self.labels
            }

            /// From `n * l` blocks held locally (for example an OT's output).
            ///
            /// # Errors
            /// [`Error::BadInput`] on a wrong number of blocks.
            pub fn from_blocks(
                params: ActivationParams,
                n: usize,
                labels: Vec<Block>,
            ) -> Result<Self> {
                if Some(labels.len()) != n.checked_mul(params.l() as usize) {
                    return Err(Error::BadInput(format!(
                        concat!($what, ": {} labels for {} activations of {} bits"),
                        labels.len(),
                        n,
                        params.l()
                    )));
                }
                Ok(Self { params, n, labels })
            }

            /// Encoded size: 16 bytes per label.
            pub fn encoded_len(&self) -> usize {
                16 * self.labels.len()
            }

            /// Little-endian encoding, 16 bytes per label.
            pub fn to_bytes(&self) -> Vec<u8> {
                let mut out = vec![0u8; self.encoded_len()];
                Block::write_slice(&self.labels, &mut out);
                out
            }

            /// Decodes a batch for `n` activations at `params`.
            ///
            /// # Errors
            /// [`Error::PeerMisbehaved`] unless `bytes` holds exactly `n * l` labels.
            pub fn from_bytes(params: ActivationParams, n: usize, bytes: &[u8]) -> Result<Self> {
                let expected = n.checked_mul(16 * params.l() as usize);
                if expected != Some(bytes.len()) {
                    return Err(Error::malformed(format!(
                        concat!($what, ": {} bytes, expected 16 * {} * {}"),
                        bytes.len(),
                        n,
                        params.l()
                    )));
                }
                let labels = Block::read_slice(bytes).ok_or_else(|| Error::malformed($what))?;
                Ok(Self { params, n, labels })
            }
        }
    };
}

label_batch_codec!(ServerLabels, "server input labels");
label_batch_codec!(ClientLabels, "client input labels");

/// Shapes only: labels are secret and tables are large.
macro_rules! debug_shape {
    ($ty:ident) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("params", &self.params)
                    .field("n", &self.n)
                    .finish_non_exhaustive()
            }
        }
    };
}

debug_shape!(GarbledTables);
debug_shape!(ClientInputLabels);
debug_shape!(ServerInputLabels);
debug_shape!(ServerLabels);
debug_shape!(ClientLabels);
