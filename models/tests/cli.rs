//! Smoke tests of the `pi-models` binary.

mod common;

use common::{fails, ok};

#[test]
fn stats_table_and_json() {
    let t = ok(&["stats", "resnet18"]);
    assert!(
        t.contains("layer4.1.relu2") && t.contains("557056") && t.contains("555468800"),
        "{t}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["stats", "hrn-5x5x3x", "--json"])).unwrap();
    assert_eq!(v["relus"], 343_040);
    assert_eq!(v["macs"], 1_053_353_152u64);
    assert_eq!(
        v["stage_relus"],
        serde_json::json!([81_920, 81_920, 102_400, 76_800])
    );
    assert_eq!(v["layers"][0]["kind"], "conv");
    fails(&["stats", "resnet50"], "unknown network");
    fails(&["stats", "5x5x3x(input=4)"], "too small");
    fails(&["stats", "/nonexistent/model.toml"], "cannot access");
}

#[test]
fn init_then_infer_float_and_fixed() {
    let dir = common::temp_dir("cli");
    let d = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let spec = "5x5x3x(m=4,phi=1-1-1-1,classes=10,input=16,channels=1)";
    ok(&["init", spec, "--seed", "7", "--out", &d("a.safetensors")]);
    ok(&["init", spec, "--seed", "7", "--out", &d("b.safetensors")]);
    assert_eq!(
        std::fs::read(d("a.safetensors")).unwrap(),
        std::fs::read(d("b.safetensors")).unwrap()
    );

    let x: Vec<f32> = (0..256)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    common::write_npy(&dir.join("x.npy"), &[1, 16, 16], &x);
    let float: serde_json::Value = serde_json::from_str(&ok(&[
        "infer",
        spec,
        "--weights",
        &d("a.safetensors"),
        "--input",
        &d("x.npy"),
        "--json",
    ]))
    .unwrap();
    let fixed: serde_json::Value = serde_json::from_str(&ok(&[
        "infer",
        spec,
        "--weights",
        &d("a.safetensors"),
        "--input",
        &d("x.npy"),
        "--fixed",
        "--json",
    ]))
    .unwrap();
    let lf: Vec<f64> = serde_json::from_value(float["logits"].clone()).unwrap();
    let lx: Vec<f64> = serde_json::from_value(fixed["logits"].clone()).unwrap();
    let raw: Vec<i64> = serde_json::from_value(fixed["logits_fixed"].clone()).unwrap();
    assert_eq!((lf.len(), raw.len()), (10, 10));
    for i in 0..10 {
        // serde_json parsing is not correctly rounded by default: compare to 1e-12.
        assert!((lx[i] - raw[i] as f64 / (1u64 << 24) as f64).abs() < 1e-12);
        assert!((lx[i] - lf[i]).abs() < 0.05, "{} vs {}", lx[i], lf[i]);
    }
    assert!(float["class"].as_u64().unwrap() < 10);
    assert!(float.get("logits_fixed").is_none());

    // A model file whose `weights` key makes --weights optional; other ring parameters.
    std::fs::write(
        dir.join("m.toml"),
        format!("spec = \"{spec}\"\nweights = \"a.safetensors\"\n"),
    )
    .unwrap();
    let text = ok(&[
        "infer",
        &d("m.toml"),
        "--input",
        &d("x.npy"),
        "--fixed",
        "--ring-bits",
        "48",
        "--frac-bits",
        "14",
    ]);
    assert!(text.contains("class "), "{text}");

    fails(&["infer", spec, "--input", &d("x.npy")], "no weight file");
    fails(
        &[
            "infer",
            spec,
            "--weights",
            &d("x.npy"),
            "--input",
            &d("x.npy"),
        ],
        "not a valid safetensors",
    );
    fails(
        &[
            "infer",
            spec,
            "--weights",
            &d("a.safetensors"),
            "--input",
            &d("a.safetensors"),
        ],
        "bad input",
    );
    fails(
        &[
            "infer",
            spec,
            "--weights",
            &d("a.safetensors"),
            "--input",
            &d("x.npy"),
            "--fixed",
            "--ring-bits",
            "20",
        ],
        "2f < l",
    );
    fails(
        &[
            "infer",
            "resnet18",
            "--weights",
            &d("a.safetensors"),
            "--input",
            &d("x.npy"),
        ],
        "bad weights",
    );
}

/// Runs `pi-models` with backtraces requested and returns (success, stderr lines).
fn with_backtraces(args: &[&str]) -> (bool, Vec<String>) {
    let o = common::command(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (
        o.status.success(),
        err.lines().map(str::to_string).collect(),
    )
}

/// User errors are one line on stderr and a failure exit, even with
/// RUST_BACKTRACE=1: no backtrace, no "Caused by" block, no panic.
#[test]
fn user_errors_are_one_line_even_with_backtraces() {
    let dir = common::temp_dir("oneline");
    let bad_toml = dir.join("bad.toml");
    std::fs::write(&bad_toml, "spec = \n[normalization]\n").unwrap();
    let bad_toml = bad_toml.to_str().unwrap();
    let missing = dir.join("missing.toml");
    let missing = missing.to_str().unwrap();
    let out = dir.join("w.safetensors");
    let out = out.to_str().unwrap();
    for (args, needle) in [
        (vec!["stats", "resnet50"], "unknown network"),
        (vec!["stats", missing], "cannot access"),
        (vec!["stats", bad_toml], "line 1, column"),
        (
            vec!["init", "resnet18(m=2048)", "--seed", "1", "--out", out],
            "11427131492 weight parameters",
        ),
        (
            vec!["reshape", "--order", "S3>S2>S4>S1", "--out", out],
            "--pick",
        ),
    ] {
        let (success, lines) = with_backtraces(&args);
        assert!(!success, "{args:?} succeeded");
        assert_eq!(lines.len(), 1, "{args:?}: {lines:#?}");
        assert!(lines[0].starts_with("pi-models: error: "), "{lines:?}");
        assert!(lines[0].contains(needle), "{args:?}: {lines:?}");
        assert!(!lines[0].contains("panicked"), "{lines:?}");
    }
    // The too-large network was refused before anything was written.
    assert!(!dir.join("w.safetensors").exists());
}

/// `init` keeps an existing file unless --force is given.
#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = common::temp_dir("force");
    let path = dir.join("w.safetensors");
    let p = path.to_str().unwrap();
    let spec = "2x2x2x(m=2,phi=1-1-1-1,classes=3,input=8,channels=1)";
    std::fs::write(&path, b"keep me").unwrap();
    let (success, lines) = with_backtraces(&["init", spec, "--seed", "1", "--out", p]);
    assert!(!success);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("exists") && lines[0].contains("--force"),
        "{lines:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");

    ok(&["init", spec, "--seed", "1", "--out", p, "--force"]);
    let fresh = dir.join("fresh.safetensors");
    ok(&[
        "init",
        spec,
        "--seed",
        "1",
        "--out",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&fresh).unwrap()
    );
}

