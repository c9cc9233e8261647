//! Criterion benchmarks of OT: setup (128 base OTs), IKNP extension and
//! silent (LPN) COT, both parties per iteration over the in-memory duplex.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pi_bench::ot::{OtPair, SilentPair};
use pi_protocol::ot::{KAPPA, ReceiverSetup, Sender, base};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

fn base_ot(c: &mut Criterion) {
    let mut g = c.benchmark_group("ot/base");
    g.sample_size(20);
    // Both parties' work for the 128 base OTs of one IKNP setup, run on one
    // thread through the sans-IO state machines (wire encoding included).
    g.bench_function(BenchmarkId::new("chou_orlandi", KAPPA), |b| {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        b.iter(|| {
            let (setup, a) = ReceiverSetup::new(&mut rng).expect("setup");
            let a = base::SenderMsg::from_bytes(&a.to_bytes()).expect("A");
            let (sender, reply) = Sender::new(&mut rng, &a).expect("sender");
            let reply = base::ReceiverMsg::from_bytes(&reply.to_bytes(), KAPPA).expect("B");
            (sender, setup.finish(&reply).expect("receiver"))
        });
    });
    g.finish();
}

fn iknp(c: &mut Criterion) {
    let (mut pair, _) = OtPair::new(2).expect("setup");
    for kind in ["random", "correlated", "chosen"] {
        let mut g = c.benchmark_group(format!("ot/iknp_{kind}"));
        g.sample_size(10);
        for n in [1usize << 16, 1 << 20] {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.iter(|| {
                    let ok = match kind {
                        "random" => pair.random(n),
                        "correlated" => pair.correlated(n),
                        _ => pair.chosen(n),
                    }
                    .expect("OT");
                    assert_eq!(ok, n);
                });
            });
        }
        g.finish();
    }
}

fn silent(c: &mut Criterion) {
    let mut g = c.benchmark_group("ot/silent_setup");
    g.sample_size(10);
    // Base OTs, IKNP for the setup round's base, the setup round.
    g.bench_function(BenchmarkId::from_parameter("ferret_setup"), |b| {
        let mut seed = 0;
        b.iter(|| {
            seed += 1;
            SilentPair::new(seed).expect("setup")
        });
    });
    g.finish();
    let (mut pair, _) = SilentPair::new(1).expect("setup");
    let mut g = c.benchmark_group("ot/silent_random_choice_cot");
    g.sample_size(10);
    for n in [1usize << 20, 1 << 24] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                let (q, t) = pair.cots(n).expect("silent COT");
                assert_eq!(pair.consistent(&q, &t), n);
            });
        });
    }
    g.finish();
}

criterion_group!(benches, base_ot, iknp, silent);
criterion_main!(benches);
