//! `pi-client --input` with several files and a directory: one session for
//! all, one line per input in order, a bad file reported and skipped, the
//! others bit-exact with the fixed-point oracle, a summary at the end.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Output};

use pi_tests::{TestModel, digits_dir, digits_image, server_process, write_npy};

const CLIENT: &str = env!("CARGO_BIN_EXE_pi-test-client");
const SERVER: &str = env!("CARGO_BIN_EXE_pi-test-server");

fn start_server(keys: &Path) -> (Child, String) {
    let model = digits_dir().join("model.toml");
    let args: [&OsStr; 5] = [
        "--model".as_ref(),
        model.as_os_str(),
        "--pool-max".as_ref(),
        "2".as_ref(),
        "--tls".as_ref(),
    ];
    let mut args = args.to_vec();
    args.push(keys.as_os_str());
    server_process(SERVER, &args)
}

fn client(addr: &str, keys: &Path, extra: &[&str], inputs: &[&Path]) -> Output {
    let mut cmd = Command::new(CLIENT);
    cmd.args(["--connect", addr, "--tls"]).arg(keys);
    cmd.args(extra).arg("--input").args(inputs);
    cmd.output().unwrap()
}

fn fixed_logits(v: &serde_json::Value) -> Vec<i64> {
    v["logits_fixed"]
        .as_array()
        .unwrap_or_else(|| panic!("no logits_fixed in {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn many_inputs_run_in_one_session_and_a_bad_file_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    pi_protocol::transport::pki::keygen(&keys, &[], &["1".into()]).unwrap();
    // A directory of three digits (by name: a, b, c) with a bad file among
    // them (b: the wrong shape for the server's network), plus a lone file
    // that does not exist.
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    let write = |name: &str, i: usize| {
        let x = digits_image(i);
        write_npy(&dir.join(name), &x.data, &x.shape);
        x
    };
    let a = write("a.npy", 0);
    let c = write("c.npy", 1);
    write_npy(&dir.join("b.npy"), &[0.5; 64], &[1, 8, 8]);
    std::fs::write(dir.join("notes.txt"), "not an input").unwrap();
    let missing = tmp.path().join("missing.npy");
    let lone = tmp.path().join("d.npy");
    let d = digits_image(2);
    write_npy(&lone, &d.data, &d.shape);

    let (mut server, addr) = start_server(&keys);
    let model = TestModel::digits();

    // JSON lines: one per input in order, then the summary.
    let out = client(
        &addr,
        &keys,
        &["--json", "--pool", "2"],
        &[&dir, &missing, &lone],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "two inputs failed: {stdout}");
    assert!(stderr.contains("2 of 5 inputs failed"), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    let input = |v: &serde_json::Value| {
        Path::new(v["input"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let names: Vec<String> = lines[..5].iter().map(input).collect();
    assert_eq!(names, ["a.npy", "b.npy", "c.npy", "missing.npy", "d.npy"]);
    assert_eq!(fixed_logits(&lines[0]), model.oracle(&a));
    assert_eq!(fixed_logits(&lines[2]), model.oracle(&c));
    assert_eq!(fixed_logits(&lines[4]), model.oracle(&d));
    for ok in [&lines[0], &lines[2], &lines[4]] {
        assert!(ok["error"].is_null(), "{ok}");
        assert!(ok["online"]["bytes_sent"].as_u64().unwrap() > 0, "{ok}");
        assert!(
            ok["latency_seconds"].as_f64().unwrap() >= ok["queueing_seconds"].as_f64().unwrap()
        );
    }
    let bad = lines[1]["error"].as_str().unwrap();
    assert!(bad.contains("bad input") && bad.contains("b.npy"), "{bad}");
    assert!(lines[3]["error"].as_str().unwrap().contains("missing.npy"));
    let s = &lines[5]["summary"];
    assert_eq!(
        (&s["inputs"], &s["completed"], &s["failed"]),
        (&5.into(), &3.into(), &2.into()),
        "{s}"
    );
    assert!(s["session_error"].is_null(), "{s}");
    // One session: every inference's offline phase ran in it, and none was
    // handed out twice (the pool ran at least one per answer).
    assert!(s["pool"]["refills"].as_u64().unwrap() >= 3, "{s}");
    assert!(s["pool"]["capacity"].as_u64().unwrap() <= 2, "{s}");

    // Text: one line per input and the summary; no pool at all (--pool 0).
    let out = client(&addr, &keys, &["--pool", "0"], &[&dir]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(lines[0].contains("a.npy: class 3 "), "{stdout}");
    assert!(lines[1].contains("b.npy: error: bad input"), "{stdout}");
    assert!(lines[2].contains("c.npy: class "), "{stdout}");
    assert!(
        lines[3].starts_with("3 inputs: 2 done, 1 failed"),
        "{stdout}"
    );
    assert!(
        lines[4].contains("2 of 2 ran their offline phase on demand"),
        "{stdout}"
    );

    assert!(server.try_wait().unwrap().is_none(), "the server runs on");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn batch_options_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    // A directory without inputs: refused before connecting (nobody listens).
    let out = client("127.0.0.1:9", tmp.path(), &[], &[&empty]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no .npy file"), "{err}");
    for (flag, value) in [("--pool-bytes", "12 parsecs"), ("--pool", "5000")] {
        let out = client("127.0.0.1:9", tmp.path(), &[flag, value], &[&empty]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag}: {err}");
    }
}
