//! Loopback transport throughput: how fast the TLS channel moves bulk data
//! (garbled tables, ciphertexts) between the two parties on one machine.
//!
//! Both parties run on a two-worker tokio runtime, each in its own task, so
//! encryption and decryption can use both cores as two machines would. The
//! sender writes `frame_bytes` frames from one reused buffer and the receiver
//! reads them with `recv_into` into one reused buffer; the clock stops when
//! the receiver's one-byte acknowledgement arrives.

use std::time::Instant;

use pi_protocol::transport::pki::CertificateAuthority;
use pi_protocol::transport::{
    Channel, ChannelConfig, MAX_FRAME, TlsAcceptor, TlsConnector, tcp_loopback_pair,
};
use pi_protocol::{Error, Result};
use serde::Serialize;

/// Bytes sent over each fresh connection before the clock starts, so that the
/// measurement sees steady state (socket buffers grown, pages touched).
const WARM_UP_BYTES: usize = 64 << 20;

/// Result of [`measure_loopback_throughput`].
#[derive(Clone, Debug, Serialize)]
pub struct TransportThroughput {
    /// Payload bytes moved in each measurement.
    pub bytes: u64,
    /// Size of each frame.
    pub frame_bytes: usize,
    /// Time to connect over TLS: TCP, TLS 1.3 handshake with client
    /// certificates, and the hello exchange.
    pub handshake_seconds: f64,
    /// Wall time of the TLS transfer.
    pub tls_seconds: f64,
    /// Payload throughput over TLS (bytes per second).
    pub bulk_bytes_per_second: f64,
    /// Payload throughput over plain TCP with the same framing, for comparison.
    pub tcp_bytes_per_second: f64,
    /// Framing bytes the sender wrote over TLS during the measurement (TLS
    /// record overhead excluded).
    pub framing_bytes: u64,
}

/// Sends `total_bytes` (rounded up to whole frames) in frames of
/// `frame_bytes` from `client` to `server`; returns the seconds until the
/// server's acknowledgement arrived, and both channels for reuse.
pub async fn bulk_transfer<C>(
    mut client: C,
    server: C,
    total_bytes: usize,
    frame_bytes: usize,
) -> Result<(f64, C, C)>
where
    C: Channel + 'static,
{
    if frame_bytes == 0 || frame_bytes > MAX_FRAME {
        return Err(Error::BadInput(format!(
            "frame size {frame_bytes} must be in 1..={MAX_FRAME}"
        )));
    }
    let frames = total_bytes.div_ceil(frame_bytes);
    let receiver = tokio::spawn(async move {
        let mut server = server;
        let mut buf = vec![0u8; frame_bytes];
        for _ in 0..frames {
            server.recv_into(&mut buf).await?;
        }
        server.send(&[1]).await?;
        server.flush().await?;
        Ok::<_, Error>(server)
    });
    let payload: Vec<u8> = (0..frame_bytes).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    for _ in 0..frames {
        client.send(&payload).await?;
    }
    let ack = client.recv(1).await?;
    let seconds = start.elapsed().as_secs_f64();
    let server = receiver
        .await
        .map_err(|e| Error::BadInput(format!("receiver task failed: {e}")))??;
    if ack != [1] {
        return Err(Error::malformed("bad acknowledgement"));
    }
    Ok((seconds, client, server))
}

/// Measures loopback bulk throughput over TLS (with a fresh private CA and
/// mutual authentication) and over plain TCP. Builds its own runtime.
pub fn measure_loopback_throughput(
    total_bytes: usize,
    frame_bytes: usize,
) -> Result<TransportThroughput> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let ca = CertificateAuthority::generate()?;
        let server_id = ca.issue_server(&[])?.identity(&ca)?;
        let client_id = ca.issue_client("bench")?.identity(&ca)?;
        let config = ChannelConfig::default();
        let acceptor = TlsAcceptor::new(&server_id, config.clone())?;
        let connector = TlsConnector::new(&client_id, config.clone())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;

        let start = Instant::now();
        let accept = async {
            let (tcp, _) = listener.accept().await?;
            acceptor.accept(tcp).await
        };
        let (client, server) = tokio::join!(connector.connect(addr, "localhost"), accept);
        let (client, server) = (client?, server?);
        let handshake_seconds = start.elapsed().as_secs_f64();

        let warm = total_bytes.min(WARM_UP_BYTES);
        let (_, client, server) = bulk_transfer(client, server, warm, frame_bytes).await?;
        let before = client.meter().report();
        let (tls_seconds, client, _) =
            bulk_transfer(client, server, total_bytes, frame_bytes).await?;
        let after = client.meter().report();
        let framing_bytes = after.framing.sent - before.framing.sent;
        let bytes = after.total.sent - before.total.sent;

        let (tcp_client, tcp_server) = tcp_loopback_pair(config).await?;
        let (_, tcp_client, tcp_server) =
            bulk_transfer(tcp_client, tcp_server, warm, frame_bytes).await?;
        let (tcp_seconds, _, _) =
            bulk_transfer(tcp_client, tcp_server, total_bytes, frame_bytes).await?;

        Ok(TransportThroughput {
            bytes,
            frame_bytes,
            handshake_seconds,
            tls_seconds,
            bulk_bytes_per_second: bytes as f64 / tls_seconds,
            tcp_bytes_per_second: bytes as f64 / tcp_seconds,
            framing_bytes,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_measurement_moves_every_byte() {
        let r = measure_loopback_throughput(3 << 20, 1 << 20).unwrap();
        assert_eq!(r.bytes, 3 << 20);
        // Frame headers only: the hello went out before the measurement.
        assert_eq!(r.framing_bytes, 3 * 4);
        assert!(r.bulk_bytes_per_second > 0.0 && r.tcp_bytes_per_second > 0.0);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["bulk_bytes_per_second"].is_number());
    }

    #[test]
    fn zero_frame_size_is_bad_input() {
        assert!(matches!(
            measure_loopback_throughput(10, 0),
            Err(Error::BadInput(_))
        ));
    }
}
