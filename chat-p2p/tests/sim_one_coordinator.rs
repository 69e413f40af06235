//! Invariant: after healing, exactly one coordinator, known to all, and it is the highest live ID.

mod common;

use common::{Faults, for_seeds, one_coordinator};

#[test]
fn one_coordinator_after_crashes() {
    for_seeds("sim_one_coordinator::one_coordinator_after_crashes", 0, Faults::Crashes, one_coordinator);
}

#[test]
fn one_coordinator_after_partitions() {
    for_seeds("sim_one_coordinator::one_coordinator_after_partitions", 10_000, Faults::All, one_coordinator);
}
