//! The model owner's side of private inference: a TCP + TLS server that runs
//! one protocol session per connection.
//!
//! Shaped like mini-redis's `server.rs`: [`Listener`] accepts TCP
//! connections and spawns one handler per connection. What a connection may
//! hold is decided by [`admission`], in two stages:
//! 1. Until the TLS handshake (a client certificate from our CA is
//!    required) and the transport hello are done, the connection is a
//!    *pending handshake*: bounded in number overall and per source address
//!    (the oldest is evicted when a bound is reached) and by an absolute
//!    deadline ([`ChannelConfig::handshake_timeout`]). It holds no session
//!    slot, so silent or dripping sockets cannot lock real clients out.
//! 2. An authenticated client (logged with its certificate subject; checked
//!    against the optional allowlist) takes a session slot, within a cap per
//!    client certificate; if all slots are busy it waits in a bounded queue
//!    and is then told "server busy". Refusals reach the client as an abort
//!    record with the reason ([`pi_protocol::Error::Aborted`]).
//!
//! A session then runs the session handshake ([`ServerSession::handshake`])
//! and [`ServerSession::serve_one`] for each inference the client asks for,
//! until the client closes, every phase under an absolute deadline
//! ([`PhaseDeadlines`], sized from the model's expected traffic unless set),
//! so a client that trickles bytes is dropped at its phase's deadline. A
//! session that ends with an error tells the client why (abort record). A
//! client's error, disconnect or stall ends only its own connection: it is
//! logged and the listener keeps serving. [`Listener::run`] stops accepting
//! when its shutdown future resolves, gives running sessions a grace period
//! and then cancels them.
//!
//! The command line (`pi-server`, `pi-server keygen`, `pi-server revoke`) is
//! in [`cli`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pi_models::{Model, RingParams};
use pi_protocol::transport::pki::{CertificateRevocationListDer, TlsIdentity, certificate_subject};
use pi_protocol::transport::{
    Channel, ChannelConfig, Deadlined, PhaseDeadlines, TlsAcceptor, TlsChannel,
};
use pi_protocol::{Error, ServerLimits, ServerModel, ServerReport, ServerSession};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

pub mod admission;
pub mod cli;

use admission::{Admission, Caps};

/// Errors of the server library.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The model, its weights or the key directory could not be loaded.
    #[error("{0}")]
    BadInput(String),
    /// The model files could not be read or are inconsistent.
    #[error(transparent)]
    Model(#[from] pi_models::Error),
    /// A protocol or transport error.
    #[error(transparent)]
    Protocol(#[from] pi_protocol::Error),
    /// Binding or accepting failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Loads a model (spec or model file) and its weights, quantised at the
/// default ring (l = 37, f = 12). `weights` overrides the model file's
/// `weights` key; one of the two is required.
pub fn load_model(spec: &str, weights: Option<&Path>) -> Result<ServerModel, ServerError> {
    let model = Model::resolve(spec)?;
    let folded = model.load_weights(weights)?;
    let quant = model.quantize(&folded, RingParams::default())?;
    Ok(ServerModel::from_model(&model, quant)?)
}

/// Slowest link an honest client is assumed to have when phase deadlines
/// are sized from the model's expected traffic (bytes per second).
pub const DEADLINE_MIN_RATE: u64 = 1 << 20;
/// Slowest HE evaluation assumed for the offline deadline (MACs per second:
/// a loaded 2-core machine serving several sessions).
pub const DEADLINE_MIN_MACS: u64 = 20_000_000;
/// Fixed allowance of every sized phase deadline.
pub const DEADLINE_BASE: Duration = Duration::from_secs(60);

/// Deadlines of the phases of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDeadlines {
    /// The session handshake (architecture out, public key back).
    pub handshake: Duration,
    /// One offline phase; `None`: sized from the model ([`Self::sized`]).
    pub offline: Option<Duration>,
    /// One online phase; `None`: sized from the model.
    pub online: Option<Duration>,
}

impl Default for SessionDeadlines {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(30),
            offline: None,
            online: None,
        }
    }
}

