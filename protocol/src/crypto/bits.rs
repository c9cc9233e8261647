//! Bit fields packed LSB first in byte strings (garbled-table control bits).

/// ORs the low `n` bits of `v` into `bytes` at bit `pos` (LSB first).
///
/// # Panics
/// If the bits do not fit (a programming error).
#[inline]
pub(crate) fn or_bits(bytes: &mut [u8], pos: usize, v: u64, n: usize) {
    debug_assert!(n <= 57 && v >> n == 0);
    let start = pos / 8;
    let end = (pos + n).div_ceil(8);
    let w = v << (pos % 8);
    for (k, b) in bytes[start..end].iter_mut().enumerate() {
        *b |= (w >> (8 * k)) as u8;
    }
}

/// The `n` bits of `bytes` at bit `pos` (LSB first), `n <= 57`.
///
/// # Panics
/// If the bits lie outside `bytes` (a programming error).
#[inline]
pub(crate) fn get_bits(bytes: &[u8], pos: usize, n: usize) -> u64 {
    debug_assert!(n <= 57);
    let start = pos / 8;
    let end = (pos + n).div_ceil(8);
    let mut buf = [0u8; 8];
    buf[..end - start].copy_from_slice(&bytes[start..end]);
    (u64::from_le_bytes(buf) >> (pos % 8)) & ((1u64 << n) - 1)
}
