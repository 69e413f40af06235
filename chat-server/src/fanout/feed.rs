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
            // Closed is read before popping: whatever was queued before the close is popped. So is
            // the head: every private frame due before it was handed over before it was announced
            // (see the writer), so none can turn up after the stream up to it was read.
            let closed = self.private.is_closed();
            let head = *self.stream.head.borrow_and_update();
            match self.held.take().or_else(|| self.private.pop()) {
                Some(Private::Frame { bytes, seq, bpos }) => {
                    if let Some(c) = self.cursor
                        && bpos > c
                    {
                        // The owner hands a frame over once what it follows is sealed, and announces
                        // the head just after: until then the frame waits rather than skip the stream.
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
                None => match self.cursor {
                    Some(c) if head > c => self.collect(c, head),
                    _ => return Next::Nothing,
                },
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
    use crate::fanout::turns_tests::{TURNS, assert_every_turn_in_order, numbered as frame, owner_turns};

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
        stream.announce();
        let from = stream.offset();
        sender.try_send(Private::Subscribe { from }).unwrap();
        stream.append(&frame(1), 0).unwrap();
        stream.append(&frame(2), 0).unwrap();
        // A private frame queued after 1 and 2 were appended, before they are published.
        let bytes = encode_frame(&frame(3)).unwrap();
        sender.try_send(Private::Frame { bytes, seq: 0, bpos: stream.offset() }).unwrap();
        assert_eq!(all(&mut feed), Vec::<u64>::new(), "3 waits for 1 and 2");
        stream.seal();
        stream.announce();
        stream.append(&frame(4), 0).unwrap();
        stream.seal();
        stream.announce();
        assert_eq!(all(&mut feed), [1, 2, 3, 4]);
        assert_eq!(progress.cursor.load(Ordering::Acquire), stream.head());
        // Closed: what was queued before is still read; the stream is no longer followed.
        sender.try_send(Private::Frame { bytes: encode_frame(&frame(5)).unwrap(), seq: 0, bpos: 0 }).unwrap();
        stream.append(&frame(6), 0).unwrap();
        stream.seal();
        stream.announce();
        drop(sender);
        assert_eq!(all(&mut feed), [5]);
        assert!(matches!(feed.next(), Next::Closed));
    }

    /// A turn as the owner ends it: stream frame 1, private frame 2 to follow it, stream frame 3; the
    /// stream sealed; the reader looks (woken by an earlier announcement, say); then the private
    /// frame is handed over and the head announced. Were the head announced at the seal, the reader
    /// would read 1 and 3, and 2 would come after 3 (a client drops a message whose sequence number is
    /// not above the last it saw: it would be lost).
    #[test]
    fn a_reader_looking_between_the_seal_and_the_hand_over_reads_nothing_of_that_turn() {
        let mut stream = Stream::new();
        let (sender, queue) = PrivateQueue::new(16);
        let mut feed = FrameFeed::new(queue, stream.reader(), WriterProgress::new());
        sender.try_send(Private::Subscribe { from: 0 }).unwrap();
        stream.append(&frame(1), 1).unwrap();
        let private = Private::Frame { bytes: encode_frame(&frame(2)).unwrap(), seq: 2, bpos: stream.offset() };
        stream.append(&frame(3), 3).unwrap();
        stream.seal();
        assert_eq!(all(&mut feed), Vec::<u64>::new(), "sealed but not announced");
        sender.try_send(private).unwrap();
        assert_eq!(all(&mut feed), Vec::<u64>::new(), "handed over: 2 waits for 1 to be announced");
        stream.announce();
        assert_eq!(all(&mut feed), [1, 2, 3]);
    }

    /// The same turns on a thread of their own, with yields between the steps (a preempted owner),
    /// while this thread reads: every frame once, in server order, wherever the reads fall.
    #[test]
    fn concurrent_turns_come_out_in_server_order() {
        let stream = Stream::new();
        let (sender, queue) = PrivateQueue::new(4 * TURNS as usize);
        let mut feed = FrameFeed::new(queue, stream.reader(), WriterProgress::new());
        sender.try_send(Private::Subscribe { from: 0 }).unwrap();
        let owner = owner_turns(stream, sender);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut got = Vec::new();
        loop {
            match feed.next() {
                Next::Frame(ServerFrame::Peers { req, .. }) => got.push(req),
                Next::Frame(other) => panic!("{other:?}"),
                Next::Nothing => {
                    assert!(std::time::Instant::now() < deadline, "stuck after {} frames", got.len());
                    std::thread::yield_now();
                }
                Next::Closed => break,
            }
        }
        owner.join().unwrap();
        assert_every_turn_in_order(&got);
    }
}
