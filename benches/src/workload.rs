//! What a benchmark computes on: the weight file the server loads, seeded
//! random inputs, and the fixed-point oracle ([`forward_fixed`]) that every
//! private result is checked against bit for bit.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pi_models::fixed::{QuantModel, forward_fixed, quantize_input};
use pi_models::weights::init_weights;
use pi_models::{Model, RingParams};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A seeded random input in [-2, 2) of `shape`.
pub fn random_input(shape: &[usize], seed: u64) -> Vec<f32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    (0..n)
        .map(|_| (rng.next_u32() as f64 / u32::MAX as f64 * 4.0 - 2.0) as f32)
        .collect()
}

/// A model with its weights, quantised as the server quantises them.
pub struct Workload {
    /// The network.
    pub model: Model,
    /// The weight file to give the server (`None`: the model file's own).
    pub weights: Option<PathBuf>,
    /// Where the weights came from, for the report.
    pub weights_source: String,
    quant: QuantModel,
}

impl Workload {
    /// `spec` with the weights `explicit`, else the model file's, else
    /// seeded random weights written to `dir/file_name`.
    ///
    /// # Errors
    /// If the spec, the weight file or the quantisation fails.
    pub fn new(
        spec: &str,
        explicit: Option<&Path>,
        seed: u64,
        dir: &Path,
        file_name: &str,
    ) -> Result<Self> {
        let model = Model::resolve(spec).with_context(|| format!("network {spec:?}"))?;
        let (weights, weights_source) = match (explicit, &model.weights) {
            (Some(w), _) => (Some(w.to_path_buf()), w.display().to_string()),
            (None, Some(w)) => (None, w.display().to_string()),
            (None, None) => {
                let bytes = init_weights(&model.network, seed).context("random weights")?;
                let path = dir.join(file_name);
                std::fs::write(&path, bytes).context("writing the random weights")?;
                (Some(path), format!("random (seed {seed})"))
            }
        };
        let folded = model.load_weights(weights.as_deref()).context("weights")?;
        let quant = model
            .quantize(&folded, RingParams::default())
            .context("quantising the weights")?;
        Ok(Self {
            model,
            weights,
            weights_source,
            quant,
        })
    }

    /// The model a remote server announced in its handshake (network,
    /// masks, normalisation) with the weight file `weights` (the server's
    /// own, to compute the oracle), quantised with the session's `ring`.
    ///
    /// # Errors
    /// If the weight file does not fit the network or cannot be quantised.
    pub fn announced(model: Model, weights: &Path, ring: RingParams) -> Result<Self> {
        let folded = model
            .load_weights(Some(weights))
            .with_context(|| format!("weights {} for the server's network", weights.display()))?;
        let quant = model
            .quantize(&folded, ring)
            .context("quantising the weights")?;
        Ok(Self {
            model,
            weights: Some(weights.to_path_buf()),
            weights_source: weights.display().to_string(),
            quant,
        })
    }

    /// The network's input shape (C, H, W).
    pub fn input_shape(&self) -> [usize; 3] {
        let s = self.model.network.tensors[self.model.network.input].shape;
        [s.c, s.h, s.w]
    }

    /// `raw` (float, `shape`) prepared and quantised as the client does it,
    /// and the oracle's logits for it (signed, scale 2f).
    ///
    /// # Errors
    /// If the input does not fit the network.
    pub fn case(&self, raw: Vec<f32>, shape: &[usize]) -> Result<(Vec<u64>, Vec<i64>)> {
        let x = self.model.prepare_input(raw, shape).context("input")?;
        let q = quantize_input(&x, self.quant.ring).context("quantising the input")?;
        let oracle = forward_fixed(&self.model.network, &self.quant, &q)
            .iter()
            .map(|&v| self.quant.ring.to_signed(v))
            .collect();
        Ok((q, oracle))
    }
}
