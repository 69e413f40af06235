//! The program's side of a P2P node: [`join`], [`P2pConfig`] and [`P2pTransport`], which
//! implements [`chat_core::Transport`].
//!
//! [`join`] binds the TCP listener and the multicast socket (none with [`P2pConfig::peers`]), starts
//! the node task (see [`crate::runtime`]) and resolves once the node is a member of a group, having
//! been admitted by its coordinator, or having founded the group itself ([`P2pConfig::found`], or
//! by multicast when nobody answered within [`P2pConfig::join_timeout`]). With peers, a node none of
//! them admits in time fails with [`P2pError::NoGroup`] instead. [`join_on`] does the same on an in-memory
//! [`MemoryNetwork`] (for tests). Every method of the transport is a short hand-off to that task
//! through bounded channels.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::{
    ChatMessage, CoreError, ErrorCode, Event, NodeId, OutgoingMessage, PeerInfo, RoomInfo, RoomName, SendReceipt,
    Transport, UserName,
};
use chat_transport::discovery::{DEFAULT_GROUP, DiscoveryConfig, DiscoverySocket};
use chat_transport::memory::MemoryNetwork;
use chat_transport::{Dialer, Listener, TcpDialer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::P2pError;
use crate::node::{Counters, Limits, Node, NodeConfig};
use crate::protocol::{RoomOp, RoomOutcome};
use crate::runtime::{Discovery, Driver, EVENT_QUEUE, Network, NoDiscovery, NodeRequest, Shared, now};
use crate::secure::{GroupSecret, NodeKey, Security};

/// Local requests queued for the node task.
const REQUEST_QUEUE: usize = 64;
/// The failure timeout [`P2pConfig::with_heartbeat`] sets, in heartbeats.
pub const TIMEOUT_HEARTBEATS: u32 = 4;

/// Settings of a P2P node.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// The user name to join with (unique in the group).
    pub name: UserName,
    /// TCP address to listen on (default `127.0.0.1:0`, any free port). An unspecified IP
    /// (`0.0.0.0`) is advertised as [`P2pConfig::interface`].
    pub listen: SocketAddr,
    /// Multicast group and port for discovery (default [`DEFAULT_GROUP`], administratively scoped).
    pub group: SocketAddrV4,
    /// Interface for multicast (default `127.0.0.1`: this machine only; a LAN address for a LAN).
    pub interface: Ipv4Addr,
    /// Known nodes to join through, instead of multicast discovery (default none: multicast). With
    /// any, no multicast socket is used at all, and if none of them answers within
    /// [`P2pConfig::join_timeout`] [`join`] fails with [`P2pError::NoGroup`].
    pub peers: Vec<SocketAddr>,
    /// Start a new group at once instead of looking for one (default false).
    pub found: bool,
    /// Coordinator heartbeat interval (default 250 ms).
    pub heartbeat: Duration,
    /// Silence after which a coordinator or member is considered dead (default 1 s).
    pub timeout: Duration,
    /// How long to look for a coordinator before founding a group (default 1.5 s).
    pub join_timeout: Duration,
    /// Messages kept in the history and sent to joiners (default 1000).
    pub history: usize,
    /// Flood control while this node coordinates: per-member rates of messages submitted (default
    /// [`Limits::default`]: 50 messages/s, bursts of 200, and 256 KiB/s of bodies, bursts of 1 MiB,
    /// as the server's); `None` disables it (for benchmarks). A member over its rate is told to wait
    /// (`RateLimited`) and its node resubmits after the wait, so nothing is lost; one that keeps
    /// submitting anyway is removed (`flood`).
    pub limits: Option<Limits>,
    /// The group secret (default none). With it every TCP link is authenticated and encrypted
    /// (Noise) and every discovery datagram sealed (see [`crate::secure`]); only nodes holding the
    /// same secret get in, and each member can send only as itself. Without it, anybody who can
    /// reach the node or the multicast group can join and forge: keep such nodes on loopback.
    pub secret: Option<GroupSecret>,
    /// This node's identity in a group with a secret (default none: a key pair drawn fresh when the
    /// node starts, so its identity lasts as long as the process). The coordinator binds the name to
    /// it, and what is kept for the user while offline is collected only with it: a program that
    /// keeps the key (`chat-cli` does, in a file per user) lets a user come back to its messages.
    /// Unused without [`P2pConfig::secret`].
    pub key: Option<NodeKey>,
    /// The address to advertise instead of the listening one (default none: the listening address,
    /// an unspecified IP replaced by [`P2pConfig::interface`]): for a node reached through a port
    /// forward or a relay.
    pub advertise: Option<SocketAddr>,
    /// Join as a transient member (default false), for one-shot commands: nobody is told it joins
    /// or leaves, `/peers` and `/who` do not list it, it collects no offline messages, and if no
    /// group answers within [`P2pConfig::join_timeout`] [`join`] fails with [`P2pError::NoGroup`]
    /// instead of founding one.
    pub quiet: bool,
}

