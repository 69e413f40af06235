//! [`run`]: one load, from the first connection to the report.
//!
//! ```text
//!  validate ─► subscribers connect (batches of 100) ─► publishers connect ─► 100 ms settle
//!    ─► go: publish ─► every subscriber has everything (or the deadline) ─► collect ─► stop
//! ```

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::audit::Violations;
use super::protocol::PubSub;
use super::publisher::{publisher, unicast_targets};
use super::report::{LoadReport, count_error, new_histogram};
use super::shared::{Shared, snapshot};
use super::subscriber::{SubOutcome, spawn_subscribers};
use super::{LoadConfig, PROGRESS_EVERY, Pattern, Phase, RunProgress, SENDER_LEN, STAMP_LEN};

/// Runs one load: connects the subscribers, then the publishers, publishes, waits until every
/// subscriber has everything (or the deadline), and reports. `progress` is called every 100 ms and
/// once at [`Phase::Publishing`] and [`Phase::Done`] (sample server counters there).
pub async fn run<W: PubSub>(
    pubsub: W,
    config: &LoadConfig,
    progress: &mut (dyn FnMut(&RunProgress) + Send),
) -> io::Result<LoadReport> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    if config.size < STAMP_LEN {
        return Err(bad("size must be at least 16 bytes"));
    }
    if config.subscribers == 0 || config.publishers == 0 {
        return Err(bad("need at least one subscriber and one publisher"));
    }
    let targets = match config.pattern {
        Pattern::Fanout => None,
        Pattern::Unicast { seed } => {
            if config.size < STAMP_LEN + SENDER_LEN || config.publishers != config.subscribers || config.publishers < 2
            {
                return Err(bad("unicast needs size >= 24 and as many publishers as subscribers (at least 2)"));
            }
            Some(unicast_targets(config.publishers, config.messages, seed))
        }
    };
    // expected_from[s][p]: messages subscriber s must receive from publisher p.
    let expected_from: Vec<Vec<u64>> = match &targets {
        None => vec![vec![config.messages; config.publishers]; config.subscribers],
        Some(t) => {
            let mut from = vec![vec![0u64; config.publishers]; config.subscribers];
            for (p, row) in t.iter().enumerate() {
                for &j in row {
                    from[j as usize][p] += 1;
                }
            }
            from
        }
    };
    let expected: u64 = expected_from.iter().flatten().sum();
    let sh = Shared::new(config.subscribers, config.publishers, config.timeout, config.tls.clone());
    let subs = spawn_subscribers(&pubsub, config.addr, expected_from, false, &sh, progress).await;
    let mut pubs = Vec::with_capacity(config.publishers);
    for p in 0..config.publishers {
        let t = targets.as_ref().map(|t| t[p].clone());
        pubs.push(tokio::spawn(publisher(pubsub.clone(), config.clone(), p, t, sh.clone())));
    }
    let all = config.subscribers + config.publishers;
    while sh.ready.load(Ordering::Acquire) + sh.failed.load(Ordering::Acquire) < all && Instant::now() < sh.deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let setup = sh.origin.elapsed();
    // Let the server finish the logins' side effects (join notices) before the clock starts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    progress(&snapshot(&sh, Phase::Publishing, expected));
    sh.record_from_ns.store(sh.now_ns() + config.warmup.as_nanos() as u64, Ordering::Release);
    sh.go.store(true, Ordering::Release);
    let mut next_report = Instant::now() + PROGRESS_EVERY;
    while sh.subscribers_ended.load(Ordering::Acquire) < config.subscribers
        && sh.publisher_errors.load(Ordering::Acquire) == 0
        && sh.failed.load(Ordering::Acquire) == 0
        && Instant::now() < sh.deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if Instant::now() >= next_report {
            progress(&snapshot(&sh, Phase::Publishing, expected));
            next_report += PROGRESS_EVERY;
        }
    }
    progress(&snapshot(&sh, Phase::Done, expected));
    let mut latency_us = new_histogram();
    let (mut deliveries, mut incomplete, mut errors) = (0u64, 0usize, Vec::new());
    let mut violations = Violations::default();
    // Fan-out: the order each complete subscriber saw (fingerprints); they must all be the same.
    let mut orders = Vec::new();
    for task in subs {
        let outcome = match tokio::time::timeout_at(sh.deadline + Duration::from_secs(1), task).await {
            Ok(Ok(o)) => o,
            Ok(Err(join)) => SubOutcome::failed(join.to_string()),
            Err(_) => SubOutcome::failed("hung".into()),
        };
        deliveries += outcome.got;
        latency_us.add(&outcome.latency_us).map_err(|e| io::Error::other(e.to_string()))?;
        violations.add(&outcome.violations);
        if outcome.got < outcome.expected {
            incomplete += 1;
        } else if outcome.error.is_none() && config.pattern == Pattern::Fanout {
            orders.push(outcome.fingerprint);
        }
        if let Some(e) = outcome.error {
            count_error(&mut errors, format!("subscriber: {e}"));
        }
    }
    violations.diverged = diverged(orders);
    let _ = sh.stop.send(true);
    let (mut published, mut acked) = (0u64, 0u64);
    for task in pubs {
        match tokio::time::timeout_at(sh.deadline + Duration::from_secs(2), task).await {
            Ok(Ok(o)) => {
                published += o.published;
                acked += o.acked;
                if let Some(e) = o.error {
                    count_error(&mut errors, format!("publisher: {e}"));
                }
            }
            Ok(Err(join)) => count_error(&mut errors, format!("publisher: {join}")),
            Err(_) => count_error(&mut errors, "publisher: hung".into()),
        }
    }
    let first = sh.first_publish_ns.load(Ordering::Acquire);
    let last = sh.last_delivery_ns.load(Ordering::Acquire);
    Ok(LoadReport {
        published,
        acked,
        deliveries,
        expected,
        elapsed: Duration::from_nanos(last.saturating_sub(first.min(last))),
        setup,
        latency_us,
        incomplete_subscribers: incomplete,
        violations,
        errors,
    })
}

/// How many of these orders (fingerprints) differ from the most common one.
fn diverged(mut orders: Vec<Option<u64>>) -> u64 {
    orders.sort_unstable();
    let most_common = orders.chunk_by(|a, b| a == b).map(<[_]>::len).max().unwrap_or(0);
    (orders.len() - most_common) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_is_counted_against_the_most_common_order() {
        assert_eq!(diverged(Vec::new()), 0);
        assert_eq!(diverged(vec![None, None]), 0);
        assert_eq!(diverged(vec![Some(7), Some(3), Some(3), Some(3)]), 1);
        assert_eq!(diverged(vec![Some(1), Some(2), Some(3)]), 2);
    }
}
