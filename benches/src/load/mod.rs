//! `pi-bench load`: latency of private inference under a stream of requests.
//!
//! For each model, a real `pi-server` process ([`crate::server_process`])
//! and this process as the client talk over loopback TCP + TLS 1.3 with
//! throwaway certificates; or, with [`LoadOptions::remote`], this process
//! loads a `pi-server` it did not start ([`remote`]: the network comes from
//! the server's handshake, the oracle from `--weights` if given). The client
//! is the `pi-client` library: each session driven by a [`Pool`] of
//! preprocessed inferences ([`pi_client::pool`]); with `clients` above one,
//! that many sessions at once, each with its own connection, pool and
//! certificate ([`rate`]).
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
//!   CPU time and the pool's state at the end; with several clients the
//!   same per client; for a local server its peak resident memory.
//! - *sustainable rate*: the highest tested rate whose mean latency is at
//!   most twice the (median) unloaded latency.
//! - the machine's load while the model was measured ([`crate::machine`]).
//!
//! A rate is requests per second, or a multiple of the model's unloaded
//! capacity with an `x` suffix (`0.5x` = half of 1 / unloaded latency).

pub mod args;
mod arrivals;
mod rate;
mod remote;
mod result;
mod target;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pi_protocol::ReluMode;
use pi_protocol::transport::{ChannelConfig, Link};

pub use arrivals::{Poisson, Rate, assign};
pub use result::{
    ClientRate, Latency, LoadResult, ModelResult, ORACLE_CHECKED, ORACLE_SKIPPED, RateResult,
    Traffic, Unloaded, UnloadedSample, UnloadedSummary, sustainable_rate,
};

use crate::machine::{Cpu, Mark};
use crate::server_process::{ServerProcess, ServerSpec, throwaway_keys_for};
use crate::workload::{Workload, random_input};
use target::{Inputs, Target, connectors};

/// A server this run did not start (`--connect`).
#[derive(Clone, Debug)]
pub struct Remote {
    /// `host:port`.
    pub addr: String,
    /// A client bundle or a key directory from `pi-server keygen`.
    pub tls: PathBuf,
    /// Certificate names of the clients in a key directory (`client-NAME`);
    /// empty: `1`, `2`, ... one per client.
    pub names: Vec<String>,
    /// Name to check the server certificate against (default: the host of `addr`).
    pub server_name: Option<String>,
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
    /// Client sessions at once per rate (each its own connection, pool and
    /// certificate); the rate is their aggregate.
    pub clients: usize,
    /// Weight file: the server's (local: given to it; remote: for the oracle).
    pub weights: Option<PathBuf>,
    /// Load this server instead of starting one (`specs` is then empty, or
    /// one spec the server's network must equal).
    pub remote: Option<Remote>,
    /// The clients' budgets and material directory (as `pi-client`'s
    /// `--max-storage`, `--max-memory`, `--storage-dir`).
    pub budget: pi_client::cli::BudgetArgs,
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

/// Runs the benchmark for every model.
///
/// # Errors
/// On bad options or specs, or a failed model run.
pub fn run(opts: &LoadOptions, progress: &mut dyn Progress) -> Result<LoadResult> {
    check(opts)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    if let Some(r) = &opts.remote {
        return remote::run(opts, r, &rt, progress);
    }
    let exe = match &opts.server_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot locate this executable")?,
    };
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let keys = throwaway_keys_for(tmp.path(), opts.clients)?;
    let names: Vec<String> = (1..=opts.clients).map(|i| i.to_string()).collect();
    let channel = ChannelConfig {
        link: opts.link,
        ..ChannelConfig::default()
    };
    let whole = Mark::now();
    let mut models = Vec::new();
    for (mi, spec) in opts.specs.iter().enumerate() {
        let seed = opts.seed.wrapping_add(1000 * mi as u64);
        let work = Workload::new(
            spec,
            opts.weights.as_deref(),
            seed,
            tmp.path(),
            &format!("weights-{mi}.safetensors"),
        )?;
        // Oracle on four inputs, from the same weight file the server loads.
        let inputs = oracle_inputs(&work, seed)?;
        for &relu in &opts.relu {
            let mark = Mark::now();
            let server = ServerProcess::start(&ServerSpec {
                exe: exe.clone(),
                spec: spec.clone(),
                weights: work.weights.clone(),
                keys: keys.clone(),
                pool_max: opts.server_pool_max,
                reports: false,
                max_clients: opts.clients.max(8),
                // A client may wait for requests while the others are
                // served, longer than the default 300 s on a slow network.
                idle_timeout: 24 * 3600,
            })?;
            let target = Target {
                connectors: connectors(&keys, &names, &channel)?,
                names: names.clone(),
                addr: server.addr().to_string(),
                server_name: "localhost".into(),
                config: opts.budget.config(relu)?,
                server_pid: Some(server.pid()),
            };
            let name = run_name(opts, spec, relu);
            let result = rt.block_on(run_model(opts, &name, &target, &inputs, seed, progress));
            server.stop()?;
            let machine = mark.until_now();
            let (unloaded, capacity, rates) =
                result.with_context(|| format!("load on {spec}, ReLU mode {relu}"))?;
            models.push(model_result(
                spec,
                &work.model,
                relu,
                unloaded,
                capacity,
                rates,
                machine,
            ));
        }
    }
    Ok(load_result(opts, models, whole, None, ORACLE_CHECKED))
}

