//! One plaintext inference as `pi-models infer` runs it: the f64 reference or
//! the fixed-point oracle, the predicted class, and the command's table
//! (`Display`) and JSON.

use crate::error::Result;
use crate::fixed::{RingParams, forward_fixed};
use crate::float::forward_float;
use crate::model::Model;
use crate::weights::FoldedModel;

/// Logits and class of one input.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Index of the largest logit ([`argmax`]).
    pub class: usize,
    /// Logits as floats (fixed point: the signed ring value divided by 2^(2f)).
    pub logits: Vec<f64>,
    /// Fixed point only: the ring and the raw logits as signed integers at scale 2f.
    pub fixed: Option<(RingParams, Vec<i64>)>,
}

impl Prediction {
    /// The f64 reference on a prepared (normalised) input.
    pub fn float(model: &Model, folded: &FoldedModel, x: &[f32]) -> Prediction {
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let logits = forward_float(&model.network, folded, &xf);
        Prediction {
            class: argmax(&logits),
            logits,
            fixed: None,
        }
    }

    /// The fixed-point oracle over `ring` on a prepared (normalised) input: the
    /// result the private protocol must reproduce bit for bit.
    pub fn fixed(
        model: &Model,
        folded: &FoldedModel,
        x: &[f32],
        ring: RingParams,
    ) -> Result<Prediction> {
        let q = model.quantize(folded, ring)?;
        let xq = model.quantize_input(x, ring)?;
        let out = forward_fixed(&model.network, &q, &xq);
        let logits: Vec<f64> = out
            .iter()
            .map(|&v| ring.to_f64(v, 2 * ring.frac()))
            .collect();
        Ok(Prediction {
            class: argmax(&logits),
            logits,
            fixed: Some((ring, out.iter().map(|&v| ring.to_signed(v)).collect())),
        })
    }

    /// `{"class", "logits"}`, plus `logits_fixed`, `ring_bits` and `frac_bits` for fixed point.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "class": self.class, "logits": self.logits });
        if let Some((ring, raw)) = &self.fixed {
            v["logits_fixed"] = serde_json::json!(raw);
            v["ring_bits"] = ring.bits().into();
            v["frac_bits"] = ring.frac().into();
        }
        v
    }
}

impl std::fmt::Display for Prediction {
    /// One line per class (index, logit, raw fixed-point value), then `class K`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, l) in self.logits.iter().enumerate() {
            match &self.fixed {
                Some((_, raw)) => writeln!(f, "{i:>5} {l:>14.6} {:>16}", raw[i])?,
                None => writeln!(f, "{i:>5} {l:>14.6}")?,
            }
        }
        writeln!(f, "class {}", self.class)
    }
}

/// Index of the largest value (the first one on ties; 0 for an empty slice).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
