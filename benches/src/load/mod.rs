//! `pi-bench load`: latency of private inference under a stream of requests.
//!
//! For each model, a real `pi-server` process and this process as the client
//! talk over loopback TCP + TLS 1.3 with throwaway certificates. The server
//! process is this executable re-run with the hidden `server` subcommand,
//! which is the `pi-server` command line verbatim ([`pi_server::cli::serve`],
//! stopping when its standard input closes), so no second binary has to be
//! built or found. The client is the `pi-client` library: one session
//! driven by a [`Pool`] of preprocessed inferences ([`pi_client::pool`]).
//!
//! Measured per model:
//! - *unloaded latency*: one isolated request on a fresh session with an
//!   empty pool, offline then online phase (arrival to result, client clock).
//!   Also the *online-only latency*: one request served from a pool entry
//!   made beforehand, nothing else running.
//! - per arrival rate: a fresh session and pool (empty, or full with
//!   `prefill`), `requests` requests arriving as a Poisson process (seeded
//!   exponential inter-arrival times), each a full private inference on one
//!   of four seeded random inputs whose results are checked bit for bit
//!   against the fixed-point oracle. Reported: mean, p50, p95, p99 latency
//!   (arrival to result), mean queueing delay (arrival to the start of the
//!   request's online phase), the fraction of requests that found the pool
//!   empty and waited for an offline phase of their own, achieved throughput
//!   (completed requests over first arrival to last result) and the pool's
//!   state at the end.
//! - *sustainable rate*: the highest tested rate whose mean latency is at
//!   most twice the unloaded latency.
//!
//! A rate is requests per second, or a multiple of the model's unloaded
//! capacity with an `x` suffix (`0.5x` = half of 1 / unloaded latency).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pi_client::pool::{Pool, PoolConfig, PoolState, Served, answer};
use pi_models::fixed::{forward_fixed, quantize_input};
use pi_models::weights::init_weights;
use pi_models::{Model, RingParams};
use pi_protocol::transport::pki::{TlsFiles, keygen};
use pi_protocol::transport::{ChannelConfig, Link, TlsConnector};
use pi_protocol::{ClientConfig, ClientReport, ClientSession, ReluMode};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// An arrival rate as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// Requests per second.
    PerSecond(f64),
    /// A multiple of the model's unloaded capacity (1 / unloaded latency).
    Relative(f64),
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (num, rel) = match s.strip_suffix('x') {
            Some(n) => (n, true),
            None => (s, false),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("rate {s:?}: expected requests per second (2.5) or a multiple of the unloaded capacity (0.5x)"))?;
        if !(v.is_finite() && v > 0.0 && v <= 1e6) {
            return Err(format!("rate {s:?} must be positive and at most 1e6"));
        }
        Ok(if rel {
            Self::Relative(v)
        } else {
            Self::PerSecond(v)
        })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PerSecond(v) => write!(f, "{v}"),
            Self::Relative(v) => write!(f, "{v}x"),
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Networks (spec, preset or model file), one curve each.
    pub specs: Vec<String>,
    /// Arrival rates, run in the order given.
    pub rates: Vec<Rate>,
    /// Requests per rate.
    pub requests: usize,
    /// Client pool budget in bytes.
    pub pool_bytes: u64,
    /// Client pool count limit (the server's `pool_max` applies too).
    pub pool_count: usize,
    /// The server's per-session limit of pending preprocessed inferences.
    pub server_pool_max: u32,
    /// Fill the pool before the first arrival of each rate.
    pub prefill: bool,
    /// Seed of weights, inputs and arrival times.
    pub seed: u64,
    /// Emulated link on the client's connection (shapes both directions).
    pub link: Option<Link>,
    /// Activation protocols to measure, each model in each mode (the server
    /// allows both; the client asks for one per run).
    pub relu: Vec<ReluMode>,
    /// The executable to run as the server (`EXE server ...`); default this one.
    pub server_exe: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Seeded Poisson arrivals: exponential inter-arrival times of mean 1 / rate.
pub struct Poisson {
    rng: ChaCha20Rng,
    rate: f64,
}

