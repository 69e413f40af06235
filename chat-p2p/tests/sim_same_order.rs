//! Invariant: any two messages delivered by two live nodes are delivered in the same relative order.

mod common;

use common::{Faults, for_seeds, same_order};

#[test]
fn same_order_under_faults() {
    for_seeds("sim_same_order::same_order_under_faults", 2000, Faults::All, same_order);
}
