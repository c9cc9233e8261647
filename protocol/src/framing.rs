//! Frames of a session after the handshake: the client's requests (offline,
//! online, close) and bulk payloads split into frames of a fixed size.

use crate::transport::Channel;
use crate::{Error, Result};

/// Payload bytes per frame for bulk data (labels, packed shares, HE messages).
pub(crate) const BULK_FRAME: usize = 4 << 20;

/// Request tag: run the offline phase of an inference.
pub(crate) const TAG_OFFLINE: u8 = 0x10;
/// Request tag: end the session.
pub(crate) const TAG_CLOSE: u8 = 0x11;
/// Request tag: run the online phase of a preprocessed inference.
pub(crate) const TAG_ONLINE: u8 = 0x12;

/// Label of request frames (outside both phases).
pub(crate) const REQUEST_LABEL: &str = "session/request";

/// A client's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Run the offline phase of inference `id`.
    Offline(u64),
    /// Run the online phase of (preprocessed) inference `id`.
    Online(u64),
    /// End the session.
    Close,
}

/// Receives the client's next request.
pub(crate) async fn recv_request<C: Channel>(ch: &mut C) -> Result<Request> {
    ch.set_label(REQUEST_LABEL);
    let frame = ch.recv(9).await?;
    let id = |b: &[u8]| {
        let mut le = [0u8; 8];
        le.copy_from_slice(b);
        u64::from_le_bytes(le)
    };
    match frame.split_first() {
        Some((&TAG_OFFLINE, b)) if b.len() == 8 => Ok(Request::Offline(id(b))),
        Some((&TAG_ONLINE, b)) if b.len() == 8 => Ok(Request::Online(id(b))),
        Some((&TAG_CLOSE, [])) => Ok(Request::Close),
        _ => Err(Error::malformed("malformed inference request")),
    }
}

/// Sends a request frame (tag and inference number).
pub(crate) async fn send_request<C: Channel>(ch: &mut C, tag: u8, id: u64) -> Result<()> {
    ch.set_label(REQUEST_LABEL);
    let mut req = vec![tag];
    req.extend_from_slice(&id.to_le_bytes());
    ch.send(&req).await
}

/// Sends the close request.
pub(crate) async fn send_close<C: Channel>(ch: &mut C) -> Result<()> {
    ch.set_label(REQUEST_LABEL);
    ch.send(&[TAG_CLOSE]).await?;
    ch.flush().await
}

/// Sends `bytes` as frames of at most [`BULK_FRAME`] bytes (at least one frame).
pub(crate) async fn send_bulk<C: Channel>(ch: &mut C, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return ch.send(&[]).await;
    }
    for piece in bytes.chunks(BULK_FRAME) {
        ch.send(piece).await?;
    }
    Ok(())
}

/// Receives exactly `total` bytes sent by [`send_bulk`]: every frame must
/// have exactly the size [`send_bulk`] gives it, so a short or long frame is
/// [`Error::PeerMisbehaved`] at once (never a wait for bytes that will not come).
pub(crate) async fn recv_bulk<C: Channel>(ch: &mut C, total: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; total];
    if total == 0 {
        ch.recv_into(&mut out).await?;
        return Ok(out);
    }
    for piece in out.chunks_mut(BULK_FRAME) {
        ch.recv_into(piece).await?;
    }
    Ok(out)
}
