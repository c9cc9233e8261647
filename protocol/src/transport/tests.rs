//! Loopback tests of the stream channels: TLS with real certificate files,
//! and plain TCP against a raw peer that sends hostile bytes.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::pki::{CertificateAuthority, TlsFiles, keygen};
use super::*;
use crate::{Error, Misbehavior};

/// The timeout of stall tests: short so that they finish quickly. Only
/// tests that expect a timeout use it; a busy machine may take longer than
/// this for a step that should succeed.
const STALL: Duration = Duration::from_millis(300);

/// Every timeout [`STALL`]: for tests whose handshake is meant to time out.
fn short() -> ChannelConfig {
    ChannelConfig::with_timeouts(STALL)
}

/// Timeouts in seconds, for steps that must succeed even on a loaded machine.
fn patient() -> ChannelConfig {
    ChannelConfig::with_timeouts(Duration::from_secs(30))
}

/// A patient handshake, then [`STALL`] for idle reads and writes.
fn stall_after_handshake() -> ChannelConfig {
    ChannelConfig {
        idle_timeout: STALL,
        write_timeout: STALL,
        ..patient()
    }
}

fn make_keys(dir: &Path) {
    keygen(
        dir,
        &["pi.example".to_string()],
        &["alice".to_string(), "bob".to_string()],
    )
    .unwrap();
}

async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// Runs a TLS server (one connection) and a client, returning both results.
async fn tls_connect(
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    name: &str,
) -> (Result<TlsChannel>, Result<TlsChannel>) {
    let (l, addr) = listener().await;
    let server = async move {
        let (tcp, _) = l.accept().await?;
        acceptor.accept(tcp).await
    };
    let (c, s) = tokio::join!(connector.connect(addr, name), server);
    (c, s)
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(seed) >> 56) as u8)
        .collect()
}

#[tokio::test]
async fn tls_frames_round_trip_and_are_metered() {
    let dir = tempfile::tempdir().unwrap();
    make_keys(dir.path());
    let server_id = TlsFiles::server(dir.path()).load().unwrap();
    let client_id = TlsFiles::client(dir.path(), "alice").load().unwrap();
    let acceptor = TlsAcceptor::new(&server_id, ChannelConfig::default()).unwrap();
    let connector = TlsConnector::new(&client_id, ChannelConfig::default()).unwrap();
    let (c, s) = tls_connect(acceptor, connector, "localhost").await;
    let (mut c, mut s) = (c.unwrap(), s.unwrap());

    // The server sees the client's certificate.
    assert_eq!(s.peer_certificate(), client_id.cert_chain.first());

    c.set_label("offline/conv1");
    let big = pattern(300_000, 1);
    let client = async {
        c.send(b"ping").await?;
        c.send(&[]).await?;
        c.send(&big).await?;
        send_msg(&mut c, &(7u32, String::from("relu"))).await?;
        // No explicit flush: receiving flushes.
        let answer = c.recv(16).await?;
        c.close().await?;
        Ok::<_, Error>((answer, c))
    };
    let server = async {
        s.set_label("offline/conv1");
        assert_eq!(s.recv(4).await?, b"ping");
        assert!(s.recv(0).await?.is_empty());
        let mut buf = vec![0u8; big.len()];
        s.recv_into(&mut buf).await?;
        assert_eq!(buf, big);
        let msg: (u32, String) = recv_msg(&mut s).await?;
        assert_eq!(msg, (7, "relu".to_string()));
        s.set_label("online");
        s.send(b"pong").await?;
        // The client closes cleanly after reading: the next receive is Closed.
        let end = s.recv(16).await;
        Ok::<_, Error>((end, s))
    };
    let (client, server) = tokio::join!(client, server);
    let (answer, c) = client.unwrap();
    let (end, s) = server.unwrap();
    assert_eq!(answer, b"pong");
    assert!(matches!(end, Err(Error::Closed)), "{end:?}");

    let msg_len = bincode::encode_to_vec((7u32, "relu"), bincode::config::standard())
        .unwrap()
        .len() as u64;
    let sent = 4 + 300_000 + msg_len;
    let r = c.meter().report();
    assert_eq!(r.by_label["offline/conv1"], Traffic { sent, received: 4 });
    assert_eq!(
        r.framing,
        Traffic {
            sent: 8 + 4 * 4,
            received: 8 + 4
        }
    );
    let r = s.meter().report();
    assert_eq!(
        r.by_label["offline/conv1"],
        Traffic {
            sent: 0,
            received: sent
        }
    );
    assert_eq!(
        r.by_label["online"],
        Traffic {
            sent: 4,
            received: 0
        }
    );
    // After close, further use is refused locally.
    let mut c = c;
    assert!(matches!(c.send(b"x").await, Err(Error::BadInput(_))));
}

