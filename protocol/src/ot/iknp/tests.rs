use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn setup(seed: u64, delta: Option<Block>) -> (Sender, Receiver, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (rs, a) = ReceiverSetup::new(&mut rng).unwrap();
    let a = base::SenderMsg::from_bytes(&a.to_bytes()).unwrap();
    let (sender, b) = match delta {
        Some(d) => Sender::with_delta(&mut rng, d, &a).unwrap(),
        None => Sender::new(&mut rng, &a).unwrap(),
    };
    let b = base::ReceiverMsg::from_bytes(&b.to_bytes(), KAPPA).unwrap();
    let receiver = rs.finish(&b).unwrap();
    (sender, receiver, rng)
}

fn random_choices(rng: &mut ChaCha20Rng, n: usize) -> Vec<bool> {
    (0..n).map(|_| rng.next_u32() & 1 == 1).collect()
}

/// One extension through the wire encoding.
fn extend(s: &mut Sender, r: &mut Receiver, choices: &[bool]) -> (SenderBatch, ReceiverBatch) {
    let (rb, msg) = r.extend(choices).unwrap();
    let msg = ExtendMsg::from_bytes(msg.as_bytes(), choices.len()).unwrap();
    (s.extend(&msg).unwrap(), rb)
}

const SIZES: [usize; 6] = [1, 127, 128, 129, 1000, 70_000];

#[test]
fn correlated_ot_every_value() {
    let delta = Block(0x0123_4567_89ab_cdef_0f1e_2d3c_4b5a_6979 | 1);
    let (mut s, mut r, mut rng) = setup(10, Some(delta));
    assert_eq!(s.delta(), delta);
    for n in SIZES {
        let choices = random_choices(&mut rng, n);
        let (sb, rb) = extend(&mut s, &mut r, &choices);
        let m0 = sb.into_correlated();
        let m0 = m0.as_slice();
        let got = rb.into_correlated();
        assert_eq!((m0.len(), got.len()), (n, n));
        for j in 0..n {
            let expect = if choices[j] { m0[j] ^ delta } else { m0[j] };
            assert_eq!(got[j], expect, "n = {n}, j = {j}");
            assert_ne!(got[j], expect ^ delta);
        }
    }
}

#[test]
fn random_ot_every_value() {
    let (mut s, mut r, mut rng) = setup(11, None);
    for n in SIZES {
        let choices = random_choices(&mut rng, n);
        let (sb, rb) = extend(&mut s, &mut r, &choices);
        let pairs = sb.into_random();
        let got = rb.into_random();
        assert_eq!((pairs.len(), got.len()), (n, n));
        for j in 0..n {
            let c = choices[j] as usize;
            assert_eq!(got[j], pairs[j][c], "n = {n}, j = {j}");
            assert_ne!(got[j], pairs[j][1 - c]);
            // Hashing breaks the Δ correlation.
            assert_ne!(pairs[j][0] ^ pairs[j][1], s.delta());
        }
    }
}

#[test]
fn chosen_ot_every_value() {
    let (mut s, mut r, mut rng) = setup(12, None);
    for n in SIZES {
        let choices = random_choices(&mut rng, n);
        let msgs: Vec<[Block; 2]> = (0..n)
            .map(|_| [Block::random(&mut rng), Block::random(&mut rng)])
            .collect();
        let (sb, rb) = extend(&mut s, &mut r, &choices);
        let y = sb.into_chosen(&msgs).unwrap();
        let y = ChosenMsg::from_bytes(y.as_bytes(), n).unwrap();
        let got = rb.into_chosen(&y).unwrap();
        for j in 0..n {
            let c = choices[j] as usize;
            assert_eq!(got[j], msgs[j][c], "n = {n}, j = {j}");
            assert_ne!(got[j], msgs[j][1 - c]);
        }
    }
}

#[test]
fn consecutive_extensions_use_fresh_indices() {
    // The same choices twice must give unrelated outputs.
    let (mut s, mut r, _) = setup(13, None);
    let choices = vec![true; 200];
    let (sa, ra) = extend(&mut s, &mut r, &choices);
    let (sb, rb) = extend(&mut s, &mut r, &choices);
    let (a, b) = (ra.into_random(), rb.into_random());
    assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    let (pa, pb) = (sa.into_random(), sb.into_random());
    assert!(pa.iter().zip(&pb).all(|(x, y)| x[1] != y[1]));
}

