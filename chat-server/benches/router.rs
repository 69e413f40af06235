//! Router microbenchmark: one broadcast to 1000 logged-in users through `Router::handle`, with every
//! output drained by `poll_output` (what the server's owner task does per message, minus I/O).
//!
//! `cargo bench -p chat-server --bench router`

use std::hint::black_box;
use std::time::Instant;

use chat_core::{NodeId, Recipients, Timestamp, UserName};
use chat_server::router::{Input, Router, RouterConfig, RouterState};
use criterion::{Criterion, Throughput, criterion_main};

/// Users online.
const USERS: u64 = 1000;

fn router_with_users(now: Instant) -> Router {
    let mut router = Router::new(RouterConfig::default(), RouterState::default());
    for conn in 0..USERS {
        let name = UserName::new(format!("u{conn}")).expect("valid name");
        router.handle(now, Input::Login { conn, name });
        while router.poll_output().is_some() {}
    }
    router
}

fn broadcast(c: &mut Criterion) {
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(USERS));
    for body_len in [16usize, 256] {
        let now = Instant::now();
        let mut router = router_with_users(now);
        let body = "x".repeat(body_len);
        let mut req = 0u64;
        group.bench_function(format!("broadcast_to_1000/{body_len}B"), |b| {
            b.iter(|| {
                req += 1;
                router.handle(
                    now,
                    Input::Send {
                        conn: req % USERS,
                        req,
                        recipients: Recipients::Broadcast,
                        body: body.clone(),
                        sent_at: Timestamp::new(req, NodeId(1)),
                        key: 0,
                    },
                );
                let mut outputs = 0u32;
                while let Some(output) = router.poll_output() {
                    black_box(&output);
                    outputs += 1;
                }
                outputs
            })
        });
    }
    group.finish();
}

/// The benchmark group (in a private module: `criterion_group!` makes an undocumented `pub fn`).
mod group {
    criterion::criterion_group!(benches, super::broadcast);
}

criterion_main!(group::benches);
