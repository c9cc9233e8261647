//! `pi-bench scale`: how the costs of private inference grow with the
//! network — the scaling study.
//!
//! Every network is measured in every ReLU mode by [`crate::e2e`] (a
//! `pi-server` process and the client in this process over loopback TLS,
//! fresh sessions, `repeat` measurements after `warmup`), and the rows are
//! put beside the network's ReLUs and MACs. Per mode, each cost is fitted by
//! least squares to `a · ReLUs + b · MACs + c` ([`fit`]): `a` is the cost
//! of one ReLU, `b` of one multiply-accumulate, `c` what a session costs
//! whatever the network. The fit's R² and each network's relative residual
//! show where growth departs from linear.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pi_protocol::ReluMode;
use pi_protocol::transport::Link;
use serde::Serialize;

use crate::e2e::{E2eOptions, E2eResult};
use crate::machine::MachineLoad;
use crate::plot::{self, Point};
use crate::stats::Summary;

/// What to run.
#[derive(Clone, Debug)]
pub struct ScaleOptions {
    /// Networks (presets, `AxBxCx(...)` or model files).
    pub specs: Vec<String>,
    /// Activation protocols, each network in each.
    pub relu: Vec<ReluMode>,
    /// Measured inferences per network and mode, each on a fresh session.
    pub repeat: usize,
    /// Inferences run first and discarded.
    pub warmup: usize,
    /// Seed of the random weights and inputs.
    pub seed: u64,
    /// Emulated link on the client's connection, if any.
    pub link: Option<Link>,
    /// The client's budgets and material directory.
    pub budget: pi_client::cli::BudgetArgs,
}

/// One network in one mode.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// As given.
    pub spec: String,
    /// The canonical spec.
    pub canonical: String,
    /// Activation protocol.
    pub relu_mode: ReluMode,
    /// Input shape (C, H, W).
    pub input: [usize; 3],
    /// ReLUs.
    pub relus: u64,
    /// Activation positions that are the identity (culled).
    pub identity: u64,
    /// Multiply-accumulates of the linear layers.
    pub macs: u64,
    /// Offline phase, seconds (client clock).
    pub offline_seconds: Summary,
    /// Online phase, seconds (client clock).
    pub online_seconds: Summary,
    /// Offline bytes, both directions (of the last inference; bytes do not vary).
    pub offline_bytes: u64,
    /// Online bytes, both directions.
    pub online_bytes: u64,
    /// Preprocessed material the client holds for one inference.
    pub client_storage_bytes: u64,
    /// Bytes of the activation steps per activation position, both
    /// directions, offline (a fresh session's first inference: its OT setup
    /// included) and online.
    pub activation_bytes_per_position: (f64, f64),
    /// Peak resident memory of the client process during an inference.
    pub client_peak_rss_bytes: Option<Summary>,
    /// Peak resident memory of the server process during an inference.
    pub server_peak_rss_bytes: Option<Summary>,
    /// Whether every inference equalled the fixed-point oracle.
    pub bit_exact: bool,
    /// The machine's load while this row was measured.
    pub machine: MachineLoad,
}

/// The fitted cost of one metric in one mode: `per_relu · ReLUs + per_mac ·
/// MACs + intercept`.
#[derive(Clone, Debug, Serialize)]
pub struct Fit {
    /// Activation protocol.
    pub relu_mode: ReluMode,
    /// The metric (`offline_seconds`, `online_seconds`, `offline_bytes`,
    /// `online_bytes`, `client_storage_bytes`).
    pub metric: &'static str,
    /// Cost of one ReLU (seconds or bytes).
    pub per_relu: f64,
    /// Cost of one MAC.
    pub per_mac: f64,
    /// Cost of a session whatever the network.
    pub intercept: f64,
    /// Coefficient of determination over the rows.
    pub r2: f64,
    /// (spec, measured / fitted − 1) per row.
    pub residuals: Vec<(String, f64)>,
}

