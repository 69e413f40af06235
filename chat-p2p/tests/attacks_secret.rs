//! The attacks of issue "Only members get in", each re-run against nodes with a group secret and
//! required to fail: real nodes (`join_on`) on one in-memory network in virtual time, attacked by
//! raw connections and datagrams that speak the protocol without the secret (outsiders), or with
//! it but under another member's identity (insiders). Plus: a node with the wrong secret or none is
//! refused with `auth_failed`, a recorded datagram replayed later is ignored, and offline messages go
//! to the node key they were kept for (`P2pConfig::key`), never to another key taking the name. (The passive
//! recorder between two nodes over real TCP is in `net_secret.rs`.) Every wait is bounded and every
//! node is stopped at the end.

mod memory;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_core::{ErrorCode, Event, MessageId, NodeId, Recipients, Timestamp, Transport};
use chat_p2p::election::{ElectionMsg, Term};
use chat_p2p::protocol::{Change, Entry, Envelope, Member, PeerKey, PeerMsg, Submission};
use chat_p2p::secure::{GroupSecret, NoiseStream, Security, initiate};
use chat_p2p::{P2pConfig, P2pError, P2pTransport, join_on};
use chat_transport::discovery::DEFAULT_GROUP;
use chat_transport::memory::{MemoryGroup, MemoryNetwork, MemoryStream};
use chat_transport::{Connection, Dialer, Listener, Role, decode_payload, encode_payload, handshake};
use memory::*;

fn secret() -> GroupSecret {
    GroupSecret::from_bytes([42; 32])
}

