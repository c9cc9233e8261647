//! ReLU and MAC counts against numbers computed by hand.

mod common;

use pi_models::Model;

fn stats(spec: &str) -> pi_models::network::Stats {
    common::net(spec).stats()
}

#[test]
fn resnet18_counts() {
    let s = stats("resnet18");
    // ReLUs, widths 64/128/256/512 at sides 32/16/8/4, two ReLUs per block, two blocks per stage:
    //   stage 1: stem 64*32*32 = 65,536 + 4 * 65,536 = 327,680
    //   stage 2: 4 * 128*16*16 = 131,072; stage 3: 4 * 256*8*8 = 65,536; stage 4: 4 * 512*4*4 = 32,768
    //   total 557,056, the published figure for CIFAR ResNet18.
    assert_eq!(s.stage_relus, [327_680, 131_072, 65_536, 32_768]);
    assert_eq!(s.relus, 557_056);
    assert_eq!(s.identity, 0);
    // MACs:
    //   stem 3*64*9*1024 = 1,769,472; stage 1: 4 * 64*64*9*1024 = 150,994,944 -> 152,764,416
    //   stage 2: 64*128*9*256 = 18,874,368 + 3 * 128*128*9*256 = 113,246,208 + shortcut 64*128*256 = 2,097,152
    //            = 134,217,728; stages 3 and 4 the same (channels double, area quarters)
    //   head 512*100 = 51,200. Total 555,468,800.
    assert_eq!(
        s.stage_macs,
        [152_764_416, 134_217_728, 134_217_728, 134_217_728]
    );
    assert_eq!(s.head_macs, 51_200);
    assert_eq!(s.macs, 555_468_800);
    // 17 convs + 3 shortcuts + fc + 8 adds + 17 activations.
    assert_eq!(s.layers.len(), 21 + 8 + 17);
    let l = s
        .layers
        .iter()
        .find(|l| l.name == "layer2.0.shortcut")
        .unwrap();
    assert_eq!(
        (l.kind, l.macs, l.output.to_string().as_str()),
        ("conv", 2_097_152, "128x16x16")
    );
}

#[test]
fn hrn_5x5x3x_counts() {
    let s = stats("hrn-5x5x3x");
    // Widths 16/80/400/1200 at sides 32/16/8/4.
    //   ReLUs: stage 1 = 5 * 16*1024 = 81,920; stage 2 = 4 * 80*256 = 81,920;
    //          stage 3 = 4 * 400*64 = 102,400; stage 4 = 4 * 1200*16 = 76,800; total 343,040.
    assert_eq!(s.stage_relus, [81_920, 81_920, 102_400, 76_800]);
    assert_eq!(s.relus, 343_040);
    //   MACs: stage 1 = 3*16*9*1024 + 4 * 16*16*9*1024 = 442,368 + 9,437,184 = 9,879,552
    //         stage 2 = 16*80*9*256 + 3 * 80*80*9*256 + 16*80*256 = 2,949,120 + 44,236,800 + 327,680 = 47,513,600
    //         stage 3 = 80*400*9*64 + 3 * 400*400*9*64 + 80*400*64 = 18,432,000 + 276,480,000 + 2,048,000 = 296,960,000
    //         stage 4 = 400*1200*9*16 + 3 * 1200*1200*9*16 + 400*1200*16 = 69,120,000 + 622,080,000 + 7,680,000 = 698,880,000
    //         head 1200*100 = 120,000; total 1,053,353,152.
    assert_eq!(
        s.stage_macs,
        [9_879_552, 47_513_600, 296_960_000, 698_880_000]
    );
    assert_eq!(s.macs, 1_053_353_152);
}

#[test]
fn parameter_counts() {
    // Folded parameters: conv weights plus one bias per output channel, FC weights and bias.
    // PyTorch counts 11,220,132 for CIFAR ResNet18 with 100 classes, which has two BN
    // parameters (γ, β) per channel where folding leaves one bias: its 4,800 BN channels
    // (64 stem + 256 + 640 + 1,280 + 2,560 per stage, shortcuts included) make the difference.
    let s = stats("resnet18");
    assert_eq!(s.params, 11_220_132 - 4_800);
    // The smallest net by hand: stem 1*2*9 + 2; per stage (α=β=γ=1, φ=1, identity
    // shortcut in stage 1, projections in stages 2-4 since the stride changes):
    //   stage 1: 2 * (2*2*9 + 2) = 76; stages 2-4: 76 + (2*2 + 2) = 82 each; FC 2*3 + 3 = 9.
    let s = stats("1x1x1x(m=2,phi=1-1-1-1,classes=3,input=8,channels=1)");
    assert_eq!(s.params, 20 + 76 + 3 * 82 + 9);
}

