//! The flat description of a network: an ordered list of steps over numbered
//! tensors that both the plaintext oracle and the private protocol walk.
//!
//! Every linear step (conv or FC) outputs a tensor at scale 2f with its bias
//! included; a residual [`AddStep`] combines two scale-2f tensors (an identity
//! shortcut's scale-f input is multiplied by 2^f first); every
//! [`ActivationStep`] truncates by f and applies ReLU where its mask keeps a
//! position (identity elsewhere), giving a scale-f tensor. Logits are the
//! output of the final FC, at scale 2f.
//!
//! Step order for one BasicBlock with input `x`:
//! `conv1(x)`, `relu1`, `conv2`, `shortcut(x)` (projection blocks only), `add`, `relu2`.

use crate::error::{Error, Result};
use crate::spec::{NetSpec, conv_out};
use serde::Serialize;

/// Index of a tensor in [`Network::tensors`].
pub type TensorId = usize;

/// Shape of a (C, H, W) tensor; an FC output is (K, 1, 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Flat index of (c, y, x) in C-major (C, H, W) layout.
    pub fn index(&self, c: usize, y: usize, x: usize) -> usize {
        (c * self.h + y) * self.w + x
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.c, self.h, self.w)
    }
}

/// Fixed-point scale of a tensor: 2^f (activations, inputs) or 2^(2f) (linear outputs, logits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    F,
    TwoF,
}

/// A tensor of the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    pub shape: Shape,
    pub scale: Scale,
}

/// Geometry of a square-kernel 2-D convolution without dilation or groups.
/// Weights are laid out (cout, cin, k, k) as in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ConvGeom {
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl ConvGeom {
    /// Number of weights.
    pub fn weight_len(&self) -> usize {
        self.cout * self.cin * self.kernel * self.kernel
    }
    /// Multiply-accumulates per evaluation.
    pub fn macs(&self) -> u64 {
        (self.weight_len() * self.out_h * self.out_w) as u64
    }
    pub fn in_shape(&self) -> Shape {
        Shape {
            c: self.cin,
            h: self.in_h,
            w: self.in_w,
        }
    }
    pub fn out_shape(&self) -> Shape {
        Shape {
            c: self.cout,
            h: self.out_h,
            w: self.out_w,
        }
    }
}

/// Geometry of the final fully connected layer with global average pooling
/// folded in: the ring layer is a dense (out, C*H*W) matrix whose entry
/// (k, c*H*W + p) is `w[k][c] / (H*W)` for every position p.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FcGeom {
    /// Input feature map (C, H, W) before pooling.
    pub input: Shape,
    /// Number of outputs (classes).
    pub out: usize,
}

impl FcGeom {
    /// Input length of the folded matrix, C*H*W.
    pub fn in_features(&self) -> usize {
        self.input.numel()
    }
    /// Number of positions averaged by the pool, H*W.
    pub fn pool_area(&self) -> usize {
        self.input.h * self.input.w
    }
    /// Conventional MACs on the pooled features (C * out), as counted in the literature.
    pub fn macs(&self) -> u64 {
        (self.input.c * self.out) as u64
    }
    /// MACs executed by the folded (out, C*H*W) matrix.
    pub fn folded_macs(&self) -> u64 {
        (self.in_features() * self.out) as u64
    }
}

/// Which linear operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinearKind {
    Conv(ConvGeom),
    Fc(FcGeom),
}

/// A conv or FC layer with BN folded in; bias always present after folding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinearStep {
    /// PyTorch module name: `conv1`, `layer2.0.conv1`, `layer2.0.shortcut`, `linear`.
    pub name: String,
    /// Position in [`Network::linears`] and in the weight lists.
    pub index: usize,
    pub kind: LinearKind,
    pub input: TensorId,
    pub output: TensorId,
    /// Stage 1..=4, or 5 for the head (FC).
    pub stage: usize,
}

/// Residual add at scale 2f: `output = lhs + rhs * (2^f if rhs_upscale else 1)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddStep {
    /// `layer{s}.{b}.add`.
    pub name: String,
    /// conv2's output (scale 2f).
    pub lhs: TensorId,
    /// Shortcut: a conv output (scale 2f) or the block input (scale f, `rhs_upscale`).
    pub rhs: TensorId,
    pub rhs_upscale: bool,
    pub output: TensorId,
    pub stage: usize,
}

