//! A private certificate authority for mutual TLS: generation (rcgen), PEM
//! files on disk, and loaders that turn them into a [`TlsIdentity`].
//!
//! A key directory made by [`keygen`] holds one *bundle* (a directory,
//! mode 0700) per party, so each party is handed only what it needs:
//!
//! | bundle | files | who needs it |
//! |---|---|---|
//! | `ca/` | `ca.pem`, `ca.key` (the CA key: keep it offline) | whoever issues or revokes certificates; never the server at run time |
//! | `server/` | `ca.pem`, `server.pem` (SAN `localhost`, `127.0.0.1`, extra names), `server.key` | the server |
//! | `client-NAME/` | `ca.pem`, `client.pem` (subject `CN=NAME`), `client.key` | client NAME |
//!
//! Keys are ECDSA P-256, written 0600; certificates 0644. [`TlsFiles`]
//! takes either a bundle or the whole key directory. [`CertificateAuthority::revoke`]
//! writes a certificate revocation list that the server can load
//! ([`load_crls`]); [`certificate_subject`] names the client behind a
//! verified certificate (for logs, allowlists and per-client caps).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use zeroize::Zeroizing;

use crate::{Error, Result};

pub use rustls::pki_types::CertificateRevocationListDer;

/// Prefix of the subject common name of every CA made here. The full name
/// appends a fingerprint of the CA key, so that CAs of different deployments
/// have different names (a certificate from a foreign CA then fails as
/// "unknown issuer", not as a bad signature) and a reloaded CA key derives
/// the same name again.
pub const CA_COMMON_NAME: &str = "pi private inference CA";
/// Names every server certificate carries, so loopback tests and local
/// deployments work without extra flags.
pub const DEFAULT_SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];
/// Validity of the CA certificate.
const CA_VALIDITY_DAYS: i64 = 3650;
/// Validity of server and client certificates.
const LEAF_VALIDITY_DAYS: i64 = 825;
/// PEM files larger than this are rejected unread (certificates here are < 2 KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;

fn rcgen_err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::BadInput(format!("{what}: {e}"))
}

/// Validity window from one hour ago (clock skew) to `days` from now.
fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// The CA's parameters apart from the validity window. A function of the
/// key only, so a CA reloaded from its key issues under the same subject.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut p = CertificateParams::default();
    let fingerprint: String = p
        .key_identifier(key)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(
        DnType::CommonName,
        format!("{CA_COMMON_NAME} {fingerprint}"),
    );
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Checks a server name for a certificate or a connection: an IP address
/// or a DNS name (letters, digits, `-`, dots; no wildcards), at most 253
/// characters.
pub fn check_server_name(name: &str) -> Result<()> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() && name.len() <= 253 && trimmed.split('.').all(label_ok) {
        return Ok(());
    }
    Err(Error::BadInput(format!(
        "server name {name:?} is neither an IP address nor a DNS name \
         (labels of letters, digits and '-', separated by dots; no wildcards)"
    )))
}

/// Checks a client name used in file names and certificates.
fn check_client_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "client name {name:?} must be 1-64 characters of [A-Za-z0-9._-], not starting with '.'"
        )))
    }
}

/// A certificate and its private key as PEM text.
pub struct IssuedCert {
    /// The certificate (`CERTIFICATE` block).
    pub cert_pem: String,
    /// The PKCS#8 private key (`PRIVATE KEY` block); zeroized on drop.
    pub key_pem: Zeroizing<String>,
}

impl IssuedCert {
    /// Writes `STEM.pem` (0644) and `STEM.key` (0600) into `dir`; refuses to
    /// overwrite existing files.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<()> {
        write_new(
            &dir.join(format!("{stem}.pem")),
            self.cert_pem.as_bytes(),
            false,
        )?;
        write_new(
            &dir.join(format!("{stem}.key")),
            self.key_pem.as_bytes(),
            true,
        )
    }

    /// This certificate as a TLS identity trusting `ca`.
    pub fn identity(&self, ca: &CertificateAuthority) -> Result<TlsIdentity> {
        TlsIdentity::from_pem(
            ca.cert_pem().as_bytes(),
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
        )
    }
}

/// A private CA that issues the server and client certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert: IssuedCert,
}

