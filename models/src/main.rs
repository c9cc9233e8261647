//! `pi-models`: count ReLUs and MACs, make random weights, run plaintext
//! inference, reshape networks. This file only parses arguments and prints;
//! the work is in the `pi_models` library.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use pi_models::Model;
use pi_models::fixed::RingParams;
use pi_models::predict::Prediction;
use pi_models::reshape::{Budget, Order, Request};
use pi_models::weights::init_weights;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pi-models",
    version,
    about = "Network specs, ReLU/MAC counts, weights and plaintext inference"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// ReLUs, identity positions and MACs per layer and per stage.
    Stats {
        /// Preset (`resnet18`, `hrn-5x5x3x`, ...), `αxβxγx(m=..,phi=..,classes=..,input=..,channels=..)`, or a model file.
        spec: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write seeded random weights (safetensors, PyTorch names).
    Init {
        spec: String,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// Overwrite --out if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Run plaintext inference on a .npy float32 (C, H, W) input.
    Infer {
        spec: String,
        /// Weight file; optional when the model file names one.
        #[arg(long)]
        weights: Option<PathBuf>,
        #[arg(long)]
        input: PathBuf,
        /// Fixed-point inference over Z_2^l (the protocol's oracle) instead of f64.
        #[arg(long)]
        fixed: bool,
        #[arg(long)]
        json: bool,
        /// Ring bits l (with --fixed).
        #[arg(long, default_value_t = RingParams::DEFAULT_BITS)]
        ring_bits: u32,
        /// Fractional bits f (with --fixed).
        #[arg(long, default_value_t = RingParams::DEFAULT_FRAC)]
        frac_bits: u32,
    },
    /// DeepReShape: derive HybReNet multipliers from a ReLU criticality order, and
    /// (with --relu-budget) cull/thin variants that meet a ReLU budget.
    Reshape(ReshapeArgs),
}

#[derive(clap::Args)]
struct ReshapeArgs {
    /// Stagewise ReLU criticality order, most critical first, e.g. 'S3>S2>S4>S1' (quote it in a shell).
    #[arg(long)]
    order: String,
    /// Blocks per stage a-b-c-d.
    #[arg(long, default_value = "2-2-2-2")]
    phi: String,
    /// Smallest multiplier: every stage grows its channels at least this much.
    #[arg(long, default_value_t = 2)]
    min_growth: usize,
    /// Largest multiplier.
    #[arg(long, default_value_t = 8)]
    max_multiplier: usize,
    /// Base width m of the derived networks.
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// Input side H (= W).
    #[arg(long, default_value_t = 32)]
    input: usize,
    #[arg(long, default_value_t = 100)]
    classes: usize,
    /// Input channels.
    #[arg(long, default_value_t = 3)]
    channels: usize,
    /// List cull/thin variants with at most this many ReLUs.
    #[arg(long)]
    relu_budget: Option<u64>,
    /// Base network for --relu-budget (spec or unmasked model file) instead of the derived shapes.
    #[arg(long, requires = "relu_budget", conflicts_with_all = ["phi", "min_growth", "max_multiplier", "m", "input", "classes", "channels"])]
    from: Option<String>,
    /// Also try these smaller base widths m (comma-separated) in the budget search.
    #[arg(long, value_delimiter = ',', requires = "relu_budget")]
    reduce_m: Vec<usize>,
    /// List (and write) only the variants on the ReLU/MAC Pareto front.
    #[arg(long, requires = "relu_budget")]
    pareto_only: bool,
    /// Write every listed network as a model file DIR/NAME.toml.
    #[arg(long)]
    write_dir: Option<PathBuf>,
    /// Write one listed network as a model file (see --pick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Name of the network to write with --out; default: the first listed
    /// (for budgets the Pareto variant with the most ReLUs).
    #[arg(long, requires = "out")]
    pick: Option<String>,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`pi-models stats resnet18 | head -1`):
        // stop quietly, as a tool killed by SIGPIPE would. Only a bare io::Error is
        // a failed write to stdout; file errors carry a context or a library error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line, whatever RUST_BACKTRACE says; stderr may be closed too.
            let _ = writeln!(std::io::stderr(), "pi-models: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `: `-separated; a cause whose text the
/// previous message already shows (an io::Error behind "cannot access PATH: ...")
/// is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if text.contains(&msg) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&msg);
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ")
}

fn run(cmd: Cmd, out: &mut impl Write) -> Result<()> {
    match cmd {
        Cmd::Stats { spec, json } => {
            let stats = Model::resolve(&spec)?.network.stats();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?;
            } else {
                write!(out, "{stats}")?;
            }
        }
        Cmd::Init {
            spec,
            seed,
            out: path,
            force,
        } => {
            // Checked before the (possibly long) generation; create_new below closes the race.
            if !force && path.symlink_metadata().is_ok() {
                bail!("{} exists; pass --force to overwrite it", path.display());
            }
            let model = Model::resolve(&spec)?;
            let bytes = init_weights(&model.network, seed)?;
            write_file(&path, &bytes, force)?;
            writeln!(
                out,
                "wrote {} ({} bytes) for {}",
                path.display(),
                bytes.len(),
                model.network.spec
            )?;
        }
        Cmd::Infer {
            spec,
            weights,
            input,
            fixed,
            json,
            ring_bits,
            frac_bits,
        } => {
            let model = Model::resolve(&spec)?;
            let folded = model.load_weights(weights.as_deref())?;
            let x = model.load_input(&input)?;
            let prediction = if fixed {
                Prediction::fixed(&model, &folded, &x, RingParams::new(ring_bits, frac_bits)?)?
            } else {
                if ring_bits != RingParams::DEFAULT_BITS || frac_bits != RingParams::DEFAULT_FRAC {
                    bail!("--ring-bits/--frac-bits only apply with --fixed");
                }
                Prediction::float(&model, &folded, &x)
            };
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&prediction.to_json())?
                )?;
            } else {
                write!(out, "{prediction}")?;
            }
        }
        Cmd::Reshape(a) => {
            let request = Request {
                order: Order::parse(&a.order)?,
                template: Request::template(a.m, &a.phi, a.classes, a.input, a.channels)?,
                min_growth: a.min_growth,
                max_multiplier: a.max_multiplier,
                budget: a.relu_budget.map(|relus| Budget {
                    relus,
                    from: a.from.clone(),
                    reduce_m: a.reduce_m.clone(),
                    pareto_only: a.pareto_only,
                }),
            };
            let outcome = request.run()?;
            let mut written = Vec::new();
            if let Some(dir) = &a.write_dir {
                written.extend(outcome.write_dir(dir)?);
            }
            if let Some(path) = &a.out {
                written.push(outcome.write_one(path, a.pick.as_deref())?);
            }
            if a.json {
                let v = outcome.to_json(&written);
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                write!(out, "{outcome}")?;
                for p in &written {
                    writeln!(out, "wrote {}", p.display())?;
                }
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path`, refusing to replace an existing file unless `force`.
fn write_file(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    if force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let result = open.open(path).and_then(|mut f| f.write_all(bytes));
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} exists; pass --force to overwrite it", path.display())
        }
        r => r.with_context(|| format!("cannot write {}", path.display())),
    }
}