/// A whole study.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleResult {
    /// Measured inferences per row.
    pub repeat: usize,
    /// Discarded inferences per row.
    pub warmup: usize,
    /// Seed of weights and inputs.
    pub seed: u64,
    /// Emulated link, if any.
    pub link: Option<String>,
    /// Networks in modes, in the order measured.
    pub rows: Vec<Row>,
    /// Networks in modes that could not be measured.
    pub failed: Vec<Failure>,
    /// Per mode and metric (modes with at least four networks).
    pub fits: Vec<Fit>,
}

/// A network in a mode that could not be measured, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// As given.
    pub spec: String,
    /// Activation protocol.
    pub relu_mode: ReluMode,
    /// The error with its causes.
    pub error: String,
}

/// A fitted metric: its name and how to read it from a row.
type Fitted = (&'static str, fn(&Row) -> f64);

/// The metrics fitted.
const FITTED: [Fitted; 5] = [
    ("offline_seconds", |r| r.offline_seconds.median),
    ("online_seconds", |r| r.online_seconds.median),
    ("offline_bytes", |r| r.offline_bytes as f64),
    ("online_bytes", |r| r.online_bytes as f64),
    ("client_storage_bytes", |r| r.client_storage_bytes as f64),
];

/// Measures every network in every mode; `progress` hears each start and
/// each failure (a network that fails is listed in `failed`, the others go
/// on).
///
/// # Errors
/// On bad options or specs, or when no network could be measured.
pub fn run(opts: &ScaleOptions, progress: &mut dyn FnMut(&str)) -> Result<ScaleResult> {
    if opts.specs.is_empty() || opts.relu.is_empty() {
        bail!("give at least one network and one ReLU mode");
    }
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let total = opts.specs.len() * opts.relu.len();
    for spec in &opts.specs {
        let model = pi_models::Model::resolve(spec).with_context(|| format!("network {spec:?}"))?;
        let stats = model.network.stats();
        let s = model.network.tensors[model.network.input].shape;
        for &relu in &opts.relu {
            progress(&format!(
                "[{}/{total}] {spec} in {relu} mode",
                rows.len() + failed.len() + 1
            ));
            let measured = crate::e2e::run(&E2eOptions {
                spec: spec.clone(),
                weights: None,
                input: None,
                seed: opts.seed,
                repeat: opts.repeat,
                warmup: opts.warmup,
                link: opts.link,
                relu,
                server_exe: None,
                budget: opts.budget.clone(),
            })
            .and_then(|e| row(spec, &model, relu, [s.c, s.h, s.w], &stats, &e));
            // One network that fails (a budget refusal, a lost connection)
            // is reported and the study goes on with the others.
            match measured {
                Ok(r) => rows.push(r),
                Err(e) => {
                    progress(&format!("{spec} in {relu} mode failed: {e:#}"));
                    failed.push(Failure {
                        spec: spec.clone(),
                        relu_mode: relu,
                        error: format!("{e:#}"),
                    });
                }
            }
        }
    }
    if rows.is_empty() {
        bail!("no network could be measured");
    }
    let fits = opts.relu.iter().flat_map(|&m| fit(&rows, m)).collect();
    Ok(ScaleResult {
        repeat: opts.repeat,
        warmup: opts.warmup,
        seed: opts.seed,
        link: opts.link.map(|l| l.to_string()),
        rows,
        failed,
        fits,
    })
}

fn row(
    spec: &str,
    model: &pi_models::Model,
    relu: ReluMode,
    input: [usize; 3],
    stats: &pi_models::network::Stats,
    e: &E2eResult,
) -> Result<Row> {
    let r = &e.last().report;
    let need = |m: fn(&crate::e2e::Run) -> Option<f64>, what: &str| {
        e.summary(m).with_context(|| format!("no {what} measured"))
    };
    Ok(Row {
        spec: spec.to_string(),
        canonical: model.network.spec.canonical(),
        relu_mode: relu,
        input,
        relus: stats.relus,
        identity: stats.identity,
        macs: stats.macs,
        offline_seconds: need(|x| Some(x.outcome.report.offline.seconds), "offline time")?,
        online_seconds: need(|x| Some(x.outcome.report.online.seconds), "online time")?,
        offline_bytes: r.offline.bytes_sent + r.offline.bytes_received,
        online_bytes: r.online.bytes_sent + r.online.bytes_received,
        client_storage_bytes: r.client_storage_bytes,
        activation_bytes_per_position: E2eResult::activation_bytes_per_position(r),
        client_peak_rss_bytes: e.summary(|x| x.client_peak_rss_bytes.map(|b| b as f64)),
        server_peak_rss_bytes: e.summary(|x| x.server_peak_rss_bytes.map(|b| b as f64)),
        bit_exact: e.bit_exact(),
        machine: e.machine.clone(),
    })
}

/// Least-squares fits of every metric of `mode`'s rows to `a · ReLUs + b ·
/// MACs + c`; none when fewer than four rows or when ReLUs and MACs do not
/// vary independently enough to tell `a` from `b`.
pub fn fit(rows: &[Row], mode: ReluMode) -> Vec<Fit> {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.relu_mode == mode).collect();
    if rows.len() < 4 {
        return Vec::new();
    }
    let xs: Vec<[f64; 3]> = rows
        .iter()
        .map(|r| [r.relus as f64, r.macs as f64, 1.0])
        .collect();
    FITTED
        .iter()
        .filter_map(|&(metric, get)| {
            let ys: Vec<f64> = rows.iter().map(|r| get(r)).collect();
            let [a, b, c] = least_squares(&xs, &ys)?;
            let fitted: Vec<f64> = xs.iter().map(|x| a * x[0] + b * x[1] + c).collect();
            let mean = ys.iter().sum::<f64>() / ys.len() as f64;
            let ss_tot: f64 = ys.iter().map(|y| (y - mean).powi(2)).sum();
            let ss_res: f64 = ys.iter().zip(&fitted).map(|(y, f)| (y - f).powi(2)).sum();
            Some(Fit {
                relu_mode: mode,
                metric,
                per_relu: a,
                per_mac: b,
                intercept: c,
                r2: if ss_tot > 0.0 {
                    1.0 - ss_res / ss_tot
                } else {
                    1.0
                },
                residuals: rows
                    .iter()
                    .zip(ys.iter().zip(&fitted))
                    .map(|(r, (y, f))| (r.spec.clone(), y / f - 1.0))
                    .collect(),
            })
        })
        .collect()
}