impl SessionDeadlines {
    /// The budgets for `model`: unset phases get [`DEADLINE_BASE`] plus the
    /// expected traffic of the costliest allowed ReLU mode at
    /// [`DEADLINE_MIN_RATE`] (plus, offline, the MACs at
    /// [`DEADLINE_MIN_MACS`]). Waiting for a request gets `idle`.
    pub fn sized(&self, model: &ServerModel, idle: Duration) -> PhaseDeadlines {
        let (mut off, mut on) = (0u64, 0u64);
        for &m in model.relu_modes() {
            let t = model.expected_traffic(m);
            off = off.max(t.offline);
            on = on.max(t.online);
        }
        let secs = |bytes: u64| Duration::from_secs(bytes.div_ceil(DEADLINE_MIN_RATE));
        PhaseDeadlines {
            handshake: self.handshake,
            request: idle,
            offline: self.offline.unwrap_or_else(|| {
                DEADLINE_BASE
                    + secs(off)
                    + Duration::from_secs(model.macs().div_ceil(DEADLINE_MIN_MACS))
            }),
            online: self.online.unwrap_or_else(|| DEADLINE_BASE + secs(on)),
        }
    }
}

/// How a [`Listener`] serves.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Most concurrent sessions.
    pub max_clients: usize,
    /// Most concurrent sessions (and queued clients) per client certificate subject.
    pub max_per_client: usize,
    /// Authenticated clients that may wait for a session slot.
    pub queue: usize,
    /// How long a queued client waits before it hears "server busy".
    pub queue_wait: Duration,
    /// Most pending handshakes (TCP accepted, TLS and hello not done).
    pub max_handshakes: usize,
    /// Most pending handshakes per source IP address.
    pub max_handshakes_per_ip: usize,
    /// Timeouts and buffers of every connection. `handshake_timeout` is the
    /// absolute deadline of TLS plus the transport hello; `idle_timeout`
    /// drops a client that stalls, and bounds the wait for each request.
    pub channel: ChannelConfig,
    /// Absolute deadlines of the session's phases.
    pub deadlines: SessionDeadlines,
    /// After shutdown is requested, how long running sessions may go on
    /// before they are cancelled.
    pub grace: Duration,
    /// What each session is granted (preprocessed inferences held at once)
    /// and the byte budget all sessions' pending material shares.
    pub limits: ServerLimits,
    /// If set, only clients whose certificate subject (its common name, or
    /// the whole subject as `CN=...`) is listed get a session.
    pub allow: Option<Vec<String>>,
    /// Certificate revocation lists of our CA: revoked client certificates
    /// fail the TLS handshake.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_clients: 8,
            max_per_client: 2,
            queue: 8,
            queue_wait: Duration::from_secs(10),
            max_handshakes: 64,
            max_handshakes_per_ip: 8,
            channel: ChannelConfig {
                handshake_timeout: Duration::from_secs(5),
                ..ChannelConfig::default()
            },
            deadlines: SessionDeadlines::default(),
            grace: Duration::from_secs(5),
            limits: ServerLimits::default(),
            allow: None,
            crls: Vec::new(),
        }
    }
}

/// Counters over the lifetime of a [`Listener`] (what [`Listener::run`] returns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// TCP connections accepted.
    pub connections: u64,
    /// Inferences completed.
    pub inferences: u64,
    /// Connections that ended with an error (TLS, protocol, deadline, ...),
    /// apart from those counted below and from connect-and-close probes.
    pub failed: u64,
    /// Authenticated clients turned away (busy, per-client cap, allowlist,
    /// the pending-material budget full).
    pub refused: u64,
    /// Pending handshakes dropped: past their deadline or evicted by newer ones.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    inferences: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
}

/// What every connection handler shares.
struct Shared {
    acceptor: TlsAcceptor,
    model: ServerModel,
    config: ServeConfig,
    deadlines: PhaseDeadlines,
    admission: Arc<Admission>,
    counters: Counters,
    reports: Option<mpsc::UnboundedSender<ServerReport>>,
}

/// Accepts clients and serves one model.
pub struct Listener {
    tcp: TcpListener,
    shared: Arc<Shared>,
}

