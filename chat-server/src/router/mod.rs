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
//! | `Login` ok        | `SessionStarted`, `Record(Session)`, `Reply(Welcome)`, `Deliver` of messages kept while offline, `Stream(Joined)` (not for a quiet session), `Subscribe` |
//! | `Enter` resume    | `Resumed`, `Reply(Welcome { resumed })`, `Deliver` of what it missed, `Subscribe` (see `resume`) |
//! | `LoginWith`       | `Authenticate` (checked by the shell), then on `Authenticated` as `Login` (see `auth`) |
//! | `Login` taken     | `Reply(Refused { name_taken })`, `Close`                                       |
//! | `Send` broadcast  | `Store(msg)`, `Stream(Message)`, `Reply(Sent)`                                 |
//! | `Send` uni/multi/room | `Store(msg)`, `Deliver(Message)` to the recipients online and the sender, `Reply(Sent)` |
//! | `Send` again (same key) | `Reply(Sent)` as the first time; nothing stored                          |
//! | `Send` bad        | `Reply(Rejected { unknown_user / too_long / protocol / not_member })`          |
//! | `JoinRoom`, `PartRoom` | `Record`, `Deliver(RoomJoined / RoomParted)` to the members, `Reply(History)` / `Reply(Done)` (see `room_requests`) |
//! | `Peers`, `History`, `Rooms`, `Who` | the answer of the same name; `History` in frames, the last with `done = true` |
//! | `Ping`            | `Reply(Pong)`                                                                  |
//! | `Disconnected` quit | `SessionEnded`, `Stream(Left)`                                               |
//! | (more than `presence_limit` online) | no `Stream(Joined / Left)`; one `Stream(Notice)` when announcing stops or resumes (see `presence`) |
//! | `Disconnected` other | nothing yet: the session is detached for the grace period (see `resume`); ended at once for a connection that cannot resume (`Legacy`, `NoResume`) |
//! | grace over        | `SessionEnded`, `Stream(Left { timeout })`                                     |
//! | `Send` too fast   | `Reply(RateLimited { retry_after_ms })`, `Pause` (the shell stops reading it); sends read during the window are held; window over: `Resume`; unheeded: `Kick { flood }` (see `limits`, `throttle`) |
//! | `QueueFull`       | `Kick { slow_consumer }`, `SessionEnded`, `Stream(Left)`                       |
//! | `Lag`             | `Kick` for every reader more than the backlog behind, then `Trim`              |
//! | `EndOfTurn`       | `Publish` if a message waits, or notices waited [`NOTICE_DELAY`] (see `publish`)|
//! | `Durable`         | the effects held behind messages now durable, in order (see `commit`)          |
//! | `StorageFailed`   | held `Sent` become `Rejected { storage_unavailable }`; held messages dropped     |
//! | `Shutdown`        | `Reply(Closing)` to all, `Publish`, `Close` per connection; sessions stay open in the journal, to be resumed after a restart |
//!
//! With a journal ([`RouterConfig::journaled`]) every effect a client sees (`Reply`, `Deliver`,
//! `Stream`, `Subscribe`, `Close`) waits until every message accepted before it is durable; `Store`,
//! `SessionStarted`/`SessionEnded` (for the journal) and `Kick` are output at once. The tables above
//! show the order of outputs once released.
//!
//! Every message gets the wall-clock time of the last `Clock` input (never less than the previous
//! message's), so times along the order never go back.
//!
//! Submodules, one concept each: `admission` (connection limits, login timeout), `auth` (who may
//! log in under which name), `login` (starting a session), `sessions` (connections and sessions),
//! `resume` (detached sessions, resumes, the grace period), `recent` (the recent-message ring),
//! `rooms` (rooms and members), `room_requests` (joining, parting, listing), `offline` (known users
//! and their offline queues), `limits` (flood control: buckets per connection and per address),
//! `throttle` (refusal windows: answers, held sends, pausing the reader), `routing` (who receives a message), `commit`
//! (the committed watermark), `publish` (when the stream is published: notice debouncing), `slow`
//! (the slow-consumer policy), `history` (answers in chunks), `restore` (the state a journal
//! rebuilds), `presence` (when joins and leaves are announced).

