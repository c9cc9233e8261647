//! Helpers for the end-to-end tests in `tests/tests/`: throwaway keys, small
//! models with their fixed-point oracle, a server running on loopback TCP +
//! TLS in this process, channels that fail on purpose, and a channel that
//! records what crosses the wire ([`Tap`]: frame digests and round trips).
//!
//! The bins `pi-test-client` and `pi-test-server` are the real command lines
//! (`pi_client::cli`, `pi_server::cli`), built here so that tests can run
//! them as processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pi_client::{ClientOptions, RawInput};
use pi_models::fixed::{QuantModel, forward_fixed};
use pi_models::weights::{init_weights, weights_from_bytes};
use pi_models::{Model, RingParams};
use pi_protocol::transport::pki::{CertificateAuthority, TlsFiles, TlsIdentity, keygen};
use pi_protocol::transport::{Channel, ChannelConfig, Meter};
use pi_protocol::{ClientConfig, ReluMode, ServerModel};
use pi_server::{Listener, ServeConfig, ServeSummary};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A small network for fast tests: m = 2, one block per stage, 8x8 input.
pub const TINY: &str = "2x2x2x(m=2,phi=1-1-1-1,classes=4,input=8,channels=1)";

/// The digits fixture directory.
pub fn digits_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures/digits")
}

/// A key directory made by `keygen` with client `1`.
pub struct Keys {
    /// The temporary directory (removed on drop); keys are in `dir/keys`.
    pub tmp: tempfile::TempDir,
}

impl Keys {
    /// Fresh CA, server and client certificates.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        keygen(&tmp.path().join("keys"), &[], &["1".into()]).expect("keygen");
        Self { tmp }
    }
    /// The key directory.
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("keys")
    }
    /// The server's identity.
    pub fn server(&self) -> TlsIdentity {
        TlsFiles::server(&self.dir()).load().expect("server keys")
    }
    /// Client 1's identity.
    pub fn client(&self) -> TlsIdentity {
        TlsFiles::client(&self.dir(), "1")
            .load()
            .expect("client keys")
    }
    /// A client that trusts our CA but holds a certificate from another CA.
    pub fn foreign_client(&self) -> TlsIdentity {
        let other = CertificateAuthority::generate().expect("CA");
        let foreign = other
            .issue_client("intruder")
            .expect("cert")
            .identity(&other)
            .expect("identity");
        TlsIdentity {
            ca_certs: self.client().ca_certs.clone(),
            cert_chain: foreign.cert_chain.clone(),
            key: foreign.key.clone_key(),
        }
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

/// A model as the server holds it, with what the oracle needs.
#[derive(Clone)]
pub struct TestModel {
    /// Network and normalisation.
    pub model: Model,
    /// Quantised weights (for the oracle).
    pub quant: QuantModel,
    /// What the server serves.
    pub server: ServerModel,
}

impl TestModel {
    /// A spec (or model file without weights) with seeded random weights.
    pub fn random(spec: &str, seed: u64) -> Self {
        let model = Model::resolve(spec).expect("spec");
        let folded = weights_from_bytes(
            &init_weights(&model.network, seed).expect("init"),
            &model.network,
        )
        .expect("weights");
        Self::from_folded(model, &folded)
    }

    /// The digits fixture model with its trained weights.
    pub fn digits() -> Self {
        Self::file(&digits_dir().join("model.toml"))
    }

    /// A model file with the weight file it names.
    pub fn file(path: &Path) -> Self {
        let model = Model::resolve(path.to_str().expect("utf-8")).expect("model file");
        let folded = model.load_weights(None).expect("the model file's weights");
        Self::from_folded(model, &folded)
    }

    fn from_folded(model: Model, folded: &pi_models::FoldedModel) -> Self {
        let quant = model
            .quantize(folded, RingParams::default())
            .expect("quantize");
        let server = ServerModel::from_model(&model, quant.clone()).expect("server model");
        Self {
            model,
            quant,
            server,
        }
    }

    /// The same model, its server allowing both ReLU modes (GC and OT).
    pub fn both_modes(mut self) -> Self {
        self.server = self
            .server
            .with_relu_modes(&[ReluMode::Gc, ReluMode::Ot])
            .expect("both ReLU modes");
        self
    }

    /// The (C, H, W) input shape.
    pub fn input_shape(&self) -> Vec<usize> {
        let s = self.model.network.tensors[self.model.network.input].shape;
        vec![s.c, s.h, s.w]
    }

    /// The fixed-point oracle's logits (signed, scale 2f) on a raw input.
    pub fn oracle(&self, raw: &RawInput) -> Vec<i64> {
        let x = self
            .model
            .prepare_input(raw.data.clone(), &raw.shape)
            .expect("input");
        let ring = self.quant.ring;
        let q = pi_models::fixed::quantize_input(&x, ring).expect("quantize input");
        forward_fixed(&self.model.network, &self.quant, &q)
            .iter()
            .map(|&v| ring.to_signed(v))
            .collect()
    }
}

/// A seeded random input in [-2, 2).
pub fn random_input(shape: &[usize], seed: u64) -> RawInput {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data = (0..n)
        .map(|_| (rng.next_u32() as f64 / u32::MAX as f64 * 4.0 - 2.0) as f32)
        .collect();
    RawInput::new(data, shape.to_vec()).expect("finite input")
}

/// Image `i` of the digits test set (`test_x.npy`, unnormalised (1, 16, 16)).
pub fn digits_image(i: usize) -> RawInput {
    let bytes = std::fs::read(digits_dir().join("test_x.npy")).expect("test_x.npy");
    let (xs, shape) = pi_models::model::read_npy_f32(&bytes).expect("npy");
    let per: usize = shape[1..].iter().product();
    RawInput::new(xs[i * per..(i + 1) * per].to_vec(), shape[1..].to_vec()).expect("image")
}

/// Writes a float32 `.npy` file (format 1.0, C order).
pub fn write_npy(path: &Path, data: &[f32], shape: &[usize]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).expect("write npy");
}

