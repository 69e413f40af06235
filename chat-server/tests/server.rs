//! In-process integration tests: a real server on 127.0.0.1:0 and real clients.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chat_core::{Chat, ChatMessage, CoreError, ErrorCode, Event, Recipients, UserName};
use chat_server::ServerError;
use chat_server::client::{ClientConfig, connect};
use chat_server::journal::FsyncPolicy;
use chat_server::protocol::{ClientFrame, ServerFrame};
use chat_server::server::{Server, ServerConfig};
use chat_transport::{Connection, Role, handshake};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);
/// The servers' grace period in these tests.
const GRACE: Duration = Duration::from_millis(500);

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(WAIT, self.task).await.expect("server stops in time").unwrap().unwrap();
    }
}

fn config(dir: Option<&Path>) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.map(Path::to_path_buf),
        fsync: FsyncPolicy::EveryBatch,
        history: 100,
        heartbeat: Duration::from_millis(300),
        // These tests send thousands of messages as fast as they can; flood control has its own tests.
        limits: None,
        // A short grace period: a dropped connection's departure is announced soon after it.
        grace: GRACE,
        ..ServerConfig::default()
    }
}

/// The same settings, on `addr` (to restart a server where its clients reconnect).
fn at(addr: SocketAddr, config: ServerConfig) -> ServerConfig {
    ServerConfig { listen: addr, ..config }
}

async fn start(config: ServerConfig) -> Running {
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Running { addr, stop: Some(stop), task }
}

async fn join(addr: SocketAddr, name: &str) -> Chat {
    Chat::new(connect(ClientConfig::new(addr.to_string(), n(name))).await.unwrap())
}

/// The next event that is a message, skipping join/leave notices.
async fn next_message(chat: &mut Chat) -> ChatMessage {
    loop {
        match timeout(WAIT, chat.next_event()).await.expect("a message in time") {
            Some(Event::Message(m)) => return m,
            Some(_) => continue,
            None => panic!("chat closed"),
        }
    }
}

/// Waits for a specific event kind.
async fn next_matching(chat: &mut Chat, pred: impl Fn(&Event) -> bool) -> Event {
    loop {
        let event = timeout(WAIT, chat.next_event()).await.expect("event in time").expect("chat open");
        if pred(&event) {
            return event;
        }
    }
}

/// A client speaking raw frames, to misbehave on purpose.
async fn raw_login(addr: SocketAddr, name: &str) -> Connection<TcpStream, ServerFrame, ClientFrame> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    handshake(&mut stream, Role::Client).await.unwrap();
    let mut conn = Connection::new(stream);
    conn.write_frame(&ClientFrame::Login { name: n(name) }).await.unwrap();
    assert!(matches!(conn.read_frame().await.unwrap(), Some(ServerFrame::Welcome { .. })));
    conn
}

#[tokio::test]
async fn unicast_multicast_broadcast_reach_exactly_their_recipients() {
    let server = start(config(None)).await;
    let mut alice = join(server.addr, "alice").await;
    let mut bob = join(server.addr, "bob").await;
    let mut carol = join(server.addr, "carol").await;

    alice.broadcast("to all").await.unwrap();
    alice.send_to(n("bob"), "to bob").await.unwrap();
    alice.multicast([n("bob"), n("carol")], "to bob and carol").await.unwrap();
    alice.broadcast("end").await.unwrap();

    let bodies = |msgs: Vec<ChatMessage>| msgs.into_iter().map(|m| m.body).collect::<Vec<_>>();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_message(&mut bob).await);
    }
    assert_eq!(bodies(got), ["to all", "to bob", "to bob and carol", "end"]);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_message(&mut carol).await);
    }
    assert_eq!(bodies(got.clone()), ["to all", "to bob and carol", "end"]);
    assert_eq!(got[1].recipients, Recipients::Multicast(vec![n("bob"), n("carol")]));
    // The sender sees its own messages in the same order (its echo).
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_message(&mut alice).await);
    }
    assert_eq!(bodies(got), ["to all", "to bob", "to bob and carol", "end"]);
    server.stop().await;
}

