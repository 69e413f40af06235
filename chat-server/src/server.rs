//! The async shell of the server: accept loop, one reader and one writer task per connection, and
//! one owner task that drives the sans-IO [`Router`] and the [`Journal`].
//!
//! ```text
//!  accept ──► per connection: handshake ─► reader task ──(bounded inbound queue)──► owner task
//!                                          writer task ◄──(bounded outbox, Bytes)──┘ Router + Journal
//! ```
//!
//! **Fan-out**: a message is encoded once into a `Bytes` frame; each recipient's outbox gets a clone
//! (a reference count). Each writer drains its outbox into one buffer (up to [`MAX_WRITE_BATCH`]
//! bytes) and writes it with one `write_all`, so a busy connection writes many frames per syscall.
//!
//! **Slow consumers**: each connection's outbox holds at most `outbox_capacity` frames (default
//! [`DEFAULT_OUTBOX`]). If a frame cannot be queued because the outbox is full, that client is
//! disconnected with `slow_consumer`: its queue is dropped, a `Closing` frame is attempted for up to
//! [`KILL_GRACE`], and the socket is closed. Nobody else waits for it.
//!
//! **Liveness**: a writer that has been idle for one heartbeat sends `Ping`; a reader that hears
//! nothing for three heartbeats ends the connection (`timeout`).
//!
//! **Shutdown**: the owner task checks the shutdown signal first on every turn; on shutdown it stops
//! accepting, sends `Closing { shutting_down }` to every client, journals their departure, closes
//! the journal (final watermarks, fsync) and waits up to [`SHUTDOWN_GRACE`] for writers to flush.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chat_core::ErrorCode;
use chat_transport::{FrameReader, Role, TransportError, encode_frame, handshake};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::ServerError;
use crate::journal::{FsyncPolicy, Journal, JournalConfig, JournalInput};
use crate::protocol::{ClientFrame, ServerFrame};
use crate::router::{ConnId, Input, Output, Router, RouterConfig, RouterState};

/// Default listen address: loopback only. Use `--listen 0.0.0.0:7878` for LAN use.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Default frames queued per connection before it counts as a slow consumer.
pub const DEFAULT_OUTBOX: usize = 8192;
/// Default maximum number of simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// Most bytes a writer gathers into one `write_all`.
pub const MAX_WRITE_BATCH: usize = 256 * 1024;
/// How long a disconnected slow consumer gets to accept its `Closing` frame.
pub const KILL_GRACE: Duration = Duration::from_secs(1);
/// How long shutdown waits for writers to flush.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Capacity of the queue from readers to the owner task.
const INBOUND_CAPACITY: usize = 8192;
/// Time allowed for the protocol handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Where the journal lives; `None` runs without a persistent log.
    pub data_dir: Option<PathBuf>,
    /// When the journal syncs to disk.
    pub fsync: FsyncPolicy,
    /// Messages kept for history.
    pub history: usize,
    /// Heartbeat interval (silence for three is a dead connection).
    pub heartbeat: Duration,
    /// Most simultaneous connections; more are refused with `busy`.
    pub max_connections: usize,
    /// Frames queued per connection before it counts as a slow consumer.
    pub outbox_capacity: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            data_dir: Some(PathBuf::from("chat-data")),
            fsync: FsyncPolicy::default(),
            history: 1000,
            heartbeat: DEFAULT_HEARTBEAT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            outbox_capacity: DEFAULT_OUTBOX,
        }
    }
}

/// A frame queued for a connection: the encoded bytes and, for messages, the server sequence.
#[derive(Debug, Clone)]
struct OutFrame {
    bytes: Bytes,
    seq: u64,
}

/// What readers tell the owner task.
enum Inbound {
    Open { conn: ConnId, entry: ConnEntry },
    Frame { conn: ConnId, frame: ClientFrame },
    Closed { conn: ConnId, reason: String },
}

