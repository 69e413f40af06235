//! Invariants of a calm group: no election while the coordinator is alive and reachable, IDs
//! stable for a node's life, and every node tells the same membership story.

mod common;

use common::{Faults, for_seeds, no_uncalled_election, same_membership_story, stable_ids};

#[test]
fn no_election_while_the_coordinator_is_alive_and_reachable() {
    for_seeds(
        "sim_calm::no_election_while_the_coordinator_is_alive_and_reachable",
        20_000,
        Faults::All,
        no_uncalled_election,
    );
}

#[test]
fn ids_are_stable_for_a_nodes_life() {
    for_seeds("sim_calm::ids_are_stable_for_a_nodes_life", 21_000, Faults::All, stable_ids);
}

#[test]
fn every_node_tells_the_same_membership_story_under_crashes() {
    for_seeds(
        "sim_calm::every_node_tells_the_same_membership_story_under_crashes",
        22_000,
        Faults::Crashes,
        same_membership_story,
    );
}
