//! Admission control and hardening of `pi-server`, as processes: silent and
//! dripping handshakes, a busy server, a trickling client, the per-client
//! cap, keygen bundles, the allowlist and the CRL, and bad command lines.
//! No timing assertions: every wait has a generous deadline that only
//! catches hangs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use pi_protocol::transport::pki::TlsFiles;
use pi_protocol::transport::{ChannelConfig, TlsConnector};
use pi_protocol::{ClientConfig, ClientSession, Error};
use pi_tests::{Fault, Faulty, digits_dir};
use tokio::io::AsyncWriteExt;

const CLIENT: &str = env!("CARGO_BIN_EXE_pi-test-client");
const SERVER: &str = env!("CARGO_BIN_EXE_pi-test-server");

/// Guards against hangs; generous because the machine may be loaded.
const HANG: Duration = Duration::from_secs(120);

/// `pi-server keygen --out DIR/keys --clients N`; returns the key directory.
fn keygen(dir: &Path, clients: usize) -> PathBuf {
    let keys = dir.join("keys");
    let out = Command::new(SERVER)
        .args(["keygen", "--clients", &clients.to_string(), "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    keys
}

/// A `pi-server` process on the digits model, its stderr in a file.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, keys: &Path, extra: &[&str]) -> Self {
        let log = dir.join(format!("server-{}.log", rand_suffix()));
        let mut child = Command::new(SERVER)
            .arg("--model")
            .arg(digits_dir().join("model.toml"))
            .args(["--listen", "127.0.0.1:0", "-v", "--tls"])
            .arg(keys.join("server"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "first line {first:?}, stderr {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .trim()
            .to_string();
        Self { child, addr, log }
    }

    /// SIGINT, wait for a clean exit, return the log.
    fn stop(mut self) -> String {
        let kill = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        assert!(self.child.wait().unwrap().success(), "server exit status");
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Runs `pi-client` on the digits image 0 against `addr` with `bundle`.
async fn run_client(addr: &str, bundle: &Path, extra: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(CLIENT);
    cmd.args(["--connect", addr, "--timeout", "60", "--tls"])
        .arg(bundle)
        .arg("--input")
        .arg(digits_dir().join("image0.npy"))
        .args(extra)
        .kill_on_drop(true);
    tokio::time::timeout(HANG, cmd.output())
        .await
        .expect("the client process hung")
        .unwrap()
}

fn assert_predicts_3(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("predicted class 3\n"), "{stdout}");
}

/// A failed client: non-zero exit, one `pi-client: error:` line naming `want`, no panic.
fn assert_fails_with(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(want), "wanted {want:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "{err}"
    );
}

/// A session held open by client `name` (handshake done, then idle).
async fn hold_session(addr: &str, keys: &Path, name: &str) -> pi_protocol::transport::TlsChannel {
    let tls = TlsFiles::client(keys, name).load().unwrap();
    let connector = TlsConnector::new(&tls, ChannelConfig::default()).unwrap();
    let mut ch = connector.connect(addr, "localhost").await.unwrap();
    ClientSession::handshake(&mut ch, &ClientConfig::default())
        .await
        .unwrap();
    ch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_dripping_handshakes_do_not_stop_a_real_client() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path(), 1);
    // One session slot, as in the attack on the old server; generous
    // handshake deadline so that only the admission bounds protect the client.
    let server = Server::start(
        tmp.path(),
        &keys,
        &["--max-clients", "1", "--handshake-timeout", "60"],
    );
    // 24 sockets that never send a byte, and 4 that drip a TLS ClientHello
    // one byte every 200 ms, all held open while the real client runs.
    let mut silent = Vec::new();
    for _ in 0..24 {
        silent.push(tokio::net::TcpStream::connect(&server.addr).await.unwrap());
    }
    let mut drippers = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        drippers.push(tokio::spawn(async move {
            for b in [0x16u8, 0x03, 0x01, 0x02, 0x00].iter().cycle().take(600) {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    let out = run_client(&server.addr, &keys.join("client-1"), &[]).await;
    assert_predicts_3(&out);
    drop(silent);
    drippers.iter().for_each(|d| d.abort());
    let log = server.stop();
    assert!(log.contains("1 inference(s)"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_says_so_at_once_and_caps_each_client() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path(), 2);
    let server = Server::start(tmp.path(), &keys, &["--max-clients", "1", "--queue", "0"]);
    let held = hold_session(&server.addr, &keys, "1").await;
    let out = run_client(&server.addr, &keys.join("client-2"), &[]).await;
    assert_fails_with(&out, "the peer ended the session: server busy (1 sessions)");
    drop(held);
    drop(server);

    // Per certificate: client 1 may hold one session, client 2 still gets in.
    let server = Server::start(tmp.path(), &keys, &["--max-per-client", "1"]);
    let held = hold_session(&server.addr, &keys, "1").await;
    let out = run_client(&server.addr, &keys.join("client-1"), &[]).await;
    assert_fails_with(&out, "client \"1\" already has 1 session(s) open");
    let out = run_client(&server.addr, &keys.join("client-2"), &[]).await;
    assert_predicts_3(&out);
    drop(held);
    let log = server.stop();
    assert!(log.contains("refused: client \"1\" already has"), "{log}");
    assert!(
        log.contains("client authenticated") && log.contains("CN=2"),
        "{log}"
    );
}

/// `--pending-bytes` holds one and a half of the digits model's
/// preprocessed inferences: a client that keeps one pending leaves no room
/// for a second client's offline phase, which is refused with the figures;
/// once the first spends its material, the second gets through. A budget
/// below one inference stops the server at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_bytes_budget_bounds_all_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path(), 2);
    let model =
        pi_server::load_model(digits_dir().join("model.toml").to_str().unwrap(), None).unwrap();
    let per = model
        .pending_bytes_per_inference(pi_protocol::ReluMode::Gc)
        .unwrap();
    let budget = (per + per / 2).to_string();
    let server = Server::start(tmp.path(), &keys, &["--pending-bytes", &budget]);

    // Client 1: a session with one preprocessed inference pending.
    let tls = TlsFiles::client(&keys, "1").load().unwrap();
    let connector = TlsConnector::new(&tls, ChannelConfig::default()).unwrap();
    let mut ch = connector.connect(&server.addr, "localhost").await.unwrap();
    let mut held = ClientSession::handshake(&mut ch, &ClientConfig::default())
        .await
        .unwrap();
    let pre = held.preprocess(&mut ch).await.unwrap();

    let out = run_client(&server.addr, &keys.join("client-2"), &[]).await;
    assert_fails_with(
        &out,
        &format!(
            "busy: the server's memory budget for preprocessed material is full ({per} of {budget} B"
        ),
    );

    // Spending it frees the budget.
    let x = held
        .model()
        .load_input(&digits_dir().join("image0.npy"))
        .unwrap();
    let x = held.quantize_input(&x).unwrap();
    held.online(&mut ch, pre, &x).await.unwrap();
    held.close(&mut ch).await.unwrap();
    let out = run_client(&server.addr, &keys.join("client-2"), &[]).await;
    assert_predicts_3(&out);
    let log = server.stop();
    assert!(log.contains("session refused: busy"), "{log}");
    assert!(log.contains("pending-material budget"), "{log}");

    // A budget below one inference: the server does not start.
    let out = Command::new(SERVER)
        .arg("--model")
        .arg(digits_dir().join("model.toml"))
        .args(["--listen", "127.0.0.1:0", "--tls"])
        .arg(keys.join("server"))
        .args(["--pending-bytes", &(per - 1).to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "below one preprocessed inference of this model in gc mode ({per} B)"
        )),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_client_is_dropped_at_its_phase_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path(), 1);
    // The idle timeout (60 s) never fires for a client that moves a frame
    // every 3 s; the offline deadline (30 s, ample for an honest client on
    // a loaded machine) does.
    let server = Server::start(
        tmp.path(),
        &keys,
        &["--timeout", "60", "--offline-deadline", "30"],
    );
    let tls = TlsFiles::client(&keys, "1").load().unwrap();
    let connector = TlsConnector::new(&tls, ChannelConfig::default()).unwrap();
    let ch = connector
        .connect(server.addr.as_str(), "localhost")
        .await
        .unwrap();
    let mut ch = Faulty::new(ch, Fault::Trickle(Duration::from_secs(3)), 1);
    let mut session = ClientSession::handshake(&mut ch, &ClientConfig::default())
        .await
        .unwrap();
    let x = vec![0u64; 256];
    let err = tokio::time::timeout(HANG, session.infer(&mut ch, &x))
        .await
        .expect("the trickler was never dropped")
        .unwrap_err();
    // The server sends an abort record with the reason; a client caught
    // writing its next (trickled) frame when the server hangs up sees the
    // connection closed instead of reading that record. Either way the
    // server's log below names the deadline.
    assert!(
        matches!(&err, Error::Aborted(m) if m.contains("offline phase ran past its deadline of 30 s"))
            || matches!(err, Error::Closed),
        "{err:?}"
    );
    // The server goes on serving.
    assert_predicts_3(&run_client(&server.addr, &keys.join("client-1"), &[]).await);
    let log = server.stop();
    assert!(
        log.contains("session failed: the offline phase ran past its deadline of 30 s"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_and_revocation_list_refuse_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path(), 3);
    let crl = tmp.path().join("crl.pem");
    let out = Command::new(SERVER)
        .args(["revoke", "--ca"])
        .arg(keys.join("ca"))
        .arg("--crl")
        .arg(&crl)
        .arg(keys.join("client-2/client.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crl_arg = crl.to_str().unwrap();
    let server = Server::start(
        tmp.path(),
        &keys,
        &["--allow-client", "1,2", "--crl", crl_arg],
    );
    assert_predicts_3(&run_client(&server.addr, &keys.join("client-1"), &[]).await);
    // A revoked certificate fails the TLS handshake. (What the client hears
    // first, the alert or the closed socket, is up to timing: the server's
    // log says it.)
    let out = run_client(&server.addr, &keys.join("client-2"), &[]).await;
    assert_fails_with(&out, "private inference with");
    let out = run_client(&server.addr, &keys.join("client-3"), &[]).await;
    assert_fails_with(&out, "client \"3\" is not on this server's allowlist");
    let log = server.stop();
    assert!(log.contains("refused: not on the allowlist"), "{log}");
    assert!(
        log.contains("handshake failed: tls: the peer's certificate has been revoked"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_text_and_health_checks_are_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path(), 1);
    let server = Server::start(tmp.path(), &keys, &[]);
    // A load balancer's probe: connect and close.
    drop(tokio::net::TcpStream::connect(&server.addr).await.unwrap());
    assert_predicts_3(&run_client(&server.addr, &keys.join("client-1"), &[]).await);
    let log = server.stop();
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log:?}");
    assert!(!log.contains("failed:"), "{log}");
    assert!(log.contains("1 inference(s), 0 failed"), "{log}");
}

#[test]
fn keygen_writes_one_bundle_per_party() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let out = Command::new(SERVER)
        .args([
            "keygen",
            "--clients",
            "2",
            "--server-name",
            "pi.example",
            "--out",
        ])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let k = keys.display();
    assert!(stdout.contains(&format!("--tls {k}/server\n")), "{stdout}");
    assert!(stdout.contains(&format!("--tls {k}/client-2 ")), "{stdout}");
    assert!(stdout.contains(&format!("{k}/ca")), "{stdout}");
    let ls = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(keys.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ls("ca"), ["ca.key", "ca.pem"]);
    assert_eq!(ls("server"), ["ca.pem", "server.key", "server.pem"]);
    assert_eq!(ls("client-1"), ["ca.pem", "client.key", "client.pem"]);
    assert_eq!(ls("client-2"), ["ca.pem", "client.key", "client.pem"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["ca/ca.key", "server/server.key", "client-2/client.key"] {
            let mode = std::fs::metadata(keys.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let mode = std::fs::metadata(keys.join("server"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    // The server certificate names the extra host; the client bundle pins the same CA.
    let server = TlsFiles::server(&keys.join("server")).load().unwrap();
    let client = TlsFiles::client(&keys.join("client-1"), "ignored")
        .load()
        .unwrap();
    assert_eq!(server.ca_certs, client.ca_certs);
}

/// Bad command lines: a clear error, non-zero exit, no panic.
#[test]
fn bad_command_lines_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path(), 1);
    let run = |bin: &str, args: &[&str]| Command::new(bin).args(args).output().unwrap();
    let refused = |out: &Output, want: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(want), "wanted {want:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    let k = keys.to_str().unwrap();
    let model = digits_dir().join("model.toml");
    let model = model.to_str().unwrap();
    // --timeout 0 is refused, not silently 1 s.
    refused(
        &run(
            SERVER,
            &[
                "--model",
                model,
                "--listen",
                "127.0.0.1:0",
                "--tls",
                k,
                "--timeout",
                "0",
            ],
        ),
        "--timeout",
    );
    refused(
        &run(
            CLIENT,
            &[
                "--connect",
                "127.0.0.1:9",
                "--tls",
                k,
                "--input",
                model,
                "--timeout",
                "0",
            ],
        ),
        "--timeout",
    );
    // Server names must be DNS names or IP addresses.
    refused(
        &run(
            SERVER,
            &[
                "keygen",
                "--out",
                tmp.path().join("k2").to_str().unwrap(),
                "--server-name",
                "bad name!",
            ],
        ),
        "neither an IP address nor a DNS name",
    );
    refused(
        &run(
            CLIENT,
            &[
                "--connect",
                "127.0.0.1:9",
                "--tls",
                k,
                "--input",
                model,
                "--server-name",
                "*.example",
            ],
        ),
        "neither an IP address nor a DNS name",
    );
    // A key readable by others: the server warns.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = keys.join("server/server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let server = Server::start(tmp.path(), &keys, &[]);
        let log = server.stop();
        assert!(log.contains("accessible to group or others"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_errors_read_as_sentences() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path(), 1);
    let other = keygen(&tmp.path().join("other"), 1);
    let server = Server::start(tmp.path(), &keys, &[]);
    // A client of another deployment: it does not trust our server's CA.
    let out = run_client(&server.addr, &other.join("client-1"), &[]).await;
    assert_fails_with(&out, "the peer's certificate is not signed by our CA");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('{') && !err.contains("Some("), "{err}");
    drop(server);
}