/// Starts the server command line `exe` (`pi-test-server`) with `args`
/// plus `--listen 127.0.0.1:0`, and reads its `listening on ADDR` line.
pub fn server_process(exe: &str, args: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::null());
    spawn_listening(cmd)
}

/// Spawns a server command (its own listen address, stdin and stderr as
/// the caller set them) with stdout piped, and returns the child with the
/// address of its first line, `listening on ADDR`.
pub fn spawn_listening(mut cmd: std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut server = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut first = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first line");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {first:?}"))
        .trim()
        .to_string();
    (server, addr)
}

/// A [`Listener`] running in this process on `127.0.0.1:0`.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<ServeSummary>,
}

impl RunningServer {
    /// Binds and starts serving `model`.
    pub async fn start(model: &TestModel, keys: &Keys, config: ServeConfig) -> Self {
        let listener = Listener::bind("127.0.0.1:0", model.server.clone(), &keys.server(), config)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(listener.run(async {
            let _ = rx.await;
        }));
        Self { addr, stop, task }
    }

    /// Stops accepting, lets sessions end (or cancels them after the grace
    /// period) and returns the counters.
    pub async fn stop(self) -> ServeSummary {
        let _ = self.stop.send(());
        self.task.await.expect("listener task")
    }
}

/// Serve configuration with `max_clients` and one timeout for everything.
pub fn serve_config(max_clients: usize, timeout: Duration) -> ServeConfig {
    ServeConfig {
        max_clients,
        channel: ChannelConfig::with_timeouts(timeout),
        grace: Duration::from_secs(5),
        ..ServeConfig::default()
    }
}

