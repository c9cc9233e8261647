//! Two parties, one test: garble, transfer labels ideally, evaluate, compare
//! with the cleartext twin and the reference formula.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;

const PARAMS: [(u32, u32); 6] = [(37, 12), (32, 8), (20, 5), (64, 16), (16, 4), (5, 2)];

fn params(l: u32, f: u32) -> ActivationParams {
    ActivationParams::new(l, f).unwrap()
}

/// Edge values of a: 0, ±1, extremes, and values around the truncation boundary.
fn edge_values(p: ActivationParams) -> Vec<u64> {
    let (l, f, mask) = (p.l(), p.f(), p.mask());
    let s = |v: i64| (v as u64) & mask;
    let two_f = 1i64 << f;
    let mut v = vec![0, s(-1), 1, (1u64 << (l - 1)) - 1, 1u64 << (l - 1)];
    for d in [-1i64, 0, 1] {
        v.push(s(two_f + d));
        v.push(s(-two_f + d));
        v.push(s(2 * two_f + d));
    }
    v
}

/// Garbles one layer, transfers labels with the ideal OT, evaluates.
fn run(c: &Circuit, seed: u64, a: &[u64], b: &[u64], p: &[u64]) -> Vec<u64> {
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(seed));
    let GarbledLayer {
        tables,
        client_inputs,
        server_inputs,
    } = g.garble_layer(c, 3, p).unwrap();
    let client = client_inputs.ideal_transfer(b).unwrap();
    // Everything crosses the wire as bytes.
    let n = a.len();
    let tables = GarbledTables::from_bytes(c, 3, n, tables.into_bytes()).unwrap();
    let client = ClientLabels::from_bytes(c.params(), n, &client.to_bytes()).unwrap();
    let server = server_inputs.encode_share(a).unwrap();
    let server = ServerLabels::from_bytes(c.params(), n, &server.to_bytes()).unwrap();
    Evaluator::new(g.nonce())
        .evaluate_layer(c, tables, client, server)
        .unwrap()
}

#[test]
fn gate_counts_and_sizes_at_default_parameters() {
    let prm = ActivationParams::DEFAULT;
    let circuits = |scheme| {
        (
            Circuit::with_scheme(ActivationKind::Relu, prm, scheme),
            Circuit::with_scheme(ActivationKind::Truncate, prm, scheme),
        )
    };
    for scheme in Scheme::ALL {
        let (relu, trunc) = circuits(scheme);
        assert_eq!((relu.scheme(), trunc.scheme()), (scheme, scheme));
        // (l-1) + (l-f-1) + (l-f-2) AND gates plus one half-gate.
        assert_eq!((relu.and_gates(), relu.half_gates()), (36 + 24 + 23, 1));
        assert_eq!((trunc.and_gates(), trunc.half_gates()), (36 + 24, 1));
        assert!(relu.and_gates() + relu.half_gates() <= 3 * 36);
        // Slot reuse keeps the working set small.
        assert!(relu.slots < 64, "{} slots", relu.slots);
        // Decoding: 24 low bits and two rows of 13 (ReLU), 25 and 2 x 12.
        assert_eq!((relu.decode_bytes(), trunc.decode_bytes()), (7, 7));
    }
    // Half-gates: 32 bytes per AND gate, 16 per half-gate.
    let (relu, trunc) = circuits(Scheme::HalfGates);
    assert_eq!(relu.table_bytes(), 167 * 16 + 7); // 2,679
    assert_eq!(trunc.table_bytes(), 121 * 16 + 7); // 1,943
    // Three-halves: 24 bytes and 5 control bits per AND gate.
    let (relu, trunc) = circuits(Scheme::ThreeHalves);
    assert_eq!(relu.control_bytes(), (83 * 5usize).div_ceil(8));
    assert_eq!(relu.table_bytes(), 83 * 24 + 16 + 52 + 7); // 2,067
    assert_eq!(trunc.table_bytes(), 60 * 24 + 16 + 38 + 7); // 1,501
    assert!(relu.table_bytes() <= 2100 && trunc.table_bytes() <= 1520);
    // Client storage: tables plus l labels of 16 bytes within 2.7 KB.
    assert!(relu.table_bytes() + 37 * 16 <= 2700);
    // The default constructors use the default scheme.
    assert_eq!(Circuit::relu(prm).scheme(), Scheme::DEFAULT);
    assert_eq!(
        Circuit::new(ActivationKind::Truncate, prm).scheme(),
        Scheme::DEFAULT
    );
    assert_eq!(
        "three-halves".parse::<Scheme>().unwrap(),
        Scheme::ThreeHalves
    );
    assert_eq!(
        Scheme::HalfGates.to_string().parse::<Scheme>().unwrap(),
        Scheme::HalfGates
    );
    assert!(matches!(
        "thirds".parse::<Scheme>(),
        Err(Error::BadInput(_))
    ));
}

