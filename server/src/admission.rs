//! Admission control: who may hold what while connecting and while served.
//!
//! Two stages, each with its own bounds, so that nothing an unauthenticated
//! peer does can delay a real client:
//! 1. **Pending handshakes** (TCP accepted, TLS and transport hello not yet
//!    done): at most [`Caps::handshakes`] in all and
//!    [`Caps::handshakes_per_ip`] per source address. A newcomer is always
//!    let in; when a cap is reached the *oldest* pending handshake (of that
//!    address, or overall) is evicted. Silent or dripping sockets thus age
//!    out as soon as newer connections arrive, while a real client's
//!    handshake, which takes milliseconds, is the newest and survives. Each
//!    handshake also has an absolute deadline (the listener's).
//! 2. **Sessions** (authenticated by a client certificate): at most
//!    [`Caps::sessions`] at once and [`Caps::per_client`] per client
//!    certificate subject; when all slots are taken a client waits in a
//!    queue of at most [`Caps::queue`] for at most [`Caps::queue_wait`],
//!    then is told the server is busy.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// The bounds of [`Admission`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Concurrent sessions.
    pub sessions: usize,
    /// Concurrent sessions (and queued clients) per client certificate subject.
    pub per_client: usize,
    /// Authenticated clients waiting for a session slot.
    pub queue: usize,
    /// How long a queued client waits before it is told the server is busy.
    pub queue_wait: Duration,
    /// Pending handshakes in all.
    pub handshakes: usize,
    /// Pending handshakes per source address.
    pub handshakes_per_ip: usize,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Pending handshakes by age (key order): source and eviction signal.
    pending: BTreeMap<u64, (IpAddr, oneshot::Sender<()>)>,
    per_ip: HashMap<IpAddr, usize>,
    /// Sessions and queued clients per certificate subject.
    per_client: HashMap<String, usize>,
    queued: usize,
}

/// Shared admission state of one listener.
pub struct Admission {
    caps: Caps,
    slots: Arc<Semaphore>,
    state: Mutex<State>,
}

/// Why an authenticated client is turned away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every session slot is taken (and the queue is full or the wait ran out).
    Busy {
        /// The session cap.
        sessions: usize,
        /// How long the client waited in the queue.
        waited: Duration,
    },
    /// This client certificate already holds its share of sessions.
    PerClient {
        /// The certificate's subject name.
        client: String,
        /// The per-client cap.
        cap: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Busy { sessions, waited } if waited.is_zero() => {
                write!(f, "server busy ({sessions} sessions)")
            }
            Refusal::Busy { sessions, waited } => write!(
                f,
                "server busy ({sessions} sessions; waited {} s for a slot)",
                waited.as_secs_f64()
            ),
            Refusal::PerClient { client, cap } => write!(
                f,
                "client {client:?} already has {cap} session(s) open, the most this server allows per client"
            ),
        }
    }
}

impl Admission {
    /// Fresh state under `caps` (every cap at least 1, except `queue`).
    pub fn new(caps: Caps) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(caps.sessions)),
            caps,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under a panic (plain counters), so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a pending handshake from `ip`, evicting the oldest pending
    /// handshake of `ip` or overall if a cap is reached. Returns the ticket
    /// (dropping it ends the registration) and the number evicted.
    pub fn enter_handshake(self: &Arc<Self>, ip: IpAddr) -> (HandshakeTicket, usize) {
        let mut st = self.lock();
        let mut evicted = 0;
        if st.per_ip.get(&ip).copied().unwrap_or(0) >= self.caps.handshakes_per_ip
            && let Some(&oldest) = st
                .pending
                .iter()
                .find(|(_, (from, _))| *from == ip)
                .map(|(k, _)| k)
        {
            evict(&mut st, oldest);
            evicted += 1;
        }
        if st.pending.len() >= self.caps.handshakes
            && let Some(&oldest) = st.pending.keys().next()
        {
            evict(&mut st, oldest);
            evicted += 1;
        }
        let id = st.next;
        st.next += 1;
        let (tx, rx) = oneshot::channel();
        st.pending.insert(id, (ip, tx));
        *st.per_ip.entry(ip).or_default() += 1;
        (
            HandshakeTicket {
                admission: self.clone(),
                id,
                evicted: rx,
            },
            evicted,
        )
    }

    /// Pending handshakes now (for logs and tests).
    pub fn pending_handshakes(&self) -> usize {
        self.lock().pending.len()
    }

    /// Takes a session slot for `client`: at once if one is free, else after
    /// waiting in the bounded queue.
    pub async fn enter_session(self: &Arc<Self>, client: &str) -> Result<SessionTicket, Refusal> {
        {
            let mut st = self.lock();
            let n = st.per_client.get(client).copied().unwrap_or(0);
            if n >= self.caps.per_client {
                return Err(Refusal::PerClient {
                    client: client.to_string(),
                    cap: self.caps.per_client,
                });
            }
            st.per_client.insert(client.to_string(), n + 1);
        }
        let client_guard = ClientGuard {
            admission: self.clone(),
            client: client.to_string(),
        };
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(SessionTicket {
                _permit: permit,
                _client: client_guard,
            });
        }
        let busy = |waited| Refusal::Busy {
            sessions: self.caps.sessions,
            waited,
        };
        {
            let mut st = self.lock();
            if st.queued >= self.caps.queue {
                return Err(busy(Duration::ZERO));
            }
            st.queued += 1;
        }
        let _queued = QueueGuard(self.clone());
        match tokio::time::timeout(self.caps.queue_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(SessionTicket {
                _permit: permit,
                _client: client_guard,
            }),
            _ => Err(busy(self.caps.queue_wait)),
        }
    }
}

