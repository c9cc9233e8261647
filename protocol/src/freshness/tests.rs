//! Fresh material per inference and per session, in both ReLU modes: two
//! sessions opened the way the binaries open them (seeded from the
//! operating system), with the same weights and the same input, the first
//! with two inferences. Every piece of offline material a party notes
//! ([`DigestTap`]) must differ from every other one that party noted, in
//! the same inference, the next one and the other session: a reused Δ,
//! nonce, mask, pad, OT output or HE message shows up as a repeated digest.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use pi_models::network::Network;
use pi_models::weights::{init_weights, weights_from_bytes};
use pi_models::{NetSpec, QuantModel, RingParams};

use super::Noted;
use crate::e2e_tests::{oracle, random_input};
use crate::session::{ClientConfig, ClientSession, ReluMode, ServerModel, ServerSession};
use crate::transport::memory_pair;
use crate::{Error, Result};

const MODES: [ReluMode; 2] = [ReluMode::Gc, ReluMode::Ot];

/// A small network with ReLU, identity and mixed activation layers.
fn model() -> ServerModel {
    let mut net =
        Network::new(&NetSpec::parse("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)").unwrap());
    net.cull(2);
    net.set_channel_mask("layer3.0.relu1", &[1]).unwrap();
    let folded = weights_from_bytes(&init_weights(&net, 17).unwrap(), &net).unwrap();
    let quant = QuantModel::quantize(&net, &folded, RingParams::default()).unwrap();
    ServerModel::new(net, quant, None)
        .unwrap()
        .with_relu_modes(&MODES)
        .unwrap()
}

fn drain(sink: &Arc<Mutex<Vec<Noted>>>) -> Vec<Noted> {
    std::mem::take(&mut *sink.lock().unwrap())
}

/// What each party noted, per inference.
type Noted2 = (Vec<Vec<Noted>>, Vec<Vec<Noted>>);

/// One OS-seeded session with `n` inferences on `x`; the digests each party
/// noted, per inference.
async fn session(model: &ServerModel, mode: ReluMode, x: &[u64], n: usize) -> Noted2 {
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        async move {
            let mut s = ServerSession::handshake(&mut cs, model).await?;
            let sink = s.record_digests();
            let mut per = Vec::new();
            while s.serve_one(&mut cs).await?.is_some() {
                per.push(drain(&sink));
            }
            Ok::<_, Error>(per)
        },
        async move {
            let cfg = ClientConfig {
                relu: mode,
                ..ClientConfig::default()
            };
            let mut c = ClientSession::handshake(&mut cc, &cfg).await?;
            let sink = c.record_digests();
            let mut per = Vec::new();
            for _ in 0..n {
                let r = c.infer(&mut cc, x).await?;
                assert_eq!(r.logits_fixed, oracle(model, x), "{mode}");
                per.push(drain(&sink));
            }
            c.close(&mut cc).await?;
            Ok::<_, Error>(per)
        }
    );
    (s.unwrap(), c.unwrap())
}

/// Pieces shorter than this may repeat by chance (a layer's reverse OT
/// choices are one bit per ReLU, and the test network has layers with four
/// ReLUs); from 64 bits on, a repeat is a reuse.
const MIN_BITS: usize = 64;