/// Which positions of an activation keep their ReLU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "keep")]
pub enum ReluMask {
    /// Every position is a ReLU.
    All,
    /// No position is a ReLU (identity, still truncated).
    None,
    /// `keep[c]`: channel c keeps its ReLU.
    Channels(Vec<bool>),
    /// `keep[index(c, y, x)]`: that position keeps its ReLU.
    Pixels(Vec<bool>),
}

/// Truncation by f then ReLU (kept positions) or identity (others).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActivationStep {
    /// `relu`, `layer{s}.{b}.relu1`, `layer{s}.{b}.relu2`.
    pub name: String,
    pub input: TensorId,
    pub output: TensorId,
    pub shape: Shape,
    pub mask: ReluMask,
    pub stage: usize,
}

impl ActivationStep {
    /// Whether flat position `i` keeps its ReLU.
    pub fn keeps(&self, i: usize) -> bool {
        match &self.mask {
            ReluMask::All => true,
            ReluMask::None => false,
            ReluMask::Channels(k) => k[i / (self.shape.h * self.shape.w)],
            ReluMask::Pixels(k) => k[i],
        }
    }
    /// The mask expanded to one flag per position.
    pub fn keep_vec(&self) -> Vec<bool> {
        (0..self.shape.numel()).map(|i| self.keeps(i)).collect()
    }
    /// Number of positions that keep their ReLU.
    pub fn relus(&self) -> u64 {
        let hw = self.shape.h * self.shape.w;
        (match &self.mask {
            ReluMask::All => self.shape.numel(),
            ReluMask::None => 0,
            ReluMask::Channels(k) => k.iter().filter(|&&b| b).count() * hw,
            ReluMask::Pixels(k) => k.iter().filter(|&&b| b).count(),
        }) as u64
    }
    /// Number of positions that are identity (truncation only).
    pub fn identity(&self) -> u64 {
        self.shape.numel() as u64 - self.relus()
    }
}

/// One step of the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "op")]
pub enum Step {
    Linear(LinearStep),
    Add(AddStep),
    Activation(ActivationStep),
}

impl Step {
    pub fn name(&self) -> &str {
        match self {
            Step::Linear(l) => &l.name,
            Step::Add(a) => &a.name,
            Step::Activation(a) => &a.name,
        }
    }
    pub fn stage(&self) -> usize {
        match self {
            Step::Linear(l) => l.stage,
            Step::Add(a) => a.stage,
            Step::Activation(a) => a.stage,
        }
    }
}

/// A whole network: spec, tensors and steps in execution order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Network {
    pub spec: NetSpec,
    pub tensors: Vec<TensorInfo>,
    pub steps: Vec<Step>,
    /// The input tensor (scale f), always 0.
    pub input: TensorId,
    /// The logits tensor (scale 2f).
    pub output: TensorId,
}

struct Builder {
    tensors: Vec<TensorInfo>,
    steps: Vec<Step>,
    linears: usize,
}

impl Builder {
    fn tensor(&mut self, shape: Shape, scale: Scale) -> TensorId {
        self.tensors.push(TensorInfo { shape, scale });
        self.tensors.len() - 1
    }
    fn conv(
        &mut self,
        name: String,
        stage: usize,
        input: TensorId,
        cout: usize,
        kernel: usize,
        stride: usize,
    ) -> TensorId {
        let s = self.tensors[input].shape;
        let pad = kernel / 2;
        let geom = ConvGeom {
            cin: s.c,
            cout,
            kernel,
            stride,
            pad,
            in_h: s.h,
            in_w: s.w,
            out_h: conv_out(s.h, kernel, stride, pad),
            out_w: conv_out(s.w, kernel, stride, pad),
        };
        let output = self.tensor(geom.out_shape(), Scale::TwoF);
        self.steps.push(Step::Linear(LinearStep {
            name,
            index: self.linears,
            kind: LinearKind::Conv(geom),
            input,
            output,
            stage,
        }));
        self.linears += 1;
        output
    }
    fn act(&mut self, name: String, stage: usize, input: TensorId) -> TensorId {
        let shape = self.tensors[input].shape;
        let output = self.tensor(shape, Scale::F);
        self.steps.push(Step::Activation(ActivationStep {
            name,
            input,
            output,
            shape,
            mask: ReluMask::All,
            stage,
        }));
        output
    }
}

