//! One WebSocket connection as a sans-IO state machine: the browser's commands become frames for
//! the router, the router's frames become the JSON events of [`crate::json`].
//!
//! Call order, for the shell: feed `handle_*` inputs; after each, drain [`WebSession::poll_event`]
//! (to the owner task) and [`WebSession::poll_transmit`] (one JSON text to send; report it sent with
//! [`WebSession::handle_sent`]); take frames from the router only while
//! [`WebSession::wants_frames`], read commands only while [`WebSession::wants_commands`]; stop at
//! [`WebSession::is_done`]. The session never reads the clock: liveness (pings, the idle timeout) is
//! the shell's, the login deadline the router's.
//!
//! | phase       | input                             | outputs                                                  |
//! |-------------|-----------------------------------|----------------------------------------------------------|
//! | (start)     | —                                 | `Open`                                                   |
//! | `Login`     | `login`                           | `Frame(Enter)`                                           |
//! | `Login`     | a `login` that fails its checks   | `error`, `Closed { invalid_name / protocol }`, done      |
//! | `Login`, `LoggingIn` | any other command        | `error { protocol }`                                     |
//! | `LoggingIn` | `Welcome`                         | `ready` (with `token`, `grace_ms`); `resumed { missed }` after a resume; a `notice` if the session to resume was gone |
//! | `LoggingIn` | `Refused`                         | `error { code }`; done once written (the router closes)  |
//! | `Ready`     | a command                         | its frame (see `command`), a fresh request ID            |
//! | `Ready`     | a command that fails its checks   | `error` (with the send's `key`)                          |
//! | `Ready`     | `leave`                           | `Closed { quit }`; done                                  |
//! | any         | a frame                           | its events (see [`WebSession::handle_frame`])             |
//! | any         | `Closing { code, reason }`        | `error { code, message: reason }`; done once written     |
//! | any         | killed (`flood`, `slow_consumer`) | the queue dropped; `error { code }`; done once written   |
//! | any         | the socket ended                  | `Closed { reason }`; done                                |
//!
//! Bounds: at most [`MAX_QUEUED_EVENTS`] events wait to be sent (frames are taken from the router
//! only below [`FRAMES_BELOW`], so a browser that does not read leaves them in its queue and the
//! router's slow-consumer policy applies), at most [`MAX_IN_FLIGHT`] requests wait for an answer
//! (commands are not read meanwhile), and a `history` event holds at most [`MAX_HISTORY_EVENT`]
//! bytes of messages (the oldest are left out, and a `notice` says so).

use std::collections::{BTreeMap, VecDeque};

use chat_core::{ChatMessage, ErrorCode, NodeId, RoomName, SendReceipt, Timestamp};
use serde_json::{Value, json};

use super::command::{self, Command, Refusal};
use crate::json;
use crate::protocol::{ClientFrame, Enter, ServerFrame};

/// Events waiting to be sent beyond which commands are not read.
pub const MAX_QUEUED_EVENTS: usize = 64;
/// Frames are taken from the router only while fewer events than this wait to be sent.
pub const FRAMES_BELOW: usize = 8;
/// Requests waiting for their answer beyond which commands are not read.
pub const MAX_IN_FLIGHT: usize = 256;
/// Largest total size of the message objects in one `history` event, in bytes of JSON.
pub const MAX_HISTORY_EVENT: usize = 1024 * 1024;

/// What the session tells the owner task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebEvent {
    /// Register the connection (its queue, its progress).
    Open,
    /// A frame from this user, as a native client would send it.
    Frame(ClientFrame),
    /// The connection is over for the router (`quit`, `disconnected`, `timeout`, `protocol`,
    /// `invalid_name`).
    Closed {
        /// Why, as announced to the others.
        reason: String,
    },
}

/// How the socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The browser closed it, or the connection broke.
    Disconnected,
    /// Nothing was heard for too long.
    Timeout,
    /// A message over the size limit.
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `login`.
    Login,
    /// `Enter` sent, waiting for `Welcome` (`resuming`: it presented a session token).
    LoggingIn {
        resuming: bool,
    },
    Ready,
    /// Nothing more is read or taken from the router: the queued events are sent, then the end.
    Closing,
}

/// A request waiting for its answer.
#[derive(Debug)]
enum Pending {
    /// A send, with the page's key.
    Send { key: u64 },
    /// A request answered by one frame (`Peers`, `Who`, `Rooms`, `Done`).
    Query,
    /// A `History` (or `JoinRoom`) answer being gathered: the newest messages, their JSON size, how
    /// many older ones were left out.
    History { messages: VecDeque<(ChatMessage, usize)>, bytes: usize, dropped: usize },
}

