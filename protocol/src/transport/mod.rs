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

mod memory;
mod meter;

pub use memory::{MemoryChannel, memory_pair};
pub use meter::{Meter, Traffic};

use crate::Result;

/// Largest frame either side accepts (64 MiB). Larger payloads are split.
pub const MAX_FRAME: usize = 64 << 20;

/// An ordered, reliable, bidirectional frame channel between the two parties.
pub trait Channel: Send {
    /// Sends one frame of at most [`MAX_FRAME`] bytes.
    fn send(&mut self, frame: &[u8]) -> impl Future<Output = Result<()>> + Send;

    /// Receives one frame; a frame longer than `limit` (or [`MAX_FRAME`]) is
    /// a [`crate::Error::PeerMisbehaved`] and is not allocated.
    fn recv(&mut self, limit: usize) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// Receives one frame whose length must be exactly `buf.len()`.
    fn recv_into(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<()>> + Send;

    /// Pushes buffered frames to the peer.
    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// Sets the label under which subsequent traffic is metered.
    fn set_label(&mut self, label: &str);

    /// The byte counters of this endpoint.
    fn meter(&self) -> &Meter;
}
