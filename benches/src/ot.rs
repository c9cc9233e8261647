//! OT benchmarks: base OT latency, IKNP and silent (LPN) COT throughput,
//! both parties in one process over the in-memory duplex (each party's
//! crypto runs on tokio's blocking pool, so on two cores the parties work in
//! parallel, as they would on two machines minus the network).

use std::time::Instant;

use pi_protocol::crypto::Block;
use pi_protocol::ot::{Receiver, Sender, driver, silent};
use pi_protocol::transport::{Channel, MemoryChannel, memory_pair};
use rand::RngCore;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::Serialize;

/// Indicative OT figures (see [`measure`]).
#[derive(Clone, Debug, Serialize)]
pub struct OtReport {
    /// OTs per extension batch measured.
    pub n: usize,
    /// Wall time of one setup: 128 base OTs (Chou-Orlandi), both parties, ms.
    pub base_ot_ms: f64,
    /// Random OT by IKNP, sender and receiver work included, OTs per second.
    pub iknp_ots_per_second: f64,
    /// Correlated OT (global Δ), OTs per second.
    pub iknp_correlated_ots_per_second: f64,
    /// Chosen-message OT, OTs per second.
    pub iknp_chosen_ots_per_second: f64,
    /// Bytes on the wire per random or correlated OT (receiver to sender).
    pub bytes_per_ot: f64,
    /// Bytes on the wire per chosen-message OT (both directions).
    pub chosen_bytes_per_ot: f64,
    /// Random-choice COTs per silent run (and the batch the bytes are
    /// amortised over).
    pub silent_n: usize,
    /// Wall time of one silent setup (base OTs, SoftSpoken for the setup
    /// round's base, the setup round), both parties, ms.
    pub silent_setup_ms: f64,
    /// Bytes of one silent setup, both directions.
    pub silent_setup_bytes: u64,
    /// Silent random-choice COTs per second after setup (sender and
    /// receiver work, rounds included; checked outside the timing).
    pub silent_ots_per_second: f64,
    /// All bytes, both directions, of a fresh session making `silent_n`
    /// COTs (setup included), per COT.
    pub silent_bytes_per_ot: f64,
}

/// An IKNP session between two in-process parties.
pub struct OtPair {
    rt: tokio::runtime::Runtime,
    sender: Sender,
    receiver: Receiver,
    sender_ch: MemoryChannel,
    receiver_ch: MemoryChannel,
    choices: Vec<bool>,
    rng: ChaCha20Rng,
}

impl OtPair {
    /// Runs setup (the 128 base OTs) and returns the pair and the setup time.
    pub fn new(seed: u64) -> Result<(Self, f64), pi_protocol::Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (mut sender_ch, mut receiver_ch) = memory_pair();
        let mut rs = ChaCha20Rng::seed_from_u64(seed);
        let mut rr = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        let start = Instant::now();
        let (s, r) = rt.block_on(async {
            tokio::join!(
                driver::setup_sender(&mut sender_ch, &mut rs, None),
                driver::setup_receiver(&mut receiver_ch, &mut rr)
            )
        });
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let pair = Self {
            rt,
            sender: s?,
            receiver: r?,
            sender_ch,
            receiver_ch,
            choices: Vec::new(),
            rng: ChaCha20Rng::seed_from_u64(seed ^ 0xc401ce),
        };
        Ok((pair, ms))
    }

    fn fresh_choices(&mut self, n: usize) {
        self.choices.resize(n, false);
        for c in self.choices.iter_mut() {
            *c = self.rng.next_u32() & 1 == 1;
        }
    }

    /// `n` random OTs; returns the number of outputs where the receiver's
    /// value matches the sender's chosen message (must be `n`).
    pub fn random(&mut self, n: usize) -> Result<usize, pi_protocol::Error> {
        self.fresh_choices(n);
        let Self {
            rt,
            sender,
            receiver,
            sender_ch,
            receiver_ch,
            choices,
            ..
        } = self;
        let (a, b) = rt.block_on(async {
            tokio::join!(
                driver::send_random(sender_ch, sender, n),
                driver::receive_random(receiver_ch, receiver, choices)
            )
        });
        let (a, b) = (a?, b?);
        Ok(a.iter()
            .zip(&b)
            .zip(choices.iter())
            .filter(|((p, r), c)| p[**c as usize] == **r)
            .count())
    }

    /// `n` correlated OTs; returns the number of consistent outputs.
    pub fn correlated(&mut self, n: usize) -> Result<usize, pi_protocol::Error> {
        self.fresh_choices(n);
        let delta = self.sender.delta();
        let Self {
            rt,
            sender,
            receiver,
            sender_ch,
            receiver_ch,
            choices,
            ..
        } = self;
        let (a, b) = rt.block_on(async {
            tokio::join!(
                driver::send_correlated(sender_ch, sender, n),
                driver::receive_correlated(receiver_ch, receiver, choices)
            )
        });
        let (a, b) = (a?, b?);
        let a = a.as_slice();
        Ok(a.iter()
            .zip(&b)
            .zip(choices.iter())
            .filter(|((m0, r), c)| **m0 ^ delta.select(**c) == **r)
            .count())
    }

    /// `n` chosen-message OTs of fixed messages; returns the number of correct outputs.
    pub fn chosen(&mut self, n: usize) -> Result<usize, pi_protocol::Error> {
        self.fresh_choices(n);
        let msgs: Vec<[Block; 2]> = (0..n as u128)
            .map(|j| [Block(2 * j), Block(2 * j + 1)])
            .collect();
        let Self {
            rt,
            sender,
            receiver,
            sender_ch,
            receiver_ch,
            choices,
            ..
        } = self;
        let (a, b) = rt.block_on(async {
            tokio::join!(
                driver::send_chosen(sender_ch, sender, &msgs),
                driver::receive_chosen(receiver_ch, receiver, choices)
            )
        });
        a?;
        let b = b?;
        Ok(b.iter()
            .zip(&msgs)
            .zip(choices.iter())
            .filter(|((r, m), c)| m[**c as usize] == **r)
            .count())
    }

    /// Bytes sent so far by (sender, receiver).
    pub fn bytes_sent(&self) -> (u64, u64) {
        (
            self.sender_ch.meter().total("").sent,
            self.receiver_ch.meter().total("").sent,
        )
    }
}

