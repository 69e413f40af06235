//! The sans-IO core of a client session: login, request matching, history reassembly, liveness,
//! and resuming the session after the connection is lost.
//!
//! [`Session`] never touches a socket, a task or the clock: the shell (`task.rs`) feeds it frames
//! read from the server, the program's requests and timeouts, each with the time `now`, and
//! performs what it asks for. Tests compare whole output sequences (`session_tests.rs`).
//!
//! | input                                        | outputs                                                        |
//! |----------------------------------------------|----------------------------------------------------------------|
//! | [`Session::new`] / [`Session::with`]         | `Write(Enter { name, credential, quiet })`                     |
//! | `Welcome` while logging in                   | `LoggedIn { name, online, rooms }`; the ping and silence clocks start |
//! | `Refused` while logging in                   | `Closed(Refused { code, message })`                            |
//! | `Closing` while logging in again (a resume)  | `Disconnect`, then the next attempt (`Reconnecting`)           |
//! | another frame while logging in               | `Closed(Lost { protocol, "expected Welcome, got …" })`         |
//! | request `Send` / `Peers` / `History` / `JoinRoom` / `PartRoom` / `Rooms` / `Who` | `Write` of its frame; its ticket waits (a send carries its request ID as idempotency key) |
//! | `Sent` / `Peers` / `History { done: true }` / `Rooms` / `Who` / `Done` | `Answer { ticket, Ok(..) }`; `History` frames gather until `done` |
//! | `Rejected { req }`                           | `Answer { ticket, Err(Rejected) }`, or `Event(Error)` for an unknown `req` |
//! | `RateLimited { req, retry_after_ms }` for a send | nothing now; `Write(Send)` again (same `req`) once `retry_after_ms` has passed |
//! | `Message` with a sequence number above the cursor | `Event(Message)`; the cursor moves (one at or below it is a duplicate: dropped) |
//! | `Joined` / `Left` / `RoomJoined` / `RoomParted` / `Notice` | the matching `Event`                              |
//! | `Ping`                                       | `Write(Pong)`                                                  |
//! | `Closing { code, reason }`                   | lost, with the server's code                                   |
//! | `Welcome` / `Refused` once logged in         | end with `protocol` "unexpected login frame"                   |
//! | timeout: a heartbeat since the last request or `Ping` | `Write(Ping)` (a fixed rhythm, even while frames arrive) |
//! | timeout: [`SILENT_HEARTBEATS`] heartbeats without a frame | `Disconnect`, lost (`disconnected`, "the server stopped answering") |
//! | timeout far later than due (this process was stopped) | `Write(Ping)`, and the silence clock starts again: the server is not blamed for our own freeze |
//! | [`Session::handle_connection_lost`]          | lost, with the shell's reason                                  |
//! | request `Leave`                              | `Write(Leave)`, pending tickets `Err(Closed)`, `Answer { Left }`, `Closed(Left)` |
//! | any request before the first login           | `Answer { ticket, Err(Closed) }`                               |
//!
//! **Lost**, without reconnection ([`SessionConfig::reconnect`] `None`), is the *end*: every pending
//! ticket answered `Err(Closed)` (oldest first), then `Event(Disconnected { code, reason })`, then
//! `Closed(Lost { code, reason })`. `Closed` is always the last output; a closed session ignores
//! frames and timeouts.
//!
//! **Lost**, with reconnection, when the server may still hold the session (connection loss,
//! silence, `shutting_down`, `storage_unavailable`):
//!
//! | input                                | outputs                                                            |
//! |--------------------------------------|--------------------------------------------------------------------|
//! | the loss                             | `Event(Reconnecting { attempt: 1, in_ms })`; requests keep waiting, new ones are queued (bounded) |
//! | timeout: the wait is over            | `Connect` (the shell dials, then calls [`Session::handle_connected`] or [`Session::handle_connect_failed`]) |
//! | `handle_connect_failed`              | `Event(Reconnecting { attempt + 1, in_ms })` (backoff, see `reconnect`) |
//! | `handle_connected`                   | `Write(Enter { resume: token and cursor })`                        |
//! | `Welcome { resumed: Some(n) }`       | `Event(Resumed { missed: n })`, then every waiting request written again in order (a send with its same key: the server stores it once) |
//! | `Welcome { resumed: None }`          | `Event(Notice)` (the session had expired: a new one began), `Event(Resumed { missed: 0 })`, requests written again |
//! | `Refused { busy }`                   | the next attempt                                                    |
//! | `Refused` otherwise                  | `Closed(Refused)`                                                   |
//! | no session after `give_up`           | the end, with `disconnected`                                        |
//!
//! Call order (as in quinn-proto): feed an input; then drain [`Session::poll_output`] and re-arm the
//! timer from [`Session::poll_timeout`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use chat_core::{ChatMessage, CoreError, ErrorCode, Event, OutgoingMessage, PeerInfo, SendReceipt, UserName};

