//! Who may hold an inbound connection: bounds per source IP and in total, and which connection
//! makes room for a new one. Pure: the accept loop (`links.rs`) asks, then acts.
//!
//! | a new connection from `ip`                                    | decision                              |
//! |---------------------------------------------------------------|---------------------------------------|
//! | below both bounds                                             | `Accept`                              |
//! | `ip` at [`MAX_INBOUND_PER_IP`], or all at [`MAX_INBOUND`], and an *unproven* connection to drop | `Evict(oldest unproven)`, then accept |
//! | at a bound and every connection there has delivered a frame  | `Refuse` (closed at once)              |
//!
//! A connection is *unproven* until its first frame arrives. An honest node dials only when it has
//! a frame to send and writes it right after the handshake, so its connections are proven at once;
//! connections that complete the handshake and then stay silent are the ones that make room, oldest
//! first, and they are closed anyway when their first frame does not come within the idle timeout.
//! So a flood of idle connections, even from the address the honest nodes use (several nodes on one
//! machine share 127.0.0.1), never keeps an honest node out.
//!
//! The bound per IP admits a full group ([`MAX_PEERS`] nodes, each holding one link to this node)
//! from one address, with room for links being replaced.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::node::MAX_PEERS;

/// Most inbound connections from one IP address: a full group on one machine, plus room for links
/// being replaced (a node that redials before its old link is closed).
pub const MAX_INBOUND_PER_IP: usize = MAX_PEERS + 64;
/// Most inbound connections in all.
pub const MAX_INBOUND: usize = 4 * MAX_PEERS;

// Two addresses each at their bound (say, a full group on one machine and an attacker on another)
// fit together.
const _: () = assert!(MAX_INBOUND >= 2 * MAX_INBOUND_PER_IP);

/// What to do with a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admit<K> {
    /// Keep it.
    Accept,
    /// Close connection `K` (its reader), then keep the new one.
    Evict(K),
    /// Close the new connection.
    Refuse,
}

/// One inbound connection.
#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    /// Order of arrival (smaller: older).
    seq: u64,
    /// Set by the reader once a frame has arrived.
    proven: Arc<AtomicBool>,
}

/// Every inbound connection, by a key of the caller's (the reader task's ID).
#[derive(Debug)]
pub(super) struct InboundTable<K> {
    conns: HashMap<K, Entry>,
    per_ip: HashMap<IpAddr, usize>,
    next_seq: u64,
    max_per_ip: usize,
    max_total: usize,
}

impl<K: Copy + Eq + Hash> InboundTable<K> {
    /// An empty table with these bounds.
    pub(super) fn new(max_per_ip: usize, max_total: usize) -> Self {
        InboundTable { conns: HashMap::new(), per_ip: HashMap::new(), next_seq: 0, max_per_ip, max_total }
    }

    /// Number of connections held.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Decides about a new connection from `ip`; an evicted one is already forgotten.
    pub(super) fn admit(&mut self, ip: IpAddr) -> Admit<K> {
        let full_ip = self.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip;
        let full = self.conns.len() >= self.max_total;
        if !full_ip && !full {
            return Admit::Accept;
        }
        let victim = self
            .conns
            .iter()
            .filter(|(_, e)| (!full_ip || e.ip == ip) && !e.proven.load(Ordering::Acquire))
            .min_by_key(|(_, e)| e.seq)
            .map(|(k, _)| *k);
        match victim {
            Some(k) => {
                self.remove(&k);
                Admit::Evict(k)
            }
            None => Admit::Refuse,
        }
    }

    /// Records an accepted connection; its reader sets `proven` at its first frame.
    pub(super) fn insert(&mut self, key: K, ip: IpAddr, proven: Arc<AtomicBool>) {
        self.next_seq += 1;
        if let Some(old) = self.conns.insert(key, Entry { ip, seq: self.next_seq, proven }) {
            self.uncount(old.ip);
        }
        *self.per_ip.entry(ip).or_default() += 1;
    }

    /// Forgets a connection (its reader ended or was evicted).
    pub(super) fn remove(&mut self, key: &K) {
        if let Some(e) = self.conns.remove(key) {
            self.uncount(e.ip);
        }
    }

    fn uncount(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// Admits a connection from `from` under `key`; returns the decision and its proof flag.
    fn arrive(t: &mut InboundTable<u32>, key: u32, from: IpAddr) -> (Admit<u32>, Arc<AtomicBool>) {
        let decision = t.admit(from);
        let proven = Arc::new(AtomicBool::new(false));
        if decision != Admit::Refuse {
            t.insert(key, from, Arc::clone(&proven));
        }
        (decision, proven)
    }

    #[test]
    fn idle_connections_make_room_oldest_first_and_proven_ones_never_do() {
        let mut t = InboundTable::new(3, 5);
        let (_, honest) = arrive(&mut t, 1, ip(1));
        honest.store(true, Ordering::Release);
        assert_eq!(arrive(&mut t, 2, ip(1)).0, Admit::Accept);
        assert_eq!(arrive(&mut t, 3, ip(1)).0, Admit::Accept);
        // ip(1) is full: the oldest unproven (2) makes room, never the proven one (1).
        assert_eq!(arrive(&mut t, 4, ip(1)).0, Admit::Evict(2));
        assert_eq!(arrive(&mut t, 5, ip(1)).0, Admit::Evict(3));
        assert_eq!(t.len(), 3);
        // Another address is not held back by ip(1)'s bound.
        assert_eq!(arrive(&mut t, 6, ip(2)).0, Admit::Accept);
        assert_eq!(arrive(&mut t, 7, ip(2)).0, Admit::Accept);
        // In all, 5: the oldest unproven anywhere makes room.
        assert_eq!(arrive(&mut t, 8, ip(3)).0, Admit::Evict(4));
        t.remove(&8);
        t.remove(&99);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn when_every_connection_is_proven_a_newcomer_is_refused() {
        let mut t = InboundTable::new(2, 10);
        for key in [1, 2] {
            let (decision, proven) = arrive(&mut t, key, ip(1));
            assert_eq!(decision, Admit::Accept);
            proven.store(true, Ordering::Release);
        }
        assert_eq!(arrive(&mut t, 3, ip(1)).0, Admit::Refuse);
        assert_eq!(arrive(&mut t, 4, ip(2)).0, Admit::Accept);
        t.remove(&1);
        assert_eq!(arrive(&mut t, 5, ip(1)).0, Admit::Accept);
    }

    #[test]
    fn a_full_group_on_one_machine_fits_under_the_bound_per_address() {
        let mut t = InboundTable::new(MAX_INBOUND_PER_IP, MAX_INBOUND);
        for key in 0..MAX_PEERS as u32 {
            let (decision, proven) = arrive(&mut t, key, ip(1));
            assert_eq!(decision, Admit::Accept);
            proven.store(true, Ordering::Release);
        }
    }
}
