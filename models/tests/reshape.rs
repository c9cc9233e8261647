//! DeepReShape redesign: inequalities, enumeration, budget variants and the files
//! `pi-models reshape` writes. Expected numbers are computed by hand in the comments.

mod common;

use common::{fails, ok};
use pi_models::model::Model;
use pi_models::network::Network;
use pi_models::reshape::{
    self, Action, Order, block_relus, budget_variants, derive, inequalities, plans,
};
use pi_models::spec::NetSpec;

fn texts(order: &str, phi: [usize; 4], input: usize) -> Vec<String> {
    inequalities(&Order::parse(order).unwrap(), phi, input)
        .into_iter()
        .map(|q| format!("S{}>S{}: {}", q.more, q.less, q.text))
        .collect()
}

fn template(m: usize) -> NetSpec {
    NetSpec::parse(&format!("2x2x2x(m={m})")).unwrap()
}

#[test]
fn order_parsing() {
    let o = Order::parse(" s3 > S2>stage4>S1 ").unwrap();
    assert_eq!(o.stages(), [3, 2, 4, 1]);
    assert_eq!(o.to_string(), "S3>S2>S4>S1");
    assert_eq!((o.rank(3), o.rank(1)), (0, 3));
    for (bad, needle) in [
        ("", "empty"),
        ("S3>S2>S3>S1", "S3 appears twice"),
        ("S3>S2>S4", "missing S1"),
        ("S3>S2", "missing S1, S4"),
        ("S3<S2<S4<S1", "is not a stage"),
        ("S3>S2>>S4>S1", "`` is not a stage"),
        ("S5>S2>S4>S1", "`S5` is not a stage"),
        ("S3,S2,S4,S1", "is not a stage"),
        ("S3>S2>S4>S1>S0", "`S0` is not a stage"),
        ("S33>S2>S4>S1", "`S33` is not a stage"),
    ] {
        let e = Order::parse(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad:?}: {e}");
    }
}

/// Per-layer ReLUs m·H²·(1, α/4, αβ/16, αβγ/64); stage i has 2φi layers.
/// φ = 2 everywhere, H = 32: R = (2·1024, 2·256·α, 2·64·αβ, 2·16·αβγ)·m.
#[test]
fn inequalities_two_orders() {
    // S3>S2>S4>S1: 128αβ > 512α -> β > 4; 512α > 32αβγ -> βγ < 16; 32αβγ > 2048 -> αβγ > 64.
    assert_eq!(
        texts("S3>S2>S4>S1", [2; 4], 32),
        ["S3>S2: β > 4", "S2>S4: β·γ < 16", "S4>S1: α·β·γ > 64"]
    );
    // S2>S3>S4>S1: 512α > 128αβ -> β < 4; 128αβ > 32αβγ -> γ < 4; αβγ > 64.
    assert_eq!(
        texts("S2>S3>S4>S1", [2; 4], 32),
        ["S2>S3: β < 4", "S3>S4: γ < 4", "S4>S1: α·β·γ > 64"]
    );
    // Unequal depths φ = 1-2-3-2 keep their factors (then divide by the gcd):
    // S3>S2: 3·64·β > 2·256 -> 192β > 512 -> 3·β > 8;
    // S2>S4: 2·256 > 2·16·βγ -> βγ < 16;  S4>S1: 2·16·αβγ > 1·1024 -> αβγ > 32.
    assert_eq!(
        texts("S3>S2>S4>S1", [1, 2, 3, 2], 32),
        ["S3>S2: 3·β > 8", "S2>S4: β·γ < 16", "S4>S1: α·β·γ > 32"]
    );
    // The input side cancels when divisible by 8: H = 16 gives the same inequalities.
    assert_eq!(
        texts("S2>S3>S4>S1", [2; 4], 16),
        texts("S2>S3>S4>S1", [2; 4], 32)
    );
    // Strict: β = 4 ties S3 with S2 and is rejected.
    let q = &inequalities(&Order::parse("S3>S2>S4>S1").unwrap(), [2; 4], 32)[0];
    assert!(!q.holds([7, 4, 2]) && q.holds([7, 5, 2]));
}

