//! The router's interface: the [`Input`]s the shell feeds it and the [`Output`]s it asks for.

use chat_core::{ErrorCode, Recipients, RoomName, Timestamp, UserName};

use super::ConnId;
use crate::journal::record::{Record, Stored};
use crate::protocol::{ClientFrame, Enter, ServerFrame};

/// Something a connection did, or something the shell observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A connection was accepted (before its handshake).
    Accepted {
        /// Which connection.
        conn: ConnId,
        /// The address it comes from.
        addr: std::net::IpAddr,
    },
    /// A connection completed the protocol handshake.
    Opened {
        /// Which connection.
        conn: ConnId,
    },
    /// The connection asks to log in.
    Login {
        /// Which connection.
        conn: ConnId,
        /// The requested name.
        name: UserName,
    },
    /// The connection asks to log in with a credential.
    LoginWith {
        /// Which connection.
        conn: ConnId,
        /// The requested name.
        name: UserName,
        /// The password or token.
        credential: crate::protocol::Credential,
    },
    /// The shell checked a `LoginWith` credential: the registered name it proves, or none.
    Authenticated {
        /// Which connection.
        conn: ConnId,
        /// The account's name (its display form) if the credential is right.
        name: Option<UserName>,
    },
    /// The registered names (the shell read the accounts file, at start or because it changed).
    Registered {
        /// Every registered name.
        names: Vec<UserName>,
    },
    /// The connection asks to log in (protocol version 2: resume, quiet).
    Enter {
        /// Which connection.
        conn: ConnId,
        /// The request.
        enter: Enter,
    },
    /// The connection speaks protocol version 1 (given right after `Opened`).
    Legacy {
        /// Which connection.
        conn: ConnId,
    },
    /// The connection's client cannot resume a session (seed 000's text protocol): when it drops,
    /// its session ends at once. (A protocol version 1 connection cannot either: see `Legacy`.)
    NoResume {
        /// Which connection.
        conn: ConnId,
    },
    /// The wall-clock time now, in milliseconds since the Unix epoch (the shell gives it every turn).
    Clock {
        /// Milliseconds since 1970-01-01 UTC.
        unix_ms: u64,
    },
    /// The connection sends a message.
    Send {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
        /// Addressing.
        recipients: Recipients,
        /// Text.
        body: String,
        /// The sender's Lamport stamp.
        sent_at: Timestamp,
        /// Idempotency key (0: none).
        key: u64,
    },
    /// The connection joins a room.
    JoinRoom {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
        /// The room.
        room: RoomName,
    },
    /// The connection leaves a room.
    PartRoom {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
        /// The room.
        room: RoomName,
    },
    /// The connection asks for the list of rooms.
    Rooms {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
    },
    /// The connection asks who is in a room (or online).
    Who {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
        /// The room, or everyone.
        room: Option<RoomName>,
    },
    /// The connection asks who is online.
    Peers {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
    },
    /// The connection asks for history.
    History {
        /// Which connection.
        conn: ConnId,
        /// Its request ID.
        req: u64,
        /// How many messages at most.
        limit: usize,
        /// One room's only.
        room: Option<RoomName>,
    },
    /// The connection's liveness probe.
    Ping {
        /// Which connection.
        conn: ConnId,
    },
    /// The connection is gone (clean leave, error, timeout).
    Disconnected {
        /// Which connection.
        conn: ConnId,
        /// Why, as announced to the others.
        reason: String,
    },
    /// A frame for `conn` could not be queued: its private queue is full.
    QueueFull {
        /// Which connection.
        conn: ConnId,
    },
    /// How far every reader got in the shared stream (sampled by the shell as the stream grows).
    Lag {
        /// The stream's published head, in bytes.
        head: u64,
        /// Each connection's position, in bytes.
        cursors: Vec<(ConnId, u64)>,
    },
    /// The journal made every stored message up to `upto` durable.
    Durable {
        /// The durable watermark.
        upto: u64,
    },
    /// The journal stopped (disk full, I/O error): nothing more can become durable.
    StorageFailed {
        /// Why, for the refusals.
        reason: String,
    },
    /// The shell handled a batch of inputs: publish what is due.
    EndOfTurn,
    /// The server is stopping: end every session.
    Shutdown,
    /// Cluster mode: a connection of some instance logs in (applied from the shared log by every
    /// instance). The instance that accepted it settled the right to the name and chose the token.
    Admit(ClusterLogin),
    /// `conn` is gone and its session ends at once, announced with `reason` (cluster mode: an
    /// instance kicked it, e.g. as a slow consumer, and says so through the shared log).
    Kicked {
        /// Which connection.
        conn: ConnId,
        /// Why, as announced to the others.
        reason: String,
    },
    /// Cluster mode: a connection of some instance logs in with a credential that instance verified
    /// against its replica's accounts; `login.name` is the account's name. Logged in under it if the
    /// name is still registered here (at this point of the log), refused `auth_failed` if not.
    AdmitAccount(ClusterLogin),
}

