//! The sans-IO core of a client session: login, request matching, history reassembly, liveness.
//!
//! [`Session`] never touches a socket, a task or the clock: the shell (`task.rs`) feeds it frames
//! read from the server, the program's requests and timeouts, each with the time `now`, and
//! performs what it asks for. Tests compare whole output sequences (`session_tests.rs`).
//!
//! | input                                        | outputs                                                        |
//! |----------------------------------------------|----------------------------------------------------------------|
//! | [`Session::new`] / [`Session::login`]        | `Write(Login)`, or `Write(LoginWith)` with a credential        |
//! | `Welcome` while logging in                   | `LoggedIn { name, online }`; the ping and silence clocks start |
//! | `Refused` while logging in                   | `Closed(Refused { code, message })`                            |
//! | another frame while logging in               | `Closed(Lost { protocol, "expected Welcome, got …" })`         |
//! | request `Send` / `Peers` / `History`         | `Write(Send / Peers / History { req })`; its ticket waits      |
//! | `Sent` / `Peers` / `History { done: true }`  | `Answer { ticket, Ok(..) }`; `History` frames gather until `done` |
//! | `Rejected { req }`                           | `Answer { ticket, Err(Rejected) }`, or `Event(Error)` for an unknown `req` |
//! | `RateLimited { req, retry_after_ms }` for a send | nothing now; `Write(Send)` again (same `req`) once `retry_after_ms` has passed |
//! | `Message` / `Joined` / `Left`                | `Event(Message / PeerJoined / PeerLeft)`                       |
//! | `Ping`                                       | `Write(Pong)`                                                  |
//! | `Closing { code, reason }`                   | end with the server's code                                     |
//! | `Welcome` / `Refused` once logged in         | end with `protocol` "unexpected login frame"                   |
//! | timeout: a heartbeat since the last request or `Ping` | `Write(Ping)` (a fixed rhythm, even while frames arrive) |
//! | timeout: [`SILENT_HEARTBEATS`] heartbeats without a frame | end with `disconnected` "the server stopped answering" |
//! | [`Session::handle_connection_lost`]          | end with `disconnected` and the shell's reason                 |
//! | request `Leave`                              | `Write(Leave)`, pending tickets `Err(Closed)`, `Answer { Left }`, `Closed(Left)` |
//! | any request once closed (or before login)    | `Answer { ticket, Err(Closed) }`                               |
//!
//! To *end* is: every pending ticket answered `Err(Closed)` (oldest first), then
//! `Event(Disconnected { code, reason })`, then `Closed(Lost { code, reason })`. `Closed` is always
//! the last output; a closed session ignores frames and timeouts.
//!
//! Call order (as in quinn-proto): feed [`Session::handle_frame`], [`Session::handle_request`],
//! [`Session::handle_timeout`] or [`Session::handle_connection_lost`]; then drain
//! [`Session::poll_output`] and re-arm the timer from [`Session::poll_timeout`].
//!
//! Pending requests are not capped here: each one is a caller waiting on its answer, so the callers'
//! own concurrency bounds them (the shell's request queue bounds what is not yet handed over).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use chat_core::{ChatMessage, CoreError, ErrorCode, Event, OutgoingMessage, PeerInfo, SendReceipt, UserName};

use crate::protocol::{ClientFrame, Credential, ServerFrame};

/// Heartbeats of silence after which the server is considered gone.
pub const SILENT_HEARTBEATS: u32 = 3;

/// Longest wait honoured from a `RateLimited` answer (a server asking for more is capped).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Identifies one request's future answer (see [`Output::Answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

/// What the program asks of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Send a message; answered by [`Answer::Sent`].
    Send(OutgoingMessage),
    /// Who is online; answered by [`Answer::Peers`].
    Peers,
    /// The last `limit` messages this user may see; answered by [`Answer::History`].
    History {
        /// How many messages at most.
        limit: usize,
    },
    /// Leave cleanly; answered by [`Answer::Left`], then the session is closed.
    Leave,
}

/// The successful answer to a [`Request`] (failures are a [`CoreError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The message was ordered.
    Sent(SendReceipt),
    /// Who is online, sorted.
    Peers(Vec<PeerInfo>),
    /// Messages, oldest first, gathered from every `History` frame of the answer.
    History(Vec<ChatMessage>),
    /// `Leave` was written.
    Left,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The program left (or dropped its handle).
    Left,
    /// The server refused the login (`name_taken`, `busy`, ...).
    Refused {
        /// Why.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server ended the session, the connection broke, the server fell silent or broke the protocol.
    Lost {
        /// Why.
        code: ErrorCode,
        /// Human-readable explanation.
        reason: String,
    },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write this frame to the server.
    Write(ClientFrame),
    /// The login was accepted.
    LoggedIn {
        /// The name, as registered.
        name: UserName,
        /// Who was online (including this user).
        online: Vec<UserName>,
    },
    /// Hand this event to the program.
    Event(Event),
    /// The answer to the request that got `ticket`.
    Answer {
        /// Which request.
        ticket: Ticket,
        /// Its result.
        answer: Result<Answer, CoreError>,
    },
    /// The session is over: close the connection. Always the last output.
    Closed(End),
}

