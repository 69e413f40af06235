//! The async shell of the server: the accept loop, one reader and one writer task per connection, and
//! one owner task that drives the sans-IO [`Router`] and the [`Journal`].
//!
//! ```text
//!  accept ──► per connection: handshake ─► reader task ──(bounded inbound queue)──► owner task
//!                                          writer task ◄──(shared stream + bounded private queue)──┘
//!                                                                               Router + Journal
//! ```
//!
//! | module       | owns                                                                   |
//! |--------------|------------------------------------------------------------------------|
//! | `mod`        | [`Server`]: binding, the owner loop, accepting, shutdown                |
//! | `config`     | [`ServerConfig`]: the settings, their defaults, the router's settings   |
//! | `connection` | one connection: handshake, reader loop, its writer task, `busy` refusals |
//! | `gate`       | a connection reader's flow control: paused over the rate limit, bounded read-ahead |
//! | `owner`      | the owner's state: feeds the router, performs its outputs              |
//! | `text`       | one connection speaking seed 000's text protocol (`--text-listen`)     |
//! | `http`       | the web listener's HTTP side (`--web`): the page, the WebSocket upgrade |
//! | `web`        | one WebSocket connection of the web client                             |
//!
//! The shell is generic over where connections come from ([`Listener`]): TCP in production, an
//! in-memory network in tests. A second, optional listener ([`ServerConfig::text_listen`]) accepts
//! connections that speak the original Python project's text protocol ([`crate::text`]); they are
//! admitted, counted and routed like every other connection. A third ([`ServerConfig::web_listen`])
//! serves the web client ([`crate::web`]): its WebSockets are admitted the same way once upgraded.
//! Policies (fan-out, slow consumers, notice debouncing, shutdown) are
//! the router's (see [`crate::router`]); the byte paths are [`crate::fanout`]'s.
//!
//! **Journal**: the owner records what the router stores and writes it at the end of each turn (one
//! `write`); it stops reading clients while the journal has too much waiting for a sync. Its
//! `select!` also waits for the journal's sync thread (a sync completed: release what became
//! durable) and for the journal's 50 ms delivery-watermark tick. See [`crate::journal`].
//!
//! **Liveness**: a writer that has been idle for one heartbeat sends `Ping`; a reader that hears
//! nothing for three heartbeats ends the connection (`timeout`).
//!
//! **Shutdown**: the owner task checks the shutdown signal first on every turn; on shutdown it stops
//! accepting, the router ends every session (`Closing { shutting_down }` to every client, departures
//! journaled), the journal is closed (final watermarks, fsync) and writers get up to
//! [`SHUTDOWN_GRACE`] to flush. Readers linger meanwhile (up to `gate::LINGER`, discarding input) so
//! that closing does not reset connections whose clients are still sending: a reset would discard the
//! last answers (`storage_unavailable` for each send not made durable) before the client reads them.

mod accounts_file;
mod cluster;
mod config;
mod connection;
mod gate;
mod http;
mod owner;
mod text;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chat_transport::{Listener, sleep_until};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::ServerError;
use crate::journal::{Journal, JournalConfig, Synced};
use crate::router::{AuthMode, ConnId, Router, RouterState};
use accounts_file::AccountsFile;
use connection::{refuse, serve_connection, serve_tls};
use owner::Owner;
use text::{refuse_text, serve_text};
use web::{Upgraded, refuse_web, serve_web};

pub use crate::fanout::{KILL_GRACE, MAX_WRITE_BATCH};
pub use crate::router::{
    DEFAULT_BACKLOG, DEFAULT_GRACE, DEFAULT_LOGIN_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PENDING_PER_ADDR,
    DEFAULT_PRESENCE_LIMIT, NOTICE_DELAY,
};
pub use config::ServerConfig;
pub use http::{HEADER_TIMEOUT, HTTP_LIFETIME, MAX_HTTP_BUFFER};

