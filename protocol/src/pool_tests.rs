//! Offline phases run ahead of online phases over [`ServerSession::serve_one`]:
//! the server's map of pending inferences, its bound, single use of every
//! inference number, and the client's storage per entry as planned; each
//! in both ReLU modes.

use pi_models::network::Network;
use pi_models::weights::{init_weights, weights_from_bytes};
use pi_models::{NetSpec, QuantModel, RingParams};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::e2e_tests::{oracle, random_input};
use crate::framing::{TAG_OFFLINE, TAG_ONLINE, send_request};
use crate::session::{
    ClientConfig, ClientSession, ReluMode, ServerLimits, ServerModel, ServerSession,
};
use crate::transport::{Channel, memory_pair};
use crate::{Error, Misbehavior, Result};

const TINY: &str = "resnet18(m=2,input=8,classes=3,phi=1-1-1-1)";

fn model(seed: u64) -> ServerModel {
    let net = Network::new(&NetSpec::parse(TINY).unwrap());
    let folded = weights_from_bytes(&init_weights(&net, seed).unwrap(), &net).unwrap();
    let quant = QuantModel::quantize(&net, &folded, RingParams::default()).unwrap();
    ServerModel::new(net, quant, None)
        .unwrap()
        .with_relu_modes(&MODES)
        .unwrap()
}

const MODES: [ReluMode; 2] = [ReluMode::Gc, ReluMode::Ot];

fn config(relu: ReluMode) -> ClientConfig {
    ClientConfig {
        relu,
        ..ClientConfig::default()
    }
}

