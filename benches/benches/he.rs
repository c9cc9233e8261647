//! Criterion benches of the offline HE step: one ciphertext x plaintext
//! product at N = 8192 (three primes), and one whole conv layer with both parties.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pi_bench::he::run_offline_linear;
use pi_protocol::he::{ConvShape, CtPtKernel, LayerShape};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ct_pt(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut k = CtPtKernel::new(&mut rng);
    c.bench_function("he/ct_x_pt/N=8192", |b| {
        b.iter(|| {
            k.run();
            std::hint::black_box(k.probe())
        })
    });
}

fn conv_layer(c: &mut Criterion) {
    let mut g = c.benchmark_group("he/conv_layer");
    g.sample_size(10);
    for (c_in, c_out, hw) in [(64, 64, 32), (512, 512, 4)] {
        let shape = LayerShape::Conv(ConvShape {
            c_in,
            c_out,
            h: hw,
            w: hw,
            kernel: 3,
            stride: 1,
            pad: 1,
        });
        let layers = vec![("conv".to_string(), shape)];
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{c_in}x{c_out}x{hw}x{hw}k3")),
            &layers,
            |b, l| b.iter(|| run_offline_linear(l, 1, false).expect("layer runs")),
        );
    }
    g.finish();
}

criterion_group!(benches, ct_pt, conv_layer);
criterion_main!(benches);
