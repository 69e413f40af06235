//! The sans-IO core of the server: who is connected, who receives what, the global order, and every
//! policy about delivery (when the shared stream is published, who is too slow, shutdown).
//!
//! The router never touches a socket, a task or the clock. The server's owner task feeds it
//! [`Input`]s with the current time and performs the [`Output`]s it drains with
//! [`Router::poll_output`]; it calls [`Router::handle_timeout`] at [`Router::poll_timeout`]. Tests
//! compare whole output sequences. Every accepted message gets the next server sequence number and a
//! Lamport stamp from the server's clock *after observing the sender's stamp*, so along the server
//! order the stamps increase strictly and causality is respected. Because one router orders
//! everything and every connection is FIFO, all recipients see messages in the same relative order.
//!
//! | input             | outputs                                                                       |
//! |-------------------|-------------------------------------------------------------------------------|
//! | `Accepted`        | — (admitted: it must log in in time), or `Refuse { busy }` (see `admission`)   |
//! | `Opened`          | — (its handshake is done)                                                      |
//! | `Login` ok        | `SessionStarted`, `Reply(Welcome)`, `Stream(Joined)`, `Subscribe`              |
//! | `LoginWith`       | `Authenticate` (checked by the shell), then on `Authenticated` as `Login` (see `auth`) |
//! | `Login` taken     | `Reply(Refused { name_taken })`, `Close`                                       |
//! | `Send` broadcast  | `Store(msg)`, `Stream(Message)`, `Reply(Sent)`                                 |
//! | `Send` uni/multi  | `Store(msg)`, `Deliver(Message)` to the recipients and the sender, `Reply(Sent)` |
//! | `Send` bad        | `Reply(Rejected { unknown_user / too_long / protocol })`                       |
//! | `Peers`, `History`| `Reply(Peers)`; `Reply(History)` frames, the last with `done = true`           |
//! | `Ping`            | `Reply(Pong)`                                                                  |
//! | `Disconnected`    | `SessionEnded`, `Stream(Left)`                                                 |
//! | `Send` too fast   | `Reply(RateLimited { retry_after_ms })`; unheeded: `Kick { flood }` (see `limits`) |
//! | `QueueFull`       | `Kick { slow_consumer }`, `SessionEnded`, `Stream(Left)`                       |
//! | `Lag`             | `Kick` for every reader more than the backlog behind, then `Trim`              |
//! | `EndOfTurn`       | `Publish` if a message waits, or notices waited [`NOTICE_DELAY`] (see `publish`)|
//! | `Durable`         | the effects held behind messages now durable, in order (see `commit`)          |
//! | `StorageFailed`   | held `Sent` become `Rejected { storage_unavailable }`; held messages dropped     |
//! | `Shutdown`        | `Reply(Closing)` to all, `Publish`, `SessionEnded` per user, `Close` per connection |
//!
//! With a journal ([`RouterConfig::journaled`]) every effect a client sees (`Reply`, `Deliver`,
//! `Stream`, `Subscribe`, `Close`) waits until every message accepted before it is durable; `Store`,
//! `SessionStarted`/`SessionEnded` (for the journal) and `Kick` are output at once. The tables above
//! show the order of outputs once released.
//!
//! Submodules, one concept each: `admission` (connection limits, login timeout), `auth` (who may
//! log in under which name), `sessions`
//! (connections and logged-in users), `limits` (flood control), `routing` (who
//! receives a message), `commit` (the committed watermark), `publish` (when the stream is published:
//! notice debouncing), `slow` (the slow-consumer policy), `history` (answers in chunks).

mod admission;
mod auth;
#[cfg(test)]
mod auth_tests;
mod commit;
#[cfg(test)]
mod commit_tests;
#[cfg(test)]
mod guard_tests;
mod history;
mod limits;
#[cfg(test)]
mod policy_tests;
mod publish;
mod routing;
mod sessions;
mod slow;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chat_core::{ChatMessage, ErrorCode, LamportClock, MessageBuffer, NodeId, Recipients, Timestamp, UserName};