#[tokio::test]
async fn tls_large_payload_in_chunks() {
    const TOTAL: usize = 100 << 20;
    const CHUNK: usize = 8 << 20;
    let (mut c, mut s) = tls_loopback_pair(ChannelConfig::default()).await.unwrap();
    let data = pattern(TOTAL, 3);
    let client = async {
        for chunk in data.chunks(CHUNK) {
            c.send(chunk).await?;
        }
        c.flush().await?;
        c.recv(1).await
    };
    let server = async {
        let mut got = vec![0u8; TOTAL];
        for chunk in got.chunks_mut(CHUNK) {
            s.recv_into(chunk).await?;
        }
        s.send(&[1]).await?;
        s.flush().await?;
        Ok::<_, Error>(got)
    };
    let (ack, got) = tokio::join!(client, server);
    assert_eq!(ack.unwrap(), [1]);
    assert!(got.unwrap() == data, "payload corrupted in transit");
    assert_eq!(c.meter().total("").sent, TOTAL as u64);
    assert_eq!(s.meter().total("").received, TOTAL as u64);
}

#[tokio::test]
async fn key_files_are_private_and_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    make_keys(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for (f, mode) in [
            ("ca/ca.key", 0o600),
            ("server/server.key", 0o600),
            ("client-bob/client.key", 0o600),
            ("ca/ca.pem", 0o644),
            ("server/ca.pem", 0o644),
            ("client-alice", 0o700),
        ] {
            let m = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(m, mode, "{f}");
        }
    }
    let again = keygen(dir.path(), &[], &[]);
    assert!(
        matches!(&again, Err(Error::BadInput(m)) if m.contains("refusing to overwrite")),
        "{again:?}"
    );
    assert!(matches!(
        keygen(dir.path(), &[], &["../evil".into()]),
        Err(Error::BadInput(_))
    ));
}

#[tokio::test]
async fn loaders_report_missing_and_garbled_files() {
    let dir = tempfile::tempdir().unwrap();
    make_keys(dir.path());
    let missing = TlsFiles::client(dir.path(), "carol").load();
    assert!(
        matches!(&missing, Err(Error::BadInput(m)) if m.contains("client-carol/ca.pem")),
        "{missing:?}"
    );

    let garbled = dir.path().join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let files = TlsFiles {
        cert: garbled.clone(),
        ..TlsFiles::server(dir.path())
    };
    assert!(matches!(files.load(), Err(Error::BadInput(m)) if m.contains("garbled")));

    // A key where a certificate should be, and a certificate where a key should be.
    let swapped = TlsFiles {
        cert: dir.path().join("server/server.key"),
        key: dir.path().join("server/server.pem"),
        ..TlsFiles::server(dir.path())
    };
    assert!(matches!(swapped.load(), Err(Error::BadInput(m)) if m.contains("no CERTIFICATE")));
    let swapped = TlsFiles {
        key: dir.path().join("server/server.pem"),
        ..TlsFiles::server(dir.path())
    };
    assert!(matches!(swapped.load(), Err(Error::BadInput(m)) if m.contains("no PRIVATE KEY")));

    // A certificate with someone else's key is refused when building the config.
    let mismatched = TlsFiles {
        key: dir.path().join("client-bob/client.key"),
        ..TlsFiles::server(dir.path())
    };
    let id = mismatched.load().unwrap();
    assert!(matches!(
        TlsAcceptor::new(&id, ChannelConfig::default()),
        Err(Error::Tls(_))
    ));
}

