//! Invariant: nothing from a live sender is lost, nothing is duplicated.

mod common;

use common::{Faults, for_seeds, nothing_lost};

#[test]
fn nothing_lost_under_crashes_and_restarts() {
    for_seeds("sim_nothing_lost::nothing_lost_under_crashes_and_restarts", 4000, Faults::Crashes, nothing_lost);
}

#[test]
fn nothing_lost_under_partitions() {
    for_seeds("sim_nothing_lost::nothing_lost_under_partitions", 14_000, Faults::All, nothing_lost);
}
