use super::*;
use crate::ot::silent::SMALL_YIELD;
use crate::ot::silent::params::MAIN;
use crate::transport::{MemoryChannel, memory_pair};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

async fn setup(seed: u64) -> (DrivenSender, DrivenReceiver, MemoryChannel, MemoryChannel) {
    let (mut cs, mut cr) = memory_pair();
    let mut rs = ChaCha20Rng::seed_from_u64(seed);
    let mut rr = ChaCha20Rng::seed_from_u64(seed + 1000);
    let (s, r) = tokio::join!(
        setup_sender(&mut cs, &mut rs, None),
        setup_receiver(&mut cr, &mut rr)
    );
    (s.unwrap(), r.unwrap(), cs, cr)
}

fn choices(seed: u64, n: usize) -> Vec<bool> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.next_u32() & 1 == 1).collect()
}

/// SoftSpoken bootstrap, setup round, then batches that use up the setup
/// round's yield and start a main round: every output is a COT, and the
/// traffic is exactly what the module docs say.
#[tokio::test]
async fn cots_over_memory_pair_with_exact_traffic() {
    let (mut s, mut r, mut cs, mut cr) = setup(1).await;
    let delta = s.delta();
    assert!(delta.lsb());
    assert_eq!(s.session_nonce(), r.session_nonce());
    let setup_yield = s.available();
    assert_eq!(setup_yield, SETUP.n() - MAIN.base_cots());
    for n in [1, 1000, setup_yield - 1001, 1, 200_000] {
        let (q, t) = tokio::join!(
            send_cots(&mut cs, &mut s, n),
            receive_cots(&mut cr, &mut r, n)
        );
        let (q, t) = (q.unwrap(), t.unwrap());
        assert_eq!((q.len(), t.len()), (n, n));
        for j in 0..n {
            let (a, b) = (q.as_slice()[j], t.as_slice()[j]);
            assert_eq!(a ^ b, delta.select(t.choice(j)), "n = {n}, j = {j}");
        }
    }
    // The 1 above ran a small round (the 200,000 came from its pool);
    // a batch beyond what one small round adds runs a main one.
    let n = 2 * SMALL_YIELD;
    let (q, t) = tokio::join!(
        send_cots(&mut cs, &mut s, n),
        receive_cots(&mut cr, &mut r, n)
    );
    let (q, t) = (q.unwrap(), t.unwrap());
    assert!((0..n).all(|j| q.as_slice()[j] ^ t.as_slice()[j] == delta.select(t.choice(j))));
    assert_eq!((s.rounds(), r.rounds()), (3, 3));
    // Receiver: base OT point, SoftSpoken's trees (16 of depth 8, two
    // blocks per level) and its 16 columns (2 B per OT, padded to 128 OTs).
    // Sender: 128 base OT points, one correction message per round.
    let padded = SETUP.base_cots().div_ceil(128) * 128;
    assert_eq!(cr.meter().total("").sent as usize, 32 + 4096 + 2 * padded);
    assert_eq!(
        cs.meter().total("").sent as usize,
        128 * 32 + 16 * (2 * SETUP.msg_blocks() + MAIN.msg_blocks())
    );
}

#[tokio::test]
async fn chosen_choices_over_memory_pair() {
    let (mut s, mut r, mut cs, mut cr) = setup(2).await;
    let delta = s.delta();
    let before = cr.meter().total("").sent;
    let sizes = [1usize, 9, 5000, 40_000, PIECE + 9];
    for n in sizes {
        let c = choices(n as u64, n);
        let (zeros, got) = tokio::join!(
            send_correlated(&mut cs, &mut s, n),
            receive_correlated(&mut cr, &mut r, &c)
        );
        let (zeros, got) = (zeros.unwrap(), got.unwrap());
        for j in 0..n {
            assert_eq!(got[j], zeros.as_slice()[j] ^ delta.select(c[j]));
        }
        let (pairs, got) = tokio::join!(
            send_random(&mut cs, &mut s, n),
            receive_random(&mut cr, &mut r, &c)
        );
        let (pairs, got) = (pairs.unwrap(), got.unwrap());
        for j in 0..n {
            assert_eq!(got[j], pairs[j][c[j] as usize], "n = {n}, j = {j}");
            assert_ne!(got[j], pairs[j][1 - c[j] as usize]);
        }
    }
    // One bit per OT from the receiver, nothing else.
    // (a message per piece)
    let bits: usize = sizes
        .iter()
        .flat_map(|&n| pieces(n))
        .map(|(_, len)| 2 * len.div_ceil(8))
        .sum();
    assert_eq!((cr.meter().total("").sent - before) as usize, bits);
}

