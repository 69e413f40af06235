//! What goes into and out of a [`super::Node`]: its settings, its inputs and its outputs.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use chat_core::{CoreError, ErrorCode, Event, MessageId, NodeId, UserName};

use super::flood::Limits;
use crate::protocol::{Envelope, PeerKey, RoomOutcome};

/// Most members a group admits.
pub const MAX_PEERS: usize = 256;
/// Most unacknowledged own messages; further sends fail with `busy`.
pub const MAX_PENDING: usize = 1024;

/// Settings of a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The user name to join with.
    pub name: UserName,
    /// The address this node accepts TCP connections on.
    pub addr: SocketAddr,
    /// Known nodes to join through, instead of multicast: with any, the node sends no datagram and
    /// answers none, and if none of them answers its first join within `join_timeout` it stops
    /// ([`Output::NoGroup`]) instead of founding a group.
    pub peers: Vec<SocketAddr>,
    /// Start a new group at once, as its first member (no join attempt).
    pub found: bool,
    /// Coordinator heartbeat interval.
    pub heartbeat: Duration,
    /// Silence after which a coordinator or member is considered dead.
    pub timeout: Duration,
    /// How long to look for a coordinator before founding a group (with `peers`: before giving up).
    pub join_timeout: Duration,
    /// Messages kept in the history (and sent to joiners).
    pub history: usize,
    /// Delivered entries kept for the failover sync.
    pub sync_window: usize,
    /// Seed for nonces and ID blocks.
    pub seed: u64,
    /// Flood control while coordinator (per-member rates of `Submit`s); `None` disables it.
    pub limits: Option<Limits>,
    /// This node's static public key if the group has a secret (its links are authenticated with
    /// it, and it is sent in join requests); `None` without a secret.
    pub key: Option<PeerKey>,
    /// Join as a transient member (a one-shot `send` or `tail`): nobody is told it joins or leaves,
    /// it is not listed, it collects no offline messages, and it never founds a group (it gives up
    /// with [`Output::NoGroup`] instead).
    pub quiet: bool,
}

impl NodeConfig {
    /// Defaults: heartbeat 250 ms, timeout 1 s, join timeout 1.5 s, history 1000, window 256,
    /// the default [`Limits`].
    pub fn new(name: UserName, addr: SocketAddr, seed: u64) -> Self {
        NodeConfig {
            name,
            addr,
            peers: Vec::new(),
            found: false,
            heartbeat: Duration::from_millis(250),
            timeout: Duration::from_secs(1),
            join_timeout: Duration::from_millis(1500),
            history: chat_core::buffer::DEFAULT_HISTORY,
            sync_window: 256,
            seed,
            limits: Some(Limits::default()),
            key: None,
            quiet: false,
        }
    }
}

/// What the node receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A frame from a TCP connection.
    Receive(Envelope),
    /// A multicast datagram.
    Datagram(Envelope),
    /// The TCP link to the node listening at this address broke (messages in flight are lost).
    LinkDown(SocketAddr),
    /// No link to the node listening at this address could be opened (refused, timed out, closed
    /// during the handshake): the messages queued for it are lost. Unlike [`Input::LinkDown`] this
    /// does not show that the node is gone (a busy node's full accept queue looks the same), so a
    /// member does not take it for its coordinator's death.
    Unreachable(SocketAddr),
    /// Leave cleanly (hand over first if coordinator).
    Leave,
    /// The wall-clock time, in milliseconds since the Unix epoch: a coordinator stamps every message
    /// it orders with the last one given (never going back). Drivers give it before each step.
    Clock {
        /// Milliseconds since the Unix epoch.
        unix_ms: u64,
    },
    /// A frame from a link authenticated (Noise, with the group secret) as the holder of `key`: the
    /// node takes the envelope's `from` only if it agrees with the member bound to that key (see
    /// `identity.rs`). A node with a secret takes frames only this way, never as [`Input::Receive`].
    Authenticated {
        /// The static key the link was authenticated with.
        key: PeerKey,
        /// The frame.
        env: Envelope,
    },
    /// Traffic the shell could not authenticate (and dropped): a fact for the node to count and act
    /// on. A joining node that meets another secret (or a group that needs one) and no group it can
    /// join stops with `auth_failed` instead of founding a rival group.
    Untrusted {
        /// What was wrong with it.
        what: Untrusted,
        /// Where it came from.
        channel: Channel,
    },
}

