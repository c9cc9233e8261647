//! The `pi-server` command line. It lives in the library (not in `main.rs`)
//! so that `pi-client demo` and the end-to-end tests can run the very same
//! command as a process; like a binary, it reports errors with `anyhow`.
//!
//! ```text
//! pi-server --model SPEC [--weights FILE] --listen ADDR --tls DIR [--max-clients N] [--pool-max N] [--lifetime-inferences Q] [--link RATE,DELAY] [-v]
//! pi-server keygen --out DIR [--server-name NAME...] [--clients N]
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use pi_protocol::transport::pki::{TlsFiles, keygen};
use pi_protocol::transport::{ChannelConfig, Link};

use crate::{Listener, ServeConfig, load_model, shutdown_signal};

/// Serve private inference on a model whose weights stay secret.
#[derive(Parser, Debug)]
#[command(name = "pi-server", version, subcommand_negates_reqs = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Options of the server itself (no subcommand).
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Model: a spec (`5x5x3x(m=4,...)`, `resnet18`) or a model file (.toml)
    /// whose `weights` key makes --weights optional.
    #[arg(long, required = true)]
    pub model: Option<String>,
    /// Weight file (safetensors, PyTorch state_dict names).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port. The first line printed
    /// is `listening on ADDR` with the bound address.
    #[arg(long, required = true)]
    pub listen: Option<String>,
    /// Key directory made by `pi-server keygen` (ca.pem, server.pem, server.key).
    #[arg(long, required = true)]
    pub tls: Option<PathBuf>,
    /// Most concurrent clients; further clients wait.
    #[arg(long, default_value_t = 8)]
    pub max_clients: usize,
    /// Drop a client that sends nothing for this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Emulate a link on every client connection, both directions:
    /// `RATE,DELAY` such as `1gbit,0.5ms` (LAN) or `100mbit,20ms` (WAN); the
    /// delay is one way. Set it on the server or on the client, not both.
    #[arg(long, value_name = "RATE,DELAY")]
    pub link: Option<Link>,
    /// Most preprocessed inferences held per session (a client may run that
    /// many offline phases ahead; each costs roughly 600 B of server memory
    /// per activation).
    #[arg(long, default_value_t = pi_protocol::session::DEFAULT_MAX_PENDING,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pool_max: u32,
    /// On Ctrl-C, seconds that running sessions may go on before they are cancelled.
    #[arg(long, default_value_t = 5)]
    pub grace: u64,
    /// Activation protocols clients may ask for: `gc` (garbled circuits),
    /// `ot` (OT-based comparison), or both (`gc,ot`).
    #[arg(long, value_delimiter = ',', default_value = "gc")]
    pub relu: Vec<pi_protocol::ReluMode>,
    /// Lifetime budget of these weights: inferences they may serve over all
    /// sessions and clients (an integer or `2^K`). The server refuses to
    /// start unless the HE replies hide the weights to statistical distance
    /// 2^-40 over this many inferences.
    #[arg(long, value_name = "Q", default_value = "2^30", value_parser = parse_inferences)]
    pub lifetime_inferences: u64,
    /// Log more (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a private CA, a server certificate and client certificates.
    Keygen(KeygenArgs),
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Directory to create (mode 0700); existing files are never overwritten.
    #[arg(long)]
    out: PathBuf,
    /// Extra DNS names or IP addresses of the server (localhost and
    /// 127.0.0.1 are always included).
    #[arg(long = "server-name")]
    server_names: Vec<String>,
    /// Number of client certificates, named 1..N (files client-1.pem, client-1.key, ...).
    #[arg(long, default_value_t = 1)]
    clients: usize,
}

/// Runs `pi-server` with the process's arguments.
pub fn main() -> ExitCode {
    run_cli(Cli::parse())
}

