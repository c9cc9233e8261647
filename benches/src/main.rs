//! `pi-bench`: measurements of the runtime's building blocks and phases.
//!
//! - `pi-bench primitives [--json]`: garbled circuits, OT extension, base OT
//!   and TLS bulk throughput on loopback, both parties in one process.
//! - `pi-bench he SPEC [--json] [--threads N] [--verify]`: the offline linear
//!   (HE) step for every linear layer of a network.
//! - `pi-bench e2e SPEC [--weights W] [--input X.npy] [--seed S] [--inferences N] [--relu gc|ot] [--link RATE,DELAY] [--json]`:
//!   one private inference, pi-server and pi-client over loopback TLS, checked
//!   against the fixed-point oracle.
//! - `pi-bench load SPEC... --rate R[,R...] --requests N [--pool-bytes B] [--link L] [--seed S] [--json] [--plot FILE]`:
//!   latency under Poisson arrivals, a pi-server process and a pooled client ([`pi_bench::load`]).
//! - `pi-bench compare SPEC SPEC... [--json] [--plot-dir DIR]`: ReLUs, MACs,
//!   offline/online cost and sustainable rate of several networks, with plots.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use pi_bench::load::Rate;
use pi_protocol::transport::Link;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pi-bench",
    about = "Benchmarks of the private inference runtime"
)]
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
        /// Silent COTs per run (and the batch its bytes are amortised over),
        /// as a power of two.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(16..=26))]
        silent_log2: u32,
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
        /// Activation protocol: `gc` (garbled circuits) or `ot` (OT-based comparison).
        #[arg(long, default_value = "gc")]
        relu: pi_protocol::ReluMode,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Latency under load: Poisson arrivals, a pi-server process, a pooled client.
    Load {
        /// Networks (presets, `AxBxCx(...)` or model files); one curve each.
        #[arg(required = true)]
        specs: Vec<String>,
        #[command(flatten)]
        load: LoadArgs,
        /// Write an SVG of mean and p99 latency against arrival rate.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Several networks side by side: ReLUs, MACs, phase costs, sustainable rate.
    Compare {
        /// Networks (presets, `AxBxCx(...)` or model files).
        #[arg(required_unless_present = "from", num_args = 2..)]
        specs: Vec<String>,
        /// Instead of measuring, compare the results of earlier
        /// `pi-bench load --json` runs (one model or more per file).
        #[arg(long, num_args = 1.., conflicts_with = "specs")]
        from: Vec<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
        /// Write relus_vs_online.svg, macs_vs_offline.svg and latency_vs_rate.svg here.
        #[arg(long)]
        plot_dir: Option<PathBuf>,
    },
    /// The server process of `load` and `compare`: the pi-server command line,
    /// stopping when standard input closes.
    #[command(hide = true)]
    Server(pi_server::cli::ServeArgs),
}

#[derive(clap::Args)]
struct LoadArgs {
    /// Arrival rates: requests per second (`2.5`) or multiples of the model's
    /// unloaded capacity, 1 / unloaded latency (`0.5x`).
    #[arg(long, value_delimiter = ',')]
    rate: Vec<Rate>,
    /// Requests per rate.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    requests: u32,
    /// Client pool budget: bytes of preprocessed material (suffixes K, M, G,
    /// KiB, MiB, GiB).
    #[arg(long, default_value = "16GiB", value_parser = parse_bytes)]
    pool_bytes: u64,
    /// Client pool entries at most (the server's --server-pool-max applies too).
    #[arg(long)]
    pool_count: Option<usize>,
    /// The server's per-session limit of preprocessed inferences (pi-server --pool-max).
    #[arg(long, default_value_t = pi_protocol::session::DEFAULT_MAX_PENDING,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    server_pool_max: u32,
    /// Fill the pool before each rate's first arrival (default: start empty).
    #[arg(long)]
    prefill: bool,
    /// Emulated link on the client's connection, both directions (`1gbit,0.5ms`, `100mbit,20ms`).
    #[arg(long, value_name = "RATE,DELAY")]
    link: Option<Link>,
    /// Seed of weights, inputs and arrival times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Activation protocols: `gc`, `ot` or `gc,ot` (each model in each mode, side by side).
    #[arg(long, value_delimiter = ',', default_value = "gc")]
    relu: Vec<pi_protocol::ReluMode>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl LoadArgs {
    fn options(&self, specs: Vec<String>) -> pi_bench::load::LoadOptions {
        pi_bench::load::LoadOptions {
            specs,
            rates: self.rate.clone(),
            requests: self.requests as usize,
            pool_bytes: self.pool_bytes,
            pool_count: self.pool_count.unwrap_or(usize::MAX),
            server_pool_max: self.server_pool_max,
            prefill: self.prefill,
            seed: self.seed,
            link: self.link,
            relu: self.relu.clone(),
            server_exe: None,
            progress: std::io::stderr().is_terminal(),
        }
    }
}

/// Bytes with an optional decimal (K, M, G) or binary (KiB, MiB, GiB) suffix.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        u => return Err(format!("unknown unit {u:?} in {s:?}")),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count"))?;
    let bytes = v * mult as f64;
    if !(bytes.is_finite() && (0.0..1.8e19).contains(&bytes)) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// The progress bar of `load` and `compare` (stderr, only on a terminal).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(show: bool) -> Self {
        let pb = if show {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg:<40} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Self(pb)
    }
}

