//! `pi-models`: count ReLUs and MACs, make random weights, run plaintext inference.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use pi_models::Model;
use pi_models::fixed::{RingParams, forward_fixed};
use pi_models::float::forward_float;
use pi_models::network::Stats;
use pi_models::weights::init_weights;
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
    }
    Ok(())
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
