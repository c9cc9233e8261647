//! Budgets and disk-backed material, both parties over the in-memory duplex:
//! refusals name what the network needs and what the budget allows; material
//! on disk is bit-exact in both modes, its files are 0600 in a 0700
//! directory and gone after use and at the end of the session; a damaged
//! file is a specific error.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pi_models::network::Network;
use pi_models::weights::{init_weights, weights_from_bytes};
use pi_models::{NetSpec, QuantModel, RingParams};

use crate::e2e_tests::{oracle, random_input};
use crate::footprint::{ClientBudget, OverBudget, Resource};
use crate::offline::ClientPreprocessed;
use crate::session::{ClientConfig, ClientSession, ReluMode, ServerModel, ServerSession};
use crate::store::{MaterialDir, StoreFault};
use crate::transport::memory_pair;
use crate::{Error, Result};

const BOTH: [ReluMode; 2] = [ReluMode::Gc, ReluMode::Ot];

/// A small network with a culled layer (truncation-only sub-layers) and a
/// per-pixel layer (both sub-layers in one activation).
fn model() -> ServerModel {
    model_of("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)")
}

/// `spec` with a culled and a pixel-masked activation.
fn model_of(spec: &str) -> ServerModel {
    let mut net = Network::new(&NetSpec::parse(spec).unwrap());
    net.set_channel_mask("layer1.0.relu1", &[]).unwrap();
    net.set_pixel_mask("layer2.0.relu1", &[[0, 1, 1], [3, 0, 2]])
        .unwrap();
    let folded = weights_from_bytes(&init_weights(&net, 21).unwrap(), &net).unwrap();
    let quant = QuantModel::quantize(&net, &folded, RingParams::default()).unwrap();
    ServerModel::new(net, quant, None)
        .unwrap()
        .with_relu_modes(&BOTH)
        .unwrap()
}

fn unlimited(mode: ReluMode) -> ClientConfig {
    ClientConfig {
        budget: ClientBudget {
            max_storage: u64::MAX,
            max_memory: u64::MAX,
        },
        relu: mode,
        ..ClientConfig::default()
    }
}

/// The footprint a session plans, from an unlimited handshake.
async fn footprint(model: &ServerModel, mode: ReluMode) -> crate::footprint::ClientFootprint {
    let (mut cs, mut cc) = memory_pair();
    let cfg = unlimited(mode);
    let (s, c) = tokio::join!(
        ServerSession::handshake(&mut cs, model),
        ClientSession::handshake(&mut cc, &cfg)
    );
    s.unwrap();
    c.unwrap().footprint()
}

/// The client's and the server's handshake results under `cfg`.
async fn handshake(model: &ServerModel, cfg: &ClientConfig) -> (Result<ClientSession>, Error) {
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        ServerSession::handshake(&mut cs, model),
        ClientSession::handshake(&mut cc, cfg)
    );
    (c, s.err().unwrap_or(Error::Internal("the server accepted")))
}

