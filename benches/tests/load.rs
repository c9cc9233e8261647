//! `pi-bench load` as a process on a tiny model: a real server process (this
//! binary's `server` subcommand) and the pooled client over loopback TLS.
//! Checks that the JSON is complete and consistent; no timing thresholds.

use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_pi-bench");
const TINY: &str = "resnet18(m=2,phi=1-1-1-1,input=8,classes=3)";

#[test]
fn a_small_load_run_reports_consistent_json_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("load.svg");
    let out = Command::new(BENCH)
        .args([
            "load",
            TINY,
            "--rate",
            "2,1x",
            "--requests",
            "4",
            "--seed",
            "3",
            "--json",
            "--pool-count",
            "2",
            "--repeat",
            "3",
            "--plot",
        ])
        .arg(&plot)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["requests"], 4);
    assert_eq!(v["seed"], 3);
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    let m = &models[0];
    assert_eq!(m["spec"], TINY);
    assert!(m["relus"].as_u64().unwrap() > 0 && m["macs"].as_u64().unwrap() > 0);
    let u = &m["unloaded"];
    assert_eq!(u["bit_exact"], true);
    // Three unloaded measurements after one warm-up (the default with
    // --repeat), each on a fresh session: the figure is their median.
    assert_eq!(
        (v["repeat"].as_u64(), v["warmup"].as_u64()),
        (Some(3), Some(1))
    );
    let samples = u["samples"].as_array().unwrap();
    assert_eq!(
        (samples.len(), u["warmup"].as_array().unwrap().len()),
        (3, 1)
    );
    for key in [
        "latency_seconds",
        "offline_seconds",
        "online_only_latency_seconds",
    ] {
        let mut xs: Vec<f64> = samples.iter().map(|x| x[key].as_f64().unwrap()).collect();
        let s = &u["summary"][key];
        assert_eq!(s["n"], 3);
        assert_eq!(s["samples"].as_array().unwrap().len(), 3);
        xs.sort_by(f64::total_cmp);
        assert_eq!(u[key].as_f64(), Some(xs[1]), "{key}: the median");
        assert_eq!(s["median"].as_f64(), Some(xs[1]));
    }
    assert!(m["machine"]["seconds"].as_f64().unwrap() > 0.0);
    let f = |x: &serde_json::Value| x.as_f64().unwrap();
    assert!(f(&u["latency_seconds"]) > 0.0 && f(&u["online_only_latency_seconds"]) > 0.0);
    assert!(u["client_storage_bytes"].as_u64().unwrap() > 0);
    assert_eq!(m["pool_capacity"], 2);
    let rates = m["rates"].as_array().unwrap();
    assert_eq!(rates.len(), 2);
    assert_eq!(rates[0]["rate"], "2");
    assert_eq!(rates[0]["rate_per_second"], 2.0);
    // `1x` is the unloaded capacity.
    let one_x = f(&rates[1]["rate_per_second"]);
    assert!((one_x * f(&u["latency_seconds"]) - 1.0).abs() < 1e-9);
    for r in rates {
        let n = |k: &str| r[k].as_u64().unwrap();
        assert_eq!(n("requests"), 4);
        assert_eq!(n("completed") + n("failed"), 4, "{r}");
        assert_eq!(n("failed"), 0, "{r}");
        assert_eq!(n("bit_exact"), n("completed"));
        assert!(n("waited_for_offline") <= n("completed"));
        assert_eq!(
            f(&r["waited_fraction"]),
            n("waited_for_offline") as f64 / 4.0
        );
        for key in ["latency", "queueing_delay"] {
            let l = &r[key];
            let (min, p50, tail, max, mean) = (
                f(&l["min"]),
                f(&l["p50"]),
                f(&l["tail"]),
                f(&l["max"]),
                f(&l["mean"]),
            );
            assert!(
                0.0 <= min && min <= p50 && p50 <= tail && tail <= max,
                "{key}: {l}"
            );
            assert!(min <= mean && mean <= max, "{key}: {l}");
            // Four requests support neither p95 nor p99; the tail is p75.
            assert!(l["p95"].is_null() && l["p99"].is_null(), "{key}: {l}");
            assert_eq!(f(&l["tail_percent"]), 75.0);
            assert_eq!(l["n"], 4);
            assert!(f(&l["mean_ci95_low"]) <= mean && mean <= f(&l["mean_ci95_high"]));
        }
        assert!(r["server_cpu"]["user"].as_f64().is_some() || r["server_cpu"].is_null());
        assert!(f(&r["queueing_delay"]["mean"]) <= f(&r["latency"]["mean"]));
        assert!(f(&r["throughput"]) > 0.0);
        // The pool never held more than its capacity; every request ran one
        // offline phase, in the background or on demand.
        let p = &r["pool"];
        assert!(p["size"].as_u64().unwrap() <= 2);
        assert!(p["refills"].as_u64().unwrap() >= 4);
        assert_eq!(
            p["refills"].as_u64().unwrap() - p["background_refills"].as_u64().unwrap(),
            n("waited_for_offline")
        );
    }
    let sustainable = &m["sustainable_rate"];
    assert!(sustainable.is_null() || rates.iter().any(|r| r["rate_per_second"] == *sustainable));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("mean") && svg.contains("95% interval"));
}