/// S3>S2>S4>S1 with 2 <= α, β, γ <= 8: β in {5, 6, 7} (β > 4, βγ < 16 with γ >= 2),
/// γ = 2 or (β = 5) 3; smallest α with αβγ > 64: (5,2): α > 6.4 -> 7; (5,3): α > 4.27
/// -> 5; (6,2): α > 5.33 -> 6; (7,2): α > 4.57 -> 5. These are the paper's four HRNs.
#[test]
fn enumeration_gives_the_hrn_presets() {
    let order = Order::parse("S3>S2>S4>S1").unwrap();
    let d = derive(&order, &template(16), 2, 8).unwrap();
    let names: Vec<&str> = d.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["7x5x2x", "5x5x3x", "6x6x2x", "5x7x2x"]);
    for r in &d.results {
        // Each is the preset of the same name.
        let preset = NetSpec::parse(&format!("hrn-{}", r.name)).unwrap();
        assert_eq!(NetSpec::parse(&r.spec).unwrap(), preset);
        assert_eq!(r.max_alpha, 8);
    }
    // 7x5x2x at m = 16: one layer holds 16·1024 = 16384, 112·256 = 28672, 560·64 = 35840,
    // 1120·16 = 17920 ReLUs; four layers per stage plus the stem (16384) in stage 1.
    let r = &d.results[0];
    assert_eq!(r.widths, [16, 112, 560, 1120]);
    assert_eq!(r.block_relus, [65536, 114688, 143360, 71680]);
    assert_eq!(r.relus_per_stage, [81920, 114688, 143360, 71680]);
    assert_eq!(r.relus, 411_648);
    // MACs: stem 3·16·9·1024 = 442,368; stage 1: 4·16·16·9·1024 = 9,437,184;
    // stage 2: 16·112·9·256 + 3·112·112·9·256 + 16·112·256 = 91,291,648;
    // stage 3: 112·560·9·64 + 3·560·560·9·64 + 112·560·64 = 582,041,600;
    // stage 4: 560·1120·9·16 + 3·1120·1120·9·16 + 560·1120·16 = 642,252,800; FC 1120·100.
    assert_eq!(r.macs, 1_325_577_600);
    // 5x5x3x agrees with the `stats` numbers pinned in tests/cli.rs.
    assert_eq!(
        (d.results[1].relus, d.results[1].macs),
        (343_040, 1_053_353_152)
    );
}