impl Network {
    /// Builds the network of a spec with every activation a full ReLU.
    pub fn new(spec: &NetSpec) -> Network {
        let mut b = Builder {
            tensors: Vec::new(),
            steps: Vec::new(),
            linears: 0,
        };
        let input = b.tensor(
            Shape {
                c: spec.channels,
                h: spec.input,
                w: spec.input,
            },
            Scale::F,
        );
        let widths = spec.widths();
        let stem = b.conv("conv1".into(), 1, input, widths[0], 3, 1);
        let mut x = b.act("relu".into(), 1, stem);
        for (s, (&width, &depth)) in widths.iter().zip(&spec.phi).enumerate() {
            for blk in 0..depth {
                let stage = s + 1;
                let p = format!("layer{stage}.{blk}");
                let stride = if s > 0 && blk == 0 { 2 } else { 1 };
                let cin = b.tensors[x].shape.c;
                let c1 = b.conv(format!("{p}.conv1"), stage, x, width, 3, stride);
                let a1 = b.act(format!("{p}.relu1"), stage, c1);
                let c2 = b.conv(format!("{p}.conv2"), stage, a1, width, 3, 1);
                let (rhs, rhs_upscale) = if stride != 1 || cin != width {
                    (
                        b.conv(format!("{p}.shortcut"), stage, x, width, 1, stride),
                        false,
                    )
                } else {
                    (x, true)
                };
                let sum = b.tensor(b.tensors[c2].shape, Scale::TwoF);
                b.steps.push(Step::Add(AddStep {
                    name: format!("{p}.add"),
                    lhs: c2,
                    rhs,
                    rhs_upscale,
                    output: sum,
                    stage,
                }));
                x = b.act(format!("{p}.relu2"), stage, sum);
            }
        }
        let geom = FcGeom {
            input: b.tensors[x].shape,
            out: spec.classes,
        };
        let output = b.tensor(
            Shape {
                c: spec.classes,
                h: 1,
                w: 1,
            },
            Scale::TwoF,
        );
        b.steps.push(Step::Linear(LinearStep {
            name: "linear".into(),
            index: b.linears,
            kind: LinearKind::Fc(geom),
            input: x,
            output,
            stage: 5,
        }));
        Network {
            spec: spec.clone(),
            tensors: b.tensors,
            steps: b.steps,
            input,
            output,
        }
    }

    /// Linear steps in order (their `index` is their position here).
    pub fn linears(&self) -> impl Iterator<Item = &LinearStep> {
        self.steps.iter().filter_map(|s| {
            if let Step::Linear(l) = s {
                Some(l)
            } else {
                None
            }
        })
    }

    /// Activation steps in order.
    pub fn activations(&self) -> impl Iterator<Item = &ActivationStep> {
        self.steps.iter().filter_map(|s| {
            if let Step::Activation(a) = s {
                Some(a)
            } else {
                None
            }
        })
    }

    /// The activation called `name`, mutably.
    pub fn activation_mut(&mut self, name: &str) -> Result<&mut ActivationStep> {
        let known: Vec<String> = self.activations().map(|a| a.name.clone()).collect();
        self.steps
            .iter_mut()
            .find_map(|s| match s {
                Step::Activation(a) if a.name == name => Some(a),
                _ => None,
            })
            .ok_or_else(|| {
                let shown: Vec<&str> = known.iter().take(6).map(String::as_str).collect();
                Error::mask(
                    name,
                    format!(
                        "no such activation (names look like {}, ...)",
                        shown.join(", ")
                    ),
                )
            })
    }

    /// DeepReDuce culling: every ReLU of the stage becomes identity (stage 1 includes the stem).
    pub fn cull(&mut self, stage: usize) {
        for s in &mut self.steps {
            if let Step::Activation(a) = s
                && a.stage == stage
            {
                a.mask = ReluMask::None;
            }
        }
    }

    /// DeepReDuce thinning: the `relu2` of every block of the stage becomes identity.
    pub fn thin(&mut self, stage: usize) {
        for s in &mut self.steps {
            if let Step::Activation(a) = s
                && a.stage == stage
                && a.name.ends_with(".relu2")
            {
                a.mask = ReluMask::None;
            }
        }
    }

