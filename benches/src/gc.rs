//! Garbled-circuit primitives: half-gates garbling and evaluation speed per
//! AND gate and per activation, and table sizes, for a layer of activations
//! on one thread.

use std::time::Instant;

use pi_protocol::gc::{ActivationKind, ActivationParams, Circuit, Evaluator, Garbler};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

/// Measured garbled-circuit figures for one layer (single-threaded).
#[derive(Clone, Debug, Serialize)]
pub struct GcReport {
    /// Ring bits l.
    pub l: u32,
    /// Fractional bits f.
    pub f: u32,
    /// Activations in the measured layer.
    pub layer_size: usize,
    /// Garbling time per AND gate (half-gates count as one), nanoseconds.
    pub garble_ns_per_and: f64,
    /// Evaluation time per AND gate, nanoseconds.
    pub eval_ns_per_and: f64,
    /// Garbling time per ReLU (input labels, gates, decoding), microseconds.
    pub relu_garble_us: f64,
    /// Evaluation time per ReLU, microseconds.
    pub relu_eval_us: f64,
    /// AND gates per ReLU (two-ciphertext gates plus one-ciphertext half-gates).
    pub relu_and_gates: usize,
    /// Garbled-table bytes per ReLU (ciphertexts and decoding bits).
    pub relu_bytes: usize,
    /// Client storage per ReLU: table plus the client's l input labels.
    pub relu_client_storage_bytes: usize,
    /// Garbling time per truncation-only activation, microseconds.
    pub trunc_garble_us: f64,
    /// Evaluation time per truncation-only activation, microseconds.
    pub trunc_eval_us: f64,
    /// AND gates per truncation-only activation.
    pub trunc_and_gates: usize,
    /// Garbled-table bytes per truncation-only activation.
    pub trunc_bytes: usize,
}

/// Seconds to garble and to evaluate one layer of `n` instances of `circuit`
/// (best of `reps`; label transfer is the ideal OT and not timed).
pub fn time_layer(circuit: &Circuit, n: usize, reps: usize) -> (f64, f64) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mask = circuit.params().mask();
    let a: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask).collect();
    let b: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask).collect();
    let p: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask).collect();
    let mut garbler = Garbler::from_rng(ChaCha20Rng::seed_from_u64(2));
    let mut evaluator = Evaluator::new();
    let (mut g_best, mut e_best) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let layer = garbler.garble_layer(circuit, 0, &p).expect("valid pads");
        g_best = g_best.min(t.elapsed().as_secs_f64());
        let client = layer.client_inputs.ideal_transfer(&b).expect("shape");
        let server = layer.server_inputs.encode_share(&a).expect("shape");
        let t = Instant::now();
        let out = evaluator.evaluate_layer(circuit, layer.tables, client, server).expect("shape");
        e_best = e_best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(out);
    }
    (g_best, e_best)
}

/// Measures ReLU and truncation-only layers of `n` activations at `params`.
pub fn measure(params: ActivationParams, n: usize, reps: usize) -> GcReport {
    let relu = Circuit::new(ActivationKind::Relu, params);
    let trunc = Circuit::new(ActivationKind::Truncate, params);
    let (rg, re) = time_layer(&relu, n, reps);
    let (tg, te) = time_layer(&trunc, n, reps);
    let relu_ands = relu.and_gates() + relu.half_gates();
    let per_and = |secs: f64| secs * 1e9 / (n * relu_ands) as f64;
    GcReport {
        l: params.l(),
        f: params.f(),
        layer_size: n,
        garble_ns_per_and: per_and(rg),
        eval_ns_per_and: per_and(re),
        relu_garble_us: rg * 1e6 / n as f64,
        relu_eval_us: re * 1e6 / n as f64,
        relu_and_gates: relu_ands,
        relu_bytes: relu.table_bytes(),
        relu_client_storage_bytes: relu.table_bytes() + 16 * params.l() as usize,
        trunc_garble_us: tg * 1e6 / n as f64,
        trunc_eval_us: te * 1e6 / n as f64,
        trunc_and_gates: trunc.and_gates() + trunc.half_gates(),
        trunc_bytes: trunc.table_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_sizes_and_positive_times() {
        let r = measure(ActivationParams::DEFAULT, 300, 1);
        assert_eq!(r.relu_and_gates, 84);
        assert_eq!(r.trunc_and_gates, 61);
        assert!(r.relu_bytes <= 2900 && r.relu_client_storage_bytes <= 3500);
        assert!(r.garble_ns_per_and > 0.0 && r.eval_ns_per_and > 0.0);
        let json = serde_json::to_value(&r).expect("serialisable");
        assert_eq!(json["relu_bytes"], r.relu_bytes);
        assert!(json["garble_ns_per_and"].as_f64().is_some());
    }
}
