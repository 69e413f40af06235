//! Real P2P nodes (the node task, its links, its discovery) on one in-memory network, in virtual
//! time: `join_on` instead of `join`, `MemoryNetwork::cut` / `heal` for broken links, and
//! `tokio::time::pause()` so heartbeats and timeouts cost nothing. Short heartbeats (50 ms,
//! timeout 250 ms). Every wait is bounded and every node is stopped before the test ends.

mod memory;

use std::time::Duration;

use chat_core::{Event, MessageId, NodeId, OutgoingMessage, Recipients, Timestamp, Transport};
use chat_p2p::P2pTransport;
use chat_transport::memory::MemoryNetwork;
use memory::*;

#[tokio::test(start_paused = true)]
async fn a_group_forms_and_every_node_delivers_the_same_sequence() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let mut nodes = group(&net, &["alice", "bob", "carol", "dave"]).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        assert_eq!(wait_agreed(&refs, 4).await, NodeId(1), "the first node coordinates: joins start no election");
        for round in 0..3 {
            everybody_says(&nodes, &format!("round {round}")).await;
        }
        let seq = same_sequence_everywhere(&mut nodes, 12).await;
        for round in 0..3 {
            for i in 0..4 {
                let body = format!("round {round} {i}");
                assert!(seq.iter().any(|m| m.body == body), "{body:?} was delivered");
            }
        }
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn the_others_elect_the_highest_live_id_when_the_coordinator_is_killed_and_keep_chatting() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let mut nodes = group(&net, &["alice", "bob", "carol", "dave"]).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let old = wait_agreed(&refs, 4).await;
        everybody_says(&nodes, "before").await;
        let at = nodes.iter().position(|t| t.local_node_id() == Some(old)).expect("the coordinator is one of us");
        let mut dead = nodes.remove(at);
        dead.abort();
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let new = wait_agreed(&refs, 3).await;
        assert_ne!(new, old);
        assert_eq!(new, highest(&nodes), "the highest live ID coordinates");
        everybody_says(&nodes, "after").await;
        // The 4 messages from before the crash (the coordinator's included: it was ordered) and the
        // 3 after, each exactly once, in one sequence.
        let mut delivered = Vec::new();
        for t in &mut nodes {
            let (got, other) = messages(t, 7).await;
            assert!(
                other.iter().any(|e| matches!(e, Event::CoordinatorChanged { node_id, .. } if *node_id == new)),
                "{} was told about the new coordinator",
                t.local_name()
            );
            delivered.push(got);
        }
        for got in &delivered {
            assert_eq!(
                got.iter().map(|m| m.id).collect::<Vec<_>>(),
                delivered[0].iter().map(|m| m.id).collect::<Vec<_>>()
            );
        }
        let mut bodies: Vec<&str> = delivered[0].iter().map(|m| m.body.as_str()).collect();
        bodies.sort();
        let expected = ["after 0", "after 1", "after 2", "before 0", "before 1", "before 2", "before 3"];
        assert_eq!(bodies, expected);
        stop(nodes).await;
        assert!(dead.is_finished());
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn a_cut_between_two_members_changes_nothing() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let mut nodes = group(&net, &["alice", "bob", "carol", "dave"]).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let coordinator = wait_agreed(&refs, 4).await;
        let members: Vec<usize> = (0..4).filter(|i| nodes[*i].local_node_id() != Some(coordinator)).collect();
        let (a, b) = (members[0], members[1]);
        for t in &mut nodes {
            queued_events(t).await; // how the group formed
        }
        // Members talk only to the coordinator (elections aside): a cut between two of them breaks
        // whatever links they had and nothing else.
        net.cut(nodes[a].local_addr(), nodes[b].local_addr());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        assert_eq!(agreed(&refs, 4).await, Some(coordinator), "same members, same coordinator");
        for round in 0..2 {
            everybody_says(&nodes, &format!("cut {round}")).await;
        }
        let mut first: Option<Vec<MessageId>> = None;
        for t in &mut nodes {
            let (got, mut events) = messages(t, 8).await;
            events.extend(queued_events(t).await);
            assert!(events.is_empty(), "{} saw the group change: {events:?}", t.local_name());
            let ids: Vec<MessageId> = got.iter().map(|m| m.id).collect();
            assert_eq!(ids, *first.get_or_insert_with(|| ids.clone()), "{} delivers another sequence", t.local_name());
        }
        net.heal();
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn a_member_cut_off_from_the_coordinator_is_back_in_one_group_after_the_heal() {
    tokio::time::timeout(TEST_LIMIT, async {
        // Each member in turn: the lowest, a middle one and the highest ID.
        for offset in 1..4 {
            cut_one_member_off_then_heal(offset).await;
        }
    })
    .await
    .expect("test finished in time");
}

