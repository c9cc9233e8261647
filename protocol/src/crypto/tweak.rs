//! Hash tweak domains of the whole crate, in one place.
//!
//! Every user of the TCCR hash ([`super::FixedKeyAes`]) puts a domain in the
//! top bits of its tweaks, so that two users never hash under the same tweak,
//! even when their keys share a correlation Δ (a correlated OT whose Δ is the
//! garbling Δ). Garbling sets bit 127; every other domain clears it and puts
//! a distinct 16-bit tag in bits 112..128. The test below checks that the
//! domains are pairwise disjoint.

/// Garbled gates ([`crate::gc`]): bit 127 set; the layer, garbler nonce,
/// instance and hash index fill the rest.
pub const GC: u128 = 1 << 127;

/// Shift of the instance field of a garbling tweak: instance `i` of a chunk
/// adds `i << GC_INSTANCE_SHIFT`.
pub(crate) const GC_INSTANCE_SHIFT: u32 = 16;

/// IKNP random-OT hashes ([`crate::ot::iknp`]): tag "OT" in bits 112..128,
/// session nonce in bits 64..112, OT index in bits 0..64.
pub const IKNP: u128 = 0x4f54 << 112;

/// Silent-OT random-OT hashes ([`crate::ot::silent`]): tag "SO" in bits
/// 112..128, same layout as [`IKNP`].
pub const SILENT_OT: u128 = 0x534f << 112;

/// OT-mode ReLU pad hashes ([`crate::relu_ot`]): tag "RELU" in bits 96..128,
/// random-OT number in bits 16..96, entry in bits 0..16.
pub const RELU_OT: u128 = 0x5245_4c55 << 96;

/// Every domain with the mask of the bits that identify it.
#[cfg(test)]
const DOMAINS: [(&str, u128, u128); 4] = [
    ("gc", GC, 1 << 127),
    ("iknp", IKNP, 0xffff << 112),
    ("silent_ot", SILENT_OT, 0xffff << 112),
    ("relu_ot", RELU_OT, 0xffff_ffff << 96),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A tweak is in a domain when its identifying bits equal the domain's.
    fn in_domain(tweak: u128, (_, value, mask): (&str, u128, u128)) -> bool {
        tweak & mask == value
    }

    #[test]
    fn domains_are_pairwise_disjoint() {
        for (i, a) in DOMAINS.iter().enumerate() {
            assert!(in_domain(a.1, *a), "{} is not in its own domain", a.0);
            // Every domain but GC clears bit 127, and the tags differ: no tweak
            // (whatever its free bits) lies in two domains. Check it on the
            // domain value with all free bits set and all clear.
            for b in &DOMAINS[i + 1..] {
                for free in [0, !a.2] {
                    assert!(!in_domain(a.1 | free, *b), "{} meets {}", a.0, b.0);
                }
                for free in [0, !b.2] {
                    assert!(!in_domain(b.1 | free, *a), "{} meets {}", b.0, a.0);
                }
            }
        }
    }

    #[test]
    fn only_garbling_sets_bit_127() {
        for (name, value, _) in DOMAINS {
            assert_eq!(value >> 127 == 1, name == "gc", "{name}");
        }
    }
}
