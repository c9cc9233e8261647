//! Typed control messages over any [`Channel`]: one bincode-encoded value
//! per frame, decoded under a size limit and rejected if bytes are left over.

use bincode::config::{self, Config};

use super::Channel;
use crate::{Error, Result};

/// Default size limit of a typed control message (1 MiB). Bulk data (tables,
/// ciphertexts) goes in raw frames; larger typed messages use the `_limited`
/// variants.
pub const MSG_LIMIT: usize = 1 << 20;

fn cfg<const LIMIT: usize>() -> impl Config {
    config::standard().with_limit::<LIMIT>()
}

/// Encodes `msg` with bincode (standard config) and sends it as one frame.
pub async fn send_msg<C: Channel + ?Sized, T: bincode::Encode>(ch: &mut C, msg: &T) -> Result<()> {
    send_msg_limited::<C, T, MSG_LIMIT>(ch, msg).await
}

/// Receives one frame of at most [`MSG_LIMIT`] bytes and decodes a `T`.
pub async fn recv_msg<C: Channel + ?Sized, T: bincode::Decode<()>>(ch: &mut C) -> Result<T> {
    recv_msg_limited::<C, T, MSG_LIMIT>(ch).await
}

/// [`send_msg`] with a message size limit of `LIMIT` bytes.
pub async fn send_msg_limited<C: Channel + ?Sized, T: bincode::Encode, const LIMIT: usize>(
    ch: &mut C,
    msg: &T,
) -> Result<()> {
    let bytes = bincode::encode_to_vec(msg, cfg::<LIMIT>()).map_err(|e| {
        Error::BadInput(format!("cannot encode {}: {e}", std::any::type_name::<T>()))
    })?;
    if bytes.len() > LIMIT {
        return Err(Error::BadInput(format!(
            "{} encodes to {} bytes, above the limit of {LIMIT}",
            std::any::type_name::<T>(),
            bytes.len()
        )));
    }
    ch.send(&bytes).await
}

/// [`recv_msg`] with a message size limit of `LIMIT` bytes (applied to the
/// frame and to every length bincode decodes, so no claimed size is
/// allocated beyond it).
pub async fn recv_msg_limited<C: Channel + ?Sized, T: bincode::Decode<()>, const LIMIT: usize>(
    ch: &mut C,
) -> Result<T> {
    let bytes = ch.recv(LIMIT).await?;
    decode_msg::<T, LIMIT>(&bytes)
}

/// Decodes one message, requiring that it uses every byte.
pub fn decode_msg<T: bincode::Decode<()>, const LIMIT: usize>(bytes: &[u8]) -> Result<T> {
    let name = std::any::type_name::<T>();
    let (value, used) = bincode::decode_from_slice(bytes, cfg::<LIMIT>())
        .map_err(|e| Error::malformed(format!("malformed {name} message: {e}")))?;
    if used != bytes.len() {
        return Err(Error::malformed(format!(
            "{name} message has {} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::memory_pair;

    #[derive(bincode::Encode, bincode::Decode, Debug, PartialEq)]
    struct Hello {
        version: u32,
        name: String,
        layers: Vec<u64>,
    }

    #[tokio::test]
    async fn typed_messages_round_trip() {
        let (mut a, mut b) = memory_pair();
        let m = Hello {
            version: 1,
            name: "resnet18".into(),
            layers: vec![1, 2, 3],
        };
        send_msg(&mut a, &m).await.unwrap();
        assert_eq!(recv_msg::<_, Hello>(&mut b).await.unwrap(), m);
    }

    #[tokio::test]
    async fn hostile_messages_are_peer_errors() {
        let (mut a, mut b) = memory_pair();
        // Trailing byte after a valid message.
        let mut bytes = bincode::encode_to_vec(7u32, config::standard()).unwrap();
        bytes.push(0);
        a.send(&bytes).await.unwrap();
        assert!(matches!(
            recv_msg::<_, u32>(&mut b).await,
            Err(Error::PeerMisbehaved(_))
        ));
        // A vector claiming 2^40 elements: rejected by the limit, not allocated.
        let claim = bincode::encode_to_vec(1u64 << 40, config::standard()).unwrap();
        a.send(&claim).await.unwrap();
        assert!(matches!(
            recv_msg::<_, Vec<u8>>(&mut b).await,
            Err(Error::PeerMisbehaved(_))
        ));
        // Garbage that is not a valid string.
        a.send(&[3, 0xff, 0xfe, 0xfd]).await.unwrap();
        assert!(matches!(
            recv_msg::<_, String>(&mut b).await,
            Err(Error::PeerMisbehaved(_))
        ));
        // A frame above the message limit is refused before decoding.
        a.send(&[0u8; 65]).await.unwrap();
        assert!(matches!(
            recv_msg_limited::<_, Vec<u8>, 64>(&mut b).await,
            Err(Error::PeerMisbehaved(_))
        ));
    }

    #[tokio::test]
    async fn oversized_local_message_is_bad_input() {
        let (mut a, _b) = memory_pair();
        let big = vec![1u8; 100];
        assert!(matches!(
            send_msg_limited::<_, _, 64>(&mut a, &big).await,
            Err(Error::BadInput(_))
        ));
    }
}
