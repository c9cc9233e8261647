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
    let GarbledLayer { tables, client_inputs, server_inputs } = g.garble_layer(c, 3, p).unwrap();
    let client = client_inputs.ideal_transfer(b).unwrap();
    // Everything crosses the wire as bytes.
    let n = a.len();
    let tables = GarbledTables::from_bytes(c, 3, n, tables.into_bytes()).unwrap();
    let client = ClientLabels::from_bytes(c.params(), n, &client.to_bytes()).unwrap();
    let server = server_inputs.encode_share(a).unwrap();
    let server = ServerLabels::from_bytes(c.params(), n, &server.to_bytes()).unwrap();
    Evaluator::new().evaluate_layer(c, tables, client, server).unwrap()
}

#[test]
fn gate_counts_and_sizes_at_default_parameters() {
    let relu = Circuit::relu(ActivationParams::DEFAULT);
    let trunc = Circuit::truncate(ActivationParams::DEFAULT);
    // (l-1) + (l-f-1) + (l-f-2) AND gates plus one half-gate.
    assert_eq!((relu.and_gates(), relu.half_gates()), (36 + 24 + 23, 1));
    assert_eq!((trunc.and_gates(), trunc.half_gates()), (36 + 24, 1));
    assert_eq!(relu.table_bytes(), 167 * 16 + 7);
    assert_eq!(trunc.table_bytes(), 121 * 16 + 7);
    assert!(relu.and_gates() + relu.half_gates() <= 3 * 36);
    // Client storage: tables plus l labels of 16 bytes within 3.5 KB.
    assert!(relu.table_bytes() + 37 * 16 <= 3500);
    // Slot reuse keeps the working set small.
    assert!(relu.slots < 64, "{} slots", relu.slots);
}

#[test]
fn garbled_equals_cleartext_and_reference_on_edges_and_random() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for (l, f) in PARAMS {
        let prm = params(l, f);
        for kind in [ActivationKind::Relu, ActivationKind::Truncate] {
            let c = Circuit::new(kind, prm);
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
                assert_eq!(c.eval_clear(a[i], b[i], p[i]), want, "{kind:?} l={l} f={f} clear i={i}");
                assert_eq!(got[i], want, "{kind:?} l={l} f={f} garbled i={i} a={:#x} b={:#x}", a[i], b[i]);
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
    assert_eq!(reference(ActivationKind::Truncate, prm, neg, 0, 0), (-(1i64 << 10)) as u64 & m);
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
    let a: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & (prm.mask() >> 2)).collect();
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
    let got = Evaluator::new().evaluate_layer(&c, layer.tables, client, server).unwrap();
    let wrong = (0..n).filter(|&i| got[i] != reference(ActivationKind::Relu, prm, a[i], b[i], p[i])).count();
    assert!(wrong >= n - 2, "only {wrong} of {n} outputs changed");
}

