//! Message transport between the two parties.
//!
//! A [`Channel`] moves whole *frames* (byte strings) in order, in both
//! directions. Typed control messages are encoded by the caller; bulk
//! payloads (garbled tables, labels, ciphertexts) are sent as raw frames of
//! up to [`MAX_FRAME`] bytes. Every frame is counted by a [`Meter`] under the
//! channel's current label (for example `offline/conv3`), so reports can give
//! bytes per phase and per layer.
//!
//! Receiving never allocates what the peer claims: [`Channel::recv`] takes a
//! caller limit and [`Channel::recv_into`] fills a buffer of the expected size.
//!
//! Implementations:
//! - [`MemoryChannel`] ([`memory_pair`]): an in-memory duplex for tests.
//! - [`StreamChannel`] over a byte stream: [`TlsChannel`] (TCP + TLS 1.3 with
//!   mutual authentication, see [`TlsConnector`], [`TlsAcceptor`] and the
//!   certificate tools in [`pki`]) and [`TcpChannel`] (plain TCP), either
//!   over the real network or through an emulated [`Link`] (rate and delay,
//!   set on [`ChannelConfig::link`]).
//!
//! Typed control messages (bincode, size-limited) go through [`send_msg`] and
//! [`recv_msg`] on any channel.
//!
//! # Wire format (byte streams)
//!
//! Over TLS the ALPN protocol is `pi/1` ([`ALPN_PROTOCOL`]); a peer that
//! offers another name fails the handshake with [`crate::Error::Incompatible`].
//! Inside the stream (TLS or plain TCP), each side first sends an 8-byte
//! *hello*, then frames:
//!
//! ```text
//! hello  = "PIWF" (4 bytes, magic) | wire version u16 big-endian (= 2) | flags u16 (= 0)
//! frame  = payload length u32 big-endian (<= MAX_FRAME) | payload (length bytes)
//! abort  = 0x8000_0000 | reason length (u32 big-endian, <= MAX_ABORT_REASON) | reason (UTF-8)
//! ```
//!
//! An *abort* record is the last thing one side sends before it hangs up:
//! the reason (server busy, client not admitted, a phase deadline, a
//! protocol violation) reaches the peer's next receive as
//! [`crate::Error::Aborted`], with control characters stripped
//! ([`peer_text`]), instead of a bare "connection closed". It is sent only
//! at a frame boundary ([`Channel::abort`]).
//!
//! Both sides send their hello before reading the peer's. A hello with
//! another magic or non-zero flags is [`crate::Error::PeerMisbehaved`];
//! another version is [`crate::Error::Incompatible`]. A frame header above
//! [`MAX_FRAME`] or above the receiver's limit, or a connection that ends
//! inside a header or payload, is [`crate::Error::PeerMisbehaved`]; a
//! connection that ends between frames is [`crate::Error::Closed`]; a peer
//! that makes no progress for [`ChannelConfig::idle_timeout`] is
//! [`crate::Error::Timeout`]. Frames carry no type tag: the protocol's
//! message order is fixed, and typed messages are decoded with a size limit
//! and a check that every byte was used. Framing costs 4 bytes per frame
//! plus 8 per connection, metered apart from payload ([`Meter::framing`]).

mod deadline;
mod link;
mod memory;
mod meter;
mod msg;
pub mod pki;
mod stream;
mod tls;
mod tls_common;

pub use deadline::{Deadlined, Phase, PhaseDeadlines};
pub use link::{Link, NetStream};
pub use memory::{MemoryChannel, QUEUE_BYTES, QUEUE_FRAMES, memory_pair};
pub use meter::{Meter, MeterReport, Traffic};
pub use msg::{MSG_LIMIT, decode_msg, recv_msg, recv_msg_limited, send_msg, send_msg_limited};
pub use stream::{
    ABORT_BIT, ChannelConfig, FRAME_HEADER_LEN, HELLO_LEN, HELLO_MAGIC, StreamChannel,
    WIRE_VERSION, hello_bytes,
};
pub use tls::{
    ALPN_PROTOCOL, TcpChannel, TlsAcceptor, TlsChannel, TlsConnector, TlsStream, client_config,
    crypto_provider, server_config, tcp_channel, tcp_loopback_pair, tls_loopback_pair,
};

use crate::Result;

/// Largest frame either side accepts (64 MiB). Larger payloads are split.
pub const MAX_FRAME: usize = 64 << 20;
/// Longest reason of an abort record, bytes.
pub const MAX_ABORT_REASON: usize = 1024;

/// Text received from a peer, made safe to log and print: invalid UTF-8
/// replaced, control characters (terminal escapes, newlines that would forge
/// log lines) and bidirectional overrides dropped, cut to `max` bytes.
pub fn peer_text(bytes: &[u8], max: usize) -> String {
    let bytes = &bytes[..bytes.len().min(max)];
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|&c| {
            !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

/// An ordered, reliable, bidirectional frame channel between the two parties.
pub trait Channel: Send {
    /// Sends one frame of at most [`MAX_FRAME`] bytes.
    fn send(&mut self, frame: &[u8]) -> impl Future<Output = Result<()>> + Send;

    /// Receives one frame; a frame longer than `limit` (or [`MAX_FRAME`]) is
    /// a [`crate::Error::PeerMisbehaved`] and is not allocated.
    fn recv(&mut self, limit: usize) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// Receives one frame whose length must be exactly `buf.len()`.
    fn recv_into(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<()>> + Send;

    /// Pushes buffered frames to the peer. (Stream channels also flush
    /// before every receive, so forgetting this cannot deadlock a
    /// request/response exchange.)
    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// Flushes and ends this direction cleanly (TLS close_notify, TCP FIN), so
    /// the peer's next receive reports [`crate::Error::Closed`] instead of a
    /// truncation. The default only flushes.
    fn close(&mut self) -> impl Future<Output = Result<()>> + Send {
        self.flush()
    }

    /// Tells the peer why this side gives up and hangs up: an abort record
    /// with `reason` (see the module docs) if the channel is at a frame
    /// boundary, then a close. Best effort; the channel is unusable after.
    /// The default (channels without abort records) only flushes.
    fn abort(&mut self, reason: &str) -> impl Future<Output = Result<()>> + Send {
        let _ = reason;
        self.flush()
    }

    /// Sets the label under which subsequent traffic is metered.
    fn set_label(&mut self, label: &str);

    /// The byte counters of this endpoint.
    fn meter(&self) -> &Meter;
}

#[cfg(test)]
mod tests;
