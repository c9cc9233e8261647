//! Symmetric building blocks shared by OT extension and garbled circuits:
//! the 128-bit [`Block`], fixed-key AES hashing ([`FixedKeyAes`]) and a
//! ChaCha20 generator wiped on drop ([`WipingRng`]); the hash tweak
//! domains of the whole crate ([`tweak`]).

mod aes_hash;
pub(crate) mod bits;
mod block;
mod rng;
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd;
pub mod tweak;

pub(crate) use aes_hash::FIXED_KEY;
pub use aes_hash::{AES_BATCH, FixedKeyAes, from_aes, to_aes, wipe_aes_blocks};
pub use block::Block;
pub use rng::{WipingRng, fork_chacha, wipe_chacha};
