//! Fixed-key AES as a random permutation π, and the hashes built on it.
//!
//! - [`FixedKeyAes::tccr`]: the tweakable circular correlation-robust hash of
//!   Guo, Katz, Wang and Yu ("Efficient and secure multiparty computation from
//!   fixed-key block ciphers", IEEE S&P 2020, section 7):
//!   `TCCR(x, i) = π(π(x) ⊕ i) ⊕ π(x)`. Used for half-gates garbling and for
//!   breaking the correlation of IKNP outputs.
//! - [`FixedKeyAes::cr`]: the correlation-robust hash `π(σ(x)) ⊕ σ(x)` with the
//!   linear orthomorphism σ(x) = 2·x in GF(2^128) (same paper, section 7.2).
//!
//! All functions take slices and hash many blocks per AES call: AES-NI (or
//! the portable fallback the `aes` crate picks at run time) pipelines 8
//! blocks, and per-call overhead disappears at batch sizes of a few hundred.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};

use zeroize::Zeroize;

use super::Block;

/// Blocks processed per AES call in the batched functions.
pub const AES_BATCH: usize = 256;

/// The public fixed key. Any fixed, public key works in the ideal-permutation
/// model; this one is the first 16 bytes of SHA-256("pi-runtime fixed key").
pub(crate) const FIXED_KEY: [u8; 16] = [
    0x31, 0x6a, 0x0b, 0x88, 0x47, 0x98, 0x73, 0xf8, 0x2b, 0x62, 0xaa, 0x22, 0x2a, 0xb8, 0xee, 0xe1,
];

/// AES-128 under a fixed public key, used as a random permutation.
#[derive(Clone)]
pub struct FixedKeyAes {
    cipher: Aes128,
    /// The same key for the AVX-512 + VAES kernel of [`Self::permute_many`],
    /// if the CPU has it (detected at run time).
    #[cfg(target_arch = "x86_64")]
    simd: Option<super::simd::Vaes512>,
}

impl Default for FixedKeyAes {
    fn default() -> Self {
        Self::new()
    }
}

impl FixedKeyAes {
    /// π under the project's fixed public key.
    pub fn new() -> Self {
        Self::with_key(FIXED_KEY)
    }

    /// AES-128 under `key`: a PRF/PRP with a secret key, or another public
    /// permutation. The caller's copy of a secret key is its own to wipe;
    /// this function wipes the copy it was given.
    pub fn with_key(mut key: [u8; 16]) -> Self {
        let cipher = Aes128::new((&key).into());
        #[cfg(target_arch = "x86_64")]
        let simd = super::simd::Vaes512::new(key);
        key.zeroize();
        Self {
            cipher,
            #[cfg(target_arch = "x86_64")]
            simd,
        }
    }

    /// π(x) for one block.
    pub fn permute(&self, x: Block) -> Block {
        let mut b = aes::Block::from(x.to_bytes());
        self.cipher.encrypt_block(&mut b);
        Block::from_bytes(b.into())
    }

    /// In place: `xs[i] = π(xs[i])`. The bulk runs on the SIMD kernel when
    /// the CPU has one, the rest through the `aes` crate (its portable twin).
    pub fn permute_many(&self, xs: &mut [Block]) {
        #[cfg(target_arch = "x86_64")]
        let xs = match &self.simd {
            Some(simd) => {
                let done = simd.permute(xs);
                &mut xs[done..]
            }
            None => xs,
        };
        self.permute_many_portable(xs);
    }

    /// [`Self::permute_many`] through the `aes` crate only.
    fn permute_many_portable(&self, xs: &mut [Block]) {
        let mut buf = [aes::Block::default(); AES_BATCH];
        for chunk in xs.chunks_mut(AES_BATCH) {
            let buf = &mut buf[..chunk.len()];
            for (d, s) in buf.iter_mut().zip(chunk.iter()) {
                *d = aes::Block::from(s.to_bytes());
            }
            self.cipher.encrypt_blocks(buf);
            for (s, d) in chunk.iter_mut().zip(buf.iter()) {
                *s = Block::from_bytes((*d).into());
            }
        }
        // The buffer held the outputs (secret labels or PRG blocks).
        wipe_aes_blocks(&mut buf[..xs.len().min(AES_BATCH)]);
    }

