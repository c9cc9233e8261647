//! `pi-models`: count ReLUs and MACs, make random weights, run plaintext inference.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use pi_models::fixed::{RingParams, forward_fixed};
use pi_models::float::forward_float;
use pi_models::network::Network;
use pi_models::network::Stats;
use pi_models::reshape::{self, Order};
use pi_models::weights::init_weights;
use pi_models::{Model, NetSpec};
use std::path::PathBuf;

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

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Stats { spec, json } => {
            let model = Model::resolve(&spec)?;
            let stats = model.network.stats();
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print_table(&stats);
            }
        }
        Cmd::Init { spec, seed, out } => {
            let model = Model::resolve(&spec)?;
            let bytes = init_weights(&model.network, seed)?;
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "wrote {} ({} bytes) for {}",
                out.display(),
                bytes.len(),
                model.network.spec
            );
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
            let (logits, logits_fixed) = if fixed {
                let ring = RingParams::new(ring_bits, frac_bits)?;
                let q = model.quantize(&folded, ring)?;
                let xq = model.quantize_input(&x, ring)?;
                let out = forward_fixed(&model.network, &q, &xq);
                let signed: Vec<i64> = out.iter().map(|&v| ring.to_signed(v)).collect();
                (
                    out.iter()
                        .map(|&v| ring.to_f64(v, 2 * ring.frac()))
                        .collect::<Vec<f64>>(),
                    Some(signed),
                )
            } else {
                if ring_bits != RingParams::DEFAULT_BITS || frac_bits != RingParams::DEFAULT_FRAC {
                    bail!("--ring-bits/--frac-bits only apply with --fixed");
                }
                let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                (forward_float(&model.network, &folded, &xf), None)
            };
            let class = argmax(&logits);
            if json {
                let mut v = serde_json::json!({ "class": class, "logits": logits });
                if let Some(lf) = logits_fixed {
                    v["logits_fixed"] = serde_json::json!(lf);
                    v["ring_bits"] = ring_bits.into();
                    v["frac_bits"] = frac_bits.into();
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (i, l) in logits.iter().enumerate() {
                    match &logits_fixed {
                        Some(lf) => println!("{i:>5} {l:>14.6} {:>16}", lf[i]),
                        None => println!("{i:>5} {l:>14.6}"),
                    }
                }
                println!("class {class}");
            }
        }
        Cmd::Reshape(args) => reshape(args)?,
    }
    Ok(())
}

