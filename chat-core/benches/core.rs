//! chat-core microbenchmarks: the hold-back queue (insert + release, FIFO and total order) and the
//! Lamport clock (tick, observe).
//!
//! `cargo bench -p chat-core --bench core`

use std::hint::black_box;

use chat_core::delivery::DeliveryOrder;
use chat_core::{ChatMessage, HoldBack, LamportClock, MessageId, NodeId, Recipients, Timestamp, UserName};
use criterion::{BatchSize, Criterion, Throughput, criterion_main};

/// Messages per measured batch.
const BATCH: u64 = 1000;

/// `BATCH` messages from 4 origins, interleaved, each origin's in order.
fn messages() -> Vec<ChatMessage> {
    let sender = UserName::new("bench").expect("valid name");
    (0..BATCH)
        .map(|k| {
            let origin = NodeId(k % 4 + 1);
            ChatMessage {
                id: MessageId::new(origin, k / 4 + 1),
                sender: sender.clone(),
                recipients: Recipients::Broadcast,
                body: "hello".into(),
                lamport: Timestamp::new(k + 1, origin),
            }
        })
        .collect()
}

fn hold_back(c: &mut Criterion) {
    let mut group = c.benchmark_group("hold_back");
    group.throughput(Throughput::Elements(BATCH));
    for (label, order) in [("fifo", DeliveryOrder::Fifo), ("total", DeliveryOrder::Total)] {
        group.bench_function(format!("insert_release_1000/{label}"), |b| {
            b.iter_batched(
                messages,
                |msgs| {
                    let mut q = HoldBack::new(order, 2 * BATCH as usize);
                    q.set_members((1..=4).map(NodeId));
                    let mut released = 0;
                    for m in msgs {
                        let _ = q.insert(m);
                        while q.poll_deliver().is_some() {
                            released += 1;
                        }
                    }
                    // Total order holds the last few until every member is heard from later.
                    for n in 1..=4 {
                        q.observe(NodeId(n), Timestamp::new(u64::MAX, NodeId(n)));
                    }
                    while q.poll_deliver().is_some() {
                        released += 1;
                    }
                    black_box(released)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn lamport(c: &mut Criterion) {
    let mut group = c.benchmark_group("lamport");
    group.throughput(Throughput::Elements(1));
    let mut clock = LamportClock::new(NodeId(1));
    group.bench_function("tick", |b| b.iter(|| black_box(clock.tick())));
    let mut clock = LamportClock::new(NodeId(1));
    let mut remote = 0u64;
    group.bench_function("observe", |b| {
        b.iter(|| {
            remote += 2;
            black_box(clock.observe(black_box(Timestamp::new(remote, NodeId(2)))))
        })
    });
    group.finish();
}

/// The benchmark group (in a private module: `criterion_group!` makes an undocumented `pub fn`).
mod group {
    criterion::criterion_group!(benches, super::hold_back, super::lamport);
}

criterion_main!(group::benches);
