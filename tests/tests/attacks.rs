//! Attacks on the server topology, in process over real loopback TCP: each is one row of the
//! "nothing confirmed is ever lost, no input can corrupt the log or fool a reader" issue, re-run as a
//! test that must now fail to do harm.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chat_core::{Chat, CoreError, ErrorCode, Event, NodeId, Recipients, Timestamp, UserName};
use chat_server::client::{ClientConfig, connect, connect_with};
use chat_server::protocol::{ClientFrame, ServerFrame};
use chat_server::server::ServerConfig;
use chat_transport::{Connection, Dialer, Role, TcpDialer, handshake};
use tests::{TestServer, name, server_config};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest wait for any one step.
const WAIT: Duration = Duration::from_secs(20);

/// The two connection storms take turns: each opens hundreds of connections, and side by side on two
/// cores they slow each other past their bounds.
static STORMS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

type Raw = Connection<TcpStream, ServerFrame, ClientFrame>;

/// A raw connection from `from`, after the handshake.
async fn raw(addr: SocketAddr, from: IpAddr) -> std::io::Result<Raw> {
    let mut stream = TcpDialer::from_ip(from).connect(addr).await?;
    handshake(&mut stream, Role::Client).await.map_err(std::io::Error::other)?;
    Ok(Connection::new(stream))
}

/// A raw connection logged in as `user`.
async fn raw_login(addr: SocketAddr, user: &str) -> Raw {
    let mut conn = raw(addr, [127, 0, 0, 1].into()).await.unwrap();
    conn.write_frame(&ClientFrame::Login { name: name(user) }).await.unwrap();
    let welcome = timeout(WAIT, conn.read_frame()).await.unwrap().unwrap();
    assert!(matches!(welcome, Some(ServerFrame::Welcome { .. })), "{welcome:?}");
    conn
}

fn broadcast(req: u64, body: &str, counter: u64) -> ClientFrame {
    ClientFrame::Send {
        req,
        recipients: Recipients::Broadcast,
        body: body.into(),
        sent_at: Timestamp::new(counter, NodeId(0)),
        key: 0,
    }
}

