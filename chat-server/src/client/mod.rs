//! The client side of the server topology: [`ServerTransport`] implements [`chat_core::Transport`].
//!
//! [`connect`] dials, shakes hands, logs in and waits for `Welcome` (or a refusal such as
//! `name_taken`), then spawns one task that owns the connection. The handle talks to that task
//! through bounded channels: requests in, events out. [`connect_with`] does the same over any
//! [`Dialer`] (TCP, the in-memory network of [`chat_transport::memory`], later TLS): the client is
//! generic over the byte stream.
//!
//! | module      | owns                                                                                |
//! |-------------|-------------------------------------------------------------------------------------|
//! | `session`   | [`session::Session`], the sans-IO core: login, request tickets, history reassembly, liveness |
//! | `task`      | the thin async shell: one `select!` that feeds the core and performs its outputs     |
//! | `transport` | [`ServerTransport`], the program's handle                                            |
//!
//! If the program stops reading events, the event queue fills, the task stops reading the socket,
//! and the server eventually disconnects this client as a slow consumer: memory stays bounded.

pub mod session;
mod task;
mod transport;

use std::io;
use std::time::Duration;

use chat_core::UserName;
use chat_transport::{Dialer, Role, TcpDialer, handshake};
use tokio::sync::mpsc;

pub use transport::ServerTransport;

use crate::ServerError;
use session::Session;
use task::Driver;

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
}

impl ClientConfig {
    /// Settings for `name` at `server` with the default timeout.
    pub fn new(server: impl Into<String>, name: UserName) -> Self {
        ClientConfig { server: server.into(), name, connect_timeout: DEFAULT_CONNECT_TIMEOUT }
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
        let mut stream = dial(&dialer, &config.server).await.map_err(|e| unreachable(e.to_string()))?;
        handshake(&mut stream, Role::Client).await?;
        let mut driver = Driver::new(stream, Session::new(config.name.clone()));
        let (name, online) = driver.login(&config.server).await?;
        Ok::<_, ServerError>((driver, name, online))
    };
    let (driver, name, online) = tokio::time::timeout(config.connect_timeout, login)
        .await
        .map_err(|_| unreachable(format!("no answer within {:?}", config.connect_timeout)))??;
    let (requests, request_rx) = mpsc::channel(REQUEST_QUEUE);
    let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(driver.run(request_rx, event_tx));
    Ok(ServerTransport::new(name, online, requests, events))
}

/// Resolves `server` and dials its addresses in turn; the last error if none answers.
async fn dial<D: Dialer>(dialer: &D, server: &str) -> io::Result<D::Stream> {
    let mut last = None;
    for addr in tokio::net::lookup_host(server).await? {
        match dialer.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any address")))
}
