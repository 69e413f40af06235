//! How a client trusts the server's certificate.
//!
//! | [`Trust`]          | `chat-cli` flag               | accepts                                                         |
//! |--------------------|-------------------------------|-----------------------------------------------------------------|
//! | `Ca(file)`         | `--tls --ca FILE`             | a chain to a certificate in FILE, for the server's name (webpki)  |
//! | `Pinned(f)`        | `--tls --tls-fingerprint SHA256:…` | exactly the certificate with that fingerprint              |
//! | `FirstUse(file)`   | `--tls` alone                 | the certificate remembered for this server in FILE; on the first connection, whatever it shows (remembered then); a *different* one is refused, loudly, as SSH does |
//!
//! The known-servers file has one line per server: `host:port SHA256:<hex>`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use super::{Fingerprint, provider};
use crate::ServerError;

/// Default name of the known-servers file (under the user's state directory, chosen by the CLI).
pub const KNOWN_SERVERS_FILE: &str = "known_servers";

/// What a client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Certificates that chain to one in this PEM file.
    Ca(PathBuf),
    /// Only this certificate.
    Pinned(Fingerprint),
    /// Trust on first use, remembered in this file.
    FirstUse(PathBuf),
}

/// A client's TLS settings: what it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClient {
    /// What it trusts.
    pub trust: Trust,
}

/// Where the verifier tells what trust on first use did, once the handshake is over.
pub type FirstUseSlot = Arc<Mutex<Option<FirstUse>>>;

/// What trust on first use did during a connection (for the program to tell its user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstUse {
    /// The server was unknown: its certificate is now remembered.
    Remembered(Fingerprint),
    /// The certificate is the one remembered.
    Known,
}

impl TlsClient {
    /// A connector for `server` (`host:port`, the key in the known-servers file) and, for trust on
    /// first use, a slot telling what happened once the handshake is over.
    pub fn connector(&self, server: &str) -> Result<(TlsConnector, FirstUseSlot), ServerError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        let outcome = Arc::new(Mutex::new(None));
        let config = match &self.trust {
            Trust::Ca(file) => {
                let mut roots = RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(file)
                    .map_err(|e| ServerError::Tls(format!("cannot read the CA file {}: {e}", file.display())))?;
                for cert in certs {
                    let cert = cert.map_err(|e| ServerError::Tls(format!("bad CA file {}: {e}", file.display())))?;
                    roots.add(cert).map_err(|e| ServerError::Tls(format!("bad CA certificate: {e}")))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Pinned(fingerprint) => {
                let verifier = Fingerprints { provider, check: Check::Pinned(*fingerprint) };
                builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
            }
            Trust::FirstUse(file) => {
                let check =
                    Check::FirstUse { file: file.clone(), server: server.to_string(), outcome: outcome.clone() };
                let verifier = Fingerprints { provider, check };
                builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
            }
        };
        Ok((TlsConnector::from(Arc::new(config)), outcome))
    }
}

/// The name to present to the server for `host` (an IP address or a DNS name).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, ServerError> {
    ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
        .map_err(|_| ServerError::Tls(format!("{host} is not a valid server name for TLS")))
}

#[derive(Debug)]
enum Check {
    Pinned(Fingerprint),
    FirstUse { file: PathBuf, server: String, outcome: FirstUseSlot },
}

/// A verifier that trusts certificates by fingerprint (the signature over the handshake is still
/// checked against the certificate's key, as always).
#[derive(Debug)]
struct Fingerprints {
    provider: Arc<CryptoProvider>,
    check: Check,
}

fn refused(message: String) -> Error {
    Error::General(message)
}

impl ServerCertVerifier for Fingerprints {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let shown = Fingerprint::of(end_entity);
        match &self.check {
            Check::Pinned(pinned) if *pinned == shown => Ok(ServerCertVerified::assertion()),
            Check::Pinned(pinned) => {
                Err(refused(format!("the server's certificate is {shown}, not the pinned {pinned}")))
            }
            Check::FirstUse { file, server, outcome } => {
                let known = remembered(file, server);
                match known {
                    Some(k) if k == shown => {
                        *outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(FirstUse::Known);
                        Ok(ServerCertVerified::assertion())
                    }
                    Some(k) => Err(refused(format!(
                        "WARNING: THE CERTIFICATE OF {server} HAS CHANGED: it was {k}, it is now {shown}. Someone may be \
                         intercepting the connection. If the server really has a new certificate, remove its line from {} \
                         and connect again.",
                        file.display()
                    ))),
                    None => {
                        remember(file, server, shown).map_err(|e| {
                            refused(format!("cannot remember the server's certificate in {}: {e}", file.display()))
                        })?;
                        *outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(FirstUse::Remembered(shown));
                        Ok(ServerCertVerified::assertion())
                    }
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The fingerprint remembered for `server` in `file`, if any.
fn remembered(file: &Path, server: &str) -> Option<Fingerprint> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let (host, fingerprint) = line.trim().split_once(char::is_whitespace)?;
        (host == server).then(|| fingerprint.trim().parse().ok()).flatten()
    })
}

/// Adds `server fingerprint` to `file` (created, with its folder, if missing).
fn remember(file: &Path, server: &str, fingerprint: Fingerprint) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(file)?;
    writeln!(f, "{server} {fingerprint}")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_servers_file_remembers_one_fingerprint_per_server() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state").join(KNOWN_SERVERS_FILE);
        assert_eq!(remembered(&file, "a:1"), None);
        let f1 = Fingerprint::of(b"one");
        let f2 = Fingerprint::of(b"two");
        remember(&file, "a:1", f1).unwrap();
        remember(&file, "b:2", f2).unwrap();
        assert_eq!(remembered(&file, "a:1"), Some(f1));
        assert_eq!(remembered(&file, "b:2"), Some(f2));
        assert_eq!(remembered(&file, "c:3"), None);
    }
}
