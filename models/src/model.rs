//! Models as users name them: a spec string or a model file (TOML).
//!
//! ```toml
//! spec = "5x5x3x(m=4,phi=1-1-1-1,classes=10,input=16,channels=1)"
//! weights = "weights.safetensors"   # optional, relative to this file
//! cull = ["stage1"]                 # optional: every ReLU of the stage becomes identity
//! thin = ["stage3"]                 # optional: relu2 of every block of the stage becomes identity
//! [normalization]                   # optional; x' = (x - mean[c]) / std[c] on .npy inputs
//! mean = [0.5]
//! std = [0.25]
//! [[relu]]                          # optional per-activation masks, applied after cull/thin
//! activation = "layer2.0.relu1"
//! mode = "channels"                 # all | none | channels | pixels
//! keep = [0, 3, 5]                  # channels kept; for pixels: [[c, y, x], ...]
//! ```
//! `cull` and `thin` are also accepted inside `[normalization]`, because TOML
//! places keys written after a table header into that table and it is an easy
//! slip. Mean and std have one entry per input channel (or one for all).
//! Stages are named `stage1`..`stage4` (or `layer1`..`layer4`).

use crate::error::{Error, Result};
use crate::files::read_capped;
use crate::fixed::{QuantModel, RingParams, quantize_input};
use crate::network::Network;
use crate::spec::NetSpec;
use crate::weights::{FoldedModel, load_weights};

pub use crate::files::read_npy_f32;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest model file or input file read (bytes).
pub const MAX_SMALL_FILE: u64 = 256 << 20;

/// Room for a `.npy` header on top of the data (numpy writes about 128 bytes).
pub const NPY_HEADER_ALLOWANCE: u64 = 64 << 10;

/// Per-channel input normalisation.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// Subtracted per channel (one entry per channel, or one for all).
    pub mean: Vec<f64>,
    /// Divided by per channel, after the mean (positive).
    pub std: Vec<f64>,
}

