//! Arrival rates as given on the command line and seeded Poisson arrivals.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// An arrival rate as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// Requests per second.
    PerSecond(f64),
    /// A multiple of the model's unloaded capacity (1 / unloaded latency).
    Relative(f64),
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (num, rel) = match s.strip_suffix('x') {
            Some(n) => (n, true),
            None => (s, false),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("rate {s:?}: expected requests per second (2.5) or a multiple of the unloaded capacity (0.5x)"))?;
        if !(v.is_finite() && v > 0.0 && v <= 1e6) {
            return Err(format!("rate {s:?} must be positive and at most 1e6"));
        }
        Ok(if rel {
            Self::Relative(v)
        } else {
            Self::PerSecond(v)
        })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PerSecond(v) => write!(f, "{v}"),
            Self::Relative(v) => write!(f, "{v}x"),
        }
    }
}

/// Seeded Poisson arrivals: exponential inter-arrival times of mean 1 / rate.
pub struct Poisson {
    rng: ChaCha20Rng,
    rate: f64,
}

impl Poisson {
    /// Arrivals at `rate` per second from `seed`.
    ///
    /// # Panics
    /// If `rate` is not positive and finite (a caller's bug; the command line checks it).
    pub fn new(rate: f64, seed: u64) -> Self {
        assert!(rate.is_finite() && rate > 0.0, "rate must be positive");
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
            rate,
        }
    }

    /// The next inter-arrival time in seconds.
    pub fn next_gap(&mut self) -> f64 {
        // u in (0, 1]: 53 random bits, never 0 so ln(u) is finite.
        let u = ((self.rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        -u.ln() / self.rate
    }

    /// Arrival times (seconds from the start) of `n` requests.
    pub fn arrivals(&mut self, n: usize) -> Vec<f64> {
        let mut t = 0.0;
        (0..n)
            .map(|_| {
                t += self.next_gap();
                t
            })
            .collect()
    }
}

/// Which of `clients` clients each of `n` requests arrives at: uniformly at
/// random, seeded. Splitting a Poisson process at random this way (thinning)
/// gives each client a Poisson process at rate / clients, independent of the
/// others, and keeps the aggregate the given process.
pub fn assign(n: usize, clients: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let k = clients.max(1) as u128;
    (0..n)
        .map(|_| ((u128::from(rng.next_u64()) * k) >> 64) as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_arrivals_are_seeded_with_the_right_mean_gap() {
        let a = Poisson::new(4.0, 9).arrivals(50_000);
        assert_eq!(a, Poisson::new(4.0, 9).arrivals(50_000));
        assert_ne!(a[..10], Poisson::new(4.0, 10).arrivals(10)[..]);
        assert!(a.windows(2).all(|w| w[1] > w[0]));
        // Mean gap 1/4 s: the standard error over 50 000 gaps is 0.25/√50000
        // ≈ 0.0011 s, so 2% (about 4.5 standard errors) fails only on a bug.
        let mean = a[a.len() - 1] / a.len() as f64;
        assert!((mean - 0.25).abs() < 0.005, "mean gap {mean}");
        // Exponential: the standard deviation equals the mean.
        let mut prev = 0.0;
        let gaps: Vec<f64> = a
            .iter()
            .map(|&t| {
                let g = t - prev;
                prev = t;
                g
            })
            .collect();
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((var.sqrt() - 0.25).abs() < 0.01, "sd {}", var.sqrt());
    }

    #[test]
    fn requests_are_spread_evenly_over_the_clients() {
        let a = assign(30_000, 3, 5);
        assert_eq!(a, assign(30_000, 3, 5));
        assert_ne!(a[..20], assign(20, 3, 6)[..]);
        let mut counts = [0usize; 3];
        for &c in &a {
            counts[c] += 1;
        }
        // 10 000 expected each; the standard deviation is about 82, so 500
        // (six of them) fails only on a bug.
        assert!(
            counts.iter().all(|&c| c.abs_diff(10_000) < 500),
            "{counts:?}"
        );
        assert!(assign(100, 1, 5).iter().all(|&c| c == 0));
    }

    #[test]
    fn rates_parse_absolute_and_relative() {
        assert_eq!("2.5".parse::<Rate>(), Ok(Rate::PerSecond(2.5)));
        assert_eq!("0.5x".parse::<Rate>(), Ok(Rate::Relative(0.5)));
        for bad in ["0", "-1", "x", "nan", "1e9", "2y"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
