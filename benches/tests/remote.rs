//! `pi-bench load` against a server it did not start (`--connect`), and with
//! several clients: a server process started here (this binary's hidden
//! `server` subcommand, the pi-server command line), tiny models, JSON
//! checked for consistency and oracle checks; no timing thresholds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BENCH: &str = env!("CARGO_BIN_EXE_pi-bench");
const TINY: &str = "resnet18(m=2,phi=1-1-1-1,input=8,classes=3)";

/// A running server process; it stops when its standard input closes.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn start_server(keys: &Path, weights: &Path) -> Server {
    let mut cmd = Command::new(BENCH);
    cmd.args(["server", "--model", TINY, "--weights"])
        .arg(weights)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--relu",
            "gc,ot",
            "--pool-max",
            "2",
        ])
        .arg("--tls")
        .arg(keys)
        .stdin(Stdio::piped())
        .stderr(Stdio::null());
    let (child, addr) = pi_tests::spawn_listening(cmd);
    Server { child, addr }
}

/// Keys for a server and clients 1 and 2, and seeded weights of TINY.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let keys = dir.join("keys");
    pi_protocol::transport::pki::keygen(&keys, &[], &["1".into(), "2".into()]).unwrap();
    let model = pi_models::Model::resolve(TINY).unwrap();
    let weights = dir.join("w.safetensors");
    std::fs::write(
        &weights,
        pi_models::weights::init_weights(&model.network, 5).unwrap(),
    )
    .unwrap();
    (keys, weights)
}

fn bench(args: &[&str], extra: &[&Path]) -> Output {
    Command::new(BENCH).args(args).args(extra).output().unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn remote_load_with_two_clients_checks_every_answer_against_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, weights) = setup(dir.path());
    let server = start_server(&keys, &weights);
    let out = bench(
        &[
            "load",
            "--connect",
            &server.addr,
            "--clients",
            "2",
            "--rate",
            "3",
            "--requests",
            "6",
            "--pool-count",
            "1",
            "--seed",
            "4",
            "--json",
            "--tls",
        ],
        &[&keys, Path::new("--weights"), &weights],
    );
    let v = json_of(&out);
    assert_eq!(v["server"], server.addr.as_str());
    assert_eq!(
        (n(&v["clients"]), v["oracle"].as_str()),
        (2, Some("checked"))
    );
    let m = &v["models"][0];
    // The network came from the handshake.
    assert_eq!(
        m["spec"],
        "2x2x2x(m=2,phi=1-1-1-1,classes=3,input=8,channels=3)"
    );
    assert_eq!(m["spec"], m["canonical"]);
    assert!(n(&m["relus"]) > 0);
    assert_eq!(m["unloaded"]["bit_exact"], true);
    // The server announced its pool limit of two.
    assert!(n(&m["pool_capacity"]) <= 1);
    let r = &m["rates"][0];
    assert_eq!((n(&r["requests"]), n(&r["failed"])), (6, 0), "{r}");
    assert_eq!(r["bit_exact"], r["completed"], "{r}");
    // Not visible from a remote client.
    assert!(r["server_cpu"].is_null() && r["server_peak_rss_bytes"].is_null());
    let clients = r["per_client"].as_array().unwrap();
    assert_eq!(clients.len(), 2);
    let names: Vec<&str> = clients
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["1", "2"]);
    let sum = |k: &str| clients.iter().map(|c| n(&c[k])).sum::<u64>();
    assert_eq!(sum("requests"), 6);
    assert_eq!(sum("completed"), n(&r["completed"]));
    assert_eq!(sum("bit_exact"), n(&r["bit_exact"]));
    assert_eq!(sum("waited_for_offline"), n(&r["waited_for_offline"]));
    // Aggregate and per-client latencies are over the same requests.
    let f = |x: &serde_json::Value| x.as_f64().unwrap();
    assert_eq!(n(&r["latency"]["n"]), 6);
    for c in clients {
        assert_eq!(n(&c["latency"]["n"]), n(&c["completed"]));
        if n(&c["completed"]) > 0 {
            assert!(f(&c["latency"]["max"]) <= f(&r["latency"]["max"]));
            assert!(f(&c["latency"]["min"]) >= f(&r["latency"]["min"]));
        }
        // Each client's own pool: refills = its requests' offline phases.
        let p = &c["pool"];
        assert_eq!(
            n(&p["refills"]) - n(&p["background_refills"]),
            n(&c["waited_for_offline"])
        );
    }
}

