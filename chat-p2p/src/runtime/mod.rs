//! The async shell around one [`Node`]: sockets, tasks and the clock.
//!
//! One task (the *driver*) owns the node. Everything else is a small task that only moves bytes
//! and talks to the driver through bounded channels:
//!
//! ```text
//!  accept loop (Listener) ──► reader task per inbound connection ──┐
//!  discovery task (Discovery: receive) ────────────────────────────┤ Inbound (bounded)
//!  link task per destination (Dialer; write; EOF = down) ──────────┘      │
//!                                                                         ▼
//!  P2pTransport ── shutdown (leave) ────────────────────────────►  driver: select! { biased;
//!               ── requests (send, rooms, peers, history) ──────►     shutdown, inbound, requests,
//!               ◄─ events (bounded) ─────────────────────────────    sleep_until(poll_timeout) }
//!                                                                     │ Output::Send ─► link queue (try_send)
//!                                                                     └ Output::Multicast ─► discovery task (try_send)
//! ```
//!
//! The shell is generic over where bytes come from: connections are accepted from any
//! [`Listener`] and dialled through any [`Dialer`], datagrams go through any [`Discovery`] socket.
//! [`crate::join`] runs it on TCP and UDP multicast; [`crate::join_on`] on a
//! [`chat_transport::memory::MemoryNetwork`], so tests run real nodes without sockets, in virtual time.
//!
//! Links are one-way: a node *dials* every address the node asks it to send to and only writes
//! on that connection; frames from others arrive on connections they dialled. A link that fails to
//! write, reads end of stream (the peer process died or left) or whose queue is full is dropped and
//! reported to the node as [`Input::LinkDown`], as the simulation does; one that cannot be opened
//! at all (refused, timed out, closed during the handshake) as [`Input::Unreachable`]; the next
//! frame for that address dials again. A link the node has not written on for one failure timeout
//! is closed by the driver (cleanly: what is queued is written first), so only links in use stay
//! open; inbound connections are bounded and time out when silent (see `links.rs`).
//!
//! In a group with a secret ([`Security`]) every link opens with the Noise handshake
//! (`opening.rs`) and every datagram is sealed (`discovery.rs`); the node gets authenticated frames
//! as `Input::Authenticated` and learns of traffic that could not be authenticated as
//! `Input::Untrusted`. No key or ciphertext ever reaches the node.
//!
//! **Turns.** The driver hands the node everything that is waiting, up to [`TURN_INPUTS`] inbound
//! items or requests, before it drains the node's outputs: the coordinator orders all of it as one
//! batch, so a busy group costs one frame per member per turn, and each link task writes every frame
//! queued for it with one write (at most [`WRITE_BATCH`] frames). Before each turn it gives
//! the node the wall-clock time (`Input::Clock`), which a coordinator stamps messages with.
//!
//! Slow-consumer policy: if the program stops reading events and [`EVENT_QUEUE`] fills, the node
//! leaves the group cleanly and the transport ends with `Disconnected { code: slow_consumer }`.
//! Time is read from `tokio::time::Instant` (so tests may pause it) and handed to the node as
//! `std::time::Instant`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_core::{
    ChatMessage, CoreError, ErrorCode, Event, MessageId, NodeId, OutgoingMessage, PeerInfo, RoomInfo, RoomName,
    SendReceipt,
};
use chat_transport::{Dialer, Listener, sleep_until};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::P2pError;
use crate::node::{Channel, Counters, Input, Node, Output, Untrusted};
use crate::protocol::{Envelope, PeerKey, RoomOp, RoomOutcome};
use crate::secure::Security;
use discovery::discovery_task;
use links::{accept_loop, link_task};

mod discovery;
mod inbound;
mod links;
mod opening;

pub use discovery::{Discovery, NoDiscovery};
pub use inbound::{MAX_INBOUND, MAX_INBOUND_PER_IP};
pub use links::WRITE_BATCH;

