//! A client-side pool of preprocessed inferences (Garimella et al.,
//! "Characterizing and Optimizing End-to-End Systems for Private Inference",
//! ASPLOS 2023: offline work hides only as long as the pool of precomputed
//! material lasts).
//!
//! [`Pool::start`] hands an established session and its channel to a driver
//! task. Requests reach the driver over a queue; it loops:
//! 1. a request is queued and the pool has material: take the oldest entry
//!    (by value: it is moved into the online phase and freed after it, so
//!    no material can be handed out twice) and run the online phase;
//! 2. a request is queued and the pool is empty: run an offline phase for it
//!    first, then its online phase (the request *waited for offline work*);
//! 3. no request, and the pool is below its count and byte budget: run one
//!    offline phase in the background and add its material to the pool;
//! 4. otherwise wait for a request.
//!
//! One connection carries the whole session and a phase is never
//! interrupted, so a request that arrives while a background offline phase
//! runs waits for it to finish (its queueing delay includes that wait).
//! Requests are served in arrival order.
//!
//! The byte budget ([`PoolConfig::max_bytes`], 16 GiB by default, and never
//! more than the session's [`ClientSession::material_budget`]: the storage
//! budget with material on disk, the memory budget less an inference's
//! working set in memory) bounds the client storage of the material held; the count is the smaller of
//! [`PoolConfig::max_count`] and the server's per-session limit
//! ([`ClientSession::max_pending`]). The size of one entry is known before
//! the first offline phase ([`ClientSession::storage_per_inference`]) and
//! checked against every entry made. The pool's state is logged (`tracing`,
//! target `pi_client::pool`) after every phase and returned with every
//! answer ([`Served::pool`]).

use std::collections::VecDeque;
use std::time::Instant;

use pi_protocol::offline::ClientPreprocessed;
use pi_protocol::transport::Channel;
use pi_protocol::{ClientReport, ClientSession, Error, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Default byte budget of the pool: 16 GiB.
pub const DEFAULT_POOL_BYTES: u64 = 16 << 30;

/// Requests that may wait in the driver's queue before [`Pool::submit`] blocks.
const QUEUE: usize = 1024;

/// How much the pool may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most client storage held in the pool (bytes of garbled tables,
    /// labels and masks, [`ClientPreprocessed::storage_bytes`]).
    pub max_bytes: u64,
    /// Most entries (the server's per-session limit applies as well).
    pub max_count: usize,
    /// Fill the pool in the background while no request waits. Off: every
    /// request runs its own offline phase (a pool that is never filled).
    pub background: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_POOL_BYTES,
            max_count: usize::MAX,
            background: true,
        }
    }
}

/// What the pool holds and how fast it refills.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolState {
    /// Entries ready.
    pub size: usize,
    /// Their client storage in bytes.
    pub bytes: u64,
    /// Most entries it may hold (count and byte budget together).
    pub capacity: usize,
    /// Client storage of one entry.
    pub entry_bytes: u64,
    /// Offline phases run so far (background and on demand).
    pub refills: u64,
    /// Of which in the background.
    pub background_refills: u64,
    /// Offline phases per second of offline work (the rate at which the pool
    /// can refill when the link does nothing else); 0 before the first.
    pub refill_rate: f64,
    /// Seconds spent in offline phases so far.
    pub offline_seconds: f64,
}

/// One answered request.
#[derive(Clone, Debug)]
pub struct Served {
    /// The protocol's report (logits, offline and online costs).
    pub report: ClientReport,
    /// When the request arrived (as given to [`Pool::submit_at`]).
    pub arrived: Instant,
    /// When its online phase started.
    pub online_started: Instant,
    /// When its result was known.
    pub finished: Instant,
    /// Whether it found the pool empty and waited for an offline phase of its own.
    pub waited_for_offline: bool,
    /// The pool after this request.
    pub pool: PoolState,
}