impl pi_bench::load::Progress for Bar {
    fn stage(&mut self, name: &str, len: u64) {
        self.0.set_length(len);
        self.0.set_position(0);
        self.0.set_message(name.to_string());
    }
    fn step(&mut self) {
        self.0.inc(1);
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Primitives {
            json,
            gc_log2,
            ot_log2,
            silent_log2,
            reps,
            tls_mib,
        } => primitives(
            json,
            gc_log2,
            ot_log2,
            silent_log2,
            reps as usize,
            tls_mib as usize,
        ),
        Command::He {
            spec,
            json,
            threads,
            verify,
        } => he(&spec, json, threads, verify),
        Command::E2e {
            spec,
            weights,
            input,
            seed,
            inferences,
            relu,
            link,
            json,
        } => {
            let opts = pi_bench::e2e::E2eOptions {
                spec,
                weights,
                input,
                seed,
                inferences: inferences as usize,
                relu,
                link,
            };
            eprintln!(
                "running {} inference(s) of {} over loopback TLS, ReLU mode {} ...",
                opts.inferences, opts.spec, opts.relu
            );
            let r = pi_bench::e2e::run(&opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r.to_json())?);
            } else {
                print!("{}", r.table());
            }
            Ok(())
        }
        Command::Load { specs, load, plot } => {
            let opts = load.options(specs);
            let mut bar = Bar::new(opts.progress);
            let r = pi_bench::load::run(&opts, &mut bar);
            bar.0.finish_and_clear();
            let r = r?;
            if let Some(p) = &plot {
                pi_bench::compare::plot_latency(&r, p)?;
            }
            if load.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", pi_bench::compare::load_table(&r));
                if let Some(p) = &plot {
                    println!("plot: {}", p.display());
                }
            }
            Ok(())
        }
        Command::Compare {
            specs,
            from,
            load,
            plot_dir,
        } => {
            let r = if from.is_empty() {
                let opts = load.options(specs);
                let mut bar = Bar::new(opts.progress);
                let r = pi_bench::load::run(&opts, &mut bar);
                bar.0.finish_and_clear();
                r?
            } else {
                pi_bench::load::LoadResult::merge(&from)?
            };
            let plots = match &plot_dir {
                Some(dir) => pi_bench::compare::plots(&r, dir)?,
                None => Vec::new(),
            };
            if load.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&pi_bench::compare::json(&r))?
                );
            } else {
                print!("{}", pi_bench::compare::table(&r));
                for p in plots {
                    println!("plot: {}", p.display());
                }
            }
            Ok(())
        }
        Command::Server(args) => {
            pi_server::cli::init_logging(args.verbose);
            pi_server::cli::runtime()?.block_on(pi_client::demo::serve_child(args))
        }
    }
}