fn evict(st: &mut State, id: u64) {
    if let Some((ip, tx)) = st.pending.remove(&id) {
        let _ = tx.send(());
        release_ip(st, ip);
    }
}

fn release_ip(st: &mut State, ip: IpAddr) {
    if let Some(n) = st.per_ip.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            st.per_ip.remove(&ip);
        }
    }
}

/// A pending handshake's registration; dropping it frees its place.
pub struct HandshakeTicket {
    admission: Arc<Admission>,
    id: u64,
    evicted: oneshot::Receiver<()>,
}

impl HandshakeTicket {
    /// Resolves when a newer connection evicted this handshake.
    pub async fn evicted(&mut self) {
        if (&mut self.evicted).await.is_err() {
            // Never evicted: the sender lives in the map until we leave.
            std::future::pending::<()>().await
        }
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        let mut st = self.admission.lock();
        if let Some((ip, _)) = st.pending.remove(&self.id) {
            release_ip(&mut st, ip);
        }
    }
}

struct ClientGuard {
    admission: Arc<Admission>,
    client: String,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut st = self.admission.lock();
        if let Some(n) = st.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                st.per_client.remove(&self.client);
            }
        }
    }
}

struct QueueGuard(Arc<Admission>);

impl Drop for QueueGuard {
    fn drop(&mut self) {
        self.0.lock().queued -= 1;
    }
}

/// A session slot and the client's share; dropping it frees both.
pub struct SessionTicket {
    _permit: OwnedSemaphorePermit,
    _client: ClientGuard,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Caps {
        Caps {
            sessions: 2,
            per_client: 1,
            queue: 1,
            queue_wait: Duration::from_secs(5),
            handshakes: 4,
            handshakes_per_ip: 2,
        }
    }

    #[test]
    fn handshakes_evict_the_oldest_of_the_same_address_then_overall() {
        let a = Arc::new(Admission::new(caps()));
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let (mut t1, e) = a.enter_handshake(ip(1));
        assert_eq!(e, 0);
        let (_t2, _) = a.enter_handshake(ip(1));
        // A third from the same address evicts the first.
        let (_t3, e) = a.enter_handshake(ip(1));
        assert_eq!(e, 1);
        assert!(t1.evicted.try_recv().is_ok());
        assert_eq!(a.pending_handshakes(), 2);
        let (_t4, _) = a.enter_handshake(ip(2));
        let (_t5, _) = a.enter_handshake(ip(3));
        // The global cap (4) evicts the oldest overall: t2.
        let (t6, e) = a.enter_handshake(ip(4));
        assert_eq!(e, 1);
        assert_eq!(a.pending_handshakes(), 4);
        drop(t6);
        drop(t1);
        assert_eq!(a.pending_handshakes(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_queue_then_refuse_and_cap_each_client() {
        let a = Arc::new(Admission::new(caps()));
        let s1 = a.enter_session("alice").await.unwrap();
        assert_eq!(
            a.enter_session("alice").await.err(),
            Some(Refusal::PerClient {
                client: "alice".into(),
                cap: 1
            })
        );
        let _s2 = a.enter_session("bob").await.unwrap();
        // All slots taken: carol queues and gets the slot alice frees.
        let a2 = a.clone();
        let carol = tokio::spawn(async move { a2.enter_session("carol").await });
        while a.lock().queued == 0 {
            tokio::task::yield_now().await;
        }
        // The queue (1) is full: dave is refused at once.
        let r = a.enter_session("dave").await.err().unwrap();
        assert_eq!(r.to_string(), "server busy (2 sessions)");
        drop(s1);
        let _s3 = carol.await.unwrap().unwrap();
        // Nobody frees a slot: erin waits out the queue and is refused.
        let r = a.enter_session("erin").await.err().unwrap();
        assert!(r.to_string().contains("waited 5 s"), "{r}");
    }
}
