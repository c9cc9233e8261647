//! The server's byte budget for preprocessed material held across all of
//! its sessions.
//!
//! [`ServerLimits::max_pending`](super::ServerLimits::max_pending) bounds the
//! inferences one session keeps preprocessed; a server with many sessions
//! also needs one bound on their sum. A [`PendingBudget`] is that bound:
//! clone it into the limits of every session, and each offline phase
//! reserves the bytes its material will hold (known from the plan,
//! [`ServerModel::pending_bytes_per_inference`](super::ServerModel::pending_bytes_per_inference))
//! before it starts. The reservation travels inside the material and is
//! released when the material is dropped: consumed by its online phase,
//! dropped unused, or dropped with its session. An offline request that
//! does not fit is refused with [`Error::Busy`] before any work is done.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// A byte budget shared by sessions (cheap to clone; clones share the count).
#[derive(Clone)]
pub struct PendingBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: u64,
    used: AtomicU64,
}

impl PendingBudget {
    /// A budget of `limit` bytes, none of them reserved.
    pub fn new(limit: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                used: AtomicU64::new(0),
            }),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes reserved by material alive now.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Reserves `bytes` until the returned guard is dropped.
    ///
    /// # Errors
    /// [`Error::Busy`] if they do not fit beside what is reserved.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<Reservation> {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .map_err(|used| {
                Error::Busy(format!(
                    "the server's memory budget for preprocessed material is full \
                     ({used} of {limit} B held by pending inferences, one more needs {bytes} B); \
                     run the online phase of a preprocessed inference or retry later"
                ))
            })?;
        Ok(Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

impl std::fmt::Debug for PendingBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .finish()
    }
}

/// Two budgets are equal when they are the same shared count.
impl PartialEq for PendingBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for PendingBudget {}

/// Bytes held in a [`PendingBudget`] until drop.
pub(crate) struct Reservation {
    budget: PendingBudget,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .inner
            .used
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_count_until_dropped_and_refuse_beyond_the_limit() {
        let b = PendingBudget::new(1000);
        let r1 = b.reserve(600).unwrap();
        assert_eq!(b.used(), 600);
        match b.reserve(401) {
            Err(Error::Busy(reason)) => {
                assert!(reason.contains("600 of 1000 B"), "{reason}");
                assert!(reason.contains("needs 401 B"), "{reason}");
            }
            other => panic!("expected Busy, got {:?}", other.map(|_| ())),
        }
        assert_eq!(b.used(), 600, "a refused reservation holds nothing");
        let r2 = b.clone().reserve(400).unwrap();
        assert_eq!(b.used(), 1000);
        drop(r1);
        assert_eq!(b.used(), 400);
        drop(r2);
        assert_eq!(b.used(), 0);
        assert!(matches!(b.reserve(u64::MAX), Err(Error::Busy(_))));
        assert_eq!(b, b.clone());
        assert_ne!(b, PendingBudget::new(1000));
    }

    /// Two sessions share one budget that fits three inferences: the third
    /// pending one fits, the fourth is refused before any offline work with
    /// the figures; online phases and the end of a session release their
    /// bytes; the planned size is what the material holds, in both modes;
    /// results stay bit-exact.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_budget_bounds_the_pending_material_of_all_sessions() {
        use pi_models::network::Network;
        use pi_models::weights::{init_weights, weights_from_bytes};
        use pi_models::{NetSpec, QuantModel, RingParams};
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;

        use crate::e2e_tests::{oracle, random_input};
        use crate::session::{
            ClientConfig, ClientSession, ReluMode, ServerLimits, ServerModel, ServerSession,
        };
        use crate::transport::memory_pair;

        let net =
            Network::new(&NetSpec::parse("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)").unwrap());
        let folded = weights_from_bytes(&init_weights(&net, 5).unwrap(), &net).unwrap();
        let quant = QuantModel::quantize(&net, &folded, RingParams::default()).unwrap();
        let model = ServerModel::new(net, quant, None)
            .unwrap()
            .with_relu_modes(&[ReluMode::Gc, ReluMode::Ot])
            .unwrap();
        let x = random_input(&model, 9);
        let want = oracle(&model, &x);
        for mode in [ReluMode::Gc, ReluMode::Ot] {
            let per = model.pending_bytes_per_inference(mode).unwrap();
            let budget = PendingBudget::new(3 * per + per / 2);
            let limits = ServerLimits {
                max_pending: 4,
                pending_bytes: Some(budget.clone()),
            };
            let config = ClientConfig {
                relu: mode,
                ..ClientConfig::default()
            };
            // Session A preprocesses two inferences and keeps them pending.
            let (mut sa, mut ca) = memory_pair();
            let (server_a, client_a) = tokio::join!(
                ServerSession::handshake_with(
                    &mut sa,
                    &model,
                    &limits,
                    ChaCha20Rng::seed_from_u64(1)
                ),
                ClientSession::handshake_with_rng(&mut ca, &config, ChaCha20Rng::seed_from_u64(2)),
            );
            let (mut server_a, mut client_a) = (server_a.unwrap(), client_a.unwrap());
            let mut held = Vec::new();
            for _ in 0..2 {
                let (s, c) =
                    tokio::join!(server_a.preprocess(&mut sa), client_a.preprocess(&mut ca));
                let s = s.unwrap();
                assert_eq!(s.storage_bytes(), per, "{mode}: planned = held");
                held.push((s, c.unwrap()));
            }
            assert_eq!(budget.used(), 2 * per);
            // Session B: one more fits, the next is refused.
            let (mut sb, mut cb) = memory_pair();
            let (server_b, client_b) = tokio::join!(
                ServerSession::handshake_with(
                    &mut sb,
                    &model,
                    &limits,
                    ChaCha20Rng::seed_from_u64(3)
                ),
                ClientSession::handshake_with_rng(&mut cb, &config, ChaCha20Rng::seed_from_u64(4)),
            );
            let (mut server_b, mut client_b) = (server_b.unwrap(), client_b.unwrap());
            let (s, c) = tokio::join!(server_b.preprocess(&mut sb), client_b.preprocess(&mut cb));
            let (s3, c3) = (s.unwrap(), c.unwrap());
            assert_eq!(budget.used(), 3 * per);
            let (refused, client_saw) = tokio::join!(
                async move {
                    let r = server_b.preprocess(&mut sb).await;
                    drop(sb); // the server ends the session
                    r
                },
                client_b.preprocess(&mut cb)
            );
            assert!(client_saw.is_err());
            match refused {
                Err(Error::Busy(reason)) => {
                    assert!(
                        reason.contains(&format!("one more needs {per} B")),
                        "{reason}"
                    )
                }
                other => panic!("{mode}: expected Busy, got {:?}", other.map(|_| ())),
            }
            assert_eq!(budget.used(), 3 * per, "a refusal reserves nothing");
            // Spending one of A's inferences releases its bytes; results are exact.
            let (s0, c0) = held.remove(0);
            let (rs, rc) = tokio::join!(
                server_a.online(&mut sa, s0),
                client_a.online(&mut ca, c0, &x)
            );
            rs.unwrap();
            assert_eq!(rc.unwrap().logits_fixed, want, "{mode}");
            assert_eq!(budget.used(), 2 * per);
            // Dropping a session's material (the session ends) releases the rest.
            drop((held, server_a, s3, c3, client_b));
            assert_eq!(budget.used(), 0, "{mode}");
        }
    }
}