impl P2pConfig {
    /// The defaults for `name`: loopback only, heartbeat 250 ms, timeout 1 s.
    pub fn new(name: UserName) -> Self {
        let node = NodeConfig::new(name.clone(), SocketAddr::from(([127, 0, 0, 1], 0)), 0);
        P2pConfig {
            name,
            listen: node.addr,
            group: DEFAULT_GROUP,
            interface: Ipv4Addr::LOCALHOST,
            peers: Vec::new(),
            found: false,
            heartbeat: node.heartbeat,
            timeout: node.timeout,
            join_timeout: node.join_timeout,
            history: node.history,
            limits: node.limits,
            secret: None,
            key: None,
            advertise: None,
            quiet: false,
        }
    }

    /// Sets the heartbeat interval, and the failure timeout to [`TIMEOUT_HEARTBEATS`] (four)
    /// heartbeats: a coordinator or member counts as dead once it has missed four in a row (the
    /// defaults, 250 ms and 1 s, follow the same rule). Set [`P2pConfig::timeout`] afterwards to
    /// choose another timeout.
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self.timeout = heartbeat * TIMEOUT_HEARTBEATS;
        self
    }
}

/// A running P2P node, seen as a [`Transport`].
///
/// Dropping it without [`Transport::leave`] leaves anyway (in the background).
pub struct P2pTransport {
    name: UserName,
    addr: SocketAddr,
    rooms_at_join: Vec<RoomName>,
    requests: mpsc::Sender<NodeRequest>,
    shutdown: mpsc::Sender<oneshot::Sender<()>>,
    events: mpsc::Receiver<Event>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    left: bool,
}

/// Starts a node and joins (or founds) a group.
///
/// Fails with [`P2pError::Refused`] (e.g. `name_taken`) if the coordinator refuses the name, with
/// [`P2pError::Refused`] (`invalid_name`) before anything starts if the name breaks the naming rules
/// of [`UserName::new`] (a name built with [`UserName::from_wire`] may), with [`P2pError::Refused`]
/// (`auth_failed`) if the nodes here hold another group secret (or need one and this node has none)
/// and none admitted it, with [`P2pError::NoGroup`] if peers were given (or [`P2pConfig::quiet`]) and none answered, with
/// [`P2pError::Bind`] if a socket cannot be bound.
pub async fn join(config: P2pConfig) -> Result<P2pTransport, P2pError> {
    check_name(&config.name)?;
    let what = "tcp listener";
    let listener = TcpListener::bind(config.listen).await.map_err(|e| bind_error(what, e))?;
    let addr = advertised(&config, listener.local_addr().map_err(|e| bind_error(what, e))?);
    let security = security(&config);
    let dialer = TcpDialer::default();
    if !config.peers.is_empty() {
        return start(config, addr, Network { listener, dialer, discovery: NoDiscovery, security }).await;
    }
    let discovery = DiscoveryConfig { group: config.group, interface: config.interface, ..DiscoveryConfig::default() };
    let discovery =
        DiscoverySocket::bind(discovery).map_err(|e| P2pError::Bind { what: "multicast group", source: e })?;
    start(config, addr, Network { listener, dialer, discovery, security }).await
}

