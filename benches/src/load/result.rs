//! What `pi-bench load` measures, as it is written to and read from JSON
//! (`compare --from` reads files of earlier versions too: fields added since
//! default to empty).

use std::path::PathBuf;

use anyhow::{Context, Result};
use pi_client::pool::PoolState;
use pi_protocol::ReluMode;
use serde::{Deserialize, Serialize};

use crate::machine::{Cpu, MachineLoad};
use crate::stats::{Percentiles, Summary, mean_interval, supports};

/// Latency statistics of one rate's requests (seconds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Requests measured.
    #[serde(default)]
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// 95% interval of the mean (Student t, requests taken as independent),
    /// from two requests; a latency is not negative, so neither is its low end.
    #[serde(default)]
    pub mean_ci95_low: Option<f64>,
    /// Its upper end.
    #[serde(default)]
    pub mean_ci95_high: Option<f64>,
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile (nearest rank), from 20 requests.
    #[serde(default)]
    pub p95: Option<f64>,
    /// 99th percentile (nearest rank), from 100 requests.
    #[serde(default)]
    pub p99: Option<f64>,
    /// The highest percentile the sample supports, 100·(1 − 1/n).
    #[serde(default)]
    pub tail_percent: Option<f64>,
    /// Its value.
    #[serde(default)]
    pub tail: Option<f64>,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Of `xs` (all zero if empty).
    pub fn of(xs: &[f64]) -> Self {
        let Some(p) = Percentiles::of(xs) else {
            return Self::default();
        };
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let ci = mean_interval(xs);
        Self {
            n: xs.len(),
            mean,
            mean_ci95_low: ci.map(|c| c.1.max(0.0)),
            mean_ci95_high: ci.map(|c| c.2),
            p50: p.p50,
            p95: p.p95,
            p99: p.p99,
            tail_percent: p.tail_percent,
            tail: p.tail,
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

impl Latency {
    /// For a file written before sample counts existed: `n` from the
    /// completed requests, and the tail percentiles those do not support
    /// dropped (such files gave p95 and p99 of any number of requests).
    fn fill_support(&mut self, completed: usize) {
        if self.n == 0 {
            self.n = completed;
            self.p95 = self.p95.filter(|_| supports(completed, 0.95));
            self.p99 = self.p99.filter(|_| supports(completed, 0.99));
        }
    }
}

/// One arrival rate's run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RateResult {
    /// As given (`2`, `0.5x`).
    pub rate: String,
    /// Requests per second offered.
    pub rate_per_second: f64,
    /// Requests sent.
    pub requests: usize,
    /// Answered with a result.
    pub completed: usize,
    /// Answered with an error.
    pub failed: usize,
    /// Completed requests that found the pool empty.
    pub waited_for_offline: usize,
    /// `waited_for_offline / completed`.
    pub waited_fraction: f64,
    /// Completed requests whose logits equal the oracle's (`None`: not
    /// checked, the weights were not known).
    pub bit_exact: Option<usize>,
    /// Arrival to result.
    pub latency: Latency,
    /// Arrival to the start of the online phase.
    pub queueing_delay: Latency,
    /// Mean online-phase seconds (client clock).
    pub mean_online_seconds: f64,
    /// Completed requests per second, first arrival to last result.
    pub throughput: f64,
    /// First arrival to last result, seconds.
    pub seconds: f64,
    /// The client's CPU time over the run (this process).
    #[serde(default)]
    pub client_cpu: Option<Cpu>,
    /// The server's CPU time over the run (its process).
    #[serde(default)]
    pub server_cpu: Option<Cpu>,
    /// Peak resident memory of the server process during this rate
    /// (sessions, pools and requests), when the server runs on this machine.
    #[serde(default)]
    pub server_peak_rss_bytes: Option<u64>,
    /// Pool size when the first request arrived (all clients).
    pub pool_at_start: usize,
    /// The pool at the end of the run (all clients' pools added up).
    pub pool: PoolState,
    /// Per client, with several clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_client: Vec<ClientRate>,
    /// Sessions that failed to close after every answer was in (the
    /// answers count; the pool's state is its last before closing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub close_errors: Vec<String>,
}

/// One client's share of a rate's run (several clients).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientRate {
    /// Its certificate name.
    pub name: String,
    /// Requests that arrived at this client.
    pub requests: usize,
    /// Answered with a result.
    pub completed: usize,
    /// Answered with an error, or not at all.
    pub failed: usize,
    /// Completed requests that found its pool empty.
    pub waited_for_offline: usize,
    /// `waited_for_offline / completed`.
    pub waited_fraction: f64,
    /// Completed requests equal to the oracle (`None`: not checked).
    pub bit_exact: Option<usize>,
    /// Arrival to result.
    pub latency: Latency,
    /// Completed requests per second, its first arrival to its last result.
    pub throughput: f64,
    /// Its pool at the end.
    pub pool: PoolState,
}

