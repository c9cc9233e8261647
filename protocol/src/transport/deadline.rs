//! Absolute per-phase deadlines over any [`Channel`].
//!
//! A stream channel's idle timeout restarts on every byte, so a peer that
//! sends one byte (or one frame) per interval never trips it. [`Deadlined`]
//! adds a deadline that only the end of the phase can lift: it follows the
//! metering labels the drivers set (`session/handshake`, `session/request`,
//! `offline/...`, `online/...`), starts a phase's clock when the label moves
//! into that phase, and fails every operation that would end after the
//! phase's budget with [`Error::Deadline`]. Time spent computing between
//! messages counts too, so budgets must allow for the slowest honest party.

use std::time::Duration;

use tokio::time::Instant;

use super::{Channel, Meter};
use crate::{Error, Result};

/// A phase of a session, as the metering labels name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The session handshake (`session/handshake`).
    Handshake,
    /// Waiting for the client's next request (`session/request`).
    Request,
    /// An offline phase (`offline/...`).
    Offline,
    /// An online phase (`online/...`).
    Online,
}

impl Phase {
    /// The phase a metering label belongs to, if any.
    pub fn of_label(label: &str) -> Option<Self> {
        match label.split_once('/').map_or(label, |(p, _)| p) {
            "offline" => Some(Phase::Offline),
            "online" => Some(Phase::Online),
            _ if label == "session/handshake" => Some(Phase::Handshake),
            _ if label == "session/request" => Some(Phase::Request),
            _ => None,
        }
    }

    /// `handshake`, `request`, `offline` or `online`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Handshake => "handshake",
            Phase::Request => "request",
            Phase::Offline => "offline",
            Phase::Online => "online",
        }
    }
}

/// The time budget of each phase, from the moment the phase starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseDeadlines {
    /// The session handshake (architecture out, public key back).
    pub handshake: Duration,
    /// Waiting for a whole request frame between inferences (the session's
    /// idle allowance).
    pub request: Duration,
    /// One offline phase.
    pub offline: Duration,
    /// One online phase.
    pub online: Duration,
}

impl PhaseDeadlines {
    /// The budget of `phase`.
    pub fn of(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Handshake => self.handshake,
            Phase::Request => self.request,
            Phase::Offline => self.offline,
            Phase::Online => self.online,
        }
    }
}

/// A channel whose operations fail once the current phase has run past
/// its budget ([`PhaseDeadlines`]). Before the first phase label it applies
/// the handshake budget.
pub struct Deadlined<C> {
    inner: C,
    budgets: PhaseDeadlines,
    phase: Phase,
    deadline: Instant,
}

impl<C: Channel> Deadlined<C> {
    /// Wraps `inner`; the handshake clock starts now.
    pub fn new(inner: C, budgets: PhaseDeadlines) -> Self {
        Self {
            inner,
            budgets,
            phase: Phase::Handshake,
            deadline: Instant::now() + budgets.handshake,
        }
    }

    /// The phase whose clock is running.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The wrapped channel.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The wrapped channel, for operations that must ignore the deadline
    /// (a last abort record after the deadline passed).
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    fn expired(&self) -> Error {
        Error::Deadline {
            phase: self.phase.as_str(),
            limit: self.budgets.of(self.phase),
        }
    }

    async fn timed<T>(
        deadline: Instant,
        err: Error,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout_at(deadline, op).await {
            Ok(r) => r,
            Err(_) => Err(err),
        }
    }
}

impl<C: Channel> Channel for Deadlined<C> {
    async fn send(&mut self, frame: &[u8]) -> Result<()> {
        let (d, e) = (self.deadline, self.expired());
        Self::timed(d, e, self.inner.send(frame)).await
    }

    async fn recv(&mut self, limit: usize) -> Result<Vec<u8>> {
        let (d, e) = (self.deadline, self.expired());
        Self::timed(d, e, self.inner.recv(limit)).await
    }

    async fn recv_into(&mut self, buf: &mut [u8]) -> Result<()> {
        let (d, e) = (self.deadline, self.expired());
        Self::timed(d, e, self.inner.recv_into(buf)).await
    }

    async fn flush(&mut self) -> Result<()> {
        let (d, e) = (self.deadline, self.expired());
        Self::timed(d, e, self.inner.flush()).await
    }

    async fn close(&mut self) -> Result<()> {
        let (d, e) = (self.deadline, self.expired());
        Self::timed(d, e, self.inner.close()).await
    }

    async fn abort(&mut self, reason: &str) -> Result<()> {
        // The peer should hear why, even after a deadline: bounded by the
        // inner channel's write timeout.
        self.inner.abort(reason).await
    }

    fn set_label(&mut self, label: &str) {
        if let Some(p) = Phase::of_label(label)
            && p != self.phase
        {
            self.phase = p;
            self.deadline = Instant::now() + self.budgets.of(p);
        }
        self.inner.set_label(label)
    }

    fn meter(&self) -> &Meter {
        self.inner.meter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::memory_pair;

    fn budgets(offline: Duration) -> PhaseDeadlines {
        PhaseDeadlines {
            handshake: Duration::from_secs(60),
            request: Duration::from_secs(60),
            offline,
            online: Duration::from_secs(60),
        }
    }

    #[test]
    fn labels_map_to_phases() {
        assert_eq!(Phase::of_label("offline/setup"), Some(Phase::Offline));
        assert_eq!(Phase::of_label("online/conv1"), Some(Phase::Online));
        assert_eq!(Phase::of_label("session/request"), Some(Phase::Request));
        assert_eq!(Phase::of_label("session/handshake"), Some(Phase::Handshake));
        assert_eq!(Phase::of_label("bench"), None);
        assert_eq!(Phase::of_label("offlineish/x"), None);
    }

    /// A peer that sends one frame every 100 ms keeps an idle timeout happy
    /// forever, but not the offline deadline.
    #[tokio::test(start_paused = true)]
    async fn a_trickling_peer_hits_the_phase_deadline() {
        let (a, mut b) = memory_pair();
        let mut a = Deadlined::new(a, budgets(Duration::from_secs(1)));
        a.set_label("offline/setup");
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if b.send(&[1]).await.is_err() {
                    break;
                }
            }
        });
        let mut got = 0;
        let err = loop {
            match a.recv(1).await {
                Ok(_) => got += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, Error::Deadline { phase: "offline", limit } if limit == Duration::from_secs(1)),
            "{err:?}"
        );
        assert!((5..=10).contains(&got), "{got} frames before the deadline");
        // Every operation keeps failing within this phase.
        assert!(matches!(a.recv(1).await, Err(Error::Deadline { .. })));
        // A new phase starts a new clock.
        a.set_label("online/x");
        assert_eq!(a.phase(), Phase::Online);
        assert!(a.recv(1).await.is_ok());
        trickle.abort();
    }

    /// Labels within one phase do not restart its clock.
    #[tokio::test(start_paused = true)]
    async fn layer_labels_do_not_restart_the_clock() {
        let (a, _b) = memory_pair();
        let mut a = Deadlined::new(a, budgets(Duration::from_secs(1)));
        a.set_label("offline/setup");
        tokio::time::sleep(Duration::from_millis(900)).await;
        a.set_label("offline/conv1");
        let err = a.recv(1).await.unwrap_err();
        assert!(matches!(err, Error::Deadline { .. }), "{err:?}");
    }
}
