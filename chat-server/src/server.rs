//! The async shell of the server: accept loop, one reader and one writer task per connection, and
//! one owner task that drives the sans-IO [`Router`] and the [`Journal`].
//!
//! ```text
//!  accept ──► per connection: handshake ─► reader task ──(bounded inbound queue)──► owner task
//!                                          writer task ◄──(bounded outbox, Bytes)──┘ Router + Journal
//! ```
//!
//! **Fan-out** (see [`crate::outbox`]): a broadcast is encoded once and appended to a shared stream;
//! at the end of each owner turn the stream is sealed and every writer copies nothing: it writes
//! reference-counted slices of the shared chunks with vectored writes. Unicasts, multicasts and
//! replies go through a bounded per-connection queue, merged in server order by the writer.
//!
//! **Slow consumers**: a client is disconnected with `slow_consumer` when its private queue
//! (`outbox_capacity` frames, default [`DEFAULT_OUTBOX`]) is full, or when it lags the shared stream
//! by more than `backlog_bytes` (default [`DEFAULT_BACKLOG`]): its queue is dropped, a `Closing` frame
//! is attempted for up to [`KILL_GRACE`], and the socket is closed. Nobody else waits for it.
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
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chat_core::ErrorCode;
use chat_transport::codec::encode_frame_into;
use chat_transport::{FrameReader, Role, TransportError, encode_frame, handshake};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::ServerError;
use crate::journal::{FsyncPolicy, Journal, JournalConfig, JournalInput};
use crate::outbox::{Private, PrivateQueue, PrivateSender, Progress, Stream, StreamReader, write_loop};
use crate::protocol::{ClientFrame, ServerFrame};
use crate::router::{Audience, ConnId, Input, Output, Router, RouterConfig, RouterState};

/// Default listen address: loopback only. Use `--listen 0.0.0.0:7878` for LAN use.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Default frames queued per connection (unicasts, multicasts, replies) before it counts as a slow consumer.
pub const DEFAULT_OUTBOX: usize = 8192;
/// Default lag behind the broadcast stream, in bytes, before a connection counts as a slow consumer.
pub const DEFAULT_BACKLOG: u64 = 32 * 1024 * 1024;
/// Default maximum number of simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
pub use crate::outbox::{KILL_GRACE, MAX_WRITE_BATCH};
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
    /// Frames queued per connection (unicasts, multicasts, replies) before it counts as a slow consumer.
    pub outbox_capacity: usize,
    /// Bytes a connection may lag behind the broadcast stream before it counts as a slow consumer.
    pub backlog_bytes: u64,
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
            backlog_bytes: DEFAULT_BACKLOG,
        }
    }
}

/// What readers tell the owner task.
enum Inbound {
    Open { conn: ConnId, entry: ConnEntry },
    Frame { conn: ConnId, frame: ClientFrame },
    Closed { conn: ConnId, reason: String },
}

/// The owner task's handle on one connection.
struct ConnEntry {
    private: PrivateSender,
    progress: Arc<Progress>,
    kill: Option<oneshot::Sender<(ErrorCode, String)>>,
    reader: AbortHandle,
    subscribed: bool,
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
        let (inbound_tx, mut inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
        let tracker = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(config.max_connections));
        let mut owner = Owner::new(router, journal, config.backlog_bytes);
        let stream_reader = owner.stream.reader();
        let mut next_conn: ConnId = 0;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(first) = inbound_rx.recv() => {
                    owner.apply(first).await?;
                    for _ in 0..TURN_INPUTS {
                        match inbound_rx.try_recv() {
                            Ok(more) => owner.apply(more).await?,
                            Err(_) => break,
                        }
                    }
                    owner.end_turn().await?;
                }
                () = sleep_until_opt(owner.notice_deadline) => owner.end_turn().await?,
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
                    let reader = stream_reader.clone();
                    tracker.spawn(async move {
                        let _permit = permit.as_ref();
                        if permit.is_none() {
                            refuse_busy(stream).await;
                            return;
                        }
                        if let Err(e) = serve_connection(next_conn, stream, inbound, settings, writers, reader).await {
                            debug!(conn = next_conn, %peer, error = %e, "connection ended");
                        }
                    });
                }
            }
        }
        info!("shutting down");
        drop(listener);
        owner.shutdown().await?;
        drop(owner);
        tracker.close();
        drop(inbound_rx);
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
            warn!("some connections did not finish flushing in time");
        }
        Ok(())
    }
}

/// Most inputs handled in one owner turn before the stream is sealed and writers are woken.
const TURN_INPUTS: usize = 256;
/// Stream growth between two checks of every connection's lag (and trims of the stream).
const LAG_CHECK_EVERY: u64 = 256 * 1024;
/// Longest time join and leave notices wait in the stream so that a burst of them wakes writers once.
pub const NOTICE_DELAY: Duration = Duration::from_millis(20);
/// Bytes reserved at a time for encoding private frames.
const SCRATCH_BYTES: usize = 64 * 1024;