/// Tweak uniqueness: every hash of every instance of a layer (two chunks
/// and a tail) gets its own tweak, for both schemes and several circuits.
/// The indices come from the circuit's gates as the garbler reads them; a
/// builder that handed two gates overlapping indices, or a scheme that used
/// more hashes per gate than it reserves, would repeat a tweak here.
#[test]
fn every_hash_of_a_layer_has_its_own_tweak() {
    let nonce = GcNonce((1 << 48) - 3);
    for scheme in Scheme::ALL {
        for (l, f) in PARAMS {
            for kind in [ActivationKind::Relu, ActivationKind::Truncate] {
                let c = Circuit::with_scheme(kind, params(l, f), scheme);
                let idx = c.hash_indices();
                let per_and = scheme.hashes_per_and() as usize;
                assert_eq!(
                    idx.len(),
                    per_and * c.and_gates() + c.half_gates() + 1,
                    "{scheme} {kind:?} l={l}"
                );
                assert!(idx.iter().all(|h| *h < HASHES_PER_INSTANCE));
                let n = 2 * CHUNK + 5;
                let mut seen = std::collections::HashSet::new();
                for layer in [0u32, 1, MAX_LAYER] {
                    for start in (0..n).step_by(CHUNK) {
                        let tw0 = tweak_base(nonce, layer, start as u64);
                        for i in 0..CHUNK.min(n - start) {
                            for h in &idx {
                                let t = tw0 + ((i as u128) << INSTANCE_SHIFT) + *h as u128;
                                assert!(t >> 127 == 1, "domain bit");
                                assert!(
                                    seen.insert(t),
                                    "tweak repeated: {scheme} {kind:?} layer {layer} instance {} hash {h}",
                                    start + i
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn garbled_equals_cleartext_and_reference_on_edges_and_random() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for (l, f) in PARAMS {
        let prm = params(l, f);
        for (kind, scheme) in [ActivationKind::Relu, ActivationKind::Truncate]
            .into_iter()
            .flat_map(|k| Scheme::ALL.map(|s| (k, s)))
        {
            let c = Circuit::with_scheme(kind, prm, scheme);
            let edges = edge_values(prm);
            let (mut a, mut b, mut p) = (vec![], vec![], vec![]);
            // Edge values of z = a + b, split randomly and with one share zero.
            for &z in &edges {
                for split in 0..3 {
                    let r = match split {
                        0 => 0,
                        1 => z,
                        _ => rng.random::<u64>() & prm.mask(),
                    };
                    a.push(z.wrapping_sub(r) & prm.mask());
                    b.push(r);
                    p.push(match split {
                        0 => 0,
                        1 => prm.mask(),
                        _ => rng.random::<u64>() & prm.mask(),
                    });
                }
            }
            // Random instances, enough to cross a chunk boundary.
            while a.len() < CHUNK + 37 {
                a.push(rng.random::<u64>() & prm.mask());
                b.push(rng.random::<u64>() & prm.mask());
                p.push(rng.random::<u64>() & prm.mask());
            }
            let got = run(&c, l as u64, &a, &b, &p);
            for i in 0..a.len() {
                let want = reference(kind, prm, a[i], b[i], p[i]);
                assert_eq!(
                    c.eval_clear(a[i], b[i], p[i]),
                    want,
                    "{kind:?} l={l} f={f} clear i={i}"
                );
                assert_eq!(
                    got[i], want,
                    "{kind:?} {scheme} l={l} f={f} garbled i={i} a={:#x} b={:#x}",
                    a[i], b[i]
                );
            }
        }
    }
}

#[test]
fn reference_formula_examples() {
    let prm = params(37, 12);
    let m = prm.mask();
    // 3.5 at scale 2f truncates to 3.5 at scale f; -0.25 becomes 0 under ReLU.
    let z = (3.5 * (1u64 << 24) as f64) as u64;
    assert_eq!(reference(ActivationKind::Relu, prm, z, 0, 0), 7 << 11);
    let neg = (-(1i64 << 22)) as u64 & m;
    assert_eq!(reference(ActivationKind::Relu, prm, neg, 0, 5), 5);
    assert_eq!(
        reference(ActivationKind::Truncate, prm, neg, 0, 0),
        (-(1i64 << 10)) as u64 & m
    );
    // Floor semantics: -1 truncates to -1.
    assert_eq!(reference(ActivationKind::Truncate, prm, m, 0, 1), 0);
}

proptest! {
    #[test]
    fn cleartext_circuit_equals_reference(
        li in 0usize..PARAMS.len(), a in any::<u64>(), b in any::<u64>(), p in any::<u64>(), relu in any::<bool>()
    ) {
        let (l, f) = PARAMS[li];
        let prm = params(l, f);
        let kind = if relu { ActivationKind::Relu } else { ActivationKind::Truncate };
        let c = Circuit::new(kind, prm);
        let (a, b, p) = (a & prm.mask(), b & prm.mask(), p & prm.mask());
        prop_assert_eq!(c.eval_clear(a, b, p), reference(kind, prm, a, b, p));
    }
}

#[test]
fn wrong_input_label_gives_wrong_output() {
    let prm = ActivationParams::DEFAULT;
    let c = Circuit::relu(prm);
    let n = 64;
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    // Positive values so the ReLU passes the value through.
    let a: Vec<u64> = (0..n)
        .map(|_| rng.random::<u64>() & (prm.mask() >> 2))
        .collect();
    let b = vec![0u64; n];
    let p: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & prm.mask()).collect();
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(1));
    let layer = g.garble_layer(&c, 0, &p).unwrap();
    let mut client = layer.client_inputs.ideal_transfer(&b).unwrap();
    // Replace the label of bit 20 of b in every instance by a random block
    // (neither of the two valid labels).
    for i in 0..n {
        client.labels[i * 37 + 20] = crate::crypto::Block::random(&mut rng);
    }
    let server = layer.server_inputs.encode_share(&a).unwrap();
    let got = Evaluator::new(g.nonce())
        .evaluate_layer(&c, layer.tables, client, server)
        .unwrap();
    let wrong = (0..n)
        .filter(|&i| got[i] != reference(ActivationKind::Relu, prm, a[i], b[i], p[i]))
        .count();
    assert!(wrong >= n - 2, "only {wrong} of {n} outputs changed");
}

#[test]
fn tampered_tables_give_wrong_results_or_errors() {
    for scheme in Scheme::ALL {
        tampered_tables(scheme);
    }
}

fn tampered_tables(scheme: Scheme) {
    let prm = params(20, 5);
    let c = Circuit::with_scheme(ActivationKind::Relu, prm, scheme);
    let n = CHUNK + 10;
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let a: Vec<u64> = (0..n)
        .map(|_| rng.random::<u64>() & (prm.mask() >> 2))
        .collect();
    let b: Vec<u64> = (0..n)
        .map(|_| rng.random::<u64>() & (prm.mask() >> 3))
        .collect();
    let p: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & prm.mask()).collect();
    let want: Vec<u64> = (0..n)
        .map(|i| reference(ActivationKind::Relu, prm, a[i], b[i], p[i]))
        .collect();
    let per = c.table_bytes();
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(2));
    let layer = g.garble_layer(&c, 9, &p).unwrap();
    let bytes = layer.tables.into_bytes();
    let client = layer.client_inputs.ideal_transfer(&b).unwrap();
    let server = layer.server_inputs.encode_share(&a).unwrap();

    // Length checks: truncated, extended, wrong n.
    for bad in [
        bytes[..bytes.len() - 1].to_vec(),
        [bytes.clone(), vec![0]].concat(),
    ] {
        assert!(matches!(
            GarbledTables::from_bytes(&c, 9, n, bad),
            Err(Error::PeerMisbehaved(_))
        ));
    }
    assert!(matches!(
        GarbledTables::from_bytes(&c, 9, n + 1, bytes.clone()),
        Err(Error::PeerMisbehaved(_))
    ));
    // Tables of the other scheme (or kind) are refused by the evaluator.
    let other = Scheme::ALL.into_iter().find(|s| *s != scheme).unwrap();
    let c_other = Circuit::with_scheme(ActivationKind::Relu, prm, other);
    let mut g2 = Garbler::from_rng(ChaCha20Rng::seed_from_u64(3));
    let l2 = g2.garble_layer(&c_other, 0, &p[..2]).unwrap();
    let (cl, sv) = (
        l2.client_inputs.ideal_transfer(&b[..2]).unwrap(),
        l2.server_inputs.encode_share(&a[..2]).unwrap(),
    );
    assert!(matches!(
        Evaluator::new(g2.nonce()).evaluate_layer(&c, l2.tables, cl, sv),
        Err(Error::BadInput(_))
    ));
    // Padding bits of the decoding information must be zero.
    let used = c.low_bits() + 2 * c.top_bits();
    if !used.is_multiple_of(8) {
        let mut bad = bytes.clone();
        let last_dec_byte = n * per - 1;
        bad[last_dec_byte] |= 0x80;
        assert!(matches!(
            GarbledTables::from_bytes(&c, 9, n, bad),
            Err(Error::PeerMisbehaved(_))
        ));
    }
    // So must the unused control bits after the last gate's (both chunks).
    let ctrl_used = scheme.control_bits_per_and() * c.and_gates();
    for (start, cn) in [(0, CHUNK), (CHUNK, n - CHUNK)] {
        let area = start * per + c.gate_bytes() * cn;
        let end = area + c.control_bytes() * cn;
        if ctrl_used * cn < 8 * (end - area) {
            let mut bad = bytes.clone();
            bad[end - 1] |= 0x80;
            assert!(matches!(
                GarbledTables::from_bytes(&c, 9, n, bad),
                Err(Error::PeerMisbehaved(_))
            ));
        }
    }
    // Flip a bit in two table entries of the first AND gate of instance 3
    // (chunk 0 holds, gate by gate, the AND gate bytes per instance): the
    // evaluator uses them only for some colors of its labels, so instance 3
    // may or may not change. Flip a decoding bit of instance 4: that always
    // shows.
    let and_bytes = scheme.and_bytes();
    let mut bad = bytes.clone();
    bad[and_bytes * 3 + 5] ^= 0x10;
    bad[and_bytes * 3 + and_bytes - 16 + 5] ^= 0x10;
    let dec_base = (c.gate_bytes() + c.control_bytes()) * CHUNK;
    bad[dec_base + c.decode_bytes() * 4] ^= 1; // low output bit 0 of instance 4
    let tables = GarbledTables::from_bytes(&c, 9, n, bad).unwrap();
    let got = Evaluator::new(g.nonce())
        .evaluate_layer(&c, tables, client, server)
        .unwrap();
    assert_ne!(got[4], want[4]);
    let mut ok = 0;
    for i in (0..n).filter(|&i| i != 3 && i != 4) {
        ok += (got[i] == want[i]) as usize;
    }
    assert_eq!(ok, n - 2, "untouched instances must still decode");

    // Three-halves: the control bits of the first AND gate of instance 5
    // (bits 25..30 of the control area): whatever the colors, flipping y0
    // and y1 changes the matrix the evaluator applies, hence its output
    // label, and the ReLU's output.
    if scheme == Scheme::ThreeHalves {
        let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(2));
        let layer = g.garble_layer(&c, 9, &p).unwrap();
        let client = layer.client_inputs.ideal_transfer(&b).unwrap();
        let server = layer.server_inputs.encode_share(&a).unwrap();
        let mut bad = layer.tables.into_bytes();
        let ctrl = c.gate_bytes() * CHUNK;
        bad[ctrl + 3] ^= 0b110; // bits 25 and 26
        let tables = GarbledTables::from_bytes(&c, 9, n, bad).unwrap();
        let got = Evaluator::new(g.nonce())
            .evaluate_layer(&c, tables, client, server)
            .unwrap();
        assert_ne!(got[5], want[5]);
        assert!((0..n).filter(|&i| i != 5).all(|i| got[i] == want[i]));
    }

    // Tables evaluated under the wrong layer index or the wrong garbler
    // nonce (tweaks differ) are garbage; the right ones decode.
    for (eval_layer, nonce_flip, garbage) in [
        (10, 0, true),
        (9, 1, true),
        (9, 1 << 47, true),
        (9, 0, false),
    ] {
        let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(2));
        let layer = g.garble_layer(&c, 9, &p).unwrap();
        let client = layer.client_inputs.ideal_transfer(&b).unwrap();
        let server = layer.server_inputs.encode_share(&a).unwrap();
        let tables =
            GarbledTables::from_bytes(&c, eval_layer, n, layer.tables.into_bytes()).unwrap();
        let nonce = GcNonce::from_bytes(&(g.nonce().get() ^ nonce_flip).to_le_bytes()).unwrap();
        let got = Evaluator::new(nonce)
            .evaluate_layer(&c, tables, client, server)
            .unwrap();
        let right = (0..n).filter(|&i| got[i] == want[i]).count();
        if garbage {
            assert!(right < n / 8, "{right} of {n} right under a wrong tweak");
        } else {
            assert_eq!(right, n);
        }
    }
}

#[test]
fn hostile_label_batches_are_rejected() {
    let prm = ActivationParams::DEFAULT;
    let bytes = vec![0u8; 16 * 37 * 4];
    assert!(ServerLabels::from_bytes(prm, 4, &bytes).is_ok());
    assert!(matches!(
        ServerLabels::from_bytes(prm, 5, &bytes),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        ClientLabels::from_bytes(prm, 4, &bytes[1..]),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        ClientLabels::from_bytes(prm, usize::MAX, &bytes),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        ClientLabels::from_blocks(prm, 3, vec![]),
        Err(Error::BadInput(_))
    ));
    // Garbler nonces: 8 bytes below 2^48.
    assert!(GcNonce::from_bytes(&[0u8; 8]).is_ok());
    assert!(matches!(
        GcNonce::from_bytes(&[0u8; 7]),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        GcNonce::from_bytes(&(1u64 << 48).to_le_bytes()),
        Err(Error::PeerMisbehaved(_))
    ));
}

#[test]
fn layer_indices_and_sizes_beyond_the_tweak_fields_are_rejected_at_decode() {
    let c = Circuit::relu(params(16, 4));
    let per = c.table_bytes();
    for layer in [MAX_LAYER + 1, u32::MAX] {
        assert!(matches!(
            GarbledTables::from_bytes(&c, layer, 1, vec![0u8; per]),
            Err(Error::BadInput(_))
        ));
        assert!(matches!(
            TablesAssembler::new(&c, layer, 1),
            Err(Error::BadInput(_))
        ));
        let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(30));
        assert!(matches!(
            g.garble_layer(&c, layer, &[0]),
            Err(Error::BadInput(_))
        ));
    }
    assert!(GarbledTables::from_bytes(&c, MAX_LAYER, 1, vec![0u8; per]).is_ok());
    let too_many = MAX_INSTANCES as usize + 1;
    assert!(matches!(
        TablesAssembler::new(&c, 0, too_many),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        GarbledTables::from_bytes(&c, 0, too_many, vec![]),
        Err(Error::BadInput(_))
    ));
}

#[test]
fn errors_do_not_print_pads_or_shares() {
    let prm = params(16, 4);
    let c = Circuit::relu(prm);
    let secret = 0x1_2345u64; // above 2^16: unreduced
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(31));
    let e = g
        .garble_layer(&c, 0, &[1, secret])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("pad 1") && !e.contains("12345") && !e.contains(&secret.to_string()),
        "{e}"
    );
    let layer = g.garble_layer(&c, 1, &[1, 2]).unwrap();
    let e = layer
        .server_inputs
        .encode_share(&[secret, 0])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("share 0") && !e.contains("12345") && !e.contains(&secret.to_string()),
        "{e}"
    );
}

