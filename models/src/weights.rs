//! Weight files: safetensors with PyTorch `state_dict` names, BN folding, and
//! seeded random weights.
//!
//! Accepted tensor names (as written by `safetensors.torch.save_file(model.state_dict(), path)`
//! for the common CIFAR ResNet code, e.g. kuangliu/pytorch-cifar):
//! - stem: `conv1.weight` (m, C, 3, 3); `bn1.weight`, `bn1.bias`, `bn1.running_mean`, `bn1.running_var` (m)
//! - blocks: `layer{s}.{b}.conv1.weight`, `layer{s}.{b}.bn1.*`, `layer{s}.{b}.conv2.weight`, `layer{s}.{b}.bn2.*`
//! - projection shortcuts: `layer{s}.{b}.shortcut.0.weight` (1x1 conv) and `layer{s}.{b}.shortcut.1.*` (BN),
//!   or torchvision's `layer{s}.{b}.downsample.0.weight` / `downsample.1.*`
//! - head: `linear.weight` (K, C), `linear.bias` (K), or `fc.weight` / `fc.bias`
//! - an optional `module.` prefix on every name (DataParallel)
//! - `*.num_batches_tracked` is ignored whatever its type.
//!
//! Dtypes F32, F64, F16 and BF16 are accepted. Every other tensor, a missing
//! tensor, a wrong shape, a non-finite value or a negative running variance is
//! an error naming the tensor.
//!
//! BN folding in f64 with eps = 1e-5: with s = γ / sqrt(var + eps),
//! w' = w * s (per output channel) and b' = β − mean * s.

use crate::error::{Error, Result};
use crate::files::read_capped;
use crate::network::{LinearKind, LinearStep, Network};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::BTreeMap;
use std::path::Path;

/// BatchNorm epsilon (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

/// Largest weight file read (bytes).
pub const MAX_WEIGHT_FILE: u64 = 4 << 30;

/// One linear layer with BN folded: conv weight (cout, cin, k, k) or FC weight
/// (K, C) on pooled features, and a bias per output channel.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldedLinear {
    /// BN-scaled weights, laid out as the step's geometry says.
    pub weight: Vec<f64>,
    /// One bias per output channel (BN shift folded in).
    pub bias: Vec<f64>,
}

/// Folded float weights, one entry per [`Network::linears`] step.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldedModel {
    /// One entry per linear step, in order.
    pub layers: Vec<FoldedLinear>,
}

/// Largest number of weight parameters ([`Network::params`]) of a network
/// whose weights are made or loaded: 2^28, about 2 GiB per f64 copy (ResNet18
/// at m = 256 has 179M and fits; at m = 512 it has 715M and does not).
/// Loading holds the file, the folded f64 weights and the quantised ring
/// weights at once, so this keeps one model within a few GiB.
pub const MAX_PARAMS: u64 = 1 << 28;

/// Refuses a network with more than [`MAX_PARAMS`] parameters, before anything
/// is allocated for its weights.
pub fn check_network_size(net: &Network) -> Result<()> {
    let params = net.params();
    if params > MAX_PARAMS {
        return Err(Error::NetworkTooLarge {
            spec: net.spec.canonical(),
            params,
            limit: MAX_PARAMS,
        });
    }
    Ok(())
}

/// The largest safetensors file that can hold `net`'s weights: every stored
/// value (conv weights, four BN vectors per conv, FC weight and bias) at 8 bytes
/// (F64), plus room for the header, and never more than [`MAX_WEIGHT_FILE`].
pub fn max_file_bytes(net: &Network) -> u64 {
    let mut values = 0u64;
    let mut tensors = 0u64;
    for l in net.linears() {
        let (n, t) = match l.kind {
            LinearKind::Conv(g) => (g.weight_len() + 4 * g.cout, 6),
            LinearKind::Fc(g) => ((g.input.c + 1) * g.out, 2),
        };
        values = values.saturating_add(n as u64);
        tensors += t;
    }
    values
        .saturating_mul(8)
        .saturating_add(HEADER_ALLOWANCE)
        .saturating_add(tensors.saturating_mul(HEADER_PER_TENSOR))
        .min(MAX_WEIGHT_FILE)
}

/// Header room of a weight file on top of [`HEADER_PER_TENSOR`] per tensor.
const HEADER_ALLOWANCE: u64 = 64 << 10;
/// Header room per tensor: its JSON entry (name, dtype, shape, offsets).
const HEADER_PER_TENSOR: u64 = 1 << 10;

/// Reads and folds a safetensors file for `net`. The network's size is
/// checked first ([`check_network_size`]) and at most [`max_file_bytes`] are read.
pub fn load_weights(path: &Path, net: &Network) -> Result<FoldedModel> {
    check_network_size(net)?;
    let bytes = read_capped(path, max_file_bytes(net), "weight file").map_err(|e| match e {
        Error::TooLarge { .. } => Error::weights(
            "",
            format!("{e}: more than any safetensors file of {} holds", net.spec),
        ),
        other => other,
    })?;
    weights_from_bytes(&bytes, net)
}