/// Every digest of one party of at least [`MIN_BITS`], over all its runs,
/// is distinct; every run noted each kind of material in `kinds`, at least
/// one piece of each at [`MIN_BITS`] or more.
fn assert_fresh(party: &str, mode: ReluMode, runs: &[(&str, &Vec<Noted>)], kinds: &[&str]) {
    let mut seen: HashMap<[u8; 32], (&str, &str)> = HashMap::new();
    for (run, noted) in runs {
        let got: BTreeSet<&str> = noted.iter().map(|n| n.what).collect();
        let mut want: BTreeSet<&str> = kinds.iter().copied().collect();
        // A session's first inference also notes the session's Δ (GC mode).
        if party == "server" && mode == ReluMode::Gc && run.ends_with("inference 0") {
            want.insert("server/gc delta");
        }
        assert_eq!(
            got, want,
            "{party}, {mode} mode, {run}: kinds of material noted"
        );
        let long: BTreeSet<&str> = noted
            .iter()
            .filter(|n| n.bits >= MIN_BITS)
            .map(|n| n.what)
            .collect();
        assert_eq!(
            long, want,
            "{party}, {mode} mode, {run}: kinds noted with a piece of {MIN_BITS} bits or more"
        );
        for n in noted.iter().filter(|n| n.bits >= MIN_BITS) {
            if let Some((first_run, first_what)) = seen.insert(n.digest, (run, n.what)) {
                panic!(
                    "{party}, {mode} mode: {} of {run} equals {first_what} of {first_run}: \
                     material used twice",
                    n.what
                );
            }
        }
    }
}

fn kinds(mode: ReluMode) -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut server, mut client) = (
        vec!["server/he reply", "server/he mask s"],
        vec![
            "client/input mask",
            "client/he upload",
            "client/he share",
            "client/activation mask r",
        ],
    );
    match mode {
        ReluMode::Gc => {
            // The garbler's nonce is the inference number (public); Δ belongs
            // to the session and is noted with its first inference only.
            server.extend(["server/gc pads p", "server/gc zero labels (OT outputs)"]);
            client.extend(["client/gc labels (OT outputs)", "client/gc tables"]);
        }
        ReluMode::Ot => {
            server.extend([
                "server/ot pairs (OT outputs)",
                "server/ot reverse choices",
                "server/ot reverse outputs",
            ]);
            client.extend([
                "client/ot choices",
                "client/ot outputs",
                "client/ot reverse pairs",
            ]);
        }
    }
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_material_is_fresh_per_inference_and_per_session() -> Result<()> {
    let model = model();
    let x = random_input(&model, 170);
    for mode in MODES {
        let (s1, c1) = session(&model, mode, &x, 2).await;
        let (s2, c2) = session(&model, mode, &x, 1).await;
        assert_eq!((s1.len(), c1.len(), s2.len(), c2.len()), (2, 2, 1, 1));
        let (server, client) = kinds(mode);
        assert_fresh(
            "server",
            mode,
            &[
                ("session 1, inference 0", &s1[0]),
                ("session 1, inference 1", &s1[1]),
                ("session 2, inference 0", &s2[0]),
            ],
            &server,
        );
        assert_fresh(
            "client",
            mode,
            &[
                ("session 1, inference 0", &c1[0]),
                ("session 1, inference 1", &c1[1]),
                ("session 2, inference 0", &c2[0]),
            ],
            &client,
        );
    }
    Ok(())
}

/// The check itself: two seeded sessions from the same seeds draw the same
/// material, and the comparison says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_seed_is_caught() {
    let model = model();
    let x = random_input(&model, 171);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (mut cs, mut cc) = memory_pair();
        let (s, c) = tokio::join!(
            async {
                let mut s = ServerSession::handshake_with_rng(
                    &mut cs,
                    &model,
                    rand_core::SeedableRng::seed_from_u64(1),
                )
                .await?;
                let sink = s.record_digests();
                s.serve_one(&mut cs).await?;
                Ok::<_, Error>(drain(&sink))
            },
            async {
                let mut c = ClientSession::handshake_with_rng(
                    &mut cc,
                    &ClientConfig::default(),
                    rand_core::SeedableRng::seed_from_u64(2),
                )
                .await?;
                c.record_digests();
                c.infer(&mut cc, &x).await?;
                c.close(&mut cc).await
            }
        );
        c.unwrap();
        runs.push(s.unwrap());
    }
    let (server, _) = kinds(ReluMode::Gc);
    let caught = std::panic::catch_unwind(|| {
        assert_fresh(
            "server",
            ReluMode::Gc,
            &[
                ("session 1, inference 0", &runs[0]),
                ("session 2, inference 0", &runs[1]),
            ],
            &server,
        )
    });
    assert!(caught.is_err(), "the same seeds must repeat the material");
}