/// The options a run cannot do without.
fn check(opts: &LoadOptions) -> Result<()> {
    if opts.rates.is_empty() {
        bail!("give at least one rate (--rate R[,R...])");
    }
    match &opts.remote {
        None if opts.specs.is_empty() => bail!("give at least one model, or --connect ADDR"),
        Some(_) if opts.specs.len() > 1 => {
            bail!("a remote server serves one network: give at most one SPEC with --connect")
        }
        _ => {}
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
    if opts.clients == 0 {
        bail!("--clients must be at least 1");
    }
    Ok(())
}

/// The name of one model's run in one mode (the mode only if several).
fn run_name(opts: &LoadOptions, spec: &str, relu: ReluMode) -> String {
    if opts.relu.len() > 1 {
        format!("{spec} [{relu}]")
    } else {
        spec.to_string()
    }
}

/// Four seeded random inputs of the workload's network and their oracle logits.
fn oracle_inputs(work: &Workload, seed: u64) -> Result<Inputs> {
    let shape = work.input_shape();
    let mut inputs = Inputs {
        xs: Vec::new(),
        oracle: Some(Vec::new()),
    };
    for k in 0..4u64 {
        let (x, oracle) = work.case(random_input(&shape, seed.wrapping_add(k + 1)), &shape)?;
        inputs.xs.push(x);
        if let Some(o) = inputs.oracle.as_mut() {
            o.push(oracle);
        }
    }
    Ok(inputs)
}

#[allow(clippy::too_many_arguments)]
fn model_result(
    spec: &str,
    model: &pi_models::Model,
    relu: ReluMode,
    unloaded: Unloaded,
    capacity: usize,
    rates: Vec<RateResult>,
    machine: crate::machine::MachineLoad,
) -> ModelResult {
    let stats = model.network.stats();
    ModelResult {
        spec: spec.to_string(),
        canonical: model.network.spec.canonical(),
        relu_mode: relu,
        relus: stats.relus,
        identity: stats.identity,
        macs: stats.macs,
        sustainable_rate: sustainable_rate(&rates, unloaded.latency_seconds),
        unloaded,
        pool_capacity: capacity,
        rates,
        machine: Some(machine),
    }
}

fn load_result(
    opts: &LoadOptions,
    models: Vec<ModelResult>,
    whole: Mark,
    server: Option<String>,
    oracle: &str,
) -> LoadResult {
    LoadResult {
        requests: opts.requests,
        repeat: opts.repeat,
        warmup: opts.warmup,
        seed: opts.seed,
        pool_bytes: opts.pool_bytes,
        pool_count: (opts.pool_count != usize::MAX).then_some(opts.pool_count),
        server_pool_max: opts.server_pool_max,
        prefill: opts.prefill,
        link: opts.link.map(|l| l.to_string()),
        clients: opts.clients,
        server,
        oracle: oracle.to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        models,
        machine: Some(whole.until_now()),
    }
}

/// One unloaded measurement on a fresh session: a cold request (offline
/// then online) and one served from a pool entry made beforehand.
async fn unloaded_once(conn: &Target, inputs: &Inputs) -> Result<(UnloadedSample, Traffic)> {
    let (mut ch, mut session) = conn.session(0).await?;
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
        bit_exact: inputs
            .check(0, &cold)
            .and_then(|a| inputs.check(1, &warm).map(|b| a && b)),
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
    conn: &Target,
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
    for (ri, rate) in opts.rates.iter().enumerate() {
        let per_second = match *rate {
            Rate::PerSecond(r) => r,
            Rate::Relative(m) => m / unloaded.latency_seconds.max(1e-9),
        };
        progress.stage(&format!("{spec} @ {per_second:.3}/s"), opts.requests as u64);
        let seed = seed.wrapping_add(7 * ri as u64 + 1);
        rates.push(rate::run_rate(opts, conn, inputs, rate, per_second, seed, progress).await?);
    }
    let capacity = rates.first().map_or(0, |r| {
        r.per_client
            .first()
            .map_or(r.pool.capacity, |c| c.pool.capacity)
    });
    Ok((unloaded, capacity, rates))
}
