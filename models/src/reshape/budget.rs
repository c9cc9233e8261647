//! ReLU budgets: coarse culling and thinning plans in criticality order, the
//! variants of one or more base networks that meet a budget, and their
//! ReLU/MAC Pareto front.

use super::order::Order;
use crate::error::{Error, Result};
use crate::model::{Normalization, model_file_text};
use crate::network::{Network, ReluMask};
use crate::spec::NetSpec;
use serde::Serialize;

/// Coarse ReLU action on one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Every ReLU stays.
    Keep,
    /// `relu2` of every block becomes identity.
    Thin,
    /// Every ReLU of the stage (the stem too, for stage 1) becomes identity.
    Cull,
}

impl Action {
    /// `keep`, `thin` or `cull`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Thin => "thin",
            Action::Cull => "cull",
        }
    }
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
                    for (rank, &stage) in order.stages().iter().enumerate() {
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
    /// Canonical spec of the base network (culling and thinning are masks on top).
    pub spec: String,
    /// Base width.
    pub m: usize,
    /// Action of stages 1..=4.
    pub actions: [Action; 4],
    /// Culled stages.
    pub cull: Vec<usize>,
    /// Thinned stages.
    pub thin: Vec<usize>,
    /// ReLUs kept.
    pub relus: u64,
    /// Identity (truncation-only) positions.
    pub identity: u64,
    /// MACs (unchanged by culling and thinning).
    pub macs: u64,
    /// ReLUs per stage, stem in stage 1.
    pub relus_per_stage: [u64; 4],
    /// Identity positions per stage, stem in stage 1.
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

/// The `pi-models reshape --relu-budget` table: the variants within `budget`,
/// Pareto front marked with `*`.
#[derive(Clone, Copy, Debug)]
pub struct VariantTable<'a> {
    /// The order the plans follow.
    pub order: &'a Order,
    /// The ReLU budget.
    pub budget: u64,
    /// The variants listed.
    pub variants: &'a [Variant],
}

impl std::fmt::Display for VariantTable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [.., least] = self.order.stages();
        writeln!(
            f,
            "variants with at most {} ReLUs (cull/thin in criticality order {}, least critical S{least} first); * = on the ReLU/MAC Pareto front (most ReLUs kept, fewest MACs)",
            self.budget, self.order
        )?;
        writeln!(
            f,
            "{:<2}{:<36} {:<24} {:>10} {:>10} {:>14}",
            "", "name", "actions S1 S2 S3 S4", "ReLUs", "identity", "MACs"
        )?;
        for v in self.variants {
            let acts: Vec<&str> = v.actions.iter().map(Action::name).collect();
            writeln!(
                f,
                "{:<2}{:<36} {:<24} {:>10} {:>10} {:>14} ({:.1}M)",
                if v.pareto { "*" } else { "" },
                v.name,
                acts.join(" "),
                v.relus,
                v.identity,
                v.macs,
                v.macs as f64 / 1e6
            )?;
        }
        Ok(())
    }
}

/// Every plan of [`plans`] on every base, keeping those with at most `budget` ReLUs,
/// sorted by ReLUs (most first) then MACs, with the Pareto front marked. Fails when
/// the budget is zero, a base already carries ReLU masks, or no variant meets it.
pub fn budget_variants(bases: &[Network], order: &Order, budget: u64) -> Result<Vec<Variant>> {
    if budget == 0 {
        return Err(Error::reshape(
            "a ReLU budget of 0 leaves a linear network; give a positive --relu-budget",
        ));
    }
    if bases.is_empty() {
        return Err(Error::reshape("no base network to reduce"));
    }
    let mut all = Vec::new();
    for base in bases {
        if let Some(a) = base.activations().find(|a| a.mask != ReluMask::All) {
            return Err(Error::reshape(format!(
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
        let f = fewest.ok_or_else(|| Error::reshape("no variants"))?;
        return Err(Error::reshape(format!(
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
        return Err(Error::reshape("--reduce-m values must be at least 1"));
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
}