#[test]
fn identity_shortcut_only_when_shapes_match() {
    // m=8, alpha=1: stage 2's first block keeps 8 channels but has stride 2 -> projection;
    // stage 1 blocks (stride 1, 8 -> 8) use identity shortcuts.
    let net = common::net("1x2x2x(m=8,phi=2-2-1-1,input=8)");
    let names: Vec<&str> = net.linears().map(|l| l.name.as_str()).collect();
    assert!(names.contains(&"layer2.0.shortcut"));
    assert!(!names.contains(&"layer1.0.shortcut"));
    assert!(!names.contains(&"layer2.1.shortcut"));
    // Stem 8 -> stage 1 with m=8: identity; but the stem itself takes 3 channels.
    let s = net.stats();
    // sides 8,4,2,1; widths 8,8,16,32. ReLUs: stage 1 = 8*64 * 5 = 2,560; stage 2 = 8*16*4 = 512;
    // stage 3 = 16*4*2 = 128; stage 4 = 32*1*2 = 64.
    assert_eq!(s.stage_relus, [2_560, 512, 128, 64]);
}

#[test]
fn cull_thin_and_masks_change_counts() {
    let m = Model::from_toml(
        r#"
spec = "resnet18"
cull = ["stage1"]
thin = ["stage3"]
[[relu]]
activation = "layer2.0.relu1"
mode = "channels"
keep = [0, 3, 5]
[[relu]]
activation = "layer4.1.relu2"
mode = "pixels"
keep = [[0, 0, 0], [511, 3, 3], [7, 1, 2]]
[[relu]]
activation = "layer2.1.relu2"
mode = "none"
[[relu]]
activation = "layer3.0.relu2"
mode = "all"
"#,
        std::path::Path::new("."),
    )
    .unwrap();
    let s = m.network.stats();
    // Stage 1 culled (stem included): 0 ReLUs, 327,680 identity positions.
    // Stage 2: relu1 of block 0 keeps 3 of 128 channels (3*256 = 768), block 0 relu2 full (32,768),
    //          block 1 relu1 full (32,768), block 1 relu2 none -> 66,304 ReLUs,
    //          identity 125*256 + 32,768 = 64,768.
    // Stage 3 thinned (relu2 of both blocks identity) but layer3.0.relu2 restored to all:
    //          3 * 16,384 = 49,152 ReLUs, 16,384 identity.
    // Stage 4: 3 * 8,192 + 3 pixels = 24,579 ReLUs, 8,189 identity.
    assert_eq!(s.stage_relus, [0, 66_304, 49_152, 24_579]);
    assert_eq!(s.stage_identity, [327_680, 64_768, 16_384, 8_189]);
    assert_eq!(s.relus + s.identity, 557_056);
    let a = m
        .network
        .activations()
        .find(|a| a.name == "layer4.1.relu2")
        .unwrap();
    let keep = a.keep_vec();
    assert!(keep[0] && keep[a.shape.index(511, 3, 3)] && keep[a.shape.index(7, 1, 2)]);
    assert!(!keep[1]);
}

#[test]
fn json_has_the_documented_fields() {
    let v = serde_json::to_value(stats("hrn-7x5x2x")).unwrap();
    for key in [
        "relus",
        "macs",
        "identity",
        "stage_relus",
        "stage_macs",
        "layers",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(v["stage_relus"].as_array().unwrap().len(), 4);
    let l0 = &v["layers"][0];
    for key in [
        "name", "kind", "input", "output", "relus", "macs", "identity",
    ] {
        assert!(l0.get(key).is_some(), "{key}");
    }
    assert_eq!(l0["name"], "conv1");
    assert_eq!(l0["output"]["c"], 16);
}
