//! Both parties over the in-memory duplex, against the fixed-point oracle
//! `pi_models::fixed::forward_fixed`: the private logits must match bit for bit.

use std::path::PathBuf;

use pi_models::fixed::forward_fixed;
use pi_models::network::Network;
use pi_models::weights::{init_weights, weights_from_bytes};
use pi_models::{Model, NetSpec, QuantModel, RingParams};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::report::{ClientReport, ServerReport};
use crate::session::{ClientConfig, ClientSession, ReluMode, ServerModel, ServerSession};
use crate::transport::{Channel, Meter, memory_pair};
use crate::{Error, Misbehavior, Result};

mod faults;
mod handshake;
mod silent;

fn model_for(spec: &str, seed: u64, tweak: impl FnOnce(&mut Network)) -> ServerModel {
    let mut net = Network::new(&NetSpec::parse(spec).unwrap());
    tweak(&mut net);
    let folded = weights_from_bytes(&init_weights(&net, seed).unwrap(), &net).unwrap();
    let quant = QuantModel::quantize(&net, &folded, RingParams::default()).unwrap();
    ServerModel::new(net, quant, None)
        .unwrap()
        .with_relu_modes(&BOTH)
        .unwrap()
}

/// Every network below runs in both activation modes.
const BOTH: [ReluMode; 2] = [ReluMode::Gc, ReluMode::Ot];

/// A seeded random input in [-2, 2), quantised (shared with the pool tests).
pub(crate) fn random_input(model: &ServerModel, seed: u64) -> Vec<u64> {
    let net = model.network();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..net.tensors[net.input].shape.numel())
        .map(|_| (rng.next_u32() as f64 / u32::MAX as f64 * 4.0 - 2.0) as f32)
        .collect();
    pi_models::fixed::quantize_input(&x, RingParams::default()).unwrap()
}

/// The fixed-point oracle's logits, signed.
pub(crate) fn oracle(model: &ServerModel, x: &[u64]) -> Vec<i64> {
    let ring = model.inner.quant.ring;
    forward_fixed(model.network(), &model.inner.quant, x)
        .iter()
        .map(|&v| ring.to_signed(v))
        .collect()
}

/// Runs a session with one inference per input; both channel ends are
/// dropped as soon as their party returns. Every inference's client storage
/// must be what the session planned before the first offline phase
/// ([`ClientSession::storage_per_inference`], what a pool budgets with).
async fn run(
    model: &ServerModel,
    inputs: &[Vec<u64>],
    seed: u64,
    mode: ReluMode,
) -> (Result<Vec<ServerReport>>, Result<Vec<ClientReport>>) {
    let (mut cs, mut cc) = memory_pair();
    tokio::join!(
        async move {
            let mut s =
                ServerSession::handshake_with_rng(&mut cs, model, ChaCha20Rng::seed_from_u64(seed))
                    .await?;
            let mut out = Vec::new();
            while let Some(r) = s.serve_one(&mut cs).await? {
                out.push(r);
            }
            Ok(out)
        },
        async move {
            let cfg = ClientConfig {
                relu: mode,
                ..ClientConfig::default()
            };
            let mut c = ClientSession::handshake_with_rng(
                &mut cc,
                &cfg,
                ChaCha20Rng::seed_from_u64(seed + 1),
            )
            .await?;
            let planned = c.storage_per_inference();
            let mut out = Vec::new();
            for x in inputs {
                let r = c.infer(&mut cc, x).await?;
                assert_eq!(
                    r.client_storage_bytes,
                    planned,
                    "{} in {mode} mode: stored against planned bytes",
                    model.network().spec.canonical()
                );
                out.push(r);
            }
            c.close(&mut cc).await?;
            Ok(out)
        }
    )
}

