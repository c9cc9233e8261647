//! The server of `pi-bench e2e`, `load` and `compare` as a child process.
//!
//! The child is this executable re-run with the hidden `server`
//! subcommand ([`serve_child`]), which is the `pi-server` command line
//! verbatim ([`pi_server::cli::serve_with_reports`]), stopping when its
//! standard input closes; so no second binary has to be built or found,
//! and each party's CPU time comes from the OS on its own
//! ([`ServerProcess::cpu`]). With `reports`, the child prints every
//! completed inference's server report as a JSON line `{"report": ...}`
//! after its `listening on ADDR` line, and `{"summary": ...}` (its
//! counters) when it stops.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};
use pi_server::ServeSummary;

use crate::machine::{self, Cpu};

/// How to start the server.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// The executable to run as `EXE server ...`.
    pub exe: PathBuf,
    /// Network spec or model file.
    pub spec: String,
    /// Weight file (`None`: the model file's).
    pub weights: Option<PathBuf>,
    /// Key directory from `keygen`.
    pub keys: PathBuf,
    /// The server's per-session limit of preprocessed inferences.
    pub pool_max: u32,
    /// Have the child print its inference reports.
    pub reports: bool,
    /// Session slots (`pi-server --max-clients`); one per client certificate is allowed two.
    pub max_clients: usize,
    /// Seconds a session may stay silent (`pi-server --timeout`): with several
    /// clients, one may wait long for its next request.
    pub idle_timeout: u64,
}

/// What the child printed after its first line.
#[derive(Debug, Default)]
pub struct ServerOutput {
    /// Every completed inference's server report, in order (JSON of
    /// [`pi_protocol::ServerReport`]).
    pub reports: Vec<serde_json::Value>,
    /// The server's counters when it stopped.
    pub summary: Option<ServeSummary>,
}

/// A running server process (stops when its standard input closes).
pub struct ServerProcess {
    child: Child,
    addr: String,
    output: Option<JoinHandle<Vec<String>>>,
}

impl ServerProcess {
    /// Starts the server and waits for its `listening on ADDR` line.
    ///
    /// # Errors
    /// If it cannot be started or does not print that line.
    pub fn start(s: &ServerSpec) -> Result<Self> {
        let mut cmd = Command::new(&s.exe);
        cmd.arg("server").args(["--model", &s.spec]);
        if let Some(w) = &s.weights {
            cmd.arg("--weights").arg(w);
        }
        cmd.args(["--listen", "127.0.0.1:0", "--tls"])
            .arg(&s.keys)
            .args(["--pool-max", &s.pool_max.to_string()])
            .args(["--relu", "gc,ot"])
            .args(["--max-clients", &s.max_clients.to_string()])
            .args(["--timeout", &s.idle_timeout.to_string()]);
        if s.reports {
            cmd.arg("--reports");
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start the server process {}", s.exe.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        let read = lines.read_line(&mut line);
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            read.context("reading the server's first line")?;
            bail!("the server process did not start (first line {line:?})");
        };
        let addr = addr.to_string();
        // Read the rest as it comes, so the child never blocks on a full pipe.
        let output = std::thread::spawn(move || lines.lines().map_while(Result::ok).collect());
        Ok(Self {
            child,
            addr,
            output: Some(output),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its CPU time so far (all threads).
    pub fn cpu(&self) -> Option<Cpu> {
        machine::process_cpu(self.child.id())
    }

    /// Closes its standard input (it stops), waits, and returns what it printed.
    ///
    /// # Errors
    /// If it exits with an error or prints something that is not a report.
    pub fn stop(mut self) -> Result<ServerOutput> {
        drop(self.child.stdin.take());
        let status = self.child.wait().context("waiting for the server")?;
        let lines = match self.output.take() {
            Some(h) => h.join().unwrap_or_default(),
            None => Vec::new(),
        };
        if !status.success() {
            bail!("the server process exited with {status}");
        }
        let mut out = ServerOutput::default();
        for line in lines.iter().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("the server process printed {line:?}"))?;
            if let Some(r) = v.get("report") {
                out.reports.push(r.clone());
            } else if let Some(s) = v.get("summary") {
                let n = |k: &str| s[k].as_u64().unwrap_or(0);
                out.summary = Some(ServeSummary {
                    connections: n("connections"),
                    inferences: n("inferences"),
                    failed: n("failed"),
                    refused: n("refused"),
                    dropped: n("dropped"),
                });
            }
        }
        Ok(out)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Only if `stop` was not reached (an error path): do not leave it running.
        if self.child.stdin.is_some() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn print_line(v: &serde_json::Value) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    out.flush()
}

/// The hidden `server` subcommand: `pi-server` with `args`, stopping when
/// standard input closes (or on a signal); with `reports`, the JSON lines
/// described in the module docs.
///
/// # Errors
/// As `pi-server`.
pub async fn serve_child(args: pi_server::cli::ServeArgs, reports: bool) -> Result<()> {
    let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed_tx.send(());
    });
    let signal = pi_server::shutdown_signal();
    let stop = async {
        tokio::select! {
            _ = closed => {}
            () = signal => {}
        }
    };
    let (sink, printer) = if reports {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<pi_protocol::ServerReport>();
        let printer = tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let v = serde_json::json!({ "report": r });
                if print_line(&v).is_err() {
                    break;
                }
            }
        });
        (Some(tx), Some(printer))
    } else {
        (None, None)
    };
    let summary = pi_server::cli::serve_with_reports(args, stop, sink).await?;
    if let Some(p) = printer {
        // The listener (and its sender) is gone: the printer drains and ends.
        let _ = p.await;
        print_line(&serde_json::json!({ "summary": {
            "connections": summary.connections,
            "inferences": summary.inferences,
            "failed": summary.failed,
            "refused": summary.refused,
            "dropped": summary.dropped,
        }}))
        .context("stdout")?;
    }
    Ok(())
}

/// A key directory with a server and one client certificate (`"1"`), in `dir`.
///
/// # Errors
/// If the files cannot be written.
pub fn throwaway_keys(dir: &Path) -> Result<PathBuf> {
    throwaway_keys_for(dir, 1)
}

/// A key directory with a server and `clients` client certificates
/// (`"1"`, `"2"`, ...), in `dir`.
///
/// # Errors
/// If the files cannot be written.
pub fn throwaway_keys_for(dir: &Path, clients: usize) -> Result<PathBuf> {
    let keys = dir.join("keys");
    let names: Vec<String> = (1..=clients.max(1)).map(|i| i.to_string()).collect();
    pi_protocol::transport::pki::keygen(&keys, &[], &names).context("throwaway certificates")?;
    Ok(keys)
}
