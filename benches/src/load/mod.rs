//! `pi-bench load`: latency of private inference under a stream of requests.
//!
//! For each model, a real `pi-server` process ([`crate::server_process`])
//! and this process as the client talk over loopback TCP + TLS 1.3 with
//! throwaway certificates. The client is the `pi-client` library: one
//! session driven by a [`Pool`] of preprocessed inferences
//! ([`pi_client::pool`]).
//!
//! Measured per model:
//! - *unloaded*, `repeat` times (after `warmup` discarded times), each on a
//!   fresh session: one request with an empty pool, offline then online
//!   phase (arrival to result, client clock), and one request served from a
//!   pool entry made beforehand (the *online-only latency*), nothing else
//!   running; with each party's CPU time (user + system, from the OS) in the
//!   first request's offline phase and the second's online phase. The
//!   figures are the medians, with [`crate::stats::Summary`] intervals.
//! - per arrival rate: a fresh session and pool (empty, or full with
//!   `prefill`), `requests` requests arriving as a Poisson process (seeded
//!   exponential inter-arrival times), each a full private inference on one
//!   of four seeded random inputs whose results are checked bit for bit
//!   against the fixed-point oracle. Reported: mean latency (arrival to
//!   result) with the 95% interval of the mean, p50, and p95 and p99 where
//!   the number of requests supports them (else the highest percentile it
//!   does), mean queueing delay (arrival to the start of the request's
//!   online phase), the fraction of requests that found the pool empty and
//!   waited for an offline phase of their own, achieved throughput
//!   (completed requests over first arrival to last result), both parties'
//!   CPU time and the pool's state at the end.
//! - *sustainable rate*: the highest tested rate whose mean latency is at
//!   most twice the (median) unloaded latency.
//! - the machine's load while the model was measured ([`crate::machine`]).
//!
//! A rate is requests per second, or a multiple of the model's unloaded
//! capacity with an `x` suffix (`0.5x` = half of 1 / unloaded latency).

mod arrivals;
mod result;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pi_client::pool::{Pool, PoolConfig, PoolState, Served, answer};
use pi_protocol::transport::pki::TlsFiles;
use pi_protocol::transport::{ChannelConfig, Link, TlsConnector};
use pi_protocol::{ClientConfig, ClientReport, ClientSession, ReluMode};

pub use arrivals::{Poisson, Rate};
pub use result::{
    Latency, LoadResult, ModelResult, RateResult, Traffic, Unloaded, UnloadedSample,
    UnloadedSummary, sustainable_rate,
};

use crate::machine::{self, Cpu, Mark};
use crate::server_process::{ServerProcess, ServerSpec, throwaway_keys};
use crate::workload::{Workload, random_input};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Networks (spec, preset or model file), one curve each.
    pub specs: Vec<String>,
    /// Arrival rates, run in the order given.
    pub rates: Vec<Rate>,
    /// Requests per rate.
    pub requests: usize,
    /// Unloaded measurements per model, each on a fresh session.
    pub repeat: usize,
    /// Unloaded measurements run first and discarded.
    pub warmup: usize,
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
    server_pid: u32,
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

    /// CPU time of (this process, the server process) so far.
    fn cpu(&self) -> (Option<Cpu>, Option<Cpu>) {
        (machine::self_cpu(), machine::process_cpu(self.server_pid))
    }
}

