//! ReLU equalization: the inequalities on (α, β, γ) a criticality order
//! implies, their integer solutions, and the derived HybReNet shapes (the
//! derivation is in the [parent module's docs](super)).

use super::order::Order;
use crate::error::{Error, Result};
use crate::model::model_file_text;
use crate::network::Network;
use crate::spec::{NetSpec, conv_out};
use serde::Serialize;

/// Largest accepted `--max-multiplier` (the spec limits bound the widths anyway).
pub const MAX_MULTIPLIER: usize = 64;

/// Names of the multipliers joining stage i+1 to stage i+2.
const MULTIPLIER_NAMES: [&str; 3] = ["α", "β", "γ"];
const MULTIPLIER_KEYS: [&str; 3] = ["alpha", "beta", "gamma"];

/// One inequality on (α, β, γ): `coef · Π multipliers  (> or <)  bound`, the
/// condition that stage `more` holds strictly more block ReLUs than stage `less`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inequality {
    /// The more critical stage (1..=4).
    pub more: usize,
    /// The less critical stage.
    pub less: usize,
    /// Constant factor of the product side (reduced by the gcd with `bound`).
    pub coef: u64,
    /// `alpha`, `beta`, `gamma`: the multipliers between the two stages.
    pub multipliers: Vec<&'static str>,
    /// `>` or `<`.
    pub relation: &'static str,
    /// The other side.
    pub bound: u64,
    /// Human-readable form, e.g. `β·γ < 16`.
    pub text: String,
    #[serde(skip)]
    range: (usize, usize),
}

impl Inequality {
    /// Whether `[α, β, γ]` satisfies the inequality (exact integer arithmetic).
    pub fn holds(&self, abg: [usize; 3]) -> bool {
        let lhs = abg[self.range.0..self.range.1]
            .iter()
            .fold(self.coef as u128, |p, &x| p.saturating_mul(x as u128));
        if self.relation == ">" {
            lhs > self.bound as u128
        } else {
            lhs < self.bound as u128
        }
    }
}

/// Feature-map sides of the four stages for an input side (stages 2-4 halve, rounding up).
fn stage_sides(input: usize) -> [usize; 4] {
    let s2 = conv_out(input, 3, 2, 1);
    let s3 = conv_out(s2, 3, 2, 1);
    [input, s2, s3, conv_out(s3, 3, 2, 1)]
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The three inequalities (one per adjacent pair of the order) on (α, β, γ) that make
/// the stages' block ReLU counts fall strictly in `order`, for depths `phi` and an
/// input side `input`. See the module docs for the derivation.
pub fn inequalities(order: &Order, phi: [usize; 4], input: usize) -> Vec<Inequality> {
    let sides = stage_sides(input);
    // φ_i s_i²: the stage's block ReLUs divided by 2m and the multipliers below stage i.
    let weight = |stage: usize| (phi[stage - 1] * sides[stage - 1] * sides[stage - 1]) as u64;
    order
        .stages()
        .windows(2)
        .map(|pair| {
            let (more, less) = (pair[0], pair[1]);
            let (lo, hi) = (more.min(less), more.max(less));
            let (coef, bound, relation) = if more > less {
                (weight(more), weight(less), ">")
            } else {
                (weight(less), weight(more), "<")
            };
            let g = gcd(coef, bound).max(1);
            let (coef, bound) = (coef / g, bound / g);
            let range = (lo - 1, hi - 1);
            let names: Vec<&str> = MULTIPLIER_NAMES[range.0..range.1].to_vec();
            let text = format!(
                "{}{} {relation} {bound}",
                if coef == 1 {
                    String::new()
                } else {
                    format!("{coef}·")
                },
                names.join("·")
            );
            Inequality {
                more,
                less,
                coef,
                multipliers: MULTIPLIER_KEYS[range.0..range.1].to_vec(),
                relation,
                bound,
                text,
                range,
            }
        })
        .collect()
}

/// For every (β, γ) in [min, max]² with a valid α in [min, max]: `(α_min, β, γ, α_max)`,
/// ordered by β then γ.
pub fn solutions(
    ineqs: &[Inequality],
    min: usize,
    max: usize,
) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    for beta in min..=max {
        for gamma in min..=max {
            let valid: Vec<usize> = (min..=max)
                .filter(|&alpha| ineqs.iter().all(|q| q.holds([alpha, beta, gamma])))
                .collect();
            if let (Some(&lo), Some(&hi)) = (valid.first(), valid.last()) {
                out.push((lo, beta, gamma, hi));
            }
        }
    }
    out
}

