//! The offline linear step (RLWE, `pi_protocol::he`) for a list of layer
//! shapes, both parties in one process, with time, wire bytes and product
//! counts per layer.
//!
//! Bytes are the encoded messages exactly as they would cross the channel
//! (the public key once, then per layer one upload and one reply).

use std::time::Instant;

use pi_models::Network;
use pi_protocol::he::{
    ClientUpload, HeClient, HeParams, HeServer, LayerPlan, LayerShape, PublicKeyMsg, ServerReply,
    UniformShare, WeightHiding, linear_reference,
};
use pi_protocol::{Error, Result};
use rand::RngCore;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Measurements of one layer.
#[derive(Clone, Debug)]
pub struct LayerReport {
    /// Layer name.
    pub name: String,
    /// Its shape.
    pub shape: LayerShape,
    /// Wall-clock seconds for encrypt + encode + decode + evaluate + decrypt.
    pub seconds: f64,
    /// Client share of the time (encrypt, encode, decode reply, decrypt).
    pub client_seconds: f64,
    /// Server share of the time (decode upload, evaluate, encode reply).
    pub server_seconds: f64,
    /// Upload bytes.
    pub bytes_client_to_server: usize,
    /// Reply bytes.
    pub bytes_server_to_client: usize,
    /// Ciphertext x plaintext products.
    pub products: usize,
    /// Ciphertexts uploaded / returned.
    pub upload_cts: usize,
    /// Ciphertexts returned.
    pub reply_cts: usize,
    /// Plain multiply-accumulates of the layer.
    pub macs: usize,
    /// Input channels per polynomial, output channels per reply, tile height, tile width.
    pub tiling: (usize, usize, usize, usize),
    /// Decryption noise margin in bits (from the analysis, not measured).
    pub noise_margin_bits: f64,
    /// Per-coefficient hiding of the flood in bits (`LayerPlan::hiding_bits`).
    pub hiding_bits: u32,
    /// c0 coefficients sent to the client (`LayerPlan::sent_coefficients`).
    pub sent_coefficients: usize,
}

/// Measurements of a list of layers.
#[derive(Clone, Debug)]
pub struct Report {
    /// Per layer, in order.
    pub layers: Vec<LayerReport>,
    /// Sum of layer seconds plus key setup.
    pub seconds: f64,
    /// Total client → server bytes, including the public key.
    pub bytes_client_to_server: usize,
    /// Total server → client bytes.
    pub bytes_server_to_client: usize,
    /// Total products.
    pub products: usize,
    /// The flooding bound over the whole run (one inference), from which
    /// the per-inference and lifetime hiding follow.
    pub hiding: WeightHiding,
}

/// Every linear layer of `network`, in execution order, with its HE shape.
pub fn network_layers(network: &Network) -> Vec<(String, LayerShape)> {
    network
        .linears()
        .map(|l| (l.name.clone(), pi_protocol::session::layer_shape(&l.kind)))
        .collect()
}