/// One WebSocket connection's state; see the module documentation.
#[derive(Debug)]
pub struct WebSession {
    phase: Phase,
    next_req: u64,
    pending: BTreeMap<u64, Pending>,
    /// Highest Lamport counter seen: the stamp of this user's sends.
    clock: u64,
    events: VecDeque<WebEvent>,
    /// JSON texts to send, each with the highest message sequence number handled when it was queued.
    out: VecDeque<(String, u64)>,
    /// The text handed out by `poll_transmit` is being sent (its sequence number).
    writing: Option<u64>,
    /// Highest message sequence number handed to `handle_frame`.
    handled: u64,
    /// Highest message sequence number whose event (if any) was sent, and every one before.
    delivered: u64,
    /// Whether the router knows this connection is over.
    ended: bool,
    done: bool,
}

impl Default for WebSession {
    fn default() -> Self {
        Self::new()
    }
}

impl WebSession {
    /// A connection just upgraded: its first event is `Open`.
    pub fn new() -> Self {
        WebSession {
            phase: Phase::Login,
            next_req: 0,
            pending: BTreeMap::new(),
            clock: 0,
            events: VecDeque::from([WebEvent::Open]),
            out: VecDeque::new(),
            writing: None,
            handled: 0,
            delivered: 0,
            ended: false,
            done: false,
        }
    }

    // ---------------------------------------------------------------- getters

    /// Whether the connection is over: close the socket.
    pub fn is_done(&self) -> bool {
        self.done || (self.phase == Phase::Closing && self.out.is_empty() && self.writing.is_none())
    }

    /// Whether the session is ending: only the queued events are still sent (the shell gives them
    /// a bounded time).
    pub fn is_closing(&self) -> bool {
        self.phase == Phase::Closing
    }

    /// Highest server sequence number up to which every message for this user was sent: the
    /// delivery watermark the journal records.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Whether to take the next frame from the router.
    pub fn wants_frames(&self) -> bool {
        !self.done && self.phase != Phase::Closing && self.out.len() < FRAMES_BELOW
    }

    /// Whether to read the next command from the socket.
    pub fn wants_commands(&self) -> bool {
        !self.done
            && self.phase != Phase::Closing
            && self.out.len() < MAX_QUEUED_EVENTS
            && self.pending.len() < MAX_IN_FLIGHT
    }

    // ---------------------------------------------------------------- inputs

    /// One text message from the browser: a command.
    pub fn handle_text(&mut self, text: &str) {
        if !self.wants_input() {
            return;
        }
        match command::parse(text) {
            Ok(command) => self.command(command),
            Err(refusal) => self.refused(refusal),
        }
    }

    /// One binary message from the browser: not a command.
    pub fn handle_binary(&mut self) {
        if self.wants_input() {
            self.error(ErrorCode::BadCommand, "commands are JSON text messages, not binary ones", None);
        }
    }

    /// The socket ended.
    pub fn handle_read_end(&mut self, end: ReadEnd) {
        match end {
            ReadEnd::Disconnected => {
                self.end("disconnected");
                self.done = true;
            }
            ReadEnd::Timeout => {
                self.end("timeout");
                self.done = true;
            }
            ReadEnd::TooLong => {
                let message = format!("a command is at most {} bytes", super::MAX_COMMAND_BYTES);
                self.error(ErrorCode::TooLong, &message, None);
                self.end("protocol");
            }
        }
    }

    /// A frame the router sent this connection, in server order.
    pub fn handle_frame(&mut self, frame: ServerFrame) {
        if self.done || self.phase == Phase::Closing {
            return;
        }
        if let ServerFrame::Message(m) = &frame {
            self.handled = self.handled.max(m.id.seq);
        }
        let queued = self.out.len();
        self.frame(frame);
        if self.out.len() == queued {
            // No event: delivered once the event before it is (at once if none waits).
            match (self.out.back_mut(), &mut self.writing) {
                (Some((_, seq)), _) | (None, Some(seq)) => *seq = self.handled,
                (None, None) => self.delivered = self.handled,
            }
        }
    }

    /// The router closed the connection: nothing more will come; the queued events are sent.
    pub fn handle_server_closed(&mut self) {
        self.ended = true;
        self.phase = Phase::Closing;
    }

