//! The input owner's side of private inference: connect to a `pi-server`
//! over TCP + TLS (pinning the private CA, presenting a client certificate),
//! run the session handshake (the architecture comes from the server; the
//! protocol checks the HE parameter digest and the client's size limits),
//! run one inference and report what it cost per phase and per layer.
//!
//! - [`read_input`]: a `.npy` float32 (C, H, W) file, checked (rank, finite
//!   values) before anything touches the network.
//! - [`run_inference`]: connect, handshake, check the input's shape against
//!   the announced network, infer, close. Progress per layer is reported
//!   through a callback, observed from the channel's metering labels
//!   (`offline/<layer>`, `online/<layer>`), so the protocol needs no hook.
//! - [`pool`]: a pool of preprocessed inferences filled in the background,
//!   serving a stream of requests over one session (used by `pi-bench load`).
//! - [`batch`]: many inputs in one session through a pool
//!   (`pi-client --input A.npy B.npy DIR`).
//! - [`cli`]: the `pi-client` command line; [`demo`]: the one-command demo;
//!   [`console`]: the progress bar, summary and JSON report both print.

use std::collections::HashMap;
use std::path::Path;

use pi_models::network::{Description, Network};
use pi_protocol::transport::pki::TlsIdentity;
use pi_protocol::transport::{Channel, ChannelConfig, Meter, TlsConnector};
use pi_protocol::{ClientConfig, ClientReport, ClientSession};

pub mod batch;
pub mod cli;
pub mod console;
pub mod demo;
pub mod pool;

/// Largest input file read (bytes).
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// Errors of the client library, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The local input (file, shape, values) is unusable; nothing or only
    /// the handshake was sent.
    #[error("bad input: {0}")]
    Input(String),
    /// The protocol, the transport or the server failed.
    #[error(transparent)]
    Protocol(#[from] pi_protocol::Error),
}

/// An input tensor as read from a file: values and shape, not yet normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct RawInput {
    /// Values in (C, H, W) order.
    pub data: Vec<f32>,
    /// (C, H, W), or (1, C, H, W).
    pub shape: Vec<usize>,
}

impl RawInput {
    /// Checks rank and values: (C, H, W) or (1, C, H, W), all finite.
    pub fn new(data: Vec<f32>, shape: Vec<usize>) -> Result<Self, ClientError> {
        let rank_ok = shape.len() == 3 || (shape.len() == 4 && shape[0] == 1);
        if !rank_ok {
            return Err(ClientError::Input(format!(
                "shape {shape:?}: expected a (C, H, W) float32 tensor"
            )));
        }
        if shape.iter().product::<usize>() != data.len() {
            return Err(ClientError::Input(format!(
                "shape {shape:?} does not match {} values",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(ClientError::Input(format!(
                "element {i} is {}: inputs must be finite",
                data[i]
            )));
        }
        Ok(Self { data, shape })
    }

    /// (C, H, W) without a batch axis.
    pub fn chw(&self) -> &[usize] {
        if self.shape.len() == 4 {
            &self.shape[1..]
        } else {
            &self.shape
        }
    }
}

/// Reads a `.npy` float32 input (at most [`MAX_INPUT_BYTES`], counted while
/// reading) and checks it ([`RawInput::new`]).
pub fn read_input(path: &Path) -> Result<RawInput, ClientError> {
    let bad = |e: String| ClientError::Input(format!("{}: {e}", path.display()));
    // Counts the bytes actually read: /dev/zero or a pipe stops at the cap.
    let bytes = pi_models::files::read_capped(path, MAX_INPUT_BYTES, "input")
        .map_err(|e| ClientError::Input(e.to_string()))?;
    let (data, shape) = pi_models::model::read_npy_f32(&bytes).map_err(bad)?;
    RawInput::new(data, shape).map_err(|e| match e {
        ClientError::Input(m) => bad(m),
        other => other,
    })
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Server address (`host:port`).
    pub addr: String,
    /// Name checked against the server certificate (a DNS name or an IP).
    pub server_name: String,
    /// The client's certificate, key and pinned CA.
    pub tls: TlsIdentity,
    /// Timeouts and buffers.
    pub channel: ChannelConfig,
    /// What the client accepts in the handshake (limits, a pinned network).
    pub session: ClientConfig,
}

/// The server-name part of `host:port` (without brackets for IPv6).
pub fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// What happened so far, for progress displays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The TLS and session handshakes are done; the network has `steps` steps.
    Connected {
        /// Canonical spec of the server's network.
        spec: String,
        /// Number of steps (linear layers, adds, activations).
        steps: usize,
    },
    /// A phase (`offline` or `online`) reached step `index` (0-based) named `name`.
    Step {
        /// `offline` or `online`.
        phase: String,
        /// Index of the step in network order.
        index: usize,
        /// The step's name.
        name: String,
    },
}

/// A channel that reports the layer the protocol is working on, observed
/// from its metering labels.
struct Watched<'a, C> {
    inner: C,
    steps: HashMap<String, usize>,
    on_progress: &'a mut (dyn FnMut(Progress) + Send),
}

impl<C: Channel> Channel for Watched<'_, C> {
    fn send(&mut self, frame: &[u8]) -> impl Future<Output = pi_protocol::Result<()>> + Send {
        self.inner.send(frame)
    }
    fn recv(&mut self, limit: usize) -> impl Future<Output = pi_protocol::Result<Vec<u8>>> + Send {
        self.inner.recv(limit)
    }
    fn recv_into(
        &mut self,
        buf: &mut [u8],
    ) -> impl Future<Output = pi_protocol::Result<()>> + Send {
        self.inner.recv_into(buf)
    }
    fn flush(&mut self) -> impl Future<Output = pi_protocol::Result<()>> + Send {
        self.inner.flush()
    }
    fn close(&mut self) -> impl Future<Output = pi_protocol::Result<()>> + Send {
        self.inner.close()
    }
    fn set_label(&mut self, label: &str) {
        if let Some((phase, name)) = label.split_once('/')
            && let Some(&index) = self.steps.get(name)
        {
            (self.on_progress)(Progress::Step {
                phase: phase.to_string(),
                index,
                name: name.to_string(),
            });
        }
        self.inner.set_label(label)
    }
    fn meter(&self) -> &Meter {
        self.inner.meter()
    }
}