#[tokio::test]
async fn reloaded_ca_issues_clients_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    make_keys(dir.path());
    let ca = CertificateAuthority::load(dir.path()).unwrap();
    let carol_dir = dir.path().join("client-carol");
    std::fs::create_dir(&carol_dir).unwrap();
    std::fs::copy(dir.path().join("ca/ca.pem"), carol_dir.join("ca.pem")).unwrap();
    ca.issue_client("carol")
        .unwrap()
        .write(&carol_dir, "client")
        .unwrap();
    let server_id = TlsFiles::server(dir.path()).load().unwrap();
    let carol = TlsFiles::client(dir.path(), "carol").load().unwrap();
    let (c, s) = tls_connect(
        TlsAcceptor::new(&server_id, patient()).unwrap(),
        TlsConnector::new(&carol, patient()).unwrap(),
        "127.0.0.1",
    )
    .await;
    c.unwrap();
    s.unwrap();

    // A CA key that does not belong to the CA certificate is refused.
    let other = CertificateAuthority::generate().unwrap();
    let cert = std::fs::read_to_string(dir.path().join("ca/ca.pem")).unwrap();
    let wrong_key = other.issue_client("x").unwrap().key_pem;
    assert!(matches!(
        CertificateAuthority::from_pem(&cert, &wrong_key),
        Err(Error::BadInput(_))
    ));
}

#[tokio::test]
async fn client_cert_from_another_ca_is_rejected() {
    let ca = CertificateAuthority::generate().unwrap();
    let rogue = CertificateAuthority::generate().unwrap();
    let server_id = ca.issue_server(&[]).unwrap().identity(&ca).unwrap();
    // The rogue client trusts the real CA but holds a certificate from the rogue CA.
    let rogue_cert = rogue.issue_client("mallory").unwrap();
    let client_id = super::pki::TlsIdentity::from_pem(
        ca.cert_pem().as_bytes(),
        rogue_cert.cert_pem.as_bytes(),
        rogue_cert.key_pem.as_bytes(),
    )
    .unwrap();
    let (c, s) = tls_connect(
        TlsAcceptor::new(&server_id, patient()).unwrap(),
        TlsConnector::new(&client_id, patient()).unwrap(),
        "localhost",
    )
    .await;
    assert!(
        matches!(&s, Err(Error::Tls(m)) if m.contains("certificate")),
        "server: {:?}",
        s.err()
    );
    assert!(
        matches!(&c, Err(Error::Tls(m)) if m.contains("rejected our certificate")),
        "client: {:?}",
        c.err()
    );
}

#[tokio::test]
async fn server_cert_from_another_ca_is_rejected() {
    let ca = CertificateAuthority::generate().unwrap();
    let rogue = CertificateAuthority::generate().unwrap();
    let server_id = rogue.issue_server(&[]).unwrap().identity(&rogue).unwrap();
    let client_id = ca.issue_client("alice").unwrap().identity(&ca).unwrap();
    let (c, s) = tls_connect(
        TlsAcceptor::new(&server_id, patient()).unwrap(),
        TlsConnector::new(&client_id, patient()).unwrap(),
        "localhost",
    )
    .await;
    assert!(
        matches!(&c, Err(Error::Tls(m)) if m.contains("not signed by our CA")),
        "client: {:?}",
        c.err()
    );
    assert!(
        matches!(&s, Err(Error::Tls(m)) if m.contains("rejected our certificate")),
        "server: {:?}",
        s.err()
    );
}

#[tokio::test]
async fn server_name_not_in_certificate_is_rejected() {
    let ca = CertificateAuthority::generate().unwrap();
    let server_id = ca
        .issue_server(&["pi.example".into()])
        .unwrap()
        .identity(&ca)
        .unwrap();
    let client_id = ca.issue_client("alice").unwrap().identity(&ca).unwrap();
    let acceptor = TlsAcceptor::new(&server_id, patient()).unwrap();
    let connector = TlsConnector::new(&client_id, patient()).unwrap();
    let (c, _s) = tls_connect(acceptor.clone(), connector.clone(), "other.example").await;
    assert!(
        matches!(&c, Err(Error::Tls(m)) if m.contains("not valid for the server name")),
        "{:?}",
        c.err()
    );
    let (c, s) = tls_connect(acceptor, connector, "pi.example").await;
    assert!(c.is_ok() && s.is_ok());
}