/// A request written to the server, waiting for its answer.
#[derive(Debug)]
struct Waiting {
    ticket: Ticket,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A send, with its frame kept for sending again after `RateLimited`.
    Send(ClientFrame),
    Peers,
    /// The messages of the `History` frames received so far.
    History(Vec<ChatMessage>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LoggingIn,
    Ready {
        heartbeat: Duration,
        /// When the last frame arrived.
        last_heard: Instant,
        /// When the last request or `Ping` was written.
        last_sent: Instant,
    },
    Closed,
}

/// One client session with a chat server, as a state machine.
#[derive(Debug)]
pub struct Session {
    state: State,
    /// Requests written and not yet answered, by request ID (ordered, so endings are deterministic).
    pending: BTreeMap<u64, Waiting>,
    next_req: u64,
    next_ticket: u64,
    /// Sends refused as too fast, by when to send them again.
    resends: BTreeSet<(Instant, u64)>,
    out: VecDeque<Output>,
}

/// The error every request gets once the session is over.
pub(crate) fn closed() -> CoreError {
    CoreError::Closed("the connection to the server is closed".into())
}

impl Session {
    /// A session logging in as `name`: its first output is `Write(Login { name })`.
    pub fn new(name: UserName) -> Self {
        Session::login(name, None)
    }

    /// A session logging in as `name` with `credential` if given (`Write(LoginWith { .. })`), else as
    /// [`Session::new`].
    pub fn login(name: UserName, credential: Option<Credential>) -> Self {
        let first = match credential {
            Some(credential) => ClientFrame::LoginWith { name, credential },
            None => ClientFrame::Login { name },
        };
        let out = VecDeque::from([Output::Write(first)]);
        Session {
            state: State::LoggingIn,
            pending: BTreeMap::new(),
            next_req: 1,
            next_ticket: 1,
            resends: BTreeSet::new(),
            out,
        }
    }

    // ---- getters ----

    /// Whether the login was accepted and the session has not ended.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready { .. })
    }

    /// Whether the session is over (`Closed` was emitted).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    // ---- inputs ----

