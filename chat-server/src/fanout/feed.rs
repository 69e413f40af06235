//! The frames of one connection one at a time, for a connection that renders each (the text
//! protocol's): its private queue and the shared stream merged in server order, exactly as the
//! writer task merges their bytes, then decoded.
//!
//! ```text
//!  private queue ── Frame { bpos } ──┐   the stream up to bpos first, then the frame
//!                                    ├──► next() ──► ServerFrame
//!  shared stream ── [cursor, head) ──┘   (followed only while the private queue is open)
//! ```
//!
//! The feed publishes how far it read the stream in the connection's [`WriterProgress`] (the
//! owner's lag check reads it). The stream's bytes are reference-counted slices: nothing is copied
//! until a frame is decoded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, Bytes};
use chat_transport::codec::{LEN_PREFIX, decode_payload};

use super::private_queue::{Private, PrivateQueue, WriterProgress};
use super::stream::StreamReader;
use crate::protocol::ServerFrame;

/// What [`FrameFeed::next`] found.
#[derive(Debug)]
pub(crate) enum Next {
    /// The next frame in server order.
    Frame(ServerFrame),
    /// Nothing yet: wait with [`FrameFeed::ready`].
    Nothing,
    /// The owner closed the connection's queue and everything in it was read.
    Closed,
}

/// A connection's frames, in server order.
pub(crate) struct FrameFeed {
    private: Arc<PrivateQueue>,
    stream: StreamReader,
    progress: Arc<WriterProgress>,
    /// Stream offset up to which bytes were collected (`None` until subscribed).
    cursor: Option<u64>,
    /// Stream offset up to which frames were decoded.
    read: u64,
    /// Collected stream bytes not decoded yet: whole frames.
    pending: VecDeque<Bytes>,
    /// A private frame waiting for the stream bytes before it.
    held: Option<Private>,
    stream_open: bool,
}

impl FrameFeed {
    /// A feed over a connection's private queue and the shared stream.
    pub(crate) fn new(private: Arc<PrivateQueue>, stream: StreamReader, progress: Arc<WriterProgress>) -> Self {
        FrameFeed {
            private,
            stream,
            progress,
            cursor: None,
            read: 0,
            pending: VecDeque::new(),
            held: None,
            stream_open: true,
        }
    }

    /// The next frame, if one is ready.
    pub(crate) fn next(&mut self) -> Next {
        loop {
            if let Some(frame) = self.decode_pending() {
                return Next::Frame(frame);
            }
            // Closed is read before popping: whatever was queued before the close is popped.
            let closed = self.private.is_closed();
            match self.held.take().or_else(|| self.private.pop()) {
                Some(Private::Frame { bytes, seq, bpos }) => {
                    if let Some(c) = self.cursor
                        && bpos > c
                    {
                        // The owner hands frames over once what they follow is published; should
                        // one come early all the same, it waits rather than skip the stream.
                        let head = *self.stream.head.borrow_and_update();
                        self.held = Some(Private::Frame { bytes, seq, bpos });
                        if bpos > head {
                            return Next::Nothing;
                        }
                        self.collect(c, bpos);
                        continue;
                    }
                    match decode(bytes) {
                        Some(frame) => return Next::Frame(frame),
                        None => continue,
                    }
                }
                Some(Private::Subscribe { from }) => {
                    self.cursor = Some(from);
                    self.read = from;
                    self.progress.cursor.store(from, Ordering::Release);
                }
                None if closed => return Next::Closed,
                None => {
                    let head = *self.stream.head.borrow_and_update();
                    match self.cursor {
                        Some(c) if head > c => self.collect(c, head),
                        _ => return Next::Nothing,
                    }
                }
            }
        }
    }

    /// Waits until [`FrameFeed::next`] may find something new. **Cancel-safe**.
    pub(crate) async fn ready(&mut self) {
        let follow = self.cursor.is_some() && self.stream_open;
        tokio::select! {
            () = self.private.ready.notified() => {}
            changed = self.stream.head.changed(), if follow => self.stream_open = changed.is_ok(),
        }
    }