/// S2>S3>S4>S1: β, γ in {2, 3}; αβγ > 64 needs α > 16 (2,2), > 10.7 (2,3), (3,2), > 7.1
/// (3,3): only 8x3x3x fits under α <= 8, and none under α <= 7.
#[test]
fn enumeration_second_order_and_impossible() {
    let order = Order::parse("S2>S3>S4>S1").unwrap();
    let d = derive(&order, &template(16), 2, 8).unwrap();
    assert_eq!(d.results.len(), 1);
    let r = &d.results[0];
    assert_eq!((r.alpha, r.beta, r.gamma, r.max_alpha), (8, 3, 3, 8));
    // Widths 16, 128, 384, 1152; block ReLUs 4·16·1024, 4·128·256, 4·384·64, 4·1152·16.
    assert_eq!(r.block_relus, [65536, 131072, 98304, 73728]);
    assert_eq!(r.relus, 81920 + 131072 + 98304 + 73728);
    assert!(
        derive(&order, &template(16), 2, 7)
            .unwrap()
            .results
            .is_empty()
    );
    // S4>S3>S2>S1 needs every multiplier above 4.
    let o = Order::parse("S4>S3>S2>S1").unwrap();
    assert!(derive(&o, &template(16), 2, 4).unwrap().results.is_empty());
    assert_eq!(derive(&o, &template(16), 2, 5).unwrap().results.len(), 1);
    // Bounds are checked.
    for (g, k, needle) in [(0, 8, "at least 1"), (3, 2, "below"), (2, 65, "limit")] {
        let e = derive(&o, &template(16), g, k).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
}

fn all_orders() -> Vec<Order> {
    let mut out = Vec::new();
    for a in 1..=4 {
        for b in 1..=4 {
            for c in 1..=4 {
                for d in 1..=4 {
                    if let Ok(o) = Order::parse(&format!("S{a}>S{b}>S{c}>S{d}")) {
                        out.push(o);
                    }
                }
            }
        }
    }
    out
}

/// For all 24 orders: every result's block ReLUs really fall strictly in the order,
/// and α - 1 (when allowed) does not, so α is the smallest.
#[test]
fn every_result_realises_its_order() {
    let orders = all_orders();
    assert_eq!(orders.len(), 24);
    for order in &orders {
        let d = derive(order, &template(1), 2, 8).unwrap();
        let q = &d.inequalities;
        for r in &d.results {
            let s = order.stages();
            let b = r.block_relus;
            assert!(
                s.windows(2).all(|w| b[w[0] - 1] > b[w[1] - 1]),
                "{order} {}: {b:?}",
                r.name
            );
            if r.alpha > 2 {
                assert!(!q.iter().all(|x| x.holds([r.alpha - 1, r.beta, r.gamma])));
            }
        }
    }
}

proptest::proptest! {
    /// The inequalities hold exactly when the counted block ReLUs fall strictly in the
    /// order, for any depths, input side (also not divisible by 8) and multipliers.
    #[test]
    fn inequalities_match_counts(which in 0usize..24, a in 1usize..10, b in 1usize..10, g in 1usize..10,
                                 phi in proptest::array::uniform4(1usize..4),
                                 input in proptest::sample::select(vec![8usize, 9, 12, 16, 20, 32])) {
        let order = all_orders()[which];
        let spec = NetSpec { alpha: a, beta: b, gamma: g, m: 1, phi, classes: 2, input, channels: 1 };
        let counts = block_relus(&Network::new(&spec));
        let s = order.stages();
        let ordered = s.windows(2).all(|w| counts[w[0] - 1] > counts[w[1] - 1]);
        let holds = inequalities(&order, phi, input).iter().all(|q| q.holds([a, b, g]));
        proptest::prop_assert_eq!(ordered, holds, "{} {:?} {:?}", order, spec, counts);
    }
}

/// Small network 2x2x2x(m=4, φ=1-1-1-1, input 8): sides 8, 4, 2, 1, widths 4, 8, 16, 32,
/// one layer holds 256, 128, 64, 32 ReLUs. Stage ReLUs (stem in S1): 768, 256, 128, 64 =
/// 1216. Thinning removes the one relu2: S1 -> 512, S2 -> 128, S3 -> 64, S4 -> 32.
/// Order S3>S2>S4>S1, so S1 is cut first. The 14 plans (actions for S3, S2, S4, S1):
/// KKKK 1216, KKKT 960, KKKC 448, KKTT 928, KKTC 416, KKCC 384, KTTT 800, KTTC 288,
/// KTCC 256, KCCC 128, TTTT 736, TTTC 224, TTCC 192, TCCC 64.
#[test]
fn budget_search_small_network() {
    let order = Order::parse("S3>S2>S4>S1").unwrap();
    let spec = NetSpec::parse("2x2x2x(m=4,phi=1-1-1-1,classes=10,input=8)").unwrap();
    let mut relus: Vec<u64> = plans(&order)
        .iter()
        .map(|p| reshape::apply_plan(&spec, p).stats().relus)
        .collect();
    relus.sort_unstable();
    assert_eq!(
        relus,
        [
            64, 128, 192, 224, 256, 288, 384, 416, 448, 736, 800, 928, 960, 1216
        ]
    );

    let base = Network::new(&spec);
    let v = budget_variants(std::slice::from_ref(&base), &order, 300).unwrap();
    let got: Vec<(u64, &str)> = v.iter().map(|x| (x.relus, x.name.as_str())).collect();
    assert_eq!(
        got,
        [
            (288, "2x2x2x.m4.cull1.thin2.thin4"),
            (256, "2x2x2x.m4.cull1.thin2.cull4"),
            (224, "2x2x2x.m4.cull1.thin2.thin3.thin4"),
            (192, "2x2x2x.m4.cull1.thin2.thin3.cull4"),
            (128, "2x2x2x.m4.cull1.cull2.cull4"),
            (64, "2x2x2x.m4.cull1.cull2.thin3.cull4"),
        ]
    );
    // Same m, same MACs: only the variant keeping the most ReLUs is on the front.
    assert!(v.iter().all(|x| x.macs == v[0].macs));
    assert_eq!(v.iter().filter(|x| x.pareto).count(), 1);
    assert!(v[0].pareto);
    assert_eq!(
        v[0].actions,
        [Action::Cull, Action::Thin, Action::Keep, Action::Thin]
    );
    assert_eq!(
        (v[0].cull.clone(), v[0].thin.clone()),
        (vec![1], vec![2, 4])
    );
    // Identity positions: 1216 - 288 = 928.
    assert_eq!(v[0].identity, 928);

    // With m = 2 as well every count halves: the best m = 2 variant under 300 is
    // cull S1 alone (448 / 2 = 224), with fewer MACs than any m = 4 variant, so the
    // front is {m4 288, m2 224}.
    let half = Network::new(&reshape::with_m(&spec, 2).unwrap());
    let v = budget_variants(&[base.clone(), half], &order, 300).unwrap();
    let front: Vec<(&str, u64)> = v
        .iter()
        .filter(|x| x.pareto)
        .map(|x| (x.name.as_str(), x.relus))
        .collect();
    assert_eq!(
        front,
        [
            ("2x2x2x.m4.cull1.thin2.thin4", 288),
            ("2x2x2x.m2.cull1", 224)
        ]
    );
    assert!(v[0].macs > v[2].macs);

    // Impossible budgets and masked bases.
    let e = budget_variants(std::slice::from_ref(&base), &order, 63)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fewest ReLUs reachable") && e.contains("64"),
        "{e}"
    );
    assert!(
        budget_variants(std::slice::from_ref(&base), &order, 0)
            .unwrap_err()
            .to_string()
            .contains("budget of 0")
    );
    let mut masked = base;
    masked.cull(2);
    assert!(
        budget_variants(&[masked], &order, 300)
            .unwrap_err()
            .to_string()
            .contains("already has a ReLU mask")
    );
}

