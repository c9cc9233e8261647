//! One error type for the protocol crate. Each branch says whose fault it is.

/// Errors of the protocol crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer sent something that violates the protocol: a malformed,
    /// oversized or unexpected message, or values outside their domain.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(String),
    /// The local caller passed bad input (wrong shape, bad parameter, ...).
    #[error("bad input: {0}")]
    BadInput(String),
    /// The peer closed the connection before the protocol finished.
    #[error("connection closed by peer")]
    Closed,
    /// The peer did not answer within the configured time.
    #[error("timed out after {0:?} waiting for the peer")]
    Timeout(std::time::Duration),
    /// The peer speaks another protocol version or parameter set (TLS ALPN,
    /// the transport hello or the session handshake disagree), or refused
    /// ours. Neither side is at fault; one must upgrade.
    #[error("incompatible peer: {0}")]
    Incompatible(String),
    /// The peer ended the session and said why (an abort record of the
    /// transport: the server is busy, the client is not admitted, a deadline
    /// passed, ...). The reason is the peer's text, stripped of control
    /// characters and cut to [`crate::transport::MAX_ABORT_REASON`] bytes.
    #[error("the peer ended the session: {0}")]
    Aborted(String),
    /// A phase of the session (handshake, waiting for a request, offline,
    /// online) ran past its absolute deadline, however steadily bytes arrived.
    #[error("the {phase} phase ran past its deadline of {} s", .limit.as_secs_f64())]
    Deadline {
        /// `handshake`, `request`, `offline` or `online`.
        phase: &'static str,
        /// The phase's time budget.
        limit: std::time::Duration,
    },
    /// TLS configuration or handshake failure.
    #[error("tls: {0}")]
    Tls(String),
    /// Operating-system IO failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias of the protocol crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
