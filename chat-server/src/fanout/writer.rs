//! The writer task of one connection: merges its private queue and the shared stream in server
//! order and writes them with vectored writes; pings when idle; obeys the kill switch.
//!
//! It never pings before its first frame (the login's answer, `Welcome` or `Refused`): a client
//! takes any other frame while logging in for a protocol error, and in cluster mode the answer waits
//! for the shared log, which can stall for seconds during a NATS failover.
//!
//! A private frame tagged `bpos` is written after the stream up to `bpos`, then the stream goes on
//! from there, so private and stream frames keep their relative order. The writer reads the announced
//! head before it pops private frames, and writes the stream only up to that head (see the module
//! documentation of `fanout` for the owner's half of this agreement). The writer publishes how far
//! it got (stream cursor, highest message sequence written) in its [`WriterProgress`], which the owner
//! reads for the lag policy and the journal for delivery watermarks.

use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use chat_core::ErrorCode;
use chat_transport::encode_frame;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use super::private_queue::{Private, PrivateQueue, WriterProgress};
use super::stream::StreamReader;
use crate::protocol::ServerFrame;

/// Most bytes a writer hands to the kernel in one vectored write.
pub const MAX_WRITE_BATCH: usize = 1024 * 1024;
/// Most slices in one vectored write (Linux `IOV_MAX` is 1024).
const MAX_IOVECS: usize = 512;
/// The encoded `Ping`, shared by every writer (not one copy in each writer's state).
static PING: LazyLock<Bytes> = LazyLock::new(|| encode_frame(&ServerFrame::Ping).expect("ping encodes"));
/// How long a disconnected slow consumer gets to accept its `Closing` frame.
pub const KILL_GRACE: Duration = Duration::from_secs(1);

/// The writer task of one connection.
///
/// Its future is the task's memory for as long as the connection lives, idle or not: a kick's
/// `close_with` is boxed, so its state is allocated only when it happens, and nothing large is held
/// across the loop's awaits.
///
/// (A plain function returning an `async move` block: an `async fn` would keep a second copy of its
/// arguments in its state.)
#[allow(clippy::manual_async_fn)] // on purpose: see the note above
pub(crate) fn write_loop<W: AsyncWrite + Unpin + Send>(
    mut write: W,
    private: Arc<PrivateQueue>,
    mut stream: StreamReader,
    mut kill: oneshot::Receiver<(ErrorCode, String)>,
    progress: Arc<WriterProgress>,
    heartbeat: Duration,
) -> impl Future<Output = ()> + Send {
    async move {
        let mut cursor: Option<u64> = None;
        let mut kill_armed = true;
        let mut stream_open = true;
        let mut segments: Vec<Bytes> = Vec::new();
        // Something was written: the login was answered, pings may follow.
        let mut answered = false;
        // The loop's only awaits are the wait for work and the write: what ends it (a kick's close,
        // the clean end) runs after it, so that the future's layout needs no room for them.
        let exit = loop {
            // A kick drops the queue too: look for it before taking a closed queue for a clean end.
            if let Some((code, reason)) = kicked(&mut kill, &mut kill_armed) {
                break Exit::Kicked(code, reason);
            }
            // The owner forgot this connection (it left, or the server is stopping) and everything queued
            // for it is written: close. The stream is not followed any further.
            if private.is_closed() && private.is_empty() {
                break Exit::Done;
            }
            // Wait only when there is nothing to write.
            let backlog = cursor.is_some_and(|c| c < *stream.head.borrow());
            if !backlog && private.is_empty() {
                tokio::select! {
                    biased;
                    killed = &mut kill, if kill_armed => {
                        kill_armed = false;
                        if let Ok((code, reason)) = killed {
                            break Exit::Kicked(code, reason);
                        }
                        continue;
                    }
                    () = private.ready.notified() => {}
                    changed = stream.head.changed(), if cursor.is_some() && stream_open => {
                        // Err: the owner dropped the stream (shutdown); what was sealed stays readable.
                        stream_open = changed.is_ok();
                    }
                    () = tokio::time::sleep(heartbeat), if answered => segments.push(PING.clone()),
                }
            } else if let Some((code, reason)) = kicked(&mut kill, &mut kill_armed) {
                break Exit::Kicked(code, reason);
            }

            // The head is read *before* the private queue. The owner announces a head only after handing
            // over the private frames that precede the stream up to it, so every private frame due before
            // `head` is in the queue now; one queued later has a `bpos` at or past `head`. Reading the queue
            // first would let a frame queued in between be written after stream frames that follow it.
            let head = *stream.head.borrow_and_update();
            // Gather: private frames in order (each preceded by the stream up to its bpos), then the stream.
            let mut seq = 0;
            // Whether every private frame queued was taken: only then may the stream go on past them.
            let mut drained = false;
            let mut bytes = segments.iter().map(Bytes::len).sum::<usize>();
            while bytes < MAX_WRITE_BATCH && segments.len() < MAX_IOVECS {
                let Some(item) = private.pop() else {
                    drained = true;
                    break;
                };
                match item {
                    Private::Frame { bytes: frame, seq: s, bpos } => {
                        if let Some(c) = cursor
                            && bpos > c
                        {
                            seq = seq.max(stream.collect(c, bpos, &mut segments));
                            cursor = Some(bpos);
                        }
                        bytes += frame.len();
                        segments.push(frame);
                        seq = seq.max(s);
                    }
                    Private::Subscribe { from } => cursor = Some(from),
                }
            }
            if drained && let Some(c) = cursor.filter(|_| !private.is_closed()) {
                let budget = MAX_WRITE_BATCH.saturating_sub(bytes) as u64;
                let to = head.min(c + budget.max(1));
                if to > c && segments.len() < MAX_IOVECS {
                    seq = seq.max(stream.collect(c, to, &mut segments));
                    cursor = Some(to);
                }
            }
            if segments.is_empty() {
                continue;
            }
            // A client that stopped reading blocks this write; the kill switch must still get through.
            tokio::select! {
                biased;
                killed = &mut kill, if kill_armed => {
                    if let Ok((code, reason)) = killed {
                        // `segments` holds exactly what is not written yet: finish the frames begun first.
                        break Exit::Kicked(code, reason);
                    }
                    kill_armed = false;
                    if write_all_vectored(&mut write, &mut segments).await.is_err() {
                        break Exit::Failed;
                    }
                }
                written = write_all_vectored(&mut write, &mut segments) => {
                    if written.is_err() {
                        break Exit::Failed;
                    }
                }
            }
            answered = true;
            // An idle connection should not keep the segment list of its busiest moment (8 KiB budget per connection).
            if segments.capacity() > 64 {
                segments = Vec::new();
            }
            if let Some(c) = cursor {
                progress.cursor.store(c, Ordering::Release);
            }
            if seq > 0 {
                progress.mark.fetch_max(seq, Ordering::Release);
            }
        };
        match exit {
            Exit::Done => {
                let _ = write.shutdown().await;
            }
            Exit::Kicked(code, reason) => Box::pin(close_with(write, segments, code, reason)).await,
            Exit::Failed => {}
        }
    }
}

