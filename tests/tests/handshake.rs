//! Session handshake refusals and bad requests, driven from outside the
//! protocol crate through its public API: a fake server sends a tampered
//! architecture to a real `ClientSession`, a raw client sends bad replies
//! and requests to a real `ServerSession`. Each case asserts the error
//! variant (and, for a peer's misbehaviour, which one) and what the other
//! side heard.

use std::time::Duration;

use pi_protocol::session::{Architecture, NormalizationMsg};
use pi_protocol::transport::{Channel, ChannelConfig, MemoryChannel, TlsConnector, memory_pair};
use pi_protocol::{ClientConfig, ClientSession, Error, Misbehavior, ServerLimits, ServerSession};
use pi_tests::{Keys, RunningServer, TINY, TestModel, serve_config};

/// Refusal tag of the client's handshake reply (`pi_protocol::session`).
const TAG_REFUSE: u8 = 2;
/// Accept tags: garbled circuits, OT mode.
const TAG_ACCEPT_OT: u8 = 3;
/// Request tags: offline phase, close, online phase (tag, then the
/// inference number as u64 little-endian, except close).
const TAG_OFFLINE: u8 = 0x10;
const TAG_ONLINE: u8 = 0x12;

fn model() -> TestModel {
    TestModel::random(TINY, 41)
}

fn request(tag: u8, id: u64) -> Vec<u8> {
    let mut r = vec![tag];
    r.extend_from_slice(&id.to_le_bytes());
    r
}

/// A fake server sends `hello` to a real client; returns the client's error
/// and the reason in the refusal the fake server received.
async fn client_refuses(hello: Vec<u8>) -> (Error, String) {
    let (mut server, mut client) = memory_pair();
    let (heard, c) = tokio::join!(
        async move {
            server.send(&hello).await.unwrap();
            server.flush().await.unwrap();
            server.recv(1 << 16).await
        },
        async move {
            ClientSession::handshake(&mut client, &ClientConfig::default())
                .await
                .map(|_| ())
        }
    );
    let err = c.expect_err("the client must refuse");
    let heard = heard.expect("the client answers before it hangs up");
    assert_eq!(heard.first(), Some(&TAG_REFUSE), "refusal tag");
    (err, String::from_utf8_lossy(&heard[1..]).into_owned())
}

async fn client_refuses_arch(arch: &Architecture) -> (Error, String) {
    client_refuses(serde_json::to_vec(arch).unwrap()).await
}

/// The client refuses unsupported ring and fractional bits (naming the
/// parameter), and ring bits the announced HE parameter digest was not
/// computed for.
#[tokio::test]
async fn the_client_refuses_other_ring_parameters() {
    let good = model().server.architecture();
    for (bits, frac, want) in [
        (65, 12, "ring parameters"),
        (37, 20, "ring parameters"),
        (37, 0, "ring parameters"),
        (40, 12, "HE parameters"),
        (36, 12, "digest"),
    ] {
        let mut arch = good.clone();
        (arch.ring_bits, arch.frac_bits) = (bits, frac);
        let (err, heard) = client_refuses_arch(&arch).await;
        assert!(
            matches!(&err, Error::Incompatible(m) if m.contains(want)),
            "l = {bits}, f = {frac}: {err:?}"
        );
        assert_eq!(heard, err.to_string(), "the server hears the reason");
    }
}

/// An architecture that cannot hold is the server's misbehaviour, and the
/// client says why: no pending inference granted, a normalisation that does
/// not fit the input channels, a network description that does not rebuild.
#[tokio::test]
async fn the_client_refuses_an_invalid_architecture() {
    let good = model().server.architecture();
    let mut cases: Vec<(&str, Architecture)> = Vec::new();
    let mut a = good.clone();
    a.max_pending = 0;
    cases.push(("max_pending = 0", a));
    for (mean, std) in [
        (vec![0.5, 0.5], vec![1.0, 1.0]),
        (vec![0.5], vec![0.0]),
        (vec![0.5], vec![-1.0]),
        (vec![], vec![]),
    ] {
        let mut a = good.clone();
        a.normalization = Some(NormalizationMsg { mean, std });
        cases.push(("normalisation", a));
    }
    let mut a = good.clone();
    a.network.spec = "5x5x(m=1)".into();
    cases.push(("unparsable spec", a));
    let mut a = good.clone();
    a.network.masks = vec![("layer9.0.relu1".into(), pi_models::network::ReluMask::None)];
    cases.push(("mask of no activation", a));
    let mut a = good.clone();
    a.network.masks = vec![(
        "relu".into(),
        pi_models::network::ReluMask::Channels(vec![true; 5]),
    )];
    cases.push(("mask of the wrong length", a));
    for (what, arch) in cases {
        let (err, heard) = client_refuses_arch(&arch).await;
        assert!(
            matches!(
                err,
                Error::PeerMisbehaved(Misbehavior::Architecture(ref m)) if !m.is_empty()
            ),
            "{what}: {err:?}"
        );
        assert_eq!(heard, err.to_string(), "{what}");
    }
}

