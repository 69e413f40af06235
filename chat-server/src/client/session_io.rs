//! The client session core's interface: the program's [`Request`]s and their [`Answer`]s, and the
//! [`Output`]s the shell performs (see `session`).

use chat_core::{ChatMessage, CoreError, Event, OutgoingMessage, PeerInfo, RoomInfo, RoomName, SendReceipt, UserName};

use super::reconnect::Reconnect;
use super::session::{Kind, Session, Waiting};
use crate::protocol::{ClientFrame, Credential};
use chat_core::ErrorCode;

/// Identifies one request's future answer (see [`Output::Answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub(super) u64);

/// What the program asks of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Send a message; answered by [`Answer::Sent`].
    Send(OutgoingMessage),
    /// Who is online; answered by [`Answer::Peers`].
    Peers,
    /// The last `limit` messages this user may see (of `room` only, if given); answered by
    /// [`Answer::History`].
    History {
        /// How many messages at most.
        limit: usize,
        /// One room's only.
        room: Option<RoomName>,
    },
    /// Join a room; answered by [`Answer::History`] with its recent messages.
    JoinRoom(RoomName),
    /// Leave a room; answered by [`Answer::Done`].
    PartRoom(RoomName),
    /// The rooms; answered by [`Answer::Rooms`].
    Rooms,
    /// Who is in a room, or online; answered by [`Answer::Peers`].
    Who(Option<RoomName>),
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
    /// The rooms.
    Rooms(Vec<RoomInfo>),
    /// The request was done.
    Done,
    /// `Leave` was written.
    Left,
}

/// How a session logs in and whether it comes back after losing its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The name to log in as.
    pub name: UserName,
    /// The account's password or token.
    pub credential: Option<Credential>,
    /// Not announced to others (one-shot commands, benchmarks).
    pub quiet: bool,
    /// Reconnect and resume after a loss (`None`: a loss ends the session).
    pub reconnect: Option<Reconnect>,
}

impl SessionConfig {
    /// An announced session of `name`, no credential, no reconnection.
    pub fn new(name: UserName) -> Self {
        SessionConfig { name, credential: None, quiet: false, reconnect: None }
    }
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
    /// Drop the current connection now (the session found it dead); do not report its loss.
    Disconnect,
    /// Dial the server again, then call [`Session::handle_connected`] or
    /// [`Session::handle_connect_failed`].
    Connect,
    /// The first login was accepted.
    LoggedIn {
        /// The name, as registered.
        name: UserName,
        /// Who was online (including this user).
        online: Vec<UserName>,
        /// The rooms this user is a member of.
        rooms: Vec<RoomName>,
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

impl Session {
    /// Answers the request `req` with what `answer` makes of its kind. An answer to no request is
    /// ignored; an answer of the wrong kind fails the request with `protocol`.
    pub(super) fn answer(&mut self, req: u64, answer: impl FnOnce(Kind) -> Option<Answer>) {
        let Some(waiting) = self.pending.remove(&req) else { return };
        let answer = answer(waiting.kind).ok_or_else(|| CoreError::Rejected {
            code: ErrorCode::Protocol,
            message: format!("the server answered request {req} with the wrong kind of frame"),
        });
        self.out.push_back(Output::Answer { ticket: waiting.ticket, answer });
    }

    /// One frame of a (possibly chunked) `History` answer.
    pub(super) fn history(&mut self, req: u64, messages: Vec<ChatMessage>, done: bool) {
        if let Some(Waiting { kind: Kind::History(gathered), .. }) = self.pending.get_mut(&req) {
            gathered.extend(messages);
            if !done {
                return;
            }
        }
        self.answer(req, |kind| match kind {
            Kind::History(gathered) => Some(Answer::History(gathered)),
            _ => None,
        });
    }
}