#[test]
fn tampered_tables_give_wrong_results_or_errors() {
    let prm = params(20, 5);
    let c = Circuit::relu(prm);
    let n = CHUNK + 10;
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let a: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & (prm.mask() >> 2)).collect();
    let b: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & (prm.mask() >> 3)).collect();
    let p: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & prm.mask()).collect();
    let want: Vec<u64> = (0..n).map(|i| reference(ActivationKind::Relu, prm, a[i], b[i], p[i])).collect();
    let per = c.table_bytes();
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(2));
    let layer = g.garble_layer(&c, 9, &p).unwrap();
    let bytes = layer.tables.into_bytes();
    let client = layer.client_inputs.ideal_transfer(&b).unwrap();
    let server = layer.server_inputs.encode_share(&a).unwrap();

    // Length checks: truncated, extended, wrong n.
    for bad in [bytes[..bytes.len() - 1].to_vec(), [bytes.clone(), vec![0]].concat()] {
        assert!(matches!(GarbledTables::from_bytes(&c, 9, n, bad), Err(Error::PeerMisbehaved(_))));
    }
    assert!(matches!(GarbledTables::from_bytes(&c, 9, n + 1, bytes.clone()), Err(Error::PeerMisbehaved(_))));
    // Padding bits of the decoding information must be zero.
    let used = c.low_bits() + 2 * c.top_bits();
    if !used.is_multiple_of(8) {
        let mut bad = bytes.clone();
        let last_dec_byte = n * per - 1;
        bad[last_dec_byte] |= 0x80;
        assert!(matches!(GarbledTables::from_bytes(&c, 9, n, bad), Err(Error::PeerMisbehaved(_))));
    }
    // Flip a bit in both ciphertexts of the first AND gate of instance 3
    // (chunk 0 holds, gate by gate, [TG, TE] per instance): the evaluator uses
    // them only when the permute bits of its labels are 1, so instance 3 may
    // or may not change. Flip a decoding bit of instance 4: that always shows.
    let mut bad = bytes.clone();
    bad[32 * 3 + 16 + 5] ^= 0x10;
    bad[32 * 3 + 5] ^= 0x10;
    let dec_base = 16 * c.ciphertexts() * CHUNK;
    bad[dec_base + c.decode_bytes() * 4] ^= 1; // low output bit 0 of instance 4
    let tables = GarbledTables::from_bytes(&c, 9, n, bad).unwrap();
    let got = Evaluator::new().evaluate_layer(&c, tables, client, server).unwrap();
    assert_ne!(got[4], want[4]);
    let mut ok = 0;
    for i in (0..n).filter(|&i| i != 3 && i != 4) {
        ok += (got[i] == want[i]) as usize;
    }
    assert_eq!(ok, n - 2, "untouched instances must still decode");

    // Tables evaluated under the wrong layer index (tweaks differ) are garbage.
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(2));
    let layer = g.garble_layer(&c, 9, &p).unwrap();
    let client = layer.client_inputs.ideal_transfer(&b).unwrap();
    let server = layer.server_inputs.encode_share(&a).unwrap();
    let tables = GarbledTables::from_bytes(&c, 10, n, layer.tables.into_bytes()).unwrap();
    let got = Evaluator::new().evaluate_layer(&c, tables, client, server).unwrap();
    let right = (0..n).filter(|&i| got[i] == want[i]).count();
    assert!(right < n / 8, "{right} of {n} right under a wrong tweak");
}

#[test]
fn hostile_label_batches_are_rejected() {
    let prm = ActivationParams::DEFAULT;
    let bytes = vec![0u8; 16 * 37 * 4];
    assert!(ServerLabels::from_bytes(prm, 4, &bytes).is_ok());
    assert!(matches!(ServerLabels::from_bytes(prm, 5, &bytes), Err(Error::PeerMisbehaved(_))));
    assert!(matches!(ClientLabels::from_bytes(prm, 4, &bytes[1..]), Err(Error::PeerMisbehaved(_))));
    assert!(matches!(ClientLabels::from_bytes(prm, usize::MAX, &bytes), Err(Error::PeerMisbehaved(_))));
    assert!(matches!(ClientLabels::from_blocks(prm, 3, vec![]), Err(Error::BadInput(_))));
}