/// Runs the offline linear step for `layers` with random weights (|w| < 2^12),
/// shares and masks from `seed`. With `verify`, each decrypted share is
/// compared with the cleartext W·c − s and a mismatch is an error.
pub fn run_offline_linear(
    layers: &[(String, LayerShape)],
    seed: u64,
    verify: bool,
) -> Result<Report> {
    let params = HeParams::default();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let t0 = Instant::now();
    let client = HeClient::new(params, &mut rng);
    let pk_bytes = client.public_key(&mut rng).encode(&params);
    let server = HeServer::new(params, &PublicKeyMsg::decode(&pk_bytes, &params)?)?;
    let setup = t0.elapsed().as_secs_f64();
    let mut reports = Vec::with_capacity(layers.len());
    let mut plans = Vec::with_capacity(layers.len());
    for (name, shape) in layers {
        let weights: Vec<i64> = (0..shape.weight_len())
            .map(|_| (rng.next_u32() % 8191) as i64 - 4095)
            .collect();
        let share = UniformShare::random(params, shape.input_len(), &mut rng);

        let t = Instant::now();
        let plan = LayerPlan::new(params, *shape)?;
        let up = client.encrypt(&plan, &share, &mut rng)?.encode(&plan);
        let c1 = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let upload = ClientUpload::decode(&up, &plan)?;
        let (reply, mask) = server.evaluate(&plan, &weights, &upload, &mut rng)?;
        let reply = reply.encode(&plan);
        let server_s = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let got = client.decrypt(&plan, &ServerReply::decode(&reply, &plan)?)?;
        let client_s = c1 + t.elapsed().as_secs_f64();

        if verify
            && got != linear_reference(params, shape, &weights, share.as_slice(), mask.as_slice())
        {
            return Err(Error::BadInput(format!(
                "layer {name}: decrypted share differs from W·c − s"
            )));
        }
        reports.push(LayerReport {
            name: name.clone(),
            shape: *shape,
            seconds: client_s + server_s,
            client_seconds: client_s,
            server_seconds: server_s,
            bytes_client_to_server: up.len(),
            bytes_server_to_client: reply.len(),
            products: plan.products(),
            upload_cts: plan.upload_cts(),
            reply_cts: plan.reply_cts(),
            macs: shape.macs(),
            tiling: plan.tiling(),
            noise_margin_bits: plan.noise_margin_bits(),
            hiding_bits: plan.hiding_bits(),
            sent_coefficients: plan.sent_coefficients(),
        });
        plans.push(plan);
    }
    Ok(Report {
        seconds: setup + reports.iter().map(|r| r.seconds).sum::<f64>(),
        bytes_client_to_server: pk_bytes.len()
            + reports
                .iter()
                .map(|r| r.bytes_client_to_server)
                .sum::<usize>(),
        bytes_server_to_client: reports.iter().map(|r| r.bytes_server_to_client).sum(),
        products: reports.iter().map(|r| r.products).sum(),
        hiding: WeightHiding::new(&plans),
        layers: reports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pi_protocol::he::FcShape;

    fn layers(spec: &str) -> Vec<(String, LayerShape)> {
        network_layers(&Network::new(&pi_models::NetSpec::parse(spec).unwrap()))
    }

    #[test]
    fn resnet18_shapes_match_the_reference_counts() {
        let layers = layers("resnet18");
        // 1 stem + 16 block convs + 3 shortcuts + FC.
        assert_eq!(layers.len(), 21);
        let macs: usize = layers.iter().map(|(_, s)| s.macs()).sum();
        // ResNet18 (m = 64) has about 555M MACs (plus the pool-folded FC, 819,200).
        assert!((550_000_000..560_000_000).contains(&macs), "{macs}");
    }

    /// Every preset plans (the widest HRN FC sums 19 200 weights per output)
    /// at the per-coefficient target everywhere, and meets the issue's
    /// figures: at least 50 bits per inference and 40 bits over 2^30
    /// inferences, decryption failure below 2^-40 per inference.
    #[test]
    fn presets_plan_within_the_noise_budget() {
        for spec in [
            "resnet18",
            "hrn-5x5x3x",
            "hrn-7x5x2x",
            "hrn-6x6x2x",
            "hrn-5x7x2x",
        ] {
            let plans: Vec<LayerPlan> = layers(spec)
                .into_iter()
                .map(|(_, s)| LayerPlan::new(HeParams::default(), s).unwrap())
                .collect();
            let hiding = WeightHiding::new(&plans);
            assert!(hiding.inference_bits() >= 50.0, "{spec}: {hiding:?}");
            assert!(
                hiding.lifetime_bits(pi_protocol::he::DEFAULT_LIFETIME_INFERENCES) >= 40.0,
                "{spec}: {hiding:?}"
            );
            hiding
                .check_lifetime(pi_protocol::he::DEFAULT_LIFETIME_INFERENCES)
                .unwrap();
            assert!(hiding.decryption_failure_log2() < -40.0);
            assert!(
                plans
                    .iter()
                    .all(|p| p.hiding_bits() >= pi_protocol::he::params::TARGET_HIDING_BITS),
                "{spec}"
            );
        }
    }

    #[test]
    fn hrn_widths_follow_the_notation() {
        let layers = layers("hrn-5x5x3x");
        assert_eq!(
            layers.last().unwrap().1,
            LayerShape::Fc(FcShape {
                inputs: 1200 * 16,
                outputs: 100
            })
        );
    }

    #[test]
    fn small_network_runs_and_verifies() {
        let r = run_offline_linear(&layers("resnet18(m=2,input=8,classes=10)"), 1, true).unwrap();
        assert_eq!(r.layers.len(), 21);
        assert!(r.bytes_client_to_server > 0 && r.bytes_server_to_client > 0 && r.products > 0);
        assert!(r.layers.iter().all(|l| l.hiding_bits >= 72));
        let k: usize = r.layers.iter().map(|l| l.sent_coefficients).sum();
        assert_eq!(r.hiding.coefficients(), k as u64);
        assert!(r.hiding.inference_bits() > 60.0, "{:?}", r.hiding);
    }
}
