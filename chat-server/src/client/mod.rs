//! The client side of the server topology: [`ServerTransport`] implements [`chat_core::Transport`].
//!
//! [`connect`] dials, shakes hands, logs in and waits for `Welcome` (or a refusal such as
//! `name_taken`), then spawns one task that owns the connection. The handle talks to that task
//! through bounded channels: requests in, events out. [`connect_with`] does the same over any
//! [`Dialer`] (TCP, the in-memory network of [`chat_transport::memory`]), with or without TLS: the
//! client is generic over the byte stream. `server` may list several addresses
//! (`a:7878,b:7878`): each is tried in turn, when connecting and when reconnecting.
//!
//! With [`ClientConfig::reconnect`] (the default), a lost connection is not the end: the task dials
//! again with backoff and resumes the session (see `session`), and the program sees
//! [`chat_core::Event::Reconnecting`] and [`chat_core::Event::Resumed`] events, nothing lost or
//! repeated.
//!
//! | module       | owns                                                                                |
//! |--------------|-------------------------------------------------------------------------------------|
//! | `session`    | [`session::Session`], the sans-IO core: login, request tickets, history reassembly, liveness, resuming |
//! | `session_io` | the core's requests, answers and outputs                                            |
//! | `reconnect`  | [`reconnect::Reconnect`], the backoff policy                                        |
//! | `task`       | the thin async shell: one `select!` that feeds the core and performs its outputs     |
//! | `transport`  | [`ServerTransport`], the program's handle                                            |
//!
//! If the program stops reading events, the event queue fills, the task stops reading the socket,
//! and the server eventually disconnects this client as a slow consumer: memory stays bounded.

pub mod reconnect;
pub mod session;
mod session_io;
mod task;
mod transport;

use std::io;
use std::time::Duration;

use chat_core::UserName;
use chat_transport::{Dialer, Role, TcpDialer, handshake};
use tokio::sync::mpsc;

pub use transport::ServerTransport;

use crate::ServerError;
use crate::protocol::Credential;
use crate::tls::{MaybeTls, TlsClient};
use reconnect::Reconnect;
use session::{Session, SessionConfig};
use task::{Dial, Dialing, Driver};

/// Events queued for the program before the connection task stops reading the socket.
pub const EVENT_QUEUE: usize = 4096;
/// Default time allowed to connect, shake hands and log in.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests queued from the handle to the connection task.
const REQUEST_QUEUE: usize = 64;

/// How to reach and log in to a server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server address, e.g. `127.0.0.1:7878`.
    pub server: String,
    /// The name to log in as.
    pub name: UserName,
    /// Time allowed to connect, shake hands and log in.
    pub connect_timeout: Duration,
    /// TLS, and what to trust (`None`: plaintext).
    pub tls: Option<TlsClient>,
    /// The account's password or token (`None`: an open login).
    pub credential: Option<Credential>,
    /// Not announced to others (one-shot commands, benchmarks).
    pub quiet: bool,
    /// Reconnect and resume after a lost connection (`None`: a loss ends the session).
    pub reconnect: Option<Reconnect>,
}

impl ClientConfig {
    /// Settings for `name` at `server` with the default timeout, plaintext, no credential.
    pub fn new(server: impl Into<String>, name: UserName) -> Self {
        ClientConfig {
            server: server.into(),
            name,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tls: None,
            credential: None,
            quiet: false,
            reconnect: Some(Reconnect::default()),
        }
    }
}

/// Connects over TCP, logs in and starts the session: [`connect_with`] and [`TcpDialer`].
///
/// Fails with [`ServerError::Unreachable`] if the server cannot be reached in time, and with
/// [`ServerError::Core`] holding [`chat_core::CoreError::Rejected`] if the login is refused
/// (`name_taken`, `busy`).
pub async fn connect(config: ClientConfig) -> Result<ServerTransport, ServerError> {
    connect_with(TcpDialer::default(), config).await
}