fn primitives(
    as_json: bool,
    gc_log2: u32,
    ot_log2: u32,
    silent_log2: u32,
    reps: usize,
    tls_mib: usize,
) -> Result<()> {
    eprintln!("garbling and evaluating 2^{gc_log2} ReLUs ...");
    let gc = pi_bench::gc::measure(
        pi_protocol::gc::ActivationParams::DEFAULT,
        1 << gc_log2,
        reps,
    );
    eprintln!("running 2^{ot_log2} IKNP and 2^{silent_log2} silent OT extensions ...");
    let ot = pi_bench::ot::measure(1 << ot_log2, 1 << silent_log2, reps).context("OT benchmark")?;
    eprintln!("moving {tls_mib} MiB over loopback TLS and TCP ...");
    let tls = pi_bench::tls::measure_loopback_throughput(tls_mib << 20, 1 << 20)
        .context("TLS benchmark")?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "gc": gc, "ot": ot, "tls": tls }))?
        );
        return Ok(());
    }
    println!(
        "garbled circuits (l = {}, f = {}, {} activations per layer, one thread)",
        gc.l, gc.f, gc.layer_size
    );
    println!(
        "  ReLU: {} AND gates, {} table bytes, {} B client storage",
        gc.relu_and_gates, gc.relu_bytes, gc.relu_client_storage_bytes
    );
    println!(
        "  truncation only: {} AND gates, {} table bytes",
        gc.trunc_and_gates, gc.trunc_bytes
    );
    println!(
        "  garble {:.1} ns/AND ({:.2} µs/ReLU), evaluate {:.1} ns/AND ({:.2} µs/ReLU)",
        gc.garble_ns_per_and, gc.relu_garble_us, gc.eval_ns_per_and, gc.relu_eval_us
    );
    println!(
        "oblivious transfer ({} OTs, both parties in one process)",
        ot.n
    );
    println!("  base OT (128): {:.1} ms", ot.base_ot_ms);
    println!(
        "  IKNP random {:.2} M OT/s, correlated {:.2} M OT/s, chosen {:.2} M OT/s",
        ot.iknp_ots_per_second / 1e6,
        ot.iknp_correlated_ots_per_second / 1e6,
        ot.iknp_chosen_ots_per_second / 1e6
    );
    println!(
        "  silent random-choice COT {:.2} M OT/s, {:.4} B/OT at 2^{silent_log2} (setup {:.0} ms, {} B)",
        ot.silent_ots_per_second / 1e6,
        ot.silent_bytes_per_ot,
        ot.silent_setup_ms,
        ot.silent_setup_bytes
    );
    println!("transport (loopback, 1 MiB frames)");
    println!(
        "  TLS 1.3 {:.2} GB/s, plain TCP {:.2} GB/s, mutual-TLS handshake {:.1} ms",
        tls.bulk_bytes_per_second / 1e9,
        tls.tcp_bytes_per_second / 1e9,
        tls.handshake_seconds * 1e3
    );
    Ok(())
}

fn he(spec: &str, as_json: bool, threads: Option<usize>, verify: bool) -> Result<()> {
    let model = pi_models::Model::resolve(spec).with_context(|| format!("network {spec:?}"))?;
    let layers = pi_bench::he::network_layers(&model.network);
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("thread pool")?;
    }
    eprintln!(
        "offline HE for {} linear layers of {spec} on {} threads ...",
        layers.len(),
        rayon::current_num_threads()
    );
    let r = pi_bench::he::run_offline_linear(&layers, rand::random(), verify).context("HE run")?;
    if as_json {
        let layers: Vec<_> = r
            .layers
            .iter()
            .map(|l| {
                json!({
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
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "spec": spec,
                "threads": rayon::current_num_threads(),
                "verified": verify,
                "seconds": r.seconds,
                "bytes_client_to_server": r.bytes_client_to_server,
                "bytes_server_to_client": r.bytes_server_to_client,
                "products": r.products,
                "inference_hiding_bits": r.inference_hiding_bits,
                "layers": layers,
            }))?
        );
        return Ok(());
    }
    println!(
        "{:<20} {:>9} {:>9} {:>11} {:>11} {:>7} {:>3} {:>6}",
        "layer", "client s", "server s", "up KB", "down KB", "ct×pt", "G", "hide"
    );
    for l in &r.layers {
        println!(
            "{:<20} {:>9.3} {:>9.3} {:>11.1} {:>11.1} {:>7} {:>3} {:>6}",
            l.name,
            l.client_seconds,
            l.server_seconds,
            l.bytes_client_to_server as f64 / 1e3,
            l.bytes_server_to_client as f64 / 1e3,
            l.products,
            l.tiling.1,
            l.hiding_bits
        );
    }
    println!(
        "total: {:.2} s, {:.1} MB up, {:.1} MB down, {} ct×pt products{}",
        r.seconds,
        r.bytes_client_to_server as f64 / 1e6,
        r.bytes_server_to_client as f64 / 1e6,
        r.products,
        if verify { ", every share verified" } else { "" }
    );
    println!(
        "weights hidden to statistical distance 2^-{:.1} per inference (per coefficient: 2^-hide each)",
        r.inference_hiding_bits
    );
    Ok(())
}
