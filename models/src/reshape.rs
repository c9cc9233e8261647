//! DeepReShape's redesign steps (Jha and Reagen, "DeepReShape: Redesigning Neural
//! Networks for Efficient Private Inference", TMLR 2024): derive HybReNet stage
//! multipliers (α, β, γ) from a stagewise ReLU criticality order ("ReLU
//! equalization"), and cut a network down to a ReLU budget by coarse-grained
//! culling and thinning in criticality order (as in DeepReDuce, Jha et al., ICML 2021).
//!
//! # From per-layer counts to inequalities
//! Every activation of stage i has the shape of the stage's output, w_i x s_i x s_i,
//! with widths w = (m, αm, αβm, αβγm) and sides s = (H, H/2, H/4, H/8) for an input
//! side H divisible by 8 (a 32x32 input gives 32, 16, 8, 4). One layer of stage i
//! therefore holds m H² · (1, α/4, αβ/16, αβγ/64) ReLUs, and a stage of φ_i
//! BasicBlocks holds 2φ_i such layers. For the order we count these block layers only
//! and leave the stem out, as the paper's inequalities do:
//!
//! ```text
//! R_i = 2 φ_i · w_i · s_i²,   R_1 : R_2 : R_3 : R_4 = 64 φ1 : 16 α φ2 : 4 αβ φ3 : αβγ φ4   (H = 32)
//! ```
//!
//! An order such as `S3>S2>S4>S1` asks R3 > R2 > R4 > R1; the three adjacent pairs imply
//! every other pair by transitivity. For a pair "Sa more critical than Sb", write
//! lo = min(a, b), hi = max(a, b) and cancel the common factor 2m · (multipliers below
//! stage lo); what remains is the product P of the multipliers between the two stages
//! (α joins S1 to S2, β joins S2 to S3, γ joins S3 to S4):
//!
//! ```text
//! a > b (later stage more critical):    φ_a s_a² · P  >  φ_b s_b²
//! a < b (earlier stage more critical):  φ_b s_b² · P  <  φ_a s_a²
//! ```
//!
//! With φ = 2-2-2-2 and H = 32 (s² = 1024, 256, 64, 16) the φ's cancel and each
//! neighbouring pair of stages contributes a factor 4: `S3>S2>S4>S1` gives
//! β > 4 (S3 > S2: 2·64·β > 2·256), β·γ < 16 (S2 > S4: 2·16·βγ < 2·256) and
//! α·β·γ > 64 (S4 > S1: 2·16·αβγ > 2·1024). When the φ's differ they stay in the
//! coefficients: φ = 1-2-3-2 turns S3 > S2 into 3·β > 8. Coefficients are reduced by
//! their gcd before printing. For an input side not divisible by 8 the code uses the
//! true sides (rounded up at each stride-2 stage), so the inequalities stay exact.
//!
//! **Strict inequalities.** The paper writes ">" between stages of the order, and a tie
//! would leave the order ambiguous, so we require strict inequalities: a triple with two
//! stages holding exactly as many ReLUs does not realise the order.
//!
//! # Enumeration
//! Every multiplier lies in [G, K] (`--min-growth`, default 2: every stage at least
//! doubles its channels; `--max-multiplier`, default 8). Each inequality bounds α from
//! one side only, so for fixed (β, γ) the valid α form an interval, and its smallest
//! member has the fewest MACs (all of stages 2-4 widen with α). We report that one, with
//! the largest valid α for reference. With the defaults `S3>S2>S4>S1` yields exactly the
//! paper's HybReNets 7x5x2x, 5x5x3x, 6x6x2x and 5x7x2x.
//!
//! # ReLU budgets
//! Each stage gets one coarse action: keep, thin (the `relu2` of every block becomes
//! identity, [`Network::thin`]) or cull (every ReLU of the stage becomes identity,
//! including the stem in stage 1, [`Network::cull`]). Actions follow the criticality
//! order: a less critical stage is reduced at least as much as a more critical one
//! (cull the least critical stage first, then thin the next, and so on), and the most
//! critical stage is never culled. That leaves 14 plans per network (monotone maps from
//! the four ranks to keep < thin < cull, minus the plan that culls everything); smaller
//! base widths m can be added. Variants within the budget are listed with their ReLU
//! and MAC counts. Their Pareto front takes ReLUs kept as the accuracy proxy (more
//! ReLUs within the budget lose less accuracy) and MACs as the offline cost: a variant
//! is on the front when no other listed variant keeps at least as many ReLUs with at
//! most as many MACs, one of the two strictly.

