//! Attacks on the P2P topology, each re-run as a test that must now fail to do harm: real nodes
//! (`join_on`) on one in-memory network, in virtual time, and raw connections that speak the
//! protocol but not by its rules. Every wait is bounded and every node is stopped at the end.

mod memory;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chat_core::rate::Rate;
use chat_core::{
    ErrorCode, Event, MAX_CLOCK_JUMP, MessageId, NodeId, OutgoingMessage, Recipients, Timestamp, Transport, UserName,
};
use chat_p2p::election::Term;
use chat_p2p::protocol::{Envelope, PeerMsg, Submission};
use chat_p2p::{Limits, P2pError, P2pTransport, join_on};
use chat_transport::memory::{MemoryNetwork, MemoryStream};
use chat_transport::{Connection, Dialer, Role, handshake};
use memory::*;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// A raw peer connection from `from` to the node at `to`, after the handshake.
async fn raw(net: &MemoryNetwork, from: SocketAddr, to: SocketAddr) -> Connection<MemoryStream, Envelope, Envelope> {
    let mut stream = net.dialer(from).connect(to).await.expect("connected");
    handshake(&mut stream, Role::Peer).await.expect("handshake");
    Connection::new(stream)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The epoch of the coordinator `id`, from the events `t` has queued.
async fn epoch_of(t: &mut P2pTransport, id: NodeId) -> u64 {
    let events = queued_events(t).await;
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::CoordinatorChanged { node_id, epoch, .. } if *node_id == id => Some(*epoch),
            _ => None,
        })
        .expect("told who coordinates")
}

#[tokio::test(start_paused = true)]
async fn peer_clocks_at_the_end_of_time_are_refused_and_no_clock_jumps() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let mut nodes = group(&net, &["alice", "bob", "carol"]).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let c = wait_agreed(&refs, 3).await;
        let ci = nodes.iter().position(|t| t.local_node_id() == Some(c)).expect("the coordinator");
        let mi = (ci + 1) % 3;
        let epoch = epoch_of(&mut nodes[mi], c).await;
        let (coordinator, member) = (nodes[ci].local_addr(), nodes[mi].local_addr());
        let member_id = nodes[mi].local_node_id().expect("an ID");
        // To the coordinator, posing as the member: a Submit stamped at the end of time; and a join
        // request stamped there too.
        let mut to_coordinator = raw(&net, loopback(1), coordinator).await;
        let boom = Submission {
            id: MessageId::new(member_id, 999_999),
            sender: nodes[mi].local_name().clone(),
            recipients: Recipients::Broadcast,
            body: "boom".into(),
            sent_at: Timestamp::new(u64::MAX, member_id),
        };
        let forged = Envelope { from: Some(member_id), addr: member, msg: PeerMsg::Submit(boom) };
        to_coordinator.write_frame(&forged).await.expect("written");
        let request = PeerMsg::JoinRequest {
            name: name("mallory"),
            addr: loopback(1),
            nonce: 7,
            clock: u64::MAX,
            key: None,
            id: None,
            quiet: false,
        };
        to_coordinator.write_frame(&Envelope { from: None, addr: loopback(1), msg: request }).await.expect("written");
        // To the member, posing as the coordinator: a heartbeat stamped at the end of time.
        let mut to_member = raw(&net, loopback(2), member).await;
        let heartbeat = PeerMsg::Heartbeat { term: Term::new(epoch, c), commit: None, clock: u64::MAX };
        to_member.write_frame(&Envelope { from: Some(c), addr: coordinator, msg: heartbeat }).await.expect("written");
        tokio::time::sleep(Duration::from_millis(200)).await;
        everybody_says(&nodes, "after").await;
        for t in &mut nodes {
            let (got, _) = messages(t, 3).await;
            for m in &got {
                assert!(m.body.starts_with("after"), "{} delivered {:?}", t.local_name(), m.body);
                assert!(m.lamport.counter < MAX_CLOCK_JUMP, "{} stamped {}: a clock jumped", t.local_name(), m.lamport);
            }
        }
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        assert_eq!(agreed(&refs, 3).await, Some(c), "nobody left, nobody joined");
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn names_like_a_members_cannot_join_and_reach_the_member() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let mut nodes = group(&net, &["alice", "bob"]).await;
        let wire = |s: &str| UserName::from_wire(s.into()).expect("safe to carry");
        let cases = [
            ("ALICE", ErrorCode::NameTaken),
            ("\u{0430}\u{04CF}\u{0456}\u{0441}\u{0435}", ErrorCode::NameTaken),
            ("\u{0430}lice", ErrorCode::InvalidName),
            ("alice\u{200B}", ErrorCode::InvalidName),
        ];
        for (who, expected) in cases {
            let mut c = config("x");
            c.name = wire(who);
            match tokio::time::timeout(Duration::from_secs(10), join_on(&net, c)).await {
                Ok(Err(P2pError::Refused { code, reason })) => assert_eq!(code, expected, "{who:?}: {reason}"),
                Ok(Ok(_)) => panic!("{who:?} joined"),
                Ok(Err(e)) => panic!("{who:?}: {e}"),
                Err(_) => panic!("{who:?}: no answer"),
            }
        }
        // A unicast to ALICE reaches alice, under her name.
        let bob = nodes.iter().position(|t| t.local_name().as_str() == "bob").expect("bob");
        let msg = OutgoingMessage {
            recipients: Recipients::Unicast(wire("ALICE")),
            body: "hi".into(),
            sent_at: Timestamp::default(),
        };
        let receipt = nodes[bob].send(msg).await.expect("sent");
        assert!(receipt.unknown.is_empty());
        let alice = 1 - bob;
        let (got, _) = messages(&mut nodes[alice], 1).await;
        assert_eq!((got[0].body.as_str(), &got[0].recipients), ("hi", &Recipients::Unicast(name("alice"))));
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        wait_agreed(&refs, 2).await;
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn an_honest_bulk_sender_over_the_rate_is_slowed_down_and_loses_nothing() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let limited = |who: &str| {
            let mut c = config(who);
            c.limits = Some(Limits { messages: Rate { per_second: 20, burst: 10 }, ..Limits::default() });
            c
        };
        let mut nodes = group_with(&net, &["alice", "bob", "carol"], limited).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let c = wait_agreed(&refs, 3).await;
        for t in &mut nodes {
            queued_events(t).await;
        }
        // A member sends 60 messages at once (a program with many sends in flight), the coordinator
        // 20 one after the other (a script piping lines).
        let member = nodes.iter().position(|t| t.local_node_id() != Some(c)).expect("a member");
        let coordinator = nodes.iter().position(|t| t.local_node_id() == Some(c)).expect("the coordinator");
        let started = Instant::now();
        let bulk = for_all((0..60).map(|i| {
            let t = &nodes[member];
            async move {
                say(t, &format!("bulk {i}")).await;
            }
        }));
        let script = async {
            for i in 0..20 {
                say(&nodes[coordinator], &format!("line {i}")).await;
            }
        };
        tokio::join!(bulk, script);
        let took = started.elapsed();
        println!("80 messages over the rate took {took:?} (virtual)");
        // 50 over the burst at 20 a second: at least 2.5 s.
        assert!(took >= Duration::from_millis(2500), "not slowed down: {took:?}");
        let seq = same_sequence_everywhere(&mut nodes, 80).await;
        for i in 0..60 {
            assert!(seq.iter().any(|m| m.body == format!("bulk {i}")), "bulk {i} was delivered");
        }
        let lines: Vec<&str> = seq.iter().filter(|m| m.body.starts_with("line")).map(|m| m.body.as_str()).collect();
        let expected: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
        assert_eq!(lines, expected, "every line, in order");
        for t in &mut nodes {
            let events = queued_events(t).await;
            assert!(!events.iter().any(|e| matches!(e, Event::PeerLeft(_))), "{} saw a member removed", t.local_name());
        }
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        assert_eq!(agreed(&refs, 3).await, Some(c));
        stop(nodes).await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(start_paused = true)]