/// A silent COT session between two in-process parties.
pub struct SilentPair {
    rt: tokio::runtime::Runtime,
    sender: silent::driver::DrivenSender,
    receiver: silent::driver::DrivenReceiver,
    sender_ch: MemoryChannel,
    receiver_ch: MemoryChannel,
}

impl SilentPair {
    /// Runs the silent setup and returns the pair and the setup time (ms).
    pub fn new(seed: u64) -> Result<(Self, f64), pi_protocol::Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (mut sender_ch, mut receiver_ch) = memory_pair();
        let mut rs = ChaCha20Rng::seed_from_u64(seed);
        let mut rr = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        let start = Instant::now();
        let (s, r) = rt.block_on(async {
            tokio::join!(
                silent::driver::setup_sender(&mut sender_ch, &mut rs, None),
                silent::driver::setup_receiver(&mut receiver_ch, &mut rr)
            )
        });
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let pair = Self {
            rt,
            sender: s?,
            receiver: r?,
            sender_ch,
            receiver_ch,
        };
        Ok((pair, ms))
    }

    /// `n` random-choice COTs, unchecked: (sender's q_j, receiver's t_j).
    pub fn cots(
        &mut self,
        n: usize,
    ) -> Result<(silent::SenderCots, silent::ReceiverCots), pi_protocol::Error> {
        let Self {
            rt,
            sender,
            receiver,
            sender_ch,
            receiver_ch,
        } = self;
        let (a, b) = rt.block_on(async {
            tokio::join!(
                silent::driver::send_cots(sender_ch, sender, n),
                silent::driver::receive_cots(receiver_ch, receiver, n)
            )
        });
        Ok((a?, b?))
    }

    /// Number of outputs with t_j = q_j ⊕ lsb(t_j)·Δ.
    pub fn consistent(&self, q: &silent::SenderCots, t: &silent::ReceiverCots) -> usize {
        let delta = self.sender.delta();
        q.as_slice()
            .iter()
            .zip(t.as_slice())
            .filter(|&(&a, &b)| a ^ delta.select(b.lsb()) == b)
            .count()
    }

    /// Bytes sent so far by both parties.
    pub fn bytes(&self) -> u64 {
        self.sender_ch.meter().total("").sent + self.receiver_ch.meter().total("").sent
    }
}

/// Silent figures for batches of `n`: setup (median over `reps` sessions),
/// bytes of a fresh session making `n` COTs, and the median time of `reps`
/// further batches of `n` (every output checked, outside the timing).
fn measure_silent(n: usize, reps: usize) -> Result<(f64, u64, f64, f64), pi_protocol::Error> {
    let mut setups = Vec::new();
    let mut setup_bytes = 0;
    for seed in 0..reps.max(1) as u64 {
        let (pair, ms) = SilentPair::new(100 + seed)?;
        setups.push(ms);
        setup_bytes = pair.bytes();
    }
    setups.sort_by(f64::total_cmp);
    let (mut pair, _) = SilentPair::new(7)?;
    let (q, t) = pair.cots(n)?;
    check(pair.consistent(&q, &t), n, "silent COT")?;
    drop((q, t));
    let bytes_per_ot = pair.bytes() as f64 / n as f64;
    let mut times = Vec::new();
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        let (q, t) = pair.cots(n)?;
        times.push(start.elapsed().as_secs_f64());
        check(pair.consistent(&q, &t), n, "silent COT")?;
    }
    times.sort_by(f64::total_cmp);
    Ok((
        setups[setups.len() / 2],
        setup_bytes,
        n as f64 / times[times.len() / 2],
        bytes_per_ot,
    ))
}

