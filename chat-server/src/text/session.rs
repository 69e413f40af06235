//! One text connection as a sans-IO state machine: what the client sent becomes events for the
//! router, what the router sends becomes paced lines.
//!
//! Call order, for the shell: feed `handle_*` inputs; after each, drain [`TextSession::poll_event`]
//! (to the owner task) and [`TextSession::poll_transmit`] (one line to write; report it written with
//! [`TextSession::handle_written`]); call [`TextSession::handle_timeout`] at
//! [`TextSession::poll_timeout`]; stop at [`TextSession::is_done`].
//!
//! | phase     | input                           | outputs                                                   |
//! |-----------|---------------------------------|-----------------------------------------------------------|
//! | `Connect` | `CONNECT`                       | `Open`; `ACCEPT:…`; the prompt, [`PROMPT_DELAY`] after it  |
//! | `Connect` | anything else, or [`CONNECT_TIMEOUT`] | `REJECT:…`; `Closed`; then done                     |
//! | `Name`    | `<clock>:<name>` or `<name>`    | `Frame(Login)`; or, a name no user may have, the reason and `Closed` |
//! | `Chat`    | a command (see `parse`)         | `Frame(Send)` with the kind in the request ID; an addressee that cannot be a name: the original's notice |
//! | any       | a frame from the router         | its line, if any (see `render`)                           |
//! | any       | one line more than [`MAX_QUEUED_LINES`] waiting | queue dropped, a last line, `Closed { slow_consumer }`, done within [`KILL_GRACE`] |
//! | any       | killed by the router (`flood`, `slow_consumer`) | queue dropped, a last line, done within [`KILL_GRACE`] |
//! | any       | the router closed the connection | the queued lines, then done                              |
//! | any       | end of stream / reset           | `Closed { quit / disconnected }`, done at once             |
//!
//! Pacing: a line is written no sooner than its gap ([`WRITE_GAP`], [`PROMPT_DELAY`] for the
//! prompt) after the previous write ended; [`TextSession::poll_timeout`] says when.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_core::{NodeId, Recipients, Timestamp, UserName};

use super::parse::{self, Command};
use super::render::{self, Kind, NONE_VALID, NOT_FOUND, View};
use super::{BAD_HANDSHAKE, CONNECT_TIMEOUT, MAX_QUEUED_LINES, PROMPT_DELAY, WRITE_GAP};
use crate::fanout::KILL_GRACE;
use crate::protocol::{ClientFrame, ServerFrame};

/// What the session tells the owner task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextEvent {
    /// The handshake is done: register the connection (its queue, its writer).
    Open,
    /// A frame from this user, as a native client would send it.
    Frame(ClientFrame),
    /// The connection is over for the router (`quit`, `disconnected`, `slow_consumer`, `protocol`,
    /// `timeout`, `invalid_name`).
    Closed {
        /// Why, as announced to the others.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `CONNECT` until the deadline.
    Connect { deadline: Instant },
    /// `ACCEPT` is queued: the next message is the name.
    Name,
    /// The name went to the router: messages are commands.
    Chat,
    /// Nothing more is read or rendered: the queued lines are written, then the connection ends.
    Closing,
}

/// One text connection's state; see the module documentation.
#[derive(Debug)]
pub struct TextSession {
    phase: Phase,
    view: View,
    /// Sends so far (numbers the request IDs).
    sends: u64,
    events: VecDeque<TextEvent>,
    /// Lines waiting, each with the least time since the previous write and the highest message
    /// sequence number handled when it was queued.
    lines: VecDeque<(Bytes, Duration, u64)>,
    /// The line handed out by `poll_transmit` is being written (its sequence number).
    writing: Option<u64>,
    /// Highest message sequence number handed to `handle_frame`.
    handled: u64,
    /// Highest message sequence number whose line (if any) is written, and every one before.
    delivered: u64,
    /// When the last write ended (the session's start before the first).
    last_write: Instant,
    /// When to stop trying to write (a disconnection's last line).
    give_up: Option<Instant>,
    /// Whether the connection should stay open a moment after its last line (the client may still
    /// be sending; closing would reset the connection and lose that line).
    linger: bool,
    /// Whether the router knows this connection is over (no `Closed` to send any more).
    ended: bool,
    done: bool,
}

