//! The client's pool of preprocessed inferences (`pi_client::pool`) against a
//! real server over loopback TLS: material is used once, the byte budget
//! holds, and a burst drains the pool which then refills.

use std::collections::HashSet;
use std::time::Duration;

use pi_client::pool::{Pool, PoolConfig, answer};
use pi_protocol::transport::{ChannelConfig, TlsConnector};
use pi_protocol::{ClientConfig, ClientSession, ReluMode, ServerLimits};
use pi_tests::{Keys, MODES, RunningServer, TINY, TestModel, random_input, serve_config};

/// A session with the server, handed to a pool.
async fn pool(
    server: &RunningServer,
    keys: &Keys,
    config: PoolConfig,
) -> pi_protocol::Result<Pool> {
    pool_in(server, keys, config, ReluMode::Gc).await
}

/// A session in ReLU mode `relu`, handed to a pool.
async fn pool_in(
    server: &RunningServer,
    keys: &Keys,
    config: PoolConfig,
    relu: ReluMode,
) -> pi_protocol::Result<Pool> {
    let connector = TlsConnector::new(
        &keys.client(),
        ChannelConfig::with_timeouts(Duration::from_secs(60)),
    )?;
    let mut ch = connector
        .connect(server.addr.to_string().as_str(), "localhost")
        .await?;
    let cfg = ClientConfig {
        relu,
        ..ClientConfig::default()
    };
    let session = ClientSession::handshake(&mut ch, &cfg).await?;
    Pool::start(ch, session, config)
}

