//! Hold-back queue: releases messages only when they may be delivered in the chosen order.
//!
//! | order                  | a message is released when                                                   |
//! |------------------------|------------------------------------------------------------------------------|
//! | [`DeliveryOrder::Fifo`]  | every earlier message of the same origin (by `id.seq`, from 1) was released  |
//! | [`DeliveryOrder::Total`] | FIFO holds, it has the smallest Lamport stamp held, and every member has been heard from with a larger stamp (so nothing smaller can still arrive over FIFO channels) |
//!
//! Use: [`HoldBack::insert`] each arriving message, [`HoldBack::observe`] every clock value heard
//! from a member (acknowledgements, heartbeats), then drain [`HoldBack::poll_deliver`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::{ChatMessage, DedupWindow, NodeId, Timestamp};

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
    order: DeliveryOrder,
    capacity: usize,
    /// Next `id.seq` expected per origin.
    next_seq: HashMap<NodeId, u64>,
    /// Messages waiting for an earlier one of the same origin.
    waiting: HashMap<NodeId, BTreeMap<u64, ChatMessage>>,
    /// FIFO-ready messages waiting for the total-order condition, by stamp.
    ready: BTreeMap<Timestamp, ChatMessage>,
    /// Members whose clocks gate total-order delivery.
    members: BTreeSet<NodeId>,
    /// Largest stamp heard from each member.
    heard: HashMap<NodeId, Timestamp>,
    held: usize,
    released: DedupWindow,
}

impl HoldBack {
    /// An empty queue holding at most `capacity` messages.
    pub fn new(order: DeliveryOrder, capacity: usize) -> Self {
        HoldBack {
            order,
            capacity: capacity.max(1),
            next_seq: HashMap::new(),
            waiting: HashMap::new(),
            ready: BTreeMap::new(),
            members: BTreeSet::new(),
            heard: HashMap::new(),
            held: 0,
            released: DedupWindow::new(capacity.max(1).saturating_mul(4)),
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

    /// Offers a message.
    pub fn insert(&mut self, msg: ChatMessage) -> HoldResult {
        let origin = msg.id.origin;
        let next = *self.next_seq.get(&origin).unwrap_or(&1);
        if msg.id.seq < next || self.released.contains(&msg.id) {
            return HoldResult::Duplicate;
        }
        if self.waiting.get(&origin).is_some_and(|q| q.contains_key(&msg.id.seq)) {
            return HoldResult::Duplicate;
        }
        if self.held >= self.capacity {
            return HoldResult::Full;
        }
        self.observe(origin, msg.lamport);
        self.waiting.entry(origin).or_default().insert(msg.id.seq, msg);
        self.held += 1;
        self.promote(origin);
        HoldResult::Held
    }

    /// Moves the FIFO-ready prefix of `origin`'s waiting messages to `ready`.
    fn promote(&mut self, origin: NodeId) {
        let next = self.next_seq.entry(origin).or_insert(1);
        if let Some(queue) = self.waiting.get_mut(&origin) {
            while let Some(msg) = queue.remove(next) {
                *next += 1;
                self.ready.insert(msg.lamport, msg);
            }
        }
    }

    /// The next message that may be delivered, if any.
    #[must_use]
    pub fn poll_deliver(&mut self) -> Option<ChatMessage> {
        let (&stamp, _) = self.ready.first_key_value()?;
        if self.order == DeliveryOrder::Total && !self.is_stable(stamp) {
            return None;
        }
        let msg = self.ready.remove(&stamp)?;
        self.held -= 1;
        self.released.insert(msg.id);
        Some(msg)
    }

    /// Whether every member has been heard from at a time later than `stamp`.
    fn is_stable(&self, stamp: Timestamp) -> bool {
        self.members.iter().all(|m| *m == stamp.node || self.heard.get(m).is_some_and(|h| *h > stamp))
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
