//! Offline messages, through the seeded simulation: a message for a member that left is kept by the
//! group (replicated in the log, so it survives the coordinator's crash) and delivered once, when a
//! node of that name joins again. Every failure prints its seed.

use std::time::Duration;

use chat_core::{Recipients, UserName};
use chat_p2p::sim::Sim;

fn name(s: &str) -> UserName {
    UserName::new(s).expect("valid name")
}

/// How many times node `i` delivered a message with this body (live, or kept while it was away).
fn delivered(sim: &Sim, i: usize, body: &str) -> usize {
    let slot = &sim.slots[i];
    slot.delivered.iter().chain(&slot.offline).filter(|m| m.body == body).count()
}

#[test]
fn a_message_kept_for_a_member_who_left_survives_the_coordinators_crash_and_arrives_once() {
    for seed in 0..12 {
        let mut sim = Sim::new(seed, 4);
        sim.run_for(Duration::from_secs(2));
        sim.leave(3);
        sim.run_for(Duration::from_secs(1));
        sim.send(1, Recipients::Unicast(name("n3")), "kept for n3");
        sim.send(2, Recipients::Multicast(vec![name("n1"), name("n3")]), "to n1 and n3");
        sim.run_for(Duration::from_secs(1));
        assert_eq!(delivered(&sim, 1, "to n1 and n3"), 1, "seed {seed}: the online recipient has it at once");
        // The coordinator (the founder) crashes: the next one holds the queue from the log.
        sim.crash(0);
        sim.run_for(Duration::from_secs(3));
        sim.restart(3);
        sim.run_for(Duration::from_secs(3));
        assert!(sim.node(3).is_some_and(|n| n.is_member()), "seed {seed}: n3 is back");
        for body in ["kept for n3", "to n1 and n3"] {
            assert_eq!(delivered(&sim, 3, body), 1, "seed {seed}: n3 gets {body:?} once");
        }
        assert_eq!(delivered(&sim, 2, "kept for n3"), 0, "seed {seed}: nobody else sees the text");
        // In the group's order (the coordinator's stamps), and before anything ordered after the return.
        let kept = &sim.slots[3].offline;
        assert_eq!(kept.len(), 2, "seed {seed}: both were kept: {kept:?}");
        assert!(kept.iter().map(|m| m.lamport).is_sorted(), "seed {seed}: in order: {kept:?}");
        assert!(sim.slots[3].delivered.is_empty(), "seed {seed}: nothing live was ordered after the return");
    }
}
