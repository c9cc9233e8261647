//! `pi-bench`: measurements of the runtime's building blocks and phases.
//!
//! - `pi-bench primitives [--json] [--repeat N] [--garbling half-gates,three-halves]`:
//!   garbled circuits (each scheme side by side), OT extension, base OT and
//!   TLS bulk throughput on loopback, both parties in one process.
//! - `pi-bench he SPEC [--json] [--threads N] [--verify] [--lifetime-inferences Q] [--repeat N]`:
//!   the offline linear (HE) step for every linear layer of a network, with
//!   the weights' hiding per inference and over Q inferences.
//! - `pi-bench e2e SPEC [--weights W] [--input X.npy] [--seed S] [--repeat N] [--warmup W] [--relu gc|ot] [--link RATE,DELAY] [--max-storage B] [--max-memory B] [--storage-dir DIR] [--json]`:
//!   private inferences on fresh sessions, a pi-server process and the
//!   pi-client library over loopback TLS, checked against the fixed-point
//!   oracle ([`pi_bench::e2e`]).
//! - `pi-bench load SPEC... --rate R[,R...] --requests N [--repeat N] [--clients K] [--pool-bytes B] [--link L] [--seed S] [--json] [--plot FILE]`:
//!   latency under Poisson arrivals, a pi-server process and K pooled
//!   clients, or a running server with `--connect ADDR --tls DIR` ([`pi_bench::load`]).
//! - `pi-bench compare SPEC SPEC... [--repeat N] [--json] [--plot-dir DIR]`: ReLUs, MACs,
//!   offline/online cost and sustainable rate of several networks, ranked
//!   only where intervals separate, with plots ([`pi_bench::compare`]).
//!
//! With `--repeat N`, each figure is the median of N independent
//! measurements with a 95% interval ([`pi_bench::stats`]); CPU time and the
//! machine's load are reported beside wall time ([`pi_bench::machine`]).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use pi_bench::load::args::{Bar, LoadArgs};
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
    Primitives(PrimitivesArgs),
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
        /// Independent runs; JSON adds a `summary` of the times.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeat: u32,
        /// Lifetime budget the hiding is reported over: inferences served
        /// with one weight set, as an integer or `2^K`.
        #[arg(long, default_value = "2^30", value_parser = parse_inferences)]
        lifetime_inferences: u64,
    },
    /// Private inference end to end, on fresh sessions: a pi-server process
    /// and pi-client over loopback TCP + TLS 1.3.
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
        /// Measured inferences, one fresh connection and session each (the
        /// last is reported in full, all in the summary).
        #[arg(long, alias = "inferences", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeat: u32,
        /// Inferences run first and discarded (default: 1 with --repeat above 1, else 0).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
        warmup: Option<u32>,
        /// Emulate a link on the connection, both directions: `RATE,DELAY`
        /// such as `1gbit,0.5ms` or `100mbit,20ms` (one-way delay).
        #[arg(long, value_name = "RATE,DELAY")]
        link: Option<pi_protocol::transport::Link>,
        /// Activation protocol: `gc` (garbled circuits) or `ot` (OT-based comparison).
        #[arg(long, default_value = "gc")]
        relu: pi_protocol::ReluMode,
        #[command(flatten)]
        budget: pi_client::cli::BudgetArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Latency under load: Poisson arrivals, a pi-server process, a pooled client.
    Load {
        /// Networks (presets, `AxBxCx(...)` or model files); one curve each.
        /// With --connect: none (the server's), or the one it must serve.
        #[arg(required_unless_present = "connect")]
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
    /// The scaling study: every network in every ReLU mode end to end
    /// (fresh sessions, per-party peak memory), each cost fitted to
    /// a · ReLUs + b · MACs + c.
    Scale {
        /// Networks (presets, `AxBxCx(...)`, `resnet18(input=64,classes=200)`
        /// or model files).
        #[arg(required = true)]
        specs: Vec<String>,
        /// Activation protocols: `gc`, `ot` or `gc,ot`.
        #[arg(long, value_delimiter = ',', default_value = "gc,ot")]
        relu: Vec<pi_protocol::ReluMode>,
        /// Measured inferences per network and mode, one fresh session each.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeat: u32,
        /// Inferences run first and discarded (default: 1 with --repeat above 1, else 0).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
        warmup: Option<u32>,
        /// Seed of the random weights and inputs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Emulate a link on the connection, both directions (`1gbit,0.5ms`, `100mbit,20ms`).
        #[arg(long, value_name = "RATE,DELAY")]
        link: Option<pi_protocol::transport::Link>,
        #[command(flatten)]
        budget: pi_client::cli::BudgetArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Write MODE_relus_vs_online.svg and MODE_macs_vs_offline.svg here.
        #[arg(long)]
        plot_dir: Option<PathBuf>,
    },
    /// The server process of `e2e`, `load` and `compare`: the pi-server
    /// command line, stopping when standard input closes
    /// ([`pi_bench::server_process`]).
    #[command(hide = true)]
    Server(Box<ServerChild>),
}