mod admission;
mod auth;
#[cfg(test)]
mod auth_tests;
mod commit;
#[cfg(test)]
mod commit_tests;
mod config;
#[cfg(test)]
mod guard_tests;
mod history;
mod io;
mod limits;
mod login;
mod offline;
#[cfg(test)]
mod policy_tests;
mod presence;
mod publish;
mod recent;
pub mod restore;
mod resume;
#[cfg(test)]
mod resume_tests;
mod room_requests;
#[cfg(test)]
mod room_tests;
mod rooms;
mod routing;
mod sessions;
mod slow;
#[cfg(test)]
mod tests;
mod throttle;
#[cfg(test)]
mod throttle_tests;

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use chat_core::{ChatMessage, ErrorCode, LamportClock, NodeId, Recipients, Timestamp, UserName};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::journal::record::Stored;
use crate::protocol::ServerFrame;
use admission::Admission;
pub use admission::{
    AdmissionConfig, DEFAULT_LOGIN_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PENDING_PER_ADDR, EVICTION_AGE,
};
use auth::Auth;
pub use auth::{AuthMode, FAILURE_MEMORY, FREE_FAILURES, MAX_FAILURE_DELAY, RESERVED_NAMES, is_reserved};
use commit::{Commit, Visible};
pub use limits::{
    ADDRESS_FACTOR, AddressLimits, DEFAULT_ADDRESS_BYTE_RATE, DEFAULT_ADDRESS_MESSAGE_RATE, DEFAULT_BYTE_RATE,
    DEFAULT_FLOOD_STRIKES, DEFAULT_MESSAGE_RATE, FLOOD_GRACE, Limits, MAX_ADDRESSES, times,
};
pub(crate) use limits::{Flood, Verdict, retry_after_ms};
use offline::Offline;
pub use offline::{
    DEFAULT_MAX_KNOWN, DEFAULT_OFFLINE_BYTES, DEFAULT_OFFLINE_MESSAGES, DEFAULT_OFFLINE_TOTAL_BYTES, OfflineLimits,
};
use presence::{Announce, Presence};
pub use presence::{DEFAULT_PRESENCE_LIMIT, MAX_LISTED_NAMES, MAX_WELCOME_NAMES};
use publish::Publisher;
use recent::Recent;
pub use recent::{DEFAULT_RECENT_BYTES, DEFAULT_RECENT_MESSAGES, RecentLimits};
pub use restore::{KeptSession, RouterState};
pub use room_requests::DEFAULT_JOIN_HISTORY;
use rooms::Rooms;
pub use rooms::{DEFAULT_MAX_ROOMS, DEFAULT_MAX_ROOMS_PER_USER, RoomLimits};
use sessions::Sessions;
pub use sessions::{MAX_KEYS, Receipt};
use throttle::Throttle;
pub use throttle::{MAX_HELD_BYTES, MAX_HELD_SENDS};

/// Identifies one connection inside the server (assigned by the shell, never reused in a run).
pub type ConnId = u64;

/// The departure reason of a clean `Leave`: it ends the session at once (any other reason detaches it).
pub const QUIT: &str = "quit";

pub use config::{DEFAULT_BACKLOG, DEFAULT_GRACE, NOTICE_DELAY, RouterConfig};
pub use history::HISTORY_CHUNK_BYTES;
pub use io::{ClusterLogin, Input, Output};

/// The routing state machine; see the module documentation.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    clock: LamportClock,
    last_seq: u64,
    /// Wall-clock time of the last `Clock` input, and of the newest message (never less).
    wall: u64,
    sessions: Sessions,
    recent: Recent,
    rooms: Rooms,
    offline: Offline,
    /// Session tokens.
    rng: StdRng,
    /// Sessions restored from the journal, detached from the first input on.
    restored: Option<Vec<UserName>>,
    /// Protocol version 1 connections that receive what is broadcast, one frame at a time.
    legacy_readers: BTreeSet<ConnId>,
    publisher: Publisher,
    commit: Commit,
    admission: Admission,
    flood: Flood,
    throttle: Throttle,
    auth: Auth,
    presence: Presence,
    outputs: VecDeque<Output>,
}