/// One unloaded measurement, on a fresh session.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UnloadedSample {
    /// One request, empty pool: offline then online, arrival to result.
    pub latency_seconds: f64,
    /// One request served from a pool entry: online phase only.
    pub online_only_latency_seconds: f64,
    /// The cold request's offline phase (client clock).
    pub offline_seconds: f64,
    /// Its online phase (client clock).
    pub online_seconds: f64,
    /// The client's CPU time in the cold request's offline phase.
    pub client_offline_cpu: Option<Cpu>,
    /// The server's CPU time in it.
    pub server_offline_cpu: Option<Cpu>,
    /// The client's CPU time in the online phase served from a pool entry.
    pub client_online_cpu: Option<Cpu>,
    /// The server's CPU time in it.
    pub server_online_cpu: Option<Cpu>,
    /// Both requests equal the oracle (`None`: not checked).
    pub bit_exact: Option<bool>,
}

/// Summaries over the unloaded measurements (see [`crate::stats`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UnloadedSummary {
    /// Of [`UnloadedSample::latency_seconds`].
    pub latency_seconds: Option<Summary>,
    /// Of [`UnloadedSample::online_only_latency_seconds`].
    pub online_only_latency_seconds: Option<Summary>,
    /// Of [`UnloadedSample::offline_seconds`].
    pub offline_seconds: Option<Summary>,
    /// Of [`UnloadedSample::online_seconds`].
    pub online_seconds: Option<Summary>,
    /// Client CPU seconds (user + system), offline.
    pub client_offline_cpu_seconds: Option<Summary>,
    /// Server CPU seconds, offline.
    pub server_offline_cpu_seconds: Option<Summary>,
    /// Client CPU seconds, online (from a pool entry).
    pub client_online_cpu_seconds: Option<Summary>,
    /// Server CPU seconds, online (from a pool entry).
    pub server_online_cpu_seconds: Option<Summary>,
}

impl UnloadedSummary {
    fn of(xs: &[UnloadedSample]) -> Self {
        let time =
            |f: fn(&UnloadedSample) -> f64| Summary::of(&xs.iter().map(f).collect::<Vec<_>>());
        let cpu = |f: fn(&UnloadedSample) -> Option<Cpu>| {
            let v: Option<Vec<f64>> = xs.iter().map(|x| f(x).map(Cpu::total)).collect();
            Summary::of(&v?)
        };
        Self {
            latency_seconds: time(|x| x.latency_seconds),
            online_only_latency_seconds: time(|x| x.online_only_latency_seconds),
            offline_seconds: time(|x| x.offline_seconds),
            online_seconds: time(|x| x.online_seconds),
            client_offline_cpu_seconds: cpu(|x| x.client_offline_cpu),
            server_offline_cpu_seconds: cpu(|x| x.server_offline_cpu),
            client_online_cpu_seconds: cpu(|x| x.client_online_cpu),
            server_online_cpu_seconds: cpu(|x| x.server_online_cpu),
        }
    }
}

/// Bytes and rounds of one inference: counted, the same in every repeat.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    /// Offline bytes client to server.
    pub offline_sent: u64,
    /// Offline bytes server to client.
    pub offline_received: u64,
    /// Online bytes client to server.
    pub online_sent: u64,
    /// Online bytes server to client.
    pub online_received: u64,
    /// Client storage per preprocessed inference.
    pub client_storage_bytes: u64,
    /// Online round trips.
    pub online_round_trips: u64,
}

