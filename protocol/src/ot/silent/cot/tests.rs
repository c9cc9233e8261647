use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const NONCE: u64 = 0x1234_5678_9abc;

/// A sender and receiver bootstrapped from ideal COTs (the SoftSpoken path is
/// tested in the driver): q uniform, t = q ⊕ r·Δ for uniform r.
fn pair(seed: u64) -> (Sender, Receiver) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let delta = Block(Block::random(&mut rng).0 | 1);
    let m = SETUP.base_cots();
    let q: Vec<Block> = (0..m).map(|_| Block::random(&mut rng)).collect();
    let r: Vec<bool> = (0..m).map(|_| rng.next_u32() & 1 == 1).collect();
    let t = q
        .iter()
        .zip(&r)
        .map(|(&q, &r)| q ^ delta.select(r))
        .collect();
    let s = Sender::bootstrap(
        delta,
        NONCE,
        CorrelatedZeros { blocks: q },
        WipingRng::fork(&mut rng),
    )
    .unwrap();
    (s, Receiver::bootstrap(NONCE, &r, t).unwrap())
}

/// One round through the wire encoding.
fn round(s: &mut Sender, r: &mut Receiver) {
    let (expanded, msg) = s.begin_round().unwrap().expand();
    let job = r.begin_round().unwrap();
    let msg = RoundMsg::from_vec(msg.as_bytes().to_vec(), job.params()).unwrap();
    let out_r = job.run(&msg).unwrap();
    s.finish_round(expanded.encode()).unwrap();
    r.finish_round(out_r).unwrap();
}

/// Checks q_j ⊕ t_j = b_j·Δ with b_j = lsb(t_j) and lsb(q_j) = 0 for
/// every output; returns the number of ones among the choices.
fn check_cots(delta: Block, q: &SenderCots, t: &ReceiverCots) -> usize {
    assert_eq!(q.len(), t.len());
    let mut ones = 0;
    for (j, (&a, &b)) in q.as_slice().iter().zip(t.as_slice()).enumerate() {
        assert!(!a.lsb(), "sender lsb at {j}");
        assert_eq!(a ^ b, delta.select(b.lsb()), "output {j}");
        ones += b.lsb() as usize;
    }
    ones
}

/// The plaintext check of the correlation for every output of the setup
/// round and of two main rounds bootstrapped from it, taken in batches
/// that straddle round boundaries.
#[test]
fn every_output_over_three_rounds_is_a_cot() {
    let (mut s, mut r) = pair(1);
    let delta = s.delta();
    assert_eq!((s.available(), s.rounds_needed(1)), (0, 1));
    round(&mut s, &mut r);
    let setup_yield = SETUP.n() - MAIN.base_cots();
    assert_eq!((s.available(), r.available()), (setup_yield, setup_yield));
    let main_yield = MAIN.n() - MAIN.base_cots();
    // Everything the setup round and two main rounds yield, in batches
    // of 3 M (not aligned with the rounds).
    let total = setup_yield + 2 * main_yield;
    s.plan(total);
    r.plan(total);
    let (mut taken, mut ones) = (0, 0);
    while taken < total {
        let n = (3 << 20).min(total - taken);
        let need = s.rounds_needed(n);
        assert_eq!(need, r.rounds_needed(n));
        for _ in 0..need {
            round(&mut s, &mut r);
        }
        let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
        ones += check_cots(delta, &q, &t);
        taken += n;
    }
    assert_eq!((s.rounds(), r.rounds()), (3, 3));
    assert_eq!((s.available(), r.available()), (0, 0));
    // The choice bits are balanced (LPN outputs look uniform): within
    // 10 standard deviations of total / 2.
    let dev = (ones as f64 - total as f64 / 2.0).abs();
    assert!(
        dev < 10.0 * (total as f64 / 4.0).sqrt(),
        "{ones} of {total}"
    );
}