#[tokio::test]
async fn alpn_mismatch_is_incompatible() {
    let ca = CertificateAuthority::generate().unwrap();
    let server_id = ca.issue_server(&[]).unwrap().identity(&ca).unwrap();
    let client_id = ca.issue_client("alice").unwrap().identity(&ca).unwrap();
    for offer in [vec![b"pi/2".to_vec()], vec![]] {
        let mut cfg = client_config(&client_id).unwrap();
        cfg.alpn_protocols = offer.clone();
        let (c, s) = tls_connect(
            TlsAcceptor::new(&server_id, patient()).unwrap(),
            TlsConnector::from_config(cfg, patient()),
            "localhost",
        )
        .await;
        assert!(
            matches!(&s, Err(Error::Incompatible(_))),
            "offer {offer:?}: server {:?}",
            s.err()
        );
        assert!(
            matches!(&c, Err(Error::Incompatible(_))),
            "offer {offer:?}: client {:?}",
            c.err()
        );
    }
}

/// A plain-TCP channel whose peer is a raw socket under the test's control.
async fn raw_peer() -> (TcpStream, Result<TcpChannel>) {
    raw_peer_with(patient()).await
}

/// [`raw_peer`] with the channel configured by `config`.
async fn raw_peer_with(config: ChannelConfig) -> (TcpStream, Result<TcpChannel>) {
    let (l, addr) = listener().await;
    let accept = async {
        let (tcp, _) = l.accept().await.unwrap();
        tcp_channel(tcp, config).await
    };
    let raw = async {
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&hello_bytes()).await.unwrap();
        let mut h = [0u8; HELLO_LEN];
        raw.read_exact(&mut h).await.unwrap();
        assert_eq!(h, hello_bytes());
        raw
    };
    let (ch, raw) = tokio::join!(accept, raw);
    (raw, ch)
}

#[tokio::test]
async fn oversized_length_prefix_is_refused_without_allocating() {
    let (mut raw, ch) = raw_peer().await;
    let mut ch = ch.unwrap();
    // The largest length a data frame header can carry (the top bit marks an
    // abort record).
    let largest = ABORT_BIT - 1;
    raw.write_all(&largest.to_be_bytes()).await.unwrap();
    let r = ch.recv(usize::MAX).await;
    assert!(
        matches!(&r, Err(Error::PeerMisbehaved(Misbehavior::FrameTooLarge { len, limit })) if *len == largest as usize && *limit == MAX_FRAME),
        "{r:?}"
    );
    // The stream is now mid-frame: the channel refuses further use.
    assert!(matches!(ch.recv(10).await, Err(Error::BadInput(_))));

    // Above the caller's limit but within MAX_FRAME: also refused, for both receive kinds.
    let (mut raw, ch) = raw_peer().await;
    let mut ch = ch.unwrap();
    raw.write_all(&1000u32.to_be_bytes()).await.unwrap();
    assert!(matches!(
        ch.recv(999).await,
        Err(Error::PeerMisbehaved(Misbehavior::FrameTooLarge {
            len: 1000,
            limit: 999
        }))
    ));
    let (mut raw, ch) = raw_peer().await;
    let mut ch = ch.unwrap();
    raw.write_all(&1000u32.to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 10];
    assert!(matches!(
        ch.recv_into(&mut buf).await,
        Err(Error::PeerMisbehaved(Misbehavior::FrameSize {
            expected: 10,
            got: 1000
        }))
    ));
}

#[tokio::test]
async fn truncated_frame_then_eof() {
    // EOF inside the payload.
    let (mut raw, ch) = raw_peer().await;
    let mut ch = ch.unwrap();
    raw.write_all(&100u32.to_be_bytes()).await.unwrap();
    raw.write_all(&[5u8; 60]).await.unwrap();
    drop(raw);
    let r = ch.recv(1000).await;
    assert!(
        matches!(
            &r,
            Err(Error::PeerMisbehaved(Misbehavior::Truncated {
                what: "a frame",
                got: 60,
                expected: 100
            }))
        ),
        "{r:?}"
    );

    // EOF inside the header.
    let (mut raw, ch) = raw_peer().await;
    let mut ch = ch.unwrap();
    raw.write_all(&[0, 0]).await.unwrap();
    drop(raw);
    let mut buf = [0u8; 4];
    assert!(matches!(
        ch.recv_into(&mut buf).await,
        Err(Error::PeerMisbehaved(Misbehavior::Truncated {
            what: "a frame header",
            got: 2,
            ..
        }))
    ));

    // EOF between frames is a clean close.
    let (mut raw, ch) = raw_peer().await;
    let mut ch = ch.unwrap();
    raw.write_all(&[0, 0, 0, 2, 9, 9]).await.unwrap();
    drop(raw);
    assert_eq!(ch.recv(2).await.unwrap(), [9, 9]);
    assert!(matches!(ch.recv(2).await, Err(Error::Closed)));
}

