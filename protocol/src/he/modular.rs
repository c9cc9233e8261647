//! Scalar arithmetic modulo a word-sized prime: products, sums, Shoup
//! precomputation, lifting and inverses. Depends on nothing of the scheme,
//! so that the parameters ([`super::params`]) can use it.

/// a·b mod p (variable time in nothing secret: plain u128 arithmetic).
#[inline]
pub(crate) fn mul_mod(a: u64, b: u64, p: u64) -> u64 {
    ((a as u128 * b as u128) % p as u128) as u64
}

/// a + b mod p for a, b < p.
#[inline]
pub(crate) fn add_mod(a: u64, b: u64, p: u64) -> u64 {
    let s = a + b;
    if s >= p { s - p } else { s }
}

/// a − b mod p for a, b < p.
#[inline]
pub(crate) fn sub_mod(a: u64, b: u64, p: u64) -> u64 {
    if a >= b { a - b } else { a + p - b }
}

/// Small signed integer (|v| < p) lifted into [0, p) without a division.
#[inline]
pub(crate) fn lift_small(v: i64, p: u64) -> u64 {
    debug_assert!(v.unsigned_abs() < p);
    if v >= 0 {
        v as u64
    } else {
        p - v.unsigned_abs()
    }
}

/// Signed 128-bit integer reduced into [0, p).
#[inline]
pub(crate) fn reduce_i128(v: i128, p: u64) -> u64 {
    v.rem_euclid(p as i128) as u64
}

/// Precomputation for Shoup multiplication by the constant w < p < 2^63.
#[inline]
pub(crate) fn shoup(w: u64, p: u64) -> u64 {
    (((w as u128) << 64) / p as u128) as u64
}

/// x·w mod p with the Shoup constant `ws = shoup(w, p)`; x < 2^64, p < 2^63.
#[inline]
pub(crate) fn mul_shoup(x: u64, w: u64, ws: u64, p: u64) -> u64 {
    let qhat = ((x as u128 * ws as u128) >> 64) as u64;
    let r = x.wrapping_mul(w).wrapping_sub(qhat.wrapping_mul(p));
    if r >= p { r - p } else { r }
}

/// Modular inverse of a modulo prime p (Fermat).
pub(crate) fn inv_mod(a: u64, p: u64) -> u64 {
    let (mut b, mut e, mut r) = (a % p, p - 2, 1u64);
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, b, p);
        }
        b = mul_mod(b, b, p);
        e >>= 1;
    }
    r
}