#[test]
fn garblers_sharing_a_delta_use_distinct_nonces() {
    // Two garblers under one Δ (with_delta called twice): same layer index,
    // yet their hashes differ because the nonces do; each garbler's tables
    // only evaluate under its own nonce.
    let prm = params(16, 4);
    let c = Circuit::relu(prm);
    let mut rng = ChaCha20Rng::seed_from_u64(32);
    let delta = Delta::random(&mut rng);
    let db = delta.block();
    let mut g1 = Garbler::with_delta(delta, ChaCha20Rng::seed_from_u64(33));
    let mut g2 = Garbler::with_delta(
        Delta::from_block(db).unwrap(),
        ChaCha20Rng::seed_from_u64(34),
    );
    assert_ne!(g1.nonce(), g2.nonce());
    assert!(g1.nonce().get() < 1 << 48);
    let (a, b, p) = ([300u64, 5], [7u64, 9], [1u64, 2]);
    let want: Vec<u64> = (0..2)
        .map(|i| reference(ActivationKind::Relu, prm, a[i], b[i], p[i]))
        .collect();
    for (g, other) in [(&mut g1, 1u64), (&mut g2, 2)] {
        let nonce = g.nonce();
        for (n, ok) in [
            (nonce, true),
            (
                GcNonce::from_bytes(&(nonce.get() ^ other).to_le_bytes()).unwrap(),
                false,
            ),
        ] {
            let gl = g.garble_layer(&c, if ok { 0 } else { 1 }, &p).unwrap();
            let client = gl.client_inputs.ideal_transfer(&b).unwrap();
            let server = gl.server_inputs.encode_share(&a).unwrap();
            let got = Evaluator::new(n)
                .evaluate_layer(&c, gl.tables, client, server)
                .unwrap();
            assert_eq!(got == want, ok);
        }
    }
    // The ReLU and truncation sub-layers of one network layer under one Δ
    // need distinct indices: the second use of an index is refused.
    let t = Circuit::truncate(prm);
    g1.garble_layer(&c, 10, &p).unwrap();
    assert!(matches!(
        g1.garble_layer(&t, 10, &p),
        Err(Error::BadInput(_))
    ));
    g1.garble_layer(&t, 11, &p).unwrap();
}