async fn check_exact(
    model: &ServerModel,
    n_inputs: u64,
    seed: u64,
    mode: ReluMode,
) -> (Vec<ServerReport>, Vec<ClientReport>) {
    let inputs: Vec<Vec<u64>> = (0..n_inputs)
        .map(|i| random_input(model, seed * 100 + i))
        .collect();
    let (s, c) = run(model, &inputs, seed, mode).await;
    let (s, c) = (s.unwrap(), c.unwrap());
    assert_eq!((s.len(), c.len()), (inputs.len(), inputs.len()));
    for ((x, r), rs) in inputs.iter().zip(&c).zip(&s) {
        assert_eq!(
            r.logits_fixed,
            oracle(model, x),
            "{} in {mode} mode",
            model.network().spec.canonical()
        );
        assert_eq!((r.relu_mode, rs.relu_mode), (mode, mode));
    }
    (s, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_resnet18_matches_oracle_twice_and_reports_add_up() {
    let model = model_for("resnet18(m=2,input=8,classes=5)", 1, |_| {});
    let (s, c) = check_exact(&model, 2, 1, ReluMode::Gc).await;
    let stats = model.network().stats();
    for (s, c) in s.iter().zip(&c) {
        assert_eq!(c.inference, s.inference);
        assert_eq!(c.activations.relus, stats.relus);
        assert_eq!(c.activations.identity, 0);
        assert_eq!(
            (c.activations.relu_layers, c.activations.identity_layers),
            (17, 0)
        );
        // What one side sends the other receives, per phase and per layer.
        assert_eq!(c.offline.bytes_sent, s.offline.bytes_received);
        assert_eq!(c.offline.bytes_received, s.offline.bytes_sent);
        assert_eq!(c.online.bytes_sent, s.online.bytes_received);
        assert_eq!(c.online.bytes_received, s.online.bytes_sent);
        for (lc, ls) in c.layers.iter().zip(&s.layers) {
            assert_eq!(lc.name, ls.name);
            assert_eq!(
                lc.offline.bytes_sent, ls.offline.bytes_received,
                "{}",
                lc.name
            );
            assert_eq!(
                lc.online.bytes_received, ls.online.bytes_sent,
                "{}",
                lc.name
            );
        }
        // Garbled tables are streamed offline and stored by the client.
        assert!(c.garbled_table_bytes > 0 && c.client_storage_bytes > c.garbled_table_bytes);
        assert!(c.offline.bytes_received > c.garbled_table_bytes);
        // Online, per ReLU: the server's labels (l * 16 B) plus the packed reply.
        let relu = c.layers.iter().find(|l| l.name == "relu").unwrap();
        assert_eq!(relu.online.bytes_received, relu.relus * 37 * 16);
        assert_eq!(relu.online.bytes_sent, (relu.relus * 37).div_ceil(8));
        assert!(
            c.layers
                .iter()
                .filter(|l| l.kind == "conv")
                .all(|l| l.online.bytes_sent == 0 && l.offline.bytes_sent > 0)
        );
        serde_json::to_string(c).unwrap();
        serde_json::to_string(s).unwrap();
    }
    // The session's first offline phase also sets up the bulk OT: the
    // client's part of that is the base OT point and the SoftSpoken batch
    // for the silent setup round's base (4 KiB of trees, 2 B per OT padded
    // to 128 OTs); later phases send the same (fresh material, the same
    // size) without it.
    let setup = 32 + 4096 + 2 * crate::ot::silent::SETUP.base_cots().div_ceil(128) * 128;
    assert_eq!(
        c[0].offline.bytes_sent,
        c[1].offline.bytes_sent + setup as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hrn_presets_match_oracle() {
    for (i, spec) in ["hrn-5x5x3x", "hrn-7x5x2x", "hrn-6x6x2x", "hrn-5x7x2x"]
        .iter()
        .enumerate()
    {
        let model = model_for(
            &format!("{spec}(m=2,input=8,classes=10)"),
            10 + i as u64,
            |_| {},
        );
        for mode in BOTH {
            check_exact(&model, 1, 10 + i as u64, mode).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn culled_and_thinned_stages_use_truncation_circuits() {
    let model = model_for("resnet18(m=2,input=8,classes=5,phi=1-2-1-1)", 3, |n| {
        n.cull(2);
        n.thin(3);
    });
    for mode in BOTH {
        culled_and_thinned(&model, mode).await;
    }
}

async fn culled_and_thinned(model: &ServerModel, mode: ReluMode) {
    let (_, c) = check_exact(model, 1, 3, mode).await;
    let stats = model.network().stats();
    let a = c[0].activations;
    assert_eq!((a.relus, a.identity), (stats.relus, stats.identity));
    assert!(a.identity > 0);
    // Stage 2 has 4 activations (all identity), stage 3 thins the relu2 of its one block.
    assert_eq!(a.identity_layers, 5);
    assert_eq!(a.relu_layers, 11 - 5);
    assert_eq!(
        c[0].layers
            .iter()
            .find(|l| l.name == "layer2.1.relu2")
            .unwrap()
            .relus,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_and_pixel_masks_match_oracle() {
    let model = model_for("2x2x2x(m=4,phi=1-1-1-1,input=8,classes=7)", 4, |n| {
        n.set_channel_mask("layer1.0.relu1", &[0, 3]).unwrap();
        n.set_pixel_mask("layer2.0.relu2", &[[0, 0, 0], [5, 2, 3], [7, 3, 3]])
            .unwrap();
        n.set_pixel_mask("layer3.0.relu1", &[]).unwrap();
    });
    for mode in BOTH {
        channel_and_pixel_masks(&model, mode).await;
    }
}

async fn channel_and_pixel_masks(model: &ServerModel, mode: ReluMode) {
    let (s, c) = check_exact(model, 1, 4, mode).await;
    let l = c[0]
        .layers
        .iter()
        .find(|l| l.name == "layer2.0.relu2")
        .unwrap();
    assert_eq!((l.relus, l.identity), (3, 8 * 4 * 4 - 3));
    assert_eq!(c[0].activations.identity_layers, 3);
    assert_eq!(s[0].activations, c[0].activations);
}

/// Activation inputs driven to the edges of the ring: every linear layer's
/// bias (scale 2f) puts its output channels at 2^(l-1) - 1, -2^(l-1), and a
/// few steps of 1, 2^f and 2^(2f) inside them, so that the comparison's
/// carries, the sign and the truncation meet values at (with a zero input:
/// exactly) and across (with a random input) the wrap-around.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activations_at_the_edges_of_the_ring_are_bit_exact() {
    let ring = RingParams::default();
    let half = 1i64 << (ring.bits() - 1);
    let (f, f2) = (1i64 << ring.frac(), 1i64 << (2 * ring.frac()));
    let edges = [
        half - 1,
        -half,
        half - 2,
        -half + 1,
        half - f,
        -half + f - 1,
        half - f2,
        -half + f2,
        f - 1,
        -f,
        0,
    ];
    let spec = "resnet18(m=8,phi=1-1-1-1,input=8,classes=11)";
    let net = Network::new(&NetSpec::parse(spec).unwrap());
    let folded = weights_from_bytes(&init_weights(&net, 15).unwrap(), &net).unwrap();
    let mut quant = QuantModel::quantize(&net, &folded, ring).unwrap();
    for (k, layer) in quant.layers.iter_mut().enumerate() {
        for (c, b) in layer.bias.iter_mut().enumerate() {
            *b = ring.from_signed(edges[(c + k) % edges.len()]);
        }
    }
    let model = ServerModel::new(net, quant, None)
        .unwrap()
        .with_relu_modes(&BOTH)
        .unwrap();
    let n = model.network().tensors[model.network().input].shape.numel();
    let inputs = vec![vec![0u64; n], random_input(&model, 150)];
    // The oracle's own activation inputs show where the test lands.
    let (mut exact, mut near_top, mut near_bottom) = (0usize, 0usize, 0usize);
    for x in &inputs {
        let trace = pi_models::fixed::forward_fixed_trace(model.network(), &model.inner.quant, x);
        for a in model.network().activations() {
            for &z in &trace[a.input] {
                let z = ring.to_signed(z);
                exact += usize::from(z == half - 1 || z == -half);
                near_top += usize::from(z > half - 2 * f2);
                near_bottom += usize::from(z < -half + 2 * f2);
            }
        }
    }
    assert!(
        exact > 0 && near_top > 100 && near_bottom > 100,
        "{exact} at the edges, {near_top} near the top, {near_bottom} near the bottom"
    );
    for mode in BOTH {
        let (s, c) = run(&model, &inputs, 15, mode).await;
        let (s, c) = (s.unwrap(), c.unwrap());
        assert_eq!(s.len(), inputs.len());
        for (x, r) in inputs.iter().zip(&c) {
            assert_eq!(r.logits_fixed, oracle(&model, x), "{mode}");
        }
    }
}

fn digits_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures/digits")
}

/// The digits model on its whole held-out split in `mode`, in one session.
async fn digits(mode: ReluMode) {
    let dir = digits_dir();
    let model = Model::resolve(dir.join("model.toml").to_str().unwrap()).unwrap();
    let folded = model.load_weights(None).unwrap();
    let quant = model.quantize(&folded, RingParams::default()).unwrap();
    let server = ServerModel::from_model(&model, quant)
        .unwrap()
        .with_relu_modes(&BOTH)
        .unwrap();
    let (xs, shape) =
        pi_models::model::read_npy_f32(&std::fs::read(dir.join("test_x.npy")).unwrap()).unwrap();
    let per: usize = shape[1..].iter().product();
    let n = shape[0];
    // The client prepares inputs from the architecture the server announces.
    let arch = server.architecture();
    assert!(arch.normalization.is_some());
    let client_view = Model {
        network: Network::from_description(&arch.network).unwrap(),
        normalization: model.normalization.clone(),
        weights: None,
    };
    let inputs: Vec<Vec<u64>> = (0..n)
        .map(|i| {
            let x = client_view
                .prepare_input(xs[i * per..(i + 1) * per].to_vec(), &shape[1..])
                .unwrap();
            pi_models::fixed::quantize_input(&x, RingParams::default()).unwrap()
        })
        .collect();
    let (s, c) = run(&server, &inputs, 7, mode).await;
    let (s, c) = (s.unwrap(), c.unwrap());
    assert_eq!(s.len(), n);
    for (x, r) in inputs.iter().zip(&c) {
        assert_eq!(r.logits_fixed, oracle(&server, x));
    }
}

/// Issue 5: under private inference the bundled digits model classifies its
/// whole held-out split exactly as the fixed-point oracle does, in each
/// activation mode (about a minute per mode on an idle 2-core machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_model_on_all_test_images_gc() {
    digits(ReluMode::Gc).await;
}

/// [`digits_model_on_all_test_images_gc`] in OT mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_model_on_all_test_images_ot() {
    digits(ReluMode::Ot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_phases_can_run_ahead_of_online_phases() {
    let model = model_for("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)", 5, |_| {});
    for mode in BOTH {
        run_ahead(&model, mode).await;
    }
}

async fn run_ahead(model: &ServerModel, mode: ReluMode) {
    let xs = [random_input(model, 50), random_input(model, 51)];
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        async {
            let mut s =
                ServerSession::handshake_with_rng(&mut cs, model, ChaCha20Rng::seed_from_u64(5))
                    .await?;
            let p0 = s.preprocess(&mut cs).await?;
            let p1 = s.preprocess(&mut cs).await?;
            assert_eq!((p0.inference(), p1.inference()), (0, 1));
            // Spent in the other order.
            s.online(&mut cs, p1).await?;
            s.online(&mut cs, p0).await?;
            Ok::<_, Error>(())
        },
        async {
            let mut c = ClientSession::handshake_with_rng(
                &mut cc,
                &ClientConfig {
                    relu: mode,
                    ..ClientConfig::default()
                },
                ChaCha20Rng::seed_from_u64(6),
            )
            .await?;
            let p0 = c.preprocess(&mut cc).await?;
            let p1 = c.preprocess(&mut cc).await?;
            assert!(p0.storage_bytes() > 0);
            let r1 = c.online(&mut cc, p1, &xs[1]).await?;
            let r0 = c.online(&mut cc, p0, &xs[0]).await?;
            Ok::<_, Error>((r0, r1))
        }
    );
    s.unwrap();
    let (r0, r1) = c.unwrap();
    assert_eq!((r0.inference, r1.inference, r0.relu_mode), (0, 1, mode));
    assert_eq!(r0.logits_fixed, oracle(model, &xs[0]), "{mode}");
    assert_eq!(r1.logits_fixed, oracle(model, &xs[1]), "{mode}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn material_of_another_inference_is_refused() {
    let model = model_for("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)", 6, |_| {});
    for mode in BOTH {
        another_inference(&model, mode).await;
    }
}

async fn another_inference(model: &ServerModel, mode: ReluMode) {
    let x = random_input(model, 60);
    let (mut cs, mut cc) = memory_pair();
    let (s, _) = tokio::join!(
        async move {
            let mut s =
                ServerSession::handshake_with_rng(&mut cs, model, ChaCha20Rng::seed_from_u64(7))
                    .await?;
            let p0 = s.preprocess(&mut cs).await?;
            let p1 = s.preprocess(&mut cs).await?;
            drop(p0);
            // The client runs online with inference 0's material.
            s.online(&mut cs, p1).await
        },
        async move {
            let mut c = ClientSession::handshake_with_rng(
                &mut cc,
                &ClientConfig {
                    relu: mode,
                    ..ClientConfig::default()
                },
                ChaCha20Rng::seed_from_u64(8),
            )
            .await?;
            let p0 = c.preprocess(&mut cc).await?;
            let _p1 = c.preprocess(&mut cc).await?;
            c.online(&mut cc, p0, &x).await
        }
    );
    assert!(
        matches!(
            s,
            Err(Error::PeerMisbehaved(Misbehavior::WrongInference {
                got: 0,
                expected: 1
            }))
        ),
        "{mode}: {s:?}"
    );
}
