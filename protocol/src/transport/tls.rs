//! TCP + TLS 1.3 with mutual authentication against a private CA.
//!
//! The client pins the CA (no web roots) and presents its certificate; the
//! server admits only clients whose certificate the CA signed
//! (`WebPkiClientVerifier`). Both sides offer only TLS 1.3 and only the ALPN
//! protocol [`ALPN_PROTOCOL`], so a peer of another protocol version fails at
//! the handshake with [`Error::Incompatible`]. After the handshake the
//! [`StreamChannel`] hello and framing run inside the TLS stream.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName};
use tokio::io::BufReader;
use tokio::net::{TcpStream, ToSocketAddrs};

use super::link::NetStream;
use super::pki::{CertificateAuthority, TlsIdentity};
use super::stream::{ChannelConfig, StreamChannel, map_io};
pub use super::tls_common::{ALPN_PROTOCOL, crypto_provider};
use crate::{Error, Result};

/// The TLS stream under a [`TlsChannel`]. rustls reads the socket 4 to 16 KiB
/// at a time; a read buffer below TLS turns that into one system call per
/// [`ChannelConfig::buffer_bytes`] (a few percent less CPU per byte in
/// loopback profiles, where AES-GCM and copies dominate).
pub type TlsStream = tokio_rustls::TlsStream<BufReader<NetStream>>;
/// A channel over TLS (either side).
pub type TlsChannel = StreamChannel<TlsStream>;
/// A channel over plain TCP (tests, trusted networks, benchmarks).
pub type TcpChannel = StreamChannel<NetStream>;

fn tls_err(what: &'static str) -> impl Fn(rustls::Error) -> Error {
    move |e| Error::Tls(format!("{what}: {e}"))
}

fn root_store(id: &TlsIdentity) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for c in &id.ca_certs {
        roots
            .add(c.clone())
            .map_err(|e| Error::BadInput(format!("CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// Client TLS configuration: TLS 1.3 only, trusts only `id.ca_certs`,
/// authenticates with `id`'s certificate, offers [`ALPN_PROTOCOL`].
pub fn client_config(id: &TlsIdentity) -> Result<rustls::ClientConfig> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("client protocol versions"))?
        .with_root_certificates(root_store(id)?)
        .with_client_auth_cert(id.cert_chain.clone(), id.key.clone_key())
        .map_err(tls_err("client certificate and key"))?;
    cfg.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    Ok(cfg)
}

/// Server TLS configuration: TLS 1.3 only, requires a client certificate
/// signed by `id.ca_certs`, accepts only [`ALPN_PROTOCOL`].
pub fn server_config(id: &TlsIdentity) -> Result<rustls::ServerConfig> {
    server_config_with_crls(id, Vec::new())
}

/// [`server_config`] that also refuses client certificates listed in
/// `crls` (revocation lists of our CA, see [`super::pki::load_crls`]).
pub fn server_config_with_crls(
    id: &TlsIdentity,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<rustls::ServerConfig> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(root_store(id)?),
        crypto_provider(),
    )
    .with_crls(crls)
    .build()
    .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("server protocol versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.cert_chain.clone(), id.key.clone_key())
        .map_err(tls_err("server certificate and key"))?;
    cfg.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    Ok(cfg)
}

fn check_alpn(negotiated: Option<&[u8]>) -> Result<()> {
    if negotiated == Some(ALPN_PROTOCOL) {
        return Ok(());
    }
    Err(Error::Incompatible(match negotiated {
        None => format!(
            "the peer negotiated no ALPN protocol; we require {}",
            String::from_utf8_lossy(ALPN_PROTOCOL)
        ),
        Some(p) => format!(
            "the peer negotiated ALPN protocol {:?}; we require {}",
            String::from_utf8_lossy(p),
            String::from_utf8_lossy(ALPN_PROTOCOL)
        ),
    }))
}

async fn timed<T>(
    limit: std::time::Duration,
    f: impl Future<Output = std::io::Result<T>>,
) -> Result<T> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| Error::Timeout(limit))?
        .map_err(map_io)
}

/// Connects to a server and returns an established [`TlsChannel`].
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    channel: ChannelConfig,
}

impl TlsConnector {
    /// A connector presenting `id` and trusting only `id.ca_certs`.
    pub fn new(id: &TlsIdentity, channel: ChannelConfig) -> Result<Self> {
        Ok(Self::from_config(client_config(id)?, channel))
    }