    /// Sets a per-channel mask: the listed channels keep their ReLU.
    pub fn set_channel_mask(&mut self, name: &str, keep: &[usize]) -> Result<()> {
        let act = self.activation_mut(name)?;
        let mut flags = vec![false; act.shape.c];
        for &c in keep {
            if c >= act.shape.c {
                return Err(Error::mask(
                    name,
                    format!(
                        "channel {c} out of range (the activation has {} channels)",
                        act.shape.c
                    ),
                ));
            }
            flags[c] = true;
        }
        act.mask = ReluMask::Channels(flags);
        Ok(())
    }

    /// Sets a per-pixel mask: the listed (c, y, x) positions keep their ReLU.
    pub fn set_pixel_mask(&mut self, name: &str, keep: &[[usize; 3]]) -> Result<()> {
        let act = self.activation_mut(name)?;
        let s = act.shape;
        let mut flags = vec![false; s.numel()];
        for &[c, y, x] in keep {
            if c >= s.c || y >= s.h || x >= s.w {
                return Err(Error::mask(
                    name,
                    format!("position [{c}, {y}, {x}] out of range (shape {s})"),
                ));
            }
            flags[s.index(c, y, x)] = true;
        }
        act.mask = ReluMask::Pixels(flags);
        Ok(())
    }

    /// Counts ReLUs, identities and MACs per layer and per stage.
    pub fn stats(&self) -> Stats {
        let mut layers = Vec::new();
        let mut st = Stats {
            spec: self.spec.canonical(),
            relus: 0,
            identity: 0,
            macs: 0,
            stage_relus: [0; 4],
            stage_identity: [0; 4],
            stage_macs: [0; 4],
            head_macs: 0,
            layers: Vec::new(),
        };
        for step in &self.steps {
            let (kind, input, output, relus, identity, macs) = match step {
                Step::Linear(l) => {
                    let (kind, macs) = match l.kind {
                        LinearKind::Conv(g) => ("conv", g.macs()),
                        LinearKind::Fc(g) => ("fc", g.macs()),
                    };
                    (
                        kind,
                        vec![self.tensors[l.input].shape],
                        self.tensors[l.output].shape,
                        0,
                        0,
                        macs,
                    )
                }
                Step::Add(a) => (
                    "add",
                    vec![self.tensors[a.lhs].shape, self.tensors[a.rhs].shape],
                    self.tensors[a.output].shape,
                    0,
                    0,
                    0,
                ),
                Step::Activation(a) => ("relu", vec![a.shape], a.shape, a.relus(), a.identity(), 0),
            };
            let stage = step.stage();
            st.relus += relus;
            st.identity += identity;
            st.macs += macs;
            if stage <= 4 {
                st.stage_relus[stage - 1] += relus;
                st.stage_identity[stage - 1] += identity;
                st.stage_macs[stage - 1] += macs;
            } else {
                st.head_macs += macs;
            }
            layers.push(LayerStats {
                name: step.name().to_string(),
                kind,
                stage,
                input,
                output,
                relus,
                identity,
                macs,
            });
        }
        st.layers = layers;
        st
    }
}

/// A compact, self-checking description of a network for sending to a peer
/// or storing: the canonical spec and every activation whose mask is not `All`.
/// [`Network::from_description`] rebuilds the network and validates every mask,
/// so a description from outside can never produce an inconsistent network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Description {
    pub spec: String,
    pub masks: Vec<(String, ReluMask)>,
}

impl Network {
    /// The description of this network.
    pub fn describe(&self) -> Description {
        let masks = self
            .activations()
            .filter(|a| a.mask != ReluMask::All)
            .map(|a| (a.name.clone(), a.mask.clone()))
            .collect();
        Description {
            spec: self.spec.canonical(),
            masks,
        }
    }

