//! The `pi-client` command line. It lives in the library (not in `main.rs`)
//! so that the end-to-end tests can run the very same command as a process;
//! like a binary, it reports errors with `anyhow`.
//!
//! ```text
//! pi-client --connect ADDR --tls DIR --input X.npy [--name N] [--model SPEC] [--json] [-v]
//!           [--max-storage B] [--max-memory B] [--storage-dir DIR]
//! pi-client --connect ADDR --tls DIR --input A.npy B.npy DIR... [--pool N] [--pool-bytes B] [--json]
//! pi-client demo [-v]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pi_protocol::ClientConfig;
use pi_protocol::transport::pki::TlsFiles;
use pi_protocol::transport::{ChannelConfig, Link};
use pi_server::cli::{error_chain, init_logging, runtime};

use crate::batch::expand_inputs;
use crate::console::{batch_with_progress, infer_with_progress};
pub use crate::console::{report_json, summary};
use crate::pool::PoolConfig;
use crate::{ClientOptions, host_of, read_input};

/// Run a private inference: the server learns nothing about the input, the
/// client learns the result and nothing else about the weights.
#[derive(Parser, Debug)]
#[command(name = "pi-client", version, subcommand_negates_reqs = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    infer: InferArgs,
}

#[derive(Args, Debug)]
struct InferArgs {
    /// Server address, `host:port`.
    #[arg(long, required = true)]
    connect: Option<String>,
    /// This client's key bundle made by `pi-server keygen` (`KEYS/client-N`:
    /// ca.pem, client.pem, client.key), or the whole key directory with --name.
    #[arg(long, required = true)]
    tls: Option<PathBuf>,
    /// Input tensor: .npy float32 (C, H, W), before normalisation (the
    /// server's model says how to normalise). Several files or a directory
    /// (its .npy files, by name) run in one session, one result line each.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// With several inputs: preprocessed inferences the pool may hold ahead
    /// (0: none; the server's --pool-max applies too).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=1024))]
    pool: u32,
    /// With several inputs: most client storage the pool may hold (suffixes
    /// K, M, G, T, KiB, MiB, GiB, TiB); never more than the budgets allow.
    #[arg(long, default_value = "16GiB", value_parser = crate::pool::parse_bytes)]
    pool_bytes: u64,
    #[command(flatten)]
    budget: BudgetArgs,
    /// Which client bundle of a whole key directory to use (`client-NAME`);
    /// ignored when --tls is a bundle.
    #[arg(long, default_value = "1")]
    name: String,
    /// Name to check the server certificate against: a DNS name or an IP
    /// address (default: the host of --connect).
    #[arg(long, value_parser = server_name)]
    server_name: Option<String>,
    /// Pin the network: refuse a server whose model is not this spec or model
    /// file, and check the input's shape before connecting.
    #[arg(long)]
    model: Option<String>,
    /// Give up when the server sends nothing for this many seconds (at least 1).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    timeout: u64,
    /// Emulate a link on this connection, both directions: `RATE,DELAY`
    /// such as `1gbit,0.5ms` (LAN) or `100mbit,20ms` (WAN); the delay is one
    /// way. Set it on the client or on the server, not both.
    #[arg(long, value_name = "RATE,DELAY")]
    link: Option<Link>,
    /// Print the report as JSON (with several inputs: one JSON line per
    /// input, then `{"summary": ...}`).
    #[arg(long)]
    json: bool,
    /// Activation protocol to ask for: `gc` (garbled circuits) or `ot`
    /// (OT-based comparison); the server must allow it.
    #[arg(long, default_value = "gc")]
    relu: pi_protocol::ReluMode,
    /// Log more (-v: info, per layer; -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Complete private inference on the bundled digits model: throwaway
    /// certificates, a server process and this client on loopback.
    Demo {
        /// Activation protocol: `gc` or `ot` (the demo server allows both).
        #[arg(long, default_value = "gc")]
        relu: pi_protocol::ReluMode,
        /// Log more (-v: info, -vv: debug).
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
    },
    /// The server of `demo` (started by it as a child process; stops when
    /// its standard input closes).
    #[command(hide = true)]
    DemoServer(Box<pi_server::cli::ServeArgs>),
}

