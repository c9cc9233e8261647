//! `pi-bench e2e`: one private inference end to end, both parties in this
//! process over real loopback TCP + TLS 1.3 (DESIGN.md section 5).
//!
//! The server is the `pi-server` library ([`pi_server::Listener`] on
//! `127.0.0.1:0`), the client the `pi-client` library
//! ([`pi_client::run_inference`]), with throwaway certificates from
//! [`keygen`] in a temporary directory. The client's logits are compared with
//! the fixed-point oracle [`forward_fixed`] computed here from the same
//! weight file, so the run doubles as a correctness check (`bit_exact`).
//!
//! The server library logs its per-inference report through `tracing` but
//! does not return it; what it returns is the [`ServeSummary`] counters, which
//! are reported as `server`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pi_client::{ClientOptions, Outcome, RawInput};
use pi_models::fixed::{forward_fixed, quantize_input};
use pi_models::weights::init_weights;
use pi_models::{Model, RingParams};
use pi_protocol::transport::pki::{TlsFiles, keygen};
use pi_protocol::transport::{ChannelConfig, Link};
use pi_protocol::{ClientConfig, ClientReport, ReluMode};
use pi_server::{Listener, ServeConfig, ServeSummary};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::json;

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
    /// Inferences to run (one connection each, same input).
    pub inferences: usize,
    /// Emulated link on the client's connection (both directions), if any.
    pub link: Option<Link>,
    /// Activation protocol the client asks for (the server allows both).
    pub relu: ReluMode,
}

/// What a run measured.
#[derive(Debug)]
pub struct E2eResult {
    /// Where the weights came from.
    pub weights_source: String,
    /// Where the input came from.
    pub input_source: String,
    /// Every inference's outcome, in order (at least one).
    pub runs: Vec<Outcome>,
    /// The fixed-point oracle's logits (signed, scale 2f).
    pub oracle: Vec<i64>,
    /// The server's counters after all inferences.
    pub server: ServeSummary,
    /// The server's own report of every inference (server-side seconds and bytes).
    pub server_reports: Vec<pi_protocol::ServerReport>,
    /// The emulated link, if any.
    pub link: Option<Link>,
}

impl E2eResult {
    /// The last inference (the one reported in full).
    pub fn last(&self) -> &Outcome {
        self.runs.last().expect("at least one inference")
    }

    /// Whether every inference's logits equal the oracle's.
    pub fn bit_exact(&self) -> bool {
        self.runs
            .iter()
            .all(|o| o.report.logits_fixed == self.oracle)
    }

    /// The client's report of the last inference (as `pi-client --json`
    /// prints it) plus the oracle check, derived figures and server counters.
    pub fn to_json(&self) -> serde_json::Value {
        let last = self.last();
        let r = &last.report;
        let mut v = pi_client::cli::report_json(last);
        let relus = r.activations.relus.max(1) as f64;
        let online_bytes = r.online.bytes_sent + r.online.bytes_received;
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
            o.insert(
                "runs".into(),
                json!(self.runs.iter().map(|o| json!({
                    "offline_seconds": o.report.offline.seconds,
                    "online_seconds": o.report.online.seconds,
                    "offline_bytes": o.report.offline.bytes_sent + o.report.offline.bytes_received,
                    "online_bytes": o.report.online.bytes_sent + o.report.online.bytes_received,
                    "bit_exact": o.report.logits_fixed == self.oracle,
                })).collect::<Vec<_>>()),
            );
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

    /// A readable table.
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
                self.runs.len()
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
            line(
                "server side",
                format!(
                    "offline {:.3} s, online {:.3} s, holds {:.2} MiB between phases",
                    r.offline.seconds,
                    r.online.seconds,
                    r.server_storage_bytes as f64 / (1 << 20) as f64
                ),
            );
        }
        if self.runs.len() > 1 {
            for (i, o) in self.runs.iter().enumerate() {
                line(
                    &format!("run {i}"),
                    format!(
                        "offline {:.3} s, online {:.3} s",
                        o.report.offline.seconds, o.report.online.seconds
                    ),
                );
            }
        }
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
}

/// A seeded random input in [-2, 2) of shape `shape`.
fn random_input(shape: &[usize], seed: u64) -> Result<RawInput> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data = (0..n)
        .map(|_| (rng.next_u32() as f64 / u32::MAX as f64 * 4.0 - 2.0) as f32)
        .collect();
    Ok(RawInput::new(data, shape.to_vec())?)
}