use super::reconnect::Backoff;
pub use super::session_io::{Answer, End, Output, Request, SessionConfig, Ticket};
use crate::protocol::{ClientFrame, Credential, Enter, Resume, ServerFrame};

/// Heartbeats of silence after which the server is considered gone.
pub const SILENT_HEARTBEATS: u32 = 3;

/// Longest wait honoured from a `RateLimited` answer (a server asking for more is capped).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A request written to the server (or queued while away), waiting for its answer.
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) ticket: Ticket,
    pub(super) kind: Kind,
    /// Its frame, to write again after `RateLimited` or a resume.
    pub(super) frame: ClientFrame,
}

#[derive(Debug)]
pub(super) enum Kind {
    Send,
    Peers,
    /// The messages of the `History` frames received so far.
    History(Vec<ChatMessage>),
    Rooms,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// `Enter` written, waiting for `Welcome` (`again`: a re-login after a loss).
    LoggingIn {
        again: bool,
    },
    Ready {
        heartbeat: Duration,
        /// When the last frame arrived.
        last_heard: Instant,
        /// When the last request or `Ping` was written.
        last_sent: Instant,
    },
    /// The connection is lost; the next attempt is at `retry_at` (or under way, `dialing`).
    Away {
        attempt: u32,
        retry_at: Instant,
        dialing: bool,
    },
    Closed,
}

/// One client session with a chat server, as a state machine.
#[derive(Debug)]
pub struct Session {
    pub(super) config: SessionConfig,
    pub(super) state: State,
    /// Requests written and not yet answered, by request ID (ordered, so endings are deterministic).
    pub(super) pending: BTreeMap<u64, Waiting>,
    pub(super) next_req: u64,
    pub(super) next_ticket: u64,
    /// Sends refused as too fast, by when to send them again.
    pub(super) resends: BTreeSet<(Instant, u64)>,
    pub(super) out: VecDeque<Output>,
    /// The session token (after the first `Welcome`).
    pub(super) token: Option<String>,
    /// The highest message sequence number received.
    pub(super) cursor: u64,
    /// The server's heartbeat (from the last `Welcome`).
    pub(super) heartbeat: Duration,
    /// When the last input arrived (to notice that this process was stopped).
    pub(super) last_input: Option<Instant>,
    /// Since when the session has been without a connection.
    pub(super) lost_at: Option<Instant>,
    /// Why it was lost (for giving up).
    pub(super) lost_why: String,
    pub(super) backoff: Option<Backoff>,
}

/// The error every request gets once the session is over.
pub(crate) fn closed() -> CoreError {
    CoreError::Closed("the connection to the server is closed".into())
}

impl Session {
    /// A session logging in as `name`: its first output is `Write(Enter { name, .. })`.
    pub fn new(name: UserName) -> Self {
        Session::with(SessionConfig::new(name))
    }

    /// A session logging in as `name` with `credential` if given, without reconnection.
    pub fn login(name: UserName, credential: Option<Credential>) -> Self {
        Session::with(SessionConfig { credential, ..SessionConfig::new(name) })
    }

    /// A session as `config` says; its first output is `Write(Enter { .. })`.
    pub fn with(config: SessionConfig) -> Self {
        let mut session = Session {
            state: State::LoggingIn { again: false },
            pending: BTreeMap::new(),
            next_req: 1,
            next_ticket: 1,
            resends: BTreeSet::new(),
            out: VecDeque::new(),
            token: None,
            cursor: 0,
            heartbeat: Duration::from_secs(5),
            last_input: None,
            lost_at: None,
            lost_why: String::new(),
            backoff: config.reconnect.map(Backoff::new),
            config,
        };
        session.write_enter();
        session
    }

