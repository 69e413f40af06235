//! TLS for the generator's connections: one client configuration per run, shared by every
//! connection (as one deployment's clients share a trust anchor), trusting the server by a pinned
//! certificate fingerprint or a CA file, as `chat-cli --tls` does.
//!
//! ```text
//!  TcpStream::connect ─► set_nodelay ─► [LoadTls::connect: TLS handshake] ─► PubSub::open (chat handshake, login)
//! ```
//!
//! A connection is a [`Conn`]: plaintext or TLS. The tasks that read and write it dispatch once, on
//! the variant, to code generic over the stream, so a plaintext run runs exactly the code it ran
//! before TLS existed (a `TcpStream`, split without a lock).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use chat_server::tls::{MaybeTls, Trust};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// One connection of the generator: plaintext or TLS.
pub type Conn = MaybeTls<TcpStream>;

/// How the generator speaks TLS to the server of one run.
#[derive(Clone)]
pub struct LoadTls {
    /// Shared by every connection of the run (rustls keeps its session cache here).
    connector: TlsConnector,
    /// The name presented to and checked against the certificate: the server's IP address.
    name: ServerName<'static>,
}

impl fmt::Debug for LoadTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadTls").field("name", &self.name).finish_non_exhaustive()
    }
}

impl LoadTls {
    /// TLS to the server at `addr`, trusting what `trust` says: [`Trust::Pinned`] (the `SHA256:`
    /// fingerprint `serve --tls self-signed` prints) or [`Trust::Ca`]. Trust on first use is refused:
    /// it writes a file, once per connection of a load run.
    pub fn new(trust: Trust, addr: SocketAddr) -> io::Result<LoadTls> {
        if let Trust::FirstUse(_) = trust {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the load generator trusts a pinned fingerprint or a CA file, not on first use",
            ));
        }
        let client = chat_server::tls::TlsClient { trust };
        let (connector, _) = client.connector(&addr.to_string()).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(LoadTls { connector, name: ServerName::IpAddress(addr.ip().into()) })
    }

    /// The TLS handshake over `tcp`.
    pub(super) async fn connect(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await.map_err(|e| {
            io::Error::new(e.kind(), format!("TLS handshake with the server failed (is it serving TLS?): {e}"))
        })
    }
}

/// Connects to `addr`, with TLS if `tls` says so (no Nagle delay on the TCP socket either way).
pub async fn connect(addr: SocketAddr, tls: Option<&LoadTls>) -> io::Result<Conn> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(match tls {
        None => MaybeTls::Plain(tcp),
        Some(tls) => MaybeTls::Tls(Box::new(tls.connect(tcp).await?)),
    })
}
