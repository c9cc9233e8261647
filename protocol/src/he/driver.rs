//! Thin drivers moving the HE messages over a [`Channel`]: the public key
//! once per session, then one upload and one reply per layer.
//!
//! The receive limits are the exact encoded sizes from the layer plan, so a
//! peer can never make us buffer more. The cryptographic work runs inline
//! (parallelised by rayon inside the core); callers on an async runtime should
//! drive these from a blocking-friendly task.

use rand::{CryptoRng, RngCore};

use super::{
    ClientUpload, HeClient, HeParams, HeServer, LayerPlan, PublicKeyMsg, ServerMask, ServerReply,
    UniformShare,
};
use crate::transport::{Channel, MAX_FRAME};
use crate::{Error, Result};

fn check_frame(len: usize) -> Result<()> {
    if len > MAX_FRAME {
        return Err(Error::BadInput(format!(
            "HE message of {len} bytes exceeds one frame: split the layer"
        )));
    }
    Ok(())
}

/// Client: sends the public key of `client` (once per session).
pub async fn client_setup<C: Channel, R: RngCore + CryptoRng>(
    ch: &mut C,
    client: &HeClient,
    rng: &mut R,
) -> Result<()> {
    ch.send(&client.public_key(rng).encode(&client.params()))
        .await?;
    ch.flush().await
}

/// Server: receives the client's public key.
pub async fn server_setup<C: Channel>(ch: &mut C, params: HeParams) -> Result<HeServer> {
    let bytes = ch.recv(PublicKeyMsg::encoded_len()).await?;
    HeServer::new(params, &PublicKeyMsg::decode(&bytes, &params)?)
}

/// Client: runs one layer and returns its share of W·c − s.
pub async fn client_layer<C: Channel, R: RngCore + CryptoRng>(
    ch: &mut C,
    client: &HeClient,
    plan: &LayerPlan,
    share: &UniformShare,
    rng: &mut R,
) -> Result<Vec<u64>> {
    check_frame(ClientUpload::encoded_len(plan).max(ServerReply::encoded_len(plan)))?;
    ch.send(&client.encrypt(plan, share, rng)?.encode(plan))
        .await?;
    ch.flush().await?;
    let bytes = ch.recv(ServerReply::encoded_len(plan)).await?;
    client.decrypt(plan, &ServerReply::decode(&bytes, plan)?)
}

/// Server: answers one layer with weights `weights`; returns the mask s it
/// drew (the client now holds W·c − s).
pub async fn server_layer<C: Channel, R: RngCore + CryptoRng>(
    ch: &mut C,
    server: &HeServer,
    plan: &LayerPlan,
    weights: &[i64],
    rng: &mut R,
) -> Result<ServerMask> {
    check_frame(ClientUpload::encoded_len(plan).max(ServerReply::encoded_len(plan)))?;
    let bytes = ch.recv(ClientUpload::encoded_len(plan)).await?;
    let upload = ClientUpload::decode(&bytes, plan)?;
    let (reply, mask) = server.evaluate(plan, weights, &upload, rng)?;
    ch.send(&reply.encode(plan)).await?;
    ch.flush().await?;
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::he::{ConvShape, LayerShape, linear_reference};
    use crate::transport::memory_pair;

    #[tokio::test]
    async fn both_roles_over_memory_duplex() {
        let params = HeParams::default();
        let shape = LayerShape::Conv(ConvShape {
            c_in: 3,
            c_out: 5,
            h: 6,
            w: 6,
            kernel: 3,
            stride: 2,
            pad: 1,
        });
        let plan = LayerPlan::new(params, shape).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let share = UniformShare::random(params, shape.input_len(), &mut rng);
        let weights: Vec<i64> = (0..shape.weight_len()).map(|i| i as i64 - 40).collect();
        let (mut a, mut b) = memory_pair();
        let client = HeClient::new(params, &mut rng);
        let mut crng = ChaCha20Rng::seed_from_u64(4);
        let mut srng = ChaCha20Rng::seed_from_u64(5);
        let (got, served) = tokio::join!(
            async {
                client_setup(&mut a, &client, &mut crng).await?;
                client_layer(&mut a, &client, &plan, &share, &mut crng).await
            },
            async {
                let server = server_setup(&mut b, params).await?;
                server_layer(&mut b, &server, &plan, &weights, &mut srng).await
            }
        );
        let mask = served.unwrap();
        assert_eq!(
            got.unwrap(),
            linear_reference(params, &shape, &weights, share.as_slice(), mask.as_slice())
        );
        let sent = a.meter().total("").sent;
        assert_eq!(
            sent as usize,
            PublicKeyMsg::encoded_len() + ClientUpload::encoded_len(&plan)
        );
    }

    #[tokio::test]
    async fn truncated_reply_is_peer_misbehaviour() {
        let params = HeParams::default();
        let shape = LayerShape::Conv(ConvShape {
            c_in: 2,
            c_out: 2,
            h: 4,
            w: 4,
            kernel: 1,
            stride: 1,
            pad: 0,
        });
        let plan = LayerPlan::new(params, shape).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let client = HeClient::new(params, &mut rng);
        let share = UniformShare::random(params, 32, &mut rng);
        let (mut a, mut b) = memory_pair();
        let (got, _) = tokio::join!(
            client_layer(&mut a, &client, &plan, &share, &mut rng),
            async {
                let _ = b.recv(usize::MAX).await;
                b.send(&[0u8; 100]).await
            }
        );
        assert!(matches!(got, Err(Error::PeerMisbehaved(_))), "{got:?}");
    }
}
