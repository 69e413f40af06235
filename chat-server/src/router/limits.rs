//! Flood control: token buckets on messages and bytes sent, per connection and per source address,
//! and the refusal window that tells a connection when it may send again.
//!
//! | a `Send` from a logged-in user          | verdict                                                     |
//! |-----------------------------------------|-------------------------------------------------------------|
//! | within its connection's and its address's buckets | `Pass` (one strike forgiven)                      |
//! | over any bucket                         | `Limited { wait, until }`: told to retry after `wait`; its refusal window lasts until `until`; one strike |
//! | arriving inside its refusal window (sent without waiting) | `Early { until }`; one strike                     |
//! | refused or early, with `flood_strikes` strikes for at least [`FLOOD_GRACE`] | `Flood`: disconnect it        |
//!
//! The router turns these into outputs (see `throttle`). In cluster mode the replicated router runs
//! without flood control: each instance charges its own connections before it publishes their sends
//! (`server::cluster`), on its own clock, so a refused send never enters the shared log.
//!
//! **Per address.** Every connection from one source address (an IPv4 address, or an IPv6 /64: one
//! host owns a whole /64) also draws on buckets shared by the address, so a flooder that reconnects
//! does not get a fresh burst each time. Their defaults are four times the per-connection ones
//! ([`ADDRESS_FACTOR`]): a few chatty people behind one NAT, or several honest programs on one host
//! (tests run many clients from 127.0.0.1), stay under them; `serve --addr-rate-limit` changes them
//! and `--no-addr-rate-limit` turns them off. People who share an address with a flooder are slowed
//! with it (they are told to retry, and lose nothing). The table is bounded ([`MAX_ADDRESSES`]): an
//! entry idle long enough for its buckets to refill is the same as a new one and is dropped when room
//! is needed; when every entry is busy a new address is charged per connection only.
//!
//! The client library waits `retry_after_ms` and sends again, so a program or a script piping lines
//! into `chat-cli` is slowed down and loses nothing; a client that ignores the answer and keeps
//! sending collects strikes and is disconnected. The defaults ([`Limits::default`]) are far above what
//! a chatty person or a bot sends; `serve --no-rate-limit` disables them (for benchmarks).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use chat_core::rate::{Rate, TokenBucket};

use super::ConnId;

/// Default message rate per connection: 50 per second, bursts of 200.
pub const DEFAULT_MESSAGE_RATE: Rate = Rate { per_second: 50, burst: 200 };
/// Default byte rate (message bodies) per connection: 256 KiB per second, bursts of 1 MiB.
pub const DEFAULT_BYTE_RATE: Rate = Rate { per_second: 256 * 1024, burst: 1024 * 1024 };
/// Default number of unheeded `rate_limited` answers before a connection is disconnected (`flood`).
pub const DEFAULT_FLOOD_STRIKES: u32 = 20;
/// How long a connection keeps being refused before it counts as flooding: its warnings have had time
/// to reach it, so a client that heeds them is never disconnected.
pub const FLOOD_GRACE: Duration = Duration::from_secs(1);
/// The default per-address rates are this many times the per-connection ones.
pub const ADDRESS_FACTOR: u64 = 4;
/// Default message rate per source address: 200 per second, bursts of 800.
pub const DEFAULT_ADDRESS_MESSAGE_RATE: Rate = times(DEFAULT_MESSAGE_RATE, ADDRESS_FACTOR);
/// Default byte rate per source address: 1 MiB per second, bursts of 4 MiB.
pub const DEFAULT_ADDRESS_BYTE_RATE: Rate = times(DEFAULT_BYTE_RATE, ADDRESS_FACTOR);
/// Most source addresses whose buckets are kept at once.
pub const MAX_ADDRESSES: usize = 65_536;
/// When the address table is full of busy entries, how long before it is swept again.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// `rate` with both its sustained rate and its burst multiplied by `factor`.
pub const fn times(rate: Rate, factor: u64) -> Rate {
    Rate { per_second: rate.per_second.saturating_mul(factor), burst: rate.burst.saturating_mul(factor) }
}

/// Flood-control settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages per connection.
    pub messages: Rate,
    /// Body bytes per connection.
    pub bytes: Rate,
    /// Strikes (refusals not yet made up for by accepted sends) tolerated before `flood`.
    pub flood_strikes: u32,
    /// Buckets shared by all the connections of one source address (`None`: none).
    pub per_address: Option<AddressLimits>,
}