async fn start(config: ServerConfig) -> TestServer {
    TestServer::start_with(config, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_login_gets_in_during_a_storm_of_idle_connections_and_the_idle_are_closed() {
    let _turn = STORMS.lock().await;
    let config = ServerConfig { max_connections: 300, login_timeout: Duration::from_secs(3), ..server_config(None) };
    let server = start(config).await;
    let addr = server.addr();
    // 3,000 connections from one address complete the handshake, never log in, and ping.
    let held = Arc::new(AtomicUsize::new(0));
    let holding = Arc::new(AtomicUsize::new(0));
    let most_held = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..3000 {
        let (held, refused, failed) = (held.clone(), refused.clone(), failed.clone());
        let (holding, most_held) = (holding.clone(), most_held.clone());
        storm.spawn(async move {
            let Ok(mut conn) = raw(addr, [127, 0, 0, 1].into()).await else {
                failed.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            // Ping every half second (a keep-alive that does not count as a login) until refused or
            // closed; bounded by 10 s.
            let started = Instant::now();
            let mut counted = false;
            while started.elapsed() < Duration::from_secs(10) {
                match timeout(Duration::from_millis(500), conn.read_frame()).await {
                    Ok(Ok(Some(ServerFrame::Refused { code: ErrorCode::Busy, .. }))) => {
                        assert!(!counted, "refused after it was counted as held");
                        refused.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    Ok(Ok(Some(ServerFrame::Pong))) => {
                        if !counted {
                            counted = true;
                            held.fetch_add(1, Ordering::Relaxed);
                            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                            most_held.fetch_max(now, Ordering::SeqCst);
                        }
                    }
                    Ok(Ok(Some(ServerFrame::Closing { code, .. }))) => {
                        assert!(counted, "closed before it was held");
                        holding.fetch_sub(1, Ordering::SeqCst);
                        return Some((code, started.elapsed()));
                    }
                    Ok(Ok(None)) | Ok(Err(_)) if counted => {
                        holding.fetch_sub(1, Ordering::SeqCst);
                        return Some((ErrorCode::Disconnected, started.elapsed()));
                    }
                    Ok(Ok(None)) | Ok(Err(_)) => panic!("closed without a refusal before it was held"),
                    Ok(Ok(Some(other))) => panic!("an idle connection got {other:?}"),
                    Err(_) => {}
                }
                let _ = conn.write_frame(&ClientFrame::Ping).await;
            }
            None
        });
        if storm.len() % 200 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Every attempt has been answered (held, refused or failed), bounded.
    let resolved = || held.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
    for _ in 0..200 {
        if resolved() >= 3000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "storm: {} held, {} refused busy, {} failed to connect",
        held.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    // An honest user on another host logs in at once.
    let started = Instant::now();
    let honest = ClientConfig::new(addr.to_string(), name("alice"));
    let alice = timeout(Duration::from_secs(5), connect_with(TcpDialer::from_ip([127, 0, 0, 2].into()), honest))
        .await
        .expect("the honest login is not stalled")
        .expect("the honest login succeeds");
    println!("honest login during the storm took {:?}", started.elapsed());
    let most = most_held.load(Ordering::SeqCst);
    assert!(most <= 128, "at most 128 idle connections per address are held at once, not {most}");
    assert!(resolved() >= 3000, "every connection of the storm was answered");
    // Every idle connection is closed once its login timeout passes.
    let mut closed = 0;
    while let Some(outcome) = timeout(WAIT, storm.join_next()).await.expect("the storm ends") {
        if let Some((code, after)) = outcome.unwrap() {
            assert!(matches!(code, ErrorCode::Protocol | ErrorCode::Disconnected), "{code}");
            assert!(after < Duration::from_secs(10), "closed after {after:?}");
            closed += 1;
        }
    }
    assert_eq!(closed, held.load(Ordering::Relaxed));
    drop(alice);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_many_addresses_cannot_hold_the_server_full() {
    let _turn = STORMS.lock().await;
    // 30 addresses with 20 idle connections each fill a server limited to 300 connections; none is over
    // the per-address bound, and their login timeout (10 s) is far away.
    let config = ServerConfig { max_connections: 300, login_timeout: Duration::from_secs(10), ..server_config(None) };
    let server = start(config).await;
    let addr = server.addr();
    let (held, evicted) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut storm = tokio::task::JoinSet::new();
    for i in 0..600u32 {
        let (held, evicted) = (held.clone(), evicted.clone());
        let from: IpAddr = [127, 0, 1, 10 + (i % 30) as u8].into();
        storm.spawn(async move {
            let Ok(mut conn) = raw(addr, from).await else { return };
            // Ping once: a `Pong` means it is held; then wait (bounded) to be closed.
            let _ = conn.write_frame(&ClientFrame::Ping).await;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                match timeout(Duration::from_millis(500), conn.read_frame()).await {
                    Ok(Ok(Some(ServerFrame::Pong))) => {
                        held.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(Some(ServerFrame::Closing { code: ErrorCode::Busy, .. }))) => {
                        evicted.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(Ok(Some(_))) | Err(_) => {}
                    Ok(Ok(None)) | Ok(Err(_)) => return,
                }
            }
        });
    }
    // Held now: answered once, not yet told `busy` (when the storm takes over a second to arrive, its
    // first connections already make room for its last ones).
    let holding = || held.load(Ordering::Relaxed).saturating_sub(evicted.load(Ordering::Relaxed));
    let mut full = false;
    for _ in 0..200 {
        if holding() >= 300 {
            full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(full, "the idle connections fill the server: {} held", holding());
    let evicted_before = evicted.load(Ordering::Relaxed);
    // Once they have idled for the eviction age, an honest user from yet another address gets in at
    // once: the oldest idle connection makes room.
    tokio::time::sleep(chat_server::router::EVICTION_AGE + Duration::from_millis(100)).await;
    let started = Instant::now();
    let honest = ClientConfig::new(addr.to_string(), name("alice"));
    let alice = timeout(Duration::from_secs(5), connect_with(TcpDialer::from_ip([127, 0, 0, 2].into()), honest))
        .await
        .expect("the honest login is not stalled")
        .expect("the honest login succeeds");
    println!("honest login with the server full of idle connections took {:?}", started.elapsed());
    for _ in 0..100 {
        if evicted.load(Ordering::Relaxed) > evicted_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(evicted.load(Ordering::Relaxed) > evicted_before, "an idle connection was told `busy` and closed");
    drop(alice);
    storm.abort_all();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_limited_then_disconnected_and_honest_users_lose_nothing() {
    let config = ServerConfig { limits: Some(chat_server::router::Limits::default()), ..server_config(None) };
    let server = start(config).await;
    let addr = server.addr().to_string();
    let mut alice = Chat::new(connect(ClientConfig::new(addr.clone(), name("alice"))).await.unwrap());
    let mut bob = Chat::new(connect(ClientConfig::new(addr.clone(), name("bob"))).await.unwrap());
    let flooder = raw_login(server.addr(), "flooder").await;
    // The flooder writes as fast as it can (one task) and reads what comes back (another), until it
    // is disconnected.
    let (mut reader, mut writer) = flooder.into_split();
    let done = Arc::new(tokio::sync::Notify::new());
    let stop = done.clone();
    let write = tokio::spawn(async move {
        for req in 1..=1_000_000u64 {
            let frame = broadcast(req, "spam", 0);
            tokio::select! {
                biased;
                () = stop.notified() => return req,
                written = writer.write_frame(&frame) => if written.is_err() { return req },
            }
        }
        1_000_000
    });
    let flood = tokio::spawn(async move {
        let mut limited = 0u64;
        let ended = loop {
            match timeout(WAIT, reader.read_frame()).await {
                Ok(Ok(Some(ServerFrame::RateLimited { .. }))) => limited += 1,
                Ok(Ok(Some(ServerFrame::Closing { code, .. }))) => break Some(code),
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) | Ok(Err(_)) => break Some(ErrorCode::Disconnected),
                Err(_) => break None,
            }
        };
        done.notify_one();
        (limited, ended)
    });
    // Meanwhile honest users talk at a human pace.
    for i in 0..20 {
        alice.broadcast(format!("alice {i}")).await.unwrap();
        bob.broadcast(format!("bob {i}")).await.unwrap();
    }
    let (limited, ended) = timeout(WAIT, flood).await.unwrap().unwrap();
    let written = timeout(WAIT, write).await.unwrap().unwrap();
    println!("the flooder wrote {written} sends, was told {limited} times it was over the limit");
    assert!(limited > 0, "the flooder was told it is over the limit");
    assert_eq!(ended, Some(ErrorCode::Flood), "then disconnected for flooding");
    // Every honest message arrived, and the flood was cut to its allowance.
    let (mut honest, mut spam) = (0, 0);
    while honest < 40 {
        match timeout(WAIT, alice.next_event()).await.unwrap() {
            Some(Event::Message(m)) if m.body == "spam" => spam += 1,
            Some(Event::Message(_)) => honest += 1,
            Some(_) => {}
            None => panic!("alice's chat closed"),
        }
    }
    assert!(spam <= 200 + 50 * 5, "{spam} flood messages got through");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_clock_at_the_end_of_u64_is_refused_and_the_log_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(server_config(Some(dir.path())), None).await.unwrap();
    let mut conn = raw_login(server.addr(), "mallory").await;
    conn.write_frame(&broadcast(1, "before", 7)).await.unwrap();
    conn.write_frame(&broadcast(2, "wrap", u64::MAX)).await.unwrap();
    conn.write_frame(&broadcast(3, "after", 8)).await.unwrap();
    let mut answers = Vec::new();
    while answers.len() < 3 {
        match timeout(WAIT, conn.read_frame()).await.unwrap().unwrap() {
            Some(ServerFrame::Sent { req, .. }) => answers.push((req, None)),
            Some(ServerFrame::Rejected { req, code, .. }) => answers.push((req, Some(code))),
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    assert_eq!(answers, [(1, None), (2, Some(ErrorCode::Protocol)), (3, None)]);
    drop(conn);
    server.stop().await.unwrap();
    let report = chat_server::logview::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn names_that_look_like_an_online_user_or_hide_characters_are_refused() {
    let server = start(server_config(None)).await;
    let addr = server.addr().to_string();
    let _alice = connect(ClientConfig::new(addr.clone(), name("alice"))).await.unwrap();
    for (attempt, code) in [
        ("ALICE", ErrorCode::NameTaken),
        ("\u{0430}lice", ErrorCode::InvalidName),
        ("alice\u{200B}", ErrorCode::InvalidName),
        ("alice\u{202E}", ErrorCode::InvalidName),
        ("bob!", ErrorCode::InvalidName),
    ] {
        let user = UserName::from_wire(attempt.into()).unwrap();
        match connect(ClientConfig::new(addr.clone(), user)).await {
            Err(chat_server::ServerError::Core(CoreError::Rejected { code: got, message })) => {
                assert_eq!(got, code, "{attempt:?}: {message}")
            }
            Ok(_) => panic!("{attempt:?} was admitted"),
            Err(e) => panic!("{attempt:?}: {e}"),
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_with_more_input_behind_it_reads_its_refusal_not_a_reset() {
    let server = start(server_config(None)).await;
    let _alice = raw_login(server.addr(), "alice").await;
    // Twenty tries: a login under a taken name, with 64 KiB of sends written right behind it (unread
    // input when the server closes the connection).
    for attempt in 0..20 {
        let mut conn = raw(server.addr(), [127, 0, 0, 1].into()).await.unwrap();
        conn.write_frame(&ClientFrame::Login { name: name("alice") }).await.unwrap();
        let body = "x".repeat(1024);
        for req in 1..=64 {
            if conn.write_frame(&broadcast(req, &body, req)).await.is_err() {
                break; // the server may have closed already: what matters is what we read
            }
        }
        let first = timeout(WAIT, conn.read_frame()).await.expect("an answer in time");
        assert!(
            matches!(first, Ok(Some(ServerFrame::Refused { code: ErrorCode::NameTaken, .. }))),
            "attempt {attempt}: {first:?}"
        );
    }
    server.stop().await.unwrap();
}