impl Listener {
    /// Binds `addr` (use port 0 for any free port; see [`Self::local_addr`]).
    pub async fn bind(
        addr: &str,
        model: ServerModel,
        tls: &TlsIdentity,
        config: ServeConfig,
    ) -> Result<Self, ServerError> {
        if config.limits.max_pending == 0 {
            return Err(ServerError::BadInput(
                "the server must hold at least one preprocessed inference per session".into(),
            ));
        }
        if let Some(budget) = &config.limits.pending_bytes {
            for &mode in model.relu_modes() {
                let need = model.pending_bytes_per_inference(mode)?;
                if need > budget.limit() {
                    return Err(ServerError::BadInput(format!(
                        "the pending-material budget of {} B is below one preprocessed \
                         inference of this model in {mode} mode ({need} B)",
                        budget.limit()
                    )));
                }
            }
        }
        for (what, v) in [
            ("the session cap", config.max_clients),
            ("the per-client session cap", config.max_per_client),
            ("the pending-handshake cap", config.max_handshakes),
            (
                "the per-address handshake cap",
                config.max_handshakes_per_ip,
            ),
        ] {
            if v == 0 {
                return Err(ServerError::BadInput(format!("{what} must be at least 1")));
            }
        }
        let acceptor = TlsAcceptor::with_crls(tls, config.crls.clone(), config.channel.clone())?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| ServerError::BadInput(format!("cannot listen on {addr}: {e}")))?;
        let deadlines = config.deadlines.sized(&model, config.channel.idle_timeout);
        let admission = Arc::new(Admission::new(Caps {
            sessions: config.max_clients,
            per_client: config.max_per_client,
            queue: config.queue,
            queue_wait: config.queue_wait,
            handshakes: config.max_handshakes,
            handshakes_per_ip: config.max_handshakes_per_ip,
        }));
        Ok(Self {
            tcp,
            shared: Arc::new(Shared {
                acceptor,
                model,
                deadlines,
                admission,
                config,
                counters: Counters::default(),
                reports: None,
            }),
        })
    }

    /// Also hands every completed inference's [`ServerReport`] (server-side
    /// seconds and bytes per phase and layer) to `sink`, for benchmarks.
    pub fn with_reports(mut self, sink: mpsc::UnboundedSender<ServerReport>) -> Self {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.reports = Some(sink);
        }
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.tcp.local_addr()?)
    }

    /// The phase deadlines every session gets.
    pub fn deadlines(&self) -> PhaseDeadlines {
        self.shared.deadlines
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets running
    /// sessions go on for [`ServeConfig::grace`] and cancels the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ServeSummary {
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        let shared = self.shared;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let id = shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                        tasks.spawn(handle(id, peer, tcp, shared.clone()));
                    }
                    Err(e) => {
                        // Typically out of file descriptors: back off, keep going.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                // Reap finished handlers so the set does not grow.
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = done {
                        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                        warn!("a session handler panicked: {e}");
                    }
                }
            }
        }
        drop(self.tcp);
        if !tasks.is_empty() {
            info!(
                "shutting down: waiting up to {:?} for {} connection(s)",
                shared.config.grace,
                tasks.len()
            );
            let drain = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(shared.config.grace, drain)
                .await
                .is_err()
            {
                info!("cancelling {} connection(s)", tasks.len());
                tasks.shutdown().await;
            }
        }
        let c = &shared.counters;
        ServeSummary {
            connections: c.connections.load(Ordering::Relaxed),
            inferences: c.inferences.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The reason an abort record gives the client for a session error.
fn abort_reason(e: &Error) -> String {
    match e {
        Error::PeerMisbehaved(m) => format!("protocol violation: {m}"),
        other => other.to_string(),
    }
}

/// One connection: admission, TLS, session slot, session.
async fn handle(id: u64, peer: SocketAddr, tcp: TcpStream, shared: Arc<Shared>) {
    let counters = &shared.counters;
    let Some(ch) = handshake(id, peer, tcp, &shared).await else {
        return;
    };
    let mut ch = ch;
    let who = ch
        .peer_certificate()
        .and_then(|c| certificate_subject(c).ok());
    let Some(who) = who else {
        counters.failed.fetch_add(1, Ordering::Relaxed);
        warn!(conn = id, %peer, "no readable client certificate");
        let _ = ch.abort("the client certificate cannot be read").await;
        return;
    };
    info!(conn = id, %peer, client = %who.subject, serial = %who.serial, "client authenticated");
    if let Some(allow) = &shared.config.allow
        && !allow.iter().any(|a| *a == who.name || *a == who.subject)
    {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        warn!(conn = id, %peer, client = %who.subject, "refused: not on the allowlist");
        let _ = ch
            .abort(&format!(
                "client {:?} is not on this server's allowlist",
                who.name
            ))
            .await;
        return;
    }
    let ticket = match shared.admission.enter_session(&who.name).await {
        Ok(t) => t,
        Err(refusal) => {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            info!(conn = id, %peer, client = %who.subject, "refused: {refusal}");
            let _ = ch.abort(&refusal.to_string()).await;
            return;
        }
    };
    info!(conn = id, %peer, client = %who.subject, "session start");
    let mut ch = Deadlined::new(ch, shared.deadlines);
    match serve_session(id, &mut ch, &shared).await {
        Ok(n) => {
            info!(conn = id, %peer, client = %who.subject, "session closed after {n} inference(s)")
        }
        Err(Error::Closed) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            warn!(conn = id, %peer, client = %who.subject, "session failed: the client disconnected mid-protocol");
        }
        Err(e @ Error::Busy(_)) => {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            info!(conn = id, %peer, client = %who.subject, "session refused: {e}");
            let _ = ch.abort(&abort_reason(&e)).await;
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            warn!(conn = id, %peer, client = %who.subject, "session failed: {e}");
            if !matches!(e, Error::Aborted(_)) {
                let _ = ch.abort(&abort_reason(&e)).await;
            }
        }
    }
    drop(ticket);
}

