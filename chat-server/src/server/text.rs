//! A text connection's shell (seed 000's protocol, see [`crate::text`]): it moves bytes between the
//! socket, the sans-IO [`TextSession`] and the owner task; every decision is the session's.
//!
//! ```text
//!  socket ─► reader task (one read ≤ MAX_READ = one message) ─(bounded, 1)─┐
//!                                                                          ▼
//!  owner ◄── Open / Frame / Closed ──────────────────────────── connection task: TextSession
//!  owner ── private queue + shared stream ─► FrameFeed (decoded frames) ──► ┘   │ one paced line
//!                                                                              ▼ per write
//!                                                                            socket
//! ```
//!
//! To the owner a text connection looks like any other: a [`ConnEntry`] (private queue, progress,
//! kill switch, reader task to abort) registered when the client says `CONNECT`. One task renders
//! and writes (a text connection has no writer task of its own), so the owner's `Close` (which
//! aborts the reader and drops the queue) still lets the last lines out. A text connection reserves a
//! [`MAX_READ`] read buffer (not zeroed: only the pages its reads touch are resident); there is no
//! idle timeout (the original client sends nothing when idle), TCP keepalive finds dead peers.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, Bytes};
use chat_core::ErrorCode;
use chat_transport::{ByteStream, sleep_until};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use super::connection::{ConnEntry, Inbound};
use super::now;
use crate::fanout::KILL_GRACE;
use crate::fanout::feed::{FrameFeed, Next};
use crate::fanout::private_queue::{PrivateQueue, WriterProgress};
use crate::fanout::stream::StreamReader;
use crate::router::ConnId;
use crate::text::{CONNECT_TIMEOUT, MAX_READ, TextEvent, TextSession, reject_line};

/// Most frames rendered before the task looks at its socket and its kill switch again.
const FRAMES_PER_TURN: usize = 256;

/// What the reader task read.
enum Read {
    /// The bytes of one read: one message (or several lines).
    Data(Bytes),
    /// End of stream (`reset`: the connection broke).
    End { reset: bool },
}

/// Aborts the reader task when the connection task ends (or is aborted by the owner).
struct Reader(JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves one text connection until its session is done.
pub(super) async fn serve_text<S: ByteStream>(
    conn: ConnId,
    stream: S,
    inbound: mpsc::Sender<Inbound>,
    outbox: usize,
    stream_reader: StreamReader,
) {
    let (read, mut write) = tokio::io::split(stream);
    let (chunks_tx, mut chunks) = mpsc::channel(1);
    let reader = Reader(tokio::spawn(read_loop(read, chunks_tx)));
    let mut session = TextSession::new(now());
    let mut feed: Option<(FrameFeed, Arc<WriterProgress>)> = None;
    let mut kill: Option<oneshot::Receiver<(ErrorCode, String)>> = None;
    let mut reading = true;
    let mut out: Option<Bytes> = None;
    loop {
        while let Some(event) = session.poll_event() {
            let report = match event {
                TextEvent::Open => {
                    let (private, queue) = PrivateQueue::new(outbox);
                    let (kill_tx, kill_rx) = oneshot::channel();
                    let progress = WriterProgress::new();
                    feed = Some((FrameFeed::new(queue, stream_reader.clone(), progress.clone()), progress.clone()));
                    kill = Some(kill_rx);
                    let entry = ConnEntry {
                        private,
                        progress,
                        kill: Some(kill_tx),
                        reader: reader.0.abort_handle(),
                        legacy: false,
                        resumable: false,
                        gate: None,
                    };
                    Inbound::Open { conn, entry }
                }
                TextEvent::Frame(frame) => Inbound::Frame { conn, frame },
                TextEvent::Closed { reason } => {
                    reader.0.abort();
                    reading = false;
                    Inbound::Closed { conn, reason }
                }
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
                    Next::Frame(frame) => session.handle_frame(now(), &frame),
                    Next::Nothing => break,
                    Next::Closed => session.handle_server_closed(),
                }
            }
            progress.mark.fetch_max(session.delivered(), Ordering::Release);
        }
        if session.is_done() {
            break;
        }
        if out.is_none() {
            out = session.poll_transmit(now());
        }
        if more {
            tokio::task::yield_now().await;
            continue;
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            Some(reason) = killed(&mut kill) => session.handle_kill(now(), &reason),
            written = write_some(&mut write, &out) => match written {
                Ok(n) if n > 0 => {
                    if let Some(line) = &mut out {
                        line.advance(n);
                        if line.is_empty() {
                            out = None;
                            session.handle_written(now());
                        }
                    }
                }
                _ => session.handle_read_end(true),
            },
            read = chunks.recv(), if reading => match read {
                Some(Read::Data(bytes)) => session.handle_read(&bytes),
                Some(Read::End { reset }) => session.handle_read_end(reset),
                None => reading = false, // the owner closed the connection: its reader is gone
            },
            () = frames_ready(&mut feed), if session.wants_frames() => {}
            () = sleep_until(deadline) => session.handle_timeout(now()),
        }
    }
    drop(reader);
    let _ = tokio::time::timeout(KILL_GRACE, write.shutdown()).await;
    if session.linger() {
        // The client may still be sending: closing now would reset the connection and lose the last line.
        tokio::time::sleep(KILL_GRACE).await;
    }
    debug!(conn, "text connection ended");
}

/// Answers a text connection the router refused (`busy`): `REJECT:<reason>` once it has said
/// `CONNECT` (or after [`CONNECT_TIMEOUT`]), then close.
pub(super) async fn refuse_text<S: ByteStream>(mut stream: S, message: String) {
    let mut first = [0u8; 64];
    let _ = tokio::time::timeout(CONNECT_TIMEOUT, stream.read(&mut first)).await;
    let _ = tokio::time::timeout(CONNECT_TIMEOUT, async {
        stream.write_all(&reject_line(&message)).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads the socket: each read, at most [`MAX_READ`] bytes, is passed on whole. The buffer is
/// reserved, not zeroed: an idle connection keeps only the pages its reads touched.
async fn read_loop<R: AsyncRead + Unpin>(mut read: R, chunks: mpsc::Sender<Read>) {
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_READ);
    loop {
        buf.clear();
        let read = match read.read_buf(&mut buf).await {
            Ok(0) => Read::End { reset: false },
            Ok(_) => Read::Data(Bytes::copy_from_slice(&buf)),
            Err(_) => Read::End { reset: true },
        };
        let end = matches!(read, Read::End { .. });
        if chunks.send(read).await.is_err() || end {
            return;
        }
    }
}

/// The router's kick, once (pending when there is none or it was dropped). **Cancel-safe**.
async fn killed(kill: &mut Option<oneshot::Receiver<(ErrorCode, String)>>) -> Option<String> {
    let Some(rx) = kill else { return pending().await };
    let killed = rx.await;
    *kill = None;
    killed.ok().map(|(_, reason)| reason)
}

/// Writes part of the line under way (pending when there is none). **Cancel-safe**: nothing is
/// written unless it completes.
async fn write_some<W: AsyncWrite + Unpin>(write: &mut W, out: &Option<Bytes>) -> std::io::Result<usize> {
    match out {
        Some(line) => write.write(line).await,
        None => pending().await,
    }
}

/// Waits for frames (pending before the connection is registered).
async fn frames_ready(feed: &mut Option<(FrameFeed, Arc<WriterProgress>)>) {
    match feed {
        Some((frames, _)) => frames.ready().await,
        None => pending().await,
    }
}