/// Client options for a server on `addr`.
pub fn client_options(addr: SocketAddr, tls: TlsIdentity) -> ClientOptions {
    ClientOptions {
        addr: addr.to_string(),
        server_name: "localhost".into(),
        tls,
        channel: ChannelConfig::with_timeouts(Duration::from_secs(60)),
        session: ClientConfig::default(),
    }
}

/// Client options for a server on `addr`, asking for ReLU mode `relu`.
pub fn client_options_in(addr: SocketAddr, tls: TlsIdentity, relu: ReluMode) -> ClientOptions {
    let mut o = client_options(addr, tls);
    o.session.relu = relu;
    o
}

/// Both ReLU modes, for tests that run in each.
pub const MODES: [ReluMode; 2] = [ReluMode::Gc, ReluMode::Ot];

/// What a [`Faulty`] channel does once its trigger is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Drops the connection (no TLS close) and fails.
    Disconnect,
    /// Never sends nor receives again.
    Stall,
    /// Waits this long before every further send: progress, but slow.
    Trickle(Duration),
}

/// A channel that misbehaves after `after` frames sent in the offline phase.
pub struct Faulty<C> {
    inner: Option<C>,
    fault: Fault,
    after: usize,
    offline: bool,
    sent: usize,
    meter: Meter,
}

impl<C: Channel> Faulty<C> {
    /// Wraps `inner`.
    pub fn new(inner: C, fault: Fault, after: usize) -> Self {
        let meter = inner.meter().clone();
        Self {
            inner: Some(inner),
            fault,
            after,
            offline: false,
            sent: 0,
            meter,
        }
    }

    async fn trip(&mut self) -> pi_protocol::Result<&mut C> {
        if self.offline && self.sent >= self.after {
            match self.fault {
                Fault::Disconnect => self.inner = None,
                Fault::Stall => std::future::pending::<()>().await,
                Fault::Trickle(d) => tokio::time::sleep(d).await,
            }
        }
        self.inner.as_mut().ok_or(pi_protocol::Error::Closed)
    }
}

impl<C: Channel> Channel for Faulty<C> {
    async fn send(&mut self, frame: &[u8]) -> pi_protocol::Result<()> {
        let ch = self.trip().await?;
        ch.send(frame).await?;
        if self.offline {
            self.sent += 1;
        }
        Ok(())
    }
    async fn recv(&mut self, limit: usize) -> pi_protocol::Result<Vec<u8>> {
        self.trip().await?.recv(limit).await
    }
    async fn recv_into(&mut self, buf: &mut [u8]) -> pi_protocol::Result<()> {
        self.trip().await?.recv_into(buf).await
    }
    async fn flush(&mut self) -> pi_protocol::Result<()> {
        self.trip().await?.flush().await
    }
    fn set_label(&mut self, label: &str) {
        self.offline = label.starts_with("offline/");
        if let Some(c) = self.inner.as_mut() {
            c.set_label(label)
        }
    }
    fn meter(&self) -> &Meter {
        self.inner.as_ref().map_or(&self.meter, |c| c.meter())
    }
}

/// Which way a frame crossed a [`Tap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// This endpoint sent it.
    Sent,
    /// This endpoint received it.
    Received,
}

/// One frame seen by a [`Tap`]: direction, the channel label at the time,
/// payload length and SHA-256 of the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapFrame {
    /// Sent or received.
    pub dir: Dir,
    /// The label the protocol set (`offline/conv1`, `online/relu`, ...).
    pub label: String,
    /// Payload bytes.
    pub len: usize,
    /// SHA-256 of the payload.
    pub digest: [u8; 32],
}

/// Turns of the conversation: maximal runs of frames in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Turns {
    /// Runs of consecutive sends.
    pub sending: u64,
    /// Runs of consecutive receives.
    pub receiving: u64,
    /// Changes of direction from one frame to the next.
    pub switches: u64,
}