impl Served {
    /// Arrival to result, in seconds.
    pub fn latency(&self) -> f64 {
        self.finished
            .saturating_duration_since(self.arrived)
            .as_secs_f64()
    }
    /// Arrival to the start of its online phase, in seconds (waiting behind
    /// other requests, for a background offline phase, or for its own).
    pub fn queueing_delay(&self) -> f64 {
        self.online_started
            .saturating_duration_since(self.arrived)
            .as_secs_f64()
    }
}

struct Job {
    input: Vec<u64>,
    arrived: Instant,
    reply: oneshot::Sender<Result<Served>>,
}

/// A pool of preprocessed inferences driving one session (see the module docs).
pub struct Pool {
    jobs: mpsc::Sender<Vec<Job>>,
    state: watch::Receiver<PoolState>,
    task: JoinHandle<Result<PoolState>>,
}

impl Pool {
    /// Hands `session` and its channel `ch` to a new driver task (on the
    /// current tokio runtime), which starts filling the pool if
    /// `config.background` is set.
    ///
    /// # Errors
    /// [`Error::BadInput`] if the budget cannot hold a single entry while
    /// background filling is on (use `background: false` for no pool).
    pub fn start<C>(ch: C, session: ClientSession, config: PoolConfig) -> Result<Self>
    where
        C: Channel + Send + 'static,
    {
        let entry_bytes = session.storage_per_inference();
        let session_max = session.max_pending();
        // The client's budgets bound the pool as they bound one inference.
        let mut config = config;
        config.max_bytes = config.max_bytes.min(session.material_budget());
        let capacity = capacity(&config, session.max_pending(), entry_bytes);
        if config.background && capacity == 0 {
            return Err(Error::BadInput(format!(
                "a pool of at most {} entries and {} bytes cannot hold one preprocessed \
                 inference of {entry_bytes} bytes",
                config.max_count, config.max_bytes
            )));
        }
        let initial = PoolState {
            capacity,
            entry_bytes,
            ..PoolState::default()
        };
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (state_tx, state) = watch::channel(initial.clone());
        let driver = Driver {
            ch,
            session: Some(session),
            config,
            pool: VecDeque::new(),
            state: initial,
            state_tx,
            started: Instant::now(),
            server_max: session_max,
        };
        let task = tokio::spawn(driver.run(rx));
        Ok(Self { jobs, state, task })
    }

    /// The pool's current state.
    pub fn state(&self) -> PoolState {
        self.state.borrow().clone()
    }

    /// Waits until the pool holds `n` entries (at most its capacity).
    ///
    /// # Errors
    /// [`Error::Closed`] if the driver stopped.
    pub async fn wait_for(&mut self, n: usize) -> Result<PoolState> {
        let want = n.min(self.state.borrow().capacity);
        let s = self
            .state
            .wait_for(|s| s.size >= want)
            .await
            .map_err(|_| Error::Closed)?;
        Ok(s.clone())
    }

    /// Submits a request that arrived at `arrived` (quantised input at scale
    /// f); the answer comes on the returned receiver.
    pub async fn submit_at(
        &self,
        input: Vec<u64>,
        arrived: Instant,
    ) -> oneshot::Receiver<Result<Served>> {
        let (reply, rx) = oneshot::channel();
        // If the driver is gone, `reply` is dropped and the receiver says so.
        let _ = self
            .jobs
            .send(vec![Job {
                input,
                arrived,
                reply,
            }])
            .await;
        rx
    }

    /// Submits several requests at once, all arriving now, queued in order.
    pub async fn submit_burst(
        &self,
        inputs: Vec<Vec<u64>>,
    ) -> Vec<oneshot::Receiver<Result<Served>>> {
        let now = Instant::now();
        let (jobs, rxs): (Vec<Job>, Vec<_>) = inputs
            .into_iter()
            .map(|input| {
                let (reply, rx) = oneshot::channel();
                (
                    Job {
                        input,
                        arrived: now,
                        reply,
                    },
                    rx,
                )
            })
            .unzip();
        let _ = self.jobs.send(jobs).await;
        rxs
    }