/// Block ReLUs per stage (the stem left out), the counts the order compares.
pub fn block_relus(net: &Network) -> [u64; 4] {
    let mut out = [0u64; 4];
    for a in net.activations() {
        if (1..=4).contains(&a.stage) && a.name != "relu" {
            out[a.stage - 1] += a.relus();
        }
    }
    out
}

/// One HybReNet shape derived from an order.
#[derive(Clone, Debug, Serialize)]
pub struct Derived {
    /// `αxβxγx`.
    pub name: String,
    /// Stage 1 -> 2 multiplier (the smallest valid one for this β, γ).
    pub alpha: usize,
    /// Stage 2 -> 3 multiplier.
    pub beta: usize,
    /// Stage 3 -> 4 multiplier.
    pub gamma: usize,
    /// Largest α that also satisfies the inequalities for this (β, γ) (more MACs).
    pub max_alpha: usize,
    /// Canonical spec, usable wherever a model is named.
    pub spec: String,
    /// Stage widths m, αm, αβm, αβγm.
    pub widths: [usize; 4],
    /// ReLUs per stage, stem in stage 1 (the counting convention of `stats`).
    pub relus_per_stage: [u64; 4],
    /// ReLUs per stage without the stem: the counts that fall in the order.
    pub block_relus: [u64; 4],
    /// ReLUs in total.
    pub relus: u64,
    /// MACs in total.
    pub macs: u64,
}

/// The result of ReLU equalization for one order.
#[derive(Clone, Debug, Serialize)]
pub struct Derivation {
    /// The order, as `S3>S2>S4>S1`.
    pub order: String,
    /// Blocks per stage of the derived networks.
    pub phi: [usize; 4],
    /// Input side.
    pub input: usize,
    /// Base width.
    pub m: usize,
    /// Smallest multiplier tried.
    pub min_growth: usize,
    /// Largest multiplier tried.
    pub max_multiplier: usize,
    /// One inequality per adjacent pair of the order.
    pub inequalities: Vec<Inequality>,
    /// One network per (β, γ) with a valid α, ordered by β then γ.
    pub results: Vec<Derived>,
}

/// Checks the multiplier bounds.
pub fn check_bounds(min_growth: usize, max_multiplier: usize) -> Result<()> {
    if min_growth == 0 {
        return Err(Error::reshape("--min-growth must be at least 1"));
    }
    if max_multiplier > MAX_MULTIPLIER {
        return Err(Error::reshape(format!(
            "--max-multiplier {max_multiplier} is above the limit {MAX_MULTIPLIER}"
        )));
    }
    if max_multiplier < min_growth {
        return Err(Error::reshape(format!(
            "--max-multiplier {max_multiplier} is below --min-growth {min_growth}"
        )));
    }
    Ok(())
}