#[test]
fn client_input_labels_are_given_out_by_consuming_conversions() {
    let c = Circuit::relu(params(16, 4));
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(35));
    let first = g.garble_layer(&c, 0, &[1, 2]).unwrap();
    let second = g.garble_layer(&c, 0, &[1, 2]).unwrap();
    let (zero, delta) = first.client_inputs.into_parts();
    let pairs = second.client_inputs.into_ot_pairs();
    assert_eq!((zero.len(), pairs.len()), (32, 32));
    assert!(delta.block().lsb());
    // Pairs differ by their layer's Δ.
    let d2 = pairs[0][0] ^ pairs[0][1];
    assert!(pairs.iter().all(|p| p[0] ^ p[1] == d2) && d2.lsb());
}

#[test]
fn bad_local_inputs_are_rejected() {
    let prm = params(16, 4);
    let c = Circuit::truncate(prm);
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(3));
    assert!(matches!(
        g.garble_layer(&c, 0, &[1 << 16]),
        Err(Error::BadInput(_))
    ));
    let layer = g.garble_layer(&c, 0, &[1, 2]).unwrap();
    assert!(matches!(
        layer.server_inputs.encode_share(&[1]),
        Err(Error::BadInput(_))
    ));
    assert!(ActivationParams::new(37, 36).is_err());
    assert!(ActivationParams::new(65, 12).is_err());
    assert!(ActivationParams::new(37, 0).is_err());
    // A shared Δ forbids repeating a layer index.
    let d = Delta::random(&mut ChaCha20Rng::seed_from_u64(4));
    let mut g = Garbler::with_delta(d, ChaCha20Rng::seed_from_u64(4));
    g.garble_layer(&c, 5, &[0]).unwrap();
    assert!(matches!(
        g.garble_layer(&c, 5, &[0]),
        Err(Error::BadInput(_))
    ));
    assert!(Delta::from_block(crate::crypto::Block(2)).is_err());
    // Tables from another circuit.
    let relu = Circuit::relu(prm);
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(3));
    let layer = g.garble_layer(&relu, 0, &[1]).unwrap();
    let client = layer.client_inputs.ideal_transfer(&[0]).unwrap();
    let server = layer.server_inputs.encode_share(&[0]).unwrap();
    assert!(matches!(
        Evaluator::new(g.nonce()).evaluate_layer(&c, layer.tables, client, server),
        Err(Error::BadInput(_))
    ));
}

