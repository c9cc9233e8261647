//! One error type for the protocol crate. Each branch says whose fault it is;
//! a misbehaving peer is further split by what it did ([`Misbehavior`]), so
//! callers and tests match variants, never message text.

/// Errors of the protocol crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer sent something that violates the protocol: a malformed,
    /// oversized or unexpected message, or values outside their domain.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] Misbehavior),
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
    /// This side cannot take the request now: a resource budget is used up
    /// (the server's memory budget for preprocessed material). Retrying
    /// after pending work completes may succeed.
    #[error("busy: {0}")]
    Busy(String),
    /// A phase of the session (handshake, waiting for a request, offline,
    /// online) ran past its absolute deadline, however steadily bytes arrived.
    #[error("the {phase} phase ran past its deadline of {} s", .limit.as_secs_f64())]
    Deadline {
        /// `handshake`, `request`, `offline` or `online`.
        phase: &'static str,
        /// The phase's time budget.
        limit: std::time::Duration,
    },
    /// The network does not fit one of this client's budgets
    /// ([`crate::footprint::ClientBudget`]): what it needs, what the budget allows.
    #[error("{0}")]
    OverBudget(Box<crate::footprint::OverBudget>),
    /// Preprocessed material kept on disk ([`crate::store`]) is truncated,
    /// corrupted or not this session's: a local fault, never used.
    #[error("stored material: {0}")]
    Store(#[from] crate::store::StoreFault),
    /// TLS configuration or handshake failure.
    #[error("tls: {0}")]
    Tls(String),
    /// Operating-system IO failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// An invariant of this implementation does not hold: a bug here, not
    /// the peer's or the caller's fault.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// What a misbehaving peer did. New kinds may be added; match with a
/// wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misbehavior {
    /// A message that does not decode, has the wrong length for its content,
    /// or carries values outside their domain (the text names the message).
    #[error("{0}")]
    Malformed(String),
    /// A frame larger than the receiver accepts at this point.
    #[error("peer sent a frame of {len} bytes, above the limit of {limit} for this message")]
    FrameTooLarge {
        /// Announced or received payload bytes.
        len: usize,
        /// The receiver's limit.
        limit: usize,
    },
    /// A frame of another size than the protocol fixes at this point.
    #[error("expected a frame of {expected} bytes, peer sent {got}")]
    FrameSize {
        /// Bytes the protocol fixes.
        expected: usize,
        /// Bytes the peer sent.
        got: usize,
    },
    /// The connection ended inside a frame, a frame header or the hello.
    #[error("connection ended inside {what} after {got} of {expected} bytes")]
    Truncated {
        /// `"a frame"`, `"a frame header"` or `"the hello"`.
        what: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes the frame needed.
        expected: usize,
    },
    /// The transport hello is not ours (another protocol on the port) or
    /// sets bits that must be zero.
    #[error("transport hello: {0}")]
    Hello(String),
    /// A request of another kind than the protocol expects at this point.
    #[error("{got} where {expected} was expected")]
    UnexpectedRequest {
        /// What arrived (`"an online request for inference 3"`).
        got: String,
        /// What the protocol expected.
        expected: &'static str,
    },
    /// An offline request whose inference number does not count up.
    #[error("inference {got} requested, expected {expected}")]
    OutOfSequence {
        /// The number requested.
        got: u64,
        /// The next number of the session.
        expected: u64,
    },
    /// An online request for an inference that is not pending (never
    /// preprocessed, or already used).
    #[error(
        "online request for inference {0}, which is not pending (never preprocessed or already used)"
    )]
    NotPending(u64),
    /// An offline request while the session already holds its limit of
    /// preprocessed inferences.
    #[error(
        "offline request {id} while {pending} preprocessed inferences are pending (at most {limit})"
    )]
    PendingLimit {
        /// The inference requested.
        id: u64,
        /// Inferences pending.
        pending: usize,
        /// The limit announced in the handshake.
        limit: usize,
    },
    /// An online phase names another inference than the material it runs on.
    #[error("online phase for inference {got}, but this material is for {expected}")]
    WrongInference {
        /// The number the peer named.
        got: u64,
        /// The material's number.
        expected: u64,
    },
    /// The client asked for an activation protocol the server did not offer.
    #[error("the client asked for ReLU mode {0}, which this server did not offer")]
    ModeNotOffered(&'static str),
    /// The server's architecture message is invalid (not a malformed
    /// encoding, but a description, normalisation or limit that cannot hold).
    #[error("invalid architecture: {0}")]
    Architecture(String),
}

impl Error {
    /// [`Error::PeerMisbehaved`] with [`Misbehavior::Malformed`].
    pub fn malformed(text: impl Into<String>) -> Self {
        Self::PeerMisbehaved(Misbehavior::Malformed(text.into()))
    }

    /// The misbehaviour, if this is [`Error::PeerMisbehaved`].
    pub fn misbehavior(&self) -> Option<&Misbehavior> {
        match self {
            Self::PeerMisbehaved(m) => Some(m),
            _ => None,
        }
    }
}

/// Result alias of the protocol crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
