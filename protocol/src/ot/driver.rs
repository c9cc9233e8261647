//! Async drivers: run the OT state machines over a [`Channel`].
//!
//! Each function is one party's side; the other party calls its counterpart
//! with the same batch size (`send_x` ↔ `receive_x`). Large batches are cut
//! into extensions of [`CHUNK`] OTs, so the working memory besides the output
//! stays bounded and the receiver's matrices stream while the sender works.
//! The crypto of every chunk runs on tokio's blocking pool, off the async
//! executor, so two parties joined in one task still use two cores.
//!
//! Messages, in order:
//! - setup: receiver → sender A (32 B); sender → receiver B_0..B_127 (4 KiB);
//! - per chunk of m OTs: receiver → sender U (16·⌈m/128⌉·128 B); for
//!   chosen-message OT, sender → receiver the masked pairs (32·m B), before
//!   the receiver sends the next chunk (strict alternation, so neither side
//!   can block on a full socket buffer while the other does the same).

use rand_core::CryptoRng;
use zeroize::Zeroize;

use super::base;
use super::iknp::{
    ChosenMsg, CorrelatedZeros, ExtendMsg, KAPPA, Receiver, ReceiverBatch, ReceiverSetup, Sender,
    SenderBatch, SoftMsg,
};
use crate::crypto::{Block, WipingRng};
use crate::exec::join;
pub(super) use crate::exec::off_executor;
use crate::transport::Channel;
use crate::{Error, Result};

/// OTs per extension message: U is 1 MiB, and so is each matrix in memory.
pub const CHUNK: usize = 1 << 16;

/// Starts CPU-heavy work on the blocking pool.
fn spawn_work<T, F>(f: F) -> tokio::task::JoinHandle<Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
}

/// `(start, len)` of each chunk of a batch of `n`.
fn chunks(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).step_by(CHUNK).map(move |s| (s, CHUNK.min(n - s)))
}

/// Sender setup: answers the receiver's base OT message. `delta` fixes the
/// correlation of correlated OTs (the garbler's free-XOR Δ); `None` draws it.
pub async fn setup_sender<C: Channel, R: CryptoRng + Send + ?Sized>(
    ch: &mut C,
    rng: &mut R,
    delta: Option<Block>,
) -> Result<Sender> {
    let mut rng = WipingRng::fork(rng);
    let bytes = ch.recv(base::POINT_BYTES).await?;
    let (sender, reply) = off_executor(move || {
        let a = base::SenderMsg::from_bytes(&bytes)?;
        match delta {
            Some(d) => Sender::with_delta(&mut rng, d, &a),
            None => Sender::new(&mut rng, &a),
        }
    })
    .await?;
    ch.send(&reply.to_bytes()).await?;
    ch.flush().await?;
    Ok(sender)
}

/// Receiver setup: one round trip of base OTs.
pub async fn setup_receiver<C: Channel, R: CryptoRng + Send + ?Sized>(
    ch: &mut C,
    rng: &mut R,
) -> Result<Receiver> {
    let mut rng = WipingRng::fork(rng);
    let (setup, a) = ReceiverSetup::new(&mut rng)?;
    ch.send(&a.to_bytes()).await?;
    ch.flush().await?;
    let mut bytes = vec![0u8; base::ReceiverMsg::byte_len(KAPPA)];
    ch.recv_into(&mut bytes).await?;
    off_executor(move || setup.finish(&base::ReceiverMsg::from_bytes(&bytes, KAPPA)?)).await
}

/// The sender's reusable buffers across chunks: the frame of U (public) and
/// the rows (secret: wiped on drop).
#[derive(Default)]
struct SenderBufs {
    frame: Vec<u8>,
    rows: Vec<Block>,
}

impl Drop for SenderBufs {
    fn drop(&mut self) {
        self.rows.zeroize();
    }
}

/// Receives U for the next `len` OTs into `bufs.frame` and runs `f` on the
/// sender's batch off the executor; `f` returns the row buffer for reuse.
async fn sender_chunk<C, T, F>(
    ch: &mut C,
    sender: &mut Sender,
    len: usize,
    bufs: &mut SenderBufs,
    f: F,
) -> Result<T>
where
    C: Channel,
    T: Send + 'static,
    F: FnOnce(SenderBatch) -> Result<(T, Vec<Block>)> + Send + 'static,
{
    let job = sender.begin(len)?;
    let mut frame = std::mem::take(&mut bufs.frame);
    frame.resize(ExtendMsg::byte_len(len), 0);
    ch.recv_into(&mut frame).await?;
    let rows = std::mem::take(&mut bufs.rows);
    let (out, frame, rows) = off_executor(move || {
        let msg = ExtendMsg::from_vec(frame, len)?;
        let batch = job.finish_with(&msg, rows)?;
        let (out, rows) = f(batch)?;
        Ok((out, msg.into_bytes(), rows))
    })
    .await?;
    bufs.frame = frame;
    bufs.rows = rows;
    Ok(out)
}