#[tokio::test]
async fn unknown_recipients_are_reported() {
    let server = start(config(None)).await;
    let mut alice = join(server.addr, "alice").await;
    let _bob = join(server.addr, "bob").await;
    match alice.send_to(n("nobody"), "hello?").await {
        Err(CoreError::Rejected { code: ErrorCode::UnknownUser, .. }) => {}
        other => panic!("{other:?}"),
    }
    let receipt = alice.multicast([n("bob"), n("ghost")], "partly").await.unwrap();
    assert_eq!(receipt.unknown, vec![n("ghost")]);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_senders_every_receiver_sees_one_order() {
    const SENDERS: usize = 4;
    const EACH: usize = 500;
    let server = start(config(None)).await;
    let mut listener = join(server.addr, "listener").await;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(join(server.addr, &format!("s{i}")).await);
    }
    let total = SENDERS * EACH;
    let mut tasks = Vec::new();
    for (i, mut chat) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for k in 0..EACH {
                chat.broadcast(format!("s{i}-{k}")).await.unwrap();
            }
            let mut seen = Vec::with_capacity(total);
            while seen.len() < total {
                seen.push(next_message(&mut chat).await);
            }
            seen
        }));
    }
    let mut reference = Vec::with_capacity(total);
    while reference.len() < total {
        reference.push(next_message(&mut listener).await);
    }
    // Lamport stamps increase strictly along the order; each sender's messages stay in FIFO order.
    for pair in reference.windows(2) {
        assert!(pair[0].lamport < pair[1].lamport && pair[0].id.seq < pair[1].id.seq);
    }
    for i in 0..SENDERS {
        let mine: Vec<String> =
            reference.iter().filter(|m| m.sender.as_str() == format!("s{i}")).map(|m| m.body.clone()).collect();
        let expected: Vec<String> = (0..EACH).map(|k| format!("s{i}-{k}")).collect();
        assert_eq!(mine, expected);
    }
    let ids: Vec<_> = reference.iter().map(|m| m.id).collect();
    for task in tasks {
        let seen: Vec<_> = timeout(WAIT * 3, task).await.unwrap().unwrap().iter().map(|m| m.id).collect();
        assert_eq!(seen, ids, "every receiver sees the same sequence");
    }
    server.stop().await;
}

#[tokio::test]
async fn join_and_leave_are_announced_and_names_are_unique() {
    let server = start(config(None)).await;
    let mut alice = join(server.addr, "alice").await;
    let mut bob = join(server.addr, "bob").await;
    let joined = next_matching(&mut alice, |e| matches!(e, Event::PeerJoined(_))).await;
    assert!(matches!(joined, Event::PeerJoined(p) if p.name == n("bob")));

    // A second "bob" is refused; the first is unaffected.
    match connect(ClientConfig::new(server.addr.to_string(), n("bob"))).await {
        Err(ServerError::Core(CoreError::Rejected { code: ErrorCode::NameTaken, .. })) => {}
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a duplicate name was accepted"),
    }
    alice.send_to(n("bob"), "still there?").await.unwrap();
    assert_eq!(next_message(&mut bob).await.body, "still there?");
    let peers: Vec<UserName> = alice.peers().await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(peers, [n("alice"), n("bob")]);

    bob.leave().await.unwrap();
    let left = next_matching(&mut alice, |e| matches!(e, Event::PeerLeft(_))).await;
    assert!(matches!(left, Event::PeerLeft(p) if p.name == n("bob")));
    // The name is free again.
    let _bob2 = join(server.addr, "bob").await;
    server.stop().await;
}

#[tokio::test]
async fn abrupt_disconnect_and_silent_client_are_cleaned_up() {
    let server = start(config(None)).await;
    let mut alice = join(server.addr, "alice").await;
    let raw = raw_login(server.addr, "crasher").await;
    next_matching(&mut alice, |e| matches!(e, Event::PeerJoined(_))).await;
    drop(raw); // no Leave frame: the socket just closes
    let left = next_matching(&mut alice, |e| matches!(e, Event::PeerLeft(_))).await;
    assert!(matches!(left, Event::PeerLeft(p) if p.name == n("crasher")));

    // A client that stays connected but never answers is dropped after three heartbeats (300 ms).
    let _silent = raw_login(server.addr, "silent").await;
    next_matching(&mut alice, |e| matches!(e, Event::PeerJoined(_))).await;
    let left = next_matching(&mut alice, |e| matches!(e, Event::PeerLeft(_))).await;
    assert!(matches!(left, Event::PeerLeft(p) if p.name == n("silent")));
    server.stop().await;
}