/// The least-squares solution of `xs · β ≈ ys` for three unknowns (normal
/// equations on columns scaled to unit maximum, Gaussian elimination with
/// partial pivoting); `None` if the columns are (nearly) dependent.
pub fn least_squares(xs: &[[f64; 3]], ys: &[f64]) -> Option<[f64; 3]> {
    let mut scale = [0.0f64; 3];
    for x in xs {
        for (s, v) in scale.iter_mut().zip(x) {
            *s = s.max(v.abs());
        }
    }
    if scale.iter().any(|&s| s <= 0.0) {
        return None;
    }
    // [XᵀX | Xᵀy] on scaled columns.
    let mut m = [[0.0f64; 4]; 3];
    for (x, y) in xs.iter().zip(ys) {
        let z = [x[0] / scale[0], x[1] / scale[1], x[2] / scale[2]];
        for (row, zi) in m.iter_mut().zip(z) {
            for (cell, zj) in row.iter_mut().zip(z) {
                *cell += zi * zj;
            }
            row[3] += zi * y;
        }
    }
    let trace: f64 = (0..3).map(|i| m[i][i]).sum();
    // Gauss-Jordan elimination with partial pivoting.
    for col in 0..3 {
        let p = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[p][col].abs() <= 1e-9 * trace {
            return None;
        }
        m.swap(col, p);
        let pivot = m[col];
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot[col];
                for (cell, pv) in row.iter_mut().zip(pivot).skip(col) {
                    *cell -= f * pv;
                }
            }
        }
    }
    Some([
        m[0][3] / m[0][0] / scale[0],
        m[1][3] / m[1][1] / scale[1],
        m[2][3] / m[2][2] / scale[2],
    ])
}