use crate::error::{Error, Result};
use crate::model::{Normalization, model_file_text};
use crate::network::{Network, ReluMask};
use crate::spec::{NetSpec, conv_out};
use serde::Serialize;

/// Largest accepted `--max-multiplier` (the spec limits bound the widths anyway).
pub const MAX_MULTIPLIER: usize = 64;

/// Names of the multipliers joining stage i+1 to stage i+2.
const MULTIPLIER_NAMES: [&str; 3] = ["α", "β", "γ"];
const MULTIPLIER_KEYS: [&str; 3] = ["alpha", "beta", "gamma"];

fn reshape_err(reason: impl Into<String>) -> Error {
    Error::Reshape(reason.into())
}

/// A stagewise ReLU criticality order, most critical stage first (`S3>S2>S4>S1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order([usize; 4]);

impl Order {
    /// Parses `S3>S2>S4>S1` (whitespace ignored, `s3` and `stage3` accepted).
    pub fn parse(text: &str) -> Result<Order> {
        let bad = |reason: String| {
            reshape_err(format!(
                "bad criticality order `{text}`: {reason} (write all four stages, most critical first, e.g. S3>S2>S4>S1)"
            ))
        };
        let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if s.is_empty() {
            return Err(bad("empty".into()));
        }
        let mut stages: Vec<usize> = Vec::with_capacity(4);
        for tok in s.split('>') {
            let lower = tok.to_ascii_lowercase();
            let digits = lower
                .strip_prefix("stage")
                .or_else(|| lower.strip_prefix('s'));
            let stage = match digits {
                Some(d) if d.len() == 1 => d.parse::<usize>().ok().filter(|k| (1..=4).contains(k)),
                _ => None,
            };
            let Some(stage) = stage else {
                return Err(bad(format!(
                    "`{tok}` is not a stage (S1, S2, S3 or S4 separated by `>`)"
                )));
            };
            if stages.contains(&stage) {
                return Err(bad(format!("stage S{stage} appears twice")));
            }
            stages.push(stage);
        }
        if stages.len() != 4 {
            let missing: Vec<String> = (1..=4)
                .filter(|k| !stages.contains(k))
                .map(|k| format!("S{k}"))
                .collect();
            return Err(bad(format!("missing {}", missing.join(", "))));
        }
        Ok(Order([stages[0], stages[1], stages[2], stages[3]]))
    }

    /// Stages 1..=4, most critical first.
    pub fn stages(&self) -> [usize; 4] {
        self.0
    }

    /// Rank of `stage` (0 = most critical, 3 = least critical).
    pub fn rank(&self, stage: usize) -> usize {
        self.0.iter().position(|&s| s == stage).unwrap_or(3)
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "S{a}>S{b}>S{c}>S{d}")
    }
}

/// One inequality on (α, β, γ): `coef · Π multipliers  (> or <)  bound`, the
/// condition that stage `more` holds strictly more block ReLUs than stage `less`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inequality {
    /// The more critical stage (1..=4).
    pub more: usize,
    /// The less critical stage.
    pub less: usize,
    pub coef: u64,
    /// `alpha`, `beta`, `gamma`: the multipliers between the two stages.
    pub multipliers: Vec<&'static str>,
    /// `>` or `<`.
    pub relation: &'static str,
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
        .0
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
    pub alpha: usize,
    pub beta: usize,
    pub gamma: usize,
    /// Largest α that also satisfies the inequalities for this (β, γ) (more MACs).
    pub max_alpha: usize,
    /// Canonical spec, usable wherever a model is named.
    pub spec: String,
    pub widths: [usize; 4],
    /// ReLUs per stage, stem in stage 1 (the counting convention of `stats`).
    pub relus_per_stage: [u64; 4],
    /// ReLUs per stage without the stem: the counts that fall in the order.
    pub block_relus: [u64; 4],
    pub relus: u64,
    pub macs: u64,
}

