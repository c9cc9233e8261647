//! Prints the garbled-circuit report of each garbling scheme as JSON, keyed
//! by scheme name:
//! `cargo run --release -p pi-bench --example gc_report [-- LOG2_LAYER]`.

use pi_bench::gc::measure;
use pi_protocol::gc::{ActivationParams, Scheme};

fn main() {
    let log2: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let reports: serde_json::Map<String, serde_json::Value> = Scheme::ALL
        .into_iter()
        .map(|scheme| {
            let r = measure(ActivationParams::DEFAULT, scheme, 1 << log2, 3);
            (
                scheme.name().to_string(),
                serde_json::to_value(r).expect("serialisable"),
            )
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&reports).expect("serialisable")
    );
}
