//! Where the activations' OTs come from: silent OT in both modes, byte for
//! byte, and the garbler's Δ and nonces per session and inference.

use super::*;

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
pub(super) fn silent_round_bytes(demand: u64, inferences: usize) -> Vec<u64> {
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
/// of each round; the first phase adds each instance's setup (base OTs,
/// the SoftSpoken batch, the setup round). Round messages go out where the rounds
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
    // (SoftSpoken: 4 KiB of trees and 2 B per OT, padded to 128 OTs.)
    let recv_setup = (32 + 4096 + 2 * SETUP.base_cots().div_ceil(128) * 128) as u64;
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
                    _ => None,
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