    /// `out[i] = TCCR(xs[i], tweaks[i]) = π(π(x) ⊕ i) ⊕ π(x)`.
    ///
    /// # Panics
    /// If the three slices differ in length (a programming error).
    pub fn tccr_many(&self, xs: &[Block], tweaks: &[Block], out: &mut [Block]) {
        assert!(
            xs.len() == tweaks.len() && xs.len() == out.len(),
            "tccr_many: length mismatch"
        );
        let mut px = [Block::ZERO; AES_BATCH];
        for ((x, t), o) in xs
            .chunks(AES_BATCH)
            .zip(tweaks.chunks(AES_BATCH))
            .zip(out.chunks_mut(AES_BATCH))
        {
            let px = &mut px[..x.len()];
            px.copy_from_slice(x);
            self.permute_many(px);
            for ((o, p), t) in o.iter_mut().zip(px.iter()).zip(t.iter()) {
                *o = *p ^ *t;
            }
            self.permute_many(o);
            for (o, p) in o.iter_mut().zip(px.iter()) {
                *o ^= *p;
            }
        }
        px[..xs.len().min(AES_BATCH)].zeroize();
    }

    /// `out[j] = TCCR(xs[j], tweak(j))` on the `aes` crate's block type, so
    /// that a hot loop (garbling) fills and reads reusable buffers without
    /// converting whole slices or allocating. `xs` is clobbered (it ends
    /// holding π(x)); the tweak is computed on the fly.
    ///
    /// # Panics
    /// If `out` and `xs` differ in length (a programming error).
    #[inline]
    pub fn tccr_blocks_with(
        &self,
        xs: &mut [aes::Block],
        out: &mut [aes::Block],
        tweak: impl Fn(usize) -> u128,
    ) {
        assert_eq!(xs.len(), out.len(), "tccr_blocks_with: length mismatch");
        self.cipher.encrypt_blocks(xs);
        for (j, (o, p)) in out.iter_mut().zip(xs.iter()).enumerate() {
            *o = to_aes(from_aes(p) ^ tweak(j));
        }
        self.cipher.encrypt_blocks(out);
        for (o, p) in out.iter_mut().zip(xs.iter()) {
            *o = to_aes(from_aes(o) ^ from_aes(p));
        }
    }

    /// In place: `xs[j] = TCCR(xs[j], tweak(j))`, a batch of blocks per AES
    /// call through one stack buffer (wiped after), no heap temporaries.
    pub fn tccr_in_place_with(&self, xs: &mut [Block], tweak: impl Fn(usize) -> Block) {
        let mut p = [Block::ZERO; AES_BATCH];
        for (c, chunk) in xs.chunks_mut(AES_BATCH).enumerate() {
            let p = &mut p[..chunk.len()];
            p.copy_from_slice(chunk);
            self.permute_many(p);
            let base = c * AES_BATCH;
            for (j, (x, pj)) in chunk.iter_mut().zip(p.iter()).enumerate() {
                *x = *pj ^ tweak(base + j);
            }
            self.permute_many(chunk);
            for (x, pj) in chunk.iter_mut().zip(p.iter()) {
                *x ^= *pj;
            }
        }
        p.zeroize();
    }

    /// TCCR for one block.
    pub fn tccr(&self, x: Block, tweak: Block) -> Block {
        let mut out = [Block::ZERO];
        self.tccr_many(&[x], &[tweak], &mut out);
        out[0]
    }

