//! Invariant: no ID is ever given to two processes.

mod common;

use common::{Faults, for_seeds, unique_ids};

#[test]
fn unique_ids_under_crashes_and_restarts() {
    for_seeds(1000, Faults::Crashes, unique_ids);
}
