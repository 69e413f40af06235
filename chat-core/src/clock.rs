//! Lamport logical clocks.
//!
//! A [`LamportClock`] counts events in one process. The rules (Lamport, 1978):
//!
//! | event                     | rule                                   | method              |
//! |---------------------------|----------------------------------------|---------------------|
//! | local event or send       | `c = c + 1`, stamp the message with `c` | [`LamportClock::tick`]    |
//! | receive a message with `t`| `c = max(c, t) + 1`                    | [`LamportClock::observe`] |
//!
//! so if event `a` happened before event `b` then `C(a) < C(b)`. Pairing the counter with the
//! node ID gives a [`Timestamp`] whose order is *total*: ties between concurrent events on
//! different nodes are broken by node ID, the same way on every node.
//!
//! **Hostile stamps.** A stamp comes from the network, so a peer could send `2^64 - 1` and make the
//! clock wrap. Whoever orders messages checks a remote stamp with [`LamportClock::admits`] first and
//! refuses one more than [`MAX_CLOCK_JUMP`] ahead of its own clock; and the counter saturates instead
//! of wrapping, whatever it is fed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Largest amount a remote stamp may move a clock forward: a peer ahead by more is refused (it is
/// broken or hostile). Honest peers are ahead by the number of their own events since they last heard
/// from us, far below this.
pub const MAX_CLOCK_JUMP: u64 = 1_000_000;

/// A Lamport timestamp `(counter, node)`, totally ordered by counter and then by node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Timestamp {
    /// The Lamport counter: compared first.
    pub counter: u64,
    /// The node whose clock produced the stamp: breaks ties.
    pub node: NodeId,
}

impl Timestamp {
    /// Builds a timestamp.
    pub fn new(counter: u64, node: NodeId) -> Self {
        Timestamp { counter, node }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.counter, self.node)
    }
}

/// The logical clock of one process. Pure: it never reads wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LamportClock {
    counter: u64,
    node: NodeId,
}

impl LamportClock {
    /// A clock at zero for `node`.
    pub fn new(node: NodeId) -> Self {
        LamportClock { counter: 0, node }
    }

    /// A clock for `node` that resumes at `counter` (for instance after replaying a log).
    pub fn starting_at(node: NodeId, counter: u64) -> Self {
        LamportClock { counter, node }
    }

    /// The current counter value, without advancing it.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The node this clock belongs to.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Changes the node ID used to break ties (a P2P node learns its ID only when it joins).
    pub fn set_node(&mut self, node: NodeId) {
        self.node = node;
    }

    /// A local event or a send: advances the clock by one and returns the new timestamp.
    pub fn tick(&mut self) -> Timestamp {
        self.counter = self.counter.saturating_add(1);
        Timestamp::new(self.counter, self.node)
    }

    /// Receipt of a message stamped `remote`: `c = max(c, remote) + 1`. Returns the timestamp of the
    /// receive event, which is greater than both the previous local time and `remote`.
    pub fn observe(&mut self, remote: Timestamp) -> Timestamp {
        self.counter = self.counter.max(remote.counter).saturating_add(1);
        Timestamp::new(self.counter, self.node)
    }

    /// Whether observing `remote` would move this clock forward by at most [`MAX_CLOCK_JUMP`];
    /// callers refuse a stamp that is not admitted.
    pub fn admits(&self, remote: Timestamp) -> bool {
        remote.counter <= self.counter.saturating_add(MAX_CLOCK_JUMP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_local_events(clock: &mut LamportClock, n: u64) {
        for _ in 0..n {
            clock.tick();
        }
    }

    /// The textbook scenario (Tanenbaum & van Steen, "Lamport's logical clocks"): three processes
    /// whose clocks run at different rates (6, 8 and 10 events per round). Without correction a
    /// message could arrive "before" it was sent; receipt pulls the receiver's clock forward.
    #[test]
    fn three_processes_drift_and_are_corrected_by_receipt() {
        let mut p1 = LamportClock::new(NodeId(1));
        let mut p2 = LamportClock::new(NodeId(2));
        let mut p3 = LamportClock::new(NodeId(3));

        // Round 1: p1 sends m1 as its 6th event.
        run_local_events(&mut p1, 5);
        let m1 = p1.tick();
        assert_eq!(m1.counter, 6);
        // m1 reaches p2 after two of p2's rounds (16): no correction needed, receipt is one event.
        run_local_events(&mut p2, 16);
        assert_eq!(p2.observe(m1).counter, 17);
        // p2 sends m2 at 24, which reaches p3 at 40 (four rounds of 10).
        run_local_events(&mut p2, 6);
        let m2 = p2.tick();
        assert_eq!(m2.counter, 24);
        run_local_events(&mut p3, 40);
        assert_eq!(p3.observe(m2).counter, 41);
        // p3 sends m3 at 60; p2 reads only 56 when it arrives: corrected to 61.
        run_local_events(&mut p3, 18);
        let m3 = p3.tick();
        assert_eq!(m3.counter, 60);
        let lag = 56 - p2.counter();
        run_local_events(&mut p2, lag);
        assert_eq!(p2.counter(), 56);
        let r3 = p2.observe(m3);
        assert_eq!(r3.counter, 61);
        assert!(r3 > m3, "receipt must be after the send");
        // p2 sends m4 at 69; p1 reads only 54 when it arrives: corrected to 70.
        run_local_events(&mut p2, 7);
        let m4 = p2.tick();
        assert_eq!(m4.counter, 69);
        let lag = 54 - p1.counter();
        run_local_events(&mut p1, lag);
        let r4 = p1.observe(m4);
        assert_eq!(r4.counter, 70);
        // Happened-before chain m1 -> m2 -> m3 -> m4 is reflected in the stamps.
        assert!(m1 < m2 && m2 < m3 && m3 < m4);
    }

    #[test]
    fn ties_are_broken_by_node_id() {
        let a = Timestamp::new(5, NodeId(1));
        let b = Timestamp::new(5, NodeId(2));
        let c = Timestamp::new(6, NodeId(0));
        assert!(a < b && b < c);
    }

    #[test]
    fn hostile_stamps_are_not_admitted_and_never_wrap_the_clock() {
        let mut c = LamportClock::starting_at(NodeId(0), 7);
        assert!(c.admits(Timestamp::new(7 + MAX_CLOCK_JUMP, NodeId(1))));
        assert!(!c.admits(Timestamp::new(8 + MAX_CLOCK_JUMP, NodeId(1))));
        assert!(!c.admits(Timestamp::new(u64::MAX, NodeId(1))));
        // Even if fed, the counter saturates: it never goes back to 0.
        assert_eq!(c.observe(Timestamp::new(u64::MAX, NodeId(1))).counter, u64::MAX);
        assert_eq!(c.tick().counter, u64::MAX);
    }

    #[test]
    fn observe_never_goes_backwards() {
        let mut c = LamportClock::starting_at(NodeId(1), 100);
        assert_eq!(c.observe(Timestamp::new(3, NodeId(9))).counter, 101);
        assert_eq!(c.tick(), Timestamp::new(102, NodeId(1)));
    }
}
