//! A seeded, deterministic simulation of N [`Node`]s: virtual time, no sockets.
//!
//! Like raft-rs's test harness, the network is a message pump. Each directed link is FIFO with a
//! random latency. Faults follow TCP's model: a link *breaks* as a whole (messages in flight are
//! lost and both ends get [`Input::LinkDown`]); a partition cuts links until [`Sim::heal`]; a crash
//! removes a node (its peers notice only by silence or refused connections); a restart brings the
//! same name back as a new process. Every frame goes through the codec, as on TCP.
//!
//! | operation            | effect                                                          |
//! |----------------------|-----------------------------------------------------------------|
//! | `send(i, ..)`        | node `i` submits a message                                      |
//! | `crash(i)` / `restart(i)` | the process dies / a new process with the same name starts |
//! | `break_link(i, j)`   | the TCP link drops: in-flight frames lost, both ends notified   |
//! | `partition(set)`     | cuts every link between `set` and the rest                      |
//! | `heal()`             | removes every cut                                               |
//! | `run_for(d)`         | advances virtual time, delivering frames and firing timers      |
//!
//! Besides what every node delivered, the simulation records what the invariants need
//! (`sim/watch.rs`): each node's membership story since its last admission, the IDs each process
//! held, and every election started while the coordinator it followed was alive and reachable.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_core::{ChatMessage, Event, MessageId, NodeId, OutgoingMessage, Recipients, Timestamp, UserName};

use crate::membership::Rng;
use crate::node::{Input, Limits, Node, NodeConfig, Output};
use crate::protocol::{Envelope, PeerMsg};

mod watch;

pub use watch::{CALM_AFTER, Story, UncalledElection};

/// Most events processed by one [`Sim::run_for`] call, so every loop is bounded.
const MAX_EVENTS_PER_RUN: usize = 2_000_000;
/// Consecutive timer firings that leave a deadline in the past before the simulation calls it a
/// busy loop (a bug: a real runtime would spin).
const MAX_STALLED_TIMERS: usize = 1_000;

/// One submitted message, as the simulation remembers it for the invariants.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// Index of the sending node.
    pub node: usize,
    /// The message ID.
    pub id: MessageId,
    /// IDs the sender had delivered before sending (its causal past).
    pub deps: Vec<MessageId>,
    /// Named recipients.
    pub recipients: Recipients,
    /// Whether the sender learnt the outcome (ordered or refused).
    pub resolved: bool,
}

/// A simulated process slot.
#[derive(Debug)]
pub struct Slot {
    /// The running node, `None` while crashed.
    pub node: Option<Node>,
    /// The user name (kept across restarts).
    pub name: UserName,
    /// Every message delivered, by every incarnation, in order.
    pub delivered: Vec<ChatMessage>,
    /// Every message kept for this slot's user while it was away and delivered on its return
    /// (`Output::Offline`; not in `delivered`: it was ordered before the return).
    pub offline: Vec<ChatMessage>,
    /// Every ID this slot was given.
    pub ids: Vec<NodeId>,
    /// Whether this slot ever crashed.
    pub crashed_ever: bool,
    /// The IDs the current process was given, in order (one, unless a partition heal renumbered it).
    pub life_ids: Vec<(NodeId, bool)>,
    /// When the current process was last admitted (or founded its group).
    pub admitted_at: Option<Instant>,
    /// The `joined` / `left` events the current process reported since it was last admitted.
    pub story: Vec<Story>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    generation: u64,
    datagram: bool,
    frame: Vec<u8>,
}

/// The simulated network and its nodes.
#[derive(Debug)]
pub struct Sim {
    /// The process slots.
    pub slots: Vec<Slot>,
    /// Every submission.
    pub submitted: Vec<Submitted>,
    now: Instant,
    rng: Rng,
    seq: u64,
    queue: BinaryHeap<Reverse<InFlight>>,
    addrs: Vec<SocketAddr>,
    next_port: u16,
    generation: HashMap<(SocketAddr, SocketAddr), u64>,
    link_clear: HashMap<(SocketAddr, SocketAddr), Instant>,
    cut: BTreeSet<(usize, usize)>,
    cfg_template: (Duration, Duration, Duration),
    /// Deliveries per slot per incarnation, for checks that must ignore expelled incarnations.
    pub by_id: BTreeMap<NodeId, Vec<MessageId>>,
    /// Print every delivered frame and fired timer to stderr (for reproducing a failing seed).
    pub trace: bool,
    /// `RateLimited` answers sent (`tests/sim_flood_control.rs`: none with the default limits).
    pub throttled: u64,
    /// Elections started while the coordinator followed was alive, coordinating and reachable, and
    /// no fault had happened for [`CALM_AFTER`] (`tests/sim_calm.rs`: none).
    pub uncalled: Vec<UncalledElection>,
    /// When the last fault that may start an election happened (a coordinator crashed or left, a
    /// link broke, the network split or healed).
    pub last_fault: Option<Instant>,
    limits: Option<Limits>,
    origin: Instant,
}

