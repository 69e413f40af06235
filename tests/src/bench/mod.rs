//! The pieces of `fanbench` (see `src/bin/fanbench.rs`): the Redis and NATS wires for
//! [`chat_server::loadgen`], `/proc` sampling, `RESULT` lines, the summary table and the SVG chart.
//!
//! | module    | owns                                                                 |
//! |-----------|----------------------------------------------------------------------|
//! | `redis`   | [`redis::RedisWire`]: `SUBSCRIBE` / `PUBLISH` over RESP              |
//! | `nats`    | [`nats::NatsWire`]: `SUB` / `PUB` over the NATS text protocol        |
//! | `procfs`  | CPU seconds and resident memory of a process, from `/proc`           |
//! | `record`  | `RESULT key=value ...` lines: writing and parsing                    |
//! | `summary` | medians and ratios per scenario and target, as Markdown tables       |
//! | `chart`   | the SVG chart (throughput per workload, latency percentiles)         |

pub mod chart;
pub mod nats;
pub mod procfs;
pub mod record;
pub mod redis;
pub mod summary;

/// Finds `\r\n` in `buf` at or after `from`; the index of the `\r`.
pub fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|p| p + from)
}

/// Parses an ASCII decimal integer (with an optional leading `-`); `None` if it is not one.
pub fn parse_int(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let v = digits.iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as i64))?;
    Some(if neg { -v } else { v })
}
