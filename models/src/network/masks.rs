//! ReLU masks: which positions of an activation keep their ReLU, and the
//! coarse (DeepReDuce culling and thinning) and fine (per channel, per pixel)
//! ways to set them. A masked-off position is identity but still truncated.

use super::graph::{ActivationStep, Network, ReluMask, Step};
use crate::error::{Error, Result};

impl ActivationStep {
    /// Whether flat position `i` keeps its ReLU.
    pub fn keeps(&self, i: usize) -> bool {
        match &self.mask {
            ReluMask::All => true,
            ReluMask::None => false,
            ReluMask::Channels(k) => k[i / (self.shape.h * self.shape.w)],
            ReluMask::Pixels(k) => k[i],
        }
    }
    /// The mask expanded to one flag per position.
    pub fn keep_vec(&self) -> Vec<bool> {
        (0..self.shape.numel()).map(|i| self.keeps(i)).collect()
    }
    /// Number of positions that keep their ReLU.
    pub fn relus(&self) -> u64 {
        let hw = self.shape.h * self.shape.w;
        (match &self.mask {
            ReluMask::All => self.shape.numel(),
            ReluMask::None => 0,
            ReluMask::Channels(k) => k.iter().filter(|&&b| b).count() * hw,
            ReluMask::Pixels(k) => k.iter().filter(|&&b| b).count(),
        }) as u64
    }
    /// Number of positions that are identity (truncation only).
    pub fn identity(&self) -> u64 {
        self.shape.numel() as u64 - self.relus()
    }
}

impl Network {
    /// The activation called `name`, mutably.
    pub fn activation_mut(&mut self, name: &str) -> Result<&mut ActivationStep> {
        let known: Vec<String> = self.activations().map(|a| a.name.clone()).collect();
        self.steps
            .iter_mut()
            .find_map(|s| match s {
                Step::Activation(a) if a.name == name => Some(a),
                _ => None,
            })
            .ok_or_else(|| {
                let shown: Vec<&str> = known.iter().take(6).map(String::as_str).collect();
                Error::mask(
                    name,
                    format!(
                        "no such activation (names look like {}, ...)",
                        shown.join(", ")
                    ),
                )
            })
    }

    /// DeepReDuce culling: every ReLU of the stage becomes identity (stage 1 includes the stem).
    pub fn cull(&mut self, stage: usize) {
        for s in &mut self.steps {
            if let Step::Activation(a) = s
                && a.stage == stage
            {
                a.mask = ReluMask::None;
            }
        }
    }

    /// DeepReDuce thinning: the `relu2` of every block of the stage becomes identity.
    pub fn thin(&mut self, stage: usize) {
        for s in &mut self.steps {
            if let Step::Activation(a) = s
                && a.stage == stage
                && a.name.ends_with(".relu2")
            {
                a.mask = ReluMask::None;
            }
        }
    }

    /// Sets a per-channel mask: the listed channels keep their ReLU.
    pub fn set_channel_mask(&mut self, name: &str, keep: &[usize]) -> Result<()> {
        let act = self.activation_mut(name)?;
        let mut flags = vec![false; act.shape.c];
        for &c in keep {
            if c >= act.shape.c {
                return Err(Error::mask(
                    name,
                    format!(
                        "channel {c} out of range (the activation has {} channels)",
                        act.shape.c
                    ),
                ));
            }
            flags[c] = true;
        }
        act.mask = ReluMask::Channels(flags);
        Ok(())
    }

    /// Sets a per-pixel mask: the listed (c, y, x) positions keep their ReLU.
    pub fn set_pixel_mask(&mut self, name: &str, keep: &[[usize; 3]]) -> Result<()> {
        let act = self.activation_mut(name)?;
        let s = act.shape;
        let mut flags = vec![false; s.numel()];
        for &[c, y, x] in keep {
            if c >= s.c || y >= s.h || x >= s.w {
                return Err(Error::mask(
                    name,
                    format!("position [{c}, {y}, {x}] out of range (shape {s})"),
                ));
            }
            flags[s.index(c, y, x)] = true;
        }
        act.mask = ReluMask::Pixels(flags);
        Ok(())
    }
}
