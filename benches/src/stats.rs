//! Statistics of repeated measurements, as `pi-bench` reports them.
//!
//! - [`Summary`]: the median of n samples with a *distribution-free* 95%
//!   interval for the median from order statistics: the interval
//!   [x_(k), x_(n+1-k)] of the sorted samples covers the true median with
//!   probability 1 − 2·P(B ≤ k − 1), B ~ Binomial(n, 1/2), whatever the
//!   distribution of the samples, as long as they are independent. k is the
//!   largest rank with a coverage of at least 95%. Below six samples no pair
//!   of order statistics reaches 95%; the interval is then [min, max] and
//!   [`Summary::ci_coverage`] says how much it covers (93.75% at n = 5,
//!   87.5% at n = 4, nothing at n = 1).
//! - [`separated`]: `pi-bench compare` ranks two measurements as different
//!   only when both intervals have a coverage of at least [`RANK_COVERAGE`]
//!   (five samples or more) and do not overlap; otherwise it calls them a tie.
//! - [`mean_interval`]: the Student-t 95% interval of a mean (latency under
//!   load, where the mean is what the sustainable rate is judged by).
//! - [`Percentiles`]: nearest-rank percentiles, each only when the sample
//!   supports it: pXX needs at least one sample above its rank (p95 from 20
//!   samples, p99 from 100); below that the highest supported percentile,
//!   100·(1 − 1/n), stands in as the tail.

use serde::{Deserialize, Serialize};

/// How [`Summary`] intervals are computed (also written into the JSON).
pub const CI_METHOD: &str = "order statistics (binomial, distribution-free)";

/// The interval's target coverage.
pub const CONFIDENCE: f64 = 0.95;

/// The coverage both intervals need before [`separated`] can tell two
/// measurements apart (reached from five samples: 1 − 2^-4 = 93.75%).
pub const RANK_COVERAGE: f64 = 0.9;

/// n samples of one metric: median, extremes, the 95% interval for the
/// median and every raw sample, in the order measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median (mean of the two middle samples when n is even).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Lower end of the interval for the median.
    pub ci95_low: f64,
    /// Upper end of the interval for the median.
    pub ci95_high: f64,
    /// Probability that the interval covers the true median: at least 0.95
    /// from six samples, 1 − 2^(1−n) below (the interval is then [min, max]).
    pub ci_coverage: f64,
    /// [`CI_METHOD`].
    #[serde(default = "ci_method")]
    pub ci_method: String,
    /// The raw samples, in the order measured.
    pub samples: Vec<f64>,
}

fn ci_method() -> String {
    CI_METHOD.into()
}

impl Summary {
    /// Of `samples`; `None` if there are none or one is not finite.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || !samples.iter().all(|x| x.is_finite()) {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        let (k, coverage) = median_interval_rank(n);
        Some(Self {
            n,
            median,
            min: s[0],
            max: s[n - 1],
            ci95_low: s[k - 1],
            ci95_high: s[n - k],
            ci_coverage: coverage,
            ci_method: CI_METHOD.into(),
            samples: samples.to_vec(),
        })
    }

    /// Whether the interval covers enough to rank by ([`RANK_COVERAGE`]).
    pub fn rankable(&self) -> bool {
        self.ci_coverage >= RANK_COVERAGE
    }

    /// `median [low, high]` with `digits` decimals, or the lone sample.
    pub fn show(&self, digits: usize) -> String {
        if self.n == 1 {
            format!("{:.digits$} (n=1)", self.median)
        } else {
            format!(
                "{:.digits$} [{:.digits$}, {:.digits$}]",
                self.median, self.ci95_low, self.ci95_high
            )
        }
    }
}