/// Cuts the link between the coordinator and the member `offset` places after it, heals it, and
/// checks one group again: one coordinator, nobody renumbered, one order for what is said next.
async fn cut_one_member_off_then_heal(offset: usize) {
    let net = MemoryNetwork::new();
    let mut nodes = group(&net, &["alice", "bob", "carol", "dave"]).await;
    let refs: Vec<&P2pTransport> = nodes.iter().collect();
    let coordinator = wait_agreed(&refs, 4).await;
    let c = nodes.iter().position(|t| t.local_node_id() == Some(coordinator)).expect("the coordinator");
    let m = (c + offset) % nodes.len();
    let ids: Vec<Option<NodeId>> = nodes.iter().map(|t| t.local_node_id()).collect();
    // The coordinator drops the member whose link broke; the member, cut off from it, calls
    // elections the others answer (their coordinator is alive) and, unable to rejoin (the
    // coordinator's answer cannot reach it), founds a group of its own, in a newer term. Bully
    // cannot tell a cut from a crash: what is promised is the state after the heal.
    net.cut(nodes[c].local_addr(), nodes[m].local_addr());
    tokio::time::sleep(Duration::from_secs(3)).await;
    net.heal();
    let refs: Vec<&P2pTransport> = nodes.iter().collect();
    let after = wait_agreed(&refs, 4).await;
    // At the heal the coordinator of the older term hands its whole group over to the newer one
    // (no election: nobody failed), every member asking for its own ID back.
    assert_eq!(Some(after), ids[m], "one coordinator again: the newer term's (cut: member {m})");
    let now: Vec<Option<NodeId>> = nodes.iter().map(|t| t.local_node_id()).collect();
    assert_eq!(now, ids, "nobody was renumbered");
    everybody_says(&nodes, "healed").await;
    // Messages from before the heal are not compared; the four from after are delivered by every
    // node, each once, in the same relative order.
    let mut orders = Vec::new();
    for t in &mut nodes {
        let mut seen: Vec<MessageId> = Vec::new();
        for _ in 0..100 {
            if seen.len() == 4 {
                break;
            }
            let (got, _) = messages(t, 1).await;
            seen.extend(got.iter().filter(|m| m.body.starts_with("healed")).map(|m| m.id));
        }
        assert_eq!(seen.len(), 4, "{} got every message sent after the heal", t.local_name());
        orders.push(seen);
    }
    for order in &orders {
        assert_eq!(order, &orders[0], "one order after the heal");
    }
    stop(nodes).await;
}

#[tokio::test(start_paused = true)]
async fn a_sender_keeps_many_sends_in_flight_while_the_program_reads_events_and_fails_once_the_node_stops() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let mut nodes = group(&net, &["alice", "bob", "carol"]).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, 3).await;
        // 40 sends from bob at once (more than a member's submit window), through clones of one
        // sender, while bob's events are read concurrently on the same task.
        let sender = nodes[1].sender();
        let mut sends = tokio::task::JoinSet::new();
        for k in 0..40 {
            let sender = sender.clone();
            sends.spawn(async move {
                let body = format!("window {k}");
                let msg = OutgoingMessage { recipients: Recipients::Broadcast, body, sent_at: Timestamp::default() };
                sender.send(msg).await
            });
        }
        let (got, _) = messages(&mut nodes[1], 40).await;
        let mut receipts = Vec::new();
        while let Some(done) = sends.join_next().await {
            receipts.push(done.expect("send task").expect("ordered").id);
        }
        let mut bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
        bodies.sort();
        let mut expected: Vec<String> = (0..40).map(|k| format!("window {k}")).collect();
        expected.sort();
        assert_eq!(bodies, expected, "each of the 40 delivered once");
        receipts.sort();
        let mut ids: Vec<MessageId> = got.iter().map(|m| m.id).collect();
        ids.sort();
        assert_eq!(receipts, ids, "every receipt names a delivered message");
        // The others deliver the same sequence.
        for t in [0, 2] {
            let (seq, _) = messages(&mut nodes[t], 40).await;
            assert_eq!(seq.iter().map(|m| m.id).collect::<Vec<_>>(), got.iter().map(|m| m.id).collect::<Vec<_>>());
        }
        // Once bob's node has stopped, its sender fails instead of waiting forever.
        let bob = nodes.remove(1);
        stop(vec![bob]).await;
        let msg =
            OutgoingMessage { recipients: Recipients::Broadcast, body: "late".into(), sent_at: Timestamp::default() };
        let late = tokio::time::timeout(Duration::from_secs(5), sender.send(msg)).await.expect("answered in time");
        assert!(matches!(late, Err(chat_core::CoreError::Closed(_))), "{late:?}");
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}
