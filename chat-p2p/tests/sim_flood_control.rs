//! Invariant: flood control costs honest nodes nothing. The scenario's ordinary traffic never comes
//! near the default limits; and when every coordinator limits each member to 5 messages a second
//! and every send is three messages at once (in the default 500 seeds almost every run is
//! throttled, every refused message resubmitted by its sender's node after the wait), nothing from a
//! live sender is lost or duplicated, and under crashes and restarts every node still delivers in
//! the same relative order.
//!
//! Not checked here: the relative order under partitions *and* heavy throttling. Throttling keeps
//! more messages ordered-but-uncommitted at the moment a partition heals, which makes a race of the
//! heal (see "What Bully cannot promise under partitions" in docs/PROTOCOL.md) likely enough to show
//! up in a few thousand seeds; it does not show up with the default limits (`sim_same_order.rs`).

mod common;

use common::{Faults, for_seeds, never_throttled, nothing_lost, same_order};

#[test]
fn ordinary_traffic_is_never_throttled() {
    for_seeds("sim_flood_control::ordinary_traffic_is_never_throttled", 16_000, Faults::All, never_throttled);
}

#[test]
fn nothing_lost_and_one_order_when_many_submissions_are_refused() {
    for_seeds(
        "sim_flood_control::nothing_lost_and_one_order_when_many_submissions_are_refused",
        17_000,
        Faults::PacedCrashes,
        |sim| nothing_lost(sim).and_then(|()| same_order(sim)),
    );
}

#[test]
fn nothing_lost_under_partitions_when_many_submissions_are_refused() {
    for_seeds(
        "sim_flood_control::nothing_lost_under_partitions_when_many_submissions_are_refused",
        18_000,
        Faults::PacedAll,
        nothing_lost,
    );
}
