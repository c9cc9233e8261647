//! What crosses the wire, measured by a [`Tap`] around real channels:
//!
//! - Online round trips: the runs of sends and receives of both parties
//!   during the online phase equal what both reports claim
//!   (`online_round_trips`), in both ReLU modes, on a network with ReLU
//!   layers only and on one with identity and mixed layers.
//! - Fresh randomness in the shipped command lines: a test may seed a
//!   session, a binary must not. One party runs as the real command line (a
//!   `pi-server` or `pi-client` process), the other in this process, and
//!   the SHA-256 digests of every offline frame the process sent (base OT
//!   messages, the garbler's nonce, OT extension messages, garbled tables,
//!   HE uploads or replies) are compared: no frame may repeat across
//!   sessions or inferences, which a fixed or reused seed in the binary
//!   would cause.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::time::Duration;

use pi_protocol::transport::{ChannelConfig, TlsAcceptor, TlsConnector, tls_loopback_pair};
use pi_protocol::{ClientConfig, ClientSession, ReluMode, ServerSession};
use pi_tests::{
    Dir, Keys, MODES, RunningServer, TINY, Tap, TestModel, digits_dir, digits_image, random_input,
    received_digests, serve_config, server_process,
};

const CLIENT: &str = env!("CARGO_BIN_EXE_pi-test-client");
const SERVER: &str = env!("CARGO_BIN_EXE_pi-test-server");

fn patient() -> ChannelConfig {
    ChannelConfig::with_timeouts(Duration::from_secs(60))
}

/// One inference with the offline phase first, then the online phase with
/// both taps recording; returns (client turns, server turns, client
/// report's round trips, server report's round trips).
async fn measure(model: &TestModel, mode: ReluMode) -> [u64; 6] {
    let raw = random_input(&model.input_shape(), 7);
    let oracle = model.oracle(&raw);
    let (client, server) = tls_loopback_pair(patient()).await.unwrap();
    let (mut server, mut client) = (Tap::new(server), Tap::new(client));
    let (s, c) = tokio::join!(
        async {
            let mut s = ServerSession::handshake(&mut server, &model.server).await?;
            // The offline request and phase, then (recording) the online one.
            let r = s.serve_one(&mut server).await?;
            Ok::<_, pi_protocol::Error>(r.expect("one inference"))
        },
        async {
            let cfg = ClientConfig {
                relu: mode,
                ..ClientConfig::default()
            };
            let mut c = ClientSession::handshake(&mut client, &cfg).await?;
            let x = c.quantize_input(
                &model
                    .model
                    .prepare_input(raw.data.clone(), &raw.shape)
                    .expect("input"),
            )?;
            let pre = c.preprocess(&mut client).await?;
            client.start();
            let report = c.online(&mut client, pre, &x).await?;
            client.stop();
            c.close(&mut client).await?;
            Ok::<_, pi_protocol::Error>(report)
        }
    );
    let (s, c) = (s.unwrap(), c.unwrap());
    assert_eq!(c.logits_fixed, oracle, "{mode}");
    assert_eq!((c.relu_mode, s.relu_mode), (mode, mode));
    // The server's online phase starts with the client's online request,
    // its second request: keep its frames from there on.
    let frames = server.frames();
    let requests: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i].dir == Dir::Received && frames[i].label == "session/request")
        .collect();
    let start = requests[1];
    let st = pi_tests::turns(&frames[start..]);
    let ct = client.turns();
    [
        ct.sending,
        ct.receiving,
        st.sending,
        st.receiving,
        c.online_round_trips,
        s.online_round_trips,
    ]
}

fn check(model: &TestModel, mode: ReluMode, m: [u64; 6]) {
    let [c_send, c_recv, s_send, s_recv, c_report, s_report] = m;
    let spec = &model.model.network.spec;
    assert!(c_report > 0, "{spec} {mode}");
    assert_eq!(
        (c_send, c_recv, s_send, s_recv),
        (c_report, c_report, s_report, s_report),
        "{spec} in {mode} mode: runs of (client sends, client receives, server sends, \
         server receives) on the wire against the reports' round trips"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_round_trips_on_the_wire_match_the_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let culled = tmp.path().join("culled.toml");
    // Stage 1 identity (truncation only), relu2 of stage 3 identity, and a
    // layer of both kinds (two garbled sub-layers in GC mode).
    std::fs::write(
        &culled,
        format!(
            "spec = \"{TINY}\"\ncull = [\"stage1\"]\nthin = [\"stage3\"]\n\
             [[relu]]\nactivation = \"layer2.0.relu1\"\nmode = \"channels\"\nkeep = [1]\n"
        ),
    )
    .unwrap();
    for (i, spec) in [TINY, culled.to_str().unwrap()].into_iter().enumerate() {
        let model = TestModel::random(spec, 50 + i as u64).both_modes();
        assert_eq!(
            model.model.network.activations().count(),
            9,
            "stem + 2 per block"
        );
        for mode in MODES {
            let m = measure(&model, mode).await;
            check(&model, mode, m);
        }
    }
}

/// The same over loopback TLS against the real server: the client's view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_round_trips_over_tls_match_the_report() {
    let model = TestModel::random(TINY, 52).both_modes();
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(1, Duration::from_secs(60))).await;
    for mode in MODES {
        let connector = TlsConnector::new(&keys.client(), patient()).unwrap();
        let mut ch = Tap::new(connector.connect(server.addr, "localhost").await.unwrap());
        let cfg = ClientConfig {
            relu: mode,
            ..ClientConfig::default()
        };
        let mut session = ClientSession::handshake(&mut ch, &cfg).await.unwrap();
        let raw = random_input(&model.input_shape(), 8);
        let x = session
            .quantize_input(
                &model
                    .model
                    .prepare_input(raw.data.clone(), &raw.shape)
                    .unwrap(),
            )
            .unwrap();
        let pre = session.preprocess(&mut ch).await.unwrap();
        ch.start();
        let report = session.online(&mut ch, pre, &x).await.unwrap();
        ch.stop();
        assert_eq!(report.logits_fixed, model.oracle(&raw));
        let t = ch.turns();
        assert_eq!(
            (t.sending, t.receiving, t.switches),
            (
                report.online_round_trips,
                report.online_round_trips,
                2 * report.online_round_trips - 1
            ),
            "{mode}"
        );
        session.close(&mut ch).await.unwrap();
    }
    let s = server.stop().await;
    assert_eq!((s.inferences, s.failed), (2, 0));
}