/// A demand announced beyond the pool starts a round at once: its
/// message is on the wire before any OT is asked for, the round
/// finishes in the background, and the OTs then need no further round.
#[tokio::test]
async fn announced_demand_starts_a_round_ahead() {
    let (mut s, mut r, mut cs, mut cr) = setup(12).await;
    let sent = cs.meter().total("").sent;
    let n = s.available() + 5000;
    let (a, b) = tokio::join!(s.plan(&mut cs, n), r.plan(&mut cr, n));
    a.unwrap();
    b.unwrap();
    assert!(s.round_running() && r.round_running());
    assert_eq!(
        cs.meter().total("").sent - sent,
        16 * SETUP.msg_blocks() as u64
    );
    let (q, t) = tokio::join!(
        send_cots(&mut cs, &mut s, n),
        receive_cots(&mut cr, &mut r, n)
    );
    let (q, t) = (q.unwrap(), t.unwrap());
    let delta = s.delta();
    assert!((0..n).all(|j| q.as_slice()[j] ^ t.as_slice()[j] == delta.select(t.choice(j))));
    assert_eq!((s.rounds(), r.rounds()), (2, 2));
    assert!(!s.round_running() && !r.round_running());
    assert_eq!(
        cs.meter().total("").sent - sent,
        16 * SETUP.msg_blocks() as u64
    );
}

/// Random choices: no byte moves besides the rounds, and the pairs
/// and choices match.
#[tokio::test]
async fn random_choices_cost_no_bytes() {
    let (mut s, mut r, mut cs, mut cr) = setup(11).await;
    let (sent_s, sent_r) = (cs.meter().total("").sent, cr.meter().total("").sent);
    let n = s.available() - 3;
    let (pairs, got) = tokio::join!(
        send_rot(&mut cs, &mut s, n),
        receive_rot(&mut cr, &mut r, n)
    );
    let (pairs, (c, got)) = (pairs.unwrap(), got.unwrap());
    assert_eq!((pairs.len(), c.len(), got.len()), (n, n, n));
    for j in 0..n {
        assert_eq!(got[j], pairs[j][c[j] as usize], "j = {j}");
        assert_ne!(got[j], pairs[j][1 - c[j] as usize]);
    }
    let ones = c.iter().filter(|&&b| b).count();
    assert!(ones > n / 3 && ones < 2 * n / 3, "{ones} of {n}");
    assert_eq!(cs.meter().total("").sent, sent_s);
    assert_eq!(cr.meter().total("").sent, sent_r);
    assert_eq!(s.rounds(), 1);
}

/// On an IKNP session set up with the garbler's Δ, the silent outputs
/// are correlated under that same Δ; a Δ with lsb 0 is refused.
#[tokio::test]
async fn bootstrap_keeps_a_given_delta() {
    let (mut cs, mut cr) = memory_pair();
    let mut rs = ChaCha20Rng::seed_from_u64(3);
    let mut rr = ChaCha20Rng::seed_from_u64(4);
    let delta = Block(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
    let (mut s, mut r) = tokio::join!(
        setup_sender(&mut cs, &mut rs, Some(delta)),
        setup_receiver(&mut cr, &mut rr)
    );
    let (s, r) = (s.as_mut().unwrap(), r.as_mut().unwrap());
    assert_eq!(s.delta(), delta);
    let c = choices(5, 300);
    let (zeros, got) = tokio::join!(
        send_correlated(&mut cs, s, 300),
        receive_correlated(&mut cr, r, &c)
    );
    let zeros = zeros.unwrap();
    for (j, g) in got.unwrap().iter().enumerate() {
        assert_eq!(*g, zeros.as_slice()[j] ^ delta.select(c[j]));
    }
    let even = Block(delta.0 ^ 1);
    assert!(matches!(
        setup_sender(&mut cs, &mut rs, Some(even)).await,
        Err(Error::BadInput(_))
    ));
}

/// The same over loopback TCP + TLS: setup, a main round, chosen
/// choices.
#[tokio::test]
async fn over_loopback_tls() {
    let (mut cc, mut cs) = crate::transport::tls_loopback_pair(Default::default())
        .await
        .unwrap();
    let mut rs = ChaCha20Rng::seed_from_u64(7);
    let mut rr = ChaCha20Rng::seed_from_u64(8);
    let (s, r) = tokio::join!(
        setup_sender(&mut cs, &mut rs, None),
        setup_receiver(&mut cc, &mut rr)
    );
    let (mut s, mut r) = (s.unwrap(), r.unwrap());
    let n = s.available() + 10;
    let c = choices(9, n);
    let (pairs, got) = tokio::join!(
        send_random(&mut cs, &mut s, n),
        receive_random(&mut cc, &mut r, &c)
    );
    let (pairs, got) = (pairs.unwrap(), got.unwrap());
    assert!((0..n).all(|j| got[j] == pairs[j][c[j] as usize]));
    assert_eq!((s.rounds(), r.rounds()), (2, 2));
}

/// A cut round message and hostile choice corrections are the peer's
/// fault: errors, no panic.
#[tokio::test]
async fn hostile_messages_are_peer_errors() {
    let (mut s, mut r, mut cs, mut cr) = setup(6).await;
    // The receiver needs a small round; the "sender" sends one byte short.
    let n = r.available() + 1;
    cs.send(&vec![0u8; 16 * SETUP.msg_blocks() - 1])
        .await
        .unwrap();
    assert!(matches!(
        receive_cots(&mut cr, &mut r, n).await,
        Err(Error::PeerMisbehaved(_))
    ));
    // A "receiver" whose corrections have a padding bit set, or the
    // wrong length.
    for bad in [vec![0u8, 0x80], vec![0u8; 3]] {
        cr.send(&bad).await.unwrap();
        assert!(matches!(
            send_correlated(&mut cs, &mut s, 9).await,
            Err(Error::PeerMisbehaved(_))
        ));
    }
    let _ = r;
}
