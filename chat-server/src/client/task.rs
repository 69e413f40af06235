//! The thin async shell around a [`Session`]: one task owns the connection (and dials a new one
//! when the core asks) and moves bytes.
//!
//! ```text
//!  ServerTransport ── (Request, reply) (bounded) ──►  select! { requests, socket frames, a dial under way,
//!                  ◄── events (bounded, EVENT_QUEUE) ─   sleep_until(core.poll_timeout()) }
//!                                                      │ feed the core, then perform its outputs:
//!                                                      │ Write ─► socket · Event ─► events · Disconnect ─► drop the socket
//!                                                      │ Connect ─► start dialing · Answer ─► the reply kept for its ticket
//!                                                      └ Closed ─► stop
//! ```
//!
//! The shell decides nothing: it turns what happens (a frame, a request, a deadline, a broken
//! socket, a dial's outcome) into the core's inputs and performs its outputs in order. Two I/O facts
//! only it can see become inputs too: a handle dropped without leaving (the request queue closes, or
//! the event queue does) is fed as a `Leave`; a failed read or write is fed as a lost connection.
//!
//! Events are sent with a waiting `send`: if the program stops reading, the queue fills, the task
//! stops reading the socket, and the server eventually drops this client as a slow consumer.
//! Time is read from tokio (`tokio::time::Instant`, pausable in tests) and handed to the core as
//! `std::time::Instant`.

use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;

use chat_core::{CoreError, Event, RoomName, UserName};
use chat_transport::{ByteStream, Connection, FrameReader, FrameWriter, TransportError, sleep_until};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;

use super::session::{Answer, End, Output, Request, Session, Ticket};
use crate::ServerError;
use crate::protocol::{ClientFrame, ServerFrame};

/// Where the answer to one request goes.
pub(super) type Reply = oneshot::Sender<Result<Answer, CoreError>>;

/// A dial under way: a new stream whose handshake is done, or why not.
pub(super) type Dial<S> = Pin<Box<dyn Future<Output = Result<S, ServerError>> + Send>>;

/// Opens a new stream to the server (dial, TLS, handshake), for reconnecting.
pub(super) type Dialing<S> = Box<dyn Fn() -> Dial<S> + Send + Sync>;

/// The current time, from tokio's clock (pausable in tests), as the core wants it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// One connection's two halves.
struct Link<S> {
    reader: FrameReader<ReadHalf<S>, ServerFrame>,
    writer: FrameWriter<WriteHalf<S>, ClientFrame>,
}

impl<S: ByteStream> Link<S> {
    fn new(stream: S) -> Self {
        let (reader, writer) = Connection::new(stream).into_split();
        Link { reader, writer }
    }
}

/// The task owning the connection to the server and the session core.
pub(super) struct Driver<S> {
    core: Session,
    link: Option<Link<S>>,
    dialing: Dialing<S>,
    dial: Option<Dial<S>>,
    /// The replies of the requests the core has not answered yet.
    replies: HashMap<Ticket, Reply>,
}

/// What woke the task up.
enum Step<S> {
    Request(Option<(Request, Reply)>),
    Frame(Result<Option<ServerFrame>, TransportError>),
    Dialed(Result<S, ServerError>),
    Timeout,
}

/// What a first login gives.
pub(super) struct LoggedIn {
    pub(super) name: UserName,
    pub(super) online: Vec<UserName>,
    pub(super) rooms: Vec<RoomName>,
}

impl<S: ByteStream> Driver<S> {
    /// Wraps a stream whose handshake is done, with a core that has not logged in yet; `dialing`
    /// opens new streams when the core reconnects.
    pub(super) fn new(stream: S, core: Session, dialing: Dialing<S>) -> Self {
        Driver { core, link: Some(Link::new(stream)), dialing, dial: None, replies: HashMap::new() }
    }

