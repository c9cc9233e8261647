//! The real command lines as processes: `pi-client demo`, and keygen +
//! server + client in separate processes (the README's two-terminal way).
//! `pi-test-client` / `pi-test-server` are `pi_client::cli` / `pi_server::cli`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use pi_tests::{TestModel, digits_dir, digits_image, server_process};

const CLIENT: &str = env!("CARGO_BIN_EXE_pi-test-client");
const SERVER: &str = env!("CARGO_BIN_EXE_pi-test-server");

#[test]
fn demo_predicts_the_digit_with_a_server_process() {
    demo_in("gc");
}

#[test]
fn demo_in_ot_mode_predicts_the_digit() {
    demo_in("ot");
}

fn demo_in(mode: &str) {
    let out = Command::new(CLIENT)
        .args(["demo", "--relu", mode])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ReLU mode       {mode} (")),
        "{stdout}"
    );
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("listening on 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("predicted class 3\n"), "{stdout}");
    assert!(stdout.contains("true label      3 (correct)"), "{stdout}");
    for key in ["offline ", "online ", "client storage", "ReLUs"] {
        assert!(stdout.contains(key), "{key} missing: {stdout}");
    }
    assert!(stdout.contains("server: stopped cleanly"), "{stdout}");
}

#[test]
fn keygen_server_and_client_processes_are_bit_exact_and_stop_on_sigint() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let kg = Command::new(SERVER)
        .args(["keygen", "--out"])
        .arg(&keys)
        .args(["--clients", "2"])
        .output()
        .unwrap();
    assert!(
        kg.status.success(),
        "{}",
        String::from_utf8_lossy(&kg.stderr)
    );
    for f in [
        "ca/ca.pem",
        "server/server.pem",
        "server/server.key",
        "client-1/client.pem",
        "client-2/client.key",
    ] {
        assert!(keys.join(f).is_file(), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("client-2/client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let model = digits_dir().join("model.toml");
    let args: [&OsStr; 6] = [
        "--model".as_ref(),
        model.as_os_str(),
        "--max-clients".as_ref(),
        "2".as_ref(),
        "--tls".as_ref(),
        keys.as_os_str(),
    ];
    let (mut server, addr) = server_process(SERVER, &args);

    let out = Command::new(CLIENT)
        .args(["--connect", &addr, "--name", "2", "--json", "--tls"])
        .arg(&keys)
        .arg("--input")
        .arg(digits_dir().join("image0.npy"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fixed: Vec<i64> = v["logits_fixed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert_eq!(fixed, TestModel::digits().oracle(&digits_image(0)));
    assert_eq!(v["class"], 3);
    assert_eq!(v["logits"].as_array().unwrap().len(), 10);
    for phase in ["offline", "online"] {
        for k in ["seconds", "bytes_sent", "bytes_received"] {
            assert!(v[phase][k].is_number(), "{phase}.{k}");
        }
    }
    assert!(v["client_storage_bytes"].as_u64().unwrap() > 0);
    assert!(v["relus"].as_u64().unwrap() > 0);
    assert!(!v["layers"].as_array().unwrap().is_empty());

    // A wrong-shape input: a clear client-side error, and the server goes on.
    let wrong = tmp.path().join("wrong.npy");
    pi_tests::write_npy(&wrong, &[0.5; 64], &[1, 8, 8]);
    let out = Command::new(CLIENT)
        .args(["--connect", &addr, "--tls"])
        .arg(&keys)
        .arg("--input")
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad input") && err.contains("expected (1, 16, 16)"),
        "{err}"
    );
    assert!(
        server.try_wait().unwrap().is_none(),
        "the server is still running"
    );

    // Ctrl-C: stop accepting, exit 0.
    let kill = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(server.wait().unwrap().success());

    // Nobody listens any more: the client fails instead of hanging.
    let out = Command::new(CLIENT)
        .args(["--connect", &addr, "--tls"])
        .arg(&keys)
        .arg("--input")
        .arg(digits_dir().join("image0.npy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pi-client: error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_process_exits_with_an_error_when_the_server_vanishes_mid_offline() {
    use pi_protocol::ServerSession;
    use pi_protocol::transport::{ChannelConfig, TlsAcceptor};
    use pi_tests::{Fault, Faulty, Keys, TINY};

    let keys = Keys::new();
    let model = TestModel::random(TINY, 1);
    let acceptor = TlsAcceptor::new(&keys.server(), ChannelConfig::default()).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    // A real server that drops the connection three frames into the offline phase.
    let served = model.server.clone();
    let server = tokio::spawn(async move {
        let (sock, _) = tcp.accept().await.unwrap();
        let ch = acceptor.accept(sock).await.unwrap();
        let mut ch = Faulty::new(ch, Fault::Disconnect, 3);
        let mut s = ServerSession::handshake(&mut ch, &served).await.unwrap();
        assert!(s.serve_one(&mut ch).await.is_err());
    });
    let input = keys.tmp.path().join("x.npy");
    pi_tests::write_npy(&input, &[0.5; 64], &[1, 8, 8]);
    let mut cmd = tokio::process::Command::new(CLIENT);
    cmd.args(["--connect", &addr, "--timeout", "60", "--tls"])
        .arg(keys.dir())
        .arg("--input")
        .arg(&input)
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("the client process hung")
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pi-client: error: private inference with"),
        "{err}"
    );
    server.await.unwrap();
}

/// The server prints the weights' hiding (per inference and over its
/// lifetime budget) before serving, and refuses to start with a budget the
/// HE parameters cannot keep at 2^-40. A network with many outputs and few
/// weights (about 2^19.5 coefficients per inference at 256x256) keeps 2^-40
/// for about 2^60 inferences, so 2^63 is refused and the default 2^30 is not.
#[test]
fn server_checks_the_lifetime_budget_at_start_up() {
    use pi_models::Model;
    use pi_models::weights::init_weights;

    let keys = pi_tests::Keys::new();
    let spec = "2x2x2x(m=2,phi=1-1-1-1,classes=4,input=256,channels=1)";
    let model = Model::resolve(spec).unwrap();
    let weights = keys.tmp.path().join("w.safetensors");
    std::fs::write(&weights, init_weights(&model.network, 1).unwrap()).unwrap();
    let start = |budget: Option<&str>| {
        let mut cmd = Command::new(SERVER);
        cmd.args(["--model", spec, "--listen", "127.0.0.1:0", "--tls"])
            .arg(keys.dir())
            .arg("--weights")
            .arg(&weights)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(q) = budget {
            cmd.args(["--lifetime-inferences", q]);
        }
        cmd.spawn().unwrap()
    };

    let out = start(Some("2^63")).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--lifetime-inferences") && err.contains("less than the required 2^-40"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no listening line");
    let out = start(Some("many")).wait_with_output().unwrap();
    assert!(!out.status.success());

    let mut server = start(None);
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line}");
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("pi-server: HE replies hide the weights")
            && first.contains("per inference")
            && first.contains("over the lifetime budget of 1073741824 (2^30.0) inferences"),
        "{first}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