    /// One request arriving now; waits for its answer.
    ///
    /// # Errors
    /// The protocol's error for this request, or [`Error::Closed`] if the
    /// driver stopped (its error is returned by [`Self::close`]).
    pub async fn infer(&self, input: Vec<u64>) -> Result<Served> {
        answer(self.submit_at(input, Instant::now()).await).await
    }

    /// Stops taking requests, answers those queued, drops the pool's
    /// material, closes the session and returns the final state.
    ///
    /// # Errors
    /// The error that stopped the driver, if any.
    pub async fn close(self) -> Result<PoolState> {
        drop(self.jobs);
        match self.task.await {
            Ok(r) => r,
            Err(e) => match e.try_into_panic() {
                Ok(p) => std::panic::resume_unwind(p),
                Err(e) => Err(Error::Io(std::io::Error::other(format!(
                    "pool driver cancelled: {e}"
                )))),
            },
        }
    }
}

/// A byte count as given on a command line (`--pool-bytes`); the same
/// parser as `pi-server --pending-bytes`.
pub use pi_server::cli::parse_bytes;

/// Awaits an answer from [`Pool::submit_at`].
///
/// # Errors
/// As [`Pool::infer`].
pub async fn answer(rx: oneshot::Receiver<Result<Served>>) -> Result<Served> {
    rx.await.unwrap_or(Err(Error::Closed))
}

/// Entries that fit both the count and the byte budget.
fn capacity(config: &PoolConfig, server_max: usize, entry_bytes: u64) -> usize {
    let by_bytes = config
        .max_bytes
        .checked_div(entry_bytes)
        .unwrap_or(u64::MAX);
    config
        .max_count
        .min(server_max)
        .min(usize::try_from(by_bytes).unwrap_or(usize::MAX))
}

struct Driver<C> {
    ch: C,
    session: Option<ClientSession>,
    config: PoolConfig,
    pool: VecDeque<ClientPreprocessed>,
    state: PoolState,
    state_tx: watch::Sender<PoolState>,
    started: Instant,
    server_max: usize,
}

