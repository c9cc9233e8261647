//! The PyTorch-made fixtures in `models/fixtures/` (see the READMEs there):
//! the loader reads real `state_dict` files, the float path matches PyTorch,
//! and the fixed-point oracle matches the Python emulation of the shared semantics.
//! `PI_MODELS_FIXTURES` may point elsewhere (a checkout where they live).

mod common;

use ndarray::{Array1, Array2};
use ndarray_npy::ReadNpyExt;
use pi_models::fixed::{forward_fixed, quantize_input};
use pi_models::float::forward_float;
use pi_models::model::read_npy_f32;
use pi_models::predict::argmax;
use pi_models::{Model, RingParams};
use std::path::PathBuf;

/// The fixtures are part of the repository, so a missing folder is a failure, not a skip.
fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("PI_MODELS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"));
    if dir.join("torch_check").is_dir() && dir.join("digits").is_dir() {
        Some(dir)
    } else {
        panic!(
            "fixtures not found in {} (set PI_MODELS_FIXTURES)",
            dir.display()
        );
    }
}

fn npy_f32(p: PathBuf) -> (Vec<f32>, Vec<usize>) {
    read_npy_f32(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn torch_check_cases() {
    let Some(dir) = fixtures() else { return };
    let dir = dir.join("torch_check");
    let cases: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("cases.toml")).unwrap()).unwrap();
    assert!(cases.len() >= 2);
    let ring = RingParams::default();
    for (name, case) in &cases {
        let get = |k: &str| case[k].as_str().unwrap().to_string();
        let model = Model::resolve(&get("spec")).unwrap();
        let folded = model.load_weights(Some(&dir.join(get("weights")))).unwrap();
        let (x, shape) = npy_f32(dir.join(get("input")));
        let x = model.prepare_input(x, &shape).unwrap();
        let want: Vec<f32> = npy_f32(dir.join(get("logits"))).0;
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let got = forward_float(&model.network, &folded, &xf);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - *w as f64).abs() < 1e-4 * (1.0 + w.abs() as f64),
                "case {name}: {got:?} vs {want:?}"
            );
        }
        let want_fixed =
            Array1::<i64>::read_npy(std::fs::File::open(dir.join(get("logits_fixed"))).unwrap())
                .unwrap();
        let q = model.quantize(&folded, ring).unwrap();
        let out = forward_fixed(&model.network, &q, &quantize_input(&x, ring).unwrap());
        let signed: Vec<i64> = out.iter().map(|&v| ring.to_signed(v)).collect();
        assert_eq!(signed, want_fixed.to_vec(), "case {name}: fixed logits");
    }
}

#[test]
fn digits_model_matches_python() {
    let Some(dir) = fixtures() else { return };
    let dir = dir.join("digits");
    let model = Model::resolve(dir.join("model.toml").to_str().unwrap()).unwrap();
    let folded = model.load_weights(None).unwrap();
    let ring = RingParams::default();
    let q = model.quantize(&folded, ring).unwrap();
    let (xs, shape) = npy_f32(dir.join("test_x.npy"));
    assert_eq!(shape[1..], [1, 16, 16]);
    let labels =
        Array1::<i64>::read_npy(std::fs::File::open(dir.join("test_y.npy")).unwrap()).unwrap();
    let want =
        Array2::<i64>::read_npy(std::fs::File::open(dir.join("test_logits_fixed.npy")).unwrap())
            .unwrap();
    let (mut correct, mut exact, mut float_correct, mut agree) = (0, 0, 0, 0);
    let n = shape[0];
    for i in 0..n {
        let x = model
            .prepare_input(xs[i * 256..(i + 1) * 256].to_vec(), &[1, 16, 16])
            .unwrap();
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let float_class = argmax(&forward_float(&model.network, &folded, &xf));
        float_correct += usize::from(float_class as i64 == labels[i]);
        let out = forward_fixed(&model.network, &q, &quantize_input(&x, ring).unwrap());
        let signed: Vec<i64> = out.iter().map(|&v| ring.to_signed(v)).collect();
        let class = (0..signed.len()).fold(0, |b, j| if signed[j] > signed[b] { j } else { b });
        correct += usize::from(class as i64 == labels[i]);
        agree += usize::from(class == float_class);
        exact += usize::from(signed == want.row(i).to_vec());
    }
    eprintln!(
        "digits: float {float_correct}/{n} correct, fixed {correct}/{n} correct, \
         {agree}/{n} fixed/float agree, {exact}/{n} bit-exact with the Python emulation"
    );
    assert!(
        float_correct * 100 >= n * 95,
        "float accuracy {float_correct}/{n}"
    );
    assert!(agree * 100 >= n * 99, "fixed/float agreement {agree}/{n}");
    assert!(correct * 100 >= n * 97, "accuracy {correct}/{n}");
    assert_eq!(exact, n, "fixed logits differ from the Python emulation");
}
