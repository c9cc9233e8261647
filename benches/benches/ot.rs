//! Criterion benchmarks of OT: setup (128 base OTs) and IKNP extension,
//! both parties per iteration over the in-memory duplex.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pi_bench::ot::OtPair;

fn base_ot(c: &mut Criterion) {
    let mut g = c.benchmark_group("ot/base");
    g.sample_size(20);
    g.bench_function(BenchmarkId::new("chou_orlandi_setup", 128), |b| {
        b.iter(|| OtPair::new(1).expect("setup"));
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

criterion_group!(benches, base_ot, iknp);
criterion_main!(benches);
