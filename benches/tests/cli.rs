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
    // Gate counts are properties of the circuits, not measurements.
    assert!(v["gc"]["relu_and_gates"].as_u64().unwrap() <= 108);
    assert!(
        v["gc"]["trunc_and_gates"].as_u64().unwrap() < v["gc"]["relu_and_gates"].as_u64().unwrap()
    );
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
