//! The sans-IO routing core of the server: who is online, who receives what, the global order.
//!
//! The router never touches a socket, a task or the clock. The server's owner task feeds it
//! [`Input`]s and drains [`Output`]s with [`Router::poll_output`]; tests compare whole output
//! sequences. Every accepted message gets the next server sequence number and a Lamport stamp from
//! the server's clock *after observing the sender's stamp*, so along the server order the stamps
//! increase strictly and causality is respected. Because one router orders everything and every
//! connection is FIFO, all recipients see messages in the same relative order.
//!
//! | input          | outputs                                                                         |
//! |----------------|---------------------------------------------------------------------------------|
//! | `Login` ok     | `SessionStarted`, `ToOne(Welcome)`, `Fanout(Joined)` to everyone else            |
//! | `Login` taken  | `ToOne(Refused { name_taken })`, `Close`                                         |
//! | `Send` ok      | `Store(msg)`, `Fanout(Message)` to recipients + sender, `ToOne(Sent)`            |
//! | `Send` bad     | `ToOne(Rejected { unknown_user / too_long / protocol })`                        |
//! | `Peers`        | `ToOne(Peers)`                                                                   |
//! | `History`      | `ToOne(History)` frames, the last with `done = true`                            |
//! | `Disconnected` | `SessionEnded`, `Fanout(Left)` to the others                                    |

use std::collections::{HashMap, VecDeque};

use chat_core::{
    ChatMessage, ErrorCode, LamportClock, MAX_BODY_LEN, MessageBuffer, MessageId, NodeId, Recipients, Timestamp,
    UserName,
};

use crate::protocol::ServerFrame;

/// Identifies one connection inside the server (assigned by the shell, never reused in a run).
pub type ConnId = u64;

/// Largest total body size of the messages in one `History` frame; longer answers are chunked.
pub const HISTORY_CHUNK_BYTES: usize = 128 * 1024;

/// Router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Messages kept for `History` answers.
    pub history: usize,
    /// The heartbeat interval announced to clients, in milliseconds.
    pub heartbeat_ms: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig { history: 1000, heartbeat_ms: 5000 }
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

/// Something a connection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The connection asks to log in.
    Login {
        /// Which connection.
        conn: ConnId,
        /// The requested name.
        name: UserName,
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
    /// The connection is gone (clean leave, error, timeout, slow consumer, shutdown).
    Disconnected {
        /// Which connection.
        conn: ConnId,
        /// Why, as announced to the others.
        reason: String,
    },
}

/// Who receives a fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every logged-in connection (broadcasts, join and leave notices).
    Everyone,
    /// These connections (a unicast or multicast and its sender).
    Only(Vec<ConnId>),
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a frame to one connection.
    ToOne {
        /// Destination.
        conn: ConnId,
        /// The frame.
        frame: ServerFrame,
    },
    /// Send one frame (encode it once) to many connections.
    Fanout {
        /// Destinations.
        to: Audience,
        /// A logged-in connection to skip (the subject of a join notice).
        except: Option<ConnId>,
        /// The frame.
        frame: ServerFrame,
        /// The server sequence number if the frame is a message (for delivery watermarks), else 0.
        seq: u64,
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
}

