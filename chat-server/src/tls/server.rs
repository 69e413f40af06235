//! The server's certificate: from PEM files, or self-signed and kept in the data directory.
//!
//! `serve --tls self-signed` creates, on first start, a key and a certificate for `localhost`,
//! `127.0.0.1`, `::1` and the listening address in `DATA_DIR/tls/` (key mode 0600) and reuses them
//! afterwards, so clients that pinned or remembered its fingerprint keep trusting it.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use super::{Fingerprint, provider};
use crate::ServerError;

/// The folder of the self-signed certificate inside the data directory.
pub const TLS_DIR: &str = "tls";

/// A TLS acceptor and the fingerprint of the certificate it presents.
#[derive(Clone)]
pub struct TlsServer {
    /// Wraps accepted streams.
    pub acceptor: TlsAcceptor,
    /// The fingerprint of the server's certificate (the first of its chain).
    pub fingerprint: Fingerprint,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer").field("fingerprint", &self.fingerprint.to_string()).finish()
    }
}

fn tls_error(what: &str, path: &Path, e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(format!("cannot read the TLS {what} {}: {e}", path.display()))
}

impl TlsServer {
    /// A certificate chain and its private key, from PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<TlsServer, ServerError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| tls_error("certificate", cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| tls_error("certificate", cert, e))?;
        if chain.is_empty() {
            return Err(tls_error("certificate", cert, "no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error("key", key, e))?;
        TlsServer::new(chain, key)
    }

    /// The self-signed certificate of `data_dir`, created on first use for the names `localhost`,
    /// `127.0.0.1`, `::1` and `listen_ip`.
    pub fn self_signed(data_dir: &Path, listen_ip: IpAddr) -> Result<TlsServer, ServerError> {
        let dir = data_dir.join(TLS_DIR);
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if !cert.exists() || !key.exists() {
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
            if !listen_ip.is_unspecified() && !names.contains(&listen_ip.to_string()) {
                names.push(listen_ip.to_string());
            }
            let generated = rcgen::generate_simple_self_signed(names)
                .map_err(|e| ServerError::Tls(format!("cannot create a self-signed certificate: {e}")))?;
            std::fs::create_dir_all(&dir)?;
            write_private(&key, generated.key_pair.serialize_pem().as_bytes())?;
            std::fs::write(&cert, generated.cert.pem())?;
            tracing::info!(path = %cert.display(), "created a self-signed TLS certificate");
        }
        TlsServer::from_files(&cert, &key)
    }

    fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<TlsServer, ServerError> {
        let fingerprint = Fingerprint::of(&chain[0]);
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| ServerError::Tls(format!("the certificate and key do not go together: {e}")))?;
        Ok(TlsServer { acceptor: TlsAcceptor::from(Arc::new(config)), fingerprint })
    }

    /// The self-signed certificate's files in `data_dir` (certificate, key).
    pub fn self_signed_files(data_dir: &Path) -> (PathBuf, PathBuf) {
        let dir = data_dir.join(TLS_DIR);
        (dir.join("cert.pem"), dir.join("key.pem"))
    }
}

/// Writes a file readable by this user only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = TlsServer::self_signed(dir.path(), IpAddr::from([127, 0, 0, 1])).unwrap();
        let again = TlsServer::self_signed(dir.path(), IpAddr::from([127, 0, 0, 1])).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint, "the same certificate on every start");
        let (cert, key) = TlsServer::self_signed_files(dir.path());
        let from_files = TlsServer::from_files(&cert, &key).unwrap();
        assert_eq!(from_files.fingerprint, first.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn unreadable_files_say_which_one() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = TlsServer::from_files(&missing, &missing).unwrap_err().to_string();
        assert!(err.contains("certificate") && err.contains("nope.pem"), "{err}");
    }
}
