//! What a load run talks to: one server (a child process here, or a remote
//! `pi-server`), the clients' TLS identities, and the inputs with their
//! oracle.

use anyhow::{Context, Result};
use pi_protocol::transport::{TlsChannel, TlsConnector};
use pi_protocol::{ClientConfig, ClientReport, ClientSession};

use crate::machine::{self, Cpu};

/// The server and the clients that load it.
pub(crate) struct Target {
    /// One connector (certificate) per client; the first also runs the
    /// unloaded measurements.
    pub connectors: Vec<TlsConnector>,
    /// Certificate names of the clients, for the report.
    pub names: Vec<String>,
    /// `host:port`.
    pub addr: String,
    /// Checked against the server certificate.
    pub server_name: String,
    /// What every session asks for and accepts: the activation protocol,
    /// the budgets and material directory (`--max-storage`, `--max-memory`,
    /// `--storage-dir`) and, with `--connect SPEC`, the network to insist on.
    pub config: ClientConfig,
    /// The server's process id when it runs on this machine as our child.
    pub server_pid: Option<u32>,
}

impl Target {
    /// A fresh connection and session of client `client`.
    pub async fn session(&self, client: usize) -> Result<(TlsChannel, ClientSession)> {
        let connector = &self.connectors[client];
        let mut ch = connector
            .connect(self.addr.as_str(), &self.server_name)
            .await
            .with_context(|| format!("connecting to the server at {}", self.addr))?;
        let session = ClientSession::handshake(&mut ch, &self.config)
            .await
            .context("session handshake")?;
        Ok((ch, session))
    }

    /// CPU time of (this process, the server process if local) so far.
    pub fn cpu(&self) -> (Option<Cpu>, Option<Cpu>) {
        (
            machine::self_cpu(),
            self.server_pid.and_then(machine::process_cpu),
        )
    }

    /// Starts a new peak of the local server's memory; whether it could.
    pub fn reset_server_peak(&self) -> bool {
        self.server_pid.is_some_and(machine::reset_peak_rss)
    }

    /// The local server's peak resident memory since the last reset.
    pub fn server_peak(&self) -> Option<u64> {
        self.server_pid.and_then(machine::peak_rss_bytes)
    }
}

/// Builds the connectors of `names` from a TLS directory (see
/// [`pi_protocol::transport::pki::TlsFiles::client`]).
pub(crate) fn connectors(
    tls: &std::path::Path,
    names: &[String],
    channel: &pi_protocol::transport::ChannelConfig,
) -> Result<Vec<TlsConnector>> {
    names
        .iter()
        .map(|name| {
            let files = pi_protocol::transport::pki::TlsFiles::client(tls, name);
            let id = files.load().with_context(|| {
                format!(
                    "cannot load client {name:?}'s certificate from {}",
                    files.cert.parent().unwrap_or(tls).display()
                )
            })?;
            Ok(TlsConnector::new(&id, channel.clone())?)
        })
        .collect()
}

/// Inputs (quantised) and, when the weights are known, their oracle logits.
pub(crate) struct Inputs {
    pub xs: Vec<Vec<u64>>,
    pub oracle: Option<Vec<Vec<i64>>>,
}

impl Inputs {
    /// Whether answer `r` to input `i` equals the oracle (`None`: no oracle).
    pub fn check(&self, i: usize, r: &ClientReport) -> Option<bool> {
        let o = self.oracle.as_ref()?;
        Some(r.logits_fixed == o[i % o.len()])
    }

    /// The input of request `i`.
    pub fn input(&self, i: usize) -> Vec<u64> {
        self.xs[i % self.xs.len()].clone()
    }
}
