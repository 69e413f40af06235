//! Invariant: delivery respects causality and Lamport stamps increase along every log.

mod common;

use common::{Faults, causal_order, for_seeds};

#[test]
fn causal_order_under_crashes_and_restarts() {
    for_seeds("sim_causal_order::causal_order_under_crashes_and_restarts", 3000, Faults::Crashes, causal_order);
}

#[test]
fn causal_order_under_partitions() {
    for_seeds("sim_causal_order::causal_order_under_partitions", 13_000, Faults::All, causal_order);
}