#[test]
fn wrong_lengths_are_rejected() {
    let (mut s, mut r, mut rng) = setup(14, None);
    let choices = random_choices(&mut rng, 300);
    let (rb, msg) = r.extend(&choices).unwrap();
    let bytes = msg.as_bytes().to_vec();
    assert_eq!(bytes.len(), ExtendMsg::byte_len(300));
    assert!(matches!(
        ExtendMsg::from_bytes(&bytes[..bytes.len() - 16], 300),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        ExtendMsg::from_bytes(&bytes, 500),
        Err(Error::PeerMisbehaved(_))
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        ExtendMsg::from_bytes(&long, 300),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        ExtendMsg::from_bytes(&bytes, 0),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        ExtendMsg::from_bytes(&bytes, MAX_BATCH + 1),
        Err(Error::BadInput(_))
    ));
    // 300 OTs and 257 OTs have the same padded size: the sender still
    // decodes only what it expects, and a mismatched batch is refused.
    let sb = s
        .extend(&ExtendMsg::from_bytes(&bytes, 300).unwrap())
        .unwrap();
    assert!(matches!(
        sb.into_chosen(&[[Block::ZERO; 2]; 3]),
        Err(Error::BadInput(_))
    ));
    let y = ChosenMsg {
        n: 299,
        bytes: vec![0; 32 * 299],
    };
    assert!(matches!(rb.into_chosen(&y), Err(Error::BadInput(_))));
    assert!(matches!(
        ChosenMsg::from_bytes(&[0u8; 32 * 10 - 1], 10),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(r.extend(&[]), Err(Error::BadInput(_))));
    assert!(matches!(s.begin(MAX_BATCH + 1), Err(Error::BadInput(_))));
}

#[test]
fn batched_hashes_match_tccr() {
    let h = FixedKeyAes::new();
    let delta = Block(0xabcdef);
    let xs: Vec<Block> = (0..600u128)
        .map(|i| Block(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
        .collect();
    let mut inplace = xs.clone();
    let nonce = 0xabc_def0_1234;
    tccr_in_place(&h, nonce, 1000, &mut inplace);
    let mut seen = 0;
    tccr_both(&h, nonce, 1000, delta, &xs, |j, a, b| {
        assert_eq!(j, seen);
        seen += 1;
        assert_eq!(a, h.tccr(xs[j], tweak(nonce, 1000 + j as u64)));
        assert_eq!(b, h.tccr(xs[j] ^ delta, tweak(nonce, 1000 + j as u64)));
        assert_eq!(a, inplace[j]);
    });
    assert_eq!(seen, xs.len());
    // Another session nonce gives other hashes of the same rows.
    let mut other = xs.clone();
    tccr_in_place(&h, nonce ^ 1, 1000, &mut other);
    assert!(other.iter().zip(&inplace).all(|(a, b)| a != b));
    // Tweak layout: domain (bit 127 clear), nonce, index.
    assert_eq!(
        tweak(nonce, 7).0,
        (0x4f54u128 << 112) | ((nonce as u128) << 64) | 7
    );
    assert_eq!(tweak(nonce, 7).0 >> 127, 0);
}

#[test]
fn both_parties_derive_the_same_fresh_session_nonce() {
    let (s1, r1, _) = setup(21, None);
    let (s2, r2, _) = setup(22, None);
    assert_eq!(s1.session_nonce(), r1.session_nonce());
    assert_eq!(s2.session_nonce(), r2.session_nonce());
    assert_ne!(s1.session_nonce(), s2.session_nonce());
    assert!(s1.session_nonce() < 1 << NONCE_BITS);
}

#[test]
fn tampered_extension_breaks_only_the_touched_ots() {
    // Flipping a bit of u^i flips bit i of q_j for the sender, so OT j
    // is no longer consistent, but no panic and other OTs are unaffected
    // (semi-honest protocol: tampering is not detected, only contained).
    let delta = Block::ONES;
    let (mut s, mut r, mut rng) = setup(15, Some(delta));
    let choices = random_choices(&mut rng, 256);
    let (rb, msg) = r.extend(&choices).unwrap();
    let mut bytes = msg.as_bytes().to_vec();
    bytes[0] ^= 1; // column 0, OT 0
    let sb = s
        .extend(&ExtendMsg::from_bytes(&bytes, 256).unwrap())
        .unwrap();
    let (m0, got) = (sb.into_correlated(), rb.into_correlated());
    let m0 = m0.as_slice();
    let ok = |j: usize| got[j] == if choices[j] { m0[j] ^ delta } else { m0[j] };
    assert!(!ok(0));
    assert!((1..256).all(ok));
}

#[test]
fn zero_delta_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(16);
    let (_, a) = ReceiverSetup::new(&mut rng).unwrap();
    assert!(matches!(
        Sender::with_delta(&mut rng, Block::ZERO, &a),
        Err(Error::BadInput(_))
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
    /// Chosen-message OT of any size delivers exactly the chosen messages,
    /// also after an earlier extension of another size.
    #[test]
    fn chosen_ot_any_size(seed in 0u64..1 << 32, first in 1usize..600, n in 1usize..3000) {
        let (mut s, mut r, mut rng) = setup(seed, None);
        let warm = random_choices(&mut rng, first);
        let _ = extend(&mut s, &mut r, &warm);
        let choices = random_choices(&mut rng, n);
        let msgs: Vec<[Block; 2]> = (0..n).map(|_| [Block::random(&mut rng), Block::random(&mut rng)]).collect();
        let (sb, rb) = extend(&mut s, &mut r, &choices);
        let y = sb.into_chosen(&msgs).unwrap();
        let got = rb.into_chosen(&ChosenMsg::from_bytes(y.as_bytes(), n).unwrap()).unwrap();
        for j in 0..n {
            proptest::prop_assert_eq!(got[j], msgs[j][choices[j] as usize]);
        }
    }
}

/// One SoftSpoken batch through the wire encoding.
fn extend_soft(
    s: &mut Sender,
    r: &mut Receiver,
    choices: &[bool],
    rng: &mut ChaCha20Rng,
) -> (SenderBatch, ReceiverBatch) {
    let (rb, msg) = r
        .begin_soft(choices.len())
        .unwrap()
        .run(choices, rng)
        .unwrap();
    assert_eq!(msg.as_bytes().len(), SoftMsg::byte_len(choices.len()));
    let msg = SoftMsg::from_vec(msg.as_bytes().to_vec(), choices.len()).unwrap();
    (s.begin_soft(msg.n()).unwrap().finish(&msg).unwrap(), rb)
}

#[test]
fn softspoken_correlated_ot_every_value() {
    // Several Δ, so that the punctured leaf of each tree varies (Δ's low
    // byte is one tree's path).
    for (k, delta) in [
        Block(0x0123_4567_89ab_cdef_0f1e_2d3c_4b5a_6979 | 1),
        Block(u128::MAX),
        Block(1),
    ]
    .into_iter()
    .enumerate()
    {
        let (mut s, mut r, mut rng) = setup(40 + k as u64, Some(delta));
        for n in SIZES {
            let choices = random_choices(&mut rng, n);
            let (sb, rb) = extend_soft(&mut s, &mut r, &choices, &mut rng);
            let m0 = sb.into_correlated();
            let m0 = m0.as_slice();
            let got = rb.into_correlated();
            assert_eq!((m0.len(), got.len()), (n, n));
            for j in 0..n {
                assert_eq!(got[j], m0[j] ^ delta.select(choices[j]), "n = {n}, j = {j}");
            }
        }
    }
}

#[test]
fn softspoken_and_iknp_batches_share_the_index_space() {
    let (mut s, mut r, mut rng) = setup(44, None);
    let choices = random_choices(&mut rng, 300);
    let (sb1, rb1) = extend(&mut s, &mut r, &choices);
    let (sb2, rb2) = extend_soft(&mut s, &mut r, &choices, &mut rng);
    let (sb3, rb3) = extend(&mut s, &mut r, &choices);
    // Random OT hashes under distinct tweaks: no two batches share a pair.
    let mut seen = std::collections::HashSet::new();
    for (sb, rb) in [(sb1, rb1), (sb2, rb2), (sb3, rb3)] {
        let pairs = sb.into_random();
        let got = rb.into_random();
        for j in 0..300 {
            assert_eq!(got[j], pairs[j][choices[j] as usize]);
            assert!(seen.insert(pairs[j][0].0), "pair reused");
        }
    }
}

#[test]
fn softspoken_rejects_bad_messages() {
    let (mut s, mut r, mut rng) = setup(45, None);
    let choices = random_choices(&mut rng, 1000);
    let (_, msg) = r.begin_soft(1000).unwrap().run(&choices, &mut rng).unwrap();
    let bytes = msg.as_bytes().to_vec();
    let short = bytes[..bytes.len() - 1].to_vec();
    assert!(matches!(
        SoftMsg::from_vec(short, 1000),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(SoftMsg::from_vec(bytes.clone(), 0).is_err());
    assert!(SoftMsg::from_vec(bytes.clone(), MAX_BATCH + 1).is_err());
    // A message for another size does not fit the reserved batch.
    let msg = SoftMsg::from_vec(bytes, 1000).unwrap();
    assert!(s.begin_soft(999).unwrap().finish(&msg).is_err());
    assert!(r.begin_soft(10).unwrap().run(&choices, &mut rng).is_err());
}
