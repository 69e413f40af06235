//! P2P nodes on real loopback sockets: multicast discovery on 127.0.0.1 (a test-unique port per
//! test), TCP links, short heartbeats (50 ms, timeout 250 ms). Every wait has a deadline and every
//! node is stopped before the test ends.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use chat_core::{
    ChatMessage, ErrorCode, Event, MessageId, NodeId, OutgoingMessage, Recipients, Timestamp, Transport, UserName,
};
use chat_p2p::{P2pConfig, P2pError, P2pTransport, join};

/// Upper bound for one whole test.
const TEST_LIMIT: Duration = Duration::from_secs(40);
/// Polling interval of the waits below.
const POLL: Duration = Duration::from_millis(25);
/// Most polls of one wait (10 s).
const MAX_POLLS: usize = 400;

fn name(s: &str) -> UserName {
    UserName::new(s).expect("valid name")
}

fn config(who: &str, port: u16) -> P2pConfig {
    let mut c = P2pConfig::new(name(who));
    c.group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 77, 77), port);
    c.heartbeat = Duration::from_millis(50);
    c.timeout = Duration::from_millis(250);
    c.join_timeout = Duration::from_millis(400);
    c
}

async fn start(who: &str, port: u16) -> P2pTransport {
    match tokio::time::timeout(Duration::from_secs(10), join(config(who, port))).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => panic!("{who} could not join: {e}"),
        Err(_) => panic!("{who} did not join in time"),
    }
}

/// The coordinator every node agrees on, if the `n`-member view is the same everywhere.
async fn agreed(nodes: &[&P2pTransport], n: usize) -> Option<NodeId> {
    let mut agreed = None;
    for t in nodes {
        let peers = t.peers().await.ok()?;
        let coordinators: Vec<_> = peers.iter().filter(|p| p.coordinator).filter_map(|p| p.node_id).collect();
        if peers.len() != n || coordinators.len() != 1 || agreed.is_some_and(|c| c != coordinators[0]) {
            return None;
        }
        agreed = Some(coordinators[0]);
    }
    agreed
}

async fn wait_agreed(nodes: &[&P2pTransport], n: usize) -> NodeId {
    for _ in 0..MAX_POLLS {
        if let Some(c) = agreed(nodes, n).await {
            return c;
        }
        tokio::time::sleep(POLL).await;
    }
    let mut views = Vec::new();
    for t in nodes {
        let view: Vec<String> = t
            .peers()
            .await
            .unwrap_or_default()
            .iter()
            .map(|p| format!("{}={}{}", p.name, p.node_id.unwrap_or_default(), if p.coordinator { "*" } else { "" }))
            .collect();
        views.push(format!("{}({:?}): {}", t.local_name(), t.local_node_id(), view.join(" ")));
    }
    panic!("no agreement on {n} members and one coordinator:\n{}", views.join("\n"))
}

async fn say(t: &P2pTransport, recipients: Recipients, body: &str) -> MessageId {
    let msg = OutgoingMessage { recipients, body: body.into(), sent_at: Timestamp::default() };
    match tokio::time::timeout(Duration::from_secs(10), t.send(msg)).await {
        Ok(Ok(receipt)) => receipt.id,
        Ok(Err(e)) => panic!("{} could not send {body:?}: {e}", t.local_name()),
        Err(_) => panic!("{} got no receipt for {body:?}", t.local_name()),
    }
}

/// Receives events until `count` messages have been delivered; returns them and the other events.
async fn messages(t: &mut P2pTransport, count: usize) -> (Vec<ChatMessage>, Vec<Event>) {
    let mut got = Vec::new();
    let mut other = Vec::new();
    for _ in 0..10_000 {
        if got.len() >= count {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(10), t.recv()).await {
            Ok(Some(Event::Message(m))) => got.push(m),
            Ok(Some(e)) => other.push(e),
            Ok(None) => panic!("{} closed", t.local_name()),
            Err(_) => panic!("{} has {} of {count} messages: {got:#?}", t.local_name(), got.len()),
        }
    }
    (got, other)
}

/// Events already queued, without waiting for more.
async fn queued_events(t: &mut P2pTransport) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..10_000 {
        match tokio::time::timeout(Duration::from_millis(5), t.recv()).await {
            Ok(Some(e)) => events.push(e),
            _ => break,
        }
    }
    events
}