/// The routing state machine; see the module documentation.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    clock: LamportClock,
    last_seq: u64,
    names: HashMap<ConnId, UserName>,
    conns: HashMap<UserName, ConnId>,
    history: MessageBuffer,
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
            names: HashMap::new(),
            conns: HashMap::new(),
            history,
            outputs: VecDeque::new(),
            config,
        }
    }

    /// Highest server sequence number used so far.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Number of users online.
    pub fn online(&self) -> usize {
        self.names.len()
    }

    /// The name logged in on `conn`, if any.
    pub fn name_of(&self, conn: ConnId) -> Option<&UserName> {
        self.names.get(&conn)
    }

    /// The next thing the shell must do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Login { conn, name } => self.login(conn, name),
            Input::Send { conn, req, recipients, body, sent_at } => self.send(conn, req, recipients, body, sent_at),
            Input::Peers { conn, req } => {
                let mut names: Vec<UserName> = self.conns.keys().cloned().collect();
                names.sort();
                self.reply(conn, ServerFrame::Peers { req, names });
            }
            Input::History { conn, req, limit } => self.history(conn, req, limit),
            Input::Disconnected { conn, reason } => self.disconnected(conn, reason),
        }
    }

    fn reply(&mut self, conn: ConnId, frame: ServerFrame) {
        self.outputs.push_back(Output::ToOne { conn, frame });
    }

    fn login(&mut self, conn: ConnId, name: UserName) {
        if self.names.contains_key(&conn) {
            self.reply(
                conn,
                ServerFrame::Rejected { req: 0, code: ErrorCode::Protocol, message: "already logged in".into() },
            );
            return;
        }
        if self.conns.contains_key(&name) {
            let message = format!("the name {name} is already taken by a user online");
            self.reply(conn, ServerFrame::Refused { code: ErrorCode::NameTaken, message });
            self.outputs.push_back(Output::Close { conn });
            return;
        }
        let after = self.last_seq;
        self.names.insert(conn, name.clone());
        self.conns.insert(name.clone(), conn);
        self.outputs.push_back(Output::SessionStarted { conn, name: name.clone(), after });
        let mut online: Vec<UserName> = self.conns.keys().cloned().collect();
        online.sort();
        let heartbeat_ms = self.config.heartbeat_ms;
        self.reply(conn, ServerFrame::Welcome { name: name.clone(), online, heartbeat_ms });
        let frame = ServerFrame::Joined { name };
        self.outputs.push_back(Output::Fanout { to: Audience::Everyone, except: Some(conn), frame, seq: 0 });
    }

    fn reject(&mut self, conn: ConnId, req: u64, code: ErrorCode, message: String) {
        self.reply(conn, ServerFrame::Rejected { req, code, message });
    }

    fn send(&mut self, conn: ConnId, req: u64, recipients: Recipients, body: String, sent_at: Timestamp) {
        let Some(sender) = self.names.get(&conn).cloned() else {
            return self.reject(conn, req, ErrorCode::Protocol, "log in first".into());
        };
        if body.len() > MAX_BODY_LEN {
            let message = format!("message body is {} bytes, the limit is {MAX_BODY_LEN}", body.len());
            return self.reject(conn, req, ErrorCode::TooLong, message);
        }
        let (to, recipients, unknown) = match recipients {
            Recipients::Broadcast => (Audience::Everyone, Recipients::Broadcast, Vec::new()),
            Recipients::Unicast(name) => match self.conns.get(&name) {
                Some(&target) => {
                    let to = if target == conn { vec![conn] } else { vec![target, conn] };
                    (Audience::Only(to), Recipients::Unicast(name), Vec::new())
                }
                None => return self.reject(conn, req, ErrorCode::UnknownUser, format!("{name} is not online")),
            },
            Recipients::Multicast(list) => {
                let (known, unknown): (Vec<UserName>, Vec<UserName>) =
                    list.into_iter().partition(|n| self.conns.contains_key(n));
                if known.is_empty() {
                    let names: Vec<&str> = unknown.iter().map(UserName::as_str).collect();
                    let message = format!("none of {} is online", names.join(", "));
                    return self.reject(conn, req, ErrorCode::UnknownUser, message);
                }
                let mut to: Vec<ConnId> = known.iter().map(|n| self.conns[n]).collect();
                if !to.contains(&conn) {
                    to.push(conn);
                }
                (Audience::Only(to), Recipients::Multicast(known), unknown)
            }
        };
        self.last_seq += 1;
        let seq = self.last_seq;
        let lamport = self.clock.observe(sent_at);
        let id = MessageId::new(NodeId::SERVER, seq);
        let message = ChatMessage { id, sender, recipients, body, lamport };
        self.history.insert(message.clone());
        self.outputs.push_back(Output::Store(message.clone()));
        self.outputs.push_back(Output::Fanout { to, except: None, frame: ServerFrame::Message(message), seq });
        self.reply(conn, ServerFrame::Sent { req, id, unknown });
    }

    fn history(&mut self, conn: ConnId, req: u64, limit: usize) {
        let Some(name) = self.names.get(&conn) else {
            return self.reject(conn, req, ErrorCode::Protocol, "log in first".into());
        };
        let messages = self.history.last_visible_to(name, limit.min(self.history.capacity()));
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for m in messages {
            if !chunk.is_empty() && bytes + m.body.len() > HISTORY_CHUNK_BYTES {
                let messages = std::mem::take(&mut chunk);
                self.reply(conn, ServerFrame::History { req, messages, done: false });
                bytes = 0;
            }
            bytes += m.body.len();
            chunk.push(m);
        }
        self.reply(conn, ServerFrame::History { req, messages: chunk, done: true });
    }

    fn disconnected(&mut self, conn: ConnId, reason: String) {
        let Some(name) = self.names.remove(&conn) else { return };
        self.conns.remove(&name);
        let after = self.last_seq;
        self.outputs.push_back(Output::SessionEnded { conn, name: name.clone(), after, reason: reason.clone() });
        let frame = ServerFrame::Left { name, reason };
        self.outputs.push_back(Output::Fanout { to: Audience::Everyone, except: None, frame, seq: 0 });
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
