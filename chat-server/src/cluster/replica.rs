//! One replica of the cluster's state machine: applies the shared log's batches, in stream order, to
//! this instance's [`Router`]. Sans-IO: the shell hands it each batch with its stream sequence and
//! time; the router's outputs are then drained as usual.
//!
//! | batch / entry                                  | what the replica does                                  |
//! |------------------------------------------------|--------------------------------------------------------|
//! | any batch                                      | log time = max(log time, the batch's stream time); the router's clock (`Clock`) and `now` follow it |
//! | stream sequence at or below the last applied   | ignored (a redelivery)                                 |
//! | undecodable                                    | ignored, counted (every replica reads the same bytes, so all ignore it) |
//! | from an instance marked down                   | ignored: that instance is gone for good                |
//! | a batch number already seen from its instance  | ignored (a duplicate publish)                          |
//! | an entry for a connection of another instance  | ignored, counted (an instance speaks only for its own) |
//! | `Down { i }`                                   | `i` marked down; every session attached to one of its connections is detached (`Disconnected { instance_down }`) |
//! | `Account(change)`                              | the account table changes (see `accounts`); if the registered names changed, `Input::Registered` |
//! | `Authenticated(login)`                         | `Input::AdmitAccount`                                  |
//! | after every batch                              | `handle_timeout(now)`: grace periods, login deadlines  |
//!
//! Because every input that changes shared state comes through here, in the same order and with the
//! same times, every replica's router holds the same sessions, names, rooms, offline queues, sequence
//! numbers and recent messages. Instances are remembered for as long as the replica runs (a few bytes
//! each; one per start of an instance).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::entry::{Entry, decode_batch, instance_of};
use crate::accounts::Accounts;
use crate::router::{Input, Router};

/// Log time is mapped to the router's `Instant`s as `base + (log_ms - LOG_EPOCH_MS)` (2020-01-01):
/// the same differences on every replica, whatever its `base`.
pub const LOG_EPOCH_MS: u64 = 1_577_836_800_000;

/// The departure reason of a session whose instance went down (it is detached, not ended).
pub const INSTANCE_DOWN: &str = "instance_down";

/// What applying one batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Its entries were applied.
    Batch {
        /// The publishing instance.
        instance: u32,
        /// Entries applied.
        entries: usize,
        /// Instances this batch marked down.
        down: Vec<u32>,
        /// The outcome of each account change in the batch, in order (a refusal's words).
        accounts: Vec<Result<(), String>>,
    },
    /// Ignored: see the module table.
    Ignored(&'static str),
}

/// What the replica knows of one instance.
#[derive(Debug, Clone, Copy, Default)]
struct Instance {
    /// Its highest batch number applied.
    last: u64,
    /// Marked down: its batches are ignored from now on.
    down: bool,
}

/// The replica's own state (the router is the shell's; see the module documentation).
#[derive(Debug)]
pub struct Replica {
    base: Instant,
    log_ms: u64,
    applied: u64,
    instances: BTreeMap<u32, Instance>,
    /// Batches or entries ignored as malformed or out of place.
    rejected: u64,
    /// The accounts, as the log's `Account` entries made them.
    accounts: Accounts,
}

impl Replica {
    /// A replica whose log time starts at the epoch, mapped to `base`.
    pub fn new(base: Instant) -> Self {
        let accounts = Accounts::in_memory();
        Replica { base, log_ms: LOG_EPOCH_MS, applied: 0, instances: BTreeMap::new(), rejected: 0, accounts }
    }

    /// The router's `now`: the log time so far.
    pub fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.log_ms.saturating_sub(LOG_EPOCH_MS))
    }

    /// The log time so far, in milliseconds since the Unix epoch.
    pub fn log_ms(&self) -> u64 {
        self.log_ms
    }

    /// The stream sequence of the last batch applied (0: none).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Batches or entries ignored as malformed or out of place.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The accounts so far.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Whether `instance` has published anything (or been marked down).
    pub fn knows(&self, instance: u32) -> bool {
        self.instances.contains_key(&instance)
    }

    /// Whether `instance` is marked down.
    pub fn is_down(&self, instance: u32) -> bool {
        self.instances.get(&instance).is_some_and(|i| i.down)
    }

    /// The instances that have published and are not marked down, ascending.
    pub fn live(&self) -> Vec<u32> {
        self.instances.iter().filter(|(_, i)| !i.down).map(|(id, _)| *id).collect()
    }

    /// Applies the batch stored at stream sequence `seq` at `time_ms` (the stream's timestamp).
    pub fn apply(&mut self, router: &mut Router, seq: u64, time_ms: u64, payload: &[u8]) -> Applied {
        if seq <= self.applied {
            return Applied::Ignored("redelivered");
        }
        self.applied = seq;
        self.log_ms = self.log_ms.max(time_ms);
        let now = self.now();
        router.handle(now, Input::Clock { unix_ms: self.log_ms });
        let applied = self.apply_entries(router, now, payload);
        router.handle_timeout(now);
        applied
    }

    fn apply_entries(&mut self, router: &mut Router, now: Instant, payload: &[u8]) -> Applied {
        let (header, entries) = match decode_batch(payload) {
            Ok(batch) => batch,
            Err(e) => {
                self.rejected += 1;
                tracing::warn!(seq = self.applied, error = %e, "a batch of the shared log was ignored");
                return Applied::Ignored("malformed");
            }
        };
        let instance = self.instances.entry(header.instance).or_default();
        if instance.down {
            return Applied::Ignored("from an instance marked down");
        }
        if header.number <= instance.last {
            return Applied::Ignored("duplicate batch");
        }
        instance.last = header.number;
        let (mut applied, mut down, mut accounts) = (0, Vec::new(), Vec::new());
        for entry in entries {
            if entry.conn().is_some_and(|c| instance_of(c) != header.instance) {
                self.rejected += 1;
                continue;
            }
            applied += 1;
            match entry {
                Entry::Up | Entry::Tick => {}
                Entry::Admit(login) => router.handle(now, Input::Admit(login)),
                Entry::Send { conn, req, recipients, body, sent_at, key } => {
                    router.handle(now, Input::Send { conn, req, recipients, body, sent_at, key })
                }
                Entry::JoinRoom { conn, req, room } => router.handle(now, Input::JoinRoom { conn, req, room }),
                Entry::PartRoom { conn, req, room } => router.handle(now, Input::PartRoom { conn, req, room }),
                Entry::Gone { conn, reason } => router.handle(now, Input::Disconnected { conn, reason }),
                Entry::Kicked { conn, reason } => router.handle(now, Input::Kicked { conn, reason }),
                Entry::Down { instance } => {
                    if self.mark_down(router, now, instance) {
                        down.push(instance);
                    }
                }
                Entry::Account(change) => {
                    let outcome = change.apply(&mut self.accounts);
                    if outcome.is_ok() && change.changes_names() {
                        router.handle(now, Input::Registered { names: self.accounts.names() });
                    }
                    accounts.push(outcome);
                }
                Entry::Authenticated(login) => router.handle(now, Input::AdmitAccount(login)),
            }
        }
        Applied::Batch { instance: header.instance, entries: applied, down, accounts }
    }

    /// Marks `instance` down and detaches its sessions; false if it already was.
    fn mark_down(&mut self, router: &mut Router, now: Instant, instance: u32) -> bool {
        let state = self.instances.entry(instance).or_default();
        if state.down {
            return false;
        }
        state.down = true;
        for conn in router.connections().into_iter().filter(|c| instance_of(*c) == instance) {
            router.handle(now, Input::Disconnected { conn, reason: INSTANCE_DOWN.into() });
        }
        true
    }
}
