//! The async shell around one [`Node`]: sockets, tasks and the clock.
//!
//! One task (the *driver*) owns the node. Everything else is a small task that only moves bytes
//! and talks to the driver through bounded channels:
//!
//! ```text
//!  accept loop ──► reader task per inbound TCP connection ──┐
//!  multicast reader (DiscoverySocket) ──────────────────────┤ Inbound (bounded)
//!  link task per destination (connect, write; EOF = down) ──┘      │
//!                                                                  ▼
//!  P2pTransport ── shutdown (leave) ─────────────────────►  driver: select! { biased;
//!               ── requests (send, peers, history) ──────►     shutdown, inbound, requests,
//!               ◄─ events (bounded) ──────────────────────    sleep_until(poll_timeout) }
//!                                                              │ Output::Send ─► link queue (try_send)
//!                                                              └ Output::Multicast ─► DiscoverySocket
//! ```
//!
//! Links are one-way: a node *dials* every address the node asks it to send to and only writes
//! on that connection; frames from others arrive on connections they dialled. A link that cannot
//! connect, fails to write, reads end of stream (the peer process died or left) or whose queue is
//! full is dropped and reported to the node as [`Input::LinkDown`], as the simulation does; the
//! next frame for that address dials again.
//!
//! Slow-consumer policy: if the program stops reading events and [`EVENT_QUEUE`] fills, the node
//! leaves the group cleanly and the transport ends with `Disconnected { code: slow_consumer }`.
//! Time is read from `tokio::time::Instant` (so tests may pause it) and handed to the node as
//! `std::time::Instant`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_core::{ChatMessage, CoreError, ErrorCode, Event, MessageId, NodeId, OutgoingMessage, PeerInfo, SendReceipt};
use chat_transport::discovery::DiscoverySocket;
use chat_transport::{FrameReader, FrameWriter, Role, TransportError, handshake};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::P2pError;
use crate::node::{Input, Node, Output};
use crate::protocol::Envelope;

/// Events queued for the program; see the slow-consumer policy in the module documentation.
pub const EVENT_QUEUE: usize = 4096;
/// Frames queued per outgoing link before the link is treated as broken.
pub const LINK_QUEUE: usize = 1024;
/// Frames (and link reports) queued from all connections to the driver.
pub const INBOUND_QUEUE: usize = 1024;
/// Most inbound TCP connections at once; further ones are closed at once.
pub const MAX_INBOUND: usize = 2 * crate::node::MAX_PEERS;
/// Time allowed to connect to a peer and exchange the handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed at leave for queued frames (the handover) to be written.
pub const LEAVE_FLUSH: Duration = Duration::from_millis(500);
/// Most frames written in one batch by a link task.
const WRITE_BATCH: usize = 64;

/// What the transport (`P2pTransport`) asks the driver for.
pub(crate) enum NodeRequest {
    /// Submit a message; answered once it is ordered or refused.
    Send { msg: OutgoingMessage, reply: oneshot::Sender<Result<SendReceipt, CoreError>> },
    /// The members.
    Peers { reply: oneshot::Sender<Vec<PeerInfo>> },
    /// The last `limit` messages.
    History { limit: usize, reply: oneshot::Sender<Vec<ChatMessage>> },
}

/// What the network tasks hand to the driver.
pub(crate) enum Inbound {
    /// A frame read from a TCP connection.
    Frame(Envelope),
    /// A multicast datagram from another node.
    Datagram(Envelope),
    /// The link task for `addr` (incarnation `generation`) ended with an error.
    LinkDown { addr: SocketAddr, generation: u64 },
}

/// State the driver shares with the transport (never locked across an `.await`).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The node's current ID.
    pub(crate) node_id: Mutex<Option<NodeId>>,
    /// Why the driver stopped on its own, reported once by `recv` as `Disconnected`.
    pub(crate) ended: Mutex<Option<(ErrorCode, String)>>,
}

impl Shared {
    fn set_node_id(&self, id: NodeId) {
        if let Ok(mut g) = self.node_id.lock() {
            *g = Some(id);
        }
    }

    fn set_ended(&self, code: ErrorCode, reason: String) {
        if let Ok(mut g) = self.ended.lock() {
            g.get_or_insert((code, reason));
        }
    }
}

/// An outgoing link to one address.
struct Link {
    tx: mpsc::Sender<Envelope>,
    generation: u64,
    abort: AbortHandle,
}