impl Router {
    /// A router resuming from `state`.
    pub fn new(config: RouterConfig, state: RouterState) -> Self {
        let mut router = Router {
            clock: LamportClock::starting_at(NodeId::SERVER, state.lamport),
            last_seq: state.last_seq,
            wall: state.time,
            sessions: Sessions::default(),
            recent: Recent::new(config.recent),
            rooms: Rooms::new(config.rooms),
            offline: Offline::new(config.offline),
            rng: StdRng::from_seed(config.seed),
            restored: None,
            legacy_readers: BTreeSet::new(),
            publisher: Publisher::new(config.notice_delay),
            commit: Commit::new(config.journaled, state.last_seq),
            admission: Admission::new(config.admission),
            flood: Flood::new(config.limits),
            throttle: Throttle::default(),
            auth: Auth::new(config.auth),
            presence: Presence::new(config.presence_limit),
            outputs: VecDeque::new(),
            config,
        };
        router.restore(state);
        router
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

    /// The name logged in on `conn`, if any (its session may be attached elsewhere now).
    pub fn name_of(&self, conn: ConnId) -> Option<&UserName> {
        self.sessions.name_of(conn)
    }

    /// Every connection the router knows (logged in or not), ascending.
    pub fn connections(&self) -> Vec<ConnId> {
        self.sessions.conns()
    }

    /// Effects waiting for the journal to make earlier messages durable.
    pub fn held(&self) -> usize {
        self.commit.held()
    }

    // ---------------------------------------------------------------- inputs

    /// Feeds one input observed at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.start_restored(now);
        match input {
            Input::Accepted { conn, addr } => self.accepted(now, conn, addr),
            Input::Opened { conn } => self.sessions.open(conn),
            Input::Legacy { conn } => self.sessions.set_legacy(conn),
            Input::NoResume { conn } => self.sessions.set_unresumable(conn),
            Input::Clock { unix_ms } => self.wall = self.wall.max(unix_ms),
            Input::Login { conn, name } => self.login(now, conn, name, login::plain()),
            Input::LoginWith { conn, name, credential } => self.login_with(conn, name, credential, login::plain()),
            Input::Enter { conn, enter } => self.enter(now, conn, enter),
            Input::Authenticated { conn, name } => self.authenticated(now, conn, name),
            Input::Registered { names } => self.registered(names),
            Input::Send { conn, req, recipients, body, sent_at, key } => {
                self.release_held(now, conn);
                self.send(now, conn, req, recipients, body, sent_at, key)
            }
            Input::JoinRoom { conn, req, room } => self.join_room(conn, req, room),
            Input::PartRoom { conn, req, room } => self.part_room(conn, req, room),
            Input::Rooms { conn, req } => self.list_rooms(conn, req),
            Input::Who { conn, req, room } => self.who(conn, req, room),
            Input::Peers { conn, req } => {
                let mut names = self.sessions.names_sorted();
                let notice = presence::cut(&mut names, MAX_LISTED_NAMES);
                self.reply(conn, ServerFrame::Peers { req, names });
                if let Some(text) = notice {
                    self.reply(conn, ServerFrame::Notice { text });
                }
            }
            Input::History { conn, req, limit, room } => self.history(conn, req, limit, room),
            Input::Ping { conn } => self.reply(conn, ServerFrame::Pong),
            Input::Disconnected { conn, reason } => self.disconnected(now, conn, reason),
            Input::QueueFull { conn } => self.kick(conn, slow::SLOW_REASON),
            Input::Lag { head, cursors } => self.lag(head, &cursors),
            Input::Durable { upto } => self.durable(upto),
            Input::StorageFailed { reason } => self.storage_failed(reason),
            Input::EndOfTurn => self.end_turn(now),
            Input::Shutdown => self.shutdown(),
            Input::Admit(login) => self.admit(now, login),
            Input::AdmitAccount(login) => self.admit_account(now, login),
            Input::Kicked { conn, reason } => self.end_session_of(conn, reason),
        }
    }