impl Poisson {
    /// Arrivals at `rate` per second from `seed`.
    ///
    /// # Panics
    /// If `rate` is not positive and finite (a caller's bug; the command line checks it).
    pub fn new(rate: f64, seed: u64) -> Self {
        assert!(rate.is_finite() && rate > 0.0, "rate must be positive");
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
            rate,
        }
    }

    /// The next inter-arrival time in seconds.
    pub fn next_gap(&mut self) -> f64 {
        // u in (0, 1]: 53 random bits, never 0 so ln(u) is finite.
        let u = ((self.rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        -u.ln() / self.rate
    }

    /// Arrival times (seconds from the start) of `n` requests.
    pub fn arrivals(&mut self, n: usize) -> Vec<f64> {
        let mut t = 0.0;
        (0..n)
            .map(|_| {
                t += self.next_gap();
                t
            })
            .collect()
    }
}

/// Latency statistics (seconds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Of `xs` (all zero if empty).
    pub fn of(xs: &[f64]) -> Self {
        if xs.is_empty() {
            return Self::default();
        }
        let mut s = xs.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Self {
            mean: s.iter().sum::<f64>() / s.len() as f64,
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            min: s[0],
            max: s[s.len() - 1],
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
    /// Completed requests whose logits equal the oracle's.
    pub bit_exact: usize,
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
    /// Pool size when the first request arrived.
    pub pool_at_start: usize,
    /// The pool at the end of the run.
    pub pool: PoolState,
}

/// A model's cost with nothing else running.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unloaded {
    /// One request, empty pool: offline then online, arrival to result.
    pub latency_seconds: f64,
    /// One request served from a pool entry: online phase only.
    pub online_only_latency_seconds: f64,
    /// The cold request's offline phase (client clock).
    pub offline_seconds: f64,
    /// Its online phase (client clock).
    pub online_seconds: f64,
    /// Offline bytes, both directions.
    pub offline_bytes: u64,
    /// Online bytes, both directions.
    pub online_bytes: u64,
    /// Offline bytes client to server / server to client.
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
    /// Both requests equal the oracle.
    pub bit_exact: bool,
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
    /// unloaded latency; `None` if no tested rate is.
    pub sustainable_rate: Option<f64>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadResult {
    /// Requests per rate.
    pub requests: usize,
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
    /// Logical CPUs of this machine.
    pub cpus: usize,
    /// Per model.
    pub models: Vec<ModelResult>,
}

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
            let r: Self = serde_json::from_str(&text)
                .with_context(|| format!("{}: not the JSON of pi-bench load", p.display()))?;
            match &mut out {
                None => out = Some(r),
                Some(o) => o.models.extend(r.models),
            }
        }
        out.context("no result files given")
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

/// A `pi-server` child process (stops when its standard input closes).
struct ServerProcess {
    child: Child,
    addr: String,
}

impl ServerProcess {
    fn start(
        exe: &Path,
        spec: &str,
        weights: Option<&Path>,
        keys: &Path,
        pool_max: u32,
    ) -> Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.arg("server").args(["--model", spec]);
        if let Some(w) = weights {
            cmd.arg("--weights").arg(w);
        }
        cmd.args(["--listen", "127.0.0.1:0", "--tls"])
            .arg(keys)
            .args(["--pool-max", &pool_max.to_string()])
            .args(["--relu", "gc,ot"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start the server process {}", exe.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the server's first line")?;
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the server process did not start (first line {line:?})");
        };
        Ok(Self {
            addr: addr.to_string(),
            child,
        })
    }

    /// Closes its standard input (it stops) and waits.
    fn stop(mut self) -> Result<()> {
        drop(self.child.stdin.take());
        let status = self.child.wait().context("waiting for the server")?;
        if !status.success() {
            bail!("the server process exited with {status}");
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Only if `stop` was not reached (an error path): do not leave it running.
        if self.child.try_wait().ok().flatten().is_none() && self.child.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A seeded random input in [-2, 2) of shape `shape`.
fn random_input(shape: &[usize], seed: u64) -> Vec<f32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    (0..n)
        .map(|_| (rng.next_u32() as f64 / u32::MAX as f64 * 4.0 - 2.0) as f32)
        .collect()
}

/// Inputs (quantised) and their oracle logits.
struct Inputs {
    xs: Vec<Vec<u64>>,
    oracle: Vec<Vec<i64>>,
}

impl Inputs {
    fn check(&self, i: usize, r: &ClientReport) -> bool {
        r.logits_fixed == self.oracle[i % self.xs.len()]
    }
}

/// What a progress display is told.
pub trait Progress {
    /// A new stage (model and rate) with `len` steps.
    fn stage(&mut self, name: &str, len: u64);
    /// One step of the stage done.
    fn step(&mut self);
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {
    fn stage(&mut self, _: &str, _: u64) {}
    fn step(&mut self) {}
}

struct Connection {
    connector: TlsConnector,
    addr: String,
    relu: ReluMode,
}

impl Connection {
    async fn session(&self) -> Result<(pi_protocol::transport::TlsChannel, ClientSession)> {
        let mut ch = self
            .connector
            .connect(self.addr.as_str(), "localhost")
            .await
            .context("connecting to the server")?;
        let config = ClientConfig {
            relu: self.relu,
            ..ClientConfig::default()
        };
        let session = ClientSession::handshake(&mut ch, &config)
            .await
            .context("session handshake")?;
        Ok((ch, session))
    }
}

/// Runs the benchmark for every model.
pub fn run(opts: &LoadOptions, progress: &mut dyn Progress) -> Result<LoadResult> {
    if opts.specs.is_empty() || opts.rates.is_empty() {
        bail!("give at least one model and one rate (--rate R[,R...])");
    }
    if opts.requests == 0 {
        bail!("--requests must be at least 1");
    }
    if opts.relu.is_empty() {
        bail!("give at least one ReLU mode (--relu gc, ot or gc,ot)");
    }
    if opts.server_pool_max == 0 || opts.pool_count == 0 {
        bail!("pool limits must be at least 1");
    }
    let exe = match &opts.server_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot locate this executable")?,
    };
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let keys = tmp.path().join("keys");
    keygen(&keys, &[], &["1".into()]).context("throwaway certificates")?;
    let client_tls = TlsFiles::client(&keys, "1").load().context("client keys")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let mut models = Vec::new();
    for (mi, spec) in opts.specs.iter().enumerate() {
        let model = Model::resolve(spec).with_context(|| format!("network {spec:?}"))?;
        let seed = opts.seed.wrapping_add(1000 * mi as u64);
        let weights = match &model.weights {
            Some(_) => None,
            None => {
                let path = tmp.path().join(format!("weights-{mi}.safetensors"));
                let bytes = init_weights(&model.network, seed).context("random weights")?;
                std::fs::write(&path, bytes).context("writing the random weights")?;
                Some(path)
            }
        };
        // Oracle on four inputs, from the same weight file the server loads.
        let folded = model.load_weights(weights.as_deref()).context("weights")?;
        let quant = model
            .quantize(&folded, RingParams::default())
            .context("quantising the weights")?;
        let s = model.network.tensors[model.network.input].shape;
        let mut inputs = Inputs {
            xs: Vec::new(),
            oracle: Vec::new(),
        };
        for k in 0..4u64 {
            let raw = random_input(&[s.c, s.h, s.w], seed.wrapping_add(k + 1));
            let x = model
                .prepare_input(raw, &[s.c, s.h, s.w])
                .context("input")?;
            let q = quantize_input(&x, quant.ring).context("quantising the input")?;
            inputs.oracle.push(
                forward_fixed(&model.network, &quant, &q)
                    .iter()
                    .map(|&v| quant.ring.to_signed(v))
                    .collect(),
            );
            inputs.xs.push(q);
        }
        let stats = model.network.stats();
        for &relu in &opts.relu {
            let server =
                ServerProcess::start(&exe, spec, weights.as_deref(), &keys, opts.server_pool_max)?;
            let conn = Connection {
                connector: TlsConnector::new(
                    &client_tls,
                    ChannelConfig {
                        link: opts.link,
                        ..ChannelConfig::default()
                    },
                )?,
                addr: server.addr.clone(),
                relu,
            };
            let name = if opts.relu.len() > 1 {
                format!("{spec} [{relu}]")
            } else {
                spec.clone()
            };
            let result = rt.block_on(run_model(opts, &name, &conn, &inputs, seed, progress));
            server.stop()?;
            let (unloaded, capacity, rates) =
                result.with_context(|| format!("load on {spec}, ReLU mode {relu}"))?;
            models.push(ModelResult {
                spec: spec.clone(),
                canonical: model.network.spec.canonical(),
                relu_mode: relu,
                relus: stats.relus,
                identity: stats.identity,
                macs: stats.macs,
                sustainable_rate: sustainable_rate(&rates, unloaded.latency_seconds),
                unloaded,
                pool_capacity: capacity,
                rates,
            });
        }
    }
    Ok(LoadResult {
        requests: opts.requests,
        seed: opts.seed,
        pool_bytes: opts.pool_bytes,
        pool_count: (opts.pool_count != usize::MAX).then_some(opts.pool_count),
        server_pool_max: opts.server_pool_max,
        prefill: opts.prefill,
        link: opts.link.map(|l| l.to_string()),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        models,
    })
}

async fn run_model(
    opts: &LoadOptions,
    spec: &str,
    conn: &Connection,
    inputs: &Inputs,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<(Unloaded, usize, Vec<RateResult>)> {
    progress.stage(&format!("{spec}: unloaded"), 2);
    // Unloaded: a cold request (offline + online), then one from a pool entry.
    let (mut ch, mut session) = conn.session().await?;
    let t = Instant::now();
    let cold = session.infer(&mut ch, &inputs.xs[0]).await?;
    let latency_seconds = t.elapsed().as_secs_f64();
    progress.step();
    let pre = session.preprocess(&mut ch).await?;
    let t = Instant::now();
    let warm = session.online(&mut ch, pre, &inputs.xs[1]).await?;
    let online_only = t.elapsed().as_secs_f64();
    progress.step();
    session.close(&mut ch).await?;
    let _ = pi_protocol::transport::Channel::close(&mut ch).await;
    let unloaded = Unloaded {
        latency_seconds,
        online_only_latency_seconds: online_only,
        offline_seconds: cold.offline.seconds,
        online_seconds: cold.online.seconds,
        offline_bytes: cold.offline.bytes_sent + cold.offline.bytes_received,
        online_bytes: cold.online.bytes_sent + cold.online.bytes_received,
        offline_bytes_sent: cold.offline.bytes_sent,
        offline_bytes_received: cold.offline.bytes_received,
        online_bytes_sent: cold.online.bytes_sent,
        online_bytes_received: cold.online.bytes_received,
        client_storage_bytes: cold.client_storage_bytes,
        online_round_trips: cold.online_round_trips,
        bit_exact: inputs.check(0, &cold) && inputs.check(1, &warm),
    };
    let mut rates = Vec::new();
    let mut capacity = 0;
    for (ri, rate) in opts.rates.iter().enumerate() {
        let per_second = match *rate {
            Rate::PerSecond(r) => r,
            Rate::Relative(m) => m / latency_seconds.max(1e-9),
        };
        progress.stage(&format!("{spec} @ {per_second:.3}/s"), opts.requests as u64);
        let (ch, session) = conn.session().await?;
        let mut pool = Pool::start(
            ch,
            session,
            PoolConfig {
                max_bytes: opts.pool_bytes,
                max_count: opts.pool_count,
                background: true,
            },
        )?;
        capacity = pool.state().capacity;
        if opts.prefill {
            pool.wait_for(capacity).await?;
        }
        let pool_at_start = pool.state().size;
        let arrivals =
            Poisson::new(per_second, seed.wrapping_add(7 * ri as u64 + 1)).arrivals(opts.requests);
        let start = tokio::time::Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut answers: Vec<(usize, pi_protocol::Result<Served>)> = Vec::new();
        for (i, &at) in arrivals.iter().enumerate() {
            let when = start + Duration::from_secs_f64(at);
            // Until the arrival time, take the answers that come in.
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(when) => break,
                    Some(a) = rx.recv() => {
                        progress.step();
                        answers.push(a);
                    }
                }
            }
            let reply = pool
                .submit_at(inputs.xs[i % inputs.xs.len()].clone(), when.into_std())
                .await;
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send((i, answer(reply).await));
            });
        }
        drop(tx);
        while let Some(a) = rx.recv().await {
            progress.step();
            answers.push(a);
        }
        let end_state = pool.close().await.context("closing the pool")?;
        rates.push(summarise(
            rate,
            per_second,
            opts.requests,
            pool_at_start,
            &answers,
            inputs,
            start.into_std(),
            end_state,
        ));
    }
    Ok((unloaded, capacity, rates))
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    rate: &Rate,
    per_second: f64,
    requests: usize,
    pool_at_start: usize,
    answers: &[(usize, pi_protocol::Result<Served>)],
    inputs: &Inputs,
    start: Instant,
    pool: PoolState,
) -> RateResult {
    let ok: Vec<(usize, &Served)> = answers
        .iter()
        .filter_map(|(i, a)| a.as_ref().ok().map(|s| (*i, s)))
        .collect();
    let failed = answers.len() - ok.len() + (requests - answers.len());
    let lat: Vec<f64> = ok.iter().map(|(_, s)| s.latency()).collect();
    let queue: Vec<f64> = ok.iter().map(|(_, s)| s.queueing_delay()).collect();
    let waited = ok.iter().filter(|(_, s)| s.waited_for_offline).count();
    let first = ok.iter().map(|(_, s)| s.arrived).min().unwrap_or(start);
    let last = ok.iter().map(|(_, s)| s.finished).max().unwrap_or(start);
    let seconds = last.saturating_duration_since(first).as_secs_f64();
    RateResult {
        rate: rate.to_string(),
        rate_per_second: per_second,
        requests,
        completed: ok.len(),
        failed,
        waited_for_offline: waited,
        waited_fraction: if ok.is_empty() {
            0.0
        } else {
            waited as f64 / ok.len() as f64
        },
        bit_exact: ok
            .iter()
            .filter(|(i, s)| inputs.check(*i, &s.report))
            .count(),
        latency: Latency::of(&lat),
        queueing_delay: Latency::of(&queue),
        mean_online_seconds: if ok.is_empty() {
            0.0
        } else {
            ok.iter().map(|(_, s)| s.report.online.seconds).sum::<f64>() / ok.len() as f64
        },
        throughput: if seconds > 0.0 {
            ok.len() as f64 / seconds
        } else {
            0.0
        },
        seconds,
        pool_at_start,
        pool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_arrivals_are_seeded_with_the_right_mean_gap() {
        let a = Poisson::new(4.0, 9).arrivals(50_000);
        assert_eq!(a, Poisson::new(4.0, 9).arrivals(50_000));
        assert_ne!(a[..10], Poisson::new(4.0, 10).arrivals(10)[..]);
        assert!(a.windows(2).all(|w| w[1] > w[0]));
        // Mean gap 1/4 s: the standard error over 50 000 gaps is 0.25/√50000
        // ≈ 0.0011 s, so 2% (about 4.5 standard errors) fails only on a bug.
        let mean = a[a.len() - 1] / a.len() as f64;
        assert!((mean - 0.25).abs() < 0.005, "mean gap {mean}");
        // Exponential: the standard deviation equals the mean.
        let mut prev = 0.0;
        let gaps: Vec<f64> = a
            .iter()
            .map(|&t| {
                let g = t - prev;
                prev = t;
                g
            })
            .collect();
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((var.sqrt() - 0.25).abs() < 0.01, "sd {}", var.sqrt());
    }

    #[test]
    fn percentiles_are_nearest_rank_and_ordered() {
        let xs: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let l = Latency::of(&xs);
        assert_eq!(
            (l.p50, l.p95, l.p99, l.min, l.max),
            (50.0, 95.0, 99.0, 1.0, 100.0)
        );
        assert_eq!(l.mean, 50.5);
        assert_eq!(Latency::of(&[]), Latency::default());
        let one = Latency::of(&[0.3]);
        assert_eq!((one.p50, one.p99), (0.3, 0.3));
    }

    #[test]
    fn rates_parse_absolute_and_relative() {
        assert_eq!("2.5".parse::<Rate>(), Ok(Rate::PerSecond(2.5)));
        assert_eq!("0.5x".parse::<Rate>(), Ok(Rate::Relative(0.5)));
        for bad in ["0", "-1", "x", "nan", "1e9", "2y"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
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
            bit_exact: 2 - failed,
            latency: Latency {
                mean,
                ..Latency::default()
            },
            queueing_delay: Latency::default(),
            mean_online_seconds: 0.0,
            throughput: 0.0,
            seconds: 0.0,
            pool_at_start: 0,
            pool: PoolState::default(),
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
}
