//! Prints the garbled-circuit report as JSON:
//! `cargo run --release -p pi-bench --example gc_report [-- LOG2_LAYER]`.

use pi_bench::gc::measure;
use pi_protocol::gc::ActivationParams;

fn main() {
    let log2: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let report = measure(ActivationParams::DEFAULT, 1 << log2, 3);
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("serialisable")
    );
}
