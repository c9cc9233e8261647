//! Indicative speed of the plaintext fixed-point oracle (one thread):
//! `cargo run --release -p pi-models --example fixed_speed -- [SPEC...]`.

use pi_models::fixed::{forward_fixed, quantize_input};
use pi_models::weights::{init_weights, weights_from_bytes};
use pi_models::{Model, QuantModel, RingParams};
use std::time::Instant;

fn main() -> Result<(), pi_models::Error> {
    let mut specs: Vec<String> = std::env::args().skip(1).collect();
    if specs.is_empty() {
        specs = vec!["resnet18".into(), "hrn-5x5x3x".into()];
    }
    for spec in &specs {
        let model = Model::resolve(spec)?;
        let net = &model.network;
        let folded = weights_from_bytes(&init_weights(net, 1)?, net)?;
        let ring = RingParams::default();
        let q = QuantModel::quantize(net, &folded, ring)?;
        let n = net.tensors[net.input].shape.numel();
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let xq = quantize_input(&x, ring)?;
        let macs = net.stats().macs as f64;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            std::hint::black_box(forward_fixed(net, &q, &xq));
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{spec}: fixed forward {best:.3} s, {:.2} GMAC/s",
            macs / best / 1e9
        );
    }
    Ok(())
}