/// Parses and folds safetensors bytes for `net` (refusing a network over [`MAX_PARAMS`]).
pub fn weights_from_bytes(bytes: &[u8], net: &Network) -> Result<FoldedModel> {
    check_network_size(net)?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::weights("", format!("not a valid safetensors file: {e}")))?;
    // Canonical name -> (original name, view).
    let mut tensors: BTreeMap<String, (String, TensorView<'_>)> = BTreeMap::new();
    for (name, view) in st.tensors() {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let canon = canonical_name(&name);
        if let Some((prev, _)) = tensors.get(&canon) {
            return Err(Error::weights(
                &name,
                format!("same tensor as `{prev}` under another name"),
            ));
        }
        tensors.insert(canon, (name, view));
    }
    let mut layers = Vec::new();
    for l in net.linears() {
        layers.push(fold_layer(l, &mut tensors)?);
    }
    if let Some((_, (orig, _))) = tensors.iter().next() {
        let extra: Vec<&str> = tensors.values().map(|(o, _)| o.as_str()).collect();
        return Err(Error::weights(
            orig,
            format!(
                "unexpected tensor(s) for network {}: {}",
                net.spec,
                extra.join(", ")
            ),
        ));
    }
    Ok(FoldedModel { layers })
}

/// Maps accepted aliases onto `conv1`, `bn1`, `layerS.B.shortcut.{0,1}`, `linear`.
fn canonical_name(name: &str) -> String {
    let n = name.strip_prefix("module.").unwrap_or(name);
    let n = n.replace(".downsample.", ".shortcut.");
    match n.strip_prefix("fc.") {
        Some(rest) => format!("linear.{rest}"),
        None => n,
    }
}

type Tensors<'a> = BTreeMap<String, (String, TensorView<'a>)>;

/// Removes `name` from the map, checks its shape and converts it to finite f64s.
fn take(tensors: &mut Tensors<'_>, name: &str, shape: &[usize]) -> Result<Vec<f64>> {
    let (orig, view) = tensors
        .remove(name)
        .ok_or_else(|| Error::weights(name, "missing"))?;
    if view.shape() != shape {
        return Err(Error::weights(
            &orig,
            format!("shape {:?}, expected {:?}", view.shape(), shape),
        ));
    }
    let data = view.data();
    let n: usize = shape.iter().product();
    let vals: Vec<f64> = match view.dtype() {
        Dtype::F32 => decode(data, n, 4, &orig, |b| {
            f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64
        })?,
        Dtype::F64 => decode(data, n, 8, &orig, |b| {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        })?,
        Dtype::F16 => decode(data, n, 2, &orig, |b| {
            f16_to_f64(u16::from_le_bytes([b[0], b[1]]))
        })?,
        Dtype::BF16 => decode(data, n, 2, &orig, |b| {
            f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64
        })?,
        other => {
            return Err(Error::weights(
                &orig,
                format!("dtype {other:?} not supported (use F32, F64, F16 or BF16)"),
            ));
        }
    };
    if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
        return Err(Error::weights(
            &orig,
            format!("element {i} is not finite ({})", vals[i]),
        ));
    }
    Ok(vals)
}

/// Decodes `n` little-endian elements of `width` bytes each, checking the byte count.
fn decode(
    data: &[u8],
    n: usize,
    width: usize,
    name: &str,
    f: impl Fn(&[u8]) -> f64,
) -> Result<Vec<f64>> {
    if Some(data.len()) != n.checked_mul(width) {
        return Err(Error::weights(
            name,
            format!(
                "data is {} bytes for {n} elements of {width} bytes",
                data.len()
            ),
        ));
    }
    Ok(data.chunks_exact(width).map(f).collect())
}