/// Runs the benchmark for every model.
///
/// # Errors
/// On bad options or specs, or a failed model run.
pub fn run(opts: &LoadOptions, progress: &mut dyn Progress) -> Result<LoadResult> {
    if opts.specs.is_empty() || opts.rates.is_empty() {
        bail!("give at least one model and one rate (--rate R[,R...])");
    }
    if opts.requests == 0 {
        bail!("--requests must be at least 1");
    }
    if opts.repeat == 0 {
        bail!("--repeat must be at least 1");
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
    let keys = throwaway_keys(tmp.path())?;
    let client_tls = TlsFiles::client(&keys, "1").load().context("client keys")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let whole = Mark::now();
    let mut models = Vec::new();
    for (mi, spec) in opts.specs.iter().enumerate() {
        let seed = opts.seed.wrapping_add(1000 * mi as u64);
        let work = Workload::new(
            spec,
            None,
            seed,
            tmp.path(),
            &format!("weights-{mi}.safetensors"),
        )?;
        // Oracle on four inputs, from the same weight file the server loads.
        let shape = work.input_shape();
        let mut inputs = Inputs {
            xs: Vec::new(),
            oracle: Vec::new(),
        };
        for k in 0..4u64 {
            let (x, oracle) = work.case(random_input(&shape, seed.wrapping_add(k + 1)), &shape)?;
            inputs.xs.push(x);
            inputs.oracle.push(oracle);
        }
        let stats = work.model.network.stats();
        for &relu in &opts.relu {
            let mark = Mark::now();
            let server = ServerProcess::start(&ServerSpec {
                exe: exe.clone(),
                spec: spec.clone(),
                weights: work.weights.clone(),
                keys: keys.clone(),
                pool_max: opts.server_pool_max,
                reports: false,
            })?;
            let conn = Connection {
                connector: TlsConnector::new(
                    &client_tls,
                    ChannelConfig {
                        link: opts.link,
                        ..ChannelConfig::default()
                    },
                )?,
                addr: server.addr().to_string(),
                relu,
                server_pid: server.pid(),
            };
            let name = if opts.relu.len() > 1 {
                format!("{spec} [{relu}]")
            } else {
                spec.clone()
            };
            let result = rt.block_on(run_model(opts, &name, &conn, &inputs, seed, progress));
            server.stop()?;
            let machine = mark.until_now();
            let (unloaded, capacity, rates) =
                result.with_context(|| format!("load on {spec}, ReLU mode {relu}"))?;
            models.push(ModelResult {
                spec: spec.clone(),
                canonical: work.model.network.spec.canonical(),
                relu_mode: relu,
                relus: stats.relus,
                identity: stats.identity,
                macs: stats.macs,
                sustainable_rate: sustainable_rate(&rates, unloaded.latency_seconds),
                unloaded,
                pool_capacity: capacity,
                rates,
                machine: Some(machine),
            });
        }
    }
    Ok(LoadResult {
        requests: opts.requests,
        repeat: opts.repeat,
        warmup: opts.warmup,
        seed: opts.seed,
        pool_bytes: opts.pool_bytes,
        pool_count: (opts.pool_count != usize::MAX).then_some(opts.pool_count),
        server_pool_max: opts.server_pool_max,
        prefill: opts.prefill,
        link: opts.link.map(|l| l.to_string()),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        models,
        machine: Some(whole.until_now()),
    })
}

/// One unloaded measurement on a fresh session: a cold request (offline
/// then online) and one served from a pool entry made beforehand.
async fn unloaded_once(conn: &Connection, inputs: &Inputs) -> Result<(UnloadedSample, Traffic)> {
    let (mut ch, mut session) = conn.session().await?;
    let c0 = conn.cpu();
    let t = Instant::now();
    let pre = session.preprocess(&mut ch).await?;
    let c1 = conn.cpu();
    let cold = session.online(&mut ch, pre, &inputs.xs[0]).await?;
    let latency_seconds = t.elapsed().as_secs_f64();
    let pre = session.preprocess(&mut ch).await?;
    let c2 = conn.cpu();
    let t = Instant::now();
    let warm = session.online(&mut ch, pre, &inputs.xs[1]).await?;
    let online_only = t.elapsed().as_secs_f64();
    let c3 = conn.cpu();
    session.close(&mut ch).await?;
    let _ = pi_protocol::transport::Channel::close(&mut ch).await;
    let sample = UnloadedSample {
        latency_seconds,
        online_only_latency_seconds: online_only,
        offline_seconds: cold.offline.seconds,
        online_seconds: cold.online.seconds,
        client_offline_cpu: Cpu::between(c0.0, c1.0),
        server_offline_cpu: Cpu::between(c0.1, c1.1),
        client_online_cpu: Cpu::between(c2.0, c3.0),
        server_online_cpu: Cpu::between(c2.1, c3.1),
        bit_exact: inputs.check(0, &cold) && inputs.check(1, &warm),
    };
    let traffic = Traffic {
        offline_sent: cold.offline.bytes_sent,
        offline_received: cold.offline.bytes_received,
        online_sent: cold.online.bytes_sent,
        online_received: cold.online.bytes_received,
        client_storage_bytes: cold.client_storage_bytes,
        online_round_trips: cold.online_round_trips,
    };
    Ok((sample, traffic))
}

async fn run_model(
    opts: &LoadOptions,
    spec: &str,
    conn: &Connection,
    inputs: &Inputs,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<(Unloaded, usize, Vec<RateResult>)> {
    progress.stage(
        &format!("{spec}: unloaded"),
        (opts.warmup + opts.repeat) as u64,
    );
    let (mut warmup, mut samples, mut traffic) = (Vec::new(), Vec::new(), Traffic::default());
    for i in 0..opts.warmup + opts.repeat {
        let (sample, t) = unloaded_once(conn, inputs).await?;
        traffic = t;
        if i < opts.warmup {
            warmup.push(sample);
        } else {
            samples.push(sample);
        }
        progress.step();
    }
    let unloaded = Unloaded::new(samples, warmup, traffic);
    let mut rates = Vec::new();
    let mut capacity = 0;
    for (ri, rate) in opts.rates.iter().enumerate() {
        let per_second = match *rate {
            Rate::PerSecond(r) => r,
            Rate::Relative(m) => m / unloaded.latency_seconds.max(1e-9),
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
        let cpu0 = conn.cpu();
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
        let cpu1 = conn.cpu();
        let mut r = summarise(
            rate,
            per_second,
            opts.requests,
            pool_at_start,
            &answers,
            inputs,
            start.into_std(),
            end_state,
        );
        r.client_cpu = Cpu::between(cpu0.0, cpu1.0);
        r.server_cpu = Cpu::between(cpu0.1, cpu1.1);
        rates.push(r);
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
        client_cpu: None,
        server_cpu: None,
        pool_at_start,
        pool,
    }
}