/// Sleeps until `deadline`, or forever if there is none.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
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
    stream_reader: StreamReader,
) -> Result<(), ServerError> {
    stream.set_nodelay(true)?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream, Role::Server))
        .await
        .map_err(|_| ServerError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out")))??;
    let (read, write) = stream.into_split();
    let (private, rx) = PrivateQueue::new(settings.outbox);
    let (kill_tx, kill_rx) = oneshot::channel();
    let progress = Progress::new();
    tracker.spawn(write_loop(write, rx, stream_reader, kill_rx, progress.clone(), settings.heartbeat));
    let reader = tokio::spawn(read_loop(conn, read, inbound.clone(), settings.heartbeat * 3));
    let entry = ConnEntry { private, progress, kill: Some(kill_tx), reader: reader.abort_handle(), subscribed: false };
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

/// The owner task's state: the router, the journal, the broadcast stream and the connection table.
struct Owner {
    router: Router,
    journal: Option<Journal>,
    conns: HashMap<ConnId, ConnEntry>,
    stream: Stream,
    /// Private frames produced during this turn, in order; handed to the writers at the end of the turn.
    pending: Vec<(ConnId, Private)>,
    kicked: Vec<ConnId>,
    closing: Vec<ConnId>,
    backlog: u64,
    checked_at: u64,
    scratch: BytesMut,
    /// When notices (joins, leaves) waiting in the stream must be published at the latest.
    notice_deadline: Option<Instant>,
}

impl Owner {
    fn new(router: Router, journal: Option<Journal>, backlog: u64) -> Self {
        Owner {
            router,
            journal,
            conns: HashMap::new(),
            stream: Stream::new(),
            pending: Vec::new(),
            kicked: Vec::new(),
            closing: Vec::new(),
            backlog,
            checked_at: 0,
            scratch: BytesMut::new(),
            notice_deadline: None,
        }
    }

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
                ClientFrame::Ping => self.queue(conn, &ServerFrame::Pong),
                ClientFrame::Pong | ClientFrame::Leave => {}
            },
            Inbound::Closed { conn, reason } => {
                self.conns.remove(&conn);
                self.router.handle(Input::Disconnected { conn, reason });
            }
        }
        self.perform().await
    }

    /// Performs everything the router asked for.
    async fn perform(&mut self) -> Result<(), ServerError> {
        let mut subscribe = None;
        while let Some(output) = self.router.poll_output() {
            match output {
                Output::ToOne { conn, frame } => self.queue(conn, &frame),
                Output::Fanout { to: Audience::Everyone, except, frame, seq } => {
                    match except.filter(|c| self.conns.get(c).is_some_and(|e| e.subscribed)) {
                        // The subject already reads the stream: send to each of the others instead.
                        Some(skip) => {
                            let bytes = self.encode(&frame)?;
                            let others: Vec<ConnId> = self
                                .conns
                                .iter()
                                .filter(|(c, e)| e.subscribed && **c != skip)
                                .map(|(c, _)| *c)
                                .collect();
                            for conn in others {
                                self.queue_bytes(conn, bytes.clone(), seq);
                            }
                        }
                        None => self.stream.append(&frame, seq)?,
                    }
                }
                Output::Fanout { to: Audience::Only(list), frame, seq, .. } => {
                    let bytes = self.encode(&frame)?;
                    for conn in list {
                        self.queue_bytes(conn, bytes.clone(), seq);
                    }
                }
                Output::Store(message) => self.journal(JournalInput::Store(message)).await?,
                Output::SessionStarted { conn, name, after } => {
                    let Some(entry) = self.conns.get(&conn) else { continue };
                    entry.progress.mark.store(after, Ordering::Release);
                    let mark = entry.progress.mark.clone();
                    debug!(conn, %name, "logged in");
                    subscribe = Some(conn);
                    self.journal(JournalInput::Join { name, after, mark }).await?;
                }
                Output::SessionEnded { conn, name, after, reason } => {
                    debug!(conn, %name, %reason, "session ended");
                    self.journal(JournalInput::Leave { name, after, reason }).await?;
                }
                // Closed at the end of the turn, once the frames queued for it (a refusal) are handed over.
                Output::Close { conn } => self.closing.push(conn),
            }
        }
        // A new session reads the stream from here on: after its own join notice, which it must not get.
        if let Some(conn) = subscribe {
            let from = self.stream.offset();
            if let Some(entry) = self.conns.get_mut(&conn) {
                entry.subscribed = true;
                entry.progress.cursor.store(from, Ordering::Release);
                self.pending.push((conn, Private::Subscribe { from }));
            }
        }
        Ok(())
    }

    /// Ends a turn: publishes the stream, hands private frames to the writers, and disconnects slow
    /// consumers (whose departure notices are published in turn).
    async fn end_turn(&mut self) -> Result<(), ServerError> {
        loop {
            self.publish();
            for (conn, item) in std::mem::take(&mut self.pending) {
                if let Some(entry) = self.conns.get(&conn) {
                    if entry.private.try_send(item).is_err() && !self.kicked.contains(&conn) {
                        self.kicked.push(conn);
                    }
                }
            }
            for conn in std::mem::take(&mut self.closing) {
                if let Some(entry) = self.conns.remove(&conn) {
                    entry.reader.abort();
                }
            }
            self.check_lag();
            if self.kicked.is_empty() {
                return Ok(());
            }
            for conn in std::mem::take(&mut self.kicked) {
                if let Some(mut entry) = self.conns.remove(&conn) {
                    warn!(conn, "slow consumer disconnected");
                    entry.reader.abort();
                    if let Some(kill) = entry.kill.take() {
                        let _ =
                            kill.send((ErrorCode::SlowConsumer, "too slow: outgoing backlog over its limit".into()));
                    }
                    self.router.handle(Input::Disconnected { conn, reason: "slow_consumer".into() });
                    self.perform().await?;
                }
            }
        }
    }

    /// Seals the stream, unless it holds only notices published less than [`NOTICE_DELAY`] ago: a
    /// storm of joins then wakes every writer once per delay, not once per join. Private frames
    /// queued meanwhile are written before those notices (never before an earlier message: a
    /// message always seals at once).
    fn publish(&mut self) {
        let now = Instant::now();
        let due = self.notice_deadline.is_some_and(|d| d <= now);
        if self.stream.pending_messages() || due || !self.stream.has_pending() {
            self.stream.seal();
            self.notice_deadline = None;
            return;
        }
        self.notice_deadline.get_or_insert(now + NOTICE_DELAY);
        let sealed = self.stream.head();
        for (_, item) in &mut self.pending {
            if let Private::Frame { bpos, .. } = item {
                *bpos = (*bpos).min(sealed);
            }
        }
    }

    /// Every [`LAG_CHECK_EVERY`] bytes of stream: kicks readers lagging more than the backlog limit and
    /// drops the chunks everybody has passed.
    fn check_lag(&mut self) {
        let head = self.stream.head();
        if head < self.checked_at + LAG_CHECK_EVERY {
            return;
        }
        self.checked_at = head;
        let mut min_cursor = head;
        for (&conn, entry) in &self.conns {
            if !entry.subscribed {
                continue;
            }
            let cursor = entry.progress.cursor.load(Ordering::Acquire).min(head);
            if head - cursor > self.backlog {
                if !self.kicked.contains(&conn) {
                    self.kicked.push(conn);
                }
            } else {
                min_cursor = min_cursor.min(cursor);
            }
        }
        self.stream.trim(min_cursor);
    }

    async fn journal(&mut self, input: JournalInput) -> Result<(), ServerError> {
        match &self.journal {
            Some(journal) => journal.send(input).await,
            None => Ok(()),
        }
    }

    fn queue(&mut self, conn: ConnId, frame: &ServerFrame) {
        match self.encode(frame) {
            Ok(bytes) => self.queue_bytes(conn, bytes, 0),
            Err(e) => warn!(conn, error = %e, "frame could not be encoded"),
        }
    }

    /// Encodes a frame into the scratch buffer and splits it off: one allocation per
    /// [`SCRATCH_BYTES`] of frames instead of one (or several) per frame.
    fn encode(&mut self, frame: &ServerFrame) -> Result<Bytes, TransportError> {
        if self.scratch.capacity() - self.scratch.len() < SCRATCH_BYTES / 16 {
            self.scratch.reserve(SCRATCH_BYTES);
        }
        encode_frame_into(frame, &mut self.scratch)?;
        Ok(self.scratch.split().freeze())
    }

    fn queue_bytes(&mut self, conn: ConnId, bytes: Bytes, seq: u64) {
        let bpos = self.stream.offset();
        self.pending.push((conn, Private::Frame { bytes, seq, bpos }));
    }

    async fn shutdown(&mut self) -> Result<(), ServerError> {
        let closing = encode_frame(&ServerFrame::Closing {
            code: ErrorCode::ShuttingDown,
            reason: "the server is shutting down".into(),
        })?;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for &conn in &conns {
            self.queue_bytes(conn, closing.clone(), 0);
        }
        self.stream.seal();
        for (conn, item) in std::mem::take(&mut self.pending) {
            if let Some(entry) = self.conns.get(&conn) {
                let _ = entry.private.try_send(item);
            }
        }
        for conn in conns {
            if let Some(entry) = self.conns.remove(&conn) {
                entry.reader.abort();
            }
            self.router.handle(Input::Disconnected { conn, reason: "shutdown".into() });
        }
        // Departures are journaled; announcements to the others are moot (every connection is closing).
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
