//! The whole `pi-models reshape` command as a library call: a [`Request`]
//! (what the command line asked for) gives an [`Outcome`] (the derivation,
//! the variants within a ReLU budget, the model files to write), which prints
//! as the command's tables (`Display`) and serialises as its JSON. The binary
//! only parses arguments, writes the files and prints.

use super::budget::{Variant, VariantTable, budget_variants, with_m};
use super::equalize::{Derivation, derive, derived_model_file};
use super::order::Order;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::network::Network;
use crate::spec::NetSpec;
use std::path::{Path, PathBuf};

/// What to reshape: ReLU equalization for `order` and, with a [`Budget`],
/// cull/thin variants that meet it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The stagewise criticality order, most critical first.
    pub order: Order,
    /// m, φ, classes, input side and input channels of the derived networks
    /// (its α, β, γ are ignored); see [`Request::template`].
    pub template: NetSpec,
    /// Smallest multiplier (`--min-growth`).
    pub min_growth: usize,
    /// Largest multiplier (`--max-multiplier`).
    pub max_multiplier: usize,
    /// List variants within a ReLU budget (`--relu-budget`).
    pub budget: Option<Budget>,
}

/// The budget part of a [`Request`].
#[derive(Clone, Debug)]
pub struct Budget {
    /// Largest number of ReLUs a listed variant keeps.
    pub relus: u64,
    /// Base network (a spec or an unmasked model file) instead of the derived
    /// shapes; no derivation runs then (`--from`).
    pub from: Option<String>,
    /// Smaller base widths m to try as well (`--reduce-m`).
    pub reduce_m: Vec<usize>,
    /// List only the variants on the ReLU/MAC Pareto front.
    pub pareto_only: bool,
}

/// A listed network as model-file text, written as `NAME.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFile {
    /// The network's name (`5x5x3x`, `5x5x3x.m16.cull1`, ...).
    pub name: String,
    /// The model file's TOML text.
    pub text: String,
}

/// What a [`Request`] found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The order asked for.
    pub order: Order,
    /// ReLU equalization, unless the budget search started `from` a given network.
    pub derivation: Option<Derivation>,
    /// The budget and the variants within it, when a budget was given.
    pub variants: Option<(u64, Vec<Variant>)>,
    /// Every listed network as a model file: the variants if a budget was
    /// given, the derived shapes otherwise.
    pub files: Vec<ModelFile>,
}

impl Request {
    /// The template spec `2x2x2x(m=..,phi=..,classes=..,input=..,channels=..)`,
    /// checked against the spec limits; `phi` is `a-b-c-d`.
    pub fn template(
        m: usize,
        phi: &str,
        classes: usize,
        input: usize,
        channels: usize,
    ) -> Result<NetSpec> {
        NetSpec::parse(&format!(
            "2x2x2x(m={m},phi={phi},classes={classes},input={input},channels={channels})"
        ))
    }

    /// Runs the derivation and the budget search; writes nothing.
    pub fn run(&self) -> Result<Outcome> {
        let order = self.order;
        // The derivation runs unless --from names the base of a budget search.
        let from = self.budget.as_ref().and_then(|b| b.from.as_deref());
        let derivation = match from {
            Some(_) => None,
            None => Some(derive(
                &order,
                &self.template,
                self.min_growth,
                self.max_multiplier,
            )?),
        };
        let mut files = Vec::new();
        let mut variants = None;
        if let Some(budget) = &self.budget {
            let (bases, normalization) = match from {
                Some(text) => {
                    let model = Model::resolve(text)?;
                    (vec![model.network], model.normalization)
                }
                None => (derived_bases(derivation.as_ref(), self)?, None),
            };
            let bases = with_smaller_widths(bases, &budget.reduce_m)?;
            let mut list = budget_variants(&bases, &order, budget.relus)?;
            if budget.pareto_only {
                list.retain(|v| v.pareto);
            }
            for v in &list {
                files.push(ModelFile {
                    name: v.name.clone(),
                    text: v.model_file(&order, normalization.as_ref()),
                });
            }
            variants = Some((budget.relus, list));
        } else if let Some(d) = &derivation {
            for r in &d.results {
                files.push(ModelFile {
                    name: r.name.clone(),
                    text: derived_model_file(r, &order)?,
                });
            }
        }
        Ok(Outcome {
            order,
            derivation,
            variants,
            files,
        })
    }
}