impl<C: Channel + Send> Driver<C> {
    async fn run(mut self, mut rx: mpsc::Receiver<Vec<Job>>) -> Result<PoolState> {
        let mut queue: VecDeque<Job> = VecDeque::new();
        let mut open = true;
        let result = loop {
            // Take whatever arrived meanwhile, without waiting.
            while open {
                match rx.try_recv() {
                    Ok(jobs) => queue.extend(jobs),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            if let Some(job) = queue.pop_front() {
                if let Err(e) = self.serve(job).await {
                    break Err(e);
                }
            } else if !open {
                break Ok(());
            } else if self.config.background && self.pool.len() < self.state.capacity {
                if let Err(e) = self.refill().await {
                    break Err(e);
                }
            } else {
                match rx.recv().await {
                    Some(jobs) => queue.extend(jobs),
                    None => open = false,
                }
            }
        };
        // Requests still queued learn that the driver stopped (their reply
        // senders are dropped); unused material is freed (and zeroized).
        drop(queue);
        self.pool.clear();
        let session = self.session.take().expect("the session lives until here");
        match result {
            Ok(()) => {
                session.close(&mut self.ch).await?;
                // The server may hang up first once it has read our close.
                let _ = self.ch.close().await;
                Ok(self.state)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs one offline phase and counts it.
    async fn offline(&mut self, background: bool) -> Result<ClientPreprocessed> {
        let started = Instant::now();
        let session = self
            .session
            .as_mut()
            .expect("the session lives until the driver ends");
        let pre = session.preprocess(&mut self.ch).await?;
        let seconds = started.elapsed().as_secs_f64();
        let s = &mut self.state;
        s.refills += 1;
        s.background_refills += u64::from(background);
        s.offline_seconds += seconds;
        s.refill_rate = s.refills as f64 / s.offline_seconds.max(f64::MIN_POSITIVE);
        if pre.storage_bytes() > s.entry_bytes {
            // The plan's figure is exact for this protocol; if it ever is
            // not, budget with what entries really take.
            tracing::warn!(
                estimate = s.entry_bytes,
                actual = pre.storage_bytes(),
                "pool entry larger than planned"
            );
            s.entry_bytes = pre.storage_bytes();
            s.capacity = capacity(&self.config, self.server_max, s.entry_bytes);
        }
        Ok(pre)
    }

    /// Fills one entry in the background, within the budget.
    async fn refill(&mut self) -> Result<()> {
        let pre = self.offline(true).await?;
        if self.pool.len() < self.state.capacity
            && self.state.bytes + pre.storage_bytes() <= self.config.max_bytes
        {
            self.state.bytes += pre.storage_bytes();
            self.pool.push_back(pre);
            self.state.size = self.pool.len();
        }
        // Else (only if the plan's size was wrong) the entry is dropped: the
        // budget holds; the server frees it when the session ends.
        self.publish("background refill");
        Ok(())
    }

    /// Checks an input as the online phase will, before any material is
    /// taken for it (so a bad input costs no material).
    fn check_input(&self, input: &[u64]) -> Result<()> {
        let session = self
            .session
            .as_ref()
            .expect("the session lives until the driver ends");
        let net = &session.model().network;
        let want = net.tensors[net.input].shape.numel();
        let mask = session.ring().mask();
        if input.len() != want {
            return Err(Error::BadInput(format!(
                "input of {} values, the network takes {want}",
                input.len()
            )));
        }
        if input.iter().any(|&v| v & !mask != 0) {
            return Err(Error::BadInput("input value not reduced mod 2^l".into()));
        }
        Ok(())
    }

    async fn serve(&mut self, job: Job) -> Result<()> {
        if let Err(e) = self.check_input(&job.input) {
            let _ = job.reply.send(Err(e));
            return Ok(());
        }
        let (pre, waited) = match self.pool.pop_front() {
            Some(pre) => {
                self.state.bytes -= pre.storage_bytes();
                self.state.size = self.pool.len();
                (pre, false)
            }
            None => {
                let pre = self.offline(false).await?;
                self.publish("offline on demand");
                (pre, true)
            }
        };
        let online_started = Instant::now();
        let session = self
            .session
            .as_ref()
            .expect("the session lives until the driver ends");
        let result = session.online(&mut self.ch, pre, &job.input).await;
        let finished = Instant::now();
        self.publish("served");
        match result {
            Ok(report) => {
                let _ = job.reply.send(Ok(Served {
                    report,
                    arrived: job.arrived,
                    online_started,
                    finished,
                    waited_for_offline: waited,
                    pool: self.state.clone(),
                }));
                Ok(())
            }
            Err(e) => {
                let _ = job.reply.send(Err(Error::Io(std::io::Error::other(format!(
                    "the session failed: {e}"
                )))));
                Err(e)
            }
        }
    }

    fn publish(&mut self, event: &'static str) {
        let s = &self.state;
        tracing::info!(
            target: "pi_client::pool",
            event,
            size = s.size,
            bytes = s.bytes,
            capacity = s.capacity,
            refills = s.refills,
            refill_rate = s.refill_rate,
            uptime_s = self.started.elapsed().as_secs_f64(),
            "pool"
        );
        self.state_tx.send_replace(self.state.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_units() {
        assert_eq!(parse_bytes("16GiB"), Ok(16 << 30));
        assert_eq!(parse_bytes("1.5 K"), Ok(1500));
        assert_eq!(parse_bytes("300"), Ok(300));
        assert_eq!(parse_bytes("2mib"), Ok(2 << 20));
        for bad in ["", "x", "1 parsec", "-1", "1e30G"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capacity_is_the_tightest_of_count_server_and_bytes() {
        let c = |max_bytes, max_count| PoolConfig {
            max_bytes,
            max_count,
            background: true,
        };
        assert_eq!(capacity(&c(1000, 10), 4, 300), 3);
        assert_eq!(capacity(&c(1000, 2), 4, 300), 2);
        assert_eq!(capacity(&c(1000, 10), 1, 300), 1);
        assert_eq!(capacity(&c(100, 10), 4, 300), 0);
    }
}
