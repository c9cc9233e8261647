//! Transport micro-benchmark: one-way frame throughput over loopback TLS
//! (mutual authentication, private CA) and plain TCP, per frame size.
//!
//! Run: `cargo bench -p pi-bench --bench transport`. Each measurement sends
//! `iters` frames from the client task to the server task and waits for a
//! one-byte acknowledgement, so bytes per second are payload bytes.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pi_bench::tls::bulk_transfer;
use pi_protocol::transport::{Channel, ChannelConfig, tcp_loopback_pair, tls_loopback_pair};

const SIZES: [usize; 4] = [1 << 10, 64 << 10, 1 << 20, 16 << 20];

fn bench_pair<C: Channel + 'static>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    mut pair: Option<(C, C)>,
) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("frame_bytes", size), &size, |b, &size| {
            b.iter_custom(|iters| {
                let (client, server) = pair
                    .take()
                    .expect("channel pair is returned after each run");
                let total = size * iters as usize;
                let (seconds, client, server) = rt
                    .block_on(bulk_transfer(client, server, total, size))
                    .expect("loopback transfer");
                pair = Some((client, server));
                Duration::from_secs_f64(seconds)
            })
        });
    }
    group.finish();
}

fn transport(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tls = rt
        .block_on(tls_loopback_pair(ChannelConfig::default()))
        .expect("tls loopback");
    bench_pair(c, &rt, "transport/tls", Some(tls));
    let tcp = rt
        .block_on(tcp_loopback_pair(ChannelConfig::default()))
        .expect("tcp loopback");
    bench_pair(c, &rt, "transport/tcp", Some(tcp));
}

criterion_group!(benches, transport);
criterion_main!(benches);
