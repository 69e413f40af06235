//! Real P2P nodes on one in-memory network, in virtual time: the helpers shared by the test files
//! that use it (`memory_group.rs`, `attacks.rs`). Short heartbeats (50 ms, timeout 250 ms). Every
//! wait is bounded.
#![allow(dead_code)]

use std::time::Duration;

use chat_core::{ChatMessage, Event, MessageId, NodeId, OutgoingMessage, Recipients, Timestamp, Transport, UserName};
use chat_p2p::{P2pConfig, P2pTransport, join_on};
use chat_transport::memory::MemoryNetwork;

/// Upper bound (virtual time) for one whole test.
pub const TEST_LIMIT: Duration = Duration::from_secs(120);
/// Polling interval of the waits below.
pub const POLL: Duration = Duration::from_millis(25);
/// Most polls of one wait (20 s).
pub const MAX_POLLS: usize = 800;

pub fn name(s: &str) -> UserName {
    UserName::new(s).expect("valid name")
}

pub fn config(who: &str) -> P2pConfig {
    let mut c = P2pConfig::new(name(who)).with_heartbeat(Duration::from_millis(50));
    c.join_timeout = Duration::from_millis(400);
    c
}

pub async fn start(net: &MemoryNetwork, who: &str) -> P2pTransport {
    start_with(net, config(who)).await
}

/// Starts a node with these settings (see [`config`] for the usual ones).
pub async fn start_with(net: &MemoryNetwork, config: P2pConfig) -> P2pTransport {
    let who = config.name.clone();
    match tokio::time::timeout(Duration::from_secs(10), join_on(net, config)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => panic!("{who} could not join: {e}"),
        Err(_) => panic!("{who} did not join in time"),
    }
}

/// The coordinator every node agrees on, if every node sees the same `n` members and one coordinator.
pub async fn agreed(nodes: &[&P2pTransport], n: usize) -> Option<NodeId> {
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

pub async fn wait_agreed(nodes: &[&P2pTransport], n: usize) -> NodeId {
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

/// Starts `names` one after the other, each admission settled before the next.
pub async fn group(net: &MemoryNetwork, names: &[&str]) -> Vec<P2pTransport> {
    group_with(net, names, config).await
}

/// [`group`], with the settings `config` gives for each name.
pub async fn group_with(net: &MemoryNetwork, names: &[&str], config: impl Fn(&str) -> P2pConfig) -> Vec<P2pTransport> {
    let mut nodes = Vec::new();
    for who in names {
        nodes.push(start_with(net, config(who)).await);
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, refs.len()).await;
    }
    nodes
}

/// The highest node ID among `nodes`: Bully's coordinator.
pub fn highest(nodes: &[P2pTransport]) -> NodeId {
    nodes.iter().filter_map(|t| t.local_node_id()).max().expect("IDs")
}

pub async fn say(t: &P2pTransport, body: &str) -> MessageId {
    let msg = OutgoingMessage { recipients: Recipients::Broadcast, body: body.into(), sent_at: Timestamp::default() };
    match tokio::time::timeout(Duration::from_secs(10), t.send(msg)).await {
        Ok(Ok(receipt)) => receipt.id,
        Ok(Err(e)) => panic!("{} could not send {body:?}: {e}", t.local_name()),
        Err(_) => panic!("{} got no receipt for {body:?}", t.local_name()),
    }
}

/// Everybody says `body` (with its index) at once.
pub async fn everybody_says(nodes: &[P2pTransport], body: &str) {
    let sends = nodes.iter().enumerate().map(|(i, t)| async move {
        say(t, &format!("{body} {i}")).await;
    });
    for_all(sends).await;
}

/// Runs futures concurrently on this task.
pub async fn for_all<F: std::future::Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
}

/// Receives events until `count` messages have been delivered; returns them and the other events.
pub async fn messages(t: &mut P2pTransport, count: usize) -> (Vec<ChatMessage>, Vec<Event>) {
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

/// Every node delivers `count` messages, each once, all in the same sequence; returns it.
pub async fn same_sequence_everywhere(nodes: &mut [P2pTransport], count: usize) -> Vec<ChatMessage> {
    let mut first: Option<Vec<ChatMessage>> = None;
    for t in nodes.iter_mut() {
        let (got, _) = messages(t, count).await;
        let mut ids: Vec<MessageId> = got.iter().map(|m| m.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{} delivered a duplicate: {got:?}", t.local_name());
        match &first {
            None => first = Some(got),
            Some(seq) => assert_eq!(
                got.iter().map(|m| m.id).collect::<Vec<_>>(),
                seq.iter().map(|m| m.id).collect::<Vec<_>>(),
                "{} delivers another sequence",
                t.local_name()
            ),
        }
    }
    first.unwrap_or_default()
}

pub async fn stop(nodes: Vec<P2pTransport>) {
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

/// Events already queued, without waiting for more.
pub async fn queued_events(t: &mut P2pTransport) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..10_000 {
        match tokio::time::timeout(Duration::from_millis(5), t.recv()).await {
            Ok(Some(e)) => events.push(e),
            _ => break,
        }
    }
    events
}
