//! Messages of the offline HE step and their byte encoding.
//!
//! Layout: `b"PIHE"`, version, kind, level (number of RNS primes of the
//! ciphertexts: 3 for uploads and keys at q, 1 for replies at p0), 16-byte
//! parameter digest, then the body.
//! Decoding needs the session's parameters (and the layer plan), computes the
//! exact expected length before reading anything, and rejects a mismatch,
//! an unknown version or kind, a foreign digest or an out-of-range residue
//! as [`Error::PeerMisbehaved`]. Nothing is allocated from a peer-supplied
//! length.

use super::arith::{bit_len, pack_bits, packed_len, unpack_bits};
use super::layout::LayerPlan;
use super::params::{
    C0_DROP_BITS, C1_DROP_BITS, CIPHERTEXT_PRIMES, HeParams, KEEP, POLY_DEGREE, PRIMES,
};
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"PIHE";
const VERSION: u8 = 2;
const HEADER: usize = 4 + 1 + 1 + 1 + 16;

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    PublicKey = 1,
    Upload = 2,
    Reply = 3,
}

impl Kind {
    /// Ciphertext level: how many RNS primes the carried residues span.
    fn level(self) -> u8 {
        match self {
            Kind::PublicKey | Kind::Upload => PRIMES as u8,
            Kind::Reply => 1,
        }
    }
}

/// The client's public key, sent once per session: (b, a) = (−a·s + e, a)
/// with `a` expanded from `seed`. The server needs it for the fresh
/// encryption of zero that re-randomises every reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyMsg {
    pub(crate) seed: [u8; 32],
    /// b residues, prime-major: [p0 coefficients, p1 coefficients, ...].
    pub(crate) b: Vec<u64>,
}

/// Client → server: symmetric RLWE encryptions of the client's share, one per
/// (tile, channel block) of the layer plan; the `a` halves are replaced by
/// one seed (ciphertext `i` uses ChaCha20 stream `i`), halving the upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientUpload {
    pub(crate) plan_digest: [u8; 16],
    pub(crate) seed: [u8; 32],
    /// b residues: ciphertext-major, then prime, then coefficient.
    pub(crate) b: Vec<u64>,
}

/// Server → client: per (tile, output group) the full c1 and only the useful
/// coefficients of c0, both switched down to p0 with low bits dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReply {
    pub(crate) plan_digest: [u8; 16],
    /// c1 values (before the shift by C1_DROP_BITS), ciphertext-major.
    pub(crate) c1: Vec<u64>,
    /// c0 values of the wanted coefficients, in plan order.
    pub(crate) c0: Vec<u64>,
}

fn residue_bits(i: usize) -> u32 {
    bit_len(CIPHERTEXT_PRIMES[i] - 1)
}

/// Largest value of a switched residue after dropping `drop` low bits.
pub(crate) fn dropped_max(drop: u32) -> u64 {
    (CIPHERTEXT_PRIMES[KEEP] - 1 + (1 << (drop - 1))) >> drop
}

fn header(params: &HeParams, kind: Kind, out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.push(kind.level());
    out.extend_from_slice(&params.digest());
}

/// Checks the header and the total length; returns the body.
fn open<'a>(bytes: &'a [u8], params: &HeParams, kind: Kind, body_len: usize) -> Result<&'a [u8]> {
    let bad = |m: &str| Err(Error::malformed(format!("HE message: {m}")));
    if bytes.len() < HEADER {
        return bad("shorter than its header");
    }
    if &bytes[..4] != MAGIC {
        return bad("bad magic");
    }
    if bytes[4] != VERSION {
        return bad("unsupported version");
    }
    if bytes[5] != kind as u8 {
        return bad("unexpected message kind");
    }
    if bytes[6] != kind.level() {
        return bad("ciphertext level differs from the one this message must have");
    }
    if bytes[7..HEADER] != params.digest() {
        return bad("parameter digest differs from this session's");
    }
    if bytes.len() != HEADER + body_len {
        return Err(Error::malformed(format!(
            "HE message has {} bytes, expected {}",
            bytes.len(),
            HEADER + body_len
        )));
    }
    Ok(&bytes[HEADER..])
}

/// Reads residues of every prime for `cts` ciphertexts.
fn read_residues(mut body: &[u8], cts: usize, out: &mut Vec<u64>) -> Result<()> {
    out.clear();
    out.reserve(cts * PRIMES * POLY_DEGREE);
    let mut tmp = Vec::new();
    for _ in 0..cts {
        for i in 0..PRIMES {
            let len = packed_len(POLY_DEGREE, residue_bits(i));
            unpack_bits(
                &body[..len],
                residue_bits(i),
                POLY_DEGREE,
                CIPHERTEXT_PRIMES[i] - 1,
                &mut tmp,
            )?;
            out.extend_from_slice(&tmp);
            body = &body[len..];
        }
    }
    Ok(())
}

fn residues_len(cts: usize) -> usize {
    cts * (0..PRIMES)
        .map(|i| packed_len(POLY_DEGREE, residue_bits(i)))
        .sum::<usize>()
}