/// TLS and the transport hello under the pending-handshake bounds; `None`
/// if the connection ended there (counted and logged).
async fn handshake(
    id: u64,
    peer: SocketAddr,
    tcp: TcpStream,
    shared: &Shared,
) -> Option<TlsChannel> {
    let counters = &shared.counters;
    let (mut ticket, evicted) = shared.admission.enter_handshake(peer.ip());
    if evicted > 0 {
        debug!(conn = id, %peer, "{evicted} older pending handshake(s) evicted");
    }
    let limit = shared.config.channel.handshake_timeout;
    let accepted = tokio::select! {
        r = tokio::time::timeout(limit, shared.acceptor.accept(tcp)) => r,
        () = ticket.evicted() => {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            debug!(conn = id, %peer, "pending handshake evicted by newer connections");
            return None;
        }
    };
    drop(ticket);
    match accepted {
        Ok(Ok(ch)) => Some(ch),
        Err(_) | Ok(Err(Error::Timeout(_))) => {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            info!(conn = id, %peer, "handshake not done within {} s: dropped", limit.as_secs_f64());
            None
        }
        Ok(Err(Error::Closed)) => {
            // A TCP connect-and-close (load balancer health check, port scan).
            debug!(conn = id, %peer, "closed before the TLS handshake");
            None
        }
        Ok(Err(e)) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            warn!(conn = id, %peer, "handshake failed: {e}");
            None
        }
    }
}

async fn serve_session<C: Channel>(
    id: u64,
    ch: &mut C,
    shared: &Shared,
) -> Result<u64, pi_protocol::Error> {
    let mut session =
        ServerSession::handshake_limited(ch, &shared.model, &shared.config.limits).await?;
    debug!(conn = id, relu = %session.relu_mode(), "session handshake done");
    let mut n = 0;
    while let Some(r) = session.serve_one(ch).await? {
        n += 1;
        shared.counters.inferences.fetch_add(1, Ordering::Relaxed);
        info!(
            conn = id,
            inference = r.inference,
            relu = %r.relu_mode,
            pending = session.pending(),
            "served: offline {:.3} s ({} B sent, {} B received), online {:.3} s ({} B sent, {} B received)",
            r.offline.seconds,
            r.offline.bytes_sent,
            r.offline.bytes_received,
            r.online.seconds,
            r.online.bytes_sent,
            r.online.bytes_received,
        );
        if let Some(sink) = &shared.reports {
            // A dropped receiver only means nobody wants reports any more.
            let _ = sink.send(r);
        }
    }
    Ok(n)
}

/// A future that resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM. The
/// handlers are installed when this is called (inside a tokio runtime), not
/// when the future is first polled, so a signal that arrives while the model
/// loads is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    if tokio::signal::ctrl_c().await.is_err() {
                        std::future::pending::<()>().await
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    }
}
