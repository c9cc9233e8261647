//! Garbled-circuit primitives: garbling and evaluation speed per AND gate and
//! per activation, and table sizes, for a layer of activations on one
//! thread, for either garbling scheme (half-gates or three-halves).

use std::time::Instant;

use pi_protocol::crypto::{FixedKeyAes, to_aes};
use pi_protocol::gc::{
    ActivationKind, ActivationParams, Circuit, ClientInputLabels, ClientLabels, Evaluator, Garbler,
    Scheme,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

/// Measured garbled-circuit figures for one layer (single-threaded).
#[derive(Clone, Debug, Serialize)]
pub struct GcReport {
    /// Garbling scheme: `half-gates` or `three-halves`.
    pub scheme: String,
    /// Ring bits l.
    pub l: u32,
    /// Fractional bits f.
    pub f: u32,
    /// Activations in the measured layer.
    pub layer_size: usize,
    /// Garbling time per AND gate (half-gates count as one), nanoseconds,
    /// tables streamed chunk by chunk (as a driver sends them).
    pub garble_ns_per_and: f64,
    /// Evaluation time per AND gate, nanoseconds.
    pub eval_ns_per_and: f64,
    /// Garbling time per ReLU (input labels, gates, decoding), microseconds.
    pub relu_garble_us: f64,
    /// Garbling time per ReLU with the whole layer's tables collected in
    /// memory (includes first-touch page faults of the fresh buffer).
    pub relu_garble_collect_us: f64,
    /// Evaluation time per ReLU, microseconds.
    pub relu_eval_us: f64,
    /// Garbling CPU time of this thread per AND gate, nanoseconds (Linux
    /// schedstat; less sensitive to a busy machine than wall time).
    pub garble_cpu_ns_per_and: Option<f64>,
    /// Evaluation CPU time per AND gate, nanoseconds.
    pub eval_cpu_ns_per_and: Option<f64>,
    /// Calibration: TCCR hashes per second of CPU time at batches of 1024
    /// (two AES blocks each); garbling needs 4 per AND gate, evaluation 2
    /// (three-halves: 6 and 3).
    pub tccr_per_cpu_sec: Option<f64>,
    /// AND gates per ReLU (two-ciphertext gates plus one-ciphertext half-gates).
    pub relu_and_gates: usize,
    /// Garbled-table bytes per ReLU (ciphertexts, control and decoding bits).
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

/// What a correlated OT hands the client: for each bit j of `b[i]`, the zero
/// label XOR `b_ij * Δ` (the OT itself is not part of these measurements).
/// Consumes the label set, as the real OT does.
pub fn transfer_client_labels(inputs: ClientInputLabels, b: &[u64]) -> ClientLabels {
    let params = inputs.params();
    let l = params.l() as usize;
    let (zero, delta) = inputs.into_parts();
    let delta = delta.block();
    let labels = zero
        .chunks_exact(l)
        .zip(b)
        .flat_map(|(zero, v)| {
            zero.iter()
                .enumerate()
                .map(move |(j, z)| *z ^ delta.select((v >> j) & 1 == 1))
        })
        .collect();
    ClientLabels::from_blocks(params, b.len(), labels).expect("one share per activation")
}

/// CPU time of the calling thread in nanoseconds, from
/// `/proc/thread-self/schedstat` (Linux); `None` elsewhere.
pub fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Best-of-`reps` timings of one layer, in seconds: wall and thread CPU time.
#[derive(Clone, Copy, Debug)]
pub struct LayerTimes {
    /// Garbling wall time, tables streamed through one chunk buffer.
    pub garble: f64,
    /// Garbling wall time, whole layer's tables collected in memory.
    pub garble_collect: f64,
    /// Evaluation wall time.
    pub eval: f64,
    /// Garbling CPU time, if measurable.
    pub garble_cpu: Option<f64>,
    /// Evaluation CPU time, if measurable.
    pub eval_cpu: Option<f64>,
}

/// Times garbling and evaluating one layer of `n` instances of `circuit`
/// (best of `reps`; the OT's label transfer is not timed).
pub fn time_layer(circuit: &Circuit, n: usize, reps: usize) -> LayerTimes {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mask = circuit.params().mask();
    let a: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask).collect();
    let b: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask).collect();
    let p: Vec<u64> = (0..n).map(|_| rng.random::<u64>() & mask).collect();
    let mut garbler = Garbler::from_rng(ChaCha20Rng::seed_from_u64(2));
    let mut evaluator = Evaluator::new(garbler.nonce());
    let mut best = LayerTimes {
        garble: f64::INFINITY,
        garble_collect: f64::INFINITY,
        eval: f64::INFINITY,
        garble_cpu: None,
        eval_cpu: None,
    };
    let min = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let cpu_since = |c0: Option<u64>| Some((thread_cpu_ns()? - c0?) as f64 * 1e-9);
    for _ in 0..reps.max(1) {
        let (t, c0) = (Instant::now(), thread_cpu_ns());
        let inputs = garbler
            .garble_layer_streaming(circuit, 0, &p, |chunk| {
                std::hint::black_box(chunk);
            })
            .expect("valid pads");
        best.garble = best.garble.min(t.elapsed().as_secs_f64());
        best.garble_cpu = min(best.garble_cpu, cpu_since(c0));
        drop(inputs);
        let t = Instant::now();
        let layer = garbler.garble_layer(circuit, 0, &p).expect("valid pads");
        best.garble_collect = best.garble_collect.min(t.elapsed().as_secs_f64());
        let client = transfer_client_labels(layer.client_inputs, &b);
        let server = layer.server_inputs.encode_share(&a).expect("shape");
        let (t, c0) = (Instant::now(), thread_cpu_ns());
        let out = evaluator
            .evaluate_layer(circuit, layer.tables, client, server)
            .expect("shape");
        best.eval = best.eval.min(t.elapsed().as_secs_f64());
        best.eval_cpu = min(best.eval_cpu, cpu_since(c0));
        std::hint::black_box(out);
    }
    best
}