#[test]
fn shared_delta_layers_and_labels_are_correlated() {
    let prm = params(16, 4);
    let c = Circuit::relu(prm);
    let d = Delta::random(&mut ChaCha20Rng::seed_from_u64(8));
    let db = d.block();
    let mut g = Garbler::with_delta(d, ChaCha20Rng::seed_from_u64(8));
    for layer in [1, 2] {
        let gl = g.garble_layer(&c, layer, &[7, 9, 11]).unwrap();
        assert_eq!(gl.server_inputs.delta.block(), db);
        let got = {
            let client = gl.client_inputs.ideal_transfer(&[1, 2, 3]).unwrap();
            let server = gl.server_inputs.encode_share(&[100, 200, 65000]).unwrap();
            Evaluator::new(g.nonce())
                .evaluate_layer(&c, gl.tables, client, server)
                .unwrap()
        };
        let want: Vec<u64> = [(100, 1, 7), (200, 2, 9), (65000, 3, 11)]
            .iter()
            .map(|&(a, b, p)| reference(ActivationKind::Relu, prm, a, b, p))
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn streaming_chunks_concatenate_to_the_collected_tables() {
    let prm = params(32, 8);
    let c = Circuit::truncate(prm);
    let n = 2 * CHUNK + 3;
    let p: Vec<u64> = (0..n as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9) & prm.mask())
        .collect();
    let whole = Garbler::from_rng(ChaCha20Rng::seed_from_u64(6))
        .garble_layer(&c, 1, &p)
        .unwrap();
    let mut chunks = Vec::new();
    let inputs = Garbler::from_rng(ChaCha20Rng::seed_from_u64(6))
        .garble_layer_streaming(&c, 1, &p, |b| chunks.push(b.to_vec()))
        .unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[0].len(), CHUNK * c.table_bytes());
    assert_eq!(chunks.concat(), whole.tables.as_bytes());
    let a: Vec<u64> = (0..n as u64)
        .map(|i| i.wrapping_mul(0x7654_3211) & prm.mask())
        .collect();
    assert_eq!(
        inputs.server_inputs.encode_share(&a).unwrap().labels,
        whole.server_inputs.encode_share(&a).unwrap().labels
    );
    assert_eq!(
        *inputs.client_inputs.into_parts().0,
        *whole.client_inputs.into_parts().0
    );
}