/// Runs the benchmark: builds keys, weights and input, starts the server,
/// runs the inferences and stops the server.
pub fn run(opts: &E2eOptions) -> Result<E2eResult> {
    if opts.inferences == 0 {
        bail!("--inferences must be at least 1");
    }
    let model = Model::resolve(&opts.spec).with_context(|| format!("network {:?}", opts.spec))?;
    let tmp = tempfile::tempdir().context("temporary directory")?;

    // Weights: explicit, else the model file's, else seeded random.
    let (weights, weights_source): (Option<PathBuf>, String) = match (&opts.weights, &model.weights)
    {
        (Some(w), _) => (Some(w.clone()), w.display().to_string()),
        (None, Some(w)) => (None, w.display().to_string()),
        (None, None) => {
            let bytes = init_weights(&model.network, opts.seed).context("random weights")?;
            let path = tmp.path().join("weights.bin");
            std::fs::write(&path, bytes).context("writing the random weights")?;
            (Some(path), format!("random (seed {})", opts.seed))
        }
    };

    // Input: a file, else seeded random of the network's input shape.
    let (raw, input_source) = match &opts.input {
        Some(p) => (pi_client::read_input(p)?, p.display().to_string()),
        None => {
            let s = model.network.tensors[model.network.input].shape;
            let seed = opts.seed.wrapping_add(1);
            (
                random_input(&[s.c, s.h, s.w], seed)?,
                format!("random (seed {seed})"),
            )
        }
    };

    // The oracle, from the same weight file the server loads.
    let folded = model.load_weights(weights.as_deref()).context("weights")?;
    let quant = model
        .quantize(&folded, RingParams::default())
        .context("quantising the weights")?;
    let x = model
        .prepare_input(raw.data.clone(), &raw.shape)
        .with_context(|| format!("input {input_source} for {}", opts.spec))?;
    let q = quantize_input(&x, quant.ring).context("quantising the input")?;
    let oracle: Vec<i64> = forward_fixed(&model.network, &quant, &q)
        .iter()
        .map(|&v| quant.ring.to_signed(v))
        .collect();

    let server_model = pi_server::load_model(&opts.spec, weights.as_deref())?
        .with_relu_modes(&[ReluMode::Gc, ReluMode::Ot])?;
    let keys = tmp.path().join("keys");
    keygen(&keys, &[], &["1".into()]).context("throwaway certificates")?;
    let server_tls = TlsFiles::server(&keys).load().context("server keys")?;
    let client_tls = TlsFiles::client(&keys, "1").load().context("client keys")?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let (runs, server) = rt.block_on(async {
        let config = ServeConfig {
            max_clients: 1,
            channel: ChannelConfig::default(),
            grace: Duration::from_secs(5),
            ..ServeConfig::default()
        };
        let (report_tx, mut report_rx) = tokio::sync::mpsc::unbounded_channel();
        let listener = Listener::bind("127.0.0.1:0", server_model, &server_tls, config)
            .await?
            .with_reports(report_tx);
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(listener.run(async {
            let _ = stopped.await;
        }));
        let opts_c = ClientOptions {
            addr: addr.to_string(),
            server_name: "localhost".into(),
            tls: client_tls,
            channel: ChannelConfig {
                link: opts.link,
                ..ChannelConfig::default()
            },
            session: ClientConfig {
                relu: opts.relu,
                ..ClientConfig::default()
            },
        };
        let mut runs = Vec::with_capacity(opts.inferences);
        let mut failure = None;
        for i in 0..opts.inferences {
            match pi_client::run_inference(&opts_c, &raw, &mut |_| {}).await {
                Ok(o) => runs.push(o),
                Err(e) => {
                    failure = Some(anyhow::Error::from(e).context(format!("inference {i}")));
                    break;
                }
            }
        }
        let _ = stop.send(());
        let summary = task.await.context("server task")?;
        let mut server_reports = Vec::new();
        while let Ok(r) = report_rx.try_recv() {
            server_reports.push(r);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok((runs, (summary, server_reports))),
        }
    })?;
    let (server, server_reports) = server;
    Ok(E2eResult {
        weights_source,
        input_source,
        runs,
        oracle,
        server,
        server_reports,
        link: opts.link,
    })
}
