//! Invariant: any two messages delivered by two live nodes are delivered in the same relative order,
//! under crashes and restarts, and under broken links and partitions too.

mod common;

use common::{Faults, for_seeds, same_order};

#[test]
fn same_order_under_crashes_and_restarts() {
    for_seeds("sim_same_order::same_order_under_crashes_and_restarts", 2000, Faults::Crashes, same_order);
}

#[test]
fn same_order_under_partitions() {
    for_seeds("sim_same_order::same_order_under_partitions", 12_000, Faults::All, same_order);
}
