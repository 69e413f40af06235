//! Invariant: after healing no two live nodes hold the same ID, and no ID is ever given to two
//! different names.

mod common;

use common::{Faults, for_seeds, unique_ids};

#[test]
fn unique_ids_under_faults() {
    for_seeds("sim_unique_ids::unique_ids_under_faults", 1000, Faults::All, unique_ids);
}
