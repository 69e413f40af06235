//! Hold-back queue: releases messages only when they may be delivered in the chosen order.
//!
//! | order                  | a message is released when                                                   |
//! |------------------------|------------------------------------------------------------------------------|
//! | [`DeliveryOrder::Fifo`]  | every earlier message of the same origin (by `id.seq`, from 1) was released  |
//! | [`DeliveryOrder::Total`] | FIFO holds, it has the smallest Lamport stamp held, and every member other than its origin has been heard from with a larger stamp (so nothing smaller can still arrive over FIFO channels) |
//!
//! Use: [`HoldBack::insert`] each arriving message, [`HoldBack::observe`] every clock value heard
//! from a member (acknowledgements, heartbeats), then drain [`HoldBack::poll_deliver`].
//!
//! Total order assumes what a Lamport clock guarantees: each origin's stamps increase with its
//! `id.seq`. A message only counts as "heard from its origin" once every earlier message of that
//! origin has arrived: an out-of-order arrival says nothing about the gap before it.
//!
//! **Bound**: at most `capacity` messages are held. Messages that arrive out of order (waiting for
//! a gap to be filled) may take at most half of it, so the message filling a gap finds room
//! whenever no ready message is waiting to be polled: a full queue cannot deadlock on its own gaps.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::{ChatMessage, MessageId, NodeId, Timestamp};

/// Default bound on messages held back.
pub const DEFAULT_HOLD_BACK: usize = 10_000;

/// The order in which a [`HoldBack`] releases messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOrder {
    /// Per-origin FIFO: each origin's messages in `id.seq` order, no gaps.
    Fifo,
    /// Total order by Lamport timestamp, released once it is safe (see module docs).
    Total,
}

/// What [`HoldBack::insert`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldResult {
    /// Held until it can be released (it may be releasable at once).
    Held,
    /// Already released or already held: ignored.
    Duplicate,
    /// The queue is at capacity: refused; the sender must retransmit later.
    Full,
}

/// Bounded hold-back queue; see the module documentation.
#[derive(Debug, Clone)]
pub struct HoldBack {
    /// FIFO or total order.
    order: DeliveryOrder,
    /// Most messages held (waiting + ready).
    capacity: usize,
    /// Next `id.seq` expected per origin: everything below was already made ready.
    next_seq: HashMap<NodeId, u64>,
    /// Messages waiting for an earlier one of the same origin.
    waiting: HashMap<NodeId, BTreeMap<u64, ChatMessage>>,
    /// Number of messages in `waiting`.
    waiting_len: usize,
    /// FIFO order: messages whose predecessors were all made ready, in the order they became ready.
    fifo_ready: VecDeque<ChatMessage>,
    /// Total order: FIFO-ready messages waiting for stability, by stamp (the ID breaks ties, so two
    /// messages with equal stamps are both kept).
    total_ready: BTreeMap<(Timestamp, MessageId), ChatMessage>,
    /// Members whose clocks gate total-order delivery.
    members: BTreeSet<NodeId>,
    /// Largest stamp heard from each member (from `observe` and from FIFO-ready messages).
    heard: HashMap<NodeId, Timestamp>,
    /// Messages held: `waiting_len` plus the ready ones.
    held: usize,
}

impl HoldBack {
    /// An empty queue holding at most `capacity` messages (at least 1).
    pub fn new(order: DeliveryOrder, capacity: usize) -> Self {
        HoldBack {
            order,
            capacity: capacity.max(1),
            next_seq: HashMap::new(),
            waiting: HashMap::new(),
            waiting_len: 0,
            fifo_ready: VecDeque::new(),
            total_ready: BTreeMap::new(),
            members: BTreeSet::new(),
            heard: HashMap::new(),
            held: 0,
        }
    }