/// An abort record reaches the peer's next receive as `Aborted` with the
/// reason, control characters stripped; a raw abort header with an oversized
/// reason is a protocol violation, not an allocation.
#[tokio::test]
async fn abort_records_carry_a_clean_reason() {
    let roomy = ChannelConfig::with_timeouts(Duration::from_secs(30));
    let (mut client, mut server) = tcp_loopback_pair(roomy.clone()).await.unwrap();
    server.send(b"first").await.unwrap();
    server
        .abort("server busy (8 sessions)\x1b[31m\nforged line\u{202e}")
        .await
        .unwrap();
    assert_eq!(client.recv(16).await.unwrap(), b"first");
    let r = client.recv(16).await;
    assert!(
        matches!(&r, Err(Error::Aborted(m)) if m == "server busy (8 sessions)[31mforged line"),
        "{r:?}"
    );
    assert!(server.send(b"x").await.is_err(), "unusable after abort");

    // Through TLS as well, and into a fixed-size receive.
    let (mut client, mut server) = tls_loopback_pair(roomy).await.unwrap();
    server.abort("deadline").await.unwrap();
    let mut buf = [0u8; 100];
    let r = client.recv_into(&mut buf).await;
    assert!(
        matches!(&r, Err(Error::Aborted(m)) if m == "deadline"),
        "{r:?}"
    );

    let (mut raw, ch) = raw_peer().await;
    let mut ch = ch.unwrap();
    raw.write_all(&(ABORT_BIT | 5000).to_be_bytes())
        .await
        .unwrap();
    let r = ch.recv(10).await;
    assert!(
        matches!(
            &r,
            Err(Error::PeerMisbehaved(Misbehavior::FrameTooLarge {
                limit: MAX_ABORT_REASON,
                ..
            }))
        ),
        "{r:?}"
    );
}

#[test]
fn peer_text_strips_control_characters_and_cuts() {
    assert_eq!(super::peer_text(b"ok \x1b[2J\r\nend\x07", 100), "ok [2Jend");
    assert_eq!(super::peer_text("a\u{2066}b".as_bytes(), 100), "ab");
    assert_eq!(super::peer_text(b"abcdef", 3), "abc");
    assert_eq!(super::peer_text(&[0xff, b'x'], 10), "\u{fffd}x");
}

#[tokio::test]
async fn garbage_instead_of_hello() {
    async fn establish_against(bytes: &'static [u8]) -> Result<TcpChannel> {
        let (l, addr) = listener().await;
        let raw = async move {
            let mut raw = TcpStream::connect(addr).await.unwrap();
            raw.write_all(bytes).await.unwrap();
            raw
        };
        let accept = async {
            let (tcp, _) = l.accept().await.unwrap();
            tcp_channel(tcp, patient()).await
        };
        let (_raw, ch) = tokio::join!(raw, accept);
        ch
    }
    let r = establish_against(b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(
        matches!(&r, Err(Error::PeerMisbehaved(Misbehavior::Hello(m))) if m.contains("not a pi")),
        "{:?}",
        r.err()
    );
    let r = establish_against(b"PIWF\x00\x03\x00\x00").await;
    assert!(
        matches!(&r, Err(Error::Incompatible(m)) if m.contains("version 3")),
        "{:?}",
        r.err()
    );
    let r = establish_against(b"PIWF\x00\x02\x00\x07").await;
    assert!(
        matches!(&r, Err(Error::PeerMisbehaved(Misbehavior::Hello(m))) if m.contains("flags")),
        "{:?}",
        r.err()
    );
    // A plain-text peer against a TLS server fails the handshake.
    let ca = CertificateAuthority::generate().unwrap();
    let acceptor = TlsAcceptor::new(
        &ca.issue_server(&[]).unwrap().identity(&ca).unwrap(),
        patient(),
    )
    .unwrap();
    let (l, addr) = listener().await;
    let raw = async {
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&hello_bytes()).await.unwrap();
        raw
    };
    let accept = async { acceptor.accept(l.accept().await.unwrap().0).await };
    let (_raw, r) = tokio::join!(raw, accept);
    assert!(matches!(r, Err(Error::Tls(_))), "{:?}", r.err());
}

