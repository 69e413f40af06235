//! The pieces of `fanbench` (see `src/bin/fanbench.rs`): the Redis and NATS adapters for
//! [`chat_cli::loadgen`], `/proc` sampling, `RESULT` lines, the summary table and the SVG chart.
//!
//! | module    | owns                                                                 |
//! |-----------|----------------------------------------------------------------------|
//! | `redis`   | [`redis::RedisPubSub`]: `SUBSCRIBE` / `PUBLISH` over RESP              |
//! | `nats`    | [`nats::NatsPubSub`]: `SUB` / `PUB` over the NATS text protocol        |
//! | `common`  | [`common::Common`]: target, address, labels, TLS to ours; CPU samples |
//! | `logins`  | password logins: accounts for a run, argon2id timed, a login storm over TLS |
//! | `login_cmds` | the `accounts`, `argon2` and `logins` commands, the storm options of `bench` |
//! | `procfs`  | CPU seconds and resident memory of a process, from `/proc`           |
//! | `record`  | `RESULT key=value ...` lines: writing and parsing                    |
//! | `summary` | medians and ratios per scenario and target, as Markdown tables       |
//! | `chart`   | the SVG chart (throughput per workload, latency percentiles)         |

pub mod chart;
pub mod common;
pub mod login_cmds;
pub mod logins;
pub mod nats;
pub mod procfs;
pub mod record;
pub mod redis;
pub mod summary;

use chat_cli::loadgen::Dest;

/// How the Redis and NATS adapters name their channels (subjects): `{prefix}room` for everyone, and
/// `{prefix}s{j}` for subscriber `j` in unicast runs.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Prefix of every name (keeps concurrent runs apart).
    prefix: String,
    /// Whether subscribers listen on their own name (unicast) or the shared one (fan-out).
    unicast: bool,
}

impl Topics {
    /// Names starting with `prefix`.
    pub fn new(prefix: &str, unicast: bool) -> Self {
        Topics { prefix: prefix.to_string(), unicast }
    }

    /// Where a message for `dest` is published.
    pub fn name(&self, dest: Dest) -> String {
        match dest {
            Dest::Everyone => format!("{}room", self.prefix),
            Dest::Subscriber(j) => format!("{}s{j}", self.prefix),
        }
    }

    /// What subscriber `i` listens on.
    pub fn subscription(&self, i: usize) -> String {
        self.name(if self.unicast { Dest::Subscriber(i) } else { Dest::Everyone })
    }
}

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
