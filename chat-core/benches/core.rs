//! chat-core microbenchmarks: the Lamport clock (tick, observe).
//!
//! `cargo bench -p chat-core --bench core`

use std::hint::black_box;

use chat_core::{LamportClock, NodeId, Timestamp};
use criterion::{Criterion, Throughput, criterion_main};

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
    criterion::criterion_group!(benches, super::lamport);
}

criterion_main!(group::benches);
