//! Smoke tests of the `pi-bench` binary: small sizes, JSON shape and sanity (no timing thresholds).

use std::process::Command;

fn pi_bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_pi-bench"))
        .args(args)
        .output()
        .expect("run pi-bench");
    assert!(
        out.status.success(),
        "pi-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn primitives_json_has_the_documented_fields() {
    let v = pi_bench(&[
        "primitives",
        "--json",
        "--gc-log2",
        "8",
        "--ot-log2",
        "10",
        "--silent-log2",
        "16",
        "--reps",
        "1",
        "--tls-mib",
        "4",
        "--repeat",
        "2",
    ]);
    for (group, key) in [
        ("gc", "garble_ns_per_and"),
        ("gc", "eval_ns_per_and"),
        ("gc", "relu_and_gates"),
        ("gc", "relu_bytes"),
        ("gc", "trunc_and_gates"),
        ("ot", "iknp_ots_per_second"),
        ("ot", "base_ot_ms"),
        ("ot", "silent_ots_per_second"),
        ("ot", "silent_bytes_per_ot"),
        ("tls", "bulk_bytes_per_second"),
    ] {
        let x = v[group][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{group}.{key} missing in {v}"));
        assert!(x > 0.0, "{group}.{key} = {x}");
    }
    // Two independent measurements, summarised field by field.
    assert_eq!(v["repeat"], 2);
    let s = &v["summary"]["gc"]["garble_ns_per_and"];
    assert_eq!(s["n"], 2);
    assert_eq!(s["samples"].as_array().unwrap().len(), 2);
    assert!(s["ci95_low"].as_f64().unwrap() <= s["median"].as_f64().unwrap());
    assert_eq!(
        v["summary"]["gc"]["relu_and_gates"]["min"],
        v["summary"]["gc"]["relu_and_gates"]["max"]
    );
    assert!(v["machine"]["seconds"].as_f64().unwrap() > 0.0);
    // Both garbling schemes side by side; `gc` is the protocol's (three-halves).
    assert_eq!(v["gc"]["scheme"], "three-halves");
    let hg = &v["garbling"]["half-gates"];
    let th = &v["garbling"]["three-halves"];
    assert_eq!(hg["relu_bytes"], 2679);
    assert!(th["relu_bytes"].as_u64().unwrap() < hg["relu_bytes"].as_u64().unwrap());
    assert!(th["eval_ns_per_and"].as_f64().unwrap() > 0.0);
    // Gate counts are properties of the circuits, not measurements.
    assert!(v["gc"]["relu_and_gates"].as_u64().unwrap() <= 108);
    assert!(
        v["gc"]["trunc_and_gates"].as_u64().unwrap() < v["gc"]["relu_and_gates"].as_u64().unwrap()
    );
}

#[test]
fn primitives_measures_the_chosen_garbling_scheme_only() {
    let v = pi_bench(&[
        "primitives",
        "--json",
        "--gc-log2",
        "8",
        "--ot-log2",
        "10",
        "--reps",
        "1",
        "--tls-mib",
        "1",
        "--garbling",
        "half-gates",
    ]);
    assert_eq!(v["gc"]["scheme"], "half-gates");
    assert_eq!(v["gc"]["relu_bytes"], 2679);
    assert!(v["garbling"]["three-halves"].is_null());
    let out = Command::new(env!("CARGO_BIN_EXE_pi-bench"))
        .args(["primitives", "--garbling", "quarter-gates"])
        .output()
        .expect("run pi-bench");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("three-halves"));
}

