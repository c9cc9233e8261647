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
    // client's part of that is IKNP's base OT point and U for the silent
    // setup round's base (padded to 128 OTs); later phases send the same
    // (fresh material, the same size) without it.
    let setup = 32 + 16 * crate::ot::silent::SETUP.base_cots().div_ceil(128) * 128;
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

/// A channel that misbehaves on purpose.
struct Faulty<C> {
    inner: Option<C>,
    fault: Fault,
    count: usize,
    dead: Meter,
}

#[derive(Clone, Copy)]
enum Fault {
    /// Cut one byte off the n-th frame sent under an `online/<layer>` label.
    TruncateOnline(usize),
    /// Hang up when sending the n-th frame under an `offline/<layer>` label.
    DisconnectOffline(usize),
}

impl<C: Channel> Faulty<C> {
    fn new(inner: C, fault: Fault) -> Self {
        Self {
            inner: Some(inner),
            fault,
            count: 0,
            dead: Meter::default(),
        }
    }
}

impl<C: Channel> Channel for Faulty<C> {
    async fn send(&mut self, frame: &[u8]) -> Result<()> {
        let label = self.meter().label().to_string();
        let layer = label
            .split_once('/')
            .filter(|(_, l)| !matches!(*l, "setup" | "input" | "output"));
        match (self.fault, layer) {
            (Fault::TruncateOnline(n), Some(("online", _))) => {
                self.count += 1;
                if self.count == n {
                    return self
                        .inner
                        .as_mut()
                        .ok_or(Error::Closed)?
                        .send(&frame[..frame.len() - 1])
                        .await;
                }
            }
            (Fault::DisconnectOffline(n), Some(("offline", _))) => {
                self.count += 1;
                if self.count >= n {
                    self.inner = None;
                    return Err(Error::Closed);
                }
            }
            _ => {}
        }
        self.inner.as_mut().ok_or(Error::Closed)?.send(frame).await
    }
    async fn recv(&mut self, limit: usize) -> Result<Vec<u8>> {
        self.inner.as_mut().ok_or(Error::Closed)?.recv(limit).await
    }
    async fn recv_into(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner
            .as_mut()
            .ok_or(Error::Closed)?
            .recv_into(buf)
            .await
    }
    async fn flush(&mut self) -> Result<()> {
        self.inner.as_mut().ok_or(Error::Closed)?.flush().await
    }
    fn set_label(&mut self, label: &str) {
        self.dead.set_label(label);
        if let Some(c) = &mut self.inner {
            c.set_label(label);
        }
    }
    fn meter(&self) -> &Meter {
        self.inner.as_ref().map_or(&self.dead, |c| c.meter())
    }
}

/// One inference where the server's or the client's channel is faulty.
async fn faulty_run(fault_on_server: bool, fault: Fault) -> (Result<()>, Result<()>) {
    faulty_run_in(fault_on_server, fault, ReluMode::Gc).await
}

async fn faulty_run_in(
    fault_on_server: bool,
    fault: Fault,
    mode: ReluMode,
) -> (Result<()>, Result<()>) {
    let model = model_for("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)", 9, |_| {});
    let x = random_input(&model, 90);
    let (cs, cc) = memory_pair();
    let (mut cs, mut cc) = if fault_on_server {
        (
            Faulty::new(cs, fault),
            Faulty::new(cc, Fault::TruncateOnline(usize::MAX)),
        )
    } else {
        (
            Faulty::new(cs, Fault::TruncateOnline(usize::MAX)),
            Faulty::new(cc, fault),
        )
    };
    tokio::join!(
        async move {
            let mut s =
                ServerSession::handshake_with_rng(&mut cs, &model, ChaCha20Rng::seed_from_u64(9))
                    .await?;
            s.serve_one(&mut cs).await.map(|_| ())
        },
        async move {
            let mut c = ClientSession::handshake_with_rng(
                &mut cc,
                &ClientConfig {
                    relu: mode,
                    ..ClientConfig::default()
                },
                ChaCha20Rng::seed_from_u64(10),
            )
            .await?;
            c.infer(&mut cc, &x).await.map(|_| ())
        }
    )
}

