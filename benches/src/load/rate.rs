//! One arrival rate: K client sessions at once, each with its own
//! connection, certificate and [`Pool`], fresh for the rate; requests arrive
//! as one seeded Poisson process at the aggregate rate and each goes to a
//! client drawn at random ([`assign`]), so every client sees a Poisson
//! process at rate / K.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pi_client::pool::{Pool, PoolConfig, PoolState, Served, answer};

use super::arrivals::{Poisson, assign};
use super::result::{ClientRate, Latency, RateResult};
use super::target::{Inputs, Target};
use super::{LoadOptions, Progress, Rate};
use crate::machine::Cpu;

/// An answer: request index, client index, result.
type Answer = (usize, usize, pi_protocol::Result<Served>);

/// Runs `opts.requests` requests at `per_second` (aggregate) against `target`.
pub(crate) async fn run_rate(
    opts: &LoadOptions,
    target: &Target,
    inputs: &Inputs,
    rate: &Rate,
    per_second: f64,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<RateResult> {
    let k = target.connectors.len();
    // The server's peak memory from here: sessions, pools and requests.
    let peak_reset = target.reset_server_peak();
    let config = PoolConfig {
        max_bytes: opts.pool_bytes,
        max_count: opts.pool_count,
        background: true,
    };
    let mut pools = Vec::with_capacity(k);
    for c in 0..k {
        let (ch, session) = target
            .session(c)
            .await
            .with_context(|| format!("client {}", target.names[c]))?;
        pools.push(Pool::start(ch, session, config.clone())?);
    }
    if opts.prefill {
        for p in &mut pools {
            let capacity = p.state().capacity;
            p.wait_for(capacity).await?;
        }
    }
    let pool_at_start = pools.iter().map(|p| p.state().size).sum();
    let arrivals = Poisson::new(per_second, seed).arrivals(opts.requests);
    let owners = assign(opts.requests, k, seed ^ 0x636c_6965_6e74);
    let cpu0 = target.cpu();
    let start = tokio::time::Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut answers: Vec<Answer> = Vec::with_capacity(opts.requests);
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
        let c = owners[i];
        let reply = pools[c].submit_at(inputs.input(i), when.into_std()).await;
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send((i, c, answer(reply).await));
        });
    }
    drop(tx);
    while let Some(a) = rx.recv().await {
        progress.step();
        answers.push(a);
    }
    // Every answer is in: a session that fails to close (a remote server's
    // idle timeout may have dropped a client that had nothing to do) is
    // recorded, and its pool's last state kept.
    let mut ends = Vec::with_capacity(k);
    let mut close_errors = Vec::new();
    for (c, p) in pools.into_iter().enumerate() {
        let last = p.state();
        match p.close().await {
            Ok(end) => ends.push(end),
            Err(e) => {
                close_errors.push(format!(
                    "client {}: closing its session: {e}",
                    target.names[c]
                ));
                ends.push(last);
            }
        }
    }
    let cpu1 = target.cpu();
    let mut r = summarise(
        rate,
        per_second,
        pool_at_start,
        &answers,
        &owners,
        inputs,
        start.into_std(),
        &ends,
        &target.names,
    );
    r.close_errors = close_errors;
    r.client_cpu = Cpu::between(cpu0.0, cpu1.0);
    r.server_cpu = Cpu::between(cpu0.1, cpu1.1);
    r.server_peak_rss_bytes = if peak_reset {
        target.server_peak()
    } else {
        None
    };
    Ok(r)
}

/// Counts over some of the answers.
struct Tally {
    completed: usize,
    failed: usize,
    waited: usize,
    bit_exact: Option<usize>,
    latency: Vec<f64>,
    queueing: Vec<f64>,
    online_seconds: f64,
    throughput: f64,
    seconds: f64,
}

