//! Criterion benchmarks of the garbled circuits: garbling and evaluating a
//! layer of activations with each garbling scheme, and the TCCR hash at
//! several batch sizes.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pi_bench::gc::transfer_client_labels;
use pi_protocol::crypto::{Block, FixedKeyAes, to_aes};
use pi_protocol::gc::{ActivationKind, ActivationParams, Circuit, Evaluator, Garbler, Scheme};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const LAYER: usize = 1 << 12;

fn layer(c: &mut Criterion) {
    let params = ActivationParams::DEFAULT;
    let mut group = c.benchmark_group("gc_layer");
    group.sample_size(10);
    for (kind, scheme) in [ActivationKind::Relu, ActivationKind::Truncate]
        .into_iter()
        .flat_map(|k| Scheme::ALL.map(|s| (k, s)))
    {
        let circuit = Circuit::with_scheme(kind, params, scheme);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mask = params.mask();
        let a: Vec<u64> = (0..LAYER).map(|_| rng.random::<u64>() & mask).collect();
        let b: Vec<u64> = (0..LAYER).map(|_| rng.random::<u64>() & mask).collect();
        let p: Vec<u64> = (0..LAYER).map(|_| rng.random::<u64>() & mask).collect();
        let id = format!(
            "{kind:?}/{scheme}/l={}/f={}/n={LAYER}",
            params.l(),
            params.f()
        );
        group.throughput(Throughput::Elements(LAYER as u64));
        let mut garbler = Garbler::from_rng(ChaCha20Rng::seed_from_u64(2));
        group.bench_function(BenchmarkId::new("garble", &id), |bench| {
            bench.iter(|| garbler.garble_layer(&circuit, 0, &p).expect("valid pads"))
        });
        group.bench_function(BenchmarkId::new("garble_streaming", &id), |bench| {
            bench.iter(|| {
                garbler
                    .garble_layer_streaming(&circuit, 0, &p, |chunk| {
                        std::hint::black_box(chunk);
                    })
                    .expect("valid pads")
            })
        });
        let mut evaluator = Evaluator::new(garbler.nonce());
        group.bench_function(BenchmarkId::new("evaluate", &id), |bench| {
            bench.iter_batched(
                || {
                    let gl = garbler.garble_layer(&circuit, 0, &p).expect("valid pads");
                    let client = transfer_client_labels(gl.client_inputs, &b);
                    let server = gl.server_inputs.encode_share(&a).expect("shape");
                    (gl.tables, client, server)
                },
                |(t, cl, sv)| {
                    evaluator
                        .evaluate_layer(&circuit, t, cl, sv)
                        .expect("shape")
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn tccr(c: &mut Criterion) {
    let aes = FixedKeyAes::new();
    let mut group = c.benchmark_group("tccr_many");
    for batch in [8usize, 64, 1024] {
        let xs: Vec<Block> = (0..batch as u128)
            .map(|i| Block(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let tw: Vec<Block> = (0..batch as u128).map(Block).collect();
        let mut out = vec![Block::ZERO; batch];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("blocks", batch), &batch, |bench, _| {
            bench.iter(|| aes.tccr_many(&xs, &tw, &mut out))
        });
        let mut raw: Vec<aes::Block> = xs.iter().map(|x| to_aes(x.0)).collect();
        let mut hashed = raw.clone();
        group.bench_with_input(
            BenchmarkId::new("aes_blocks_in_place", batch),
            &batch,
            |bench, _| bench.iter(|| aes.tccr_blocks_with(&mut raw, &mut hashed, |j| j as u128)),
        );
    }
    group.finish();
}

criterion_group!(benches, layer, tccr);
criterion_main!(benches);