/// The buckets shared by every connection from one source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimits {
    /// Messages per address.
    pub messages: Rate,
    /// Body bytes per address.
    pub bytes: Rate,
}

impl AddressLimits {
    /// [`ADDRESS_FACTOR`] times these per-connection rates.
    pub fn scaled(messages: Rate, bytes: Rate) -> Self {
        AddressLimits { messages: times(messages, ADDRESS_FACTOR), bytes: times(bytes, ADDRESS_FACTOR) }
    }
}

impl Default for AddressLimits {
    fn default() -> Self {
        AddressLimits { messages: DEFAULT_ADDRESS_MESSAGE_RATE, bytes: DEFAULT_ADDRESS_BYTE_RATE }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            messages: DEFAULT_MESSAGE_RATE,
            bytes: DEFAULT_BYTE_RATE,
            flood_strikes: DEFAULT_FLOOD_STRIKES,
            per_address: Some(AddressLimits::default()),
        }
    }
}

/// A pair of buckets (messages, bytes).
#[derive(Debug, Clone)]
struct Pair {
    messages: TokenBucket,
    bytes: TokenBucket,
}

impl Pair {
    fn full(messages: Rate, bytes: Rate, now: Instant) -> Self {
        Pair { messages: TokenBucket::full(messages, now), bytes: TokenBucket::full(bytes, now) }
    }

    /// Tries to take one message of `bytes`: the buckets as they would be after, or how long to wait.
    fn probe(&self, now: Instant, bytes: usize) -> Result<Pair, Duration> {
        let mut after = self.clone();
        let wait = [after.messages.take(now, 1).err(), after.bytes.take(now, bytes as u64).err()];
        match wait.into_iter().flatten().max() {
            Some(wait) => Err(wait),
            None => Ok(after),
        }
    }
}

/// One connection's flood-control state.
#[derive(Debug, Clone)]
struct ConnState {
    buckets: Pair,
    strikes: u32,
    /// When the current run of strikes began.
    since: Option<Instant>,
    /// The end of its refusal window, if it was refused.
    until: Option<Instant>,
}

/// One source address's buckets, and when they were last charged.
#[derive(Debug, Clone)]
struct AddrState {
    buckets: Pair,
    last: Instant,
}

/// The flood-control state of every connection that has sent something, and of their addresses.
#[derive(Debug, Default)]
pub(crate) struct Flood {
    limits: Option<Limits>,
    conns: HashMap<ConnId, ConnState>,
    /// The source address of each connection known (given at accept).
    addrs: HashMap<ConnId, IpAddr>,
    per_addr: HashMap<IpAddr, AddrState>,
    /// The address table was full of busy entries: not swept again before this.
    sweep_after: Option<Instant>,
}

/// What flood control decided about one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go on.
    Pass,
    /// Refused; retry after `wait`. The connection's refusal window lasts until `until`.
    Limited {
        /// How long the client should wait.
        wait: Duration,
        /// The end of the refusal window.
        until: Instant,
    },
    /// Sent inside the connection's refusal window (a strike): not charged; it may go after `until`.
    Early {
        /// The end of the refusal window.
        until: Instant,
    },
    /// Disconnect the connection.
    Flood,
}

/// The key of an address in the per-address table: an IPv4 address, or the /64 of an IPv6 address
/// (an IPv4-mapped IPv6 address counts as its IPv4 address).
pub(crate) fn address_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

impl Flood {
    pub(crate) fn new(limits: Option<Limits>) -> Self {
        Flood { limits, ..Flood::default() }
    }

    /// `conn` comes from `addr` (charged to that address's buckets too).
    pub(crate) fn connected(&mut self, conn: ConnId, addr: IpAddr) {
        if self.limits.is_some_and(|l| l.per_address.is_some()) {
            self.addrs.insert(conn, address_key(addr));
        }
    }