    /// In place: `xs[i] = π(σ(xs[i])) ⊕ σ(xs[i])` with σ(x) = 2·x in GF(2^128).
    pub fn cr_many(&self, xs: &mut [Block]) {
        let mut sigma = [Block::ZERO; AES_BATCH];
        for chunk in xs.chunks_mut(AES_BATCH) {
            let sigma = &mut sigma[..chunk.len()];
            for (s, x) in sigma.iter_mut().zip(chunk.iter_mut()) {
                *s = x.double();
                *x = *s;
            }
            self.permute_many(chunk);
            for (x, s) in chunk.iter_mut().zip(sigma.iter()) {
                *x ^= *s;
            }
        }
        sigma[..xs.len().min(AES_BATCH)].zeroize();
    }
}

/// Overwrites `aes` blocks with zeros. The `aes` block type has no
/// `Zeroize` here (its `hybrid-array` is built without that feature), so
/// this is a plain fill followed by an optimisation barrier: best effort.
pub fn wipe_aes_blocks(bufs: &mut [aes::Block]) {
    bufs.fill(aes::Block::default());
    std::hint::black_box(&*bufs);
}

/// An `aes` block as a little-endian `u128`.
#[inline(always)]
pub fn from_aes(b: &aes::Block) -> u128 {
    u128::from_le_bytes((*b).into())
}

/// A little-endian `u128` as an `aes` block.
#[inline(always)]
pub fn to_aes(x: u128) -> aes::Block {
    aes::Block::from(x.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_matches_fips197_vector() {
        // FIPS-197 appendix C.1: key 000102..0f, plaintext 00112233..ff.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let pt: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        let want = [
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ];
        let aes = FixedKeyAes::with_key(key);
        assert_eq!(aes.permute(Block::from_bytes(pt)).to_bytes(), want);
        // The batched path (the SIMD kernel where available) too.
        let mut many = vec![Block::from_bytes(pt); 40];
        aes.permute_many(&mut many);
        assert!(many.iter().all(|b| b.to_bytes() == want));
    }

    #[test]
    fn batched_equals_single_across_batch_boundaries() {
        let h = FixedKeyAes::new();
        let n = AES_BATCH * 2 + 7;
        let xs: Vec<Block> = (0..n as u128)
            .map(|i| Block(i * 0x9e37_79b9_7f4a_7c15))
            .collect();
        let tw: Vec<Block> = (0..n as u128).map(Block).collect();
        let mut out = vec![Block::ZERO; n];
        h.tccr_many(&xs, &tw, &mut out);
        let mut cr = xs.clone();
        h.cr_many(&mut cr);
        for i in 0..n {
            assert_eq!(out[i], h.tccr(xs[i], tw[i]));
            let s = xs[i].double();
            assert_eq!(cr[i], h.permute(s) ^ s);
        }
        // The in-place variant on aes blocks agrees.
        let mut raw: Vec<aes::Block> = xs.iter().map(|x| to_aes(x.0)).collect();
        let mut hashed = vec![aes::Block::default(); n];
        h.tccr_blocks_with(&mut raw, &mut hashed, |j| tw[j].0);
        for i in 0..n {
            assert_eq!(from_aes(&hashed[i]), out[i].0);
        }
        // The SIMD permutation (if any) equals the portable one, for a
        // secret-style random key and lengths around its step of 16.
        let keyed =
            FixedKeyAes::with_key(core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a));
        for len in [0usize, 1, 15, 16, 17, 33, 64, 300] {
            let mut a: Vec<Block> = (0..len as u128)
                .map(|i| Block(i.wrapping_mul(0x0123_4567_89ab_cdef_0011)))
                .collect();
            let mut b = a.clone();
            keyed.permute_many(&mut a);
            keyed.permute_many_portable(&mut b);
            assert_eq!(a, b, "len {len}");
        }
        #[cfg(target_arch = "x86_64")]
        crate::crypto::check_simd_taken("FixedKeyAes::permute_many", keyed.simd.is_some());
        #[cfg(not(target_arch = "x86_64"))]
        crate::crypto::check_simd_taken("FixedKeyAes::permute_many", false);
        // Different tweaks give different outputs.
        assert_ne!(h.tccr(xs[3], Block(1)), h.tccr(xs[3], Block(2)));
    }
}
