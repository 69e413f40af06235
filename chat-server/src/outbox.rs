//! Fan-out plumbing between the owner task and the per-connection writers.
//!
//! Two paths lead to a connection's socket, merged by its writer in server order:
//!
//! ```text
//!  owner ── append(frame) ──► Stream (shared, append-only chunks of encoded frames) ──┐ every subscribed
//!        │                    head offset published once per turn (watch)             │ writer reads the
//!        │                                                                            ▼ same Bytes
//!        └── Private { frame, bpos } ──► per-connection bounded queue ──────────► writer ──► socket
//! ```
//!
//! * **Broadcasts** (and join/leave notices) are encoded once and appended to the [`Stream`]. Nothing is
//!   done per recipient: at the end of each owner turn the pending bytes are sealed into one chunk
//!   and the new head offset is published; each writer wakes, takes reference-counted slices of the
//!   chunks between its cursor and the head, and writes them with vectored writes.
//! * **Everything else** (unicasts, multicasts, replies) goes to the connection's private queue,
//!   tagged with `bpos`, the stream offset when it was queued. The writer first writes the stream up
//!   to `bpos`, then the private frame, so private and broadcast frames keep their relative order.
//!
//! **Slow consumers.** A connection whose private queue is full, or whose stream cursor lags the
//! head by more than the configured backlog, is disconnected (`slow_consumer`). Stream chunks are
//! dropped once every subscribed writer has passed them, so the stream's memory is bounded by the
//! backlog limit, shared by all connections.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chat_core::ErrorCode;
use chat_transport::codec::encode_frame_into;
use chat_transport::{TransportError, encode_frame};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, oneshot, watch};

use crate::protocol::ServerFrame;

/// Most bytes a writer hands to the kernel in one vectored write.
pub const MAX_WRITE_BATCH: usize = 1024 * 1024;
/// Most slices in one vectored write (Linux `IOV_MAX` is 1024).
const MAX_IOVECS: usize = 512;
/// How long a disconnected slow consumer gets to accept its `Closing` frame.
pub const KILL_GRACE: Duration = Duration::from_secs(1);

/// One sealed chunk of the stream.
struct Chunk {
    /// Stream offset of the first byte.
    start: u64,
    /// Whole encoded frames.
    bytes: Bytes,
    /// `(end offset, server sequence)` of each message frame in the chunk, ascending.
    seqs: Vec<(u64, u64)>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

/// The append-only stream of frames every logged-in connection receives (owner side).
pub(crate) struct Stream {
    chunks: Arc<Mutex<VecDeque<Chunk>>>,
    pending: BytesMut,
    pending_seqs: Vec<(u64, u64)>,
    sealed: u64,
    head: watch::Sender<u64>,
}

impl Stream {
    pub(crate) fn new() -> Self {
        Stream {
            chunks: Arc::new(Mutex::new(VecDeque::new())),
            pending: BytesMut::new(),
            pending_seqs: Vec::new(),
            sealed: 0,
            head: watch::Sender::new(0),
        }
    }

    /// The offset the next appended byte will have.
    pub(crate) fn offset(&self) -> u64 {
        self.sealed + self.pending.len() as u64
    }

    /// The sealed head (what writers can read).
    pub(crate) fn head(&self) -> u64 {
        self.sealed
    }

    /// Encodes `frame` straight into the stream; `seq` is its server sequence number if it is a
    /// message, else 0 (a notice).
    pub(crate) fn append(&mut self, frame: &ServerFrame, seq: u64) -> Result<(), TransportError> {
        encode_frame_into(frame, &mut self.pending)?;
        if seq > 0 {
            let end = self.offset();
            self.pending_seqs.push((end, seq));
        }
        Ok(())
    }

    /// Whether the unsealed part holds a message (not only notices).
    pub(crate) fn pending_messages(&self) -> bool {
        !self.pending_seqs.is_empty()
    }

    /// Whether anything is waiting to be sealed.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Publishes everything appended since the last seal as one chunk.
    pub(crate) fn seal(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = self.pending.split().freeze();
        let chunk = Chunk { start: self.sealed, bytes, seqs: std::mem::take(&mut self.pending_seqs) };
        self.sealed = chunk.end();
        lock(&self.chunks).push_back(chunk);
        self.head.send_replace(self.sealed);
    }

    /// Drops chunks that end at or before `min_cursor` (every reader is past them).
    pub(crate) fn trim(&self, min_cursor: u64) {
        let mut chunks = lock(&self.chunks);
        while chunks.front().is_some_and(|c| c.end() <= min_cursor) {
            chunks.pop_front();
        }
    }

