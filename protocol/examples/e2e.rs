//! Both parties in one process over the in-memory duplex: one private
//! inference on a random input (or the digits fixture's first test images),
//! checked bit for bit against the fixed-point oracle, with the cost report.
//!
//! ```text
//! cargo run --release -p pi-protocol --example e2e -- 'resnet18(m=16)' [inferences] [--layers]
//! cargo run --release -p pi-protocol --example e2e -- models/fixtures/digits/model.toml 3
//! ```
//! Random weights come from `pi_models::weights::init_weights` (seed 1) unless
//! the model file names a weight file. Prints one JSON object per inference.

use pi_models::fixed::{forward_fixed, quantize_input};
use pi_models::weights::{init_weights, weights_from_bytes};
use pi_models::{Model, RingParams};
use pi_protocol::session::{ClientConfig, ClientSession, ServerModel, ServerSession};
use pi_protocol::transport::memory_pair;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = args
        .first()
        .cloned()
        .unwrap_or_else(|| "resnet18(m=16)".into());
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let per_layer = args.iter().any(|a| a == "--layers");
    let ring = RingParams::default();
    let model = Model::resolve(&spec)?;
    let folded = match &model.weights {
        Some(_) => model.load_weights(None)?,
        None => weights_from_bytes(&init_weights(&model.network, 1)?, &model.network)?,
    };
    let quant = model.quantize(&folded, ring)?;
    let server = ServerModel::from_model(&model, quant.clone())?;
    let net = &model.network;
    let numel = net.tensors[net.input].shape.numel();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let digits_x = spec.ends_with(".toml").then(|| {
        let dir = std::path::Path::new(&spec)
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("test_x.npy");
        pi_models::model::read_npy_f32(&std::fs::read(dir).ok()?).ok()
    });
    let mut inputs: Vec<Vec<u64>> = Vec::with_capacity(count);
    for i in 0..count {
        let x: Vec<f32> = match &digits_x {
            Some(Some((xs, _))) => {
                let image = xs.get(i * numel..(i + 1) * numel).ok_or_else(|| {
                    format!("test_x.npy holds fewer than {count} images of {numel} values")
                })?;
                model.prepare_input(image.to_vec(), &[1, 16, 16])?
            }
            _ => (0..numel)
                .map(|_| (rng.next_u32() as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32)
                .collect(),
        };
        inputs.push(quantize_input(&x, ring)?);
    }
    let (mut cs, mut cc) = memory_pair();
    let inputs2 = inputs.clone();
    let (s, c) = tokio::join!(
        async move {
            let mut s = ServerSession::handshake(&mut cs, &server).await?;
            let mut out = Vec::new();
            while let Some(r) = s.serve_one(&mut cs).await? {
                out.push(r);
            }
            Ok::<_, pi_protocol::Error>(out)
        },
        async move {
            let mut c = ClientSession::handshake(&mut cc, &ClientConfig::default()).await?;
            let mut out = Vec::new();
            for x in &inputs2 {
                out.push(c.infer(&mut cc, x).await?);
            }
            c.close(&mut cc).await?;
            Ok::<_, pi_protocol::Error>(out)
        }
    );
    let (s, c) = (s?, c?);
    for ((x, c), s) in inputs.iter().zip(&c).zip(&s) {
        let want: Vec<i64> = forward_fixed(net, &quant, x)
            .iter()
            .map(|&v| ring.to_signed(v))
            .collect();
        let exact = want == c.logits_fixed;
        let mut summary = serde_json::json!({
            "spec": net.spec.canonical(),
            "inference": c.inference,
            "bit_exact": exact,
            "class": c.class,
            "activations": c.activations,
            "client_offline": c.offline,
            "client_online": c.online,
            "server_offline": s.offline,
            "server_online": s.online,
            "client_storage_bytes": c.client_storage_bytes,
            "garbled_table_bytes": c.garbled_table_bytes,
            "server_storage_bytes": s.server_storage_bytes,
        });
        if per_layer {
            summary["client_layers"] = serde_json::to_value(&c.layers)?;
        }
        println!("{}", serde_json::to_string_pretty(&summary)?);
        if !exact {
            return Err("private logits differ from the oracle".into());
        }
    }
    Ok(())
}
