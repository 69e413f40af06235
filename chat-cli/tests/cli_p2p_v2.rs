//! Cross-process tests of P2P v2 through the real binary: the first node coordinates and IDs are
//! 1, 2, 3 (a join starts no election); `--peer` uses no multicast and an unreachable one is an
//! error naming it; `--found`; rooms and message times as in server mode; a frozen and resumed
//! coordinator comes back as a member with nobody renumbered and no spurious `joined`.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Proc;
use serde_json::Value;

/// Fast failure detection for every node of this file.
const FAST: [&str; 4] = ["--heartbeat-ms", "50", "--timeout-ms", "300"];

/// A node on the multicast group `group` (a test-unique loopback port), with `extra` flags.
fn node(name: &str, group: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--mode", "p2p", "--json", "--name", name, "--group", group];
    args.extend(FAST);
    args.extend(extra);
    common::spawn(name, &args)
}

/// A loopback address nothing listens on (bound, then released).
fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// `/peers` as (ID, name, coordinator), sorted by ID.
fn peers(p: &mut Proc) -> Vec<(u64, String, bool)> {
    p.say("/peers");
    let e = p.event_of("peers");
    let mut list: Vec<(u64, String, bool)> = e["peers"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| {
            let id = p["node_id"].as_u64().unwrap_or(0);
            (id, p["name"].as_str().unwrap_or("").to_string(), p["coordinator"].as_bool().unwrap_or(false))
        })
        .collect();
    list.sort();
    list
}

/// Polls `/peers` at every process until all print `expected` (bounded: 100 rounds).
fn wait_peers(procs: &mut [&mut Proc], expected: &[(u64, &str, bool)]) {
    let expected: Vec<(u64, String, bool)> = expected.iter().map(|(i, n, c)| (*i, n.to_string(), *c)).collect();
    let mut last = Vec::new();
    for _ in 0..100 {
        last = procs.iter_mut().map(|p| peers(p)).collect::<Vec<_>>();
        if last.iter().all(|l| *l == expected) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("peers never became {expected:?}: {last:?}")
}

/// The `joined` / `left` events a process printed, as "joined NAME" / "left NAME".
fn story(p: &Proc) -> Vec<String> {
    p.seen
        .iter()
        .filter(|e| (e["type"] == "joined" || e["type"] == "left") && e["room"].is_null())
        .map(|e| format!("{} {}", e["type"].as_str().unwrap_or(""), e["name"].as_str().unwrap_or("")))
        .collect()
}

/// Reads `p`'s events until its story is `expected` (bounded: 5 s). A `/peers` answer can be
/// printed before a `joined` that the node reported just before it: the answer and the events
/// reach the printer on two paths.
fn wait_story(p: &mut Proc, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while story(p) != expected && Instant::now() < deadline {
        p.event_within(Duration::from_millis(100));
    }
    assert_eq!(story(p), expected, "{}'s story", p.name);
}

#[test]
fn the_first_node_coordinates_ids_count_from_one_and_a_frozen_coordinator_returns_as_a_member() {
    let group = "239.255.77.78:47711";
    let mut alice = node("alice", group, &[]);
    assert_eq!(alice.event_of("ready")["node_id"], 1);
    let mut bob = node("bob", group, &[]);
    assert_eq!(bob.event_of("ready")["node_id"], 2);
    let mut carol = node("carol", group, &[]);
    assert_eq!(carol.event_of("ready")["node_id"], 3);
    let all = [(1, "alice", true), (2, "bob", false), (3, "carol", false)];
    wait_peers(&mut [&mut alice, &mut bob, &mut carol], &all);
    // Nobody took over when bob and carol joined.
    for p in [&bob, &carol] {
        let coordinators: Vec<&Value> = p.seen.iter().filter(|e| e["type"] == "coordinator").collect();
        assert!(coordinators.iter().all(|e| e["name"] == "alice"), "{}: {coordinators:?}", p.name);
    }
    // Freeze the coordinator: the others elect the highest live ID (carol) and keep their IDs.
    let pid = alice.pid().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().expect("kill runs").success());
    wait_peers(&mut [&mut bob, &mut carol], &[(2, "bob", false), (3, "carol", true)]);
    assert!(Command::new("kill").args(["-CONT", &pid]).status().expect("kill runs").success());
    // Alice comes back as a member (under her own ID: nobody holds it), carol still coordinates.
    wait_peers(&mut [&mut alice, &mut bob, &mut carol], &[(1, "alice", false), (2, "bob", false), (3, "carol", true)]);
    bob.say("after the return");
    for p in [&mut alice, &mut carol] {
        assert_eq!(p.event_of("message")["text"], "after the return");
    }
    // Bob and carol tell the same story, and it has no `joined` for a node that never left.
    // (carol's story starts at her admission, bob's includes it.)
    wait_story(&mut bob, &["joined carol", "left alice", "joined alice"]);
    wait_story(&mut carol, &["left alice", "joined alice"]);
}