impl TextSession {
    /// A connection accepted at `now`: it has [`CONNECT_TIMEOUT`] to send `CONNECT`.
    pub fn new(now: Instant) -> Self {
        TextSession {
            phase: Phase::Connect { deadline: now + CONNECT_TIMEOUT },
            view: View::default(),
            sends: 0,
            events: VecDeque::new(),
            lines: VecDeque::new(),
            writing: None,
            handled: 0,
            delivered: 0,
            last_write: now,
            give_up: None,
            linger: false,
            ended: false,
            done: false,
        }
    }

    // ---------------------------------------------------------------- getters

    /// Whether the connection is over: close it (after [`TextSession::linger`]ing if asked).
    pub fn is_done(&self) -> bool {
        self.done || (self.phase == Phase::Closing && self.lines.is_empty() && self.writing.is_none())
    }

    /// Highest server sequence number up to which every message for this user was written (or needs
    /// no line): the delivery watermark the journal records.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Whether to hold the connection open for [`KILL_GRACE`] after the last line.
    pub fn linger(&self) -> bool {
        self.linger
    }

    /// Whether frames from the router are still rendered (the shell need not read them otherwise).
    pub fn wants_frames(&self) -> bool {
        self.phase != Phase::Closing && !self.done
    }

    // ---------------------------------------------------------------- inputs

    /// The bytes of one read from the client.
    pub fn handle_read(&mut self, bytes: &[u8]) {
        let messages: Vec<&str> = parse::messages(bytes).collect();
        if messages.is_empty() && matches!(self.phase, Phase::Connect { .. }) {
            return self.reject();
        }
        for message in messages {
            self.message(message);
        }
    }

    /// The client closed its side (`reset`: the connection broke): a leave.
    pub fn handle_read_end(&mut self, reset: bool) {
        self.end(if reset { "disconnected" } else { "quit" });
        self.done = true;
    }

    /// A frame the router sent this connection, in server order.
    pub fn handle_frame(&mut self, now: Instant, frame: &ServerFrame) {
        if !self.wants_frames() {
            return;
        }
        if let ServerFrame::Message(m) = frame {
            self.handled = self.handled.max(m.id.seq);
        }
        match self.view.frame(frame) {
            Some(line) => self.queue(line, WRITE_GAP),
            // No line: delivered once the line before it is (at once if none waits).
            None => match (self.lines.back_mut(), &mut self.writing) {
                (Some((_, _, seq)), _) | (None, Some(seq)) => *seq = self.handled,
                (None, None) => self.delivered = self.handled,
            },
        }
        if self.lines.len() > MAX_QUEUED_LINES {
            let reason = format!("too slow: more than {MAX_QUEUED_LINES} lines waiting to be written");
            self.last_words(now, &reason);
            self.end("slow_consumer");
        }
    }

    /// The router closed the connection: nothing more will come; the queued lines are written.
    pub fn handle_server_closed(&mut self) {
        self.ended = true;
        self.phase = Phase::Closing;
    }

    /// The router disconnected this connection at once (`flood`, `slow_consumer`): its queue is
    /// dropped and `reason` is the last line.
    pub fn handle_kill(&mut self, now: Instant, reason: &str) {
        self.ended = true;
        self.last_words(now, reason);
    }

    /// The line from [`TextSession::poll_transmit`] is written.
    pub fn handle_written(&mut self, now: Instant) {
        if let Some(seq) = self.writing.take() {
            self.delivered = self.delivered.max(seq);
        }
        self.last_write = now;
    }

