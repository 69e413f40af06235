//! The real server shell on an in-memory network (`chat_transport::memory`), in virtual time
//! (`start_paused`): timeouts, heartbeats and the notice debounce run deterministically, in
//! milliseconds of wall-clock time, and no socket is opened.

use std::net::SocketAddr;
use std::time::Duration;

use chat_core::{ErrorCode, NodeId, Recipients, Timestamp, UserName};
use chat_server::ServerError;
use chat_server::protocol::{ClientFrame, ServerFrame};
use chat_server::server::{NOTICE_DELAY, Server, ServerConfig};
use chat_transport::memory::{MemoryNetwork, MemoryStream};
use chat_transport::{Connection, Dialer, Role, handshake};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// Longest (virtual) wait for one frame.
const WAIT: Duration = Duration::from_secs(60);
const HEARTBEAT: Duration = Duration::from_secs(1);

type Client = Connection<MemoryStream, ServerFrame, ClientFrame>;

fn n(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

fn server_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 7878))
}

struct Running {
    net: MemoryNetwork,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    async fn start(outbox: usize) -> Running {
        let net = MemoryNetwork::new();
        let listener = net.bind(server_addr()).unwrap();
        let config = ServerConfig {
            data_dir: None,
            heartbeat: HEARTBEAT,
            outbox_capacity: outbox,
            limits: None,
            ..ServerConfig::default()
        };
        let server = Server::with_listener(listener, config).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running { net, stop: Some(stop), task }
    }

    /// Connects client number `i` and logs in as `name`; returns the connection and its Welcome.
    async fn login(&self, i: u8, name: &str) -> (Client, ServerFrame) {
        let dialer = self.net.dialer(SocketAddr::from(([10, 0, 1, i], 5000)));
        let mut stream = dialer.connect(server_addr()).await.unwrap();
        handshake(&mut stream, Role::Client).await.unwrap();
        let mut conn = Connection::new(stream);
        conn.write_frame(&ClientFrame::Login { name: n(name) }).await.unwrap();
        let welcome = next(&mut conn).await;
        (conn, welcome)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(WAIT, self.task).await.expect("server stops in time").unwrap().unwrap();
    }
}

async fn next(conn: &mut Client) -> ServerFrame {
    timeout(WAIT, conn.read_frame()).await.expect("a frame in time").unwrap().expect("connection open")
}

/// The next frame other than a ping (answered).
async fn next_not_ping(conn: &mut Client) -> ServerFrame {
    loop {
        match next(conn).await {
            ServerFrame::Ping => conn.write_frame(&ClientFrame::Pong).await.unwrap(),
            frame => return frame,
        }
    }
}

/// The next three messages, as (sequence number, body).
async fn three_messages(conn: &mut Client) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    while seen.len() < 3 {
        if let ServerFrame::Message(m) = next_not_ping(conn).await {
            seen.push((m.id.seq, m.body));
        }
    }
    seen
}

fn send(req: u64, recipients: Recipients, body: &str) -> ClientFrame {
    ClientFrame::Send { req, recipients, body: body.into(), sent_at: Timestamp::new(0, NodeId(0)), key: 0 }
}