/// The owner task's handle on one connection.
struct ConnEntry {
    outbox: mpsc::Sender<OutFrame>,
    mark: Arc<AtomicU64>,
    kill: Option<oneshot::Sender<(ErrorCode, String)>>,
    reader: AbortHandle,
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
    journal: Option<Journal>,
    state: RouterState,
}

impl Server {
    /// Recovers the journal (if any) and binds the listening socket.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let (journal, state) = match &config.data_dir {
            Some(dir) => {
                let jc = JournalConfig { dir: dir.clone(), fsync: config.fsync, history: config.history };
                let (journal, recovered) = Journal::open(jc)?;
                if recovered.truncated_bytes > 0 {
                    warn!(bytes = recovered.truncated_bytes, "journal had a torn tail; truncated");
                }
                info!(last_seq = recovered.last_seq, records = recovered.records, "journal recovered");
                let state = RouterState {
                    last_seq: recovered.last_seq,
                    lamport: recovered.lamport,
                    history: recovered.history,
                };
                (Some(journal), state)
            }
            None => (None, RouterState::default()),
        };
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Server { listener, config, journal, state })
    }

    /// The address actually listened on (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server { listener, config, journal, state } = self;
        let router = Router::new(
            RouterConfig { history: config.history, heartbeat_ms: config.heartbeat.as_millis() as u64 },
            state,
        );
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
        let tracker = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(config.max_connections));
        let mut owner = Owner { router, journal, conns: HashMap::new(), kicked: Vec::new() };
        let mut next_conn: ConnId = 0;
        tokio::pin!(shutdown);
        let mut inbound_rx = inbound_rx;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(first) = inbound_rx.recv() => {
                    owner.apply(first).await?;
                    for _ in 0..256 {
                        match inbound_rx.try_recv() {
                            Ok(more) => owner.apply(more).await?,
                            Err(_) => break,
                        }
                    }
                }
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
                    let permit = limit.clone().try_acquire_owned().ok();
                    let inbound = inbound_tx.clone();
                    let settings = ConnSettings { heartbeat: config.heartbeat, outbox: config.outbox_capacity };
                    let writers = tracker.clone();
                    tracker.spawn(async move {
                        let _permit = permit.as_ref();
                        if permit.is_none() {
                            refuse_busy(stream).await;
                            return;
                        }
                        if let Err(e) = serve_connection(next_conn, stream, inbound, settings, writers).await {
                            debug!(conn = next_conn, %peer, error = %e, "connection ended");
                        }
                    });
                }
            }
        }
        info!("shutting down");
        drop(listener);
        owner.shutdown().await?;
        tracker.close();
        drop(inbound_rx);
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
            warn!("some connections did not finish flushing in time");
        }
        Ok(())
    }
}

/// Per-connection settings handed to the connection task.
#[derive(Debug, Clone, Copy)]
struct ConnSettings {
    heartbeat: Duration,
    outbox: usize,
}

async fn refuse_busy(mut stream: TcpStream) {
    let refuse = async {
        handshake(&mut stream, Role::Server).await?;
        let frame = encode_frame(&ServerFrame::Refused {
            code: ErrorCode::Busy,
            message: "the server is at its connection limit".into(),
        })?;
        stream.write_all(&frame).await?;
        Ok::<(), TransportError>(())
    };
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, refuse).await;
}

/// Handshake, then register with the owner and run the reader loop (the writer is its own task).
async fn serve_connection(
    conn: ConnId,
    mut stream: TcpStream,
    inbound: mpsc::Sender<Inbound>,
    settings: ConnSettings,
    tracker: TaskTracker,
) -> Result<(), ServerError> {
    stream.set_nodelay(true)?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream, Role::Server))
        .await
        .map_err(|_| ServerError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out")))??;
    let (read, write) = stream.into_split();
    let (outbox, rx) = mpsc::channel(settings.outbox);
    let (kill_tx, kill_rx) = oneshot::channel();
    let mark = Arc::new(AtomicU64::new(0));
    tracker.spawn(write_loop(write, rx, kill_rx, mark.clone(), settings.heartbeat));
    let reader = tokio::spawn(read_loop(conn, read, inbound.clone(), settings.heartbeat * 3));
    let entry = ConnEntry { outbox, mark, kill: Some(kill_tx), reader: reader.abort_handle() };
    if inbound.send(Inbound::Open { conn, entry }).await.is_err() {
        reader.abort();
    }
    let _ = reader.await;
    Ok(())
}