    /// A reader handle for a writer task.
    pub(crate) fn reader(&self) -> StreamReader {
        StreamReader { chunks: self.chunks.clone(), head: self.head.subscribe() }
    }
}

fn lock(chunks: &Mutex<VecDeque<Chunk>>) -> std::sync::MutexGuard<'_, VecDeque<Chunk>> {
    chunks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A writer's view of the [`Stream`].
#[derive(Clone)]
pub(crate) struct StreamReader {
    chunks: Arc<Mutex<VecDeque<Chunk>>>,
    head: watch::Receiver<u64>,
}

impl StreamReader {
    /// Appends slices covering `[from, to)` to `out`; returns the highest message sequence number
    /// whose frame ends at or before `to` (0 if none).
    fn collect(&self, from: u64, to: u64, out: &mut Vec<Bytes>) -> u64 {
        let chunks = lock(&self.chunks);
        let mut seq = 0;
        for chunk in chunks.iter() {
            if chunk.end() <= from {
                continue;
            }
            if chunk.start >= to {
                break;
            }
            let s = (from.max(chunk.start) - chunk.start) as usize;
            let e = (to.min(chunk.end()) - chunk.start) as usize;
            out.push(chunk.bytes.slice(s..e));
            let upto = to.min(chunk.end());
            if let Some(&(_, last)) = chunk.seqs.iter().rev().find(|(end, _)| *end <= upto) {
                seq = seq.max(last);
            }
        }
        seq
    }
}

/// What the owner puts in a connection's private queue.
#[derive(Debug)]
pub(crate) enum Private {
    /// A frame for this connection only, to be written after the stream up to `bpos`.
    Frame {
        /// The encoded frame.
        bytes: Bytes,
        /// Its server sequence number if it is a message, else 0.
        seq: u64,
        /// The stream offset when it was queued.
        bpos: u64,
    },
    /// From now on, also write the stream, starting at offset `from`.
    Subscribe {
        /// First stream offset for this connection.
        from: u64,
    },
}

/// A connection's bounded private queue. Unlike a channel it allocates nothing until used, and gives
/// its memory back once drained, so 10 000 idle connections cost little.
pub(crate) struct PrivateQueue {
    items: Mutex<VecDeque<Private>>,
    ready: Notify,
    closed: AtomicBool,
    capacity: usize,
}

impl PrivateQueue {
    /// A queue holding at most `capacity` items, with its sending handle.
    pub(crate) fn new(capacity: usize) -> (PrivateSender, Arc<PrivateQueue>) {
        let queue = Arc::new(PrivateQueue {
            items: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            capacity: capacity.max(1),
        });
        (PrivateSender(queue.clone()), queue)
    }

    fn items(&self) -> std::sync::MutexGuard<'_, VecDeque<Private>> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next item, if any.
    fn pop(&self) -> Option<Private> {
        let mut items = self.items();
        let item = items.pop_front();
        if items.is_empty() && items.capacity() > 64 {
            *items = VecDeque::new();
        }
        item
    }

    fn is_empty(&self) -> bool {
        self.items().is_empty()
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The owner's handle on a [`PrivateQueue`]; dropping it closes the queue (the writer then drains it
/// and closes the connection).
pub(crate) struct PrivateSender(Arc<PrivateQueue>);

impl PrivateSender {
    /// Queues `item`, or gives it back if the queue is full.
    pub(crate) fn try_send(&self, item: Private) -> Result<(), Private> {
        let mut items = self.0.items();
        if items.len() >= self.0.capacity {
            return Err(item);
        }
        items.push_back(item);
        drop(items);
        self.0.ready.notify_one();
        Ok(())
    }
}

impl Drop for PrivateSender {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.ready.notify_one();
    }
}

/// Shared between the owner and a writer: how far the writer got.
#[derive(Debug)]
pub(crate) struct Progress {
    /// Stream offset written so far (`u64::MAX` while not subscribed, so it never holds back trimming).
    pub(crate) cursor: AtomicU64,
    /// Highest message sequence number written to the socket (for delivery watermarks).
    pub(crate) mark: Arc<AtomicU64>,
}

impl Progress {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Progress { cursor: AtomicU64::new(u64::MAX), mark: Arc::new(AtomicU64::new(0)) })
    }
}