fn mib(b: f64) -> f64 {
    b / f64::from(1 << 20)
}

/// A readable table of the rows, then the fits.
pub fn table(r: &ScaleResult) -> String {
    let mut s = format!(
        "{} measured inference(s) per row after {} warm-up, medians [95% interval for the median], link {}, seed {}\n\n",
        r.repeat,
        r.warmup,
        r.link.as_deref().unwrap_or("loopback, not shaped"),
        r.seed
    );
    s.push_str(&format!(
        "{:<30} {:<4} {:>10} {:>8} {:>24} {:>24} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6}\n",
        "network",
        "mode",
        "ReLUs",
        "MACs M",
        "offline s",
        "online s",
        "off MiB",
        "on MiB",
        "store MiB",
        "client MiB",
        "server MiB",
        "exact"
    ));
    let peak = |x: &Option<Summary>| {
        x.as_ref()
            .map_or("-".into(), |x| format!("{:.0}", mib(x.median)))
    };
    for x in &r.rows {
        s.push_str(&format!(
            "{:<30} {:<4} {:>10} {:>8.0} {:>24} {:>24} {:>10.1} {:>10.1} {:>10.1} {:>10} {:>10} {:>6}\n",
            x.spec,
            x.relu_mode.to_string(),
            x.relus,
            x.macs as f64 / 1e6,
            x.offline_seconds.show(2),
            x.online_seconds.show(2),
            mib(x.offline_bytes as f64),
            mib(x.online_bytes as f64),
            mib(x.client_storage_bytes as f64),
            peak(&x.client_peak_rss_bytes),
            peak(&x.server_peak_rss_bytes),
            x.bit_exact
        ));
    }
    if !r.fits.is_empty() {
        s.push_str("\nfitted cost = a · ReLUs + b · MACs + c (least squares over the networks of each mode)\n");
        s.push_str(&format!(
            "{:<4} {:<22} {:>16} {:>16} {:>12} {:>7}  largest residuals\n",
            "mode", "metric", "a (per ReLU)", "b (per MAC)", "c", "R²"
        ));
        for f in &r.fits {
            let (unit, k_relu, k_mac) = if f.metric.ends_with("seconds") {
                ("s", "µs", "ns")
            } else {
                ("B", "B", "B")
            };
            let (sa, sb) = if unit == "s" { (1e6, 1e9) } else { (1.0, 1.0) };
            let mut worst = f.residuals.clone();
            worst.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            let worst: Vec<String> = worst
                .iter()
                .take(2)
                .map(|(spec, e)| format!("{spec} {:+.0}%", 100.0 * e))
                .collect();
            s.push_str(&format!(
                "{:<4} {:<22} {:>13.3} {k_relu:<2} {:>13.4} {k_mac:<2} {:>10.3} {unit} {:>7.3}  {}\n",
                f.relu_mode.to_string(),
                f.metric,
                f.per_relu * sa,
                f.per_mac * sb,
                f.intercept,
                f.r2,
                worst.join(", ")
            ));
        }
    }
    for f in &r.failed {
        s.push_str(&format!(
            "{} [{}] failed: {}\n",
            f.spec, f.relu_mode, f.error
        ));
    }
    for x in &r.rows {
        if let Some(w) = &x.machine.warning {
            s.push_str(&format!("{} [{}]: {w}\n", x.spec, x.relu_mode));
        }
    }
    s
}

