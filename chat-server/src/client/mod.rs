//! The client side of the server topology: [`ServerTransport`] implements [`chat_core::Transport`].
//!
//! [`connect`] dials, shakes hands, logs in and waits for `Welcome` (or a refusal such as
//! `name_taken`), then spawns one task that owns the connection. The handle talks to that task
//! through bounded channels: requests in, events out.
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

use std::time::Duration;

use chat_core::UserName;
use chat_transport::{Role, handshake};
use tokio::net::TcpStream;
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

/// Connects, logs in and starts the session.
///
/// Fails with [`ServerError::Unreachable`] if the server cannot be reached in time, and with
/// [`ServerError::Core`] holding [`chat_core::CoreError::Rejected`] if the login is refused
/// (`name_taken`, `busy`).
pub async fn connect(config: ClientConfig) -> Result<ServerTransport, ServerError> {
    let unreachable = |reason: String| ServerError::Unreachable { addr: config.server.clone(), reason };
    let login = async {
        let mut stream = TcpStream::connect(&config.server).await.map_err(|e| unreachable(e.to_string()))?;
        stream.set_nodelay(true)?;
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
