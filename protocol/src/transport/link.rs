//! Link emulation: a bandwidth and a one-way delay imposed on a TCP
//! connection, so that LAN and WAN settings can be studied on one machine
//! over loopback.
//!
//! A [`Link`] on [`super::ChannelConfig::link`] shapes **both directions**
//! of every connection that endpoint makes or accepts, so set it on one side
//! only (setting it on both shapes each direction twice). Each direction is
//! a pipeline of two tasks joined by a bounded queue:
//! 1. the *scheduler* reads the bytes in chunks of at most [`CHUNK`] bytes
//!    as they come and gives each chunk its departure time on a virtual link
//!    that sends one chunk at a time at the configured rate
//!    (`start = max(now, link_free)`, `link_free = start + bits / rate`),
//!    and its delivery time `link_free + delay`;
//! 2. the *deliverer* sleeps until each chunk's delivery time and writes it on.
//!
//! Times come from the virtual link clock, not from how long sleeps took,
//! so timer granularity (about 1 ms in tokio) delays single chunks but never
//! accumulates: a transfer of `n` bytes takes at least `8n / rate + delay`
//! and, on an idle machine, not much more. Back-pressure is kept: the queue
//! holds at most a bandwidth-delay product plus a small slack, after which
//! the sender waits, as with a real socket buffer. The shaped stream is a
//! [`tokio::io::DuplexStream`] handed to TLS, so TLS record overhead is
//! shaped too (as on a real link).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{Error, Result};

/// Largest chunk the link schedules at once (one TLS record's worth).
pub const CHUNK: usize = 16 << 10;
/// Slowest rate accepted, bits per second.
pub const MIN_RATE: u64 = 1_000;
/// Fastest rate accepted, bits per second.
pub const MAX_RATE: u64 = 1_000_000_000_000;
/// Longest one-way delay accepted.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// Most chunks in flight per direction (caps the queue at 64 MiB).
const MAX_QUEUED_CHUNKS: u64 = 4096;

/// An emulated link: rate in bits per second and one-way delay.
///
/// Parsed from `RATE,DELAY`, for example `1gbit,0.5ms` or `100mbit,20ms`:
/// the rate in `bit`, `kbit`, `mbit` or `gbit` (decimal prefixes, as `tc`
/// uses them), the delay in `us`, `ms` or `s`. The delay is one way, so a
/// round trip costs twice the delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Bits per second.
    pub rate_bps: u64,
    /// One-way delay.
    pub delay: Duration,
}

impl Link {
    /// A link of `rate_bps` bits per second and one-way `delay`.
    ///
    /// Errors: [`Error::BadInput`] for a rate outside
    /// [`MIN_RATE`]..=[`MAX_RATE`] or a delay above [`MAX_DELAY`].
    pub fn new(rate_bps: u64, delay: Duration) -> Result<Self> {
        if !(MIN_RATE..=MAX_RATE).contains(&rate_bps) {
            return Err(Error::BadInput(format!(
                "link rate {rate_bps} bit/s is outside {MIN_RATE}..={MAX_RATE}"
            )));
        }
        if delay > MAX_DELAY {
            return Err(Error::BadInput(format!(
                "link delay {delay:?} is above the {MAX_DELAY:?} maximum"
            )));
        }
        Ok(Self { rate_bps, delay })
    }

    /// Time to put `bytes` on the wire at this rate.
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        let bits = bytes as u128 * 8;
        Duration::from_nanos((bits * 1_000_000_000 / self.rate_bps as u128) as u64)
    }

    /// Chunks queued per direction: a bandwidth-delay product (at least 64
    /// chunks of slack, as a socket buffer would give).
    fn queue_chunks(&self) -> usize {
        let bdp_bytes = self.rate_bps as u128 * self.delay.as_nanos() / 8 / 1_000_000_000;
        let chunks = (bdp_bytes / CHUNK as u128) as u64 + 64;
        chunks.min(MAX_QUEUED_CHUNKS) as usize
    }

    /// Shapes both directions of `tcp`: the returned stream is what the
    /// application reads and writes. Must be called inside a tokio runtime
    /// (it spawns the four pipeline tasks, which end with the connection).
    pub fn shape(self, tcp: TcpStream) -> tokio::io::DuplexStream {
        let (app, inner) = tokio::io::duplex(4 * CHUNK);
        let (inner_read, inner_write) = tokio::io::split(inner);
        let (tcp_read, tcp_write) = tcp.into_split();
        self.pipe(inner_read, tcp_write);
        self.pipe(tcp_read, inner_write);
        app
    }

    /// One shaped direction: `from` → scheduler → queue → deliverer → `to`.
    fn pipe<R, W>(self, mut from: R, mut to: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(self.queue_chunks());
        tokio::spawn(async move {
            let mut link_free = Instant::now();
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let n = match from.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                chunk.truncate(n);
                let start = link_free.max(Instant::now());
                link_free = start + self.transmit_time(n);
                if tx.send((link_free + self.delay, chunk)).await.is_err() {
                    break;
                }
            }
            // Dropping `tx` lets the deliverer finish and close its side.
        });
        tokio::spawn(async move {
            while let Some((at, chunk)) = rx.recv().await {
                tokio::time::sleep_until(at).await;
                if to.write_all(&chunk).await.is_err() || to.flush().await.is_err() {
                    return;
                }
            }
            let _ = to.shutdown().await;
        });
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.rate_bps;
        let rate = if r.is_multiple_of(1_000_000_000) {
            format!("{}gbit", r / 1_000_000_000)
        } else if r.is_multiple_of(1_000_000) {
            format!("{}mbit", r / 1_000_000)
        } else if r.is_multiple_of(1_000) {
            format!("{}kbit", r / 1_000)
        } else {
            format!("{r}bit")
        };
        let us = self.delay.as_micros();
        if us.is_multiple_of(1000) {
            write!(f, "{rate},{}ms", us / 1000)
        } else {
            write!(f, "{rate},{us}us")
        }
    }
}