    /// Sets the members whose clocks gate total-order delivery (ignored in FIFO order). Removing a
    /// failed member unblocks messages that were waiting to hear from it.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = NodeId>) {
        self.members = members.into_iter().collect();
    }

    /// Records that `from` has reached Lamport time `ts` (an acknowledgement or heartbeat): over a
    /// FIFO channel, nothing stamped lower can come from it any more.
    pub fn observe(&mut self, from: NodeId, ts: Timestamp) {
        let entry = self.heard.entry(from).or_default();
        if ts > *entry {
            *entry = ts;
        }
    }

    /// Offers a message. Sequence numbers start at 1; a `seq` below the next expected one (0
    /// included) is a [`HoldResult::Duplicate`].
    pub fn insert(&mut self, msg: ChatMessage) -> HoldResult {
        let origin = msg.id.origin;
        let next = self.next_seq.get(&origin).copied().unwrap_or(1);
        if msg.id.seq < next || self.waiting.get(&origin).is_some_and(|q| q.contains_key(&msg.id.seq)) {
            return HoldResult::Duplicate;
        }
        if self.held >= self.capacity {
            return HoldResult::Full;
        }
        if msg.id.seq > next {
            // Out of order: bounded to half the capacity, keeping room for the gap fillers.
            if self.waiting_len >= self.capacity / 2 {
                return HoldResult::Full;
            }
            self.waiting.entry(origin).or_default().insert(msg.id.seq, msg);
            self.waiting_len += 1;
            self.held += 1;
            return HoldResult::Held;
        }
        self.held += 1;
        self.make_ready(msg);
        self.promote(origin, next + 1);
        HoldResult::Held
    }

    /// Makes ready the waiting messages of `origin` that follow without a gap from `next`.
    fn promote(&mut self, origin: NodeId, mut next: u64) {
        if let Some(queue) = self.waiting.get_mut(&origin) {
            let mut ready = Vec::new();
            while let Some(msg) = queue.remove(&next) {
                next += 1;
                ready.push(msg);
            }
            if queue.is_empty() {
                self.waiting.remove(&origin);
            }
            self.waiting_len -= ready.len();
            for msg in ready {
                self.make_ready(msg);
            }
        }
        self.next_seq.insert(origin, next);
    }

    /// Queues a message whose predecessors are all ready. Only now does its stamp tell us something
    /// about its origin: nothing earlier from it can still arrive.
    fn make_ready(&mut self, msg: ChatMessage) {
        match self.order {
            DeliveryOrder::Fifo => self.fifo_ready.push_back(msg),
            DeliveryOrder::Total => {
                self.observe(msg.id.origin, msg.lamport);
                self.total_ready.insert((msg.lamport, msg.id), msg);
            }
        }
    }

    /// The next message that may be delivered, if any.
    #[must_use]
    pub fn poll_deliver(&mut self) -> Option<ChatMessage> {
        let msg = match self.order {
            DeliveryOrder::Fifo => self.fifo_ready.pop_front()?,
            DeliveryOrder::Total => {
                let (&(stamp, id), _) = self.total_ready.first_key_value()?;
                if !self.is_stable(stamp, id.origin) {
                    return None;
                }
                self.total_ready.pop_first()?.1
            }
        };
        self.held -= 1;
        Some(msg)
    }

    /// Whether every member other than `origin` has been heard from at a time later than `stamp`.
    /// The origin itself is exempt: the message is FIFO-ready, so its earlier messages are already
    /// here and its later ones carry larger stamps.
    fn is_stable(&self, stamp: Timestamp, origin: NodeId) -> bool {
        self.members.iter().all(|m| *m == origin || self.heard.get(m).is_some_and(|h| *h > stamp))
    }

    /// Messages held (waiting for a gap or for stability).
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Recipients, UserName};
    use proptest::prelude::*;

    /// Message `seq` of `origin`, stamped `(counter, origin)`.
    fn msg(origin: u64, seq: u64, counter: u64) -> ChatMessage {
        stamped(origin, seq, Timestamp::new(counter, NodeId(origin)))
    }

    fn stamped(origin: u64, seq: u64, lamport: Timestamp) -> ChatMessage {
        ChatMessage {
            id: MessageId::new(NodeId(origin), seq),
            sender: UserName::new(format!("n{origin}")).unwrap(),
            recipients: Recipients::Broadcast,
            body: format!("{origin}:{seq}"),
            lamport,
        }
    }

    fn drain(hb: &mut HoldBack) -> Vec<String> {
        std::iter::from_fn(|| hb.poll_deliver()).map(|m| m.body).collect()
    }

    fn ts(counter: u64, node: u64) -> Timestamp {
        Timestamp::new(counter, NodeId(node))
    }

    #[test]
    fn fifo_gap_is_held_until_filled() {
        let mut hb = HoldBack::new(DeliveryOrder::Fifo, 10);
        assert_eq!(hb.insert(msg(1, 3, 3)), HoldResult::Held);
        assert_eq!(hb.insert(msg(1, 2, 2)), HoldResult::Held);
        assert_eq!(hb.insert(msg(2, 1, 1)), HoldResult::Held);
        assert_eq!(drain(&mut hb), ["2:1"]);
        assert_eq!(hb.len(), 2);
        assert_eq!(hb.insert(msg(1, 1, 1)), HoldResult::Held);
        assert_eq!(drain(&mut hb), ["1:1", "1:2", "1:3"]);
        assert!(hb.is_empty());
    }

    #[test]
    fn duplicates_are_refused_whether_held_or_released() {
        let mut hb = HoldBack::new(DeliveryOrder::Fifo, 10);
        assert_eq!(hb.insert(msg(1, 2, 2)), HoldResult::Held);
        assert_eq!(hb.insert(msg(1, 2, 2)), HoldResult::Duplicate, "held, waiting for a gap");
        assert_eq!(hb.insert(msg(1, 1, 1)), HoldResult::Held);
        assert_eq!(hb.insert(msg(1, 1, 1)), HoldResult::Duplicate, "ready, not yet polled");
        assert_eq!(drain(&mut hb), ["1:1", "1:2"]);
        assert_eq!(hb.insert(msg(1, 1, 1)), HoldResult::Duplicate, "released");
        assert_eq!(hb.insert(msg(1, 0, 0)), HoldResult::Duplicate, "sequence numbers start at 1");
        assert!(hb.is_empty());
    }

    #[test]
    fn capacity_refuses_with_full_and_recovers_after_polling() {
        let mut hb = HoldBack::new(DeliveryOrder::Fifo, 3);
        for seq in 1..=3 {
            assert_eq!(hb.insert(msg(1, seq, seq)), HoldResult::Held);
        }
        assert_eq!(hb.insert(msg(1, 4, 4)), HoldResult::Full);
        assert_eq!(hb.insert(msg(2, 1, 1)), HoldResult::Full);
        assert_eq!(hb.len(), 3);
        assert_eq!(hb.poll_deliver().map(|m| m.body).as_deref(), Some("1:1"));
        assert_eq!(hb.insert(msg(1, 4, 4)), HoldResult::Held);
        assert_eq!(drain(&mut hb), ["1:2", "1:3", "1:4"]);
    }

    /// Regression: the queue used to fill up with out-of-order messages and then refuse the very
    /// message that would have released them, forever.
    #[test]
    fn out_of_order_messages_leave_room_for_the_gap_filler() {
        let mut hb = HoldBack::new(DeliveryOrder::Fifo, 4);
        assert_eq!(hb.insert(msg(1, 2, 2)), HoldResult::Held);
        assert_eq!(hb.insert(msg(1, 3, 3)), HoldResult::Held);
        assert_eq!(hb.insert(msg(1, 4, 4)), HoldResult::Full, "out of order: at most half the capacity");
        assert_eq!(hb.insert(msg(2, 1, 1)), HoldResult::Held);
        assert_eq!(hb.insert(msg(1, 1, 1)), HoldResult::Held);
        assert_eq!(hb.insert(msg(2, 2, 2)), HoldResult::Full, "now really full");
        assert_eq!(drain(&mut hb), ["2:1", "1:1", "1:2", "1:3"]);
        // Capacity 1: nothing out of order is accepted, in-order messages are.
        let mut hb = HoldBack::new(DeliveryOrder::Fifo, 1);
        assert_eq!(hb.insert(msg(1, 2, 2)), HoldResult::Full);
        assert_eq!(hb.insert(msg(1, 1, 1)), HoldResult::Held);
        assert_eq!(drain(&mut hb), ["1:1"]);
    }

    /// Regression: FIFO order used to sort ready messages by stamp, so equal stamps overwrote each
    /// other (a message lost, `len` stuck) and decreasing stamps broke per-origin order.
    #[test]
    fn fifo_does_not_depend_on_stamps() {
        let mut hb = HoldBack::new(DeliveryOrder::Fifo, 10);
        let zero = Timestamp::default();
        assert_eq!(hb.insert(stamped(1, 1, ts(9, 1))), HoldResult::Held);
        assert_eq!(hb.insert(stamped(1, 2, ts(3, 1))), HoldResult::Held);
        assert_eq!(hb.insert(stamped(2, 1, zero)), HoldResult::Held);
        assert_eq!(hb.insert(stamped(3, 1, zero)), HoldResult::Held);
        assert_eq!(drain(&mut hb), ["1:1", "1:2", "2:1", "3:1"]);
        assert!(hb.is_empty());
    }

    #[test]
    fn total_order_waits_until_every_member_is_heard_from_with_a_larger_stamp() {
        let mut hb = HoldBack::new(DeliveryOrder::Total, 10);
        hb.set_members([NodeId(1), NodeId(2), NodeId(3)]);
        assert_eq!(hb.insert(msg(2, 1, 4)), HoldResult::Held);
        assert_eq!(hb.insert(msg(1, 1, 2)), HoldResult::Held);
        assert_eq!(drain(&mut hb), Vec::<String>::new(), "member 3 not heard from");
        hb.observe(NodeId(3), ts(2, 3));
        // 1:1 (2.1): 2 heard at 4.2, 3 at 2.3 > 2.1. 2:1 (4.2): 1 heard only at 2.1.
        assert_eq!(drain(&mut hb), ["1:1"]);
        hb.observe(NodeId(1), ts(4, 1));
        assert_eq!(drain(&mut hb), Vec::<String>::new(), "4.1 is not later than 4.2");
        hb.observe(NodeId(1), ts(5, 1));
        assert_eq!(drain(&mut hb), Vec::<String>::new(), "member 3 heard only at 2.3");
        hb.observe(NodeId(3), ts(4, 3));
        assert_eq!(drain(&mut hb), ["2:1"]);
        assert!(hb.is_empty());
    }

    #[test]
    fn removing_a_member_unblocks_total_order() {
        let mut hb = HoldBack::new(DeliveryOrder::Total, 10);
        hb.set_members([NodeId(1), NodeId(2), NodeId(3)]);
        assert_eq!(hb.insert(msg(1, 1, 1)), HoldResult::Held);
        assert_eq!(hb.insert(msg(1, 2, 5)), HoldResult::Held);
        hb.observe(NodeId(2), ts(9, 2));
        assert_eq!(drain(&mut hb), Vec::<String>::new(), "member 3 is silent");
        hb.set_members([NodeId(1), NodeId(2)]);
        assert_eq!(drain(&mut hb), ["1:1", "1:2"]);
    }

    /// Regression: an out-of-order message used to count as "heard from its origin", so a
    /// message of another origin with a larger stamp than the gap was released before it.
    #[test]
    fn a_message_behind_a_gap_does_not_vouch_for_its_origin() {
        let mut hb = HoldBack::new(DeliveryOrder::Total, 10);
        hb.set_members([NodeId(1), NodeId(2)]);
        assert_eq!(hb.insert(msg(1, 2, 10)), HoldResult::Held);
        assert_eq!(hb.insert(msg(2, 1, 5)), HoldResult::Held);
        assert_eq!(drain(&mut hb), Vec::<String>::new(), "1:1 may still carry a stamp below 5");
        assert_eq!(hb.insert(msg(1, 1, 3)), HoldResult::Held);
        assert_eq!(drain(&mut hb), ["1:1", "2:1"], "1:2 (10.1) waits to hear from 2 after 10");
        hb.observe(NodeId(2), ts(11, 2));
        assert_eq!(drain(&mut hb), ["1:2"]);
    }

    #[test]
    fn equal_stamps_are_both_kept_in_total_order() {
        let mut hb = HoldBack::new(DeliveryOrder::Total, 10);
        assert_eq!(hb.insert(stamped(1, 1, ts(7, 0))), HoldResult::Held);
        assert_eq!(hb.insert(stamped(2, 1, ts(7, 0))), HoldResult::Held);
        assert_eq!(drain(&mut hb), ["1:1", "2:1"]);
        assert!(hb.is_empty());
    }

    /// What one sender puts on its FIFO channel.
    #[derive(Debug, Clone)]
    enum Item {
        Msg(ChatMessage),
        /// A heartbeat carrying the sender's clock.
        Beat(NodeId, Timestamp),
    }

    /// Simulates `k` Lamport clocks: each action either makes process `a` broadcast a message (or
    /// a heartbeat), or makes `a` receive the oldest undelivered message `b` sent it, observing
    /// its stamp. Returns each process's outgoing stream, so stamps respect causality.
    fn lamport_execution(k: usize, actions: &[(usize, usize, u8)]) -> Vec<Vec<Item>> {
        let mut clocks: Vec<crate::LamportClock> = (0..k).map(|i| crate::LamportClock::new(NodeId(i as u64))).collect();
        let mut channels: Vec<Vec<VecDeque<Timestamp>>> = vec![vec![VecDeque::new(); k]; k];
        let mut streams: Vec<Vec<Item>> = vec![Vec::new(); k];
        let mut seqs = vec![0u64; k];
        for &(a, b, kind) in actions {
            let (a, b) = (a % k, b % k);
            match kind % 4 {
                0 | 1 => {
                    let stamp = clocks[a].tick();
                    seqs[a] += 1;
                    streams[a].push(Item::Msg(stamped(a as u64, seqs[a], stamp)));
                    for (to, chan) in channels[a].iter_mut().enumerate() {
                        if to != a {
                            chan.push_back(stamp);
                        }
                    }
                }
                2 => {
                    let stamp = clocks[a].tick();
                    streams[a].push(Item::Beat(NodeId(a as u64), stamp));
                }
                _ => {
                    if let Some(stamp) = channels[b][a].pop_front() {
                        clocks[a].observe(stamp);
                    }
                }
            }
        }
        streams
    }

    /// Merges the streams, keeping each one's order; `picks` choose the stream at each step.
    fn interleave(streams: &[Vec<Item>], picks: &[usize]) -> Vec<Item> {
        let mut pos = vec![0usize; streams.len()];
        let total: usize = streams.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(total);
        for step in 0..total {
            let open: Vec<usize> = (0..streams.len()).filter(|&s| pos[s] < streams[s].len()).collect();
            let pick = picks.get(step).copied().unwrap_or(0);
            let s = open[pick % open.len()];
            out.push(streams[s][pos[s]].clone());
            pos[s] += 1;
        }
        out
    }

    /// Feeds items, polling after each; then a final large heartbeat from every member.
    fn run_total(k: usize, items: &[Item]) -> Vec<ChatMessage> {
        let mut hb = HoldBack::new(DeliveryOrder::Total, DEFAULT_HOLD_BACK);
        hb.set_members((0..k as u64).map(NodeId));
        let mut out = Vec::new();
        for item in items {
            match item {
                Item::Msg(m) => assert_eq!(hb.insert(m.clone()), HoldResult::Held),
                Item::Beat(from, stamp) => hb.observe(*from, *stamp),
            }
            out.extend(std::iter::from_fn(|| hb.poll_deliver()));
        }
        for m in 0..k as u64 {
            hb.observe(NodeId(m), Timestamp::new(u64::MAX, NodeId(m)));
        }
        out.extend(std::iter::from_fn(|| hb.poll_deliver()));
        assert!(hb.is_empty(), "{} messages still held", hb.len());
        out
    }

    fn messages(streams: &[Vec<Item>]) -> Vec<ChatMessage> {
        let mut all: Vec<ChatMessage> = streams
            .iter()
            .flatten()
            .filter_map(|i| match i {
                Item::Msg(m) => Some(m.clone()),
                Item::Beat(..) => None,
            })
            .collect();
        all.sort_by_key(|m| m.lamport);
        all
    }

    /// Checks: nothing lost, nothing duplicated, each origin's messages in `seq` order.
    fn check_fifo(released: &[ChatMessage], expected: &[ChatMessage]) -> Result<(), TestCaseError> {
        prop_assert_eq!(released.len(), expected.len());
        let mut next: HashMap<NodeId, u64> = HashMap::new();
        for m in released {
            let want = next.entry(m.id.origin).or_insert(1);
            prop_assert_eq!(m.id.seq, *want, "origin {} out of order or duplicated", m.id.origin);
            *want += 1;
        }
        Ok(())
    }

    /// A small deterministic generator (splitmix64) for shuffles derived from one proptest seed.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn arb_actions() -> impl Strategy<Value = (usize, Vec<(usize, usize, u8)>)> {
        (2usize..6, proptest::collection::vec((0usize..8, 0usize..8, any::<u8>()), 0..250))
    }

    proptest! {
        /// Total order: two receivers fed different FIFO-preserving interleavings (heartbeats
        /// included) release every message once, in stamp order, and so in the same order.
        #[test]
        fn total_order_is_the_stamp_order_whatever_the_interleaving(
            (k, actions) in arb_actions(),
            picks_a in proptest::collection::vec(any::<usize>(), 0..400),
            picks_b in proptest::collection::vec(any::<usize>(), 0..400),
        ) {
            let streams = lamport_execution(k, &actions);
            let expected = messages(&streams);
            let a = run_total(k, &interleave(&streams, &picks_a));
            let b = run_total(k, &interleave(&streams, &picks_b));
            check_fifo(&a, &expected)?;
            let ids = |v: &[ChatMessage]| v.iter().map(|m| m.id).collect::<Vec<_>>();
            prop_assert_eq!(ids(&a), ids(&expected), "release order is the stamp order");
            prop_assert_eq!(ids(&a), ids(&b), "two receivers agree");
        }

        /// FIFO order under arbitrary reordering and duplicate retransmissions, with a small
        /// capacity: refused messages are retransmitted later, and everything gets through once,
        /// in per-origin order.
        #[test]
        fn fifo_survives_reordering_duplicates_and_a_small_capacity(
            (k, actions) in arb_actions(),
            seed in any::<u64>(),
            capacity in 1usize..12,
            dup_percent in 0u64..60,
        ) {
            let streams = lamport_execution(k, &actions);
            let expected = messages(&streams);
            let mut rng = seed;
            let mut pending: VecDeque<ChatMessage> = VecDeque::new();
            for m in &expected {
                pending.push_back(m.clone());
                if splitmix(&mut rng) % 100 < dup_percent {
                    pending.push_back(m.clone());
                }
            }
            let mut pending: Vec<ChatMessage> = pending.into();
            for i in (1..pending.len()).rev() {
                let j = (splitmix(&mut rng) % (i as u64 + 1)) as usize;
                pending.swap(i, j);
            }
            let mut pending: VecDeque<ChatMessage> = pending.into();
            let mut hb = HoldBack::new(DeliveryOrder::Fifo, capacity);
            let mut released = Vec::new();
            let mut accepted = 0usize;
            // Bounded: each message is offered at most (messages + 1) times.
            let budget = (pending.len() + 1) * (pending.len() + 1);
            let mut steps = 0usize;
            while let Some(m) = pending.pop_front() {
                steps += 1;
                prop_assert!(steps <= budget, "no progress: {} pending", pending.len() + 1);
                match hb.insert(m.clone()) {
                    HoldResult::Held => accepted += 1,
                    HoldResult::Duplicate => {}
                    HoldResult::Full => {
                        // Retransmitted later; the queue is then still at most `capacity`.
                        prop_assert!(hb.len() <= capacity);
                        let at = (splitmix(&mut rng) as usize % (pending.len() + 1)).max(pending.len() / 2);
                        pending.insert(at, m);
                    }
                }
                prop_assert!(hb.len() <= capacity);
                if splitmix(&mut rng) % 3 != 0 {
                    released.extend(std::iter::from_fn(|| hb.poll_deliver()));
                }
            }
            released.extend(std::iter::from_fn(|| hb.poll_deliver()));
            prop_assert!(hb.is_empty());
            let mut by_id = expected.clone();
            by_id.sort_by_key(|m| m.id);
            let mut got = released.clone();
            got.sort_by_key(|m| m.id);
            prop_assert_eq!(got, by_id, "every message exactly once, unchanged");
            check_fifo(&released, &expected)?;
            prop_assert_eq!(accepted, expected.len(), "each message accepted once, copies refused");
        }
    }
}