/// Default listen address: loopback only. Use `--listen 0.0.0.0:7878` for LAN use.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Default frames queued per connection (unicasts, multicasts, replies) before it counts as a slow consumer.
pub const DEFAULT_OUTBOX: usize = 8192;
/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// Connections the kernel queues, fully opened, before the server accepts them (per listener; the
/// kernel caps it at `net.core.somaxconn`, 4096 on current Linux). A queue that is full drops the
/// client's last handshake packet, and that client waits for a retransmission (1 s, 3 s, 7 s…):
/// tokio's default of 1 024 overflowed in a storm of 3 000 connections at once.
pub const LISTEN_BACKLOG: u32 = 4096;
/// How long shutdown waits for writers to flush.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// TCP keepalive of text connections (they have no heartbeat): first probe after this much silence.
pub const TEXT_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// TCP keepalive of text connections: time between probes (three unanswered: the connection is dead).
pub const TEXT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// After a storage failure, the longest time sends still arriving are answered `storage_unavailable`
/// before the server closes its connections.
pub const REFUSAL_DRAIN: Duration = Duration::from_millis(500);
/// After a storage failure, the silence (no frame from any client) that ends the refusals early.
pub const REFUSAL_QUIET: Duration = Duration::from_millis(20);
/// Capacity of the queue from readers to the owner task.
const INBOUND_CAPACITY: usize = 8192;
/// WebSockets upgraded and waiting for the owner to admit them.
const UPGRADE_CAPACITY: usize = 64;
/// Most inputs handled in one owner turn before the stream is published and writers are woken.
const TURN_INPUTS: usize = 256;

/// Per-connection settings handed to the connection task.
#[derive(Debug, Clone, Copy)]
struct ConnSettings {
    heartbeat: Duration,
    outbox: usize,
}

/// A bound server, ready to [`Server::run`]. Generic over where connections come from: TCP by
/// default ([`Server::bind`]), any [`Listener`] with [`Server::with_listener`].
pub struct Server<L: Listener = TcpListener> {
    listener: L,
    /// Connections speaking the text protocol.
    text: Option<L>,
    /// The web client's HTTP listener.
    web: Option<TcpListener>,
    config: ServerConfig,
    journal: Option<Journal>,
    state: RouterState,
    /// Cluster mode: the connection to NATS.
    link: Option<crate::cluster::Link>,
}

impl Server<TcpListener> {
    /// Recovers the journal (if any) and binds the TCP listening socket at `config.listen` (and the
    /// text protocol's at `config.text_listen`, with TCP keepalive).
    pub async fn bind(config: ServerConfig) -> Result<Server<TcpListener>, ServerError> {
        check(&config)?;
        let link = match &config.cluster {
            Some(cluster) => Some(crate::cluster::connect(cluster, false).await?),
            None => None,
        };
        let (journal, state) = open_journal(&config)?;
        let listener = listen(config.listen)?;
        let text = match config.text_listen {
            Some(addr) => Some(bind_text(addr)?),
            None => None,
        };
        let web = match config.web_listen {
            Some(addr) => Some(listen(addr)?),
            None => None,
        };
        Ok(Server { listener, text, web, config, journal, state, link })
    }
}

impl<L: Listener> Server<L> {
    /// Recovers the journal (if any) and serves connections from `listener` (`config.listen` is
    /// ignored): an in-memory listener in tests.
    pub fn with_listener(listener: L, config: ServerConfig) -> Result<Server<L>, ServerError> {
        check(&config)?;
        if config.cluster.is_some() {
            let expected = "Server::bind: cluster mode connects to NATS while binding";
            return Err(ServerError::InvalidConfig { setting: "cluster", value: "with_listener".into(), expected });
        }
        let (journal, state) = open_journal(&config)?;
        Ok(Server { listener, text: None, web: None, config, journal, state, link: None })
    }

    /// Also serves the text protocol on connections from `text` (`config.text_listen` is ignored).
    pub fn with_text_listener(mut self, text: L) -> Self {
        self.text = Some(text);
        self
    }