use crate::protocol::{ClientFrame, ServerFrame};
use admission::Admission;
pub use admission::{AdmissionConfig, DEFAULT_LOGIN_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PENDING_PER_ADDR};
use auth::Auth;
pub use auth::{AuthMode, FAILURE_MEMORY, FREE_FAILURES, MAX_FAILURE_DELAY, RESERVED_NAMES, is_reserved};
use commit::{Commit, Visible};
use limits::Flood;
pub use limits::{DEFAULT_BYTE_RATE, DEFAULT_FLOOD_STRIKES, DEFAULT_MESSAGE_RATE, FLOOD_GRACE, Limits};
use publish::Publisher;
use sessions::Sessions;

/// Identifies one connection inside the server (assigned by the shell, never reused in a run).
pub type ConnId = u64;

pub use history::HISTORY_CHUNK_BYTES;

/// Longest time join and leave notices wait unpublished so that a burst of them wakes every reader
/// once (a message, which is never delayed, publishes them at once).
pub const NOTICE_DELAY: Duration = Duration::from_millis(20);

/// Default lag behind the shared stream, in bytes, before a reader counts as a slow consumer.
pub const DEFAULT_BACKLOG: u64 = 32 * 1024 * 1024;

/// Router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Messages kept for `History` answers.
    pub history: usize,
    /// The heartbeat interval announced to clients, in milliseconds.
    pub heartbeat_ms: u64,
    /// Bytes a reader may lag behind the shared stream before it is disconnected (`slow_consumer`).
    pub backlog_bytes: u64,
    /// How long join/leave notices may wait unpublished (see [`NOTICE_DELAY`]).
    pub notice_delay: Duration,
    /// Whether a journal is kept: then what clients see waits for [`Input::Durable`] (default false).
    pub journaled: bool,
    /// Connection limits and the login timeout.
    pub admission: AdmissionConfig,
    /// Flood control per connection (`None`: off).
    pub limits: Option<Limits>,
    /// Whether logging in needs a credential.
    pub auth: AuthMode,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            history: 1000,
            heartbeat_ms: 5000,
            backlog_bytes: DEFAULT_BACKLOG,
            notice_delay: NOTICE_DELAY,
            journaled: false,
            admission: AdmissionConfig::default(),
            limits: Some(Limits::default()),
            auth: AuthMode::Open,
        }
    }
}

/// State recovered from the journal at start.
#[derive(Debug, Clone, Default)]
pub struct RouterState {
    /// Highest server sequence number used so far.
    pub last_seq: u64,
    /// Highest Lamport counter used so far.
    pub lamport: u64,
    /// Recent messages, oldest first.
    pub history: Vec<ChatMessage>,
}

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
}

