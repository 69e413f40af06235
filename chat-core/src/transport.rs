//! The `Transport` trait: what every topology provides.
//!
//! A topology (the central server's client, a P2P node) moves [`ChatMessage`]s between named
//! participants and reports [`Event`]s. It decides *how* bytes move; [`crate::Chat`] gives programs
//! one API over any of them.
//!
//! ```text
//!   your program ──► Chat ──► dyn Transport ──┬─► chat-server's ServerTransport (TCP to a server)
//!                    (clock,                  └─► chat-p2p's P2pTransport (TCP mesh + multicast)
//!                     dedup, history)
//! ```

use async_trait::async_trait;

use crate::{
    ChatMessage, CoreError, Event, PeerInfo, Recipients, RoomInfo, RoomName, SendReceipt, Timestamp, UserName,
};

/// A message as handed to a transport for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Who it is for.
    pub recipients: Recipients,
    /// The text (already checked against [`crate::MAX_BODY_LEN`]).
    pub body: String,
    /// The sender's Lamport timestamp for the send event; the orderer observes it.
    pub sent_at: Timestamp,
}

/// A topology: moves messages between participants and reports what happens.
///
/// Implementations run their I/O in background tasks and talk to them through bounded channels,
/// so every method is a short hand-off.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The local participant's name.
    fn local_name(&self) -> &UserName;

    /// The local node ID, in topologies that assign one (P2P); `None` otherwise.
    fn local_node_id(&self) -> Option<crate::NodeId> {
        None
    }

    /// Sends a message; resolves once it is accepted, ordered and durable (the acknowledgement), with
    /// its ID, the named recipients nobody knows, and those offline whom it waits for. Fails with
    /// [`CoreError::Rejected`] (e.g. every recipient unknown, not a member of the room) or
    /// [`CoreError::Closed`]. A transport that reconnects sends it again after a resume, once.
    async fn send(&self, msg: OutgoingMessage) -> Result<SendReceipt, CoreError>;

    /// The next event, or `None` once the transport is closed (after a final
    /// [`Event::Disconnected`], or after [`Transport::leave`]).
    ///
    /// **Cancel-safe**: events are queued in a channel, so dropping the future (for instance when
    /// another branch of a `select!` wins) loses nothing; the next call returns the same event.
    async fn recv(&mut self) -> Option<Event>;

    /// Who is online now, the local participant included.
    async fn peers(&self) -> Result<Vec<PeerInfo>, CoreError>;

    /// The last `limit` messages the local participant may see, oldest first: of `room` only, or of
    /// everything it may see (rooms it is in included) if `room` is `None`.
    async fn history(&self, room: Option<RoomName>, limit: usize) -> Result<Vec<ChatMessage>, CoreError>;

    /// Joins `room` (creating it if it is new); returns its recent messages, oldest first. Members
    /// of the room hear [`Event::RoomJoined`]. Joining a room one is in is not an error.
    async fn join_room(&self, room: RoomName) -> Result<Vec<ChatMessage>, CoreError>;

    /// Leaves `room`; its members hear [`Event::RoomLeft`].
    async fn part_room(&self, room: RoomName) -> Result<(), CoreError>;

    /// The rooms that have members online, with how many.
    async fn rooms(&self) -> Result<Vec<RoomInfo>, CoreError>;

    /// Who is online in `room` (or everywhere, if `None`), sorted by name.
    async fn who(&self, room: Option<RoomName>) -> Result<Vec<PeerInfo>, CoreError>;

    /// Leaves cleanly: tells the others and closes. Idempotent.
    async fn leave(&mut self) -> Result<(), CoreError>;
}