fn inputs(model: &TestModel, n: u64) -> Vec<(Vec<u64>, Vec<i64>)> {
    (0..n)
        .map(|seed| {
            let raw = random_input(&model.input_shape(), 100 + seed);
            let x = model
                .model
                .prepare_input(raw.data.clone(), &raw.shape)
                .unwrap();
            let q = pi_models::fixed::quantize_input(&x, model.quant.ring).unwrap();
            (q, model.oracle(&raw))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_drains_the_pool_which_then_refills_and_no_material_is_used_twice() {
    let model = TestModel::random(TINY, 21).both_modes();
    let keys = Keys::new();
    let mut config = serve_config(1, Duration::from_secs(60));
    config.limits = ServerLimits {
        max_pending: 4,
        ..ServerLimits::default()
    };
    let server = RunningServer::start(&model, &keys, config).await;
    for mode in MODES {
        burst(&server, &keys, &model, mode).await;
    }
    let summary = server.stop().await;
    assert_eq!((summary.inferences, summary.failed), (10, 0));
}

async fn burst(server: &RunningServer, keys: &Keys, model: &TestModel, mode: ReluMode) {
    let mut pool = pool_in(
        server,
        keys,
        PoolConfig {
            max_count: 2,
            ..PoolConfig::default()
        },
        mode,
    )
    .await
    .unwrap();
    assert_eq!(pool.state().capacity, 2);
    let full = pool.wait_for(2).await.unwrap();
    assert_eq!(
        (full.size, full.refills, full.background_refills),
        (2, 2, 2)
    );
    assert_eq!(full.bytes, 2 * full.entry_bytes);

    let xs = inputs(model, 5);
    let replies = pool
        .submit_burst(xs.iter().map(|(x, _)| x.clone()).collect())
        .await;
    let mut served = Vec::new();
    for r in replies {
        served.push(answer(r).await.unwrap());
    }
    // Two from the pool, then three that each waited for their own offline phase.
    let waited: Vec<bool> = served.iter().map(|s| s.waited_for_offline).collect();
    assert_eq!(waited, [false, false, true, true, true]);
    assert_eq!(served[1].pool.size, 0);
    for (s, (_, oracle)) in served.iter().zip(&xs) {
        assert_eq!(
            &s.report.logits_fixed, oracle,
            "{mode}, inference {}",
            s.report.inference
        );
        assert_eq!(s.report.relu_mode, mode);
        assert!(s.queueing_delay() <= s.latency());
    }
    // Every request used different material (inference numbers are unique;
    // the server would refuse a repeated one).
    let ids: HashSet<u64> = served.iter().map(|s| s.report.inference).collect();
    assert_eq!(ids.len(), 5);
    // Pool entries were made first (0, 1), then on demand (2, 3, 4).
    assert_eq!(
        served
            .iter()
            .map(|s| s.report.inference)
            .collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );

    // Idle again: the pool refills to its capacity, and no further.
    let refilled = pool.wait_for(2).await.unwrap();
    assert_eq!(refilled.size, 2);
    let last = pool.close().await.unwrap();
    assert_eq!(last.refills, 2 + 3 + 2);
    assert_eq!(last.background_refills, 4);
    assert!(last.refill_rate > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_respects_its_byte_budget_in_both_modes() {
    let model = TestModel::random(TINY, 22).both_modes();
    let keys = Keys::new();
    let mut config = serve_config(2, Duration::from_secs(60));
    config.limits = ServerLimits {
        max_pending: 8,
        ..ServerLimits::default()
    };
    let server = RunningServer::start(&model, &keys, config).await;
    for mode in MODES {
        byte_budget(&server, &keys, &model, mode).await;
    }
    let s = server.stop().await;
    assert_eq!(s.failed, 0);
}

/// The pool in `mode` holds as many entries as its byte budget allows:
/// its planned entry size is what an entry really stores, so a budget of
/// two and a half entries holds two, whatever happens.
async fn byte_budget(server: &RunningServer, keys: &Keys, model: &TestModel, mode: ReluMode) {
    // Too small for one entry: refused up front.
    let tiny = pool_in(
        server,
        keys,
        PoolConfig {
            max_bytes: 1000,
            ..PoolConfig::default()
        },
        mode,
    )
    .await;
    assert!(
        matches!(tiny, Err(pi_protocol::Error::BadInput(ref m)) if m.contains("cannot hold one")),
        "{mode}: {:?}",
        tiny.err()
    );

    // What one entry really stores, measured by an inference, against the plan.
    let xs = inputs(model, 4);
    let probe = pool_in(
        server,
        keys,
        PoolConfig {
            background: false,
            ..PoolConfig::default()
        },
        mode,
    )
    .await
    .unwrap();
    let planned = probe.state().entry_bytes;
    let served = probe.infer(xs[0].0.clone()).await.unwrap();
    probe.close().await.unwrap();
    let entry = served.report.client_storage_bytes;
    assert_eq!(served.report.relu_mode, mode);
    assert!(entry > 0);
    assert_eq!(
        planned, entry,
        "{mode}: planned entry size against what it stores"
    );

    let budget = 2 * entry + entry / 2;
    let mut pool = pool_in(
        server,
        keys,
        PoolConfig {
            max_bytes: budget,
            ..PoolConfig::default()
        },
        mode,
    )
    .await
    .unwrap();
    assert_eq!(pool.state().capacity, 2, "{mode}");
    let full = pool.wait_for(2).await.unwrap();
    assert!(full.bytes <= budget && full.size == 2);
    assert_eq!(full.bytes, 2 * entry);
    let mut ids = HashSet::new();
    for (x, oracle) in &xs {
        let s = pool.infer(x.clone()).await.unwrap();
        assert_eq!(&s.report.logits_fixed, oracle);
        assert_eq!(s.report.client_storage_bytes, entry);
        assert!(s.pool.bytes <= budget && s.pool.size <= 2, "{:?}", s.pool);
        assert!(ids.insert(s.report.inference));
    }
    let end = pool.close().await.unwrap();
    assert!(end.bytes <= budget);
    assert_eq!(end.capacity, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_input_costs_no_material() {
    let model = TestModel::random(TINY, 23);
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(1, Duration::from_secs(60))).await;
    let mut pool = pool(
        &server,
        &keys,
        PoolConfig {
            max_count: 1,
            ..PoolConfig::default()
        },
    )
    .await
    .unwrap();
    pool.wait_for(1).await.unwrap();
    let bad = pool.infer(vec![0; 3]).await;
    assert!(
        matches!(bad, Err(pi_protocol::Error::BadInput(_))),
        "{:?}",
        bad.err()
    );
    assert_eq!(pool.state().size, 1);
    let (x, oracle) = inputs(&model, 1).remove(0);
    let s = pool.infer(x).await.unwrap();
    assert!(!s.waited_for_offline);
    assert_eq!(s.report.logits_fixed, oracle);
    pool.close().await.unwrap();
    server.stop().await;
}