/// A frame one byte short of the size the protocol fixes at that point.
fn one_byte_short<T: std::fmt::Debug>(r: &Result<T>) -> bool {
    matches!(
        r,
        Err(Error::PeerMisbehaved(Misbehavior::FrameSize { expected, got })) if got + 1 == *expected
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_online_messages_are_peer_errors() {
    // The client's masked activation output, then the server's labels, cut short.
    for n in [1, 3] {
        let (s, c) = faulty_run(false, Fault::TruncateOnline(n)).await;
        assert!(one_byte_short(&s), "{s:?}");
        assert!(matches!(c, Err(Error::Closed)), "{c:?}");
        let (s, c) = faulty_run(true, Fault::TruncateOnline(n)).await;
        assert!(one_byte_short(&c), "{c:?}");
        assert!(matches!(s, Err(Error::Closed)), "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_ot_mode_messages_are_peer_errors() {
    // Client side: its masked input, then its first correction bits; server
    // side: its first leaf tables, then its first tree messages.
    for n in [1, 2, 3] {
        let (s, c) = faulty_run_in(false, Fault::TruncateOnline(n), ReluMode::Ot).await;
        assert!(one_byte_short(&s), "{n}: {s:?}");
        assert!(matches!(c, Err(Error::Closed)), "{n}: {c:?}");
        let (s, c) = faulty_run_in(true, Fault::TruncateOnline(n), ReluMode::Ot).await;
        assert!(one_byte_short(&c), "{n}: {c:?}");
        assert!(matches!(s, Err(Error::Closed)), "{n}: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ot_mode_reports_add_up_and_beat_gc_on_storage_and_traffic() {
    let model = model_for("resnet18(m=2,input=8,classes=5)", 1, |_| {});
    let (_, gc) = check_exact(&model, 1, 1, ReluMode::Gc).await;
    let (s, c) = check_exact(&model, 2, 1, ReluMode::Ot).await;
    let relus = model.network().stats().relus;
    for (s, c) in s.iter().zip(&c) {
        assert_eq!(c.offline.bytes_sent, s.offline.bytes_received);
        assert_eq!(c.offline.bytes_received, s.offline.bytes_sent);
        assert_eq!(c.online.bytes_sent, s.online.bytes_received);
        assert_eq!(c.online.bytes_received, s.online.bytes_sent);
        assert_eq!(c.garbled_table_bytes, 0);
        // 17 activation layers, 5 round trips each at l = 37, f = 12; plus input/output.
        assert_eq!(
            (c.online_round_trips, s.online_round_trips),
            (1 + 17 * 5, 1 + 17 * 5)
        );
        assert_eq!(gc[0].online_round_trips, 1 + 17);
        // Client storage at least 5x below GC mode.
        assert!(5 * c.client_storage_bytes < gc[0].client_storage_bytes);
        let per_relu = |r: &ClientReport| {
            r.layers
                .iter()
                .filter(|l| l.kind == "relu")
                .map(|l| {
                    l.offline.bytes_sent
                        + l.offline.bytes_received
                        + l.online.bytes_sent
                        + l.online.bytes_received
                })
                .sum::<u64>()
                / relus
        };
        // Activation traffic per ReLU below 1 KB (IKNP at 16 B per random OT).
        assert!(per_relu(c) < 1000, "{} B per ReLU", per_relu(c));
        assert!(per_relu(c) * 3 < per_relu(&gc[0]));
    }
}

/// The rounds one silent instance runs in a session, as the parties
/// decide them: the setup round leaves `SETUP.n() - MAIN.base_cots()`
/// outputs; when an inference announces `demand` OTs and the pool holds
/// fewer, rounds run until it holds enough, each a small one (the SETUP
/// parameters, `SMALL_YIELD` outputs) if that covers the rest, else a main
/// one. Returns the bytes of each inference's round messages.
fn silent_round_bytes(demand: u64, inferences: usize) -> Vec<u64> {
    use crate::ot::silent::{MAIN, SETUP, SMALL_YIELD};
    let mut pool = (SETUP.n() - MAIN.base_cots()) as u64;
    let mut out = Vec::new();
    for _ in 0..inferences {
        let mut bytes = 0;
        while pool < demand {
            if demand - pool <= SMALL_YIELD as u64 {
                (pool, bytes) = (
                    pool + SMALL_YIELD as u64,
                    bytes + 16 * SETUP.msg_blocks() as u64,
                );
            } else {
                let main = (MAIN.n() - MAIN.base_cots()) as u64;
                (pool, bytes) = (pool + main, bytes + 16 * MAIN.msg_blocks() as u64);
            }
        }
        pool -= demand;
        out.push(bytes);
    }
    out
}

/// The activations' OTs come from silent OT: in both modes, in each of two
/// inferences of a session, the offline bytes besides HE are exactly what
/// the LPN parameters and the choice bits make them. The client sends one
/// bit per OT whose choice it fixes (37 label bits per position in GC mode,
/// 36 leaf bits in OT mode, none for random choices) and the reverse
/// instance's round messages (OT mode); the server sends the garbled tables
/// (GC mode) and the forward instance's round messages, 16 B per tree level
/// of each round; the first phase adds each instance's setup (IKNP base
/// OTs and U, the setup round). Round messages go out where the rounds
/// start (at the phase start or in an activation layer), so the count
/// covers the activation layers and the bytes outside any layer. (IKNP
/// would cost 16 B per OT instead: over 600 B per position.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activations_take_their_ots_from_silent_ot() {
    use crate::ot::silent::SETUP;
    let model = model_for("resnet18(m=2,input=8,classes=5)", 3, |_| {});
    let positions = model.activations();
    let relus = model.network().stats().relus;
    // Setup bytes an instance's receiver and sender send.
    let recv_setup = (32 + 16 * SETUP.base_cots().div_ceil(128) * 128) as u64;
    let send_setup = (128 * 32 + 16 * SETUP.msg_blocks()) as u64;
    for mode in BOTH {
        let (s, c) = check_exact(&model, 2, 3, mode).await;
        let (forward, reverse) = match mode {
            ReluMode::Gc => (positions * 37, 0),
            ReluMode::Ot => (positions * 49, relus),
        };
        let fwd_rounds = silent_round_bytes(forward, 2);
        let rev_rounds = silent_round_bytes(reverse, 2);
        assert!(fwd_rounds.iter().sum::<u64>() > 0, "{mode}: a round runs");
        let (client_setup, server_setup) = match mode {
            ReluMode::Gc => (recv_setup, send_setup),
            ReluMode::Ot => (recv_setup + send_setup, send_setup + recv_setup),
        };
        for (i, (s, c)) in s.iter().zip(&c).enumerate() {
            let acts = c.layers.iter().filter(|l| l.kind == "relu");
            let choice_bytes: u64 = acts
                .clone()
                .map(|l| match mode {
                    ReluMode::Gc => [l.relus, l.identity]
                        .iter()
                        .map(|&n| (37 * n).div_ceil(8))
                        .sum::<u64>(),
                    ReluMode::Ot => (36 * (l.relus + l.identity)).div_ceil(8),
                })
                .sum();
            let layers_sent: u64 = c.layers.iter().map(|l| l.offline.bytes_sent).sum();
            let layers_received: u64 = c.layers.iter().map(|l| l.offline.bytes_received).sum();
            let client_sent = acts.clone().map(|l| l.offline.bytes_sent).sum::<u64>()
                + (c.offline.bytes_sent - layers_sent);
            let server_sent = acts.clone().map(|l| l.offline.bytes_received).sum::<u64>()
                + (c.offline.bytes_received - layers_received);
            let setup = |b: u64| if i == 0 { b } else { 0 };
            assert_eq!(
                client_sent,
                choice_bytes + rev_rounds[i] + setup(client_setup),
                "{mode} inference {i}"
            );
            assert_eq!(
                server_sent,
                c.garbled_table_bytes + fwd_rounds[i] + setup(server_setup),
                "{mode} inference {i}"
            );
            assert_eq!(s.offline.bytes_sent, c.offline.bytes_received);
        }
    }
}

/// A GC session keeps one Δ (its silent OT's) for all its inferences, and
/// a new session draws a new one; each inference gets fresh label OTs and
/// its own garbler nonce (its number), so no hash tweak repeats under Δ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_sessions_have_their_own_delta_and_inferences_fresh_labels() {
    use crate::gc::GcNonce;
    let model = model_for("resnet18(m=2,input=8,classes=5,phi=1-1-1-1)", 4, |_| {});
    let mut deltas = Vec::new();
    for seed in [10u64, 20] {
        let (mut cs, mut cc) = memory_pair();
        let (server, client) = tokio::join!(
            async {
                let rng = ChaCha20Rng::seed_from_u64(seed);
                let mut s = ServerSession::handshake_with_rng(&mut cs, &model, rng).await?;
                let mut ds = Vec::new();
                for _ in 0..2 {
                    s.preprocess(&mut cs).await?;
                    ds.push(s.ot_delta().ok_or(Error::Internal("no Δ"))?);
                }
                Ok::<_, Error>(ds)
            },
            async {
                let rng = ChaCha20Rng::seed_from_u64(seed + 1);
                let cfg = ClientConfig::default();
                let mut c = ClientSession::handshake_with_rng(&mut cc, &cfg, rng).await?;
                let first = c.preprocess(&mut cc).await?;
                let second = c.preprocess(&mut cc).await?;
                Ok::<_, Error>((first, second))
            }
        );
        let (ds, (first, second)) = (server.unwrap(), client.unwrap());
        assert_eq!(ds[0], ds[1]);
        assert!(ds[0].lsb());
        deltas.push(ds[0]);
        assert_eq!(first.gc_nonce, Some(GcNonce::new(0).unwrap()));
        assert_eq!(second.gc_nonce, Some(GcNonce::new(1).unwrap()));
        let labels = |p: &crate::offline::ClientPreprocessed| {
            let crate::offline::MaterialStore::Memory(acts) = &p.acts else {
                panic!("material in memory")
            };
            acts.iter()
                .filter_map(|a| match &a.material {
                    crate::offline::ClientActMaterial::Gc(g) => Some(g),
                    crate::offline::ClientActMaterial::Ot(_) => None,
                })
                .flat_map(|g| g.relu.iter().chain(&g.trunc))
                .flat_map(|(_, l)| l.labels().iter().map(|b| b.0))
                .collect::<std::collections::HashSet<u128>>()
        };
        let (a, b) = (labels(&first), labels(&second));
        assert!(a.len() > 1000 && b.len() > 1000);
        assert!(a.is_disjoint(&b));
    }
    assert_ne!(deltas[0], deltas[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relu_mode_is_negotiated() {
    // A server that allows only GC: an OT client refuses, naming the modes.
    let net = Network::new(&NetSpec::parse("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)").unwrap());
    let folded = weights_from_bytes(&init_weights(&net, 3).unwrap(), &net).unwrap();
    let quant = QuantModel::quantize(&net, &folded, RingParams::default()).unwrap();
    let gc_only = ServerModel::new(net, quant, None).unwrap();
    assert_eq!(gc_only.relu_modes(), &[ReluMode::Gc]);
    let cfg = ClientConfig {
        relu: ReluMode::Ot,
        ..ClientConfig::default()
    };
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        ServerSession::handshake(&mut cs, &gc_only),
        ClientSession::handshake(&mut cc, &cfg)
    );
    assert!(
        matches!(s, Err(Error::Incompatible(ref m)) if m.contains("the client refused") && m.contains("[gc]")),
        "{:?}",
        s.err()
    );
    match c {
        Err(Error::Incompatible(m)) => assert!(m.contains("[gc]"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    // A client that asks for a mode the server did not announce misbehaves.
    let (mut cs, mut cc) = memory_pair();
    let (s, _) = tokio::join!(ServerSession::handshake(&mut cs, &gc_only), async move {
        cc.recv(crate::session::MAX_HELLO_BYTES).await.unwrap();
        cc.send(&[3u8; 9]).await.unwrap();
        cc
    });
    assert!(
        matches!(
            s,
            Err(Error::PeerMisbehaved(Misbehavior::ModeNotOffered("ot")))
        ),
        "{:?}",
        s.err()
    );
    // Both allowed: each side reports the client's choice.
    let both = gc_only.with_relu_modes(&BOTH).unwrap();
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        ServerSession::handshake(&mut cs, &both),
        ClientSession::handshake(&mut cc, &cfg)
    );
    assert_eq!(
        (s.unwrap().relu_mode(), c.unwrap().relu_mode()),
        (ReluMode::Ot, ReluMode::Ot)
    );
    // An old architecture message without the field means GC only.
    let mut v = serde_json::to_value(both.architecture()).unwrap();
    v.as_object_mut().unwrap().remove("relu_modes");
    let arch: crate::session::Architecture = serde_json::from_value(v).unwrap();
    assert_eq!(arch.relu_modes, vec![ReluMode::Gc]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_offline_is_closed_on_the_other_side() {
    // GC: the client hangs up in an HE upload, then in an OT extension; the
    // server hangs up mid-tables. OT mode: the same frames carry HE uploads
    // and the random OTs of both directions.
    for mode in BOTH {
        for (on_server, n) in [(false, 1), (false, 4), (true, 3), (true, 10)] {
            let (s, c) = faulty_run_in(on_server, Fault::DisconnectOffline(n), mode).await;
            assert!(matches!(s, Err(Error::Closed)), "{mode}, server: {s:?}");
            assert!(matches!(c, Err(Error::Closed)), "{mode}, client: {c:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_refuses_unsupported_parameters_and_unexpected_models() {
    let model = model_for("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)", 11, |_| {});
    // A tampered architecture: another protocol version, then another HE digest.
    for tamper in [0, 1] {
        let (mut cs, mut cc) = memory_pair();
        let mut arch = model.architecture();
        match tamper {
            0 => arch.version += 1,
            _ => arch.he_digest = "00".repeat(16),
        }
        let (s, c) = tokio::join!(
            async move {
                cs.send(&serde_json::to_vec(&arch).unwrap()).await.unwrap();
                cs.recv(4096).await
            },
            async move {
                ClientSession::handshake(&mut cc, &ClientConfig::default())
                    .await
                    .map(|_| ())
            }
        );
        assert_eq!(s.unwrap()[0], crate::session::TAG_REFUSE);
        let want = ["protocol version", "digest"][tamper];
        assert!(
            matches!(c, Err(Error::Incompatible(ref m)) if m.contains(want)),
            "{c:?}"
        );
    }
    // A pinned client refuses another network; the server learns it was refused.
    let other = model_for("resnet18(m=2,input=8,classes=4,phi=1-1-1-1)", 11, |_| {});
    let cfg = ClientConfig {
        expect: Some(other.network().describe()),
        ..ClientConfig::default()
    };
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        ServerSession::handshake(&mut cs, &model),
        ClientSession::handshake(&mut cc, &cfg)
    );
    assert!(
        matches!(s, Err(Error::Incompatible(ref m)) if m.contains("the client refused") && m.contains("is not the expected")),
        "{:?}",
        s.err()
    );
    assert!(
        matches!(c, Err(Error::Incompatible(ref m)) if m.contains("is not the expected")),
        "{:?}",
        c.err()
    );
    // Garbage instead of an architecture.
    let (mut cs, mut cc) = memory_pair();
    let cfg = ClientConfig::default();
    let (_, c) = tokio::join!(
        cs.send(b"{not json"),
        ClientSession::handshake(&mut cc, &cfg)
    );
    assert!(
        matches!(c, Err(Error::PeerMisbehaved(Misbehavior::Malformed(ref m))) if m.contains("architecture")),
        "{:?}",
        c.err()
    );
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn party_futures_are_send_and_spawnable() {
    // Binaries spawn one task per connection: every party future must be Send.
    let model = model_for("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)", 12, |_| {});
    let x = random_input(&model, 120);
    let want = oracle(&model, &x);
    let (mut cs, mut cc) = memory_pair();
    let cfg = ClientConfig::default();
    assert_send(&ServerSession::handshake(&mut cs, &model));
    assert_send(&ClientSession::handshake(&mut cc, &cfg));
    assert_send(&crate::serve_one(&mut cs, &model));
    assert_send(&crate::infer_one(&mut cc, &cfg, &x));
    let server = tokio::spawn(async move { crate::serve_one(&mut cs, &model).await });
    let client =
        tokio::spawn(async move { crate::infer_one(&mut cc, &ClientConfig::default(), &x).await });
    let (s, c) = (
        server.await.unwrap().unwrap(),
        client.await.unwrap().unwrap(),
    );
    assert_eq!(c.logits_fixed, want);
    assert_eq!(s.inference, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_local_input_is_bad_input() {
    // Weights beyond the HE weight bound, a wrong layer count, a bad normalisation.
    let net = Network::new(&NetSpec::parse("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)").unwrap());
    let folded = weights_from_bytes(&init_weights(&net, 13).unwrap(), &net).unwrap();
    let ring = RingParams::default();
    let mut quant = QuantModel::quantize(&net, &folded, ring).unwrap();
    let mut big = quant.clone();
    big.layers[2].weight[0] = ring.from_signed(1 << 16);
    let err = ServerModel::new(net.clone(), big, None).unwrap_err();
    assert!(
        matches!(err, Error::BadInput(ref m) if m.contains("layer1.0.conv2")),
        "{err}"
    );
    let mut short = quant.clone();
    short.layers.pop();
    let err = ServerModel::new(net.clone(), short, None).unwrap_err();
    assert!(
        matches!(err, Error::BadInput(ref m) if m.contains("quantised layers")),
        "{err}"
    );
    let norm = crate::session::NormalizationMsg {
        mean: vec![0.0; 2],
        std: vec![1.0; 2],
    };
    let err = ServerModel::new(net.clone(), quant.clone(), Some(norm)).unwrap_err();
    assert!(
        matches!(err, Error::BadInput(ref m) if m.contains("normalisation")),
        "{err}"
    );
    quant.layers[0].weight[0] = ring.from_signed(-(1 << 16) + 1);
    let model = ServerModel::new(net, quant, None).unwrap();
    // A client input of the wrong length or with unreduced values fails before any traffic.
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        async move {
            let mut s = ServerSession::handshake(&mut cs, &model).await?;
            s.serve_one(&mut cs).await
        },
        async move {
            let mut c = ClientSession::handshake(&mut cc, &ClientConfig::default()).await?;
            let before = cc.meter().total("offline/").sent;
            let short = c.infer(&mut cc, &[0u64; 5]).await.err();
            let wide = c.infer(&mut cc, &vec![1u64 << 40; 3 * 64]).await.err();
            assert_eq!(cc.meter().total("offline/").sent, before);
            c.close(&mut cc).await?;
            Ok::<_, Error>((short, wide))
        }
    );
    assert!(s.unwrap().is_none(), "the server sees a polite close");
    let (short, wide) = c.unwrap();
    assert!(
        matches!(short, Some(Error::BadInput(ref m)) if m.contains("input of 5 values")),
        "{short:?}"
    );
    assert!(
        matches!(wide, Some(Error::BadInput(ref m)) if m.contains("not reduced")),
        "{wide:?}"
    );
}

proptest::proptest! {
    // A fixed seed: the cases are the same on every run, so a failure replays.
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 4,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_2020),
        ..Default::default()
    })]
    /// Random weights, inputs and per-pixel masks on a small network: always
    /// bit-exact, in both activation modes.
    #[test]
    fn random_masks_and_weights_are_bit_exact(seed in 0u64..1_000_000, density in 0u32..=4) {
        let model = model_for("2x2x2x(m=2,phi=1-1-1-1,input=8,classes=4)", seed, |n| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let acts: Vec<(String, pi_models::network::Shape)> = n.activations().map(|a| (a.name.clone(), a.shape)).collect();
            for (name, s) in acts {
                let keep: Vec<[usize; 3]> = (0..s.c)
                    .flat_map(|c| (0..s.h).flat_map(move |y| (0..s.w).map(move |x| [c, y, x])))
                    .filter(|_| rng.next_u32() % 4 < density)
                    .collect();
                n.set_pixel_mask(&name, &keep).unwrap();
            }
        });
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        for mode in BOTH {
            rt.block_on(check_exact(&model, 1, seed, mode));
        }
    }
}
