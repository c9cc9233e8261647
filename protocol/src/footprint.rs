//! What one preprocessed inference costs the client in storage and memory,
//! from the plan alone, and the budgets it is checked against in the
//! handshake (docs/ARCHITECTURE.md §6).
//!
//! Storage is the material held between the offline and the online phase
//! ([`crate::plan::client_storage_bytes`], per ReLU mode). Peak memory is an
//! estimate of the client's resident bytes during one inference: a fixed
//! base (runtime, TLS, HE keys), the material if it is held in memory, the
//! largest set of tensor shares alive at once, and the largest working set
//! of one step (an HE layer's ciphertexts, or one activation layer's
//! material with its OT buffers). With material on disk
//! ([`crate::store::MaterialDir`]) only one activation layer's material is
//! in memory at a time, so the peak no longer grows with the network.

use std::path::Path;

use crate::he::{ClientUpload, ServerReply};
use crate::mode::ReluMode;
use crate::plan::{SessionPlan, Sub, no_ot};
use crate::relu_ot::ClientMaterial;
use crate::{Error, Result};

/// Fixed part of the client's peak memory: the async runtime and its
/// threads, TLS buffers, the HE secret and public keys, the session plan.
pub const BASE_MEMORY: u64 = 96 << 20;

/// Bytes of one RLWE ciphertext in memory: two polynomials of N
/// coefficients, one u64 per coefficient and prime.
const CIPHERTEXT_BYTES: u64 = 2 * 3 * 8192 * 8;

/// What the client may spend on one session: where its preprocessed
/// material lives (storage) and how much it may hold resident (memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientBudget {
    /// Most bytes of material of one preprocessed inference (garbled tables
    /// and labels, or OT-mode pads, plus masks).
    pub max_storage: u64,
    /// Most bytes of estimated peak memory during one inference.
    pub max_memory: u64,
}

impl ClientBudget {
    /// Budgets derived from this machine: the free disk space of `dir` (the
    /// material directory, or the temporary directory when none) and the
    /// physical memory. Either falls back to unlimited when the operating
    /// system does not say.
    pub fn from_machine(dir: Option<&Path>) -> Self {
        let tmp = std::env::temp_dir();
        Self {
            max_storage: free_disk(dir.unwrap_or(&tmp)).unwrap_or(u64::MAX),
            max_memory: physical_memory().unwrap_or(u64::MAX),
        }
    }
}

/// Physical memory of this machine in bytes, if the OS says.
pub fn physical_memory() -> Option<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let s = rustix::system::sysinfo();
        Some((s.totalram as u64).saturating_mul(u64::from(s.mem_unit.max(1))))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// Bytes available to an unprivileged user on the file system holding
/// `path`, if the OS says.
pub fn free_disk(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let s = rustix::fs::statvfs(path).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Which resource a network does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// The material of one preprocessed inference.
    Storage,
    /// The estimated peak memory of one inference.
    Memory,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Storage => "storage",
            Resource::Memory => "memory",
        })
    }
}

/// A network the client refuses because it does not fit a budget.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "network {network} needs {} of client {resource} per preprocessed inference in {mode} \
     mode ({needs} bytes); the {resource} budget allows {} ({allows} bytes)",
    human(*.needs), human(*.allows)
)]
pub struct OverBudget {
    /// The resource that does not fit.
    pub resource: Resource,
    /// The network's spec.
    pub network: String,
    /// The ReLU mode asked for.
    pub mode: ReluMode,
    /// Bytes the network needs.
    pub needs: u64,
    /// Bytes the budget allows.
    pub allows: u64,
}

/// Bytes in binary units with one decimal (`1.5 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Storage and estimated peak memory of one preprocessed inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientFootprint {
    /// Bytes of material held between the phases.
    pub storage: u64,
    /// Estimated peak resident bytes with the material in memory.
    pub memory_in_memory: u64,
    /// Estimated peak resident bytes with the material on disk.
    pub memory_on_disk: u64,
}

impl ClientFootprint {
    /// The estimated peak for material held on disk or in memory.
    pub fn memory(&self, on_disk: bool) -> u64 {
        if on_disk {
            self.memory_on_disk
        } else {
            self.memory_in_memory
        }
    }