    /// The address actually listened on (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.listener.local_addr()?)
    }

    /// The address the text protocol is served on, if it is.
    pub fn text_addr(&self) -> Result<Option<SocketAddr>, ServerError> {
        Ok(self.text.as_ref().map(Listener::local_addr).transpose()?)
    }

    /// The address the web client is served on, if it is.
    pub fn web_addr(&self) -> Result<Option<SocketAddr>, ServerError> {
        Ok(self.web.as_ref().map(TcpListener::local_addr).transpose()?)
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server { mut listener, mut text, web, config, journal, state, link } = self;
        if let Some(link) = link {
            return cluster::run(listener, text, web, config, link, shutdown).await;
        }
        let router = Router::new(config.router(), state);
        let mut synced = journal.as_ref().map(Journal::synced);
        let (inbound_tx, mut inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
        let tracker = TaskTracker::new();
        let mut accounts = AccountsFile::new(config.data_dir.clone());
        let mut router = router;
        if let Some(names) = accounts.refresh(now(), true) {
            router.handle(now(), crate::router::Input::Registered { names });
        }
        let mut owner = Owner::new(router, journal, accounts, inbound_tx.clone());
        let stream_reader = owner.stream.reader();
        let settings = ConnSettings { heartbeat: config.heartbeat, outbox: config.outbox_capacity };
        let (mut upgrades, http) = http::start(web, &config);
        let mut next_conn: ConnId = 0;
        let mut failure = None;
        tokio::pin!(shutdown);
        loop {
            let deadline = owner.router.poll_timeout().map(tokio::time::Instant::from_std);
            let journal_deadline = owner.journal_timeout().map(tokio::time::Instant::from_std);
            if let Some(reason) = owner.failure() {
                error!(%reason, "the journal stopped: refusing what is not durable and shutting down");
                owner.storage_failed(now(), reason.clone()).await?;
                failure = Some(reason);
                break;
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                upto = synced_changed(&mut synced) => match upto {
                    Some(upto) => owner.synced(now(), upto).await?,
                    None => owner.journal_stopped(),
                },
                // While the journal has too much waiting for a sync, input waits (back-pressure).
                Some(first) = inbound_rx.recv(), if owner.journal_has_room() => {
                    let now = now();
                    owner.apply(now, first).await?;
                    for _ in 0..TURN_INPUTS {
                        match inbound_rx.try_recv() {
                            Ok(more) => owner.apply(now, more).await?,
                            Err(_) => break,
                        }
                    }
                    owner.end_turn(now).await?;
                }
                () = sleep_until(deadline) => owner.timeout(now()).await?,
                () = sleep_until(journal_deadline) => owner.journal_tick(now()).await?,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    next_conn += 1;
                    let conn = next_conn;
                    if let Err((code, message)) = owner.accept(now(), conn, peer.ip()).await? {
                        debug!(conn, %peer, %message, "connection refused");
                        tracker.spawn(refuse(stream, code, message));
                        continue;
                    }
                    let inbound = inbound_tx.clone();
                    let writers = tracker.clone();
                    let reader = stream_reader.clone();
                    // One task per kind of connection: a task's memory is its largest state, and a
                    // plaintext connection must not pay for a TLS handshake's.
                    let ended = move |served: Result<(), ServerError>| {
                        if let Err(e) = served {
                            debug!(conn, %peer, error = %e, "connection ended");
                        }
                    };
                    let task = match config.tls.as_ref().map(|t| t.acceptor.clone()) {
                        Some(tls) => tracker.spawn(async move {
                            ended(serve_tls(conn, stream, tls, inbound, settings, writers, reader).await)
                        }),
                        None => tracker.spawn(async move {
                            ended(serve_connection(conn, stream, inbound, settings, writers, reader).await)
                        }),
                    };
                    owner.serving(conn, task.abort_handle());
                }
                accepted = accept_text(&mut text) => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            warn!(error = %e, "accept failed (text protocol)");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    next_conn += 1;
                    let conn = next_conn;
                    if let Err((_, message)) = owner.accept(now(), conn, peer.ip()).await? {
                        debug!(conn, %peer, %message, "text connection refused");
                        tracker.spawn(refuse_text(stream, message));
                        continue;
                    }
                    let (inbound, reader) = (inbound_tx.clone(), stream_reader.clone());
                    let task = tracker.spawn(serve_text(conn, stream, inbound, settings.outbox, reader));
                    owner.serving(conn, task.abort_handle());
                }
                Some(Upgraded { socket, peer }) = accept_web(&mut upgrades) => {
                    next_conn += 1;
                    let conn = next_conn;
                    if let Err((code, message)) = owner.accept(now(), conn, peer.ip()).await? {
                        debug!(conn, %peer, %message, "WebSocket refused");
                        tracker.spawn(refuse_web(socket, code, message));
                        continue;
                    }
                    let (inbound, reader) = (inbound_tx.clone(), stream_reader.clone());
                    let task = tracker.spawn(serve_web(conn, socket, inbound, settings, reader));
                    owner.serving(conn, task.abort_handle());
                }
            }
        }
        info!("shutting down");
        if failure.is_some() {
            // What clients had in flight is answered (every send: `storage_unavailable`) rather than
            // left unanswered: frames go on being read and applied until none arrives for
            // REFUSAL_QUIET, for at most REFUSAL_DRAIN.
            let end = tokio::time::Instant::now() + REFUSAL_DRAIN;
            while let Ok(Some(inbound)) =
                tokio::time::timeout_at(end.min(tokio::time::Instant::now() + REFUSAL_QUIET), inbound_rx.recv()).await
            {
                owner.apply(now(), inbound).await?;
                owner.end_turn(now()).await?;
            }
        }
        drop(listener);
        drop(text);
        drop(upgrades);
        if let Some(http) = http {
            http.abort();
        }
        let closed = owner.shutdown(now(), synced.as_mut()).await;
        drop(owner);
        tracker.close();
        drop(inbound_rx);
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
            warn!("some connections did not finish flushing in time");
        }
        match failure {
            Some(reason) => Err(ServerError::JournalStopped(reason)),
            None => closed,
        }
    }
}