    /// Fires the deadlines returned by [`Router::poll_timeout`] that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.start_restored(now);
        self.expire_logins(now);
        self.expire_sessions(now);
        self.release_refusals(now);
        self.end_windows(now);
        self.end_turn(now);
    }

    // ---------------------------------------------------------------- outputs

    /// The next thing the shell must do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Router::handle_timeout`] must be called next (notices waiting to be published, a login
    /// deadline, the end of a refusal window).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.publisher.deadline(),
            self.admission.deadline(),
            self.auth.deadline(),
            self.sessions.next_expiry(),
            self.throttle.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
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

    /// Orders a message: the next sequence number, a Lamport stamp after the sender's, the time.
    fn order(&mut self, sender: UserName, recipients: Recipients, body: String, sent_at: Timestamp) -> ChatMessage {
        self.last_seq += 1;
        let id = chat_core::MessageId::new(NodeId::SERVER, self.last_seq);
        let lamport = self.clock.observe(sent_at);
        let message = ChatMessage { id, sender, recipients, body, lamport, time: self.wall };
        self.recent.push(message.clone());
        message
    }

    /// Stores an ordered message: to the journal, and to the offline queues of its `queued` recipients.
    fn store(&mut self, stored: Stored) {
        for name in &stored.queued {
            self.offline.keep(name, stored.message.clone());
        }
        self.outputs.push_back(Output::Store(stored));
    }

    /// Forgets what admission and flood control know of `conn`.
    fn gone(&mut self, conn: ConnId) {
        self.legacy_readers.remove(&conn);
        self.left(conn);
        self.flood.forget(conn);
        self.throttle.forget(conn);
    }

    /// `conn` is gone: a clean `quit` (or a kick) ends its session; any other reason detaches it
    /// for the grace period (see `resume`).
    fn disconnected(&mut self, now: Instant, conn: ConnId, reason: String) {
        if reason == QUIT || self.config.grace.is_zero() || !self.sessions.is_resumable(conn) {
            return self.end_session_of(conn, reason);
        }
        self.gone(conn);
        self.detach(now, conn);
    }

    /// Forgets `conn` and ends the session it carries, announcing the departure.
    fn end_session_of(&mut self, conn: ConnId, reason: String) {
        self.gone(conn);
        let Some(name) = self.sessions.forget(conn) else { return };
        self.end_session(Some(conn), &name, reason);
    }

    /// Ends `name`'s session (attached to `conn`, or detached), journaled and announced.
    fn end_session(&mut self, conn: Option<ConnId>, name: &UserName, reason: String) {
        let Some((name, session)) = self.sessions.end(name) else { return };
        if session.quiet {
            // A quiet session (a benchmark, a one-shot) leaves no membership behind.
            for room in self.rooms.of(&name) {
                self.leave_room(&name, &room, None);
            }
        }
        let after = self.last_seq;
        let conn = conn.or(session.conn).unwrap_or(0);
        self.outputs.push_back(Output::SessionEnded { conn, name: name.clone(), after, reason: reason.clone() });
        if !session.quiet {
            self.announce(ServerFrame::Left { name, reason });
        }
    }

    /// Announces a `Joined` or `Left` (the session table already changed) unless the crowd is too
    /// large (see `presence`).
    fn announce(&mut self, frame: ServerFrame) {
        let online = self.sessions.visible_count();
        let verdict = match frame {
            ServerFrame::Joined { .. } => self.presence.joined(online),
            _ => self.presence.left(online),
        };
        match verdict {
            Announce::It => self.stream(frame, 0),
            Announce::Nothing => {}
            Announce::Notice(text) => self.stream(ServerFrame::Notice { text }, 0),
        }
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
        // Sessions are not ended: they stay open in the journal and are kept, detached, by the next
        // start of the server for the grace period, so clients resume across the restart.
        for conn in conns {
            self.sessions.forget(conn);
            self.visible(Visible::Close { conn });
        }
    }
}