/// Events queued for the program; see the slow-consumer policy in the module documentation.
pub const EVENT_QUEUE: usize = 4096;
/// Frames queued per outgoing link before the link is treated as broken.
pub const LINK_QUEUE: usize = 1024;
/// Frames (and link reports) queued from all connections to the driver.
pub const INBOUND_QUEUE: usize = 1024;
/// An inbound connection silent for this many failure timeouts is closed (live links carry a frame
/// at least every heartbeat; idle outgoing links are closed by their writer after one timeout).
pub const INBOUND_IDLE_TIMEOUTS: u32 = 2;
/// Time allowed to connect to a peer and exchange the handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed at leave for queued frames (the handover) to be written.
pub const LEAVE_FLUSH: Duration = Duration::from_millis(500);
/// Datagrams queued for the discovery group; more are dropped (multicast is lossy anyway).
pub const MULTICAST_QUEUE: usize = 64;
/// Most inbound items, and most requests, the node gets in one turn before its outputs are drained.
pub const TURN_INPUTS: usize = 256;

/// What the transport (`P2pTransport`) asks the driver for.
pub(crate) enum NodeRequest {
    /// Submit a message; answered once it is ordered or refused.
    Send { msg: OutgoingMessage, reply: oneshot::Sender<Result<SendReceipt, CoreError>> },
    /// The members.
    Peers { reply: oneshot::Sender<Vec<PeerInfo>> },
    /// The last `limit` messages (of a room).
    History { room: Option<RoomName>, limit: usize, reply: oneshot::Sender<Result<Vec<ChatMessage>, CoreError>> },
    /// Join or part a room; answered once it is done.
    Room { op: RoomOp, reply: oneshot::Sender<Result<RoomOutcome, CoreError>> },
    /// The rooms.
    Rooms { reply: oneshot::Sender<Vec<RoomInfo>> },
    /// Who is in the group, or in a room.
    Who { room: Option<RoomName>, reply: oneshot::Sender<Vec<PeerInfo>> },
}

/// What the node task reports once the node is a member: the rooms its user is in.
pub(crate) type Ready = oneshot::Sender<Result<Vec<RoomName>, P2pError>>;

/// What the network tasks hand to the driver.
pub(crate) enum Inbound {
    /// A frame read from a connection another node dialled, authenticated as `key` if the group
    /// has a secret.
    Frame { key: Option<PeerKey>, env: Envelope },
    /// A datagram or connection that could not be authenticated (and was dropped).
    Untrusted { what: Untrusted, channel: Channel },
    /// A datagram from another node in the discovery group.
    Datagram(Envelope),
    /// The link task for `addr` (incarnation `generation`) ended with an error; `connected` says
    /// whether the link had been opened (else it could not be).
    LinkDown { addr: SocketAddr, generation: u64, connected: bool },
}

/// State the driver shares with the transport (never locked across an `.await`).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The node's current ID.
    pub(crate) node_id: Mutex<Option<NodeId>>,
    /// Why the driver stopped on its own, reported once by `recv` as `Disconnected`.
    pub(crate) ended: Mutex<Option<(ErrorCode, String)>>,
    /// The node's counters, as of its last step.
    pub(crate) counters: Mutex<Counters>,
}

impl Shared {
    fn set_node_id(&self, id: NodeId) {
        if let Ok(mut g) = self.node_id.lock() {
            *g = Some(id);
        }
    }