    /// Rebuilds a network from a description, checking names and mask lengths.
    pub fn from_description(d: &Description) -> Result<Network> {
        let mut net = Network::new(&NetSpec::parse(&d.spec)?);
        let mut seen = std::collections::HashSet::new();
        for (name, mask) in &d.masks {
            if !seen.insert(name.as_str()) {
                return Err(Error::mask(name, "listed twice"));
            }
            let act = net.activation_mut(name)?;
            let want = match mask {
                ReluMask::All | ReluMask::None => None,
                ReluMask::Channels(k) => Some((k.len(), act.shape.c)),
                ReluMask::Pixels(k) => Some((k.len(), act.shape.numel())),
            };
            if let Some((got, want)) = want
                && got != want
            {
                return Err(Error::mask(
                    name,
                    format!("mask has {got} entries, expected {want}"),
                ));
            }
            act.mask = mask.clone();
        }
        Ok(net)
    }
}

/// Per-layer counts.
#[derive(Clone, Debug, Serialize)]
pub struct LayerStats {
    pub name: String,
    /// `conv`, `fc`, `add` or `relu`.
    pub kind: &'static str,
    /// 1..=4, 5 for the head.
    pub stage: usize,
    pub input: Vec<Shape>,
    pub output: Shape,
    pub relus: u64,
    pub identity: u64,
    pub macs: u64,
}

/// Whole-network counts. MACs count convs (with shortcuts) and the FC on
/// pooled features (C*K, the literature's convention); BN is folded and costs nothing.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub spec: String,
    pub relus: u64,
    pub identity: u64,
    pub macs: u64,
    pub stage_relus: [u64; 4],
    pub stage_identity: [u64; 4],
    pub stage_macs: [u64; 4],
    /// MACs of the FC head.
    pub head_macs: u64,
    pub layers: Vec<LayerStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

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

    proptest::proptest! {
        /// Random channel and pixel masks: kept + identity = positions, keep_vec agrees
        /// with the counts, and the description rebuilds the same network.
        #[test]
        fn masks_count_and_round_trip(picks in proptest::collection::vec((0usize..9, 0usize..64, 0usize..8, 0usize..8, proptest::bool::ANY), 0..12)) {
            let mut net = Network::new(&NetSpec::parse("2x2x2x(m=4,phi=1-1-1-1,input=8)").unwrap());
            let names: Vec<String> = net.activations().map(|a| a.name.clone()).collect();
            for (which, c, y, x, by_channel) in picks {
                let name = &names[which];
                let shape = net.activations().find(|a| &a.name == name).unwrap().shape;
                let (c, y, x) = (c % shape.c, y % shape.h, x % shape.w);
                if by_channel {
                    net.set_channel_mask(name, &[c]).unwrap();
                } else {
                    net.set_pixel_mask(name, &[[c, y, x], [0, 0, 0]]).unwrap();
                }
            }
            for a in net.activations() {
                let kept = a.keep_vec().iter().filter(|&&k| k).count() as u64;
                proptest::prop_assert_eq!(kept, a.relus());
                proptest::prop_assert_eq!(a.relus() + a.identity(), a.shape.numel() as u64);
            }
            proptest::prop_assert_eq!(Network::from_description(&net.describe()).unwrap(), net);
        }
    }

    #[test]
    fn description_round_trip_and_checks() {
        let mut net = Network::new(&NetSpec::parse("2x2x2x(m=4,phi=1-1-1-1,input=8)").unwrap());
        net.cull(1);
        net.set_channel_mask("layer2.0.relu1", &[1, 5]).unwrap();
        net.set_pixel_mask("layer4.0.relu2", &[[3, 0, 0]]).unwrap();
        let d = net.describe();
        assert_eq!(d.masks.len(), 5); // stem + 2 culled in stage 1, plus the two masks
        let json = serde_json::to_string(&d).unwrap();
        let back: Description = serde_json::from_str(&json).unwrap();
        assert_eq!(Network::from_description(&back).unwrap(), net);

        let mut bad = d.clone();
        bad.masks[3].1 = ReluMask::Channels(vec![true; 3]);
        assert!(
            Network::from_description(&bad)
                .unwrap_err()
                .to_string()
                .contains("expected 8")
        );
        let mut bad = d.clone();
        bad.masks.push(bad.masks[0].clone());
        assert!(
            Network::from_description(&bad)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let mut bad = d.clone();
        bad.masks[0].0 = "layer7.0.relu1".into();
        assert!(Network::from_description(&bad).is_err());
        let mut bad = d;
        bad.spec = "5x5x(m=1)".into();
        assert!(Network::from_description(&bad).is_err());
    }
}