impl Input {
    /// The input for a frame read from `conn`; `None` for frames that need nothing (`Pong`, and
    /// `Leave`, which the reader turns into [`Input::Disconnected`] with reason `quit`).
    pub fn from_frame(conn: ConnId, frame: ClientFrame) -> Option<Input> {
        Some(match frame {
            ClientFrame::Login { name } => Input::Login { conn, name },
            ClientFrame::LoginWith { name, credential } => Input::LoginWith { conn, name, credential },
            ClientFrame::Send { req, recipients, body, sent_at } => {
                Input::Send { conn, req, recipients, body, sent_at }
            }
            ClientFrame::Peers { req } => Input::Peers { conn, req },
            ClientFrame::History { req, limit } => Input::History { conn, req, limit: limit as usize },
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
    Store(ChatMessage),
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
        /// The connection.
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
}

/// The routing state machine; see the module documentation.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    clock: LamportClock,
    last_seq: u64,
    sessions: Sessions,
    history: MessageBuffer,
    publisher: Publisher,
    commit: Commit,
    admission: Admission,
    flood: Flood,
    auth: Auth,
    outputs: VecDeque<Output>,
}

impl Router {
    /// A router resuming from `state`.
    pub fn new(config: RouterConfig, state: RouterState) -> Self {
        let mut history = MessageBuffer::new(config.history);
        for m in state.history {
            history.insert(m);
        }
        Router {
            clock: LamportClock::starting_at(NodeId::SERVER, state.lamport),
            last_seq: state.last_seq,
            sessions: Sessions::default(),
            history,
            publisher: Publisher::new(config.notice_delay),
            commit: Commit::new(config.journaled, state.last_seq),
            admission: Admission::new(config.admission),
            flood: Flood::new(config.limits),
            auth: Auth::new(config.auth),
            outputs: VecDeque::new(),
            config,
        }
    }

    // ---------------------------------------------------------------- getters

    /// Highest server sequence number used so far.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Number of users online.
    pub fn online(&self) -> usize {
        self.sessions.online()
    }

    /// The name logged in on `conn`, if any.
    pub fn name_of(&self, conn: ConnId) -> Option<&UserName> {
        self.sessions.name_of(conn)
    }

    /// Effects waiting for the journal to make earlier messages durable.
    pub fn held(&self) -> usize {
        self.commit.held()
    }

    // ---------------------------------------------------------------- inputs

    /// Feeds one input observed at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Accepted { conn, addr } => self.accepted(now, conn, addr),
            Input::Opened { conn } => self.sessions.open(conn),
            Input::Login { conn, name } => self.login(conn, name),
            Input::LoginWith { conn, name, credential } => self.login_with(conn, name, credential),
            Input::Authenticated { conn, name } => self.authenticated(now, conn, name),
            Input::Registered { names } => self.registered(names),
            Input::Send { conn, req, recipients, body, sent_at } => {
                self.send(now, conn, req, recipients, body, sent_at)
            }
            Input::Peers { conn, req } => {
                let names = self.sessions.names_sorted();
                self.reply(conn, ServerFrame::Peers { req, names });
            }
            Input::History { conn, req, limit } => self.history(conn, req, limit),
            Input::Ping { conn } => self.reply(conn, ServerFrame::Pong),
            Input::Disconnected { conn, reason } => self.disconnected(conn, reason),
            Input::QueueFull { conn } => self.kick(conn, slow::SLOW_REASON),
            Input::Lag { head, cursors } => self.lag(head, &cursors),
            Input::Durable { upto } => self.durable(upto),
            Input::StorageFailed { reason } => self.storage_failed(reason),
            Input::EndOfTurn => self.end_turn(now),
            Input::Shutdown => self.shutdown(),
        }
    }