/// The task owning the node.
pub(crate) struct Driver {
    node: Node,
    me: SocketAddr,
    discovery: Arc<DiscoverySocket>,
    links: HashMap<SocketAddr, Link>,
    next_generation: u64,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound: mpsc::Receiver<Inbound>,
    events: mpsc::Sender<Event>,
    pending: HashMap<MessageId, oneshot::Sender<Result<SendReceipt, CoreError>>>,
    ready: Option<oneshot::Sender<Result<(), P2pError>>>,
    shared: Arc<Shared>,
    /// Accept loop and multicast reader (they run until the driver is dropped).
    background: JoinSet<()>,
    /// Link tasks (awaited at leave so the last frames get out).
    link_tasks: JoinSet<()>,
    slow: bool,
}

/// The current time, from tokio's clock (pausable in tests), as the node wants it.
pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Driver {
    /// Builds the driver and starts the accept loop and the multicast reader.
    pub(crate) fn start(
        node: Node,
        me: SocketAddr,
        listener: TcpListener,
        discovery: DiscoverySocket,
        events: mpsc::Sender<Event>,
        ready: oneshot::Sender<Result<(), P2pError>>,
        shared: Arc<Shared>,
    ) -> Self {
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let discovery = Arc::new(discovery);
        let mut background = JoinSet::new();
        background.spawn(accept_loop(listener, inbound_tx.clone()));
        background.spawn(multicast_reader(Arc::clone(&discovery), me, inbound_tx.clone()));
        Driver {
            node,
            me,
            discovery,
            links: HashMap::new(),
            next_generation: 0,
            inbound_tx,
            inbound,
            events,
            pending: HashMap::new(),
            ready: Some(ready),
            shared,
            background,
            link_tasks: JoinSet::new(),
            slow: false,
        }
    }

    /// Runs until the node leaves, is refused, or the transport is dropped.
    pub(crate) async fn run(
        mut self,
        mut shutdown: mpsc::Receiver<oneshot::Sender<()>>,
        mut requests: mpsc::Receiver<NodeRequest>,
    ) {
        self.drain().await;
        loop {
            if self.node.is_closed() || self.slow {
                break;
            }
            while self.link_tasks.try_join_next().is_some() {}
            let deadline = self.node.poll_timeout().map(Instant::from_std);
            tokio::select! {
                biased;
                stop = shutdown.recv() => {
                    self.leave().await;
                    if let Some(reply) = stop {
                        let _ = reply.send(());
                    }
                    return;
                }
                Some(inbound) = self.inbound.recv() => self.inbound(inbound),
                Some(request) = requests.recv() => self.request(request),
                () = sleep_until(deadline) => self.node.handle_timeout(now()),
            }
            self.drain().await;
        }
        if self.slow {
            self.leave().await;
        }
        debug!(me = %self.me, "node task stopped");
    }

    fn inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Frame(env) => self.node.handle(now(), Input::Receive(env)),
            Inbound::Datagram(env) => self.node.handle(now(), Input::Datagram(env)),
            Inbound::LinkDown { addr, generation } => {
                if self.links.get(&addr).is_some_and(|l| l.generation == generation) {
                    self.links.remove(&addr);
                    self.node.handle(now(), Input::LinkDown(addr));
                }
            }
        }
    }

    fn request(&mut self, request: NodeRequest) {
        match request {
            NodeRequest::Send { msg, reply } => match self.node.submit(now(), msg) {
                Ok(id) => {
                    self.pending.insert(id, reply);
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            NodeRequest::Peers { reply } => drop(reply.send(self.node.peers())),
            NodeRequest::History { limit, reply } => drop(reply.send(self.node.history(limit))),
        }
    }

    /// Carries out every output of the node.
    async fn drain(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Send { to, msg } => self.send_frame(to, msg),
                Output::Multicast(msg) => {
                    if let Err(e) = self.discovery.send(&msg).await {
                        debug!(error = %e, "multicast send failed");
                    }
                }
                Output::Event(event) => self.emit(event),
                Output::Sent { id, unknown } => {
                    if let Some(reply) = self.pending.remove(&id) {
                        let _ = reply.send(Ok(SendReceipt { id, unknown }));
                    }
                }
                Output::SendFailed { id, error } => {
                    if let Some(reply) = self.pending.remove(&id) {
                        let _ = reply.send(Err(error));
                    }
                }
                Output::Joined { id } => self.shared.set_node_id(id),
                Output::Refused { code, reason } => match self.ready.take() {
                    Some(ready) => drop(ready.send(Err(P2pError::Refused { code, reason }))),
                    None => self.shared.set_ended(code, reason),
                },
            }
        }
        if self.node.is_member() {
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(Ok(()));
            }
        }
    }

    fn emit(&mut self, event: Event) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(me = %self.me, "the program is not reading events: leaving as a slow consumer");
                self.shared.set_ended(ErrorCode::SlowConsumer, "events were not read fast enough".into());
                self.slow = true;
            }
            // The transport is gone; the shutdown channel tells the loop.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues a frame on the link to `to`, dialling it if needed.
    fn send_frame(&mut self, to: SocketAddr, msg: Envelope) {
        if !self.links.contains_key(&to) {
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            let generation = self.next_generation;
            self.next_generation += 1;
            let abort = self.link_tasks.spawn(link_task(to, generation, rx, self.inbound_tx.clone()));
            self.links.insert(to, Link { tx, generation, abort });
        }
        let Some(link) = self.links.get(&to) else { return };
        if let Err(e) = link.tx.try_send(msg) {
            let full = matches!(e, mpsc::error::TrySendError::Full(_));
            debug!(%to, full, "link queue unusable: treating the link as broken");
            if let Some(link) = self.links.remove(&to) {
                link.abort.abort();
            }
            self.node.handle(now(), Input::LinkDown(to));
        }
    }

    /// Leaves the group and gives the link tasks a moment to write the last frames.
    async fn leave(&mut self) {
        self.node.handle(now(), Input::Leave);
        self.drain().await;
        self.links.clear();
        let _ = tokio::time::timeout(LEAVE_FLUSH, async { while self.link_tasks.join_next().await.is_some() {} }).await;
        self.link_tasks.abort_all();
        self.background.abort_all();
    }
}

