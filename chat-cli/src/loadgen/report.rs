//! What a run reports: [`LoadReport`] (counts, timing, the latency histogram, the subscribers'
//! [`Violations`]) and its [`Percentiles`].

use std::time::Duration;

use hdrhistogram::Histogram;

use super::MAX_LATENCY_US;
use super::audit::Violations;
#[cfg(doc)]
use super::run;

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

/// The outcome of [`run`].
#[derive(Debug)]
pub struct LoadReport {
    /// Messages published in all.
    pub published: u64,
    /// Publishes acknowledged by the server (0 for protocols without acknowledgements).
    pub acked: u64,
    /// Deliveries to subscribers.
    pub deliveries: u64,
    /// Deliveries expected (every subscriber gets every message meant for it).
    pub expected: u64,
    /// From the first publish to the last delivery.
    pub elapsed: Duration,
    /// Time to open every connection.
    pub setup: Duration,
    /// Send-to-delivery latency of every delivery after the warm-up, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Subscribers that did not receive everything (the run does not count unless 0).
    pub incomplete_subscribers: usize,
    /// Messages that broke the pub/sub's promises, as the subscribers checked them: duplicates,
    /// out of order, not meant for the subscriber, another order than the others' (the run does
    /// not count unless all are 0).
    pub violations: Violations,
    /// Distinct errors, with how many connections hit each.
    pub errors: Vec<(String, usize)>,
}

impl LoadReport {
    /// Deliveries per second over [`LoadReport::elapsed`].
    pub fn deliveries_per_second(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Publishes per second over [`LoadReport::elapsed`].
    pub fn published_per_second(&self) -> f64 {
        self.published as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency percentiles.
    pub fn percentiles(&self) -> Percentiles {
        percentiles(&self.latency_us)
    }

    /// Whether the run counts: every subscriber received everything, exactly once, in order, and
    /// nothing else; nothing failed.
    pub fn complete(&self) -> bool {
        self.incomplete_subscribers == 0
            && self.deliveries == self.expected
            && self.errors.is_empty()
            && self.violations.total() == 0
    }
}

/// The percentiles of a histogram in microseconds.
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    Percentiles {
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// An empty latency histogram: 1 µs to [`MAX_LATENCY_US`], 3 significant digits.
pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Counts one more connection that hit `error` (distinct errors, with counts).
pub(super) fn count_error(errors: &mut Vec<(String, usize)>, error: String) {
    match errors.iter_mut().find(|(e, _)| *e == error) {
        Some((_, n)) => *n += 1,
        None => errors.push((error, 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(violations: Violations) -> LoadReport {
        LoadReport {
            published: 2,
            acked: 2,
            deliveries: 4,
            expected: 4,
            elapsed: Duration::from_millis(1),
            setup: Duration::from_millis(1),
            latency_us: new_histogram(),
            incomplete_subscribers: 0,
            violations,
            errors: Vec::new(),
        }
    }

    #[test]
    fn a_run_with_any_violation_is_not_complete() {
        assert!(report(Violations::default()).complete());
        for v in [
            Violations { duplicates: 1, ..Violations::default() },
            Violations { out_of_order: 1, ..Violations::default() },
            Violations { unexpected: 1, ..Violations::default() },
            Violations { diverged: 1, ..Violations::default() },
        ] {
            assert!(!report(v).complete(), "{v:?}");
        }
    }
}