/// Options of `pi-bench primitives`.
#[derive(clap::Args)]
struct PrimitivesArgs {
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
    /// Repetitions inside one measurement (the best or median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    reps: u32,
    /// Independent measurements; above 1, JSON adds a `summary` per figure.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// MiB moved over loopback TLS (and again over TCP).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16384))]
    tls_mib: u32,
    /// Garbling schemes to measure, side by side: `half-gates`,
    /// `three-halves` (the protocol's default) or both.
    #[arg(long, value_delimiter = ',', default_value = "half-gates,three-halves")]
    garbling: Vec<pi_protocol::gc::Scheme>,
}

#[derive(clap::Args)]
struct ServerChild {
    #[command(flatten)]
    serve: pi_server::cli::ServeArgs,
    /// Print every inference's server report as a JSON line.
    #[arg(long)]
    reports: bool,
}

/// Warm-up runs: as given, else one when there are several measurements.
fn warmup(given: Option<u32>, repeat: u32) -> usize {
    given.map_or(usize::from(repeat > 1), |w| w as usize)
}

/// Tells stderr, too, when the machine was busy (JSON users see it there).
fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("{w}");
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Primitives(args) => primitives(&args),
        Command::He {
            spec,
            json,
            threads,
            verify,
            repeat,
            lifetime_inferences,
        } => he(
            &spec,
            json,
            threads,
            verify,
            repeat as usize,
            lifetime_inferences,
        ),
        Command::E2e {
            spec,
            weights,
            input,
            seed,
            repeat,
            warmup: w,
            relu,
            link,
            budget,
            json,
        } => {
            let opts = pi_bench::e2e::E2eOptions {
                budget,
                spec,
                weights,
                input,
                seed,
                repeat: repeat as usize,
                warmup: warmup(w, repeat),
                relu,
                link,
                server_exe: None,
            };
            eprintln!(
                "running {} + {} warm-up inference(s) of {} over loopback TLS, ReLU mode {} ...",
                opts.repeat, opts.warmup, opts.spec, opts.relu
            );
            let r = pi_bench::e2e::run(&opts)?;
            if json {
                warn(r.machine.warning.as_slice());
            }
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
                warn(&r.warnings());
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
                warn(&r.warnings());
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
        Command::Scale {
            specs,
            relu,
            repeat,
            warmup: w,
            seed,
            link,
            budget,
            json,
            plot_dir,
        } => {
            let opts = pi_bench::scale::ScaleOptions {
                specs,
                relu,
                repeat: repeat as usize,
                warmup: warmup(w, repeat),
                seed,
                link,
                budget,
            };
            let r = pi_bench::scale::run(&opts, &mut |s| eprintln!("{s} ..."))?;
            let plots = match &plot_dir {
                Some(dir) => pi_bench::scale::plots(&r, dir)?,
                None => Vec::new(),
            };
            if json {
                for x in &r.rows {
                    warn(x.machine.warning.as_slice());
                }
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", pi_bench::scale::table(&r));
                for p in plots {
                    println!("plot: {}", p.display());
                }
            }
            Ok(())
        }
        Command::Server(args) => {
            let ServerChild { serve, reports } = *args;
            pi_server::cli::init_logging(serve.verbose);
            pi_server::cli::runtime()?
                .block_on(pi_bench::server_process::serve_child(serve, reports))
        }
    }
}