#[test]
fn remote_load_without_weights_says_it_did_not_check() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, weights) = setup(dir.path());
    let server = start_server(&keys, &weights);
    // A client bundle, the network pinned by its spec, OT mode.
    let bundle = keys.join("client-2");
    let out = bench(
        &[
            "load",
            TINY,
            "--connect",
            &server.addr,
            "--rate",
            "1x",
            "--requests",
            "2",
            "--relu",
            "ot",
            "--json",
            "--tls",
        ],
        &[&bundle],
    );
    let v = json_of(&out);
    assert!(v["oracle"].as_str().unwrap().starts_with("skipped"), "{v}");
    let m = &v["models"][0];
    assert_eq!(
        (m["spec"].as_str(), m["relu_mode"].as_str()),
        (Some(TINY), Some("ot"))
    );
    assert!(m["unloaded"]["bit_exact"].is_null());
    let r = &m["rates"][0];
    assert_eq!(n(&r["completed"]), 2);
    assert!(r["bit_exact"].is_null() && r["per_client"].is_null(), "{r}");

    // A server serving another network than the one pinned: refused.
    let out = bench(
        &[
            "load",
            "resnet18(m=2,phi=1-1-1-1,input=8,classes=4)",
            "--connect",
            &server.addr,
            "--rate",
            "1",
            "--requests",
            "1",
            "--tls",
        ],
        &[&bundle],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&server.addr), "{err}");
}

#[test]
fn local_load_with_two_clients_reports_the_server_per_rate() {
    let out = bench(
        &[
            "load",
            TINY,
            "--clients",
            "2",
            "--rate",
            "4",
            "--requests",
            "4",
            "--pool-count",
            "1",
            "--json",
        ],
        &[],
    );
    let v = json_of(&out);
    assert_eq!((n(&v["clients"]), v["server"].is_null()), (2, true));
    let r = &v["models"][0]["rates"][0];
    assert_eq!(r["bit_exact"], r["completed"]);
    assert_eq!(r["per_client"].as_array().unwrap().len(), 2);
    assert!(r["server_cpu"]["user"].as_f64().is_some(), "{r}");
    assert!(n(&r["server_peak_rss_bytes"]) > 1 << 20, "{r}");
}

#[test]
fn remote_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = setup(dir.path());
    let fails = |args: &[&str], extra: &[&Path], want: &str| {
        let out = bench(args, extra);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    };
    // --connect needs --tls, --tls needs --connect.
    fails(
        &["load", "--connect", "127.0.0.1:9", "--rate", "1"],
        &[],
        "--tls",
    );
    fails(
        &["load", TINY, "--rate", "1", "--tls"],
        &[&keys],
        "--connect",
    );
    // A remote server announces its own pool limit.
    fails(
        &[
            "load",
            "--connect",
            "127.0.0.1:9",
            "--rate",
            "1",
            "--server-pool-max",
            "2",
            "--tls",
        ],
        &[&keys],
        "--server-pool-max",
    );
    // One network per server.
    fails(
        &[
            "load",
            TINY,
            TINY,
            "--connect",
            "127.0.0.1:9",
            "--rate",
            "1",
            "--tls",
        ],
        &[&keys],
        "at most one SPEC",
    );
    // Names: one per client.
    fails(
        &[
            "load",
            "--connect",
            "127.0.0.1:9",
            "--rate",
            "1",
            "--clients",
            "2",
            "--name",
            "1",
            "--tls",
        ],
        &[&keys],
        "one per client",
    );
    fails(
        &["load", TINY, "--rate", "1", "--clients", "0"],
        &[],
        "--clients",
    );
    // Nobody listens: a clear error naming the address, no hang.
    fails(
        &["load", "--connect", "127.0.0.1:9", "--rate", "1", "--tls"],
        &[&keys],
        "127.0.0.1:9",
    );
    // Without --connect a model is needed.
    fails(&["load", "--rate", "1"], &[], "SPECS");
}
