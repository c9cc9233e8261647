//! `pi-bench`: measurements of the runtime's building blocks and phases.
//!
//! - `pi-bench primitives [--json]`: garbled circuits, OT extension, base OT
//!   and TLS bulk throughput on loopback, both parties in one process.
//! - `pi-bench he SPEC [--json] [--threads N] [--verify]`: the offline linear
//!   (HE) step for every linear layer of a network.
//! - `pi-bench e2e SPEC [--weights W] [--input X.npy] [--seed S] [--inferences N] [--link RATE,DELAY] [--json]`:
//!   one private inference, pi-server and pi-client over loopback TLS, checked
//!   against the fixed-point oracle.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pi-bench", about = "Benchmarks of the private inference runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Primitive throughput: garbling, evaluation, OT extension, base OT.
    Primitives {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Activations per garbled layer, as a power of two.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(8..=22))]
        gc_log2: u32,
        /// OTs per extension run, as a power of two.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(10..=24))]
        ot_log2: u32,
        /// Repetitions (the median is reported).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
        reps: u32,
        /// MiB moved over loopback TLS (and again over TCP).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16384))]
        tls_mib: u32,
    },
    /// Offline linear step (lattice HE) of every linear layer of a network.
    He {
        /// Network spec (preset, `AxBxCx(...)` or a model file).
        spec: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Worker threads for the server's HE work (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Also check every decrypted share against W·c − s in the clear.
        #[arg(long)]
        verify: bool,
    },
    /// One private inference end to end: pi-server and pi-client over loopback TCP + TLS 1.3.
    E2e {
        /// Network spec (preset, `AxBxCx(...)` or a model file).
        spec: String,
        /// Weight file (default: the model file's, else seeded random weights).
        #[arg(long)]
        weights: Option<std::path::PathBuf>,
        /// `.npy` float32 (C, H, W) input (default: seeded random).
        #[arg(long)]
        input: Option<std::path::PathBuf>,
        /// Seed of the random weights (and, plus one, of the random input).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Inferences to run, one connection each (the last is reported in full).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        inferences: u32,
        /// Emulate a link on the connection, both directions: `RATE,DELAY`
        /// such as `1gbit,0.5ms` or `100mbit,20ms` (one-way delay).
        #[arg(long, value_name = "RATE,DELAY")]
        link: Option<pi_protocol::transport::Link>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Primitives { json, gc_log2, ot_log2, reps, tls_mib } => {
            primitives(json, gc_log2, ot_log2, reps as usize, tls_mib as usize)
        }
        Command::He { spec, json, threads, verify } => he(&spec, json, threads, verify),
        Command::E2e { spec, weights, input, seed, inferences, link, json } => {
            let opts = pi_bench::e2e::E2eOptions { spec, weights, input, seed, inferences: inferences as usize, link };
            eprintln!("running {} inference(s) of {} over loopback TLS ...", opts.inferences, opts.spec);
            let r = pi_bench::e2e::run(&opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r.to_json())?);
            } else {
                print!("{}", r.table());
            }
            Ok(())
        }
    }
}

