//! What a subscriber checks about every message, beyond counting it: nothing twice, nothing out of
//! order, nothing that was not meant for it. Sans-IO: one [`Audit`] per subscriber is fed each
//! message's stamp and order key and says whether it counts as a delivery; no allocation per message.
//!
//! | check                          | evidence                                              | violation        |
//! |--------------------------------|-------------------------------------------------------|------------------|
//! | the server's order             | the order key (chat: sequence number) strictly increases | equal: `duplicates`; lower: `out_of_order` |
//! | each publisher's order (FIFO)  | its stamps strictly increase (publishers stamp so)    | equal: `duplicates`; lower: `out_of_order` |
//! | only what is meant for it      | per publisher, no more than the recipients plan sent it; only the run's publishers | `unexpected` |
//! | fan-out: one order for all     | the fingerprint of the order keys, compared by [`run`] | `diverged`       |
//!
//! A publisher is known from the index in the body, or is publisher 0 when there is only one;
//! with several publishers and bodies too short to carry the index (under 24 bytes), only the
//! order key is checked. A duplicate or an unexpected message does not count as a delivery; a
//! message out of order does (it arrived, late).

use super::protocol::Stamp;
#[cfg(doc)]
use super::run;

/// Deliveries that break what a pub/sub promises, counted by the subscribers of a run. A run is
/// complete only if all are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Violations {
    /// Messages received again right after themselves (same order key, or same stamp from the same
    /// publisher).
    pub duplicates: u64,
    /// Messages whose order key, or whose stamp among their publisher's, went backwards (reordered,
    /// or a late duplicate).
    pub out_of_order: u64,
    /// Messages a subscriber should not have received: more from a publisher than were sent to it,
    /// or from no publisher of the run.
    pub unexpected: u64,
    /// Fan-out: subscribers that received everything, but in another server order than most
    /// subscribers that did.
    pub diverged: u64,
}

impl Violations {
    /// All violations together.
    pub fn total(&self) -> u64 {
        self.duplicates + self.out_of_order + self.unexpected + self.diverged
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Violations) {
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        self.diverged += other.diverged;
    }
}

/// Start of the FNV-1a fingerprint of a sequence of order keys.
const FINGERPRINT_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The checks of one subscriber; see the module documentation.
#[derive(Debug, Clone)]
pub(super) struct Audit {
    /// Messages still expected from each publisher (index = publisher).
    remaining_from: Vec<u64>,
    /// The highest stamp received from each publisher; 0 = none yet (publishers stamp from 1).
    last_stamp: Vec<u64>,
    /// The highest order key received, if any came.
    last_key: Option<u64>,
    /// FNV-1a over the order keys of the deliveries, in arrival order.
    fingerprint: u64,
    /// What went wrong so far.
    violations: Violations,
}

impl Audit {
    /// The audit of a subscriber that must receive `expected_from[p]` messages from publisher `p`.
    pub(super) fn new(expected_from: Vec<u64>) -> Audit {
        let publishers = expected_from.len();
        Audit {
            remaining_from: expected_from,
            last_stamp: vec![0; publishers],
            last_key: None,
            fingerprint: FINGERPRINT_START,
            violations: Violations::default(),
        }
    }

    /// Checks one message with `stamp` and, if the protocol has one, its `order` key in the
    /// server's global order. Returns whether it counts as a delivery.
    pub(super) fn message(&mut self, stamp: Stamp, order: Option<u64>) -> bool {
        let from = match stamp.sender {
            Some(p) => Some(p),
            None if self.remaining_from.len() == 1 => Some(0),
            None => None,
        };
        let last_stamp = from.and_then(|p| self.last_stamp.get(p)).copied().filter(|&s| s > 0);
        let (key_repeated, key_back) = match (order, self.last_key) {
            (Some(k), Some(last)) => (k == last, k < last),
            _ => (false, false),
        };
        let (stamp_repeated, stamp_back) = match last_stamp {
            Some(last) => (stamp.sent_ns == last, stamp.sent_ns < last),
            None => (false, false),
        };
        if key_repeated || stamp_repeated {
            self.violations.duplicates += 1;
            return false;
        }
        if let Some(p) = from {
            match self.remaining_from.get_mut(p) {
                Some(left) if *left > 0 => *left -= 1,
                _ => {
                    self.violations.unexpected += 1;
                    return false;
                }
            }
            self.last_stamp[p] = self.last_stamp[p].max(stamp.sent_ns);
        }
        if key_back || stamp_back {
            self.violations.out_of_order += 1;
        }
        if let Some(k) = order {
            self.last_key = Some(self.last_key.map_or(k, |last| last.max(k)));
            self.fingerprint = (self.fingerprint ^ k).wrapping_mul(0x100_0000_01b3);
        }
        true
    }