#[tokio::test(start_paused = true)]
async fn a_chat_over_memory_streams_keeps_one_order() {
    let server = Running::start(64).await;
    let (mut alice, welcome) = server.login(1, "alice").await;
    assert!(matches!(welcome, ServerFrame::Welcome { heartbeat_ms: 1000, .. }), "{welcome:?}");
    let (mut bob, _) = server.login(2, "bob").await;
    assert_eq!(next_not_ping(&mut alice).await, ServerFrame::Joined { name: n("bob") });

    alice.write_frame(&send(1, Recipients::Broadcast, "one")).await.unwrap();
    bob.write_frame(&send(1, Recipients::Unicast(n("alice")), "two")).await.unwrap();
    alice.write_frame(&send(2, Recipients::Broadcast, "three")).await.unwrap();
    let at_alice = three_messages(&mut alice).await;
    let at_bob = three_messages(&mut bob).await;
    assert_eq!(at_alice, at_bob, "both see the same messages in the same order");
    let order: Vec<&str> = at_alice.iter().map(|(_, b)| b.as_str()).collect();
    let pos = |b: &str| order.iter().position(|x| *x == b);
    assert!(pos("one") < pos("three"), "a sender's messages keep their order: {order:?}");
    assert!(at_alice.windows(2).all(|w| w[0].0 < w[1].0), "sequence numbers increase: {at_alice:?}");
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_dropped_after_three_heartbeats_and_its_session_after_the_grace_period() {
    let server = Running::start(64).await;
    let (mut alice, _) = server.login(1, "alice").await;
    let (_silent, _) = server.login(2, "silent").await;
    let start = Instant::now();
    assert_eq!(next_not_ping(&mut alice).await, ServerFrame::Joined { name: n("silent") });
    // alice answers pings (next_not_ping); the silent client does not even read. Its connection is
    // dropped after three heartbeats; its session waits the grace period for a resume, then ends.
    let left = next_not_ping(&mut alice).await;
    assert_eq!(left, ServerFrame::Left { name: n("silent"), reason: "timeout".into() });
    let waited = start.elapsed();
    let grace = chat_server::server::DEFAULT_GRACE;
    assert!(waited >= HEARTBEAT * 3 + grace && waited < HEARTBEAT * 4 + grace, "dropped after {waited:?}");
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_logins_is_announced_after_the_notice_delay_and_replies_do_not_wait() {
    let server = Running::start(64).await;
    let (mut alice, _) = server.login(1, "alice").await;
    let start = Instant::now();
    let mut others = Vec::new();
    for i in 0..20u8 {
        let (conn, welcome) = server.login(10 + i, &format!("u{i}")).await;
        assert!(matches!(welcome, ServerFrame::Welcome { .. }));
        others.push(conn);
    }
    // Twenty Welcomes came back before any notice was published: replies do not wait for it.
    assert!(start.elapsed() < NOTICE_DELAY, "logins took {:?}", start.elapsed());
    for i in 0..20 {
        assert_eq!(next_not_ping(&mut alice).await, ServerFrame::Joined { name: n(&format!("u{i}")) });
    }
    assert!(start.elapsed() >= NOTICE_DELAY, "notices came after {:?}", start.elapsed());
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_never_reads_is_kicked_and_the_others_are_not_held_up() {
    let server = Running::start(16).await;
    let (mut alice, _) = server.login(1, "alice").await;
    let (_stuck, _) = server.login(2, "stuck").await;
    assert_eq!(next_not_ping(&mut alice).await, ServerFrame::Joined { name: n("stuck") });
    // Unicasts to the stuck client fill its 16-frame private queue once its pipe is full.
    let body = "x".repeat(8 * 1024);
    let mut sent = 0u64;
    let mut kicked = false;
    let mut left = None;
    // alice reads everything that comes back for each send (her copy and the `Sent`) before the next.
    while left.is_none() {
        if !kicked {
            sent += 1;
            assert!(sent < 10_000, "the stuck client was never kicked");
            alice.write_frame(&send(sent, Recipients::Unicast(n("stuck")), &body)).await.unwrap();
        }
        loop {
            match next_not_ping(&mut alice).await {
                ServerFrame::Left { name, reason } => {
                    left = Some((name, reason));
                    break;
                }
                // Kicked: the reply overtakes the departure notice, which waits for the notice delay;
                // stuck is offline now (but known), so the unicast is kept for it.
                ServerFrame::Sent { queued, .. } if queued == vec![n("stuck")] => {
                    kicked = true;
                    break;
                }
                ServerFrame::Sent { req, .. } if req == sent => break,
                ServerFrame::Message(_) | ServerFrame::Sent { .. } => {}
                other => panic!("{other:?}"),
            }
        }
    }
    let left = left.expect("a departure");
    assert_eq!(left, (n("stuck"), "slow_consumer".to_string()));
    // alice is served on: a broadcast comes back to her.
    alice.write_frame(&send(sent + 1, Recipients::Broadcast, "still here")).await.unwrap();
    loop {
        match next_not_ping(&mut alice).await {
            ServerFrame::Message(m) if m.body == "still here" => break,
            ServerFrame::Message(_) | ServerFrame::Sent { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_closing_to_every_client() {
    let server = Running::start(64).await;
    let (mut alice, _) = server.login(1, "alice").await;
    let stopping = tokio::spawn(server.stop());
    loop {
        match next(&mut alice).await {
            ServerFrame::Closing { code, .. } => {
                assert_eq!(code, ErrorCode::ShuttingDown);
                break;
            }
            ServerFrame::Ping => {}
            other => panic!("{other:?}"),
        }
    }
    stopping.await.unwrap();
}
