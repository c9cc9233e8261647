//! The `pi-server` command line. It lives in the library (not in `main.rs`)
//! so that `pi-client demo` and the end-to-end tests can run the very same
//! command as a process; like a binary, it reports errors with `anyhow`.
//!
//! ```text
//! pi-server --model SPEC [--weights FILE] --listen ADDR --tls DIR [--max-clients N] [--pool-max N] [--lifetime-inferences Q] [--link RATE,DELAY] [-v]
//! pi-server keygen --out DIR [--server-name NAME...] [--clients N]
//! pi-server revoke --ca DIR --crl FILE CERT.pem...
//! ```
//!
//! Deployment options (admission caps, deadlines, allowlist, CRL) are
//! described in the README's "Deploying a server".

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use pi_protocol::session::PendingBudget;
use pi_protocol::transport::pki::{CertificateAuthority, TlsFiles, keygen, load_crls};
use pi_protocol::transport::{ChannelConfig, Link};

use crate::{Listener, ServeConfig, SessionDeadlines, load_model, shutdown_signal};

/// Seconds, at least 1 (0 would mean "no time at all", never "no limit").
fn secs() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=86_400 * 7)
}

/// A count of at least 1.
fn count() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000)
}

/// A byte count as given on a command line: a number with an optional
/// decimal (`K`, `M`, `G`, `T`) or binary (`KiB`, `MiB`, `GiB`, `TiB`) suffix
/// (`pi-server --pending-bytes`, `--pool-bytes` of `pi-client` and
/// `pi-bench`).
///
/// # Errors
/// A message naming the text, for an unknown unit, a non-number or a value
/// out of range.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        u => return Err(format!("unknown unit {u:?} in {s:?}")),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count"))?;
    let bytes = v * mult as f64;
    if !(bytes.is_finite() && (0.0..1.8e19).contains(&bytes)) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(bytes as u64)
}

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
    /// The server's key bundle made by `pi-server keygen` (`DIR/server`:
    /// ca.pem, server.pem, server.key), or the whole key directory.
    #[arg(long, required = true)]
    pub tls: Option<PathBuf>,
    /// Most concurrent sessions; further authenticated clients wait in the
    /// queue, then hear "server busy".
    #[arg(long, default_value_t = 8, value_parser = count())]
    pub max_clients: usize,
    /// Most concurrent sessions per client certificate.
    #[arg(long, default_value_t = 2, value_parser = count())]
    pub max_per_client: usize,
    /// Authenticated clients that may wait for a session slot (0: answer
    /// "server busy" at once).
    #[arg(long, default_value_t = 8)]
    pub queue: usize,
    /// Seconds a queued client waits for a slot before it hears "server busy".
    #[arg(long, default_value_t = 10, value_parser = secs())]
    pub queue_wait: u64,
    /// Most connections still in their TLS handshake; beyond it the oldest
    /// is dropped.
    #[arg(long, default_value_t = 64, value_parser = count())]
    pub max_handshakes: usize,
    /// Most connections in their TLS handshake per source address; beyond
    /// it that address's oldest is dropped.
    #[arg(long, default_value_t = 8, value_parser = count())]
    pub max_handshakes_per_ip: usize,
    /// Seconds a connection has for its TLS handshake and hello.
    #[arg(long, default_value_t = 5, value_parser = secs())]
    pub handshake_timeout: u64,
    /// Drop a client that sends nothing for this many seconds, or takes
    /// longer to send its next request.
    #[arg(long, default_value_t = 300, value_parser = secs())]
    pub timeout: u64,
    /// Seconds one offline phase may take, however steadily bytes arrive
    /// (default: sized from the model's expected traffic at 1 MiB/s).
    #[arg(long, value_parser = secs())]
    pub offline_deadline: Option<u64>,
    /// Seconds one online phase may take (default: sized like the offline one).
    #[arg(long, value_parser = secs())]
    pub online_deadline: Option<u64>,
    /// Admit only these clients (certificate common names, or `CN=...`
    /// subjects); repeat or separate by commas. Default: every client of the CA.
    #[arg(long = "allow-client", value_delimiter = ',')]
    pub allow_client: Vec<String>,
    /// Certificate revocation list (PEM or DER, from `pi-server revoke`):
    /// revoked client certificates fail the TLS handshake.
    #[arg(long)]
    pub crl: Option<PathBuf>,
    /// Emulate a link on every client connection, both directions:
    /// `RATE,DELAY` such as `1gbit,0.5ms` (LAN) or `100mbit,20ms` (WAN); the
    /// delay is one way. Set it on the server or on the client, not both.
    #[arg(long, value_name = "RATE,DELAY")]
    pub link: Option<Link>,
    /// Most preprocessed inferences held per session (a client may run that
    /// many offline phases ahead); all sessions together are also bounded
    /// by --pending-bytes.
    #[arg(long, default_value_t = pi_protocol::session::DEFAULT_MAX_PENDING,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pool_max: u32,
    /// Byte budget for the preprocessed material of all sessions together
    /// (offline done, online not yet; see the README for the bytes per
    /// activation in each ReLU mode): an offline request beyond it ends its
    /// session with "busy" and the figures. A number with an optional unit
    /// (`8GiB`, `500MB`); default: a quarter of physical memory.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub pending_bytes: Option<u64>,
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
    /// Make a private CA, a server certificate and client certificates, one
    /// bundle (directory) per party.
    Keygen(KeygenArgs),
    /// Write a certificate revocation list (for `pi-server --crl`) that
    /// revokes the given client certificates, keeping those already in it.
    Revoke(RevokeArgs),
}

