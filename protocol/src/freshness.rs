//! A test-only tap on offline material, to check that nothing offline is
//! used twice (docs/ARCHITECTURE.md §3): correctness against the oracle
//! holds whatever the randomness, so only a comparison of the material
//! itself catches a reused mask, Δ or OT output.
//!
//! The offline drivers note every piece of material a party draws, derives
//! or receives (Δ, the garbler's nonce, masks s and r, pads p, OT outputs
//! and choices, HE uploads and replies, garbled tables) on their session's
//! [`DigestTap`]. In test builds a tap may record a SHA-256 digest per
//! piece, never the piece itself; otherwise it is a zero-sized type and
//! noting compiles to nothing, so no build outside `cfg(test)` can read
//! material through it.

use crate::crypto::Block;
#[cfg(test)]
use sha2::Digest;

/// Notes digests of offline material when recording (tests only).
#[derive(Clone, Debug, Default)]
pub(crate) struct DigestTap {
    #[cfg(test)]
    sink: Option<std::sync::Arc<std::sync::Mutex<Vec<Noted>>>>,
}

/// One piece of material noted by a recording [`DigestTap`].
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Noted {
    /// What the piece is (`server/gc delta`, `client/he upload`, ...).
    pub what: &'static str,
    /// SHA-256 of its bytes.
    pub digest: [u8; 32],
    /// Its length in bits: a short piece (a few choice bits of a layer
    /// with a few ReLUs) repeats by chance, a 64-bit one does not.
    pub bits: usize,
}

impl DigestTap {
    /// A tap that records into a list the caller reads.
    #[cfg(test)]
    pub(crate) fn recording() -> (Self, std::sync::Arc<std::sync::Mutex<Vec<Noted>>>) {
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        (
            Self {
                sink: Some(sink.clone()),
            },
            sink,
        )
    }

    /// Notes bytes (empty pieces are not noted).
    #[inline(always)]
    pub(crate) fn bytes(&self, what: &'static str, bytes: &[u8]) {
        #[cfg(test)]
        self.note(what, 8 * bytes.len(), |h| h.update(bytes));
        #[cfg(not(test))]
        let _ = (what, bytes);
    }

    /// Notes ring values or masks (little-endian u64s).
    #[inline(always)]
    pub(crate) fn u64s(&self, what: &'static str, values: &[u64]) {
        #[cfg(test)]
        self.note(what, 64 * values.len(), |h| {
            values.iter().for_each(|v| h.update(v.to_le_bytes()))
        });
        #[cfg(not(test))]
        let _ = (what, values);
    }

    /// Notes blocks (labels, OT outputs).
    #[inline(always)]
    pub(crate) fn blocks(&self, what: &'static str, blocks: &[Block]) {
        #[cfg(test)]
        self.note(what, 128 * blocks.len(), |h| {
            blocks.iter().for_each(|b| h.update(b.to_bytes()))
        });
        #[cfg(not(test))]
        let _ = (what, blocks);
    }

    /// Notes OT sender pairs.
    #[inline(always)]
    pub(crate) fn pairs(&self, what: &'static str, pairs: &[[Block; 2]]) {
        #[cfg(test)]
        self.note(what, 256 * pairs.len(), |h| {
            pairs.iter().flatten().for_each(|b| h.update(b.to_bytes()))
        });
        #[cfg(not(test))]
        let _ = (what, pairs);
    }

    /// Notes choice bits.
    #[inline(always)]
    pub(crate) fn bits(&self, what: &'static str, bits: &[bool]) {
        #[cfg(test)]
        self.note(what, bits.len(), |h| {
            bits.iter().for_each(|&b| h.update([u8::from(b)]))
        });
        #[cfg(not(test))]
        let _ = (what, bits);
    }

    #[cfg(test)]
    fn note(&self, what: &'static str, bits: usize, feed: impl FnOnce(&mut sha2::Sha256)) {
        let Some(sink) = &self.sink else { return };
        let mut h = sha2::Sha256::new();
        feed(&mut h);
        // An empty piece (a sub-layer without positions) hashes to the same
        // digest everywhere: not material.
        let (mut digest, mut empty) = ([0u8; 32], [0u8; 32]);
        digest.copy_from_slice(&h.finalize());
        empty.copy_from_slice(&sha2::Sha256::new().finalize());
        if digest != empty {
            sink.lock()
                .expect("a test's digest list")
                .push(Noted { what, digest, bits });
        }
    }
}

#[cfg(test)]
mod tests;