fn with_secret(who: &str) -> P2pConfig {
    let mut c = config(who);
    c.secret = Some(secret());
    c
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

/// A group of alice, bob and carol with the secret; the index of the coordinator.
async fn secret_group(net: &MemoryNetwork) -> (Vec<P2pTransport>, usize) {
    let nodes = group_with(net, &["alice", "bob", "carol"], with_secret).await;
    let refs: Vec<&P2pTransport> = nodes.iter().collect();
    let c = wait_agreed(&refs, 3).await;
    let ci = nodes.iter().position(|t| t.local_node_id() == Some(c)).expect("the coordinator");
    (nodes, ci)
}

/// After an attack: every node still agrees on `coordinator`, everybody's messages get through,
/// and nobody delivered anything else.
async fn unharmed(nodes: &mut [P2pTransport], coordinator: NodeId) {
    let refs: Vec<&P2pTransport> = nodes.iter().collect();
    assert_eq!(wait_agreed(&refs, 3).await, coordinator, "the coordinator changed");
    everybody_says(nodes, "after").await;
    for t in nodes.iter_mut() {
        let (got, _) = messages(t, 3).await;
        for m in &got {
            assert!(m.body.starts_with("after"), "{} delivered {:?} from {}", t.local_name(), m.body, m.sender);
        }
    }
}

/// A link into the node at `to` by a holder of `secret` with a key of its own (no member's).
async fn insider_link(
    net: &MemoryNetwork,
    from: SocketAddr,
    to: SocketAddr,
    secret: &GroupSecret,
) -> Result<Connection<NoiseStream<MemoryStream>, Envelope, Envelope>, String> {
    let mut stream = net.dialer(from).connect(to).await.map_err(|e| e.to_string())?;
    handshake(&mut stream, Role::SecurePeer).await.map_err(|e| e.to_string())?;
    let (noise, _) = initiate(stream, &Security::new(secret)).await.map_err(|e| e.to_string())?;
    Ok(Connection::new(noise))
}

/// Whether a plaintext link into the node at `to` gets to deliver a frame: the node answers its
/// hello with `SecurePeer` and closes; writing then fails or goes nowhere.
async fn outsider_link(net: &MemoryNetwork, from: SocketAddr, to: SocketAddr) -> Role {
    let mut stream = net.dialer(from).connect(to).await.expect("connected");
    handshake(&mut stream, Role::Peer).await.expect("hellos exchanged")
}

fn forged_submit(claimed: NodeId, sender: &str, body: &str) -> PeerMsg {
    PeerMsg::Submit(Submission {
        id: MessageId::new(claimed, 777),
        sender: name(sender),
        recipients: Recipients::Broadcast,
        body: body.into(),
        sent_at: Timestamp::new(1, claimed),
    })
}

#[tokio::test(start_paused = true)]
async fn a_forged_join_request_datagram_is_not_admitted_and_learns_nothing() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let (mut nodes, ci) = secret_group(&net).await;
        let c = nodes[ci].local_node_id().expect("an ID");
        // The intruder listens where the JoinAck would go, and on the multicast group.
        let intruder = loopback(6666);
        let mut listener = net.bind(intruder).expect("bound");
        let mut group = net.join_group(DEFAULT_GROUP, intruder);
        let request = |key| PeerMsg::JoinRequest {
            name: name("mallory"),
            addr: intruder,
            nonce: 7,
            clock: 0,
            key,
            id: None,
            quiet: false,
        };
        let plain = encode_payload(&Envelope { from: None, addr: intruder, msg: request(None) }).expect("encoded");
        let theirs = Security::new(&GroupSecret::from_bytes([7; 32]));
        let wrong =
            encode_payload(&Envelope { from: None, addr: intruder, msg: request(Some(theirs.key)) }).expect("encoded");
        for _ in 0..4 {
            group.send(&plain);
            group.send(&theirs.sealer().seal(wall_ms(), &wrong));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answered = tokio::time::timeout(Duration::from_secs(1), listener.accept()).await;
        assert!(answered.is_err(), "a node dialled the intruder");
        // What the intruder heard on the group (beacons, its own requests) tells it nothing.
        let heard = drain_group(&mut group).await;
        assert!(!heard.is_empty(), "the group beacons");
        for datagram in &heard {
            if datagram == &plain {
                continue;
            }
            assert!(decode_payload::<Envelope>(datagram).is_err(), "a readable datagram");
            for secret in ["alice", "bob", "carol"] {
                assert!(!datagram.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in a datagram");
            }
        }
        assert!(nodes[ci].counters().untrusted >= 8, "counted: {:?}", nodes[ci].counters());
        unharmed(&mut nodes, c).await;
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

/// Every datagram the group socket holds now.
async fn drain_group(group: &mut MemoryGroup) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Ok(Ok((datagram, _))) = tokio::time::timeout(Duration::from_millis(1), group.recv()).await {
        got.push(datagram);
        if got.len() > 10_000 {
            break;
        }
    }
    got
}

#[tokio::test(start_paused = true)]
async fn a_submit_claiming_the_coordinators_id_and_bobs_name_is_never_delivered() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let (mut nodes, ci) = secret_group(&net).await;
        let c = nodes[ci].local_node_id().expect("an ID");
        let coordinator = nodes[ci].local_addr();
        // Outsider: the node answers a plaintext hello with its secure role and reads nothing more.
        assert_eq!(outsider_link(&net, loopback(1), coordinator).await, Role::SecurePeer);
        // Outsider with another secret: the Noise handshake fails.
        let other = GroupSecret::from_bytes([9; 32]);
        assert!(insider_link(&net, loopback(2), coordinator, &other).await.is_err(), "handshake with another secret");
        // Insider (holds the secret, has a key of its own): claims the coordinator's ID, then bob's.
        let bob = nodes.iter().find(|t| t.local_name().as_str() == "bob").and_then(|t| t.local_node_id());
        let mut link = insider_link(&net, loopback(3), coordinator, &secret()).await.expect("a link");
        for claimed in [c, bob.expect("bob's ID")] {
            let forged =
                Envelope { from: Some(claimed), addr: loopback(3), msg: forged_submit(claimed, "bob", "forged") };
            link.write_frame(&forged).await.expect("written");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(nodes[ci].counters().identity_refused, 2, "{:?}", nodes[ci].counters());
        unharmed(&mut nodes, c).await;
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn a_forged_joined_and_coordinator_takeover_makes_nobody_follow_the_intruder() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let (mut nodes, ci) = secret_group(&net).await;
        let c = nodes[ci].local_node_id().expect("an ID");
        let intruder = loopback(6666);
        let mut listener = net.bind(intruder).expect("bound");
        let huge = NodeId(u64::MAX);
        let mut epochs = Vec::new();
        for t in nodes.iter_mut() {
            let events = queued_events(t).await;
            epochs.extend(events.iter().filter_map(|e| match e {
                Event::CoordinatorChanged { epoch, .. } => Some(*epoch),
                _ => None,
            }));
        }
        let epoch = epochs.into_iter().max().expect("an epoch");
        let term = Term::new(epoch, c);
        let fake = Member { id: huge, name: name("intruder"), addr: intruder, key: Some(PeerKey([6; 32])) };
        for (i, t) in nodes.iter().enumerate().filter(|(i, _)| *i != ci) {
            let to = t.local_addr();
            // Outsider: refused at the hello.
            assert_eq!(outsider_link(&net, loopback(10 + i as u16), to).await, Role::SecurePeer);
            // Insider: "Joined" in the coordinator's name, then the takeover, then messages "from alice".
            let mut link = insider_link(&net, loopback(20 + i as u16), to, &secret()).await.expect("a link");
            let entries = vec![(Entry::Change(Change::Joined(fake.clone())), Vec::new())];
            let joined = PeerMsg::Orders { term, first: 1, entries, commit: 1 };
            link.write_frame(&Envelope { from: Some(c), addr: nodes[ci].local_addr(), msg: joined })
                .await
                .expect("sent");
            let coup = PeerMsg::Election(ElectionMsg::Coordinator { epoch: epoch + 1, tag: 0 });
            link.write_frame(&Envelope { from: Some(huge), addr: intruder, msg: coup }).await.expect("sent");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (i, t) in nodes.iter().enumerate().filter(|(i, _)| *i != ci) {
            assert!(t.counters().identity_refused >= 1, "{}: {:?}", t.local_name(), t.counters());
            let peers = t.peers().await.expect("peers");
            assert!(peers.iter().all(|p| p.node_id != Some(huge)), "node {i} lists the intruder");
        }
        assert!(tokio::time::timeout(Duration::from_millis(500), listener.accept()).await.is_err(), "dialled");
        unharmed(&mut nodes, c).await;
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn forged_beacons_every_half_second_hand_the_group_to_nobody() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let (mut nodes, ci) = secret_group(&net).await;
        let c = nodes[ci].local_node_id().expect("an ID");
        let intruder = loopback(6666);
        let mut listener = net.bind(intruder).expect("bound");
        let mut group = net.join_group(DEFAULT_GROUP, intruder);
        let beacon = PeerMsg::Beacon { term: Term::new(1_000_000, NodeId(u64::MAX)), addr: intruder };
        let plain =
            encode_payload(&Envelope { from: Some(NodeId(u64::MAX)), addr: intruder, msg: beacon }).expect("encoded");
        let theirs = Security::new(&GroupSecret::from_bytes([7; 32])).sealer();
        // A real beacon of the group, recorded, to be replayed with the forgeries.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let recorded = drain_group(&mut group).await.into_iter().find(|d| chat_p2p::secure::is_sealed(d));
        assert!(recorded.is_some(), "a beacon was recorded");
        let beacons = async {
            for _ in 0..8 {
                group.send(&plain);
                group.send(&theirs.seal(wall_ms(), &plain));
                if let Some(recorded) = &recorded {
                    group.send(recorded);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        // Chat goes on while the beacons come.
        let chat = async {
            for round in 0..3 {
                say(&nodes[round % 3], &format!("during {round}")).await;
            }
        };
        tokio::join!(beacons, chat);
        for t in nodes.iter_mut() {
            let (got, _) = messages(t, 3).await;
            assert!(got.iter().all(|m| m.body.starts_with("during")), "{}: {got:?}", t.local_name());
        }
        assert!(tokio::time::timeout(Duration::from_millis(500), listener.accept()).await.is_err(), "dialled");
        assert!(nodes.iter().all(|t| t.counters().untrusted >= 16), "every node dropped the forgeries");
        unharmed(&mut nodes, c).await;
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn a_node_with_another_secret_or_none_is_refused_with_auth_failed() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let (mut nodes, ci) = secret_group(&net).await;
        let c = nodes[ci].local_node_id().expect("an ID");
        let member = nodes[(ci + 1) % 3].local_addr();
        let other = |who: &str| {
            let mut cfg = config(who);
            cfg.secret = Some(GroupSecret::from_bytes([7; 32]));
            cfg
        };
        let through_peer = |mut cfg: P2pConfig| {
            cfg.peers = vec![member];
            cfg
        };
        let cases = [
            ("another secret, by multicast", other("mallory")),
            ("another secret, through a member", through_peer(other("mallory"))),
            ("no secret, by multicast", config("mallory")),
            ("no secret, through a member", through_peer(config("mallory"))),
        ];
        for (case, cfg) in cases {
            match tokio::time::timeout(Duration::from_secs(10), join_on(&net, cfg)).await {
                Ok(Err(P2pError::Refused { code, reason })) => {
                    assert_eq!(code, ErrorCode::AuthFailed, "{case}: {reason}");
                    println!("{case}: {reason}");
                }
                Ok(Ok(_)) => panic!("{case}: joined"),
                Ok(Err(e)) => panic!("{case}: {e}"),
                Err(_) => panic!("{case}: no answer"),
            }
        }
        unharmed(&mut nodes, c).await;
        // The right secret still gets in.
        let dave = start_with(&net, with_secret("dave")).await;
        nodes.push(dave);
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, 4).await;
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn a_recorded_join_request_replayed_now_or_later_admits_nobody() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let (mut nodes, _) = secret_group(&net).await;
        let mut recorder = net.join_group(DEFAULT_GROUP, loopback(6666));
        drain_group(&mut recorder).await;
        // Dave joins (his request is recorded) and leaves.
        let dave = start_with(&net, with_secret("dave")).await;
        let recorded = drain_group(&mut recorder).await;
        stop(vec![dave]).await;
        // Dave had the highest ID and coordinated: whoever took over.
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let c = wait_agreed(&refs, 3).await;
        let ci = nodes.iter().position(|t| t.local_node_id() == Some(c)).expect("the coordinator");
        let sealer = Security::new(&secret()).sealer();
        let (datagram, payload) = recorded
            .iter()
            .find_map(|d| {
                let opened = sealer.open(d).ok()?;
                let env: Envelope = decode_payload(&opened.payload).ok()?;
                matches!(&env.msg, PeerMsg::JoinRequest { name: n, .. } if n.as_str() == "dave")
                    .then(|| (d.clone(), opened.payload))
            })
            .expect("dave's join request was recorded");
        let before = nodes[ci].counters().untrusted;
        // Replayed now (its nonce was seen), and "later": the same request stamped a minute ago.
        recorder.send(&datagram);
        recorder.send(&sealer.seal(wall_ms() - 60_000, &payload));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(nodes[ci].counters().untrusted - before, 2, "both refused as replays");
        let peers = nodes[ci].peers().await.expect("peers");
        assert!(peers.iter().all(|p| p.name.as_str() != "dave"), "dave was admitted again: {peers:?}");
        // The control: the same request stamped now with a fresh nonce is admitted (so the replay
        // guard, not anything else, refused the two above).
        recorder.send(&sealer.seal(wall_ms(), &payload));
        let mut admitted = false;
        for _ in 0..40 {
            let events = queued_events(&mut nodes[ci]).await;
            admitted |= events.iter().any(|e| matches!(e, Event::PeerJoined(p) if p.name.as_str() == "dave"));
            if admitted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(admitted, "a fresh datagram is admitted");
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        // The ghost is removed again (nobody answers at its address).
        assert_eq!(wait_agreed(&refs, 3).await, c);
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

/// Polls `t` until it lists `n` peers (bounded).
async fn peers_are(t: &P2pTransport, n: usize) {
    for _ in 0..MAX_POLLS {
        if t.peers().await.map(|p| p.len()) == Ok(n) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{} never listed {n} peers", t.local_name())
}

#[tokio::test(start_paused = true)]
async fn offline_messages_go_to_the_node_key_they_were_kept_for_not_to_the_name() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let bob_key = chat_p2p::secure::NodeKey::generate();
        let bob_config = || P2pConfig { key: Some(bob_key.clone()), ..with_secret("bob") };
        let alice = start_with(&net, with_secret("alice")).await;
        let mut bob = start_with(&net, bob_config()).await;
        peers_are(&alice, 2).await;
        bob.leave().await.expect("bob leaves");
        peers_are(&alice, 1).await;
        let to_bob = |body: &str| chat_core::OutgoingMessage {
            recipients: Recipients::Unicast(name("bob")),
            body: body.into(),
            sent_at: Timestamp::default(),
        };
        for body in ["kept 1", "kept 2"] {
            let receipt = alice.send(to_bob(body)).await.expect("ordered");
            assert_eq!(receipt.queued, [name("bob")], "{body}");
        }
        // Mallory holds the secret, takes the name, with a key of her own: nothing for her.
        let mut mallory = start_with(&net, with_secret("bob")).await;
        peers_are(&alice, 2).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let events = queued_events(&mut mallory).await;
        assert!(!events.iter().any(|e| matches!(e, Event::Message(_))), "mallory collected: {events:?}");
        mallory.leave().await.expect("mallory leaves");
        peers_are(&alice, 1).await;
        // Bob again, another process with the same key: both, in order, once.
        let mut bob = start_with(&net, bob_config()).await;
        let (got, _) = messages(&mut bob, 2).await;
        assert_eq!(got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["kept 1", "kept 2"]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let events = queued_events(&mut bob).await;
        assert!(!events.iter().any(|e| matches!(e, Event::Message(_))), "delivered twice: {events:?}");
        stop(vec![alice, bob]).await;
    })
    .await
    .expect("test finished in time");
}
