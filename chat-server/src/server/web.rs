//! A WebSocket connection's shell (the web client, see [`crate::web`]): it moves messages between the
//! socket, the sans-IO [`WebSession`] and the owner task; every decision is the session's or the
//! router's.
//!
//! ```text
//!  socket ─► reader task (one message ≤ MAX_COMMAND_BYTES; idle timeout) ─(bounded, 1)─┐
//!                                                                                      ▼
//!  owner ◄── Open / Frame / Closed ─────────────────────────────────────── connection task: WebSession
//!  owner ── private queue + shared stream ─► FrameFeed (decoded frames) ──────────────► ┘  │ one JSON
//!                                                                                         ▼ text at a time
//!                                                                                       socket
//! ```
//!
//! To the owner a web connection looks like any other: a [`ConnEntry`] registered as soon as the
//! WebSocket is open. Frames are taken from the feed only while the session wants them (it sends
//! each event before taking more), so a browser that does not read leaves its frames in its private
//! queue and behind on the stream, where the router's slow-consumer policy finds them. Liveness as
//! for native connections: a WebSocket `Ping` after a heartbeat without writing (browsers answer
//! it), and the connection ends after three heartbeats without hearing anything.

use std::future::{pending, poll_fn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, ready};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use chat_core::ErrorCode;
use chat_transport::sleep_until;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tracing::debug;

use super::ConnSettings;
use super::connection::{ConnEntry, Inbound};
use crate::fanout::KILL_GRACE;
use crate::fanout::feed::{FrameFeed, Next};
use crate::fanout::private_queue::{PrivateQueue, WriterProgress};
use crate::fanout::stream::StreamReader;
use crate::router::ConnId;
use crate::web::{ReadEnd, WebEvent, WebSession};

/// Most frames handled before the task looks at its socket and its kill switch again.
const FRAMES_PER_TURN: usize = 64;

/// A WebSocket upgraded by the HTTP side, waiting to be admitted.
pub(super) struct Upgraded {
    /// The socket.
    pub(super) socket: WebSocket,
    /// Who it is.
    pub(super) peer: SocketAddr,
}

/// What the reader task read.
enum Read {
    Text(Utf8Bytes),
    Binary,
    End(ReadEnd),
}