    /// Fires the deadlines returned by [`Router::poll_timeout`] that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_logins(now);
        self.release_refusals(now);
        self.end_turn(now);
    }

    // ---------------------------------------------------------------- outputs

    /// The next thing the shell must do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Router::handle_timeout`] must be called next (notices waiting to be published, a login
    /// deadline).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.publisher.deadline(), self.admission.deadline(), self.auth.deadline()].into_iter().flatten().min()
    }

    // ---------------------------------------------------------------- plumbing

    fn reply(&mut self, conn: ConnId, frame: ServerFrame) {
        self.visible(Visible::Reply { conn, frame });
    }

    fn reject(&mut self, conn: ConnId, req: u64, code: ErrorCode, message: String) {
        self.reply(conn, ServerFrame::Rejected { req, code, message });
    }

    fn stream(&mut self, frame: ServerFrame, seq: u64) {
        self.visible(Visible::Stream { frame, seq });
    }

    fn login(&mut self, conn: ConnId, name: UserName) {
        if self.sessions.name_of(conn).is_some() {
            let message = "already logged in".to_string();
            return self.reply(conn, ServerFrame::Rejected { req: 0, code: ErrorCode::Protocol, message });
        }
        // Names from the wire are only checked for safety: every naming rule applies here.
        let name = match UserName::new(name.as_str()) {
            Ok(name) => name,
            Err(e) => return self.refuse(conn, ErrorCode::InvalidName, e.to_string()),
        };
        if self.open_login_allowed(conn, &name) {
            self.log_in_as(conn, name);
        }
    }

    /// Starts the session of `name` on `conn` (its right to the name is settled), unless the same
    /// name is online.
    fn log_in_as(&mut self, conn: ConnId, name: UserName) {
        if self.refuse_reserved(conn, &name) {
            return;
        }
        if let Some((taken, _)) = self.sessions.lookup(&name) {
            let message = if *taken == name {
                format!("the name {name} is already taken by a user online")
            } else {
                format!("the name {name} is too much like {taken}, a user online")
            };
            return self.refuse(conn, ErrorCode::NameTaken, message);
        }
        let after = self.last_seq;
        self.sessions.log_in(conn, name.clone());
        self.logged_in(conn);
        self.outputs.push_back(Output::SessionStarted { conn, name: name.clone(), after });
        let online = self.sessions.names_sorted();
        let heartbeat_ms = self.config.heartbeat_ms;
        self.reply(conn, ServerFrame::Welcome { name: name.clone(), online, heartbeat_ms });
        // The notice goes to the stream before the newcomer subscribes to it: it never sees its own.
        self.stream(ServerFrame::Joined { name }, 0);
        self.sessions.subscribe(conn);
        self.visible(Visible::Subscribe { conn });
    }

    /// Refuses a login and closes the connection after the refusal.
    fn refuse(&mut self, conn: ConnId, code: ErrorCode, message: String) {
        self.reply(conn, ServerFrame::Refused { code, message });
        self.gone(conn);
        self.sessions.forget(conn);
        self.visible(Visible::Close { conn });
    }

    fn accept(&mut self, sender: UserName, recipients: Recipients, body: String, sent_at: Timestamp) -> ChatMessage {
        self.last_seq += 1;
        let id = chat_core::MessageId::new(NodeId::SERVER, self.last_seq);
        let lamport = self.clock.observe(sent_at);
        let message = ChatMessage { id, sender, recipients, body, lamport };
        self.history.insert(message.clone());
        self.outputs.push_back(Output::Store(message.clone()));
        message
    }

    /// Forgets what admission and flood control know of `conn`.
    fn gone(&mut self, conn: ConnId) {
        self.left(conn);
        self.flood.forget(conn);
    }

    fn disconnected(&mut self, conn: ConnId, reason: String) {
        self.gone(conn);
        let Some(name) = self.sessions.forget(conn) else { return };
        let after = self.last_seq;
        self.outputs.push_back(Output::SessionEnded { conn, name: name.clone(), after, reason: reason.clone() });
        self.stream(ServerFrame::Left { name, reason }, 0);
    }

    fn end_turn(&mut self, now: Instant) {
        if self.publisher.end_turn(now) {
            self.outputs.push_back(Output::Publish);
        }
    }

    fn shutdown(&mut self) {
        // The shell waits for the journal to catch up first; whatever is still not durable is refused.
        if self.commit.held() > 0 {
            self.storage_failed("the server stopped before the log caught up".into());
        }
        let conns = self.sessions.conns();
        let (code, reason) = match self.commit.failed() {
            Some(why) => (ErrorCode::StorageUnavailable, why.to_string()),
            None => (ErrorCode::ShuttingDown, "the server is shutting down".to_string()),
        };
        for &conn in &conns {
            let frame = ServerFrame::Closing { code, reason: reason.clone() };
            self.visible(Visible::Reply { conn, frame });
        }
        if self.publisher.publish_now() {
            self.outputs.push_back(Output::Publish);
        }
        // Departures are journaled; announcing them is moot (every connection is closing).
        for conn in conns {
            if let Some(name) = self.sessions.forget(conn) {
                let after = self.last_seq;
                self.outputs.push_back(Output::SessionEnded { conn, name, after, reason: "shutdown".into() });
            }
            self.visible(Visible::Close { conn });
        }
    }
}
