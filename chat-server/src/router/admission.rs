//! Who may connect: the connection limit, a limit per source address on connections that have not
//! logged in, and the login timeout. Connections are counted from the moment they are accepted
//! (before the handshake), so a flood of idle or half-open connections cannot crowd out honest users
//! from other addresses; and at the limit, a connection that has sat without logging in for
//! [`EVICTION_AGE`] makes room for a new one (an honest client logs in within milliseconds), so idle
//! connections spread over many addresses cannot hold the server full until their login timeout.
//!
//! | input                         | decision                                                                 |
//! |-------------------------------|--------------------------------------------------------------------------|
//! | `Accepted`, at the connection limit, the oldest connection not logged in accepted at least [`EVICTION_AGE`] ago | that one gets `Closing { busy, … }` and is closed; the new one is admitted |
//! | `Accepted`, at the connection limit otherwise | `Refuse { busy, "the server is at its connection limit" }` |
//! | `Accepted`, its address already has `max_pending_per_addr` connections not logged in | `Refuse { busy, "too many connections from your address are not logged in" }` |
//! | `Accepted` otherwise          | admitted; it must log in within `login_timeout`                          |
//! | timeout: not logged in in time | `Reply(Closing { protocol, "no login within …" })`, `Close`             |
//! | `Login` accepted              | no longer counted against its address, no deadline                       |

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use chat_core::ErrorCode;

use super::commit::Visible;
use super::{ConnId, Output, Router};
use crate::protocol::ServerFrame;

/// Default time a connection has to log in after it is accepted.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of connections one source address may have that are not logged in.
pub const DEFAULT_MAX_PENDING_PER_ADDR: usize = 128;
/// At the connection limit, a connection not logged in this long after it was accepted is closed to
/// make room for a new one.
pub const EVICTION_AGE: Duration = Duration::from_secs(1);
/// Default maximum number of simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// Admission limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Most simultaneous connections; more are refused with `busy`.
    pub max_connections: usize,
    /// Most connections per source address that have not logged in yet.
    pub max_pending_per_addr: usize,
    /// Time allowed from accept to a successful login.
    pub login_timeout: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_pending_per_addr: DEFAULT_MAX_PENDING_PER_ADDR,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
        }
    }
}

/// The admission state: every connection not yet logged in, by address, with its deadline.
#[derive(Debug, Default)]
pub(super) struct Admission {
    config: AdmissionConfig,
    /// The connections admitted and not gone (a set, not a count: in a cluster the router also
    /// learns of other instances' connections, which this instance never admitted).
    admitted: HashSet<ConnId>,
    pending: HashMap<ConnId, IpAddr>,
    per_addr: HashMap<IpAddr, usize>,
    /// Login deadlines in the order they were set (the timeout is the same for all, so in time order).
    deadlines: VecDeque<(Instant, ConnId)>,
}

impl Admission {
    pub(super) fn new(config: AdmissionConfig) -> Self {
        Admission { config, ..Admission::default() }
    }

    /// The earliest login deadline still pending.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|(at, _)| *at)
    }

    /// The oldest connection still not logged in, if it was accepted at `accepted_by` or earlier.
    /// (Deadlines are in acceptance order; entries of connections that logged in or left are dropped.)
    fn idle_since(&mut self, accepted_by: Instant) -> Option<ConnId> {
        while let Some(&(at, conn)) = self.deadlines.front() {
            if self.pending.contains_key(&conn) {
                return (at.checked_sub(self.config.login_timeout)? <= accepted_by).then_some(conn);
            }
            self.deadlines.pop_front();
        }
        None
    }

    /// `conn` no longer waits to log in (it did, or it is gone).
    fn settle(&mut self, conn: ConnId) {
        if let Some(addr) = self.pending.remove(&conn)
            && let Some(n) = self.per_addr.get_mut(&addr)
        {
            *n -= 1;
            if *n == 0 {
                self.per_addr.remove(&addr);
            }
        }
    }
}

impl Router {
    /// A connection was accepted from `addr`: admit it or refuse it.
    pub(super) fn accepted(&mut self, now: Instant, conn: ConnId, addr: IpAddr) {
        if self.admission.admitted.len() >= self.admission.config.max_connections
            && let Some(idle) = now.checked_sub(EVICTION_AGE).and_then(|by| self.admission.idle_since(by))
        {
            let reason = "the server is at its connection limit; a connection that does not log in makes room";
            self.close_pending(idle, ErrorCode::Busy, reason.into());
        }
        let a = &mut self.admission;
        let message = if a.admitted.len() >= a.config.max_connections {
            "the server is at its connection limit"
        } else if a.per_addr.get(&addr).copied().unwrap_or(0) >= a.config.max_pending_per_addr {
            "too many connections from your address are not logged in"
        } else {
            a.admitted.insert(conn);
            a.pending.insert(conn, addr);
            *a.per_addr.entry(addr).or_default() += 1;
            a.deadlines.push_back((now + a.config.login_timeout, conn));
            self.sessions.open(conn);
            self.flood.connected(conn, addr);
            return;
        };
        self.outputs.push_back(Output::Refuse { conn, code: ErrorCode::Busy, message: message.into() });
    }

    /// The address a connection not logged in yet comes from.
    pub(super) fn admission_addr(&self, conn: ConnId) -> Option<IpAddr> {
        self.admission.pending.get(&conn).copied()
    }

    /// `conn` logged in: it no longer counts against its address.
    pub(super) fn logged_in(&mut self, conn: ConnId) {
        self.admission.settle(conn);
    }

    /// `conn` is gone.
    pub(super) fn left(&mut self, conn: ConnId) {
        self.admission.admitted.remove(&conn);
        self.admission.settle(conn);
    }

    /// Closes every connection whose login deadline has passed without a login.
    pub(super) fn expire_logins(&mut self, now: Instant) {
        while let Some(&(at, conn)) = self.admission.deadlines.front() {
            if at > now {
                break;
            }
            self.admission.deadlines.pop_front();
            if !self.admission.pending.contains_key(&conn) {
                continue; // logged in, or gone
            }
            let secs = self.admission.config.login_timeout.as_secs_f64();
            self.close_pending(conn, ErrorCode::Protocol, format!("no login within {secs} s"));
        }
    }

    /// Closes `conn`, which has not logged in, telling it why.
    fn close_pending(&mut self, conn: ConnId, code: ErrorCode, reason: String) {
        self.visible(Visible::Reply { conn, frame: ServerFrame::Closing { code, reason } });
        self.gone(conn);
        self.sessions.forget(conn);
        self.visible(Visible::Close { conn });
    }
}