#[derive(Args, Debug)]
struct RevokeArgs {
    /// The CA bundle (`KEYS/ca`, holding ca.pem and ca.key) or the key directory.
    #[arg(long)]
    ca: PathBuf,
    /// The revocation list to create or extend (PEM).
    #[arg(long)]
    crl: PathBuf,
    /// Client certificates (PEM) to revoke, such as `KEYS/client-2/client.pem`.
    #[arg(required = true)]
    certs: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Directory to create (mode 0700) with the bundles `ca/`, `server/`,
    /// `client-N/`; existing files are never overwritten.
    #[arg(long)]
    out: PathBuf,
    /// Extra DNS names or IP addresses of the server (localhost and
    /// 127.0.0.1 are always included).
    #[arg(long = "server-name")]
    server_names: Vec<String>,
    /// Number of client certificates, named 1..N (bundles client-1/, client-2/, ...).
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
        Some(Command::Revoke(r)) => run_revoke(&r),
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

/// Physical memory of this machine in bytes (`MemTotal` in
/// `/proc/meminfo`), if the system says.
pub fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut it = line["MemTotal:".len()..].split_whitespace();
    let kib: u64 = it.next()?.parse().ok()?;
    (it.next() == Some("kB")).then(|| kib.saturating_mul(1024))
}

/// Default of `--pending-bytes`: a quarter of physical memory, or 4 GiB
/// where it is unknown.
fn default_pending_bytes() -> u64 {
    physical_memory().map_or(4 << 30, |m| m / 4)
}