/// The result of one private inference.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Canonical spec of the server's network.
    pub spec: String,
    /// The network as announced by the server.
    pub network: Description,
    /// The protocol's report (class, logits, costs per phase and per layer).
    pub report: ClientReport,
}

/// Connects, runs the handshake, checks and quantises `input` against the
/// announced network (closing the session politely if it does not fit, before
/// any inference request), runs one inference and closes.
pub async fn run_inference(
    opts: &ClientOptions,
    input: &RawInput,
    on_progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Outcome, ClientError> {
    let connector = TlsConnector::new(&opts.tls, opts.channel.clone())?;
    let ch = connector
        .connect(opts.addr.as_str(), &opts.server_name)
        .await?;
    let mut ch = Watched {
        inner: ch,
        steps: HashMap::new(),
        on_progress,
    };
    let mut session = ClientSession::handshake(&mut ch, &opts.session).await?;
    let network = session.architecture().network.clone();
    let net = Network::from_description(&network)
        .map_err(|e| pi_protocol::Error::malformed(format!("network description: {e}")))?;
    let spec = net.spec.canonical();
    ch.steps = net
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name().to_string(), i))
        .collect();
    (ch.on_progress)(Progress::Connected {
        spec: spec.clone(),
        steps: net.steps.len(),
    });
    let prepared = session
        .model()
        .prepare_input(input.data.clone(), &input.shape)
        .map_err(|e| ClientError::Input(format!("{e} (server model {spec})")))
        .and_then(|x| session.quantize_input(&x).map_err(ClientError::from));
    let x = match prepared {
        Ok(x) => x,
        Err(e) => {
            // Tell the server we are done; the input never leaves this process.
            let _ = session.close(&mut ch).await;
            let _ = ch.close().await;
            return Err(e);
        }
    };
    let report = session.infer(&mut ch, &x).await?;
    session.close(&mut ch).await?;
    // The server may hang up first once it has read our close.
    let _ = ch.close().await;
    Ok(Outcome {
        spec,
        network,
        report,
    })
}

/// Checks `input` against a locally known model (a spec or model file) before
/// connecting, and returns that network's description to pin in the handshake.
pub fn check_against_model(spec: &str, input: &RawInput) -> Result<Description, ClientError> {
    let model = pi_models::Model::resolve(spec)
        .map_err(|e| ClientError::Input(format!("model {spec}: {e}")))?;
    model
        .prepare_input(input.data.clone(), &input.shape)
        .map_err(|e| ClientError::Input(format!("{e} (model {spec})")))?;
    Ok(model.network.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_the_port_and_brackets() {
        assert_eq!(host_of("127.0.0.1:7000"), "127.0.0.1");
        assert_eq!(host_of("localhost:1"), "localhost");
        assert_eq!(host_of("[::1]:7000"), "::1");
        assert_eq!(host_of("example.org"), "example.org");
    }

    #[test]
    fn raw_input_checks_rank_length_and_values() {
        assert!(RawInput::new(vec![0.0; 12], vec![3, 2, 2]).is_ok());
        assert_eq!(
            RawInput::new(vec![0.0; 12], vec![1, 3, 2, 2])
                .unwrap()
                .chw(),
            &[3, 2, 2]
        );
        assert!(RawInput::new(vec![0.0; 12], vec![2, 3, 2, 1]).is_err());
        assert!(RawInput::new(vec![0.0; 12], vec![12]).is_err());
        assert!(RawInput::new(vec![0.0; 11], vec![3, 2, 2]).is_err());
        let mut v = vec![0.0; 12];
        v[5] = f32::INFINITY;
        let e = RawInput::new(v, vec![3, 2, 2]).unwrap_err();
        assert!(e.to_string().contains("element 5"), "{e}");
    }

    /// A device that never ends is refused at the cap, not read until memory runs out.
    #[cfg(unix)]
    #[test]
    fn endless_input_is_refused_at_the_cap() {
        let e = read_input(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(e, ClientError::Input(_)), "{e}");
        assert!(e.to_string().contains("limit"), "{e}");
    }
}