impl Turns {
    /// Round trips measured on the wire: a party that opens and closes an
    /// exchange (sends first, receives last, or the reverse) has as many
    /// runs of sends as of receives, one of each per round trip; the larger
    /// of the two counts an exchange that ends on the party's own send.
    pub fn round_trips(&self) -> u64 {
        self.sending.max(self.receiving)
    }
}

/// A channel that records every frame that crosses it while recording is
/// on ([`Tap::start`]), without changing them: a measurement of what the
/// protocol really sent, to compare with what its report claims (round
/// trips) and to compare material between inferences and sessions (digests).
pub struct Tap<C> {
    inner: C,
    recording: bool,
    frames: Vec<TapFrame>,
}

impl<C: Channel> Tap<C> {
    /// Wraps `inner`, recording from the first frame on.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            recording: true,
            frames: Vec::new(),
        }
    }

    /// Forgets what was recorded and records from now on.
    pub fn start(&mut self) {
        self.frames.clear();
        self.recording = true;
    }

    /// Stops recording (the frames so far stay).
    pub fn stop(&mut self) {
        self.recording = false;
    }

    /// The frames recorded, in order.
    pub fn frames(&self) -> &[TapFrame] {
        &self.frames
    }

    /// Takes the frames recorded and starts afresh.
    pub fn take(&mut self) -> Vec<TapFrame> {
        std::mem::take(&mut self.frames)
    }

    /// Runs of sends and receives among the recorded frames.
    pub fn turns(&self) -> Turns {
        turns(&self.frames)
    }

    /// The wrapped channel.
    pub fn into_inner(self) -> C {
        self.inner
    }

    fn record(&mut self, dir: Dir, payload: &[u8]) {
        if self.recording {
            self.frames.push(TapFrame {
                dir,
                label: self.inner.meter().label().to_string(),
                len: payload.len(),
                digest: Sha256::digest(payload).into(),
            });
        }
    }
}

/// Runs of sends and receives in `frames`.
pub fn turns(frames: &[TapFrame]) -> Turns {
    let mut t = Turns::default();
    let mut last = None;
    for f in frames {
        if last != Some(f.dir) {
            match f.dir {
                Dir::Sent => t.sending += 1,
                Dir::Received => t.receiving += 1,
            }
            if last.is_some() {
                t.switches += 1;
            }
            last = Some(f.dir);
        }
    }
    t
}

/// Digests of the non-empty frames received under labels starting with
/// `prefix` (`offline/`: the peer's offline material on the wire).
pub fn received_digests(frames: &[TapFrame], prefix: &str) -> Vec<[u8; 32]> {
    frames
        .iter()
        .filter(|f| f.dir == Dir::Received && f.len > 0 && f.label.starts_with(prefix))
        .map(|f| f.digest)
        .collect()
}

impl<C: Channel> Channel for Tap<C> {
    async fn send(&mut self, frame: &[u8]) -> pi_protocol::Result<()> {
        self.inner.send(frame).await?;
        self.record(Dir::Sent, frame);
        Ok(())
    }
    async fn recv(&mut self, limit: usize) -> pi_protocol::Result<Vec<u8>> {
        let frame = self.inner.recv(limit).await?;
        self.record(Dir::Received, &frame);
        Ok(frame)
    }
    async fn recv_into(&mut self, buf: &mut [u8]) -> pi_protocol::Result<()> {
        self.inner.recv_into(buf).await?;
        self.record(Dir::Received, buf);
        Ok(())
    }
    async fn flush(&mut self) -> pi_protocol::Result<()> {
        self.inner.flush().await
    }
    async fn close(&mut self) -> pi_protocol::Result<()> {
        self.inner.close().await
    }
    async fn abort(&mut self, reason: &str) -> pi_protocol::Result<()> {
        self.inner.abort(reason).await
    }
    fn set_label(&mut self, label: &str) {
        self.inner.set_label(label)
    }
    fn meter(&self) -> &Meter {
        self.inner.meter()
    }
}