/// A login as the shared log of a cluster carries it (see [`Input::Admit`]): never a credential or
/// a token, only hashes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterLogin {
    /// Which connection (namespaced by its instance).
    pub conn: ConnId,
    /// The requested name.
    pub name: UserName,
    /// Not announced to others.
    pub quiet: bool,
    /// SHA-256 of the token a new session gets (the accepting instance keeps the token).
    pub token: [u8; 32],
    /// A resume: SHA-256 of the presented token, and the client's cursor.
    pub resume: Option<([u8; 32], u64)>,
    /// The connection speaks protocol version 1.
    pub legacy: bool,
    /// The connection's client can resume a session (false for the text protocol).
    pub resumable: bool,
}

impl Input {
    /// The input for a frame read from `conn`; `None` for frames that need nothing (`Pong`, and
    /// `Leave`, which the reader turns into [`Input::Disconnected`] with reason `quit`).
    pub fn from_frame(conn: ConnId, frame: ClientFrame) -> Option<Input> {
        Some(match frame {
            ClientFrame::Login { name } => Input::Login { conn, name },
            ClientFrame::LoginWith { name, credential } => Input::LoginWith { conn, name, credential },
            ClientFrame::Enter(enter) => Input::Enter { conn, enter },
            ClientFrame::Send { req, recipients, body, sent_at, key } => {
                Input::Send { conn, req, recipients, body, sent_at, key }
            }
            ClientFrame::Peers { req } => Input::Peers { conn, req },
            ClientFrame::History { req, limit, room } => Input::History { conn, req, limit: limit as usize, room },
            ClientFrame::JoinRoom { req, room } => Input::JoinRoom { conn, req, room },
            ClientFrame::PartRoom { req, room } => Input::PartRoom { conn, req, room },
            ClientFrame::Rooms { req } => Input::Rooms { conn, req },
            ClientFrame::Who { req, room } => Input::Who { conn, req, room },
            ClientFrame::Ping => Input::Ping { conn },
            ClientFrame::Pong | ClientFrame::Leave => return None,
        })
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Queue `frame` for `conn` only.
    Reply {
        /// Destination.
        conn: ConnId,
        /// The frame.
        frame: ServerFrame,
        /// Whether it may be written before stream notices that are appended but not yet published
        /// (the notice debounce window); otherwise it follows everything appended so far.
        early: bool,
    },
    /// Queue one message frame (encode it once) for these connections only: a unicast or multicast
    /// and its sender.
    Deliver {
        /// Destinations.
        conns: Vec<ConnId>,
        /// The frame.
        frame: ServerFrame,
        /// The message's server sequence number (for delivery watermarks).
        seq: u64,
        /// As in [`Output::Reply`].
        early: bool,
    },
    /// Append a frame to the shared stream that every subscribed connection reads.
    Stream {
        /// The frame.
        frame: ServerFrame,
        /// The server sequence number if the frame is a message (for watermarks), else 0.
        seq: u64,
    },
    /// From now on `conn` also reads the shared stream, from after everything appended so far.
    Subscribe {
        /// The connection.
        conn: ConnId,
    },
    /// Make everything appended to the stream visible to its readers (wakes them).
    Publish,
    /// Stream bytes below `upto` have been read by every reader: they may be dropped.
    Trim {
        /// The lowest position still needed.
        upto: u64,
    },
    /// Append this accepted message to the journal.
    Store(Stored),
    /// Append this record to the journal (rooms, session tokens, sessions kept across a restart).
    Record(Record),
    /// `conn` now carries `name`'s resumed session: the journal watermarks its deliveries from now on.
    Resumed {
        /// The connection.
        conn: ConnId,
        /// The user.
        name: UserName,
    },
    /// A user logged in on `conn`; journal it.
    SessionStarted {
        /// The connection.
        conn: ConnId,
        /// The user.
        name: UserName,
        /// Highest sequence number stored before the login.
        after: u64,
    },
    /// A user's session ended; journal it.
    SessionEnded {
        /// The connection it was attached to (0 for a detached session whose grace period ended).
        conn: ConnId,
        /// The user.
        name: UserName,
        /// Highest sequence number stored before the departure.
        after: u64,
        /// Why.
        reason: String,
    },
    /// Close the connection after the frames already queued for it.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Check a credential (off the owner loop: argon2), then feed [`Input::Authenticated`].
    Authenticate {
        /// The connection.
        conn: ConnId,
        /// The requested name.
        name: UserName,
        /// What to check.
        credential: crate::protocol::Credential,
    },
    /// Refuse a connection just accepted: answer its handshake with `Refused { code, message }`, close.
    Refuse {
        /// The connection.
        conn: ConnId,
        /// Why.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// Disconnect now: drop what is queued, attempt a last `Closing { code, reason }`, close.
    Kick {
        /// The connection.
        conn: ConnId,
        /// Why.
        code: ErrorCode,
        /// Human-readable explanation.
        reason: String,
    },
    /// Stop reading `conn` (it is over its rate limit): what it sends waits in its socket until
    /// [`Output::Resume`]. A shell that cannot pause a connection may ignore this (its sends are then
    /// held by the router, within bounds).
    Pause {
        /// The connection.
        conn: ConnId,
        /// When its refusal window ends (a `Resume` follows then, or another `Pause`).
        until: std::time::Instant,
    },
    /// Read `conn` again.
    Resume {
        /// The connection.
        conn: ConnId,
    },
}
