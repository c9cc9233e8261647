//! Offline activations in OT mode ([`crate::relu_ot`]), both parties.
//!
//! Random OTs (IKNP, server sender) whose leaf choices are the bits the
//! client derives from its share b, random OTs with uniform choices for the
//! AND tree and the final conversion, and per ReLU position one random OT in
//! the other direction (a second IKNP instance with the client as sender);
//! both sides then hash the OT outputs into compact pads. Fresh base OTs per
//! inference in both directions (the reverse one only if some position keeps
//! its ReLU: it serves the multiplexer).

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use zeroize::Zeroize;

use crate::Result;
use crate::crypto::WipingRng;
use crate::exec::off_executor;
use crate::freshness::DigestTap;
use crate::ot::driver as ot;
use crate::ot::{Receiver, Sender};
use crate::plan::{SessionPlan, no_ot};
use crate::relu_ot::{ClientMaterial, ServerMaterial};
use crate::transport::Channel;

/// Which positions of an activation keep their ReLU.
fn kept(a: &pi_models::network::ActivationStep) -> Vec<bool> {
    (0..a.shape.numel()).map(|p| a.keeps(p)).collect()
}

/// The server's OT state through one offline phase.
pub(super) struct ServerOt {
    sender: Sender,
    reverse: Option<Receiver>,
}

impl ServerOt {
    /// Base OTs as sender, then (if the network keeps any ReLU) as receiver.
    pub(super) async fn setup<C: Channel>(
        ch: &mut C,
        plan: &SessionPlan,
        rng: &mut ChaCha20Rng,
    ) -> Result<Self> {
        let sender = ot::setup_sender(ch, rng, None).await?;
        let reverse = if plan.counts.relus > 0 {
            Some(ot::setup_receiver(ch, rng).await?)
        } else {
            None
        };
        Ok(Self { sender, reverse })
    }

    /// The OTs of one activation layer; returns its material.
    pub(super) async fn activation<C: Channel>(
        &mut self,
        ch: &mut C,
        plan: &SessionPlan,
        a: &pi_models::network::ActivationStep,
        rng: &mut ChaCha20Rng,
        tap: &DigestTap,
    ) -> Result<ServerMaterial> {
        let sched = plan.ot.clone().ok_or_else(no_ot)?;
        let relu = kept(a);
        let n_relu = relu.iter().filter(|&&r| r).count();
        let mut pairs =
            ot::send_random(ch, &mut self.sender, relu.len() * sched.rots_per_position()).await?;
        let mut rev_choice: Vec<bool> = (0..n_relu).map(|_| rng.next_u32() & 1 == 1).collect();
        let mut rev_got = match self.reverse.as_mut() {
            Some(r) if n_relu > 0 => ot::receive_random(ch, r, &rev_choice).await?,
            _ => Vec::new(),
        };
        tap.pairs("server/ot pairs (OT outputs)", &pairs);
        tap.bits("server/ot reverse choices", &rev_choice);
        tap.blocks("server/ot reverse outputs", &rev_got);
        let mut rng2 = WipingRng::fork(rng);
        off_executor(move || {
            let m = ServerMaterial::new(&sched, relu, &pairs, &rev_choice, &rev_got, &mut rng2);
            pairs.zeroize();
            rev_choice.zeroize();
            rev_got.zeroize();
            m
        })
        .await
    }
}

/// The client's OT state through one offline phase (its receiver is shared
/// with GC mode and lives in the caller).
pub(super) struct ClientOt {
    reverse: Option<Sender>,
    /// Notes each activation's OT material (tests only).
    tap: DigestTap,
}

impl ClientOt {
    /// Base OTs as the reverse sender, if the network keeps any ReLU.
    pub(super) async fn setup<C: Channel>(
        ch: &mut C,
        plan: &SessionPlan,
        rng: &mut ChaCha20Rng,
        tap: &DigestTap,
    ) -> Result<Self> {
        let reverse = if plan.counts.relus > 0 {
            Some(ot::setup_sender(ch, rng, None).await?)
        } else {
            None
        };
        Ok(Self {
            reverse,
            tap: tap.clone(),
        })
    }

    /// The OTs of one activation layer for the client's share `b`; returns
    /// its material.
    pub(super) async fn activation<C: Channel>(
        &mut self,
        ch: &mut C,
        receiver: &mut Receiver,
        plan: &SessionPlan,
        a: &pi_models::network::ActivationStep,
        b: &[u64],
        rng: &mut ChaCha20Rng,
    ) -> Result<ClientMaterial> {
        let sched = plan.ot.clone().ok_or_else(no_ot)?;
        let relu = kept(a);
        let n_relu = relu.iter().filter(|&&r| r).count();
        let b = b.to_vec();
        let mut choices = sched.client_choices(&b, rng);
        let got = match ot::receive_random(ch, receiver, &choices).await {
            Ok(g) => g,
            Err(e) => {
                choices.zeroize();
                return Err(e);
            }
        };
        let rev_pairs = match self.reverse.as_mut() {
            Some(s) if n_relu > 0 => ot::send_random(ch, s, n_relu).await?,
            _ => Vec::new(),
        };
        self.tap.bits("client/ot choices", &choices);
        self.tap.blocks("client/ot outputs", &got);
        self.tap.pairs("client/ot reverse pairs", &rev_pairs);
        off_executor(move || {
            let (mut choices, mut got, mut rev_pairs) = (choices, got, rev_pairs);
            let m = ClientMaterial::new(&sched, relu, b, &choices, &got, &rev_pairs);
            choices.zeroize();
            got.zeroize();
            rev_pairs.zeroize();
            m
        })
        .await
    }
}