fn primitives(args: &PrimitivesArgs) -> Result<()> {
    let PrimitivesArgs {
        json: as_json,
        gc_log2,
        ot_log2,
        silent_log2,
        reps,
        repeat,
        tls_mib,
        ref garbling,
    } = *args;
    let (reps, repeat, tls_mib) = (reps as usize, repeat as usize, tls_mib as usize);
    let mut schemes: Vec<pi_protocol::gc::Scheme> = Vec::new();
    for s in garbling {
        if !schemes.contains(s) {
            schemes.push(*s);
        }
    }
    if schemes.is_empty() {
        bail!("--garbling needs at least one scheme");
    }
    // `gc`: the protocol's scheme if measured, else the first one;
    // `garbling`: every measured scheme by name.
    let main = schemes
        .iter()
        .position(|s| *s == pi_protocol::gc::Scheme::DEFAULT)
        .unwrap_or(0);
    let mark = pi_bench::machine::Mark::now();
    let mut runs = Vec::with_capacity(repeat);
    let mut last = None;
    for i in 0..repeat {
        if repeat > 1 {
            eprintln!("measurement {} of {repeat}", i + 1);
        }
        let mut gcs = Vec::new();
        for scheme in &schemes {
            eprintln!("garbling and evaluating 2^{gc_log2} ReLUs ({scheme}) ...");
            gcs.push(pi_bench::gc::measure(
                pi_protocol::gc::ActivationParams::DEFAULT,
                *scheme,
                1 << gc_log2,
                reps,
            ));
        }
        eprintln!("running 2^{ot_log2} IKNP and 2^{silent_log2} silent OT extensions ...");
        let ot =
            pi_bench::ot::measure(1 << ot_log2, 1 << silent_log2, reps).context("OT benchmark")?;
        eprintln!("moving {tls_mib} MiB over loopback TLS and TCP ...");
        let tls = pi_bench::tls::measure_loopback_throughput(tls_mib << 20, 1 << 20)
            .context("TLS benchmark")?;
        let by_name: serde_json::Map<String, serde_json::Value> = gcs
            .iter()
            .map(|g| Ok((g.scheme.clone(), serde_json::to_value(g)?)))
            .collect::<Result<_>>()?;
        let v = json!({ "gc": gcs[main], "garbling": by_name, "ot": ot, "tls": tls });
        runs.push(v.clone());
        last = Some((v, gcs, ot, tls));
    }
    let machine = mark.until_now();
    let (mut v, gcs, ot, tls) = last.context("no measurement")?;
    if as_json {
        warn(machine.warning.as_slice());
        with_summary(&mut v, &runs, &machine);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for gc in &gcs {
        println!(
            "garbled circuits, {} (l = {}, f = {}, {} activations per layer, one thread)",
            gc.scheme, gc.l, gc.f, gc.layer_size
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
    }
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
    print!("{}", summary_text(&runs, &machine));
    Ok(())
}

/// Adds `repeat`, `summary` (every numeric field over the runs, see
/// [`pi_bench::stats::summarise_fields`]) and `machine` to a JSON object.
fn with_summary(
    v: &mut serde_json::Value,
    runs: &[serde_json::Value],
    machine: &pi_bench::machine::MachineLoad,
) {
    if let Some(o) = v.as_object_mut() {
        o.insert("repeat".into(), runs.len().into());
        o.insert("summary".into(), pi_bench::stats::summarise_fields(runs));
        o.insert("machine".into(), json!(machine));
    }
}

/// Text after a measurement's own lines: with several runs, the median and
/// 95% interval of every figure that varied; then the machine's load.
fn summary_text(runs: &[serde_json::Value], machine: &pi_bench::machine::MachineLoad) -> String {
    fn walk(v: &serde_json::Value, path: &str, out: &mut String) {
        let Some(o) = v.as_object() else { return };
        if let Ok(s) = serde_json::from_value::<pi_bench::stats::Summary>(v.clone()) {
            if s.min != s.max {
                out.push_str(&format!("  {path:<44} {} (n = {})\n", s.show(3), s.n));
            }
            return;
        }
        for (k, x) in o {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            walk(x, &p, out);
        }
    }
    let mut s = String::new();
    if runs.len() > 1 {
        s.push_str(&format!(
            "over {} measurements: median [95% interval for the median, {}]\n",
            runs.len(),
            pi_bench::stats::CI_METHOD
        ));
        walk(&pi_bench::stats::summarise_fields(runs), "", &mut s);
    }
    s.push_str(&format!("machine: {}\n", machine.describe()));
    if let Some(w) = &machine.warning {
        s.push_str(w);
        s.push('\n');
    }
    s
}

fn parse_inferences(text: &str) -> std::result::Result<u64, String> {
    pi_protocol::he::hiding::parse_inferences(text).map_err(|e| e.to_string())
}

fn he(
    spec: &str,
    as_json: bool,
    threads: Option<usize>,
    verify: bool,
    repeat: usize,
    lifetime: u64,
) -> Result<()> {
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
    let mark = pi_bench::machine::Mark::now();
    let mut runs = Vec::with_capacity(repeat);
    let mut last = None;
    for _ in 0..repeat {
        let r =
            pi_bench::he::run_offline_linear(&layers, rand::random(), verify).context("HE run")?;
        runs.push(json!({
            "seconds": r.seconds,
            "client_seconds": r.layers.iter().map(|l| l.client_seconds).sum::<f64>(),
            "server_seconds": r.layers.iter().map(|l| l.server_seconds).sum::<f64>(),
        }));
        last = Some(r);
    }
    let machine = mark.until_now();
    let r = last.context("no run")?;
    if as_json {
        warn(machine.warning.as_slice());
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
                    "sent_coefficients": l.sent_coefficients,
                })
            })
            .collect();
        let mut v = json!({
                "spec": spec,
                "threads": rayon::current_num_threads(),
                "verified": verify,
                "seconds": r.seconds,
                "bytes_client_to_server": r.bytes_client_to_server,
                "bytes_server_to_client": r.bytes_server_to_client,
                "products": r.products,
                "sent_coefficients": r.hiding.coefficients(),
                "inference_hiding_bits": r.hiding.inference_bits(),
                "lifetime_hiding_bits": r.hiding.lifetime_bits(lifetime),
                "lifetime_inferences": lifetime,
                "max_lifetime_inferences_log2": r.hiding.max_inferences_log2(
                    pi_protocol::he::STATISTICAL_SECURITY_BITS
                ),
                "decryption_failure_log2": r.hiding.decryption_failure_log2(),
                "layers": layers,
        });
        with_summary(&mut v, &runs, &machine);
        println!("{}", serde_json::to_string_pretty(&v)?);
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
        "weights hidden to statistical distance 2^-{:.1} per inference ({} coefficients, \
         2^-hide each) and 2^-{:.1} over {} inferences with the same weights; \
         decryption failure below 2^{:.1} per inference",
        r.hiding.inference_bits(),
        r.hiding.coefficients(),
        r.hiding.lifetime_bits(lifetime),
        lifetime,
        r.hiding.decryption_failure_log2()
    );
    print!("{}", summary_text(&runs, &machine));
    Ok(())
}