    /// The router disconnected this connection at once (`flood`, `slow_consumer`, a resume
    /// elsewhere): the queue is dropped and `error { code, message: reason }` is the last event.
    pub fn handle_kill(&mut self, code: ErrorCode, reason: &str) {
        self.ended = true;
        self.out.clear();
        self.phase = Phase::Closing;
        self.push(json::error(code, reason));
    }

    /// The text from [`WebSession::poll_transmit`] was sent.
    pub fn handle_sent(&mut self) {
        if let Some(seq) = self.writing.take() {
            self.delivered = self.delivered.max(seq);
        }
    }

    // ---------------------------------------------------------------- outputs

    /// The next event for the owner task.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<WebEvent> {
        self.events.pop_front()
    }

    /// The next JSON text to send, if no send is under way. Send it, then call
    /// [`WebSession::handle_sent`].
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<String> {
        if self.done || self.writing.is_some() {
            return None;
        }
        let (text, seq) = self.out.pop_front()?;
        self.writing = Some(seq);
        Some(text)
    }

    // ---------------------------------------------------------------- plumbing

    fn wants_input(&self) -> bool {
        !self.done && self.phase != Phase::Closing
    }

    fn push(&mut self, event: Value) {
        self.out.push_back((event.to_string(), self.handled));
    }

    fn error(&mut self, code: ErrorCode, message: &str, key: Option<u64>) {
        let mut event = json::error(code, message);
        if let Some(key) = key {
            event["key"] = json!(key);
        }
        self.push(event);
    }

    /// Tells the router the connection is over, once; nothing more is read.
    fn end(&mut self, reason: &str) {
        if !self.ended {
            self.ended = true;
            self.events.push_back(WebEvent::Closed { reason: reason.to_string() });
        }
        self.phase = Phase::Closing;
    }

    fn refused(&mut self, refusal: Refusal) {
        self.error(refusal.code, &refusal.message, refusal.key);
        if refusal.login && self.phase == Phase::Login {
            self.end(if refusal.code == ErrorCode::InvalidName { "invalid_name" } else { "protocol" });
        }
    }

    fn request(&mut self, frame: impl FnOnce(u64) -> ClientFrame, pending: Pending) {
        self.next_req += 1;
        let req = self.next_req;
        self.pending.insert(req, pending);
        self.events.push_back(WebEvent::Frame(frame(req)));
    }

    fn command(&mut self, command: Command) {
        match (self.phase, command) {
            (Phase::Login, Command::Login { name, credential, resume }) => {
                self.phase = Phase::LoggingIn { resuming: resume.is_some() };
                let enter = Enter { name, credential, resume, quiet: false };
                self.events.push_back(WebEvent::Frame(ClientFrame::Enter(enter)));
            }
            (Phase::Login | Phase::LoggingIn { .. }, command) => {
                let key = match command {
                    Command::Send { key, .. } => Some(key).filter(|k| *k > 0),
                    _ => None,
                };
                self.error(ErrorCode::Protocol, "log in first (and wait for ready)", key);
            }
            (Phase::Closing, _) => {}
            (Phase::Ready, command) => self.ready_command(command),
        }
    }

    fn ready_command(&mut self, command: Command) {
        match command {
            Command::Send { recipients, text, key } => {
                let sent_at = Timestamp::new(self.clock, NodeId::default());
                let frame = |req| ClientFrame::Send { req, recipients, body: text, sent_at, key };
                self.request(frame, Pending::Send { key });
            }
            Command::Join(room) => self.request(|req| ClientFrame::JoinRoom { req, room }, history()),
            Command::Part(room) => self.request(|req| ClientFrame::PartRoom { req, room }, Pending::Query),
            Command::History { room, limit } => {
                self.request(|req| ClientFrame::History { req, limit, room }, history())
            }
            Command::Peers => self.request(|req| ClientFrame::Peers { req }, Pending::Query),
            Command::Rooms => self.request(|req| ClientFrame::Rooms { req }, Pending::Query),
            Command::Who(room) => self.request(|req| ClientFrame::Who { req, room }, Pending::Query),
            Command::Leave => self.end(crate::router::QUIT),
            Command::Login { .. } => self.error(ErrorCode::BadCommand, "already logged in", None),
        }
    }

    /// The events of one frame.
    fn frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Welcome { name, session, .. } => {
                let Phase::LoggingIn { resuming } = self.phase else {
                    return self.error(ErrorCode::Protocol, "unexpected Welcome", None);
                };
                self.phase = Phase::Ready;
                let mut ready = json::ready(&name, None, &session.rooms);
                ready["token"] = json!(session.token);
                ready["grace_ms"] = json!(session.grace_ms);
                self.push(ready);
                match session.resumed {
                    Some(missed) => self.push(json::resumed(missed)),
                    None if resuming => self.push(json::notice(SESSION_GONE)),
                    None => {}
                }
            }
            ServerFrame::Refused { code, message } | ServerFrame::Closing { code, reason: message } => {
                self.error(code, &message, None);
                self.phase = Phase::Closing;
            }
            ServerFrame::Message(m) => {
                self.clock = self.clock.max(m.lamport.counter);
                self.push(json::message(&m));
            }
            ServerFrame::Sent { req, id, unknown, queued } => {
                let key = match self.pending.remove(&req) {
                    Some(Pending::Send { key }) => key,
                    _ => 0,
                };
                let mut events = json::sent(&SendReceipt { id, unknown, queued });
                if key > 0
                    && let Some(sent) = events.last_mut()
                {
                    sent["key"] = json!(key);
                }
                for event in events {
                    self.push(event);
                }
            }
            ServerFrame::Rejected { req, code, message } => {
                let key = self.finish(req);
                self.error(code, &message, key);
            }
            ServerFrame::RateLimited { req, retry_after_ms } => {
                let key = self.finish(req);
                let message = format!("over the rate limit: not sent; send it again in {retry_after_ms} ms");
                let mut event = json::error(ErrorCode::RateLimited, &message);
                event["retry_after_ms"] = json!(retry_after_ms);
                if let Some(key) = key {
                    event["key"] = json!(key);
                }
                self.push(event);
            }
            ServerFrame::Peers { req, names } => {
                self.pending.remove(&req);
                let peers: Vec<_> = names.into_iter().map(chat_core::PeerInfo::named).collect();
                self.push(json::peers(&peers));
            }
            ServerFrame::Who { req, room, names } => {
                self.pending.remove(&req);
                self.push(json::who(room.as_ref(), &names));
            }
            ServerFrame::Rooms { req, rooms } => {
                self.pending.remove(&req);
                self.push(json::rooms(&rooms));
            }
            ServerFrame::Done { req } => {
                self.pending.remove(&req);
            }
            ServerFrame::History { req, messages, done, room } => self.history(req, messages, done, room),
            ServerFrame::Joined { name } => self.push(json::joined(&name, None)),
            ServerFrame::Left { name, .. } => self.push(json::left(&name, None)),
            ServerFrame::RoomJoined { room, name } => self.push(json::joined(&name, Some(&room))),
            ServerFrame::RoomParted { room, name } => self.push(json::left(&name, Some(&room))),
            ServerFrame::Notice { text } => self.push(json::notice(&text)),
            ServerFrame::Ping | ServerFrame::Pong => {}
        }
    }

    /// Forgets request `req`; the page's key if it was a send with one.
    fn finish(&mut self, req: u64) -> Option<u64> {
        match self.pending.remove(&req) {
            Some(Pending::Send { key }) if key > 0 => Some(key),
            _ => None,
        }
    }

    /// Gathers a `History` answer; the last frame (`done`) makes the event.
    fn history(&mut self, req: u64, messages: Vec<ChatMessage>, done: bool, room: Option<RoomName>) {
        let Some(Pending::History { messages: gathered, bytes, dropped }) = self.pending.get_mut(&req) else {
            return; // not asked for: nothing to show
        };
        for m in messages {
            let size = json::message(&m).to_string().len() + 1;
            gathered.push_back((m, size));
            *bytes += size;
            while *bytes > MAX_HISTORY_EVENT
                && let Some((_, size)) = gathered.pop_front()
            {
                *bytes -= size;
                *dropped += 1;
            }
        }
        if !done {
            return;
        }
        let Some(Pending::History { messages, dropped, .. }) = self.pending.remove(&req) else { return };
        if dropped > 0 {
            let text = format!(
                "{dropped} older message(s) left out: a history event holds at most {MAX_HISTORY_EVENT} bytes; \
                 ask for fewer"
            );
            self.push(json::notice(&text));
        }
        let messages: Vec<ChatMessage> = messages.into_iter().map(|(m, _)| m).collect();
        self.push(json::history(room.as_ref(), &messages));
    }
}

/// What a resume that found no session says (as the native client library).
pub const SESSION_GONE: &str = "the server no longer had your session: this is a new one, and messages sent while \
                                you were away may be missing (see the history)";

fn history() -> Pending {
    Pending::History { messages: VecDeque::new(), bytes: 0, dropped: 0 }
}