    fn set_counters(&self, counters: Counters) {
        if let Ok(mut g) = self.counters.lock() {
            *g = counters;
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
    /// When a frame was last queued on it.
    last_used: Instant,
}

/// The task owning the node.
pub(crate) struct Driver<D> {
    node: Node,
    me: SocketAddr,
    dialer: D,
    multicast: mpsc::Sender<Envelope>,
    links: HashMap<SocketAddr, Link>,
    next_generation: u64,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound: mpsc::Receiver<Inbound>,
    events: mpsc::Sender<Event>,
    pending: HashMap<MessageId, oneshot::Sender<Result<SendReceipt, CoreError>>>,
    rooms: HashMap<u64, oneshot::Sender<Result<RoomOutcome, CoreError>>>,
    ready: Option<Ready>,
    shared: Arc<Shared>,
    /// Accept loop and discovery task (they run until the driver is dropped).
    background: JoinSet<()>,
    /// Link tasks (awaited at leave so the last frames get out).
    link_tasks: JoinSet<()>,
    /// A link not written on for this long is closed (the node's failure timeout).
    link_idle: Duration,
    /// When idle links are next looked for.
    next_sweep: Instant,
    slow: bool,
    /// The group's keys and this node's key pair, if the group has a secret.
    security: Option<Arc<Security>>,
}

/// The current time, from tokio's clock (pausable in tests), as the node wants it.
pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Where a node's bytes come from and go: its listener, its dialer and its discovery socket.
pub(crate) struct Network<L, D, G> {
    /// Accepts the connections other nodes dial.
    pub(crate) listener: L,
    /// Dials other nodes.
    pub(crate) dialer: D,
    /// The discovery group.
    pub(crate) discovery: G,
    /// With a group secret: links are authenticated and encrypted, datagrams sealed.
    pub(crate) security: Option<Arc<Security>>,
}

impl<D: Dialer> Driver<D> {
    /// Builds the driver and starts the accept loop and the discovery task.
    pub(crate) fn start<L: Listener, G: Discovery>(
        node: Node,
        me: SocketAddr,
        network: Network<L, D, G>,
        events: mpsc::Sender<Event>,
        ready: Ready,
        shared: Arc<Shared>,
    ) -> Self {
        let Network { listener, dialer, discovery, security } = network;
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let (multicast, outgoing) = mpsc::channel(MULTICAST_QUEUE);
        let link_idle = node.config().timeout.max(Duration::from_millis(1));
        let mut background = JoinSet::new();
        let idle = link_idle * INBOUND_IDLE_TIMEOUTS;
        background.spawn(accept_loop(listener, inbound_tx.clone(), idle, security.clone()));
        let sealer = security.as_ref().map(|s| s.sealer());
        background.spawn(discovery_task(discovery, me, outgoing, inbound_tx.clone(), sealer));
        Driver {
            node,
            me,
            dialer,
            multicast,
            links: HashMap::new(),
            next_generation: 0,
            inbound_tx,
            inbound,
            events,
            pending: HashMap::new(),
            rooms: HashMap::new(),
            ready: Some(ready),
            shared,
            background,
            link_tasks: JoinSet::new(),
            link_idle,
            next_sweep: Instant::now() + link_idle,
            slow: false,
            security,
        }
    }

    /// Runs until the node leaves, is refused, or the transport is dropped.
    pub(crate) async fn run(
        mut self,
        mut shutdown: mpsc::Receiver<oneshot::Sender<()>>,
        mut requests: mpsc::Receiver<NodeRequest>,
    ) {
        self.drain();
        loop {
            if self.node.is_closed() || self.slow {
                break;
            }
            while self.link_tasks.try_join_next().is_some() {}
            let node_deadline = self.node.poll_timeout().map(Instant::from_std);
            let deadline = Some(node_deadline.map_or(self.next_sweep, |d| d.min(self.next_sweep)));
            tokio::select! {
                biased;
                stop = shutdown.recv() => {
                    self.leave().await;
                    if let Some(reply) = stop {
                        let _ = reply.send(());
                    }
                    return;
                }
                Some(inbound) = self.inbound.recv() => {
                    self.clock();
                    self.inbound(inbound);
                    for _ in 1..TURN_INPUTS {
                        let Ok(more) = self.inbound.try_recv() else { break };
                        self.inbound(more);
                    }
                }
                Some(request) = requests.recv() => {
                    self.clock();
                    self.request(request);
                    for _ in 1..TURN_INPUTS {
                        let Ok(more) = requests.try_recv() else { break };
                        self.request(more);
                    }
                }
                () = sleep_until(deadline) => {
                    self.clock();
                    self.timer(node_deadline);
                }
            }
            self.drain();
        }
        if self.slow {
            self.leave().await;
        }
        debug!(me = %self.me, "node task stopped");
    }

    /// Gives the node the wall-clock time.
    fn clock(&mut self) {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.node.handle(now(), Input::Clock { unix_ms });
    }

    /// A deadline passed: the node's, and/or the sweep of idle links.
    fn timer(&mut self, node_deadline: Option<Instant>) {
        let at = Instant::now();
        if node_deadline.is_some_and(|d| d <= at) {
            self.node.handle_timeout(now());
        }
        if self.next_sweep <= at {
            let idle = self.link_idle;
            // Dropping a link's queue ends its task cleanly, after what is queued is written. A link
            // with frames still queued (still connecting) stays, so its failure is reported.
            self.links.retain(|_, link| at < link.last_used + idle || link.tx.capacity() < link.tx.max_capacity());
            self.next_sweep = at + idle / 2;
        }
    }

    fn inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Frame { key: None, env } => self.node.handle(now(), Input::Receive(env)),
            Inbound::Frame { key: Some(key), env } => self.node.handle(now(), Input::Authenticated { key, env }),
            Inbound::Untrusted { what, channel } => self.node.handle(now(), Input::Untrusted { what, channel }),
            Inbound::Datagram(env) => self.node.handle(now(), Input::Datagram(env)),
            Inbound::LinkDown { addr, generation, connected } => {
                if self.links.get(&addr).is_some_and(|l| l.generation == generation) {
                    self.links.remove(&addr);
                    let input = if connected { Input::LinkDown(addr) } else { Input::Unreachable(addr) };
                    self.node.handle(now(), input);
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
            NodeRequest::History { room, limit, reply } => drop(reply.send(self.node.history_of(room.as_ref(), limit))),
            NodeRequest::Room { op, reply } => match self.node.room_request(now(), op) {
                Ok(req) => {
                    self.rooms.insert(req, reply);
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            NodeRequest::Rooms { reply } => drop(reply.send(self.node.rooms())),
            NodeRequest::Who { room, reply } => drop(reply.send(self.node.who(room.as_ref()))),
        }
    }

    /// Carries out every output of the node.
    fn drain(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Send { to, msg } => self.send_frame(to, msg),
                Output::Multicast(msg) => {
                    if let Err(e) = self.multicast.try_send(msg) {
                        debug!(error = %e, "datagram dropped");
                    }
                }
                Output::Event(event) => self.emit(event),
                Output::Offline(msg) => self.emit(Event::Message(msg)),
                Output::Sent { id, unknown, queued } => {
                    if let Some(reply) = self.pending.remove(&id) {
                        let _ = reply.send(Ok(SendReceipt { id, unknown, queued }));
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
                Output::NoGroup { peers } => {
                    let waited = self.node.config().join_timeout;
                    let error = P2pError::NoGroup { peers, waited };
                    match self.ready.take() {
                        Some(ready) => drop(ready.send(Err(error))),
                        None => self.shared.set_ended(ErrorCode::Disconnected, error.to_string()),
                    }
                }
                Output::RoomDone { req, result } => {
                    if let Some(reply) = self.rooms.remove(&req) {
                        let _ = reply.send(result);
                    }
                }
            }
        }
        self.shared.set_counters(self.node.counters());
        if self.node.is_member()
            && let Some(ready) = self.ready.take()
        {
            let _ = ready.send(Ok(self.node.my_rooms()));
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
            let dialer = self.dialer.clone();
            // With a secret, the link must be authenticated as the member listening at `to`, if any.
            let security = self.security.clone().map(|s| (s, self.node.key_at(to)));
            let abort = self.link_tasks.spawn(link_task(dialer, to, generation, rx, self.inbound_tx.clone(), security));
            self.links.insert(to, Link { tx, generation, abort, last_used: Instant::now() });
        }
        let Some(link) = self.links.get_mut(&to) else { return };
        link.last_used = Instant::now();
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
        self.drain();
        self.links.clear();
        let _ = tokio::time::timeout(LEAVE_FLUSH, async { while self.link_tasks.join_next().await.is_some() {} }).await;
        self.link_tasks.abort_all();
        self.background.abort_all();
    }
}
