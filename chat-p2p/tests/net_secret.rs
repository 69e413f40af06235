//! A passive recorder between two real nodes (loopback TCP and multicast): each node advertises a
//! relay's address, so every byte between them passes through relays that record it. With the
//! group secret the recording holds none of the message text nor the names (links are Noise,
//! datagrams sealed); without it the same recording shows the text, which proves the traffic went
//! through the relays. Every wait has a deadline; relays and nodes are stopped at the end.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_core::{Event, OutgoingMessage, Recipients, Timestamp, Transport, UserName};
use chat_p2p::secure::GroupSecret;
use chat_p2p::{P2pConfig, P2pError, P2pTransport, join};
use chat_transport::discovery::{DiscoveryConfig, DiscoverySocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Upper bound for one whole test.
const TEST_LIMIT: Duration = Duration::from_secs(40);

/// How many free ports a node tries before a taken port fails the test.
const PORT_ATTEMPTS: usize = 5;

type Recording = Arc<Mutex<Vec<u8>>>;

/// A free loopback port (bound, read, released: the node binds it right after).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address")
}

/// Copies `from` to `to`, recording every byte.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, tape: Recording) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tape.lock().expect("tape").extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A relay listening on a fresh loopback port and forwarding every connection to `target`,
/// recording both directions into `tape`; its address.
async fn relay(target: SocketAddr, tape: Recording, tasks: &mut JoinSet<()>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let addr = listener.local_addr().expect("its address");
    tasks.spawn(async move {
        let mut pumps = JoinSet::new();
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else { continue };
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            pumps.spawn(pump(ir, ow, Arc::clone(&tape)));
            pumps.spawn(pump(or, iw, Arc::clone(&tape)));
        }
    });
    addr
}

fn config(who: &str, port: u16, secret: Option<&GroupSecret>, listen: SocketAddr, advertise: SocketAddr) -> P2pConfig {
    let mut c = P2pConfig::new(UserName::new(who).expect("a name"));
    c.group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 77, 77), port);
    c.heartbeat = Duration::from_millis(50);
    c.timeout = Duration::from_millis(250);
    c.join_timeout = Duration::from_millis(400);
    c.secret = secret.cloned();
    c.listen = listen;
    c.advertise = Some(advertise);
    c
}

async fn say(t: &P2pTransport, body: &str) {
    let msg = OutgoingMessage { recipients: Recipients::Broadcast, body: body.into(), sent_at: Timestamp::default() };
    tokio::time::timeout(Duration::from_secs(10), t.send(msg)).await.expect("in time").expect("sent");
}

async fn delivered(t: &mut P2pTransport, body: &str) {
    for _ in 0..1000 {
        match tokio::time::timeout(Duration::from_secs(10), t.recv()).await {
            Ok(Some(Event::Message(m))) if m.body == body => return,
            Ok(Some(_)) => {}
            other => panic!("{}: no {body:?}: {other:?}", t.local_name()),
        }
    }
    panic!("{}: no {body:?}", t.local_name())
}

/// Starts a node listening on a free port behind a fresh relay. The port is found by binding and
/// releasing it, so another socket may take it before the node binds it: a taken port is retried
/// with a new port and relay (at most [`PORT_ATTEMPTS`] times).
async fn start(
    who: &str,
    port: u16,
    secret: Option<&GroupSecret>,
    tape: &Recording,
    relays: &mut JoinSet<()>,
) -> P2pTransport {
    for attempt in 1..=PORT_ATTEMPTS {
        let at = free_port();
        let c = config(who, port, secret, at, relay(at, Arc::clone(tape), relays).await);
        match tokio::time::timeout(Duration::from_secs(10), join(c)).await.expect("in time") {
            Err(P2pError::Bind { what: "tcp listener", .. }) if attempt < PORT_ATTEMPTS => {}
            joined => return joined.expect("joined"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Runs two nodes (`alice` founds, `bob` joins) whose links pass through recording relays, has
/// each say a sentence, and returns what the relays and a multicast listener recorded.
async fn recorded_chat(port: u16, secret: Option<&GroupSecret>) -> (Vec<u8>, Vec<u8>) {
    let tape: Recording = Arc::default();
    let mut relays = JoinSet::new();
    let group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 77, 77), port);
    let listener = DiscoverySocket::bind(DiscoveryConfig::with_group(group)).expect("joined the group");
    let air: Recording = Arc::default();
    let heard = Arc::clone(&air);
    relays.spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, _)) = listener.recv_raw(&mut buf).await {
            heard.lock().expect("air").extend_from_slice(&buf[..n]);
        }
    });
    let mut alice = start("alice", port, secret, &tape, &mut relays).await;
    let mut bob = start("bob", port, secret, &tape, &mut relays).await;
    // Both list both, with the same coordinator (bob may take over if his ID is the higher).
    let coordinator = |peers: Vec<chat_core::PeerInfo>| {
        (peers.len() == 2).then(|| peers.into_iter().find(|p| p.coordinator).map(|p| p.name)).flatten()
    };
    for _ in 0..400 {
        let (a, b) = (coordinator(alice.peers().await.expect("peers")), coordinator(bob.peers().await.expect("peers")));
        if a.is_some() && a == b {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    say(&alice, "attack at dawn").await;
    say(&bob, "retreat at dusk").await;
    for t in [&mut alice, &mut bob] {
        delivered(t, "attack at dawn").await;
        delivered(t, "retreat at dusk").await;
    }
    for mut t in [alice, bob] {
        let _ = tokio::time::timeout(Duration::from_secs(5), t.leave()).await;
    }
    relays.abort_all();
    let tcp = tape.lock().expect("tape").clone();
    let datagrams = air.lock().expect("air").clone();
    (tcp, datagrams)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_between_two_nodes_with_the_secret_sees_no_text_and_no_names() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (tcp, air) = recorded_chat(47_631, Some(&GroupSecret::generate())).await;
        assert!(tcp.len() > 500, "the links went through the relays ({} bytes)", tcp.len());
        for secret in ["attack at dawn", "retreat at dusk", "alice", "bob"] {
            assert!(!contains(&tcp, secret), "{secret:?} on a link");
            assert!(!contains(&air, secret), "{secret:?} in a datagram");
        }
        // The control: the same chat without the secret is readable by the same recorder.
        let (tcp, air) = recorded_chat(47_632, None).await;
        for text in ["attack at dawn", "retreat at dusk", "alice", "bob"] {
            assert!(contains(&tcp, text), "{text:?} not recorded without a secret");
        }
        assert!(contains(&air, "bob"), "bob's join request is readable without a secret");
    })
    .await
    .expect("test finished in time");
}