/// The receiver's reusable buffers across chunks: the frame of U (public)
/// and the rows (secret: wiped on drop).
#[derive(Default)]
struct ReceiverBufs {
    frame: Vec<u8>,
    rows: Vec<Block>,
}

impl Drop for ReceiverBufs {
    fn drop(&mut self) {
        self.rows.zeroize();
    }
}

/// Builds U for `choices` off the executor, sends it, and returns the batch.
async fn receiver_chunk<C: Channel>(
    ch: &mut C,
    receiver: &mut Receiver,
    choices: &[bool],
    bufs: &mut ReceiverBufs,
) -> Result<ReceiverBatch> {
    let job = receiver.begin(choices.len())?;
    let mut choices = choices.to_vec();
    let (rows, frame) = (
        std::mem::take(&mut bufs.rows),
        std::mem::take(&mut bufs.frame),
    );
    let (batch, msg) = off_executor(move || {
        let r = job.run_with(&choices, rows, frame);
        choices.zeroize();
        r
    })
    .await?;
    ch.send(msg.as_bytes()).await?;
    bufs.frame = msg.into_bytes();
    Ok(batch)
}

/// Correlated OT, sender side: returns m0_j (move-only, wiped on drop); the
/// receiver learns m0_j ⊕ r_j·Δ with Δ = [`Sender::delta`].
pub async fn send_correlated<C: Channel>(
    ch: &mut C,
    sender: &mut Sender,
    n: usize,
) -> Result<CorrelatedZeros> {
    // Capacity for all n up front: growing would free unwiped copies.
    let mut out = CorrelatedZeros {
        blocks: Vec::with_capacity(n),
    };
    let mut bufs = SenderBufs::default();
    for (_, len) in chunks(n) {
        let part = sender_chunk(ch, sender, len, &mut bufs, |b| {
            Ok((b.into_correlated(), Vec::new()))
        })
        .await?;
        bufs.rows = out.append(part);
    }
    Ok(out)
}

/// Correlated OT, receiver side: returns m0_j ⊕ choices[j]·Δ.
pub async fn receive_correlated<C: Channel>(
    ch: &mut C,
    receiver: &mut Receiver,
    choices: &[bool],
) -> Result<Vec<Block>> {
    let mut out = Vec::with_capacity(choices.len());
    let mut bufs = ReceiverBufs::default();
    for (start, len) in chunks(choices.len()) {
        let batch = receiver_chunk(ch, receiver, &choices[start..start + len], &mut bufs).await?;
        let mut rows = batch.into_correlated();
        out.extend_from_slice(&rows);
        rows.zeroize();
        bufs.rows = rows;
    }
    ch.flush().await?;
    Ok(out)
}

/// SoftSpoken correlated OT ([`super::iknp::SoftMsg`]: 2 bytes per OT
/// and 4 KiB, against IKNP's 16 bytes per OT), sender side: one message
/// for all `n` (at most [`super::iknp::MAX_BATCH`]); returns m0_j as
/// [`send_correlated`] does.
pub async fn send_correlated_soft<C: Channel>(
    ch: &mut C,
    sender: &mut Sender,
    n: usize,
) -> Result<CorrelatedZeros> {
    let job = sender.begin_soft(n)?;
    let frame = ch.recv(SoftMsg::byte_len(n)).await?;
    off_executor(move || Ok(job.finish(&SoftMsg::from_vec(frame, n)?)?.into_correlated())).await
}

/// SoftSpoken correlated OT, receiver side: returns m0_j ⊕ choices[j]·Δ.
pub async fn receive_correlated_soft<C: Channel, R: CryptoRng + Send + ?Sized>(
    ch: &mut C,
    receiver: &mut Receiver,
    choices: &[bool],
    rng: &mut R,
) -> Result<Vec<Block>> {
    let job = receiver.begin_soft(choices.len())?;
    let mut choices = choices.to_vec();
    let mut rng = WipingRng::fork(rng);
    let (batch, msg) = off_executor(move || {
        let r = job.run(&choices, &mut rng);
        choices.zeroize();
        r
    })
    .await?;
    ch.send(msg.as_bytes()).await?;
    ch.flush().await?;
    Ok(batch.into_correlated())
}

