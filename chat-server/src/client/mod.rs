//! The client side of the server topology: [`ServerTransport`] implements [`chat_core::Transport`].
//!
//! [`connect`] dials, shakes hands, logs in and waits for `Welcome` (or a refusal such as
//! `name_taken`), then spawns one task that owns the connection. The handle talks to that task
//! through bounded channels: commands in, events out. Replies are matched to requests by ID.
//!
//! If the program stops reading events, the event queue fills, the task stops reading the socket,
//! and the server eventually disconnects this client as a slow consumer: memory stays bounded.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::{
    ChatMessage, CoreError, ErrorCode, Event, OutgoingMessage, PeerInfo, SendReceipt, Transport, UserName,
};
use chat_transport::{FrameReader, FrameWriter, Role, TransportError, handshake};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;

pub mod session;

use crate::ServerError;
use crate::protocol::{ClientFrame, ServerFrame};

/// Events queued for the program before the connection task stops reading the socket.
pub const EVENT_QUEUE: usize = 4096;
/// Default time allowed to connect, shake hands and log in.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach and log in to a server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server address, e.g. `127.0.0.1:7878`.
    pub server: String,
    /// The name to log in as.
    pub name: UserName,
    /// Time allowed to connect, shake hands and log in.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    /// Settings for `name` at `server` with the default timeout.
    pub fn new(server: impl Into<String>, name: UserName) -> Self {
        ClientConfig { server: server.into(), name, connect_timeout: DEFAULT_CONNECT_TIMEOUT }
    }
}

/// What the handle asks the connection task to do.
enum Command {
    Send { msg: OutgoingMessage, reply: oneshot::Sender<Result<SendReceipt, CoreError>> },
    Peers { reply: oneshot::Sender<Result<Vec<PeerInfo>, CoreError>> },
    History { limit: usize, reply: oneshot::Sender<Result<Vec<ChatMessage>, CoreError>> },
    Leave { reply: oneshot::Sender<()> },
}

/// A pending request, waiting for its answer.
enum Pending {
    Send(oneshot::Sender<Result<SendReceipt, CoreError>>),
    Peers(oneshot::Sender<Result<Vec<PeerInfo>, CoreError>>),
    History(oneshot::Sender<Result<Vec<ChatMessage>, CoreError>>, Vec<ChatMessage>),
}

/// A logged-in session with a chat server.
pub struct ServerTransport {
    name: UserName,
    online: Vec<UserName>,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    left: bool,
}

impl ServerTransport {
    /// The users online when this session logged in (including itself).
    pub fn online_at_login(&self) -> &[UserName] {
        &self.online
    }
}

/// Connects, logs in and starts the session.
///
/// Fails with [`ServerError::Unreachable`] if the server cannot be reached in time, and with
/// [`ServerError::Core`] holding [`CoreError::Rejected`] if the login is refused (`name_taken`, `busy`).
pub async fn connect(config: ClientConfig) -> Result<ServerTransport, ServerError> {
    let unreachable = |reason: String| ServerError::Unreachable { addr: config.server.clone(), reason };
    let login = async {
        let mut stream = TcpStream::connect(&config.server).await.map_err(|e| unreachable(e.to_string()))?;
        stream.set_nodelay(true)?;
        handshake(&mut stream, Role::Client).await?;
        let (read, write) = stream.into_split();
        let mut reader: FrameReader<_, ServerFrame> = FrameReader::new(read);
        let mut writer: FrameWriter<_, ClientFrame> = FrameWriter::new(write);
        writer.write_frame(&ClientFrame::Login { name: config.name.clone() }).await?;
        match reader.read_frame().await? {
            Some(ServerFrame::Welcome { name, online, heartbeat_ms }) => {
                Ok((reader, writer, name, online, Duration::from_millis(heartbeat_ms.max(1))))
            }
            Some(ServerFrame::Refused { code, message }) => Err(CoreError::Rejected { code, message }.into()),
            Some(other) => Err(TransportError::Malformed(format!("expected Welcome, got {other:?}")).into()),
            None => Err(unreachable("the server closed the connection during login".into())),
        }
    };
    let (reader, writer, name, online, heartbeat) = tokio::time::timeout(config.connect_timeout, login)
        .await
        .map_err(|_| unreachable(format!("no answer within {:?}", config.connect_timeout)))??;
    let (commands, command_rx) = mpsc::channel(64);
    let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
    let task = Session { reader, writer, events: event_tx, pending: HashMap::new(), next_req: 1, heartbeat };
    tokio::spawn(task.run(command_rx));
    Ok(ServerTransport { name, online, commands, events, left: false })
}

fn closed() -> CoreError {
    CoreError::Closed("the connection to the server is closed".into())
}

#[async_trait]
impl Transport for ServerTransport {
    fn local_name(&self) -> &UserName {
        &self.name
    }

    async fn send(&self, msg: OutgoingMessage) -> Result<SendReceipt, CoreError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Send { msg, reply }).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    async fn peers(&self) -> Result<Vec<PeerInfo>, CoreError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Peers { reply }).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn history(&self, limit: usize) -> Result<Vec<ChatMessage>, CoreError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::History { limit, reply }).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn leave(&mut self) -> Result<(), CoreError> {
        if self.left {
            return Ok(());
        }
        self.left = true;
        let (reply, rx) = oneshot::channel();
        if self.commands.send(Command::Leave { reply }).await.is_ok() {
            let _ = rx.await;
        }
        self.events.close();
        Ok(())
    }
}

