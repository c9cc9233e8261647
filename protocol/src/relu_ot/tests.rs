//! Both parties of the OT ReLU driven in one test, with an ideal random-OT
//! functionality standing in for the bulk OT (the OT drivers have their own
//! tests; the offline/online drivers and the end-to-end tests run the real
//! thing).

use std::sync::Arc;

use pi_models::RingParams;
use pi_models::fixed::trunc_relu;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::*;

/// Ideal random OT: sender pairs, receiver's chosen messages.
fn ideal_rot(rng: &mut ChaCha20Rng, choices: &[bool]) -> (Vec<[Block; 2]>, Vec<Block>) {
    let pairs: Vec<[Block; 2]> = choices
        .iter()
        .map(|_| [Block::random(rng), Block::random(rng)])
        .collect();
    let got = pairs
        .iter()
        .zip(choices)
        .map(|(p, &c)| p[c as usize])
        .collect();
    (pairs, got)
}

/// The random OTs of one layer from the ideal functionality: (server's
/// leaf pairs, random pairs), (client's leaf messages, random choices,
/// random messages).
#[allow(clippy::type_complexity)]
fn layer_ots(
    sched: &Schedule,
    b: &[u64],
    rng: &mut ChaCha20Rng,
) -> (
    (Vec<[Block; 2]>, Vec<[Block; 2]>),
    (Vec<Block>, Vec<bool>, Vec<Block>),
) {
    let (leaf_pairs, leaves) = ideal_rot(rng, &sched.client_leaf_choices(b));
    let choices: Vec<bool> = (0..b.len() * sched.random_rots_per_position())
        .map(|_| rng.next_u32() & 1 == 1)
        .collect();
    let (rand_pairs, random) = ideal_rot(rng, &choices);
    ((leaf_pairs, rand_pairs), (leaves, choices, random))
}