impl CertificateAuthority {
    /// Makes a new CA with a fresh key.
    pub fn generate() -> Result<Self> {
        let key = KeyPair::generate().map_err(rcgen_err("CA key generation"))?;
        let mut params = ca_params(&key);
        validity(&mut params, CA_VALIDITY_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_err("CA certificate"))?;
        let key_pem = Zeroizing::new(key.serialize_pem());
        Ok(Self {
            issuer: Issuer::new(ca_params(&key), key),
            cert: IssuedCert {
                cert_pem: cert.pem(),
                key_pem,
            },
        })
    }

    /// Reloads a CA made by [`CertificateAuthority::generate`] from its PEM
    /// certificate and key, to issue more certificates later. Checks that
    /// the pair belongs together by issuing and verifying a probe certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(rcgen_err("CA key is not a valid PEM private key"))?;
        let ca = Self {
            issuer: Issuer::new(ca_params(&key), key),
            cert: IssuedCert {
                cert_pem: cert_pem.to_owned(),
                key_pem: Zeroizing::new(key_pem.to_owned()),
            },
        };
        let probe = ca.issue_client("probe")?;
        let id = probe.identity(&ca)?;
        let mut roots = rustls::RootCertStore::empty();
        for c in &id.ca_certs {
            roots
                .add(c.clone())
                .map_err(|e| Error::BadInput(format!("CA certificate: {e}")))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            super::tls_common::crypto_provider(),
        )
        .build()
        .map_err(|e| Error::BadInput(format!("CA certificate: {e}")))?;
        verifier.verify_client_cert(&id.cert_chain[0], &id.cert_chain[1..], UnixTime::now()).map_err(|e| {
            Error::BadInput(format!(
                "the CA key does not match the CA certificate (or the certificate was not made by this tool): {e}"
            ))
        })?;
        Ok(ca)
    }

    /// Reloads the CA from `dir/ca.pem` and `dir/ca.key`, where `dir` is the
    /// CA bundle or a key directory made by [`keygen`] (its `ca/`).
    pub fn load(dir: &Path) -> Result<Self> {
        let nested = dir.join("ca");
        let dir = if dir.join("ca.key").exists() || !nested.is_dir() {
            dir
        } else {
            nested.as_path()
        };
        let cert = read_pem_file(&dir.join("ca.pem"), "CA certificate")?;
        let key = read_pem_file(&dir.join("ca.key"), "CA key")?;
        let cert = String::from_utf8(cert.to_vec()).map_err(|_| {
            Error::BadInput(format!("{} is not PEM text", dir.join("ca.pem").display()))
        })?;
        let key = Zeroizing::new(String::from_utf8(key.to_vec()).map_err(|_| {
            Error::BadInput(format!("{} is not PEM text", dir.join("ca.key").display()))
        })?);
        Self::from_pem(&cert, &key)
    }

    /// The CA certificate as PEM (what clients pin and servers trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert.cert_pem
    }

    /// Writes `ca.pem` and `ca.key` (0600) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.cert.write(dir, "ca")
    }

    /// A certificate revocation list signed by this CA listing `certs` (PEM
    /// certificates) and every serial already in `previous` (a CRL of this
    /// CA, PEM), numbered one above it. Returns the CRL as PEM.
    pub fn revoke(&self, certs: &[String], previous: Option<&[u8]>) -> Result<String> {
        let mut serials: Vec<Vec<u8>> = Vec::new();
        let mut number = 0u64;
        if let Some(prev) = previous {
            let der = CertificateRevocationListDer::from_pem_slice(prev)
                .map_err(|e| Error::BadInput(format!("previous CRL: {e}")))?;
            let (_, crl) = x509_parser::parse_x509_crl(der.as_ref())
                .map_err(|e| Error::BadInput(format!("previous CRL: {e}")))?;
            number = crl
                .crl_number()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0);
            for r in crl.iter_revoked_certificates() {
                serials.push(r.raw_serial().to_vec());
            }
        }
        for pem in certs {
            let der = CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| Error::BadInput(format!("certificate to revoke: {e}")))?;
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
                .map_err(|e| Error::BadInput(format!("certificate to revoke: {e}")))?;
            let serial = cert.raw_serial().to_vec();
            if !serials.contains(&serial) {
                serials.push(serial);
            }
        }
        let now = time::OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(CA_VALIDITY_DAYS),
            crl_number: rcgen::SerialNumber::from(number.saturating_add(1)),
            issuing_distribution_point: None,
            revoked_certs: serials
                .into_iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(&s),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(rcgen_err("certificate revocation list"))?;
        crl.pem().map_err(rcgen_err("certificate revocation list"))
    }

    /// Issues a server certificate for `localhost`, `127.0.0.1` and
    /// `extra_names` (DNS names or IP addresses).
    pub fn issue_server(&self, extra_names: &[String]) -> Result<IssuedCert> {
        let mut names: Vec<String> = DEFAULT_SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        for n in extra_names {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let mut params = CertificateParams::new(names).map_err(rcgen_err("server name"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "pi server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, "server certificate")
    }

    /// Issues a client certificate with common name `name` (1-64 characters
    /// of `[A-Za-z0-9._-]`, so it can name a file).
    pub fn issue_client(&self, name: &str) -> Result<IssuedCert> {
        check_client_name(name)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, "client certificate")
    }

    fn issue(&self, mut params: CertificateParams, what: &str) -> Result<IssuedCert> {
        validity(&mut params, LEAF_VALIDITY_DAYS);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(rcgen_err("key generation"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err(what))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }
}

/// Makes a complete key directory of bundles (see the module docs): a new
/// CA in `ca/`, a server certificate (with `server_names` besides the
/// defaults) in `server/`, one client certificate per name in
/// `client-NAME/`. Creates the directories (0700) and refuses to overwrite
/// existing files. Returns the paths written.
pub fn keygen(dir: &Path, server_names: &[String], clients: &[String]) -> Result<Vec<PathBuf>> {
    for n in server_names {
        check_server_name(n)?;
    }
    for c in clients {
        check_client_name(c)?;
    }
    let ca = CertificateAuthority::generate()?;
    let server = ca.issue_server(server_names)?;
    let clients = clients
        .iter()
        .map(|c| Ok((c, ca.issue_client(c)?)))
        .collect::<Result<Vec<_>>>()?;
    create_private_dir(dir)?;
    let mut written = Vec::new();
    let mut bundle = |sub: &str, cert: &IssuedCert, stem: &str, with_ca: bool| -> Result<()> {
        let b = dir.join(sub);
        create_private_dir(&b)?;
        if with_ca {
            write_new(&b.join("ca.pem"), ca.cert_pem().as_bytes(), false)?;
            written.push(b.join("ca.pem"));
        }
        cert.write(&b, stem)?;
        written.push(b.join(format!("{stem}.pem")));
        written.push(b.join(format!("{stem}.key")));
        Ok(())
    };
    bundle("ca", &ca.cert, "ca", false)?;
    bundle("server", &server, "server", true)?;
    for (name, cert) in &clients {
        bundle(&format!("client-{name}"), cert, "client", true)?;
    }
    Ok(written)
}

/// The certificate revocation lists (PEM `X509 CRL` blocks, or one DER
/// CRL) in `path`, for [`super::TlsAcceptor::with_crls`].
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let bytes = read_pem_file(path, "certificate revocation list")?;
    let pem = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::BadInput(format!("{}: garbled PEM: {e}", path.display())))?;
    let crls = if pem.is_empty() {
        vec![CertificateRevocationListDer::from(bytes.to_vec())]
    } else {
        pem
    };
    for c in &crls {
        if x509_parser::parse_x509_crl(c.as_ref()).is_err() {
            return Err(Error::BadInput(format!(
                "{}: not a certificate revocation list",
                path.display()
            )));
        }
    }
    Ok(crls)
}

