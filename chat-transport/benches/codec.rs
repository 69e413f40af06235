//! Codec microbenchmarks: encoding and decoding one `ChatMessage` frame (16 B and 256 B bodies).
//!
//! `cargo bench -p chat-transport --bench codec`

use std::hint::black_box;

use bytes::BytesMut;
use chat_core::{ChatMessage, MessageId, NodeId, Recipients, Timestamp, UserName};
use chat_transport::{FrameCodec, encode_frame};
use criterion::{Criterion, Throughput, criterion_main};
use tokio_util::codec::Decoder;

fn message(body_len: usize) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(NodeId::SERVER, 123_456),
        sender: UserName::new("publisher0").expect("valid name"),
        recipients: Recipients::Broadcast,
        body: "x".repeat(body_len),
        lamport: Timestamp::new(987_654, NodeId::SERVER),
        time: 0,
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    for body_len in [16usize, 256] {
        let msg = message(body_len);
        group.bench_function(format!("encode_frame/{body_len}B"), |b| b.iter(|| encode_frame(black_box(&msg))));
        let frame = encode_frame(&msg).expect("encodes");
        let mut codec: FrameCodec<ChatMessage, ()> = FrameCodec::new();
        let mut buf = BytesMut::with_capacity(frame.len());
        group.bench_function(format!("decode_frame/{body_len}B"), |b| {
            b.iter(|| {
                buf.extend_from_slice(&frame);
                codec.decode(black_box(&mut buf)).expect("decodes").expect("complete frame")
            })
        });
    }
    group.finish();
}

/// The benchmark group (in a private module: `criterion_group!` makes an undocumented `pub fn`).
mod group {
    criterion::criterion_group!(benches, super::codec);
}

criterion_main!(group::benches);
