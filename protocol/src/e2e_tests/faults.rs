//! Faulty channels: truncated messages, closed connections and a peer
//! that disconnects mid-phase are errors on both sides, never hangs.

use super::*;

/// A channel that misbehaves on purpose.
pub(super) struct Faulty<C> {
    pub(super) inner: Option<C>,
    pub(super) fault: Fault,
    pub(super) count: usize,
    pub(super) dead: Meter,
}

#[derive(Clone, Copy)]
pub(super) enum Fault {
    /// Cut one byte off the n-th frame sent under an `online/<layer>` label.
    TruncateOnline(usize),
    /// Hang up when sending the n-th frame under an `offline/<layer>` label.
    DisconnectOffline(usize),
}

impl<C: Channel> Faulty<C> {
    pub(super) fn new(inner: C, fault: Fault) -> Self {
        Self {
            inner: Some(inner),
            fault,
            count: 0,
            dead: Meter::default(),
        }
    }
}

impl<C: Channel> Channel for Faulty<C> {
    async fn send(&mut self, frame: &[u8]) -> Result<()> {
        let label = self.meter().label().to_string();
        let layer = label
            .split_once('/')
            .filter(|(_, l)| !matches!(*l, "setup" | "input" | "output"));
        match (self.fault, layer) {
            (Fault::TruncateOnline(n), Some(("online", _))) => {
                self.count += 1;
                if self.count == n {
                    return self
                        .inner
                        .as_mut()
                        .ok_or(Error::Closed)?
                        .send(&frame[..frame.len() - 1])
                        .await;
                }
            }
            (Fault::DisconnectOffline(n), Some(("offline", _))) => {
                self.count += 1;
                if self.count >= n {
                    self.inner = None;
                    return Err(Error::Closed);
                }
            }
            _ => {}
        }
        self.inner.as_mut().ok_or(Error::Closed)?.send(frame).await
    }
    async fn recv(&mut self, limit: usize) -> Result<Vec<u8>> {
        self.inner.as_mut().ok_or(Error::Closed)?.recv(limit).await
    }
    async fn recv_into(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner
            .as_mut()
            .ok_or(Error::Closed)?
            .recv_into(buf)
            .await
    }
    async fn flush(&mut self) -> Result<()> {
        self.inner.as_mut().ok_or(Error::Closed)?.flush().await
    }
    fn set_label(&mut self, label: &str) {
        self.dead.set_label(label);
        if let Some(c) = &mut self.inner {
            c.set_label(label);
        }
    }
    fn meter(&self) -> &Meter {
        self.inner.as_ref().map_or(&self.dead, |c| c.meter())
    }
}

/// One inference where the server's or the client's channel is faulty.
async fn faulty_run(fault_on_server: bool, fault: Fault) -> (Result<()>, Result<()>) {
    faulty_run_in(fault_on_server, fault, ReluMode::Gc).await
}

async fn faulty_run_in(
    fault_on_server: bool,
    fault: Fault,
    mode: ReluMode,
) -> (Result<()>, Result<()>) {
    let model = model_for("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)", 9, |_| {});
    let x = random_input(&model, 90);
    let (cs, cc) = memory_pair();
    let (mut cs, mut cc) = if fault_on_server {
        (
            Faulty::new(cs, fault),
            Faulty::new(cc, Fault::TruncateOnline(usize::MAX)),
        )
    } else {
        (
            Faulty::new(cs, Fault::TruncateOnline(usize::MAX)),
            Faulty::new(cc, fault),
        )
    };
    tokio::join!(
        async move {
            let mut s =
                ServerSession::handshake_with_rng(&mut cs, &model, ChaCha20Rng::seed_from_u64(9))
                    .await?;
            s.serve_one(&mut cs).await.map(|_| ())
        },
        async move {
            let mut c = ClientSession::handshake_with_rng(
                &mut cc,
                &ClientConfig {
                    relu: mode,
                    ..ClientConfig::default()
                },
                ChaCha20Rng::seed_from_u64(10),
            )
            .await?;
            c.infer(&mut cc, &x).await.map(|_| ())
        }
    )
}

/// A frame one byte short of the size the protocol fixes at that point.
pub(super) fn one_byte_short<T: std::fmt::Debug>(r: &Result<T>) -> bool {
    matches!(
        r,
        Err(Error::PeerMisbehaved(Misbehavior::FrameSize { expected, got })) if got + 1 == *expected
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_online_messages_are_peer_errors() {
    // The client's masked activation output, then the server's labels, cut short.
    for n in [1, 3] {
        let (s, c) = faulty_run(false, Fault::TruncateOnline(n)).await;
        assert!(one_byte_short(&s), "{s:?}");
        assert!(matches!(c, Err(Error::Closed)), "{c:?}");
        let (s, c) = faulty_run(true, Fault::TruncateOnline(n)).await;
        assert!(one_byte_short(&c), "{c:?}");
        assert!(matches!(s, Err(Error::Closed)), "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_ot_mode_messages_are_peer_errors() {
    // Client side: its masked input, then its first correction bits; server
    // side: its first leaf tables, then its first tree messages.
    for n in [1, 2, 3] {
        let (s, c) = faulty_run_in(false, Fault::TruncateOnline(n), ReluMode::Ot).await;
        assert!(one_byte_short(&s), "{n}: {s:?}");
        assert!(matches!(c, Err(Error::Closed)), "{n}: {c:?}");
        let (s, c) = faulty_run_in(true, Fault::TruncateOnline(n), ReluMode::Ot).await;
        assert!(one_byte_short(&c), "{n}: {c:?}");
        assert!(matches!(s, Err(Error::Closed)), "{n}: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_offline_is_closed_on_the_other_side() {
    // GC: the client hangs up in an HE upload, then in an OT extension; the
    // server hangs up mid-tables. OT mode: the same frames carry HE uploads
    // and the random OTs of both directions.
    for mode in BOTH {
        for (on_server, n) in [(false, 1), (false, 4), (true, 3), (true, 10)] {
            let (s, c) = faulty_run_in(on_server, Fault::DisconnectOffline(n), mode).await;
            assert!(matches!(s, Err(Error::Closed)), "{mode}, server: {s:?}");
            assert!(matches!(c, Err(Error::Closed)), "{mode}, client: {c:?}");
        }
    }
}
