//! Base OT: the "simplest OT" of Chou and Orlandi (LATINCRYPT 2015,
//! ePrint 2015/267) on the Ristretto group, semi-honest, batched.
//!
//! Why this protocol: it needs one message each way for any number of OTs
//! (the sender's single point A serves the whole batch), one fixed-base and
//! two variable-base multiplications per OT, and it directly yields *random*
//! OT keys, which is all IKNP needs from its κ = 128 base OTs. Masny-Rindal
//! (CCS 2019) costs a hash-to-group per OT and is attractive mainly against
//! malicious parties; the known gap in the UC proof of Chou-Orlandi (Genç,
//! Iovino and Rial, ePrint 2017/370) concerns malicious security and does
//! not affect the semi-honest setting of this project. Ristretto is a prime
//! order group, so there are no small-subgroup points to worry about.
//!
//! Protocol (G the base point, H a key derivation function):
//! 1. Sender: random a, sends A = aG.
//! 2. Receiver with choice c_i: random b_i, sends B_i = b_i G + c_i A and
//!    outputs k_i = H(i, A, B_i, b_i A).
//! 3. Sender outputs k_i^0 = H(i, A, B_i, a B_i) and
//!    k_i^1 = H(i, A, B_i, a B_i − aA).
//!
//! (H hashes the encoding of twice its point argument, so that the shared
//! points of a batch are encoded with a single field inversion.)
//!
//! H is BLAKE3 in key-derivation mode with a fixed context string. It binds
//! the OT index i and the transcript (A, B_i); A is fresh per session, so it
//! also acts as the session tweak. Every point from the peer is decompressed
//! and checked: a non-canonical encoding, the identity, or B_i = A is
//! rejected with [`Error::PeerMisbehaved`].

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRng;
use subtle::{Choice, ConditionallySelectable};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::Block;
use crate::{Error, Result};

/// Bytes of a compressed Ristretto point.
pub const POINT_BYTES: usize = 32;

/// Largest batch of base OTs one message may carry (bounds the decoding work
/// a peer can cause; IKNP uses 128).
pub const MAX_BASE_OTS: usize = 1024;

/// BLAKE3 key-derivation context of the base OT keys (domain separation).
const KDF_CONTEXT: &str = "pi-runtime 2026-11 Chou-Orlandi base OT over ristretto255, key";

/// A uniformly random scalar from 64 random bytes (reduced mod the group
/// order, bias below 2^-250).
fn random_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    s
}

/// Decodes and validates one point from the peer.
fn decode_point(bytes: &[u8], what: &str) -> Result<RistrettoPoint> {
    let compressed = CompressedRistretto::from_slice(bytes).map_err(|_| {
        Error::malformed(format!(
            "{what}: a point has {} bytes, not {POINT_BYTES}",
            bytes.len()
        ))
    })?;
    let point = compressed.decompress().ok_or_else(|| {
        Error::malformed(format!(
            "{what}: invalid or non-canonical ristretto255 encoding"
        ))
    })?;
    if point.is_identity() {
        return Err(Error::malformed(format!(
            "{what}: the identity point is not allowed"
        )));
    }
    Ok(point)
}

/// Encodings of 2·P for every shared point P, with one field inversion for
/// the whole batch (curve25519-dalek's `double_and_compress_batch`; doubling
/// is a bijection of the prime-order group, so 2·P is as good a KDF input as
/// P, and both parties use the same rule).
fn encode_shared(points: &mut [RistrettoPoint]) -> Vec<[u8; POINT_BYTES]> {
    let encoded = RistrettoPoint::double_and_compress_batch(points.iter())
        .into_iter()
        .map(|c| c.to_bytes())
        .collect();
    points.iter_mut().for_each(Zeroize::zeroize);
    encoded
}

/// The key of OT `index`: H(index, A, B, enc(2·P)), 128 bits.
fn derive_key(
    index: usize,
    a: &[u8; POINT_BYTES],
    b: &[u8; POINT_BYTES],
    shared: &[u8; POINT_BYTES],
) -> Block {
    let mut h = blake3::Hasher::new_derive_key(KDF_CONTEXT);
    h.update(&(index as u64).to_le_bytes());
    h.update(a);
    h.update(b);
    h.update(shared);
    let mut out = [0u8; 16];
    h.finalize_xof().fill(&mut out);
    let k = Block::from_bytes(out);
    out.zeroize();
    k
}

/// The sender's first message: the point A.
#[derive(Clone, Debug)]
pub struct SenderMsg {
    bytes: [u8; POINT_BYTES],
    point: RistrettoPoint,
}

impl SenderMsg {
    /// Wire encoding (32 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.to_vec()
    }

    /// Decodes and validates the point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != POINT_BYTES {
            return Err(Error::malformed(format!(
                "base OT sender message: expected {POINT_BYTES} bytes, got {}",
                bytes.len()
            )));
        }
        let point = decode_point(bytes, "base OT sender message")?;
        Ok(Self {
            bytes: bytes.try_into().expect("length checked"),
            point,
        })
    }
}