#[test]
fn he_verifies_every_layer_of_a_small_network() {
    let v = pi_bench(&[
        "he",
        "resnet18(m=2,input=8,classes=5)",
        "--json",
        "--verify",
        "--threads",
        "1",
        "--repeat",
        "2",
    ]);
    let layers = v["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 21, "stem, 16 block convs, 3 shortcuts, FC");
    let up: u64 = layers
        .iter()
        .map(|l| l["bytes_client_to_server"].as_u64().unwrap())
        .sum();
    assert!(
        v["bytes_client_to_server"].as_u64().unwrap() > up,
        "total includes the public key"
    );
    assert_eq!(v["verified"], true);
    let s = &v["summary"]["seconds"];
    assert_eq!(s["n"], 2);
    assert_eq!(
        s["samples"][1], v["seconds"],
        "the last run is the one reported"
    );
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let out = Command::new(env!("CARGO_BIN_EXE_pi-bench"))
        .args(["he", "7x(m=2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("network") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn e2e_over_tls_is_bit_exact_and_reports_costs() {
    let v = pi_bench(&["e2e", "resnet18(m=2,input=8,classes=5)", "--json"]);
    assert_eq!(v["bit_exact"], true, "{v}");
    assert_eq!(v["logits_fixed"], v["oracle_logits_fixed"]);
    assert_eq!(v["logits"].as_array().expect("logits").len(), 5);
    assert!(v["class"].as_u64().expect("class") < 5);
    let relus = v["relus"].as_u64().expect("relus");
    assert!(relus > 0);
    for phase in ["offline", "online"] {
        for key in ["seconds", "bytes_sent", "bytes_received"] {
            assert!(
                v[phase][key]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{phase}.{key} missing"))
                    > 0.0,
                "{phase}.{key}"
            );
        }
    }
    let storage = v["client_storage_bytes"]
        .as_u64()
        .expect("client_storage_bytes");
    let per_relu = v["client_storage_bytes_per_relu"]
        .as_f64()
        .expect("per relu");
    assert!((per_relu - storage as f64 / relus as f64).abs() < 1e-6);
    let online = v["online"]["bytes_sent"].as_u64().unwrap()
        + v["online"]["bytes_received"].as_u64().unwrap();
    assert!(
        (v["online_bytes_per_relu"]
            .as_f64()
            .expect("online per relu")
            - online as f64 / relus as f64)
            .abs()
            < 1e-6
    );
    assert!(!v["layers"].as_array().expect("layers").is_empty());
    assert_eq!(v["server"]["inferences"], 1);
    assert_eq!(v["server"]["failed"], 0);
    // The server's own report of the inference: both phases, seconds and bytes.
    let reports = v["server"]["reports"].as_array().expect("server reports");
    assert_eq!(reports.len(), 1);
    assert!(reports[0]["offline"]["bytes_sent"].as_u64().unwrap() > 0);
    assert_eq!(
        reports[0]["online"]["bytes_received"].as_u64(),
        v["online"]["bytes_sent"].as_u64(),
        "server receives online what the client sends"
    );
}

#[test]
fn e2e_bad_spec_and_missing_files_are_errors_not_panics() {
    for args in [
        &["e2e", "7x(m=2"][..],
        &[
            "e2e",
            "resnet18(m=2,input=8,classes=5)",
            "--weights",
            "/nonexistent/w.bin",
        ],
        &[
            "e2e",
            "resnet18(m=2,input=8,classes=5)",
            "--input",
            "/nonexistent/x.npy",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pi-bench"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Error") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// Checks a `summary` object: its samples, order and interval.
fn check_summary(s: &serde_json::Value, samples: &[f64]) {
    let f = |k: &str| {
        s[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {s}"))
    };
    assert_eq!(s["n"].as_u64(), Some(samples.len() as u64), "{s}");
    let got: Vec<f64> = s["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), samples.len());
    for (a, b) in got.iter().zip(samples) {
        assert!((a - b).abs() < 1e-12, "{got:?} vs {samples:?}");
    }
    assert!(
        f("min") <= f("ci95_low") && f("ci95_low") <= f("median"),
        "{s}"
    );
    assert!(
        f("median") <= f("ci95_high") && f("ci95_high") <= f("max"),
        "{s}"
    );
    assert!(
        s["ci_method"]
            .as_str()
            .unwrap()
            .contains("order statistics")
    );
}

#[test]
fn e2e_repeat_measures_each_inference_on_a_fresh_session() {
    let v = pi_bench(&[
        "e2e",
        "resnet18(m=2,input=8,classes=5)",
        "--repeat",
        "3",
        "--warmup",
        "1",
        "--json",
    ]);
    assert_eq!(v["bit_exact"], true, "{v}");
    assert_eq!(
        (v["repeat"].as_u64(), v["warmup"].as_u64()),
        (Some(3), Some(1))
    );
    let runs = v["runs"].as_array().unwrap();
    let warmup = v["warmup_runs"].as_array().unwrap();
    assert_eq!((runs.len(), warmup.len()), (3, 1));
    // One connection and session per inference: the server saw four, and each
    // inference was the first (number 0) of its session.
    assert_eq!(v["server"]["connections"], 4);
    assert_eq!(v["server"]["inferences"], 4);
    assert_eq!(v["server"]["reports"].as_array().unwrap().len(), 4);
    for r in runs.iter().chain(warmup) {
        assert_eq!(r["inference"], 0, "{r}");
        assert_eq!(r["bit_exact"], true);
    }
    // The summaries hold exactly the measured runs, warm-up excluded.
    for key in ["offline_seconds", "online_seconds", "wall_seconds"] {
        let xs: Vec<f64> = runs.iter().map(|r| r[key].as_f64().unwrap()).collect();
        check_summary(&v["summary"][key], &xs);
    }
    // CPU time of each party, from the OS (Linux), per phase.
    if std::path::Path::new("/proc/self/stat").exists() {
        for party in ["client", "server"] {
            for phase in ["offline", "online"] {
                let xs: Vec<f64> = runs
                    .iter()
                    .map(|r| {
                        let c = &r["cpu"][party][phase];
                        c["user"].as_f64().unwrap() + c["system"].as_f64().unwrap()
                    })
                    .collect();
                check_summary(&v["summary"][format!("{party}_{phase}_cpu_seconds")], &xs);
            }
        }
        let m = &v["machine"];
        assert!(
            m["load_average_start"]
                .as_array()
                .is_some_and(|a| a.len() == 3),
            "{m}"
        );
        assert!(m["own_cores"].as_f64().unwrap() >= 0.0 && m["busy"].is_boolean());
    }
}

/// Each party's peak memory is measured per inference, beside its CPU time.
#[test]
fn e2e_reports_each_partys_peak_memory() {
    let v = pi_bench(&["e2e", "resnet18(m=2,input=8,classes=5)", "--json"]);
    let run = &v["runs"][0];
    for party in ["client", "server"] {
        let b = run["peak_rss_bytes"][party]
            .as_u64()
            .unwrap_or_else(|| panic!("{party} peak missing: {run}"));
        // At least a megabyte (a process with the runtime loaded), well
        // under the machine.
        assert!(b > 1 << 20 && b < 1 << 40, "{party}: {b}");
        let s = &v["summary"][format!("{party}_peak_rss_bytes")];
        assert_eq!(s["n"], 1, "{s}");
        assert_eq!(s["median"].as_f64(), Some(b as f64));
    }
}

/// The scaling study: one row per network and mode, each bit-exact with its
/// costs, a fit per mode and metric over the networks, and two plots per mode.
#[test]
fn scale_measures_every_network_in_every_mode_and_fits_the_costs() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let specs = [
        "resnet18(m=2,input=8,classes=5)",
        "resnet18(m=4,input=8,classes=5)",
        "resnet18(m=2,input=16,classes=5)",
        "5x5x3x(m=2,input=8,classes=5)",
    ];
    let mut args = vec!["scale"];
    args.extend(specs);
    args.extend(["--relu", "gc,ot", "--repeat", "1", "--json", "--plot-dir"]);
    let plot_dir = plots.to_str().unwrap();
    args.push(plot_dir);
    let v = pi_bench(&args);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 8, "{v}");
    assert_eq!(v["failed"].as_array().map(Vec::len), Some(0));
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["spec"], specs[i / 2]);
        assert_eq!(r["relu_mode"], ["gc", "ot"][i % 2]);
        assert_eq!(r["bit_exact"], true, "{r}");
        assert!(r["relus"].as_u64().unwrap() > 0);
        assert!(r["macs"].as_u64().unwrap() > 0);
        assert_eq!(r["offline_seconds"]["n"], 1);
        for key in ["offline_bytes", "online_bytes", "client_storage_bytes"] {
            assert!(r[key].as_u64().unwrap() > 0, "{key}: {r}");
        }
        for party in ["client", "server"] {
            assert!(
                r[format!("{party}_peak_rss_bytes")]["median"]
                    .as_f64()
                    .unwrap()
                    > 0.0
            );
        }
    }
    // Bigger networks cost more bytes, in either mode.
    for mode in 0..2 {
        let bytes = |i: usize| rows[2 * i + mode]["offline_bytes"].as_u64().unwrap();
        assert!(bytes(1) > bytes(0) && bytes(2) > bytes(0));
    }
    let fits = v["fits"].as_array().expect("fits");
    assert_eq!(fits.len(), 10, "five metrics in each of two modes: {v}");
    for f in fits {
        for key in ["per_relu", "per_mac", "intercept", "r2"] {
            assert!(f[key].as_f64().is_some_and(f64::is_finite), "{key}: {f}");
        }
        assert_eq!(f["residuals"].as_array().map(Vec::len), Some(4));
    }
    for mode in ["gc", "ot"] {
        for plot in ["relus_vs_online", "macs_vs_offline"] {
            let p = plots.join(format!("{mode}_{plot}.svg"));
            let svg = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            assert!(svg.contains("<svg"), "{p:?}");
        }
    }
}

/// `load` and `compare` take the client's budgets: a storage budget below
/// one inference's material is refused with both figures, and material can
/// live on disk.
#[test]
fn load_takes_the_clients_budgets_and_storage_directory() {
    let out = Command::new(env!("CARGO_BIN_EXE_pi-bench"))
        .args([
            "load",
            "resnet18(m=2,input=8,classes=5)",
            "--rate",
            "1",
            "--requests",
            "1",
            "--max-storage",
            "1KiB",
        ])
        .output()
        .expect("run pi-bench");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("storage budget allows")
            && err.contains("(1024 bytes)")
            && !err.contains("panicked"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("material");
    let v = pi_bench(&[
        "load",
        "resnet18(m=2,input=8,classes=5)",
        "--relu",
        "gc,ot",
        "--rate",
        "1",
        "--requests",
        "2",
        "--storage-dir",
        store.to_str().unwrap(),
        "--json",
    ]);
    for m in v["models"].as_array().expect("models") {
        assert_eq!(m["unloaded"]["bit_exact"], true, "{m}");
        assert_eq!(m["rates"][0]["bit_exact"], 2, "{m}");
    }
    // Every file was consumed and removed.
    let left: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
