//! What every TLS user of the transport shares, below the channels: the
//! ALPN protocol name, the crypto provider and rustls errors in words.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::Error;

/// The ALPN protocol name: names the application protocol and its version.
pub const ALPN_PROTOCOL: &[u8] = b"pi/1";

/// The crypto provider used everywhere: `ring` (aws-lc-rs would need cmake).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Turns a rustls error into the crate error, naming the likely cause.
pub(crate) fn map_tls_error(e: &rustls::Error) -> Error {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::NoApplicationProtocol
        | rustls::Error::AlertReceived(A::NoApplicationProtocol) => Error::Incompatible(format!(
            "no common ALPN protocol: we speak {}",
            String::from_utf8_lossy(ALPN_PROTOCOL)
        )),
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            Error::Tls("the peer's certificate is not signed by our CA".into())
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked) => {
            Error::Tls("the peer's certificate has been revoked".into())
        }
        rustls::Error::InvalidCertificate(c) => Error::Tls(format!(
            "the peer's certificate was rejected: {}",
            cert_error(c)
        )),
        rustls::Error::NoCertificatesPresented => {
            Error::Tls("the peer presented no certificate".into())
        }
        rustls::Error::AlertReceived(
            a @ (A::BadCertificate
            | A::UnknownCA
            | A::CertificateRequired
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied),
        ) => Error::Tls(format!(
            "the peer rejected our certificate ({})",
            alert_text(*a)
        )),
        rustls::Error::AlertReceived(a) => Error::Tls(format!(
            "the peer ended the TLS handshake: {}",
            alert_text(*a)
        )),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            Error::Tls(
                "the peer does not speak TLS 1.3 (malformed or unexpected handshake message)"
                    .into(),
            )
        }
        rustls::Error::PeerIncompatible(_) => {
            Error::Tls("the peer offers no TLS 1.3 parameters we accept".into())
        }
        other => Error::Tls(other.to_string()),
    }
}

/// A certificate error as a phrase (rustls's Display of these is a Debug dump).
fn cert_error(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::BadEncoding => "it is not a well-formed certificate".into(),
        C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "it is not valid yet (check the clocks)".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "it is not valid for the server name asked for (see --server-name)".into()
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "it is not meant for this role (server/client)".into()
        }
        C::BadSignature => "its signature does not verify".into(),
        C::UnknownRevocationStatus => "its revocation status is unknown".into(),
        other => format!("{other}"),
    }
}

/// A TLS alert as words.
fn alert_text(a: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    match a {
        A::BadCertificate => "bad certificate".into(),
        A::UnknownCA => "certificate from an unknown CA".into(),
        A::CertificateRequired => "a client certificate is required".into(),
        A::CertificateUnknown => "certificate not accepted".into(),
        A::CertificateExpired => "certificate expired".into(),
        A::CertificateRevoked => "certificate revoked".into(),
        A::UnsupportedCertificate => "unsupported certificate".into(),
        A::AccessDenied => "access denied".into(),
        A::HandshakeFailure => "handshake failure".into(),
        A::ProtocolVersion => "unsupported protocol version".into(),
        A::DecryptError => "decryption error".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}