/// The rank k (1-based) of the lower end of the interval for the median of
/// n samples, [x_(k), x_(n+1−k)], and its exact coverage.
pub fn median_interval_rank(n: usize) -> (usize, f64) {
    assert!(n > 0, "no samples");
    // cdf[j] = P(B <= j) for B ~ Binomial(n, 1/2), in log space so that
    // large n does not underflow 2^-n.
    // P(B <= j) for B ~ Binomial(n, 1/2), from ln C(n, j) − n·ln 2 so
    // that large n does not underflow 2^-n.
    let ln2n = n as f64 * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64; // ln C(n, 0)
    let mut cdf = 0.0f64;
    // k = 1, [min, max], misses the median with probability 2·2^-n.
    let mut best = (1, 1.0 - 0.5f64.powi(n.min(2000) as i32 - 1));
    for j in 0..n / 2 {
        cdf += (ln_choose - ln2n).exp();
        // [x_(j+1), x_(n-j)] misses the median with probability 2·P(B <= j).
        let coverage = 1.0 - 2.0 * cdf;
        if coverage < CONFIDENCE {
            break;
        }
        best = (j + 1, coverage);
        ln_choose += ((n - j) as f64).ln() - ((j + 1) as f64).ln();
    }
    best
}

/// Whether two measurements differ: both intervals cover at least
/// [`RANK_COVERAGE`] and they do not overlap.
pub fn separated(a: &Summary, b: &Summary) -> bool {
    a.rankable() && b.rankable() && (a.ci95_high < b.ci95_low || b.ci95_high < a.ci95_low)
}

/// A rank among several measurements (lower is better, e.g. faster).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rank {
    /// 1 + the number of measurements [`separated`] from this one and lower.
    pub rank: usize,
    /// Not separated from at least one other measurement.
    pub tie: bool,
}

impl std::fmt::Display for Rank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.rank, if self.tie { "=" } else { "" })
    }
}

/// Ranks of `xs` by the separation rule; `None` entries (not measured) get
/// no rank and count for nothing.
pub fn rank(xs: &[Option<&Summary>]) -> Vec<Option<Rank>> {
    xs.iter()
        .enumerate()
        .map(|(i, a)| {
            let a = (*a)?;
            let others = xs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, b)| *b);
            let (mut better, mut tie) = (0, false);
            for b in others {
                if separated(a, b) {
                    better += usize::from(b.median < a.median);
                } else {
                    tie = true;
                }
            }
            Some(Rank {
                rank: 1 + better,
                tie,
            })
        })
        .collect()
}

/// Two-sided 97.5% quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 97.5% quantile of Student's t with `df` degrees of freedom: a table
/// up to 30, the Cornish-Fisher expansion around the normal quantile above
/// (error below 1e-4 there).
pub fn t975(df: usize) -> f64 {
    assert!(df > 0, "no degrees of freedom");
    if df <= T975.len() {
        return T975[df - 1];
    }
    let z = 1.959_963_984_540_054f64;
    let v = df as f64;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * v)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v * v * v)
}

/// Mean of `xs` with its Student-t 95% interval: `(mean, low, high)`;
/// `None` below two samples. The samples are taken as independent.
pub fn mean_interval(xs: &[f64]) -> Option<(f64, f64, f64)> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    Some((mean, mean - half, mean + half))
}

/// The nearest-rank q-quantile of sorted `s` (non-empty).
fn nearest_rank(s: &[f64], q: f64) -> f64 {
    s[rank_of(q, s.len()).clamp(1, s.len()) - 1]
}

/// ⌈q·n⌉, robust to q·n landing a rounding error above an integer.
fn rank_of(q: f64, n: usize) -> usize {
    (q * n as f64 - 1e-9).ceil() as usize
}

/// Whether n samples support the nearest-rank q-quantile as a tail figure:
/// at least one sample lies above its rank.
pub fn supports(n: usize, q: f64) -> bool {
    n > 0 && rank_of(q, n) < n
}

/// Nearest-rank percentiles of a sample, tails only where supported.
#[derive(Clone, Debug, PartialEq)]
pub struct Percentiles {
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile, from 20 samples.
    pub p95: Option<f64>,
    /// 99th percentile, from 100 samples.
    pub p99: Option<f64>,
    /// The highest supported percentile (in percent), 100·(1 − 1/n), from
    /// two samples.
    pub tail_percent: Option<f64>,
    /// Its value.
    pub tail: Option<f64>,
}