/// Splits `"12.5mbit"` into 12.5 and `"mbit"`.
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let at = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(at);
    let num: f64 = num.trim().parse().ok()?;
    (num.is_finite() && num >= 0.0).then_some((num, unit.trim()))
}

impl FromStr for Link {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::BadInput(format!(
                "link {s:?}: {why} (expected RATE,DELAY such as 1gbit,0.5ms or 100mbit,20ms)"
            ))
        };
        let (rate, delay) = s.split_once(',').ok_or_else(|| bad("no comma"))?;
        let (r, unit) = number_and_unit(rate).ok_or_else(|| bad("unreadable rate"))?;
        let scale = match unit.to_ascii_lowercase().as_str() {
            "bit" | "bps" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            _ => return Err(bad("rate unit must be bit, kbit, mbit or gbit")),
        };
        let (d, unit) = number_and_unit(delay).ok_or_else(|| bad("unreadable delay"))?;
        let nanos = match unit.to_ascii_lowercase().as_str() {
            "us" => d * 1e3,
            "ms" => d * 1e6,
            "s" => d * 1e9,
            _ => return Err(bad("delay unit must be us, ms or s")),
        };
        let rate_bps = (r * scale).round();
        if rate_bps > MAX_RATE as f64 || nanos > MAX_DELAY.as_nanos() as f64 {
            return Err(bad("out of range"));
        }
        Link::new(rate_bps as u64, Duration::from_nanos(nanos.round() as u64))
    }
}

/// The TCP stream under a channel: direct, or through an emulated [`Link`].
pub struct NetStream(Inner);

enum Inner {
    Direct(TcpStream),
    Shaped(tokio::io::DuplexStream),
}

impl NetStream {
    /// `tcp` as is, or shaped by `link` (see the [module docs](self)).
    pub fn new(tcp: TcpStream, link: Option<Link>) -> std::io::Result<Self> {
        tcp.set_nodelay(true)?;
        Ok(Self(match link {
            None => Inner::Direct(tcp),
            Some(link) => Inner::Shaped(link.shape(tcp)),
        }))
    }
}

impl AsyncRead for NetStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Direct(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Inner::Shaped(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Direct(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Inner::Shaped(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Direct(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Shaped(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.0 {
            Inner::Direct(s) => s.is_write_vectored(),
            Inner::Shaped(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Direct(s) => std::pin::Pin::new(s).poll_flush(cx),
            Inner::Shaped(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Direct(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Inner::Shaped(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let l: Link = "1gbit,0.5ms".parse().unwrap();
        assert_eq!(
            l,
            Link::new(1_000_000_000, Duration::from_micros(500)).unwrap()
        );
        assert_eq!(l.to_string(), "1gbit,500us");
        let l: Link = "100mbit,20ms".parse().unwrap();
        assert_eq!(
            (l.rate_bps, l.delay),
            (100_000_000, Duration::from_millis(20))
        );
        assert_eq!(l.to_string(), "100mbit,20ms");
        let l: Link = "2.5 Mbit, 0s".parse().unwrap();
        assert_eq!((l.rate_bps, l.delay), (2_500_000, Duration::ZERO));
        for bad in [
            "",
            "1gbit",
            "1gbit,",
            ",1ms",
            "fastbit,1ms",
            "1gbyte,1ms",
            "1gbit,1min",
            "0bit,1ms",
            "-1mbit,1ms",
            "1mbit,-1ms",
            "nanmbit,1ms",
            "1mbit,11s",
            "1e30gbit,1ms",
        ] {
            let e = bad.parse::<Link>().unwrap_err();
            assert!(matches!(e, Error::BadInput(_)), "{bad:?}: {e}");
        }
    }

    #[test]
    fn transmit_time_is_bits_over_rate() {
        let l = Link::new(8_000_000, Duration::ZERO).unwrap();
        assert_eq!(l.transmit_time(1_000_000), Duration::from_secs(1));
        assert_eq!(l.transmit_time(0), Duration::ZERO);
    }

    /// A shaped transfer takes at least size / rate + delay, in each
    /// direction, and the bytes arrive intact and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shaped_transfer_takes_at_least_size_over_rate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let link: Link = "40mbit,30ms".parse().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        // Only one end shapes, as documented; both directions are slowed.
        let mut client = NetStream::new(a.unwrap(), Some(link)).unwrap();
        let mut server = NetStream::new(b.unwrap().0, None).unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for upload in [true, false] {
            let t = std::time::Instant::now();
            let (tx, rx) = if upload {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            let send = async {
                tx.write_all(&data).await.unwrap();
                tx.flush().await.unwrap();
            };
            let mut got = vec![0u8; data.len()];
            let recv = async { rx.read_exact(&mut got).await.unwrap() };
            tokio::join!(send, recv);
            let took = t.elapsed();
            assert!(got == data, "bytes changed on the shaped link");
            let floor = link.transmit_time(data.len()) + link.delay;
            assert!(took >= floor, "upload={upload}: {took:?} < {floor:?}");
        }
        // Closing one end reaches the other through the pipeline.
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
