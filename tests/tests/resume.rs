//! Sessions that survive: clients connected through a relay that cuts every connection again and
//! again, a server restarted under its clients, the end of the grace period, and offline messages
//! across a restart. Every wait is bounded; every server and relay is stopped by the test.

use std::collections::BTreeSet;
use std::time::Duration;

use chat_core::{Chat, ChatMessage, Event, UserName};
use chat_server::client::reconnect::Reconnect;
use chat_server::client::{ClientConfig, connect};
use chat_server::server::ServerConfig;
use tests::relay::Relay;
use tests::{TestServer, server_config};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

/// Reconnects fast (tests), and keeps trying for a while.
fn quick() -> Reconnect {
    Reconnect {
        first: Duration::from_millis(10),
        cap: Duration::from_millis(100),
        give_up: Duration::from_secs(30),
        ..Reconnect::default()
    }
}

async fn join(server: String, name: &str) -> Chat {
    let config = ClientConfig { reconnect: Some(quick()), ..ClientConfig::new(server, n(name)) };
    Chat::new(connect(config).await.unwrap())
}

/// Messages from `chat` until `count` of them (by body prefix `prefix`) have arrived, with every
/// other event noted; panics on a duplicate.
async fn collect(chat: &mut Chat, prefix: &str, count: usize, events: &mut Vec<Event>) -> Vec<ChatMessage> {
    let mut got: Vec<ChatMessage> = Vec::new();
    while got.len() < count {
        match timeout(WAIT, chat.next_event()).await.expect("events keep coming") {
            Some(Event::Message(m)) if m.body.starts_with(prefix) => got.push(m),
            Some(Event::Message(_)) => {}
            Some(Event::Disconnected { code, reason }) => panic!("disconnected: {code} {reason}"),
            Some(other) => events.push(other),
            None => panic!("chat closed after {} messages", got.len()),
        }
    }
    got
}

