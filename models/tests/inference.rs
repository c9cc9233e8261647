//! Fixed-point oracle against the f64 reference, and the fixed-point semantics step by step.

mod common;

use pi_models::fixed::{forward_fixed, forward_fixed_trace, quantize_input};
use pi_models::float::{forward_float, forward_float_trace};
use pi_models::network::{ReluMask, Step};
use pi_models::predict::argmax;
use pi_models::weights::init_weights;
use pi_models::{Error, FoldedModel, Model, Network, QuantModel, RingParams};

fn setup(spec: &str, seed: u64) -> (Network, FoldedModel, Vec<f32>) {
    setup_net(common::net(spec), seed)
}

fn setup_net(net: Network, seed: u64) -> (Network, FoldedModel, Vec<f32>) {
    let folded = common::folded(&net, seed);
    let x = common::random_input(&net, seed);
    (net, folded, x)
}

/// Runs both paths; returns (max |fixed - float|, float logits, fixed logits as floats).
fn compare(
    net: &Network,
    folded: &FoldedModel,
    x: &[f32],
    ring: RingParams,
) -> (f64, Vec<f64>, Vec<f64>) {
    let q = QuantModel::quantize(net, folded, ring).unwrap();
    let xq = quantize_input(x, ring).unwrap();
    let fixed: Vec<f64> = forward_fixed(net, &q, &xq)
        .iter()
        .map(|&v| ring.to_f64(v, 2 * ring.frac()))
        .collect();
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let float = forward_float(net, folded, &xf);
    let err = fixed
        .iter()
        .zip(&float)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    (err, float, fixed)
}

#[test]
fn fixed_agrees_with_float_on_random_nets() {
    let ring = RingParams::default();
    let specs = [
        "2x2x2x(m=4,phi=1-1-1-1,classes=10,input=8)",
        "5x5x3x(m=4,phi=2-2-2-2,classes=10,input=16,channels=1)",
        "3x2x2x(m=8,phi=1-2-1-3,classes=7,input=12,channels=2)",
        "resnet18(m=8,input=16)",
    ];
    let mut checked_argmax = 0;
    for (i, spec) in specs.iter().enumerate() {
        for seed in 0..3u64 {
            let (net, folded, x) = setup(spec, 100 * i as u64 + seed);
            let (err, float, fixed) = compare(&net, &folded, &x, ring);
            // Quantisation at f = 12 of weights (pool-folded FC weights lose the most), inputs and
            // floor truncation at every activation: a few hundredths on logits of spread O(1).
            assert!(err < 0.05, "{spec} seed {seed}: max logit error {err}");
            let mut sorted = float.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            if sorted[0] - sorted[1] > 2.0 * err {
                assert_eq!(argmax(&fixed), argmax(&float), "{spec} seed {seed}");
                checked_argmax += 1;
            }
        }
    }
    assert!(
        checked_argmax >= 8,
        "too few clear-margin cases ({checked_argmax}) to test argmax"
    );
}

