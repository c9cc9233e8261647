//! Stagewise ReLU criticality orders such as `S3>S2>S4>S1`.

use crate::error::{Error, Result};

/// A stagewise ReLU criticality order, most critical stage first (`S3>S2>S4>S1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order([usize; 4]);

impl Order {
    /// Parses `S3>S2>S4>S1` (whitespace ignored, `s3` and `stage3` accepted).
    pub fn parse(text: &str) -> Result<Order> {
        let bad = |reason: String| {
            Error::reshape(format!(
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