    /// Fires the deadlines of [`TextSession::poll_timeout`] that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Phase::Connect { deadline } = self.phase
            && now >= deadline
        {
            self.reject();
        }
        if self.give_up.is_some_and(|t| now >= t) {
            self.done = true;
        }
    }

    // ---------------------------------------------------------------- outputs

    /// The next event for the owner task.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TextEvent> {
        self.events.pop_front()
    }

    /// The next line to write, if its time has come and no write is under way. Write it whole, then
    /// call [`TextSession::handle_written`].
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.done || self.writing.is_some() || self.due()? > now {
            return None;
        }
        let (line, _, seq) = self.lines.pop_front()?;
        self.writing = Some(seq);
        Some(line)
    }

    /// When [`TextSession::handle_timeout`] must be called, or the next line becomes due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let connect = match self.phase {
            Phase::Connect { deadline } => Some(deadline),
            _ => None,
        };
        let due = if self.writing.is_some() || self.done { None } else { self.due() };
        [connect, self.give_up, due].into_iter().flatten().min()
    }

    // ---------------------------------------------------------------- plumbing

    /// When the first queued line may be written.
    fn due(&self) -> Option<Instant> {
        self.lines.front().map(|(_, gap, _)| self.last_write + *gap)
    }

    fn queue(&mut self, line: Bytes, gap: Duration) {
        self.lines.push_back((line, gap, self.handled));
    }

    /// Tells the router the connection is over, once.
    fn end(&mut self, reason: &str) {
        if !self.ended {
            self.ended = true;
            self.events.push_back(TextEvent::Closed { reason: reason.to_string() });
        }
        self.phase = Phase::Closing;
    }

    /// Drops the queue for one last line, written within [`KILL_GRACE`].
    fn last_words(&mut self, now: Instant, reason: &str) {
        self.lines.clear();
        self.queue(render::closing(self.view.clock(), reason), WRITE_GAP);
        self.give_up = Some(now + KILL_GRACE);
        self.linger = true;
        self.phase = Phase::Closing;
    }

    fn reject(&mut self) {
        self.queue(render::reject(BAD_HANDSHAKE), Duration::ZERO);
        self.end("protocol");
    }

    fn message(&mut self, message: &str) {
        let clock = self.view.clock();
        match self.phase {
            Phase::Connect { .. } if message == "CONNECT" => {
                self.phase = Phase::Name;
                self.events.push_back(TextEvent::Open);
                self.queue(render::accept(clock), Duration::ZERO);
                self.queue(render::prompt(clock), PROMPT_DELAY);
            }
            Phase::Connect { .. } => self.reject(),
            Phase::Name => match UserName::new(parse::name(message)) {
                Ok(name) => {
                    self.phase = Phase::Chat;
                    self.events.push_back(TextEvent::Frame(ClientFrame::Login { name }));
                }
                Err(e) => {
                    self.queue(render::system(clock, &e.to_string()), WRITE_GAP);
                    self.end("invalid_name");
                }
            },
            Phase::Chat => match parse::command(message) {
                Some(command) => self.command(command),
                None => tracing::debug!(len = message.len(), "text command ignored"),
            },
            Phase::Closing => {}
        }
    }

    fn command(&mut self, command: Command<'_>) {
        let clock = self.view.clock();
        let (kind, sent_at, recipients, body) = match command {
            Command::Unicast { clock: c, to, text } => match addressee(to) {
                Some(name) => (Kind::Unicast, c, Recipients::Unicast(name), text),
                None => return self.queue(render::system(clock, NOT_FOUND), WRITE_GAP),
            },
            Command::Multicast { clock: c, to, text } => {
                let names: Vec<UserName> = to.into_iter().filter_map(addressee).collect();
                if names.is_empty() {
                    return self.queue(render::system(clock, NONE_VALID), WRITE_GAP);
                }
                match Recipients::multicast(names) {
                    Ok(recipients) => (Kind::Multicast, c, recipients, text),
                    Err(e) => {
                        return self.queue(render::system(clock, &format!("Mensagem não enviada: {e}")), WRITE_GAP);
                    }
                }
            }
            Command::Broadcast { clock: c, text } => (Kind::Broadcast, c, Recipients::Broadcast, text),
        };
        self.sends += 1;
        let req = render::req(self.sends, kind);
        let sent_at = Timestamp::new(sent_at, NodeId::default());
        let frame = ClientFrame::Send { req, recipients, body: body.to_string(), sent_at, key: 0 };
        self.events.push_back(TextEvent::Frame(frame));
    }
}

/// The user an addressee names: normalized as a login would be; a name no rule allows can still be
/// looked up if it is safe (the router then says nobody by that name is online); `None` if it
/// cannot be a name at all.
fn addressee(to: &str) -> Option<UserName> {
    UserName::new(to).or_else(|_| UserName::from_wire(to.to_string())).ok()
}
