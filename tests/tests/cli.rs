//! The command lines as processes: every bad option is refused with an
//! error that names it (non-zero exit, no panic, nothing served), and
//! `pi-client --json` reports the fields the README documents, in both ReLU
//! modes.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use pi_tests::{Keys, TINY, TestModel, digits_dir, digits_image, server_process};

const CLIENT: &str = env!("CARGO_BIN_EXE_pi-test-client");
const SERVER: &str = env!("CARGO_BIN_EXE_pi-test-server");

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Refused: non-zero exit, every wanted text on stderr, no panic, no
/// listening line.
fn assert_refused(out: &Output, wants: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for want in wants {
        assert!(err.contains(want), "wanted {want:?} in {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "a refused server must not listen"
    );
}

fn server_args<'a>(keys: &'a str, model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--model", model, "--listen", "127.0.0.1:0", "--tls", keys];
    v.extend_from_slice(extra);
    v
}

#[test]
fn bad_server_options_are_refused_by_name() {
    let keys = Keys::new();
    let k = keys.dir();
    let k = k.to_str().unwrap();
    let model = digits_dir().join("model.toml");
    let model = model.to_str().unwrap();
    for (extra, wants) in [
        (
            &["--relu", "fast"][..],
            &["--relu", "expected gc or ot"][..],
        ),
        (&["--relu", "gc,xx"], &["--relu", "expected gc or ot"]),
        (&["--link", "fast"], &["--link"]),
        (&["--link", "100mbit"], &["--link"]),
        (&["--link", "100mbit,-1ms"], &["--link"]),
        (&["--pool-max", "0"], &["--pool-max"]),
        (&["--pool-max", "1025"], &["--pool-max"]),
        (&["--pool-max", "many"], &["--pool-max"]),
        (&["--timeout", "0"], &["--timeout"]),
        (&["--timeout", "604801"], &["--timeout"]),
        (&["--timeout", "soon"], &["--timeout"]),
        (&["--max-clients", "0"], &["--max-clients"]),
        (
            &["--lifetime-inferences", "2^x"],
            &["--lifetime-inferences"],
        ),
    ] {
        let out = run(SERVER, &server_args(k, model, extra));
        assert_refused(&out, wants);
    }
    // A spec has no weights: --weights is required, and must exist.
    let out = run(SERVER, &server_args(k, TINY, &[]));
    assert_refused(&out, &["cannot load model", "no weight file"]);
    let missing = keys.tmp.path().join("missing.safetensors");
    let out = run(
        SERVER,
        &server_args(k, TINY, &["--weights", missing.to_str().unwrap()]),
    );
    assert_refused(&out, &["cannot load model", "missing.safetensors"]);
    // Required options.
    let out = run(SERVER, &["--model", model, "--tls", k]);
    assert_refused(&out, &["--listen"]);
}

#[test]
fn bad_client_options_are_refused_by_name() {
    let keys = Keys::new();
    let k = keys.dir();
    let k = k.to_str().unwrap();
    let input = digits_dir().join("image0.npy");
    let input = input.to_str().unwrap();
    let base = ["--connect", "127.0.0.1:9", "--tls", k, "--input", input];
    for (extra, wants) in [
        (
            &["--relu", "fast"][..],
            &["--relu", "expected gc or ot"][..],
        ),
        // The client asks for one mode.
        (&["--relu", "gc,ot"], &["--relu"]),
        (&["--link", "fast"], &["--link"]),
        (&["--link", "1gbit,soon"], &["--link"]),
        (&["--timeout", "0"], &["--timeout"]),
        (&["--timeout", "604801"], &["--timeout"]),
        (&["--model", "7x7x(m=1)"], &["model"]),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        assert_refused(&run(CLIENT, &args), wants);
    }
    // Required options, and an input that does not exist (refused before connecting).
    assert_refused(&run(CLIENT, &base[..4]), &["--input"]);
    let mut args = base.to_vec();
    args[5] = "/nonexistent/x.npy";
    assert_refused(&run(CLIENT, &args), &["pi-client: error", "x.npy"]);
}

/// A `pi-server` process allowing both modes; returns it and its address.
fn start_server(keys: &Path) -> (std::process::Child, String) {
    let (model, tls) = (digits_dir().join("model.toml"), keys.join("server"));
    let args: [&OsStr; 6] = [
        "--model".as_ref(),
        model.as_os_str(),
        "--relu".as_ref(),
        "gc,ot".as_ref(),
        "--tls".as_ref(),
        tls.as_os_str(),
    ];
    server_process(SERVER, &args)
}

#[test]
fn client_json_reports_mode_tables_and_round_trips_in_both_modes() {
    let keys = Keys::new();
    let (mut server, addr) = start_server(&keys.dir());
    let model = TestModel::digits();
    let net = &model.model.network;
    let layers = net.activations().count() as u64;
    let stats = net.stats();
    let oracle = model.oracle(&digits_image(0));
    for (mode, per_layer) in [("gc", 1), ("ot", 5)] {
        let out = Command::new(CLIENT)
            .args(["--connect", &addr, "--json", "--relu", mode, "--tls"])
            .arg(keys.dir())
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
        assert_eq!(v["relu_mode"], mode);
        // One round trip for input and logits, then per activation layer
        // one (GC) or the AND-tree depth plus two (OT, l = 37, f = 12).
        assert_eq!(
            v["online_round_trips"].as_u64(),
            Some(1 + per_layer * layers),
            "{mode}"
        );
        let tables = v["garbled_table_bytes"].as_u64().unwrap();
        let storage = v["client_storage_bytes"].as_u64().unwrap();
        if mode == "gc" {
            assert!(tables > 0 && storage > tables, "{tables} of {storage}");
        } else {
            assert_eq!(tables, 0);
            assert!(storage > 0);
        }
        assert_eq!(v["relus"].as_u64(), Some(stats.relus));
        assert_eq!(v["identity"].as_u64(), Some(stats.identity));
        assert_eq!(v["activations"]["relus"].as_u64(), Some(stats.relus));
        let fixed: Vec<i64> = v["logits_fixed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        assert_eq!(fixed, oracle, "{mode}");
        assert_eq!(v["class"], 3);
        for phase in ["offline", "online"] {
            for k in ["seconds", "bytes_sent", "bytes_received"] {
                assert!(v[phase][k].is_number(), "{mode}: {phase}.{k}");
            }
        }
        let steps = v["layers"].as_array().unwrap();
        assert_eq!(steps.len(), net.steps.len());
        assert_eq!(
            steps.iter().filter(|l| l["kind"] == "relu").count() as u64,
            layers
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
