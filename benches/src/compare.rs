//! `pi-bench compare`: several networks side by side (ReLUs, MACs, identity
//! positions, offline and online cost, bytes per phase, client storage, and
//! the sustainable rate of [`crate::load`]), as a table, JSON and plots:
//! ReLUs against online latency, MACs against offline time, and latency
//! against arrival rate. Also the table and plot of `pi-bench load`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::load::{LoadResult, ModelResult};
use crate::plot::{self, Curve, Point};

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

/// `pi-bench load`'s table.
pub fn load_table(r: &LoadResult) -> String {
    let mut s = format!(
        "{} requests per rate, pool budget {:.1} GiB{}, server pool max {}, {}, link {}, seed {}\n",
        r.requests,
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
    for m in &r.models {
        let u = &m.unloaded;
        s.push_str(&format!(
            "\n{} ({})\n  {} mode: unloaded {:.3} s (offline {:.3} s + online {:.3} s), online only {:.3} s, {} online round trips; pool: {} entries of {:.1} MiB; bit exact {}\n",
            short(m),
            m.canonical,
            m.relu_mode,
            u.latency_seconds,
            u.offline_seconds,
            u.online_seconds,
            u.online_only_latency_seconds,
            u.online_round_trips,
            m.pool_capacity,
            mib(u.client_storage_bytes),
            u.bit_exact
        ));
        s.push_str(&format!(
            "  {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>6} {:>6}\n",
            "rate/s",
            "mean s",
            "p50 s",
            "p95 s",
            "p99 s",
            "queue s",
            "waited",
            "tput/s",
            "done",
            "exact"
        ));
        for x in &m.rates {
            s.push_str(&format!(
                "  {:>9.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6.0}% {:>8.3} {:>3}/{:<2} {:>6}\n",
                x.rate_per_second,
                x.latency.mean,
                x.latency.p50,
                x.latency.p95,
                x.latency.p99,
                x.queueing_delay.mean,
                100.0 * x.waited_fraction,
                x.throughput,
                x.completed,
                x.requests,
                x.bit_exact
            ));
        }
        s.push_str(&format!(
            "  sustainable rate (mean latency within 2x of unloaded): {}\n",
            m.sustainable_rate
                .map_or("none of the tested rates".into(), |v| format!(
                    "{v:.3} requests/s"
                ))
        ));
    }
    s
}

/// Mean and p99 latency against arrival rate, one curve per model.
pub fn plot_latency(r: &LoadResult, path: &Path) -> Result<()> {
    let curves: Vec<Curve> = r
        .models
        .iter()
        .map(|m| Curve {
            label: short(m),
            points: m
                .rates
                .iter()
                .filter(|x| x.completed > 0)
                .map(|x| (x.rate_per_second, x.latency.mean, x.latency.p99))
                .collect(),
        })
        .collect();
    plot::latency_vs_rate(
        path,
        &format!(
            "Latency under Poisson load ({} requests per rate)",
            r.requests
        ),
        &curves,
    )
    .with_context(|| format!("writing {}", path.display()))
}

/// The three comparison plots in `dir` (created if needed); returns their paths.
pub fn plots(r: &LoadResult, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // One point per run: (x, y) picked from the model's result.
    let points = |f: &dyn Fn(&ModelResult) -> (f64, f64)| -> Vec<Point> {
        r.models
            .iter()
            .map(|m| {
                let (x, y) = f(m);
                Point {
                    label: short(m),
                    x,
                    y,
                }
            })
            .collect()
    };
    let a = dir.join("relus_vs_online.svg");
    let pts = points(&|m| {
        (
            m.relus.max(1) as f64,
            m.unloaded.online_only_latency_seconds,
        )
    });
    plot::scatter(
        &a,
        "ReLUs vs online latency",
        "ReLUs",
        "online latency (s)",
        &pts,
    )?;
    let b = dir.join("macs_vs_offline.svg");
    let pts = points(&|m| (m.macs.max(1) as f64, m.unloaded.offline_seconds));
    plot::scatter(&b, "MACs vs offline time", "MACs", "offline time (s)", &pts)?;
    let c = dir.join("latency_vs_rate.svg");
    plot_latency(r, &c)?;
    Ok(vec![a, b, c])
}

/// One row per network.
pub fn json(r: &LoadResult) -> serde_json::Value {
    let rows: Vec<_> = r
        .models
        .iter()
        .map(|m| {
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
                "bit_exact": u.bit_exact && m.rates.iter().all(|x| x.bit_exact == x.completed),
            })
        })
        .collect();
    json!({ "networks": rows, "load": r })
}

/// The comparison table.
pub fn table(r: &LoadResult) -> String {
    let mut s = format!(
        "{:<28} {:>9} {:>8} {:>9} {:>9} {:>9} {:>5} {:>10} {:>10} {:>10} {:>9}\n",
        "network",
        "ReLUs",
        "MMACs",
        "identity",
        "offline s",
        "online s",
        "RTs",
        "off MiB",
        "on MiB",
        "store MiB",
        "sust. /s"
    );
    for m in &r.models {
        let u = &m.unloaded;
        s.push_str(&format!(
            "{:<28} {:>9} {:>8.1} {:>9} {:>9.3} {:>9.3} {:>5} {:>10.1} {:>10.2} {:>10.1} {:>9}\n",
            short(m),
            m.relus,
            m.macs as f64 / 1e6,
            m.identity,
            u.offline_seconds,
            u.online_only_latency_seconds,
            u.online_round_trips,
            mib(u.offline_bytes),
            mib(u.online_bytes),
            mib(u.client_storage_bytes),
            m.sustainable_rate.map_or("-".into(), |v| format!("{v:.3}")),
        ));
    }
    s.push_str(
        "online s: one request served from a pool entry; RTs: online round trips; sust.: highest tested rate with mean latency within 2x of the unloaded (offline + online) latency\n",
    );
    s.push_str(&load_table(r));
    s
}