#[test]
fn client_labels_from_a_correlated_ot_are_used_as_given() {
    let prm = params(20, 5);
    let c = Circuit::relu(prm);
    let l = 20;
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let delta = Delta::random(&mut rng);
    let d = delta.block();
    let (a, b, p) = ([3u64 << 5, 77], [9u64 << 5, prm.mask() - 1000], [1u64, 2]);
    // A random COT: sender gets q, receiver gets q ^ b_j * Δ.
    let q: Vec<crate::crypto::Block> = (0..2 * l)
        .map(|_| crate::crypto::Block::random(&mut rng))
        .collect();
    let t: Vec<_> = q
        .iter()
        .enumerate()
        .map(|(k, q)| *q ^ d.select((b[k / l] >> (k % l)) & 1 == 1))
        .collect();
    let mut g = Garbler::with_delta(delta, ChaCha20Rng::seed_from_u64(13));
    let mut bytes = Vec::new();
    let cot = |v: &[crate::crypto::Block]| crate::ot::CorrelatedZeros { blocks: v.to_vec() };
    let inputs = g
        .garble_layer_streaming_with_client_labels(&c, 0, &p, cot(&q), |x| {
            bytes.extend_from_slice(x)
        })
        .unwrap();
    let (zero, _) = inputs.client_inputs.into_parts();
    assert_eq!(*zero, q);
    let tables = GarbledTables::from_bytes(&c, 0, 2, bytes).unwrap();
    let client = ClientLabels::from_blocks(prm, 2, t).unwrap();
    let server = inputs.server_inputs.encode_share(&a).unwrap();
    let got = Evaluator::new(g.nonce())
        .evaluate_layer(&c, tables, client, server)
        .unwrap();
    assert_eq!(got, vec![12 + 1, 2]);
    // Without a shared Δ, or with the wrong count, it is refused.
    let mut fresh = Garbler::from_rng(ChaCha20Rng::seed_from_u64(14));
    assert!(matches!(
        fresh.garble_layer_streaming_with_client_labels(&c, 0, &p, cot(&q), |_| {}),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        g.garble_layer_streaming_with_client_labels(&c, 1, &p, cot(&q[1..]), |_| {}),
        Err(Error::BadInput(_))
    ));
}

