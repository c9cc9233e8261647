//! A small graph builder the families share: it numbers tensors, tracks their
//! scale and appends steps in execution order, so a family file only says
//! which layers follow which.

use crate::network::geometry::{ConvGeom, FcGeom, Shape};
use crate::network::graph::{
    ActivationStep, AddStep, LinearKind, LinearStep, Network, ReluMask, Scale, Step, TensorId,
    TensorInfo,
};
use crate::spec::{NetSpec, conv_out};

/// Tensors and steps built so far.
pub(super) struct Builder {
    tensors: Vec<TensorInfo>,
    steps: Vec<Step>,
    linears: usize,
    input: TensorId,
}

impl Builder {
    /// A graph whose tensor 0 is the (C, H, W) input at scale f.
    pub(super) fn new(input: Shape) -> Builder {
        let mut b = Builder {
            tensors: Vec::new(),
            steps: Vec::new(),
            linears: 0,
            input: 0,
        };
        b.input = b.tensor(input, Scale::F);
        b
    }

    /// The input tensor.
    pub(super) fn input(&self) -> TensorId {
        self.input
    }

    /// Shape of tensor `t`.
    pub(super) fn shape(&self, t: TensorId) -> Shape {
        self.tensors[t].shape
    }

    fn tensor(&mut self, shape: Shape, scale: Scale) -> TensorId {
        self.tensors.push(TensorInfo { shape, scale });
        self.tensors.len() - 1
    }

    /// A square `kernel` conv with padding kernel/2 (BN folded): scale-f input, scale-2f output.
    pub(super) fn conv(
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

    /// A full-ReLU activation (truncation by f): scale-2f input, scale-f output.
    pub(super) fn act(&mut self, name: String, stage: usize, input: TensorId) -> TensorId {
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

    /// A residual add at scale 2f; a scale-f `rhs` is multiplied by 2^f first.
    pub(super) fn add(
        &mut self,
        name: String,
        stage: usize,
        lhs: TensorId,
        rhs: TensorId,
    ) -> TensorId {
        let rhs_upscale = self.tensors[rhs].scale == Scale::F;
        let output = self.tensor(self.tensors[lhs].shape, Scale::TwoF);
        self.steps.push(Step::Add(AddStep {
            name,
            lhs,
            rhs,
            rhs_upscale,
            output,
            stage,
        }));
        output
    }

    /// The global average pool folded into an FC with `classes` outputs (stage 5).
    pub(super) fn pooled_fc(&mut self, name: String, input: TensorId, classes: usize) -> TensorId {
        let geom = FcGeom {
            input: self.tensors[input].shape,
            out: classes,
        };
        let output = self.tensor(
            Shape {
                c: classes,
                h: 1,
                w: 1,
            },
            Scale::TwoF,
        );
        self.steps.push(Step::Linear(LinearStep {
            name,
            index: self.linears,
            kind: LinearKind::Fc(geom),
            input,
            output,
            stage: 5,
        }));
        self.linears += 1;
        output
    }

    /// The finished network with `output` as its logits.
    pub(super) fn finish(self, spec: &NetSpec, output: TensorId) -> Network {
        Network {
            spec: spec.clone(),
            tensors: self.tensors,
            steps: self.steps,
            input: self.input,
            output,
        }
    }
}
