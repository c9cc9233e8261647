//! `pi-bench e2e`: private inference end to end over real loopback TCP +
//! TLS 1.3, repeated on fresh sessions.
//!
//! The server is a `pi-server` child process ([`crate::server_process`]),
//! the client the `pi-client` library ([`pi_client::run_inference`]) in this
//! process, with throwaway certificates from `keygen` in a temporary
//! directory. Each measurement is one inference on a fresh connection and
//! session; `warmup` of them run first and are reported apart, then
//! `repeat` measured ones. The client's logits are compared with the
//! fixed-point oracle computed here from the same weight file, so every run
//! doubles as a correctness check (`bit_exact`).
//!
//! Per measurement: the client's wall time per phase (its report), the
//! server's own report (seconds and bytes per phase), and the CPU time
//! (user + system) of each party per phase, read from the OS: this process
//! for the client, the child for the server, at the moment the client
//! starts its online phase. Over the measurements: a [`Summary`] per
//! metric, and the machine's load during the run ([`MachineLoad`]).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pi_client::{ClientOptions, Outcome, Progress, RawInput};
use pi_protocol::transport::pki::TlsFiles;
use pi_protocol::transport::{ChannelConfig, Link};
use pi_protocol::{ClientReport, ReluMode};
use pi_server::ServeSummary;
use serde::Serialize;
use serde_json::json;

use crate::machine::{self, Cpu, MachineLoad, Mark};
use crate::server_process::{ServerProcess, ServerSpec, throwaway_keys};
use crate::stats::Summary;
use crate::workload::{Workload, random_input};

/// What to run.
#[derive(Clone, Debug)]
pub struct E2eOptions {
    /// Network spec, preset or model file.
    pub spec: String,
    /// Weight file; default: the model file's, else seeded random weights.
    pub weights: Option<PathBuf>,
    /// `.npy` float32 (C, H, W) input; default: a seeded random input.
    pub input: Option<PathBuf>,
    /// Seed of the random weights and input.
    pub seed: u64,
    /// Measured inferences (one fresh session each, same input).
    pub repeat: usize,
    /// Inferences run first and discarded (reported apart).
    pub warmup: usize,
    /// Emulated link on the client's connection (both directions), if any.
    pub link: Option<Link>,
    /// Activation protocol the client asks for (the server allows both).
    pub relu: ReluMode,
    /// The executable to run as the server (`EXE server ...`); default this one.
    pub server_exe: Option<PathBuf>,
    /// The client's budgets and material directory (as `pi-client`'s options).
    pub budget: pi_client::cli::BudgetArgs,
}

/// CPU time of one party in each phase (`None` where the OS did not say).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PhaseCpu {
    /// From the end of the handshakes to the start of the online phase.
    pub offline: Option<Cpu>,
    /// From the start of the online phase to the session's close.
    pub online: Option<Cpu>,
}

/// One inference on a fresh session.
#[derive(Debug)]
pub struct Run {
    /// What the client got and measured.
    pub outcome: Outcome,
    /// Connect to close, seconds (client clock).
    pub wall_seconds: f64,
    /// The client's CPU time (this process).
    pub client_cpu: PhaseCpu,
    /// The server's CPU time (the child process).
    pub server_cpu: PhaseCpu,
    /// Peak resident memory of this process (the client, with the oracle's
    /// model and weights loaded before the run) during the inference, bytes.
    pub client_peak_rss_bytes: Option<u64>,
    /// Peak resident memory of the server process during the inference.
    pub server_peak_rss_bytes: Option<u64>,
}