/// A network with its optional weight path and normalisation.
#[derive(Clone, Debug)]
pub struct Model {
    /// The network with its ReLU masks.
    pub network: Network,
    /// Applied to inputs by [`Model::load_input`] and [`Model::prepare_input`].
    pub normalization: Option<Normalization>,
    /// Weight file named by the model file, resolved relative to it.
    pub weights: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    spec: String,
    weights: Option<String>,
    normalization: Option<NormRepr>,
    cull: Option<Vec<String>>,
    thin: Option<Vec<String>>,
    relu: Option<Vec<ReluRepr>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NormRepr {
    mean: Vec<f64>,
    std: Vec<f64>,
    cull: Option<Vec<String>>,
    thin: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReluRepr {
    activation: String,
    mode: String,
    keep: Option<toml::Value>,
}

/// Whether `text` names a model file rather than a spec.
fn is_path(text: &str) -> bool {
    let t = text.trim();
    t.to_ascii_lowercase().ends_with(".toml") || (!t.contains('(') && Path::new(t).is_file())
}

impl Model {
    /// Resolves a spec string or model-file path.
    pub fn resolve(text: &str) -> Result<Model> {
        if is_path(text) {
            Model::from_file(Path::new(text.trim()))
        } else {
            let spec = NetSpec::parse(text)?;
            Ok(Model {
                network: Network::new(&spec),
                normalization: None,
                weights: None,
            })
        }
    }

    /// Reads a model file.
    pub fn from_file(path: &Path) -> Result<Model> {
        let bad = |reason: String| Error::ModelFile {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = read_capped(path, MAX_SMALL_FILE, "model file").map_err(|e| match e {
            Error::TooLarge { .. } => bad(e.to_string()),
            other => other,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        Model::from_toml(&text, path.parent().unwrap_or(Path::new(""))).map_err(|e| match e {
            Error::ModelFile { reason, .. } => bad(reason),
            // Name the file for spec and mask errors too.
            other @ (Error::Spec { .. } | Error::Mask { .. }) => bad(other.to_string()),
            other => other,
        })
    }

    /// Parses model-file text; `base` resolves a relative `weights` path.
    pub fn from_toml(text: &str, base: &Path) -> Result<Model> {
        let bad = |reason: String| Error::ModelFile {
            path: PathBuf::from("<model>"),
            reason,
        };
        let repr: FileRepr = toml::from_str(text).map_err(|e| bad(toml_error(text, &e)))?;
        if is_path(&repr.spec) {
            return Err(bad(format!(
                "spec `{}` must be a network spec, not a file",
                repr.spec
            )));
        }
        let spec = NetSpec::parse(&repr.spec)?;
        let mut net = Network::new(&spec);
        let mut cull = repr.cull.unwrap_or_default();
        let mut thin = repr.thin.unwrap_or_default();
        let normalization = match repr.normalization {
            None => None,
            Some(n) => {
                cull.extend(n.cull.unwrap_or_default());
                thin.extend(n.thin.unwrap_or_default());
                Some(check_normalization(n.mean, n.std, spec.channels).map_err(bad)?)
            }
        };
        for s in &cull {
            net.cull(parse_stage(s).map_err(bad)?);
        }
        for s in &thin {
            net.thin(parse_stage(s).map_err(bad)?);
        }
        let mut seen: Vec<&str> = Vec::new();
        for r in repr.relu.as_deref().unwrap_or_default() {
            if seen.contains(&r.activation.as_str()) {
                return Err(Error::mask(
                    &r.activation,
                    "given in more than one [[relu]] entry",
                ));
            }
            seen.push(&r.activation);
            apply_mask(&mut net, r)?;
        }
        let weights = repr.weights.map(|w| base.join(w));
        Ok(Model {
            network: net,
            normalization,
            weights,
        })
    }

    /// Loads and folds the weights from `explicit` or else the model file's `weights` key.
    pub fn load_weights(&self, explicit: Option<&Path>) -> Result<FoldedModel> {
        let path = explicit.or(self.weights.as_deref()).ok_or_else(|| {
            Error::weights(
                "",
                "no weight file: pass one, or name it with `weights = ...` in a model file",
            )
        })?;
        load_weights(path, &self.network)
    }

    /// Reads a `.npy` float32 (C, H, W) input (a leading batch axis of 1 is accepted)
    /// and applies the normalisation, if any. Returns the flat (C, H, W) tensor.
    /// At most [`Model::max_input_bytes`] are read.
    pub fn load_input(&self, path: &Path) -> Result<Vec<f32>> {
        let bytes = read_capped(path, self.max_input_bytes(), "input").map_err(|e| match e {
            Error::TooLarge { .. } => Error::Input(format!(
                "{e}: more than a float32 .npy of this network's input shape {} holds",
                self.network.tensors[self.network.input].shape
            )),
            other => other,
        })?;
        let raw =
            read_npy_f32(&bytes).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        self.prepare_input(raw.0, &raw.1)
    }

    /// The largest `.npy` input this network can take: its float32 data plus
    /// [`NPY_HEADER_ALLOWANCE`], and never more than [`MAX_SMALL_FILE`].
    pub fn max_input_bytes(&self) -> u64 {
        let numel = self.network.tensors[self.network.input].shape.numel() as u64;
        numel
            .saturating_mul(4)
            .saturating_add(NPY_HEADER_ALLOWANCE)
            .min(MAX_SMALL_FILE)
    }

    /// Checks the shape of a flat input and normalises it.
    pub fn prepare_input(&self, mut data: Vec<f32>, shape: &[usize]) -> Result<Vec<f32>> {
        let s = self.network.tensors[self.network.input].shape;
        let dims: Vec<usize> = if shape.len() == 4 && shape[0] == 1 {
            shape[1..].to_vec()
        } else {
            shape.to_vec()
        };
        if dims != [s.c, s.h, s.w] {
            return Err(Error::Input(format!(
                "shape {shape:?}, expected ({}, {}, {}) (C, H, W)",
                s.c, s.h, s.w
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!("element {i} is not finite")));
        }
        if let Some(n) = &self.normalization {
            let plane = s.h * s.w;
            for (c, chunk) in data.chunks_exact_mut(plane).enumerate() {
                let (m, sd) = (n.mean[c % n.mean.len()], n.std[c % n.std.len()]);
                chunk
                    .iter_mut()
                    .for_each(|v| *v = ((*v as f64 - m) / sd) as f32);
            }
        }
        Ok(data)
    }

    /// Quantises a prepared input for `ring`.
    pub fn quantize_input(&self, x: &[f32], ring: RingParams) -> Result<Vec<u64>> {
        quantize_input(x, ring)
    }

    /// Quantises folded weights for `ring`.
    pub fn quantize(&self, folded: &FoldedModel, ring: RingParams) -> Result<QuantModel> {
        QuantModel::quantize(&self.network, folded, ring)
    }
}

/// A TOML error on one line: ``line L, column C (`the line`): message`` (the toml
/// crate's own text quotes the file over several lines).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let quoted: String = text
                .lines()
                .nth(line - 1)
                .unwrap_or("")
                .trim()
                .chars()
                .take(60)
                .collect();
            format!("line {line}, column {column} (`{quoted}`): {message}")
        }
        None => message,
    }
}

fn check_normalization(
    mean: Vec<f64>,
    std: Vec<f64>,
    channels: usize,
) -> Result<Normalization, String> {
    for (name, v) in [("mean", &mean), ("std", &std)] {
        if v.len() != channels && v.len() != 1 {
            return Err(format!(
                "normalization.{name} has {} entries for {channels} input channels",
                v.len()
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("normalization.{name} has a non-finite entry"));
        }
    }
    if std.iter().any(|&s| s <= 0.0) {
        return Err("normalization.std entries must be positive".into());
    }
    Ok(Normalization { mean, std })
}

fn parse_stage(s: &str) -> Result<usize, String> {
    let n = s.strip_prefix("stage").or_else(|| s.strip_prefix("layer"));
    match n.and_then(|n| n.parse::<usize>().ok()) {
        Some(k @ 1..=4) => Ok(k),
        _ => Err(format!("`{s}` is not a stage (stage1..stage4)")),
    }
}

fn as_index(v: &toml::Value) -> Option<usize> {
    v.as_integer().and_then(|i| usize::try_from(i).ok())
}

fn apply_mask(net: &mut Network, r: &ReluRepr) -> Result<()> {
    let name = r.activation.as_str();
    match (r.mode.as_str(), &r.keep) {
        ("all", None) => net.activation_mut(name)?.mask = crate::network::ReluMask::All,
        ("none", None) => net.activation_mut(name)?.mask = crate::network::ReluMask::None,
        ("all" | "none", Some(_)) => {
            return Err(Error::mask(
                name,
                format!("mode `{}` takes no `keep`", r.mode),
            ));
        }
        ("channels" | "pixels", None) => {
            return Err(Error::mask(name, format!("mode `{}` needs `keep`", r.mode)));
        }
        ("channels", Some(k)) => {
            let list = k
                .as_array()
                .ok_or_else(|| Error::mask(name, "keep must be a list of channel indices"))?;
            let idx = list
                .iter()
                .map(|v| {
                    as_index(v)
                        .ok_or_else(|| Error::mask(name, format!("`{v}` is not a channel index")))
                })
                .collect::<Result<Vec<_>>>()?;
            net.set_channel_mask(name, &idx)?;
        }
        ("pixels", Some(k)) => {
            let list = k
                .as_array()
                .ok_or_else(|| Error::mask(name, "keep must be a list of [c, y, x] positions"))?;
            let mut pos = Vec::with_capacity(list.len());
            for v in list {
                let p = v
                    .as_array()
                    .filter(|a| a.len() == 3)
                    .and_then(|a| Some([as_index(&a[0])?, as_index(&a[1])?, as_index(&a[2])?]))
                    .ok_or_else(|| {
                        Error::mask(name, format!("`{v}` is not a [c, y, x] position"))
                    })?;
                pos.push(p);
            }
            net.set_pixel_mask(name, &pos)?;
        }
        (other, _) => {
            return Err(Error::mask(
                name,
                format!("unknown mode `{other}` (all, none, channels, pixels)"),
            ));
        }
    }
    Ok(())
}

/// Text of a model file in the format [`Model::from_toml`] reads: `spec`, the
/// culled and thinned stages, and the normalisation if any. `header` lines become
/// `#` comments at the top. No `weights` key is written: culling and thinning do not
/// change the weight shapes, so weights are passed with `--weights` (or added by hand).
pub fn model_file_text(
    header: &[String],
    spec: &NetSpec,
    cull: &[usize],
    thin: &[usize],
    normalization: Option<&Normalization>,
) -> String {
    let stages = |v: &[usize]| -> String {
        let names: Vec<String> = v.iter().map(|s| format!("\"stage{s}\"")).collect();
        format!("[{}]", names.join(", "))
    };
    let floats = |v: &[f64]| -> String {
        // `{:?}` keeps a decimal point or exponent, so TOML reads a float back exactly.
        let parts: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
        format!("[{}]", parts.join(", "))
    };
    let mut out = String::new();
    for line in header {
        out.push_str(&format!("# {line}\n"));
    }
    // The canonical spec uses only [0-9a-z=,()-], so it needs no TOML escaping.
    out.push_str(&format!("spec = \"{}\"\n", spec.canonical()));
    if !cull.is_empty() {
        out.push_str(&format!("cull = {}\n", stages(cull)));
    }
    if !thin.is_empty() {
        out.push_str(&format!("thin = {}\n", stages(thin)));
    }
    if let Some(n) = normalization {
        out.push_str(&format!(
            "[normalization]\nmean = {}\nstd = {}\n",
            floats(&n.mean),
            floats(&n.std)
        ));
    }
    out
}