/// IEEE half to f64.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let man = (h & 0x3ff) as f64;
    match exp {
        0 => sign * man * (-24f64).exp2(),
        31 => {
            if man == 0.0 {
                sign * f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => sign * (1.0 + man / 1024.0) * ((e - 15) as f64).exp2(),
    }
}

/// PyTorch names (weight tensor, BN prefix) of a linear step.
fn torch_names(l: &LinearStep) -> (String, Option<String>) {
    if l.name == "conv1" {
        ("conv1.weight".into(), Some("bn1".into()))
    } else if let Some(p) = l.name.strip_suffix(".shortcut") {
        (
            format!("{p}.shortcut.0.weight"),
            Some(format!("{p}.shortcut.1")),
        )
    } else if let Some(p) = l.name.strip_suffix(".conv1") {
        (format!("{}.weight", l.name), Some(format!("{p}.bn1")))
    } else if let Some(p) = l.name.strip_suffix(".conv2") {
        (format!("{}.weight", l.name), Some(format!("{p}.bn2")))
    } else {
        ("linear.weight".into(), None)
    }
}

fn fold_layer(l: &LinearStep, tensors: &mut Tensors<'_>) -> Result<FoldedLinear> {
    let (wname, bn) = torch_names(l);
    match l.kind {
        LinearKind::Conv(g) => {
            let mut weight = take(tensors, &wname, &[g.cout, g.cin, g.kernel, g.kernel])?;
            let bn = bn.unwrap_or_default();
            let gamma = take(tensors, &format!("{bn}.weight"), &[g.cout])?;
            let beta = take(tensors, &format!("{bn}.bias"), &[g.cout])?;
            let mean = take(tensors, &format!("{bn}.running_mean"), &[g.cout])?;
            let var = take(tensors, &format!("{bn}.running_var"), &[g.cout])?;
            if let Some(i) = var.iter().position(|&v| v < 0.0) {
                return Err(Error::weights(
                    &format!("{bn}.running_var"),
                    format!("element {i} is negative ({})", var[i]),
                ));
            }
            let per = g.cin * g.kernel * g.kernel;
            let mut bias = Vec::with_capacity(g.cout);
            for c in 0..g.cout {
                let s = gamma[c] / (var[c] + BN_EPS).sqrt();
                weight[c * per..(c + 1) * per]
                    .iter_mut()
                    .for_each(|w| *w *= s);
                bias.push(beta[c] - mean[c] * s);
            }
            Ok(FoldedLinear { weight, bias })
        }
        LinearKind::Fc(g) => {
            let weight = take(tensors, "linear.weight", &[g.out, g.input.c])?;
            let bias = take(tensors, "linear.bias", &[g.out])?;
            Ok(FoldedLinear { weight, bias })
        }
    }
}

/// Seeded random weights for `net`, as safetensors bytes with the canonical
/// PyTorch names (`linear.*` head, `shortcut.{0,1}` projections, plus an I64
/// `num_batches_tracked` per BN as PyTorch writes it).
///
/// Byte-identical across runs and platforms: ChaCha20 seeded with
/// `seed_from_u64`, uniforms built from the top 53 bits of each `u64`, and
/// only IEEE-exact operations (+, −, ×, ÷, sqrt, f64→f32 rounding).
///
/// Scale: convs are Kaiming-uniform (variance 2 / fan_in); BN has γ in
/// [0.5, 1) except `bn2` (the end of a residual branch) with γ in [0.2, 0.5),
/// so the residual stream grows slowly with depth; β and the running mean in
/// [−0.1, 0.1), running variance in [0.5, 1.5). The FC is Kaiming-uniform too
/// (bias in [−0.1, 0.1)), so logits spread by O(1) and argmax is stable. Activations stay O(1) through deep nets, far below
/// the 2^(l−2f−1) = 2^12 headroom of the default ring at scale 2f.
/// A network over [`MAX_PARAMS`] is refused before anything is allocated.
pub fn init_weights(net: &Network, seed: u64) -> Result<Vec<u8>> {
    check_network_size(net)?;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    // Uniform in [lo, hi) with exactly reproducible arithmetic.
    let mut uni = move |lo: f64, hi: f64| {
        let u = (rng.next_u64() >> 11) as f64 * (-53f64).exp2();
        lo + (hi - lo) * u
    };
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, vals: Vec<f64>| {
        let bytes = vals
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        out.push((name, Dtype::F32, shape, bytes));
    };
    let mut counters = Vec::new();
    for l in net.linears() {
        let (wname, bn) = torch_names(l);
        match l.kind {
            LinearKind::Conv(g) => {
                let fan_in = (g.cin * g.kernel * g.kernel) as f64;
                let a = (6.0 / fan_in).sqrt();
                let w = (0..g.weight_len()).map(|_| uni(-a, a)).collect();
                push(wname, vec![g.cout, g.cin, g.kernel, g.kernel], w);
                let bn = bn.unwrap_or_default();
                let (glo, ghi) = if bn.ends_with(".bn2") {
                    (0.2, 0.5)
                } else {
                    (0.5, 1.0)
                };
                let gamma = (0..g.cout).map(|_| uni(glo, ghi)).collect();
                let beta = (0..g.cout).map(|_| uni(-0.1, 0.1)).collect();
                let mean = (0..g.cout).map(|_| uni(-0.1, 0.1)).collect();
                let var = (0..g.cout).map(|_| uni(0.5, 1.5)).collect();
                push(format!("{bn}.weight"), vec![g.cout], gamma);
                push(format!("{bn}.bias"), vec![g.cout], beta);
                push(format!("{bn}.running_mean"), vec![g.cout], mean);
                push(format!("{bn}.running_var"), vec![g.cout], var);
                counters.push(format!("{bn}.num_batches_tracked"));
            }
            LinearKind::Fc(g) => {
                let a = (6.0 / g.input.c as f64).sqrt();
                let w = (0..g.out * g.input.c).map(|_| uni(-a, a)).collect();
                let b = (0..g.out).map(|_| uni(-0.1, 0.1)).collect();
                push("linear.weight".into(), vec![g.out, g.input.c], w);
                push("linear.bias".into(), vec![g.out], b);
            }
        }
    }
    for name in counters {
        out.push((name, Dtype::I64, vec![], 0i64.to_le_bytes().to_vec()));
    }
    let views = out
        .iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::weights(n, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), None)
        .map_err(|e| Error::weights("", format!("cannot serialise: {e}")))
}