fn check(ok: usize, n: usize, what: &str) -> Result<(), pi_protocol::Error> {
    if ok != n {
        return Err(pi_protocol::Error::BadInput(format!(
            "{what}: only {ok} of {n} OTs consistent"
        )));
    }
    Ok(())
}

/// Median of `reps` runs of `f`, in seconds.
fn median_secs(
    reps: usize,
    mut f: impl FnMut() -> Result<(), pi_protocol::Error>,
) -> Result<f64, pi_protocol::Error> {
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Measures setup and IKNP throughput for batches of `n` OTs (median of
/// `reps` runs each, after one warm-up), and silent COT for batches of
/// `silent_n`. Every run's outputs are checked.
pub fn measure(n: usize, silent_n: usize, reps: usize) -> Result<OtReport, pi_protocol::Error> {
    let mut setups = Vec::new();
    for seed in 0..reps.max(1) as u64 {
        setups.push(OtPair::new(seed)?.1);
    }
    setups.sort_by(f64::total_cmp);
    let base_ot_ms = setups[setups.len() / 2];

    let (mut pair, _) = OtPair::new(99)?;
    check(pair.random(n)?, n, "random OT warm-up")?;

    let before = pair.bytes_sent();
    let random = median_secs(reps, || check(pair.random(n)?, n, "random OT"))?;
    let after = pair.bytes_sent();
    let bytes_per_ot = (after.0 + after.1 - before.0 - before.1) as f64 / (reps.max(1) * n) as f64;

    let correlated = median_secs(reps, || check(pair.correlated(n)?, n, "correlated OT"))?;

    let before = pair.bytes_sent();
    let chosen = median_secs(reps, || check(pair.chosen(n)?, n, "chosen OT"))?;
    let after = pair.bytes_sent();
    let chosen_bytes_per_ot =
        (after.0 + after.1 - before.0 - before.1) as f64 / (reps.max(1) * n) as f64;
    drop(pair);

    let (silent_setup_ms, silent_setup_bytes, silent_ots_per_second, silent_bytes_per_ot) =
        measure_silent(silent_n, reps)?;

    Ok(OtReport {
        n,
        base_ot_ms,
        iknp_ots_per_second: n as f64 / random,
        iknp_correlated_ots_per_second: n as f64 / correlated,
        iknp_chosen_ots_per_second: n as f64 / chosen,
        bytes_per_ot,
        chosen_bytes_per_ot,
        silent_n,
        silent_setup_ms,
        silent_setup_bytes,
        silent_ots_per_second,
        silent_bytes_per_ot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_measurement_is_consistent() {
        let r = measure(3000, 50_000, 1).unwrap();
        assert_eq!(r.n, 3000);
        // U carries 16 bytes per OT padded to 128: 3072 / 3000 * 16.
        assert!(
            (r.bytes_per_ot - 16.0 * 3072.0 / 3000.0).abs() < 1e-9,
            "{}",
            r.bytes_per_ot
        );
        assert!((r.chosen_bytes_per_ot - (16.0 * 3072.0 / 3000.0 + 32.0)).abs() < 1e-9);
        assert!(r.iknp_ots_per_second > 0.0 && r.base_ot_ms > 0.0);
        // Silent setup: base OTs (32 B + 128 points), SoftSpoken for the
        // setup base (4 KiB of trees, 2 B per OT padded to 128 OTs), the
        // setup round's corrections.
        let base = silent::SETUP.base_cots().div_ceil(128) * 128;
        let setup = 32 + 128 * 32 + 4096 + 2 * base + 16 * silent::SETUP.msg_blocks();
        assert_eq!(r.silent_setup_bytes, setup as u64);
        // 50,000 outputs need one more round after the setup round's yield,
        // a small one (the setup parameters) since it covers the rest.
        assert!(50_000 - (silent::SETUP.n() - silent::MAIN.base_cots()) <= silent::SMALL_YIELD);
        let total = setup + 16 * silent::SETUP.msg_blocks();
        assert!(
            (r.silent_bytes_per_ot - total as f64 / 50_000.0).abs() < 1e-9,
            "{}",
            r.silent_bytes_per_ot
        );
        assert!(r.silent_ots_per_second > 0.0 && r.silent_setup_ms > 0.0);
    }
}
