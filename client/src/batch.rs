//! Many inputs in one session: `pi-client --input A.npy B.npy DIR ...`.
//!
//! One connection, one TLS and session handshake (and so one HE key upload)
//! for all inputs; the inferences go through a [`Pool`] of preprocessed
//! material, in input order. One connection carries both phases and a phase
//! is never interrupted, so inferences still run one after another: what the
//! batch saves over one process per input is the reconnect, both handshakes
//! and the session setup, and with `--pool N` offline phases can run ahead
//! while the pool is idle. Inputs are read and checked lazily, a few ahead of
//! the one being served (the pool's capacity plus one), so a large directory
//! costs no more memory than a few inputs.
//!
//! A bad input (unreadable, not a float32 `.npy`, not finite, the wrong
//! shape for the server's network) is reported and skipped: it never reaches
//! the pool, so it costs no preprocessed material. A failure of the session
//! itself ends the batch: the inputs not yet served are reported as not run.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pi_models::Model;
use pi_models::fixed::{RingParams, quantize_input};
use pi_protocol::transport::TlsConnector;
use pi_protocol::{ClientReport, ClientSession};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::pool::{Pool, PoolConfig, PoolState, Served, answer};
use crate::{ClientError, ClientOptions, read_input};

/// What one input came to: the answer, or why it was skipped.
pub type ItemResult = Result<Served, String>;

/// Expands `--input` arguments: files as given, a directory into its
/// `.npy` files (sorted by name, not recursive).
///
/// # Errors
/// [`ClientError::Input`] if a directory cannot be listed or holds no
/// `.npy` file, or if nothing is left.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ClientError> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let listing = std::fs::read_dir(p)
            .map_err(|e| ClientError::Input(format!("{}: {e}", p.display())))?;
        let mut files: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.extension().is_some_and(|x| x.eq_ignore_ascii_case("npy")) && !f.is_dir())
            .collect();
        if files.is_empty() {
            return Err(ClientError::Input(format!(
                "{}: no .npy file in this directory",
                p.display()
            )));
        }
        files.sort();
        out.extend(files);
    }
    if out.is_empty() {
        return Err(ClientError::Input("no input given".into()));
    }
    Ok(out)
}

/// The whole batch.
#[derive(Clone, Debug, Serialize)]
pub struct BatchSummary {
    /// Canonical spec of the server's network.
    pub spec: String,
    /// Inputs given (after expanding directories).
    pub inputs: usize,
    /// Answered with a result.
    pub completed: usize,
    /// Skipped (bad input) or not run (the session failed).
    pub failed: usize,
    /// Completed inferences that found the pool empty and ran their own offline phase first.
    pub waited_for_offline: usize,
    /// Connect to the last answer, seconds.
    pub seconds: f64,
    /// Completed inferences per second over `seconds`.
    pub throughput: f64,
    /// Mean offline-phase seconds of the completed inferences.
    pub mean_offline_seconds: f64,
    /// Mean online-phase seconds of the completed inferences.
    pub mean_online_seconds: f64,
    /// Bytes sent and received by all completed inferences, both phases.
    pub bytes: u64,
    /// The pool at the end.
    pub pool: PoolState,
    /// Why the session ended early, if it did.
    pub session_error: Option<String>,
}

/// An input read, checked against the server's network and quantised.
fn prepare(path: &Path, model: &Model, ring: RingParams) -> Result<Vec<u64>, String> {
    let raw = read_input(path).map_err(|e| e.to_string())?;
    let x = model
        .prepare_input(raw.data, &raw.shape)
        .map_err(|e| format!("bad input: {}: {e}", path.display()))?;
    quantize_input(&x, ring).map_err(|e| format!("bad input: {}: {e}", path.display()))
}

enum Pending {
    Skipped(String),
    Waiting(oneshot::Receiver<pi_protocol::Result<Served>>),
}