/// The result of ReLU equalization for one order.
#[derive(Clone, Debug, Serialize)]
pub struct Derivation {
    pub order: String,
    pub phi: [usize; 4],
    pub input: usize,
    pub m: usize,
    pub min_growth: usize,
    pub max_multiplier: usize,
    pub inequalities: Vec<Inequality>,
    pub results: Vec<Derived>,
}

/// Checks the multiplier bounds.
pub fn check_bounds(min_growth: usize, max_multiplier: usize) -> Result<()> {
    if min_growth == 0 {
        return Err(reshape_err("--min-growth must be at least 1"));
    }
    if max_multiplier > MAX_MULTIPLIER {
        return Err(reshape_err(format!(
            "--max-multiplier {max_multiplier} is above the limit {MAX_MULTIPLIER}"
        )));
    }
    if max_multiplier < min_growth {
        return Err(reshape_err(format!(
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
            reshape_err(format!(
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

/// Coarse ReLU action on one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Keep,
    /// `relu2` of every block becomes identity.
    Thin,
    /// Every ReLU of the stage (the stem too, for stage 1) becomes identity.
    Cull,
}

/// The 14 plans for `order`, each as the action of stages 1..=4: actions grow
/// (keep < thin < cull) from the most to the least critical stage, and the most
/// critical stage is never culled. The first plan keeps everything.
pub fn plans(order: &Order) -> Vec<[Action; 4]> {
    use Action::*;
    let all = [Keep, Thin, Cull];
    let mut out = Vec::new();
    for &r0 in &[Keep, Thin] {
        for &r1 in all.iter().filter(|&&a| a >= r0) {
            for &r2 in all.iter().filter(|&&a| a >= r1) {
                for &r3 in all.iter().filter(|&&a| a >= r2) {
                    let by_rank = [r0, r1, r2, r3];
                    let mut plan = [Keep; 4];
                    for (rank, &stage) in order.0.iter().enumerate() {
                        plan[stage - 1] = by_rank[rank];
                    }
                    out.push(plan);
                }
            }
        }
    }
    out
}

/// The network of `spec` with `plan` applied.
pub fn apply_plan(spec: &NetSpec, plan: &[Action; 4]) -> Network {
    let mut net = Network::new(spec);
    for (i, a) in plan.iter().enumerate() {
        match a {
            Action::Keep => {}
            Action::Thin => net.thin(i + 1),
            Action::Cull => net.cull(i + 1),
        }
    }
    net
}

/// A network of reduced ReLU count.
#[derive(Clone, Debug, Serialize)]
pub struct Variant {
    /// `αxβxγx.mM` followed by `.cullS` / `.thinS` for each reduced stage; safe as a file name.
    pub name: String,
    pub spec: String,
    pub m: usize,
    /// Action of stages 1..=4.
    pub actions: [Action; 4],
    pub cull: Vec<usize>,
    pub thin: Vec<usize>,
    pub relus: u64,
    /// Identity (truncation-only) positions.
    pub identity: u64,
    pub macs: u64,
    /// Stem in stage 1.
    pub relus_per_stage: [u64; 4],
    pub identity_per_stage: [u64; 4],
    /// On the ReLU/MAC Pareto front of the listed variants (see the module docs).
    pub pareto: bool,
    #[serde(skip)]
    spec_value: NetSpec,
}

impl Variant {
    /// The variant's network.
    pub fn network(&self) -> Network {
        apply_plan(&self.spec_value, &self.actions)
    }

    /// The variant as model-file text (`spec`, `cull`, `thin`, normalisation).
    pub fn model_file(&self, order: &Order, normalization: Option<&Normalization>) -> String {
        let header = vec![
            format!(
                "{}: written by `pi-models reshape`, criticality order {order}",
                self.name
            ),
            format!(
                "ReLUs {}, identity positions {}, MACs {}",
                self.relus, self.identity, self.macs
            ),
        ];
        model_file_text(
            &header,
            &self.spec_value,
            &self.cull,
            &self.thin,
            normalization,
        )
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

/// Every plan of [`plans`] on every base, keeping those with at most `budget` ReLUs,
/// sorted by ReLUs (most first) then MACs, with the Pareto front marked. Fails when
/// the budget is zero, a base already carries ReLU masks, or no variant meets it.
pub fn budget_variants(bases: &[Network], order: &Order, budget: u64) -> Result<Vec<Variant>> {
    if budget == 0 {
        return Err(reshape_err(
            "a ReLU budget of 0 leaves a linear network; give a positive --relu-budget",
        ));
    }
    if bases.is_empty() {
        return Err(reshape_err("no base network to reduce"));
    }
    let mut all = Vec::new();
    for base in bases {
        if let Some(a) = base.activations().find(|a| a.mask != ReluMask::All) {
            return Err(reshape_err(format!(
                "the base network already has a ReLU mask on `{}`; start the budget search from an unmasked network",
                a.name
            )));
        }
        let spec = &base.spec;
        for plan in plans(order) {
            let net = apply_plan(spec, &plan);
            let st = net.stats();
            let pick =
                |want: Action| -> Vec<usize> { (1..=4).filter(|&s| plan[s - 1] == want).collect() };
            let (cull, thin) = (pick(Action::Cull), pick(Action::Thin));
            let mut name = format!("{}x{}x{}x.m{}", spec.alpha, spec.beta, spec.gamma, spec.m);
            for s in 1..=4 {
                match plan[s - 1] {
                    Action::Keep => {}
                    Action::Thin => name.push_str(&format!(".thin{s}")),
                    Action::Cull => name.push_str(&format!(".cull{s}")),
                }
            }
            all.push(Variant {
                name,
                spec: spec.canonical(),
                m: spec.m,
                actions: plan,
                cull,
                thin,
                relus: st.relus,
                identity: st.identity,
                macs: st.macs,
                relus_per_stage: st.stage_relus,
                identity_per_stage: st.stage_identity,
                pareto: false,
                spec_value: spec.clone(),
            });
        }
    }
    let fewest = all.iter().min_by_key(|v| (v.relus, v.macs)).cloned();
    let mut fit: Vec<Variant> = all.into_iter().filter(|v| v.relus <= budget).collect();
    if fit.is_empty() {
        let f = fewest.ok_or_else(|| reshape_err("no variants"))?;
        return Err(reshape_err(format!(
            "no variant meets the ReLU budget {budget}: the fewest ReLUs reachable by culling and thinning is {} ({}); raise the budget or add smaller base widths with --reduce-m",
            f.relus, f.name
        )));
    }
    fit.sort_by(|a, b| b.relus.cmp(&a.relus).then(a.macs.cmp(&b.macs)));
    let front: Vec<bool> = fit
        .iter()
        .map(|v| {
            !fit.iter().any(|w| {
                w.relus >= v.relus && w.macs <= v.macs && (w.relus > v.relus || w.macs < v.macs)
            })
        })
        .collect();
    for (v, p) in fit.iter_mut().zip(front) {
        v.pareto = p;
    }
    Ok(fit)
}

/// `spec` with base width `m` (checked against the spec limits).
pub fn with_m(spec: &NetSpec, m: usize) -> Result<NetSpec> {
    if m == 0 {
        return Err(reshape_err("--reduce-m values must be at least 1"));
    }
    NetSpec::parse(&NetSpec { m, ..spec.clone() }.canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_monotone_in_criticality() {
        let order = Order::parse("S3>S2>S4>S1").unwrap();
        let p = plans(&order);
        assert_eq!(p.len(), 14);
        assert_eq!(p[0], [Action::Keep; 4]);
        for plan in &p {
            // Ranks: S3 (0), S2 (1), S4 (2), S1 (3).
            let by_rank: Vec<Action> = order.stages().iter().map(|&s| plan[s - 1]).collect();
            assert!(by_rank.windows(2).all(|w| w[0] <= w[1]), "{plan:?}");
            assert_ne!(plan[2], Action::Cull);
        }
        let mut dedup = p.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 14);
    }

    #[test]
    fn odd_input_uses_true_sides() {
        // input 9: sides 9, 5, 3, 2; S2 > S1 with φ = 2 everywhere: 25·α > 81.
        let q = inequalities(&Order::parse("S2>S1>S3>S4").unwrap(), [2; 4], 9);
        assert_eq!(q[0].text, "25·α > 81");
        assert!(q[0].holds([4, 1, 1]) && !q[0].holds([3, 1, 1]));
    }
}
