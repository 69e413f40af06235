//! Invariant: nothing from a live sender is lost, nothing is duplicated.

mod common;

use common::{Faults, for_seeds, nothing_lost};

/// Known to fail for some seeds (e.g. 4023): after several crash/restart rounds a live sender's
/// message can stay pending (not resubmitted to the final coordinator). Run with `--ignored`.
#[test]
#[ignore = "pending resubmission after repeated failovers is incomplete (seed 4023)"]
fn nothing_lost_under_crashes_and_restarts() {
    for_seeds(4000, Faults::Crashes, nothing_lost);
}