#[tokio::test]
async fn stalled_peer_times_out() {
    // Stalls in the middle of a frame: the idle timeout fires, with its duration.
    let (mut raw, ch) = raw_peer_with(stall_after_handshake()).await;
    let mut ch = ch.unwrap();
    raw.write_all(&100u32.to_be_bytes()).await.unwrap();
    raw.write_all(&[1u8; 10]).await.unwrap();
    let r = ch.recv(100).await;
    assert!(matches!(r, Err(Error::Timeout(d)) if d == STALL), "{r:?}");
    drop(raw);

    // Never sends a hello.
    let (l, addr) = listener().await;
    let _silent = TcpStream::connect(addr).await.unwrap();
    let (tcp, _) = l.accept().await.unwrap();
    let r = tcp_channel(tcp, short()).await;
    assert!(
        matches!(r, Err(Error::Timeout(d)) if d == STALL),
        "{:?}",
        r.err()
    );

    // Never answers the TLS handshake.
    let ca = CertificateAuthority::generate().unwrap();
    let connector = TlsConnector::new(
        &ca.issue_client("a").unwrap().identity(&ca).unwrap(),
        short(),
    )
    .unwrap();
    let (l, addr) = listener().await;
    let r = connector.connect(addr, "localhost").await;
    assert!(
        matches!(r, Err(Error::Timeout(d)) if d == STALL),
        "{:?}",
        r.err()
    );
    drop(l);

    // Never reads: the sender's write times out once the socket buffers fill.
    let (_raw, ch) = raw_peer_with(stall_after_handshake()).await;
    let mut ch = ch.unwrap();
    let big = vec![0u8; MAX_FRAME];
    let mut result = Ok(());
    for _ in 0..8 {
        result = ch.send(&big).await;
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(Error::Timeout(d)) if d == STALL),
        "{result:?}"
    );
}

#[tokio::test]
async fn local_oversized_send_is_bad_input_and_channel_stays_usable() {
    let (mut c, mut s) = tcp_loopback_pair(patient()).await.unwrap();
    let too_big = vec![0u8; MAX_FRAME + 1];
    assert!(matches!(c.send(&too_big).await, Err(Error::BadInput(_))));
    c.send(b"still fine").await.unwrap();
    c.flush().await.unwrap();
    assert_eq!(s.recv(100).await.unwrap(), b"still fine");
}

/// A man in the middle flips one bit of the client's TLS records: the
/// server must refuse the frame rather than deliver altered bytes.
#[tokio::test]
async fn tampered_tls_record_is_rejected() {
    let ca = CertificateAuthority::generate().unwrap();
    let acceptor = TlsAcceptor::new(
        &ca.issue_server(&[]).unwrap().identity(&ca).unwrap(),
        patient(),
    )
    .unwrap();
    let connector = TlsConnector::new(
        &ca.issue_client("alice").unwrap().identity(&ca).unwrap(),
        patient(),
    )
    .unwrap();
    let (server_l, server_addr) = listener().await;
    let (proxy_l, proxy_addr) = listener().await;
    // Far beyond the handshake (a few KiB), inside the 200 KB frame.
    const FLIP_AT: usize = 100_000;
    let proxy = async {
        let (downstream, _) = proxy_l.accept().await.unwrap();
        let upstream = TcpStream::connect(server_addr).await.unwrap();
        let (mut dr, mut dw) = downstream.into_split();
        let (mut ur, mut uw) = upstream.into_split();
        let to_server = async {
            let mut seen = 0usize;
            let mut buf = vec![0u8; 16384];
            loop {
                let n = match dr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if (seen..seen + n).contains(&FLIP_AT) {
                    buf[FLIP_AT - seen] ^= 0x01;
                }
                seen += n;
                if uw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = uw.shutdown().await;
        };
        let to_client = async {
            let _ = tokio::io::copy(&mut ur, &mut dw).await;
            let _ = dw.shutdown().await;
        };
        tokio::join!(to_server, to_client);
    };
    let server = async {
        let (tcp, _) = server_l.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        s.recv(1 << 20).await
    };
    let client = async {
        let mut c = connector.connect(proxy_addr, "localhost").await.unwrap();
        c.send(&pattern(200_000, 9)).await.unwrap();
        c.flush().await.unwrap();
        // Dropping the channel ends the proxy's client-to-server direction.
    };
    let all = async { tokio::join!(server, client, proxy).0 };
    let r = tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("test must not hang");
    assert!(matches!(&r, Err(Error::Tls(_))), "{r:?}");
}

/// TLS over an emulated link: frames arrive intact, the request/response
/// pair takes at least the transfer time plus a round trip, and the meter
/// counts the same payload bytes as without the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_an_emulated_link() {
    const TOTAL: usize = 2 << 20;
    let link: crate::transport::Link = "200mbit,5ms".parse().unwrap();
    let config = ChannelConfig {
        link: Some(link),
        ..ChannelConfig::default()
    };
    let (mut c, mut s) = tls_loopback_pair(config).await.unwrap();
    let data = pattern(TOTAL, 5);
    let t = std::time::Instant::now();
    let client = async {
        c.send(&data).await?;
        c.flush().await?;
        c.recv(1).await
    };
    let server = async {
        let got = s.recv(TOTAL).await?;
        s.send(&[7]).await?;
        s.flush().await?;
        Ok::<_, Error>(got)
    };
    let (ack, got) = tokio::join!(client, server);
    let took = t.elapsed();
    assert_eq!(ack.unwrap(), [7]);
    assert!(got.unwrap() == data, "payload corrupted on the shaped link");
    let floor = link.transmit_time(TOTAL) + 2 * link.delay;
    assert!(took >= floor, "{took:?} < {floor:?}");
    assert_eq!(c.meter().total("").sent, TOTAL as u64);
}

