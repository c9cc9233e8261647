//! A [`Channel`] over any byte stream (plain TCP, TLS): the hello exchange,
//! length-prefixed frames, buffered IO and timeouts.
//!
//! The wire format is described in the [module docs](super).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};

use super::{Channel, MAX_ABORT_REASON, MAX_FRAME, Meter, peer_text};
use crate::{Error, Misbehavior, Result};

/// First four bytes of the hello: identifies a pi transport endpoint.
pub const HELLO_MAGIC: [u8; 4] = *b"PIWF";
/// Version of the framing described in the module docs. Bumped on any
/// change to the hello or the frame header (2: abort records).
pub const WIRE_VERSION: u16 = 2;
/// Length of the hello each side sends first.
pub const HELLO_LEN: usize = 8;
/// Length of a frame header (big-endian `u32` payload length).
pub const FRAME_HEADER_LEN: usize = 4;
/// Top bit of a frame header: the record is an abort with a reason of
/// `header & !ABORT_BIT` bytes (at most [`super::MAX_ABORT_REASON`]), the last
/// record of the connection.
pub const ABORT_BIT: u32 = 1 << 31;
/// After an abort, how long and how much of the peer's input is read and
/// discarded so that the abort record is not lost to a TCP reset.
const ABORT_DRAIN_TIME: Duration = Duration::from_secs(2);
const ABORT_DRAIN_BYTES: usize = 64 << 20;

/// The hello this implementation sends: magic, version, two zero flag bytes.
pub fn hello_bytes() -> [u8; HELLO_LEN] {
    let v = WIRE_VERSION.to_be_bytes();
    let m = HELLO_MAGIC;
    [m[0], m[1], m[2], m[3], v[0], v[1], 0, 0]
}

/// Checks the peer's hello; see the module docs for its layout.
fn check_hello(h: &[u8; HELLO_LEN]) -> Result<()> {
    if h[..4] != HELLO_MAGIC {
        return Err(Misbehavior::Hello(format!(
            "peer is not a pi transport endpoint: hello starts with {:02x?}",
            &h[..4]
        ))
        .into());
    }
    let version = u16::from_be_bytes([h[4], h[5]]);
    if version != WIRE_VERSION {
        return Err(Error::Incompatible(format!(
            "peer speaks wire version {version}, we speak {WIRE_VERSION}"
        )));
    }
    if h[6..] != [0, 0] {
        return Err(Misbehavior::Hello(format!(
            "flags {:02x?} must be zero in wire version {WIRE_VERSION}",
            &h[6..]
        ))
        .into());
    }
    Ok(())
}

/// Timeouts and buffer sizes of a stream channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Longest wait for any progress while receiving (the next byte of a
    /// frame or of the next frame header). The default is generous because a
    /// party may compute for minutes between messages (offline HE of a large
    /// layer); drivers that know better may lower it.
    pub idle_timeout: Duration,
    /// Longest wait for the peer to accept more bytes while sending or flushing.
    pub write_timeout: Duration,
    /// Longest time for the TLS handshake plus the hello exchange.
    pub handshake_timeout: Duration,
    /// Capacity of the read buffer and of the write buffer, each (clamped
    /// to 1 KiB..=64 MiB). Frames at least this large bypass the buffers (no
    /// intermediate copy).
    pub buffer_bytes: usize,
    /// An emulated link (rate and delay) imposed on both directions of every
    /// TCP connection made with this configuration; `None` for the real
    /// network. See [`super::Link`].
    pub link: Option<super::Link>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(30),
            buffer_bytes: 256 << 10,
            link: None,
        }
    }
}

impl ChannelConfig {
    /// [`ChannelConfig::buffer_bytes`] within its sane range.
    pub(crate) fn buffer(&self) -> usize {
        self.buffer_bytes.clamp(1 << 10, MAX_FRAME)
    }

    /// The same timeout for idle reads, writes and the handshake (handy in tests).
    pub fn with_timeouts(timeout: Duration) -> Self {
        Self {
            idle_timeout: timeout,
            write_timeout: timeout,
            handshake_timeout: timeout,
            ..Self::default()
        }
    }
}