    // ---- getters ----

    /// Whether the login was accepted and the session has not ended.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready { .. })
    }

    /// The highest message sequence number received (what a resume starts after).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Whether the session is over (`Closed` was emitted).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    // ---- inputs ----

    /// A frame read from the server.
    pub fn handle_frame(&mut self, now: Instant, frame: ServerFrame) {
        self.last_input = Some(now);
        match &mut self.state {
            State::Closed | State::Away { .. } => {}
            State::LoggingIn { again } => {
                let again = *again;
                self.login_answer(now, frame, again)
            }
            State::Ready { last_heard, .. } => {
                *last_heard = now;
                self.frame(now, frame);
            }
        }
    }

    /// A request from the program; the returned ticket identifies its answer.
    pub fn handle_request(&mut self, now: Instant, request: Request) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        let write = match self.state {
            State::Ready { .. } => true,
            State::Away { .. } | State::LoggingIn { again: true } => false,
            State::LoggingIn { again: false } | State::Closed => {
                self.out.push_back(Output::Answer { ticket, answer: Err(closed()) });
                return ticket;
            }
        };
        let req = self.next_req;
        let (kind, frame) = match request {
            Request::Send(msg) => {
                let OutgoingMessage { recipients, body, sent_at } = msg;
                (Kind::Send, ClientFrame::Send { req, recipients, body, sent_at, key: req })
            }
            Request::Peers => (Kind::Peers, ClientFrame::Peers { req }),
            Request::History { limit, room } => {
                let limit = limit.min(u32::MAX as usize) as u32;
                (Kind::History(Vec::new()), ClientFrame::History { req, limit, room })
            }
            Request::JoinRoom(room) => (Kind::History(Vec::new()), ClientFrame::JoinRoom { req, room }),
            Request::PartRoom(room) => (Kind::Done, ClientFrame::PartRoom { req, room }),
            Request::Rooms => (Kind::Rooms, ClientFrame::Rooms { req }),
            Request::Who(room) => (Kind::Peers, ClientFrame::Who { req, room }),
            Request::Leave => {
                if write {
                    self.out.push_back(Output::Write(ClientFrame::Leave));
                }
                self.answer_pending_closed();
                self.out.push_back(Output::Answer { ticket, answer: Ok(Answer::Left) });
                self.close(End::Left);
                return ticket;
            }
        };
        if !write && self.pending.len() >= self.backoff.as_ref().map_or(0, |b| b.policy().queue) {
            let answer = Err(CoreError::Closed("disconnected, and too many requests are waiting".into()));
            self.out.push_back(Output::Answer { ticket, answer });
            return ticket;
        }
        self.next_req += 1;
        if write {
            if let State::Ready { last_sent, .. } = &mut self.state {
                *last_sent = now;
            }
            self.out.push_back(Output::Write(frame.clone()));
        }
        self.pending.insert(req, Waiting { ticket, kind, frame });
        ticket
    }

    /// Time passed: send again what was refused as too fast once its wait is over, write a `Ping`
    /// if one is due, notice that the server fell silent, try to reconnect when it is time.
    pub fn handle_timeout(&mut self, now: Instant) {
        let frozen = self.last_input.is_some_and(|t| now.saturating_duration_since(t) > self.heartbeat * 2);
        self.last_input = Some(now);
        match &mut self.state {
            State::Ready { heartbeat, last_heard, last_sent } => {
                if frozen {
                    // Our own process was stopped: give the server a fresh chance before blaming it.
                    *last_heard = now;
                    *last_sent = now;
                    self.out.push_back(Output::Write(ClientFrame::Ping));
                    return;
                }
                if now >= *last_heard + *heartbeat * SILENT_HEARTBEATS {
                    self.out.push_back(Output::Disconnect);
                    return self.lost(now, ErrorCode::Disconnected, "the server stopped answering".into());
                }
                while let Some(&(at, req)) = self.resends.first() {
                    if at > now {
                        break;
                    }
                    self.resends.pop_first();
                    if let Some(Waiting { kind: Kind::Send, frame, .. }) = self.pending.get(&req) {
                        *last_sent = now;
                        self.out.push_back(Output::Write(frame.clone()));
                    }
                }
                if now >= *last_sent + *heartbeat {
                    *last_sent = now;
                    self.out.push_back(Output::Write(ClientFrame::Ping));
                }
            }
            State::Away { retry_at, dialing, .. } => {
                if *dialing || now < *retry_at {
                    return;
                }
                let give_up = self.backoff.as_ref().map_or(Duration::ZERO, |b| b.policy().give_up);
                if self.lost_at.is_some_and(|at| now.saturating_duration_since(at) >= give_up) {
                    let reason = format!("gave up reconnecting after {} s: {}", give_up.as_secs(), self.lost_why);
                    return self.end(ErrorCode::Disconnected, reason);
                }
                *dialing = true;
                self.out.push_back(Output::Connect);
            }
            State::LoggingIn { .. } | State::Closed => {}
        }
    }

    /// The connection broke (end of stream, read or write error); `reason` says how.
    pub fn handle_connection_lost(&mut self, now: Instant, reason: String) {
        self.last_input = Some(now);
        match self.state {
            State::Closed | State::Away { .. } => {}
            State::LoggingIn { again: false } => self.end(ErrorCode::Disconnected, reason),
            State::LoggingIn { again: true } | State::Ready { .. } => self.lost(now, ErrorCode::Disconnected, reason),
        }
    }

    // ---- outputs ----

    /// The next thing to do, if any. Drain it after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next: the next `Ping`, the silence deadline,
    /// a resend, or the next reconnection attempt.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Ready { heartbeat, last_heard, last_sent } => {
                let resend = self.resends.first().map(|(at, _)| *at);
                let beat = (last_sent + heartbeat).min(last_heard + heartbeat * SILENT_HEARTBEATS);
                Some(resend.map_or(beat, |r| r.min(beat)))
            }
            State::Away { retry_at, dialing: false, .. } => Some(retry_at),
            State::Away { dialing: true, .. } | State::LoggingIn { .. } | State::Closed => None,
        }
    }

    // ---- internals ----

    pub(super) fn write_enter(&mut self) {
        let c = &self.config;
        let resume = self.token.clone().map(|token| Resume { token, cursor: self.cursor });
        let enter = Enter { name: c.name.clone(), credential: c.credential.clone(), resume, quiet: c.quiet };
        self.out.push_back(Output::Write(ClientFrame::Enter(enter)));
    }

    fn login_answer(&mut self, now: Instant, frame: ServerFrame, again: bool) {
        match frame {
            ServerFrame::Welcome { name, online, heartbeat_ms, session } => {
                self.heartbeat = Duration::from_millis(heartbeat_ms.max(1));
                self.state = State::Ready { heartbeat: self.heartbeat, last_heard: now, last_sent: now };
                self.token = Some(session.token);
                self.lost_at = None;
                if !again {
                    self.out.push_back(Output::LoggedIn { name, online, rooms: session.rooms });
                    return;
                }
                let missed = match session.resumed {
                    Some(missed) => missed,
                    None => {
                        let text = "the server no longer had your session: this is a new one, and messages sent \
                                    while you were away may be missing (see the history)";
                        self.out.push_back(Output::Event(Event::Notice { text: text.into() }));
                        0
                    }
                };
                self.out.push_back(Output::Event(Event::Resumed { missed }));
                for waiting in self.pending.values_mut() {
                    if let Kind::History(gathered) = &mut waiting.kind {
                        gathered.clear();
                    }
                    self.out.push_back(Output::Write(waiting.frame.clone()));
                }
            }
            ServerFrame::Refused { code: ErrorCode::Busy, message } if again => {
                self.out.push_back(Output::Disconnect);
                self.lost_why = message;
                self.retry(now, 1);
            }
            ServerFrame::Closing { reason, .. } if again => {
                // The server gave up on this attempt before answering it (a cluster instance whose
                // shared log stalled past the login deadline): the session may still be there.
                self.out.push_back(Output::Disconnect);
                self.lost_why = reason;
                self.retry(now, 1);
            }
            ServerFrame::Refused { code, message } => {
                self.answer_pending_closed();
                self.close(End::Refused { code, message })
            }
            other => self.end(ErrorCode::Protocol, format!("expected Welcome, got {other:?}")),
        }
    }

    /// A frame once logged in.
    fn frame(&mut self, now: Instant, frame: ServerFrame) {
        let event = match frame {
            ServerFrame::Message(m) => {
                if m.id.seq <= self.cursor {
                    return; // already delivered (a resume replays from the cursor)
                }
                self.cursor = m.id.seq;
                Event::Message(m)
            }
            ServerFrame::Joined { name } => Event::PeerJoined(PeerInfo::named(name)),
            ServerFrame::Left { name, .. } => Event::PeerLeft(PeerInfo::named(name)),
            ServerFrame::RoomJoined { room, name } => Event::RoomJoined { room, peer: PeerInfo::named(name) },
            ServerFrame::RoomParted { room, name } => Event::RoomLeft { room, peer: PeerInfo::named(name) },
            ServerFrame::Notice { text } => Event::Notice { text },
            ServerFrame::Sent { req, id, unknown, queued } => {
                let receipt = SendReceipt { id, unknown, queued };
                return self.answer(req, |kind| matches!(kind, Kind::Send).then_some(Answer::Sent(receipt)));
            }
            ServerFrame::Peers { req, names } | ServerFrame::Who { req, names, .. } => {
                let peers = names.into_iter().map(PeerInfo::named).collect();
                return self.answer(req, |kind| matches!(kind, Kind::Peers).then_some(Answer::Peers(peers)));
            }
            ServerFrame::Rooms { req, rooms } => {
                return self.answer(req, |kind| matches!(kind, Kind::Rooms).then_some(Answer::Rooms(rooms)));
            }
            ServerFrame::Done { req } => {
                return self.answer(req, |kind| matches!(kind, Kind::Done).then_some(Answer::Done));
            }
            ServerFrame::History { req, messages, done, .. } => return self.history(req, messages, done),
            ServerFrame::Rejected { req, code, message } => match self.pending.remove(&req) {
                Some(waiting) => {
                    let answer = Err(CoreError::Rejected { code, message });
                    self.out.push_back(Output::Answer { ticket: waiting.ticket, answer });
                    return;
                }
                None => Event::Error { code, message },
            },
            ServerFrame::Ping => {
                self.out.push_back(Output::Write(ClientFrame::Pong));
                return;
            }
            ServerFrame::Pong => return,
            ServerFrame::RateLimited { req, retry_after_ms } => {
                if let Some(Waiting { kind: Kind::Send, .. }) = self.pending.get(&req) {
                    let wait = Duration::from_millis(retry_after_ms).min(MAX_RETRY_AFTER);
                    self.resends.insert((now + wait, req));
                }
                return;
            }
            ServerFrame::Closing { code, reason } => {
                self.out.push_back(Output::Disconnect);
                return self.lost(now, code, reason);
            }
            ServerFrame::Welcome { .. } | ServerFrame::Refused { .. } => {
                return self.end(ErrorCode::Protocol, "unexpected login frame".into());
            }
        };
        self.out.push_back(Output::Event(event));
    }

    fn answer_pending_closed(&mut self) {
        for waiting in std::mem::take(&mut self.pending).into_values() {
            self.out.push_back(Output::Answer { ticket: waiting.ticket, answer: Err(closed()) });
        }
    }

    /// Ends the session for `code` (see the module documentation).
    pub(super) fn end(&mut self, code: ErrorCode, reason: String) {
        let was_ready = !matches!(self.state, State::LoggingIn { again: false } | State::Closed);
        self.answer_pending_closed();
        if was_ready {
            self.out.push_back(Output::Event(Event::Disconnected { code, reason: reason.clone() }));
        }
        self.close(End::Lost { code, reason });
    }

    fn close(&mut self, end: End) {
        self.state = State::Closed;
        self.out.push_back(Output::Closed(end));
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