/// ReLU equalization: the inequalities `order` implies for `template`'s φ and input
/// side, and for each (β, γ) the smallest valid α, as networks with `template`'s m,
/// φ, classes, input and channels.
pub fn derive(
    order: &Order,
    template: &NetSpec,
    min_growth: usize,
    max_multiplier: usize,
) -> Result<Derivation> {
    check_bounds(min_growth, max_multiplier)?;
    let ineqs = inequalities(order, template.phi, template.input);
    let mut results = Vec::new();
    for (alpha, beta, gamma, max_alpha) in solutions(&ineqs, min_growth, max_multiplier) {
        let spec = NetSpec {
            alpha,
            beta,
            gamma,
            ..template.clone()
        };
        // Re-parse the canonical text so the spec limits (widths, tensor sizes) apply.
        let spec = NetSpec::parse(&spec.canonical()).map_err(|e| {
            Error::reshape(format!(
                "{alpha}x{beta}x{gamma}x satisfies the order but is not a usable network ({e}); lower --max-multiplier or --m"
            ))
        })?;
        let net = Network::new(&spec);
        let st = net.stats();
        results.push(Derived {
            name: format!("{alpha}x{beta}x{gamma}x"),
            alpha,
            beta,
            gamma,
            max_alpha,
            spec: spec.canonical(),
            widths: spec.widths(),
            relus_per_stage: st.stage_relus,
            block_relus: block_relus(&net),
            relus: st.relus,
            macs: st.macs,
        });
    }
    Ok(Derivation {
        order: order.to_string(),
        phi: template.phi,
        input: template.input,
        m: template.m,
        min_growth,
        max_multiplier,
        inequalities: ineqs,
        results,
    })
}

impl std::fmt::Display for Derivation {
    /// The `pi-models reshape` table: the inequalities, then one row per solution.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phi = self.phi.map(|p| p.to_string()).join("-");
        writeln!(
            f,
            "criticality order {} (most critical first), phi {phi}, input {}x{}, m {}",
            self.order, self.input, self.input, self.m
        )?;
        writeln!(
            f,
            "one layer of stage i holds m·H²·(1, α/4, αβ/16, αβγ/64) ReLUs and stage i has 2·φi such layers (stem left out)"
        )?;
        writeln!(f, "inequalities (strict):")?;
        for q in &self.inequalities {
            writeln!(f, "  S{} > S{}:  {}", q.more, q.less, q.text)?;
        }
        if self.results.is_empty() {
            return writeln!(
                f,
                "no integer (α, β, γ) with {} <= α, β, γ <= {} satisfies these inequalities: the order {} cannot be realised in that range",
                self.min_growth, self.max_multiplier, self.order
            );
        }
        writeln!(
            f,
            "integer solutions with {} <= α, β, γ <= {}, smallest α for each (β, γ) (fewest MACs):",
            self.min_growth, self.max_multiplier
        )?;
        writeln!(
            f,
            "{:<9} {:>3} {:>3} {:>3} {:>6} {:<20} {:<32} {:>10} {:>14}",
            "name",
            "α",
            "β",
            "γ",
            "max α",
            "widths",
            "ReLUs per stage (stem in S1)",
            "ReLUs",
            "MACs"
        )?;
        for r in &self.results {
            let widths = r.widths.map(|w| w.to_string()).join("-");
            let per = r.relus_per_stage.map(|x| x.to_string()).join(" ");
            writeln!(
                f,
                "{:<9} {:>3} {:>3} {:>3} {:>6} {:<20} {:<32} {:>10} {:>14} ({:.1}M)",
                r.name,
                r.alpha,
                r.beta,
                r.gamma,
                r.max_alpha,
                widths,
                per,
                r.relus,
                r.macs,
                r.macs as f64 / 1e6
            )?;
        }
        Ok(())
    }
}

/// Model-file text for a derived network (no masks).
pub fn derived_model_file(d: &Derived, order: &Order) -> Result<String> {
    let spec = NetSpec::parse(&d.spec)?;
    let header = vec![
        format!(
            "{}: written by `pi-models reshape` (ReLU equalization), criticality order {order}",
            d.name
        ),
        format!("ReLUs {}, MACs {}", d.relus, d.macs),
    ];
    Ok(model_file_text(&header, &spec, &[], &[], None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_input_uses_true_sides() {
        // input 9: sides 9, 5, 3, 2; S2 > S1 with φ = 2 everywhere: 25·α > 81.
        let q = inequalities(&Order::parse("S2>S1>S3>S4").unwrap(), [2; 4], 9);
        assert_eq!(q[0].text, "25·α > 81");
        assert!(q[0].holds([4, 1, 1]) && !q[0].holds([3, 1, 1]));
    }
}
