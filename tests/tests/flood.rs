//! A reconnecting flooder beside honest users, in process over real loopback TCP: the flooder (from
//! 127.0.0.2) reconnects every 100 ms and writes broadcasts flat out without reading its answers;
//! alice (from 127.0.0.1) broadcasts at a human pace and bob receives. Honest users lose nothing, the
//! flood is cut to its address's allowance whatever the number of connections, and (the ignored
//! benchmark) bob's latency is measured quiet and under the flood, side by side in one run:
//!
//! ```text
//! cargo test --release -p tests --test flood -- --ignored --nocapture
//! FLOOD_SECS=10 FLOOD_RUNS=3 cargo test --release -p tests --test flood -- --ignored --nocapture
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_core::{Chat, Event, NodeId, Recipients, Timestamp};
use chat_server::client::{ClientConfig, connect};
use chat_server::protocol::{ClientFrame, ServerFrame};
use chat_server::router::{DEFAULT_ADDRESS_MESSAGE_RATE, Limits};
use chat_server::server::ServerConfig;
use chat_transport::{Connection, Dialer, Role, TcpDialer, handshake};
use tests::{TestServer, env_usize, name, server_config};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Longest wait for any one step.
const WAIT: Duration = Duration::from_secs(20);
/// How long each of the flooder's connections floods before it reconnects.
const FLOOD_CONNECTION: Duration = Duration::from_millis(100);
/// The flooder's source address (the honest users are on 127.0.0.1).
const FLOODER: [u8; 4] = [127, 0, 0, 2];

type Raw = Connection<TcpStream, ServerFrame, ClientFrame>;

/// What the flooder did.
#[derive(Debug, Default)]
struct Flooded {
    connections: u64,
    written: u64,
}

/// Starts the flooder on a thread and runtime of its own (as another process would be, so that it
/// does not take the server's worker threads): reconnects every [`FLOOD_CONNECTION`] and writes as
/// fast as it can, reading its answers only to throw them away, until `stop` is set.
fn flooder(addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<Flooded> {
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(flood(addr, stop))
    })
}

