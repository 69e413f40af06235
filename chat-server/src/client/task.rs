//! The thin async shell around a [`Session`]: one task owns the connection and moves bytes.
//!
//! ```text
//!  ServerTransport ── (Request, reply) (bounded) ──►  select! { requests, socket frames,
//!                  ◄── events (bounded, EVENT_QUEUE) ─   sleep_until(core.poll_timeout()) }
//!                                                      │ feed the core, then perform its outputs:
//!                                                      │ Write ─► socket · Event ─► events
//!                                                      └ Answer ─► the reply kept for its ticket · Closed ─► stop
//! ```
//!
//! The shell decides nothing: it turns what happens (a frame, a request, a deadline, a broken
//! socket) into the core's inputs and performs its outputs in order. Two I/O facts only it can see
//! become inputs too: a handle dropped without leaving (the request queue closes, or the event queue
//! does) is fed as a `Leave`; a failed read or write is fed as a lost connection.
//!
//! Events are sent with a waiting `send`: if the program stops reading, the queue fills, the task
//! stops reading the socket, and the server eventually drops this client as a slow consumer.
//! Time is read from tokio (`tokio::time::Instant`, pausable in tests) and handed to the core as
//! `std::time::Instant`.

use std::collections::HashMap;
use std::ops::ControlFlow;

use chat_core::{CoreError, Event, UserName};
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

/// The current time, from tokio's clock (pausable in tests), as the core wants it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The task owning one connection to the server and the session core.
pub(super) struct Driver<S> {
    core: Session,
    reader: FrameReader<ReadHalf<S>, ServerFrame>,
    writer: FrameWriter<WriteHalf<S>, ClientFrame>,
    /// The replies of the requests the core has not answered yet.
    replies: HashMap<Ticket, Reply>,
}

impl<S: ByteStream> Driver<S> {
    /// Wraps a stream whose handshake is done, with a core that has not logged in yet.
    pub(super) fn new(stream: S, core: Session) -> Self {
        let (reader, writer) = Connection::new(stream).into_split();
        Driver { core, reader, writer, replies: HashMap::new() }
    }

    /// Writes the login and reads until the core is logged in; returns the registered name and who
    /// was online. `server` names the address in errors. Not cancel-safe (run it under a timeout and
    /// drop the driver if it fires).
    pub(super) async fn login(&mut self, server: &str) -> Result<(UserName, Vec<UserName>), ServerError> {
        loop {
            while let Some(output) = self.core.poll_output() {
                match output {
                    Output::Write(frame) => self.writer.write_frame(&frame).await?,
                    Output::LoggedIn { name, online } => return Ok((name, online)),
                    Output::Closed(End::Refused { code, message }) => {
                        return Err(CoreError::Rejected { code, message }.into());
                    }
                    Output::Closed(End::Lost { reason, .. }) => return Err(TransportError::Malformed(reason).into()),
                    // Only requests produce these, and none are made before the login.
                    Output::Closed(End::Left) | Output::Event(_) | Output::Answer { .. } => {}
                }
            }
            match self.reader.read_frame().await? {
                Some(frame) => self.core.handle_frame(now(), frame),
                None => {
                    return Err(ServerError::Unreachable {
                        addr: server.to_owned(),
                        reason: "the server closed the connection during login".into(),
                    });
                }
            }
        }
    }

    /// Runs the logged-in session until the core closes it.
    pub(super) async fn run(mut self, mut requests: mpsc::Receiver<(Request, Reply)>, events: mpsc::Sender<Event>) {
        while self.perform(&events).await.is_continue() {
            let deadline = self.core.poll_timeout().map(Instant::from_std);
            tokio::select! {
                request = requests.recv() => match request {
                    Some((request, reply)) => {
                        let ticket = self.core.handle_request(now(), request);
                        self.replies.insert(ticket, reply);
                    }
                    // The handle was dropped without leaving: leave anyway.
                    None => {
                        let _ = self.core.handle_request(now(), Request::Leave);
                    }
                },
                frame = self.reader.read_frame() => match frame {
                    Ok(Some(frame)) => self.core.handle_frame(now(), frame),
                    Ok(None) => self.core.handle_connection_lost(now(), "the server closed the connection".into()),
                    Err(e) => self.core.handle_connection_lost(now(), format!("connection lost: {e}")),
                },
                () = sleep_until(deadline) => self.core.handle_timeout(now()),
            }
        }
    }

    /// Performs the core's outputs in order; `Break` once it is closed.
    async fn perform(&mut self, events: &mpsc::Sender<Event>) -> ControlFlow<()> {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Write(ClientFrame::Leave) => {
                    // The last frame of a session: write it and close our direction, errors or not.
                    let _ = self.writer.write_frame(&ClientFrame::Leave).await;
                    let _ = self.writer.shutdown().await;
                }
                Output::Write(frame) => {
                    if let Err(e) = self.writer.write_frame(&frame).await {
                        let reason = match frame {
                            ClientFrame::Ping | ClientFrame::Pong => "connection lost".into(),
                            _ => format!("write failed: {e}"),
                        };
                        self.core.handle_connection_lost(now(), reason);
                    }
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
