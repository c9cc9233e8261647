//! Weight files: round trip, aliases, dtypes, BN folding, and every kind of broken file.

mod common;

use common::{Raw, f32s, fnv1a, pack, unpack};
use pi_models::weights::{BN_EPS, init_weights, load_weights, weights_from_bytes};
use pi_models::{Error, Network};
use safetensors::tensor::Dtype;

/// Two blocks in stage 1 (identity shortcut), projections elsewhere.
const TINY: &str = "2x2x2x(m=2,phi=2-1-1-1,classes=3,input=8,channels=2)";

fn tiny() -> (Network, Vec<u8>) {
    let net = common::net(TINY);
    let bytes = init_weights(&net, 42).unwrap();
    (net, bytes)
}

fn err(net: &Network, tensors: &[Raw]) -> String {
    match weights_from_bytes(&pack(tensors), net) {
        Ok(_) => panic!("accepted broken weights"),
        Err(e @ Error::Weights { .. }) => e.to_string(),
        Err(e) => panic!("wrong error kind: {e}"),
    }
}

fn get<'a>(t: &'a mut [Raw], name: &str) -> &'a mut Raw {
    t.iter_mut().find(|r| r.name == name).unwrap()
}

#[test]
fn init_is_deterministic_and_pinned() {
    let (net, a) = tiny();
    assert_eq!(a, init_weights(&net, 42).unwrap());
    assert_ne!(a, init_weights(&net, 43).unwrap());
    // Pinned so that a change of RNG, formula or serialisation is noticed (platform independence).
    assert_eq!(
        fnv1a(&a),
        GOLDEN_TINY_SEED42,
        "init bytes changed: {:#x}",
        fnv1a(&a)
    );
    let names: Vec<String> = unpack(&a).into_iter().map(|r| r.name).collect();
    for n in [
        "conv1.weight",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "layer1.1.conv2.weight",
        "layer2.0.shortcut.0.weight",
        "layer4.0.shortcut.1.bias",
        "linear.weight",
        "linear.bias",
    ] {
        assert!(names.iter().any(|x| x == n), "{n}");
    }
    assert!(!names.iter().any(|x| x.starts_with("layer1.0.shortcut")));
}

const GOLDEN_TINY_SEED42: u64 = 0xddf1_4719_a85f_4766;

#[test]
fn bn_folding_matches_the_formula() {
    let (net, bytes) = tiny();
    let folded = weights_from_bytes(&bytes, &net).unwrap();
    let mut t = unpack(&bytes);
    let w = f32s(get(&mut t, "layer2.0.conv2.weight"));
    let g = f32s(get(&mut t, "layer2.0.bn2.weight"));
    let b = f32s(get(&mut t, "layer2.0.bn2.bias"));
    let m = f32s(get(&mut t, "layer2.0.bn2.running_mean"));
    let v = f32s(get(&mut t, "layer2.0.bn2.running_var"));
    let idx = net
        .linears()
        .find(|l| l.name == "layer2.0.conv2")
        .unwrap()
        .index;
    let per = w.len() / g.len();
    for c in 0..g.len() {
        let s = g[c] as f64 / (v[c] as f64 + BN_EPS).sqrt();
        assert_eq!(folded.layers[idx].bias[c], b[c] as f64 - m[c] as f64 * s);
        for j in 0..per {
            assert_eq!(
                folded.layers[idx].weight[c * per + j],
                w[c * per + j] as f64 * s
            );
        }
    }
    // The head is not folded.
    let fc = folded.layers.last().unwrap();
    assert_eq!(
        fc.weight,
        f32s(get(&mut t, "linear.weight"))
            .iter()
            .map(|&x| x as f64)
            .collect::<Vec<_>>()
    );
}

#[test]
fn aliases_prefix_and_dtypes_load_the_same() {
    let (net, bytes) = tiny();
    let want = weights_from_bytes(&bytes, &net).unwrap();
    // torchvision-style names under DataParallel.
    let renamed: Vec<Raw> = unpack(&bytes)
        .into_iter()
        .map(|mut r| {
            r.name = format!(
                "module.{}",
                r.name
                    .replace(".shortcut.", ".downsample.")
                    .replace("linear.", "fc.")
            );
            r
        })
        .collect();
    assert_eq!(weights_from_bytes(&pack(&renamed), &net).unwrap(), want);
    // F64 holds every f32 exactly.
    let f64s: Vec<Raw> = unpack(&bytes)
        .into_iter()
        .map(|mut r| {
            if r.dtype == Dtype::F32 {
                r.data = f32s(&r)
                    .iter()
                    .flat_map(|&x| (x as f64).to_le_bytes())
                    .collect();
                r.dtype = Dtype::F64;
            }
            r
        })
        .collect();
    assert_eq!(weights_from_bytes(&pack(&f64s), &net).unwrap(), want);
    // BF16 / F16: exact small values.
    let mut t = unpack(&bytes);
    let r = get(&mut t, "linear.bias");
    r.dtype = Dtype::BF16;
    r.data = [1.5f32, -0.25, 3.0]
        .iter()
        .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let got = weights_from_bytes(&pack(&t), &net).unwrap();
    assert_eq!(got.layers.last().unwrap().bias, vec![1.5, -0.25, 3.0]);
    let r = get(&mut t, "linear.bias");
    r.dtype = Dtype::F16;
    // 1.5 = 0x3e00, -0.25 = 0xb400, 2^-24 (smallest subnormal) = 0x0001.
    r.data = [0x3e00u16, 0xb400, 0x0001]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let got = weights_from_bytes(&pack(&t), &net).unwrap();
    assert_eq!(
        got.layers.last().unwrap().bias,
        vec![1.5, -0.25, (-24f64).exp2()]
    );
}