fn ordered(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Sim {
    /// `n` nodes that start joining one after the other (the first founds the group), with the
    /// default flood-control limits.
    pub fn new(seed: u64, n: usize) -> Self {
        Sim::with_limits(seed, n, Some(Limits::default()))
    }

    /// [`Sim::new`], with these flood-control limits on every node.
    pub fn with_limits(seed: u64, n: usize, limits: Option<Limits>) -> Self {
        let origin = Instant::now();
        let mut sim = Sim {
            origin,
            slots: Vec::new(),
            submitted: Vec::new(),
            now: origin,
            rng: Rng::new(seed),
            seq: 0,
            queue: BinaryHeap::new(),
            addrs: Vec::new(),
            next_port: 20_000,
            generation: HashMap::new(),
            link_clear: HashMap::new(),
            cut: BTreeSet::new(),
            cfg_template: (Duration::from_millis(50), Duration::from_millis(200), Duration::from_millis(300)),
            by_id: BTreeMap::new(),
            trace: std::env::var_os("SIM_TRACE").is_some(),
            throttled: 0,
            uncalled: Vec::new(),
            last_fault: None,
            limits,
        };
        for i in 0..n {
            let name = UserName::new(format!("n{i}")).unwrap_or_else(|_| unreachable_name());
            sim.slots.push(Slot {
                node: None,
                name,
                delivered: Vec::new(),
                offline: Vec::new(),
                ids: Vec::new(),
                crashed_ever: false,
                life_ids: Vec::new(),
                admitted_at: None,
                story: Vec::new(),
            });
            sim.addrs.push(SocketAddr::from(([127, 0, 0, 1], 0)));
            sim.start(i);
            let stagger = Duration::from_millis(150 + sim.rng.next_u64() % 50);
            sim.run_for(stagger);
        }
        sim
    }

    fn start(&mut self, i: usize) {
        self.next_port += 1;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.next_port));
        self.addrs[i] = addr;
        let mut cfg = NodeConfig::new(self.slots[i].name.clone(), addr, self.rng.next_u64());
        (cfg.heartbeat, cfg.timeout, cfg.join_timeout) = self.cfg_template;
        cfg.history = 64;
        cfg.sync_window = 64;
        cfg.limits = self.limits;
        self.slots[i].life_ids.clear();
        self.slots[i].admitted_at = None;
        self.slots[i].story.clear();
        self.slots[i].node = Some(Node::new(self.now, cfg));
        self.drain(i);
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// A random number from the simulation's generator.
    pub fn random(&mut self, below: u64) -> u64 {
        self.rng.next_u64() % below.max(1)
    }

    /// Indices of running nodes (not crashed, not refused).
    pub fn live(&self) -> Vec<usize> {
        (0..self.slots.len()).filter(|i| self.slots[*i].node.as_ref().is_some_and(|n| !n.is_closed())).collect()
    }

    /// The running node `i`.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.slots[i].node.as_ref()
    }

    /// Node `i` submits `body` to `recipients` (ignored if it is down or not yet a member).
    pub fn send(&mut self, i: usize, recipients: Recipients, body: &str) {
        let now = self.now;
        let deps: Vec<MessageId> = self.slots[i].delivered.iter().rev().take(16).map(|m| m.id).collect();
        let wall = self.wall();
        let Some(node) = self.slots[i].node.as_mut().filter(|n| n.is_member()) else { return };
        let sent_at = Timestamp::new(0, NodeId(0));
        let out = OutgoingMessage { recipients: recipients.clone(), body: body.to_owned(), sent_at };
        node.handle(now, Input::Clock { unix_ms: wall });
        if let Ok(id) = node.submit(now, out) {
            self.submitted.push(Submitted { node: i, id, deps, recipients, resolved: false });
        }
        self.drain(i);
    }

    fn note(&self, what: std::fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("{:?} == {what}", self.now.duration_since(self.origin));
        }
    }

    /// The wall clock the nodes are given: virtual milliseconds from a fixed start.
    fn wall(&self) -> u64 {
        1_700_000_000_000 + self.now.duration_since(self.origin).as_millis() as u64
    }

    /// Kills node `i` (no goodbye).
    pub fn crash(&mut self, i: usize) {
        self.note(format_args!("crash {i}"));
        if self.slots[i].node.as_ref().is_some_and(Node::is_coordinator) {
            self.fault();
        }
        if self.slots[i].node.take().is_some() {
            self.slots[i].crashed_ever = true;
        }
    }

    /// Starts a new process for slot `i` (same name, new address) if it is down.
    pub fn restart(&mut self, i: usize) {
        if self.slots[i].node.as_ref().is_none_or(Node::is_closed) {
            self.note(format_args!("restart {i}"));
            self.start(i);
        }
    }

    /// Node `i` leaves cleanly.
    pub fn leave(&mut self, i: usize) {
        self.fault();
        let now = self.now;
        if let Some(node) = self.slots[i].node.as_mut() {
            node.handle(now, Input::Leave);
        }
        self.drain(i);
        self.slots[i].node = None;
    }

    /// Breaks the TCP link between `i` and `j`: frames in flight are lost, both ends notice.
    pub fn break_link(&mut self, i: usize, j: usize) {
        self.note(format_args!("break {i}-{j}"));
        self.fault();
        let (a, b) = (self.addrs[i], self.addrs[j]);
        *self.generation.entry(ordered(a, b)).or_default() += 1;
        self.notify_down(i, b);
        self.notify_down(j, a);
    }

    fn notify_down(&mut self, i: usize, peer: SocketAddr) {
        let now = self.now;
        let before = self.before(i);
        if let Some(node) = self.slots[i].node.as_mut() {
            node.handle(now, Input::LinkDown(peer));
            self.after(i, before);
            self.drain(i);
        }
    }

    /// Cuts every link between `side` and the other nodes.
    pub fn partition(&mut self, side: &[usize]) {
        self.note(format_args!("partition {side:?}"));
        self.fault();
        let n = self.slots.len();
        for &i in side {
            for j in (0..n).filter(|j| !side.contains(j)) {
                self.cut.insert((i.min(j), i.max(j)));
                self.break_link(i, j);
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        self.note(format_args!("heal"));
        if !self.cut.is_empty() {
            self.fault();
        }
        self.cut.clear();
    }

    /// Whether `i` and `j` are cut apart now.
    pub fn is_cut(&self, i: usize, j: usize) -> bool {
        self.cut.contains(&(i.min(j), i.max(j)))
    }

    fn slot_of(&self, addr: SocketAddr) -> Option<usize> {
        self.addrs.iter().position(|a| *a == addr)
    }

    /// Moves node `i`'s outputs into the network and records what it reports.
    fn drain(&mut self, i: usize) {
        let mut refused = Vec::new();
        while let Some(out) = self.slots[i].node.as_mut().and_then(Node::poll_output) {
            match out {
                Output::Send { to, msg } => {
                    if matches!(msg.msg, PeerMsg::RateLimited { .. }) {
                        self.throttled += 1;
                    }
                    let target = self.slot_of(to).filter(|j| self.slots[*j].node.is_some() && !self.is_cut(i, *j));
                    match target {
                        Some(_) => self.enqueue(self.addrs[i], to, &msg, false),
                        None => refused.push(to),
                    }
                }
                Output::Multicast(msg) => {
                    for j in 0..self.slots.len() {
                        if j != i && self.slots[j].node.is_some() && !self.is_cut(i, j) {
                            self.enqueue(self.addrs[i], self.addrs[j], &msg, true);
                        }
                    }
                }
                Output::Event(Event::Message(m)) => {
                    let id = self.slots[i].node.as_ref().and_then(Node::id).unwrap_or_default();
                    self.by_id.entry(id).or_default().push(m.id);
                    self.slots[i].delivered.push(m);
                }
                Output::Sent { id, .. } | Output::SendFailed { id, .. } => {
                    if let Some(s) = self.submitted.iter_mut().rev().find(|s| s.node == i && s.id == id) {
                        s.resolved = true;
                    }
                }
                Output::Joined { id } => {
                    self.note(format_args!("slot {i} joined as {id}"));
                    self.slots[i].ids.push(id);
                    self.admitted(i, id);
                }
                Output::Event(event) => self.tell(i, event),
                Output::Offline(m) => self.slots[i].offline.push(m),
                Output::Refused { .. } | Output::NoGroup { .. } | Output::RoomDone { .. } => {}
            }
        }
        for to in refused {
            self.notify_down(i, to);
        }
    }

    fn enqueue(&mut self, from: SocketAddr, to: SocketAddr, msg: &Envelope, datagram: bool) {
        let frame = match chat_transport::encode_payload(msg) {
            Ok(f) => f,
            Err(e) => panic!("frame does not encode: {e}"),
        };
        let latency = Duration::from_millis(1 + self.rng.next_u64() % 15);
        let mut at = self.now + latency;
        if !datagram {
            // FIFO per directed link, as TCP.
            let clear = self.link_clear.entry((from, to)).or_insert(at);
            at = at.max(*clear);
            *clear = at;
        }
        let generation = self.generation.get(&ordered(from, to)).copied().unwrap_or(0);
        self.seq += 1;
        self.queue.push(Reverse(InFlight { at, seq: self.seq, from, to, generation, datagram, frame }));
    }

    /// Advances virtual time by `d`, delivering frames and firing timers in time order.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut stalled = 0;
        for _ in 0..MAX_EVENTS_PER_RUN {
            let next_msg = self.queue.peek().map(|Reverse(f)| f.at);
            let next_timer = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.node.as_ref().and_then(Node::poll_timeout).map(|t| (t, i)))
                .min();
            let msg_first = match (next_msg, next_timer) {
                (Some(m), Some((t, _))) => m <= t,
                (Some(_), None) => true,
                _ => false,
            };
            let at = if msg_first { next_msg } else { next_timer.map(|(t, _)| t) };
            match at {
                Some(at) if at <= end => self.now = self.now.max(at),
                _ => break,
            }
            if msg_first {
                if let Some(Reverse(f)) = self.queue.pop() {
                    self.deliver(f);
                }
            } else if let Some((_, i)) = next_timer {
                let now = self.now;
                let (wall, before) = (self.wall(), self.before(i));
                if let Some(node) = self.slots[i].node.as_mut() {
                    node.handle(now, Input::Clock { unix_ms: wall });
                    node.handle_timeout(now);
                    // A timer that does not move forward would make a real runtime spin.
                    if node.poll_timeout().is_some_and(|t| t <= now) {
                        stalled += 1;
                        assert!(stalled < MAX_STALLED_TIMERS, "node {i}: handle_timeout does not advance its deadline");
                    } else {
                        stalled = 0;
                    }
                }
                self.after(i, before);
                self.drain(i);
            }
        }
        self.now = self.now.max(end);
    }

    fn deliver(&mut self, f: InFlight) {
        let (Some(i), Some(j)) = (self.slot_of(f.from), self.slot_of(f.to)) else { return };
        let generation = self.generation.get(&ordered(f.from, f.to)).copied().unwrap_or(0);
        if generation != f.generation || self.is_cut(i, j) {
            return;
        }
        let env: Envelope = match chat_transport::decode_payload(&f.frame) {
            Ok(env) => env,
            Err(e) => panic!("frame does not decode: {e}"),
        };
        let now = self.now;
        if self.trace && self.slots[j].node.is_some() {
            eprintln!("{:?} {i}->{j} {:?}", now.duration_since(self.origin), env.msg);
        }
        let (wall, before) = (self.wall(), self.before(j));
        if let Some(node) = self.slots[j].node.as_mut() {
            node.handle(now, Input::Clock { unix_ms: wall });
            node.handle(now, if f.datagram { Input::Datagram(env) } else { Input::Receive(env) });
        }
        self.after(j, before);
        self.drain(j);
    }
}

fn unreachable_name() -> UserName {
    // "n0".."n99" are always valid names; this is never called.
    UserName::new("node").expect("valid name")
}