async fn idle_connections_to_a_member_change_nothing_when_the_coordinator_dies() {
    tokio::time::timeout(TEST_LIMIT, async {
        let net = MemoryNetwork::new();
        let mut nodes = group(&net, &["alice", "bob", "carol", "dave"]).await;
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let old = wait_agreed(&refs, 4).await;
        // The attacked node: the lowest ID but the coordinator's, so it has no business becoming
        // coordinator.
        let ti = (0..4)
            .filter(|i| nodes[*i].local_node_id() != Some(old))
            .min_by_key(|i| nodes[*i].local_node_id())
            .expect("a node");
        let target = nodes[ti].local_addr();
        let target_id = nodes[ti].local_node_id().expect("an ID");
        queued_events(&mut nodes[ti]).await;
        // 600 connections from the address the honest nodes use, each completing the handshake and
        // then silent, held until the node closes them.
        let connected = Arc::new(AtomicUsize::new(0));
        let mut storm = tokio::task::JoinSet::new();
        for k in 0..600u16 {
            let dialer = net.dialer(loopback(30_000 + k));
            let connected = Arc::clone(&connected);
            storm.spawn(async move {
                let mut stream = dialer.connect(target).await.ok()?;
                handshake(&mut stream, Role::Peer).await.ok()?;
                connected.fetch_add(1, Ordering::Relaxed);
                let held = Instant::now();
                let mut byte = [0u8; 1];
                match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut byte)).await {
                    Ok(Ok(0) | Err(_)) => Some(held.elapsed()),
                    Ok(Ok(_)) => panic!("the node wrote on a connection it did not dial"),
                    Err(_) => Some(Duration::MAX),
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let oi = nodes.iter().position(|t| t.local_node_id() == Some(old)).expect("the coordinator");
        let mut dead = nodes.remove(oi);
        dead.abort();
        let ti = nodes.iter().position(|t| t.local_addr() == target).expect("the target lives");
        let refs: Vec<&P2pTransport> = nodes.iter().collect();
        let new = wait_agreed(&refs, 3).await;
        assert_eq!(new, highest(&nodes), "the highest live ID coordinates");
        assert_ne!(new, target_id);
        let si = nodes.iter().position(|t| t.local_node_id() == Some(new)).expect("the new coordinator");
        for i in 0..5 {
            say(&nodes[si], &format!("after {i}")).await;
        }
        let (got, events) = messages(&mut nodes[ti], 5).await;
        let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["after 0", "after 1", "after 2", "after 3", "after 4"], "5 of 5");
        assert!(
            !events.iter().any(|e| matches!(e, Event::CoordinatorChanged { node_id, .. } if *node_id == target_id)),
            "the attacked node declared itself coordinator: {events:?}"
        );
        assert_eq!(nodes[ti].local_node_id(), Some(target_id), "the attacked node never had to rejoin");
        // Every idle connection was closed, within twice the failure timeout.
        let mut closed = 0;
        while let Some(held) = storm.join_next().await {
            if let Some(held) = held.expect("no attacker panicked") {
                assert!(held <= Duration::from_secs(1), "an idle connection was held {held:?}");
                closed += 1;
            }
        }
        println!(
            "{} idle connections completed the handshake, {closed} were closed",
            connected.load(Ordering::Relaxed)
        );
        assert!(closed > 0 && closed == connected.load(Ordering::Relaxed), "{closed} closed");
        stop(nodes).await;
        assert!(dead.is_finished());
    })
    .await
    .expect("test finished in time");
}