/// A model's cost with nothing else running: the medians of `samples`
/// (one fresh session each), bytes, and the summaries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unloaded {
    /// One request, empty pool: offline then online, arrival to result (median).
    pub latency_seconds: f64,
    /// One request served from a pool entry: online phase only (median).
    pub online_only_latency_seconds: f64,
    /// The cold request's offline phase, client clock (median).
    pub offline_seconds: f64,
    /// Its online phase, client clock (median).
    pub online_seconds: f64,
    /// Offline bytes, both directions.
    pub offline_bytes: u64,
    /// Online bytes, both directions.
    pub online_bytes: u64,
    /// Offline bytes client to server.
    pub offline_bytes_sent: u64,
    /// Offline bytes server to client.
    pub offline_bytes_received: u64,
    /// Online bytes client to server.
    pub online_bytes_sent: u64,
    /// Online bytes server to client.
    pub online_bytes_received: u64,
    /// Client storage per preprocessed inference.
    pub client_storage_bytes: u64,
    /// Online round trips of one inference.
    #[serde(default)]
    pub online_round_trips: u64,
    /// Every request equals the oracle (`None`: not checked).
    pub bit_exact: Option<bool>,
    /// The measurements, in order.
    #[serde(default)]
    pub samples: Vec<UnloadedSample>,
    /// Warm-up measurements, discarded.
    #[serde(default)]
    pub warmup: Vec<UnloadedSample>,
    /// Over `samples` (or, for a file without samples, its single figures).
    #[serde(default)]
    pub summary: UnloadedSummary,
}

impl Unloaded {
    /// From measurements (at least one) and the counted traffic.
    pub fn new(samples: Vec<UnloadedSample>, warmup: Vec<UnloadedSample>, t: Traffic) -> Self {
        let summary = UnloadedSummary::of(&samples);
        let median = |s: &Option<Summary>| s.as_ref().map_or(f64::NAN, |s| s.median);
        Self {
            latency_seconds: median(&summary.latency_seconds),
            online_only_latency_seconds: median(&summary.online_only_latency_seconds),
            offline_seconds: median(&summary.offline_seconds),
            online_seconds: median(&summary.online_seconds),
            offline_bytes: t.offline_sent + t.offline_received,
            online_bytes: t.online_sent + t.online_received,
            offline_bytes_sent: t.offline_sent,
            offline_bytes_received: t.offline_received,
            online_bytes_sent: t.online_sent,
            online_bytes_received: t.online_received,
            client_storage_bytes: t.client_storage_bytes,
            online_round_trips: t.online_round_trips,
            bit_exact: samples
                .iter()
                .chain(&warmup)
                .map(|s| s.bit_exact)
                .collect::<Option<Vec<bool>>>()
                .map(|v| v.iter().all(|&b| b)),
            samples,
            warmup,
            summary,
        }
    }

    /// Fills the summaries of a result read from a file written before
    /// repeats existed: one sample each, the single figures.
    fn fill_summary(&mut self) {
        if self.summary.latency_seconds.is_some() {
            return;
        }
        if !self.samples.is_empty() {
            self.summary = UnloadedSummary::of(&self.samples);
            return;
        }
        let one = |x: f64| Summary::of(&[x]);
        self.summary.latency_seconds = one(self.latency_seconds);
        self.summary.online_only_latency_seconds = one(self.online_only_latency_seconds);
        self.summary.offline_seconds = one(self.offline_seconds);
        self.summary.online_seconds = one(self.online_seconds);
    }
}

/// One model's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelResult {
    /// As given.
    pub spec: String,
    /// Canonical spec.
    pub canonical: String,
    /// Activation protocol of this run.
    #[serde(default)]
    pub relu_mode: ReluMode,
    /// ReLUs kept.
    pub relus: u64,
    /// Identity (truncation-only) positions.
    pub identity: u64,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Without load.
    pub unloaded: Unloaded,
    /// Pool capacity (entries) for this model under the budget.
    pub pool_capacity: usize,
    /// Per rate, in the order run.
    pub rates: Vec<RateResult>,
    /// Highest tested rate (requests/s) with mean latency within 2x the
    /// (median) unloaded latency; `None` if no tested rate is.
    pub sustainable_rate: Option<f64>,
    /// The machine's load while this model was measured.
    #[serde(default)]
    pub machine: Option<MachineLoad>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadResult {
    /// Requests per rate.
    pub requests: usize,
    /// Unloaded measurements per model (fresh sessions).
    #[serde(default = "one")]
    pub repeat: usize,
    /// Warm-up measurements per model, discarded.
    #[serde(default)]
    pub warmup: usize,
    /// Seed.
    pub seed: u64,
    /// Pool byte budget.
    pub pool_bytes: u64,
    /// Pool count limit (client).
    pub pool_count: Option<usize>,
    /// The server's per-session limit.
    pub server_pool_max: u32,
    /// Whether pools were filled before each rate's first arrival.
    pub prefill: bool,
    /// The emulated link, if any.
    pub link: Option<String>,
    /// Client sessions at once per rate, each with its own connection,
    /// pool and certificate.
    #[serde(default = "one")]
    pub clients: usize,
    /// The address of a server this run did not start (`--connect`);
    /// `None`: a server process started by the run on loopback.
    #[serde(default)]
    pub server: Option<String>,
    /// Whether answers were checked against the fixed-point oracle
    /// (`checked`) or not (`skipped: ...`, a remote server without `--weights`).
    #[serde(default = "checked")]
    pub oracle: String,
    /// Logical CPUs of this machine.
    pub cpus: usize,
    /// Per model.
    pub models: Vec<ModelResult>,
    /// The machine's load over the whole run.
    #[serde(default)]
    pub machine: Option<MachineLoad>,
}