/// Runs one layer on shares (a, b) of z; returns (server shares, client r,
/// bytes server→client, bytes client→server, round trips).
fn run(ring: RingParams, z: &[u64], relu: &[bool], seed: u64) -> (Vec<u64>, Vec<u64>) {
    let sched = Arc::new(Schedule::new(ring).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n = z.len();
    let b: Vec<u64> = (0..n).map(|_| rng.next_u64() & ring.mask()).collect();
    let a: Vec<u64> = z
        .iter()
        .zip(&b)
        .map(|(&z, &b)| z.wrapping_sub(b) & ring.mask())
        .collect();
    let r: Vec<u64> = (0..n).map(|_| rng.next_u64() & ring.mask()).collect();
    // Offline.
    let ((lp, rp), (lg, rc, rg)) = layer_ots(&sched, &b, &mut rng);
    let n_relu = relu.iter().filter(|&&x| x).count();
    let rev_choice: Vec<bool> = (0..n_relu).map(|_| rng.next_u32() & 1 == 1).collect();
    let (rev_pairs, rev_got) = ideal_rot(&mut rng, &rev_choice);
    let smat = ServerMaterial::new(
        &sched,
        relu.to_vec(),
        &lp,
        &rp,
        &rev_choice,
        &rev_got,
        &mut rng,
    )
    .unwrap();
    let cmat = ClientMaterial::new(&sched, relu.to_vec(), b, &lg, &rc, &rg, &rev_pairs).unwrap();
    // Online.
    let (mut server, mut msg) = ServerRun::start(sched.clone(), smat, &a).unwrap();
    let mut client = ClientRun::new(sched.clone(), cmat, r.clone()).unwrap();
    let mut trips = 0;
    loop {
        assert_eq!(msg.len(), client.incoming_len());
        let reply = match client.step(&msg).unwrap() {
            ClientStep::Reply(m) => m,
            ClientStep::Last(m) => {
                trips += 1;
                assert_eq!(m.len(), server.incoming_len());
                match server.step(&m).unwrap() {
                    ServerStep::Done(out) => {
                        assert_eq!(trips, sched.round_trips());
                        assert_eq!(server.incoming_len(), 0);
                        return (out, r);
                    }
                    ServerStep::Reply(_) => panic!("server expected to finish"),
                }
            }
        };
        trips += 1;
        assert_eq!(reply.len(), server.incoming_len());
        msg = match server.step(&reply).unwrap() {
            ServerStep::Reply(m) => m,
            ServerStep::Done(_) => panic!("server finished early"),
        };
    }
}

fn check(ring: RingParams, z: &[u64], seed: u64) {
    for relu_all in [true, false] {
        let relu: Vec<bool> = (0..z.len()).map(|i| relu_all || i % 3 != 0).collect();
        let (s, r) = run(ring, z, &relu, seed);
        for i in 0..z.len() {
            let got = s[i].wrapping_add(r[i]) & ring.mask();
            let want = trunc_relu(z[i], relu[i], ring);
            assert_eq!(
                got,
                want,
                "l = {}, f = {}, z = {} ({}), relu = {}",
                ring.bits(),
                ring.frac(),
                z[i],
                ring.to_signed(z[i]),
                relu[i]
            );
        }
    }
}

/// Edge values: 0, ±1, the ring's extremes, values around the truncation
/// boundary and around the sign boundary, each from several random shares.
fn edge_values(ring: RingParams) -> Vec<u64> {
    let (l, f) = (ring.bits(), ring.frac());
    let m = ring.mask();
    let one = 1u64 << f;
    let mut v = vec![
        0,
        1,
        m,                  // -1
        (1 << (l - 1)) - 1, // largest positive
        1 << (l - 1),       // most negative
        (1 << (l - 1)) + 1,
        one - 1,
        one,
        one + 1,
        m & one.wrapping_neg(), // -2^f
        m & (one.wrapping_neg().wrapping_add(1)),
        m & (one.wrapping_neg().wrapping_sub(1)),
        m & (3 * one).wrapping_neg(),
        5 * one + 7,
    ];
    let more: Vec<u64> = v.iter().flat_map(|&x| [x; 3]).collect();
    v.extend(more);
    v
}

#[test]
fn edge_values_match_the_oracle() {
    for (l, f) in [
        (37, 12),
        (16, 4),
        (20, 7),
        (12, 1),
        (12, 5),
        (7, 3),
        (62, 20),
    ] {
        let ring = RingParams::new(l, f).unwrap();
        check(ring, &edge_values(ring), 1000 + l as u64);
    }
}

#[test]
fn random_values_match_the_oracle() {
    let ring = RingParams::new(37, 12).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let z: Vec<u64> = (0..3000).map(|_| rng.next_u64() & ring.mask()).collect();
    check(ring, &z, 6);
    // Small magnitudes, where activations live.
    let z: Vec<u64> = (0..3000)
        .map(|_| ring.from_signed((rng.next_u64() % (1 << 20)) as i64 - (1 << 19)))
        .collect();
    check(ring, &z, 7);
}

#[test]
fn schedule_at_default_parameters() {
    let s = Schedule::new(RingParams::default()).unwrap();
    // 36 leaf OTs; tree: the first level (pairs of leaves) is free, then
    // low 2 (gt only), high 3 + 3, root 2; final 3.
    assert_eq!(s.rots_per_position(), 36 + 2 + 6 + 2 + 3);
    assert_eq!(
        (s.leaf_rots_per_position(), s.random_rots_per_position()),
        (36, 13)
    );
    assert_eq!(s.levels(), 3);
    assert_eq!(s.round_trips(), 5);
    // Tables: 8 paired chunks at 4 bits per entry, the lowest at 2.
    assert_eq!(s.table_bits, 8 * 16 * 4 + 16 * 2);
}

#[test]
fn malformed_messages_are_peer_errors() {
    let ring = RingParams::default();
    let sched = Arc::new(Schedule::new(ring).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let n = 5;
    let relu = vec![true; n];
    let b: Vec<u64> = (0..n).map(|_| rng.next_u64() & ring.mask()).collect();
    let ((lp, rp), (lg, rc, rg)) = layer_ots(&sched, &b, &mut rng);
    let rev_c: Vec<bool> = vec![false; n];
    let (rev_p, rev_g) = ideal_rot(&mut rng, &rev_c);
    let smat =
        ServerMaterial::new(&sched, relu.clone(), &lp, &rp, &rev_c, &rev_g, &mut rng).unwrap();
    let cmat = ClientMaterial::new(&sched, relu, b, &lg, &rc, &rg, &rev_p).unwrap();
    let (mut server, msg) = ServerRun::start(sched.clone(), smat, &[0; 5]).unwrap();
    let mut client = ClientRun::new(sched.clone(), cmat, vec![0; n]).unwrap();
    // Short leaf message.
    assert!(matches!(
        client.step(&msg[1..]),
        Err(Error::PeerMisbehaved(_))
    ));
    // Padding bits set in the corrections.
    let len = server.incoming_len();
    let mut bad = vec![0u8; len];
    bad[len - 1] = 0x80;
    assert!(matches!(server.step(&bad), Err(Error::PeerMisbehaved(_))));
    assert!(matches!(
        server.step(&bad[1..]),
        Err(Error::PeerMisbehaved(_))
    ));
    // Shares that do not fit the material.
    let smat2 = {
        let ((lp, rp), _) = layer_ots(&sched, &[0], &mut rng);
        let (_, rg) = ideal_rot(&mut rng, &[false]);
        ServerMaterial::new(&sched, vec![true], &lp, &rp, &[false], &rg, &mut rng).unwrap()
    };
    assert!(matches!(
        ServerRun::start(sched.clone(), smat2, &[0, 0]),
        Err(Error::BadInput(_))
    ));
    // Random OTs that do not fit the layer: too few, or the two batches
    // swapped.
    let ((lp, rp), (lg, rc, rg)) = layer_ots(&sched, &[0], &mut rng);
    let (p, _) = ideal_rot(&mut rng, &[false; 3]);
    let one = [false];
    let zero = [Block::ZERO];
    assert!(matches!(
        ServerMaterial::new(&sched, vec![true], &p, &rp, &one, &zero, &mut rng),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        ServerMaterial::new(&sched, vec![true], &rp, &lp, &one, &zero, &mut rng),
        Err(Error::BadInput(_))
    ));
    let pair = [[Block::ZERO; 2]];
    assert!(matches!(
        ClientMaterial::new(&sched, vec![true], vec![0], &rg, &rc, &lg, &pair),
        Err(Error::BadInput(_))
    ));
    assert!(ClientMaterial::new(&sched, vec![true], vec![0], &lg, &rc, &rg, &pair).is_ok());
}

/// The millionaires' part alone: after the last tree level the XOR of the
/// two parties' shares of the low-f carry and of the carry into bit l − 1
/// equal the plaintext carries of a' + b, on edge pairs (a', b) that put the
/// carries at their boundaries (x = y, x = y ± 1, all ones, zero).
#[test]
fn comparison_shares_are_the_plaintext_carries() {
    for (l, f) in [(37, 12), (12, 1), (7, 3), (20, 7)] {
        let ring = RingParams::new(l, f).unwrap();
        let sched = Arc::new(Schedule::new(ring).unwrap());
        let mut rng = ChaCha20Rng::seed_from_u64(l as u64);
        let (m, half) = (ring.mask(), 1u64 << (l - 1));
        let low = |v: u64, k: u32| v & ((1u64 << k) - 1);
        // Pairs (a', b): b random or extreme, a' chosen relative to y.
        let mut pairs = Vec::new();
        for b in [
            0,
            m,
            half,
            half - 1,
            1,
            rng.next_u64() & m,
            rng.next_u64() & m,
        ] {
            let y = !b & (half - 1);
            for a1 in [
                y,
                y + 1,
                y.wrapping_sub(1),
                0,
                m,
                half,
                half - 1,
                y | half,
                (y + 1) | half,
            ] {
                pairs.push((a1 & m, b));
            }
        }
        let n = pairs.len();
        let relu = vec![true; n];
        let b: Vec<u64> = pairs.iter().map(|p| p.1).collect();
        let a: Vec<u64> = pairs
            .iter()
            .map(|&(a1, _)| a1.wrapping_sub(half) & m)
            .collect();
        let ((lp, rp), (lg, rc, rg)) = layer_ots(&sched, &b, &mut rng);
        let rev_c: Vec<bool> = vec![true; n];
        let (rev_p, rev_g) = ideal_rot(&mut rng, &rev_c);
        let smat =
            ServerMaterial::new(&sched, relu.clone(), &lp, &rp, &rev_c, &rev_g, &mut rng).unwrap();
        let cmat = ClientMaterial::new(&sched, relu, b, &lg, &rc, &rg, &rev_p).unwrap();
        let (mut server, mut msg) = ServerRun::start(sched.clone(), smat, &a).unwrap();
        let mut client = ClientRun::new(sched.clone(), cmat, vec![0; n]).unwrap();
        // Leaves and every tree level, until the client asks for the final OT.
        loop {
            let reply = match client.step(&msg).unwrap() {
                ClientStep::Reply(r) => r,
                ClientStep::Last(_) => panic!("too early"),
            };
            if client.stage == Stage::Final {
                break;
            }
            msg = match server.step(&reply).unwrap() {
                ServerStep::Reply(r) => r,
                ServerStep::Done(_) => panic!("too early"),
            };
        }
        for (p, &(a1, bv)) in pairs.iter().enumerate() {
            let c = u8::from(low(a1, f) + low(bv, f) >= 1 << f);
            let e = u8::from(low(a1, l - 1) + low(bv, l - 1) >= half);
            let got_c = server.shares.gt(sched.low_root, p) ^ client.shares.gt(sched.low_root, p);
            let got_e = server.shares.gt(sched.e_node, p) ^ client.shares.gt(sched.e_node, p);
            assert_eq!(
                (got_c, got_e),
                (c, e),
                "l = {l}, f = {f}, a' = {a1:#x}, b = {bv:#x}"
            );
        }
    }
}

/// The client's storage planned from the schedule equals what its material
/// holds, for layers with and without identity positions, at several rings.
#[test]
fn planned_client_storage_is_what_the_material_holds() {
    for (l, f) in [(37, 12), (16, 4), (62, 20)] {
        let ring = RingParams::new(l, f).unwrap();
        let sched = Schedule::new(ring).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(l));
        for (n, every) in [(1usize, 1usize), (7, 3), (40, 1), (33, 2), (5, usize::MAX)] {
            let relu: Vec<bool> = (0..n)
                .map(|i| every != usize::MAX && i % every == 0)
                .collect();
            let n_relu = relu.iter().filter(|&&r| r).count();
            let b: Vec<u64> = (0..n).map(|_| rng.next_u64() & ring.mask()).collect();
            let (_, (lg, rc, rg)) = layer_ots(&sched, &b, &mut rng);
            let (rev_pairs, _) = ideal_rot(&mut rng, &vec![false; n_relu]);
            let mat = ClientMaterial::new(&sched, relu, b, &lg, &rc, &rg, &rev_pairs).unwrap();
            assert_eq!(
                ClientMaterial::planned_storage_bytes(&sched, n, n_relu),
                mat.storage_bytes(),
                "l = {l}, f = {f}, {n} positions, {n_relu} ReLUs"
            );
        }
    }
}
