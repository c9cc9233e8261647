//! A compact, self-checking description of a network for a peer or a file:
//! the canonical spec plus every non-default ReLU mask. Rebuilding checks
//! every name and mask length, so a description from outside can never
//! produce an inconsistent network.

use super::graph::{Network, ReluMask};
use crate::error::{Error, Result};
use crate::spec::NetSpec;
use serde::Serialize;

/// A compact, self-checking description of a network for sending to a peer
/// or storing: the canonical spec and every activation whose mask is not `All`.
/// [`Network::from_description`] rebuilds the network and validates every mask,
/// so a description from outside can never produce an inconsistent network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Description {
    /// Canonical spec ([`crate::NetSpec::canonical`]).
    pub spec: String,
    /// `(activation name, mask)` for every activation whose mask is not `All`.
    pub masks: Vec<(String, ReluMask)>,
}

impl Network {
    /// The description of this network.
    pub fn describe(&self) -> Description {
        let masks = self
            .activations()
            .filter(|a| a.mask != ReluMask::All)
            .map(|a| (a.name.clone(), a.mask.clone()))
            .collect();
        Description {
            spec: self.spec.canonical(),
            masks,
        }
    }

    /// Rebuilds a network from a description, checking names and mask lengths.
    pub fn from_description(d: &Description) -> Result<Network> {
        let mut net = Network::new(&NetSpec::parse(&d.spec)?);
        let mut seen = std::collections::HashSet::new();
        for (name, mask) in &d.masks {
            if !seen.insert(name.as_str()) {
                return Err(Error::mask(name, "listed twice"));
            }
            let act = net.activation_mut(name)?;
            let want = match mask {
                ReluMask::All | ReluMask::None => None,
                ReluMask::Channels(k) => Some((k.len(), act.shape.c)),
                ReluMask::Pixels(k) => Some((k.len(), act.shape.numel())),
            };
            if let Some((got, want)) = want
                && got != want
            {
                return Err(Error::mask(
                    name,
                    format!("mask has {got} entries, expected {want}"),
                ));
            }
            act.mask = mask.clone();
        }
        Ok(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Random channel and pixel masks: kept + identity = positions, keep_vec agrees
        /// with the counts, and the description rebuilds the same network.
        #[test]
        fn masks_count_and_round_trip(picks in proptest::collection::vec((0usize..9, 0usize..64, 0usize..8, 0usize..8, proptest::bool::ANY), 0..12)) {
            let mut net = Network::new(&NetSpec::parse("2x2x2x(m=4,phi=1-1-1-1,input=8)").unwrap());
            let names: Vec<String> = net.activations().map(|a| a.name.clone()).collect();
            for (which, c, y, x, by_channel) in picks {
                let name = &names[which];
                let shape = net.activations().find(|a| &a.name == name).unwrap().shape;
                let (c, y, x) = (c % shape.c, y % shape.h, x % shape.w);
                if by_channel {
                    net.set_channel_mask(name, &[c]).unwrap();
                } else {
                    net.set_pixel_mask(name, &[[c, y, x], [0, 0, 0]]).unwrap();
                }
            }
            for a in net.activations() {
                let kept = a.keep_vec().iter().filter(|&&k| k).count() as u64;
                proptest::prop_assert_eq!(kept, a.relus());
                proptest::prop_assert_eq!(a.relus() + a.identity(), a.shape.numel() as u64);
            }
            proptest::prop_assert_eq!(Network::from_description(&net.describe()).unwrap(), net);
        }
    }

    #[test]
    fn description_round_trip_and_checks() {
        let mut net = Network::new(&NetSpec::parse("2x2x2x(m=4,phi=1-1-1-1,input=8)").unwrap());
        net.cull(1);
        net.set_channel_mask("layer2.0.relu1", &[1, 5]).unwrap();
        net.set_pixel_mask("layer4.0.relu2", &[[3, 0, 0]]).unwrap();
        let d = net.describe();
        assert_eq!(d.masks.len(), 5); // stem + 2 culled in stage 1, plus the two masks
        let json = serde_json::to_string(&d).unwrap();
        let back: Description = serde_json::from_str(&json).unwrap();
        assert_eq!(Network::from_description(&back).unwrap(), net);

        let mut bad = d.clone();
        bad.masks[3].1 = ReluMask::Channels(vec![true; 3]);
        assert!(
            Network::from_description(&bad)
                .unwrap_err()
                .to_string()
                .contains("expected 8")
        );
        let mut bad = d.clone();
        bad.masks.push(bad.masks[0].clone());
        assert!(
            Network::from_description(&bad)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let mut bad = d.clone();
        bad.masks[0].0 = "layer7.0.relu1".into();
        assert!(Network::from_description(&bad).is_err());
        let mut bad = d;
        bad.spec = "5x5x(m=1)".into();
        assert!(Network::from_description(&bad).is_err());
    }
}