/// Starts a node on an in-memory network instead of TCP and UDP multicast, and joins (or founds) a
/// group there: it listens at [`P2pConfig::listen`] on `net` (port 0: a free port), dials through
/// `net`, and discovers through `net`'s datagram group named [`P2pConfig::group`]. Everything else,
/// the node task included, is what [`join`] runs, so tests drive real nodes without sockets, with
/// `tokio::time::pause()` if they want virtual time, and break links with
/// [`MemoryNetwork::cut`].
///
/// Fails as [`join`] does; [`P2pError::Bind`] if the address is taken on `net`.
pub async fn join_on(net: &MemoryNetwork, config: P2pConfig) -> Result<P2pTransport, P2pError> {
    check_name(&config.name)?;
    let what = "in-memory listener";
    let listener = net.bind(config.listen).map_err(|e| bind_error(what, e))?;
    let addr = advertised(&config, Listener::local_addr(&listener).map_err(|e| bind_error(what, e))?);
    let dialer = net.dialer(addr);
    let security = security(&config);
    if !config.peers.is_empty() {
        return start(config, addr, Network { listener, dialer, discovery: NoDiscovery, security }).await;
    }
    let discovery = net.join_group(config.group, addr);
    start(config, addr, Network { listener, dialer, discovery, security }).await
}

/// The node's keys if it has a secret: its [`P2pConfig::key`], or a fresh pair.
fn security(config: &P2pConfig) -> Option<Arc<Security>> {
    let secret = config.secret.as_ref()?;
    Some(Arc::new(match &config.key {
        Some(key) => Security::with_key(secret, key),
        None => Security::new(secret),
    }))
}

/// Refuses a name the coordinator would refuse: the naming rules of [`UserName::new`], normalized.
fn check_name(name: &UserName) -> Result<(), P2pError> {
    let invalid = |reason: String| Err(P2pError::Refused { code: ErrorCode::InvalidName, reason });
    match UserName::new(name.as_str()) {
        Err(e) => invalid(e.to_string()),
        Ok(normalized) if normalized != *name => {
            invalid(format!("invalid user name {:?}: it is not in normalized form (NFKC): {normalized}", name.as_str()))
        }
        Ok(_) => Ok(()),
    }
}

fn bind_error(what: &'static str, e: std::io::Error) -> P2pError {
    P2pError::Bind { what, source: e.into() }
}

/// The address a node advertises: [`P2pConfig::advertise`], or where it listens, with an unspecified
/// IP replaced by the configured interface.
fn advertised(config: &P2pConfig, mut addr: SocketAddr) -> SocketAddr {
    if let Some(advertise) = config.advertise {
        return advertise;
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(config.interface));
    }
    addr
}