#[test]
fn broken_tensors_are_named() {
    let (net, bytes) = tiny();
    let base = unpack(&bytes);

    let t: Vec<Raw> = base
        .iter()
        .filter(|r| r.name != "bn1.running_var")
        .cloned()
        .collect();
    let e = err(&net, &t);
    assert!(
        e.contains("`bn1.running_var`") && e.contains("missing"),
        "{e}"
    );

    let t: Vec<Raw> = base
        .iter()
        .filter(|r| r.name != "layer3.0.shortcut.0.weight")
        .cloned()
        .collect();
    assert!(err(&net, &t).contains("`layer3.0.shortcut.0.weight`"));

    let mut t = base.clone();
    t.push(Raw {
        name: "layer9.0.conv1.weight".into(),
        dtype: Dtype::F32,
        shape: vec![1],
        data: vec![0; 4],
    });
    let e = err(&net, &t);
    assert!(
        e.contains("layer9.0.conv1.weight") && e.contains("unexpected"),
        "{e}"
    );

    let mut t = base.clone();
    let r = get(&mut t, "layer1.0.conv1.weight");
    r.shape = vec![2, 2, 9, 1];
    let e = err(&net, &t);
    assert!(
        e.contains("`layer1.0.conv1.weight`")
            && e.contains("shape [2, 2, 9, 1], expected [2, 2, 3, 3]"),
        "{e}"
    );

    let mut t = base.clone();
    let r = get(&mut t, "bn1.weight");
    r.dtype = Dtype::I32;
    let e = err(&net, &t);
    assert!(e.contains("`bn1.weight`") && e.contains("dtype"), "{e}");

    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut t = base.clone();
        let r = get(&mut t, "layer2.0.conv1.weight");
        r.data[4..8].copy_from_slice(&bad.to_le_bytes());
        let e = err(&net, &t);
        assert!(
            e.contains("`layer2.0.conv1.weight`") && e.contains("element 1 is not finite"),
            "{e}"
        );
    }

    let mut t = base.clone();
    let r = get(&mut t, "layer4.0.bn1.running_var");
    r.data[0..4].copy_from_slice(&(-1.0f32).to_le_bytes());
    let e = err(&net, &t);
    assert!(
        e.contains("`layer4.0.bn1.running_var`") && e.contains("negative"),
        "{e}"
    );

    // The same tensor under two accepted names.
    let mut t = base.clone();
    let mut dup = get(&mut t, "linear.bias").clone();
    dup.name = "fc.bias".into();
    t.push(dup);
    let e = err(&net, &t);
    assert!(e.contains("fc.bias") || e.contains("linear.bias"), "{e}");
    assert!(e.contains("another name"), "{e}");
}

#[test]
fn broken_files_and_spec_mismatch() {
    let (net, bytes) = tiny();
    for (what, data) in [
        ("empty", Vec::new()),
        ("garbage", b"definitely not safetensors".to_vec()),
        ("truncated", bytes[..bytes.len() - 7].to_vec()),
        ("truncated header", bytes[..20].to_vec()),
        ("huge header length", {
            let mut b = bytes.clone();
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
    ] {
        let e = weights_from_bytes(&data, &net).unwrap_err().to_string();
        assert!(e.contains("not a valid safetensors file"), "{what}: {e}");
    }
    // Weights of another network: the first mismatching tensor is named.
    let other = common::net("2x2x2x(m=2,phi=2-1-1-1,classes=4,input=8,channels=2)");
    let e = weights_from_bytes(&bytes, &other).unwrap_err().to_string();
    assert!(e.contains("`linear.weight`") && e.contains("shape"), "{e}");
    let deeper = common::net("2x2x2x(m=2,phi=2-2-1-1,classes=3,input=8,channels=2)");
    let e = weights_from_bytes(&bytes, &deeper).unwrap_err().to_string();
    assert!(
        e.contains("`layer2.1.conv1.weight`") && e.contains("missing"),
        "{e}"
    );

    let dir = common::temp_dir("weights");
    let p = dir.join("w.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    assert_eq!(
        load_weights(&p, &net).unwrap(),
        weights_from_bytes(&bytes, &net).unwrap()
    );
    assert!(matches!(
        load_weights(&dir.join("nope"), &net),
        Err(Error::Io { .. })
    ));
}
