//! README's "Bring your own trained network", the Rust side of each step, on
//! the fixture `models/fixtures/byo` that `models/tools/export_pytorch.py`
//! wrote from a PyTorch state dict (`gen.py` there: SNL-style per-pixel
//! masks, a channel mask, DeepReDuce culling and thinning, normalisation):
//! the model file loads, `pi-models stats` counts the ReLUs PyTorch kept, and
//! `pi-models infer` (float and fixed point) agrees with PyTorch's own logits.

mod common;

use common::ok;
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/byo")
}

fn path(name: &str) -> String {
    fixture().join(name).to_str().unwrap().to_string()
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn the_exported_model_file_matches_pytorch() {
    let model = path("model.toml");
    // The export script printed 921 of 1728 ReLUs kept.
    let stats: serde_json::Value = serde_json::from_str(&ok(&["stats", &model, "--json"])).unwrap();
    assert_eq!(stats["relus"], 921);
    assert_eq!(stats["identity"], 1728 - 921);

    let torch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path("pytorch_logits.json")).unwrap())
            .unwrap();
    let cases = torch.as_object().unwrap();
    assert_eq!(cases.len(), 3);
    for (input, expected) in cases {
        let expected = numbers(expected);
        let scale = expected.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let argmax = |xs: &[f64]| {
            (0..xs.len())
                .max_by(|&a, &b| xs[a].total_cmp(&xs[b]))
                .unwrap()
        };
        // Float inference (f64) against PyTorch's float32: rounding only.
        let float: serde_json::Value =
            serde_json::from_str(&ok(&["infer", &model, "--input", &path(input), "--json"]))
                .unwrap();
        let got = numbers(&float["logits"]);
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                (g - e).abs() <= 1e-5 * scale,
                "{input}: {got:?} vs {expected:?}"
            );
        }
        // Fixed point (the protocol's oracle): weights and activations at
        // 2^-12, so within a small fraction of the logits' scale, same class.
        let fixed: serde_json::Value = serde_json::from_str(&ok(&[
            "infer",
            &model,
            "--input",
            &path(input),
            "--fixed",
            "--json",
        ]))
        .unwrap();
        let got = numbers(&fixed["logits"]);
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                (g - e).abs() <= 5e-3 * scale,
                "{input}: {got:?} vs {expected:?}"
            );
        }
        assert_eq!(fixed["class"].as_u64().unwrap() as usize, argmax(&expected));
    }
}
