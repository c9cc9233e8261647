//! What one inference of a model is expected to cost on the wire, from the
//! public plan alone: the server sizes its per-phase deadlines from it
//! ([`crate::transport::PhaseDeadlines`]), so that a trickling peer is cut
//! off while an honest one on a slow link is not.
//!
//! The figures are estimates within a few percent (framing, OT setup and
//! the HE public key are left out): HE uploads and replies per linear layer
//! are exact ([`crate::he`] wire sizes); per activation position, garbled
//! circuits cost the IKNP correlation (16 B per input bit) and the table
//! offline, the server's labels online; OT mode costs its random OTs
//! (16 B each, both directions) offline and its online round trips.

use crate::he::{ClientUpload, ServerReply};
use crate::mode::ReluMode;
use crate::session::ServerModel;

/// Expected bytes of one inference, both directions together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseBytes {
    /// Offline phase.
    pub offline: u64,
    /// Online phase.
    pub online: u64,
}

/// Online bytes per OT-mode activation position (leaf tables, tree and
/// multiplexer messages; 121 B measured at l = 37, rounded up).
const OT_ONLINE_PER_POSITION: u64 = 128;

impl ServerModel {
    /// Expected traffic of one inference in `mode` (see the module docs).
    pub fn expected_traffic(&self, mode: ReluMode) -> PhaseBytes {
        let plan = &self.inner.plan;
        let l = plan.ring.bits() as u64;
        let he: u64 = plan
            .he_plans
            .iter()
            .map(|hp| (ClientUpload::encoded_len(hp) + ServerReply::encoded_len(hp)) as u64)
            .sum();
        let input = plan.network.tensors[plan.network.input].shape.numel() as u64;
        let (relus, identity) = (plan.counts.relus, plan.counts.identity);
        let positions = relus + identity;
        match mode {
            ReluMode::Gc => PhaseBytes {
                offline: he
                    + positions * 16 * l
                    + relus * plan.relu.table_bytes() as u64
                    + identity * plan.trunc.table_bytes() as u64,
                online: 8 * input + positions * (16 * l + 16),
            },
            ReluMode::Ot => {
                let rots = plan.ot.as_ref().map_or(0, |s| s.rots_per_position() as u64);
                PhaseBytes {
                    offline: he + positions * 16 * rots + relus * 16,
                    online: 8 * input + positions * OT_ONLINE_PER_POSITION,
                }
            }
        }
    }

    /// Multiply-accumulates of the linear layers (ring MACs, FC folded).
    pub fn macs(&self) -> u64 {
        use pi_models::network::LinearKind;
        self.network()
            .linears()
            .map(|l| match l.kind {
                LinearKind::Conv(g) => g.macs(),
                LinearKind::Fc(g) => g.folded_macs(),
            })
            .sum()
    }

    /// Activation positions (ReLUs and truncation-only positions).
    pub fn activations(&self) -> u64 {
        let c = &self.inner.plan.counts;
        c.relus + c.identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pi_models::{Model, RingParams, weights};

    /// The estimate is within 10% of the traffic of a real inference.
    #[tokio::test]
    async fn expected_traffic_matches_a_real_inference() {
        let model = Model::resolve("2x2x2x(m=2,phi=1-1-1-1,classes=4,input=8,channels=1)").unwrap();
        let folded = weights::weights_from_bytes(
            &weights::init_weights(&model.network, 3).unwrap(),
            &model.network,
        )
        .unwrap();
        let quant = model.quantize(&folded, RingParams::default()).unwrap();
        let server = ServerModel::from_model(&model, quant)
            .unwrap()
            .with_relu_modes(&[ReluMode::Gc, ReluMode::Ot])
            .unwrap();
        for mode in [ReluMode::Gc, ReluMode::Ot] {
            let (mut s, mut c) = crate::transport::memory_pair();
            let config = crate::ClientConfig {
                relu: mode,
                ..Default::default()
            };
            let x = vec![0u64; 64];
            let (served, report) = tokio::join!(
                crate::session::serve_one(&mut s, &server),
                crate::session::infer_one(&mut c, &config, &x)
            );
            served.unwrap();
            let r = report.unwrap();
            let got_off = r.offline.bytes_sent + r.offline.bytes_received;
            let got_on = r.online.bytes_sent + r.online.bytes_received;
            let want = server.expected_traffic(mode);
            let close = |a: u64, b: u64| (a as f64 - b as f64).abs() <= 0.1 * b as f64;
            assert!(
                close(want.offline, got_off),
                "{mode}: offline {want:?} vs {got_off}"
            );
            assert!(
                close(want.online, got_on),
                "{mode}: online {want:?} vs {got_on}"
            );
        }
    }
}