#[tokio::test]
async fn slow_consumer_is_disconnected_and_others_keep_receiving() {
    let mut cfg = config(None);
    cfg.outbox_capacity = 64;
    let server = start(cfg).await;
    let mut alice = join(server.addr, "alice").await;
    let mut bob = join(server.addr, "bob").await;
    let mut slow = raw_login(server.addr, "slow").await; // logs in, then never reads
    next_matching(&mut bob, |e| matches!(e, Event::PeerJoined(p) if p.name == n("slow"))).await;

    const COUNT: usize = 3000;
    let body = "x".repeat(8 * 1024); // 24 MB in all: more than loopback socket buffers hold
    let reader = tokio::spawn(async move {
        let mut got = 0;
        let mut slow_left = false;
        while got < COUNT || !slow_left {
            match timeout(WAIT, bob.next_event()).await.expect("bob keeps receiving") {
                Some(Event::Message(_)) => got += 1,
                Some(Event::PeerLeft(p)) if p.name == n("slow") => slow_left = true,
                Some(Event::Disconnected { code, reason }) => panic!("bob was disconnected: {code} {reason}"),
                Some(_) => {}
                None => panic!("bob's chat closed"),
            }
        }
        got
    });
    for _ in 0..COUNT {
        alice.broadcast(body.clone()).await.unwrap();
        // Drain alice's own echoes so she is not a slow consumer herself.
        while let Ok(Some(_)) = timeout(Duration::ZERO, alice.next_event()).await {}
    }
    assert_eq!(timeout(WAIT * 3, reader).await.unwrap().unwrap(), COUNT);
    // The slow client finds a Closing frame (or a closed socket) once it reads again.
    let end = timeout(WAIT, async {
        loop {
            match slow.read_frame().await {
                Ok(Some(ServerFrame::Closing { code, .. })) => return Some(code),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(end, Some(ErrorCode::SlowConsumer) | None), "{end:?}");
    server.stop().await;
}

#[tokio::test]
async fn restart_keeps_history_sessions_and_a_log_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(Some(dir.path()))).await;
    let addr = server.addr;
    let mut alice = join(addr, "alice").await;
    let mut bob = join(addr, "bob").await;
    alice.broadcast("one").await.unwrap();
    alice.send_to(n("bob"), "secret").await.unwrap();
    bob.broadcast("two").await.unwrap();
    for _ in 0..3 {
        next_message(&mut bob).await;
    }
    for _ in 0..3 {
        next_message(&mut alice).await;
    }
    server.stop().await;
    // bob's client noticed and tries again.
    next_matching(&mut bob, |e| matches!(e, Event::Reconnecting { .. })).await;

    // The same address, a long grace period: the sessions open at the stop are kept for bob to resume.
    let server = start(at(addr, ServerConfig { grace: Duration::from_secs(30), ..config(Some(dir.path())) })).await;
    let mut carol = join(server.addr, "carol").await;
    let history: Vec<String> = carol.history(10).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(history, ["one", "two"], "carol must not see alice's direct message to bob");
    let resumed = next_matching(&mut bob, |e| matches!(e, Event::Resumed { .. })).await;
    assert_eq!(resumed, Event::Resumed { missed: 0 });
    let history: Vec<String> = bob.history(10).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(history, ["one", "secret", "two"]);
    // The sequence continues after the restart, and the resumed session receives it.
    carol.broadcast("three").await.unwrap();
    let m = next_message(&mut bob).await;
    assert_eq!((m.body.as_str(), m.id.seq), ("three", 4));
    assert!(m.time > 0, "ordered at a wall-clock time");
    next_message(&mut carol).await;
    server.stop().await;

    let report = chat_server::logview::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    let mut shown = Vec::new();
    chat_server::logview::show(dir.path(), &mut shown).unwrap();
    let shown = String::from_utf8(shown).unwrap();
    assert!(shown.contains("BROADCAST FROM alice TO ALL: one"), "{shown}");
    assert!(shown.contains("UNICAST BY bob FROM alice: secret"), "{shown}");
    assert!(shown.contains("KEPT bob"), "bob's session went on after the restart: {shown}");
    assert!(!shown.contains("BROADCAST BY carol FROM bob: two"), "carol was not online then: {shown}");
}

#[tokio::test]
async fn torn_log_tail_is_recovered_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(Some(dir.path()))).await;
    let mut alice = join(server.addr, "alice").await;
    for i in 0..5 {
        alice.broadcast(format!("m{i}")).await.unwrap();
    }
    for _ in 0..5 {
        next_message(&mut alice).await;
    }
    server.stop().await;
    // A crash in the middle of a write: half a record at the end.
    let path = dir.path().join("journal.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
    std::fs::write(&path, &bytes).unwrap();

    let server = start(config(Some(dir.path()))).await;
    let mut bob = join(server.addr, "bob").await;
    let history: Vec<String> = bob.history(10).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(history, ["m0", "m1", "m2", "m3", "m4"]);
    server.stop().await;
    let report = chat_server::logview::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn shutdown_tells_clients() {
    let server = start(config(None)).await;
    let once = ClientConfig { reconnect: None, ..ClientConfig::new(server.addr.to_string(), n("alice")) };
    let mut alice = Chat::new(connect(once).await.unwrap());
    let mut bob = join(server.addr, "bob").await;
    server.stop().await;
    let end = next_matching(&mut alice, |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(matches!(end, Event::Disconnected { code: ErrorCode::ShuttingDown, .. }), "{end:?}");
    // A client that reconnects (the default) says it is trying again, then gives up only much later.
    let retry = next_matching(&mut bob, |e| matches!(e, Event::Reconnecting { .. })).await;
    assert!(matches!(retry, Event::Reconnecting { attempt: 1, .. }), "{retry:?}");
}

#[tokio::test]
async fn a_burst_of_joins_is_announced_completely_and_messages_keep_their_order() {
    let server = start(config(None)).await;
    let mut observer = join(server.addr, "observer").await;
    let mut joins = Vec::new();
    for i in 0..60 {
        let addr = server.addr;
        joins.push(tokio::spawn(async move { join(addr, &format!("u{i}")).await }));
    }
    observer.broadcast("during the burst").await.unwrap();
    let mut clients = Vec::new();
    for handle in joins {
        clients.push(timeout(WAIT, handle).await.unwrap().unwrap());
    }
    observer.broadcast("after the burst").await.unwrap();
    let mut joined = std::collections::BTreeSet::new();
    let mut messages = Vec::new();
    while joined.len() < 60 || messages.len() < 2 {
        match timeout(WAIT, observer.next_event()).await.expect("events in time") {
            Some(Event::PeerJoined(p)) => assert!(joined.insert(p.name), "each join announced once"),
            Some(Event::Message(m)) => messages.push(m.body),
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("closed"),
        }
    }
    assert_eq!(messages, ["during the burst", "after the burst"]);
    // Everybody who joined sees the second message.
    for chat in &mut clients {
        let m = loop {
            let m = next_message(chat).await;
            if m.body == "after the burst" {
                break m;
            }
        };
        assert_eq!(m.sender, n("observer"));
    }
    server.stop().await;
}

/// The server never pings a connection before answering its login: a client takes any frame but
/// `Welcome` / `Refused` while logging in for a protocol error (in cluster mode the answer waits for
/// the shared log, which can stall for seconds). The first frame here is the login deadline's.
#[tokio::test]
async fn no_ping_before_the_login_is_answered() {
    let server = start(ServerConfig { login_timeout: Duration::from_millis(1200), ..config(None) }).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    handshake(&mut stream, Role::Client).await.unwrap();
    let mut conn: Connection<TcpStream, ServerFrame, ClientFrame> = Connection::new(stream);
    // Four heartbeats (300 ms) pass before the login deadline.
    let first = timeout(WAIT, conn.read_frame()).await.expect("a frame or the end in time");
    assert!(
        matches!(
            first,
            Ok(None) | Ok(Some(ServerFrame::Closing { .. })) | Ok(Some(ServerFrame::Refused { .. })) | Err(_)
        ),
        "{first:?}"
    );
    server.stop().await;
}