fn one() -> usize {
    1
}

fn checked() -> String {
    ORACLE_CHECKED.into()
}

/// [`LoadResult::oracle`] when every answer was checked.
pub const ORACLE_CHECKED: &str = "checked";

/// [`LoadResult::oracle`] for a remote server without `--weights`.
pub const ORACLE_SKIPPED: &str =
    "skipped: the server's weights were not given (--weights), answers are not checked";

impl LoadResult {
    /// Several runs' JSON (`pi-bench load --json`) as one result: the
    /// settings of the first, the models of all, in order.
    ///
    /// # Errors
    /// If a file cannot be read or is not such JSON.
    pub fn merge(paths: &[PathBuf]) -> Result<Self> {
        let mut out: Option<Self> = None;
        for p in paths {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let mut r: Self = serde_json::from_str(&text)
                .with_context(|| format!("{}: not the JSON of pi-bench load", p.display()))?;
            for m in &mut r.models {
                m.unloaded.fill_summary();
                for x in &mut m.rates {
                    x.latency.fill_support(x.completed);
                    x.queueing_delay.fill_support(x.completed);
                }
            }
            match &mut out {
                None => out = Some(r),
                Some(o) => {
                    o.models.extend(r.models);
                    // The whole is busy if a part was.
                    if let (Some(a), Some(b)) = (&mut o.machine, r.machine)
                        && b.busy
                        && !a.busy
                    {
                        *a = b;
                    }
                }
            }
        }
        out.context("no result files given")
    }

    /// Every warning about a busy machine, for the model it concerns.
    pub fn warnings(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .models
            .iter()
            .filter_map(|m| {
                let text = m.machine.as_ref()?.warning.as_ref()?;
                Some(format!("{} [{}]: {text}", m.spec, m.relu_mode))
            })
            .collect();
        if w.is_empty()
            && let Some(t) = self.machine.as_ref().and_then(|m| m.warning.clone())
        {
            w.push(t);
        }
        w
    }
}

