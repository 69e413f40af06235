//! Instances and their leases, in the key-value bucket `<stream>_instances`.
//!
//! | key                  | written by                      | meaning                                       |
//! |----------------------|---------------------------------|-----------------------------------------------|
//! | `instances.<id hex>` | `claim` (create-only), then the instance every [`super::TICK`] | the instance is alive; the bucket's `max_age` (the lease, [`super::DEFAULT_LEASE`]) removes it after the last refresh |
//!
//! **Claim**: a starting instance draws a random 32-bit ID that the log has never seen and creates
//! its key; creating fails if the key exists (another live instance has that ID), and it draws again.
//!
//! **Sweep**: a key that expires by `max_age` produces no watch event, so every instance polls, every
//! tick, the keys of the instances its replica knows as live; for one that is gone it publishes
//! `Down { id }` (once; the replicas ignore repeats). An instance that finds *itself* marked down
//! (its refreshes did not reach NATS for a whole lease) stops: see `server::cluster`.
//!
//! **After an outage** (a refresh of this instance's own lease failed: NATS was electing the
//! bucket's leader, or unreachable) an instance sweeps nothing until its own refreshes have gone
//! through for a whole lease again: the others' keys may have expired during the same outage, and
//! they get a lease to put them back before anyone marks them down.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, Operation};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::TICK;
use super::entry::Entry;
use crate::ServerError;

/// Most attempts at claiming an instance ID (a bucket just created may have no leader for a moment).
const CLAIM_TRIES: usize = 40;
/// Pause between two attempts that failed for another reason than a taken ID.
const CLAIM_RETRY: Duration = Duration::from_millis(250);

/// The key of an instance's lease.
pub fn key(instance: u32) -> String {
    format!("instances.{instance:08x}")
}

/// This instance's lease: refreshed, and the others' swept, by a task.
#[derive(Debug)]
pub struct Lease {
    /// The instance ID claimed.
    pub instance: u32,
    task: JoinHandle<()>,
    store: kv::Store,
}

impl Lease {
    /// Claims a fresh instance ID (one `known` says the log has never seen).
    pub async fn claim(store: kv::Store, known: impl Fn(u32) -> bool) -> Result<u32, ServerError> {
        let mut last = "no free ID drawn".to_string();
        for _ in 0..CLAIM_TRIES {
            let instance: u32 = rand::random::<u32>().max(1);
            if known(instance) {
                continue;
            }
            match store.create(key(instance), bytes::Bytes::from_static(b"up")).await {
                Ok(_) => return Ok(instance),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Err(e) => {
                    warn!(error = %e, "cannot claim an instance ID yet; trying again");
                    last = e.to_string();
                    tokio::time::sleep(CLAIM_RETRY).await;
                }
            }
        }
        Err(ServerError::Cluster(format!("cannot claim an instance ID: {last}")))
    }

    /// Refreshes `instance`'s lease and sweeps the others' (the live ones, as the replica says
    /// through `live`), publishing `Down` entries through `down`.
    pub fn start(
        store: kv::Store,
        instance: u32,
        lease: Duration,
        live: watch::Receiver<Vec<u32>>,
        down: mpsc::Sender<Entry>,
    ) -> Self {
        let task = tokio::spawn(run(store.clone(), instance, lease, live, down));
        Lease { instance, task, store }
    }

    /// Stops refreshing and sweeping, and waits until the task is gone (its sender of `Down`
    /// entries with it, so the publisher's queue can close). The lease stays until [`Lease::release`].
    pub async fn stop(&mut self) {
        if !self.task.is_finished() {
            self.task.abort();
            let _ = (&mut self.task).await;
        }
    }

    /// Stops refreshing and removes the lease (a clean shutdown).
    pub async fn release(mut self) {
        self.stop().await;
        if let Err(e) = self.store.purge(key(self.instance)).await {
            warn!(error = %e, "could not remove this instance's lease");
        }
    }
}

async fn run(
    store: kv::Store,
    instance: u32,
    lease: Duration,
    live: watch::Receiver<Vec<u32>>,
    down: mpsc::Sender<Entry>,
) {
    let mut reported: BTreeSet<u32> = BTreeSet::new();
    // Since when this instance's own refreshes go through (`None`: the last one failed).
    let mut healthy_since: Option<Instant> = None;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match store.put(key(instance), bytes::Bytes::from_static(b"up")).await {
            Ok(_) => {
                healthy_since.get_or_insert_with(Instant::now);
            }
            Err(e) => {
                warn!(error = %e, "could not refresh this instance's lease");
                healthy_since = None;
            }
        }
        if healthy_since.is_none_or(|since| since.elapsed() < lease) {
            continue; // the others get a whole lease after an outage (see the module documentation)
        }
        let others: Vec<u32> = live.borrow().iter().copied().filter(|i| *i != instance).collect();
        reported.retain(|i| others.contains(i));
        for other in others {
            if reported.contains(&other) {
                continue;
            }
            let gone = match store.entry(key(other)).await {
                Ok(None) => true,
                Ok(Some(entry)) => entry.operation != Operation::Put,
                Err(_) => false, // NATS itself is in trouble: decide nothing
            };
            if gone {
                info!(instance = format_args!("{other:08x}"), "an instance's lease is gone: marking it down");
                reported.insert(other);
                if down.send(Entry::Down { instance: other }).await.is_err() {
                    return;
                }
            }
        }
    }
}