#[test]
fn compare_writes_a_table_and_three_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BENCH)
        .args([
            "compare",
            TINY,
            "hrn-5x5x3x(m=2,phi=1-1-1-1,input=8,classes=3)",
            "--rate",
            "1x",
            "--requests",
            "2",
            "--plot-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ReLUs") && stdout.contains("sust.") && stdout.contains("rk"),
        "{stdout}"
    );
    for f in [
        "relus_vs_online.svg",
        "macs_vs_offline.svg",
        "latency_vs_rate.svg",
    ] {
        let svg = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(svg.contains("hrn-5x5x3x"), "{f}");
    }
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let out = Command::new(BENCH)
        .args(["load", TINY, "--rate", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be positive"));
    let out = Command::new(BENCH)
        .args(["load", "nonsense(", "--rate", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense("));
}

#[test]
fn compare_merges_earlier_load_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, spec) in [TINY, "resnet18(m=2,phi=1-1-1-1,input=8,classes=4)"]
        .iter()
        .enumerate()
    {
        let out = Command::new(BENCH)
            .args(["load", spec, "--rate", "1x", "--requests", "1", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let f = dir.path().join(format!("{i}.json"));
        std::fs::write(&f, &out.stdout).unwrap();
        files.push(f);
    }
    let out = Command::new(BENCH)
        .args(["compare", "--json", "--from"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nets = v["networks"].as_array().unwrap();
    assert_eq!(nets.len(), 2);
    assert_eq!(
        nets[1]["spec"],
        "resnet18(m=2,phi=1-1-1-1,input=8,classes=4)"
    );
    assert_eq!(nets[0]["bit_exact"], true);
    let out = Command::new(BENCH).args(["load", TINY]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate"));
}

#[test]
fn compare_runs_both_relu_modes_side_by_side() {
    let out = Command::new(BENCH)
        .args([
            "compare",
            TINY,
            "hrn-5x5x3x(m=2,phi=1-1-1-1,input=8,classes=3)",
        ])
        .args([
            "--rate",
            "1x",
            "--requests",
            "2",
            "--relu",
            "gc,ot",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = v["networks"].as_array().unwrap();
    // Each network in each mode, in that order.
    let modes: Vec<_> = rows
        .iter()
        .map(|r| r["relu_mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["gc", "ot", "gc", "ot"]);
    // One sample each: nothing can be ranked apart, every network ties first.
    for r in rows {
        for phase in ["offline", "online"] {
            assert_eq!(
                r["rank"][phase],
                serde_json::json!({"rank": 1, "tie": true}),
                "{r}"
            );
        }
        assert_eq!(r["summary"]["offline_seconds"]["n"], 1);
    }
    for pair in rows.chunks(2) {
        let (gc, ot) = (&pair[0], &pair[1]);
        assert_eq!(gc["spec"], ot["spec"]);
        assert_eq!(gc["relus"], ot["relus"]);
        assert_eq!(gc["bit_exact"], true);
        assert_eq!(ot["bit_exact"], true);
        let n = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap();
        // Storage and traffic are counted, not timed: OT mode stores far less
        // and needs more online round trips.
        assert!(
            n(ot, "client_storage_bytes") * 5 < n(gc, "client_storage_bytes"),
            "{gc}\n{ot}"
        );
        assert!(
            n(ot, "online_round_trips") > n(gc, "online_round_trips"),
            "{gc}\n{ot}"
        );
    }
}