/// Writes, per mode, `MODE_relus_vs_online.svg` and
/// `MODE_macs_vs_offline.svg` (medians with interval bars) into `dir`.
///
/// # Errors
/// If the directory or a plot cannot be written.
pub fn plots(r: &ScaleResult, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut modes: Vec<ReluMode> = Vec::new();
    for x in &r.rows {
        if !modes.contains(&x.relu_mode) {
            modes.push(x.relu_mode);
        }
    }
    for mode in modes {
        let rows: Vec<&Row> = r.rows.iter().filter(|x| x.relu_mode == mode).collect();
        let points = |x: fn(&Row) -> f64, y: fn(&Row) -> &Summary| -> Vec<Point> {
            rows.iter()
                .map(|row| {
                    let s = y(row);
                    Point {
                        label: row.spec.clone(),
                        x: x(row),
                        y: s.median,
                        interval: (s.n > 1).then_some((s.ci95_low, s.ci95_high)),
                    }
                })
                .collect()
        };
        let n = rows.first().map_or(0, |x| x.online_seconds.n);
        let path = dir.join(format!("{mode}_relus_vs_online.svg"));
        plot::scatter(
            &path,
            &format!("Online latency against ReLUs ({mode} mode, median of {n})"),
            "ReLUs (thousands)",
            "online phase, s",
            &points(|x| x.relus as f64 / 1e3, |x| &x.online_seconds),
        )?;
        written.push(path);
        let path = dir.join(format!("{mode}_macs_vs_offline.svg"));
        plot::scatter(
            &path,
            &format!("Offline time against MACs ({mode} mode, median of {n})"),
            "MACs (millions)",
            "offline phase, s",
            &points(|x| x.macs as f64 / 1e6, |x| &x.offline_seconds),
        )?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_an_exact_plane() {
        // y = 3e-6 · relus + 2e-9 · macs + 0.5 at networks like the study's.
        let xs = [
            [139_264.0, 35e6, 1.0],
            [278_528.0, 139e6, 1.0],
            [557_056.0, 555e6, 1.0],
            [343_040.0, 1_053e6, 1.0],
            [2_228_224.0, 2_220e6, 1.0],
        ];
        let ys: Vec<f64> = xs.iter().map(|x| 3e-6 * x[0] + 2e-9 * x[1] + 0.5).collect();
        let [a, b, c] = least_squares(&xs, &ys).expect("independent columns");
        assert!((a - 3e-6).abs() < 1e-12, "a = {a}");
        assert!((b - 2e-9).abs() < 1e-15, "b = {b}");
        assert!((c - 0.5).abs() < 1e-6, "c = {c}");
    }

    #[test]
    fn least_squares_refuses_dependent_columns() {
        // MACs proportional to ReLUs: a and b cannot be told apart.
        let xs = [
            [1.0e5, 2.0e7, 1.0],
            [2.0e5, 4.0e7, 1.0],
            [3.0e5, 6.0e7, 1.0],
            [4.0e5, 8.0e7, 1.0],
        ];
        assert!(least_squares(&xs, &[1.0, 2.0, 3.0, 4.0]).is_none());
    }

    #[test]
    fn least_squares_minimises_the_residuals_of_noisy_data() {
        let xs = [
            [1.0, 0.0, 1.0],
            [0.0, 1.0, 1.0],
            [1.0, 1.0, 1.0],
            [2.0, 1.0, 1.0],
        ];
        let ys = [1.0, 2.0, 3.0, 4.5];
        let beta = least_squares(&xs, &ys).expect("independent columns");
        let sse = |b: [f64; 3]| -> f64 {
            xs.iter()
                .zip(&ys)
                .map(|(x, y)| (y - (b[0] * x[0] + b[1] * x[1] + b[2] * x[2])).powi(2))
                .sum()
        };
        let best = sse(beta);
        for d in [[1e-3, 0.0, 0.0], [0.0, 1e-3, 0.0], [0.0, 0.0, 1e-3]] {
            for sign in [1.0, -1.0] {
                let moved = [
                    beta[0] + sign * d[0],
                    beta[1] + sign * d[1],
                    beta[2] + sign * d[2],
                ];
                assert!(sse(moved) > best, "moving by {d:?} lowered the residual");
            }
        }
    }
}
