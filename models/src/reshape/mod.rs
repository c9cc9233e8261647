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
//! identity, [`crate::Network::thin`]) or cull (every ReLU of the stage becomes identity,
//! including the stem in stage 1, [`crate::Network::cull`]). Actions follow the criticality
//! order: a less critical stage is reduced at least as much as a more critical one
//! (cull the least critical stage first, then thin the next, and so on), and the most
//! critical stage is never culled. That leaves 14 plans per network (monotone maps from
//! the four ranks to keep < thin < cull, minus the plan that culls everything); smaller
//! base widths m can be added. Variants within the budget are listed with their ReLU
//! and MAC counts. Their Pareto front takes ReLUs kept as the accuracy proxy (more
//! ReLUs within the budget lose less accuracy) and MACs as the offline cost: a variant
//! is on the front when no other listed variant keeps at least as many ReLUs with at
//! most as many MACs, one of the two strictly.
//!
//! # Files
//! - `order`: [`Order`], parsed from `S3>S2>S4>S1`;
//! - `equalize`: [`inequalities`], [`solutions`] and [`derive()`] (ReLU equalization);
//! - `budget`: [`plans`], [`budget_variants`] and the Pareto front;
//! - `request`: the whole `pi-models reshape` command as a [`Request`] giving an
//!   [`Outcome`] (tables via `Display`, JSON, model files to write).

mod budget;
mod equalize;
mod order;
mod request;

pub use budget::{Action, Variant, VariantTable, apply_plan, budget_variants, plans, with_m};
pub use equalize::{
    Derivation, Derived, Inequality, MAX_MULTIPLIER, block_relus, check_bounds, derive,
    derived_model_file, inequalities, solutions,
};
pub use order::Order;
pub use request::{Budget, ModelFile, Outcome, Request};
