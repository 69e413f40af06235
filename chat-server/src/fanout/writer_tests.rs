//! The writer's merge under concurrent owner turns: private frames and the stream in server order.

use std::time::Duration;

use chat_transport::codec::{LEN_PREFIX, decode_payload};
use chat_transport::encode_frame;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use super::write_loop;
use crate::fanout::private_queue::{Private, PrivateQueue, WriterProgress};
use crate::fanout::stream::Stream;
use crate::fanout::turns_tests::{TURNS, assert_every_turn_in_order, owner_turns};
use crate::protocol::ServerFrame;

/// Owner turns on a thread of their own, each: a stream frame, a private frame to follow it, another
/// stream frame, then the end of the turn as the owner does it (the stream sealed, the private frames
/// handed over, the head announced), with yields between the steps (a preempted owner). The writer
/// must write every frame once, in server order, however its wake-ups fall between those steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_woken_mid_turn_never_writes_a_private_frame_after_later_stream_frames() {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (sender, queue) = PrivateQueue::new(4 * TURNS as usize);
    let stream = Stream::new();
    let reader = stream.reader();
    sender.try_send(Private::Subscribe { from: 0 }).unwrap();
    let (_kill, kill_rx) = oneshot::channel();
    let writer =
        tokio::spawn(write_loop(server, queue, reader, kill_rx, WriterProgress::new(), Duration::from_secs(3600)));
    let owner = owner_turns(stream, sender);
    let read = async {
        let mut client = client;
        let mut got = Vec::new();
        let mut prefix = [0u8; LEN_PREFIX];
        while client.read_exact(&mut prefix).await.is_ok() {
            let mut payload = vec![0; u32::from_be_bytes(prefix) as usize];
            client.read_exact(&mut payload).await.unwrap();
            match decode_payload(&payload).unwrap() {
                ServerFrame::Peers { req, .. } => got.push(req),
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    };
    let got = tokio::time::timeout(Duration::from_secs(60), read).await.expect("the writer finishes");
    let _stream = owner.join().unwrap();
    writer.await.unwrap();
    assert_every_turn_in_order(&got);
}

/// Most bytes of a writer's future (see [`write_loop`]): with tokio's task header it makes a 640-byte
/// task, one per connection for its whole life. `RUSTFLAGS=-Zprint-type-sizes cargo +nightly build`
/// shows the layout when this grows.
const MAX_WRITER_FUTURE: usize = 528;

#[test]
fn a_writers_future_stays_small() {
    let (_client, server) = tokio::io::duplex(64);
    let (_write_half_reader, write) = tokio::io::split(server);
    let (_sender, queue) = PrivateQueue::new(4);
    let stream = Stream::new();
    let (_kill, kill_rx) = oneshot::channel();
    let writer = write_loop(write, queue, stream.reader(), kill_rx, WriterProgress::new(), Duration::from_secs(5));
    let size = std::mem::size_of_val(&writer);
    assert!(size <= MAX_WRITER_FUTURE, "a writer's future is {size} bytes, over {MAX_WRITER_FUTURE}");
}

/// A connection refused at login: its `Refused` is queued, then the owner forgets the connection
/// (the queue closes, the kill switch is dropped unused) before the writer first runs. The writer
/// must write the frame and end the stream. (It used to poll the kill switch after `try_recv` had
/// seen it closed: a panic in the writer, and the client saw the connection close without its
/// `Refused`.)
#[tokio::test]
async fn a_frame_queued_before_the_owner_forgets_the_connection_is_written_then_the_stream_ends() {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let (sender, queue) = PrivateQueue::new(4);
    let refused = ServerFrame::Refused { code: chat_core::ErrorCode::NameTaken, message: "taken".into() };
    sender.try_send(Private::Frame { bytes: encode_frame(&refused).unwrap(), seq: 0, bpos: 0 }).unwrap();
    drop(sender);
    let (kill, kill_rx) = oneshot::channel();
    drop(kill);
    let stream = Stream::new();
    let writer = tokio::spawn(write_loop(
        server,
        queue,
        stream.reader(),
        kill_rx,
        WriterProgress::new(),
        Duration::from_secs(5),
    ));
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got)).await.expect("the stream ends").unwrap();
    assert!(writer.await.is_ok(), "the writer must not panic");
    let frame: ServerFrame = decode_payload(&got[LEN_PREFIX..]).unwrap();
    assert_eq!(frame, refused);
}