/// Random OT, sender side: returns n random pairs.
pub async fn send_random<C: Channel>(
    ch: &mut C,
    sender: &mut Sender,
    n: usize,
) -> Result<Vec<[Block; 2]>> {
    let mut out = Vec::with_capacity(n);
    let mut bufs = SenderBufs::default();
    for (_, len) in chunks(n) {
        // The output vector travels to the worker and back, so the hashes
        // land in place without a copy.
        let mut acc = std::mem::take(&mut out);
        out = sender_chunk(ch, sender, len, &mut bufs, move |b| {
            let rows = b.random_into(&mut acc);
            Ok((acc, rows))
        })
        .await?;
    }
    Ok(out)
}

/// Random OT, receiver side: returns message number choices[j] of pair j.
pub async fn receive_random<C: Channel>(
    ch: &mut C,
    receiver: &mut Receiver,
    choices: &[bool],
) -> Result<Vec<Block>> {
    let mut out = Vec::with_capacity(choices.len());
    let mut bufs = ReceiverBufs::default();
    for (start, len) in chunks(choices.len()) {
        let batch = receiver_chunk(ch, receiver, &choices[start..start + len], &mut bufs).await?;
        let mut rows = off_executor(move || Ok(batch.into_random())).await?;
        out.extend_from_slice(&rows);
        rows.zeroize();
        bufs.rows = rows;
    }
    ch.flush().await?;
    Ok(out)
}

/// Chosen-message OT, sender side: the receiver learns `msgs[j][choices[j]]`.
pub async fn send_chosen<C: Channel>(
    ch: &mut C,
    sender: &mut Sender,
    msgs: &[[Block; 2]],
) -> Result<()> {
    let mut bufs = SenderBufs::default();
    let mut reply = Vec::new();
    for (start, len) in chunks(msgs.len()) {
        let mut part = msgs[start..start + len].to_vec();
        let buf = std::mem::take(&mut reply);
        let y = sender_chunk(ch, sender, len, &mut bufs, move |b| {
            let r = b.chosen_with(&part, buf);
            part.zeroize();
            r
        })
        .await?;
        ch.send(y.as_bytes()).await?;
        ch.flush().await?;
        reply = y.into_bytes();
    }
    Ok(())
}