/// A [`Channel`] over a byte stream `S` (a `TcpStream` or a TLS stream),
/// framed as described in the [module docs](super).
///
/// Sends are buffered: [`Channel::flush`] pushes them out, and every receive
/// flushes first, so a request followed by a wait for the answer never
/// deadlocks on bytes left in the buffer. After any error the channel is
/// unusable (the stream may be mid-frame) and every call fails.
pub struct StreamChannel<S> {
    io: BufStream<S>,
    config: ChannelConfig,
    meter: Meter,
    /// Bytes were written to the buffer (or TLS layer) since the last flush.
    unflushed: bool,
    /// Why the channel stopped working, once it has.
    broken: Option<String>,
    /// A frame write started and has not completed (its future was dropped
    /// or failed): the outgoing stream may be mid-frame, so no abort record
    /// may follow.
    writing: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> StreamChannel<S> {
    /// Wraps a connected stream and exchanges hellos with the peer (both
    /// sides send first, then read, so neither waits for the other).
    ///
    /// Errors: [`Error::Incompatible`] if the peer speaks another wire
    /// version, [`Error::PeerMisbehaved`] if it is not a pi endpoint,
    /// [`Error::Timeout`] after `config.handshake_timeout`.
    pub async fn establish(io: S, config: ChannelConfig) -> Result<Self> {
        let limit = config.handshake_timeout;
        let mut ch = Self {
            io: BufStream::with_capacity(config.buffer(), config.buffer(), io),
            config,
            meter: Meter::default(),
            unflushed: false,
            broken: None,
            writing: false,
        };
        tokio::time::timeout(limit, ch.exchange_hello())
            .await
            .map_err(|_| Error::Timeout(limit))??;
        Ok(ch)
    }

    async fn exchange_hello(&mut self) -> Result<()> {
        self.io.write_all(&hello_bytes()).await.map_err(map_io)?;
        self.io.flush().await.map_err(map_io)?;
        self.meter.add_framing_sent(HELLO_LEN);
        let mut peer = [0u8; HELLO_LEN];
        let got = self.read_full(&mut peer).await?;
        if got == 0 {
            return Err(Error::Closed);
        }
        if got < HELLO_LEN {
            return Err(Misbehavior::Truncated {
                what: "the hello",
                got,
                expected: HELLO_LEN,
            }
            .into());
        }
        self.meter.add_framing_received(HELLO_LEN);
        check_hello(&peer)
    }

    /// The underlying stream (for example to read the TLS peer certificate).
    pub fn get_ref(&self) -> &S {
        self.io.get_ref()
    }

    /// This channel's timeouts and buffer sizes.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    fn check_usable(&self) -> Result<()> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(Error::BadInput(format!(
                "channel is unusable after an earlier error: {why}"
            ))),
        }
    }

    /// Records the first error so that later calls fail instead of reading
    /// from the middle of a frame.
    fn note<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && self.broken.is_none()
        {
            self.broken = Some(e.to_string());
        }
        r
    }

    /// Reads until `buf` is full or the stream ends; returns the bytes read.
    /// Each read must make progress within the idle timeout.
    async fn read_full(&mut self, buf: &mut [u8]) -> Result<usize> {
        let idle = self.config.idle_timeout;
        let mut filled = 0;
        while filled < buf.len() {
            let n = match tokio::time::timeout(idle, self.io.read(&mut buf[filled..])).await {
                Err(_) => return Err(Error::Timeout(idle)),
                // TLS reports a TCP close without close_notify as UnexpectedEof;
                // the caller decides whether the stream ended at a frame boundary.
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                Ok(Err(e)) => return Err(map_io(e)),
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }

    /// Reads exactly `buf.len()` payload bytes of a frame of that length.
    async fn read_payload(&mut self, buf: &mut [u8], offset: usize, total: usize) -> Result<()> {
        let got = self.read_full(buf).await?;
        if got < buf.len() {
            return Err(Misbehavior::Truncated {
                what: "a frame",
                got: offset + got,
                expected: total,
            }
            .into());
        }
        Ok(())
    }

    /// Reads the next frame header; `Closed` if the stream ends before it.
    async fn read_header(&mut self) -> Result<usize> {
        let mut h = [0u8; FRAME_HEADER_LEN];
        match self.read_full(&mut h).await? {
            0 => return Err(Error::Closed),
            FRAME_HEADER_LEN => {}
            got => {
                return Err(Misbehavior::Truncated {
                    what: "a frame header",
                    got,
                    expected: FRAME_HEADER_LEN,
                }
                .into());
            }
        }
        self.meter.add_framing_received(FRAME_HEADER_LEN);
        let header = u32::from_be_bytes(h);
        if header & ABORT_BIT != 0 {
            return Err(self.read_abort((header & !ABORT_BIT) as usize).await);
        }
        let len = header as usize;
        if len > MAX_FRAME {
            return Err(Misbehavior::FrameTooLarge {
                len,
                limit: MAX_FRAME,
            }
            .into());
        }
        Ok(len)
    }

    /// Reads the reason of an abort record whose header announced `len` bytes.
    async fn read_abort(&mut self, len: usize) -> Error {
        if len > MAX_ABORT_REASON {
            return Misbehavior::FrameTooLarge {
                len,
                limit: MAX_ABORT_REASON,
            }
            .into();
        }
        let mut reason = vec![0u8; len];
        match self.read_full(&mut reason).await {
            Ok(got) if got == len => Error::Aborted(peer_text(&reason, MAX_ABORT_REASON)),
            Ok(got) => Misbehavior::Truncated {
                what: "an abort record",
                got,
                expected: len,
            }
            .into(),
            Err(e) => e,
        }
    }

    /// After a write failed because the peer hung up: the peer may have said
    /// why in an abort record still waiting in our input (it aborts while
    /// we are sending). Reads and skips the frames before it, for at most
    /// [`ABORT_DRAIN_TIME`] and [`ABORT_DRAIN_BYTES`]: [`Error::Aborted`]
    /// with the peer's reason if one is found, else [`Error::Closed`].
    async fn salvage_abort(&mut self) -> Error {
        let scan = async {
            let mut sink = vec![0u8; 16 << 10];
            let mut skipped = 0usize;
            loop {
                let len = match self.read_header().await {
                    Ok(len) => len,
                    Err(e @ Error::Aborted(_)) => return Some(e),
                    Err(_) => return None,
                };
                skipped += len;
                if skipped > ABORT_DRAIN_BYTES {
                    return None;
                }
                let mut left = len;
                while left > 0 {
                    let n = left.min(sink.len());
                    match self.read_full(&mut sink[..n]).await {
                        Ok(got) if got == n => left -= n,
                        _ => return None,
                    }
                }
            }
        };
        match tokio::time::timeout(ABORT_DRAIN_TIME, scan).await {
            Ok(Some(e)) => e,
            _ => Error::Closed,
        }
    }

    /// Writes header and payload as one vectored write where the stream
    /// supports it: small frames are copied into the write buffer, while a
    /// frame at least as large as the buffer goes straight to the stream
    /// (no intermediate copy, and no separate tiny packet for the header).
    async fn write_frame_timed(&mut self, mut header: &[u8], mut payload: &[u8]) -> Result<()> {
        let limit = self.config.write_timeout;
        while !header.is_empty() || !payload.is_empty() {
            let bufs = [io::IoSlice::new(header), io::IoSlice::new(payload)];
            let n = match tokio::time::timeout(limit, self.io.write_vectored(&bufs)).await {
                Err(_) => return Err(Error::Timeout(limit)),
                Ok(Err(e)) => return Err(map_io(e)),
                Ok(Ok(0)) => return Err(Error::Closed),
                Ok(Ok(n)) => n,
            };
            let from_header = n.min(header.len());
            header = &header[from_header..];
            payload = &payload[n - from_header..];
        }
        Ok(())
    }

    async fn send_inner(&mut self, frame: &[u8]) -> Result<()> {
        if frame.len() > MAX_FRAME {
            // Local mistake, nothing written: the channel stays usable.
            return Err(Error::BadInput(format!(
                "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                frame.len()
            )));
        }
        let header = u32::try_from(frame.len())
            .map_err(|_| Error::BadInput("frame length does not fit the header".into()))?
            .to_be_bytes();
        self.unflushed = true;
        self.writing = true;
        let r = match self.write_frame_timed(&header, frame).await {
            Err(Error::Closed) => Err(self.salvage_abort().await),
            r => r,
        };
        self.note(r)?;
        self.writing = false;
        self.meter.add_framing_sent(FRAME_HEADER_LEN);
        self.meter.add_sent(frame.len());
        Ok(())
    }

    async fn flush_inner(&mut self) -> Result<()> {
        if !self.unflushed {
            return Ok(());
        }
        let limit = self.config.write_timeout;
        let r = match tokio::time::timeout(limit, self.io.flush()).await {
            Err(_) => Err(Error::Timeout(limit)),
            Ok(r) => r.map_err(map_io),
        };
        let r = match r {
            Err(Error::Closed) => Err(self.salvage_abort().await),
            r => r,
        };
        self.note(r)?;
        self.unflushed = false;
        Ok(())
    }

    async fn recv_inner(&mut self, limit: usize) -> Result<Vec<u8>> {
        self.flush_inner().await?;
        let len = self.read_header().await?;
        if len > limit {
            return Err(Misbehavior::FrameTooLarge { len, limit }.into());
        }
        // Grow the buffer as bytes arrive rather than trusting `len` up front,
        // so a peer that announces a large frame and stalls costs little memory.
        let mut buf = Vec::new();
        let mut step = self.config.buffer().max(1 << 16);
        while buf.len() < len {
            let start = buf.len();
            let end = len.min(start.saturating_add(step));
            buf.resize(end, 0);
            self.read_payload(&mut buf[start..end], start, len).await?;
            step = step.saturating_mul(2);
        }
        self.meter.add_received(len);
        Ok(buf)
    }

    async fn recv_into_inner(&mut self, buf: &mut [u8]) -> Result<()> {
        self.flush_inner().await?;
        let len = self.read_header().await?;
        if len != buf.len() {
            return Err(Misbehavior::FrameSize {
                expected: buf.len(),
                got: len,
            }
            .into());
        }
        self.read_payload(buf, 0, len).await?;
        self.meter.add_received(len);
        Ok(())
    }

    /// Writes an abort record (if the outgoing stream is at a frame
    /// boundary), flushes and shuts the stream down.
    async fn abort_inner(&mut self, reason: &str) -> Result<()> {
        if self.broken.is_none() && !self.writing {
            let mut cut = reason.len().min(MAX_ABORT_REASON);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            let reason = &reason.as_bytes()[..cut];
            let header = (ABORT_BIT | reason.len() as u32).to_be_bytes();
            self.unflushed = true;
            self.writing = true;
            let r = self.write_frame_timed(&header, reason).await;
            self.note(r)?;
            self.writing = false;
            self.meter.add_framing_sent(FRAME_HEADER_LEN + reason.len());
        }
        let limit = self.config.write_timeout;
        let r = async {
            self.io.flush().await?;
            self.io.shutdown().await
        };
        let r = match tokio::time::timeout(limit, r).await {
            Err(_) => Err(Error::Timeout(limit)),
            Ok(r) => r.map_err(map_io),
        };
        self.broken = Some("the channel was aborted locally".into());
        // Closing a socket with unread input makes the kernel send a reset,
        // which can destroy the abort record before the peer reads it: read
        // and discard what the peer still sends, for a short while.
        if r.is_ok() {
            let drain = async {
                let mut sink = vec![0u8; 16 << 10];
                let mut total = 0usize;
                while total < ABORT_DRAIN_BYTES {
                    match self.io.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            };
            let _ = tokio::time::timeout(ABORT_DRAIN_TIME.min(limit), drain).await;
        }
        r
    }

    async fn close_inner(&mut self) -> Result<()> {
        self.unflushed = true;
        self.flush_inner().await?;
        let limit = self.config.write_timeout;
        let r = match tokio::time::timeout(limit, self.io.shutdown()).await {
            Err(_) => Err(Error::Timeout(limit)),
            Ok(r) => r.map_err(map_io),
        };
        self.note(r)?;
        self.broken = Some("the channel was closed locally".into());
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Channel for StreamChannel<S> {
    async fn send(&mut self, frame: &[u8]) -> Result<()> {
        self.check_usable()?;
        self.send_inner(frame).await
    }

    async fn recv(&mut self, limit: usize) -> Result<Vec<u8>> {
        self.check_usable()?;
        let r = self.recv_inner(limit).await;
        self.note(r)
    }

    async fn recv_into(&mut self, buf: &mut [u8]) -> Result<()> {
        self.check_usable()?;
        let r = self.recv_into_inner(buf).await;
        self.note(r)
    }

    async fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        self.flush_inner().await
    }

    async fn close(&mut self) -> Result<()> {
        self.check_usable()?;
        self.close_inner().await
    }

    async fn abort(&mut self, reason: &str) -> Result<()> {
        self.abort_inner(reason).await
    }

    fn set_label(&mut self, label: &str) {
        self.meter.set_label(label);
    }

    fn meter(&self) -> &Meter {
        &self.meter
    }
}

/// Maps a stream error to the crate error, surfacing TLS alerts and
/// certificate failures that tokio-rustls wraps in `io::Error`.
pub(crate) fn map_io(e: io::Error) -> Error {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return super::tls_common::map_tls_error(tls);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Error::Closed,
        _ => Error::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tokio::io::{AsyncWriteExt, duplex};

    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// The peer aborts and hangs up while we are sending: the failed write
    /// reports the peer's reason from the abort record waiting in our
    /// input, not just a closed connection (frames the peer sent before
    /// the record are skipped).
    #[test]
    fn a_write_failed_by_an_aborting_peer_reports_its_reason() {
        rt().block_on(async {
            let (x, y) = duplex(1 << 16);
            let (a, b) = tokio::join!(
                StreamChannel::establish(x, small_buffers()),
                StreamChannel::establish(y, small_buffers())
            );
            let (mut a, mut b) = (a.unwrap(), b.unwrap());
            b.send(&[1, 2, 3]).await.unwrap();
            b.abort("server busy (1 sessions)").await.unwrap();
            drop(b);
            let frame = vec![7u8; 8 << 10];
            let err = loop {
                if let Err(e) = a.send(&frame).await {
                    break e;
                }
            };
            assert!(
                matches!(err, Error::Aborted(ref r) if r == "server busy (1 sessions)"),
                "{err:?}"
            );
        });
    }

    fn small_buffers() -> ChannelConfig {
        ChannelConfig {
            buffer_bytes: 0, // clamped to the 1 KiB minimum
            ..ChannelConfig::with_timeouts(Duration::from_secs(5))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Frames of any size survive a byte stream that moves at most 97
        /// bytes at a time (many partial reads and writes), with tiny buffers.
        #[test]
        fn frames_round_trip_over_a_narrow_pipe(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 0..12)) {
            rt().block_on(async {
                let (a, b) = duplex(97);
                let (a, b) = tokio::join!(
                    StreamChannel::establish(a, small_buffers()),
                    StreamChannel::establish(b, small_buffers())
                );
                let (mut a, mut b) = (a.unwrap(), b.unwrap());
                let send = async {
                    for f in &frames {
                        a.send(f).await.unwrap();
                    }
                    a.flush().await.unwrap();
                };
                let recv = async {
                    let mut got = Vec::new();
                    for (i, f) in frames.iter().enumerate() {
                        if i % 2 == 0 {
                            got.push(b.recv(f.len()).await.unwrap());
                        } else {
                            let mut buf = vec![0u8; f.len()];
                            b.recv_into(&mut buf).await.unwrap();
                            got.push(buf);
                        }
                    }
                    got
                };
                let ((), got) = tokio::join!(send, recv);
                prop_assert_eq!(&got, &frames);
                let total: usize = frames.iter().map(Vec::len).sum();
                prop_assert_eq!(b.meter().total("").received, total as u64);
                prop_assert_eq!(a.meter().framing().sent, (HELLO_LEN + FRAME_HEADER_LEN * frames.len()) as u64);
                Ok(())
            })?;
        }

        /// Arbitrary bytes after a valid hello never panic or hang: the
        /// receiver returns frames within its limit until a clear error.
        #[test]
        fn random_bytes_after_hello_end_in_a_clear_error(junk in prop::collection::vec(any::<u8>(), 0..600)) {
            rt().block_on(async {
                let (mut raw, b) = duplex(1 << 16);
                raw.write_all(&hello_bytes()).await.unwrap();
                raw.write_all(&junk).await.unwrap();
                raw.shutdown().await.unwrap();
                let mut b = StreamChannel::establish(b, small_buffers()).await.unwrap();
                let mut consumed = 0;
                let err = loop {
                    match b.recv(100).await {
                        Ok(f) => {
                            prop_assert!(f.len() <= 100);
                            consumed += FRAME_HEADER_LEN + f.len();
                        }
                        Err(e) => break e,
                    }
                };
                prop_assert!(consumed <= junk.len());
                prop_assert!(matches!(err, Error::Closed | Error::PeerMisbehaved(_)), "{err:?}");
                Ok(())
            })?;
        }
    }
}
