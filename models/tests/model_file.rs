//! Model files: specs, paths, normalisation, masks, and their errors.

mod common;

use pi_models::network::ReluMask;
use pi_models::{Error, Model};
use std::path::Path;

fn parse(toml: &str) -> Result<Model, Error> {
    Model::from_toml(toml, Path::new("/models"))
}

const SMALL: &str = r#"spec = "5x5x3x(m=4,phi=1-1-1-1,classes=10,input=16,channels=1)""#;

#[test]
fn full_example_parses() {
    let m = parse(&format!(
        r#"{SMALL}
weights = "weights.safetensors"
cull = ["stage1"]
[normalization]
mean = [0.5]
std = [0.25]
thin = ["stage3"]
[[relu]]
activation = "layer2.0.relu1"
mode = "channels"
keep = [0, 3, 5]
"#
    ))
    .unwrap();
    assert_eq!(
        m.weights.as_deref(),
        Some(Path::new("/models/weights.safetensors"))
    );
    let n = m.normalization.as_ref().unwrap();
    assert_eq!((n.mean.clone(), n.std.clone()), (vec![0.5], vec![0.25]));
    let masks: Vec<(&str, &ReluMask)> = m
        .network
        .activations()
        .map(|a| (a.name.as_str(), &a.mask))
        .collect();
    assert_eq!(masks[0], ("relu", &ReluMask::None)); // culled stem
    assert_eq!(masks[1].1, &ReluMask::None); // layer1.0.relu1
    let l2 = masks
        .iter()
        .find(|(n, _)| *n == "layer2.0.relu1")
        .unwrap()
        .1;
    let mut want = vec![false; 20];
    for c in [0, 3, 5] {
        want[c] = true;
    }
    assert_eq!(l2, &ReluMask::Channels(want));
    // thin = ["stage3"] written inside [normalization] still applies.
    let l3: Vec<&ReluMask> = masks
        .iter()
        .filter(|(n, _)| n.starts_with("layer3"))
        .map(|(_, m)| *m)
        .collect();
    assert_eq!(l3, vec![&ReluMask::All, &ReluMask::None]);
}