/// The task owning the connection.
struct Session {
    reader: FrameReader<OwnedReadHalf, ServerFrame>,
    writer: FrameWriter<OwnedWriteHalf, ClientFrame>,
    events: mpsc::Sender<Event>,
    pending: HashMap<u64, Pending>,
    next_req: u64,
    heartbeat: Duration,
}

impl Session {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut last_heard = Instant::now();
        let mut last_sent = Instant::now();
        let end = loop {
            let silence_deadline = last_heard + self.heartbeat * 3;
            let ping_deadline = last_sent + self.heartbeat;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Leave { reply }) => {
                        let _ = self.writer.write_frame(&ClientFrame::Leave).await;
                        let _ = self.writer.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => {
                        last_sent = Instant::now();
                        if let Err(e) = self.command(command).await {
                            break (ErrorCode::Disconnected, format!("write failed: {e}"));
                        }
                    }
                    None => {
                        // The handle was dropped without leaving: leave anyway.
                        let _ = self.writer.write_frame(&ClientFrame::Leave).await;
                        return;
                    }
                },
                frame = self.reader.read_frame() => {
                    last_heard = Instant::now();
                    match frame {
                        Ok(Some(frame)) => {
                            if let Some(end) = self.frame(frame).await {
                                break end;
                            }
                        }
                        Ok(None) => break (ErrorCode::Disconnected, "the server closed the connection".into()),
                        Err(e) => break (ErrorCode::Disconnected, format!("connection lost: {e}")),
                    }
                }
                () = tokio::time::sleep_until(silence_deadline) => {
                    break (ErrorCode::Disconnected, "the server stopped answering".into());
                }
                () = tokio::time::sleep_until(ping_deadline) => {
                    // Sent on a fixed rhythm, even while receiving: the server drops silent clients.
                    last_sent = Instant::now();
                    if self.writer.write_frame(&ClientFrame::Ping).await.is_err() {
                        break (ErrorCode::Disconnected, "connection lost".into());
                    }
                }
            }
        };
        debug!(code = %end.0, reason = %end.1, "session ended");
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Send(reply) => drop(reply.send(Err(closed()))),
                Pending::Peers(reply) => drop(reply.send(Err(closed()))),
                Pending::History(reply, _) => drop(reply.send(Err(closed()))),
            }
        }
        let _ = self.events.send(Event::Disconnected { code: end.0, reason: end.1 }).await;
    }

    async fn command(&mut self, command: Command) -> Result<(), TransportError> {
        let req = self.next_req;
        self.next_req += 1;
        let frame = match command {
            Command::Send { msg, reply } => {
                self.pending.insert(req, Pending::Send(reply));
                ClientFrame::Send { req, recipients: msg.recipients, body: msg.body, sent_at: msg.sent_at }
            }
            Command::Peers { reply } => {
                self.pending.insert(req, Pending::Peers(reply));
                ClientFrame::Peers { req }
            }
            Command::History { limit, reply } => {
                self.pending.insert(req, Pending::History(reply, Vec::new()));
                ClientFrame::History { req, limit: limit.min(u32::MAX as usize) as u32 }
            }
            Command::Leave { .. } => return Ok(()),
        };
        self.writer.write_frame(&frame).await
    }

    /// Handles one frame; returns the reason to stop, if it is a closing frame.
    async fn frame(&mut self, frame: ServerFrame) -> Option<(ErrorCode, String)> {
        let event = match frame {
            ServerFrame::Message(m) => Event::Message(m),
            ServerFrame::Joined { name } => Event::PeerJoined(PeerInfo::named(name)),
            ServerFrame::Left { name, .. } => Event::PeerLeft(PeerInfo::named(name)),
            ServerFrame::Sent { req, id, unknown } => {
                if let Some(Pending::Send(reply)) = self.pending.remove(&req) {
                    let _ = reply.send(Ok(SendReceipt { id, unknown }));
                }
                return None;
            }
            ServerFrame::Rejected { req, code, message } => {
                match self.pending.remove(&req) {
                    Some(Pending::Send(reply)) => drop(reply.send(Err(CoreError::Rejected { code, message }))),
                    Some(Pending::Peers(reply)) => drop(reply.send(Err(CoreError::Rejected { code, message }))),
                    Some(Pending::History(reply, _)) => drop(reply.send(Err(CoreError::Rejected { code, message }))),
                    None => return self.emit(Event::Error { code, message }).await,
                }
                return None;
            }
            ServerFrame::Peers { req, names } => {
                if let Some(Pending::Peers(reply)) = self.pending.remove(&req) {
                    let _ = reply.send(Ok(names.into_iter().map(PeerInfo::named).collect()));
                }
                return None;
            }
            ServerFrame::History { req, messages, done } => {
                if let Some(Pending::History(reply, mut acc)) = self.pending.remove(&req) {
                    acc.extend(messages);
                    if done {
                        let _ = reply.send(Ok(acc));
                    } else {
                        self.pending.insert(req, Pending::History(reply, acc));
                    }
                }
                return None;
            }
            ServerFrame::Ping => {
                if self.writer.write_frame(&ClientFrame::Pong).await.is_err() {
                    return Some((ErrorCode::Disconnected, "connection lost".into()));
                }
                return None;
            }
            ServerFrame::Pong => return None,
            ServerFrame::Closing { code, reason } => return Some((code, reason)),
            ServerFrame::Welcome { .. } | ServerFrame::Refused { .. } => {
                return Some((ErrorCode::Protocol, "unexpected login frame".into()));
            }
        };
        self.emit(event).await
    }

    async fn emit(&mut self, event: Event) -> Option<(ErrorCode, String)> {
        if self.events.send(event).await.is_err() {
            return Some((ErrorCode::Disconnected, "the program stopped listening".into()));
        }
        None
    }
}