/// Small rounds: a demand that one small round covers runs the
/// [`SETUP`] parameters on the reserve's front and refills it, whatever
/// came before; a larger one runs a main round on the whole reserve.
/// Every output is a COT, and both parties pick the same parameters.
#[test]
fn small_and_main_rounds_mix_on_one_reserve() {
    let (mut s, mut r) = pair(13);
    let delta = s.delta();
    round(&mut s, &mut r);
    // Announced beyond the pool → parameters of the round that follows,
    // then outputs taken: small, small, main (over one small round's
    // yield), small again on the refilled reserve.
    for (beyond, kind) in [
        (1000, SETUP),
        (SMALL_YIELD, SETUP),
        (SMALL_YIELD + 1, MAIN),
        (10, SETUP),
    ] {
        let want = s.available() + beyond;
        s.plan(want);
        r.plan(want);
        assert_eq!(r.next_params(), kind);
        assert_eq!((s.rounds_needed(want), r.rounds_needed(want)), (1, 1));
        round(&mut s, &mut r);
        let (q, t) = (s.take(want).unwrap(), r.take(want).unwrap());
        check_cots(delta, &q, &t);
    }
    assert_eq!((s.rounds(), r.rounds()), (5, 5));
    assert_eq!(
        (s.available(), r.available()),
        (SMALL_YIELD - 10, SMALL_YIELD - 10)
    );
}

#[test]
fn chosen_choices_and_random_ot() {
    let (mut s, mut r) = pair(2);
    let delta = s.delta();
    round(&mut s, &mut r);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for n in [1usize, 7, 8, 9, 1000] {
        let c: Vec<bool> = (0..n).map(|_| rng.next_u32() & 1 == 1).collect();
        // Correlated OT with chosen choices.
        let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
        let (chosen, msg) = t.choose(&c).unwrap();
        assert_eq!(msg.as_bytes().len(), n.div_ceil(8));
        let msg = ChoiceMsg::from_vec(msg.as_bytes().to_vec(), n).unwrap();
        let zeros = q.apply_choices(&msg).unwrap().into_correlated();
        let got = chosen.into_correlated();
        for j in 0..n {
            assert_eq!(got[j], zeros.as_slice()[j] ^ delta.select(c[j]));
        }
        // Random OT with chosen choices.
        let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
        let (chosen, msg) = t.choose(&c).unwrap();
        let pairs = q.apply_choices(&msg).unwrap().into_random();
        let got = chosen.into_random();
        for j in 0..n {
            assert_eq!(got[j], pairs[j][c[j] as usize]);
            assert_ne!(got[j], pairs[j][1 - c[j] as usize]);
            assert_ne!(pairs[j][0] ^ pairs[j][1], delta);
        }
        // Random OT with the random choices.
        let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
        let pairs = q.into_random();
        let (b, got) = t.into_random();
        for j in 0..n {
            assert_eq!(got[j], pairs[j][b[j] as usize]);
        }
    }
}

#[test]
fn outputs_are_handed_out_once_with_fresh_indices() {
    let (mut s, mut r) = pair(4);
    round(&mut s, &mut r);
    let (q1, _t1) = (s.take(100).unwrap(), r.take(100).unwrap());
    let (q2, _t2) = (s.take(100).unwrap(), r.take(100).unwrap());
    assert!(q1.as_slice().iter().zip(q2.as_slice()).all(|(a, b)| a != b));
    // The same block hashed at other indices gives other random OTs.
    let mut a = vec![Block(5); 4];
    let mut b = vec![Block(5); 4];
    hash_in_place(NONCE, 0, &mut a);
    hash_in_place(NONCE, 4, &mut b);
    assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    assert!(a.windows(2).all(|w| w[0] != w[1]));
    let mut c = vec![Block(5); 4];
    hash_in_place(NONCE + 1, 0, &mut c);
    assert!(a.iter().zip(&c).all(|(x, y)| x != y));
}