/// The budget line printed at start: the budget and what one preprocessed
/// inference holds in each allowed mode.
fn pending_summary(model: &pi_protocol::ServerModel, budget: u64) -> String {
    let per: Vec<String> = model
        .relu_modes()
        .iter()
        .filter_map(|&m| {
            let b = model.pending_bytes_per_inference(m).ok()?;
            Some(format!("{m} {}", mib(b)))
        })
        .collect();
    format!(
        "pending-material budget {} for all sessions; one preprocessed inference holds {}",
        mib(budget),
        per.join(", ")
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// A multi-threaded tokio runtime.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs to stderr: warnings by default, `-v` info, `-vv` debug; `RUST_LOG`
/// overrides. Colours only when stderr is a terminal.
pub fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
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
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Loads the model and the keys, binds, prints `listening on ADDR` (flushed)
/// and serves until `shutdown` resolves.
pub async fn serve(
    args: ServeArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with_reports(args, shutdown, None).await.map(|_| ())
}

/// [`serve`], also handing every completed inference's report to `reports`
/// ([`Listener::with_reports`]); returns the listener's counters. For
/// benchmarks that run this command line as a child process.
pub async fn serve_with_reports(
    args: ServeArgs,
    shutdown: impl std::future::Future<Output = ()>,
    reports: Option<tokio::sync::mpsc::UnboundedSender<pi_protocol::ServerReport>>,
) -> anyhow::Result<crate::ServeSummary> {
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
    let pending_bytes = args.pending_bytes.unwrap_or_else(default_pending_bytes);
    let budget_line = pending_summary(&model, pending_bytes);
    eprintln!("pi-server: {budget_line}");
    tracing::info!("{budget_line}");
    let files = TlsFiles::server(tls);
    let identity = files
        .load()
        .with_context(|| format!("cannot load the server keys from {}", tls.display()))?;
    for w in files.warnings() {
        tracing::warn!("{w}");
    }
    let crls = match &args.crl {
        Some(path) => load_crls(path).context("--crl")?,
        None => Vec::new(),
    };
    let timeout = Duration::from_secs(args.timeout);
    let config = ServeConfig {
        max_clients: args.max_clients,
        max_per_client: args.max_per_client,
        queue: args.queue,
        queue_wait: Duration::from_secs(args.queue_wait),
        max_handshakes: args.max_handshakes,
        max_handshakes_per_ip: args.max_handshakes_per_ip,
        channel: ChannelConfig {
            idle_timeout: timeout,
            write_timeout: timeout,
            handshake_timeout: Duration::from_secs(args.handshake_timeout),
            link: args.link,
            ..ChannelConfig::default()
        },
        deadlines: SessionDeadlines {
            handshake: timeout.min(Duration::from_secs(60)),
            offline: args.offline_deadline.map(Duration::from_secs),
            online: args.online_deadline.map(Duration::from_secs),
        },
        grace: Duration::from_secs(args.grace),
        limits: pi_protocol::ServerLimits {
            max_pending: args.pool_max,
            pending_bytes: Some(PendingBudget::new(pending_bytes)),
        },
        allow: (!args.allow_client.is_empty()).then(|| args.allow_client.clone()),
        crls,
    };
    let mut listener = Listener::bind(listen, model, &identity, config).await?;
    if let Some(sink) = reports {
        listener = listener.with_reports(sink);
    }
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}").context("stdout")?;
        out.flush().context("stdout")?;
    }
    let d = listener.deadlines();
    tracing::info!(
        "serving {spec} on {addr}; phase deadlines: handshake {} s, request {} s, offline {} s, online {} s",
        d.handshake.as_secs(),
        d.request.as_secs(),
        d.offline.as_secs(),
        d.online.as_secs()
    );
    let summary = listener.run(shutdown).await;
    tracing::info!(
        "stopped: {} connection(s), {} inference(s), {} failed, {} refused, {} handshakes dropped",
        summary.connections,
        summary.inferences,
        summary.failed,
        summary.refused,
        summary.dropped
    );
    Ok(summary)
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
    print_usage_hint(&k.out, k.clients);
    Ok(())
}

fn print_usage_hint(dir: &Path, clients: usize) {
    let d = dir.display();
    println!("CA (keep offline; only `pi-server revoke` and new certificates need it): {d}/ca");
    println!("server:   pi-server --model SPEC --listen ADDR --tls {d}/server");
    for i in 1..=clients.min(3) {
        println!("client {i}: pi-client --connect ADDR --tls {d}/client-{i} --input X.npy");
    }
    if clients > 3 {
        println!("(and so on up to {d}/client-{clients}; hand each client only its own bundle)");
    }
}

fn run_revoke(r: &RevokeArgs) -> anyhow::Result<()> {
    let ca = CertificateAuthority::load(&r.ca)
        .with_context(|| format!("cannot load the CA from {}", r.ca.display()))?;
    let certs = r
        .certs
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let previous = match std::fs::read(&r.crl) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", r.crl.display())),
    };
    let pem = ca
        .revoke(&certs, previous.as_deref())
        .with_context(|| format!("revoking into {}", r.crl.display()))?;
    std::fs::write(&r.crl, pem).with_context(|| format!("cannot write {}", r.crl.display()))?;
    println!(
        "wrote {}: restart pi-server with --crl {} to refuse the revoked certificates",
        r.crl.display(),
        r.crl.display()
    );
    Ok(())
}