/// Connects once and runs one inference per input through a pool
/// (`config`), calling `on_result` (with the server's canonical spec) for
/// every input in order, as soon as its answer (or its error) is known.
///
/// # Errors
/// If the connection or the handshake fails, or the pool cannot start;
/// an input's own failure, or the session's after it started, is reported
/// through `on_result` and the summary instead.
pub async fn run_batch(
    opts: &ClientOptions,
    inputs: &[PathBuf],
    config: PoolConfig,
    on_result: &mut dyn FnMut(&str, &Path, &ItemResult),
) -> Result<BatchSummary, ClientError> {
    let started = Instant::now();
    let connector = TlsConnector::new(&opts.tls, opts.channel.clone())?;
    let mut ch = connector
        .connect(opts.addr.as_str(), &opts.server_name)
        .await?;
    let session = ClientSession::handshake(&mut ch, &opts.session).await?;
    let model = session.model().clone();
    let ring = session.ring();
    let spec = model.network.spec.canonical();
    let pool = Pool::start(ch, session, config)?;
    // The pool's capacity, plus the next request, keeps the driver busy.
    let window = pool.state().capacity + 1;
    let mut pending: VecDeque<(usize, Pending)> = VecDeque::new();
    let mut tally = Tally::default();
    let mut session_error: Option<String> = None;
    let mut next = 0;
    loop {
        let submitting = session_error.is_none() && next < inputs.len();
        // Keep `window` requests with the pool while inputs remain.
        if submitting && pending.len() < window {
            let item = match prepare(&inputs[next], &model, ring) {
                Ok(q) => Pending::Waiting(pool.submit_at(q, Instant::now()).await),
                Err(e) => Pending::Skipped(e),
            };
            pending.push_back((next, item));
            next += 1;
            // A skipped input is reported at once if it is next in line.
            if !matches!(pending.front(), Some((_, Pending::Skipped(_)))) {
                continue;
            }
        }
        let Some((i, item)) = pending.pop_front() else {
            break;
        };
        let r = match item {
            Pending::Skipped(e) => Err(e),
            Pending::Waiting(rx) => answer(rx).await.map_err(|e| {
                // Inputs are checked before they reach the pool, so an
                // error here is the session's: nothing more is submitted.
                session_error.get_or_insert_with(|| e.to_string());
                format!("not run: {e}")
            }),
        };
        tally.add(&r);
        on_result(&spec, &inputs[i], &r);
    }
    for path in &inputs[next..] {
        let r: ItemResult = Err("not run: the session ended before this input".into());
        tally.add(&r);
        on_result(&spec, path, &r);
    }
    let pool_state = match pool.close().await {
        Ok(s) => s,
        Err(e) => {
            session_error.get_or_insert_with(|| e.to_string());
            PoolState::default()
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let n = tally.completed.max(1) as f64;
    Ok(BatchSummary {
        spec,
        inputs: inputs.len(),
        completed: tally.completed,
        failed: tally.failed,
        waited_for_offline: tally.waited,
        seconds,
        throughput: tally.completed as f64 / seconds.max(f64::MIN_POSITIVE),
        mean_offline_seconds: tally.offline_seconds / n,
        mean_online_seconds: tally.online_seconds / n,
        bytes: tally.bytes,
        pool: pool_state,
        session_error,
    })
}

/// Running totals over the answers.
#[derive(Default)]
struct Tally {
    completed: usize,
    failed: usize,
    waited: usize,
    offline_seconds: f64,
    online_seconds: f64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, r: &ItemResult) {
        let Ok(s) = r else {
            self.failed += 1;
            return;
        };
        let rep = &s.report;
        self.completed += 1;
        self.waited += usize::from(s.waited_for_offline);
        self.offline_seconds += rep.offline.seconds;
        self.online_seconds += rep.online.seconds;
        self.bytes += rep.offline.bytes_sent
            + rep.offline.bytes_received
            + rep.online.bytes_sent
            + rep.online.bytes_received;
    }
}

/// One input's line of text output.
pub fn result_line(path: &Path, r: &ItemResult) -> String {
    match r {
        Ok(s) => {
            let rep = &s.report;
            let logit = rep.logits.get(rep.class).copied().unwrap_or(f64::NAN);
            format!(
                "{}: class {} (logit {logit:.3}); offline {:.3} s{}, online {:.3} s, latency {:.3} s",
                path.display(),
                rep.class,
                rep.offline.seconds,
                if s.waited_for_offline { "" } else { " ahead" },
                rep.online.seconds,
                s.latency()
            )
        }
        Err(e) => format!("{}: error: {e}", path.display()),
    }
}

/// One input's JSON line: the protocol's report as `pi-client --json`
/// prints it, with `input`, `latency_seconds`, `queueing_seconds` and
/// `waited_for_offline`; or `input` and `error`.
pub fn result_json(spec: &str, path: &Path, r: &ItemResult) -> serde_json::Value {
    match r {
        Ok(s) => {
            let mut v = report_value(spec, &s.report);
            if let Some(o) = v.as_object_mut() {
                o.insert("input".into(), path.display().to_string().into());
                o.insert("latency_seconds".into(), s.latency().into());
                o.insert("queueing_seconds".into(), s.queueing_delay().into());
                o.insert("waited_for_offline".into(), s.waited_for_offline.into());
            }
            v
        }
        Err(e) => serde_json::json!({ "input": path.display().to_string(), "error": e }),
    }
}

/// The summary as text (after the result lines).
pub fn summary_text(s: &BatchSummary) -> String {
    let mut out = format!(
        "{} inputs: {} done, {} failed, in {:.2} s ({:.3} inferences/s) on {}\n",
        s.inputs, s.completed, s.failed, s.seconds, s.throughput, s.spec
    );
    if s.completed > 0 {
        out.push_str(&format!(
            "mean offline {:.3} s, online {:.3} s; {} of {} ran their offline phase on demand; {:.1} MiB moved; {} offline phases ({} ahead)\n",
            s.mean_offline_seconds,
            s.mean_online_seconds,
            s.waited_for_offline,
            s.completed,
            s.bytes as f64 / (1u64 << 20) as f64,
            s.pool.refills,
            s.pool.background_refills
        ));
    }
    if let Some(e) = &s.session_error {
        out.push_str(&format!("the session ended early: {e}\n"));
    }
    out
}

/// A report as JSON: the protocol's [`ClientReport`] plus `spec`, `relus`
/// and `identity` at the top level (what `pi-client --json` prints).
pub fn report_value(spec: &str, report: &ClientReport) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("spec".into(), spec.into());
        o.insert("relus".into(), report.activations.relus.into());
        o.insert("identity".into(), report.activations.identity.into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_expand_to_their_npy_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.npy", "a.npy", "c.txt", "D.NPY"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.npy")).unwrap();
        let lone = PathBuf::from("missing.npy");
        let got = expand_inputs(&[lone.clone(), dir.path().to_path_buf()]).unwrap();
        let names: Vec<String> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // A missing file stays in the list: it is reported when its turn comes.
        assert_eq!(names, ["missing.npy", "D.NPY", "a.npy", "b.npy"]);
        assert_eq!(got[0], lone);
        let empty = tempfile::tempdir().unwrap();
        let e = expand_inputs(&[empty.path().to_path_buf()]).unwrap_err();
        assert!(matches!(e, ClientError::Input(_)), "{e}");
        assert!(expand_inputs(&[]).is_err());
    }
}
