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