/// Serves with `limits` until the client closes or something fails;
/// returns the reports so far and how it ended. The channel is dropped on
/// return, so the client sees the connection close.
async fn serve<C: Channel>(
    mut ch: C,
    model: &ServerModel,
    limits: ServerLimits,
) -> (Vec<crate::ServerReport>, Result<()>) {
    let mut out = Vec::new();
    let mut s =
        match ServerSession::handshake_with(&mut ch, model, &limits, ChaCha20Rng::seed_from_u64(1))
            .await
        {
            Ok(s) => s,
            Err(e) => return (out, Err(e)),
        };
    loop {
        match s.serve_one(&mut ch).await {
            Ok(Some(r)) => out.push(r),
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preprocessed_inferences_are_spent_in_any_order_and_bit_exact() {
    let model = model(3);
    for mode in MODES {
        spent_in_any_order(&model, mode).await;
    }
}

async fn spent_in_any_order(model: &ServerModel, mode: ReluMode) {
    let xs: Vec<Vec<u64>> = (0..3).map(|i| random_input(model, 30 + i)).collect();
    let (cs, mut cc) = memory_pair();
    let limits = ServerLimits {
        max_pending: 3,
        ..ServerLimits::default()
    };
    let ((reports, served), client) = tokio::join!(serve(cs, model, limits), async {
        let mut c = ClientSession::handshake_with_rng(
            &mut cc,
            &config(mode),
            ChaCha20Rng::seed_from_u64(2),
        )
        .await?;
        assert_eq!(c.max_pending(), 3);
        let mut pre = Vec::new();
        for _ in 0..3 {
            pre.push(c.preprocess(&mut cc).await?);
        }
        assert_eq!(c.pending(), 3);
        // The server's bound, enforced on the client before anything is sent.
        let refused = c.preprocess(&mut cc).await;
        assert!(
            matches!(refused, Err(Error::BadInput(ref m)) if m.contains("at most 3")),
            "{refused:?}"
        );
        // What a pool budgets with, before any offline phase, is what each
        // entry stores.
        let planned = c.storage_per_inference();
        for p in &pre {
            assert_eq!(p.storage_bytes(), planned, "{mode}");
        }
        let (p0, p1, p2) = {
            let mut it = pre.into_iter();
            (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
        };
        // Spent out of order, each with its own input.
        let r2 = c.online(&mut cc, p2, &xs[2]).await?;
        let r0 = c.online(&mut cc, p0, &xs[0]).await?;
        assert_eq!(c.pending(), 1);
        // A slot is free again.
        let p3 = c.preprocess(&mut cc).await?;
        let r1 = c.online(&mut cc, p1, &xs[1]).await?;
        let r3 = c.online(&mut cc, p3, &xs[0]).await?;
        assert_eq!(c.pending(), 0);
        c.close(&mut cc).await?;
        Ok::<_, Error>(vec![r2, r0, r1, r3])
    });
    served.unwrap();
    let client = client.unwrap();
    let order: Vec<u64> = client.iter().map(|r| r.inference).collect();
    assert_eq!(order, [2, 0, 1, 3]);
    for (r, x) in client.iter().zip([&xs[2], &xs[0], &xs[1], &xs[0]]) {
        assert_eq!(
            r.logits_fixed,
            oracle(model, x),
            "{mode}, inference {}",
            r.inference
        );
    }
    assert_eq!(
        reports.iter().map(|r| r.inference).collect::<Vec<_>>(),
        order
    );
    for (c, s) in client.iter().zip(&reports) {
        assert_eq!(c.offline.bytes_sent, s.offline.bytes_received);
        assert_eq!(c.online.bytes_sent, s.online.bytes_received);
        assert_eq!(c.online.bytes_received, s.online.bytes_sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_online_request_for_the_same_inference_is_refused() {
    let model = model(4);
    for mode in MODES {
        replayed(&model, mode).await;
    }
}

async fn replayed(model: &ServerModel, mode: ReluMode) {
    let x = random_input(model, 40);
    let (cs, mut cc) = memory_pair();
    let ((reports, served), client) =
        tokio::join!(serve(cs, model, ServerLimits::default()), async {
            let mut c = ClientSession::handshake_with_rng(
                &mut cc,
                &config(mode),
                ChaCha20Rng::seed_from_u64(5),
            )
            .await?;
            let p0 = c.preprocess(&mut cc).await?;
            let _p1 = c.preprocess(&mut cc).await?;
            c.online(&mut cc, p0, &x).await?;
            // A client replaying inference 0 (the typed API cannot: the
            // material was moved), then what follows an online request.
            send_request(&mut cc, TAG_ONLINE, 0).await?;
            cc.flush().await?;
            let after = cc.recv(1 << 20).await;
            Ok::<_, Error>(after)
        });
    assert_eq!(reports.len(), 1);
    assert!(
        matches!(
            served,
            Err(Error::PeerMisbehaved(Misbehavior::NotPending(0)))
        ),
        "{mode}: {served:?}"
    );
    // The server hung up instead of answering.
    let after = client.unwrap();
    assert!(matches!(after, Err(Error::Closed)), "{mode}: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_enforces_its_pending_bound() {
    let model = model(5);
    for mode in MODES {
        pending_bound(&model, mode).await;
    }
}

async fn pending_bound(model: &ServerModel, mode: ReluMode) {
    let (cs, mut cc) = memory_pair();
    let ((reports, served), _) = tokio::join!(
        serve(
            cs,
            model,
            ServerLimits {
                max_pending: 1,
                ..ServerLimits::default()
            }
        ),
        async {
            let mut c = ClientSession::handshake_with_rng(
                &mut cc,
                &config(mode),
                ChaCha20Rng::seed_from_u64(6),
            )
            .await?;
            let _p0 = c.preprocess(&mut cc).await?;
            // Bypass the client's own check: ask for inference 1 anyway.
            send_request(&mut cc, TAG_OFFLINE, 1).await?;
            cc.flush().await?;
            cc.recv(1 << 20).await
        }
    );
    assert!(reports.is_empty());
    assert!(
        matches!(
            served,
            Err(Error::PeerMisbehaved(Misbehavior::PendingLimit {
                id: 1,
                pending: 1,
                limit: 1
            }))
        ),
        "{mode}: {served:?}"
    );
}

#[tokio::test]
async fn a_zero_bound_is_refused_before_the_handshake() {
    let model = model(6);
    let (mut cs, _cc) = memory_pair();
    let r = ServerSession::handshake_with(
        &mut cs,
        &model,
        &ServerLimits {
            max_pending: 0,
            ..ServerLimits::default()
        },
        ChaCha20Rng::seed_from_u64(1),
    )
    .await;
    assert!(
        matches!(r, Err(Error::BadInput(ref m)) if m.contains("at least one preprocessed inference")),
        "{:?}",
        r.err()
    );
}