/// Bytes that are not an architecture message are malformed.
#[tokio::test]
async fn the_client_refuses_a_malformed_architecture() {
    let mut v = serde_json::to_value(model().server.architecture()).unwrap();
    v.as_object_mut().unwrap().remove("ring_bits");
    for hello in [
        b"{not json".to_vec(),
        Vec::new(),
        serde_json::to_vec(&v).unwrap(),
    ] {
        let (err, heard) = client_refuses(hello).await;
        assert!(
            matches!(err, Error::PeerMisbehaved(Misbehavior::Malformed(ref m)) if m.contains("architecture")),
            "{err:?}"
        );
        assert_eq!(heard, err.to_string());
    }
}

/// A raw client answers a real server's architecture with `reply`; returns
/// the server's handshake error.
async fn server_refuses(limits: ServerLimits, reply: Vec<u8>) -> Error {
    let model = model();
    let (mut server, mut client) = memory_pair();
    let (s, _) = tokio::join!(
        async {
            ServerSession::handshake_limited(&mut server, &model.server, &limits)
                .await
                .map(|_| ())
        },
        async move {
            client.recv(1 << 25).await.unwrap();
            client.send(&reply).await.unwrap();
            client.flush().await.unwrap();
            client
        }
    );
    s.expect_err("the server must refuse")
}

#[tokio::test]
async fn the_server_refuses_bad_handshake_replies() {
    // OT mode, which this server does not offer.
    let err = server_refuses(ServerLimits::default(), vec![TAG_ACCEPT_OT; 9]).await;
    assert!(
        matches!(
            err,
            Error::PeerMisbehaved(Misbehavior::ModeNotOffered("ot"))
        ),
        "{err:?}"
    );
    // An unknown tag, and an empty reply.
    for reply in [vec![9u8; 20], Vec::new()] {
        let err = server_refuses(ServerLimits::default(), reply).await;
        assert!(
            matches!(err, Error::PeerMisbehaved(Misbehavior::Malformed(ref m)) if m.contains("handshake reply")),
            "{err:?}"
        );
    }
    // An accept whose public key is not an HE message.
    let err = server_refuses(ServerLimits::default(), vec![1u8; 100]).await;
    assert!(
        matches!(err, Error::PeerMisbehaved(Misbehavior::Malformed(ref m)) if m.contains("HE message: bad magic")),
        "{err:?}"
    );
    // A real client's accept, cut by one byte.
    let accept = {
        let arch = serde_json::to_vec(&model().server.architecture()).unwrap();
        let (mut fake, mut client) = memory_pair();
        let (reply, c) = tokio::join!(
            async move {
                fake.send(&arch).await.unwrap();
                fake.flush().await.unwrap();
                fake.recv(1 << 25).await.unwrap()
            },
            async move {
                ClientSession::handshake(&mut client, &ClientConfig::default())
                    .await
                    .map(|_| ())
            }
        );
        c.unwrap();
        reply
    };
    let err = server_refuses(ServerLimits::default(), accept[..accept.len() - 1].to_vec()).await;
    assert!(
        matches!(err, Error::PeerMisbehaved(Misbehavior::Malformed(ref m)) if m.contains("HE message has")),
        "{err:?}"
    );
    // The client's refusal, with its reason.
    let mut refusal = vec![TAG_REFUSE];
    refusal.extend_from_slice(b"not the model I want");
    let err = server_refuses(ServerLimits::default(), refusal).await;
    assert!(
        matches!(err, Error::Incompatible(ref m) if m.contains("the client refused: not the model I want")),
        "{err:?}"
    );
}

/// A server told to grant no pending inference refuses before it sends
/// anything: bad local input, not a peer's fault.
#[tokio::test]
async fn a_zero_pending_bound_is_refused_before_anything_is_sent() {
    let model = model();
    let (mut server, mut client) = memory_pair();
    let r = ServerSession::handshake_limited(
        &mut server,
        &model.server,
        &ServerLimits {
            max_pending: 0,
            ..ServerLimits::default()
        },
    )
    .await;
    assert!(
        matches!(r, Err(Error::BadInput(ref m)) if m.contains("at least one preprocessed inference")),
        "{:?}",
        r.err()
    );
    assert_eq!(server.meter().total("").sent, 0);
    drop(server);
    let heard = client.recv(1 << 20).await;
    assert!(matches!(heard, Err(Error::Closed)), "{heard:?}");
}