/// Aborts the reader task when the connection task ends (or is aborted by the owner).
struct Reader(JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The message being written: taken by the sink, then flushed.
#[derive(Default)]
struct Outgoing {
    next: Option<Message>,
    /// Whether it is the session's (not a ping): the session is told once it is flushed.
    session: bool,
    flushing: bool,
}

impl Outgoing {
    fn idle(&self) -> bool {
        self.next.is_none() && !self.flushing
    }
}

/// Serves one WebSocket until its session is done.
pub(super) async fn serve_web(
    conn: ConnId,
    socket: WebSocket,
    inbound: mpsc::Sender<Inbound>,
    settings: ConnSettings,
    stream_reader: StreamReader,
) {
    let (mut sink, stream) = socket.split();
    let (reads_tx, mut reads) = mpsc::channel(1);
    let reader = Reader(tokio::spawn(read_loop(stream, reads_tx, settings.heartbeat * 3)));
    let mut session = WebSession::new();
    let mut feed: Option<(FrameFeed, Arc<WriterProgress>)> = None;
    let mut kill: Option<oneshot::Receiver<(ErrorCode, String)>> = None;
    let mut killed = false;
    let mut reading = true;
    let mut out = Outgoing::default();
    let mut last_write = Instant::now();
    // Once the session is closing, its last events get KILL_GRACE to be sent.
    let mut give_up: Option<Instant> = None;
    loop {
        while let Some(event) = session.poll_event() {
            let report = match event {
                WebEvent::Open => {
                    let (private, queue) = PrivateQueue::new(settings.outbox);
                    let (kill_tx, kill_rx) = oneshot::channel();
                    let progress = WriterProgress::new();
                    feed = Some((FrameFeed::new(queue, stream_reader.clone(), progress.clone()), progress.clone()));
                    kill = Some(kill_rx);
                    let reader = reader.0.abort_handle();
                    let entry = ConnEntry {
                        private,
                        progress,
                        kill: Some(kill_tx),
                        reader,
                        legacy: false,
                        resumable: true,
                        gate: None,
                    };
                    Inbound::Open { conn, entry }
                }
                WebEvent::Frame(frame) => Inbound::Frame { conn, frame },
                WebEvent::Closed { reason } => Inbound::Closed { conn, reason },
            };
            if inbound.send(report).await.is_err() {
                return; // the server is gone
            }
        }
        let mut more = false;
        if let Some((frames, progress)) = &mut feed {
            for i in 0..=FRAMES_PER_TURN {
                if !session.wants_frames() {
                    break;
                }
                if i == FRAMES_PER_TURN {
                    more = true;
                    break;
                }
                match frames.next() {
                    Next::Frame(frame) => session.handle_frame(frame),
                    Next::Nothing => break,
                    Next::Closed => session.handle_server_closed(),
                }
            }
            progress.mark.fetch_max(session.delivered(), Ordering::Release);
        }
        if session.is_done() {
            break;
        }
        if session.is_closing() && give_up.is_none() {
            give_up = Some(Instant::now() + KILL_GRACE);
        }
        if out.idle()
            && let Some(text) = session.poll_transmit()
        {
            out = Outgoing { next: Some(Message::Text(text.into())), session: true, flushing: false };
        }
        if more {
            tokio::task::yield_now().await;
            continue;
        }
        let ping_at = last_write + settings.heartbeat;
        tokio::select! {
            biased;
            Some((code, reason)) = kill_switch(&mut kill) => {
                killed = true;
                out = Outgoing::default();
                session.handle_kill(code, &reason);
            }
            written = write(&mut sink, &mut out), if !out.idle() => match written {
                Ok(()) => {
                    last_write = Instant::now();
                    if std::mem::take(&mut out.session) {
                        session.handle_sent();
                    }
                }
                Err(e) => {
                    debug!(conn, error = %e, "WebSocket write failed");
                    session.handle_read_end(ReadEnd::Disconnected);
                }
            },
            read = reads.recv(), if reading && session.wants_commands() => match read {
                Some(Read::Text(text)) => session.handle_text(&text),
                Some(Read::Binary) => session.handle_binary(),
                Some(Read::End(end)) => {
                    reading = false;
                    session.handle_read_end(end);
                }
                None => reading = false, // the owner closed the connection: its reader is gone
            },
            () = frames_ready(&mut feed), if session.wants_frames() => {}
            () = sleep_until(give_up) => break,
            () = sleep_until(Some(ping_at)), if out.idle() => {
                out = Outgoing { next: Some(Message::Ping(Default::default())), session: false, flushing: false };
            }
        }
    }
    // A clean close: the close frame, then (briefly) whatever the browser still sends, so that closing
    // does not reset the connection and lose the last event (a kicked client may still be sending).
    let _ = timeout(KILL_GRACE, async {
        let close = CloseFrame { code: close_code::NORMAL, reason: Utf8Bytes::from_static("") };
        sink.send(Message::Close(Some(close))).await?;
        sink.close().await
    })
    .await;
    let drained = timeout(KILL_GRACE, async {
        while let Some(read) = reads.recv().await {
            if matches!(read, Read::End(_)) {
                return;
            }
        }
        pending::<()>().await
    });
    if reading || killed {
        let _ = drained.await;
    }
    drop(reader);
    debug!(conn, "web connection ended");
}

/// Answers a WebSocket the router refused (`busy`) with an `error` event, then closes it.
pub(super) async fn refuse_web(mut socket: WebSocket, code: ErrorCode, message: String) {
    let _ = timeout(KILL_GRACE, async {
        socket.send(Message::Text(crate::json::error(code, &message).to_string().into())).await?;
        let close = CloseFrame { code: close_code::AGAIN, reason: Utf8Bytes::from_static("busy") };
        socket.send(Message::Close(Some(close))).await
    })
    .await;
}

/// Reads the socket: each text message is passed on whole; pings and pongs only show liveness.
async fn read_loop(mut stream: SplitStream<WebSocket>, reads: mpsc::Sender<Read>, idle: std::time::Duration) {
    loop {
        let read = match timeout(idle, stream.next()).await {
            Err(_) => Read::End(ReadEnd::Timeout),
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => Read::End(ReadEnd::Disconnected),
            Ok(Some(Ok(Message::Text(text)))) => Read::Text(text),
            Ok(Some(Ok(Message::Binary(_)))) => Read::Binary,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Err(e))) => {
                let too_long = e
                    .into_inner()
                    .downcast::<tungstenite::Error>()
                    .is_ok_and(|e| matches!(*e, tungstenite::Error::Capacity(_)));
                Read::End(if too_long { ReadEnd::TooLong } else { ReadEnd::Disconnected })
            }
        };
        let end = matches!(read, Read::End(_));
        if reads.send(read).await.is_err() || end {
            return;
        }
    }
}

/// Writes `out.next` and flushes. **Cancel-safe**: once the sink took the message, `out` says it is
/// being flushed, and the next call finishes that.
async fn write(sink: &mut SplitSink<WebSocket, Message>, out: &mut Outgoing) -> Result<(), axum::Error> {
    poll_fn(|cx| {
        if out.next.is_some() {
            ready!(sink.poll_ready_unpin(cx))?;
            if let Some(message) = out.next.take() {
                sink.start_send_unpin(message)?;
            }
            out.flushing = true;
        }
        ready!(sink.poll_flush_unpin(cx))?;
        out.flushing = false;
        Poll::Ready(Ok(()))
    })
    .await
}

/// The router's kick, once (pending when there is none or it was dropped). **Cancel-safe**.
async fn kill_switch(kill: &mut Option<oneshot::Receiver<(ErrorCode, String)>>) -> Option<(ErrorCode, String)> {
    let Some(rx) = kill else { return pending().await };
    let killed = rx.await;
    *kill = None;
    killed.ok()
}

/// Waits for frames (pending before the connection is registered).
async fn frames_ready(feed: &mut Option<(FrameFeed, Arc<WriterProgress>)>) {
    match feed {
        Some((frames, _)) => frames.ready().await,
        None => pending().await,
    }
}