/// Runs a parsed command line; prints the error chain and returns failure on error.
pub fn run_cli(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Some(Command::Keygen(k)) => run_keygen(&k),
        None => {
            init_logging(cli.serve.verbose);
            runtime()
                .and_then(|rt| rt.block_on(async { serve(cli.serve, shutdown_signal()).await }))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pi-server: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", skipping a cause whose text the
/// message before it already contains (error types that print their source).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// A multi-threaded tokio runtime.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs to stderr: warnings by default, `-v` info, `-vv` debug; `RUST_LOG` overrides.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads the model and the keys, binds, prints `listening on ADDR` (flushed)
/// and serves until `shutdown` resolves.
pub async fn serve(
    args: ServeArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (Some(spec), Some(listen), Some(tls)) = (&args.model, &args.listen, &args.tls) else {
        bail!("--model, --listen and --tls are required");
    };
    let model = load_model(spec, args.weights.as_deref())
        .with_context(|| format!("cannot load model {spec}"))?
        .with_relu_modes(&args.relu)
        .context("--relu")?
        .with_lifetime_inferences(args.lifetime_inferences)
        .context("--lifetime-inferences")?;
    let hiding_line = hiding_summary(&model);
    eprintln!("pi-server: {hiding_line}");
    tracing::info!("{hiding_line}");
    let identity = TlsFiles::server(tls)
        .load()
        .with_context(|| format!("cannot load the server keys from {}", tls.display()))?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let config = ServeConfig {
        max_clients: args.max_clients,
        channel: ChannelConfig {
            idle_timeout: timeout,
            write_timeout: timeout,
            handshake_timeout: timeout.min(Duration::from_secs(30)),
            link: args.link,
            ..ChannelConfig::default()
        },
        grace: Duration::from_secs(args.grace),
        limits: pi_protocol::ServerLimits {
            max_pending: args.pool_max,
        },
    };
    let listener = Listener::bind(listen, model, &identity, config).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}").context("stdout")?;
        out.flush().context("stdout")?;
    }
    tracing::info!("serving {spec} on {addr}");
    let summary = listener.run(shutdown).await;
    tracing::info!(
        "stopped: {} connection(s), {} inference(s), {} failed",
        summary.connections,
        summary.inferences,
        summary.failed
    );
    Ok(())
}

fn parse_inferences(text: &str) -> Result<u64, String> {
    pi_protocol::he::hiding::parse_inferences(text).map_err(|e| e.to_string())
}

/// One line with the weights' statistical hiding per inference and over the
/// lifetime budget (printed before serving).
pub fn hiding_summary(model: &pi_protocol::ServerModel) -> String {
    let h = model.weight_hiding();
    let q = model.lifetime_inferences();
    format!(
        "HE replies hide the weights to statistical distance 2^-{:.1} per inference \
         ({} coefficients, each hidden to at least {} bits) and 2^-{:.1} over the lifetime \
         budget of {q} (2^{:.1}) inferences (required: 2^-{}; the bound allows 2^{:.1})",
        h.inference_bits(),
        h.coefficients(),
        h.min_coefficient_bits(),
        h.lifetime_bits(q),
        (q as f64).log2(),
        pi_protocol::he::STATISTICAL_SECURITY_BITS,
        h.max_inferences_log2(pi_protocol::he::STATISTICAL_SECURITY_BITS),
    )
}

fn run_keygen(k: &KeygenArgs) -> anyhow::Result<()> {
    if k.clients == 0 || k.clients > 1000 {
        bail!("--clients must be between 1 and 1000");
    }
    let clients: Vec<String> = (1..=k.clients).map(|i| i.to_string()).collect();
    let written = keygen(&k.out, &k.server_names, &clients)
        .with_context(|| format!("keygen into {}", k.out.display()))?;
    for p in &written {
        println!("wrote {}", p.display());
    }
    print_usage_hint(&k.out);
    Ok(())
}

fn print_usage_hint(dir: &Path) {
    println!(
        "server: pi-server --model SPEC --listen ADDR --tls {0}\nclient: pi-client --connect ADDR --tls {0} --input X.npy   (client certificate 1; --name N for others)",
        dir.display()
    );
}
