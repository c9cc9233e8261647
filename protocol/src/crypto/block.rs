//! A 128-bit block: the unit of wire labels, OT messages and AES inputs.

use std::ops::{BitAnd, BitXor, BitXorAssign};

use rand_core::RngCore;

/// 128 bits, stored as a little-endian `u128` (`repr(transparent)`: SIMD
/// kernels read slices of blocks as slices of 128-bit words).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block(pub u128);

impl Block {
    /// The all-zero block.
    pub const ZERO: Self = Self(0);
    /// The all-one block.
    pub const ONES: Self = Self(u128::MAX);

    /// A uniformly random block.
    pub fn random<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        Self::from_bytes(b)
    }

    /// The least significant bit (the point-and-permute bit of a label).
    #[inline(always)]
    pub fn lsb(self) -> bool {
        self.0 & 1 == 1
    }

    /// Little-endian bytes.
    #[inline(always)]
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// From little-endian bytes.
    #[inline(always)]
    pub fn from_bytes(b: [u8; 16]) -> Self {
        Self(u128::from_le_bytes(b))
    }

    /// `self` if `bit` is set, else zero, without a data-dependent branch.
    #[inline(always)]
    pub fn select(self, bit: bool) -> Self {
        Self(self.0 & (bit as u128).wrapping_neg())
    }

    /// Multiplication by x in GF(2^128) (reduction polynomial x^128 + x^7 +
    /// x^2 + x + 1); a linear orthomorphism used by the TCCR hash.
    #[inline(always)]
    pub fn double(self) -> Self {
        let carry = self.0 >> 127;
        Self((self.0 << 1) ^ (carry.wrapping_neg() & 0x87))
    }

    /// Writes blocks as little-endian bytes into `out` (`out.len() == 16 * blocks.len()`).
    pub fn write_slice(blocks: &[Block], out: &mut [u8]) {
        debug_assert_eq!(out.len(), 16 * blocks.len());
        for (b, o) in blocks.iter().zip(out.chunks_exact_mut(16)) {
            o.copy_from_slice(&b.to_bytes());
        }
    }

    /// Reads blocks from little-endian bytes; `None` if the length is not a multiple of 16.
    pub fn read_slice(bytes: &[u8]) -> Option<Vec<Block>> {
        if !bytes.len().is_multiple_of(16) {
            return None;
        }
        Some(
            bytes
                .chunks_exact(16)
                .map(|c| Block::from_bytes(c.try_into().expect("chunk of 16")))
                .collect(),
        )
    }
}

impl BitXor for Block {
    type Output = Self;
    #[inline(always)]
    fn bitxor(self, rhs: Self) -> Self {
        Self(self.0 ^ rhs.0)
    }
}

impl BitXorAssign for Block {
    #[inline(always)]
    fn bitxor_assign(&mut self, rhs: Self) {
        self.0 ^= rhs.0;
    }
}

impl BitAnd for Block {
    type Output = Self;
    #[inline(always)]
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl From<u128> for Block {
    fn from(v: u128) -> Self {
        Self(v)
    }
}

/// The default (all-zero) block is the wiped value; this gives `Zeroize` for
/// blocks and for slices of blocks (volatile writes).
impl zeroize::DefaultIsZeroes for Block {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_select() {
        let b = Block(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        assert_eq!(Block::from_bytes(b.to_bytes()), b);
        assert_eq!(b.select(true), b);
        assert_eq!(b.select(false), Block::ZERO);
        let mut buf = [0u8; 32];
        Block::write_slice(&[b, Block::ONES], &mut buf);
        assert_eq!(Block::read_slice(&buf).unwrap(), vec![b, Block::ONES]);
        assert!(Block::read_slice(&buf[..31]).is_none());
    }

    #[test]
    fn double_is_linear_and_reduces() {
        let a = Block(0x8000_0000_0000_0000_0000_0000_0000_0001);
        assert_eq!(a.double(), Block(0x87 ^ 2));
        let b = Block(12345 << 100);
        assert_eq!((a ^ b).double(), a.double() ^ b.double());
    }
}
