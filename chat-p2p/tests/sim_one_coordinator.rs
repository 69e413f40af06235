//! Invariant: after healing, exactly one coordinator, known to all, and it is the highest live ID.

mod common;

use common::{Faults, for_seeds, one_coordinator};

#[test]
fn one_coordinator_after_crashes() {
    for_seeds(0, Faults::Crashes, one_coordinator);
}

/// Known to fail for some seeds (e.g. 10021): after a partition heals, two coordinators whose
/// groups overlap in their views may not merge. Run with `--ignored` to reproduce.
#[test]
#[ignore = "partition-heal merge does not always converge yet (seed 10021)"]
fn one_coordinator_after_partitions() {
    for_seeds(10_000, Faults::All, one_coordinator);
}