async fn read_loop(conn: ConnId, read: OwnedReadHalf, inbound: mpsc::Sender<Inbound>, idle: Duration) {
    let mut reader: FrameReader<_, ClientFrame> = FrameReader::new(read);
    let reason = loop {
        match tokio::time::timeout(idle, reader.read_frame()).await {
            Err(_) => break "timeout".to_string(),
            Ok(Ok(Some(ClientFrame::Leave))) => break "quit".to_string(),
            Ok(Ok(Some(frame))) => {
                if inbound.send(Inbound::Frame { conn, frame }).await.is_err() {
                    return;
                }
            }
            Ok(Ok(None)) => break "disconnected".to_string(),
            Ok(Err(e)) => {
                debug!(conn, error = %e, "read failed");
                break "disconnected".to_string();
            }
        }
    };
    let _ = inbound.send(Inbound::Closed { conn, reason }).await;
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<OutFrame>,
    mut kill: oneshot::Receiver<(ErrorCode, String)>,
    mark: Arc<AtomicU64>,
    heartbeat: Duration,
) {
    let ping = encode_frame(&ServerFrame::Ping).expect("ping encodes");
    let mut buf = BytesMut::new();
    // The kill switch is dropped (not fired) when the owner simply forgets the connection: then the
    // writer drains what is queued and closes.
    let mut kill_armed = true;
    loop {
        let first = tokio::select! {
            biased;
            killed = &mut kill, if kill_armed => {
                kill_armed = false;
                if let Ok((code, reason)) = killed {
                    rx.close();
                    if let Ok(frame) = encode_frame(&ServerFrame::Closing { code, reason }) {
                        let _ = tokio::time::timeout(KILL_GRACE, write.write_all(&frame)).await;
                    }
                    return;
                }
                continue;
            }
            next = rx.recv() => match next {
                Some(frame) => frame,
                None => break,
            },
            () = tokio::time::sleep(heartbeat) => OutFrame { bytes: ping.clone(), seq: 0 },
        };
        let mut last_seq = first.seq;
        buf.extend_from_slice(&first.bytes);
        while buf.len() < MAX_WRITE_BATCH {
            match rx.try_recv() {
                Ok(frame) => {
                    buf.extend_from_slice(&frame.bytes);
                    last_seq = last_seq.max(frame.seq);
                }
                Err(_) => break,
            }
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
        if last_seq > 0 {
            mark.fetch_max(last_seq, Ordering::Release);
        }
        buf.clear();
        if buf.capacity() > 64 * 1024 {
            buf = BytesMut::new();
        }
    }
    let _ = write.shutdown().await;
}

/// The owner task's state: the router, the journal and the connection table.
struct Owner {
    router: Router,
    journal: Option<Journal>,
    conns: HashMap<ConnId, ConnEntry>,
    kicked: Vec<ConnId>,
}

impl Owner {
    async fn apply(&mut self, inbound: Inbound) -> Result<(), ServerError> {
        match inbound {
            Inbound::Open { conn, entry } => {
                self.conns.insert(conn, entry);
            }
            Inbound::Frame { conn, frame } => match frame {
                ClientFrame::Login { name } => self.router.handle(Input::Login { conn, name }),
                ClientFrame::Send { req, recipients, body, sent_at } => {
                    self.router.handle(Input::Send { conn, req, recipients, body, sent_at })
                }
                ClientFrame::Peers { req } => self.router.handle(Input::Peers { conn, req }),
                ClientFrame::History { req, limit } => {
                    self.router.handle(Input::History { conn, req, limit: limit as usize })
                }
                ClientFrame::Ping => self.push(conn, &ServerFrame::Pong, 0),
                ClientFrame::Pong | ClientFrame::Leave => {}
            },
            Inbound::Closed { conn, reason } => {
                self.conns.remove(&conn);
                self.router.handle(Input::Disconnected { conn, reason });
            }
        }
        self.drain().await
    }

    /// Performs everything the router asked for, then disconnects slow consumers found meanwhile.
    async fn drain(&mut self) -> Result<(), ServerError> {
        loop {
            while let Some(output) = self.router.poll_output() {
                self.perform(output).await?;
            }
            if self.kicked.is_empty() {
                return Ok(());
            }
            for conn in std::mem::take(&mut self.kicked) {
                if let Some(mut entry) = self.conns.remove(&conn) {
                    warn!(conn, "slow consumer disconnected");
                    entry.reader.abort();
                    if let Some(kill) = entry.kill.take() {
                        let _ = kill.send((ErrorCode::SlowConsumer, "outgoing queue full: too slow".into()));
                    }
                    self.router.handle(Input::Disconnected { conn, reason: "slow_consumer".into() });
                }
            }
        }
    }

    async fn perform(&mut self, output: Output) -> Result<(), ServerError> {
        match output {
            Output::ToOne { conn, frame } => self.push(conn, &frame, 0),
            Output::Fanout { to, except, frame, seq } => {
                let bytes = encode_frame(&frame)?;
                for &conn in to.iter() {
                    if Some(conn) != except {
                        self.push_bytes(conn, bytes.clone(), seq);
                    }
                }
            }
            Output::Store(message) => self.journal(JournalInput::Store(message)).await?,
            Output::SessionStarted { conn, name, after } => {
                let Some(entry) = self.conns.get(&conn) else { return Ok(()) };
                entry.mark.store(after, Ordering::Release);
                let mark = entry.mark.clone();
                debug!(conn, %name, "logged in");
                self.journal(JournalInput::Join { name, after, mark }).await?;
            }
            Output::SessionEnded { conn, name, after, reason } => {
                debug!(conn, %name, %reason, "session ended");
                self.journal(JournalInput::Leave { name, after, reason }).await?;
            }
            Output::Close { conn } => {
                if let Some(entry) = self.conns.remove(&conn) {
                    entry.reader.abort();
                }
            }
        }
        Ok(())
    }

    async fn journal(&mut self, input: JournalInput) -> Result<(), ServerError> {
        match &self.journal {
            Some(journal) => journal.send(input).await,
            None => Ok(()),
        }
    }

    fn push(&mut self, conn: ConnId, frame: &ServerFrame, seq: u64) {
        match encode_frame(frame) {
            Ok(bytes) => self.push_bytes(conn, bytes, seq),
            Err(e) => warn!(conn, error = %e, "frame could not be encoded"),
        }
    }

    fn push_bytes(&mut self, conn: ConnId, bytes: Bytes, seq: u64) {
        let Some(entry) = self.conns.get(&conn) else { return };
        if entry.outbox.try_send(OutFrame { bytes, seq }).is_err() && !self.kicked.contains(&conn) {
            self.kicked.push(conn);
        }
    }

    async fn shutdown(&mut self) -> Result<(), ServerError> {
        let closing = encode_frame(&ServerFrame::Closing {
            code: ErrorCode::ShuttingDown,
            reason: "the server is shutting down".into(),
        })?;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.push_bytes(conn, closing.clone(), 0);
            if let Some(entry) = self.conns.remove(&conn) {
                entry.reader.abort();
            }
            self.router.handle(Input::Disconnected { conn, reason: "shutdown".into() });
        }
        // Departures are journaled; announcements to the others are moot (every queue is closing).
        while let Some(output) = self.router.poll_output() {
            if let Output::SessionEnded { name, after, reason, .. } = output {
                self.journal(JournalInput::Leave { name, after, reason }).await?;
            }
        }
        if let Some(journal) = self.journal.take() {
            journal.close().await?;
        }
        Ok(())
    }
}