/// Chosen-message OT, receiver side: returns the chosen message of each pair.
///
/// Messages still alternate strictly, but the receiver's work overlaps the
/// sender's: U for chunk k + 1 is built while the sender masks chunk k, and
/// chunk k is unmasked while the sender masks chunk k + 1.
pub async fn receive_chosen<C: Channel>(
    ch: &mut C,
    receiver: &mut Receiver,
    choices: &[bool],
) -> Result<Vec<Block>> {
    let mut out = Vec::with_capacity(choices.len());
    let spans: Vec<(usize, usize)> = chunks(choices.len()).collect();
    let start_job = |receiver: &mut Receiver,
                     (start, len): (usize, usize),
                     rows: Vec<Block>,
                     frame: Vec<u8>| {
        let job = receiver.begin(len)?;
        let mut part = choices[start..start + len].to_vec();
        Ok::<_, Error>(spawn_work(move || {
            let r = job.run_with(&part, rows, frame);
            part.zeroize();
            r
        }))
    };
    let Some(&first) = spans.first() else {
        return Ok(out);
    };
    // Sends U of the job's chunk and starts the job of the chunk after it.
    let mut next = Some(start_job(receiver, first, Vec::new(), Vec::new())?);
    let mut spare_rows = Vec::new();
    let send_next = async |ch: &mut C,
                           receiver: &mut Receiver,
                           k: usize,
                           next: &mut Option<_>,
                           spare: Vec<Block>| {
        let handle = next.take().expect("a job is started for every chunk");
        let (batch, msg): (ReceiverBatch, ExtendMsg) = join(handle).await?;
        ch.send(msg.as_bytes()).await?;
        ch.flush().await?;
        if let Some(&span) = spans.get(k + 1) {
            *next = Some(start_job(receiver, span, spare, msg.into_bytes())?);
        }
        Ok::<_, Error>(batch)
    };
    let mut batch = send_next(ch, receiver, 0, &mut next, Vec::new()).await?;
    let mut reply = Vec::new();
    for (k, &(_, len)) in spans.iter().enumerate() {
        reply.resize(ChosenMsg::byte_len(len), 0);
        ch.recv_into(&mut reply).await?;
        let y = std::mem::take(&mut reply);
        let unmask = spawn_work(move || {
            let y = ChosenMsg::from_vec(y, len)?;
            Ok((batch.into_chosen(&y)?, y.into_bytes()))
        });
        let following = if k + 1 < spans.len() {
            Some(
                send_next(
                    ch,
                    receiver,
                    k + 1,
                    &mut next,
                    std::mem::take(&mut spare_rows),
                )
                .await?,
            )
        } else {
            None
        };
        let (mut rows, y) = join(unmask).await?;
        out.extend_from_slice(&rows);
        rows.zeroize();
        spare_rows = rows;
        reply = y;
        match following {
            Some(b) => batch = b,
            None => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{MemoryChannel, memory_pair};
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    async fn setup(
        seed: u64,
        delta: Option<Block>,
    ) -> (Sender, Receiver, MemoryChannel, MemoryChannel) {
        let (mut cs, mut cr) = memory_pair();
        let mut rs = ChaCha20Rng::seed_from_u64(seed);
        let mut rr = ChaCha20Rng::seed_from_u64(seed + 1000);
        let (s, r) = tokio::join!(
            setup_sender(&mut cs, &mut rs, delta),
            setup_receiver(&mut cr, &mut rr)
        );
        (s.unwrap(), r.unwrap(), cs, cr)
    }

    fn choices(seed: u64, n: usize) -> Vec<bool> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.next_u32() & 1 == 1).collect()
    }

    const SIZES: [usize; 7] = [1, 127, 128, 129, 1000, 70_000, 2 * CHUNK + 5];

    #[tokio::test]
    async fn correlated_over_memory_pair() {
        let delta = Block(0xdead_beef_0000_1111_2222_3333_4444_5555 | 1);
        let (mut s, mut r, mut cs, mut cr) = setup(1, Some(delta)).await;
        for n in SIZES {
            let c = choices(n as u64, n);
            let (m0, got) = tokio::join!(
                send_correlated(&mut cs, &mut s, n),
                receive_correlated(&mut cr, &mut r, &c)
            );
            let (m0, got) = (m0.unwrap(), got.unwrap());
            let m0 = m0.as_slice();
            assert_eq!((m0.len(), got.len()), (n, n));
            for j in 0..n {
                assert_eq!(got[j], m0[j] ^ delta.select(c[j]), "n = {n}, j = {j}");
                assert_ne!(got[j], m0[j] ^ delta.select(!c[j]));
            }
        }
        // U is 16 bytes per padded OT; setup is A + 128 points.
        let padded: usize = SIZES
            .iter()
            .map(|&n| chunks(n).map(|(_, l)| l.div_ceil(128) * 128).sum::<usize>())
            .sum();
        assert_eq!(cr.meter().total("").sent as usize, 32 + 16 * padded);
        assert_eq!(cs.meter().total("").sent as usize, 128 * 32);
    }

    #[tokio::test]
    async fn random_over_memory_pair() {
        let (mut s, mut r, mut cs, mut cr) = setup(2, None).await;
        for n in SIZES {
            let c = choices(n as u64 + 1, n);
            let (pairs, got) = tokio::join!(
                send_random(&mut cs, &mut s, n),
                receive_random(&mut cr, &mut r, &c)
            );
            let (pairs, got) = (pairs.unwrap(), got.unwrap());
            assert_eq!((pairs.len(), got.len()), (n, n));
            for j in 0..n {
                assert_eq!(got[j], pairs[j][c[j] as usize], "n = {n}, j = {j}");
                assert_ne!(got[j], pairs[j][!c[j] as usize]);
            }
        }
    }

    #[tokio::test]
    async fn chosen_over_memory_pair() {
        let (mut s, mut r, mut cs, mut cr) = setup(3, None).await;
        let mut rng = ChaCha20Rng::seed_from_u64(33);
        for n in SIZES {
            let c = choices(n as u64 + 2, n);
            let msgs: Vec<[Block; 2]> = (0..n)
                .map(|_| [Block::random(&mut rng), Block::random(&mut rng)])
                .collect();
            let (sent, got) = tokio::join!(
                send_chosen(&mut cs, &mut s, &msgs),
                receive_chosen(&mut cr, &mut r, &c)
            );
            sent.unwrap();
            let got = got.unwrap();
            assert_eq!(got.len(), n);
            for j in 0..n {
                assert_eq!(got[j], msgs[j][c[j] as usize], "n = {n}, j = {j}");
                assert_ne!(got[j], msgs[j][!c[j] as usize]);
            }
        }
    }

    #[tokio::test]
    async fn empty_batch_sends_nothing() {
        let (mut s, mut r, mut cs, mut cr) = setup(4, None).await;
        let before = cr.meter().total("").sent;
        let (a, b) = tokio::join!(
            send_random(&mut cs, &mut s, 0),
            receive_random(&mut cr, &mut r, &[])
        );
        assert!(a.unwrap().is_empty() && b.unwrap().is_empty());
        assert_eq!(cr.meter().total("").sent, before);
    }

    #[tokio::test]
    async fn short_or_bad_messages_are_peer_errors() {
        // A truncated extension message.
        let (mut s, _r, _cs, cr) = setup(5, None).await;
        let (mut cs2, mut cr2) = memory_pair();
        drop(cr);
        cr2.send(&vec![0u8; ExtendMsg::byte_len(1000) - 16])
            .await
            .unwrap();
        let err = send_correlated(&mut cs2, &mut s, 1000).await.unwrap_err();
        assert!(matches!(err, Error::PeerMisbehaved(_)), "{err}");

        // A base OT point that is not a valid encoding.
        let (mut cs, mut cr) = memory_pair();
        cr.send(&[0xff; 32]).await.unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let err = setup_sender(&mut cs, &mut rng, None).await.err().unwrap();
        assert!(matches!(err, Error::PeerMisbehaved(_)), "{err}");

        // A base OT reply of the wrong length, then a tampered one.
        for reply in [vec![0u8; 100], vec![0xffu8; 128 * 32]] {
            let (mut cs, mut cr) = memory_pair();
            let mut rng = ChaCha20Rng::seed_from_u64(7);
            let (r, _) = tokio::join!(setup_receiver(&mut cr, &mut rng), async {
                cs.recv(32).await.unwrap();
                cs.send(&reply).await.unwrap();
            });
            assert!(matches!(r.err().unwrap(), Error::PeerMisbehaved(_)));
        }

        // A short chosen-OT reply from the sender.
        let (_s, mut r, mut cs, mut cr) = setup(8, None).await;
        let c = choices(9, 300);
        let (got, _) = tokio::join!(receive_chosen(&mut cr, &mut r, &c), async {
            let mut u = vec![0u8; ExtendMsg::byte_len(300)];
            cs.recv_into(&mut u).await.unwrap();
            cs.send(&vec![0u8; ChosenMsg::byte_len(300) - 1])
                .await
                .unwrap();
        });
        assert!(matches!(got.err().unwrap(), Error::PeerMisbehaved(_)));
    }

    fn assert_send<T: Send>(_: &T) {}

    #[tokio::test]
    async fn driver_futures_are_send() {
        // Callers may `tokio::spawn` a party: every driver future must be Send.
        let (mut s, mut r, mut cs, mut cr) = setup(11, None).await;
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        assert_send(&setup_sender(&mut cs, &mut rng, None));
        assert_send(&setup_receiver(&mut cr, &mut rng));
        assert_send(&send_correlated(&mut cs, &mut s, 1));
        assert_send(&receive_correlated(&mut cr, &mut r, &[true]));
        assert_send(&send_random(&mut cs, &mut s, 1));
        assert_send(&receive_random(&mut cr, &mut r, &[true]));
        assert_send(&send_chosen(&mut cs, &mut s, &[[Block::ZERO; 2]]));
        assert_send(&receive_chosen(&mut cr, &mut r, &[true]));
        // A spawned pair of parties completes.
        let c = choices(13, 5000);
        let msgs: Vec<[Block; 2]> = (0..5000u128).map(|j| [Block(j), Block(!j)]).collect();
        let expect: Vec<Block> = msgs.iter().zip(&c).map(|(m, &b)| m[b as usize]).collect();
        let sender = tokio::spawn(async move { send_chosen(&mut cs, &mut s, &msgs).await });
        let receiver = tokio::spawn(async move { receive_chosen(&mut cr, &mut r, &c).await });
        sender.await.unwrap().unwrap();
        assert_eq!(receiver.await.unwrap().unwrap(), expect);
    }

    #[tokio::test]
    async fn a_closed_peer_is_reported() {
        let (mut s, _r, mut cs, cr) = setup(10, None).await;
        drop(cr);
        assert!(matches!(
            send_random(&mut cs, &mut s, 10).await,
            Err(Error::Closed)
        ));
    }
}