#[test]
fn ring_size_does_not_change_results_without_overflow() {
    // With no wrap-around, l only decides where values are reduced: signed logits must match bit for bit.
    let (net, folded, x) = setup("5x5x3x(m=4,phi=2-1-1-2,classes=10,input=16,channels=3)", 9);
    let mut outs = Vec::new();
    for l in [37, 48, 64] {
        let ring = RingParams::new(l, 12).unwrap();
        let q = QuantModel::quantize(&net, &folded, ring).unwrap();
        let out = forward_fixed(&net, &q, &quantize_input(&x, ring).unwrap());
        outs.push(out.iter().map(|&v| ring.to_signed(v)).collect::<Vec<i64>>());
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
    // Fewer fractional bits give a different (coarser) answer.
    let ring = RingParams::new(37, 8).unwrap();
    let (err8, _, _) = compare(&net, &folded, &x, ring);
    let (err12, _, _) = compare(&net, &folded, &x, RingParams::default());
    assert!(
        err8 > err12,
        "f=8 error {err8} should exceed f=12 error {err12}"
    );
}

#[test]
fn trace_follows_the_documented_semantics() {
    let mut net = common::net("2x2x2x(m=4,phi=2-1-1-1,classes=5,input=8)");
    net.set_channel_mask("layer1.0.relu1", &[1, 2]).unwrap();
    net.set_pixel_mask("layer2.0.relu2", &[[0, 1, 1], [7, 3, 2]])
        .unwrap();
    net.cull(4);
    let (net, folded, x) = setup_net(net, 5);
    let ring = RingParams::default();
    let f = ring.frac();
    let q = QuantModel::quantize(&net, &folded, ring).unwrap();
    let t = forward_fixed_trace(&net, &q, &quantize_input(&x, ring).unwrap());
    let s = |v: u64| ring.to_signed(v);
    let mut negatives_kept = 0;
    for step in &net.steps {
        match step {
            Step::Activation(a) => {
                for (i, (&z, &y)) in t[a.input].iter().zip(&t[a.output]).enumerate() {
                    let tr = s(z).div_euclid(1 << f); // floor division
                    let want = if a.keeps(i) { tr.max(0) } else { tr };
                    assert_eq!(s(y), want, "{} position {i}", a.name);
                    if !a.keeps(i) && tr < 0 {
                        negatives_kept += 1;
                    }
                }
            }
            Step::Add(a) => {
                for ((&o, &l), &r) in t[a.output].iter().zip(&t[a.lhs]).zip(&t[a.rhs]) {
                    let r = if a.rhs_upscale { s(r) << f } else { s(r) };
                    assert_eq!(s(o), s(l) + r, "{}", a.name);
                }
            }
            // Linear outputs are checked against the float trace at scale 2f below.
            Step::Linear(_) => {}
        }
    }
    assert!(
        negatives_kept > 0,
        "identity positions should pass negative values through"
    );
    // Identity shortcut present in stage 1, projection in stage 2.
    let adds: Vec<bool> = net
        .steps
        .iter()
        .filter_map(|s| {
            if let Step::Add(a) = s {
                Some(a.rhs_upscale)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(adds, vec![true, true, false, false, false]);
    // Every tensor of the fixed trace tracks the float trace at its scale.
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let tf = forward_float_trace(&net, &folded, &xf);
    for (id, info) in net.tensors.iter().enumerate() {
        let scale = match info.scale {
            pi_models::network::Scale::F => f,
            pi_models::network::Scale::TwoF => 2 * f,
        };
        for (a, b) in t[id].iter().zip(&tf[id]) {
            assert!(
                (ring.to_f64(*a, scale) - b).abs() < 0.05,
                "tensor {id}: {} vs {b}",
                ring.to_f64(*a, scale)
            );
        }
    }
    assert!(
        net.activations()
            .any(|a| matches!(a.mask, ReluMask::Pixels(_)))
    );
}

#[test]
fn culling_changes_the_function() {
    let spec = "2x2x2x(m=4,phi=1-1-1-1,classes=5,input=8)";
    let (net, folded, x) = setup(spec, 11);
    let mut culled = net.clone();
    for s in 1..=4 {
        culled.cull(s);
    }
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    assert_ne!(
        forward_float(&net, &folded, &xf),
        forward_float(&culled, &folded, &xf)
    );
    // A fully culled net is affine: f(a) + f(b) - f(0) = f(a + b) up to float rounding.
    let zero = vec![0.0; xf.len()];
    let two: Vec<f64> = xf.iter().map(|v| 2.0 * v).collect();
    let (f0, fa, f2a) = (
        forward_float(&culled, &folded, &zero),
        forward_float(&culled, &folded, &xf),
        forward_float(&culled, &folded, &two),
    );
    for i in 0..5 {
        assert!((2.0 * fa[i] - f0[i] - f2a[i]).abs() < 1e-9);
    }
}

#[test]
fn out_of_range_values_are_rejected() {
    let (net, mut folded, x) = setup("2x2x2x(m=4,phi=1-1-1-1,classes=5,input=8)", 1);
    let ring = RingParams::new(24, 10).unwrap(); // 3 integer bits at scale 2f: bias must be in [-8, 8)
    folded.layers[3].bias[0] = 9.0;
    let e = QuantModel::quantize(&net, &folded, ring).unwrap_err();
    let name = net.linears().nth(3).unwrap().name.clone();
    assert!(
        matches!(&e, Error::Weights { tensor, .. } if *tensor == name),
        "{e}"
    );
    // Folded weights of another network are refused, not indexed out of bounds.
    let (_, other, _) = setup("2x2x2x(m=4,phi=1-1-1-1,classes=6,input=8)", 1);
    assert!(
        QuantModel::quantize(&net, &other, RingParams::default())
            .unwrap_err()
            .to_string()
            .contains("`linear`")
    );
    let mut short = other.clone();
    short.layers.pop();
    assert!(QuantModel::quantize(&net, &short, RingParams::default()).is_err());
    let mut big = x.clone();
    big[2] = 1e9;
    assert!(matches!(quantize_input(&big, ring), Err(Error::Input(m)) if m.contains("element 2")));
}

#[test]
fn model_normalisation_feeds_inference() {
    let dir = common::temp_dir("norm");
    let spec = "2x2x2x(m=4,phi=1-1-1-1,classes=5,input=8,channels=2)";
    let net = common::net(spec);
    std::fs::write(dir.join("w.safetensors"), init_weights(&net, 3).unwrap()).unwrap();
    std::fs::write(
        dir.join("m.toml"),
        format!("spec = \"{spec}\"\nweights = \"w.safetensors\"\n[normalization]\nmean = [0.5, -1.0]\nstd = [0.5, 2.0]\n"),
    )
    .unwrap();
    let model = Model::resolve(dir.join("m.toml").to_str().unwrap()).unwrap();
    let folded = model.load_weights(None).unwrap();
    let raw: Vec<f32> = (0..128).map(|i| i as f32 / 128.0).collect();
    common::write_npy(&dir.join("x.npy"), &[2, 8, 8], &raw);
    let x = model.load_input(&dir.join("x.npy")).unwrap();
    assert_eq!(x[0], -1.0); // (0 - 0.5) / 0.5
    assert_eq!(x[64], 0.75); // (0.5 + 1) / 2
    let plain = Model::resolve(spec).unwrap();
    assert!(matches!(
        plain.load_weights(None),
        Err(Error::Weights { .. })
    ));
    assert_eq!(
        plain
            .load_weights(Some(&dir.join("w.safetensors")))
            .unwrap(),
        folded
    );
}
