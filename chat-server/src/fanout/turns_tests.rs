//! Test helpers shared by the writer's and the feed's tests: owner turns run on a thread of their
//! own, as the owner ends a turn, against a reader running concurrently.

use std::thread::JoinHandle;
use std::time::Duration;

use chat_transport::encode_frame;

use super::private_queue::{Private, PrivateSender};
use super::stream::Stream;
use crate::protocol::ServerFrame;

/// Turns each concurrent test runs.
pub(super) const TURNS: u64 = 3000;

/// A frame carrying its position in server order.
pub(super) fn numbered(n: u64) -> ServerFrame {
    ServerFrame::Peers { req: n, names: vec![] }
}

/// [`TURNS`] owner turns on a thread of their own, each: a stream frame, a private frame to follow
/// it, another stream frame, then the end of the turn as the owner does it (the stream sealed, the
/// private frames handed over, the head announced), with yields between the steps (a preempted
/// owner). Then a last private frame after everything, and the queue closes: a reader reads the
/// stream up to that frame, the frame, and ends. `3 * TURNS + 1` frames in all, numbered in server
/// order. The thread gives the stream back.
pub(super) fn owner_turns(mut stream: Stream, sender: PrivateSender) -> JoinHandle<Stream> {
    std::thread::spawn(move || {
        for turn in 0..TURNS {
            let n = turn * 3;
            stream.append(&numbered(n), n + 1).unwrap();
            let private =
                Private::Frame { bytes: encode_frame(&numbered(n + 1)).unwrap(), seq: n + 2, bpos: stream.offset() };
            stream.append(&numbered(n + 2), n + 3).unwrap();
            stream.seal();
            std::thread::yield_now();
            sender.try_send(private).unwrap();
            std::thread::yield_now();
            stream.announce();
            if turn % 64 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        let end = Private::Frame { bytes: encode_frame(&numbered(3 * TURNS)).unwrap(), seq: 0, bpos: stream.offset() };
        sender.try_send(end).unwrap();
        drop(sender);
        stream
    })
}

/// Fails unless `got` is every frame of [`owner_turns`] once, in server order.
pub(super) fn assert_every_turn_in_order(got: &[u64]) {
    let misplaced: Vec<_> = got.windows(2).filter(|w| w[0] >= w[1]).map(|w| (w[0], w[1])).take(5).collect();
    assert!(misplaced.is_empty(), "out of server order (first five): {misplaced:?}");
    assert_eq!(got.len() as u64, 3 * TURNS + 1, "every frame once");
}
