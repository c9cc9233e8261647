//! In-memory duplex for tests: two endpoints joined by bounded queues.

use tokio::sync::mpsc;

use super::{Channel, MAX_FRAME, Meter};
use crate::{Error, Result};

/// Frames in flight per direction before `send` waits, like a socket buffer.
const QUEUE_FRAMES: usize = 64;

/// One endpoint of an in-memory duplex made by [`memory_pair`].
pub struct MemoryChannel {
    tx: mpsc::Sender<Vec<u8>>,
    rx: mpsc::Receiver<Vec<u8>>,
    meter: Meter,
}

/// Two connected in-memory endpoints.
pub fn memory_pair() -> (MemoryChannel, MemoryChannel) {
    let (tx_a, rx_b) = mpsc::channel(QUEUE_FRAMES);
    let (tx_b, rx_a) = mpsc::channel(QUEUE_FRAMES);
    (
        MemoryChannel { tx: tx_a, rx: rx_a, meter: Meter::default() },
        MemoryChannel { tx: tx_b, rx: rx_b, meter: Meter::default() },
    )
}

impl MemoryChannel {
    async fn next_frame(&mut self) -> Result<Vec<u8>> {
        self.rx.recv().await.ok_or(Error::Closed)
    }
}

impl Channel for MemoryChannel {
    async fn send(&mut self, frame: &[u8]) -> Result<()> {
        if frame.len() > MAX_FRAME {
            return Err(Error::BadInput(format!(
                "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                frame.len()
            )));
        }
        self.tx.send(frame.to_vec()).await.map_err(|_| Error::Closed)?;
        self.meter.add_sent(frame.len());
        Ok(())
    }

    async fn recv(&mut self, limit: usize) -> Result<Vec<u8>> {
        let frame = self.next_frame().await?;
        if frame.len() > limit.min(MAX_FRAME) {
            return Err(Error::PeerMisbehaved(format!(
                "frame of {} bytes exceeds the limit of {limit}",
                frame.len()
            )));
        }
        self.meter.add_received(frame.len());
        Ok(frame)
    }

    async fn recv_into(&mut self, buf: &mut [u8]) -> Result<()> {
        let frame = self.next_frame().await?;
        if frame.len() != buf.len() {
            return Err(Error::PeerMisbehaved(format!(
                "expected a frame of {} bytes, got {}",
                buf.len(),
                frame.len()
            )));
        }
        buf.copy_from_slice(&frame);
        self.meter.add_received(frame.len());
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn set_label(&mut self, label: &str) {
        self.meter.set_label(label);
    }

    fn meter(&self) -> &Meter {
        &self.meter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_arrive_in_order_and_are_metered() {
        let (mut a, mut b) = memory_pair();
        a.set_label("offline");
        a.send(b"hello").await.unwrap();
        a.send(&[7u8; 1000]).await.unwrap();
        assert_eq!(b.recv(16).await.unwrap(), b"hello");
        let mut buf = vec![0u8; 1000];
        b.recv_into(&mut buf).await.unwrap();
        assert!(buf.iter().all(|&x| x == 7));
        assert_eq!(a.meter().total("offline").sent, 1005);
        assert_eq!(b.meter().total("").received, 1005);
    }

    #[tokio::test]
    async fn oversized_and_missized_frames_are_peer_errors() {
        let (mut a, mut b) = memory_pair();
        a.send(&[0u8; 100]).await.unwrap();
        assert!(matches!(b.recv(99).await, Err(Error::PeerMisbehaved(_))));
        a.send(&[0u8; 10]).await.unwrap();
        let mut buf = [0u8; 11];
        assert!(matches!(b.recv_into(&mut buf).await, Err(Error::PeerMisbehaved(_))));
        drop(a);
        assert!(matches!(b.recv(10).await, Err(Error::Closed)));
    }
}
