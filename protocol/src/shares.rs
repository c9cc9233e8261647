//! One party's shares of the network's tensors while a phase walks it: each
//! tensor's share is released (and zeroized) after the last step that reads
//! it, and whatever is left is zeroized when the table is dropped.

use zeroize::Zeroize;

use crate::plan::SessionPlan;
use crate::{Error, Result};

/// Shares by tensor index.
pub(crate) struct Shares {
    slots: Vec<Option<Vec<u64>>>,
}

impl Shares {
    /// An empty table for `plan`'s network.
    pub(crate) fn new(plan: &SessionPlan) -> Self {
        Self {
            slots: vec![None; plan.network.tensors.len()],
        }
    }

    /// Stores the share of tensor `t`.
    pub(crate) fn set(&mut self, t: usize, share: Vec<u64>) {
        if let Some(mut old) = self.slots[t].replace(share) {
            old.zeroize();
        }
    }

    /// The share of tensor `t`.
    pub(crate) fn get(&self, t: usize) -> Result<&[u64]> {
        self.slots[t].as_deref().ok_or_else(missing)
    }

    /// Takes the share of tensor `t` out of the table.
    pub(crate) fn take(&mut self, t: usize) -> Result<Vec<u64>> {
        self.slots[t].take().ok_or_else(missing)
    }

    /// Releases the tensors among `reads` whose last reader is step `step`.
    pub(crate) fn release(&mut self, plan: &SessionPlan, step: usize, reads: &[usize]) {
        for &t in reads {
            if plan.last_use[t] == step
                && let Some(mut s) = self.slots[t].take()
            {
                s.zeroize();
            }
        }
    }
}

impl Drop for Shares {
    fn drop(&mut self) {
        self.slots.iter_mut().flatten().for_each(|s| s.zeroize());
    }
}

fn missing() -> Error {
    Error::Internal("a tensor share is missing")
}
