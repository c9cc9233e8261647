//! The model owner's side of private inference: a TCP + TLS server that runs
//! one protocol session per connection (DESIGN.md section 5).
//!
//! Shaped like mini-redis's `server.rs`: [`Listener`] accepts TCP
//! connections under a connection cap (a semaphore, acquired before
//! `accept` so excess clients wait in the kernel backlog), and spawns one
//! handler per connection. The handler runs the TLS handshake (a client
//! certificate from our CA is required), the session handshake
//! ([`ServerSession::handshake`]) and then [`ServerSession::serve_one`] for
//! each inference the client asks for, until the client closes. A client's
//! error, disconnect or stall ends only its own connection: it is logged and
//! the listener keeps serving. [`Listener::run`] stops accepting when its
//! shutdown future resolves, gives running sessions a grace period and then
//! cancels them.
//!
//! The command line (`pi-server`, `pi-server keygen`) is in [`cli`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pi_models::{Model, RingParams};
use pi_protocol::transport::pki::TlsIdentity;
use pi_protocol::transport::{ChannelConfig, TlsAcceptor};
use pi_protocol::{ServerLimits, ServerModel, ServerReport, ServerSession};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

pub mod cli;

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

/// How a [`Listener`] serves.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Most concurrent sessions; further clients wait until one ends.
    pub max_clients: usize,
    /// Timeouts and buffers of every connection (a client that stalls longer
    /// than `idle_timeout` is dropped).
    pub channel: ChannelConfig,
    /// After shutdown is requested, how long running sessions may go on
    /// before they are cancelled.
    pub grace: Duration,
    /// What each session is granted (preprocessed inferences held at once).
    pub limits: ServerLimits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_clients: 8,
            channel: ChannelConfig::default(),
            grace: Duration::from_secs(5),
            limits: ServerLimits::default(),
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
    /// Connections that ended with an error (TLS, protocol, timeout, ...).
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    inferences: AtomicU64,
    failed: AtomicU64,
}

/// Accepts clients and serves one model.
pub struct Listener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    model: ServerModel,
    config: ServeConfig,
    limit: Arc<Semaphore>,
    counters: Arc<Counters>,
    reports: Option<mpsc::UnboundedSender<ServerReport>>,
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
        if config.max_clients == 0 {
            return Err(ServerError::BadInput(
                "the connection cap must be at least 1".into(),
            ));
        }
        let acceptor = TlsAcceptor::new(tls, config.channel.clone())?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| ServerError::BadInput(format!("cannot listen on {addr}: {e}")))?;
        Ok(Self {
            tcp,
            acceptor,
            model,
            limit: Arc::new(Semaphore::new(config.max_clients)),
            config,
            counters: Arc::default(),
            reports: None,
        })
    }

    /// Also hands every completed inference's [`ServerReport`] (server-side
    /// seconds and bytes per phase and layer) to `sink`, for benchmarks.
    pub fn with_reports(mut self, sink: mpsc::UnboundedSender<ServerReport>) -> Self {
        self.reports = Some(sink);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.tcp.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets running
    /// sessions go on for [`ServeConfig::grace`] and cancels the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ServeSummary {
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.accept() => match accepted {
                    Ok((permit, tcp, peer)) => {
                        let id = self.counters.connections.fetch_add(1, Ordering::Relaxed);
                        let acceptor = self.acceptor.clone();
                        let model = self.model.clone();
                        let counters = self.counters.clone();
                        let reports = self.reports.clone();
                        let limits = self.config.limits.clone();
                        tasks.spawn(async move {
                            handle(id, peer, tcp, acceptor, model, limits, counters, reports).await;
                            drop(permit);
                        });
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
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        warn!("a session handler panicked: {e}");
                    }
                }
            }
        }
        drop(self.tcp);
        if !tasks.is_empty() {
            info!(
                "shutting down: waiting up to {:?} for {} session(s)",
                self.config.grace,
                tasks.len()
            );
            let drain = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(self.config.grace, drain)
                .await
                .is_err()
            {
                info!("cancelling {} session(s)", tasks.len());
                tasks.shutdown().await;
            }
        }
        let c = &self.counters;
        ServeSummary {
            connections: c.connections.load(Ordering::Relaxed),
            inferences: c.inferences.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }

    async fn accept(
        &self,
    ) -> std::io::Result<(tokio::sync::OwnedSemaphorePermit, TcpStream, SocketAddr)> {
        let permit = self
            .limit
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| std::io::Error::other("connection limit closed"))?;
        let (tcp, peer) = self.tcp.accept().await?;
        Ok((permit, tcp, peer))
    }
}

/// One connection: TLS, session handshake, inferences until the client closes.
#[allow(clippy::too_many_arguments)]
async fn handle(
    id: u64,
    peer: SocketAddr,
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    model: ServerModel,
    limits: ServerLimits,
    counters: Arc<Counters>,
    reports: Option<mpsc::UnboundedSender<ServerReport>>,
) {
    debug!(conn = id, %peer, "accepted");
    match serve_connection(
        id,
        tcp,
        &acceptor,
        &model,
        &limits,
        &counters,
        reports.as_ref(),
    )
    .await
    {
        Ok(n) => info!(conn = id, %peer, "session closed after {n} inference(s)"),
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            warn!(conn = id, %peer, "session failed: {e}");
        }
    }
}

async fn serve_connection(
    id: u64,
    tcp: TcpStream,
    acceptor: &TlsAcceptor,
    model: &ServerModel,
    limits: &ServerLimits,
    counters: &Counters,
    reports: Option<&mpsc::UnboundedSender<ServerReport>>,
) -> Result<u64, pi_protocol::Error> {
    let mut ch = acceptor.accept(tcp).await?;
    let mut session = ServerSession::handshake_limited(&mut ch, model, limits).await?;
    debug!(conn = id, "session handshake done");
    let mut n = 0;
    while let Some(r) = session.serve_one(&mut ch).await? {
        n += 1;
        counters.inferences.fetch_add(1, Ordering::Relaxed);
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
        if let Some(sink) = reports {
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