#[test]
fn hostile_and_misused_messages_are_errors() {
    let (mut s, mut r) = pair(5);
    // Round message of the wrong length, either way.
    let (expanded, msg) = s.begin_round().unwrap().expand();
    let bytes = msg.into_bytes();
    assert_eq!(bytes.len(), 16 * SETUP.msg_blocks());
    for len in [0, bytes.len() - 1, bytes.len() + 16] {
        let mut b = bytes.clone();
        b.resize(len, 0);
        assert!(matches!(
            RoundMsg::from_vec(b, SETUP),
            Err(Error::PeerMisbehaved(_))
        ));
    }
    // A second round while one runs, and a message for other parameters.
    assert!(matches!(s.begin_round(), Err(Error::BadInput(_))));
    let job = r.begin_round().unwrap();
    assert!(matches!(r.begin_round(), Err(Error::BadInput(_))));
    let other = RoundMsg::from_vec(vec![0; 16 * MAIN.msg_blocks()], MAIN).unwrap();
    assert!(matches!(job.run(&other), Err(Error::BadInput(_))));
    // Nothing to hand out before a round finishes.
    assert!(matches!(s.take(1), Err(Error::BadInput(_))));
    assert!(matches!(s.take(MAX_BATCH + 1), Err(Error::BadInput(_))));
    // A tampered correction breaks the touched tree's outputs only, no
    // panic (semi-honest: contained, not detected). Corrections of tree
    // 3, level 5 affect leaves of block 3 only (before the code mixes
    // the secret in, which the tamper does not touch).
    let (mut s, mut r) = pair(6);
    let delta = s.delta();
    let (expanded2, msg) = s.begin_round().unwrap().expand();
    let mut b = msg.into_bytes();
    b[16 * (3 * SETUP.depth as usize + 5)] ^= 0x10;
    let job = r.begin_round().unwrap();
    let out_r = job.run(&RoundMsg::from_vec(b, SETUP).unwrap()).unwrap();
    s.finish_round(expanded2.encode()).unwrap();
    r.finish_round(out_r).unwrap();
    let n = s.available();
    let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
    let bad: Vec<usize> = (0..n)
        .filter(|&j| q.as_slice()[j] ^ t.as_slice()[j] != delta.select(t.as_slice()[j].lsb()))
        .collect();
    let leaves = SETUP.leaves();
    assert!(!bad.is_empty());
    assert!(bad.iter().all(|&j| j / leaves == 3), "{:?}", &bad[..4]);
    // The output of round 0 offered to an instance in round 1.
    drop(expanded);
    let (mut s, mut r) = pair(7);
    let (e, msg) = s.begin_round().unwrap().expand();
    let out_r = r.begin_round().unwrap().run(&msg).unwrap();
    let out_s = e.encode();
    let (mut s2, mut r2) = pair(8);
    round(&mut s2, &mut r2);
    let _running = s2.begin_round().unwrap();
    assert!(matches!(s2.finish_round(out_s), Err(Error::BadInput(_))));
    r.finish_round(out_r).unwrap();
    // A round whose output never came back leaves the instance spent.
    assert!(matches!(s.begin_round(), Err(Error::BadInput(_))));
    let (_, mut r) = pair(10);
    drop(r.begin_round().unwrap());
    assert!(matches!(r.begin_round(), Err(Error::BadInput(_))));
    let (mut s, mut r) = pair(12);
    round(&mut s, &mut r);
    // Choice corrections: wrong length, padding bits, wrong batch.
    assert!(matches!(
        ChoiceMsg::from_vec(vec![0; 2], 17),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        ChoiceMsg::from_vec(vec![0, 0, 0b10], 17),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(ChoiceMsg::from_vec(vec![0xff, 0xff, 0b1], 17).is_ok());
    assert!(matches!(
        ChoiceMsg::from_vec(vec![], MAX_BATCH + 1),
        Err(Error::BadInput(_))
    ));
    let t = r.take(5).unwrap();
    assert!(matches!(t.choose(&[true; 4]), Err(Error::BadInput(_))));
    // Batches appended out of order.
    let (mut q1, _) = (s.take(3).unwrap(), s.take(3).unwrap());
    assert!(matches!(
        q1.append(s.take(3).unwrap()),
        Err(Error::BadInput(_))
    ));
    let (mut t1, _) = (r.take(3).unwrap(), r.take(3).unwrap());
    assert!(matches!(
        t1.append(r.take(3).unwrap()),
        Err(Error::BadInput(_))
    ));
    assert!(t1.append(r.take(0).unwrap()).is_err());
    let q = s.take(5).unwrap();
    let eight = ChoiceMsg::from_vec(vec![0], 8).unwrap();
    assert!(matches!(q.apply_choices(&eight), Err(Error::BadInput(_))));
    // Δ with lsb 0 and a bootstrap of the wrong size are refused.
    let zeros = |n| CorrelatedZeros {
        blocks: vec![Block::ZERO; n],
    };
    let rng = || WipingRng::fork(&mut ChaCha20Rng::seed_from_u64(1));
    assert!(Sender::bootstrap(Block(2), 0, zeros(SETUP.base_cots()), rng()).is_err());
    assert!(Sender::bootstrap(Block(3), 0, zeros(5), rng()).is_err());
    assert!(Receiver::bootstrap(0, &[false; 5], vec![Block::ZERO; 5]).is_err());
}

/// Appended batches keep every correlation whether or not room was
/// reserved; with room reserved they land in place (no reallocation).
#[test]
fn appended_batches_stay_correlated() {
    let (mut s, mut r) = pair(14);
    round(&mut s, &mut r);
    let delta = s.delta();
    let sizes = [1usize, 7, 1000, 3, 5000, 129];
    let total: usize = sizes.iter().sum();
    for reserve in [false, true] {
        let (mut q, mut t) = (s.take(sizes[0]).unwrap(), r.take(sizes[0]).unwrap());
        if reserve {
            q.reserve(total - sizes[0]);
            t.reserve(total - sizes[0]);
        }
        let (qp, tp) = (q.as_slice().as_ptr(), t.as_slice().as_ptr());
        for &n in &sizes[1..] {
            q.append(s.take(n).unwrap()).unwrap();
            t.append(r.take(n).unwrap()).unwrap();
        }
        assert_eq!((q.len(), t.len()), (total, total));
        for j in 0..total {
            assert_eq!(t.as_slice()[j], q.as_slice()[j] ^ delta.select(t.choice(j)));
        }
        if reserve {
            assert_eq!((q.as_slice().as_ptr(), t.as_slice().as_ptr()), (qp, tp));
        }
    }
}

/// `take_more` appends in place, keeps the correlation, and refuses a batch
/// that was not handed out last.
#[test]
fn take_more_appends_the_next_outputs() {
    let (mut s, mut r) = pair(15);
    round(&mut s, &mut r);
    let delta = s.delta();
    let (mut q, mut t) = (s.take(10).unwrap(), r.take(10).unwrap());
    for n in [1usize, 500, 3000] {
        s.take_more(&mut q, n).unwrap();
        r.take_more(&mut t, n).unwrap();
    }
    assert_eq!((q.len(), t.len()), (3511, 3511));
    for j in 0..q.len() {
        assert_eq!(t.as_slice()[j], q.as_slice()[j] ^ delta.select(t.choice(j)));
    }
    // Another batch was handed out since: q and t are no longer the last.
    let (_q2, _t2) = (s.take(5).unwrap(), r.take(5).unwrap());
    assert!(matches!(s.take_more(&mut q, 5), Err(Error::BadInput(_))));
    assert!(matches!(r.take_more(&mut t, 5), Err(Error::BadInput(_))));
    assert!(s.take_more(&mut q, 1 << 40).is_err());
}

/// A round buffer handed out to the end stays, wiped in place and with its
/// memory, as the spare of the next round; [`zeroed`] reuses that memory,
/// and rounds on it still give COTs.
#[test]
fn a_used_up_buffer_is_kept_wiped_for_the_next_round() {
    let (mut s, mut r) = pair(16);
    round(&mut s, &mut r);
    let cap = s.pool.bufs[0].0.capacity();
    let n = s.available();
    let (_q, _t) = (s.take(n).unwrap(), r.take(n).unwrap());
    for pool in [&s.pool, &r.pool] {
        assert_eq!((pool.len, pool.spare.capacity()), (0, cap));
        assert!(!pool.spare.is_empty());
        assert!(pool.spare.iter().all(|&b| b == Block::ZERO));
    }
    let ptr = r.pool.spare.as_ptr();
    let buf = zeroed(std::mem::take(&mut r.pool.spare), SETUP.n());
    assert_eq!((buf.as_ptr(), buf.len()), (ptr, SETUP.n()));
    assert!(buf.iter().all(|&b| b == Block::ZERO));
    r.pool.spare = buf;
    let delta = s.delta();
    for _ in 0..2 {
        round(&mut s, &mut r);
        let n = s.available();
        let (q, t) = (s.take(n).unwrap(), r.take(n).unwrap());
        check_cots(delta, &q, &t);
    }
}