fn primitives(as_json: bool, gc_log2: u32, ot_log2: u32, reps: usize, tls_mib: usize) -> Result<()> {
    eprintln!("garbling and evaluating 2^{gc_log2} ReLUs ...");
    let gc = pi_bench::gc::measure(pi_protocol::gc::ActivationParams::DEFAULT, 1 << gc_log2, reps);
    eprintln!("running 2^{ot_log2} OT extensions ...");
    let ot = pi_bench::ot::measure(1 << ot_log2, reps).context("OT benchmark")?;
    eprintln!("moving {tls_mib} MiB over loopback TLS and TCP ...");
    let tls = pi_bench::tls::measure_loopback_throughput(tls_mib << 20, 1 << 20).context("TLS benchmark")?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({ "gc": gc, "ot": ot, "tls": tls }))?);
        return Ok(());
    }
    println!("garbled circuits (l = {}, f = {}, {} activations per layer, one thread)", gc.l, gc.f, gc.layer_size);
    println!("  ReLU: {} AND gates, {} table bytes, {} B client storage", gc.relu_and_gates, gc.relu_bytes, gc.relu_client_storage_bytes);
    println!("  truncation only: {} AND gates, {} table bytes", gc.trunc_and_gates, gc.trunc_bytes);
    println!("  garble {:.1} ns/AND ({:.2} µs/ReLU), evaluate {:.1} ns/AND ({:.2} µs/ReLU)",
        gc.garble_ns_per_and, gc.relu_garble_us, gc.eval_ns_per_and, gc.relu_eval_us);
    println!("oblivious transfer ({} OTs, both parties in one process)", ot.n);
    println!("  base OT (128): {:.1} ms", ot.base_ot_ms);
    println!("  IKNP random {:.2} M OT/s, correlated {:.2} M OT/s, chosen {:.2} M OT/s",
        ot.iknp_ots_per_second / 1e6, ot.iknp_correlated_ots_per_second / 1e6, ot.iknp_chosen_ots_per_second / 1e6);
    println!("transport (loopback, 1 MiB frames)");
    println!("  TLS 1.3 {:.2} GB/s, plain TCP {:.2} GB/s, mutual-TLS handshake {:.1} ms",
        tls.bulk_bytes_per_second / 1e9, tls.tcp_bytes_per_second / 1e9, tls.handshake_seconds * 1e3);
    Ok(())
}

fn he(spec: &str, as_json: bool, threads: Option<usize>, verify: bool) -> Result<()> {
    let model = pi_models::Model::resolve(spec).with_context(|| format!("network {spec:?}"))?;
    let layers = pi_bench::he::network_layers(&model.network);
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("thread pool")?;
    }
    eprintln!("offline HE for {} linear layers of {spec} on {} threads ...", layers.len(), rayon::current_num_threads());
    let r = pi_bench::he::run_offline_linear(&layers, rand::random(), verify).context("HE run")?;
    if as_json {
        let layers: Vec<_> = r.layers.iter().map(|l| json!({
            "name": l.name,
            "shape": format!("{:?}", l.shape),
            "seconds": l.seconds,
            "client_seconds": l.client_seconds,
            "server_seconds": l.server_seconds,
            "bytes_client_to_server": l.bytes_client_to_server,
            "bytes_server_to_client": l.bytes_server_to_client,
            "products": l.products,
            "macs": l.macs,
            "noise_margin_bits": l.noise_margin_bits,
            "hiding_bits": l.hiding_bits,
        })).collect();
        println!("{}", serde_json::to_string_pretty(&json!({
            "spec": spec,
            "threads": rayon::current_num_threads(),
            "verified": verify,
            "seconds": r.seconds,
            "bytes_client_to_server": r.bytes_client_to_server,
            "bytes_server_to_client": r.bytes_server_to_client,
            "products": r.products,
            "inference_hiding_bits": r.inference_hiding_bits,
            "layers": layers,
        }))?);
        return Ok(());
    }
    println!("{:<20} {:>9} {:>9} {:>11} {:>11} {:>7} {:>3} {:>6}", "layer", "client s", "server s", "up KB", "down KB", "ct×pt", "G", "hide");
    for l in &r.layers {
        println!("{:<20} {:>9.3} {:>9.3} {:>11.1} {:>11.1} {:>7} {:>3} {:>6}", l.name, l.client_seconds, l.server_seconds,
            l.bytes_client_to_server as f64 / 1e3, l.bytes_server_to_client as f64 / 1e3, l.products, l.tiling.1, l.hiding_bits);
    }
    println!("total: {:.2} s, {:.1} MB up, {:.1} MB down, {} ct×pt products{}", r.seconds,
        r.bytes_client_to_server as f64 / 1e6, r.bytes_server_to_client as f64 / 1e6, r.products,
        if verify { ", every share verified" } else { "" });
    println!("weights hidden to statistical distance 2^-{:.1} per inference (per coefficient: 2^-hide each)",
        r.inference_hiding_bits);
    Ok(())
}
