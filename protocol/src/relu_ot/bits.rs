//! Bit helpers: uniform bits from a seeded generator, packed bit writing and
//! reading at exact lengths.

use super::*;

/// Uniform bits drawn 64 at a time.
#[derive(Default)]
pub(super) struct RandBits {
    pub(super) word: u64,
    pub(super) left: u32,
}

impl RandBits {
    pub(super) fn next<R: RngCore + ?Sized>(&mut self, rng: &mut R) -> u8 {
        if self.left == 0 {
            self.word = rng.next_u64();
            self.left = 64;
        }
        let b = (self.word & 1) as u8;
        self.word >>= 1;
        self.left -= 1;
        b
    }
}

impl Drop for RandBits {
    fn drop(&mut self) {
        self.word.zeroize();
    }
}

/// Little-endian bit packing.
#[derive(Default)]
pub(super) struct BitWriter {
    pub(super) bytes: Vec<u8>,
    pub(super) bits: usize,
}

impl BitWriter {
    pub(super) fn with_bits(n: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(n.div_ceil(8)),
            bits: 0,
        }
    }
    pub(super) fn push(&mut self, v: u8, width: usize) {
        for k in 0..width {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let last = self.bytes.len() - 1;
            self.bytes[last] |= ((v >> k) & 1) << (self.bits % 8);
            self.bits += 1;
        }
    }
    pub(super) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

pub(super) struct BitReader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) bit: usize,
}

impl<'a> BitReader<'a> {
    /// A reader over exactly `bits` bits: the length must be ⌈bits/8⌉ and the
    /// padding bits zero.
    pub(super) fn new(bytes: &'a [u8], bits: usize, what: &str) -> Result<Self> {
        if bytes.len() != bits.div_ceil(8) {
            return Err(Error::malformed(format!(
                "{what}: {} bytes, expected {}",
                bytes.len(),
                bits.div_ceil(8)
            )));
        }
        if !bits.is_multiple_of(8) && bytes[bytes.len() - 1] >> (bits % 8) != 0 {
            return Err(Error::malformed(format!("{what}: padding bits set")));
        }
        Ok(Self { bytes, bit: 0 })
    }
    pub(super) fn read(&mut self, width: usize) -> u8 {
        let mut v = 0;
        for k in 0..width {
            v |= ((self.bytes[self.bit / 8] >> (self.bit % 8)) & 1) << k;
            self.bit += 1;
        }
        v
    }
}