/// TCCR hashes per second of thread CPU time at a batch of 1024.
pub fn tccr_rate() -> Option<f64> {
    let aes = FixedKeyAes::new();
    let mut xs: Vec<aes::Block> = (0..1024u128).map(to_aes).collect();
    let mut scratch = xs.clone();
    let reps = 2000;
    let c0 = thread_cpu_ns()?;
    for r in 0..reps {
        aes.tccr_blocks_with(&mut xs, &mut scratch, |j| (r << 32 | j) as u128);
    }
    std::hint::black_box(&xs);
    let secs = (thread_cpu_ns()? - c0) as f64 * 1e-9;
    Some((reps * 1024) as f64 / secs)
}

/// Measures ReLU and truncation-only layers of `n` activations at `params`
/// garbled with `scheme`.
pub fn measure(params: ActivationParams, scheme: Scheme, n: usize, reps: usize) -> GcReport {
    let relu = Circuit::with_scheme(ActivationKind::Relu, params, scheme);
    let trunc = Circuit::with_scheme(ActivationKind::Truncate, params, scheme);
    let r = time_layer(&relu, n, reps);
    let t = time_layer(&trunc, n, reps);
    let (rg, re, tg, te) = (r.garble, r.eval, t.garble, t.eval);
    let relu_ands = relu.and_gates() + relu.half_gates();
    let per_and = |secs: f64| secs * 1e9 / (n * relu_ands) as f64;
    GcReport {
        scheme: scheme.name().to_string(),
        l: params.l(),
        f: params.f(),
        layer_size: n,
        garble_ns_per_and: per_and(rg),
        eval_ns_per_and: per_and(re),
        garble_cpu_ns_per_and: r.garble_cpu.map(per_and),
        eval_cpu_ns_per_and: r.eval_cpu.map(per_and),
        relu_garble_us: rg * 1e6 / n as f64,
        relu_eval_us: re * 1e6 / n as f64,
        relu_garble_collect_us: r.garble_collect * 1e6 / n as f64,
        tccr_per_cpu_sec: tccr_rate(),
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
        let hg = measure(ActivationParams::DEFAULT, Scheme::HalfGates, 300, 1);
        let th = measure(ActivationParams::DEFAULT, Scheme::ThreeHalves, 300, 1);
        for r in [&hg, &th] {
            assert_eq!(r.relu_and_gates, 84);
            assert_eq!(r.trunc_and_gates, 61);
            assert!(r.garble_ns_per_and > 0.0 && r.eval_ns_per_and > 0.0);
            let json = serde_json::to_value(r).expect("serialisable");
            assert_eq!(json["relu_bytes"], r.relu_bytes);
            assert!(json["garble_ns_per_and"].as_f64().is_some());
        }
        assert_eq!(
            (hg.scheme.as_str(), th.scheme.as_str()),
            ("half-gates", "three-halves")
        );
        assert_eq!((hg.relu_bytes, hg.trunc_bytes), (2679, 1943));
        assert!(th.relu_bytes <= 2100 && th.trunc_bytes <= 1520);
        assert_eq!(th.relu_client_storage_bytes, th.relu_bytes + 37 * 16);
    }
}
