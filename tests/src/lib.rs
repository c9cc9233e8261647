//! Helpers for the end-to-end tests in `tests/tests/`: throwaway keys, small
//! models with their fixed-point oracle, a server running on loopback TCP +
//! TLS in this process, and channels that fail on purpose.
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
use pi_protocol::{ClientConfig, ServerModel};
use pi_server::{Listener, ServeConfig, ServeSummary};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
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
    use std::io::BufRead;
    let mut server = std::process::Command::new(exe)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
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