/// Files that never end (a device) are refused at the size cap, as input and as weights.
#[cfg(unix)]
#[test]
fn endless_files_are_refused() {
    let dir = common::temp_dir("endless");
    let spec = "2x2x2x(m=2,phi=1-1-1-1,classes=3,input=8,channels=1)";
    let w = dir.join("w.safetensors");
    let w = w.to_str().unwrap();
    ok(&["init", spec, "--seed", "1", "--out", w]);
    for (args, needle) in [
        (
            vec!["infer", spec, "--weights", w, "--input", "/dev/zero"],
            "bad input: input /dev/zero is larger than",
        ),
        (
            vec![
                "infer",
                spec,
                "--weights",
                "/dev/zero",
                "--input",
                "/dev/zero",
            ],
            "bad weights: weight file /dev/zero is larger than",
        ),
    ] {
        let (success, lines) = with_backtraces(&args);
        assert!(!success, "{args:?}");
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].contains(needle), "{args:?}: {lines:?}");
    }
}

/// A reader that goes away (`pi-models stats resnet18 | head -1`) ends the
/// command quietly: no panic, no error message, success.
#[test]
fn closed_pipe_is_not_a_panic() {
    for args in [
        &["stats", "resnet18"][..],
        &["stats", "resnet18", "--json"][..],
        &["reshape", "--order", "S3>S2>S4>S1"][..],
    ] {
        let mut child = common::command(args)
            .env("RUST_BACKTRACE", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the command writes its first line.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.is_empty(), "{args:?}: {err}");
        assert!(o.status.success(), "{args:?}: {:?}", o.status);
    }
}
