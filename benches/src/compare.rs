//! `pi-bench compare`: several networks side by side (ReLUs, MACs, identity
//! positions, offline and online cost with their intervals and ranks, CPU
//! time, bytes per phase, client storage, and the sustainable rate of
//! [`crate::load`]), as a table, JSON and plots: ReLUs against online
//! latency, MACs against offline time, and latency against arrival rate.
//! Also the table and plot of `pi-bench load`.
//!
//! Two networks are ranked apart only when their intervals separate
//! ([`crate::stats::separated`]); the table marks ties with `=`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::load::{Latency, LoadResult, ModelResult};
use crate::plot::{self, Curve, Point, RatePoint};
use crate::stats::{self, CI_METHOD, Rank, Summary};

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn short(m: &ModelResult) -> String {
    // Model files are known by their file name; OT-mode runs say so.
    let p = Path::new(&m.spec);
    let name = if m.spec.ends_with(".toml") {
        p.file_stem()
            .map_or(m.spec.clone(), |s| s.to_string_lossy().into_owned())
    } else {
        m.spec.clone()
    };
    match m.relu_mode {
        pi_protocol::ReluMode::Gc => name,
        mode => format!("{name} [{mode}]"),
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// The machine's load of each model, and the warnings.
fn machine_lines(r: &LoadResult) -> String {
    let mut s = String::new();
    if let Some(m) = &r.machine {
        s.push_str(&format!("machine: {}\n", m.describe()));
    }
    for w in r.warnings() {
        s.push_str(&w);
        s.push('\n');
    }
    s
}

/// The latency cells of one rate: mean with its interval, p50, p95, tail.
fn latency_cells(l: &Latency) -> String {
    let ci = match (l.mean_ci95_low, l.mean_ci95_high) {
        (Some(a), Some(b)) => format!("[{a:.3}, {b:.3}]"),
        _ => "-".into(),
    };
    let tail = match (l.p99, l.tail, l.tail_percent) {
        (Some(p), _, _) => format!("{p:.3} p99"),
        (None, Some(t), Some(q)) => format!("{t:.3} p{q:.0}"),
        _ => "-".into(),
    };
    format!(
        "{:>8.3} {:>18} {:>8.3} {:>8} {:>11}",
        l.mean,
        ci,
        l.p50,
        opt(l.p95, 3),
        tail
    )
}

/// `pi-bench load`'s table.
pub fn load_table(r: &LoadResult) -> String {
    let mut s = format!(
        "{} requests per rate, {} unloaded measurement(s) per model after {} warm-up, pool budget {:.1} GiB{}, server pool max {}, {}, link {}, seed {}\n",
        r.requests,
        r.repeat,
        r.warmup,
        r.pool_bytes as f64 / (1u64 << 30) as f64,
        r.pool_count
            .map_or(String::new(), |c| format!(" / {c} entries")),
        r.server_pool_max,
        if r.prefill {
            "pools filled first"
        } else {
            "pools start empty"
        },
        r.link.as_deref().unwrap_or("loopback, not shaped"),
        r.seed
    );
    s.push_str(&format!(
        "{} client session(s) at once per rate (rates are their aggregate); server {}; oracle {}\n",
        r.clients,
        r.server
            .as_deref()
            .map_or("a child process on loopback".into(), |a| format!(
                "{a} (remote)"
            )),
        r.oracle
    ));
    for m in &r.models {
        let u = &m.unloaded;
        let show = |x: &Option<Summary>| x.as_ref().map_or("-".into(), |x| x.show(3));
        s.push_str(&format!(
            "\n{} ({})\n  {} mode, unloaded (median [95% interval], n = {}): latency {} s = offline {} s + online {} s; online only {} s\n",
            short(m),
            m.canonical,
            m.relu_mode,
            u.samples.len().max(1),
            show(&u.summary.latency_seconds),
            show(&u.summary.offline_seconds),
            show(&u.summary.online_seconds),
            show(&u.summary.online_only_latency_seconds),
        ));
        s.push_str(&format!(
            "  CPU s (user + system): offline client {} server {}; online client {} server {}\n",
            show(&u.summary.client_offline_cpu_seconds),
            show(&u.summary.server_offline_cpu_seconds),
            show(&u.summary.client_online_cpu_seconds),
            show(&u.summary.server_online_cpu_seconds),
        ));
        s.push_str(&format!(
            "  {} online round trips; pool: {} entries of {:.1} MiB{}; bit exact {}\n",
            u.online_round_trips,
            m.pool_capacity,
            mib(u.client_storage_bytes),
            if r.clients > 1 { " per client" } else { "" },
            u.bit_exact.map_or("not checked".into(), |b| b.to_string())
        ));
        s.push_str(&format!(
            "  {:>9} {:>8} {:>18} {:>8} {:>8} {:>11} {:>8} {:>7} {:>8} {:>11} {:>6} {:>6}\n",
            "rate/s",
            "mean s",
            "95% of mean",
            "p50 s",
            "p95 s",
            "tail s",
            "queue s",
            "waited",
            "tput/s",
            "CPU s/req",
            "done",
            "exact"
        ));
        for x in &m.rates {
            let cpu = match (x.client_cpu, x.server_cpu) {
                (Some(c), Some(v)) if x.completed > 0 => format!(
                    "{:.2}+{:.2}",
                    c.total() / x.completed as f64,
                    v.total() / x.completed as f64
                ),
                _ => "-".into(),
            };
            s.push_str(&format!(
                "  {:>9.3} {} {:>8.3} {:>6.0}% {:>8.3} {:>11} {:>3}/{:<2} {:>6}\n",
                x.rate_per_second,
                latency_cells(&x.latency),
                x.queueing_delay.mean,
                100.0 * x.waited_fraction,
                x.throughput,
                cpu,
                x.completed,
                x.requests,
                x.bit_exact.map_or("-".into(), |b| b.to_string())
            ));
            if let Some(peak) = x.server_peak_rss_bytes {
                s.push_str(&format!(
                    "  {:>9} server: {:.2} CPU s, peak memory {:.0} MiB\n",
                    "",
                    x.server_cpu.map_or(f64::NAN, |c| c.total()),
                    mib(peak)
                ));
            }
            for e in &x.close_errors {
                s.push_str(&format!("  {:>9} {e}\n", ""));
            }
            for c in &x.per_client {
                s.push_str(&format!(
                    "  {:>9} {} {:>8} {:>6.0}% {:>8.3} {:>11} {:>3}/{:<2} {:>6}\n",
                    format!("client {}", c.name),
                    latency_cells(&c.latency),
                    "",
                    100.0 * c.waited_fraction,
                    c.throughput,
                    "",
                    c.completed,
                    c.requests,
                    c.bit_exact.map_or("-".into(), |b| b.to_string())
                ));
            }
        }
        s.push_str(&format!(
            "  sustainable rate (mean latency within 2x of unloaded): {}\n",
            m.sustainable_rate
                .map_or("none of the tested rates".into(), |v| format!(
                    "{v:.3} requests/s"
                ))
        ));
    }
    s.push_str(
        "\nunloaded: medians over fresh sessions, 95% interval for the median by order statistics ([min, max] below 6 samples);\n\
         mean: 95% interval of the mean (Student t over the requests); p95 needs 20 requests, p99 100: the tail column shows p99\n\
         or else the highest percentile the requests support (pNN); CPU s/req: client + server CPU seconds per completed request\n",
    );
    s.push_str(&machine_lines(r));
    s
}

/// The curve point of one rate's latency.
fn rate_point(rate: f64, l: &Latency, tail: fn(&Latency) -> Option<f64>) -> RatePoint {
    RatePoint {
        rate,
        n: l.n,
        mean: l.mean,
        interval: l.mean_ci95_low.zip(l.mean_ci95_high),
        tail: tail(l),
    }
}

/// Mean latency with its interval against arrival rate, one curve per
/// model, with p99 (or p95) where every rate has enough requests.
pub fn plot_latency(r: &LoadResult, path: &Path) -> Result<()> {
    let rates = || {
        r.models
            .iter()
            .flat_map(|m| &m.rates)
            .filter(|x| x.completed > 0)
    };
    let (tail_name, tail): (&str, fn(&Latency) -> Option<f64>) =
        if rates().all(|x| x.latency.p99.is_some()) {
            ("p99", |l| l.p99)
        } else {
            ("p95", |l| l.p95)
        };
    let curves: Vec<Curve> = r
        .models
        .iter()
        .map(|m| Curve {
            label: short(m),
            points: m
                .rates
                .iter()
                .filter(|x| x.completed > 0)
                .map(|x| rate_point(x.rate_per_second, &x.latency, tail))
                .collect(),
        })
        .collect();
    plot::latency_vs_rate(
        path,
        &format!(
            "Latency under Poisson load: mean and its 95% interval ({} requests per rate)",
            r.requests
        ),
        tail_name,
        &curves,
    )
    .with_context(|| format!("writing {}", path.display()))
}

/// "n = 5" or "n = 1-5" over the summaries.
fn sample_counts(xs: impl Iterator<Item = usize>) -> String {
    let (lo, hi) = xs.fold((usize::MAX, 0), |(a, b), n| (a.min(n), b.max(n)));
    if lo >= hi {
        format!("n = {hi}")
    } else {
        format!("n = {lo}-{hi}")
    }
}

/// The three comparison plots in `dir` (created if needed); returns their paths.
pub fn plots(r: &LoadResult, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // One point per run: x and the summary of y, picked from the model's result.
    let scatter = |path: &Path,
                   title: &str,
                   xd: &str,
                   yd: &str,
                   f: &dyn Fn(&ModelResult) -> (f64, Option<&Summary>)| {
        let picked: Vec<(String, f64, Option<&Summary>)> = r
            .models
            .iter()
            .map(|m| {
                let (x, y) = f(m);
                (short(m), x, y)
            })
            .collect();
        let pts: Vec<Point> = picked
            .iter()
            .filter_map(|(label, x, y)| {
                let y = (*y)?;
                Some(Point {
                    label: label.clone(),
                    x: *x,
                    y: y.median,
                    interval: (y.n > 1).then_some((y.ci95_low, y.ci95_high)),
                })
            })
            .collect();
        let n = sample_counts(picked.iter().filter_map(|p| p.2.map(|s| s.n)));
        plot::scatter(
            path,
            &format!("{title} (median, 95% interval, {n})"),
            xd,
            yd,
            &pts,
        )
    };
    let a = dir.join("relus_vs_online.svg");
    scatter(
        &a,
        "ReLUs vs online latency",
        "ReLUs",
        "online latency from a pool entry (s)",
        &|m| {
            (
                m.relus.max(1) as f64,
                m.unloaded.summary.online_only_latency_seconds.as_ref(),
            )
        },
    )?;
    let b = dir.join("macs_vs_offline.svg");
    scatter(
        &b,
        "MACs vs offline time",
        "MACs",
        "offline time (s)",
        &|m| {
            (
                m.macs.max(1) as f64,
                m.unloaded.summary.offline_seconds.as_ref(),
            )
        },
    )?;
    let c = dir.join("latency_vs_rate.svg");
    plot_latency(r, &c)?;
    Ok(vec![a, b, c])
}

/// Ranks of every model by a summary (lower is better).
fn ranks(r: &LoadResult, f: fn(&ModelResult) -> Option<&Summary>) -> Vec<Option<Rank>> {
    let xs: Vec<Option<&Summary>> = r.models.iter().map(f).collect();
    stats::rank(&xs)
}

fn offline(m: &ModelResult) -> Option<&Summary> {
    m.unloaded.summary.offline_seconds.as_ref()
}

fn online(m: &ModelResult) -> Option<&Summary> {
    m.unloaded.summary.online_only_latency_seconds.as_ref()
}

/// One row per network, with the summaries and ranks behind the figures.
pub fn json(r: &LoadResult) -> serde_json::Value {
    let (off_rank, on_rank) = (ranks(r, offline), ranks(r, online));
    let rows: Vec<_> = r
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let u = &m.unloaded;
            json!({
                "spec": m.spec,
                "canonical": m.canonical,
                "relu_mode": m.relu_mode,
                "online_round_trips": u.online_round_trips,
                "relus": m.relus,
                "macs": m.macs,
                "identity": m.identity,
                "offline_seconds": u.offline_seconds,
                "online_seconds": u.online_seconds,
                "unloaded_latency_seconds": u.latency_seconds,
                "online_only_latency_seconds": u.online_only_latency_seconds,
                "offline_bytes": u.offline_bytes,
                "online_bytes": u.online_bytes,
                "client_storage_bytes": u.client_storage_bytes,
                "sustainable_rate": m.sustainable_rate,
                "bit_exact": u.bit_exact.map(|b| b && m.rates.iter().all(|x| x.bit_exact == Some(x.completed))),
                "summary": u.summary,
                "rank": { "offline": off_rank[i], "online": on_rank[i] },
                "machine_busy": m.machine.as_ref().is_some_and(|x| x.busy),
            })
        })
        .collect();
    json!({
        "networks": rows,
        "interval": CI_METHOD,
        "ranking": "two networks rank apart only when both 95% intervals (coverage at least 90%, five samples or more) are disjoint; rank = 1 + the number of networks separated from and faster than this one; tie: not separated from at least one other",
        "warnings": r.warnings(),
        "load": r,
    })
}