async fn flood(addr: SocketAddr, stop: Arc<AtomicBool>) -> Flooded {
    {
        let mut done = Flooded::default();
        while !stop.load(Ordering::Relaxed) && done.connections < 100_000 {
            done.connections += 1;
            let Ok(mut stream) = TcpDialer::from_ip(IpAddr::from(FLOODER)).connect(addr).await else { continue };
            if handshake(&mut stream, Role::Client).await.is_err() {
                continue;
            }
            let conn: Raw = Connection::new(stream);
            let (mut reader, mut writer) = conn.into_split();
            let login = ClientFrame::Login { name: name(&format!("flooder-{}", done.connections)) };
            if writer.write_frame(&login).await.is_err() {
                continue;
            }
            let drain =
                tokio::spawn(async move { while let Ok(Ok(Some(_))) = timeout(WAIT, reader.read_frame()).await {} });
            let until = Instant::now() + FLOOD_CONNECTION;
            let mut req = 0;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                req += 1;
                let frame = ClientFrame::Send {
                    req,
                    recipients: Recipients::Broadcast,
                    body: "spam".into(),
                    sent_at: Timestamp::new(0, NodeId(0)),
                    key: 0,
                };
                // A paused server stops reading: the write blocks once the socket buffers are full.
                match timeout(until.saturating_duration_since(Instant::now()), writer.write_frame(&frame)).await {
                    Ok(Ok(())) => done.written += 1,
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            drop(writer);
            drain.abort();
        }
        done
    }
}

/// One phase: alice broadcasts `count` messages at `per_second` while bob receives; every one of
/// them reaches bob, in order. Returns bob's latencies (from alice's send to bob's receipt) and the
/// number of flood messages bob received meanwhile.
async fn honest_phase(
    alice: &mut Chat,
    bob: &mut Chat,
    phase: &str,
    count: u64,
    per_second: u64,
) -> (Vec<Duration>, u64) {
    let base = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
    let mut latencies = Vec::with_capacity(count as usize);
    let mut spam = 0;
    let mut next = 0;
    let mut received = 0;
    let deadline = Instant::now() + WAIT + Duration::from_secs(count / per_second);
    while received < count {
        assert!(Instant::now() < deadline, "{phase}: bob received {received} of {count}");
        tokio::select! {
            _ = ticks.tick(), if next < count => {
                sent_at[next as usize].store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                // The send is answered once stored; its delivery to bob is what is measured.
                alice.broadcast(format!("{phase} {next}")).await.expect("alice's send is accepted");
                next += 1;
            }
            event = bob.next_event() => match event {
                Some(Event::Message(m)) if m.body == "spam" => spam += 1,
                Some(Event::Message(m)) => {
                    let expected = format!("{phase} {received}");
                    assert_eq!(m.body, expected, "every honest message, once, in order");
                    let at = Duration::from_nanos(sent_at[received as usize].load(Ordering::Relaxed));
                    latencies.push(base.elapsed().saturating_sub(at));
                    received += 1;
                }
                Some(_) => {}
                None => panic!("{phase}: bob's connection closed"),
            },
        }
    }
    (latencies, spam)
}

async fn honest_pair(server: &TestServer) -> (Chat, Chat) {
    let addr = server.addr().to_string();
    let alice = Chat::new(connect(ClientConfig::new(addr.clone(), name("alice"))).await.unwrap());
    let bob = Chat::new(connect(ClientConfig::new(addr, name("bob"))).await.unwrap());
    (alice, bob)
}

fn flood_config() -> ServerConfig {
    ServerConfig { limits: Some(Limits::default()), ..server_config(None) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_users_lose_nothing_beside_a_reconnecting_flooder_held_to_its_address_allowance() {
    let server = TestServer::start_with(flood_config(), None).await.unwrap();
    let (mut alice, mut bob) = honest_pair(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let flood = flooder(server.addr(), stop.clone());
    let (latencies, spam) = honest_phase(&mut alice, &mut bob, "flood", 40, 20).await;
    stop.store(true, Ordering::Relaxed);
    let flooded = timeout(WAIT, flood).await.unwrap().unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!("{flooded:?} in {secs:.1} s; bob received {spam} flood messages and all 40 of alice's");
    assert_eq!(latencies.len(), 40);
    assert!(flooded.connections >= 5, "the flooder reconnected: {flooded:?}");
    // Every connection would have had a fresh burst of 200: the address's buckets cut the flood to
    // their burst and rate however often it reconnects (spam still on its way to bob is not counted).
    let rate = DEFAULT_ADDRESS_MESSAGE_RATE;
    let allowance = rate.burst as f64 + rate.per_second as f64 * (secs + 1.0);
    assert!((spam as f64) <= allowance, "{spam} flood messages reached bob; allowance {allowance:.0}");
    assert!(flooded.written > spam, "most of what the flooder wrote was never delivered");
    drop((alice, bob));
    server.stop().await.unwrap();
}

/// Percentile `p` (0–100) of `sorted`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --release -p tests --test flood -- --ignored --nocapture"]
async fn bench_honest_latency_quiet_and_under_a_reconnecting_flood() {
    let secs = env_usize("FLOOD_SECS", 10) as u64;
    let runs = env_usize("FLOOD_RUNS", 3);
    let per_second = 20;
    let mut rows = Vec::new();
    for run in 1..=runs {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig { limits: Some(Limits::default()), ..server_config(Some(dir.path())) };
        let server = TestServer::start_with(config, Some(dir)).await.unwrap();
        let (mut alice, mut bob) = honest_pair(&server).await;
        let (mut quiet, _) = honest_phase(&mut alice, &mut bob, "quiet", secs * per_second, per_second).await;
        let stop = Arc::new(AtomicBool::new(false));
        let flood = flooder(server.addr(), stop.clone());
        let (mut flooded, spam) = honest_phase(&mut alice, &mut bob, "flood", secs * per_second, per_second).await;
        stop.store(true, Ordering::Relaxed);
        let done = timeout(WAIT, flood).await.unwrap().unwrap();
        quiet.sort();
        flooded.sort();
        let (q50, q99) = (percentile(&quiet, 50.0), percentile(&quiet, 99.0));
        let (f50, f99) = (percentile(&flooded, 50.0), percentile(&flooded, 99.0));
        println!(
            "run {run}: quiet p50 {:.2} ms p99 {:.2} ms | flood p50 {:.2} ms p99 {:.2} ms | p99 ratio {:.2} | \
             flooder: {} connections, {} sends written, {spam} delivered to bob",
            ms(q50),
            ms(q99),
            ms(f50),
            ms(f99),
            ms(f99) / ms(q99),
            done.connections,
            done.written,
        );
        rows.push((ms(q99), ms(f99), ms(f99) / ms(q99)));
        drop((alice, bob));
        server.stop().await.unwrap();
    }
    let median = |f: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median of {runs} runs: quiet p99 {:.2} ms, flood p99 {:.2} ms, ratio {:.2}",
        median(|r| r.0),
        median(|r| r.1),
        median(|r| r.2)
    );
}
