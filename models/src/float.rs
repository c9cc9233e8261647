//! Float reference inference in f64 (f64 so that comparisons with the
//! fixed-point oracle measure quantisation error, not float rounding).
//! Same graph and masks as the fixed-point path: kept positions apply ReLU,
//! identity positions pass through; global average pooling precedes the FC.

use crate::kernels::{conv2d_accumulate, dense_accumulate};
use crate::network::{LinearKind, Network, Step};
use crate::weights::FoldedModel;

/// Runs the float network and returns every tensor (indexed by tensor id).
pub fn forward_float_trace(net: &Network, model: &FoldedModel, input: &[f64]) -> Vec<Vec<f64>> {
    assert_eq!(
        input.len(),
        net.tensors[net.input].shape.numel(),
        "input length"
    );
    assert_eq!(
        model.layers.len(),
        net.linears().count(),
        "one folded layer per linear step"
    );
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); net.tensors.len()];
    t[net.input] = input.to_vec();
    for step in &net.steps {
        match step {
            Step::Linear(l) => {
                let fl = &model.layers[l.index];
                let out = match l.kind {
                    LinearKind::Conv(g) => {
                        let plane = g.out_h * g.out_w;
                        let mut out: Vec<f64> = fl
                            .bias
                            .iter()
                            .flat_map(|&b| std::iter::repeat_n(b, plane))
                            .collect();
                        conv2d_accumulate(&g, &fl.weight, &t[l.input], &mut out);
                        out
                    }
                    LinearKind::Fc(g) => {
                        let area = g.pool_area();
                        let pooled: Vec<f64> = t[l.input]
                            .chunks_exact(area)
                            .map(|c| c.iter().sum::<f64>() / area as f64)
                            .collect();
                        let mut out = fl.bias.clone();
                        dense_accumulate(g.out, g.input.c, &fl.weight, &pooled, &mut out);
                        out
                    }
                };
                t[l.output] = out;
            }
            Step::Add(a) => {
                // Scales are a fixed-point notion; in float both operands are plain values.
                t[a.output] = t[a.lhs].iter().zip(&t[a.rhs]).map(|(x, y)| x + y).collect();
            }
            Step::Activation(a) => {
                t[a.output] = t[a.input]
                    .iter()
                    .enumerate()
                    .map(|(i, &z)| if a.keeps(i) { z.max(0.0) } else { z })
                    .collect();
            }
        }
    }
    t
}

/// Float logits.
pub fn forward_float(net: &Network, model: &FoldedModel, input: &[f64]) -> Vec<f64> {
    let mut t = forward_float_trace(net, model, input);
    std::mem::take(&mut t[net.output])
}
