//! In-memory duplex for tests: two endpoints joined by bounded queues.
//!
//! Like a socket, each direction buffers a bounded amount: at most
//! [`QUEUE_FRAMES`] frames and [`QUEUE_BYTES`] payload bytes are in flight
//! before `send` waits for the peer to receive. Frames obey [`MAX_FRAME`]
//! exactly as on the wire, so a driver that passes over the duplex does not
//! fail over TCP for frame size alone.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use super::{Channel, MAX_FRAME, Meter};
use crate::{Error, Misbehavior, Result};

/// Frames in flight per direction before `send` waits, like a socket buffer.
pub const QUEUE_FRAMES: usize = 64;
/// Payload bytes in flight per direction before `send` waits (two maximal frames).
pub const QUEUE_BYTES: usize = 2 * MAX_FRAME;

/// One endpoint of an in-memory duplex made by [`memory_pair`].
pub struct MemoryChannel {
    tx: mpsc::Sender<Vec<u8>>,
    rx: mpsc::Receiver<Vec<u8>>,
    /// Byte budget of the outgoing direction: taken by `send`.
    send_budget: Arc<Semaphore>,
    /// Byte budget of the incoming direction: returned on receive.
    recv_budget: Arc<Semaphore>,
    meter: Meter,
}

/// Two connected in-memory endpoints.
pub fn memory_pair() -> (MemoryChannel, MemoryChannel) {
    let (tx_a, rx_b) = mpsc::channel(QUEUE_FRAMES);
    let (tx_b, rx_a) = mpsc::channel(QUEUE_FRAMES);
    let a_to_b = Arc::new(Semaphore::new(QUEUE_BYTES));
    let b_to_a = Arc::new(Semaphore::new(QUEUE_BYTES));
    (
        MemoryChannel {
            tx: tx_a,
            rx: rx_a,
            send_budget: a_to_b.clone(),
            recv_budget: b_to_a.clone(),
            meter: Meter::default(),
        },
        MemoryChannel {
            tx: tx_b,
            rx: rx_b,
            send_budget: b_to_a,
            recv_budget: a_to_b,
            meter: Meter::default(),
        },
    )
}

impl MemoryChannel {
    async fn next_frame(&mut self) -> Result<Vec<u8>> {
        let frame = self.rx.recv().await.ok_or(Error::Closed)?;
        self.recv_budget.add_permits(frame.len());
        Ok(frame)
    }
}

impl Drop for MemoryChannel {
    fn drop(&mut self) {
        // A peer blocked on our full incoming budget must see `Closed`, not hang.
        self.recv_budget.close();
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
        let bytes =
            u32::try_from(frame.len()).map_err(|_| Error::BadInput("frame too large".into()))?;
        self.send_budget
            .acquire_many(bytes)
            .await
            .map_err(|_| Error::Closed)?
            .forget();
        self.tx
            .send(frame.to_vec())
            .await
            .map_err(|_| Error::Closed)?;
        self.meter.add_sent(frame.len());
        Ok(())
    }

    async fn recv(&mut self, limit: usize) -> Result<Vec<u8>> {
        let frame = self.next_frame().await?;
        if frame.len() > limit.min(MAX_FRAME) {
            return Err(Misbehavior::FrameTooLarge {
                len: frame.len(),
                limit: limit.min(MAX_FRAME),
            }
            .into());
        }
        self.meter.add_received(frame.len());
        Ok(frame)
    }

    async fn recv_into(&mut self, buf: &mut [u8]) -> Result<()> {
        let frame = self.next_frame().await?;
        if frame.len() != buf.len() {
            return Err(Misbehavior::FrameSize {
                expected: buf.len(),
                got: frame.len(),
            }
            .into());
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
        assert!(matches!(
            b.recv_into(&mut buf).await,
            Err(Error::PeerMisbehaved(_))
        ));
        drop(a);
        assert!(matches!(b.recv(10).await, Err(Error::Closed)));
    }

    #[tokio::test]
    async fn frame_above_max_is_refused_locally() {
        let (mut a, _b) = memory_pair();
        let big = vec![0u8; MAX_FRAME + 1];
        assert!(matches!(a.send(&big).await, Err(Error::BadInput(_))));
    }

    #[tokio::test]
    async fn byte_budget_blocks_then_releases_and_closes() {
        let (mut a, mut b) = memory_pair();
        let frame = vec![1u8; MAX_FRAME];
        a.send(&frame).await.unwrap();
        a.send(&frame).await.unwrap();
        // The budget is spent: a third frame waits until `b` receives one.
        {
            let mut third = std::pin::pin!(a.send(&[2u8; 1]));
            assert!(futures_poll_once(third.as_mut()).is_none());
            assert_eq!(b.recv(MAX_FRAME).await.unwrap().len(), MAX_FRAME);
            third.await.unwrap();
        }
        // Spend the budget exactly, then drop the receiver: the blocked sender
        // sees Closed instead of waiting forever.
        a.send(&frame[1..]).await.unwrap();
        drop(b);
        assert!(matches!(a.send(&[3u8; 1]).await, Err(Error::Closed)));
    }

    /// Polls a future once with a no-op waker; `None` if it is pending.
    fn futures_poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
