//! Fault cases over real loopback TCP + TLS: each misbehaving peer ends only
//! its own connection, and the other side reports an error instead of
//! hanging. Most servers here admit one client at a time
//! (`max_clients = 1`), so a good client served afterwards also proves that
//! the bad connection released its slot.

use std::time::Duration;

use pi_client::{ClientError, run_inference};
use pi_protocol::session::Architecture;
use pi_protocol::transport::{Channel, ChannelConfig, TlsAcceptor, TlsConnector};
use pi_protocol::{ClientConfig, ClientSession, Error, Misbehavior, ServerSession};
use pi_tests::{
    Fault, Faulty, Keys, RunningServer, TINY, TestModel, client_options, random_input, serve_config,
};
use rand_core::{RngCore, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Guards against hangs; generous because the machine may be loaded.
const HANG: Duration = Duration::from_secs(120);

fn no_progress() -> impl FnMut(pi_client::Progress) + Send {
    |_| {}
}

/// A good client's inference, checked against the oracle.
async fn good_client(server: &RunningServer, keys: &Keys, model: &TestModel, seed: u64) {
    let raw = random_input(&model.input_shape(), seed);
    let out = tokio::time::timeout(
        HANG,
        run_inference(
            &client_options(server.addr, keys.client()),
            &raw,
            &mut no_progress(),
        ),
    )
    .await
    .expect("good client hung")
    .expect("good client failed");
    assert_eq!(out.report.logits_fixed, model.oracle(&raw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_from_another_ca_is_rejected_and_the_server_goes_on() {
    let model = TestModel::random(TINY, 1);
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(1, Duration::from_secs(60))).await;
    let raw = random_input(&model.input_shape(), 0);
    let err = tokio::time::timeout(
        HANG,
        run_inference(
            &client_options(server.addr, keys.foreign_client()),
            &raw,
            &mut no_progress(),
        ),
    )
    .await
    .expect("hung")
    .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol(Error::Tls(_) | Error::Closed | Error::Io(_))
        ),
        "{err:?}"
    );
    good_client(&server, &keys, &model, 1).await;
    let s = server.stop().await;
    assert_eq!((s.connections, s.inferences, s.failed), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_a_server_with_another_he_parameter_digest() {
    let model = TestModel::random(TINY, 2);
    let keys = Keys::new();
    let acceptor = TlsAcceptor::new(&keys.server(), ChannelConfig::default()).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    // A server whose architecture message claims other HE parameters.
    let fake = tokio::spawn(async move {
        let (sock, _) = tcp.accept().await.unwrap();
        let mut ch = acceptor.accept(sock).await.unwrap();
        let mut arch: Architecture = model.server.architecture();
        arch.he_digest = "00".repeat(32);
        ch.send(&serde_json::to_vec(&arch).unwrap()).await.unwrap();
        ch.flush().await.unwrap();
        ch.recv(1 << 16).await.unwrap()
    });
    let raw = random_input(&[1, 8, 8], 0);
    let err = tokio::time::timeout(
        HANG,
        run_inference(
            &client_options(addr, keys.client()),
            &raw,
            &mut no_progress(),
        ),
    )
    .await
    .expect("hung")
    .unwrap_err();
    assert!(
        matches!(&err, ClientError::Protocol(Error::Incompatible(m)) if m.contains("digest")),
        "{err:?}"
    );
    // The server hears a refusal with the reason, not a public key.
    let reply = fake.await.unwrap();
    assert_eq!(reply[0], 2, "refusal tag");
    assert!(String::from_utf8_lossy(&reply[1..]).contains("digest"));
}

/// A client that runs the handshake and then fails in the offline phase.
async fn faulty_client(
    server: &RunningServer,
    keys: &Keys,
    model: &TestModel,
    fault: Fault,
) -> Error {
    let connector = TlsConnector::new(&keys.client(), ChannelConfig::default()).unwrap();
    let ch = connector.connect(server.addr, "localhost").await.unwrap();
    let mut ch = Faulty::new(ch, fault, 3);
    let mut session = ClientSession::handshake(&mut ch, &ClientConfig::default())
        .await
        .unwrap();
    let raw = random_input(&model.input_shape(), 0);
    let x = session
        .quantize_input(&model.model.prepare_input(raw.data, &raw.shape).unwrap())
        .unwrap();
    session.infer(&mut ch, &x).await.unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnecting_mid_offline_does_not_stop_the_server() {
    let model = TestModel::random(TINY, 3);
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(1, Duration::from_secs(60))).await;
    let err = faulty_client(&server, &keys, &model, Fault::Disconnect).await;
    assert!(matches!(err, Error::Closed), "{err:?}");
    good_client(&server, &keys, &model, 1).await;
    let s = server.stop().await;
    assert_eq!((s.connections, s.inferences, s.failed), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_times_out_and_frees_its_slot() {
    let model = TestModel::random(TINY, 4);
    let keys = Keys::new();
    // One slot: the good client is served only once the staller is dropped.
    let server = RunningServer::start(&model, &keys, serve_config(1, Duration::from_secs(2))).await;
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let staller = {
        let (keys_dir, model) = (keys.dir(), model.clone());
        let addr = server.addr;
        tokio::spawn(async move {
            let tls = pi_protocol::transport::pki::TlsFiles::client(&keys_dir, "1")
                .load()
                .unwrap();
            let connector = TlsConnector::new(&tls, ChannelConfig::default()).unwrap();
            let ch = connector.connect(addr, "localhost").await.unwrap();
            let mut ch = Faulty::new(ch, Fault::Stall, 3);
            let mut session = ClientSession::handshake(&mut ch, &ClientConfig::default())
                .await
                .unwrap();
            let raw = random_input(&model.input_shape(), 0);
            let x = session
                .quantize_input(&model.model.prepare_input(raw.data, &raw.shape).unwrap())
                .unwrap();
            // The server has accepted us: the only slot is taken.
            ready.send(()).unwrap();
            let _ = session.infer(&mut ch, &x).await;
        })
    };
    is_ready.await.unwrap();
    good_client(&server, &keys, &model, 1).await;
    assert!(
        !staller.is_finished(),
        "the staller never returns by itself"
    );
    staller.abort();
    let s = server.stop().await;
    assert_eq!((s.connections, s.inferences, s.failed), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_disappearing_mid_protocol_is_a_client_error_not_a_hang() {
    let model = TestModel::random(TINY, 5);
    let keys = Keys::new();
    let acceptor = TlsAcceptor::new(&keys.server(), ChannelConfig::default()).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let served = model.server.clone();
    // A real server that drops the connection three frames into the offline phase.
    let server = tokio::spawn(async move {
        let (sock, _) = tcp.accept().await.unwrap();
        let ch = acceptor.accept(sock).await.unwrap();
        let mut ch = Faulty::new(ch, Fault::Disconnect, 3);
        let mut s = ServerSession::handshake(&mut ch, &served).await.unwrap();
        s.serve_one(&mut ch).await.map(|_| ())
    });
    let raw = random_input(&model.input_shape(), 0);
    let err = tokio::time::timeout(
        HANG,
        run_inference(
            &client_options(addr, keys.client()),
            &raw,
            &mut no_progress(),
        ),
    )
    .await
    .expect("the client hung")
    .unwrap_err();
    // The server dropped the connection without a TLS close: between frames
    // that is a close, inside one a truncated frame.
    assert!(
        matches!(
            err,
            ClientError::Protocol(
                Error::Closed | Error::PeerMisbehaved(Misbehavior::Truncated { .. })
            )
        ),
        "{err:?}"
    );
    let served = server.await.unwrap();
    assert!(matches!(served, Err(Error::Closed)), "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_raw_tcp_and_tls_clients_does_not_stop_the_server() {
    let model = TestModel::random(TINY, 6);
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(1, Duration::from_secs(60))).await;
    // Raw TCP: random bytes instead of a TLS ClientHello.
    let mut junk = vec![0u8; 4096];
    rand_chacha::ChaCha20Rng::seed_from_u64(7).fill_bytes(&mut junk);
    let mut sock = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let _ = sock.write_all(&junk).await;
    let mut rest = Vec::new();
    // The server answers with at most an alert and closes the connection.
    let read = tokio::time::timeout(HANG, sock.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server kept a garbage connection open");
    drop(sock);
    // Authenticated TLS, then a junk frame instead of the handshake reply.
    let connector = TlsConnector::new(&keys.client(), ChannelConfig::default()).unwrap();
    let mut ch = connector.connect(server.addr, "localhost").await.unwrap();
    let _architecture = ch.recv(1 << 25).await.unwrap();
    ch.send(&[0xee; 100]).await.unwrap();
    ch.flush().await.unwrap();
    let after = tokio::time::timeout(HANG, ch.recv(1 << 20))
        .await
        .expect("hung");
    // The server hangs up, saying why.
    assert!(
        matches!(&after, Err(Error::Aborted(m)) if m == "protocol violation: malformed handshake reply"),
        "{after:?}"
    );
    drop(ch);
    good_client(&server, &keys, &model, 1).await;
    let s = server.stop().await;
    assert_eq!((s.connections, s.inferences, s.failed), (3, 1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_an_idle_session_after_the_grace_period() {
    let model = TestModel::random(TINY, 7);
    let keys = Keys::new();
    let mut config = serve_config(2, Duration::from_secs(60));
    let grace = Duration::from_millis(500);
    config.grace = grace;
    let server = RunningServer::start(&model, &keys, config).await;
    // A client that completes the handshake and then never asks for an inference.
    let connector = TlsConnector::new(&keys.client(), ChannelConfig::default()).unwrap();
    let mut ch = connector.connect(server.addr, "localhost").await.unwrap();
    let _session = ClientSession::handshake(&mut ch, &ClientConfig::default())
        .await
        .unwrap();
    let addr = server.addr;
    let asked = std::time::Instant::now();
    let s = tokio::time::timeout(HANG, server.stop())
        .await
        .expect("shutdown hung");
    // The idle session was given its grace period before it was cancelled.
    let took = asked.elapsed();
    assert!(took >= grace, "stopped after {took:?}, grace {grace:?}");
    assert_eq!((s.connections, s.inferences), (1, 0));
    // The cancelled session's connection is gone, and nobody accepts any more.
    let r = tokio::time::timeout(HANG, ch.recv(16)).await.expect("hung");
    assert!(
        matches!(r, Err(Error::Closed | Error::Io(_) | Error::Tls(_))),
        "{r:?}"
    );
    let again = tokio::time::timeout(HANG, connector.connect(addr, "localhost"))
        .await
        .expect("hung");
    assert!(
        matches!(&again, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{:?}",
        again.err()
    );
}

/// A session that finishes within the grace period is not cancelled: the
/// client's inference, running when shutdown is asked, completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_running_inference_finish_within_the_grace_period() {
    let model = TestModel::random(TINY, 9);
    let keys = Keys::new();
    let mut config = serve_config(2, Duration::from_secs(60));
    config.grace = Duration::from_secs(60);
    let server = RunningServer::start(&model, &keys, config).await;
    let connector = TlsConnector::new(&keys.client(), ChannelConfig::default()).unwrap();
    let mut ch = connector.connect(server.addr, "localhost").await.unwrap();
    let mut session = ClientSession::handshake(&mut ch, &ClientConfig::default())
        .await
        .unwrap();
    let raw = random_input(&model.input_shape(), 3);
    let x = session
        .quantize_input(
            &model
                .model
                .prepare_input(raw.data.clone(), &raw.shape)
                .unwrap(),
        )
        .unwrap();
    let pre = session.preprocess(&mut ch).await.unwrap();
    // Shutdown is asked between the phases: once nobody accepts any more,
    // the listener is draining, and the session goes on.
    let addr = server.addr;
    let stopping = tokio::spawn(server.stop());
    tokio::time::timeout(HANG, async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the listener never stopped accepting");
    let report = tokio::time::timeout(HANG, session.online(&mut ch, pre, &x))
        .await
        .expect("hung")
        .unwrap();
    assert_eq!(report.logits_fixed, model.oracle(&raw));
    session.close(&mut ch).await.unwrap();
    let s = tokio::time::timeout(HANG, stopping)
        .await
        .expect("shutdown hung")
        .unwrap();
    // (Probes that were accepted before the listener stopped count as
    // connections, as connect-and-close health checks: not as failures.)
    assert_eq!((s.inferences, s.failed), (1, 0));
}

/// A client that stalls mid-offline is dropped by the server with the
/// timeout it was configured with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_times_out_on_the_server() {
    let model = TestModel::random(TINY, 10);
    let keys = Keys::new();
    let idle = Duration::from_secs(2);
    let config = ChannelConfig {
        idle_timeout: idle,
        write_timeout: idle,
        ..ChannelConfig::with_timeouts(Duration::from_secs(60))
    };
    let acceptor = TlsAcceptor::new(&keys.server(), config).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let served = model.server.clone();
    let server = tokio::spawn(async move {
        let (sock, _) = tcp.accept().await.unwrap();
        let mut ch = acceptor.accept(sock).await.unwrap();
        let mut s = ServerSession::handshake(&mut ch, &served).await.unwrap();
        s.serve_one(&mut ch).await.map(|_| ())
    });
    let connector = TlsConnector::new(
        &keys.client(),
        ChannelConfig::with_timeouts(Duration::from_secs(60)),
    )
    .unwrap();
    let ch = connector.connect(addr, "localhost").await.unwrap();
    let mut ch = Faulty::new(ch, Fault::Stall, 3);
    let mut session = ClientSession::handshake(&mut ch, &ClientConfig::default())
        .await
        .unwrap();
    let raw = random_input(&model.input_shape(), 0);
    let x = session
        .quantize_input(&model.model.prepare_input(raw.data, &raw.shape).unwrap())
        .unwrap();
    let staller = tokio::spawn(async move { session.infer(&mut ch, &x).await });
    let served = tokio::time::timeout(HANG, server)
        .await
        .expect("the server never timed out")
        .unwrap();
    assert!(
        matches!(served, Err(Error::Timeout(d)) if d == idle),
        "{served:?}"
    );
    assert!(
        !staller.is_finished(),
        "the staller never returns by itself"
    );
    staller.abort();
}
