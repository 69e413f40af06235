//! Invariant: delivery respects causality and Lamport stamps increase along every log.

mod common;

use common::{Faults, causal_order, for_seeds};

#[test]
fn causal_order_under_faults() {
    for_seeds("sim_causal_order::causal_order_under_faults", 3000, Faults::All, causal_order);
}