    /// Writes the login and reads until the core is logged in. `server` names the address in
    /// errors. Not cancel-safe (run it under a timeout and drop the driver if it fires).
    pub(super) async fn login(&mut self, server: &str) -> Result<LoggedIn, ServerError> {
        let unreachable = |reason: &str| ServerError::Unreachable { addr: server.to_owned(), reason: reason.into() };
        loop {
            let Some(link) = self.link.as_mut() else { return Err(unreachable("the connection was dropped")) };
            while let Some(output) = self.core.poll_output() {
                match output {
                    Output::Write(frame) => link.writer.write_frame(&frame).await?,
                    Output::LoggedIn { name, online, rooms } => return Ok(LoggedIn { name, online, rooms }),
                    Output::Closed(End::Refused { code, message }) => {
                        return Err(CoreError::Rejected { code, message }.into());
                    }
                    Output::Closed(End::Lost { reason, .. }) => return Err(TransportError::Malformed(reason).into()),
                    // Only requests and losses after the login produce these.
                    Output::Closed(End::Left)
                    | Output::Event(_)
                    | Output::Answer { .. }
                    | Output::Connect
                    | Output::Disconnect => {}
                }
            }
            match link.reader.read_frame().await? {
                Some(frame) => self.core.handle_frame(now(), frame),
                None => return Err(unreachable("the server closed the connection during login")),
            }
        }
    }

    /// Runs the logged-in session until the core closes it.
    pub(super) async fn run(mut self, mut requests: mpsc::Receiver<(Request, Reply)>, events: mpsc::Sender<Event>) {
        while self.perform(&events).await.is_continue() {
            let deadline = self.core.poll_timeout().map(Instant::from_std);
            let (link, dial) = (&mut self.link, &mut self.dial);
            let frame = async {
                match link.as_mut() {
                    Some(link) => link.reader.read_frame().await,
                    None => std::future::pending().await,
                }
            };
            let dialed = async {
                match dial.as_mut() {
                    Some(dial) => dial.await,
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                request = requests.recv() => Step::Request(request),
                frame = frame => Step::Frame(frame),
                dialed = dialed => Step::Dialed(dialed),
                () = sleep_until(deadline) => Step::Timeout,
            };
            match step {
                Step::Request(Some((request, reply))) => {
                    let ticket = self.core.handle_request(now(), request);
                    self.replies.insert(ticket, reply);
                }
                // The handle was dropped without leaving: leave anyway.
                Step::Request(None) => {
                    let _ = self.core.handle_request(now(), Request::Leave);
                }
                Step::Frame(Ok(Some(frame))) => self.core.handle_frame(now(), frame),
                Step::Frame(Ok(None)) => self.lost("the server closed the connection".into()),
                Step::Frame(Err(e)) => self.lost(format!("connection lost: {e}")),
                Step::Dialed(dialed) => {
                    self.dial = None;
                    match dialed {
                        Ok(stream) => {
                            self.link = Some(Link::new(stream));
                            self.core.handle_connected(now());
                        }
                        Err(e) => self.core.handle_connect_failed(now(), e.to_string()),
                    }
                }
                Step::Timeout => self.core.handle_timeout(now()),
            }
        }
    }

    /// The connection broke: drop it and tell the core.
    fn lost(&mut self, reason: String) {
        self.link = None;
        self.core.handle_connection_lost(now(), reason);
    }

    /// Performs the core's outputs in order; `Break` once it is closed.
    async fn perform(&mut self, events: &mpsc::Sender<Event>) -> ControlFlow<()> {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Write(ClientFrame::Leave) => {
                    // The last frame of a session: write it and close our direction, errors or not.
                    if let Some(link) = self.link.as_mut() {
                        let _ = link.writer.write_frame(&ClientFrame::Leave).await;
                        let _ = link.writer.shutdown().await;
                    }
                }
                Output::Write(frame) => {
                    let Some(link) = self.link.as_mut() else { continue };
                    if let Err(e) = link.writer.write_frame(&frame).await {
                        let reason = match frame {
                            ClientFrame::Ping | ClientFrame::Pong => "connection lost".into(),
                            _ => format!("write failed: {e}"),
                        };
                        self.lost(reason);
                    }
                }
                Output::Disconnect => self.link = None,
                Output::Connect => {
                    self.link = None;
                    self.dial = Some((self.dialing)());
                }
                Output::Event(event) => {
                    if events.send(event).await.is_err() {
                        // Nobody reads events any more: the handle is gone, so leave.
                        let _ = self.core.handle_request(now(), Request::Leave);
                    }
                }
                Output::Answer { ticket, answer } => {
                    if let Some(reply) = self.replies.remove(&ticket) {
                        let _ = reply.send(answer);
                    }
                }
                Output::Closed(end) => {
                    debug!(?end, "session ended");
                    return ControlFlow::Break(());
                }
                // Only while logging in (see `login`).
                Output::LoggedIn { .. } => {}
            }
        }
        ControlFlow::Continue(())
    }
}