impl Tally {
    /// Of `answers` among `requests` sent.
    fn of(answers: &[&Answer], requests: usize, inputs: &Inputs, start: Instant) -> Self {
        let ok: Vec<(usize, &Served)> = answers
            .iter()
            .filter_map(|(i, _, a)| a.as_ref().ok().map(|s| (*i, s)))
            .collect();
        let first = ok.iter().map(|(_, s)| s.arrived).min().unwrap_or(start);
        let last = ok.iter().map(|(_, s)| s.finished).max().unwrap_or(start);
        let seconds = last.saturating_duration_since(first).as_secs_f64();
        let bit_exact = inputs.oracle.as_ref().map(|_| {
            ok.iter()
                .filter(|(i, s)| inputs.check(*i, &s.report) == Some(true))
                .count()
        });
        Self {
            completed: ok.len(),
            failed: requests - ok.len(),
            waited: ok.iter().filter(|(_, s)| s.waited_for_offline).count(),
            bit_exact,
            latency: ok.iter().map(|(_, s)| s.latency()).collect(),
            queueing: ok.iter().map(|(_, s)| s.queueing_delay()).collect(),
            online_seconds: ok.iter().map(|(_, s)| s.report.online.seconds).sum(),
            throughput: if seconds > 0.0 {
                ok.len() as f64 / seconds
            } else {
                0.0
            },
            seconds,
        }
    }

    fn waited_fraction(&self) -> f64 {
        if self.completed == 0 {
            0.0
        } else {
            self.waited as f64 / self.completed as f64
        }
    }
}

/// Several pools as one: counts and bytes added up.
fn combined(ends: &[PoolState]) -> PoolState {
    let mut p = PoolState::default();
    for e in ends {
        p.size += e.size;
        p.bytes += e.bytes;
        p.capacity += e.capacity;
        p.entry_bytes = p.entry_bytes.max(e.entry_bytes);
        p.refills += e.refills;
        p.background_refills += e.background_refills;
        p.offline_seconds += e.offline_seconds;
    }
    p.refill_rate = if p.offline_seconds > 0.0 {
        p.refills as f64 / p.offline_seconds
    } else {
        0.0
    };
    p
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    rate: &Rate,
    per_second: f64,
    pool_at_start: usize,
    answers: &[Answer],
    owners: &[usize],
    inputs: &Inputs,
    start: Instant,
    ends: &[PoolState],
    names: &[String],
) -> RateResult {
    let all: Vec<&Answer> = answers.iter().collect();
    let t = Tally::of(&all, owners.len(), inputs, start);
    let per_client = if names.len() > 1 {
        (0..names.len())
            .map(|c| {
                let mine: Vec<&Answer> = answers.iter().filter(|a| a.1 == c).collect();
                let requests = owners.iter().filter(|&&o| o == c).count();
                let x = Tally::of(&mine, requests, inputs, start);
                ClientRate {
                    name: names[c].clone(),
                    requests,
                    completed: x.completed,
                    failed: x.failed,
                    waited_for_offline: x.waited,
                    waited_fraction: x.waited_fraction(),
                    bit_exact: x.bit_exact,
                    latency: Latency::of(&x.latency),
                    throughput: x.throughput,
                    pool: ends.get(c).cloned().unwrap_or_default(),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    RateResult {
        rate: rate.to_string(),
        rate_per_second: per_second,
        requests: owners.len(),
        completed: t.completed,
        failed: t.failed,
        waited_for_offline: t.waited,
        waited_fraction: t.waited_fraction(),
        bit_exact: t.bit_exact,
        latency: Latency::of(&t.latency),
        queueing_delay: Latency::of(&t.queueing),
        mean_online_seconds: if t.completed == 0 {
            0.0
        } else {
            t.online_seconds / t.completed as f64
        },
        throughput: t.throughput,
        seconds: t.seconds,
        client_cpu: None,
        server_cpu: None,
        server_peak_rss_bytes: None,
        pool_at_start,
        pool: combined(ends),
        per_client,
        close_errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_add_up() {
        let a = PoolState {
            size: 1,
            bytes: 10,
            capacity: 2,
            entry_bytes: 10,
            refills: 3,
            background_refills: 1,
            refill_rate: 1.5,
            offline_seconds: 2.0,
        };
        let b = PoolState {
            refills: 1,
            offline_seconds: 2.0,
            ..a.clone()
        };
        let p = combined(&[a, b]);
        assert_eq!((p.size, p.bytes, p.capacity, p.refills), (2, 20, 4, 4));
        assert_eq!((p.background_refills, p.entry_bytes), (2, 10));
        assert_eq!(p.refill_rate, 1.0);
        assert_eq!(combined(&[]), PoolState::default());
    }
}