/// After a real handshake, the client sends `frames` raw; returns how the
/// server's `serve_one` ended.
async fn server_after(frames: Vec<Vec<u8>>) -> pi_protocol::Result<Option<u64>> {
    let model = model();
    let (mut server, mut client) = memory_pair();
    let (s, _) = tokio::join!(
        async move {
            let mut s = ServerSession::handshake(&mut server, &model.server).await?;
            s.serve_one(&mut server)
                .await
                .map(|r| r.map(|r| r.inference))
        },
        async move {
            let _session = ClientSession::handshake(&mut client, &ClientConfig::default())
                .await
                .unwrap();
            for f in frames {
                client.send(&f).await.unwrap();
            }
            client.flush().await.unwrap();
            // Whatever follows (the offline phase or nothing): wait until the
            // server hangs up.
            while client.recv(1 << 26).await.is_ok() {}
            client
        }
    );
    s
}

#[tokio::test]
async fn malformed_and_out_of_sequence_requests_are_refused() {
    // Requests that do not decode: a short id, an unknown tag, a close with a payload.
    for frame in [vec![TAG_OFFLINE, 1, 2], vec![0x55; 9], vec![0x11, 0]] {
        let r = server_after(vec![frame.clone()]).await;
        assert!(
            matches!(r, Err(Error::PeerMisbehaved(Misbehavior::Malformed(ref m))) if m.contains("inference request")),
            "{frame:?}: {r:?}"
        );
    }
    // A frame longer than any request is refused before it is read.
    let r = server_after(vec![vec![TAG_OFFLINE; 100]]).await;
    assert!(
        matches!(
            r,
            Err(Error::PeerMisbehaved(Misbehavior::FrameTooLarge {
                len: 100,
                limit: 9
            }))
        ),
        "{r:?}"
    );
    // The first offline request must be for inference 0.
    let r = server_after(vec![request(TAG_OFFLINE, 5)]).await;
    assert!(
        matches!(
            r,
            Err(Error::PeerMisbehaved(Misbehavior::OutOfSequence {
                got: 5,
                expected: 0
            }))
        ),
        "{r:?}"
    );
    // An online request for an inference that was never preprocessed.
    let r = server_after(vec![request(TAG_ONLINE, 0)]).await;
    assert!(
        matches!(r, Err(Error::PeerMisbehaved(Misbehavior::NotPending(0)))),
        "{r:?}"
    );
}

/// A second offline request for an inference number already used.
#[tokio::test]
async fn a_repeated_inference_number_is_out_of_sequence() {
    let model = model();
    let (mut server, mut client) = memory_pair();
    let (s, _) = tokio::join!(
        async move {
            let mut s = ServerSession::handshake(&mut server, &model.server).await?;
            s.serve_one(&mut server).await.map(|_| ())
        },
        async move {
            let mut session = ClientSession::handshake(&mut client, &ClientConfig::default())
                .await
                .unwrap();
            let pre = session.preprocess(&mut client).await.unwrap();
            assert_eq!(pre.inference(), 0);
            send_raw(&mut client, &request(TAG_OFFLINE, 0)).await;
            while client.recv(1 << 26).await.is_ok() {}
        }
    );
    assert!(
        matches!(
            s,
            Err(Error::PeerMisbehaved(Misbehavior::OutOfSequence {
                got: 0,
                expected: 1
            }))
        ),
        "{s:?}"
    );
}

async fn send_raw(ch: &mut MemoryChannel, frame: &[u8]) {
    ch.send(frame).await.unwrap();
    ch.flush().await.unwrap();
}

/// Through the real server over TLS, a bad request reaches the client as
/// an abort record naming the violation, and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_server_tells_a_client_what_it_did_wrong() {
    let model = model();
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(1, Duration::from_secs(60))).await;
    let connector = TlsConnector::new(
        &keys.client(),
        ChannelConfig::with_timeouts(Duration::from_secs(60)),
    )
    .unwrap();
    let mut ch = connector.connect(server.addr, "localhost").await.unwrap();
    let _session = ClientSession::handshake(&mut ch, &ClientConfig::default())
        .await
        .unwrap();
    ch.send(&request(TAG_OFFLINE, 3)).await.unwrap();
    ch.flush().await.unwrap();
    let heard = ch.recv(1 << 20).await;
    assert!(
        matches!(&heard, Err(Error::Aborted(m)) if m == "protocol violation: inference 3 requested, expected 0"),
        "{heard:?}"
    );
    drop(ch);
    let summary = server.stop().await;
    assert_eq!((summary.connections, summary.failed), (1, 1));
}