fn write_residues(b: &[u64], out: &mut Vec<u8>) {
    for (k, chunk) in b.chunks(POLY_DEGREE).enumerate() {
        pack_bits(chunk, residue_bits(k % PRIMES), out);
    }
}

impl PublicKeyMsg {
    /// Encoded size in bytes.
    pub fn encoded_len() -> usize {
        HEADER + 32 + residues_len(1)
    }

    /// Encodes the key.
    pub fn encode(&self, params: &HeParams) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len());
        header(params, Kind::PublicKey, &mut out);
        out.extend_from_slice(&self.seed);
        write_residues(&self.b, &mut out);
        out
    }

    /// Decodes and checks a key sent by the client.
    pub fn decode(bytes: &[u8], params: &HeParams) -> Result<Self> {
        let body = open(bytes, params, Kind::PublicKey, 32 + residues_len(1))?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&body[..32]);
        let mut b = Vec::new();
        read_residues(&body[32..], 1, &mut b)?;
        Ok(Self { seed, b })
    }
}

impl ClientUpload {
    /// Encoded size in bytes for a plan.
    pub fn encoded_len(plan: &LayerPlan) -> usize {
        HEADER + 16 + 32 + residues_len(plan.upload_cts())
    }

    /// Number of ciphertexts carried.
    pub fn len(&self) -> usize {
        self.b.len() / (PRIMES * POLY_DEGREE)
    }

    /// Whether the upload carries no ciphertext.
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    /// Encodes the upload.
    pub fn encode(&self, plan: &LayerPlan) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(plan));
        header(&plan.params, Kind::Upload, &mut out);
        out.extend_from_slice(&self.plan_digest);
        out.extend_from_slice(&self.seed);
        write_residues(&self.b, &mut out);
        out
    }

    /// Decodes an upload for `plan`, checking its size, digest and residues.
    pub fn decode(bytes: &[u8], plan: &LayerPlan) -> Result<Self> {
        let body = open(
            bytes,
            &plan.params,
            Kind::Upload,
            48 + residues_len(plan.upload_cts()),
        )?;
        if body[..16] != plan.digest {
            return Err(Error::malformed("HE upload is for a different layer plan"));
        }
        let mut plan_digest = [0u8; 16];
        plan_digest.copy_from_slice(&body[..16]);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&body[16..48]);
        let mut b = Vec::new();
        read_residues(&body[48..], plan.upload_cts(), &mut b)?;
        Ok(Self {
            plan_digest,
            seed,
            b,
        })
    }
}

fn c1_bits() -> u32 {
    bit_len(dropped_max(C1_DROP_BITS))
}

fn c0_bits() -> u32 {
    bit_len(dropped_max(C0_DROP_BITS))
}

fn reply_body_len(plan: &LayerPlan) -> usize {
    16 + plan.reply_cts() * packed_len(POLY_DEGREE, c1_bits())
        + packed_len(plan.total_wanted(), c0_bits())
}

impl ServerReply {
    /// Encoded size in bytes for a plan.
    pub fn encoded_len(plan: &LayerPlan) -> usize {
        HEADER + reply_body_len(plan)
    }

    /// Encodes the reply.
    pub fn encode(&self, plan: &LayerPlan) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(plan));
        header(&plan.params, Kind::Reply, &mut out);
        out.extend_from_slice(&self.plan_digest);
        for chunk in self.c1.chunks(POLY_DEGREE) {
            pack_bits(chunk, c1_bits(), &mut out);
        }
        pack_bits(&self.c0, c0_bits(), &mut out);
        out
    }

    /// Decodes a reply for `plan`, checking its size, digest and value ranges.
    pub fn decode(bytes: &[u8], plan: &LayerPlan) -> Result<Self> {
        let body = open(bytes, &plan.params, Kind::Reply, reply_body_len(plan))?;
        if body[..16] != plan.digest {
            return Err(Error::malformed("HE reply is for a different layer plan"));
        }
        let mut plan_digest = [0u8; 16];
        plan_digest.copy_from_slice(&body[..16]);
        let mut rest = &body[16..];
        let c1_len = packed_len(POLY_DEGREE, c1_bits());
        let mut c1 = Vec::with_capacity(plan.reply_cts() * POLY_DEGREE);
        let mut tmp = Vec::new();
        for _ in 0..plan.reply_cts() {
            unpack_bits(
                &rest[..c1_len],
                c1_bits(),
                POLY_DEGREE,
                dropped_max(C1_DROP_BITS),
                &mut tmp,
            )?;
            c1.extend_from_slice(&tmp);
            rest = &rest[c1_len..];
        }
        let mut c0 = Vec::new();
        unpack_bits(
            rest,
            c0_bits(),
            plan.total_wanted(),
            dropped_max(C0_DROP_BITS),
            &mut c0,
        )?;
        Ok(Self {
            plan_digest,
            c1,
            c0,
        })
    }
}
