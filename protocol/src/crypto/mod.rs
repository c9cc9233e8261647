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

/// Environment variable that makes the SIMD-vs-portable tests fail when the
/// SIMD kernels are not taken (set by `.ci/run` on CPUs with AVX-512F and
/// VAES), so that they never compare the portable path with itself unnoticed.
#[cfg(test)]
pub(crate) const EXPECT_SIMD_VAR: &str = "PI_EXPECT_SIMD";

/// In tests that compare a SIMD kernel with its portable twin: says which
/// path ran and panics if [`EXPECT_SIMD_VAR`] is `1` but the SIMD path was
/// not taken.
#[cfg(test)]
pub(crate) fn check_simd_taken(what: &str, taken: bool) {
    eprintln!("{what}: SIMD kernels taken: {taken}");
    let expected = std::env::var(EXPECT_SIMD_VAR).is_ok_and(|v| v == "1");
    if let Err(e) = simd_expectation(what, expected, taken) {
        panic!("{e}");
    }
}

#[cfg(test)]
fn simd_expectation(what: &str, expected: bool, taken: bool) -> Result<(), String> {
    if expected && !taken {
        return Err(format!(
            "{EXPECT_SIMD_VAR}=1 but {what} took the portable path: the SIMD-vs-portable \
             comparison would compare the portable path with itself"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_expected_simd_path_that_is_not_taken_fails() {
        assert!(super::simd_expectation("k", true, false).is_err());
        assert!(super::simd_expectation("k", true, true).is_ok());
        assert!(super::simd_expectation("k", false, false).is_ok());
        assert!(super::simd_expectation("k", false, true).is_ok());
    }
}