#[test]
fn empty_layer_round_trips() {
    let c = Circuit::relu(ActivationParams::DEFAULT);
    let got = run(&c, 1, &[], &[], &[]);
    assert!(got.is_empty());
}

#[test]
fn debug_output_shows_shapes_not_labels() {
    let c = Circuit::relu(params(16, 4));
    let mut layer = Garbler::from_rng(ChaCha20Rng::seed_from_u64(1))
        .garble_layer(&c, 0, &[3])
        .unwrap();
    let zero = layer.client_inputs.zero.expand()[0];
    let text = format!(
        "{:?} {:?} {:?}",
        layer.tables, layer.client_inputs, layer.server_inputs
    );
    assert!(text.contains("n: 1"), "{text}");
    assert!(!text.contains(&format!("{}", zero.0)), "{text}");
}

#[test]
fn streamed_tables_reassemble_and_overruns_are_rejected() {
    let prm = params(16, 4);
    let c = Circuit::truncate(prm);
    let n = CHUNK + 5;
    let (a, b, p) = (vec![5u64; n], vec![(1 << 16) - 300; n], vec![9u64; n]);
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(21));
    let mut asm = TablesAssembler::new(&c, 2, n).unwrap();
    let mut result = Ok(());
    let inputs = g.garble_layer_streaming(&c, 2, &p, |chunk| {
        // Split each chunk in uneven pieces, as a transport might.
        for piece in chunk.chunks(1000) {
            if result.is_ok() {
                result = asm.push(piece);
            }
        }
    });
    result.unwrap();
    let inputs = inputs.unwrap();
    assert_eq!(asm.remaining(), 0);
    assert!(matches!(asm.push(&[0]), Err(Error::PeerMisbehaved(_))));
    let tables = asm.finish().unwrap();
    let client = inputs.client_inputs.ideal_transfer(&b).unwrap();
    let server = inputs.server_inputs.encode_share(&a).unwrap();
    let got = Evaluator::new(g.nonce())
        .evaluate_layer(&c, tables, client, server)
        .unwrap();
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, v)| *v == reference(ActivationKind::Truncate, prm, a[i], b[i], p[i]))
    );
    // Missing bytes.
    let mut short = TablesAssembler::new(&c, 2, 1).unwrap();
    short.push(&vec![0u8; c.table_bytes() - 1]).unwrap();
    assert!(matches!(short.finish(), Err(Error::PeerMisbehaved(_))));
}

/// The integration path: IKNP correlated OT over an in-memory duplex, with
/// the garbler's Δ (lsb 1) as correlation, delivers the client's input
/// labels; the sender's zero messages go straight into the garbler. ReLU and
/// truncation sub-layers of one network layer use indices 2k and 2k + 1.
#[tokio::test]
async fn iknp_correlated_ot_output_feeds_the_garbler() {
    use crate::ot::driver;
    use crate::transport::memory_pair;

    let prm = ActivationParams::DEFAULT;
    let l = prm.l() as usize;
    let (mut server_ch, mut client_ch) = memory_pair();
    let mut rs = ChaCha20Rng::seed_from_u64(40);
    let mut rc = ChaCha20Rng::seed_from_u64(41);
    let delta = Delta::random(&mut rs);
    assert!(delta.block().lsb());
    let (sender, receiver) = tokio::join!(
        driver::setup_sender(&mut server_ch, &mut rs, Some(delta.block())),
        driver::setup_receiver(&mut client_ch, &mut rc),
    );
    let (mut sender, mut receiver) = (sender.unwrap(), receiver.unwrap());
    let mut garbler = Garbler::with_delta(delta, ChaCha20Rng::seed_from_u64(42));
    // The nonce is public: the client would receive these 8 bytes.
    let mut evaluator = Evaluator::new(GcNonce::from_bytes(&garbler.nonce().to_bytes()).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(43);
    // 2000 ReLUs need 74 000 OTs: more than one OT driver chunk and several GC chunks.
    for (k, n) in [(0u32, 2000usize), (1, 300)] {
        for kind in [ActivationKind::Relu, ActivationKind::Truncate] {
            let c = Circuit::new(kind, prm);
            let layer = 2 * k + (kind == ActivationKind::Truncate) as u32;
            let z: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & prm.mask()).collect();
            let b: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & prm.mask()).collect();
            let a: Vec<u64> = z
                .iter()
                .zip(&b)
                .map(|(z, b)| z.wrapping_sub(*b) & prm.mask())
                .collect();
            let p: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & prm.mask()).collect();
            let bits: Vec<bool> = b
                .iter()
                .flat_map(|v| (0..l).map(move |j| (v >> j) & 1 == 1))
                .collect();
            let (zero, labels) = tokio::join!(
                driver::send_correlated(&mut server_ch, &mut sender, n * l),
                driver::receive_correlated(&mut client_ch, &mut receiver, &bits),
            );
            let (zero, labels) = (zero.unwrap(), labels.unwrap());
            let mut asm = TablesAssembler::new(&c, layer, n).unwrap();
            let inputs = garbler
                .garble_layer_streaming_with_client_labels(&c, layer, &p, zero, |chunk| {
                    asm.push(chunk).unwrap()
                })
                .unwrap();
            let tables = asm.finish().unwrap();
            let client = ClientLabels::from_blocks(prm, n, labels).unwrap();
            let server = inputs.into_parts().1.encode_share(&a).unwrap();
            let got = evaluator
                .evaluate_layer(&c, tables, client, server)
                .unwrap();
            for i in 0..n {
                assert_eq!(
                    got[i],
                    reference(kind, prm, a[i], b[i], p[i]),
                    "{kind:?} layer {layer}, i = {i}"
                );
            }
        }
    }
}

