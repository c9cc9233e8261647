//! The command-line options of `pi-bench load` and `compare` (clap), and
//! their progress bar; `main.rs` only dispatches.

use std::io::IsTerminal;
use std::path::PathBuf;

use pi_protocol::transport::Link;

use super::{LoadOptions, Progress, Rate, Remote};

/// Options shared by `load` and `compare`.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Arrival rates: requests per second (`2.5`) or multiples of the model's
    /// unloaded capacity, 1 / unloaded latency (`0.5x`). With several
    /// clients, the aggregate rate over all of them.
    #[arg(long, value_delimiter = ',')]
    pub rate: Vec<Rate>,
    /// Requests per rate (p95 needs 20, p99 100).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub requests: u32,
    /// Unloaded measurements per model, each on a fresh session.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Unloaded measurements run first and discarded (default: 1 with --repeat above 1, else 0).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub warmup: Option<u32>,
    /// Client pool budget: bytes of preprocessed material, per client
    /// (suffixes K, M, G, KiB, MiB, GiB).
    #[arg(long, default_value = "16GiB", value_parser = pi_client::pool::parse_bytes)]
    pub pool_bytes: u64,
    /// Client pool entries at most, per client (the server's --server-pool-max applies too).
    #[arg(long)]
    pub pool_count: Option<usize>,
    /// The server's per-session limit of preprocessed inferences (pi-server
    /// --pool-max; default 4). A remote server announces its own.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024), conflicts_with = "connect")]
    pub server_pool_max: Option<u32>,
    /// Fill the pools before each rate's first arrival (default: start empty).
    #[arg(long)]
    pub prefill: bool,
    /// Emulated link on the client's connections, both directions (`1gbit,0.5ms`, `100mbit,20ms`).
    #[arg(long, value_name = "RATE,DELAY")]
    pub link: Option<Link>,
    /// Seed of weights, inputs, arrival times and their clients.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Activation protocols: `gc`, `ot` or `gc,ot` (each model in each mode, side by side).
    #[arg(long, value_delimiter = ',', default_value = "gc")]
    pub relu: Vec<pi_protocol::ReluMode>,
    /// Client sessions at once, each with its own connection, pool and
    /// certificate; requests are spread over them at random.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub clients: u32,
    /// Load a running pi-server at this address instead of starting one
    /// (give at most one SPEC: the server's network must be that one).
    #[arg(long, value_name = "ADDR", requires = "tls")]
    pub connect: Option<String>,
    /// With --connect: a client bundle from `pi-server keygen`, or the whole
    /// key directory (clients then use client-1, client-2, ... or --name).
    #[arg(long, value_name = "DIR", requires = "connect")]
    pub tls: Option<PathBuf>,
    /// With --connect and a key directory: the clients' certificate names,
    /// comma-separated, one per client.
    #[arg(long, value_delimiter = ',', requires = "tls")]
    pub name: Vec<String>,
    /// With --connect: the name to check the server certificate against
    /// (default: the host of ADDR).
    #[arg(long, requires = "connect")]
    pub server_name: Option<String>,
    /// The server's weight file: a local server loads it; for a remote one
    /// (which must use the same weights) it gives the oracle every answer is
    /// checked against. Remote without it: answers are not checked.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[command(flatten)]
    pub budget: pi_client::cli::BudgetArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    /// The options of a run on `specs`.
    pub fn options(&self, specs: Vec<String>) -> LoadOptions {
        let warmup = self
            .warmup
            .map_or(usize::from(self.repeat > 1), |w| w as usize);
        LoadOptions {
            specs,
            rates: self.rate.clone(),
            requests: self.requests as usize,
            repeat: self.repeat as usize,
            warmup,
            pool_bytes: self.pool_bytes,
            pool_count: self.pool_count.unwrap_or(usize::MAX),
            server_pool_max: self
                .server_pool_max
                .unwrap_or(pi_protocol::session::DEFAULT_MAX_PENDING),
            prefill: self.prefill,
            seed: self.seed,
            link: self.link,
            relu: self.relu.clone(),
            server_exe: None,
            progress: std::io::stderr().is_terminal(),
            clients: self.clients as usize,
            weights: self.weights.clone(),
            remote: self.connect.as_ref().map(|addr| Remote {
                addr: addr.clone(),
                tls: self.tls.clone().unwrap_or_default(),
                names: self.name.clone(),
                server_name: self.server_name.clone(),
            }),
            budget: self.budget.clone(),
        }
    }
}

/// The progress bar of `load` and `compare` (stderr, only on a terminal).
pub struct Bar(pub indicatif::ProgressBar);

impl Bar {
    /// A bar, hidden unless `show`.
    pub fn new(show: bool) -> Self {
        let pb = if show {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg:<40} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Self(pb)
    }
}

impl Progress for Bar {
    fn stage(&mut self, name: &str, len: u64) {
        self.0.set_length(len);
        self.0.set_position(0);
        self.0.set_message(name.to_string());
    }
    fn step(&mut self) {
        self.0.inc(1);
    }
}