/// Connects through `dialer`, logs in and starts the session; errors as for [`connect`].
///
/// `config.server` is resolved (a host name or an IP address, with a port) and each address is
/// tried in turn until one answers, as `TcpStream::connect` does.
pub async fn connect_with<D: Dialer>(dialer: D, config: ClientConfig) -> Result<ServerTransport, ServerError> {
    let unreachable = |reason: String| ServerError::Unreachable { addr: config.server.clone(), reason };
    let login = async {
        let stream = open(&dialer, &config).await?;
        let session = Session::with(SessionConfig {
            name: config.name.clone(),
            credential: config.credential.clone(),
            quiet: config.quiet,
            reconnect: config.reconnect,
        });
        let (d, c) = (dialer.clone(), config.clone());
        let dialing: Dialing<_> = Box::new(move || {
            let (d, c) = (d.clone(), c.clone());
            let timeout = c.connect_timeout;
            let dial: Dial<_> = Box::pin(async move {
                tokio::time::timeout(timeout, open(&d, &c)).await.unwrap_or_else(|_| {
                    Err(ServerError::Unreachable {
                        addr: c.server.clone(),
                        reason: format!("no answer within {timeout:?}"),
                    })
                })
            });
            dial
        });
        let mut driver = Driver::new(stream, session, dialing);
        let logged_in = driver.login(&config.server).await?;
        Ok::<_, ServerError>((driver, logged_in))
    };
    let (driver, logged_in) = tokio::time::timeout(config.connect_timeout, login)
        .await
        .map_err(|_| unreachable(format!("no answer within {:?}", config.connect_timeout)))??;
    let (requests, request_rx) = mpsc::channel(REQUEST_QUEUE);
    let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(driver.run(request_rx, event_tx));
    Ok(ServerTransport::new(logged_in.name, logged_in.online, logged_in.rooms, requests, events))
}

/// A new stream to the server, ready for the login: dialed, TLS if configured, handshake done.
async fn open<D: Dialer>(dialer: &D, config: &ClientConfig) -> Result<MaybeTls<D::Stream>, ServerError> {
    let unreachable = |reason: String| ServerError::Unreachable { addr: config.server.clone(), reason };
    let (stream, addr, server) = dial(dialer, &config.server).await.map_err(|e| unreachable(e.to_string()))?;
    if !may_send_secret(config.credential.is_some(), config.tls.is_some(), addr) {
        return Err(ServerError::Tls(format!(
            "refusing to send a password or token in plaintext to {server}: connect with TLS (--tls)"
        )));
    }
    let mut stream = match &config.tls {
        None => MaybeTls::Plain(stream),
        Some(tls) => MaybeTls::Tls(Box::new(tls_connect(tls, &server, stream).await?)),
    };
    handshake(&mut stream, Role::Client).await.map_err(|e| plaintext_hint(e, config.tls.is_some(), &server))?;
    Ok(stream)
}

/// Resolves each of the comma-separated `servers` and dials their addresses in turn; the stream,
/// its address and the server it belongs to, or the last error if none answers.
async fn dial<D: Dialer>(dialer: &D, servers: &str) -> io::Result<(D::Stream, std::net::SocketAddr, String)> {
    let mut last = None;
    for server in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let addrs = match tokio::net::lookup_host(server).await {
            Ok(addrs) => addrs,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        for addr in addrs {
            match dialer.connect(addr).await {
                Ok(stream) => return Ok((stream, addr, server.to_string())),
                Err(e) => last = Some(e),
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any address")))
}

/// Whether a login may go to `addr`: a password or token goes in plaintext to a loopback address only.
fn may_send_secret(has_secret: bool, tls: bool, addr: std::net::SocketAddr) -> bool {
    !has_secret || tls || addr.ip().is_loopback()
}

/// The TLS handshake as a client of `server` (`host:port`).
async fn tls_connect<S: chat_transport::ByteStream>(
    tls: &TlsClient,
    server: &str,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, ServerError> {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    let (connector, first_use) = tls.connector(server)?;
    let name = crate::tls::server_name(host)?;
    let stream = connector.connect(name, stream).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("CHANGED") || text.contains("pinned") {
            ServerError::Tls(text)
        } else {
            ServerError::Tls(format!(
                "no TLS connection with {server} ({text}): is it a plaintext server? (then drop --tls)"
            ))
        }
    })?;
    if let Some(crate::tls::FirstUse::Remembered(fingerprint)) = first_use.lock().ok().and_then(|mut g| g.take()) {
        tracing::warn!(%server, %fingerprint, "trusting the server's certificate on first use");
    }
    Ok(stream)
}

/// A failed chat handshake, explained: without TLS, a TLS server closes at once after refusing.
fn plaintext_hint(e: chat_transport::TransportError, tls: bool, server: &str) -> ServerError {
    if tls {
        return e.into();
    }
    ServerError::Unreachable {
        addr: server.to_string(),
        reason: format!("{e} (if the server uses TLS, connect with --tls)"),
    }
}

#[cfg(test)]
mod tests {
    use super::may_send_secret;

    #[test]
    fn a_secret_never_goes_in_plaintext_beyond_loopback() {
        let lan = "192.168.1.20:7878".parse().unwrap();
        let local = "127.0.0.1:7878".parse().unwrap();
        let v6 = "[::1]:7878".parse().unwrap();
        assert!(!may_send_secret(true, false, lan));
        assert!(may_send_secret(true, true, lan));
        assert!(may_send_secret(true, false, local));
        assert!(may_send_secret(true, false, v6));
        assert!(may_send_secret(false, false, lan), "an open login has no secret to leak");
    }
}