    /// A connector from a custom rustls configuration (tests, tuning).
    pub fn from_config(tls: rustls::ClientConfig, channel: ChannelConfig) -> Self {
        Self {
            inner: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            channel,
        }
    }

    /// Opens a TCP connection to `addr` and runs the TLS handshake (checking
    /// the server certificate against `server_name`) and the hello.
    pub async fn connect(&self, addr: impl ToSocketAddrs, server_name: &str) -> Result<TlsChannel> {
        let tcp = timed(self.channel.handshake_timeout, TcpStream::connect(addr)).await?;
        self.connect_stream(tcp, server_name).await
    }

    /// Runs the TLS handshake and the hello over an open TCP connection.
    pub async fn connect_stream(&self, tcp: TcpStream, server_name: &str) -> Result<TlsChannel> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| Error::BadInput(format!("server name {server_name:?}: {e}")))?;
        let tcp = NetStream::new(tcp, self.channel.link)?;
        let tcp = BufReader::with_capacity(self.channel.buffer(), tcp);
        let tls = timed(
            self.channel.handshake_timeout,
            self.inner.connect(name, tcp),
        )
        .await?;
        check_alpn(tls.get_ref().1.alpn_protocol())?;
        StreamChannel::establish(tls.into(), self.channel.clone()).await
    }
}

/// Accepts a client over an already accepted TCP connection.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    channel: ChannelConfig,
}

impl TlsAcceptor {
    /// An acceptor presenting `id` and requiring client certificates from `id.ca_certs`.
    pub fn new(id: &TlsIdentity, channel: ChannelConfig) -> Result<Self> {
        Ok(Self::from_config(server_config(id)?, channel))
    }

    /// An acceptor like [`Self::new`] that also refuses client certificates
    /// revoked by `crls`.
    pub fn with_crls(
        id: &TlsIdentity,
        crls: Vec<CertificateRevocationListDer<'static>>,
        channel: ChannelConfig,
    ) -> Result<Self> {
        Ok(Self::from_config(
            server_config_with_crls(id, crls)?,
            channel,
        ))
    }

    /// An acceptor from a custom rustls configuration (tests, tuning).
    pub fn from_config(tls: rustls::ServerConfig, channel: ChannelConfig) -> Self {
        Self {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            channel,
        }
    }

    /// Runs the TLS handshake and the hello over an accepted TCP connection.
    pub async fn accept(&self, tcp: TcpStream) -> Result<TlsChannel> {
        let tcp = NetStream::new(tcp, self.channel.link)?;
        let tcp = BufReader::with_capacity(self.channel.buffer(), tcp);
        let tls = timed(self.channel.handshake_timeout, self.inner.accept(tcp)).await?;
        check_alpn(tls.get_ref().1.alpn_protocol())?;
        StreamChannel::establish(tls.into(), self.channel.clone()).await
    }
}

impl TlsChannel {
    /// The peer's leaf certificate (on the server: the client's identity).
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.get_ref()
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
    }
}

/// Wraps an open TCP connection (no TLS) and exchanges hellos.
pub async fn tcp_channel(tcp: TcpStream, config: ChannelConfig) -> Result<TcpChannel> {
    let tcp = NetStream::new(tcp, config.link)?;
    StreamChannel::establish(tcp, config).await
}

/// Both ends of a TLS connection over loopback with a throwaway CA:
/// `(client, server)`. For tests and benchmarks of drivers.
pub async fn tls_loopback_pair(config: ChannelConfig) -> Result<(TlsChannel, TlsChannel)> {
    let ca = CertificateAuthority::generate()?;
    let server_id = ca.issue_server(&[])?.identity(&ca)?;
    let client_id = ca.issue_client("loopback")?.identity(&ca)?;
    let acceptor = TlsAcceptor::new(&server_id, config.clone())?;
    let connector = TlsConnector::new(&client_id, config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = async {
        let (tcp, _) = listener.accept().await?;
        acceptor.accept(tcp).await
    };
    let (client, server) = tokio::join!(connector.connect(addr, "localhost"), server);
    Ok((client?, server?))
}

/// Both ends of a plain TCP connection over loopback: `(client, server)`.
pub async fn tcp_loopback_pair(config: ChannelConfig) -> Result<(TcpChannel, TcpChannel)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = async {
        let (tcp, _) = listener.accept().await?;
        tcp_channel(tcp, config.clone()).await
    };
    let client = async { tcp_channel(TcpStream::connect(addr).await?, config.clone()).await };
    let (client, server) = tokio::join!(client, server);
    Ok((client?, server?))
}