#[test]
fn bad_local_inputs_are_rejected() {
    let prm = params(16, 4);
    let c = Circuit::truncate(prm);
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(3));
    assert!(matches!(g.garble_layer(&c, 0, &[1 << 16]), Err(Error::BadInput(_))));
    let layer = g.garble_layer(&c, 0, &[1, 2]).unwrap();
    assert!(matches!(layer.server_inputs.encode_share(&[1]), Err(Error::BadInput(_))));
    assert!(ActivationParams::new(37, 36).is_err());
    assert!(ActivationParams::new(65, 12).is_err());
    assert!(ActivationParams::new(37, 0).is_err());
    // A shared Δ forbids repeating a layer index.
    let d = Delta::random(&mut ChaCha20Rng::seed_from_u64(4));
    let mut g = Garbler::with_delta(d, ChaCha20Rng::seed_from_u64(4));
    g.garble_layer(&c, 5, &[0]).unwrap();
    assert!(matches!(g.garble_layer(&c, 5, &[0]), Err(Error::BadInput(_))));
    assert!(Delta::from_block(crate::crypto::Block(2)).is_err());
    // Tables from another circuit.
    let relu = Circuit::relu(prm);
    let mut g = Garbler::from_rng(ChaCha20Rng::seed_from_u64(3));
    let layer = g.garble_layer(&relu, 0, &[1]).unwrap();
    let client = layer.client_inputs.ideal_transfer(&[0]).unwrap();
    let server = layer.server_inputs.encode_share(&[0]).unwrap();
    assert!(matches!(Evaluator::new().evaluate_layer(&c, layer.tables, client, server), Err(Error::BadInput(_))));
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
        assert_eq!(gl.client_inputs.delta().block(), db);
        let got = {
            let client = gl.client_inputs.ideal_transfer(&[1, 2, 3]).unwrap();
            let server = gl.server_inputs.encode_share(&[100, 200, 65000]).unwrap();
            Evaluator::new().evaluate_layer(&c, gl.tables, client, server).unwrap()
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
    let p: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9) & prm.mask()).collect();
    let whole = Garbler::from_rng(ChaCha20Rng::seed_from_u64(6)).garble_layer(&c, 1, &p).unwrap();
    let mut chunks = Vec::new();
    let inputs = Garbler::from_rng(ChaCha20Rng::seed_from_u64(6))
        .garble_layer_streaming(&c, 1, &p, |b| chunks.push(b.to_vec()))
        .unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[0].len(), CHUNK * c.table_bytes());
    assert_eq!(chunks.concat(), whole.tables.as_bytes());
    assert_eq!(inputs.server_inputs.zero, whole.server_inputs.zero);
    assert_eq!(inputs.client_inputs.zero_labels(), whole.client_inputs.zero_labels());
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
    let q: Vec<crate::crypto::Block> = (0..2 * l).map(|_| crate::crypto::Block::random(&mut rng)).collect();
    let t: Vec<_> = q.iter().enumerate().map(|(k, q)| *q ^ d.select((b[k / l] >> (k % l)) & 1 == 1)).collect();
    let mut g = Garbler::with_delta(delta, ChaCha20Rng::seed_from_u64(13));
    let mut bytes = Vec::new();
    let inputs =
        g.garble_layer_streaming_with_client_labels(&c, 0, &p, q.clone(), |x| bytes.extend_from_slice(x)).unwrap();
    assert_eq!(inputs.client_inputs.zero_labels(), &q[..]);
    let tables = GarbledTables::from_bytes(&c, 0, 2, bytes).unwrap();
    let client = ClientLabels::from_blocks(prm, 2, t).unwrap();
    let server = inputs.server_inputs.encode_share(&a).unwrap();
    let got = Evaluator::new().evaluate_layer(&c, tables, client, server).unwrap();
    assert_eq!(got, vec![12 + 1, 2]);
    // Without a shared Δ, or with the wrong count, it is refused.
    let mut fresh = Garbler::from_rng(ChaCha20Rng::seed_from_u64(14));
    assert!(matches!(
        fresh.garble_layer_streaming_with_client_labels(&c, 0, &p, q.clone(), |_| {}),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        g.garble_layer_streaming_with_client_labels(&c, 1, &p, q[1..].to_vec(), |_| {}),
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
    let layer = Garbler::from_rng(ChaCha20Rng::seed_from_u64(1)).garble_layer(&c, 0, &[3]).unwrap();
    let zero = layer.client_inputs.zero_labels()[0];
    let text = format!("{:?} {:?} {:?}", layer.tables, layer.client_inputs, layer.server_inputs);
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
    let got = Evaluator::new().evaluate_layer(&c, tables, client, server).unwrap();
    assert!(got.iter().enumerate().all(|(i, v)| *v == reference(ActivationKind::Truncate, prm, a[i], b[i], p[i])));
    // Missing bytes.
    let mut short = TablesAssembler::new(&c, 2, 1).unwrap();
    short.push(&vec![0u8; c.table_bytes() - 1]).unwrap();
    assert!(matches!(short.finish(), Err(Error::PeerMisbehaved(_))));
}