/// What the journal's sync thread made durable next; `None` once it has stopped (pending forever
/// when there is no journal).
async fn synced_changed(synced: &mut Option<tokio::sync::watch::Receiver<Synced>>) -> Option<Synced> {
    match synced {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(*rx.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// The next connection of the text protocol's listener (pending forever if there is none).
async fn accept_text<L: Listener>(text: &mut Option<L>) -> std::io::Result<(L::Stream, SocketAddr)> {
    match text {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// The next WebSocket upgraded by the web listener (pending forever if there is none).
async fn accept_web(upgrades: &mut Option<mpsc::Receiver<Upgraded>>) -> Option<Upgraded> {
    match upgrades {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A listening socket at `addr` (address reuse as `TcpListener::bind`, backlog [`LISTEN_BACKLOG`]).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds the text protocol's listener; the connections it accepts inherit its TCP keepalive.
fn bind_text(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let listener = listen(addr)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(TEXT_KEEPALIVE_IDLE).with_interval(TEXT_KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos", target_os = "freebsd"))]
    let keepalive = keepalive.with_retries(3);
    socket2::SockRef::from(&listener).set_tcp_keepalive(&keepalive)?;
    Ok(listener)
}

/// The current time from tokio's clock (pausable in tests), as the router wants it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Settings that cannot work together.
fn check(config: &ServerConfig) -> Result<(), ServerError> {
    if let Some(addr) = config.text_listen
        && config.auth == AuthMode::Accounts
    {
        return Err(ServerError::InvalidConfig {
            setting: "text_listen",
            value: addr.to_string(),
            expected: "--auth open: the text protocol carries no credentials, so with accounts nobody could log in over it",
        });
    }
    // In cluster mode the accounts live in the shared log (see `crate::cluster::accounts`).
    if config.auth == AuthMode::Accounts && config.data_dir.is_none() && config.cluster.is_none() {
        return Err(ServerError::InvalidConfig {
            setting: "auth",
            value: "accounts".into(),
            expected: "a data directory (the accounts live there): drop --no-log",
        });
    }
    Ok(())
}

/// Opens and recovers the journal, if the configuration has a data directory.
fn open_journal(config: &ServerConfig) -> Result<(Option<Journal>, RouterState), ServerError> {
    let Some(dir) = config.data_dir.as_ref().filter(|_| config.cluster.is_none()) else {
        return Ok((None, RouterState::default()));
    };
    let router = config.router();
    let jc = JournalConfig {
        dir: dir.clone(),
        fsync: config.fsync,
        history: router.recent.messages.max(config.history),
        offline_per_user: router.offline.messages,
    };
    let (journal, recovered) = Journal::open(jc)?;
    if recovered.truncated_bytes > 0 {
        warn!(bytes = recovered.truncated_bytes, "journal had a torn tail; truncated");
    }
    let state = recovered.state;
    info!(
        data_dir = %dir.display(),
        records = recovered.records,
        last_seq = state.last_seq,
        rooms = state.memberships.len(),
        sessions_kept = state.sessions.len(),
        "journal recovered"
    );
    Ok((Some(journal), state))
}