impl Run {
    fn to_json(&self, oracle: &[i64]) -> serde_json::Value {
        let r = &self.outcome.report;
        json!({
            "inference": r.inference,
            "offline_seconds": r.offline.seconds,
            "online_seconds": r.online.seconds,
            "wall_seconds": self.wall_seconds,
            "offline_bytes": r.offline.bytes_sent + r.offline.bytes_received,
            "online_bytes": r.online.bytes_sent + r.online.bytes_received,
            "cpu": { "client": self.client_cpu, "server": self.server_cpu },
            "peak_rss_bytes": {
                "client": self.client_peak_rss_bytes,
                "server": self.server_peak_rss_bytes,
            },
            "bit_exact": r.logits_fixed == oracle,
        })
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct E2eResult {
    /// Where the weights came from.
    pub weights_source: String,
    /// Where the input came from.
    pub input_source: String,
    /// The warm-up inferences (discarded from the summaries).
    pub warmup: Vec<Run>,
    /// The measured inferences, in order (at least one).
    pub runs: Vec<Run>,
    /// The fixed-point oracle's logits (signed, scale 2f).
    pub oracle: Vec<i64>,
    /// The server's counters after all inferences.
    pub server: ServeSummary,
    /// The server's own report of every inference, warm-up included
    /// (JSON of [`pi_protocol::ServerReport`]).
    pub server_reports: Vec<serde_json::Value>,
    /// The emulated link, if any.
    pub link: Option<Link>,
    /// The machine's load during the inferences.
    pub machine: MachineLoad,
}

/// The metrics summarised over the measured runs, by JSON name.
type Metric = (&'static str, fn(&Run) -> Option<f64>);
const METRICS: [Metric; 9] = [
    ("offline_seconds", |r| {
        Some(r.outcome.report.offline.seconds)
    }),
    ("online_seconds", |r| Some(r.outcome.report.online.seconds)),
    ("wall_seconds", |r| Some(r.wall_seconds)),
    ("client_offline_cpu_seconds", |r| {
        r.client_cpu.offline.map(Cpu::total)
    }),
    ("client_online_cpu_seconds", |r| {
        r.client_cpu.online.map(Cpu::total)
    }),
    ("server_offline_cpu_seconds", |r| {
        r.server_cpu.offline.map(Cpu::total)
    }),
    ("server_online_cpu_seconds", |r| {
        r.server_cpu.online.map(Cpu::total)
    }),
    ("client_peak_rss_bytes", |r| {
        r.client_peak_rss_bytes.map(|b| b as f64)
    }),
    ("server_peak_rss_bytes", |r| {
        r.server_peak_rss_bytes.map(|b| b as f64)
    }),
];

impl E2eResult {
    /// The last measured inference (the one reported in full).
    pub fn last(&self) -> &Outcome {
        &self.runs.last().expect("at least one inference").outcome
    }

    /// Whether every inference's logits (warm-up included) equal the oracle's.
    pub fn bit_exact(&self) -> bool {
        self.warmup
            .iter()
            .chain(&self.runs)
            .all(|r| r.outcome.report.logits_fixed == self.oracle)
    }

    /// A metric over the measured runs (`None` if the OS gave no figure).
    pub fn summary(&self, metric: fn(&Run) -> Option<f64>) -> Option<Summary> {
        let xs: Option<Vec<f64>> = self.runs.iter().map(metric).collect();
        Summary::of(&xs?)
    }

    /// The client's report of the last inference (as `pi-client --json`
    /// prints it) plus the oracle check, derived figures, every run's
    /// figures, their summaries, server counters and the machine's load.
    pub fn to_json(&self) -> serde_json::Value {
        let last = self.last();
        let r = &last.report;
        let mut v = pi_client::cli::report_json(last);
        let relus = r.activations.relus.max(1) as f64;
        let online_bytes = r.online.bytes_sent + r.online.bytes_received;
        let summary: serde_json::Map<String, serde_json::Value> = METRICS
            .iter()
            .filter_map(|(name, f)| Some(((*name).to_string(), json!(self.summary(*f)?))))
            .collect();
        if let Some(o) = v.as_object_mut() {
            o.insert("weights_source".into(), self.weights_source.clone().into());
            o.insert("input_source".into(), self.input_source.clone().into());
            o.insert("link".into(), json!(self.link.map(|l| l.to_string())));
            o.insert("oracle_logits_fixed".into(), json!(self.oracle));
            o.insert("bit_exact".into(), self.bit_exact().into());
            o.insert(
                "client_storage_bytes_per_relu".into(),
                (r.client_storage_bytes as f64 / relus).into(),
            );
            o.insert(
                "online_bytes_per_relu".into(),
                (online_bytes as f64 / relus).into(),
            );
            let (off, on) = Self::activation_bytes_per_position(r);
            o.insert("activation_offline_bytes_per_position".into(), off.into());
            o.insert("activation_online_bytes_per_position".into(), on.into());
            o.insert("repeat".into(), self.runs.len().into());
            o.insert("warmup".into(), self.warmup.len().into());
            let runs =
                |rs: &[Run]| -> Vec<_> { rs.iter().map(|x| x.to_json(&self.oracle)).collect() };
            o.insert("runs".into(), json!(runs(&self.runs)));
            o.insert("warmup_runs".into(), json!(runs(&self.warmup)));
            o.insert("summary".into(), summary.into());
            o.insert("machine".into(), json!(self.machine));
            o.insert(
                "server".into(),
                json!({
                    "connections": self.server.connections,
                    "inferences": self.server.inferences,
                    "failed": self.server.failed,
                    "reports": self.server_reports,
                }),
            );
        }
        v
    }

    /// Bytes (both directions) of the activation steps per activation
    /// position (ReLU or identity): (offline, online).
    pub fn activation_bytes_per_position(r: &ClientReport) -> (f64, f64) {
        let positions = (r.activations.relus + r.activations.identity).max(1) as f64;
        let (mut off, mut on) = (0u64, 0u64);
        for l in r.layers.iter().filter(|l| l.kind == "relu") {
            off += l.offline.bytes_sent + l.offline.bytes_received;
            on += l.online.bytes_sent + l.online.bytes_received;
        }
        (off as f64 / positions, on as f64 / positions)
    }

    /// A readable table: the last inference in full, then the summaries.
    pub fn table(&self) -> String {
        let last = self.last();
        let r = &last.report;
        let relus = r.activations.relus.max(1) as f64;
        let online_bytes = r.online.bytes_sent + r.online.bytes_received;
        let mut s = pi_client::cli::summary(last, None);
        let mut line = |k: &str, v: String| s.push_str(&format!("{k:<16}{v}\n"));
        line("weights", self.weights_source.clone());
        let (off, on) = Self::activation_bytes_per_position(r);
        line(
            "activations",
            format!(
                "{off:.0} B offline + {on:.0} B online per position ({} mode, both directions)",
                r.relu_mode
            ),
        );
        line("input", self.input_source.clone());
        line(
            "link",
            self.link
                .map_or("loopback, not shaped".into(), |l| l.to_string()),
        );
        line(
            "per ReLU",
            format!(
                "client storage {:.0} B, online traffic {:.0} B",
                r.client_storage_bytes as f64 / relus,
                online_bytes as f64 / relus
            ),
        );
        line(
            "bit exact",
            format!(
                "{} (logits vs the fixed-point oracle, {} inference(s))",
                self.bit_exact(),
                self.warmup.len() + self.runs.len()
            ),
        );
        line(
            "server",
            format!(
                "{} connection(s), {} inference(s), {} failed",
                self.server.connections, self.server.inferences, self.server.failed
            ),
        );
        if let Some(r) = self.server_reports.last() {
            let f = |p: &str, k: &str| r[p][k].as_f64().unwrap_or(f64::NAN);
            line(
                "server side",
                format!(
                    "offline {:.3} s, online {:.3} s, holds {:.2} MiB between phases (last inference)",
                    f("offline", "seconds"),
                    f("online", "seconds"),
                    r["server_storage_bytes"].as_f64().unwrap_or(f64::NAN) / (1 << 20) as f64
                ),
            );
        }
        s.push_str(&self.summary_text());
        s.push_str(&format!(
            "\n{:<22} {:>10} {:>12} {:>12} {:>10} {:>12} {:>12}\n",
            "step", "offline s", "off sent", "off recv", "online s", "on sent", "on recv"
        ));
        for l in &r.layers {
            s.push_str(&format!(
                "{:<22} {:>10.3} {:>12} {:>12} {:>10.3} {:>12} {:>12}\n",
                l.name,
                l.offline.seconds,
                l.offline.bytes_sent,
                l.offline.bytes_received,
                l.online.seconds,
                l.online.bytes_sent,
                l.online.bytes_received
            ));
        }
        s
    }

    /// The repeated measurements: medians with intervals, CPU beside wall
    /// time, the machine's load and the warning if it was busy.
    fn summary_text(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("{k:<16}{v}\n"));
        line(
            "measured",
            format!(
                "{} inference(s), each on a fresh session, after {} warm-up inference(s) (discarded{})",
                self.runs.len(),
                self.warmup.len(),
                if self.warmup.is_empty() {
                    String::new()
                } else {
                    let w: Vec<String> = self
                        .warmup
                        .iter()
                        .map(|r| {
                            format!(
                                "offline {:.3} s, online {:.3} s",
                                r.outcome.report.offline.seconds, r.outcome.report.online.seconds
                            )
                        })
                        .collect();
                    format!(": {}", w.join("; "))
                }
            ),
        );
        line(
            "",
            "median [95% interval for the median, order statistics], seconds".into(),
        );
        let show = |f: fn(&Run) -> Option<f64>| self.summary(f).map_or("-".into(), |x| x.show(3));
        for (label, wall, client, server) in [("offline", 0, 3, 5), ("online", 1, 4, 6)] {
            line(
                label,
                format!(
                    "wall {}, CPU (user + system) client {}, server {}",
                    show(METRICS[wall].1),
                    show(METRICS[client].1),
                    show(METRICS[server].1)
                ),
            );
        }
        let mib = |f: fn(&Run) -> Option<f64>| {
            self.summary(f).map_or("-".into(), |x| {
                format!("{:.0} MiB", x.median / f64::from(1 << 20))
            })
        };
        line(
            "peak memory",
            format!(
                "client {} (this process, oracle included), server {} (median resident set)",
                mib(METRICS[7].1),
                mib(METRICS[8].1)
            ),
        );
        if let Some(x) = self.summary(METRICS[0].1).filter(|x| x.n > 1) {
            line(
                "",
                format!(
                    "n = {}, interval coverage {:.1}%{}",
                    x.n,
                    100.0 * x.ci_coverage,
                    if x.ci_coverage < 0.95 {
                        " (fewer than 6 samples: [min, max])"
                    } else {
                        ""
                    }
                ),
            );
        }
        if self.runs.len() > 1 {
            for (i, r) in self.runs.iter().enumerate() {
                line(
                    &format!("run {i}"),
                    format!(
                        "offline {:.3} s, online {:.3} s",
                        r.outcome.report.offline.seconds, r.outcome.report.online.seconds
                    ),
                );
            }
        }
        line("machine", self.machine.describe());
        if let Some(w) = &self.machine.warning {
            s.push_str(w);
            s.push('\n');
        }
        s
    }
}

/// CPU readings of both parties at one moment.
#[derive(Clone, Copy, Default)]
struct Readings {
    client: Option<Cpu>,
    server: Option<Cpu>,
}

impl Readings {
    fn now(server_pid: u32) -> Self {
        Self {
            client: machine::self_cpu(),
            server: machine::process_cpu(server_pid),
        }
    }
}

/// One inference on a fresh session, with CPU readings at the end of the
/// handshakes, at the start of the online phase and at the end.
async fn measure_one(opts: &ClientOptions, raw: &RawInput, server_pid: u32) -> Result<Run> {
    let mut connected = None;
    let mut online = None;
    // Peaks from here on (Linux; where the reset is refused, the figure is
    // the process's peak since it started).
    let me = std::process::id();
    machine::reset_peak_rss(me);
    machine::reset_peak_rss(server_pid);
    let t = Instant::now();
    let outcome = pi_client::run_inference(opts, raw, &mut |p| match p {
        Progress::Connected { .. } => connected = Some(Readings::now(server_pid)),
        Progress::Step { phase, .. } if phase == "online" && online.is_none() => {
            online = Some(Readings::now(server_pid));
        }
        Progress::Step { .. } => {}
    })
    .await?;
    let end = Readings::now(server_pid);
    let wall_seconds = t.elapsed().as_secs_f64();
    let phase = |pick: fn(&Readings) -> Option<Cpu>| PhaseCpu {
        offline: Cpu::between(
            connected.as_ref().and_then(pick),
            online.as_ref().and_then(pick),
        ),
        online: Cpu::between(online.as_ref().and_then(pick), pick(&end)),
    };
    Ok(Run {
        outcome,
        wall_seconds,
        client_cpu: phase(|r| r.client),
        server_cpu: phase(|r| r.server),
        client_peak_rss_bytes: machine::peak_rss_bytes(me),
        server_peak_rss_bytes: machine::peak_rss_bytes(server_pid),
    })
}

/// Runs the benchmark: builds keys, weights and input, starts the server
/// process, runs the warm-up and measured inferences and stops the server.
///
/// # Errors
/// On bad options, files or specs, or a failed inference.
pub fn run(opts: &E2eOptions) -> Result<E2eResult> {
    if opts.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let work = Workload::new(
        &opts.spec,
        opts.weights.as_deref(),
        opts.seed,
        tmp.path(),
        "weights.safetensors",
    )?;

    // Input: a file, else seeded random of the network's input shape.
    let (raw, input_source) = match &opts.input {
        Some(p) => (pi_client::read_input(p)?, p.display().to_string()),
        None => {
            let shape = work.input_shape();
            let seed = opts.seed.wrapping_add(1);
            (
                RawInput::new(random_input(&shape, seed), shape.to_vec())?,
                format!("random (seed {seed})"),
            )
        }
    };
    let (_, oracle) = work
        .case(raw.data.clone(), &raw.shape)
        .with_context(|| format!("input {input_source} for {}", opts.spec))?;

    let keys = throwaway_keys(tmp.path())?;
    let client_tls = TlsFiles::client(&keys, "1").load().context("client keys")?;
    let exe = match &opts.server_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot locate this executable")?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // Local options are checked before the server starts.
    let session = opts.budget.config(opts.relu)?;
    let mark = Mark::now();
    let server = ServerProcess::start(&ServerSpec {
        exe,
        spec: opts.spec.clone(),
        weights: work.weights.clone(),
        keys,
        pool_max: pi_protocol::session::DEFAULT_MAX_PENDING,
        reports: true,
        max_clients: 8,
        idle_timeout: 300,
    })?;
    let client = ClientOptions {
        addr: server.addr().to_string(),
        server_name: "localhost".into(),
        tls: client_tls,
        channel: ChannelConfig {
            link: opts.link,
            ..ChannelConfig::default()
        },
        session,
    };
    let pid = server.pid();
    let mut runs = Vec::with_capacity(opts.warmup + opts.repeat);
    let failure = rt.block_on(async {
        for i in 0..opts.warmup + opts.repeat {
            match measure_one(&client, &raw, pid).await {
                Ok(r) => runs.push(r),
                Err(e) => return Some(e.context(format!("inference {i}"))),
            }
        }
        None
    });
    let output = server.stop();
    let machine = mark.until_now();
    if let Some(e) = failure {
        return Err(e);
    }
    let output = output?;
    let runs_measured = runs.split_off(opts.warmup);
    Ok(E2eResult {
        weights_source: work.weights_source.clone(),
        input_source,
        warmup: runs,
        runs: runs_measured,
        oracle,
        server: output.summary.unwrap_or_default(),
        server_reports: output.reports,
        link: opts.link,
        machine,
    })
}