/// Who a certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSubject {
    /// The subject's common name (the client name of [`keygen`]); the whole
    /// subject if it has none.
    pub name: String,
    /// The whole subject, RFC 4514 style (`CN=1`).
    pub subject: String,
    /// The serial number, hex.
    pub serial: String,
}

/// Reads the subject and serial of a DER certificate (a verified peer's).
pub fn certificate_subject(der: &[u8]) -> Result<CertSubject> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::BadInput(format!("cannot parse the certificate: {e}")))?;
    let subject = super::peer_text(cert.subject().to_string().as_bytes(), 256);
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(|cn| super::peer_text(cn.as_bytes(), 256))
        .unwrap_or_else(|| subject.clone());
    Ok(CertSubject {
        name,
        subject,
        serial: hex(cert.raw_serial()),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The permission problem of a private key file, if any: readable or
/// writable by group or others (Unix).
pub fn key_permission_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            return Some(format!(
                "private key {} is accessible to group or others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

/// The paths of one party's TLS material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s) to trust (PEM).
    pub ca_cert: PathBuf,
    /// This party's certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// This party's private key (PEM, PKCS#8 or SEC1 or PKCS#1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The server's files: `dir` is a server bundle (holding `server.pem`)
    /// or a key directory made by [`keygen`] (its `server/` bundle).
    pub fn server(dir: &Path) -> Self {
        let b = if dir.join("server.pem").exists() {
            dir.to_path_buf()
        } else {
            dir.join("server")
        };
        Self {
            ca_cert: b.join("ca.pem"),
            cert: b.join("server.pem"),
            key: b.join("server.key"),
        }
    }

    /// Client `name`'s files: `dir` is a client bundle (holding
    /// `client.pem`; `name` is then ignored) or a key directory made by
    /// [`keygen`] (its `client-NAME/` bundle).
    pub fn client(dir: &Path, name: &str) -> Self {
        let b = if dir.join("client.pem").exists() {
            dir.to_path_buf()
        } else {
            dir.join(format!("client-{name}"))
        };
        Self {
            ca_cert: b.join("ca.pem"),
            cert: b.join("client.pem"),
            key: b.join("client.key"),
        }
    }

    /// Things the owner should fix: a private key readable by others, or
    /// the CA key lying next to this party's files.
    pub fn warnings(&self) -> Vec<String> {
        let mut w: Vec<String> = key_permission_warning(&self.key).into_iter().collect();
        if let Some(dir) = self.key.parent() {
            let ca_key = dir.join("ca.key");
            if ca_key.exists() {
                w.push(format!(
                    "{} lies next to this party's keys: only certificate issuing needs the CA key; keep it offline",
                    ca_key.display()
                ));
            }
        }
        w
    }

    /// Reads and parses the three files.
    pub fn load(&self) -> Result<TlsIdentity> {
        let ca = read_pem_file(&self.ca_cert, "CA certificate")?;
        let cert = read_pem_file(&self.cert, "certificate")?;
        let key = read_pem_file(&self.key, "private key")?;
        let ca_certs = parse_certs(&ca, &self.ca_cert.display().to_string())?;
        let cert_chain = parse_certs(&cert, &self.cert.display().to_string())?;
        let key = parse_key(&key, &self.key.display().to_string())?;
        Ok(TlsIdentity {
            ca_certs,
            cert_chain,
            key,
        })
    }
}

/// What one party needs for mutual TLS: the CA to trust, its own
/// certificate chain and private key.
#[derive(Debug)]
pub struct TlsIdentity {
    /// Trusted CA certificates (the client pins these; no web roots).
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// This party's certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// This party's private key (zeroized on drop).
    pub key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// Parses PEM text of the CA certificate(s), the certificate chain and the key.
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        Ok(Self {
            ca_certs: parse_certs(ca_pem, "CA certificate")?,
            cert_chain: parse_certs(cert_pem, "certificate")?,
            key: parse_key(key_pem, "private key")?,
        })
    }
}

impl Drop for TlsIdentity {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            ca_certs: self.ca_certs.clone(),
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn parse_certs(pem: &[u8], source: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::BadInput(format!("{source}: garbled PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::BadInput(format!(
            "{source}: no CERTIFICATE block found"
        )));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], source: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            Error::BadInput(format!("{source}: no PRIVATE KEY block found"))
        }
        e => Error::BadInput(format!("{source}: garbled PEM: {e}")),
    })
}

/// Reads a PEM file of at most [`MAX_PEM_BYTES`]; the buffer is zeroized on
/// drop because it may hold a key.
fn read_pem_file(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::BadInput(format!("cannot open {what} {}: {e}", path.display())))?;
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::BadInput(format!("cannot read {what} {}: {e}", path.display())))?;
    if buf.len() as u64 > MAX_PEM_BYTES {
        return Err(Error::BadInput(format!(
            "{what} {} is larger than {MAX_PEM_BYTES} bytes: not a PEM certificate or key",
            path.display()
        )));
    }
    Ok(buf)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| {
        Error::BadInput(format!(
            "cannot create key directory {}: {e}",
            dir.display()
        ))
    })
}

/// Creates `path` (which must not exist) with owner-only permissions for secrets.
fn write_new(path: &Path, contents: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, if secret { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::BadInput(format!("refusing to overwrite {}", path.display()))
        } else {
            Error::BadInput(format!("cannot create {}: {e}", path.display()))
        }
    })?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(Error::Io)
}