    /// A frame read from the server.
    pub fn handle_frame(&mut self, now: Instant, frame: ServerFrame) {
        match &mut self.state {
            State::Closed => {}
            State::LoggingIn => self.login_answer(now, frame),
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
        let State::Ready { last_sent, .. } = &mut self.state else {
            self.out.push_back(Output::Answer { ticket, answer: Err(closed()) });
            return ticket;
        };
        let req = self.next_req;
        let (kind, frame) = match request {
            Request::Send(msg) => {
                let frame = ClientFrame::Send { req, recipients: msg.recipients, body: msg.body, sent_at: msg.sent_at };
                (Kind::Send(frame.clone()), frame)
            }
            Request::Peers => (Kind::Peers, ClientFrame::Peers { req }),
            Request::History { limit } => {
                (Kind::History(Vec::new()), ClientFrame::History { req, limit: limit.min(u32::MAX as usize) as u32 })
            }
            Request::Leave => {
                self.out.push_back(Output::Write(ClientFrame::Leave));
                self.answer_pending_closed();
                self.out.push_back(Output::Answer { ticket, answer: Ok(Answer::Left) });
                self.close(End::Left);
                return ticket;
            }
        };
        self.next_req += 1;
        *last_sent = now;
        self.pending.insert(req, Waiting { ticket, kind });
        self.out.push_back(Output::Write(frame));
        ticket
    }

    /// Time passed: send again what was refused as too fast once its wait is over, write a `Ping`
    /// if one is due, end the session if the server fell silent.
    pub fn handle_timeout(&mut self, now: Instant) {
        let State::Ready { heartbeat, last_heard, last_sent } = &mut self.state else { return };
        if now >= *last_heard + *heartbeat * SILENT_HEARTBEATS {
            return self.end(ErrorCode::Disconnected, "the server stopped answering".into());
        }
        while let Some(&(at, req)) = self.resends.first() {
            if at > now {
                break;
            }
            self.resends.pop_first();
            if let Some(Waiting { kind: Kind::Send(frame), .. }) = self.pending.get(&req) {
                *last_sent = now;
                self.out.push_back(Output::Write(frame.clone()));
            }
        }
        if now >= *last_sent + *heartbeat {
            *last_sent = now;
            self.out.push_back(Output::Write(ClientFrame::Ping));
        }
    }

    /// The connection broke (end of stream, read or write error); `reason` says how.
    pub fn handle_connection_lost(&mut self, _now: Instant, reason: String) {
        if self.state != State::Closed {
            self.end(ErrorCode::Disconnected, reason);
        }
    }

    // ---- outputs ----

    /// The next thing to do, if any. Drain it after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next: the next `Ping` or the silence deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Ready { heartbeat, last_heard, last_sent } => {
                let resend = self.resends.first().map(|(at, _)| *at);
                let beat = (last_sent + heartbeat).min(last_heard + heartbeat * SILENT_HEARTBEATS);
                Some(resend.map_or(beat, |r| r.min(beat)))
            }
            State::LoggingIn | State::Closed => None,
        }
    }

    // ---- internals ----

    fn login_answer(&mut self, now: Instant, frame: ServerFrame) {
        match frame {
            ServerFrame::Welcome { name, online, heartbeat_ms } => {
                let heartbeat = Duration::from_millis(heartbeat_ms.max(1));
                self.state = State::Ready { heartbeat, last_heard: now, last_sent: now };
                self.out.push_back(Output::LoggedIn { name, online });
            }
            ServerFrame::Refused { code, message } => self.close(End::Refused { code, message }),
            other => self.end(ErrorCode::Protocol, format!("expected Welcome, got {other:?}")),
        }
    }

    /// A frame once logged in.
    fn frame(&mut self, now: Instant, frame: ServerFrame) {
        let event = match frame {
            ServerFrame::Message(m) => Event::Message(m),
            ServerFrame::Joined { name } => Event::PeerJoined(PeerInfo::named(name)),
            ServerFrame::Left { name, .. } => Event::PeerLeft(PeerInfo::named(name)),
            ServerFrame::Sent { req, id, unknown } => {
                let receipt = SendReceipt { id, unknown };
                return self.answer(req, |kind| matches!(kind, Kind::Send(_)).then_some(Answer::Sent(receipt)));
            }
            ServerFrame::Peers { req, names } => {
                let peers = names.into_iter().map(PeerInfo::named).collect();
                return self.answer(req, |kind| matches!(kind, Kind::Peers).then_some(Answer::Peers(peers)));
            }
            ServerFrame::History { req, messages, done } => return self.history(req, messages, done),
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
                if let Some(Waiting { kind: Kind::Send(_), .. }) = self.pending.get(&req) {
                    let wait = Duration::from_millis(retry_after_ms).min(MAX_RETRY_AFTER);
                    self.resends.insert((now + wait, req));
                }
                return;
            }
            ServerFrame::Closing { code, reason } => return self.end(code, reason),
            ServerFrame::Welcome { .. } | ServerFrame::Refused { .. } => {
                return self.end(ErrorCode::Protocol, "unexpected login frame".into());
            }
        };
        self.out.push_back(Output::Event(event));
    }

    /// Answers the request `req` with what `answer` makes of its kind. An answer to no request is
    /// ignored; an answer of the wrong kind fails the request with `protocol`.
    fn answer(&mut self, req: u64, answer: impl FnOnce(Kind) -> Option<Answer>) {
        let Some(waiting) = self.pending.remove(&req) else { return };
        let answer = answer(waiting.kind).ok_or_else(|| CoreError::Rejected {
            code: ErrorCode::Protocol,
            message: format!("the server answered request {req} with the wrong kind of frame"),
        });
        self.out.push_back(Output::Answer { ticket: waiting.ticket, answer });
    }

    /// One frame of a (possibly chunked) `History` answer.
    fn history(&mut self, req: u64, messages: Vec<ChatMessage>, done: bool) {
        if let Some(Waiting { kind: Kind::History(gathered), .. }) = self.pending.get_mut(&req) {
            gathered.extend(messages);
            if !done {
                return;
            }
        }
        self.answer(req, |kind| match kind {
            Kind::History(gathered) => Some(Answer::History(gathered)),
            Kind::Send(_) | Kind::Peers => None,
        });
    }

    fn answer_pending_closed(&mut self) {
        for waiting in std::mem::take(&mut self.pending).into_values() {
            self.out.push_back(Output::Answer { ticket: waiting.ticket, answer: Err(closed()) });
        }
    }

    /// Ends the session for `code` (see the module documentation).
    fn end(&mut self, code: ErrorCode, reason: String) {
        self.answer_pending_closed();
        if self.is_ready() {
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
