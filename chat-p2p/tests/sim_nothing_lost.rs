//! Invariant: nothing from a live sender is lost, nothing is duplicated.

mod common;

use common::{Faults, for_seeds, nothing_lost};

#[test]
#[ignore = "a final broadcast is not delivered everywhere after partitions (seed 4005)"]
fn nothing_lost_under_faults() {
    for_seeds("sim_nothing_lost::nothing_lost_under_faults", 4000, Faults::All, nothing_lost);
}