/// A session's silent COT labels the client's inputs of every inference's
/// garbled layers under one Δ (the COT's): inference i garbles with nonce
/// i, both schemes evaluate correctly with the silent labels (their colour
/// bits are the receiver's random choice bits), and tables of one inference
/// evaluate to garbage under the other inference's nonce, though the layer
/// indices are the same.
#[tokio::test]
async fn silent_cot_labels_garblers_of_a_session_under_one_delta() {
    use crate::ot::silent::driver;
    use crate::transport::memory_pair;

    let prm = ActivationParams::DEFAULT;
    let l = prm.l() as usize;
    let (mut server_ch, mut client_ch) = memory_pair();
    let mut rs = ChaCha20Rng::seed_from_u64(50);
    let mut rc = ChaCha20Rng::seed_from_u64(51);
    let (sender, receiver) = tokio::join!(
        driver::setup_sender(&mut server_ch, &mut rs, None),
        driver::setup_receiver(&mut client_ch, &mut rc),
    );
    let (mut sender, mut receiver) = (sender.unwrap(), receiver.unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(52);
    let n = 300;
    for scheme in Scheme::ALL {
        for inference in 0..2u64 {
            let delta = Delta::from_block(sender.delta()).unwrap();
            let mut garbler = Garbler::with_delta_and_nonce(
                delta,
                GcNonce::new(inference).unwrap(),
                ChaCha20Rng::seed_from_u64(53 + inference),
            );
            for kind in [ActivationKind::Relu, ActivationKind::Truncate] {
                let c = Circuit::with_scheme(kind, prm, scheme);
                let layer = (kind == ActivationKind::Truncate) as u32;
                let z: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & prm.mask()).collect();
                let b: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & prm.mask()).collect();
                let a: Vec<u64> = z
                    .iter()
                    .zip(&b)
                    .map(|(z, b)| z.wrapping_sub(*b) & prm.mask())
                    .collect();
                let p: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & prm.mask()).collect();
                let bits: Vec<bool> = b
                    .iter()
                    .flat_map(|v| (0..l).map(move |j| (v >> j) & 1 == 1))
                    .collect();
                let (zero, labels) = tokio::join!(
                    driver::send_correlated(&mut server_ch, &mut sender, n * l),
                    driver::receive_correlated(&mut client_ch, &mut receiver, &bits),
                );
                let (zero, labels) = (zero.unwrap(), labels.unwrap());
                let want: Vec<u64> = (0..n)
                    .map(|i| reference(kind, prm, a[i], b[i], p[i]))
                    .collect();
                let mut bytes = Vec::new();
                let inputs = garbler
                    .garble_layer_streaming_with_client_labels(&c, layer, &p, zero, |chunk| {
                        bytes.extend_from_slice(chunk)
                    })
                    .unwrap();
                let server = inputs.into_parts().1.encode_share(&a).unwrap().to_bytes();
                for (nonce, ok) in [(inference, true), (1 - inference, false)] {
                    let mut asm = TablesAssembler::new(&c, layer, n).unwrap();
                    asm.push(&bytes).unwrap();
                    let tables = asm.finish().unwrap();
                    let client = ClientLabels::from_blocks(prm, n, labels.clone()).unwrap();
                    let server = ServerLabels::from_bytes(prm, n, &server).unwrap();
                    let got = Evaluator::new(GcNonce::new(nonce).unwrap())
                        .evaluate_layer(&c, tables, client, server)
                        .unwrap();
                    assert_eq!(got == want, ok, "{scheme} {kind:?} inference {inference}");
                }
            }
        }
    }
}