/// Starts the node task on `network` and waits until the node is a member of a group.
async fn start<L, D, G>(
    config: P2pConfig,
    addr: SocketAddr,
    network: Network<L, D, G>,
) -> Result<P2pTransport, P2pError>
where
    L: Listener,
    D: Dialer,
    G: Discovery,
{
    let mut node_config = NodeConfig::new(config.name.clone(), addr, seed(addr));
    node_config.peers = config.peers.clone();
    node_config.found = config.found;
    node_config.heartbeat = config.heartbeat;
    node_config.timeout = config.timeout;
    node_config.join_timeout = config.join_timeout;
    node_config.history = config.history;
    node_config.limits = config.limits;
    node_config.key = network.security.as_ref().map(|s| s.key);
    node_config.quiet = config.quiet;
    if let Some(security) = &network.security {
        tracing::info!(%addr, key = %security.key, secret = %security.secret_id, "joining a group with a secret");
    }
    let node = Node::new(now(), node_config);

    let (requests, request_rx) = mpsc::channel(REQUEST_QUEUE);
    let (shutdown, shutdown_rx) = mpsc::channel(1);
    let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (ready_tx, ready) = oneshot::channel();
    let shared = Arc::new(Shared::default());
    let driver = Driver::start(node, addr, network, event_tx, ready_tx, Arc::clone(&shared));
    let task = tokio::spawn(driver.run(shutdown_rx, request_rx));

    // Generous: joining takes at most the join timeout plus an election.
    let limit = config.join_timeout * 4 + config.timeout * 4 + Duration::from_secs(5);
    let outcome = match tokio::time::timeout(limit, ready).await {
        Ok(Ok(Ok(rooms))) => Ok(rooms),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(P2pError::Stopped),
        Err(_) => Err(P2pError::Timeout(limit)),
    };
    match outcome {
        Ok(rooms_at_join) => Ok(P2pTransport {
            name: config.name,
            addr,
            rooms_at_join,
            requests,
            shutdown,
            events,
            shared,
            task,
            left: false,
        }),
        Err(e) => {
            task.abort();
            Err(e)
        }
    }
}

/// A per-process random seed for the node's nonces and ID blocks.
fn seed(addr: SocketAddr) -> u64 {
    let mut h = RandomState::new().build_hasher();
    addr.hash(&mut h);
    std::process::id().hash(&mut h);
    h.finish()
}

fn closed() -> CoreError {
    CoreError::Closed("the p2p node has stopped".into())
}

impl P2pTransport {
    /// The TCP address this node listens on and advertises.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The rooms this node's user was in when it joined (memberships belong to the name, and last
    /// across restarts while the group lives).
    pub fn rooms_at_join(&self) -> &[RoomName] {
        &self.rooms_at_join
    }

    /// Stops the node abruptly, telling nobody: every socket closes as if the process died.
    /// For failure tests; programs should [`Transport::leave`].
    pub fn abort(&mut self) {
        self.left = true;
        self.task.abort();
        self.events.close();
    }

    /// Whether the node task has stopped (after leave, abort, refusal or a slow consumer).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// A handle that submits messages on this node's behalf, cloneable and independent of the
    /// transport's borrow: a program may keep several sends in flight (each awaiting its own receipt)
    /// while it goes on reading events with [`Transport::recv`]. At most [`crate::node::MAX_PENDING`]
    /// own messages wait unacknowledged; beyond that a send fails with `busy`, as [`Transport::send`] does.
    pub fn sender(&self) -> P2pSender {
        P2pSender { requests: self.requests.clone() }
    }

    /// What the node refused or throttled so far (forged identities, unauthenticated traffic,
    /// far-ahead clocks, rate limits), as of its last step.
    pub fn counters(&self) -> Counters {
        self.shared.counters.lock().map(|g| *g).unwrap_or_default()
    }
}

/// Submits messages to a node; made by [`P2pTransport::sender`].
#[derive(Debug, Clone)]
pub struct P2pSender {
    requests: mpsc::Sender<NodeRequest>,
}

impl P2pSender {
    /// Submits `msg` and waits until it is ordered (or refused), exactly as [`Transport::send`].
    /// Fails with `CoreError::Closed` once the node has stopped.
    pub async fn send(&self, msg: OutgoingMessage) -> Result<SendReceipt, CoreError> {
        let (reply, rx) = oneshot::channel();
        self.requests.send(NodeRequest::Send { msg, reply }).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

impl P2pTransport {
    /// Asks the node task something and waits for the answer.
    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> NodeRequest) -> Result<T, CoreError> {
        let (reply, rx) = oneshot::channel();
        self.requests.send(request(reply)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())
    }
}

#[async_trait]
impl Transport for P2pTransport {
    fn local_name(&self) -> &UserName {
        &self.name
    }

