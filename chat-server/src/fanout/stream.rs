//! The shared stream: broadcasts and join/leave notices, encoded once, read by every writer.
//!
//! ```text
//!  owner ── append(frame) ──► pending bytes ── seal() ──► chunk ─┐ (head offset published on a watch)
//!                                                               ▼
//!          every subscribed writer: collect(cursor, head) → reference-counted slices → vectored write
//! ```
//!
//! Nothing is done per recipient: at the end of an owner turn that publishes, the pending bytes are
//! sealed into one chunk ([`Stream::seal`]), the turn's private frames are handed over, and then the
//! new head offset is announced ([`Stream::announce`]); each writer wakes, takes slices of the chunks
//! between its cursor and the head, and writes them. (Sealed before the hand-over, so a private frame
//! can be preceded by the stream up to its position; announced after it, so a writer that reads the
//! head before its private queue finds there every private frame due before that head.) Chunks every reader has passed are
//! dropped ([`Stream::trim`]), so the stream's memory is bounded by the slow-consumer backlog limit,
//! shared by all connections. Offsets are byte positions since the server started.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use chat_transport::TransportError;
use chat_transport::codec::encode_frame_into;
use tokio::sync::watch;

use crate::protocol::ServerFrame;

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

    /// The sealed head (what writers can read; announced to them by [`Stream::announce`]).
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

    /// Makes everything appended since the last seal one chunk, readable but not announced: the
    /// writers learn of it from [`Stream::announce`].
    pub(crate) fn seal(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = self.pending.split().freeze();
        let chunk = Chunk { start: self.sealed, bytes, seqs: std::mem::take(&mut self.pending_seqs) };
        self.sealed = chunk.end();
        lock(&self.chunks).push_back(chunk);
    }

    /// Announces the sealed head to the writers (see the module documentation: only once the private
    /// frames that follow what was sealed are handed over).
    pub(crate) fn announce(&mut self) {
        let sealed = self.sealed;
        self.head.send_if_modified(|head| std::mem::replace(head, sealed) != sealed);
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
    /// The published head offset.
    pub(super) head: watch::Receiver<u64>,
}

impl StreamReader {
    /// Appends slices covering `[from, to)` to `out`; returns the highest message sequence number
    /// whose frame ends at or before `to` (0 if none).
    pub(super) fn collect(&self, from: u64, to: u64, out: &mut Vec<Bytes>) -> u64 {
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

#[cfg(test)]
mod tests {
    use chat_transport::encode_frame;

    use super::*;

    #[test]
    fn collect_slices_ranges_and_reports_the_last_whole_message() {
        let frames = [ServerFrame::Ping, ServerFrame::Pong, ServerFrame::Ping];
        let encoded: Vec<Bytes> = frames.iter().map(|f| encode_frame(f).unwrap()).collect();
        let len = encoded[0].len() as u64; // 5: a 4-byte prefix and a one-byte variant
        let mut s = Stream::new();
        s.append(&frames[0], 1).unwrap();
        s.append(&frames[1], 0).unwrap();
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