/// The kick waiting on `kill`, if any, while it is `armed`. A closed channel (the owner forgot the
/// connection without a kick) disarms it: a oneshot must never be polled again once `try_recv` has
/// seen it closed (tokio panics, and the writer's queued frames, a `Refused` say, would be lost).
fn kicked(kill: &mut oneshot::Receiver<(ErrorCode, String)>, armed: &mut bool) -> Option<(ErrorCode, String)> {
    if !*armed {
        return None;
    }
    match kill.try_recv() {
        Ok(kick) => Some(kick),
        Err(oneshot::error::TryRecvError::Empty) => None,
        Err(oneshot::error::TryRecvError::Closed) => {
            *armed = false;
            None
        }
    }
}

/// How a writer ends.
enum Exit {
    /// Everything queued is written and the owner forgot the connection: end the stream.
    Done,
    /// Kicked: what was begun, then `Closing { code, reason }` (see `close_with`).
    Kicked(ErrorCode, String),
    /// A write failed: the connection is gone.
    Failed,
}

/// Ends a kicked connection: what was begun, then `Closing { code, reason }` (both within
/// [`KILL_GRACE`]), then end of stream; the socket is held open for [`KILL_GRACE`] more so the client
/// can read why. (Closing at once while the client still sends would reset the connection, and a
/// reset discards what the client had not read yet: the `Closing` frame.)
async fn close_with<W: AsyncWrite + Unpin>(mut write: W, mut begun: Vec<Bytes>, code: ErrorCode, reason: String) {
    let said = tokio::time::timeout(KILL_GRACE, async {
        write_all_vectored(&mut write, &mut begun).await?;
        let closing = encode_frame(&ServerFrame::Closing { code, reason }).map_err(std::io::Error::other)?;
        write.write_all(&closing).await?;
        write.shutdown().await
    })
    .await;
    if matches!(said, Ok(Ok(()))) {
        tokio::time::sleep(KILL_GRACE).await;
    }
}

/// Writes every segment (and empties the list), with as few syscalls as the kernel allows.
///
/// **Cancel-safe**: after each write the list holds exactly the bytes not yet written, so a caller
/// that stops waiting can finish them later.
async fn write_all_vectored<W: AsyncWrite + Unpin>(write: &mut W, segments: &mut Vec<Bytes>) -> std::io::Result<()> {
    while !segments.is_empty() {
        let slices: Vec<IoSlice<'_>> = segments.iter().map(|b| IoSlice::new(b)).collect();
        let mut written = write.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut done = 0;
        while done < segments.len() && written >= segments[done].len() {
            written -= segments[done].len();
            done += 1;
        }
        segments.drain(..done);
        if written > 0 {
            let rest = segments[0].slice(written..);
            segments[0] = rest;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