#[test]
fn cli_order_mode() {
    let t = ok(&["reshape", "--order", "S3>S2>S4>S1"]);
    for needle in [
        "β > 4",
        "β·γ < 16",
        "α·β·γ > 64",
        "7x5x2x",
        "5x5x3x",
        "6x6x2x",
        "5x7x2x",
        "1325577600",
    ] {
        assert!(t.contains(needle), "{needle}: {t}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["reshape", "--order", "S2>S3>S4>S1", "--json"])).unwrap();
    let res = v["results"].as_array().unwrap();
    assert_eq!(res.len(), 1);
    assert_eq!(
        (&res[0]["alpha"], &res[0]["beta"], &res[0]["gamma"]),
        (&8.into(), &3.into(), &3.into())
    );
    assert_eq!(res[0]["relus"], 385_024);
    assert!(res[0]["macs"].as_u64().unwrap() > 0);
    assert_eq!(v["inequalities"][1]["text"], "γ < 4");

    let t = ok(&["reshape", "--order", "S2>S3>S4>S1", "--max-multiplier", "7"]);
    assert!(
        t.contains("no integer (α, β, γ)") && t.contains("cannot be realised"),
        "{t}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "reshape",
        "--order",
        "S2>S3>S4>S1",
        "--max-multiplier",
        "7",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["results"], serde_json::json!([]));

    fails(&["reshape", "--order", "S3>S2>S3>S1"], "appears twice");
    fails(&["reshape", "--order", "S3>S2>S4"], "missing S1");
    fails(&["reshape", "--order", "S3-S2-S4-S1"], "is not a stage");
    fails(
        &["reshape", "--order", "S3>S2>S4>S1", "--phi", "2-2"],
        "four depths",
    );
    fails(
        &["reshape", "--order", "S3>S2>S4>S1", "--min-growth", "0"],
        "at least 1",
    );
    fails(
        &[
            "reshape",
            "--order",
            "S2>S3>S4>S1",
            "--max-multiplier",
            "7",
            "--relu-budget",
            "1000",
        ],
        "no integer solution",
    );
    fails(
        &["reshape", "--order", "S3>S2>S4>S1", "--relu-budget", "10"],
        "no variant meets the ReLU budget 10",
    );
    fails(
        &[
            "reshape",
            "--order",
            "S3>S2>S4>S1",
            "--out",
            "/nonexistent-dir/x.toml",
        ],
        "needs --pick",
    );
}

/// Every written model file loads, counts as reported, and runs through `pi-models infer`.
#[test]
fn written_files_load_count_and_infer() {
    let dir = common::temp_dir("reshape");
    let d = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let base = "2x2x2x(m=4,phi=1-1-1-1,classes=10,input=8,channels=1)";
    // A base model file with normalisation, carried into the variants.
    std::fs::write(
        dir.join("base.toml"),
        format!("spec = \"{base}\"\n[normalization]\nmean = [0.5]\nstd = [0.25]\n"),
    )
    .unwrap();
    let out = ok(&[
        "reshape",
        "--order",
        "S3>S2>S4>S1",
        "--from",
        &d("base.toml"),
        "--relu-budget",
        "300",
        "--reduce-m",
        "2",
        "--write-dir",
        &d("variants"),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let variants = v["variants"].as_array().unwrap();
    let written = v["written"].as_array().unwrap();
    // m = 4: six variants under 300 (see budget_search_small_network); m = 2: every
    // plan except KKKK 608, KKKT 480, KKTT 464, KTTT 400, TTTT 368 -> nine.
    assert_eq!(variants.len(), 15);
    assert_eq!(written.len(), 15);
    let x: Vec<f32> = (0..64).map(|i| (i % 7) as f32 / 7.0).collect();
    common::write_npy(&dir.join("x.npy"), &[1, 8, 8], &x);
    for (var, path) in variants.iter().zip(written) {
        let path = path.as_str().unwrap();
        assert!(path.ends_with(&format!("{}.toml", var["name"].as_str().unwrap())));
        let model = Model::from_file(std::path::Path::new(path)).unwrap();
        let st = model.network.stats();
        assert_eq!(st.relus, var["relus"].as_u64().unwrap(), "{path}");
        assert_eq!(st.macs, var["macs"].as_u64().unwrap(), "{path}");
        assert_eq!(st.identity, var["identity"].as_u64().unwrap(), "{path}");
        assert!(st.relus <= 300);
        let n = model.normalization.as_ref().unwrap();
        assert_eq!((n.mean.clone(), n.std.clone()), (vec![0.5], vec![0.25]));
        // The CLI agrees, and the file runs.
        let s: serde_json::Value = serde_json::from_str(&ok(&["stats", path, "--json"])).unwrap();
        assert_eq!(s["relus"], var["relus"]);
        let w = format!("{path}.safetensors");
        ok(&["init", path, "--seed", "3", "--out", &w]);
        let r: serde_json::Value = serde_json::from_str(&ok(&[
            "infer",
            path,
            "--weights",
            &w,
            "--input",
            &d("x.npy"),
            "--fixed",
            "--json",
        ]))
        .unwrap();
        assert_eq!(r["logits_fixed"].as_array().unwrap().len(), 10);
    }

    // --out with the default pick writes the first (Pareto, most ReLUs) variant.
    ok(&[
        "reshape",
        "--order",
        "S3>S2>S4>S1",
        "--from",
        base,
        "--relu-budget",
        "300",
        "--out",
        &d("best.toml"),
    ]);
    let best = Model::from_file(&dir.join("best.toml")).unwrap();
    assert_eq!(best.network.stats().relus, 288);
    ok(&[
        "reshape",
        "--order",
        "S3>S2>S4>S1",
        "--from",
        base,
        "--relu-budget",
        "300",
        "--out",
        &d("pick.toml"),
        "--pick",
        "2x2x2x.m4.cull1.cull2.cull4",
    ]);
    assert_eq!(
        Model::from_file(&dir.join("pick.toml"))
            .unwrap()
            .network
            .stats()
            .relus,
        128
    );
    fails(
        &[
            "reshape",
            "--order",
            "S3>S2>S4>S1",
            "--from",
            base,
            "--relu-budget",
            "300",
            "--out",
            &d("no.toml"),
            "--pick",
            "nope",
        ],
        "no such network",
    );
    fails(
        &[
            "reshape",
            "--order",
            "S3>S2>S4>S1",
            "--from",
            base,
            "--relu-budget",
            "300",
            "--reduce-m",
            "4",
        ],
        "not smaller",
    );
    fails(
        &[
            "reshape",
            "--order",
            "S3>S2>S4>S1",
            "--from",
            &d("best.toml"),
            "--relu-budget",
            "300",
        ],
        "already has a ReLU mask",
    );

    // Order mode writes the derived shapes too (small m and input keep inference fast).
    let t = ok(&[
        "reshape",
        "--order",
        "S3>S2>S4>S1",
        "--m",
        "1",
        "--input",
        "8",
        "--classes",
        "3",
        "--channels",
        "1",
        "--write-dir",
        &d("derived"),
    ]);
    assert_eq!(t.matches("wrote ").count(), 4, "{t}");
    let p = d("derived/5x5x3x.toml");
    let m = Model::from_file(std::path::Path::new(&p)).unwrap();
    assert_eq!(
        m.network.spec,
        NetSpec::parse("5x5x3x(m=1,classes=3,input=8,channels=1)").unwrap()
    );
    ok(&[
        "init",
        &p,
        "--seed",
        "1",
        "--out",
        &d("derived/w.safetensors"),
    ]);
    ok(&[
        "infer",
        &p,
        "--weights",
        &d("derived/w.safetensors"),
        "--input",
        &d("x.npy"),
    ]);
}

proptest::proptest! {
    /// Model-file text written by `model_file_text` reads back to the same network and
    /// the same normalisation, for any finite mean and positive std.
    #[test]
    fn model_file_text_round_trips(mean in proptest::collection::vec(-1e6f64..1e6, 3),
                                   std in proptest::collection::vec(1e-9f64..1e3, 3),
                                   which in 0usize..14) {
        use pi_models::model::{Normalization, model_file_text};
        let spec = NetSpec::parse("5x5x3x(m=2,phi=1-2-1-1,classes=7,input=8)").unwrap();
        let order = Order::parse("S3>S2>S4>S1").unwrap();
        let plan = plans(&order)[which];
        let pick = |a: Action| -> Vec<usize> { (1..=4).filter(|&s| plan[s - 1] == a).collect() };
        let norm = Normalization { mean, std };
        let text = model_file_text(&["a comment".into()], &spec, &pick(Action::Cull), &pick(Action::Thin), Some(&norm));
        let m = Model::from_toml(&text, std::path::Path::new("")).unwrap();
        proptest::prop_assert_eq!(m.network, reshape::apply_plan(&spec, &plan));
        proptest::prop_assert_eq!(m.normalization, Some(norm));
        proptest::prop_assert!(m.weights.is_none());
    }
}