/// What was wrong with traffic the shell could not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    /// Sealed, or a Noise handshake, under another group secret (or damaged).
    OtherSecret,
    /// From a node that uses a group secret, while this node has none.
    SecretRequired,
    /// Plaintext, while this node has a group secret.
    Plaintext,
    /// Authenticated, but stamped outside the replay window or seen before: a recording replayed
    /// (or a sender whose clock is far off).
    Replayed,
    /// A link this node dialled to a member's address was authenticated with another key than the
    /// member's: whoever answers there is not that member (nothing was sent on it).
    WrongKey,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Untrusted::OtherSecret => "the peer holds another group secret",
            Untrusted::SecretRequired => "the peer requires a group secret, and this node has none",
            Untrusted::Plaintext => "the peer has no group secret",
            Untrusted::Replayed => "a replayed datagram (or one stamped far from this clock)",
            Untrusted::WrongKey => "the node at a member's address holds another key than the member's",
        })
    }
}

/// Where untrusted traffic came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A discovery datagram.
    Datagram,
    /// A connection this node dialled (to the address given).
    Dialed(SocketAddr),
    /// A connection another node dialled.
    Accepted,
}

/// What the node refused or throttled since it started: hostile or broken input is counted (and
/// traced), never trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Peer timestamps more than [`chat_core::MAX_CLOCK_JUMP`] ahead of this node's clock, refused.
    pub clock_refused: u64,
    /// `RateLimited` answers sent (as coordinator).
    pub rate_limited: u64,
    /// Members removed for flooding (as coordinator).
    pub flooders_removed: u64,
    /// `RateLimited` answers received for own messages.
    pub paused: u64,
    /// Frames whose claimed sender disagreed with their link (another member's ID, this node's own
    /// ID, a plaintext frame at a node with a secret, a `JoinAck` not from the coordinator it names):
    /// dropped.
    pub identity_refused: u64,
    /// Datagrams and connections the shell could not authenticate ([`Input::Untrusted`]).
    pub untrusted: u64,
}

/// What the node asks its driver to do or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a frame over TCP to the node listening at `to`.
    Send {
        /// Destination address.
        to: SocketAddr,
        /// The frame.
        msg: Envelope,
    },
    /// Send a datagram to the multicast group.
    Multicast(Envelope),
    /// Report an event to the program.
    Event(Event),
    /// An own message was ordered.
    Sent {
        /// Its ID.
        id: MessageId,
        /// Named recipients that were not online.
        unknown: Vec<UserName>,
        /// Named recipients who are offline but known: the group keeps it for them.
        queued: Vec<UserName>,
    },
    /// An own message was refused.
    SendFailed {
        /// Its ID.
        id: MessageId,
        /// Why.
        error: CoreError,
    },
    /// This node has (a new) ID.
    Joined {
        /// The ID.
        id: NodeId,
    },
    /// The join was refused; the node is closed.
    Refused {
        /// Why.
        code: ErrorCode,
        /// Human-readable reason.
        reason: String,
    },
    /// None of the peers given ([`NodeConfig::peers`]) answered the first join in time; the node is
    /// closed (it does not found a group of its own).
    NoGroup {
        /// The peers asked.
        peers: Vec<SocketAddr>,
    },
    /// A room request ([`super::Node::room_request`]) is done.
    RoomDone {
        /// The request.
        req: u64,
        /// What came of it.
        result: Result<RoomOutcome, CoreError>,
    },
    /// A message the group kept for this node's user while it was offline, delivered now that it is
    /// back (`group/offline.rs`): ordered before the return, so its stamp may be below those of
    /// messages this process delivered before (for instance on its side of a partition). The
    /// program sees it as [`Event::Message`].
    Offline(chat_core::ChatMessage),
}