/// Where the client keeps preprocessed material and what it may spend
/// (shared with `pi-bench`).
#[derive(Args, Debug, Clone, Default)]
pub struct BudgetArgs {
    /// Refuse a network whose preprocessed material for one inference
    /// exceeds this many bytes (suffixes K, M, G, T, KiB, MiB, GiB, TiB;
    /// default: the free disk space of --storage-dir, or of the temporary
    /// directory).
    #[arg(long, value_name = "B", value_parser = crate::pool::parse_bytes)]
    pub max_storage: Option<u64>,
    /// Refuse a network whose estimated peak client memory for one inference
    /// exceeds this many bytes (default: the physical memory).
    #[arg(long, value_name = "B", value_parser = crate::pool::parse_bytes)]
    pub max_memory: Option<u64>,
    /// Keep preprocessed material (garbled tables and labels, OT-mode pads)
    /// in files in this directory instead of memory: created with mode 0700
    /// if missing, refused if others may use it; one 0600 file per
    /// preprocessed inference, deleted after use.
    #[arg(long, value_name = "DIR")]
    pub storage_dir: Option<PathBuf>,
}

impl BudgetArgs {
    /// The session configuration these options ask for, in ReLU mode `relu`.
    ///
    /// # Errors
    /// If the storage directory cannot be created or others may use it.
    pub fn config(&self, relu: pi_protocol::ReluMode) -> anyhow::Result<ClientConfig> {
        let store = match &self.storage_dir {
            Some(d) => Some(pi_protocol::store::MaterialDir::open(d)?),
            None => None,
        };
        let mut budget =
            pi_protocol::footprint::ClientBudget::from_machine(store.as_ref().map(|d| d.path()));
        if let Some(b) = self.max_storage {
            budget.max_storage = b;
        }
        if let Some(b) = self.max_memory {
            budget.max_memory = b;
        }
        Ok(ClientConfig {
            budget,
            store,
            relu,
            ..ClientConfig::default()
        })
    }
}

fn server_name(s: &str) -> Result<String, String> {
    pi_protocol::transport::pki::check_server_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string().trim_start_matches("bad input: ").to_string())
}

/// Runs `pi-client` with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Demo { relu, verbose }) => {
            init_logging(verbose);
            runtime().and_then(|rt| rt.block_on(crate::demo::run(relu, verbose)))
        }
        Some(Command::DemoServer(args)) => {
            init_logging(args.verbose);
            runtime().and_then(|rt| rt.block_on(crate::demo::serve_child(*args)))
        }
        None => {
            init_logging(cli.infer.verbose);
            runtime().and_then(|rt| rt.block_on(infer(cli.infer)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pi-client: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn infer(args: InferArgs) -> anyhow::Result<()> {
    let (Some(addr), Some(tls)) = (&args.connect, &args.tls) else {
        anyhow::bail!("--connect, --tls and --input are required");
    };
    let batch = args.input.len() > 1 || args.input.iter().any(|p| p.is_dir());
    let (raw, inputs) = if batch {
        (None, expand_inputs(&args.input)?)
    } else {
        let Some(input) = args.input.first() else {
            anyhow::bail!("--connect, --tls and --input are required");
        };
        // Everything local is checked before connecting.
        (Some(read_input(input)?), Vec::new())
    };
    let mut session = args.budget.config(args.relu)?;
    if let Some(spec) = &args.model {
        session.expect = Some(match &raw {
            Some(raw) => crate::check_against_model(spec, raw)?,
            None => pi_models::Model::resolve(spec)
                .map_err(|e| anyhow::anyhow!("model {spec}: {e}"))?
                .network
                .describe(),
        });
    }
    let files = TlsFiles::client(tls, &args.name);
    let identity = files.load().with_context(|| {
        format!(
            "cannot load the client certificate from {}",
            files.cert.parent().unwrap_or(tls).display()
        )
    })?;
    for w in files.warnings() {
        tracing::warn!("{w}");
    }
    let timeout = Duration::from_secs(args.timeout);
    let opts = ClientOptions {
        addr: addr.clone(),
        server_name: args
            .server_name
            .clone()
            .unwrap_or_else(|| host_of(addr).to_string()),
        tls: identity,
        channel: ChannelConfig {
            idle_timeout: timeout,
            write_timeout: timeout,
            handshake_timeout: timeout.min(Duration::from_secs(30)),
            link: args.link,
            ..ChannelConfig::default()
        },
        session,
    };
    let Some(raw) = raw else {
        let config = PoolConfig {
            max_bytes: args.pool_bytes,
            max_count: args.pool as usize,
            background: args.pool > 0,
        };
        return batch_with_progress(&opts, &inputs, config, args.json).await;
    };
    let outcome = infer_with_progress(&opts, &raw, !args.json).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report_json(&outcome))?);
    } else {
        print!("{}", summary(&outcome, None));
    }
    Ok(())
}
