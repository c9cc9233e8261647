//! [`ClientMaterial`] as the payload of a stored record ([`crate::store`]):
//! its fields in order, lengths fixed by the schedule and the layer's
//! positions, so a record decodes only into the layer it was made for.

use super::{ClientMaterial, Schedule};
use crate::Result;
use crate::store::{RecordIn, RecordOut};

impl ClientMaterial {
    /// Writes the material into a record of exactly
    /// [`Self::storage_bytes`] bytes, consuming (and so wiping) it.
    pub(crate) fn store(self, out: &mut RecordOut<'_>) -> Result<()> {
        let flags: Vec<u8> = self.relu.iter().map(|&r| u8::from(r)).collect();
        out.put(&flags)?;
        out.put_u64s(&self.b)?;
        out.put(&self.leaf_pads)?;
        out.put(&self.tree)?;
        out.put(&self.final_choice)?;
        out.put_u64s(&self.final_pad)?;
        for p in &self.rev_pads {
            out.put_u64s(p)?;
        }
        Ok(())
    }

    /// Reads the material of a layer of `relu.len()` positions (`relu`: which
    /// keep their ReLU, from the plan) from a record written by
    /// [`Self::store`]. The caller checks the record's MAC before use.
    pub(crate) fn load(sched: &Schedule, relu: Vec<bool>, inp: &mut RecordIn<'_>) -> Result<Self> {
        let n = relu.len();
        let relus = relu.iter().filter(|&&r| r).count();
        let mut m = ClientMaterial {
            relu: Vec::new(),
            b: vec![0; n],
            leaf_pads: vec![0; n * sched.chunks.len()],
            tree: vec![0; n * sched.tree_rots],
            final_choice: vec![0; n],
            final_pad: vec![0; n],
            rev_pads: vec![[0; 2]; relus],
        };
        let mut flags = vec![0u8; n];
        inp.get(&mut flags)?;
        inp.get_u64s(&mut m.b)?;
        inp.get(&mut m.leaf_pads)?;
        inp.get(&mut m.tree)?;
        inp.get(&mut m.final_choice)?;
        inp.get_u64s(&mut m.final_pad)?;
        for p in &mut m.rev_pads {
            inp.get_u64s(p)?;
        }
        if flags.iter().zip(&relu).any(|(&f, &r)| f != u8::from(r)) {
            return Err(inp.fault());
        }
        m.relu = relu;
        Ok(m)
    }
}
