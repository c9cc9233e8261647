//! What the command-line tools show around one inference: a progress bar
//! and per-layer log lines while it runs, then a readable summary or the JSON
//! report. Used by the `pi-client` command line ([`crate::cli`]) and by the
//! demo ([`crate::demo`]); it sits below both, so imports point one way
//! (`cli` -> `demo` -> `console`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use pi_protocol::ClientReport;

pub use crate::batch::report_value;
use crate::batch::{ItemResult, result_json, result_line, run_batch, summary_text};
use crate::pool::PoolConfig;
use crate::{ClientOptions, Outcome, Progress, RawInput, run_inference};

/// Runs [`run_inference`] with a progress bar on the offline phase (when
/// stderr is a terminal and `bar` is set) and per-layer log lines (`-v`).
pub async fn infer_with_progress(
    opts: &ClientOptions,
    raw: &RawInput,
    bar: bool,
) -> anyhow::Result<Outcome> {
    let pb = if bar && std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut on_progress = |p: Progress| match p {
        Progress::Connected { spec, steps } => {
            tracing::info!("connected: {spec}, {steps} steps");
            pb.set_length(steps as u64);
            pb.set_prefix("offline");
        }
        Progress::Step { phase, index, name } => {
            tracing::info!("{phase}: step {index} {name}");
            if phase == "offline" {
                pb.set_position(index as u64);
                pb.set_message(name);
            } else if !pb.is_finished() {
                pb.finish_and_clear();
            }
        }
    };
    let outcome = run_inference(opts, raw, &mut on_progress)
        .await
        .with_context(|| format!("private inference with {}", opts.addr));
    pb.finish_and_clear();
    let outcome = outcome?;
    for l in &outcome.report.layers {
        tracing::debug!(
            "{:<24} {:<4} offline {:.3} s {} B / {} B, online {:.3} s {} B / {} B",
            l.name,
            l.kind,
            l.offline.seconds,
            l.offline.bytes_sent,
            l.offline.bytes_received,
            l.online.seconds,
            l.online.bytes_sent,
            l.online.bytes_received,
        );
    }
    Ok(outcome)
}

/// The report as JSON: the protocol's [`ClientReport`] plus `spec`, `relus`
/// and `identity` at the top level.
pub fn report_json(outcome: &Outcome) -> serde_json::Value {
    report_value(&outcome.spec, &outcome.report)
}

/// Runs [`run_batch`] printing one line per input on stdout (text, or JSON
/// lines with `json`) and then the summary (text, or a last JSON line
/// `{"summary": ...}`), with a progress bar over the inputs on stderr when
/// it is a terminal.
///
/// # Errors
/// If the batch could not start (connection, handshake, pool), or if any
/// input failed (after every line and the summary are printed).
pub async fn batch_with_progress(
    opts: &ClientOptions,
    inputs: &[PathBuf],
    config: PoolConfig,
    json: bool,
) -> anyhow::Result<()> {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new(inputs.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_prefix("inputs");
    let mut on_result = |spec: &str, path: &Path, r: &ItemResult| {
        let line = if json {
            result_json(spec, path, r).to_string()
        } else {
            result_line(path, r)
        };
        pb.suspend(|| println!("{line}"));
        pb.inc(1);
        pb.set_message(
            path.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
        );
    };
    let summary = run_batch(opts, inputs, config, &mut on_result)
        .await
        .with_context(|| format!("private inference with {}", opts.addr));
    pb.finish_and_clear();
    let summary = summary?;
    if json {
        println!("{}", serde_json::json!({ "summary": summary }));
    } else {
        print!("{}", summary_text(&summary));
    }
    if let Some(e) = &summary.session_error {
        anyhow::bail!(
            "the session ended after {} of {} inputs: {e}",
            summary.completed,
            summary.inputs
        );
    }
    if summary.failed > 0 {
        anyhow::bail!("{} of {} inputs failed", summary.failed, summary.inputs);
    }
    Ok(())
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.2} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// A readable summary of one inference; `label` is the true class if known.
pub fn summary(outcome: &Outcome, label: Option<usize>) -> String {
    let r: &ClientReport = &outcome.report;
    let mut top: Vec<(usize, f64)> = r.logits.iter().copied().enumerate().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = top
        .iter()
        .take(3)
        .map(|(c, v)| format!("{c}: {v:.3}"))
        .collect();
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<16}{v}\n"));
    line("model", outcome.spec.clone());
    line("predicted class", r.class.to_string());
    if let Some(l) = label {
        line(
            "true label",
            format!("{l} ({})", if l == r.class { "correct" } else { "wrong" }),
        );
    }
    line("top logits", top.join(", "));
    line(
        "ReLU mode",
        format!(
            "{} ({} online round trips)",
            r.relu_mode, r.online_round_trips
        ),
    );
    for (name, p) in [("offline", &r.offline), ("online", &r.online)] {
        line(
            name,
            format!(
                "{:.3} s, sent {}, received {}",
                p.seconds,
                bytes(p.bytes_sent),
                bytes(p.bytes_received)
            ),
        );
    }
    line(
        "client storage",
        format!(
            "{} (garbled tables {})",
            bytes(r.client_storage_bytes),
            bytes(r.garbled_table_bytes)
        ),
    );
    line(
        "ReLUs",
        format!(
            "{} (+ {} truncation-only positions)",
            r.activations.relus, r.activations.identity
        ),
    );
    s
}