    /// Checks the footprint against `budget`.
    ///
    /// # Errors
    /// [`Error::OverBudget`] naming the resource, what the network needs
    /// and what the budget allows.
    pub fn check(
        &self,
        budget: &ClientBudget,
        on_disk: bool,
        network: &str,
        mode: ReluMode,
    ) -> Result<()> {
        let over = |resource, needs, allows| {
            Error::OverBudget(Box::new(OverBudget {
                resource,
                network: network.to_string(),
                mode,
                needs,
                allows,
            }))
        };
        if self.storage > budget.max_storage {
            return Err(over(Resource::Storage, self.storage, budget.max_storage));
        }
        let memory = self.memory(on_disk);
        if memory > budget.max_memory {
            return Err(over(Resource::Memory, memory, budget.max_memory));
        }
        Ok(())
    }
}

/// The client's footprint for `plan` in `mode`.
///
/// # Errors
/// [`Error::Incompatible`] for OT mode under ring parameters it does not support.
pub(crate) fn client_footprint(plan: &SessionPlan, mode: ReluMode) -> Result<ClientFootprint> {
    let storage = crate::plan::client_storage_bytes(plan, mode)?;
    let working = BASE_MEMORY + peak_shares(plan) + largest_step(plan, mode)?;
    Ok(ClientFootprint {
        storage,
        memory_in_memory: working.saturating_add(storage),
        memory_on_disk: working,
    })
}

/// A lower bound on the client's storage from the network's activation
/// count alone, checked before the plan (which holds per-position tables)
/// is built for a network announced by the peer.
pub(crate) fn storage_lower_bound(activations: u64) -> u64 {
    // The activation-output mask alone is 8 bytes per position.
    activations.saturating_mul(8)
}

/// The largest total of tensor shares alive at once (8 bytes per element),
/// plus the activation masks the offline phase keeps as uniform shares.
fn peak_shares(plan: &SessionPlan) -> u64 {
    let net = &plan.network;
    let size = |t: usize| 8 * net.tensors[t].shape.numel() as u64;
    let mut live = size(net.input);
    let mut peak = live;
    let mut masks = 0;
    for (i, step) in net.steps.iter().enumerate() {
        use pi_models::network::Step;
        let (reads, output): (Vec<usize>, usize) = match step {
            Step::Linear(l) => (vec![l.input], l.output),
            Step::Add(a) => (vec![a.lhs, a.rhs], a.output),
            Step::Activation(a) => {
                masks += size(a.output);
                (vec![a.input], a.output)
            }
        };
        live += size(output);
        peak = peak.max(live);
        for t in reads {
            if plan.last_use[t] == i {
                live = live.saturating_sub(size(t));
            }
        }
    }
    peak + masks
}

/// The largest working set of one step.
fn largest_step(plan: &SessionPlan, mode: ReluMode) -> Result<u64> {
    let he = plan
        .he_plans
        .iter()
        .map(|hp| {
            // Plaintext share, ciphertexts and their encodings, the reply.
            let cts = hp.upload_cts() as u64;
            2 * cts * CIPHERTEXT_BYTES
                + ClientUpload::encoded_len(hp) as u64
                + 2 * ServerReply::encoded_len(hp) as u64
                + 16 * hp.shape.output_len() as u64
        })
        .max()
        .unwrap_or(0);
    let l = plan.ring.bits() as u64;
    let mut act = 0u64;
    for (k, split) in plan.splits.iter().enumerate() {
        let bytes = match mode {
            ReluMode::Gc => [Sub::Relu, Sub::Trunc]
                .iter()
                .map(|&which| {
                    let n = which.positions(plan, k).len() as u64;
                    // Tables; the client's labels, the OT buffers that make
                    // them and the server's labels online; choice bits.
                    n * (which.circuit(plan).table_bytes() as u64 + 3 * 16 * l + l)
                })
                .sum::<u64>(),
            ReluMode::Ot => {
                let sched = plan.ot.as_deref().ok_or_else(no_ot)?;
                let n = split.relu.len() + split.trunc.len();
                // The material, the random OT outputs it is hashed from
                // (16 bytes each, with the choices) and the run's messages.
                2 * ClientMaterial::planned_storage_bytes(sched, n, split.relu.len())
                    + 17 * (n * sched.rots_per_position()) as u64
            }
        };
        act = act.max(bytes);
    }
    Ok(he.max(act))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }

    #[test]
    fn machine_budget_is_known_here() {
        let b = ClientBudget::from_machine(None);
        assert!(b.max_memory > 1 << 20 && b.max_memory < u64::MAX);
        assert!(b.max_storage > 0 && b.max_storage < u64::MAX);
    }
}