#[test]
fn server_names_are_dns_names_or_ip_addresses() {
    use super::pki::check_server_name;
    for ok in [
        "localhost",
        "127.0.0.1",
        "::1",
        "pi.example.org",
        "a-b.c9",
        "x.",
    ] {
        assert!(check_server_name(ok).is_ok(), "{ok}");
    }
    let long = "a".repeat(64);
    for bad in [
        "",
        "bad name",
        "*.example",
        "-a.b",
        "a..b",
        "a_b.c",
        long.as_str(),
    ] {
        assert!(check_server_name(bad).is_err(), "{bad}");
    }
}

/// A CRL from `revoke` makes the server refuse exactly the revoked client;
/// a second revocation keeps the first; subjects name the clients.
#[tokio::test]
async fn revoked_clients_fail_the_handshake() {
    use super::pki::{certificate_subject, load_crls};
    use rustls::pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    make_keys(dir.path());
    let ca = CertificateAuthority::load(dir.path()).unwrap();
    let bob = std::fs::read_to_string(dir.path().join("client-bob/client.pem")).unwrap();
    let crl = ca.revoke(&[bob], None).unwrap();
    let path = dir.path().join("crl.pem");
    std::fs::write(&path, &crl).unwrap();
    let crls = load_crls(&path).unwrap();
    let server_id = TlsFiles::server(dir.path()).load().unwrap();
    let roomy = ChannelConfig::with_timeouts(Duration::from_secs(30));
    for (name, revoked) in [("alice", false), ("bob", true)] {
        let id = TlsFiles::client(dir.path(), name).load().unwrap();
        let who = certificate_subject(&id.cert_chain[0]).unwrap();
        assert_eq!(
            (who.name.as_str(), who.subject.clone()),
            (name, format!("CN={name}"))
        );
        let (c, s) = tls_connect(
            TlsAcceptor::with_crls(&server_id, crls.clone(), roomy.clone()).unwrap(),
            TlsConnector::new(&id, roomy.clone()).unwrap(),
            "localhost",
        )
        .await;
        if revoked {
            assert!(
                matches!(&s, Err(Error::Tls(m)) if m.contains("revoked")),
                "{:?}",
                s.err()
            );
            assert!(c.is_err());
        } else {
            s.unwrap();
            c.unwrap();
        }
    }
    // Revoking alice as well keeps bob revoked.
    let alice = std::fs::read_to_string(dir.path().join("client-alice/client.pem")).unwrap();
    let both = ca.revoke(&[alice], Some(crl.as_bytes())).unwrap();
    let der =
        rustls::pki_types::CertificateRevocationListDer::from_pem_slice(both.as_bytes()).unwrap();
    let (_, parsed) = x509_parser::parse_x509_crl(&der).unwrap();
    assert_eq!(parsed.iter_revoked_certificates().count(), 2);
    assert_eq!(parsed.crl_number().map(|n| n.to_string()), Some("2".into()));
}