fn over(e: &Error) -> &OverBudget {
    match e {
        Error::OverBudget(b) => b,
        other => panic!("expected OverBudget, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_refuse_with_what_is_needed_and_allowed_in_both_modes() {
    let model = model();
    for mode in BOTH {
        let f = footprint(&model, mode).await;
        assert!(f.storage > 0 && f.memory_in_memory == f.memory_on_disk + f.storage);
        // Storage one byte short.
        let mut cfg = unlimited(mode);
        cfg.budget.max_storage = f.storage - 1;
        let (c, s) = handshake(&model, &cfg).await;
        let e = c.err().unwrap();
        let b = over(&e);
        assert_eq!(
            (b.resource, b.mode, b.needs, b.allows),
            (Resource::Storage, mode, f.storage, f.storage - 1)
        );
        let text = e.to_string();
        assert!(text.contains(&f.storage.to_string()) && text.contains("storage budget"));
        assert!(
            matches!(s, Error::Incompatible(ref m) if m.contains("storage")),
            "{s:?}"
        );
        // Memory one byte short, material in memory.
        let mut cfg = unlimited(mode);
        cfg.budget.max_memory = f.memory_in_memory - 1;
        let (c, s) = handshake(&model, &cfg).await;
        let e = c.err().unwrap();
        assert_eq!(
            (over(&e).resource, over(&e).needs, over(&e).allows),
            (Resource::Memory, f.memory_in_memory, f.memory_in_memory - 1)
        );
        assert!(
            matches!(s, Error::Incompatible(ref m) if m.contains("memory")),
            "{s:?}"
        );
        // The same budget fits once the material goes to disk.
        let t = tempfile::tempdir().unwrap();
        let tdir = t.path().join("m");
        cfg.store = Some(MaterialDir::open(&tdir).unwrap());
        let (c, _) = handshake(&model, &cfg).await;
        let c = c.unwrap();
        assert!(c.material_on_disk());
        assert_eq!(c.memory_estimate(), f.memory_on_disk);
        // Exactly at the budget is accepted.
        let mut cfg = unlimited(mode);
        cfg.budget = ClientBudget {
            max_storage: f.storage,
            max_memory: f.memory_in_memory,
        };
        assert!(handshake(&model, &cfg).await.0.is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_below_the_masks_alone_is_refused() {
    // 1 KiB is less than the activation masks alone: refused as memory
    // (from the activation count, before the plan is built).
    let model = model();
    let mut cfg = unlimited(ReluMode::Gc);
    cfg.budget.max_memory = 1 << 10;
    let (c, _) = handshake(&model, &cfg).await;
    let e = c.err().unwrap();
    assert_eq!(over(&e).resource, Resource::Memory);
    assert!(over(&e).needs > 0);
}

fn files(dir: &Path) -> Vec<PathBuf> {
    MaterialDir::open(dir).unwrap().files().unwrap()
}

fn perms(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Two inferences ahead from disk, spent in reverse order; bit-exact; one
/// 0600 file per pending inference in a 0700 directory, each gone after its
/// online phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn material_on_disk_is_bit_exact_and_removed_after_use_in_both_modes() {
    // Stage 1 has 1,024 positions: in GC mode four parts per sub-layer
    // under the tests' part size, evaluated while the next is read.
    let model = model_of("resnet18(m=4,input=16,classes=3,phi=1-1-1-1)");
    for mode in BOTH {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("material");
        let mut cfg = unlimited(mode);
        cfg.store = Some(MaterialDir::open(&dir).unwrap());
        assert_eq!(perms(&dir), 0o700);
        let xs = [random_input(&model, 70), random_input(&model, 71)];
        let (mut cs, mut cc) = memory_pair();
        let (s, c) = tokio::join!(
            async {
                let mut s = ServerSession::handshake(&mut cs, &model).await?;
                while s.serve_one(&mut cs).await?.is_some() {}
                Ok::<_, Error>(())
            },
            async {
                let mut c = ClientSession::handshake(&mut cc, &cfg).await?;
                let p0 = c.preprocess(&mut cc).await?;
                let p1 = c.preprocess(&mut cc).await?;
                assert!(p0.on_disk() && p1.on_disk());
                let held = files(&dir);
                assert_eq!(held.len(), 2, "one file per preprocessed inference");
                assert!(held.iter().all(|p| perms(p) == 0o600));
                let r1 = c.online(&mut cc, p1, &xs[1]).await?;
                assert_eq!(files(&dir).len(), 1, "a consumed inference's file is gone");
                let r0 = c.online(&mut cc, p0, &xs[0]).await?;
                assert!(files(&dir).is_empty());
                c.close(&mut cc).await?;
                Ok::<_, Error>((r0, r1))
            }
        );
        s.unwrap();
        let (r0, r1) = c.unwrap();
        assert_eq!(r0.logits_fixed, oracle(&model, &xs[0]), "{mode}");
        assert_eq!(r1.logits_fixed, oracle(&model, &xs[1]), "{mode}");
        assert_eq!(
            r0.client_storage_bytes,
            footprint(&model, mode).await.storage
        );
    }
}

/// Runs one preprocessing from disk, lets `damage` work on its file, then
/// the online phase; returns the client's error.
async fn online_after(mode: ReluMode, damage: impl FnOnce(&Path)) -> Error {
    let model = model();
    let t = tempfile::tempdir().unwrap();
    let tdir = t.path().join("m");
    let mut cfg = unlimited(mode);
    cfg.store = Some(MaterialDir::open(&tdir).unwrap());
    let x = random_input(&model, 80);
    let (mut cs, mut cc) = memory_pair();
    let (_, c) = tokio::join!(
        async {
            let mut s = ServerSession::handshake(&mut cs, &model).await?;
            let r = s.serve_one(&mut cs).await;
            drop(cs);
            r
        },
        async {
            let mut c = ClientSession::handshake(&mut cc, &cfg).await?;
            let p = c.preprocess(&mut cc).await?;
            let held = files(&tdir);
            assert_eq!(held.len(), 1);
            damage(&held[0]);
            let r = c.online(&mut cc, p, &x).await;
            drop(cc);
            r
        }
    );
    assert!(files(&tdir).is_empty(), "the damaged file is deleted too");
    c.expect_err("damaged material must not be used")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_flipped_material_file_is_a_store_fault() {
    for mode in BOTH {
        let e = online_after(mode, |p| {
            let len = std::fs::metadata(p).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(len - 1).unwrap();
        })
        .await;
        assert!(
            matches!(e, Error::Store(StoreFault::Truncated { .. })),
            "{mode}: {e:?}"
        );
        let e = online_after(mode, |p| {
            let mut bytes = std::fs::read(p).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 1;
            std::fs::write(p, bytes).unwrap();
        })
        .await;
        assert!(
            matches!(e, Error::Store(StoreFault::Corrupted { .. })),
            "{mode}: {e:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_file_is_not_used_and_unused_material_goes_with_the_session() {
    let model = model();
    let t = tempfile::tempdir().unwrap();
    let tdir = t.path().join("m");
    let mut cfg = unlimited(ReluMode::Gc);
    cfg.store = Some(MaterialDir::open(&tdir).unwrap());
    let x = random_input(&model, 90);
    // A previous session's file, kept aside as a crash would leave it.
    let stale = t.path().join("stale-copy");
    let (mut cs, mut cc) = memory_pair();
    let (_, c) = tokio::join!(
        async {
            let mut s = ServerSession::handshake(&mut cs, &model).await?;
            while s.serve_one(&mut cs).await?.is_some() {}
            Ok::<_, Error>(())
        },
        async {
            let mut c = ClientSession::handshake(&mut cc, &cfg).await?;
            let old: ClientPreprocessed = c.preprocess(&mut cc).await?;
            std::fs::copy(&files(&tdir)[0], &stale).unwrap();
            // Dropped unused: its file goes at once.
            drop(old);
            assert!(files(&tdir).is_empty());
            // The next inference writes a new file; copying the stale
            // content over it (same session, same layout) does not pass.
            let p = c.preprocess(&mut cc).await?;
            std::fs::copy(&stale, &files(&tdir)[0]).unwrap();
            let bad = c.online(&mut cc, p, &x).await;
            // The server learns of the failure from the closed connection.
            drop(cc);
            Ok::<_, Error>(bad)
        }
    );
    let bad = c.unwrap();
    assert!(
        matches!(
            bad,
            Err(Error::Store(StoreFault::Corrupted { record: 0, .. }))
        ),
        "{bad:?}"
    );
    assert!(files(&tdir).is_empty());
}