/// The receiver's reply: one point B_i per OT.
#[derive(Clone, Debug)]
pub struct ReceiverMsg {
    points: Vec<([u8; POINT_BYTES], RistrettoPoint)>,
}

impl ReceiverMsg {
    /// Number of OTs this message answers.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Wire size for `count` OTs.
    pub fn byte_len(count: usize) -> usize {
        count * POINT_BYTES
    }

    /// Wire encoding (32 bytes per OT).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.points
            .iter()
            .flat_map(|(b, _)| b.iter().copied())
            .collect()
    }

    /// Decodes and validates `count` points; any other length is the peer's fault.
    pub fn from_bytes(bytes: &[u8], count: usize) -> Result<Self> {
        if count > MAX_BASE_OTS {
            return Err(Error::BadInput(format!(
                "{count} base OTs exceed the limit of {MAX_BASE_OTS}"
            )));
        }
        if bytes.len() != Self::byte_len(count) {
            return Err(Error::malformed(format!(
                "base OT receiver message: expected {} bytes for {count} OTs, got {}",
                Self::byte_len(count),
                bytes.len()
            )));
        }
        let points = bytes
            .chunks_exact(POINT_BYTES)
            .map(|c| {
                Ok((
                    c.try_into().expect("chunk of 32"),
                    decode_point(c, "base OT receiver message")?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self { points })
    }
}

/// The base OT sender after its first message, waiting for the receiver's
/// points. Finishing consumes it, so a secret `a` serves one batch only.
pub struct Sender {
    a: Scalar,
    a_bytes: [u8; POINT_BYTES],
    a_times_a: RistrettoPoint,
    count: usize,
}

impl Zeroize for Sender {
    fn zeroize(&mut self) {
        self.a.zeroize();
        self.a_times_a.zeroize();
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Sender {}

impl Sender {
    /// Starts a batch of `count` random OTs; returns the state and A.
    pub fn new<R: CryptoRng + ?Sized>(rng: &mut R, count: usize) -> Result<(Self, SenderMsg)> {
        if count == 0 || count > MAX_BASE_OTS {
            return Err(Error::BadInput(format!(
                "base OT batch of {count}: must be in 1..={MAX_BASE_OTS}"
            )));
        }
        let a = random_scalar(rng);
        let point = RistrettoPoint::mul_base(&a);
        let bytes = point.compress().to_bytes();
        let a_times_a = a * point;
        Ok((
            Self {
                a,
                a_bytes: bytes,
                a_times_a,
                count,
            },
            SenderMsg { bytes, point },
        ))
    }

    /// Number of OTs in this batch.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Derives both keys of every OT from the receiver's points.
    pub fn finish(self, msg: &ReceiverMsg) -> Result<Vec<[Block; 2]>> {
        if msg.len() != self.count {
            return Err(Error::malformed(format!(
                "base OT: expected {} receiver points, got {}",
                self.count,
                msg.len()
            )));
        }
        let mut shared = Vec::with_capacity(2 * self.count);
        for (b_bytes, b) in &msg.points {
            // B = A would make a(B − A) the identity; no honest receiver sends it.
            if *b_bytes == self.a_bytes {
                return Err(Error::malformed(
                    "base OT receiver message: a point equals A",
                ));
            }
            let p0 = self.a * b;
            shared.push(p0);
            shared.push(p0 - self.a_times_a);
        }
        let mut encoded = encode_shared(&mut shared);
        let keys = msg
            .points
            .iter()
            .zip(encoded.chunks_exact(2))
            .enumerate()
            .map(|(i, ((b_bytes, _), e))| {
                [
                    derive_key(i, &self.a_bytes, b_bytes, &e[0]),
                    derive_key(i, &self.a_bytes, b_bytes, &e[1]),
                ]
            })
            .collect();
        encoded.zeroize();
        Ok(keys)
    }
}

/// The base OT receiver: answers A for its choice bits in one step.
pub struct Receiver;

impl Receiver {
    /// Returns the key k_{c_i} of each OT and the message carrying the B_i.
    pub fn receive<R: CryptoRng + ?Sized>(
        rng: &mut R,
        choices: &[bool],
        msg: &SenderMsg,
    ) -> Result<(Vec<Block>, ReceiverMsg)> {
        if choices.is_empty() || choices.len() > MAX_BASE_OTS {
            return Err(Error::BadInput(format!(
                "base OT batch of {}: must be in 1..={MAX_BASE_OTS}",
                choices.len()
            )));
        }
        // A serves every OT of the batch: a fixed-base table for it makes
        // each b_i·A about as cheap as b_i·G.
        let a_table = RistrettoBasepointTable::create(&msg.point);
        let mut shared = Vec::with_capacity(choices.len());
        let mut points = Vec::with_capacity(choices.len());
        for &c in choices {
            let mut b = random_scalar(rng);
            let b_g = RistrettoPoint::mul_base(&b);
            // B = bG + cA without a branch on c.
            let big_b =
                RistrettoPoint::conditional_select(&b_g, &(b_g + msg.point), Choice::from(c as u8));
            points.push((big_b.compress().to_bytes(), big_b));
            shared.push(&a_table * &b);
            b.zeroize();
        }
        let mut encoded = encode_shared(&mut shared);
        let keys = points
            .iter()
            .zip(&encoded)
            .enumerate()
            .map(|(i, ((b_bytes, _), e))| derive_key(i, &msg.bytes, b_bytes, e))
            .collect();
        encoded.zeroize();
        Ok((keys, ReceiverMsg { points }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    fn run(count: usize, seed: u64) -> (Vec<[Block; 2]>, Vec<bool>, Vec<Block>) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let choices: Vec<bool> = (0..count).map(|_| rng.next_u32() & 1 == 1).collect();
        let (sender, a) = Sender::new(&mut rng, count).unwrap();
        let a = SenderMsg::from_bytes(&a.to_bytes()).unwrap();
        let (got, b) = Receiver::receive(&mut rng, &choices, &a).unwrap();
        let b = ReceiverMsg::from_bytes(&b.to_bytes(), count).unwrap();
        (sender.finish(&b).unwrap(), choices, got)
    }

    #[test]
    fn receiver_gets_the_chosen_key_only() {
        let (pairs, choices, got) = run(128, 1);
        for ((pair, &c), k) in pairs.iter().zip(&choices).zip(&got) {
            assert_eq!(*k, pair[c as usize]);
            assert_ne!(*k, pair[1 - c as usize]);
        }
        assert!(choices.iter().any(|&c| c) && choices.iter().any(|&c| !c));
        // Keys differ across OTs (index and B_i are bound into the KDF).
        let mut all: Vec<Block> = pairs.iter().flat_map(|p| p.iter().copied()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn bad_points_and_lengths_are_peer_errors() {
        // The identity, a non-canonical encoding (the field prime p itself) and
        // a string that is no ristretto255 encoding at all.
        let identity = [0u8; 32];
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut negative = [0u8; 32];
        negative[0] = 1; // s = 1 is "negative" (odd), which ristretto255 forbids
        for bad in [identity, p, negative, [0xff; 32]] {
            assert!(
                matches!(SenderMsg::from_bytes(&bad), Err(Error::PeerMisbehaved(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            SenderMsg::from_bytes(&[1u8; 31]),
            Err(Error::PeerMisbehaved(_))
        ));

        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (sender, a) = Sender::new(&mut rng, 4).unwrap();
        let (_, b) = Receiver::receive(&mut rng, &[true, false, true, true], &a).unwrap();
        let bytes = b.to_bytes();
        assert!(matches!(
            ReceiverMsg::from_bytes(&bytes[..96], 4),
            Err(Error::PeerMisbehaved(_))
        ));
        assert!(matches!(
            ReceiverMsg::from_bytes(&bytes, 3),
            Err(Error::PeerMisbehaved(_))
        ));
        let mut tampered = bytes.clone();
        tampered[32..64].copy_from_slice(&p);
        assert!(matches!(
            ReceiverMsg::from_bytes(&tampered, 4),
            Err(Error::PeerMisbehaved(_))
        ));
        // Echoing A back as some B_i is refused (it would zero a(B_i − A)).
        let mut echo = bytes.clone();
        echo[64..96].copy_from_slice(&a.to_bytes());
        let echo = ReceiverMsg::from_bytes(&echo, 4).unwrap();
        assert!(matches!(
            sender.finish(&echo),
            Err(Error::PeerMisbehaved(_))
        ));
        let (sender, _) = Sender::new(&mut rng, 4).unwrap();
        // A well-formed message for a different batch size is rejected by the sender.
        let three = ReceiverMsg::from_bytes(&bytes[..96], 3).unwrap();
        assert!(matches!(
            sender.finish(&three),
            Err(Error::PeerMisbehaved(_))
        ));
    }

    #[test]
    fn empty_or_oversized_batches_are_bad_input() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        assert!(matches!(Sender::new(&mut rng, 0), Err(Error::BadInput(_))));
        assert!(matches!(
            Sender::new(&mut rng, MAX_BASE_OTS + 1),
            Err(Error::BadInput(_))
        ));
        let (_, a) = Sender::new(&mut rng, 1).unwrap();
        assert!(matches!(
            Receiver::receive(&mut rng, &[], &a),
            Err(Error::BadInput(_))
        ));
    }
}