impl Percentiles {
    /// Of `xs` (non-empty, any order).
    pub fn of(xs: &[f64]) -> Option<Self> {
        if xs.is_empty() {
            return None;
        }
        let mut s = xs.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let at = |q: f64| supports(n, q).then(|| nearest_rank(&s, q));
        let tail_q = 1.0 - 1.0 / n as f64;
        Some(Self {
            p50: nearest_rank(&s, 0.5),
            p95: at(0.95),
            p99: at(0.99),
            tail_percent: (n >= 2).then_some(100.0 * tail_q),
            tail: (n >= 2).then(|| s[n - 2]),
        })
    }
}

/// Summaries of every numeric field, by name, over several JSON objects of
/// the same shape (one per repeat); nested objects become nested maps.
/// Fields missing from some objects are summarised over the others.
pub fn summarise_fields(runs: &[serde_json::Value]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let Some(first) = runs.first().and_then(|v| v.as_object()) else {
        return out.into();
    };
    for (key, v) in first {
        let field: Vec<serde_json::Value> =
            runs.iter().filter_map(|r| r.get(key)).cloned().collect();
        if v.is_object() {
            let inner = summarise_fields(&field);
            if inner.as_object().is_some_and(|m| !m.is_empty()) {
                out.insert(key.clone(), inner);
            }
        } else if v.is_number() {
            let xs: Vec<f64> = field.iter().filter_map(serde_json::Value::as_f64).collect();
            if let Some(s) = Summary::of(&xs) {
                out.insert(key.clone(), serde_json::to_value(s).unwrap_or_default());
            }
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_extremes_of_known_samples() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max), (3, 2.0, 1.0, 3.0));
        assert_eq!(s.samples, [3.0, 1.0, 2.0], "raw samples kept in order");
        assert_eq!(Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    /// Ranks and coverages from the binomial distribution, worked by hand:
    /// n = 10: P(B <= 1) = 11/1024, P(B <= 2) = 56/1024 > 0.025, so k = 2;
    /// n = 20: P(B <= 5) = 21700/2^20 = 0.0207, P(B <= 6) = 0.0577, so k = 6.
    #[test]
    fn order_statistic_intervals_match_the_binomial_distribution() {
        assert_eq!(median_interval_rank(1), (1, 0.0));
        assert_eq!(median_interval_rank(5), (1, 1.0 - 2.0 / 32.0));
        let (k, c) = median_interval_rank(6);
        assert!(k == 1 && (c - (1.0 - 2.0 / 64.0)).abs() < 1e-12, "{c}");
        let (k, c) = median_interval_rank(10);
        assert_eq!(k, 2);
        assert!((c - (1.0 - 22.0 / 1024.0)).abs() < 1e-12, "{c}");
        let (k, c) = median_interval_rank(20);
        assert_eq!(k, 6);
        assert!((c - (1.0 - 2.0 * 21700.0 / 1048576.0)).abs() < 1e-12, "{c}");
        // Large n: the normal approximation k ≈ n/2 − 0.98·√n.
        let (k, c) = median_interval_rank(10_000);
        assert!((4900..=4902).contains(&k), "{k}");
        assert!((0.95..0.96).contains(&c), "{c}");
        for n in 1..200 {
            let (k, c) = median_interval_rank(n);
            assert!(k >= 1 && k <= n.div_ceil(2), "n = {n}");
            assert!(n < 6 || c >= 0.95, "n = {n}: {c}");
        }
        // The interval itself: the 2nd and 9th of ten sorted samples.
        let xs: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let s = Summary::of(&xs).unwrap();
        assert_eq!((s.ci95_low, s.median, s.ci95_high), (2.0, 5.5, 9.0));
        let one = Summary::of(&[0.7]).unwrap();
        assert_eq!(
            (one.ci95_low, one.ci95_high, one.ci_coverage),
            (0.7, 0.7, 0.0)
        );
    }

    fn five(xs: [f64; 5]) -> Summary {
        Summary::of(&xs).unwrap()
    }

    #[test]
    fn separation_needs_disjoint_intervals_and_enough_samples() {
        let a = five([1.0, 1.1, 1.2, 1.3, 1.4]);
        let b = five([1.5, 1.6, 1.7, 1.8, 1.9]);
        let c = five([1.35, 1.5, 1.6, 1.7, 1.8]); // overlaps a at 1.35..1.4
        assert!(separated(&a, &b) && separated(&b, &a));
        assert!(!separated(&a, &c));
        // Four samples cover only 87.5%: never ranked apart.
        let d = Summary::of(&[5.0, 5.1, 5.2, 5.3]).unwrap();
        assert!(!separated(&a, &d));
        // Ranks: a and c tie for first, b is behind a but tied with c.
        let r = rank(&[Some(&a), Some(&b), Some(&c), None]);
        let show: Vec<String> = r
            .iter()
            .map(|r| r.map_or("-".into(), |r| r.to_string()))
            .collect();
        assert_eq!(show, ["1=", "2=", "1=", "-"]);
        let r = rank(&[Some(&b), Some(&a)]);
        assert_eq!(
            r,
            [
                Some(Rank {
                    rank: 2,
                    tie: false
                }),
                Some(Rank {
                    rank: 1,
                    tie: false
                })
            ]
        );
    }

    #[test]
    fn t_quantiles_and_the_mean_interval() {
        assert_eq!(t975(1), 12.706);
        // The expansion continues the table smoothly (t(30) = 2.0423, t(60) = 2.0003, t(120) = 1.9799).
        assert!((t975(31) - 2.0395).abs() < 5e-4, "{}", t975(31));
        assert!((t975(60) - 2.0003).abs() < 2e-4, "{}", t975(60));
        assert!((t975(120) - 1.9799).abs() < 2e-4, "{}", t975(120));
        assert!((2..200).all(|d| t975(d) < t975(d - 1)));
        // Samples 1..=5: mean 3, s = √2.5, half-width 2.776·√(2.5/5).
        let (m, lo, hi) = mean_interval(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let half = 2.776 * 0.5f64.sqrt();
        assert!(
            (m - 3.0).abs() < 1e-12
                && (hi - 3.0 - half).abs() < 1e-12
                && (3.0 - lo - half).abs() < 1e-12
        );
        assert!(mean_interval(&[1.0]).is_none());
    }

    #[test]
    fn percentiles_only_where_the_sample_supports_them() {
        let xs: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Percentiles::of(&xs).unwrap();
        assert_eq!((p.p50, p.p95, p.p99), (50.0, Some(95.0), Some(99.0)));
        assert_eq!((p.tail_percent, p.tail), (Some(99.0), Some(99.0)));
        let p = Percentiles::of(&xs[..99]).unwrap(); // 2..=100
        assert_eq!((p.p95, p.p99), (Some(96.0), None));
        let p = Percentiles::of(&xs[..20]).unwrap(); // 81..=100
        assert_eq!((p.p95, p.p99, p.tail), (Some(99.0), None, Some(99.0)));
        assert!(Percentiles::of(&xs[..19]).unwrap().p95.is_none());
        let p = Percentiles::of(&[3.0, 1.0, 2.0, 6.0, 5.0, 4.0]).unwrap();
        assert_eq!((p.p50, p.p95, p.tail), (3.0, None, Some(5.0)));
        assert!((p.tail_percent.unwrap() - 100.0 * 5.0 / 6.0).abs() < 1e-9);
        let p = Percentiles::of(&[0.3]).unwrap();
        assert_eq!((p.p50, p.tail), (0.3, None));
        assert!(Percentiles::of(&[]).is_none());
    }

    #[test]
    fn every_numeric_field_is_summarised() {
        let runs: Vec<serde_json::Value> = (1..=3)
            .map(|i| serde_json::json!({"gc": {"ns": i as f64, "gates": 84, "name": "x"}, "ms": 10 * i}))
            .collect();
        let s = summarise_fields(&runs);
        assert_eq!(s["gc"]["ns"]["median"], 2.0);
        assert_eq!(s["gc"]["ns"]["samples"], serde_json::json!([1.0, 2.0, 3.0]));
        assert_eq!(s["gc"]["gates"]["max"], 84.0);
        assert_eq!(s["ms"]["n"], 3);
        assert!(s["gc"].get("name").is_none());
    }
}
