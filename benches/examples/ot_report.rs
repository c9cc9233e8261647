//! Prints the OT benchmark figures as JSON: `cargo run --release -p pi-bench --example ot_report [n] [reps] [silent_n]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1 << 20);
    let reps = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let silent_n = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1 << 24);
    let report = pi_bench::ot::measure(n, silent_n, reps)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