/// The derived shapes as the bases of a budget search (an error when the
/// order has no solution in the multiplier range).
fn derived_bases(d: Option<&Derivation>, req: &Request) -> Result<Vec<Network>> {
    let results = d.map(|d| d.results.as_slice()).unwrap_or_default();
    if results.is_empty() {
        return Err(Error::reshape(format!(
            "the order {} has no integer solution with {} <= α, β, γ <= {}, so there is no network to reduce; widen the bounds or pass --from SPEC",
            req.order, req.min_growth, req.max_multiplier
        )));
    }
    results
        .iter()
        .map(|r| Ok(Network::new(&NetSpec::parse(&r.spec)?)))
        .collect()
}

/// Each base followed by its copies at the smaller widths `reduce_m` (each
/// must be below the base's m; duplicates are skipped).
fn with_smaller_widths(bases: Vec<Network>, reduce_m: &[usize]) -> Result<Vec<Network>> {
    let mut out = Vec::new();
    for net in bases {
        let spec = net.spec.clone();
        out.push(net);
        let mut tried = vec![spec.m];
        for &m in reduce_m {
            if m >= spec.m {
                return Err(Error::reshape(format!(
                    "--reduce-m {m} is not smaller than the base width m = {}",
                    spec.m
                )));
            }
            if !tried.contains(&m) {
                tried.push(m);
                out.push(Network::new(&with_m(&spec, m)?));
            }
        }
    }
    Ok(out)
}

impl Outcome {
    /// Writes every listed network as `dir/NAME.toml` (creating `dir`).
    pub fn write_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut written = Vec::new();
        for f in &self.files {
            let path = dir.join(format!("{}.toml", f.name));
            write(&path, &f.text)?;
            written.push(path);
        }
        Ok(written)
    }

    /// The one file `--out` writes: the one named `pick`, or else the first
    /// listed (for budgets the Pareto variant with the most ReLUs); several
    /// derived shapes and no `pick` is an error.
    pub fn pick(&self, pick: Option<&str>) -> Result<&ModelFile> {
        let names = || {
            let n: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
            n.join(", ")
        };
        match pick {
            Some(p) => self.files.iter().find(|f| f.name == p).ok_or_else(|| {
                Error::reshape(format!("--pick {p}: no such network (listed: {})", names()))
            }),
            None if self.variants.is_none() && self.files.len() > 1 => {
                Err(Error::reshape(format!(
                    "--out needs --pick NAME when several shapes are derived ({})",
                    names()
                )))
            }
            None => self
                .files
                .first()
                .ok_or_else(|| Error::reshape("--out: nothing to write (no network listed)")),
        }
    }

    /// Writes [`Outcome::pick`] to `out`.
    pub fn write_one(&self, out: &Path, pick: Option<&str>) -> Result<PathBuf> {
        write(out, &self.pick(pick)?.text)?;
        Ok(out.to_path_buf())
    }

    /// The command's JSON: `order`, the derivation's fields (`inequalities`,
    /// `results`, ...), `relu_budget` and `variants` with a budget, and the
    /// `written` paths.
    pub fn to_json(&self, written: &[PathBuf]) -> serde_json::Value {
        let mut v = serde_json::json!({ "order": self.order.to_string() });
        if let Some(d) = &self.derivation {
            v["inequalities"] = serde_json::json!(d.inequalities);
            v["min_growth"] = d.min_growth.into();
            v["max_multiplier"] = d.max_multiplier.into();
            v["m"] = d.m.into();
            v["phi"] = serde_json::json!(d.phi);
            v["input"] = d.input.into();
            v["results"] = serde_json::json!(d.results);
        }
        if let Some((budget, list)) = &self.variants {
            v["relu_budget"] = (*budget).into();
            v["variants"] = serde_json::json!(list);
        }
        v["written"] = serde_json::json!(written);
        v
    }
}

impl std::fmt::Display for Outcome {
    /// The derivation table and/or the variant table, a blank line between.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(d) = &self.derivation {
            write!(f, "{d}")?;
        }
        if let Some((budget, variants)) = &self.variants {
            if self.derivation.is_some() {
                writeln!(f)?;
            }
            let table = VariantTable {
                order: &self.order,
                budget: *budget,
                variants,
            };
            write!(f, "{table}")?;
        }
        Ok(())
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