    /// Collects the stream's bytes in `[from, to)` for decoding.
    fn collect(&mut self, from: u64, to: u64) {
        let mut slices = Vec::new();
        self.stream.collect(from, to, &mut slices);
        self.pending.extend(slices);
        self.cursor = Some(to);
    }

    /// Decodes the next whole frame of the collected stream bytes.
    fn decode_pending(&mut self) -> Option<ServerFrame> {
        loop {
            let slice = self.pending.front_mut()?;
            if slice.len() < LEN_PREFIX {
                self.pending.pop_front();
                continue;
            }
            let len = LEN_PREFIX + u32::from_be_bytes([slice[0], slice[1], slice[2], slice[3]]) as usize;
            let frame = slice.split_to(len.min(slice.len()));
            if slice.is_empty() {
                self.pending.pop_front();
            }
            self.read += frame.len() as u64;
            self.progress.cursor.store(self.read, Ordering::Release);
            if let Some(frame) = decode(frame) {
                return Some(frame);
            }
        }
    }
}

/// Decodes one encoded frame (prefix and payload); `None` (traced) if it does not decode, which the
/// server's own encoding never produces.
fn decode(mut bytes: Bytes) -> Option<ServerFrame> {
    if bytes.len() < LEN_PREFIX {
        return None;
    }
    bytes.advance(LEN_PREFIX);
    decode_payload(&bytes).map_err(|e| tracing::warn!(error = %e, "a frame of the stream did not decode")).ok()
}

#[cfg(test)]
mod tests {
    use chat_transport::encode_frame;

    use super::*;
    use crate::fanout::stream::Stream;

    fn frame(n: u64) -> ServerFrame {
        ServerFrame::Peers { req: n, names: vec![] }
    }

    fn all(feed: &mut FrameFeed) -> Vec<u64> {
        let mut out = Vec::new();
        for _ in 0..100 {
            match feed.next() {
                Next::Frame(ServerFrame::Peers { req, .. }) => out.push(req),
                Next::Frame(other) => panic!("{other:?}"),
                Next::Nothing | Next::Closed => break,
            }
        }
        out
    }

    #[test]
    fn private_frames_and_the_stream_come_out_in_server_order() {
        let mut stream = Stream::new();
        let (sender, queue) = PrivateQueue::new(16);
        let progress = WriterProgress::new();
        let mut feed = FrameFeed::new(queue, stream.reader(), progress.clone());
        stream.append(&frame(0), 0).unwrap(); // before the subscription: never read
        stream.seal();
        let from = stream.offset();
        sender.try_send(Private::Subscribe { from }).unwrap();
        stream.append(&frame(1), 0).unwrap();
        stream.append(&frame(2), 0).unwrap();
        // A private frame queued after 1 and 2 were appended, before they are published.
        let bytes = encode_frame(&frame(3)).unwrap();
        sender.try_send(Private::Frame { bytes, seq: 0, bpos: stream.offset() }).unwrap();
        assert_eq!(all(&mut feed), Vec::<u64>::new(), "3 waits for 1 and 2");
        stream.seal();
        stream.append(&frame(4), 0).unwrap();
        stream.seal();
        assert_eq!(all(&mut feed), [1, 2, 3, 4]);
        assert_eq!(progress.cursor.load(Ordering::Acquire), stream.head());
        // Closed: what was queued before is still read; the stream is no longer followed.
        sender.try_send(Private::Frame { bytes: encode_frame(&frame(5)).unwrap(), seq: 0, bpos: 0 }).unwrap();
        stream.append(&frame(6), 0).unwrap();
        stream.seal();
        drop(sender);
        assert_eq!(all(&mut feed), [5]);
        assert!(matches!(feed.next(), Next::Closed));
    }
}
