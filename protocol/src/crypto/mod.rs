//! Symmetric building blocks shared by OT extension and garbled circuits:
//! the 128-bit [`Block`] and fixed-key AES hashing ([`FixedKeyAes`]).

mod aes_hash;
mod block;

pub use aes_hash::{AES_BATCH, FixedKeyAes, from_aes, to_aes};
pub use block::Block;