    /// What went wrong so far.
    pub(super) fn violations(&self) -> Violations {
        self.violations
    }

    /// The fingerprint of the order keys of the deliveries, in arrival order; `None` if no
    /// delivery had a key (the protocol has no global order).
    pub(super) fn fingerprint(&self) -> Option<u64> {
        self.last_key.map(|_| self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sent_ns: u64, sender: Option<usize>) -> Stamp {
        Stamp { sent_ns, sender }
    }

    /// Feeds `messages` and returns the verdicts and the violations.
    fn audit(expected_from: Vec<u64>, messages: &[(Stamp, Option<u64>)]) -> (Vec<bool>, Violations) {
        let mut a = Audit::new(expected_from);
        let verdicts = messages.iter().map(|&(s, k)| a.message(s, k)).collect();
        (verdicts, a.violations())
    }

    #[test]
    fn a_clean_fanout_has_no_violations() {
        let m = [(stamp(1, Some(0)), Some(10)), (stamp(1, Some(1)), Some(11)), (stamp(2, Some(0)), Some(12))];
        assert_eq!(audit(vec![2, 1], &m), (vec![true, true, true], Violations::default()));
    }

    #[test]
    fn a_repeated_order_key_is_a_duplicate_and_not_a_delivery() {
        let m = [(stamp(1, Some(0)), Some(10)), (stamp(2, Some(0)), Some(10))];
        assert_eq!(audit(vec![5], &m), (vec![true, false], Violations { duplicates: 1, ..Violations::default() }));
    }

    #[test]
    fn a_repeated_stamp_of_one_publisher_is_a_duplicate_without_order_keys() {
        // Redis / NATS: no order key; one publisher, bodies too short for its index.
        let m = [(stamp(5, None), None), (stamp(5, None), None), (stamp(6, None), None)];
        assert_eq!(
            audit(vec![3], &m),
            (vec![true, false, true], Violations { duplicates: 1, ..Violations::default() })
        );
    }

    #[test]
    fn keys_or_stamps_going_backwards_are_out_of_order_but_delivered() {
        let by_key = [(stamp(1, Some(0)), Some(10)), (stamp(1, Some(1)), Some(9)), (stamp(2, Some(1)), Some(11))];
        assert_eq!(
            audit(vec![1, 2], &by_key),
            (vec![true, true, true], Violations { out_of_order: 1, ..Violations::default() })
        );
        let by_stamp = [(stamp(7, Some(1)), None), (stamp(3, Some(1)), None), (stamp(4, Some(0)), None)];
        assert_eq!(
            audit(vec![1, 2], &by_stamp),
            (vec![true, true, true], Violations { out_of_order: 1, ..Violations::default() })
        );
    }

    #[test]
    fn messages_not_meant_for_the_subscriber_are_unexpected() {
        // Unicast: this subscriber gets one message from publisher 1 and none from 0 or 2.
        let m = [
            (stamp(1, Some(0)), None),
            (stamp(1, Some(1)), None),
            (stamp(2, Some(1)), None),
            (stamp(1, Some(7)), None),
        ];
        assert_eq!(
            audit(vec![0, 1, 0], &m),
            (vec![false, true, false, false], Violations { unexpected: 3, ..Violations::default() })
        );
    }

    #[test]
    fn without_publisher_indexes_only_the_order_key_is_checked() {
        // Two publishers, 16-byte bodies: equal stamps from different publishers are fine.
        let m = [(stamp(4, None), Some(1)), (stamp(4, None), Some(2)), (stamp(3, None), Some(3))];
        assert_eq!(audit(vec![2, 1], &m), (vec![true, true, true], Violations::default()));
    }

    #[test]
    fn fingerprints_tell_orders_apart_and_need_order_keys() {
        let mut a = Audit::new(vec![2]);
        let mut b = Audit::new(vec![2]);
        let mut c = Audit::new(vec![2]);
        for (x, k) in [(&mut a, [1, 2]), (&mut b, [1, 2]), (&mut c, [1, 3])] {
            assert!(x.message(stamp(1, None), Some(k[0])));
            assert!(x.message(stamp(2, None), Some(k[1])));
        }
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        let mut keyless = Audit::new(vec![1]);
        assert!(keyless.message(stamp(1, None), None));
        assert_eq!(keyless.fingerprint(), None);
    }

    #[test]
    fn totals_add_up() {
        let mut v = Violations { duplicates: 1, out_of_order: 2, unexpected: 3, diverged: 4 };
        v.add(&Violations { duplicates: 1, ..Violations::default() });
        assert_eq!(v.total(), 11);
    }
}