/// Sleeps until `deadline`, or forever if there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Dials `addr`, writes what the driver queues, and reports the link down on any failure.
async fn link_task(
    addr: SocketAddr,
    generation: u64,
    mut rx: mpsc::Receiver<Envelope>,
    inbound: mpsc::Sender<Inbound>,
) {
    let result: Result<(), TransportError> = async {
        let connect = async {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            handshake(&mut stream, Role::Peer).await?;
            Ok::<_, TransportError>(stream)
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| TransportError::Io(std::io::ErrorKind::TimedOut.into()))??;
        let (mut read, write) = stream.into_split();
        let mut writer: FrameWriter<_, Envelope> = FrameWriter::new(write);
        let mut probe = [0u8; 64];
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(env) => {
                        writer.queue(&env)?;
                        for _ in 1..WRITE_BATCH {
                            match rx.try_recv() {
                                Ok(env) => writer.queue(&env)?,
                                Err(_) => break,
                            }
                        }
                        writer.flush().await?;
                    }
                    None => {
                        // The driver closed the link (leave): everything queued is written.
                        writer.shutdown().await?;
                        return Ok(());
                    }
                },
                // The peer never writes on this connection: end of stream or an error means it is gone.
                n = read.read(&mut probe) => {
                    if matches!(n, Ok(0) | Err(_)) {
                        return Err(TransportError::Io(std::io::ErrorKind::ConnectionReset.into()));
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        debug!(%addr, error = %e, "link down");
        let _ = inbound.send(Inbound::LinkDown { addr, generation }).await;
    }
}

/// Accepts peers' connections and starts a reader for each (at most [`MAX_INBOUND`]).
async fn accept_loop(listener: TcpListener, inbound: mpsc::Sender<Inbound>) {
    let mut readers = JoinSet::new();
    loop {
        while readers.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, from)) => {
                if readers.len() >= MAX_INBOUND {
                    debug!(%from, "too many connections: closing");
                    continue;
                }
                readers.spawn(read_peer(stream, inbound.clone()));
            }
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads frames from one inbound connection until it ends.
async fn read_peer(mut stream: TcpStream, inbound: mpsc::Sender<Inbound>) {
    let _ = stream.set_nodelay(true);
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake(&mut stream, Role::Peer)).await {
        Ok(Ok(Role::Peer)) => {}
        other => {
            debug!(result = ?other.map(|r| r.map_err(|e| e.to_string())), "inbound handshake failed");
            return;
        }
    }
    let mut reader: FrameReader<_, Envelope> = FrameReader::new(stream);
    loop {
        match reader.read_frame().await {
            Ok(Some(env)) => {
                if inbound.send(Inbound::Frame(env)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                debug!(error = %e, "inbound connection failed");
                return;
            }
        }
    }
}

/// Hands multicast datagrams from other nodes to the driver; drops them if it is busy (UDP).
async fn multicast_reader(socket: Arc<DiscoverySocket>, me: SocketAddr, inbound: mpsc::Sender<Inbound>) {
    loop {
        match socket.recv::<Envelope>().await {
            Ok((env, _)) => {
                if env.addr == me {
                    continue; // our own datagram, looped back
                }
                if let Err(mpsc::error::TrySendError::Closed(_)) = inbound.try_send(Inbound::Datagram(env)) {
                    return;
                }
            }
            Err(e) => {
                debug!(error = %e, "multicast receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