    fn local_node_id(&self) -> Option<NodeId> {
        self.shared.node_id.lock().ok().and_then(|g| *g)
    }

    async fn send(&self, msg: OutgoingMessage) -> Result<SendReceipt, CoreError> {
        self.ask(|reply| NodeRequest::Send { msg, reply }).await?
    }

    async fn recv(&mut self) -> Option<Event> {
        match self.events.recv().await {
            Some(event) => Some(event),
            None => {
                let ended = self.shared.ended.lock().ok().and_then(|mut g| g.take());
                ended.map(|(code, reason)| Event::Disconnected { code, reason })
            }
        }
    }

    async fn peers(&self) -> Result<Vec<PeerInfo>, CoreError> {
        self.ask(|reply| NodeRequest::Peers { reply }).await
    }

    async fn history(&self, room: Option<RoomName>, limit: usize) -> Result<Vec<ChatMessage>, CoreError> {
        self.ask(|reply| NodeRequest::History { room, limit, reply }).await?
    }

    async fn join_room(&self, room: RoomName) -> Result<Vec<ChatMessage>, CoreError> {
        match self.ask(|reply| NodeRequest::Room { op: RoomOp::Join(room), reply }).await?? {
            RoomOutcome::Joined { history, .. } => Ok(history),
            RoomOutcome::Parted { room } => Err(CoreError::Closed(format!("{room}: a part answered a join"))),
        }
    }

    async fn part_room(&self, room: RoomName) -> Result<(), CoreError> {
        self.ask(|reply| NodeRequest::Room { op: RoomOp::Part(room), reply }).await??;
        Ok(())
    }

    async fn rooms(&self) -> Result<Vec<RoomInfo>, CoreError> {
        self.ask(|reply| NodeRequest::Rooms { reply }).await
    }

    async fn who(&self, room: Option<RoomName>) -> Result<Vec<PeerInfo>, CoreError> {
        self.ask(|reply| NodeRequest::Who { room, reply }).await
    }

    async fn leave(&mut self) -> Result<(), CoreError> {
        if self.left {
            return Ok(());
        }
        self.left = true;
        let (reply, rx) = oneshot::channel();
        if self.shutdown.send(reply).await.is_ok() {
            let _ = rx.await;
        }
        self.events.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> P2pConfig {
        P2pConfig::new(UserName::new("alice").expect("valid name"))
    }

    #[test]
    fn with_heartbeat_sets_the_failure_timeout_to_four_heartbeats() {
        let config = alice().with_heartbeat(Duration::from_millis(100));
        assert_eq!(config.heartbeat, Duration::from_millis(100));
        assert_eq!(config.timeout, Duration::from_millis(400));
        let defaults = alice();
        assert_eq!(
            (config.listen, config.group, config.interface, config.peers, config.join_timeout, config.history),
            (
                defaults.listen,
                defaults.group,
                defaults.interface,
                defaults.peers,
                defaults.join_timeout,
                defaults.history
            ),
            "nothing else changes"
        );
    }

    #[test]
    fn a_name_the_coordinator_would_refuse_is_refused_before_anything_starts() {
        assert!(check_name(&UserName::new("alice").expect("valid")).is_ok());
        for bad in ["alice\u{200B}", "\u{0430}lice", "ｂｏｂ", "bob!"] {
            let name = UserName::from_wire(bad.into()).expect("safe to carry");
            match check_name(&name) {
                Err(P2pError::Refused { code: ErrorCode::InvalidName, reason }) => {
                    assert!(reason.starts_with("invalid user name"), "{bad:?}: {reason}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert_eq!(alice().limits, Some(Limits::default()), "flood control is on by default");
    }

    #[test]
    fn the_default_timeout_is_four_default_heartbeats() {
        let defaults = alice();
        assert_eq!(defaults.timeout, defaults.heartbeat * TIMEOUT_HEARTBEATS);
        assert_eq!(alice().with_heartbeat(defaults.heartbeat).timeout, defaults.timeout);
    }
}
