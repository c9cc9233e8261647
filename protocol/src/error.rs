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
    /// TLS configuration or handshake failure.
    #[error("tls: {0}")]
    Tls(String),
    /// Operating-system IO failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias of the protocol crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