/// The comparison table.
pub fn table(r: &LoadResult) -> String {
    let (off_rank, on_rank) = (ranks(r, offline), ranks(r, online));
    let show = |x: Option<&Summary>| x.map_or("-".into(), |x| x.show(3));
    let rk = |x: Option<Rank>| x.map_or("-".into(), |x| x.to_string());
    let mut s = format!(
        "{:<28} {:>9} {:>8} {:>9} {:>3} {:>22} {:>3} {:>22} {:>3} {:>5} {:>9} {:>8} {:>9} {:>8}\n",
        "network",
        "ReLUs",
        "MMACs",
        "identity",
        "n",
        "offline s",
        "rk",
        "online s",
        "rk",
        "RTs",
        "off MiB",
        "on MiB",
        "store MiB",
        "sust. /s"
    );
    for (i, m) in r.models.iter().enumerate() {
        let u = &m.unloaded;
        s.push_str(&format!(
            "{:<28} {:>9} {:>8.1} {:>9} {:>3} {:>22} {:>3} {:>22} {:>3} {:>5} {:>9.1} {:>8.2} {:>9.1} {:>8}\n",
            short(m),
            m.relus,
            m.macs as f64 / 1e6,
            m.identity,
            u.samples.len().max(1),
            show(offline(m)),
            rk(off_rank[i]),
            show(online(m)),
            rk(on_rank[i]),
            u.online_round_trips,
            mib(u.offline_bytes),
            mib(u.online_bytes),
            mib(u.client_storage_bytes),
            m.sustainable_rate.map_or("-".into(), |v| format!("{v:.3}")),
        ));
    }
    s.push_str(
        "offline s, online s: median [95% interval for the median] over n fresh sessions (order statistics; [min, max] below 6 samples);\n\
         online s: one request served from a pool entry; rk: rank, apart only where intervals separate (needs n >= 5), = marks a tie;\n\
         RTs: online round trips; sust.: highest tested rate with mean latency within 2x of the unloaded (offline + online) latency\n",
    );
    s.push_str(&format!(
        "\n{:<28} {:>22} {:>22} {:>22} {:>22}\n",
        "CPU s (user + system)",
        "client offline",
        "server offline",
        "client online",
        "server online"
    ));
    for m in &r.models {
        let x = &m.unloaded.summary;
        s.push_str(&format!(
            "{:<28} {:>22} {:>22} {:>22} {:>22}\n",
            short(m),
            show(x.client_offline_cpu_seconds.as_ref()),
            show(x.server_offline_cpu_seconds.as_ref()),
            show(x.client_online_cpu_seconds.as_ref()),
            show(x.server_online_cpu_seconds.as_ref()),
        ));
    }
    s.push('\n');
    s.push_str(&load_table(r));
    s
}