/// The writer task of one connection.
pub(crate) async fn write_loop(
    mut write: OwnedWriteHalf,
    private: Arc<PrivateQueue>,
    mut stream: StreamReader,
    mut kill: oneshot::Receiver<(ErrorCode, String)>,
    progress: Arc<Progress>,
    heartbeat: Duration,
) {
    let ping = encode_frame(&ServerFrame::Ping).expect("ping encodes");
    let mut cursor: Option<u64> = None;
    let mut kill_armed = true;
    let mut stream_open = true;
    let mut next: Option<Private> = None;
    let mut segments: Vec<Bytes> = Vec::new();
    loop {
        // The owner forgot this connection (it left, or the server is stopping) and everything queued
        // for it is written: close. The stream is not followed any further.
        if next.is_none() && private.is_closed() && private.is_empty() {
            break;
        }
        // Wait only when there is nothing to write.
        let backlog = cursor.is_some_and(|c| c < *stream.head.borrow());
        if next.is_none() && !backlog && private.is_empty() {
            tokio::select! {
                biased;
                killed = &mut kill, if kill_armed => {
                    kill_armed = false;
                    if let Ok((code, reason)) = killed {
                        return close_with(write, code, reason).await;
                    }
                    continue;
                }
                () = private.ready.notified() => {}
                changed = stream.head.changed(), if cursor.is_some() && stream_open => {
                    // Err: the owner dropped the stream (shutdown); what was sealed stays readable.
                    stream_open = changed.is_ok();
                }
                () = tokio::time::sleep(heartbeat) => segments.push(ping.clone()),
            }
        } else if kill_armed {
            if let Ok((code, reason)) = kill.try_recv() {
                return close_with(write, code, reason).await;
            }
        }

        // Gather: private frames in order (each preceded by the stream up to its bpos), then the stream.
        let mut seq = 0;
        let mut bytes = segments.iter().map(Bytes::len).sum::<usize>();
        while bytes < MAX_WRITE_BATCH && segments.len() < MAX_IOVECS {
            let item = match next.take() {
                Some(item) => item,
                None => match private.pop() {
                    Some(item) => item,
                    None => break,
                },
            };
            match item {
                Private::Frame { bytes: frame, seq: s, bpos } => {
                    if let Some(c) = cursor {
                        if bpos > c {
                            seq = seq.max(stream.collect(c, bpos, &mut segments));
                            cursor = Some(bpos);
                        }
                    }
                    bytes += frame.len();
                    segments.push(frame);
                    seq = seq.max(s);
                }
                Private::Subscribe { from } => cursor = Some(from),
            }
        }
        if let Some(c) = cursor.filter(|_| !private.is_closed()) {
            let head = *stream.head.borrow_and_update();
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
                if killed.is_ok() {
                    // Mid-frame: a Closing frame would be garbage now. Just drop the socket.
                    return;
                }
                kill_armed = false;
                if write_all_vectored(&mut write, &mut segments).await.is_err() {
                    return;
                }
            }
            written = write_all_vectored(&mut write, &mut segments) => {
                if written.is_err() {
                    return;
                }
            }
        }
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
    }
    let _ = write.shutdown().await;
}

async fn close_with(mut write: OwnedWriteHalf, code: ErrorCode, reason: String) {
    if let Ok(frame) = encode_frame(&ServerFrame::Closing { code, reason }) {
        let _ = tokio::time::timeout(KILL_GRACE, write.write_all(&frame)).await;
    }
}

/// Writes every segment (and empties the list), with as few syscalls as the kernel allows.
async fn write_all_vectored(write: &mut OwnedWriteHalf, segments: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut first = 0;
    while first < segments.len() {
        let slices: Vec<IoSlice<'_>> = segments[first..].iter().map(|b| IoSlice::new(b)).collect();
        let mut written = write.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < segments.len() && written >= segments[first].len() {
            written -= segments[first].len();
            first += 1;
        }
        if written > 0 {
            let rest = segments[first].slice(written..);
            segments[first] = rest;
        }
    }
    segments.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_slices_ranges_and_reports_the_last_whole_message() {
        let frames = [ServerFrame::Ping, ServerFrame::Pong, ServerFrame::Ping];
        let encoded: Vec<Bytes> = frames.iter().map(|f| encode_frame(f).unwrap()).collect();
        let len = encoded[0].len() as u64; // 5: a 4-byte prefix and a one-byte variant
        let mut s = Stream::new();
        s.append(&frames[0], 1).unwrap();
        s.append(&frames[1], 0).unwrap();
        assert!(s.pending_messages());
        s.seal();
        s.append(&frames[2], 2).unwrap();
        s.seal();
        let r = s.reader();
        let mut out = Vec::new();
        assert_eq!(r.collect(0, 3 * len, &mut out), 2);
        assert_eq!(out.concat(), encoded.concat());
        out.clear();
        assert_eq!(r.collect(2, 2 * len + 1, &mut out), 1, "message 2 ends beyond the range");
        assert_eq!(out.len(), 2);
        s.trim(2 * len);
        out.clear();
        assert_eq!(r.collect(2 * len, 3 * len, &mut out), 2);
        assert_eq!(out.concat(), encoded[2]);
        assert_eq!(lock(&s.chunks).len(), 1);
    }
}