    /// Charges one message of `bytes` body bytes to `conn` at `now`.
    pub(crate) fn charge(&mut self, now: Instant, conn: ConnId, bytes: usize) -> Verdict {
        let Some(limits) = self.limits else { return Verdict::Pass };
        let addr = self.addrs.get(&conn).copied();
        let c = self.conns.entry(conn).or_insert_with(|| ConnState {
            buckets: Pair::full(limits.messages, limits.bytes, now),
            strikes: 0,
            since: None,
            until: None,
        });
        let flooding =
            |c: &ConnState| c.strikes >= limits.flood_strikes && c.since.is_some_and(|t| now >= t + FLOOD_GRACE);
        if let Some(until) = c.until.filter(|until| now < *until) {
            if flooding(c) {
                return Verdict::Flood;
            }
            strike(c, now);
            return Verdict::Early { until };
        }
        c.until = None;
        let conn_after = c.buckets.probe(now, bytes);
        let addr_after = match (addr, limits.per_address) {
            (Some(addr), Some(rates)) => self.address(now, addr, rates).map(|a| (addr, a.buckets.probe(now, bytes))),
            _ => None,
        };
        let c = self.conns.get_mut(&conn).expect("inserted above");
        let wait = [conn_after.as_ref().err(), addr_after.as_ref().and_then(|(_, a)| a.as_ref().err())]
            .into_iter()
            .flatten()
            .max()
            .copied();
        match wait {
            None => {
                c.buckets = conn_after.expect("no wait");
                c.strikes = c.strikes.saturating_sub(1);
                if c.strikes == 0 {
                    c.since = None;
                }
                if let Some((addr, Ok(buckets))) = addr_after
                    && let Some(a) = self.per_addr.get_mut(&addr)
                {
                    *a = AddrState { buckets, last: now };
                }
                Verdict::Pass
            }
            Some(_) if flooding(c) => Verdict::Flood,
            Some(wait) => {
                strike(c, now);
                let until = now + wait;
                c.until = Some(until);
                Verdict::Limited { wait, until }
            }
        }
    }

    /// The buckets of `addr`, made if there is room in the table (see the module documentation).
    fn address(&mut self, now: Instant, addr: IpAddr, rates: AddressLimits) -> Option<&AddrState> {
        if !self.per_addr.contains_key(&addr) && self.per_addr.len() >= MAX_ADDRESSES {
            if self.sweep_after.is_some_and(|t| now < t) {
                return None;
            }
            // An entry idle for as long as its buckets take to refill equals a new one.
            let refill = |r: Rate| Duration::from_secs(r.burst.div_ceil(r.per_second.max(1)));
            let idle = refill(rates.messages).max(refill(rates.bytes));
            self.per_addr.retain(|_, a| now < a.last + idle);
            if self.per_addr.len() >= MAX_ADDRESSES {
                self.sweep_after = Some(now + SWEEP_EVERY);
                return None;
            }
        }
        let entry = self
            .per_addr
            .entry(addr)
            .or_insert_with(|| AddrState { buckets: Pair::full(rates.messages, rates.bytes, now), last: now });
        Some(entry)
    }

    /// Number of addresses whose buckets are kept.
    #[cfg(test)]
    pub(crate) fn addresses(&self) -> usize {
        self.per_addr.len()
    }

    /// Forgets `conn` (its address keeps its buckets: a reconnection draws on them).
    pub(crate) fn forget(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.addrs.remove(&conn);
    }
}

/// The `retry_after_ms` of a refusal that must wait `wait`, rounded up to a whole millisecond: a
/// client that waits this long after reading the answer (read after it was sent) is never inside the
/// refusal window, whose end is not on a millisecond. Rounded down, a heeding client arrived a fraction
/// of a millisecond early, each time a strike, and was disconnected as a flood.
pub(crate) fn retry_after_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000).max(1)).unwrap_or(u64::MAX)
}

/// One more strike for `c` at `now`.
fn strike(c: &mut ConnState, now: Instant) {
    c.strikes = c.strikes.saturating_add(1);
    c.since.get_or_insert(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_table_is_bounded_and_makes_room_from_idle_entries() {
        let t0 = Instant::now();
        let mut flood = Flood::new(Some(Limits::default()));
        let addr = |i: usize| IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        for i in 0..MAX_ADDRESSES {
            flood.connected(i as ConnId, addr(i));
            assert_eq!(flood.charge(t0, i as ConnId, 10), Verdict::Pass);
        }
        assert_eq!(flood.addresses(), MAX_ADDRESSES);
        // Full of busy entries: a new address is charged per connection only (and the table is not
        // swept again for a while).
        let late = MAX_ADDRESSES as ConnId;
        flood.connected(late, [192, 0, 2, 1].into());
        assert_eq!(flood.charge(t0, late, 10), Verdict::Pass);
        assert_eq!(flood.addresses(), MAX_ADDRESSES);
        // Once the entries have been idle long enough to refill, they make room.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(flood.charge(later, late, 10), Verdict::Pass);
        assert_eq!(flood.addresses(), 1);
    }

    #[test]
    fn ipv6_addresses_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }
}