#[test]
fn an_unreachable_peer_is_an_error_naming_it_and_no_group_of_one() {
    let nowhere = free_addr();
    let mut lonely = node("lonely", "239.255.77.78:47712", &["--peer", &nowhere]);
    let error = lonely.event_of("error");
    let message = error["message"].as_str().unwrap_or("");
    assert!(message.contains(&nowhere), "the error names the address: {error}");
    assert!(!lonely.seen.iter().any(|e| e["type"] == "ready"), "no group of one");
    assert_eq!(lonely.finish(), 1);
}

/// A node that founds a group listening on a free loopback address: the node and that address.
/// The address is found by binding and releasing it, so another socket may take it first: the
/// node then exits naming the bind, and it is started again on another address (at most 3 times).
fn founder(name: &str, group: &str) -> (Proc, String) {
    for attempt in 1..=3 {
        let addr = free_addr();
        let mut p = node(name, group, &["--found", "--listen", &addr]);
        let first = p.event();
        if first["type"] == "ready" {
            assert_eq!(first["node_id"], 1, "the founder is node 1");
            return (p, addr);
        }
        let taken = first["message"].as_str().is_some_and(|m| m.contains("cannot bind tcp listener"));
        assert!(taken && attempt < 3, "{name} did not found a group: {first}");
        assert_eq!(p.finish(), 1);
    }
    unreachable!("the last attempt returns or panics")
}

#[test]
fn found_then_join_through_a_peer_without_multicast() {
    // Two different multicast groups: bob can only find alice through --peer.
    let (mut alice, addr) = founder("alice", "239.255.77.78:47713");
    let mut bob = node("bob", "239.255.77.78:47714", &["--peer", &addr]);
    assert_eq!(bob.event_of("ready")["node_id"], 2);
    wait_peers(&mut [&mut alice, &mut bob], &[(1, "alice", true), (2, "bob", false)]);
    bob.say("through the peer");
    assert_eq!(alice.event_of("message")["text"], "through the peer");
}

#[test]
fn rooms_and_times_work_in_p2p_mode_as_in_server_mode() {
    let group = "239.255.77.78:47715";
    let mut alice = node("alice", group, &[]);
    alice.event_of("ready");
    let mut bob = node("bob", group, &[]);
    bob.event_of("ready");
    let mut carol = node("carol", group, &[]);
    carol.event_of("ready");
    wait_peers(&mut [&mut alice, &mut bob, &mut carol], &[(1, "alice", true), (2, "bob", false), (3, "carol", false)]);
    alice.say("/join #ops");
    let history = alice.event_of("history");
    assert_eq!(history["room"], "#ops");
    bob.say("/join #OPS");
    let room = bob.event_of("history")["room"].as_str().unwrap_or("").to_lowercase();
    assert_eq!(room, "#ops", "room names are case-insensitive");
    // Alice (a member) is told bob joined her room (bounded: event_of waits at most 15 s each).
    let mut joined = alice.event_of("joined");
    for _ in 0..3 {
        if joined["name"] == "bob" {
            break;
        }
        joined = alice.event_of("joined");
    }
    assert_eq!((joined["name"].as_str(), joined["room"].as_str()), (Some("bob"), Some("#ops")));
    // After /join, plain text goes to the room: bob gets it, carol (not a member) does not.
    alice.say("room only");
    let m = bob.event_of("message");
    assert_eq!(
        (m["kind"].as_str(), m["room"].as_str(), m["text"].as_str()),
        (Some("room"), Some("#ops"), Some("room only"))
    );
    let time = m["time"].as_str().unwrap_or("");
    assert!(time.starts_with("20") && time.ends_with('Z'), "a wall-clock time: {m}");
    // A non-member may not send to it, and never sees it.
    carol.say("/switch #ops");
    carol.say("let me in");
    let refused = carol.event_of("error");
    assert_eq!(refused["code"], "not_member", "{refused}");
    carol.say("/all everyone");
    assert_eq!(bob.event_of("message")["text"], "everyone");
    assert!(!carol.seen.iter().any(|e| e["text"] == "room only"), "carol saw the room's message");
    carol.say("/rooms");
    let rooms = carol.event_of("rooms");
    assert_eq!(rooms["rooms"], serde_json::json!([{"name": "#ops", "members": 2}]));
    bob.say("/who #ops");
    let who = bob.event_of("who");
    let mut names: Vec<&str> = who["names"].as_array().expect("names").iter().filter_map(Value::as_str).collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
}