fn assert_exactly_once_in_order(got: &[ChatMessage], prefix: &str, count: usize) {
    let bodies: Vec<String> = got.iter().map(|m| m.body.clone()).collect();
    let expected: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    assert_eq!(bodies, expected, "every message exactly once, in order");
    assert!(got.windows(2).all(|w| w[0].id.seq < w[1].id.seq), "server order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_exactly_once_in_order_through_ten_cuts() {
    const COUNT: usize = 1200;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(server_config(Some(dir.path())), None).await.unwrap();
    let relay = Relay::start(server.addr()).await.unwrap();
    let mut alice = join(relay.addr().to_string(), "alice").await;
    let mut bob = join(relay.addr().to_string(), "bob").await;

    // The relay cuts every connection after every 100th acknowledged message: cuts land in the middle
    // of the traffic, while bob is receiving and alice is sending.
    let relay = std::sync::Arc::new(relay);
    let cutter = std::sync::Arc::clone(&relay);
    let sender = tokio::spawn(async move {
        let mut cuts = 0;
        for i in 0..COUNT {
            // Each send waits for its acknowledgement, across cuts (the client resends with its key).
            timeout(WAIT, alice.broadcast(format!("m{i}"))).await.expect("acknowledged in time").unwrap();
            if i % 100 == 50 {
                cutter.cut();
                cuts += 1;
            }
        }
        (alice, cuts)
    });
    let mut events = Vec::new();
    let got = collect(&mut bob, "m", COUNT, &mut events).await;
    let (mut alice, cuts) = timeout(WAIT * 3, sender).await.unwrap().unwrap();
    assert!(relay.accepted() >= 2 + 2 * 10, "both clients came back after each cut: {}", relay.accepted());
    assert!(cuts >= 10, "{cuts} cuts");
    assert_exactly_once_in_order(&got, "m", COUNT);
    let resumes = events.iter().filter(|e| matches!(e, Event::Resumed { .. })).count();
    assert!(resumes >= 5, "bob resumed {resumes} times: {events:?}");
    assert!(
        !events.iter().any(|e| matches!(e, Event::PeerLeft(_) | Event::PeerJoined(_))),
        "the others see no leave/join: {events:?}"
    );
    // alice sees her own messages once each too.
    let mut mine = Vec::new();
    let own = collect(&mut alice, "m", COUNT, &mut mine).await;
    assert_exactly_once_in_order(&own, "m", COUNT);
    alice.leave().await.unwrap();
    bob.leave().await.unwrap();
    drop(relay);
    server.stop().await.unwrap();
    // Every send was stored once, whatever was retried.
    let mut shown = Vec::new();
    chat_server::logview::show(dir.path(), &mut shown).unwrap();
    let stores = String::from_utf8(shown).unwrap().lines().filter(|l| l.starts_with("STORE ")).count();
    assert_eq!(stores, COUNT, "idempotent retries: one record per message");
    let report = chat_server::logview::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_a_client_gets_a_new_session_and_says_so() {
    let config = ServerConfig { grace: Duration::from_millis(300), ..server_config(None) };
    let server = TestServer::start_with(config, None).await.unwrap();
    let relay = Relay::start(server.addr()).await.unwrap();
    let mut alice = join(server.addr().to_string(), "alice").await;
    let mut bob = join(relay.addr().to_string(), "bob").await;
    // An outage longer than the grace period.
    relay.pause(true);
    relay.cut();
    let left = timeout(WAIT, async {
        loop {
            if let Some(Event::PeerLeft(p)) = alice.next_event().await {
                return p.name;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(left, n("bob"), "once the grace period is over, bob leaves (timeout)");
    alice.broadcast("while bob was gone").await.unwrap();
    relay.pause(false);
    let mut events = Vec::new();
    let notice = timeout(WAIT, async {
        loop {
            match bob.next_event().await.expect("open") {
                Event::Resumed { missed } => return (events, missed),
                other => events.push(other),
            }
        }
    })
    .await
    .unwrap();
    let (events, missed) = notice;
    assert_eq!(missed, 0);
    assert!(
        events.iter().any(|e| matches!(e, Event::Notice { text } if text.contains("new one"))),
        "bob is told his session was gone: {events:?}"
    );
    assert!(matches!(events.first(), Some(Event::Reconnecting { attempt: 1, .. })), "{events:?}");
    let back = timeout(WAIT, async {
        loop {
            if let Some(Event::PeerJoined(p)) = alice.next_event().await {
                return p.name;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(back, n("bob"));
    let history: Vec<String> = bob.history(10).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(history, ["while bob was gone"], "what he missed is in the history");
    alice.leave().await.unwrap();
    bob.leave().await.unwrap();
    drop(relay);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_wait_across_a_restart_and_come_first_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(server_config(Some(dir.path())), None).await.unwrap();
    let addr = server.addr();
    let mut bob = join(addr.to_string(), "bob").await;
    bob.leave().await.unwrap();
    let mut alice = join(addr.to_string(), "alice").await;
    let mut queued = BTreeSet::new();
    for i in 0..3 {
        let receipt = alice.send_to(n("bob"), format!("for later {i}")).await.unwrap();
        assert!(receipt.unknown.is_empty());
        queued.extend(receipt.queued);
    }
    assert_eq!(queued, BTreeSet::from([n("bob")]), "bob is offline but known");
    let nobody = alice.send_to(n("zed"), "?").await.unwrap_err();
    assert_eq!(nobody.code(), chat_core::ErrorCode::UnknownUser, "a name never seen is still unknown");
    alice.leave().await.unwrap();
    server.stop().await.unwrap();

    let server =
        TestServer::start_with(ServerConfig { listen: addr, ..server_config(Some(dir.path())) }, None).await.unwrap();
    let mut bob = join(addr.to_string(), "bob").await;
    let mut events = Vec::new();
    let got = collect(&mut bob, "for later ", 3, &mut events).await;
    assert_exactly_once_in_order(&got, "for later ", 3);
    bob.leave().await.unwrap();
    // Delivered once: a second login gets nothing more.
    let mut bob = join(addr.to_string(), "bob").await;
    bob.broadcast("marker").await.unwrap();
    let first = timeout(WAIT, async {
        loop {
            if let Some(Event::Message(m)) = bob.next_event().await {
                return m.body;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(first, "marker");
    bob.leave().await.unwrap();
    server.stop().await.unwrap();
}