/// Asserts that every pair of lists delivers the IDs they share in the same relative order.
fn same_relative_order(lists: &[Vec<MessageId>]) {
    for a in lists {
        for b in lists {
            let common: Vec<_> = a.iter().filter(|id| b.contains(id)).collect();
            let common_b: Vec<_> = b.iter().filter(|id| a.contains(id)).collect();
            assert_eq!(common, common_b, "two nodes deliver shared messages in different orders");
        }
    }
}

async fn stop(nodes: Vec<P2pTransport>) {
    for mut t in nodes {
        let _ = tokio::time::timeout(Duration::from_secs(5), t.leave()).await;
        for _ in 0..MAX_POLLS {
            if t.is_finished() {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        assert!(t.is_finished(), "{} still runs after leave", t.local_name());
    }
}

async fn four(port: u16) -> Vec<P2pTransport> {
    let mut nodes = Vec::new();
    for who in ["alice", "bob", "carol", "dave"] {
        nodes.push(start(who, port).await);
        // Let each admission (and the election a higher newcomer starts) settle before the next.
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, refs.len()).await;
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_discover_each_other_and_agree_on_one_coordinator() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut nodes = four(47_601).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let coordinator = wait_agreed(&refs, 4).await;
        let ids: Vec<NodeId> = nodes.iter().map(|t| t.local_node_id().expect("an ID")).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 4, "IDs are unique: {ids:?}");
        assert_eq!(unique, [NodeId(1), NodeId(2), NodeId(3), NodeId(4)], "IDs 1 to 4 in order of admission");
        assert_eq!(coordinator, NodeId(1), "the first node coordinates: a join starts no election");
        for t in &mut nodes {
            let events = queued_events(t).await;
            let last = events.iter().rev().find_map(|e| match e {
                Event::CoordinatorChanged { node_id, .. } => Some(*node_id),
                _ => None,
            });
            assert_eq!(last, Some(coordinator), "{} was told the coordinator: {events:?}", t.local_name());
        }
        // Names are unique.
        match tokio::time::timeout(Duration::from_secs(10), join(config("carol", 47_601))).await {
            Ok(Err(P2pError::Refused { code: ErrorCode::NameTaken, .. })) => {}
            Ok(Err(e)) => panic!("wrong refusal: {e}"),
            Ok(Ok(_)) => panic!("a second carol was admitted"),
            Err(_) => panic!("no answer to the second carol"),
        }
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_message_is_delivered_in_one_order() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut nodes = four(47_602).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, 4).await;
        let names = ["alice", "bob", "carol", "dave"];
        // Everybody sends at once: a broadcast, a unicast to the next node, a multicast to the two next.
        // Each node sees, per round: 4 broadcasts, its own unicast and the previous node's, its own
        // multicast and those of the two previous nodes.
        let expected = 3 * (4 + 2 + 3);
        let sends = nodes.iter().enumerate().map(|(i, t)| {
            let next = names[(i + 1) % 4];
            let after = names[(i + 2) % 4];
            async move {
                for round in 0..3 {
                    say(t, Recipients::Broadcast, &format!("{i} all {round}")).await;
                    say(t, Recipients::Unicast(name(next)), &format!("{i} to {next} {round}")).await;
                    let mc = Recipients::multicast([name(next), name(after)]).expect("two names");
                    say(t, mc, &format!("{i} to two {round}")).await;
                }
            }
        });
        for_all(sends).await;
        let mut orders = Vec::new();
        for (i, t) in nodes.iter_mut().enumerate() {
            let (got, _) = messages(t, expected).await;
            let ids: Vec<MessageId> = got.iter().map(|m| m.id).collect();
            let mut unique = ids.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), ids.len(), "no duplicates at {}", names[i]);
            for m in &got {
                assert!(
                    m.sender.as_str() == names[i]
                        || m.recipients.names().is_empty()
                        || m.recipients.names().contains(&name(names[i])),
                    "{} saw a message not meant for it: {m:?}",
                    names[i]
                );
            }
            orders.push(ids);
        }
        same_relative_order(&orders);
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

