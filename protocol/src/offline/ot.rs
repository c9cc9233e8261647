//! Offline activations in OT mode ([`crate::relu_ot`]), both parties.
//!
//! From the session's bulk OT ([`crate::ot::bulk`], silent by default),
//! server → client: random OTs whose choices are the bits the client derives
//! from its share b (the leaves: one choice bit per OT on the wire), then
//! random OTs with random choices for the AND tree and the final conversion
//! (nothing on the wire beyond the silent rounds); client → server, per ReLU
//! position, one random OT with random choice (the server's). Both sides then
//! hash the OT outputs into compact pads.

use rand_chacha::ChaCha20Rng;
use zeroize::Zeroize;

use crate::Result;
use crate::crypto::WipingRng;
use crate::exec::off_executor;
use crate::freshness::DigestTap;
use crate::ot::SessionOts;
use crate::plan::{SessionPlan, no_ot};
use crate::relu_ot::{ClientMaterial, ServerMaterial};
use crate::transport::Channel;

/// Which positions of an activation keep their ReLU.
fn kept(a: &pi_models::network::ActivationStep) -> Vec<bool> {
    (0..a.shape.numel()).map(|p| a.keeps(p)).collect()
}

/// The server's OTs of one activation layer; returns its material.
pub(super) async fn server_activation<C: Channel>(
    ch: &mut C,
    ots: &mut SessionOts,
    plan: &SessionPlan,
    a: &pi_models::network::ActivationStep,
    rng: &mut ChaCha20Rng,
    tap: &DigestTap,
) -> Result<ServerMaterial> {
    let sched = plan.ot.clone().ok_or_else(no_ot)?;
    let relu = kept(a);
    let (n, n_relu) = (relu.len(), relu.iter().filter(|&&r| r).count());
    let sender = ots.sender()?;
    let mut leaves = sender
        .send_random(ch, n * sched.leaf_rots_per_position())
        .await?;
    let mut random = sender
        .send_rot(ch, n * sched.random_rots_per_position())
        .await?;
    let (mut rev_choice, mut rev_got) = if n_relu > 0 {
        ots.receiver()?.receive_rot(ch, n_relu, rng).await?
    } else {
        (Vec::new(), Vec::new())
    };
    tap.pairs("server/ot pairs (OT outputs)", &leaves);
    tap.pairs("server/ot pairs (OT outputs)", &random);
    tap.bits("server/ot reverse choices", &rev_choice);
    tap.blocks("server/ot reverse outputs", &rev_got);
    let mut rng2 = WipingRng::fork(rng);
    off_executor(move || {
        let m = ServerMaterial::new(
            &sched,
            relu,
            &leaves,
            &random,
            &rev_choice,
            &rev_got,
            &mut rng2,
        );
        leaves.zeroize();
        random.zeroize();
        rev_choice.zeroize();
        rev_got.zeroize();
        m
    })
    .await
}

/// The client's OTs of one activation layer for its share `b`; returns its
/// material.
pub(super) async fn client_activation<C: Channel>(
    ch: &mut C,
    ots: &mut SessionOts,
    plan: &SessionPlan,
    a: &pi_models::network::ActivationStep,
    b: &[u64],
    rng: &mut ChaCha20Rng,
    tap: &DigestTap,
) -> Result<ClientMaterial> {
    let sched = plan.ot.clone().ok_or_else(no_ot)?;
    let relu = kept(a);
    let (n, n_relu) = (relu.len(), relu.iter().filter(|&&r| r).count());
    let b = b.to_vec();
    let receiver = ots.receiver()?;
    let mut leaf_choices = sched.client_leaf_choices(&b);
    let leaves = receiver.receive_random(ch, &leaf_choices).await;
    leaf_choices.zeroize();
    let leaves = leaves?;
    let (choices, random) = receiver
        .receive_rot(ch, n * sched.random_rots_per_position(), rng)
        .await?;
    let rev_pairs = if n_relu > 0 {
        ots.sender()?.send_rot(ch, n_relu).await?
    } else {
        Vec::new()
    };
    tap.bits("client/ot choices", &choices);
    tap.blocks("client/ot outputs", &leaves);
    tap.blocks("client/ot outputs", &random);
    tap.pairs("client/ot reverse pairs", &rev_pairs);
    off_executor(move || {
        let (mut leaves, mut choices, mut random, mut rev_pairs) =
            (leaves, choices, random, rev_pairs);
        let m = ClientMaterial::new(&sched, relu, b, &leaves, &choices, &random, &rev_pairs);
        leaves.zeroize();
        choices.zeroize();
        random.zeroize();
        rev_pairs.zeroize();
        m
    })
    .await
}