fn reshape(a: ReshapeArgs) -> Result<()> {
    let order = Order::parse(&a.order)?;
    // The derivation runs unless --from names the base of a budget search.
    let derivation = if a.from.is_some() {
        None
    } else {
        let template = NetSpec::parse(&format!(
            "2x2x2x(m={},phi={},classes={},input={},channels={})",
            a.m, a.phi, a.classes, a.input, a.channels
        ))?;
        Some(reshape::derive(
            &order,
            &template,
            a.min_growth,
            a.max_multiplier,
        )?)
    };
    // (name, model-file text) of every listed network, for --write-dir / --out.
    let mut files: Vec<(String, String)> = Vec::new();
    let mut variants = None;
    if let Some(budget) = a.relu_budget {
        let (base_specs, normalization) = match &a.from {
            Some(text) => {
                let model = Model::resolve(text)?;
                (vec![model.network], model.normalization)
            }
            None => {
                let d = derivation.as_ref().context("no derivation")?;
                if d.results.is_empty() {
                    bail!(
                        "the order {order} has no integer solution with {} <= α, β, γ <= {}, so there is no network to reduce; widen the bounds or pass --from SPEC",
                        a.min_growth,
                        a.max_multiplier
                    );
                }
                let nets = d
                    .results
                    .iter()
                    .map(|r| Ok(Network::new(&NetSpec::parse(&r.spec)?)))
                    .collect::<Result<Vec<_>>>()?;
                (nets, None)
            }
        };
        let mut bases = Vec::new();
        for net in base_specs {
            let spec = net.spec.clone();
            bases.push(net);
            let mut tried = vec![spec.m];
            for &m in &a.reduce_m {
                if m >= spec.m {
                    bail!(
                        "--reduce-m {m} is not smaller than the base width m = {}",
                        spec.m
                    );
                }
                if !tried.contains(&m) {
                    tried.push(m);
                    bases.push(Network::new(&reshape::with_m(&spec, m)?));
                }
            }
        }
        let mut list = reshape::budget_variants(&bases, &order, budget)?;
        if a.pareto_only {
            list.retain(|v| v.pareto);
        }
        for v in &list {
            files.push((v.name.clone(), v.model_file(&order, normalization.as_ref())));
        }
        variants = Some((budget, list));
    } else if let Some(d) = &derivation {
        for r in &d.results {
            files.push((r.name.clone(), reshape::derived_model_file(r, &order)?));
        }
    }

    let mut written = Vec::new();
    if let Some(dir) = &a.write_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, text) in &files {
            let path = dir.join(format!("{name}.toml"));
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written.push(path);
        }
    }
    if let Some(out) = &a.out {
        let chosen = match &a.pick {
            Some(p) => files.iter().find(|(n, _)| n == p).with_context(|| {
                let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
                format!("--pick {p}: no such network (listed: {})", names.join(", "))
            })?,
            None if variants.is_none() && files.len() > 1 => {
                let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
                bail!(
                    "--out needs --pick NAME when several shapes are derived ({})",
                    names.join(", ")
                );
            }
            None => files
                .first()
                .context("--out: nothing to write (no network listed)")?,
        };
        std::fs::write(out, &chosen.1)
            .with_context(|| format!("cannot write {}", out.display()))?;
        written.push(out.clone());
    }

    if a.json {
        let mut v = serde_json::json!({ "order": order.to_string() });
        if let Some(d) = &derivation {
            v["inequalities"] = serde_json::to_value(&d.inequalities)?;
            v["min_growth"] = d.min_growth.into();
            v["max_multiplier"] = d.max_multiplier.into();
            v["m"] = d.m.into();
            v["phi"] = serde_json::to_value(d.phi)?;
            v["input"] = d.input.into();
            v["results"] = serde_json::to_value(&d.results)?;
        }
        if let Some((budget, list)) = &variants {
            v["relu_budget"] = (*budget).into();
            v["variants"] = serde_json::to_value(list)?;
        }
        v["written"] = serde_json::to_value(&written)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if let Some(d) = &derivation {
        print_derivation(d);
    }
    if let Some((budget, list)) = &variants {
        if derivation.is_some() {
            println!();
        }
        print_variants(&order, *budget, list);
    }
    for p in &written {
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn print_derivation(d: &reshape::Derivation) {
    let phi = d.phi.map(|p| p.to_string()).join("-");
    println!(
        "criticality order {} (most critical first), phi {phi}, input {}x{}, m {}",
        d.order, d.input, d.input, d.m
    );
    println!(
        "one layer of stage i holds m·H²·(1, α/4, αβ/16, αβγ/64) ReLUs and stage i has 2·φi such layers (stem left out)"
    );
    println!("inequalities (strict):");
    for q in &d.inequalities {
        println!("  S{} > S{}:  {}", q.more, q.less, q.text);
    }
    if d.results.is_empty() {
        println!(
            "no integer (α, β, γ) with {} <= α, β, γ <= {} satisfies these inequalities: the order {} cannot be realised in that range",
            d.min_growth, d.max_multiplier, d.order
        );
        return;
    }
    println!(
        "integer solutions with {} <= α, β, γ <= {}, smallest α for each (β, γ) (fewest MACs):",
        d.min_growth, d.max_multiplier
    );
    println!(
        "{:<9} {:>3} {:>3} {:>3} {:>6} {:<20} {:<32} {:>10} {:>14}",
        "name", "α", "β", "γ", "max α", "widths", "ReLUs per stage (stem in S1)", "ReLUs", "MACs"
    );
    for r in &d.results {
        let widths = r.widths.map(|w| w.to_string()).join("-");
        let per = r.relus_per_stage.map(|x| x.to_string()).join(" ");
        println!(
            "{:<9} {:>3} {:>3} {:>3} {:>6} {:<20} {:<32} {:>10} {:>14} ({:.1}M)",
            r.name,
            r.alpha,
            r.beta,
            r.gamma,
            r.max_alpha,
            widths,
            per,
            r.relus,
            r.macs,
            r.macs as f64 / 1e6
        );
    }
}

fn print_variants(order: &Order, budget: u64, list: &[reshape::Variant]) {
    let [.., least] = order.stages();
    println!(
        "variants with at most {budget} ReLUs (cull/thin in criticality order {order}, least critical S{least} first); * = on the ReLU/MAC Pareto front (most ReLUs kept, fewest MACs)"
    );
    println!(
        "{:<2}{:<36} {:<24} {:>10} {:>10} {:>14}",
        "", "name", "actions S1 S2 S3 S4", "ReLUs", "identity", "MACs"
    );
    for v in list {
        let acts: Vec<&str> = v
            .actions
            .iter()
            .map(|a| match a {
                reshape::Action::Keep => "keep",
                reshape::Action::Thin => "thin",
                reshape::Action::Cull => "cull",
            })
            .collect();
        println!(
            "{:<2}{:<36} {:<24} {:>10} {:>10} {:>14} ({:.1}M)",
            if v.pareto { "*" } else { "" },
            v.name,
            acts.join(" "),
            v.relus,
            v.identity,
            v.macs,
            v.macs as f64 / 1e6
        );
    }
}

/// Index of the largest logit (first one on ties).
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn print_table(s: &Stats) {
    println!("network {}", s.spec);
    println!(
        "{:<22} {:<5} {:<16} {:<14} {:>12} {:>10} {:>14}",
        "layer", "kind", "input", "output", "relus", "identity", "macs"
    );
    for l in &s.layers {
        let input: Vec<String> = l.input.iter().map(|x| x.to_string()).collect();
        println!(
            "{:<22} {:<5} {:<16} {:<14} {:>12} {:>10} {:>14}",
            l.name,
            l.kind,
            input.join("+"),
            l.output.to_string(),
            l.relus,
            l.identity,
            l.macs
        );
    }
    println!();
    println!(
        "{:<8} {:>12} {:>10} {:>14}",
        "stage", "relus", "identity", "macs"
    );
    for i in 0..4 {
        println!(
            "{:<8} {:>12} {:>10} {:>14}",
            i + 1,
            s.stage_relus[i],
            s.stage_identity[i],
            s.stage_macs[i]
        );
    }
    println!("{:<8} {:>12} {:>10} {:>14}", "head", 0, 0, s.head_macs);
    println!(
        "{:<8} {:>12} {:>10} {:>14}",
        "total", s.relus, s.identity, s.macs
    );
    println!(
        "\nReLUs {} ({} identity positions), MACs {} ({:.1}M)",
        s.relus,
        s.identity,
        s.macs,
        s.macs as f64 / 1e6
    );
}
