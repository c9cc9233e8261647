//! The CIFAR ResNet18 family and DeepReShape's HybReNets (Jha and Reagen,
//! TMLR 2024): a 3x3 stem conv with m channels + BN + ReLU (no max-pool),
//! four stages of BasicBlocks of widths m, αm, αβm, αβγm and depths φ1..φ4,
//! stride 2 at the first block of stages 2-4, 1x1 conv + BN projection
//! shortcuts where the shape changes, global average pool and FC. ResNet18
//! is α = β = γ = 2, φ = 2-2-2-2, m = 64.
//!
//! Step order for one BasicBlock with input `x`:
//! `conv1(x)`, `relu1`, `conv2`, `shortcut(x)` (projection blocks only), `add`, `relu2`.

use super::builder::Builder;
use crate::network::geometry::Shape;
use crate::network::graph::Network;
use crate::spec::NetSpec;

impl Network {
    /// Builds the network of a spec with every activation a full ReLU.
    pub fn new(spec: &NetSpec) -> Network {
        resnet(spec)
    }
}

/// The ResNet18-family network of `spec`, every activation a full ReLU
/// (the same as [`Network::new`]).
pub fn resnet(spec: &NetSpec) -> Network {
    let mut b = Builder::new(Shape {
        c: spec.channels,
        h: spec.input,
        w: spec.input,
    });
    let widths = spec.widths();
    let stem = b.conv("conv1".into(), 1, b.input(), widths[0], 3, 1);
    let mut x = b.act("relu".into(), 1, stem);
    for (s, (&width, &depth)) in widths.iter().zip(&spec.phi).enumerate() {
        let stage = s + 1;
        for blk in 0..depth {
            let p = format!("layer{stage}.{blk}");
            let stride = if s > 0 && blk == 0 { 2 } else { 1 };
            let cin = b.shape(x).c;
            let c1 = b.conv(format!("{p}.conv1"), stage, x, width, 3, stride);
            let a1 = b.act(format!("{p}.relu1"), stage, c1);
            let c2 = b.conv(format!("{p}.conv2"), stage, a1, width, 3, 1);
            // Projection shortcut where the shape changes, identity (upscaled by 2^f) otherwise.
            let shortcut = if stride != 1 || cin != width {
                b.conv(format!("{p}.shortcut"), stage, x, width, 1, stride)
            } else {
                x
            };
            let sum = b.add(format!("{p}.add"), stage, c2, shortcut);
            x = b.act(format!("{p}.relu2"), stage, sum);
        }
    }
    let logits = b.pooled_fc("linear".into(), x, spec.classes);
    b.finish(spec, logits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{LinearKind, Scale, Step};

    #[test]
    fn tensors_are_consistent() {
        let net = Network::new(&NetSpec::parse("resnet18").unwrap());
        for step in &net.steps {
            match step {
                Step::Linear(l) => {
                    assert_eq!(net.tensors[l.output].scale, Scale::TwoF);
                    assert_eq!(net.tensors[l.input].scale, Scale::F);
                    match l.kind {
                        LinearKind::Conv(g) => {
                            assert_eq!(net.tensors[l.input].shape, g.in_shape());
                            assert_eq!(net.tensors[l.output].shape, g.out_shape());
                        }
                        LinearKind::Fc(g) => assert_eq!(net.tensors[l.input].shape, g.input),
                    }
                }
                Step::Add(a) => {
                    assert_eq!(net.tensors[a.lhs].shape, net.tensors[a.rhs].shape);
                    assert_eq!(net.tensors[a.rhs].scale == Scale::F, a.rhs_upscale);
                }
                Step::Activation(a) => assert_eq!(net.tensors[a.input].scale, Scale::TwoF),
            }
        }
        // 17 convs + 3 shortcuts + FC.
        assert_eq!(net.linears().count(), 21);
        assert!(net.linears().enumerate().all(|(i, l)| l.index == i));
        assert_eq!(net.activations().count(), 17);
    }
}