/// Guards against hangs; generous because the machine may be loaded.
const HANG: Duration = Duration::from_secs(120);

/// Asserts that no digest occurs twice within or across the `runs`, and
/// that each run saw some offline traffic.
fn assert_all_fresh(what: &str, runs: &[(String, Vec<[u8; 32]>)]) {
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    for (name, digests) in runs {
        assert!(
            digests.len() >= 3,
            "{what}, {name}: {} frames",
            digests.len()
        );
        for d in digests {
            assert!(
                seen.insert(*d),
                "{what}: {name} repeats an offline frame of an earlier inference or session \
                 (reused randomness)"
            );
        }
    }
}

/// Two sessions of this process's client with a `pi-server` process, two
/// inferences in the first, in each ReLU mode: every offline frame the
/// server process sent is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_binary_draws_fresh_material_per_session_and_inference() {
    let keys = Keys::new();
    let (model_file, tls) = (digits_dir().join("model.toml"), keys.dir().join("server"));
    let args: [&OsStr; 6] = [
        "--model".as_ref(),
        model_file.as_os_str(),
        "--relu".as_ref(),
        "gc,ot".as_ref(),
        "--tls".as_ref(),
        tls.as_os_str(),
    ];
    let (mut server, addr) = server_process(SERVER, &args);
    let model = TestModel::digits();
    let raw = digits_image(0);
    let oracle = model.oracle(&raw);
    let connector = TlsConnector::new(&keys.client(), patient()).unwrap();
    for mode in [ReluMode::Gc, ReluMode::Ot] {
        let mut runs = Vec::new();
        for session_no in 0..2 {
            let ch = connector.connect(addr.as_str(), "localhost").await.unwrap();
            let mut ch = Tap::new(ch);
            let cfg = ClientConfig {
                relu: mode,
                ..ClientConfig::default()
            };
            let mut session = ClientSession::handshake(&mut ch, &cfg).await.unwrap();
            let x = session
                .quantize_input(
                    &model
                        .model
                        .prepare_input(raw.data.clone(), &raw.shape)
                        .unwrap(),
                )
                .unwrap();
            for inference in 0..(2 - session_no) {
                ch.start();
                let report = tokio::time::timeout(HANG, session.infer(&mut ch, &x))
                    .await
                    .expect("hung")
                    .unwrap();
                assert_eq!(report.logits_fixed, oracle);
                runs.push((
                    format!("session {session_no}, inference {inference}"),
                    received_digests(ch.frames(), "offline/"),
                ));
            }
            session.close(&mut ch).await.unwrap();
        }
        assert_all_fresh(&format!("pi-server, {mode} mode"), &runs);
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// Two `pi-client` processes against a server in this process: every
/// offline frame the client process sent (its base OT messages and HE
/// uploads under fresh keys) is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_binary_draws_fresh_material_per_session() {
    let keys = Keys::new();
    let model = TestModel::digits().both_modes();
    let acceptor = TlsAcceptor::new(&keys.server(), patient()).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    for mode in ["gc", "ot"] {
        let mut runs = Vec::new();
        for session_no in 0..2 {
            let served = model.server.clone();
            let (acceptor, tcp) = (acceptor.clone(), &tcp);
            let server = async move {
                let (sock, _) = tcp.accept().await.unwrap();
                let mut ch = Tap::new(acceptor.accept(sock).await.unwrap());
                let mut s = ServerSession::handshake(&mut ch, &served).await.unwrap();
                let mut n = 0;
                while s.serve_one(&mut ch).await.unwrap().is_some() {
                    n += 1;
                }
                assert_eq!(n, 1);
                received_digests(ch.frames(), "offline/")
            };
            let mut cmd = tokio::process::Command::new(CLIENT);
            cmd.args([
                "--connect",
                &addr,
                "--timeout",
                "60",
                "--relu",
                mode,
                "--tls",
            ])
            .arg(keys.dir())
            .arg("--input")
            .arg(digits_dir().join("image0.npy"))
            .kill_on_drop(true);
            let (digests, out) =
                tokio::time::timeout(HANG, async { tokio::join!(server, cmd.output()) })
                    .await
                    .expect("hung");
            let out = out.unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("predicted class 3\n"),
                "{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            runs.push((format!("session {session_no}"), digests));
        }
        assert_all_fresh(&format!("pi-client, {mode} mode"), &runs);
    }
}