/// Highest rate whose mean latency is within 2x of `unloaded`.
pub fn sustainable_rate(rates: &[RateResult], unloaded: f64) -> Option<f64> {
    rates
        .iter()
        .filter(|r| r.completed > 0 && r.failed == 0 && r.latency.mean <= 2.0 * unloaded)
        .map(|r| r.rate_per_second)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_statistics_of_known_requests() {
        let xs: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let l = Latency::of(&xs);
        assert_eq!(
            (l.n, l.p50, l.p95, l.p99, l.min, l.max),
            (100, 50.0, Some(95.0), Some(99.0), 1.0, 100.0)
        );
        assert_eq!(l.mean, 50.5);
        let (lo, hi) = (l.mean_ci95_low.unwrap(), l.mean_ci95_high.unwrap());
        assert!(lo < 50.5 && 50.5 < hi && (hi - lo - 2.0 * (50.5 - lo)).abs() < 1e-9);
        assert_eq!(Latency::of(&[]), Latency::default());
        // Widely spread: the t interval would reach below zero.
        assert_eq!(Latency::of(&[0.1, 5.0]).mean_ci95_low, Some(0.0));
        // Six requests: no p95 or p99; the tail is p83, the 5th of 6.
        let six = Latency::of(&[0.6, 0.1, 0.5, 0.2, 0.4, 0.3]);
        assert_eq!((six.p95, six.p99, six.tail), (None, None, Some(0.5)));
        let one = Latency::of(&[0.3]);
        assert_eq!((one.p50, one.p99, one.mean_ci95_low), (0.3, None, None));
    }

    #[test]
    fn old_result_files_still_read() {
        // README's comparison of 2026-11-27, written by `pi-bench load
        // --json` before repeats and CPU times existed: one sample per
        // figure (kept as fixtures since the comparison was re-measured).
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/load-2026-11-27/"
        );
        let files: Vec<PathBuf> = ["1-resnet18-m16.json", "4-resnet18-m64.json"]
            .iter()
            .map(|f| PathBuf::from(dir).join(f))
            .collect();
        let r = LoadResult::merge(&files).unwrap();
        assert_eq!((r.repeat, r.models.len()), (1, 2));
        let u = &r.models[1].unloaded;
        let s = u.summary.offline_seconds.as_ref().unwrap();
        assert_eq!(
            (s.n, s.median, s.samples.clone()),
            (1, u.offline_seconds, vec![u.offline_seconds])
        );
        assert_eq!(s.ci_coverage, 0.0);
        // Two requests per rate: no p95 or p99, whatever the file said.
        let l = &r.models[0].rates[0].latency;
        assert_eq!((l.n, l.p95, l.p99), (2, None, None));
        assert!(r.models[0].machine.is_none() && r.warnings().is_empty());
        // Written before several clients and remote servers: one client,
        // a local server, every answer checked.
        assert_eq!((r.clients, r.server.as_deref()), (1, None));
        assert_eq!(r.oracle, ORACLE_CHECKED);
        assert_eq!(r.models[0].unloaded.bit_exact, Some(true));
        assert_eq!(r.models[0].rates[0].bit_exact, Some(2));
        assert!(r.models[0].rates[0].per_client.is_empty());
    }

    fn rate(per_second: f64, mean: f64, failed: usize) -> RateResult {
        RateResult {
            rate: per_second.to_string(),
            rate_per_second: per_second,
            requests: 2,
            completed: 2 - failed,
            failed,
            waited_for_offline: 0,
            waited_fraction: 0.0,
            bit_exact: Some(2 - failed),
            latency: Latency {
                mean,
                ..Latency::default()
            },
            queueing_delay: Latency::default(),
            mean_online_seconds: 0.0,
            throughput: 0.0,
            seconds: 0.0,
            client_cpu: None,
            server_cpu: None,
            server_peak_rss_bytes: None,
            pool_at_start: 0,
            pool: PoolState::default(),
            per_client: Vec::new(),
            close_errors: Vec::new(),
        }
    }

    #[test]
    fn the_sustainable_rate_is_the_highest_within_twice_unloaded() {
        let rs = [
            rate(1.0, 0.5, 0),
            rate(2.0, 1.9, 0),
            rate(4.0, 2.1, 0),
            rate(8.0, 1.0, 1),
        ];
        assert_eq!(sustainable_rate(&rs, 1.0), Some(2.0));
        assert_eq!(sustainable_rate(&rs[2..], 1.0), None);
    }

    #[test]
    fn unloaded_figures_are_the_medians_of_the_samples() {
        let s = |x: f64| UnloadedSample {
            latency_seconds: x,
            online_only_latency_seconds: x / 10.0,
            offline_seconds: x - 0.5,
            online_seconds: 0.5,
            client_offline_cpu: Some(Cpu {
                user: x,
                system: 0.1,
            }),
            bit_exact: Some(true),
            ..UnloadedSample::default()
        };
        let u = Unloaded::new(
            vec![s(3.0), s(1.0), s(2.0)],
            vec![s(9.0)],
            Traffic::default(),
        );
        assert_eq!((u.latency_seconds, u.offline_seconds), (2.0, 1.5));
        assert_eq!(
            u.summary.latency_seconds.as_ref().unwrap().samples,
            [3.0, 1.0, 2.0]
        );
        assert_eq!(
            u.summary
                .client_offline_cpu_seconds
                .as_ref()
                .unwrap()
                .median,
            2.1
        );
        assert!(u.summary.server_offline_cpu_seconds.is_none());
        assert_eq!(u.bit_exact, Some(true));
        let unchecked = UnloadedSample {
            bit_exact: None,
            ..s(1.0)
        };
        let u = Unloaded::new(vec![s(1.0), unchecked], vec![], Traffic::default());
        assert_eq!(u.bit_exact, None);
    }
}