/// Runs futures concurrently on this task.
async fn for_all<F: std::future::Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_elect_the_highest_live_id_when_the_coordinator_dies_and_lose_nothing() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut nodes = four(47_603).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let old = wait_agreed(&refs, 4).await;
        for (i, t) in nodes.iter().enumerate() {
            say(t, Recipients::Broadcast, &format!("before {i}")).await;
        }
        let at = nodes.iter().position(|t| t.local_node_id() == Some(old)).expect("the coordinator is one of us");
        let mut dead = nodes.remove(at);
        dead.abort();
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let new = wait_agreed(&refs, 3).await;
        let highest = nodes.iter().filter_map(|t| t.local_node_id()).max().expect("three IDs");
        assert_ne!(new, old);
        assert_eq!(new, highest, "the highest live ID coordinates");
        for (i, t) in nodes.iter().enumerate() {
            say(t, Recipients::Broadcast, &format!("after {i}")).await;
        }
        let mut orders = Vec::new();
        for t in &mut nodes {
            // 4 before the crash and 3 after, each exactly once.
            let (got, other) = messages(t, 7).await;
            let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
            for i in 0..4 {
                assert!(bodies.contains(&format!("before {i}").as_str()), "{bodies:?}");
            }
            for i in 0..3 {
                assert!(bodies.contains(&format!("after {i}").as_str()), "{bodies:?}");
            }
            assert!(
                other.iter().any(|e| matches!(e, Event::CoordinatorChanged { node_id, .. } if *node_id == new)),
                "{} was told about the new coordinator",
                t.local_name()
            );
            orders.push(got.iter().map(|m| m.id).collect::<Vec<_>>());
        }
        same_relative_order(&orders);
        stop(nodes).await;
        assert!(dead.is_finished());
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_receives_the_history() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut nodes = Vec::new();
        for who in ["alice", "bob"] {
            nodes.push(start(who, 47_604).await);
            let refs: Vec<&P2pTransport> = nodes.iter().collect();
            wait_agreed(&refs, refs.len()).await;
        }
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, 2).await;
        let mut sent = Vec::new();
        for i in 0..5 {
            sent.push(say(&nodes[i % 2], Recipients::Broadcast, &format!("early {i}")).await);
        }
        let private = say(&nodes[0], Recipients::Unicast(name("bob")), "not for carol").await;
        nodes.push(start("carol", 47_604).await);
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, 3).await;
        let history = nodes[2].history(None, 100).await.expect("history");
        let ids: Vec<MessageId> = history.iter().map(|m| m.id).collect();
        assert_eq!(ids, sent, "carol's history holds the broadcasts, in order, and not the unicast");
        assert!(!ids.contains(&private));
        let carol_ids = nodes[2].local_node_id();
        assert!(carol_ids.is_some());
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_old_coordinator_does_not_make_two_coordinators() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut nodes = Vec::new();
        for who in ["alice", "bob", "carol"] {
            nodes.push(start(who, 47_605).await);
            let refs: Vec<&P2pTransport> = nodes.iter().collect();
            wait_agreed(&refs, refs.len()).await;
        }
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let old = wait_agreed(&refs, 3).await;
        let at = nodes.iter().position(|t| t.local_node_id() == Some(old)).expect("coordinator");
        let mut dead = nodes.remove(at);
        let who = dead.local_name().clone();
        dead.abort();
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, 2).await;
        // The same name comes back as a new process.
        nodes.push(start(who.as_str(), 47_605).await);
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let coordinator = wait_agreed(&refs, 3).await;
        // Stays settled: still one coordinator a few heartbeats later.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        assert_eq!(wait_agreed(&refs, 3).await, coordinator);
        let mut counts: HashMap<NodeId, usize> = HashMap::new();
        for t in &nodes {
            for p in t.peers().await.expect("peers") {
                if p.coordinator {
                    *counts.entry(p.node_id.expect("id")).or_default() += 1;
                }
            }
        }
        assert_eq!(counts.len(), 1, "one coordinator: {counts:?}");
        say(&nodes[0], Recipients::Broadcast, "still chatting").await;
        for t in &mut nodes {
            let (got, _) = messages(t, 1).await;
            assert_eq!(got.last().map(|m| m.body.as_str()), Some("still chatting"));
        }
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_through_a_known_peer_without_multicast() {
    tokio::time::timeout(TEST_LIMIT, async {
        let alice = start("alice", 47_606).await;
        // Bob listens on another multicast port: only `peers` can lead him to alice.
        let mut cfg = config("bob", 47_607);
        cfg.peers = vec![alice.local_addr()];
        let bob = match tokio::time::timeout(Duration::from_secs(10), join(cfg)).await {
            Ok(Ok(t)) => t,
            other => panic!("bob could not join through alice: {:?}", other.map(|r| r.map(|_| ()))),
        };
        let nodes = vec![alice, bob];
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, 2).await;
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}
