//! Shapes and layer geometry: what a tensor, a convolution and the final
//! fully connected layer look like, and what they cost in MACs.

use serde::Serialize;

/// Shape of a (C, H, W) tensor; an FC output is (K, 1, 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Shape {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
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

/// Geometry of a square-kernel 2-D convolution without dilation or groups.
/// Weights are laid out (cout, cin, k, k) as in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ConvGeom {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side k (the kernel is k x k).
    pub kernel: usize,
    /// Stride, the same in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
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
    /// Shape of the input tensor.
    pub fn in_shape(&self) -> Shape {
        Shape {
            c: self.cin,
            h: self.in_h,
            w: self.in_w,
        }
    }
    /// Shape of the output tensor.
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