#[test]
fn resolve_spec_and_file() {
    let m = Model::resolve("resnet18(m=16,input=16)").unwrap();
    assert_eq!(m.network.spec.m, 16);
    let dir = common::temp_dir("resolve");
    let p = dir.join("net.toml");
    std::fs::write(&p, format!("{SMALL}\nweights = \"w.safetensors\"\n")).unwrap();
    let m = Model::resolve(p.to_str().unwrap()).unwrap();
    assert_eq!(m.network.spec.classes, 10);
    assert_eq!(m.weights, Some(dir.join("w.safetensors")));
    let e = Model::resolve(dir.join("missing.toml").to_str().unwrap()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    std::fs::write(&p, "spec = [1]").unwrap();
    let e = Model::resolve(p.to_str().unwrap()).unwrap_err().to_string();
    assert!(e.contains("net.toml") && e.contains("spec"), "{e}");
}

#[test]
fn errors_are_specific() {
    let cases: &[(&str, &str)] = &[
        ("weights = \"w\"", "spec"),
        ("spec = \"resnet50\"", "unknown network"),
        ("spec = \"other.toml\"", "not a file"),
        (&format!("{SMALL}\nfoo = 1"), "unknown field"),
        (&format!("{SMALL}\ncull = [\"stage5\"]"), "not a stage"),
        (&format!("{SMALL}\nthin = [\"x\"]"), "not a stage"),
        (
            &format!("{SMALL}\n[normalization]\nmean = [0.5, 0.5]\nstd = [1.0, 1.0]"),
            "2 entries for 1 input channels",
        ),
        (
            &format!("{SMALL}\n[normalization]\nmean = [0.5]\nstd = [0.0]"),
            "positive",
        ),
        (&format!("{SMALL}\n[normalization]\nmean = [0.5]"), "std"),
        (
            &format!("{SMALL}\n[[relu]]\nactivation = \"layer9.0.relu1\"\nmode = \"all\""),
            "no such activation",
        ),
        (
            &format!("{SMALL}\n[[relu]]\nactivation = \"layer1.1.relu1\"\nmode = \"all\""),
            "no such activation",
        ),
        (
            &format!("{SMALL}\n[[relu]]\nactivation = \"relu\"\nmode = \"some\""),
            "unknown mode",
        ),
        (
            &format!("{SMALL}\n[[relu]]\nactivation = \"relu\"\nmode = \"channels\""),
            "needs `keep`",
        ),
        (
            &format!("{SMALL}\n[[relu]]\nactivation = \"relu\"\nmode = \"none\"\nkeep = [1]"),
            "takes no `keep`",
        ),
        (
            &format!("{SMALL}\n[[relu]]\nactivation = \"relu\"\nmode = \"channels\"\nkeep = [4]"),
            "channel 4 out of range",
        ),
        (
            &format!("{SMALL}\n[[relu]]\nactivation = \"relu\"\nmode = \"channels\"\nkeep = [-1]"),
            "not a channel index",
        ),
        (
            &format!("{SMALL}\n[[relu]]\nactivation = \"relu\"\nmode = \"channels\"\nkeep = 3"),
            "list of channel",
        ),
        (
            &format!(
                "{SMALL}\n[[relu]]\nactivation = \"relu\"\nmode = \"pixels\"\nkeep = [[0, 16, 0]]"
            ),
            "out of range",
        ),
        (
            &format!(
                "{SMALL}\n[[relu]]\nactivation = \"layer4.0.relu2\"\nmode = \"pixels\"\nkeep = [[300, 0, 0]]"
            ),
            "[300, 0, 0] out of range",
        ),
        (
            &format!(
                "{SMALL}\n[[relu]]\nactivation = \"relu\"\nmode = \"pixels\"\nkeep = [[0, 1]]"
            ),
            "not a [c, y, x]",
        ),
        (
            &format!(
                "{SMALL}\n[[relu]]\nactivation = \"relu\"\nmode = \"all\"\n[[relu]]\nactivation = \"relu\"\nmode = \"none\""
            ),
            "more than one",
        ),
        ("spec = \"resnet18\"\nspec = \"resnet18\"", "duplicate"),
    ];
    for (toml, needle) in cases {
        let e = parse(toml).unwrap_err().to_string();
        assert!(e.contains(needle), "{toml:?}: {e}");
    }
}

#[test]
fn pixel_mask_counts_and_order_after_cull() {
    let m = parse(&format!(
        "{SMALL}\ncull = [\"stage4\"]\n[[relu]]\nactivation = \"layer4.0.relu1\"\nmode = \"pixels\"\nkeep = [[0, 1, 1], [79, 1, 0], [0, 1, 1]]\n"
    ))
    .unwrap();
    let s = m.network.stats();
    // Stage 4: width 4*5*5*3 = 300, side 2: two activations of 1,200; culled except 2 distinct pixels.
    assert_eq!(s.stage_relus[3], 2);
    assert_eq!(s.stage_identity[3], 2 * 1_200 - 2);
}

#[test]
fn input_loading_and_normalisation() {
    let dir = common::temp_dir("input");
    let m = parse(&format!(
        "{SMALL}\n[normalization]\nmean = [0.5]\nstd = [0.25]\n"
    ))
    .unwrap();
    let data: Vec<f32> = (0..256).map(|i| i as f32 / 256.0).collect();
    let p = dir.join("x.npy");
    common::write_npy(&p, &[1, 16, 16], &data);
    let x = m.load_input(&p).unwrap();
    assert_eq!(x.len(), 256);
    assert_eq!(x[0], -2.0);
    assert_eq!(x[128], 0.0);
    // A leading batch axis of 1 is accepted.
    common::write_npy(&p, &[1, 1, 16, 16], &data);
    assert_eq!(m.load_input(&p).unwrap(), x);
    // Wrong shape, garbage, truncated data, lying header.
    common::write_npy(&p, &[1, 8, 32], &data);
    assert!(
        m.load_input(&p)
            .unwrap_err()
            .to_string()
            .contains("expected (1, 16, 16)")
    );
    std::fs::write(&p, b"hello").unwrap();
    assert!(m.load_input(&p).unwrap_err().to_string().contains("magic"));
    common::write_npy(&p, &[1, 16, 16], &data);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
    assert!(matches!(m.load_input(&p).unwrap_err(), Error::Input(_)));
    common::write_npy(&p, &[1_000_000_000_000], &data);
    assert!(
        m.load_input(&p)
            .unwrap_err()
            .to_string()
            .contains("more data than the file holds")
    );
    let mut nan = data.clone();
    nan[3] = f32::NAN;
    common::write_npy(&p, &[1, 16, 16], &nan);
    assert!(
        m.load_input(&p)
            .unwrap_err()
            .to_string()
            .contains("element 3")
    );
}
